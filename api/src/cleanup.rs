//! `larder cleanup`: requests past their lifetime become stale.

use crate::db::DbPool;
use crate::schema::requests;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// Failed requests are kept a week for debugging.
const FAILED_LIFETIME_DAYS: i64 = 7;

/// Mark expired requests stale; returns their ids.
pub async fn run(
    pool: &DbPool,
    store: &common::Store,
    lifetime_days: u32,
) -> Result<Vec<i64>, crate::error::ApiError> {
    let mut conn = pool.get().await?;
    let now = chrono::Utc::now().naive_utc();
    let cutoff = now - chrono::Duration::days(lifetime_days as i64);
    let failed_cutoff = now - chrono::Duration::days(FAILED_LIFETIME_DAYS);
    let ids: Vec<i64> = requests::table
        .select(requests::id)
        .filter(
            requests::state
                .eq_any(["complete", "in_progress"])
                .and(requests::updated.lt(cutoff))
                .or(requests::state
                    .eq("failed")
                    .and(requests::updated.lt(failed_cutoff))),
        )
        .order(requests::id)
        .load(&mut conn)
        .await?;
    for id in &ids {
        crate::v1::requests::expire(&mut conn, store, *id).await?;
        tracing::info!(request_id = id, "request is now stale");
    }
    if !ids.is_empty() {
        // recipes of the bundles those requests released last
        match store.prune_bundle_recipes() {
            Ok(pruned) => tracing::info!(pruned, "bundle recipes of removed bundles forgotten"),
            Err(e) => tracing::warn!(error = %e, "cannot forget the recipes of removed bundles"),
        }
    }
    Ok(ids)
}
