//! What the pages' script polls: the states of the requests a list shows (`/ui/states?ids=`),
//! and one request's state and log tail (`/ui/requests/{id}/live`). Small JSON, primary-key
//! lookups: a poll costs the same whatever the number of requests.

use super::UiResult;
use crate::auth;
use crate::error::ApiError;
use crate::schema::requests;
use crate::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Integer};
use diesel_async::RunQueryDsl;
use serde::Serialize;

/// The most ids one poll asks about (a list page shows at most 100 requests).
pub const MAX_IDS: usize = 100;
/// The bytes of a log's end a page shows.
pub const LOG_TAIL_BYTES: usize = 64 << 10;
/// The lines of a log's end a page shows.
pub const LOG_TAIL_LINES: usize = 200;

#[derive(Serialize, Queryable)]
pub struct LiveState {
    pub id: i64,
    pub state: String,
    pub state_reason: String,
}

/// `ids=1,2,3` as request ids: at most [`MAX_IDS`], each an integer of at least 1.
pub fn parse_ids(req: &HttpRequest) -> Result<Vec<i64>, ApiError> {
    let mut ids = Vec::new();
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        if k != "ids" {
            return Err(ApiError::bad_request(format!(
                "The following query parameters are invalid: {k}"
            )));
        }
        for id in v.split(',').filter(|s| !s.is_empty()) {
            let id = id.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                ApiError::bad_request(
                    "The \"ids\" parameter must be request ids separated by commas",
                )
            })?;
            ids.push(id);
        }
    }
    if ids.len() > MAX_IDS {
        return Err(ApiError::bad_request(format!(
            "The \"ids\" parameter names at most {MAX_IDS} requests"
        )));
    }
    Ok(ids)
}

/// `GET /ui/states?ids=1,2`: `{"requests": [{"id", "state", "state_reason"}]}` of those that
/// exist. Errors in the API's JSON shape: a script reads this.
pub async fn states(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::caller(&req)?;
    let ids = parse_ids(&req)?;
    let found: Vec<LiveState> = if ids.is_empty() {
        Vec::new()
    } else {
        let mut conn = state.pool.get().await?;
        let q = requests::table.filter(requests::id.eq_any(ids)).select((
            requests::id,
            requests::state,
            requests::state_reason,
        ));
        crate::on!(&mut conn, c => q.load(c).await)?
    };
    #[derive(Serialize)]
    struct States {
        requests: Vec<LiveState>,
    }
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(States { requests: found }))
}

#[derive(diesel::QueryableByName)]
struct TailChunk {
    #[diesel(sql_type = Binary)]
    body: Vec<u8>,
}

/// The end of a request's log: the last [`LOG_TAIL_LINES`] whole lines of at most
/// [`LOG_TAIL_BYTES`] of what `GET …/logs` serves (the file an earlier version wrote, if the
/// store still has one, then the chunks in the database), read from the file's end and the last
/// chunks only (each cut to that size in the query).
pub async fn log_tail(
    conn: &mut impl crate::db::AsDb,
    store: &common::store::Store,
    request_id: i64,
) -> Result<String, ApiError> {
    // SQLite: `length` of a blob is its bytes, `substr` of a blob cuts bytes. Its `$n` are
    // numbered by first appearance: the size comes first in the text, so it is `$1` and bound
    // first there.
    let chunks: Vec<TailChunk> = crate::on!(conn, c => {
        if SQLITE {
            diesel::sql_query(
                "SELECT substr(body, max(length(body) - $1 + 1, 1)) AS body \
                 FROM request_log_chunks WHERE request_id = $2 ORDER BY id DESC LIMIT 4",
            )
            .bind::<Integer, _>(LOG_TAIL_BYTES as i32)
            .bind::<BigInt, _>(request_id)
            .load(c)
            .await
        } else {
            diesel::sql_query(
                "SELECT substring(body FROM greatest(octet_length(body) - $2 + 1, 1)) AS body \
                 FROM request_log_chunks WHERE request_id = $1 ORDER BY id DESC LIMIT 4",
            )
            .bind::<BigInt, _>(request_id)
            .bind::<Integer, _>(LOG_TAIL_BYTES as i32)
            .load(c)
            .await
        }
    })?;
    let mut bytes = Vec::new();
    for chunk in chunks.into_iter().rev() {
        bytes.extend_from_slice(&chunk.body);
    }
    if bytes.len() < LOG_TAIL_BYTES {
        let path = store.path(&common::store::log_key(request_id))?;
        let mut from_file = file_end(&path, LOG_TAIL_BYTES - bytes.len())
            .await
            .map_err(|e| ApiError::internal(format!("reading {}: {e}", path.display())))?;
        from_file.extend_from_slice(&bytes);
        bytes = from_file;
    }
    Ok(tail_of(&bytes))
}

/// The last `limit` bytes of the file at `path`; none if there is no such file.
async fn file_end(path: &std::path::Path, limit: usize) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata().await?.len();
    let start = len.saturating_sub(limit as u64);
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let mut bytes = Vec::with_capacity((len - start) as usize);
    file.take(limit as u64).read_to_end(&mut bytes).await?;
    Ok(bytes)
}

/// The last whole lines of `bytes`, within the bounds above.
pub fn tail_of(bytes: &[u8]) -> String {
    let mut start = bytes.len().saturating_sub(LOG_TAIL_BYTES);
    if start > 0 {
        // from the first whole line
        if let Some(newline) = bytes[start..].iter().position(|b| *b == b'\n') {
            start += newline + 1;
        }
    }
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// `GET /ui/requests/{id}/live`: `{"id", "state", "state_reason", "log_tail"}`.
pub async fn request(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> UiResult<HttpResponse> {
    auth::caller(&req)?;
    let id = super::request_detail::parse_id(&id)?;
    let mut conn = state.pool.get().await?;
    let q =
        requests::table
            .find(id)
            .select((requests::id, requests::state, requests::state_reason));
    let found: LiveState = crate::on!(&mut conn, c => q.first(c).await)?;
    let log_tail = log_tail(&mut conn, &state.store, id).await?;
    #[derive(Serialize)]
    struct Live {
        #[serde(flatten)]
        request: LiveState,
        log_tail: String,
    }
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(Live {
            request: found,
            log_tail,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log's end, cut in bytes, is the same from PostgreSQL and SQLite.
    #[tokio::test(flavor = "multi_thread")]
    async fn postgresql_and_sqlite_agree_on_the_tail() {
        let pg = crate::test_db::TestDb::new().await;
        let lite = crate::test_db::TestSqlite::new().await;
        let dir = tempfile::tempdir().unwrap();
        let store = common::store::Store::new(dir.path().join("store"));
        let mut answers = Vec::new();
        for pool in [&pg.pool, &lite.pool] {
            let mut conn = pool.get().await.unwrap();
            let bodies: [Vec<u8>; 6] = [
                b"first\n".to_vec(),
                "é ünïcode line\n".repeat(3000).into_bytes(),
                b"\xff\xfe raw bytes\n".to_vec(),
                "x".repeat(LOG_TAIL_BYTES + 17).into_bytes(),
                "\nafter é\n".into(),
                b"last".to_vec(),
            ];
            crate::test_db::insert_request(
                &mut conn,
                1,
                "in_progress",
                chrono::NaiveDateTime::default(),
            )
            .await;
            crate::test_db::insert_request(
                &mut conn,
                2,
                "in_progress",
                chrono::NaiveDateTime::default(),
            )
            .await;
            let mut answer = Vec::new();
            for (seq, body) in bodies.iter().enumerate() {
                let insert = diesel::sql_query(
                    "INSERT INTO request_log_chunks (request_id, writer, writer_seq, body) \
                     VALUES (1, 'w', $1, $2)",
                )
                .bind::<BigInt, _>(seq as i64)
                .bind::<Binary, _>(body);
                crate::on!(&mut conn, c => insert.execute(c).await).unwrap();
                answer.push(log_tail(&mut conn, &store, 1).await.unwrap());
            }
            answer.push(log_tail(&mut conn, &store, 2).await.unwrap());
            answers.push(answer);
        }
        assert_eq!(answers[0], answers[1]);
        assert!(
            answers[1][5].ends_with("after é\nlast"),
            "{:?}",
            answers[1][5]
        );
        assert_eq!(answers[1][6], "");
    }

    #[test]
    fn the_tail_is_whole_lines_within_bounds() {
        let log: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let tail = tail_of(log.as_bytes());
        assert_eq!(tail.lines().count(), LOG_TAIL_LINES);
        assert!(tail.ends_with("line 999"));
        assert!(tail.starts_with("line 800"));
        let long = format!("{}\nlast\n", "x".repeat(LOG_TAIL_BYTES * 2));
        assert_eq!(tail_of(long.as_bytes()), "last");
        assert_eq!(tail_of(b""), "");
        assert_eq!(
            tail_of(b"\xff\xfe bad utf-8\n"),
            "\u{fffd}\u{fffd} bad utf-8"
        );
    }

    #[test]
    fn ids_are_bounded_and_checked() {
        let req = |q: &str| {
            actix_web::test::TestRequest::get()
                .uri(&format!("/ui/states?{q}"))
                .to_http_request()
        };
        assert_eq!(parse_ids(&req("ids=1,2,3")).unwrap(), [1, 2, 3]);
        assert_eq!(parse_ids(&req("")).unwrap(), Vec::<i64>::new());
        let many: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
        for bad in [
            "ids=x",
            "ids=0",
            "other=1",
            &format!("ids={}", many.join(",")),
        ] {
            assert_eq!(parse_ids(&req(bad)).unwrap_err().status, 400, "{bad}");
        }
    }
}
