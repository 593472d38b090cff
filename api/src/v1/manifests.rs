//! Manifests of several requests: `/api/v1/content-manifest` and `/api/v1/sbom`.

use crate::error::{ApiError, ApiResult};
use crate::models::{ArtifactRow, RequestRow};
use crate::schema::{artifacts, requests};
use crate::AppState;
use actix_web::{web, HttpResponse};
use common::sbom::{SbomContext, SbomInput};
use common::{Artifact, PackagesData};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// Parse `requests=1,2,3` (blanks skipped, duplicates merged) and load them, all complete.
async fn complete_requests(
    state: &AppState,
    query: &[(String, String)],
    allowed: &[&str],
) -> ApiResult<Vec<(RequestRow, PackagesData)>> {
    let mut ids: Vec<i64> = Vec::new();
    for (k, v) in query {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!(
                "The following query parameters are invalid: {k}"
            )));
        }
        if k != "requests" {
            continue;
        }
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let id: i64 = item
                .parse()
                .map_err(|_| ApiError::bad_request(format!("{item} is not an integer.")))?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = state.pool.get().await?;
    let rows: Vec<RequestRow> = crate::on!(&mut conn, c => {
        requests::table
            .filter(requests::id.eq_any(&ids))
            .select(RequestRow::as_select())
            .load(c)
            .await
    })?;
    let missing: Vec<String> = ids
        .iter()
        .filter(|id| !rows.iter().any(|r| r.id == **id))
        .map(|id| id.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Cannot find request(s) {}.",
            missing.join(", ")
        )));
    }
    let unfinished: Vec<String> = ids
        .iter()
        .filter_map(|id| rows.iter().find(|r| r.id == *id))
        .filter(|r| r.state != "complete")
        .map(|r| {
            format!(
                "Request {} is in state {}, not in {{'complete'}}.",
                r.id, r.state
            )
        })
        .collect();
    if !unfinished.is_empty() {
        return Err(ApiError::bad_request(unfinished.join("\n")));
    }
    let mut data = Vec::with_capacity(ids.len());
    let mut rows = rows;
    for id in &ids {
        let Some(at) = rows.iter().position(|r| r.id == *id) else {
            continue;
        };
        let row = rows.swap_remove(at);
        let packages = crate::v1::requests::packages_data(&mut conn, *id)
            .await?
            .unwrap_or_default();
        data.push((row, packages));
    }
    Ok(data)
}

pub async fn content_manifest(
    state: web::Data<AppState>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    let data = complete_requests(&state, &query, &["requests"]).await?;
    let data: Vec<Option<PackagesData>> = data.into_iter().map(|(_, d)| Some(d)).collect();
    Ok(HttpResponse::Ok().json(common::manifest::merged_content_manifest(&data)))
}

/// The SBOM formats Larder writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SbomFormat {
    CycloneDx,
    Spdx,
}

fn sbom_format(query: &[(String, String)]) -> ApiResult<SbomFormat> {
    match query
        .iter()
        .rev()
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v.as_str())
        .unwrap_or("cyclonedx")
    {
        "cyclonedx" => Ok(SbomFormat::CycloneDx),
        "spdx" => Ok(SbomFormat::Spdx),
        other => Err(ApiError::bad_request(format!(
            "The SBOM format {} is not supported: use cyclonedx or spdx",
            other.escape_debug()
        ))),
    }
}

/// Every artifact recorded for a request (those whose metadata no longer reads are left out:
/// they add no evidence).
async fn request_artifacts(conn: &mut impl crate::db::AsDb, id: i64) -> ApiResult<Vec<Artifact>> {
    // `as_select` is typed by the backend: built in each arm
    let rows: Vec<ArtifactRow> = crate::on!(conn, c => {
        artifacts::table
            .filter(artifacts::request_id.eq(id))
            .select(ArtifactRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            row.into_artifact()
                .inspect_err(|(store_key, e)| {
                    tracing::warn!(request_id = id, %store_key, error = %e, "an artifact's metadata is unreadable: left out of the SBOM");
                })
                .ok()
        })
        .collect())
}

/// Build the SBOM of loaded requests in `format`.
async fn write_sbom(
    state: &AppState,
    requests: &[(RequestRow, PackagesData)],
    format: SbomFormat,
) -> ApiResult<HttpResponse> {
    let mut conn = state.pool.get().await?;
    let mut artifacts = Vec::with_capacity(requests.len());
    for (row, _) in requests {
        artifacts.push(request_artifacts(&mut conn, row.id).await?);
    }
    drop(conn);
    let inputs: Vec<SbomInput<'_>> = requests
        .iter()
        .zip(&artifacts)
        .map(|((row, data), artifacts)| SbomInput {
            id: row.id,
            repo: &row.repo,
            git_ref: &row.git_ref,
            data,
            artifacts,
        })
        .collect();
    let timestamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let uuid = common::sbom::new_uuid();
    let namespace = format!(
        "{}/api/v1/sbom/spdx",
        state.config.public_url.trim_end_matches('/')
    );
    let ctx = SbomContext {
        timestamp: &timestamp,
        uuid: &uuid,
        tool_version: env!("CARGO_PKG_VERSION"),
        url: &namespace,
    };
    let body = match format {
        SbomFormat::CycloneDx => common::sbom::cyclonedx(&inputs, &ctx),
        SbomFormat::Spdx => common::sbom::spdx(&inputs, &ctx),
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

/// `GET /api/v1/sbom?requests=1,2[&format=cyclonedx|spdx]`: the merged SBOM of several
/// complete requests.
pub async fn sbom(
    state: web::Data<AppState>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    let format = sbom_format(&query)?;
    let data = complete_requests(&state, &query, &["requests", "format"]).await?;
    write_sbom(&state, &data, format).await
}

/// `GET /api/v1/requests/{id}/sbom[?format=cyclonedx|spdx]`: one complete request's SBOM.
pub async fn request_sbom(
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    if let Some((k, _)) = query.iter().find(|(k, _)| k != "format") {
        return Err(ApiError::bad_request(format!(
            "The following query parameters are invalid: {k}"
        )));
    }
    let format = sbom_format(&query)?;
    let mut conn = state.pool.get().await?;
    let row = crate::v1::requests::find(&mut conn, *id).await?;
    if row.state != "complete" {
        return Err(ApiError::bad_request(
            "SBOMs are only available for requests in the \"complete\" state",
        ));
    }
    let data = crate::v1::requests::packages_data(&mut conn, row.id)
        .await?
        .unwrap_or_default();
    drop(conn);
    write_sbom(&state, &[(row, data)], format).await
}
