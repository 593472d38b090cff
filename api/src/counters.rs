//! Counters of the whole deployment, kept in the database (`service_counters`) so that
//! `/metrics` reports the same totals from every api instance, and across restarts. An instance
//! counts in memory and adds what it counted to the row every [`FLUSH_INTERVAL`]; what it
//! counted since is added to what it reports, so its own numbers show at once. Another
//! instance sees them within the interval; an instance that dies loses at most that much.

use crate::db::DbPool;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("database unavailable: {0}")]
    Pool(#[from] diesel_async::pooled_connection::deadpool::PoolError),
}

pub struct SharedCounter {
    name: &'static str,
    /// Counted here and not yet added to the row.
    unflushed: Arc<AtomicU64>,
    /// Held while moving `unflushed` to the row and while reading the total, so a total never
    /// counts a flushed amount twice or not at all.
    moving: tokio::sync::Mutex<()>,
}

#[derive(diesel::QueryableByName)]
struct Value {
    #[diesel(sql_type = BigInt)]
    value: i64,
}

impl SharedCounter {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            unflushed: Arc::new(AtomicU64::new(0)),
            moving: tokio::sync::Mutex::new(()),
        }
    }

    pub fn add(&self, n: u64) {
        self.unflushed.fetch_add(n, Ordering::Relaxed);
    }

    /// What a response streamed later adds to.
    pub fn counting(&self) -> Arc<AtomicU64> {
        self.unflushed.clone()
    }

    /// Add what this instance counted to the row.
    pub async fn flush(&self, pool: &DbPool) -> Result<(), CounterError> {
        let _moving = self.moving.lock().await;
        let counted = self.unflushed.swap(0, Ordering::Relaxed);
        if counted == 0 {
            return Ok(());
        }
        let added = async {
            let mut conn = pool.get().await?;
            // the same upsert in both (SQLite has `ON CONFLICT … DO UPDATE` and `excluded`)
            let add = diesel::sql_query(
                "INSERT INTO service_counters (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET value = service_counters.value + EXCLUDED.value",
            )
            .bind::<Text, _>(self.name)
            .bind::<BigInt, _>(i64::try_from(counted).unwrap_or(i64::MAX));
            crate::on!(&mut conn, c => add.execute(c).await)?;
            Ok::<_, CounterError>(())
        }
        .await;
        if added.is_err() {
            self.unflushed.fetch_add(counted, Ordering::Relaxed);
        }
        added
    }

    /// The deployment's total: the row and what this instance counted since its last flush.
    pub async fn total(&self, pool: &DbPool) -> Result<u64, CounterError> {
        let _moving = self.moving.lock().await;
        let mut conn = pool.get().await?;
        let query = diesel::sql_query("SELECT value FROM service_counters WHERE name = $1")
            .bind::<Text, _>(self.name);
        let stored: Option<Value> = match crate::on!(&mut conn, c => query.get_result(c).await) {
            Ok(row) => Some(row),
            Err(diesel::result::Error::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let stored = stored.map_or(0, |row| u64::try_from(row.value).unwrap_or(0));
        Ok(stored + AtomicU64::load(&self.unflushed, Ordering::Relaxed))
    }
}

/// Forever, every [`FLUSH_INTERVAL`].
pub async fn run(counter: Arc<SharedCounter>, pool: DbPool) {
    loop {
        tokio::time::sleep(FLUSH_INTERVAL).await;
        if let Err(e) = counter.flush(&pool).await {
            tracing::debug!(counter = counter.name, error = %e, "could not store a counter; it is added next time");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_db::TestDb;

    #[tokio::test(flavor = "multi_thread")]
    async fn every_instance_reports_the_total_of_all() {
        let db = TestDb::new().await;
        let (one, two) = (SharedCounter::new("served"), SharedCounter::new("served"));
        one.add(100);
        two.add(20);
        // each sees its own at once
        assert_eq!(one.total(&db.pool).await.unwrap(), 100);
        assert_eq!(two.total(&db.pool).await.unwrap(), 20);
        one.flush(&db.pool).await.unwrap();
        two.flush(&db.pool).await.unwrap();
        assert_eq!(one.total(&db.pool).await.unwrap(), 120);
        assert_eq!(two.total(&db.pool).await.unwrap(), 120);
        // an instance that starts later (or again) reports the total too
        let three = SharedCounter::new("served");
        three.counting().fetch_add(1, Ordering::Relaxed);
        assert_eq!(three.total(&db.pool).await.unwrap(), 121);
        assert_eq!(
            SharedCounter::new("other").total(&db.pool).await.unwrap(),
            0
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_total_read_while_flushing_never_goes_back() {
        let db = TestDb::new().await;
        let counter = Arc::new(SharedCounter::new("served"));
        let flushing = {
            let (counter, pool) = (counter.clone(), db.pool.clone());
            tokio::spawn(async move {
                for _ in 0..50 {
                    counter.add(1);
                    counter.flush(&pool).await.unwrap();
                }
            })
        };
        let mut last = 0;
        while !flushing.is_finished() {
            let total = counter.total(&db.pool).await.unwrap();
            assert!(total >= last, "{total} after {last}");
            last = total;
        }
        flushing.await.unwrap();
        assert_eq!(counter.total(&db.pool).await.unwrap(), 50);
    }
}
