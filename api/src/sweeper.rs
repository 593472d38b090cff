//! The lease sweeper: a request whose worker went silent (no heartbeat within
//! `LARDER_HEARTBEAT_TIMEOUT`) is published again for another worker to take over, and a request
//! past its deadline (`LARDER_REQUEST_TIMEOUT` after its first claim) fails, even when no worker
//! is left to fail it. Every api instance runs it: failing a late request is done under its row
//! lock and once (a final request stays as it is), and a silent request is handed over by the
//! instance whose statement marks it first (`FOR UPDATE SKIP LOCKED`), so it is published once
//! per lease however many instances sweep.

use crate::db::DbPool;
use crate::publisher::{PublishError, Publisher};
use crate::schema::requests;
use crate::v1::requests::{apply_patch, PatchBody};
use common::{Config, Failure, RequestState};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Timestamp};
use diesel_async::{AsyncConnection, RunQueryDsl};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
enum SweepError {
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("database unavailable: {0}")]
    Pool(#[from] diesel_async::pooled_connection::deadpool::PoolError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// Forever, every `interval`.
pub async fn run(pool: DbPool, publisher: Arc<Publisher>, config: Config, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        if let Err(e) = sweep(
            &pool,
            &publisher,
            config.heartbeat_timeout,
            config.request_timeout,
        )
        .await
        {
            tracing::debug!(error = %e, "lease sweeper could not run");
        }
    }
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

async fn sweep(
    pool: &DbPool,
    publisher: &Publisher,
    heartbeat_timeout: Duration,
    request_timeout: Duration,
) -> Result<(), SweepError> {
    let lease = chrono(heartbeat_timeout);
    let mut conn = pool.get().await?;
    let now = crate::db::now(&mut conn).await?;
    // one lease of grace: a live worker fails its own request at the deadline first
    let deadline = now
        .checked_sub_signed(chrono(request_timeout) + lease)
        .unwrap_or(chrono::NaiveDateTime::MIN);
    let late = requests::table
        .select(requests::id)
        .filter(requests::state.eq(RequestState::InProgress.as_str()))
        .filter(requests::started_at.lt(deadline))
        .order(requests::id)
        .limit(100);
    let late: Vec<i64> = crate::on!(&mut conn, c => late.load(c).await)?;
    for id in late {
        let update = PatchBody::failed(Failure::timed_out(request_timeout));
        // already final (its worker, or another api instance, got there first): nothing to do
        if let Ok(Some(RequestState::Failed)) = crate::on!(&mut conn, c => {
            crate::transaction!(c, crate::error::ApiError, async |conn| {
                apply_patch(conn, id, update, None).await
            })
        }) {
            tracing::warn!(request_id = id, "request failed: past its deadline");
        }
    }
    let silent = claim_silent(&mut conn, now, now - lease, publisher.is_in_process()).await?;
    // never hold a connection while waiting for the broker
    drop(conn);
    for (i, request) in silent.iter().enumerate() {
        if let Err(e) = publisher.publish(request.id).await {
            give_back(pool, &silent[i..], now).await;
            return Err(e.into());
        }
        tracing::warn!(
            request_id = request.id,
            worker = request.worker.as_deref().unwrap_or("?"),
            "its worker went silent; the request was handed to another"
        );
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Silent {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<diesel::sql_types::Text>)]
    worker: Option<String>,
    /// `dispatched_at` before this round marked it.
    #[diesel(sql_type = Nullable<Timestamp>)]
    previous: Option<chrono::NaiveDateTime>,
}

/// Requests in progress whose worker has not beaten since `silent_since` and that were not
/// handed over since then either: marked handed over at `now` in the statement that picks
/// them, so an instance sweeping at the same moment skips them.
///
/// SQLite: its one connection serializes the sweeps, so no row lock; its `RETURNING` cannot
/// name `FROM`'s tables (the previous `dispatched_at`), so the rows are picked, then marked, in
/// one transaction.
async fn claim_silent(
    conn: &mut impl crate::db::AsDb,
    now: chrono::NaiveDateTime,
    silent_since: chrono::NaiveDateTime,
    in_process: bool,
) -> Result<Vec<Silent>, SweepError> {
    Ok(match conn.as_db() {
        crate::db::Db::Postgres(c) => {
            diesel::sql_query(
                "WITH picked AS (\
                   SELECT id, worker, dispatched_at FROM requests \
                   WHERE state = 'in_progress' AND attempts > 0 AND heartbeat_at < $1 \
                     AND (dispatched_at IS NULL OR dispatched_at < $1) \
                   ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED) \
                 UPDATE requests r SET dispatched_at = $2, queued_in_process = $3 FROM picked WHERE r.id = picked.id \
                 RETURNING r.id, picked.worker, picked.dispatched_at AS previous",
            )
            .bind::<Timestamp, _>(silent_since)
            .bind::<Timestamp, _>(now)
            .bind::<diesel::sql_types::Bool, _>(in_process)
            .load(c)
            .await?
        }
        crate::db::Db::Sqlite(c) => {
            crate::transaction!(c, diesel::result::Error, async |c| {
                let picked: Vec<Silent> = diesel::sql_query(
                    "SELECT id, worker, dispatched_at AS previous FROM requests \
                     WHERE state = 'in_progress' AND attempts > 0 AND heartbeat_at < $1 \
                       AND (dispatched_at IS NULL OR dispatched_at < $1) \
                     ORDER BY id LIMIT 100",
                )
                .bind::<Timestamp, _>(silent_since)
                .load(c)
                .await?;
                if !picked.is_empty() {
                    let ids: Vec<i64> = picked.iter().map(|s| s.id).collect();
                    diesel::update(requests::table.filter(requests::id.eq_any(&ids)))
                        .set((
                            requests::dispatched_at.eq(now),
                            requests::queued_in_process.eq(in_process),
                        ))
                        .execute(c)
                        .await?;
                }
                Ok(picked)
            })?
        }
    })
}

/// The broker failed: requests marked but not published are swept again next round.
async fn give_back(pool: &DbPool, unpublished: &[Silent], marked_at: chrono::NaiveDateTime) {
    let result = async {
        let mut conn = pool.get().await?;
        for request in unpublished {
            let back = diesel::update(
                requests::table
                    .find(request.id)
                    .filter(requests::dispatched_at.eq(marked_at)),
            )
            .set(requests::dispatched_at.eq(request.previous));
            crate::on!(&mut conn, c => back.execute(c).await)?;
        }
        Ok::<_, SweepError>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not give back the requests the broker did not take; they are swept again after a lease");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_db::{delete_queue, jobs_waiting, TestDb, AMQP};

    const LEASE: Duration = Duration::from_secs(60);
    const DEADLINE: Duration = Duration::from_secs(3600);

    /// An api instance's publisher to `queue`.
    fn instance(queue: &str) -> Publisher {
        Publisher::new(AMQP.parse().unwrap(), queue)
    }

    async fn dispatched_at(db: &TestDb, id: i64) -> Option<chrono::NaiveDateTime> {
        let mut conn = db.pool.get().await.unwrap();
        let query = requests::table.find(id).select(requests::dispatched_at);
        crate::on!(&mut conn, c => query.first(c).await).unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn instances_sweeping_together_hand_a_silent_request_over_once() {
        let db = TestDb::new().await;
        let queue = format!("larder_sweeper_test_{}", std::process::id());
        let id = db.silent_request(chrono::Duration::hours(1)).await;
        let (one, two) = (instance(&queue), instance(&queue));
        assert!(one.check().await && two.check().await);
        for _ in 0..3 {
            let (a, b) = tokio::join!(
                sweep(&db.pool, &one, LEASE, DEADLINE),
                sweep(&db.pool, &two, LEASE, DEADLINE)
            );
            a.unwrap();
            b.unwrap();
        }
        assert_eq!(jobs_waiting(&queue).await, 1);
        assert!(dispatched_at(&db, id).await.is_some());
        delete_queue(&queue).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_request_the_broker_did_not_take_is_swept_again() {
        let db = TestDb::new().await;
        let queue = format!("larder_sweeper_retry_test_{}", std::process::id());
        let id = db.silent_request(chrono::Duration::hours(1)).await;
        let before = dispatched_at(&db, id).await;
        let unreachable = Publisher::new(
            "amqp://guest:guest@127.0.0.1:1/%2f".parse().unwrap(),
            &queue,
        );
        assert!(sweep(&db.pool, &unreachable, LEASE, DEADLINE)
            .await
            .is_err());
        assert_eq!(dispatched_at(&db, id).await, before);
        sweep(&db.pool, &instance(&queue), LEASE, DEADLINE)
            .await
            .unwrap();
        assert_eq!(jobs_waiting(&queue).await, 1);
        delete_queue(&queue).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_late_request_fails_once_whichever_instances_sweep() {
        let db = TestDb::new().await;
        let queue = format!("larder_sweeper_late_test_{}", std::process::id());
        let id = db.silent_request(chrono::Duration::hours(2)).await;
        let (one, two) = (instance(&queue), instance(&queue));
        // a deadline long past
        let (a, b) = tokio::join!(
            sweep(&db.pool, &one, LEASE, Duration::ZERO),
            sweep(&db.pool, &two, LEASE, Duration::ZERO)
        );
        a.unwrap();
        b.unwrap();
        let mut conn = db.pool.get().await.unwrap();
        let query = crate::schema::request_states::table
            .filter(crate::schema::request_states::request_id.eq(id))
            .select(crate::schema::request_states::state);
        let states: Vec<String> = crate::on!(&mut conn, c => query.load(c).await).unwrap();
        assert_eq!(states, vec!["failed".to_string()]);
        delete_queue(&queue).await;
    }
}
