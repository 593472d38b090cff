//! The record of the store's exports and imports (`larder export`, `larder import`): each one a
//! row of `transfers`, begun before anything moves and ended with its counts, so a transfer
//! that died shows as `in_progress` with its start; and where an export `--since-last` starts.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use sha2::{Digest as _, Sha256};

use crate::db::DbPool;
use crate::error::{ApiError, ApiResult};
use crate::models::RequestRow;
use crate::schema::{exported_objects, request_states, requests, transfers};
use common::transfer::RequestRecords;
use common::{ErrorOrigin, RequestState};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};

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
    /// Requests' records exported, or imported.
    pub requests: i64,
}

/// Where an export `--since-last` of `instance` starts: its last complete export's `until`,
/// less [`SINCE_LAST_OVERLAP`], and the keys that export held (left out again); `None` when it
/// never exported.
pub async fn since_last_export(
    pool: &DbPool,
    instance: &str,
) -> ApiResult<Option<(NaiveDateTime, HashSet<String>)>> {
    let mut conn = pool.get().await?;
    let last = transfers::table
        .filter(transfers::kind.eq("export"))
        .filter(transfers::state.eq("complete"))
        .filter(transfers::instance.eq(instance))
        .order(transfers::until.desc())
        .select((transfers::id, transfers::until));
    let last: Option<(i64, NaiveDateTime)> =
        crate::on!(&mut conn, c => last.first(c).await.optional())?;
    let Some((id, until)) = last else {
        return Ok(None);
    };
    let held = exported_objects::table
        .filter(exported_objects::transfer_id.eq(id))
        .select(exported_objects::key);
    let held: Vec<String> = crate::on!(&mut conn, c => held.load(c).await)?;
    Ok(Some((
        until - SINCE_LAST_OVERLAP,
        held.into_iter().collect(),
    )))
}

/// Record the keys export `id` held, for the next `--since-last`.
///
/// SQLite: a row a statement, each chunk in one transaction (diesel builds SQLite's multi-row
/// insert only on its synchronous connection; `files.rs` runs its large ones there).
pub async fn record_exported(pool: &DbPool, id: i64, keys: &[String]) -> ApiResult<()> {
    let mut conn = pool.get().await?;
    for chunk in keys.chunks(1000) {
        match crate::db::AsDb::as_db(&mut conn) {
            crate::db::Db::Postgres(c) => {
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
                    .execute(c)
                    .await?;
            }
            crate::db::Db::Sqlite(c) => {
                crate::transaction!(c, diesel::result::Error, async |c| {
                    for key in chunk {
                        diesel::insert_into(exported_objects::table)
                            .values((
                                exported_objects::transfer_id.eq(id),
                                exported_objects::key.eq(key),
                            ))
                            .on_conflict_do_nothing()
                            .execute(c)
                            .await?;
                    }
                    Ok(())
                })?;
            }
        }
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
    let insert = diesel::insert_into(transfers::table)
        .values((
            transfers::kind.eq(kind.as_str()),
            transfers::instance.eq(instance),
            transfers::since.eq(since),
            transfers::until.eq(until),
            transfers::directory.eq(directory),
            transfers::state.eq("in_progress"),
            transfers::started.eq(now),
        ))
        .returning(transfers::id);
    Ok(crate::on!(&mut conn, c => insert.get_result(c).await)?)
}

/// Record how transfer `id` ended: its counts, or why it failed.
pub async fn end(pool: &DbPool, id: i64, outcome: Result<Counts, String>) -> ApiResult<()> {
    let mut conn = pool.get().await?;
    let now = crate::db::now(&mut conn).await?;
    let (state, reason, counts) = match outcome {
        Ok(counts) => ("complete", String::new(), counts),
        Err(reason) => ("failed", reason, Counts::default()),
    };
    let update = diesel::update(transfers::table.find(id)).set((
        transfers::state.eq(state),
        transfers::state_reason.eq(common::text::clean(&reason, common::text::MAX_REASON_BYTES)),
        transfers::finished.eq(now),
        transfers::objects.eq(counts.objects),
        transfers::bytes.eq(counts.bytes),
        transfers::present.eq(counts.present),
        transfers::refused.eq(counts.refused),
        transfers::requests.eq(counts.requests),
    ));
    crate::on!(&mut conn, c => update.execute(c).await)?;
    Ok(())
}

/// A request as `larder export --with-requests` carries it: what was asked, how it ended, its
/// history and its packages data. Not its environment, configuration files or repositories:
/// those name the exporting instance and its tokens.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportedRequest {
    pub id: i64,
    pub repo: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub pkg_managers: Vec<String>,
    pub packages: serde_json::Value,
    pub flags: Vec<String>,
    pub dependency_replacements: serde_json::Value,
    pub user: Option<String>,
    pub submitted_by: Option<String>,
    pub created: NaiveDateTime,
    pub state: RequestState,
    pub state_reason: String,
    pub updated: NaiveDateTime,
    pub error_origin: Option<ErrorOrigin>,
    pub error_type: Option<String>,
    pub packages_count: Option<i32>,
    pub dependencies_count: Option<i32>,
    pub packages_data: Option<Box<RawValue>>,
    pub state_history: Vec<ExportedState>,
}

#[derive(Debug, Serialize, Deserialize, Queryable)]
pub struct ExportedState {
    pub state: String,
    pub state_reason: String,
    pub updated: NaiveDateTime,
}

/// Requests read from the database a page at a time.
const REQUESTS_PAGE: i64 = 200;

/// Add this instance's own finished requests updated after `since` (all when `None`) and by
/// `until` to `records`; how many.
pub async fn export_requests(
    pool: &DbPool,
    since: Option<NaiveDateTime>,
    until: NaiveDateTime,
    records: &mut RequestRecords,
) -> Result<u64, TransferRecordError> {
    let mut conn = pool.get().await.map_err(ApiError::from)?;
    let mut after = 0i64;
    let start = records.count();
    loop {
        // packages data (tens of MB for a large lockfile) is read a request at a time below
        let page: Vec<RequestRow> = crate::on!(&mut conn, c => {
            let mut query = requests::table
                .filter(requests::id.gt(after))
                .filter(requests::state.ne(RequestState::InProgress.as_str()))
                .filter(requests::imported_instance.is_null())
                .filter(requests::updated.le(until))
                .into_boxed();
            if let Some(since) = since {
                query = query.filter(requests::updated.gt(since));
            }
            query
                .order(requests::id)
                .limit(REQUESTS_PAGE)
                .select(RequestRow::as_select())
                .load(c)
                .await
        })
        .map_err(ApiError::from)?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.id;
        let ids: Vec<i64> = page.iter().map(|row| row.id).collect();
        let mut histories: HashMap<i64, Vec<ExportedState>> = HashMap::new();
        let states = request_states::table
            .filter(request_states::request_id.eq_any(&ids))
            .order((request_states::request_id, request_states::id))
            .select((
                request_states::request_id,
                (
                    request_states::state,
                    request_states::state_reason,
                    request_states::updated,
                ),
            ));
        let states: Vec<(i64, ExportedState)> =
            crate::on!(&mut conn, c => states.load(c).await).map_err(ApiError::from)?;
        for (id, state) in states {
            histories.entry(id).or_default().push(state);
        }
        for row in page {
            // the stored JSON as text (SQLite's JSONB through json(): compact, PostgreSQL's
            // jsonb text has spaces; the same JSON)
            let data: Option<String> = crate::on!(&mut conn, c => {
                requests::table
                    .find(row.id)
                    .select(diesel::dsl::sql::<
                        diesel::sql_types::Nullable<diesel::sql_types::Text>,
                    >(crate::sql!(
                        postgres: "packages_data::text",
                        sqlite: "json(packages_data)",
                    )))
                    .first(c)
                    .await
            })
            .map_err(ApiError::from)?;
            let state = row.state.parse().map_err(|()| {
                TransferRecordError::Unreadable(format!(
                    "request {} is in an unknown state {:?}",
                    row.id, row.state
                ))
            })?;
            let packages_data = data.map(RawValue::from_string).transpose().map_err(|e| {
                TransferRecordError::Unreadable(format!(
                    "the packages data of request {}: {e}",
                    row.id
                ))
            })?;
            records.push(&ExportedRequest {
                state_history: histories.remove(&row.id).unwrap_or_default(),
                id: row.id,
                repo: row.repo,
                git_ref: row.git_ref,
                pkg_managers: row.pkg_managers,
                packages: row.packages,
                flags: row.flags,
                dependency_replacements: row.dependency_replacements,
                user: row.user_name,
                submitted_by: row.submitted_by,
                created: row.created,
                state,
                state_reason: row.state_reason,
                updated: row.updated,
                error_origin: row.error_origin.as_deref().and_then(|o| o.parse().ok()),
                error_type: row.error_type,
                packages_count: row.packages_count,
                dependencies_count: row.dependencies_count,
                packages_data,
            })?;
        }
    }
    Ok(records.count() - start)
}

#[derive(Debug, thiserror::Error)]
pub enum TransferRecordError {
    #[error("the database: {}", .0.message)]
    Database(#[from] ApiError),
    #[error(transparent)]
    Transfer(#[from] common::transfer::TransferError),
    #[error("{0}")]
    Unreadable(String),
}

/// What an import of requests' records did.
#[derive(Debug, Default)]
pub struct ImportedRequests {
    pub imported: u64,
    /// Imported by an earlier run, unchanged since.
    pub present: u64,
    /// Imported by an earlier run, and since then gone stale on the exporting instance: that
    /// state added here.
    pub updated: u64,
    /// (which record, why): left out.
    pub refused: Vec<(String, String)>,
}

/// Record each of `records` (exported by `instance`) as a request of this instance, under a
/// new id, with its history and its dependencies in the search, each in one transaction, once:
/// a record imported before is left as it is, but for a later state it reached on the
/// exporting instance (`stale`). A record is checked as a submission is (`catalogue`: the
/// package managers this deployment has); one that is not what an export writes is refused,
/// named, and the others are imported.
pub async fn import_requests(
    pool: &DbPool,
    instance: &str,
    catalogue: &common::Catalogue,
    records: impl Iterator<Item = Result<ExportedRequest, String>>,
) -> Result<ImportedRequests, ApiError> {
    let mut done = ImportedRequests::default();
    for (line, record) in records.enumerate() {
        let record = match record {
            Ok(record) => record,
            Err(why) => {
                done.refused.push((format!("record {}", line + 1), why));
                continue;
            }
        };
        let which = format!("request {} of {instance}", record.id);
        match import_one(pool, instance, catalogue, record).await {
            Ok(Recorded::Imported) => done.imported += 1,
            Ok(Recorded::Present) => done.present += 1,
            Ok(Recorded::Updated) => done.updated += 1,
            Err(Refused::Record(why)) => done.refused.push((which, why)),
            Err(Refused::Database(e)) => {
                return Err(ApiError::internal(format!("{which}: {}", e.message)))
            }
        }
    }
    Ok(done)
}

enum Recorded {
    Imported,
    Present,
    Updated,
}

enum Refused {
    Record(String),
    Database(ApiError),
}

impl From<diesel::result::Error> for Refused {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            // the row's values (a NUL, a value out of range, an index row too large): the
            // record's fault, not the database's
            diesel::result::Error::DatabaseError(_, info) => {
                Refused::Record(format!("the database refused it: {}", info.message()))
            }
            e => Refused::Database(e.into()),
        }
    }
}

/// The longest user name a record may carry.
const MAX_USER_BYTES: usize = 200;

/// A record as `export_requests` writes it, or why not.
fn check_record(record: &ExportedRequest, catalogue: &common::Catalogue) -> Result<(), String> {
    use crate::v1::validation::{any_string, has_control, validate_new_request};
    if !record.state.is_final() {
        return Err(format!(
            "it is {}: only finished requests are carried",
            record.state
        ));
    }
    // what was asked, as a submission is checked (a repository of A's disk included)
    let asked = serde_json::json!({
        "repo": record.repo,
        "ref": record.git_ref,
        "pkg_managers": record.pkg_managers,
        "packages": record.packages,
        "flags": record.flags,
        "dependency_replacements": record.dependency_replacements,
    });
    validate_new_request(&asked, true, catalogue).map_err(|e| e.message)?;
    for (name, text) in [
        ("user", &record.user),
        ("submitted_by", &record.submitted_by),
        ("error_type", &record.error_type),
    ] {
        if text
            .as_deref()
            .is_some_and(|t| t.len() > MAX_USER_BYTES || has_control(t))
        {
            return Err(format!(
                "its {name} is longer than {MAX_USER_BYTES} bytes or holds control characters"
            ));
        }
    }
    if let Some(s) = record
        .state_history
        .iter()
        .find(|s| s.state.parse::<RequestState>().is_err())
    {
        return Err(format!("its history holds an unknown state {:?}", s.state));
    }
    if record.state_history.last().map(|s| s.state.as_str()) != Some(record.state.as_str()) {
        return Err(format!(
            "its history does not end in its state {}",
            record.state
        ));
    }
    let times = [record.created, record.updated]
        .into_iter()
        .chain(record.state_history.iter().map(|s| s.updated));
    if let Some(t) = times
        .into_iter()
        .find(|t| !(1970..=9999).contains(&chrono::Datelike::year(t)))
    {
        return Err(format!("its time {t} is out of range"));
    }
    if record.packages_count.is_some_and(|n| n < 0)
        || record.dependencies_count.is_some_and(|n| n < 0)
    {
        return Err("it counts fewer than no packages or dependencies".into());
    }
    // \u0000 in JSON: PostgreSQL's jsonb refuses it
    let nul = |t: &str| t.contains('\0');
    if any_string(&record.packages, &nul) || any_string(&record.dependency_replacements, &nul) {
        return Err("it holds a NUL character".into());
    }
    Ok(())
}

async fn import_one(
    pool: &DbPool,
    instance: &str,
    catalogue: &common::Catalogue,
    record: ExportedRequest,
) -> Result<Recorded, Refused> {
    check_record(&record, catalogue).map_err(Refused::Record)?;
    let mut conn = pool.get().await.map_err(|e| Refused::Database(e.into()))?;
    let known = requests::table
        .filter(requests::imported_instance.eq(instance))
        .filter(requests::imported_id.eq(record.id))
        .select((requests::id, requests::state, requests::updated));
    let known: Option<(i64, String, NaiveDateTime)> =
        crate::on!(&mut conn, c => known.first(c).await.optional())?;
    if let Some((id, state, updated)) = known {
        return later_state(&mut conn, id, &state, updated, &record).await;
    }
    let checked = match record.packages_data {
        Some(data) => {
            let body = data.get().as_bytes().to_vec();
            let checked =
                tokio::task::spawn_blocking(move || crate::v1::files::checked_packages_data(body))
                    .await
                    .map_err(|e| Refused::Database(ApiError::internal(e.to_string())))?;
            Some(
                checked
                    .map_err(|e| Refused::Record(format!("its packages data: {}", e.message)))?,
            )
        }
        None => None,
    };
    crate::on!(&mut conn, c => crate::transaction!(c, Refused, async |conn| {
        let id: Option<i64> = diesel::insert_into(requests::table)
            .values((
                requests::repo.eq(&record.repo),
                requests::git_ref.eq(&record.git_ref),
                requests::pkg_managers.eq(crate::sql_types::Strings(&record.pkg_managers)),
                requests::packages.eq(&record.packages),
                requests::flags.eq(crate::sql_types::Strings(&record.flags)),
                requests::dependency_replacements.eq(&record.dependency_replacements),
                requests::user_name.eq(&record.user),
                requests::submitted_by.eq(&record.submitted_by),
                requests::created.eq(record.created),
                requests::state.eq(record.state.as_str()),
                requests::state_reason.eq(clean(&record.state_reason)),
                requests::updated.eq(record.updated),
                requests::error_origin.eq(record.error_origin.map(ErrorOrigin::as_str)),
                requests::error_type.eq(&record.error_type),
                requests::packages_count.eq(record.packages_count),
                requests::dependencies_count.eq(record.dependencies_count),
                requests::token_salt.eq(common::token::new_salt()),
                // never sent to a worker: it is finished
                requests::dispatched_at.eq(record.created),
                requests::imported_instance.eq(instance),
                requests::imported_id.eq(record.id),
            ))
            .on_conflict_do_nothing()
            .returning(requests::id)
            .get_result(conn)
            .await
            .optional()?;
        let Some(id) = id else {
            // another import recorded it meanwhile
            return Ok(Recorded::Present);
        };
        insert_history(conn, id, record.state_history.iter()).await?;
        if let Some((json, index)) = checked {
            crate::v1::files::store_packages_data(conn, id, json, index)
                .await
                .map_err(Refused::Database)?;
        }
        Ok(Recorded::Imported)
    }))
}

/// A reason as the api keeps one.
fn clean(reason: &str) -> String {
    common::text::clean(reason, common::text::MAX_REASON_BYTES)
}

/// Add `states` to request `id`'s history (SQLite: a row a statement, as `record_exported`;
/// the callers hold a transaction).
async fn insert_history(
    conn: &mut impl crate::db::AsDb,
    id: i64,
    states: impl Iterator<Item = &ExportedState>,
) -> Result<(), Refused> {
    let rows: Vec<_> = states
        .map(|s| {
            (
                request_states::request_id.eq(id),
                request_states::state.eq(s.state.as_str()),
                request_states::state_reason.eq(clean(&s.state_reason)),
                request_states::updated.eq(s.updated),
            )
        })
        .collect();
    match conn.as_db() {
        crate::db::Db::Postgres(c) => {
            diesel::insert_into(request_states::table)
                .values(rows)
                .execute(c)
                .await?;
        }
        crate::db::Db::Sqlite(c) => {
            for row in rows {
                diesel::insert_into(request_states::table)
                    .values(row)
                    .execute(c)
                    .await?;
            }
        }
    }
    Ok(())
}

/// A record imported before: the state it reached since on the exporting instance (a
/// complete or failed request gone stale), with the history after what is here.
async fn later_state(
    conn: &mut impl crate::db::AsDb,
    id: i64,
    state: &str,
    updated: NaiveDateTime,
    record: &ExportedRequest,
) -> Result<Recorded, Refused> {
    let moved = record.updated > updated
        && state
            .parse::<RequestState>()
            .is_ok_and(|known| known != record.state && known.can_become(record.state));
    if !moved {
        return Ok(Recorded::Present);
    }
    crate::on!(conn, c => crate::transaction!(c, Refused, async |conn| {
        // under the row lock, once: a concurrent import of the same record finds it moved
        let changed = diesel::update(
            requests::table
                .find(id)
                .filter(requests::state.eq(state))
                .filter(requests::updated.eq(updated)),
        )
        .set((
            requests::state.eq(record.state.as_str()),
            requests::state_reason.eq(clean(&record.state_reason)),
            requests::updated.eq(record.updated),
        ))
        .execute(conn)
        .await?;
        if changed == 0 {
            return Ok(Recorded::Present);
        }
        let since = record.state_history.iter().filter(|s| s.updated > updated);
        insert_history(conn, id, since).await?;
        Ok(Recorded::Updated)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_db::TestDb;

    fn record(id: i64, state: &str) -> ExportedRequest {
        let now = chrono::Utc::now().naive_utc();
        serde_json::from_value(serde_json::json!({
            "id": id,
            "repo": "https://example.com/org/app.git",
            "ref": "a".repeat(40),
            "pkg_managers": ["npm"],
            "packages": {},
            "flags": [],
            "dependency_replacements": [],
            "user": null,
            "submitted_by": null,
            "created": now,
            "state": state,
            "state_reason": "Completed successfully",
            "updated": now,
            "error_origin": null,
            "error_type": null,
            "packages_count": 1,
            "dependencies_count": 1,
            "packages_data": {"packages": [{"name": "app", "type": "npm", "version": "1.0.0",
                "purl": "pkg:npm/app@1.0.0", "path": ".", "dependencies": [
                {"name": "left-pad", "type": "npm", "version": "1.3.0",
                 "purl": "pkg:npm/left-pad@1.3.0", "dev": false}]}]},
            "state_history": [{"state": state, "state_reason": "Completed successfully", "updated": now}],
        }))
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn imports_of_the_same_records_at_once_record_each_once_and_refuse_unfinished_ones() {
        let db = TestDb::new().await;
        let catalogue = worker::pkg_managers::catalogue();
        let records = || (1..=30).map(|id| Ok(record(id, "complete")));
        let (a, b) = tokio::join!(
            import_requests(&db.pool, "a1", &catalogue, records()),
            import_requests(&db.pool, "a1", &catalogue, records())
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!((a.imported + b.imported, a.present + b.present), (30, 30));
        let mut conn = db.pool.get().await.unwrap();
        let rows: i64 =
            crate::on!(&mut conn, c => requests::table.count().get_result(c).await).unwrap();
        let states: i64 =
            crate::on!(&mut conn, c => request_states::table.count().get_result(c).await).unwrap();
        let indexed: i64 = crate::on!(&mut conn, c => {
            crate::schema::request_dependencies::table
                .count()
                .get_result(c)
                .await
        })
        .unwrap();
        assert_eq!((rows, states, indexed), (30, 30, 30));

        // the same ids from another instance are other requests
        let other = import_requests(&db.pool, "b2", &catalogue, records())
            .await
            .unwrap();
        assert_eq!(other.imported, 30);

        let mut in_progress = record(31, "in_progress");
        in_progress.state_history.clear();
        let mut bad_origin = record(32, "failed");
        bad_origin.error_type = Some("<b>\u{7}".into());
        let mut bad_history = record(33, "complete");
        bad_history.state_history[0].state = "done".into();
        let mut bad_data = record(34, "complete");
        bad_data.packages_data = Some(RawValue::from_string("{\"packages\": 1}".into()).unwrap());
        let mut bad_ref = record(35, "complete");
        bad_ref.git_ref = "main".into();
        let mut nul_user = record(36, "complete");
        nul_user.user = Some("a\0b".into());
        let mut far_future = record(37, "complete");
        far_future.updated = chrono::NaiveDate::from_ymd_opt(12000, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        let done = import_requests(
            &db.pool,
            "a1",
            &catalogue,
            [
                Ok(in_progress),
                Ok(bad_origin),
                Ok(bad_history),
                Ok(bad_data),
                Err("expected value at line 1 column 1".to_string()),
                Ok(bad_ref),
                Ok(nul_user),
                Ok(far_future),
                Ok(record(38, "complete")),
            ]
            .into_iter(),
        )
        .await
        .unwrap();
        let refused: Vec<&str> = done
            .refused
            .iter()
            .map(|(which, _)| which.as_str())
            .collect();
        assert_eq!(
            refused,
            [
                "request 31 of a1",
                "request 32 of a1",
                "request 33 of a1",
                "request 34 of a1",
                "record 5",
                "request 35 of a1",
                "request 36 of a1",
                "request 37 of a1",
            ],
            "{:?}",
            done.refused
        );
        // the records after the refused ones are imported
        assert_eq!(done.imported, 1);
        let rows: i64 =
            crate::on!(&mut conn, c => requests::table.count().get_result(c).await).unwrap();
        assert_eq!(rows, 61);

        // gone stale on the exporting instance since: that state is added, once
        let mut stale = record(1, "stale");
        let later = chrono::Utc::now().naive_utc();
        stale.updated = later;
        let long_ago = chrono::NaiveDate::from_ymd_opt(2020, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        stale.state_history = vec![
            ExportedState {
                state: "complete".into(),
                state_reason: "Completed successfully".into(),
                updated: long_ago,
            },
            ExportedState {
                state: "stale".into(),
                state_reason: "The request has expired".into(),
                updated: later,
            },
        ];
        let again = import_requests(&db.pool, "a1", &catalogue, [Ok(stale)].into_iter())
            .await
            .unwrap();
        assert_eq!((again.updated, again.present), (1, 0), "{again:?}");
        let query = requests::table
            .filter(requests::imported_instance.eq("a1"))
            .filter(requests::imported_id.eq(1))
            .select((
                requests::state,
                request_states::table
                    .filter(request_states::request_id.eq(requests::id))
                    .count()
                    .single_value()
                    .assume_not_null(),
            ));
        let (state, history): (String, i64) =
            crate::on!(&mut conn, c => query.first(c).await).unwrap();
        assert_eq!((state.as_str(), history), ("stale", 2));
    }
}
