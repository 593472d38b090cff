//! `larder cleanup`: requests past their lifetime become stale. Runs of it on several machines
//! at once are safe: each request is made stale under its row lock, once.

use crate::db::DbPool;
use crate::schema::requests;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// Failed requests are kept a week for debugging.
const FAILED_LIFETIME_DAYS: i64 = 7;

/// Mark expired requests stale; returns the ids of those this run made stale.
/// On an object store, also the bundles no request names (`crate::bundles::remove_unnamed`)
/// stored more than `grace` ago (longer than a request may run).
pub async fn run(
    pool: &DbPool,
    shared: &common::store::SharedStore,
    directory: &common::Store,
    lifetime_days: u32,
    grace: chrono::Duration,
) -> Result<Vec<i64>, crate::error::ApiError> {
    let mut conn = pool.get().await?;
    let now = crate::db::clock();
    let cutoff = now - chrono::Duration::days(lifetime_days as i64);
    let failed_cutoff = now - chrono::Duration::days(FAILED_LIFETIME_DAYS);
    let query = requests::table
        .select(requests::id)
        // an imported request is a record with nothing here to release: it stays as it came
        .filter(requests::imported_instance.is_null())
        .filter(
            requests::state
                .eq_any(["complete", "in_progress"])
                .and(requests::updated.lt(cutoff))
                .or(requests::state
                    .eq("failed")
                    .and(requests::updated.lt(failed_cutoff))),
        )
        .order(requests::id);
    let ids: Vec<i64> = crate::on!(&mut conn, c => query.load(c).await)?;
    drop(conn);
    let mut expired = Vec::with_capacity(ids.len());
    for id in ids {
        if crate::v1::requests::expire(pool, shared, directory, id).await? {
            tracing::info!(request_id = id, "request is now stale");
            expired.push(id);
        }
    }
    if let common::store::SharedStore::Objects(tier) = shared {
        let removed = crate::bundles::remove_unnamed(pool, tier, grace).await?;
        if removed > 0 {
            tracing::info!(
                removed,
                "bundles no request names removed from the object store"
            );
        }
    }
    if let (false, common::store::SharedStore::Directory(store)) = (expired.is_empty(), shared) {
        // recipes of the bundles those requests released last
        match store.prune_bundle_recipes() {
            Ok(pruned) => tracing::info!(pruned, "bundle recipes of removed bundles forgotten"),
            Err(e) => tracing::warn!(error = %e, "cannot forget the recipes of removed bundles"),
        }
    }
    Ok(expired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_db::TestDb;

    #[tokio::test(flavor = "multi_thread")]
    async fn cleanups_running_together_make_each_request_stale_once() {
        let db = TestDb::new().await;
        let dir = tempfile::tempdir().unwrap();
        let store = common::Store::new(dir.path());
        let shared = common::store::SharedStore::Directory(store.clone());
        let mut ids = Vec::new();
        for _ in 0..20 {
            ids.push(db.finished_request(chrono::Duration::days(3)).await);
        }
        let (a, b) = tokio::join!(
            run(&db.pool, &shared, &store, 1, chrono::Duration::hours(2)),
            run(&db.pool, &shared, &store, 1, chrono::Duration::hours(2))
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let mut expired: Vec<i64> = a.iter().chain(&b).copied().collect();
        expired.sort_unstable();
        assert_eq!(expired, ids);
        let mut conn = db.pool.get().await.unwrap();
        let query = crate::schema::request_states::table
            .filter(crate::schema::request_states::state.eq("stale"))
            .count();
        let stale: i64 = crate::on!(&mut conn, c => query.get_result(c).await).unwrap();
        assert_eq!(stale, 20);
    }
}
