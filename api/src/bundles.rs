//! Which stored blob is a request's bundle, and when a blob may go.
//!
//! The worker names its bundle's sha256 when it completes a request; the api keeps it in the
//! request's row (`bundle_sha256`). On a directory store the request's files name it too (and
//! their references decide when the blob goes, `common::Store::release_bundle`); on an object
//! store the rows decide: a blob goes when no request that is not stale names it. Naming a blob
//! and releasing one take the same advisory lock (one per blob), so a release never takes away
//! a blob a request is naming at that moment: it either sees the name, or goes first and the
//! naming finds the blob gone (the worker puts it again).

use common::store::object::ObjectTier;
use common::store::{bundle_blob_key, SharedStore};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::db::{DbConn, DbPool};
use crate::error::{ApiError, ApiResult};
use crate::schema::requests;

/// The blob's lock until the transaction ends: namings and releases of one blob in turn.
async fn lock_blob(conn: &mut diesel_async::AsyncPgConnection, sha256_hex: &str) -> ApiResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended('larder-bundle:' || $1, 0))")
        .bind::<Text, _>(sha256_hex)
        .execute(conn)
        .await?;
    Ok(())
}

pub use common::store::is_sha256_hex;

/// Name `sha256_hex` the bundle of request `id`, in the caller's transaction (which holds the
/// request's row). On an object store the blob must be there with that sha256: otherwise a
/// 409 tells the worker to put it (again) and complete again.
pub async fn name(
    conn: &mut diesel_async::AsyncPgConnection,
    objects: Option<&ObjectTier>,
    id: i64,
    sha256_hex: &str,
) -> ApiResult<()> {
    lock_blob(conn, sha256_hex).await?;
    if let Some(tier) = objects {
        let key = bundle_blob_key(sha256_hex);
        let found = tier
            .head(&key)
            .await
            .map_err(|e| ApiError::internal(format!("cannot look up {key}: {e}")))?;
        let whole = found.is_some_and(|o| o.sha256.is_some_and(|d| d.hex() == sha256_hex));
        if !whole {
            return Err(ApiError::conflict(format!(
                "The bundle {sha256_hex} is not in the store"
            )));
        }
    }
    diesel::update(requests::table.find(id))
        .set(requests::bundle_sha256.eq(sha256_hex))
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Request `id` is stale: its bundle goes unless another request still names the same bytes.
pub async fn release(pool: &DbPool, store: &SharedStore, id: i64) -> ApiResult<()> {
    match store {
        SharedStore::Directory(dir) => {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || dir.release_bundle(id))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(|e| ApiError::internal(e.to_string()))
        }
        SharedStore::Objects(tier) => {
            let mut conn = pool.get().await?;
            release_blob(&mut conn, tier, id).await
        }
    }
}

async fn release_blob(conn: &mut DbConn, tier: &ObjectTier, id: i64) -> ApiResult<()> {
    let named: Option<String> = requests::table
        .find(id)
        .select(requests::bundle_sha256)
        .first(conn)
        .await?;
    let Some(sha256_hex) = named.filter(|s| is_sha256_hex(s)) else {
        return Ok(());
    };
    conn.transaction::<_, ApiError, _>(async |conn| {
        lock_blob(conn, &sha256_hex).await?;
        let users = diesel::sql_query(
            "SELECT count(*) AS n FROM requests WHERE bundle_sha256 = $1 AND state <> 'stale'",
        )
        .bind::<Text, _>(&sha256_hex)
        .get_result::<Count>(conn)
        .await?;
        if users.n == 0 {
            let key = bundle_blob_key(&sha256_hex);
            tier.delete(&key)
                .await
                .map_err(|e| ApiError::internal(format!("cannot remove {key}: {e}")))?;
            tracing::info!(request_id = id, key, "bundle removed with its last request");
        }
        Ok(())
    })
    .await
}
