//! The dependency search index of requests reported before it existed: the migration that made
//! `request_dependencies_backfill` listed them, and this job indexes them from their stored
//! packages data, one request a transaction (`FOR UPDATE SKIP LOCKED`: several api instances
//! share the work), until the list is empty. Every api instance runs it once at start.

use crate::db::DbPool;
use crate::error::ApiError;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};

#[derive(diesel::QueryableByName)]
struct Pending {
    #[diesel(sql_type = BigInt)]
    request_id: i64,
    #[diesel(sql_type = Text)]
    packages_data: String,
}

/// Index every listed request; a request whose stored data no longer reads is dropped from
/// the list with a warning (it stays unsearchable, as it was).
pub async fn run(pool: DbPool) {
    let mut indexed = 0usize;
    loop {
        match index_one(&pool).await {
            Ok(Some(_)) => indexed += 1,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "the search backfill stopped; it resumes at the next start");
                return;
            }
        }
    }
    if indexed > 0 {
        tracing::info!(
            requests = indexed,
            "earlier requests added to the dependency search"
        );
    }
}

/// Index one listed request; `None` when none is left.
async fn index_one(pool: &DbPool) -> Result<Option<i64>, ApiError> {
    let mut conn = pool.get().await?;
    crate::on!(&mut conn, c => crate::transaction!(c, ApiError, async |conn| {
        // SQLite: no row lock (its one connection serializes the work); the stored JSONB read
        // back as JSON text
        let pending: Option<Pending> = diesel::sql_query(crate::sql!(
            postgres: "SELECT b.request_id, r.packages_data::text AS packages_data \
             FROM request_dependencies_backfill b JOIN requests r ON r.id = b.request_id \
             ORDER BY b.request_id LIMIT 1 FOR UPDATE OF b SKIP LOCKED",
            sqlite: "SELECT b.request_id, json(r.packages_data) AS packages_data \
             FROM request_dependencies_backfill b JOIN requests r ON r.id = b.request_id \
             ORDER BY b.request_id LIMIT 1",
        ))
        .get_result(conn)
        .await
        .map(Some)
        .or_else(|e| match e {
            diesel::result::Error::NotFound => Ok(None),
            e => Err(e),
        })?;
        let Some(pending) = pending else {
            return Ok(None);
        };
        let id = pending.request_id;
        let body = pending.packages_data.into_bytes();
        match tokio::task::spawn_blocking(move || crate::v1::files::dependency_index_of(body))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
        {
            Ok(index) => index.write(conn, id).await?,
            Err(e) => tracing::warn!(request_id = id, error = %e, "stored packages data does not read; not indexed"),
        }
        diesel::sql_query("DELETE FROM request_dependencies_backfill WHERE request_id = $1")
            .bind::<BigInt, _>(id)
            .execute(conn)
            .await?;
        Ok(Some(id))
    }))
}
