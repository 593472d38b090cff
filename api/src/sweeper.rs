//! The lease sweeper: a request whose worker went silent (no heartbeat within
//! `LARDER_HEARTBEAT_TIMEOUT`) is published again for another worker to take over, and a request
//! past its deadline (`LARDER_REQUEST_TIMEOUT` after its first claim) fails, even when no worker
//! is left to fail it. Every api instance runs it; each step is idempotent.

use crate::db::DbPool;
use crate::publisher::{PublishError, Publisher};
use crate::schema::requests;
use crate::v1::requests::{apply_patch, PatchBody};
use common::{Config, Failure, RequestState};
use diesel::prelude::*;
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
        if let Err(e) = sweep(&pool, &publisher, &config).await {
            tracing::debug!(error = %e, "lease sweeper could not run");
        }
    }
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

async fn sweep(pool: &DbPool, publisher: &Publisher, config: &Config) -> Result<(), SweepError> {
    let now = chrono::Utc::now().naive_utc();
    let lease = chrono(config.heartbeat_timeout);
    let mut conn = pool.get().await?;
    // one lease of grace: a live worker fails its own request at the deadline first
    let deadline = now
        .checked_sub_signed(chrono(config.request_timeout) + lease)
        .unwrap_or(chrono::NaiveDateTime::MIN);
    let late: Vec<i64> = requests::table
        .select(requests::id)
        .filter(requests::state.eq(RequestState::InProgress.as_str()))
        .filter(requests::started_at.lt(deadline))
        .order(requests::id)
        .limit(100)
        .load(&mut conn)
        .await?;
    for id in late {
        let update = PatchBody::failed(Failure::timed_out(config.request_timeout));
        // already final (its worker got there first): nothing to do
        if conn
            .transaction::<_, crate::error::ApiError, _>(async |conn| {
                apply_patch(conn, id, update, None).await
            })
            .await
            .is_ok()
        {
            tracing::warn!(request_id = id, "request failed: past its deadline");
        }
    }
    let silent_since = now - lease;
    let silent: Vec<(i64, Option<String>)> = requests::table
        .select((requests::id, requests::worker))
        .filter(requests::state.eq(RequestState::InProgress.as_str()))
        .filter(requests::attempts.gt(0))
        .filter(requests::heartbeat_at.lt(silent_since))
        .filter(
            requests::dispatched_at
                .is_null()
                .or(requests::dispatched_at.lt(silent_since)),
        )
        .order(requests::id)
        .limit(100)
        .load(&mut conn)
        .await?;
    // never hold a connection while waiting for the broker
    drop(conn);
    for (id, worker) in silent {
        publisher.publish(id).await?;
        tracing::warn!(
            request_id = id,
            worker = worker.as_deref().unwrap_or("?"),
            "its worker went silent; the request was handed to another"
        );
        let mut conn = pool.get().await?;
        diesel::update(requests::table.find(id))
            .set(requests::dispatched_at.eq(diesel::dsl::now))
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}
