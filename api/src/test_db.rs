//! A fresh PostgreSQL database for one test (the real server, as every test uses), migrated,
//! dropped when the test ends; and the real RabbitMQ's queues as tests look at them.

use crate::db::{self, DbPool};

pub struct TestDb {
    pub url: String,
    pub database: db::Database,
    pub pool: DbPool,
}

impl TestDb {
    pub async fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let url = format!(
            "postgres://postgres@127.0.0.1:5432/larder_api_test_{}_{nanos}",
            std::process::id()
        );
        let database = db::Database::Postgres(url.clone());
        let pool = db::setup(&database, 8).await.unwrap();
        Self {
            url,
            database,
            pool,
        }
    }

    /// A request in progress, claimed once `silent_for` ago by a worker not heard of since.
    pub async fn silent_request(&self, silent_for: chrono::Duration) -> i64 {
        use diesel::sql_types::Timestamp;
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        let now = chrono::Utc::now().naive_utc();
        let mut conn = self.pool.get().await.unwrap();
        diesel::sql_query(
            "INSERT INTO requests (repo, ref, pkg_managers, flags, created, state, state_reason, \
               updated, token_salt, dispatched_at, attempts, started_at, heartbeat_at, worker) \
             VALUES ('https://example.com/r.git', '0123456789abcdef0123456789abcdef01234567', \
               '{}', '{}', $2, 'in_progress', 'The request was initiated', $1, 'salt', $2, 1, $2, \
               $2, 'gone-1') RETURNING id",
        )
        .bind::<Timestamp, _>(now)
        .bind::<Timestamp, _>(now - silent_for)
        .get_result::<Id>(pg(&mut conn))
        .await
        .unwrap()
        .id
    }
}

impl TestDb {
    /// A request that completed `ago`.
    pub async fn finished_request(&self, ago: chrono::Duration) -> i64 {
        self.insert_request("complete", ago, None).await
    }

    /// A request created `ago` whose job never reached the broker.
    pub async fn undispatched_request(&self, ago: chrono::Duration) -> i64 {
        self.insert_request("in_progress", ago, None).await
    }

    async fn insert_request(
        &self,
        state: &str,
        ago: chrono::Duration,
        dispatched: Option<chrono::NaiveDateTime>,
    ) -> i64 {
        use diesel::sql_types::{Nullable, Text, Timestamp};
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        let then = chrono::Utc::now().naive_utc() - ago;
        let mut conn = self.pool.get().await.unwrap();
        diesel::sql_query(
            "INSERT INTO requests (repo, ref, pkg_managers, flags, created, state, state_reason, \
               updated, token_salt, dispatched_at) \
             VALUES ('https://example.com/r.git', '0123456789abcdef0123456789abcdef01234567', \
               '{}', '{}', $1, $2, 'as the test set it', $1, 'salt', $3) RETURNING id",
        )
        .bind::<Timestamp, _>(then)
        .bind::<Text, _>(state)
        .bind::<Nullable<Timestamp>, _>(dispatched)
        .get_result::<Id>(pg(&mut conn))
        .await
        .unwrap()
        .id
    }
}

/// An embedded SQLite database of its own, migrated, in a directory removed with it.
pub struct TestSqlite {
    _dir: tempfile::TempDir,
    pub pool: DbPool,
}

impl TestSqlite {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pool = db::setup(&db::Database::Sqlite(dir.path().join("larder.db")), 1)
            .await
            .unwrap();
        Self { _dir: dir, pool }
    }
}

/// A request `id` in `state`, created at `created`.
pub async fn insert_request(
    conn: &mut impl crate::db::AsDb,
    id: i64,
    state: &str,
    created: chrono::NaiveDateTime,
) {
    use crate::schema::requests;
    use diesel::ExpressionMethods;
    use diesel_async::RunQueryDsl;
    let none: Vec<String> = Vec::new();
    crate::on!(conn, c => {
        diesel::insert_into(requests::table)
            .values((
                requests::id.eq(id),
                requests::repo.eq(format!("https://example.com/{id}.git")),
                requests::git_ref.eq("0123456789abcdef0123456789abcdef01234567"),
                requests::pkg_managers.eq(crate::sql_types::Strings(&none)),
                requests::flags.eq(crate::sql_types::Strings(&none)),
                requests::created.eq(created),
                requests::state.eq(state),
                requests::state_reason.eq("x"),
                requests::updated.eq(created),
                requests::token_salt.eq("s"),
            ))
            .execute(c)
            .await
    })
    .unwrap();
}

/// The test database's connection (these tests run on PostgreSQL).
pub fn pg(conn: &mut db::DbConn) -> &mut diesel_async::AsyncPgConnection {
    match conn {
        db::DbConn::Postgres(c) => c,
        db::DbConn::Sqlite(_) => unreachable!("TestDb is PostgreSQL"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let url = self.url.clone();
        // Drop may run inside the test's runtime: drop the database on a thread with its own
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(db::drop_database(&url))
        })
        .join();
    }
}

/// The RabbitMQ every test uses.
pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

async fn broker_channel() -> lapin::Channel {
    let conn = lapin::Connection::connect(AMQP, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    conn.create_channel().await.unwrap()
}

/// The jobs waiting in `queue`.
pub async fn jobs_waiting(queue: &str) -> u32 {
    let declared = broker_channel()
        .await
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    declared.message_count()
}

pub async fn delete_queue(queue: &str) {
    let _ = broker_channel()
        .await
        .queue_delete(queue.into(), Default::default())
        .await;
}
