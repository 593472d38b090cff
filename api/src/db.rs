//! Database connection pool, creation of the database, and migrations.

use diesel::prelude::*;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

pub type DbPool = Pool<AsyncPgConnection>;
pub type DbConn = Object<AsyncPgConnection>;

#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("invalid database URL {0:?}")]
    InvalidUrl(String),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("migrations failed: {0}")]
    Migrations(String),
    #[error("connection pool error: {0}")]
    Pool(String),
}

/// Split a PostgreSQL URL into the URL of the `postgres` maintenance database and the name of
/// the database it names.
pub fn maintenance_url(database_url: &str) -> Result<(String, String), DbSetupError> {
    let mut url =
        url::Url::parse(database_url).map_err(|_| DbSetupError::InvalidUrl(database_url.into()))?;
    let name = url.path().trim_start_matches('/').to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(DbSetupError::InvalidUrl(database_url.into()));
    }
    url.set_path("/postgres");
    Ok((url.to_string(), name))
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

/// Create the database if it does not exist yet.
pub async fn create_database(database_url: &str) -> Result<(), DbSetupError> {
    let (admin_url, name) = maintenance_url(database_url)?;
    let mut conn = AsyncPgConnection::establish(&admin_url).await?;
    let found: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<diesel::sql_types::Text, _>(&name)
            .get_result(&mut conn)
            .await?;
    if !found.exists {
        match diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created the database"),
            // Another process created it at the same moment (caught by the check of the name,
            // or by the unique index of the catalogue if both got past the check).
            Err(diesel::result::Error::DatabaseError(kind, info))
                if info.message().contains("already exists")
                    || matches!(kind, diesel::result::DatabaseErrorKind::UniqueViolation) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Drop a database (tests use one per test).
pub async fn drop_database(database_url: &str) -> Result<(), DbSetupError> {
    let (admin_url, name) = maintenance_url(database_url)?;
    let mut conn = AsyncPgConnection::establish(&admin_url).await?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// The advisory lock (`pg_advisory_lock`) held while migrating: api instances starting
/// together migrate one after the other, and the later ones find nothing left to do.
const MIGRATION_LOCK: i64 = 0x6c61_7264_6572_0001;

/// Apply pending migrations. Needs the multi-threaded tokio runtime.
pub async fn migrate(database_url: &str) -> Result<Vec<String>, DbSetupError> {
    let mut conn = AsyncPgConnection::establish(database_url).await?;
    // held by this connection until it closes, with the harness
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
        .execute(&mut conn)
        .await?;
    let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| DbSetupError::Migrations(e.to_string()))?
        .into_iter()
        .map(|v| v.to_string())
        .collect();
    Ok(applied)
}

/// How long a handler waits for a free pooled connection before the api answers 503: a burst
/// queues for this long at most instead of piling up without end.
pub const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(2);
/// Opening a new connection, and checking an idle one before it is handed out again.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A bounded pool: at most `size` connections; waiting for one, opening one and recycling one
/// all time out (a timeout is answered 503, see `error.rs`).
pub fn pool(database_url: &str, size: usize) -> Result<DbPool, DbSetupError> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(database_url);
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(POOL_WAIT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbSetupError::Pool(e.to_string()))
}

/// Create, migrate and connect with a pool of `pool_size` connections.
pub async fn setup(database_url: &str, pool_size: usize) -> Result<DbPool, DbSetupError> {
    create_database(database_url).await?;
    let applied = migrate(database_url).await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "applied migrations");
    }
    pool(database_url, pool_size)
}

/// The database's clock (UTC), at this statement (not the transaction's start: a heartbeat that
/// waited for a row lock is as late as it is): what every api instance judges a worker's
/// silence and a dispatch's lease by, so that instances whose clocks disagree agree.
pub async fn now<C>(conn: &mut C) -> diesel::QueryResult<chrono::NaiveDateTime>
where
    C: diesel_async::AsyncConnection<Backend = diesel::pg::Pg>,
{
    use diesel_async::RunQueryDsl;
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Timestamp>(
        "(statement_timestamp() AT TIME ZONE 'UTC')",
    ))
    .get_result(conn)
    .await
}
