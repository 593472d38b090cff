//! Manifests of several requests: `/api/v1/content-manifest` and `/api/v1/sbom`.

use crate::error::{ApiError, ApiResult};
use crate::models::RequestRow;
use crate::schema::requests;
use crate::AppState;
use actix_web::{web, HttpResponse};
use common::PackagesData;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// Parse `requests=1,2,3` (blanks skipped, duplicates merged) and load them, all complete.
async fn complete_requests(
    state: &AppState,
    query: &[(String, String)],
    allowed: &[&str],
) -> ApiResult<Vec<PackagesData>> {
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
    let rows: Vec<RequestRow> = requests::table
        .filter(requests::id.eq_any(&ids))
        .select(RequestRow::as_select())
        .load(&mut conn)
        .await?;
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
    for id in &ids {
        data.push(
            crate::v1::requests::packages_data(&mut conn, *id)
                .await?
                .unwrap_or_default(),
        );
    }
    Ok(data)
}

pub async fn content_manifest(
    state: web::Data<AppState>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    let data = complete_requests(&state, &query, &["requests"]).await?;
    let data: Vec<Option<PackagesData>> = data.into_iter().map(Some).collect();
    Ok(HttpResponse::Ok().json(common::manifest::merged_content_manifest(&data)))
}

pub async fn sbom(
    state: web::Data<AppState>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    let data = complete_requests(&state, &query, &["requests", "format"]).await?;
    let format = query
        .iter()
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v.as_str())
        .unwrap_or("cyclonedx");
    match format {
        "cyclonedx" => Ok(HttpResponse::Ok().json(common::manifest::cyclonedx(&data))),
        "spdx" => {
            let ids: Vec<&str> = query
                .iter()
                .filter(|(k, _)| k == "requests")
                .map(|(_, v)| v.as_str())
                .collect();
            let namespace = format!(
                "{}/api/v1/sbom?requests={}",
                state.config.public_url.trim_end_matches('/'),
                ids.join(",")
            );
            let created = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            Ok(HttpResponse::Ok().json(common::manifest::spdx(&data, &namespace, &created)))
        }
        other => Err(ApiError::bad_request(format!(
            "The SBOM format {other} is not supported: use cyclonedx or spdx"
        ))),
    }
}
