//! The database check behind `/healthz` and `/api/v1/status`: a background task with a
//! connection of its own, so that a saturated pool can neither delay nor fail the answer, and a
//! hung database makes it report failure instead of hanging.

use crate::db::{Connection, Database};
use diesel_async::RunQueryDsl;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the database is checked.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// One check (connecting if needed, then `SELECT 1`) fails after this long.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// The database counts as reachable while its last successful check is this recent.
const FRESHNESS: Duration = Duration::from_secs(5);

pub struct DatabaseHealth {
    database: Database,
    last_ok: Mutex<Option<Instant>>,
}

impl DatabaseHealth {
    pub fn new(database: &Database) -> Self {
        Self {
            database: database.clone(),
            last_ok: Mutex::new(None),
        }
    }

    /// Whether the database answered recently. Never waits for the database.
    pub fn is_ok(&self) -> bool {
        self.last_ok
            .lock()
            .expect("never poisoned: no code panics while holding it")
            .is_some_and(|at| at.elapsed() < FRESHNESS)
    }

    /// Check once on `conn` (opened, or re-opened after a failure, as needed).
    pub async fn check(&self, conn: &mut Option<Connection>) -> bool {
        let attempt = async {
            if conn.is_none() {
                *conn = Some(
                    crate::db::connect(&self.database)
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            let conn = conn.as_mut().expect("opened above");
            crate::on!(conn, c => diesel::sql_query(crate::sql!(
                postgres: "SELECT 1",
                // reads the file (a bare SELECT would not)
                sqlite: "SELECT count(*) FROM sqlite_schema",
            ))
            .execute(c)
            .await)
            .map_err(|e| e.to_string())
        };
        let failure = match tokio::time::timeout(CHECK_TIMEOUT, attempt).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some("no answer in time".to_string()),
        };
        match failure {
            None => {
                *self
                    .last_ok
                    .lock()
                    .expect("never poisoned: no code panics while holding it") =
                    Some(Instant::now());
                true
            }
            Some(error) => {
                tracing::warn!(%error, "the database health check failed");
                *conn = None;
                false
            }
        }
    }

    /// Forever: check the database every second.
    pub async fn run(self: std::sync::Arc<Self>, mut conn: Option<Connection>) {
        let mut interval = tokio::time::interval(CHECK_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            self.check(&mut conn).await;
        }
    }
}
