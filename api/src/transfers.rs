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
            transfers::requests.eq(counts.requests),
        ))
        .execute(&mut conn)
        .await?;
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
    pub error_origin: Option<String>,
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
        let mut query = requests::table
            .filter(requests::id.gt(after))
            .filter(requests::state.ne(RequestState::InProgress.as_str()))
            .filter(requests::imported_instance.is_null())
            .filter(requests::updated.le(until))
            .into_boxed();
        if let Some(since) = since {
            query = query.filter(requests::updated.gt(since));
        }
        let page: Vec<(RequestRow, Option<String>)> = query
            .order(requests::id)
            .limit(REQUESTS_PAGE)
            .select((
                RequestRow::as_select(),
                diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Text>>(
                    "packages_data::text",
                ),
            ))
            .load(&mut conn)
            .await
            .map_err(ApiError::from)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = last.id;
        let ids: Vec<i64> = page.iter().map(|(row, _)| row.id).collect();
        let mut histories: HashMap<i64, Vec<ExportedState>> = HashMap::new();
        let states: Vec<(i64, ExportedState)> = request_states::table
            .filter(request_states::request_id.eq_any(&ids))
            .order((request_states::request_id, request_states::id))
            .select((
                request_states::request_id,
                (
                    request_states::state,
                    request_states::state_reason,
                    request_states::updated,
                ),
            ))
            .load(&mut conn)
            .await
            .map_err(ApiError::from)?;
        for (id, state) in states {
            histories.entry(id).or_default().push(state);
        }
        for (row, data) in page {
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
                error_origin: row.error_origin,
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
    /// Imported by an earlier run.
    pub present: u64,
    /// (which record, why): left out.
    pub refused: Vec<(String, String)>,
}

/// Record each of `records` (exported by `instance`) as a request of this instance, under a
/// new id, with its history and its dependencies in the search, each in one transaction, once:
/// a record imported before is left as it is.
pub async fn import_requests(
    pool: &DbPool,
    instance: &str,
    records: impl Iterator<Item = Result<ExportedRequest, serde_json::Error>>,
) -> Result<ImportedRequests, ApiError> {
    let mut done = ImportedRequests::default();
    for (line, record) in records.enumerate() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                // the file matched the manifest: a record that does not read is the exporter's
                // and so is every one after it
                done.refused
                    .push((format!("record {}", line + 1), e.to_string()));
                break;
            }
        };
        let which = format!("request {} of {instance}", record.id);
        match import_one(pool, instance, record).await {
            Ok(true) => done.imported += 1,
            Ok(false) => done.present += 1,
            Err(Refused::Record(why)) => done.refused.push((which, why)),
            Err(Refused::Database(e)) => return Err(e),
        }
    }
    Ok(done)
}

enum Refused {
    Record(String),
    Database(ApiError),
}

impl From<diesel::result::Error> for Refused {
    fn from(e: diesel::result::Error) -> Self {
        Refused::Database(e.into())
    }
}

async fn import_one(
    pool: &DbPool,
    instance: &str,
    record: ExportedRequest,
) -> Result<bool, Refused> {
    if !record.state.is_final() {
        return Err(Refused::Record(format!(
            "it is {}: only finished requests are carried",
            record.state
        )));
    }
    if let Some(s) = record
        .state_history
        .iter()
        .find(|s| s.state.parse::<RequestState>().is_err())
    {
        return Err(Refused::Record(format!(
            "its history holds an unknown state {:?}",
            s.state
        )));
    }
    if let Some(origin) = record
        .error_origin
        .as_deref()
        .filter(|o| serde_json::from_value::<ErrorOrigin>(serde_json::json!(o)).is_err())
    {
        return Err(Refused::Record(format!(
            "its error origin {origin:?} is neither client nor server"
        )));
    }
    let checked = match record.packages_data {
        Some(data) => {
            let body = data.get().as_bytes().to_vec();
            let checked =
                tokio::task::spawn_blocking(move || crate::v1::files::checked_packages_data(body))
                    .await
                    .map_err(|e| Refused::Database(ApiError::internal(e.to_string())))?;
            Some(checked.map_err(|e| Refused::Record(e.message))?)
        }
        None => None,
    };
    let clean = |text: &str| common::text::clean(text, common::text::MAX_REASON_BYTES);
    let mut conn = pool.get().await.map_err(|e| Refused::Database(e.into()))?;
    conn.transaction::<_, Refused, _>(async |conn| {
        let id: Option<i64> = diesel::insert_into(requests::table)
            .values((
                requests::repo.eq(&record.repo),
                requests::git_ref.eq(&record.git_ref),
                requests::pkg_managers.eq(&record.pkg_managers),
                requests::packages.eq(&record.packages),
                requests::flags.eq(&record.flags),
                requests::dependency_replacements.eq(&record.dependency_replacements),
                requests::user_name.eq(&record.user),
                requests::submitted_by.eq(&record.submitted_by),
                requests::created.eq(record.created),
                requests::state.eq(record.state.as_str()),
                requests::state_reason.eq(clean(&record.state_reason)),
                requests::updated.eq(record.updated),
                requests::error_origin.eq(&record.error_origin),
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
            return Ok(false);
        };
        let states: Vec<_> = record
            .state_history
            .iter()
            .map(|s| {
                (
                    request_states::request_id.eq(id),
                    request_states::state.eq(&s.state),
                    request_states::state_reason.eq(clean(&s.state_reason)),
                    request_states::updated.eq(s.updated),
                )
            })
            .collect();
        diesel::insert_into(request_states::table)
            .values(states)
            .execute(conn)
            .await?;
        if let Some((json, index)) = checked {
            diesel::sql_query("UPDATE requests SET packages_data = $1::jsonb WHERE id = $2")
                .bind::<diesel::sql_types::Text, _>(json)
                .bind::<diesel::sql_types::BigInt, _>(id)
                .execute(conn)
                .await?;
            index.write(conn, id).await.map_err(Refused::Database)?;
        }
        Ok(true)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_db::TestDb;

    fn record(id: i64, state: &str) -> ExportedRequest {
        let now = chrono::Utc::now().naive_utc();
        serde_json::from_value(serde_json::json!({
            "id": id,
            "repo": "https://example.com/<script>alert(1)</script>.git",
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
        let records = || (1..=30).map(|id| Ok(record(id, "complete")));
        let (a, b) = tokio::join!(
            import_requests(&db.pool, "a1", records()),
            import_requests(&db.pool, "a1", records())
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!((a.imported + b.imported, a.present + b.present), (30, 30));
        let mut conn = db.pool.get().await.unwrap();
        let rows: i64 = requests::table.count().get_result(&mut conn).await.unwrap();
        let states: i64 = request_states::table
            .count()
            .get_result(&mut conn)
            .await
            .unwrap();
        let indexed: i64 = crate::schema::request_dependencies::table
            .count()
            .get_result(&mut conn)
            .await
            .unwrap();
        assert_eq!((rows, states, indexed), (30, 30, 30));

        // the same ids from another instance are other requests
        let other = import_requests(&db.pool, "b2", records()).await.unwrap();
        assert_eq!(other.imported, 30);

        let mut in_progress = record(31, "in_progress");
        in_progress.state_history.clear();
        let mut bad_origin = record(32, "failed");
        bad_origin.error_origin = Some("<b>".into());
        let mut bad_history = record(33, "complete");
        bad_history.state_history[0].state = "done".into();
        let mut bad_data = record(34, "complete");
        bad_data.packages_data = Some(RawValue::from_string("{\"packages\": 1}".into()).unwrap());
        let done = import_requests(
            &db.pool,
            "a1",
            [in_progress, bad_origin, bad_history, bad_data]
                .into_iter()
                .map(Ok),
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
                "request 34 of a1"
            ],
            "{:?}",
            done.refused
        );
        let rows: i64 = requests::table.count().get_result(&mut conn).await.unwrap();
        assert_eq!(rows, 60);
    }
}
