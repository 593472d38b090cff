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
    let inserted = diesel::sql_query(
        "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind::<Text, _>(REPO_TOKEN_SECRET)
    .bind::<Binary, _>(candidate.as_bytes().as_slice())
    .execute(&mut conn)
    .await?;
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

async fn stored(
    conn: &mut diesel_async::AsyncPgConnection,
) -> Result<Option<TokenSecret>, SecretError> {
    let row: Option<SecretRow> =
        match diesel::sql_query("SELECT value FROM server_secrets WHERE name = $1")
            .bind::<Text, _>(REPO_TOKEN_SECRET)
            .get_result(conn)
            .await
        {
            Ok(row) => Some(row),
            Err(diesel::result::Error::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
    row.map(|row| TokenSecret::from_slice(&row.value).ok_or(SecretError::Corrupt(row.value.len())))
        .transpose()
}
