//! `GET /api/v1/transfers`: the store's exports and imports (`larder export`, `larder import`),
//! newest first, with their time ranges and counts.

use crate::error::{ApiError, ApiResult};
use crate::schema::transfers;
use crate::v1::pagination::{PageMeta, Pagination};
use crate::AppState;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;

#[derive(Queryable, Selectable)]
#[diesel(table_name = transfers)]
struct TransferRow {
    id: i64,
    kind: String,
    instance: String,
    since: Option<chrono::NaiveDateTime>,
    until: chrono::NaiveDateTime,
    directory: String,
    state: String,
    state_reason: String,
    started: chrono::NaiveDateTime,
    finished: Option<chrono::NaiveDateTime>,
    objects: i64,
    bytes: i64,
    present: i64,
    refused: i64,
    requests: i64,
}

#[derive(Serialize)]
struct Item {
    id: i64,
    kind: String,
    instance: String,
    since: Option<String>,
    until: String,
    directory: String,
    state: String,
    state_reason: String,
    started: String,
    finished: Option<String>,
    objects: i64,
    bytes: i64,
    present: i64,
    refused: i64,
    requests: i64,
}

pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    let mut pagination = Pagination::default();
    for (k, v) in query.iter() {
        if !pagination.accept(k, v)? {
            return Err(ApiError::bad_request(format!(
                "The following query parameters are invalid: {k}"
            )));
        }
    }
    let mut conn = state.pool.get().await?;
    let total: i64 = crate::on!(&mut conn, c => transfers::table.count().get_result(c).await)?;
    let offset = pagination.offset()?;
    // `as_select()` is typed by backend: built in each arm
    let rows: Vec<TransferRow> = crate::on!(&mut conn, c => {
        transfers::table
            .order(transfers::id.desc())
            .offset(offset)
            .limit(pagination.per_page)
            .select(TransferRow::as_select())
            .load(c)
            .await
    })?;
    pagination.check_exists(rows.len())?;
    let time = |t: &chrono::NaiveDateTime| common::format_time(t);
    let items: Vec<Item> = rows
        .into_iter()
        .map(|t| Item {
            id: t.id,
            since: t.since.as_ref().map(time),
            until: time(&t.until),
            started: time(&t.started),
            finished: t.finished.as_ref().map(time),
            kind: t.kind,
            instance: t.instance,
            directory: t.directory,
            state: t.state,
            state_reason: t.state_reason,
            objects: t.objects,
            bytes: t.bytes,
            present: t.present,
            refused: t.refused,
            requests: t.requests,
        })
        .collect();
    let meta = pagination.meta(total, |page| {
        pagination.link(&state.config.public_url, "/api/v1/transfers", page, &[])
    });
    #[derive(Serialize)]
    struct Page {
        items: Vec<Item>,
        meta: PageMeta,
    }
    Ok(HttpResponse::Ok().json(Page { items, meta }))
}
