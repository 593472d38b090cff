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

use crate::db::{AsDb, DbPool};
use crate::error::{ApiError, ApiResult};
use crate::schema::requests;

/// The blob's lock until the transaction ends: namings and releases of one blob in turn.
/// (SQLite's transactions take turns already: its pool has one connection.)
async fn lock_blob(conn: &mut impl AsDb, sha256_hex: &str) -> ApiResult<()> {
    if let crate::db::Db::Postgres(c) = conn.as_db() {
        diesel::sql_query(
            "SELECT pg_advisory_xact_lock(hashtextextended('larder-bundle:' || $1, 0))",
        )
        .bind::<Text, _>(sha256_hex)
        .execute(c)
        .await?;
    }
    Ok(())
}

pub use common::store::is_sha256_hex;

/// Name `sha256_hex` the bundle of request `id`, in the caller's transaction (which holds the
/// request's row). On an object store the blob must be there with that sha256: otherwise a
/// 409 tells the worker to put it (again) and complete again.
pub async fn name(
    conn: &mut impl AsDb,
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
    crate::on!(conn, c => diesel::update(requests::table.find(id))
        .set(requests::bundle_sha256.eq(sha256_hex))
        .execute(c)
        .await)?;
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

/// Remove the blobs of the object store that no request that is not stale names and that were
/// stored more than `grace` ago: a request that failed after its worker put its bundle leaves
/// one, and so does a release whose delete failed. Each goes under its lock, as a release's
/// does; a completion naming it later finds it gone and the worker puts it again. How many
/// went.
pub async fn remove_unnamed(
    pool: &DbPool,
    tier: &ObjectTier,
    grace: chrono::Duration,
) -> ApiResult<usize> {
    use futures_util::TryStreamExt;
    let listed: Vec<_> = tier
        .list("bundles/sha256")
        .try_collect()
        .await
        .map_err(|e| ApiError::internal(format!("cannot list the bundles: {e}")))?;
    let before = chrono::Utc::now() - grace;
    let mut conn = pool.get().await?;
    let mut removed = 0;
    for object in listed.into_iter().filter(|o| o.modified < before) {
        let Some(sha256_hex) = object
            .key
            .strip_prefix("bundles/sha256/")
            .and_then(|name| name.strip_suffix(".tar.gz"))
            .filter(|hex| is_sha256_hex(hex))
            .map(str::to_string)
        else {
            continue;
        };
        let gone = crate::on!(&mut conn, c => crate::transaction!(c, ApiError, async |conn| {
            lock_blob(conn, &sha256_hex).await?;
            if users(conn, &sha256_hex).await? > 0 {
                return Ok(false);
            }
            tier.delete(&object.key).await.map_err(|e| {
                ApiError::internal(format!("cannot remove {}: {e}", object.key))
            })?;
            Ok(true)
        }))?;
        if gone {
            tracing::info!(key = %object.key, "removed a bundle no request names");
            removed += 1;
        }
    }
    Ok(removed)
}

/// How many requests that are not stale name the blob.
async fn users(conn: &mut impl AsDb, sha256_hex: &str) -> ApiResult<i64> {
    Ok(crate::on!(conn, c => diesel::sql_query(
        "SELECT count(*) AS n FROM requests WHERE bundle_sha256 = $1 AND state <> 'stale'",
    )
    .bind::<Text, _>(sha256_hex)
    .get_result::<Count>(c)
    .await)?
    .n)
}

async fn release_blob(conn: &mut impl AsDb, tier: &ObjectTier, id: i64) -> ApiResult<()> {
    let named: Option<String> = crate::on!(conn, c => requests::table
        .find(id)
        .select(requests::bundle_sha256)
        .first(c)
        .await)?;
    let Some(sha256_hex) = named.filter(|s| is_sha256_hex(s)) else {
        return Ok(());
    };
    crate::on!(conn, c => crate::transaction!(c, ApiError, async |conn| {
        lock_blob(conn, &sha256_hex).await?;
        if users(conn, &sha256_hex).await? == 0 {
            let key = bundle_blob_key(&sha256_hex);
            tier.delete(&key)
                .await
                .map_err(|e| ApiError::internal(format!("cannot remove {key}: {e}")))?;
            tracing::info!(request_id = id, key, "bundle removed with its last request");
        }
        Ok(())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_db::TestDb;
    use object_store::aws::AmazonS3Builder;

    use crate::test_s3 as s3;

    fn tier(moto: &s3::MotoServer) -> ObjectTier {
        let builder = AmazonS3Builder::new()
            .with_endpoint(moto.endpoint())
            .with_allow_http(true)
            .with_region(s3::REGION)
            .with_access_key_id(s3::CREDENTIALS.0)
            .with_secret_access_key(s3::CREDENTIALS.1);
        ObjectTier::s3(builder, &moto.bucket, "p").unwrap()
    }

    async fn put_blob(tier: &ObjectTier, bytes: &[u8]) -> String {
        use sha2::Digest as _;
        let hex = hex::encode(sha2::Sha256::digest(bytes));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        let digest =
            common::digest::Digest::from_hex(common::digest::HashAlgorithm::Sha256, &hex).unwrap();
        tier.put_file(&bundle_blob_key(&hex), file.path(), &digest)
            .await
            .unwrap();
        hex
    }

    async fn name_in_transaction(
        db: &TestDb,
        tier: &ObjectTier,
        id: i64,
        hex: &str,
    ) -> ApiResult<()> {
        let mut conn = db.pool.get().await.unwrap();
        crate::on!(&mut conn, c => crate::transaction!(c, ApiError, async |conn| name(conn, Some(tier), id, hex).await))
    }

    async fn make_stale(db: &TestDb, id: i64) {
        let mut conn = db.pool.get().await.unwrap();
        crate::on!(&mut conn, c => diesel::update(requests::table.find(id))
            .set(requests::state.eq("stale"))
            .execute(c)
            .await)
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_object_blob_is_named_only_when_there_and_goes_with_the_last_request_naming_it() {
        let Some(moto) = s3::MotoServer::start("bundles") else {
            return;
        };
        let tier = tier(&moto);
        let shared = SharedStore::Objects(tier.clone());
        let db = TestDb::new().await;
        let (a, b) = (
            db.finished_request(chrono::Duration::days(1)).await,
            db.finished_request(chrono::Duration::days(1)).await,
        );
        let absent = "0".repeat(64);
        let refused = name_in_transaction(&db, &tier, a, &absent)
            .await
            .unwrap_err();
        assert_eq!(refused.status.as_u16(), 409, "{}", refused.message);

        let hex = put_blob(&tier, b"the same bundle").await;
        name_in_transaction(&db, &tier, a, &hex).await.unwrap();
        name_in_transaction(&db, &tier, b, &hex).await.unwrap();
        let key = bundle_blob_key(&hex);

        make_stale(&db, a).await;
        release(&db.pool, &shared, a).await.unwrap();
        assert!(tier.head(&key).await.unwrap().is_some(), "b still names it");

        make_stale(&db, b).await;
        release(&db.pool, &shared, b).await.unwrap();
        assert!(
            tier.head(&key).await.unwrap().is_none(),
            "gone with its last request"
        );
        // released again (a retried cleanup): nothing to do
        release(&db.pool, &shared, b).await.unwrap();
        // a request completing with those bytes now finds them gone, and is told so
        let c = db.finished_request(chrono::Duration::days(1)).await;
        let refused = name_in_transaction(&db, &tier, c, &hex).await.unwrap_err();
        assert_eq!(refused.status.as_u16(), 409);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_blob_no_request_names_goes_once_it_is_older_than_the_grace() {
        let Some(moto) = s3::MotoServer::start("unnamed") else {
            return;
        };
        let tier = tier(&moto);
        let db = TestDb::new().await;
        let named = put_blob(&tier, b"a request's bundle").await;
        let orphan = put_blob(&tier, b"a failed request's bundle").await;
        let a = db.finished_request(chrono::Duration::days(1)).await;
        name_in_transaction(&db, &tier, a, &named).await.unwrap();

        let young = remove_unnamed(&db.pool, &tier, chrono::Duration::hours(1)).await;
        assert_eq!(
            young.unwrap(),
            0,
            "within the grace: it may be a running request's"
        );
        assert_eq!(
            remove_unnamed(&db.pool, &tier, chrono::Duration::zero())
                .await
                .unwrap(),
            1
        );
        assert!(tier
            .head(&bundle_blob_key(&orphan))
            .await
            .unwrap()
            .is_none());
        assert!(tier.head(&bundle_blob_key(&named)).await.unwrap().is_some());
    }
}
