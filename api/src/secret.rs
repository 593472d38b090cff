//! The server secret repository tokens derive from, kept in the database so that every api
//! instance checks the same tokens. The first api to start creates it; one that finds the
//! `secret.key` an earlier version kept in its data directory, and no secret in the database
//! yet, stores that one, so tokens already handed out stay valid.

use crate::db::DbPool;
use common::token::TokenSecret;
use diesel::sql_types::{Binary, Text};
use diesel_async::RunQueryDsl;
use std::path::Path;

/// The row of `server_secrets` holding the repository tokens' secret.
const REPO_TOKEN_SECRET: &str = "repo-token";
/// Where an api before this version kept the secret, in its data directory.
pub const LEGACY_SECRET_FILE: &str = "secret.key";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("database unavailable: {0}")]
    Pool(#[from] diesel_async::pooled_connection::deadpool::PoolError),
    #[error("cannot read {path}: {source}")]
    LegacyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the stored token secret is {0} bytes, not 32")]
    Corrupt(usize),
}

#[derive(diesel::QueryableByName)]
struct SecretRow {
    #[diesel(sql_type = Binary)]
    value: Vec<u8>,
}

/// The secret, created (or imported from `data_dir`'s `secret.key`) if the database has none.
/// Two apis starting together both insert and keep whichever row was written first.
pub async fn load_or_create(pool: &DbPool, data_dir: &Path) -> Result<TokenSecret, SecretError> {
    let mut conn = pool.get().await?;
    if let Some(secret) = stored(&mut conn).await? {
        return Ok(secret);
    }
    let legacy = data_dir.join(LEGACY_SECRET_FILE);
    let imported = TokenSecret::read_file(&legacy).map_err(|source| SecretError::LegacyFile {
        path: legacy.display().to_string(),
        source,
    })?;
    let candidate = imported.clone().unwrap_or_else(TokenSecret::generate);
    // the same statement in both (SQLite has `ON CONFLICT (…) DO NOTHING`)
    let insert = diesel::sql_query(
        "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind::<Text, _>(REPO_TOKEN_SECRET)
    .bind::<Binary, _>(candidate.as_bytes().as_slice());
    let inserted = crate::on!(&mut conn, c => insert.execute(c).await)?;
    let secret = stored(&mut conn)
        .await?
        .ok_or(diesel::result::Error::NotFound)?;
    if inserted == 1 {
        match imported {
            Some(_) => {
                tracing::info!(file = %legacy.display(), "imported the token secret into the database; the file is no longer read")
            }
            None => tracing::info!("created the token secret"),
        }
    } else if imported.is_some_and(|file| file.as_bytes() != secret.as_bytes()) {
        tracing::warn!(file = %legacy.display(), "another api stored a different token secret first; the tokens derived from this file are no longer accepted");
    }
    Ok(secret)
}

async fn stored(conn: &mut impl crate::db::AsDb) -> Result<Option<TokenSecret>, SecretError> {
    let query = diesel::sql_query("SELECT value FROM server_secrets WHERE name = $1")
        .bind::<Text, _>(REPO_TOKEN_SECRET);
    let row: Option<SecretRow> = match crate::on!(conn, c => query.get_result(c).await) {
        Ok(row) => Some(row),
        Err(diesel::result::Error::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    row.map(|row| TokenSecret::from_slice(&row.value).ok_or(SecretError::Corrupt(row.value.len())))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_db::TestDb;

    #[tokio::test(flavor = "multi_thread")]
    async fn instances_starting_together_agree_on_one_secret() {
        let db = TestDb::new().await;
        let dirs: Vec<_> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
        let secrets = futures_util::future::join_all(
            dirs.iter().map(|dir| load_or_create(&db.pool, dir.path())),
        )
        .await;
        let first = secrets[0].as_ref().unwrap().as_bytes();
        for secret in &secrets {
            assert_eq!(secret.as_ref().unwrap().as_bytes(), first);
        }
        // and later starts read it
        let again = load_or_create(&db.pool, dirs[0].path()).await.unwrap();
        assert_eq!(again.as_bytes(), first);
        assert!(!dirs[0].path().join(LEGACY_SECRET_FILE).exists());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_secret_file_of_an_earlier_version_is_imported_once() {
        let db = TestDb::new().await;
        let (upgraded, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(
            upgraded.path().join(LEGACY_SECRET_FILE),
            hex::encode([3u8; 32]),
        )
        .unwrap();
        std::fs::write(
            other.path().join(LEGACY_SECRET_FILE),
            hex::encode([4u8; 32]),
        )
        .unwrap();
        let imported = load_or_create(&db.pool, upgraded.path()).await.unwrap();
        assert_eq!(imported.as_bytes(), &[3u8; 32]);
        let kept = load_or_create(&db.pool, other.path()).await.unwrap();
        assert_eq!(kept.as_bytes(), &[3u8; 32]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unreadable_secret_file_stops_the_start() {
        let db = TestDb::new().await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LEGACY_SECRET_FILE), "not hex").unwrap();
        assert!(matches!(
            load_or_create(&db.pool, dir.path()).await,
            Err(SecretError::LegacyFile { .. })
        ));
    }
}
