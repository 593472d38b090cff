//! A request's log: the lines its workers send (`POST …/logs`, kept in `request_log_chunks`),
//! served in the order they arrived by whichever api instance is asked.

use crate::auth;
use crate::db::DbPool;
use crate::error::{ApiError, ApiResult};
use crate::v1::requests::find;
use crate::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use diesel::sql_types::{BigInt, Binary, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};
use futures_util::{stream, Stream, StreamExt};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Chunks read per query while serving a log: at most this many times
/// [`common::LOG_CHUNK_LIMIT`] is held at once, whatever the log's size.
const CHUNKS_PER_PAGE: i64 = 8;

const TEXT: &str = "text/plain; charset=utf-8";

/// `GET /api/v1/requests/{id}/logs`: the log file an earlier version wrote, if the store
/// still has one, then the chunks in the database. A request in progress with nothing logged
/// yet has an empty log; a stale one's is gone.
pub async fn get(state: web::Data<AppState>, id: web::Path<i64>) -> ApiResult<HttpResponse> {
    let mut conn = state.pool.get().await?;
    let row = find(&mut conn, *id).await?;
    if row.state == "stale" {
        return Err(ApiError::gone(format!(
            "The logs for the Larder request {} no longer exist",
            row.id
        )));
    }
    let logged: Logged = crate::on!(&mut conn, c => diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM request_log_chunks WHERE request_id = $1) AS any",
    )
    .bind::<BigInt, _>(row.id)
    .get_result(c)
    .await)?;
    drop(conn);
    let path = state.store.path(&common::store::log_key(row.id))?;
    let legacy_file = tokio::fs::File::open(&path).await.ok();
    if legacy_file.is_none() && !logged.any {
        return match row.state.as_str() {
            "in_progress" => Ok(HttpResponse::Ok().content_type(TEXT).finish()),
            _ => Err(ApiError::not_found()),
        };
    }
    let counter = state.bytes_downloaded.counting();
    let file_part = match legacy_file {
        Some(file) => crate::v1::files::stream_file(file, counter.clone()).left_stream(),
        None => stream::empty().right_stream(),
    };
    let chunks = stored_chunks(state.pool.clone(), row.id, counter);
    Ok(HttpResponse::Ok()
        .content_type(TEXT)
        .streaming(file_part.chain(chunks)))
}

#[derive(diesel::QueryableByName)]
struct Logged {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    any: bool,
}

#[derive(diesel::QueryableByName)]
struct Chunk {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Binary)]
    body: Vec<u8>,
}

/// The request's chunks in order, a page per query, with a pooled connection taken for each
/// page only (a slow reader holds none).
fn stored_chunks(
    pool: DbPool,
    request_id: i64,
    counter: Arc<AtomicU64>,
) -> impl Stream<Item = Result<web::Bytes, std::io::Error>> {
    struct Reading {
        pool: DbPool,
        after: i64,
        page: VecDeque<Chunk>,
        last_page: bool,
    }
    let start = Reading {
        pool,
        after: 0,
        page: VecDeque::new(),
        last_page: false,
    };
    stream::unfold(start, move |mut reading| {
        let counter = counter.clone();
        async move {
            if reading.page.is_empty() && !reading.last_page {
                match next_page(&reading.pool, request_id, reading.after).await {
                    Ok(page) => {
                        reading.last_page = (page.len() as i64) < CHUNKS_PER_PAGE;
                        reading.page = page.into();
                    }
                    Err(e) => {
                        tracing::warn!(request_id, error = %e, "could not read the request's log");
                        reading.last_page = true;
                        return Some((Err(std::io::Error::other(e.to_string())), reading));
                    }
                }
            }
            let chunk = reading.page.pop_front()?;
            reading.after = chunk.id;
            counter.fetch_add(chunk.body.len() as u64, Ordering::Relaxed);
            Some((Ok(web::Bytes::from(chunk.body)), reading))
        }
    })
}

async fn next_page(pool: &DbPool, request_id: i64, after: i64) -> ApiResult<Vec<Chunk>> {
    let mut conn = pool.get().await?;
    Ok(crate::on!(&mut conn, c => diesel::sql_query(
        "SELECT id, body FROM request_log_chunks WHERE request_id = $1 AND id > $2 \
         ORDER BY id LIMIT $3",
    )
    .bind::<BigInt, _>(request_id)
    .bind::<BigInt, _>(after)
    .bind::<BigInt, _>(CHUNKS_PER_PAGE)
    .load(c)
    .await)?)
}

/// Who sent a chunk and its number among that sender's chunks: the same pair sent again (its
/// answer was lost) is stored once.
#[derive(serde::Deserialize)]
pub struct ChunkId {
    writer: String,
    seq: i64,
}

/// The longest `writer` name (a host name, a process id and a random suffix).
const MAX_WRITER_BYTES: usize = 256;

#[derive(diesel::QueryableByName)]
struct StateRow {
    #[diesel(sql_type = Text)]
    state: String,
}

/// Worker-only `POST /api/v1/requests/{id}/logs?writer=…&seq=…`: append whole lines (UTF-8,
/// no control character but tab and newline, the last one ended too) to the request's log. Refused (410) once the request is stale: its log is gone.
pub async fn append(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    chunk: web::Query<ChunkId>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    auth::require_worker(&req)?;
    if chunk.writer.is_empty()
        || chunk.writer.len() > MAX_WRITER_BYTES
        || crate::v1::validation::has_control(&chunk.writer)
    {
        return Err(ApiError::bad_request(format!(
            "The \"writer\" parameter must be 1 to {MAX_WRITER_BYTES} bytes of printable text"
        )));
    }
    let body = crate::v1::files::read_body(&req, payload, common::LOG_CHUNK_LIMIT).await?;
    if body.is_empty() {
        return Ok(HttpResponse::NoContent().finish());
    }
    // whole lines of clean text: chunks are served one after the other, as they are
    let lines = std::str::from_utf8(&body).ok();
    if !lines.is_some_and(|text| text.ends_with('\n') && common::text::is_clean(text)) {
        return Err(ApiError::bad_request(
            "The request body must be whole lines of UTF-8 text without control characters",
        ));
    }
    let mut conn = state.pool.get().await?;
    let id = *id;
    crate::on!(&mut conn, c => crate::transaction!(c, ApiError, async |conn| {
        // not a WAL flush per chunk: the request's completion (or failure) commits durably
        // after its last chunk, and takes every chunk before it to disk; a database crash can
        // lose only the lines of its last moments (PostgreSQL only: SQLite's commits all wait
        // for the disk)
        if !SQLITE {
            diesel::sql_query("SET LOCAL synchronous_commit TO OFF")
                .execute(conn)
                .await?;
        }
        // KEY SHARE: going stale (FOR UPDATE, which removes the chunks) waits for this
        // append, and this one for it, so no chunk outlives its request's log (SQLite's one
        // connection runs the two one after the other anyway)
        let row: StateRow = diesel::sql_query(crate::sql!(
            postgres: "SELECT state FROM requests WHERE id = $1 FOR KEY SHARE",
            sqlite: "SELECT state FROM requests WHERE id = $1",
        ))
        .bind::<BigInt, _>(id)
        .get_result(conn)
        .await?;
        if row.state == "stale" {
            return Err(ApiError::gone(format!(
                "The logs for the Larder request {id} no longer exist"
            )));
        }
        diesel::sql_query(
            "INSERT INTO request_log_chunks (request_id, writer, writer_seq, body) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (request_id, writer, writer_seq) DO NOTHING",
        )
        .bind::<BigInt, _>(id)
        .bind::<Text, _>(&chunk.writer)
        .bind::<BigInt, _>(chunk.seq)
        .bind::<Binary, _>(&body)
        .execute(conn)
        .await?;
        Ok(())
    }))?;
    Ok(HttpResponse::NoContent().finish())
}

/// A stale request's log goes with it (in the transaction that makes it stale).
pub async fn remove(conn: &mut impl crate::db::AsDb, id: i64) -> ApiResult<()> {
    crate::on!(conn, c => diesel::sql_query("DELETE FROM request_log_chunks WHERE request_id = $1")
        .bind::<BigInt, _>(id)
        .execute(c)
        .await)?;
    Ok(())
}
