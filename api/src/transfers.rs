//! The record of the store's exports and imports (`larder export`, `larder import`): each one a
//! row of `transfers`, begun before anything moves and ended with its counts, so a transfer
//! that died shows as `in_progress` with its start; and where an export `--since-last` starts.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use sha2::{Digest as _, Sha256};

use crate::db::DbPool;
use crate::error::ApiResult;
use crate::schema::{exported_objects, transfers};
use std::collections::HashSet;

/// An export `--since-last` starts this long before the previous one's `until`: an upload
/// that began before it (S3 stamps an object with its start) and finished after it was listed
/// is in the next export; what the previous one held is left out.
pub const SINCE_LAST_OVERLAP: chrono::Duration = chrono::Duration::minutes(15);

/// This deployment's name in a manifest: stable for as long as its secret is, the same from
/// every api and CLI, and nothing of the secret.
pub fn instance_of(secret: &common::token::TokenSecret) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"larder-instance\0");
    hasher.update(secret.as_bytes());
    hex::encode(&hasher.finalize()[..8])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Export,
    Import,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Export => "export",
            Kind::Import => "import",
        }
    }
}

/// What a finished transfer moved.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub objects: i64,
    pub bytes: i64,
    pub present: i64,
    pub refused: i64,
}

/// Where an export `--since-last` of `instance` starts: its last complete export's `until`,
/// less [`SINCE_LAST_OVERLAP`], and the keys that export held (left out again); `None` when it
/// never exported.
pub async fn since_last_export(
    pool: &DbPool,
    instance: &str,
) -> ApiResult<Option<(NaiveDateTime, HashSet<String>)>> {
    let mut conn = pool.get().await?;
    let last: Option<(i64, NaiveDateTime)> = transfers::table
        .filter(transfers::kind.eq("export"))
        .filter(transfers::state.eq("complete"))
        .filter(transfers::instance.eq(instance))
        .order(transfers::until.desc())
        .select((transfers::id, transfers::until))
        .first(&mut conn)
        .await
        .optional()?;
    let Some((id, until)) = last else {
        return Ok(None);
    };
    let held: Vec<String> = exported_objects::table
        .filter(exported_objects::transfer_id.eq(id))
        .select(exported_objects::key)
        .load(&mut conn)
        .await?;
    Ok(Some((
        until - SINCE_LAST_OVERLAP,
        held.into_iter().collect(),
    )))
}

/// Record the keys export `id` held, for the next `--since-last`.
pub async fn record_exported(pool: &DbPool, id: i64, keys: &[String]) -> ApiResult<()> {
    let mut conn = pool.get().await?;
    for chunk in keys.chunks(1000) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|key| {
                (
                    exported_objects::transfer_id.eq(id),
                    exported_objects::key.eq(key),
                )
            })
            .collect();
        diesel::insert_into(exported_objects::table)
            .values(rows)
            .on_conflict_do_nothing()
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}

/// Record a transfer starting now; its id.
pub async fn begin(
    pool: &DbPool,
    kind: Kind,
    instance: &str,
    since: Option<NaiveDateTime>,
    until: NaiveDateTime,
    directory: &str,
) -> ApiResult<i64> {
    let mut conn = pool.get().await?;
    let now = crate::db::now(&mut conn).await?;
    Ok(diesel::insert_into(transfers::table)
        .values((
            transfers::kind.eq(kind.as_str()),
            transfers::instance.eq(instance),
            transfers::since.eq(since),
            transfers::until.eq(until),
            transfers::directory.eq(directory),
            transfers::state.eq("in_progress"),
            transfers::started.eq(now),
        ))
        .returning(transfers::id)
        .get_result(&mut conn)
        .await?)
}

/// Record how transfer `id` ended: its counts, or why it failed.
pub async fn end(pool: &DbPool, id: i64, outcome: Result<Counts, String>) -> ApiResult<()> {
    let mut conn = pool.get().await?;
    let now = crate::db::now(&mut conn).await?;
    let (state, reason, counts) = match outcome {
        Ok(counts) => ("complete", String::new(), counts),
        Err(reason) => ("failed", reason, Counts::default()),
    };
    diesel::update(transfers::table.find(id))
        .set((
            transfers::state.eq(state),
            transfers::state_reason
                .eq(common::text::clean(&reason, common::text::MAX_REASON_BYTES)),
            transfers::finished.eq(now),
            transfers::objects.eq(counts.objects),
            transfers::bytes.eq(counts.bytes),
            transfers::present.eq(counts.present),
            transfers::refused.eq(counts.refused),
        ))
        .execute(&mut conn)
        .await?;
    Ok(())
}
