//! The database: PostgreSQL (`LARDER_DATABASE_URL`) or the embedded SQLite file in the data
//! directory (unset); its pool, creation and migrations. Every query is written once and
//! compiled for both backends by [`on!`].

use diesel::prelude::*;
use diesel::SqliteConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");

/// SQLite's connection, run on tokio's blocking threads.
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

/// Which database: a PostgreSQL URL, or the embedded SQLite file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    Postgres(String),
    Sqlite(PathBuf),
}

impl Database {
    /// `LARDER_DATABASE_URL` if set (`postgres://…`, or `sqlite:///absolute/path` for a file of
    /// one's choosing), else `larder.db` in the data directory.
    pub fn from_config(url: Option<&str>, data_dir: &Path) -> Result<Self, DbSetupError> {
        match url.map(str::trim).filter(|u| !u.is_empty()) {
            None => Ok(Self::Sqlite(data_dir.join("larder.db"))),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Ok(Self::Postgres(u.to_string()))
            }
            Some(u) => match u.strip_prefix("sqlite://") {
                Some(path) if Path::new(path).is_absolute() => Ok(Self::Sqlite(path.into())),
                _ => Err(DbSetupError::InvalidUrl(u.to_string())),
            },
        }
    }

    /// What logs and pages name: the URL without its password, or the file.
    pub fn describe(&self) -> String {
        match self {
            Self::Postgres(url) => match url::Url::parse(url) {
                Ok(mut u) => {
                    let _ = u.set_password(None);
                    u.to_string()
                }
                Err(_) => "postgres".into(),
            },
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
        }
    }

    /// For a command that works on an existing database's records (`cleanup`, `export`): an
    /// SQLite file that is not there is an error, not a new empty database.
    pub fn existing(self) -> Result<Self, DbSetupError> {
        match &self {
            Self::Sqlite(path) if !path.exists() => Err(DbSetupError::Missing(path.clone())),
            _ => Ok(self),
        }
    }

    /// Which kind, as pages name it (not where: that is the operator's).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "PostgreSQL",
            Self::Sqlite(_) => "SQLite (embedded)",
        }
    }

    /// The configuration's database.
    pub fn of(config: &common::config::Config) -> Result<Self, DbSetupError> {
        Self::from_config(config.database_url.as_deref(), &config.data_dir)
    }
}

/// A pool of connections to either database.
#[derive(Clone)]
pub enum DbPool {
    Postgres(Pool<AsyncPgConnection>),
    Sqlite(Pool<SqliteConn>),
}

/// A connection taken from a [`DbPool`]. (Not boxed: one lives on a handler's stack while it
/// runs, and PostgreSQL's is the one deployments of many run.)
#[allow(clippy::large_enum_variant)]
pub enum DbConn {
    Postgres(Object<AsyncPgConnection>),
    Sqlite(Object<SqliteConn>),
}

impl DbPool {
    pub async fn get(
        &self,
    ) -> Result<DbConn, diesel_async::pooled_connection::deadpool::PoolError> {
        Ok(match self {
            Self::Postgres(p) => DbConn::Postgres(p.get().await?),
            Self::Sqlite(p) => DbConn::Sqlite(p.get().await?),
        })
    }

    pub fn status(&self) -> deadpool::Status {
        match self {
            Self::Postgres(p) => p.status(),
            Self::Sqlite(p) => p.status(),
        }
    }
}

/// A connection of either backend, borrowed: what [`on!`] matches on.
pub enum Db<'a> {
    Postgres(&'a mut AsyncPgConnection),
    Sqlite(&'a mut SqliteConn),
}

/// Anything a query can run on: a pooled connection, a connection of either backend (as a
/// transaction's closure gets it), or a [`Db`].
pub trait AsDb: Send {
    fn as_db(&mut self) -> Db<'_>;
}

impl AsDb for AsyncPgConnection {
    fn as_db(&mut self) -> Db<'_> {
        Db::Postgres(self)
    }
}

impl AsDb for SqliteConn {
    fn as_db(&mut self) -> Db<'_> {
        Db::Sqlite(self)
    }
}

impl AsDb for DbConn {
    fn as_db(&mut self) -> Db<'_> {
        match self {
            Self::Postgres(c) => Db::Postgres(c),
            Self::Sqlite(c) => Db::Sqlite(c),
        }
    }
}

impl AsDb for Db<'_> {
    fn as_db(&mut self) -> Db<'_> {
        match self {
            Self::Postgres(c) => Db::Postgres(c),
            Self::Sqlite(c) => Db::Sqlite(c),
        }
    }
}

impl<T: AsDb + ?Sized> AsDb for &mut T {
    fn as_db(&mut self) -> Db<'_> {
        (**self).as_db()
    }
}

/// `on!(conn, c => body)`: `body` compiled for each backend with `c` that backend's
/// connection (`&mut AsyncPgConnection` or `&mut SqliteConn`), run for the one `conn` is.
/// One query text, two backends; where SQL must differ, [`sql!`] picks the text.
#[macro_export]
macro_rules! on {
    ($conn:expr, $c:ident => $body:expr) => {
        match $crate::db::AsDb::as_db($conn) {
            $crate::db::Db::Postgres($c) => {
                #[allow(unused)]
                const SQLITE: bool = false;
                $body
            }
            $crate::db::Db::Sqlite($c) => {
                #[allow(unused)]
                const SQLITE: bool = true;
                $body
            }
        }
    };
}

/// `transaction!(c, E, async |conn| …)`: `c.transaction` as diesel runs it, except that SQLite's
/// outermost transaction begins IMMEDIATE (its write lock taken at `BEGIN`): a deferred one
/// that read before another process (`larder cleanup`, `export`) committed would fail at its
/// first write at once, where an immediate one waits its turn (`busy_timeout`).
#[macro_export]
macro_rules! transaction {
    ($c:expr, $e:ty, $f:expr) => {
        async {
            let c = $c;
            let outer = $crate::db::WriteLock::begin_immediate(&mut *c)
                .await
                .map_err(<$e>::from)?;
            let result = c.transaction::<_, $e, _>($f).await;
            if outer {
                let ended = $crate::db::WriteLock::end_immediate(&mut *c, result.is_ok()).await;
                if let (Ok(_), Err(e)) = (&result, ended) {
                    return Err(<$e>::from(e));
                }
            }
            result
        }
        .await
    };
}

/// What [`transaction!`] needs of a connection: SQLite's immediate outer transaction (nothing
/// on PostgreSQL, whose row locks serialize writers).
pub trait WriteLock {
    /// Begins an immediate transaction when none is open; whether it did.
    fn begin_immediate(&mut self) -> impl std::future::Future<Output = QueryResult<bool>> + Send;
    /// Commits (or rolls back) what [`WriteLock::begin_immediate`] began.
    fn end_immediate(
        &mut self,
        commit: bool,
    ) -> impl std::future::Future<Output = QueryResult<()>> + Send;
}

impl WriteLock for AsyncPgConnection {
    async fn begin_immediate(&mut self) -> QueryResult<bool> {
        Ok(false)
    }

    async fn end_immediate(&mut self, _commit: bool) -> QueryResult<()> {
        Ok(())
    }
}

impl WriteLock for SqliteConn {
    fn begin_immediate(&mut self) -> impl std::future::Future<Output = QueryResult<bool>> + Send {
        use diesel::connection::{AnsiTransactionManager, TransactionManager};
        self.spawn_blocking(|inner| {
            let open = AnsiTransactionManager::transaction_manager_status_mut(inner)
                .transaction_depth()?
                .is_some();
            if open {
                return Ok(false);
            }
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
            Ok(true)
        })
    }

    fn end_immediate(
        &mut self,
        commit: bool,
    ) -> impl std::future::Future<Output = QueryResult<()>> + Send {
        use diesel::connection::{AnsiTransactionManager, TransactionManager};
        self.spawn_blocking(move |inner| {
            if commit {
                AnsiTransactionManager::commit_transaction(inner)
            } else {
                AnsiTransactionManager::rollback_transaction(inner)
            }
        })
    }
}

/// Inside [`on!`]: PostgreSQL's text, or SQLite's.
#[macro_export]
macro_rules! sql {
    (postgres: $pg:expr, sqlite: $lite:expr $(,)?) => {
        if SQLITE {
            $lite
        } else {
            $pg
        }
    };
}

#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("invalid database URL {0:?}")]
    InvalidUrl(String),
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("cannot create the database's directory {0}: {1}")]
    Directory(PathBuf, std::io::Error),
    #[error("another `larder serve` or `larder api` uses {0}: an SQLite database serves one process (give several a PostgreSQL with LARDER_DATABASE_URL)")]
    Taken(PathBuf),
    #[error("no database at {0}: LARDER_DATABASE_URL is unset and LARDER_DATA_DIR holds no larder.db (run this where `larder serve` keeps its data, or set LARDER_DATABASE_URL)")]
    Missing(PathBuf),
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
pub async fn migrate(database: &Database) -> Result<Vec<String>, DbSetupError> {
    let applied = match database {
        Database::Postgres(url) => {
            let mut conn = AsyncPgConnection::establish(url).await?;
            // held by this connection until it closes, with the harness
            diesel::sql_query("SELECT pg_advisory_lock($1)")
                .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
                .execute(&mut conn)
                .await?;
            let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
            harness
                .run_pending_migrations(MIGRATIONS)
                .map_err(|e| DbSetupError::Migrations(e.to_string()))?
                .into_iter()
                .map(|v| v.to_string())
                .collect()
        }
        Database::Sqlite(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                // processes starting together migrate one after the other (diesel reads what
                // is pending outside a transaction): a lock file beside the database, released
                // when this returns
                let lock = lock_beside(&path, "migrate-lock", true)
                    .map_err(|(lock_path, e)| DbSetupError::Directory(lock_path, e))?;
                let mut conn =
                    <SqliteConnection as diesel::Connection>::establish(&sqlite_url(&path))?;
                diesel::connection::SimpleConnection::batch_execute(&mut conn, SQLITE_PRAGMAS)?;
                let applied = conn
                    .run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|applied| applied.into_iter().map(|v| v.to_string()).collect())
                    .map_err(|e| DbSetupError::Migrations(e.to_string()));
                drop(lock);
                applied
            })
            .await
            .map_err(|e| DbSetupError::Migrations(e.to_string()))??
        }
    };
    Ok(applied)
}

/// Every SQLite connection: the write-ahead log (readers never wait for the writer; with
/// `synchronous = NORMAL` a crash of the process loses nothing and a power cut at most the last
/// commits, the trade PostgreSQL's `synchronous_commit = off` makes for logs and progress),
/// foreign keys enforced as PostgreSQL's are, and a writer waits for another instead of failing
/// at once.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;";

fn sqlite_url(path: &Path) -> String {
    path.display().to_string()
}

/// How long a handler waits for a free pooled connection before the api answers 503: a burst
/// queues for this long at most instead of piling up without end.
pub const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(2);
/// Opening a new connection, and checking an idle one before it is handed out again.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite has one writer at a time; one connection makes every transaction wait its turn in
/// the pool (a second connection's deferred transaction could find the database changed under
/// it and fail). A longer wait than PostgreSQL's: every handler shares the one connection.
pub const SQLITE_POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A bounded pool: at most `size` connections (SQLite: one); waiting for one, opening one and
/// recycling one all time out (a timeout is answered 503, see `error.rs`).
pub fn pool(database: &Database, size: usize) -> Result<DbPool, DbSetupError> {
    match database {
        Database::Postgres(url) => {
            let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
            Pool::builder(manager)
                .max_size(size)
                .wait_timeout(Some(POOL_WAIT_TIMEOUT))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .recycle_timeout(Some(CONNECT_TIMEOUT))
                .runtime(deadpool::Runtime::Tokio1)
                .build()
                .map(DbPool::Postgres)
                .map_err(|e| DbSetupError::Pool(e.to_string()))
        }
        Database::Sqlite(path) => {
            let mut config = ManagerConfig::default();
            config.custom_setup = Box::new(|url| {
                Box::pin(async move {
                    let mut conn = SqliteConn::establish(url).await?;
                    conn.batch_execute(SQLITE_PRAGMAS)
                        .await
                        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                    Ok(conn)
                })
            });
            let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(
                sqlite_url(path),
                config,
            );
            Pool::builder(manager)
                .max_size(1)
                .wait_timeout(Some(SQLITE_POOL_WAIT_TIMEOUT))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .recycle_timeout(Some(CONNECT_TIMEOUT))
                .runtime(deadpool::Runtime::Tokio1)
                .build()
                .map(DbPool::Sqlite)
                .map_err(|e| DbSetupError::Pool(e.to_string()))
        }
    }
}

/// Create the database if it does not exist yet: PostgreSQL's on its server, SQLite's
/// directory (the file is created by its first connection).
pub async fn create(database: &Database) -> Result<(), DbSetupError> {
    match database {
        Database::Postgres(url) => create_database(url).await,
        Database::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| DbSetupError::Directory(dir.to_path_buf(), e))?;
            }
            Ok(())
        }
    }
}

/// Create, migrate and connect with a pool of `pool_size` connections.
pub async fn setup(database: &Database, pool_size: usize) -> Result<DbPool, DbSetupError> {
    create(database).await?;
    let applied = migrate(database).await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "applied migrations");
    }
    pool(database, pool_size)
}

/// This process's clock (UTC) to the microsecond, as PostgreSQL keeps timestamps: SQLite keeps
/// what it is given, and an instant the API prints to the microsecond must find itself again.
pub fn clock() -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    chrono::Utc::now().naive_utc().trunc_subsecs(6)
}

/// The database's clock (UTC), at this statement (not the transaction's start: a heartbeat that
/// waited for a row lock is as late as it is): what every api instance judges a worker's
/// silence and a dispatch's lease by, so that instances whose clocks disagree agree. SQLite's
/// is this process's (the one process it serves), to the microsecond as PostgreSQL's.
pub async fn now(conn: &mut impl AsDb) -> diesel::QueryResult<chrono::NaiveDateTime> {
    match conn.as_db() {
        Db::Postgres(c) => {
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Timestamp>(
                "(statement_timestamp() AT TIME ZONE 'UTC')",
            ))
            .get_result(c)
            .await
        }
        Db::Sqlite(_) => Ok(clock()),
    }
}

/// The lock the one server process of an SQLite database holds while it runs (a `flock` on a
/// file beside it, released by the kernel however the process ends): a second `serve` or `api`
/// on the file is refused (`cleanup`, `export`, `import` beside it are fine: they take turns
/// in SQLite's own locks). PostgreSQL has none: many api instances share it.
pub struct ServerLock(#[allow(dead_code)] Option<std::fs::File>);

pub fn lock_server(database: &Database) -> Result<ServerLock, DbSetupError> {
    let Database::Sqlite(path) = database else {
        return Ok(ServerLock(None));
    };
    match lock_beside(path, "server-lock", false) {
        Ok(Some(file)) => Ok(ServerLock(Some(file))),
        Ok(None) => Err(DbSetupError::Taken(path.clone())),
        Err((lock_path, e)) => Err(DbSetupError::Directory(lock_path, e)),
    }
}

/// A `flock` on the file `what` beside the SQLite database `path` (created if missing), held
/// until the returned file closes, however the process ends. `wait`: until it is free; else
/// `None` while another holds it.
pub fn lock_beside(
    path: &Path,
    what: &str,
    wait: bool,
) -> Result<Option<std::fs::File>, (PathBuf, std::io::Error)> {
    let lock_path = path.with_extension(what);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| (lock_path.clone(), e))?;
    if wait {
        return file.lock().map(|()| Some(file)).map_err(|e| (lock_path, e));
    }
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err((lock_path, e)),
    }
}

/// A connection of its own, outside the pool (the health check's, the queue lock's).
#[allow(clippy::large_enum_variant)]
pub enum Connection {
    Postgres(AsyncPgConnection),
    Sqlite(SqliteConn),
}

impl AsDb for Connection {
    fn as_db(&mut self) -> Db<'_> {
        match self {
            Self::Postgres(c) => Db::Postgres(c),
            Self::Sqlite(c) => Db::Sqlite(c),
        }
    }
}

pub async fn connect(database: &Database) -> Result<Connection, diesel::ConnectionError> {
    match database {
        Database::Postgres(url) => Ok(Connection::Postgres(
            AsyncPgConnection::establish(url).await?,
        )),
        Database::Sqlite(path) => {
            let mut conn = SqliteConn::establish(&sqlite_url(path)).await?;
            conn.batch_execute(SQLITE_PRAGMAS)
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(Connection::Sqlite(conn))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One server process per SQLite file; the next once it is gone. None for PostgreSQL.
    #[test]
    fn an_sqlite_database_has_one_server() {
        let dir = tempfile::tempdir().unwrap();
        let database = Database::Sqlite(dir.path().join("larder.db"));
        let first = lock_server(&database).unwrap();
        assert!(matches!(
            lock_server(&database),
            Err(DbSetupError::Taken(_))
        ));
        drop(first);
        lock_server(&database).unwrap();
        let postgres = Database::Postgres("postgres://localhost/x".into());
        let (_a, _b) = (
            lock_server(&postgres).unwrap(),
            lock_server(&postgres).unwrap(),
        );
    }

    /// Two processes on one SQLite file (two pools here): a transaction that read, then saw the
    /// other commit a write, still writes (its turn was taken at BEGIN: the other's write
    /// waited for it). A deferred transaction fails there at once ("database is locked").
    #[tokio::test(flavor = "multi_thread")]
    async fn an_sqlite_transaction_that_read_still_writes_when_another_process_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let database = Database::Sqlite(dir.path().join("larder.db"));
        let (serve, cleanup) = (
            setup(&database, 1).await.unwrap(),
            setup(&database, 1).await.unwrap(),
        );
        let (read, read_done) = tokio::sync::oneshot::channel::<()>();
        let other = tokio::spawn(async move {
            read_done.await.unwrap();
            let mut conn = cleanup.get().await.unwrap();
            crate::on!(&mut conn, c => diesel::sql_query(
                "INSERT INTO service_counters (name, value) VALUES ('other', 1)",
            )
            .execute(c)
            .await)
        });
        let mut read = Some(read);
        let mut conn = serve.get().await.unwrap();
        let written: QueryResult<usize> = crate::on!(&mut conn, c => crate::transaction!(
            c,
            diesel::result::Error,
            async |c| {
                diesel::sql_query("SELECT count(*) FROM service_counters")
                    .execute(c)
                    .await?;
                read.take().unwrap().send(()).unwrap();
                // the other process writes meanwhile
                tokio::time::sleep(Duration::from_millis(300)).await;
                diesel::sql_query("INSERT INTO service_counters (name, value) VALUES ('this', 1)")
                    .execute(c)
                    .await
            }
        ));
        assert_eq!(written.unwrap(), 1);
        assert_eq!(
            other.await.unwrap().unwrap(),
            1,
            "the other's write waited its turn"
        );
    }
}
