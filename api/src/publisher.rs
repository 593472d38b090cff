//! Publishing jobs to RabbitMQ with publisher confirms (or, in one `larder serve` without
//! `LARDER_AMQP_URL`, to its worker's in-process queue), and the dispatcher that sends the jobs
//! a failed publish (or a crashed api) left behind.

use crate::db::{Database, DbPool};
use crate::schema::requests;
use common::job_queue::{InProcessJob, InProcessQueue, WorkerGone};
use common::JobMessage;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not answer in time")]
    Timeout,
    #[error("the broker refused the message")]
    Nacked,
    #[error("the broker was unreachable a moment ago")]
    Unreachable,
    #[error(transparent)]
    WorkerGone(#[from] WorkerGone),
}

/// Declare the durable job queue (api and workers declare it the same way).
pub async fn declare_queue(channel: &Channel, queue: &str) -> Result<lapin::Queue, lapin::Error> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
}

/// One broker connection and its confirm-mode channel, shared by every publish.
struct Link {
    conn: Connection,
    channel: Channel,
}

impl Link {
    fn usable(&self) -> bool {
        self.conn.status().connected() && self.channel.status().connected()
    }
}

#[derive(Default)]
struct LinkState {
    link: Option<Arc<Link>>,
    /// When connecting last failed: for `RECONNECT_BACKOFF` after it, publishing fails at once
    /// instead of every caller waiting for its own connection attempt in turn.
    failed_at: Option<Instant>,
}

const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// Where jobs go.
pub enum Publisher {
    Broker(Box<BrokerPublisher>),
    InProcess(InProcessQueue),
}

impl Publisher {
    pub fn new(broker: AMQPUri, queue: &str) -> Self {
        Self::Broker(Box::new(BrokerPublisher {
            broker,
            queue: queue.to_string(),
            state: Mutex::new(LinkState::default()),
        }))
    }

    /// Publish one job; from RabbitMQ, once the broker confirmed it.
    pub async fn publish(&self, request_id: i64) -> Result<(), PublishError> {
        match self {
            Self::Broker(broker) => broker.publish(request_id).await,
            Self::InProcess(queue) => Ok(queue.send(InProcessJob {
                request_id,
                redelivered: false,
            })?),
        }
    }

    /// Whether jobs go to this process's own worker.
    pub fn is_in_process(&self) -> bool {
        matches!(self, Self::InProcess(_))
    }

    /// Whether jobs can be sent now.
    pub async fn check(&self) -> bool {
        match self {
            Self::Broker(broker) => broker.link().await.is_ok(),
            Self::InProcess(queue) => queue.consumers() > 0,
        }
    }

    /// Number of consumers (workers) of the queue, if the broker answers.
    pub async fn consumer_count(&self) -> Option<u32> {
        match self {
            Self::Broker(broker) => broker.consumer_count().await,
            Self::InProcess(queue) => Some(queue.consumers()),
        }
    }

    /// The queue's consumers and waiting jobs, if the broker answers.
    pub async fn queue_counts(&self) -> Option<QueueCounts> {
        match self {
            Self::Broker(broker) => broker.queue_counts().await,
            Self::InProcess(queue) => Some(QueueCounts {
                consumers: queue.consumers(),
                waiting_jobs: u32::try_from(queue.waiting()).unwrap_or(u32::MAX),
            }),
        }
    }
}

/// Resend the job of every request in progress that was dispatched: the in-process queue
/// starts empty, so what it held when the process stopped is gone. An earlier attempt's
/// lease is taken over at once (no other process works from this queue: see
/// [`lock_in_process_queue`]). Jobs that went to RabbitMQ before are taken over too (the
/// deployment changed; its workers are gone with it).
pub async fn resend_in_process_jobs(
    pool: &DbPool,
    queue: &InProcessQueue,
) -> Result<usize, DispatchError> {
    let mut conn = pool.get().await?;
    let mut ids: Vec<i64> = crate::on!(&mut conn, c => diesel::update(
        requests::table
            .filter(requests::state.eq(common::RequestState::InProgress.as_str()))
            .filter(requests::dispatched_at.is_not_null()),
    )
    .set(requests::queued_in_process.eq(true))
    .returning(requests::id)
    .get_results(c)
    .await)?;
    ids.sort_unstable();
    for &request_id in &ids {
        queue
            .send(InProcessJob {
                request_id,
                redelivered: true,
            })
            .map_err(PublishError::from)?;
    }
    Ok(ids.len())
}

/// The session-level advisory lock a `larder serve` with its own queue holds on its database
/// while it runs ("larder" and 2; 1 is `db::MIGRATION_LOCK`): a second such serve would resend
/// the first one's jobs and take over its leases, and a RabbitMQ deployment would send them
/// again.
const IN_PROCESS_QUEUE_LOCK: i64 = 0x6c61_7264_6572_0002;

#[derive(Debug, thiserror::Error)]
pub enum QueueLockError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("cannot lock {0}: {1}")]
    File(std::path::PathBuf, std::io::Error),
    #[error("another `larder serve` without LARDER_AMQP_URL runs on this database: its jobs are in its own queue (stop it, or give both LARDER_AMQP_URL)")]
    Taken,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

async fn try_queue_lock(conn: &mut AsyncPgConnection) -> Result<bool, diesel::result::Error> {
    let locked: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<diesel::sql_types::BigInt, _>(IN_PROCESS_QUEUE_LOCK)
        .get_result(conn)
        .await?;
    Ok(locked.locked)
}

/// The file SQLite's in-process queue lock is taken on, beside the database (an advisory
/// `flock`, released by the kernel when the process ends however it ends).
fn sqlite_queue_lock_file(path: &std::path::Path) -> Result<Option<std::fs::File>, QueueLockError> {
    crate::db::lock_beside(path, "queue-lock", false)
        .map_err(|(lock_path, e)| QueueLockError::File(lock_path, e))
}

/// The in-process queue's lock, held while this lives.
pub enum InProcessQueueLock {
    /// PostgreSQL's session lock, on a connection a task keeps.
    Postgres(tokio::task::JoinHandle<()>),
    /// SQLite's: the lock file, open.
    Sqlite(#[allow(dead_code)] std::fs::File),
}

impl Drop for InProcessQueueLock {
    fn drop(&mut self) {
        // the connection goes with the task, and the lock with the connection's session
        if let Self::Postgres(holder) = self {
            holder.abort();
        }
    }
}

/// Take the in-process queue's lock on `database`, on a connection of its own (checked
/// every few seconds and taken again if it dropped); refused when another process holds it.
pub async fn lock_in_process_queue(
    database: &Database,
) -> Result<InProcessQueueLock, QueueLockError> {
    let database_url = match database {
        Database::Postgres(url) => url.clone(),
        Database::Sqlite(path) => {
            return sqlite_queue_lock_file(path)?
                .map(InProcessQueueLock::Sqlite)
                .ok_or(QueueLockError::Taken)
        }
    };
    let mut conn = AsyncPgConnection::establish(&database_url).await?;
    if !try_queue_lock(&mut conn).await? {
        return Err(QueueLockError::Taken);
    }
    let holder = tokio::spawn(async move {
        let mut held = Some(conn);
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            if let Some(conn) = &mut held {
                if crate::db::now(conn).await.is_ok() {
                    continue;
                }
                held = None;
                tracing::warn!(
                    "lost the connection holding the in-process queue's lock; taking it again"
                );
            }
            match AsyncPgConnection::establish(&database_url).await {
                Ok(mut conn) => match try_queue_lock(&mut conn).await {
                    Ok(true) => held = Some(conn),
                    Ok(false) => tracing::error!("{}", QueueLockError::Taken),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take the in-process queue's lock again")
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take the in-process queue's lock again")
                }
            }
        }
    });
    Ok(InProcessQueueLock::Postgres(holder))
}

/// Give the requests whose jobs went to a `larder serve`'s own queue back to the dispatcher,
/// which sends them to RabbitMQ; unless such a serve still runs on this database (it holds the
/// lock above), when they stay its own. Returns how many were given back.
pub async fn requeue_in_process_jobs(database: &Database) -> Result<usize, QueueLockError> {
    let mut conn = crate::db::connect(database).await?;
    // held until this returns
    let _sqlite_lock;
    let locked = match (database, &mut conn) {
        (Database::Sqlite(path), _) => {
            _sqlite_lock = sqlite_queue_lock_file(path)?;
            _sqlite_lock.is_some()
        }
        (_, crate::db::Connection::Postgres(c)) => try_queue_lock(c).await?,
        (_, crate::db::Connection::Sqlite(_)) => false,
    };
    if !locked {
        tracing::warn!("a `larder serve` without LARDER_AMQP_URL runs on this database: the jobs in its own queue stay there");
        return Ok(0);
    }
    let requeued = crate::on!(&mut conn, c => diesel::update(
        requests::table
            .filter(requests::queued_in_process)
            .filter(requests::state.eq(common::RequestState::InProgress.as_str())),
    )
    .set((
        requests::queued_in_process.eq(false),
        requests::dispatched_at.eq(None::<chrono::NaiveDateTime>),
        requests::dispatch_lease_until.eq(None::<chrono::NaiveDateTime>),
    ))
    .execute(c)
    .await);
    // the session ends with the connection; unlocking first lets a serve start at once
    if let crate::db::Connection::Postgres(c) = &mut conn {
        let _ = diesel::sql_query("SELECT pg_advisory_unlock_all()")
            .execute(c)
            .await;
    }
    Ok(requeued?)
}

/// RabbitMQ, over one shared confirm-mode channel.
pub struct BrokerPublisher {
    broker: AMQPUri,
    queue: String,
    state: Mutex<LinkState>,
}

impl BrokerPublisher {
    async fn connect(&self) -> Result<Link, PublishError> {
        let connect = async {
            let conn =
                Connection::connect_uri(self.broker.clone(), ConnectionProperties::default())
                    .await?;
            let channel = conn.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            declare_queue(&channel, &self.queue).await?;
            Ok::<_, lapin::Error>(Link { conn, channel })
        };
        Ok(tokio::time::timeout(BROKER_TIMEOUT, connect)
            .await
            .map_err(|_| PublishError::Timeout)??)
    }

    /// The current link, connecting if there is none. The lock is held only to look at or
    /// replace the link, never while a message waits for its confirmation.
    async fn link(&self) -> Result<Arc<Link>, PublishError> {
        let mut state = self.state.lock().await;
        if let Some(link) = state.link.as_ref().filter(|l| l.usable()) {
            return Ok(link.clone());
        }
        state.link = None;
        if state
            .failed_at
            .is_some_and(|at| at.elapsed() < RECONNECT_BACKOFF)
        {
            return Err(PublishError::Unreachable);
        }
        match self.connect().await {
            Ok(link) => {
                let link = Arc::new(link);
                state.link = Some(link.clone());
                state.failed_at = None;
                Ok(link)
            }
            Err(e) => {
                state.failed_at = Some(Instant::now());
                Err(e)
            }
        }
    }

    /// Drop `link` (if it is still the current one) so the next call reconnects.
    async fn forget(&self, link: &Arc<Link>) {
        let mut state = self.state.lock().await;
        if state.link.as_ref().is_some_and(|l| Arc::ptr_eq(l, link)) {
            state.link = None;
        }
    }

    /// Publish one job and wait for the broker's confirmation. Publishes run concurrently on
    /// the shared channel; a broken connection is dropped and re-made on the next call.
    async fn publish(&self, request_id: i64) -> Result<(), PublishError> {
        let link = self.link().await?;
        let payload = serde_json::to_vec(&JobMessage { request_id }).expect("job serializes");
        let publish = async {
            link.channel
                .basic_publish(
                    "".into(),
                    self.queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &payload,
                    BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_content_type("application/json".into()),
                )
                .await?
                .await
        };
        let result = match tokio::time::timeout(BROKER_TIMEOUT, publish).await {
            Ok(Ok(confirmation)) if confirmation.is_ack() => Ok(()),
            Ok(Ok(_)) => Err(PublishError::Nacked),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(PublishError::Timeout),
        };
        if result.is_err() {
            self.forget(&link).await;
        }
        result
    }

    async fn consumer_count(&self) -> Option<u32> {
        self.queue_counts().await.map(|counts| counts.consumers)
    }

    /// The queue's consumers (workers) and the jobs waiting in it, if the broker answers (one
    /// passive declare: the broker's own counts, nothing is read from the queue).
    async fn queue_counts(&self) -> Option<QueueCounts> {
        let link = self.link().await.ok()?;
        let declare = link.channel.queue_declare(
            self.queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        );
        match tokio::time::timeout(BROKER_TIMEOUT, declare).await {
            Ok(Ok(queue)) => Some(QueueCounts {
                consumers: queue.consumer_count(),
                waiting_jobs: queue.message_count(),
            }),
            _ => None,
        }
    }
}

/// What the broker says of the job queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueCounts {
    pub consumers: u32,
    /// Jobs published and not yet taken by a worker.
    pub waiting_jobs: u32,
}

/// Publish one request's job and record that it went out. No database connection is held
/// while the broker confirms.
pub async fn dispatch(
    pool: &DbPool,
    publisher: &Publisher,
    request_id: i64,
) -> Result<(), PublishError> {
    publisher.publish(request_id).await?;
    if let Err(e) = mark_dispatched(pool, &[request_id], publisher.is_in_process()).await {
        // at least once: the dispatcher publishes it again, and a worker skips a final request
        tracing::warn!(request_id, error = %e, "published, but could not record it");
    }
    Ok(())
}

/// How long the api that created a request has to publish it before a dispatcher steps in.
const DISPATCH_GRACE: Duration = Duration::from_secs(5);
/// How long a dispatcher holds the requests it claimed; if it dies meanwhile, another
/// dispatcher sends them once this has passed.
const DISPATCH_LEASE: Duration = Duration::from_secs(60);
/// Requests claimed at a time.
const DISPATCH_BATCH: i64 = 100;

/// Forever: publish the jobs of in-progress requests whose job never reached the broker.
pub async fn run_dispatcher(
    pool: DbPool,
    publisher: std::sync::Arc<Publisher>,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        if let Err(e) = dispatch_pending(&pool, &publisher).await {
            tracing::debug!(error = %e, "dispatcher could not run");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("database unavailable: {0}")]
    Pool(#[from] diesel_async::pooled_connection::deadpool::PoolError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

fn delta(duration: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(duration).expect("a few seconds")
}

#[derive(QueryableByName)]
struct ClaimedId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

/// Claim up to a batch of undispatched requests past their grace time whose lease (if any) has
/// ended, in one statement: their rows are locked only while it runs.
async fn claim_undispatched(pool: &DbPool) -> Result<Vec<i64>, DispatchError> {
    use diesel::sql_types::{BigInt, Timestamp};
    let mut conn = pool.get().await?;
    let now = crate::db::now(&mut conn).await?;
    let claimed: Vec<ClaimedId> = crate::on!(&mut conn, c => diesel::sql_query(crate::sql!(
        postgres: "UPDATE requests SET dispatch_lease_until = $1 WHERE id IN (\
           SELECT id FROM requests \
           WHERE dispatched_at IS NULL AND state = 'in_progress' AND created < $2 \
             AND (dispatch_lease_until IS NULL OR dispatch_lease_until < $3) \
           ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) \
         RETURNING id",
        // one connection: nothing else claims meanwhile
        sqlite: "UPDATE requests SET dispatch_lease_until = $1 WHERE id IN (\
           SELECT id FROM requests \
           WHERE dispatched_at IS NULL AND state = 'in_progress' AND created < $2 \
             AND (dispatch_lease_until IS NULL OR dispatch_lease_until < $3) \
           ORDER BY id LIMIT $4) \
         RETURNING id",
    ))
    .bind::<Timestamp, _>(now + delta(DISPATCH_LEASE))
    .bind::<Timestamp, _>(now - delta(DISPATCH_GRACE))
    .bind::<Timestamp, _>(now)
    .bind::<BigInt, _>(DISPATCH_BATCH)
    .load(c)
    .await)?;
    let mut ids: Vec<i64> = claimed.into_iter().map(|c| c.id).collect();
    ids.sort_unstable();
    Ok(ids)
}

async fn mark_dispatched(
    pool: &DbPool,
    ids: &[i64],
    in_process: bool,
) -> Result<(), DispatchError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut conn = pool.get().await?;
    let now = crate::db::now(&mut conn).await?;
    crate::on!(&mut conn, c => diesel::update(requests::table.filter(requests::id.eq_any(ids)))
        .set((
            requests::dispatched_at.eq(now),
            requests::dispatch_lease_until.eq(None::<chrono::NaiveDateTime>),
            requests::queued_in_process.eq(in_process),
        ))
        .execute(c)
        .await)?;
    Ok(())
}

/// Give back claimed requests that were not published, so the next round retries them.
async fn release(pool: &DbPool, ids: &[i64]) -> Result<(), DispatchError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut conn = pool.get().await?;
    crate::on!(&mut conn, c => diesel::update(requests::table.filter(requests::id.eq_any(ids)))
        .set(requests::dispatch_lease_until.eq(None::<chrono::NaiveDateTime>))
        .execute(c)
        .await)?;
    Ok(())
}

/// One round of the dispatcher: claim, publish without holding a connection, record.
pub async fn dispatch_pending(pool: &DbPool, publisher: &Publisher) -> Result<(), DispatchError> {
    let ids = claim_undispatched(pool).await?;
    let mut published = Vec::with_capacity(ids.len());
    let mut failure = None;
    for &id in &ids {
        match publisher.publish(id).await {
            Ok(()) => {
                tracing::info!(
                    request_id = id,
                    "dispatched a request whose job had not reached the broker"
                );
                published.push(id);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    mark_dispatched(pool, &published, publisher.is_in_process()).await?;
    match failure {
        Some(e) => {
            release(pool, &ids[published.len()..]).await?;
            Err(e.into())
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_db::{delete_queue, jobs_waiting, TestDb, AMQP};

    #[tokio::test(flavor = "multi_thread")]
    async fn dispatchers_of_several_instances_send_each_job_once() {
        let db = TestDb::new().await;
        let queue = format!("larder_dispatcher_test_{}", std::process::id());
        for _ in 0..30 {
            db.undispatched_request(chrono::Duration::seconds(30)).await;
        }
        let (one, two) = (
            Publisher::new(AMQP.parse().unwrap(), &queue),
            Publisher::new(AMQP.parse().unwrap(), &queue),
        );
        for _ in 0..2 {
            let (a, b) = tokio::join!(
                dispatch_pending(&db.pool, &one),
                dispatch_pending(&db.pool, &two)
            );
            a.unwrap();
            b.unwrap();
        }
        assert_eq!(jobs_waiting(&queue).await, 30);
        delete_queue(&queue).await;
    }

    async fn dispatch_state(db: &TestDb, id: i64) -> (bool, bool) {
        let mut conn = db.pool.get().await.unwrap();
        let (dispatched, in_process): (Option<chrono::NaiveDateTime>, bool) =
            crate::on!(&mut conn, c => requests::table
                .find(id)
                .select((requests::dispatched_at, requests::queued_in_process))
                .first(c)
                .await)
            .unwrap();
        (dispatched.is_some(), in_process)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn jobs_of_an_in_process_queue_go_to_rabbitmq_once_its_serve_is_gone() {
        let db = TestDb::new().await;
        let queue = InProcessQueue::default();
        let _jobs = queue.take_jobs();
        let in_process = Publisher::InProcess(queue.clone());
        let mut ids = Vec::new();
        for _ in 0..3 {
            let id = db.undispatched_request(chrono::Duration::seconds(30)).await;
            dispatch(&db.pool, &in_process, id).await.unwrap();
            assert_eq!(dispatch_state(&db, id).await, (true, true));
            ids.push(id);
        }
        let finished = db.finished_request(chrono::Duration::seconds(30)).await;

        // while a serve holds its queue: a second one is refused, and a RabbitMQ deployment
        // leaves its jobs alone
        let lock = lock_in_process_queue(&db.database).await.unwrap();
        assert!(matches!(
            lock_in_process_queue(&db.database).await,
            Err(QueueLockError::Taken)
        ));
        assert_eq!(requeue_in_process_jobs(&db.database).await.unwrap(), 0);
        assert_eq!(dispatch_state(&db, ids[0]).await, (true, true));
        // the serve restarting resends them all
        assert_eq!(resend_in_process_jobs(&db.pool, &queue).await.unwrap(), 3);
        drop(lock);
        wait_unlocked(&db).await;

        // gone: RabbitMQ's dispatcher sends them, once
        assert_eq!(requeue_in_process_jobs(&db.database).await.unwrap(), 3);
        assert_eq!(requeue_in_process_jobs(&db.database).await.unwrap(), 0);
        for &id in &ids {
            assert_eq!(
                dispatch_state(&db, id).await,
                (false, false),
                "request {id}"
            );
        }
        assert_eq!(dispatch_state(&db, finished).await, (false, false));
        let rabbit = format!("larder_requeue_test_{}", std::process::id());
        let broker = Publisher::new(AMQP.parse().unwrap(), &rabbit);
        dispatch_pending(&db.pool, &broker).await.unwrap();
        assert_eq!(jobs_waiting(&rabbit).await, 3);
        for &id in &ids {
            assert_eq!(dispatch_state(&db, id).await, (true, false));
        }
        delete_queue(&rabbit).await;
        // and a serve may take the database again
        let again = lock_in_process_queue(&db.database).await.unwrap();
        drop(again);
        wait_unlocked(&db).await;
    }

    /// Until no session holds an advisory lock on the test's database (a dropped lock's
    /// session ends a moment later).
    async fn wait_unlocked(db: &TestDb) {
        let mut conn = db.pool.get().await.unwrap();
        let crate::db::DbConn::Postgres(conn) = &mut conn else {
            unreachable!("the api's tests run on PostgreSQL")
        };
        // the session ends when the aborted task drops its connection
        for _ in 0..50 {
            let held: Vec<Locked> = diesel::sql_query(
                "SELECT count(*) > 0 AS locked FROM pg_locks WHERE locktype = 'advisory' \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .load(conn)
            .await
            .unwrap();
            if !held[0].locked {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the lock holder's session did not end");
    }
}
