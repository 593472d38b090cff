//! `GET /api/v1/dependencies`: which requests contain a dependency, by its exact purl or by its
//! type and name (any version, or one), newest first, paginated as the request list.
//!
//! Read from `request_dependencies` (filled when the worker reports a request's packages,
//! `files.rs`): an index lookup, never a scan of the packages data.

use crate::auth;
use crate::error::{ApiError, ApiResult};
use crate::v1::pagination::{PageMeta, Pagination};
use crate::v1::validation::check_text;
use crate::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use common::RequestState;
use diesel::sql_types::{BigInt, Bool, Text, Timestamp};
use diesel_async::RunQueryDsl;
use serde::Serialize;

/// The longest purl, type, name or version a search reads (and the index holds: see
/// [`INDEXED_BYTES`]).
const MAX_PARAMETER_BYTES: usize = 2048;
/// Dependencies whose purl, or type, name and version together, are longer are not indexed
/// (a PostgreSQL b-tree entry holds at most about 2,700 bytes).
pub const INDEXED_BYTES: usize = 2048;

/// What is searched for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// the search key of a purl (`common::purl::search_key`)
    Purl { given: String, key: String },
    Name {
        kind: String,
        name: String,
        version: Option<String>,
    },
}

#[derive(Debug)]
pub(crate) struct SearchQuery {
    pub(crate) pagination: Pagination,
    pub(crate) target: Target,
    pub(crate) state: Option<RequestState>,
    /// Only requests older than this one (the web page's keyset paging; the API pages by
    /// `page`).
    pub(crate) before: Option<i64>,
}

const NEEDS_TARGET: &str =
    "Either the \"purl\" parameter or the \"type\" and \"name\" parameters are required";

impl SearchQuery {
    pub(crate) fn parse(pairs: &[(String, String)]) -> ApiResult<Self> {
        let mut pagination = Pagination::default();
        let (mut purl, mut kind, mut name, mut version, mut state) = (None, None, None, None, None);
        let mut invalid = Vec::new();
        for (k, v) in pairs {
            if pagination.accept(k, v)? {
                continue;
            }
            let slot = match k.as_str() {
                "purl" => &mut purl,
                "type" => &mut kind,
                "name" => &mut name,
                "version" => &mut version,
                "state" => &mut state,
                other => {
                    invalid.push(other.to_string());
                    continue;
                }
            };
            check_text(k, v)?;
            if v.len() > MAX_PARAMETER_BYTES {
                return Err(ApiError::bad_request(format!(
                    "The \"{k}\" parameter must be at most {MAX_PARAMETER_BYTES} bytes"
                )));
            }
            if slot.is_some() {
                return Err(ApiError::bad_request(format!(
                    "The \"{k}\" parameter must be given once"
                )));
            }
            *slot = Some(v.clone());
        }
        if !invalid.is_empty() {
            return Err(ApiError::bad_request(format!(
                "The following query parameters are invalid: {}",
                invalid.join(", ")
            )));
        }
        let state = state
            .map(|s| {
                s.parse::<RequestState>().map_err(|_| {
                    ApiError::bad_request(format!("{s} is not a valid request state. Valid states are: complete, failed, in_progress, stale"))
                })
            })
            .transpose()?;
        let target = match (purl, kind, name) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(ApiError::bad_request(
                    "The \"purl\" parameter cannot be combined with \"type\" or \"name\"",
                ))
            }
            (Some(given), None, None) => {
                if version.is_some() {
                    return Err(ApiError::bad_request(
                        "The \"version\" parameter cannot be combined with \"purl\" (a purl names its version)",
                    ));
                }
                let key = common::purl::search_key(&given).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "The \"purl\" parameter is not a valid package URL: {given}"
                    ))
                })?;
                Target::Purl { given, key }
            }
            (None, Some(kind), Some(name)) if !kind.is_empty() && !name.is_empty() => {
                Target::Name {
                    kind,
                    name,
                    version,
                }
            }
            _ => return Err(ApiError::bad_request(NEEDS_TARGET)),
        };
        Ok(Self {
            pagination,
            target,
            state,
            before: None,
        })
    }

    /// The filters, as query pairs for pagination links.
    pub(crate) fn link_pairs(&self) -> Vec<(&str, &str)> {
        let mut pairs = Vec::new();
        match &self.target {
            Target::Purl { given, .. } => pairs.push(("purl", given.as_str())),
            Target::Name {
                kind,
                name,
                version,
            } => {
                pairs.push(("type", kind.as_str()));
                pairs.push(("name", name.as_str()));
                if let Some(v) = version {
                    pairs.push(("version", v.as_str()));
                }
            }
        }
        if let Some(s) = self.state {
            pairs.push(("state", s.as_str()));
        }
        pairs
    }

    /// `FROM … WHERE …` over the index (and the requests, for a state), with its binds from
    /// `$1`, and the next free bind number.
    pub(crate) fn sql_from_where(&self) -> (String, usize) {
        let mut sql = String::from("FROM request_dependencies d");
        if self.state.is_some() {
            sql.push_str(" JOIN requests r ON r.id = d.request_id");
        }
        let mut n = 1;
        let mut next = || {
            let this = n;
            n += 1;
            this
        };
        match &self.target {
            Target::Purl { .. } => sql.push_str(&format!(" WHERE d.purl = ${}", next())),
            Target::Name { version, .. } => {
                sql.push_str(&format!(
                    " WHERE d.type = ${} AND d.name = ${}",
                    next(),
                    next()
                ));
                if version.is_some() {
                    sql.push_str(&format!(" AND d.version = ${}", next()));
                }
            }
        }
        if self.state.is_some() {
            sql.push_str(&format!(" AND r.state = ${}", next()));
        }
        if self.before.is_some() {
            sql.push_str(&format!(" AND d.request_id < ${}", next()));
        }
        (sql, n)
    }

    pub(crate) fn bind<'a, DB, Q>(
        &'a self,
        mut query: diesel::query_builder::BoxedSqlQuery<'a, DB, Q>,
    ) -> diesel::query_builder::BoxedSqlQuery<'a, DB, Q>
    where
        DB: diesel::backend::Backend
            + diesel::sql_types::HasSqlType<Text>
            + diesel::sql_types::HasSqlType<BigInt>,
        &'a str: diesel::serialize::ToSql<Text, DB>,
        i64: diesel::serialize::ToSql<BigInt, DB>,
        Q: diesel::query_builder::QueryFragment<DB> + Send + 'a,
    {
        match &self.target {
            Target::Purl { key, .. } => query = query.bind::<Text, _>(key.as_str()),
            Target::Name {
                kind,
                name,
                version,
            } => {
                query = query
                    .bind::<Text, _>(kind.as_str())
                    .bind::<Text, _>(name.as_str());
                if let Some(v) = version {
                    query = query.bind::<Text, _>(v.as_str());
                }
            }
        }
        if let Some(s) = self.state {
            query = query.bind::<Text, _>(s.as_str());
        }
        if let Some(before) = self.before {
            query = query.bind::<BigInt, _>(before);
        }
        query
    }

    /// The requests holding the target, newest first: `limit` of them after `offset`. The page
    /// of request ids comes from the index (in its order), then their rows.
    pub(crate) async fn page(
        &self,
        conn: &mut impl crate::db::AsDb,
        limit: i64,
        offset: i64,
    ) -> ApiResult<Vec<Found>> {
        let (from_where, n) = self.sql_from_where();
        // SQLite has no bool_and: the least of 0/1 is 1 when every one is 1
        Ok(crate::on!(conn, c => {
            self.bind(
                diesel::sql_query(format!(
                    "SELECT r.id, r.repo, r.ref AS git_ref, r.state, r.created, m.dev \
                     FROM (SELECT d.request_id, {all_dev} AS dev {from_where} \
                           GROUP BY d.request_id ORDER BY d.request_id DESC LIMIT ${} OFFSET ${}) m \
                     JOIN requests r ON r.id = m.request_id ORDER BY r.id DESC",
                    n,
                    n + 1,
                    all_dev = crate::sql!(postgres: "bool_and(d.dev)", sqlite: "min(d.dev)"),
                ))
                .into_boxed(),
            )
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(offset)
            .load(c)
            .await
        })?)
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    total: i64,
}

#[derive(diesel::QueryableByName)]
pub(crate) struct Found {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
    #[diesel(sql_type = Text)]
    pub(crate) repo: String,
    #[diesel(sql_type = Text)]
    pub(crate) git_ref: String,
    #[diesel(sql_type = Text)]
    pub(crate) state: String,
    #[diesel(sql_type = Timestamp)]
    pub(crate) created: chrono::NaiveDateTime,
    #[diesel(sql_type = Bool)]
    pub(crate) dev: bool,
}

/// One request that contains the dependency.
#[derive(Serialize)]
struct Item {
    id: i64,
    repo: String,
    #[serde(rename = "ref")]
    git_ref: String,
    state: String,
    created: String,
    /// a dev dependency in every package of the request that has it
    dev: bool,
}

pub async fn search(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    let q = SearchQuery::parse(&query)?;
    // as reading requests
    auth::caller(&req)?;
    let offset = q.pagination.offset()?;
    let (from_where, _) = q.sql_from_where();
    let mut conn = state.pool.get().await?;
    let total = match (&q.target, q.state) {
        // kept by the table's triggers: no count of a popular purl's 100,000 index entries
        (Target::Purl { key, .. }, None) => {
            let q = diesel::sql_query(
                "SELECT coalesce((SELECT requests FROM dependency_request_counts WHERE purl = $1), 0) AS total",
            )
            .bind::<Text, _>(key.as_str());
            crate::on!(&mut conn, c => q.get_result::<Count>(c).await)?.total
        }
        (target, _) => {
            // a request holds a purl once (the primary key): its rows need no DISTINCT
            let counted = match target {
                Target::Purl { .. } => "count(*)",
                Target::Name { .. } => "count(DISTINCT d.request_id)",
            };
            crate::on!(&mut conn, c => {
                q.bind(diesel::sql_query(format!("SELECT {counted} AS total {from_where}")).into_boxed())
                    .get_result::<Count>(c)
                    .await
            })?
            .total
        }
    };
    let rows = q.page(&mut conn, q.pagination.per_page, offset).await?;
    drop(conn);
    q.pagination.check_exists(rows.len())?;
    let items: Vec<Item> = rows
        .into_iter()
        .map(|f| Item {
            id: f.id,
            repo: f.repo,
            git_ref: f.git_ref,
            state: f.state,
            created: common::format_time(&f.created),
            dev: f.dev,
        })
        .collect();
    let pairs = q.link_pairs();
    let meta = q.pagination.meta(total, |page| {
        q.pagination.link(
            &state.config.public_url,
            "/api/v1/dependencies",
            page,
            &pairs,
        )
    });
    #[derive(Serialize)]
    struct Page {
        items: Vec<Item>,
        meta: PageMeta,
    }
    Ok(HttpResponse::Ok().json(Page { items, meta }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The search's page is the same on PostgreSQL and SQLite (`bool_and` and `min` of 0/1).
    #[tokio::test(flavor = "multi_thread")]
    async fn postgresql_and_sqlite_agree() {
        use crate::schema::request_dependencies as d;
        use diesel::ExpressionMethods;
        let pg = crate::test_db::TestDb::new().await;
        let lite = crate::test_db::TestSqlite::new().await;
        let created = chrono::NaiveDateTime::parse_from_str(
            "2026-01-01 10:00:00.250",
            "%Y-%m-%d %H:%M:%S%.f",
        )
        .unwrap();
        let mut answers = Vec::new();
        for pool in [&pg.pool, &lite.pool] {
            let mut conn = pool.get().await.unwrap();
            for (id, state) in [
                (1, "complete"),
                (2, "failed"),
                (3, "complete"),
                (4, "complete"),
            ] {
                crate::test_db::insert_request(&mut conn, id, state, created).await;
            }
            // (request, purl, dev): request 1 has lodash as dev and not, 2 only as dev
            for (id, purl, version, dev) in [
                (1i64, "pkg:npm/lodash@4.17.21", "4.17.21", true),
                (1, "pkg:npm/lodash@4.17.20", "4.17.20", false),
                (2, "pkg:npm/lodash@4.17.21", "4.17.21", true),
                (3, "pkg:npm/lodash@4.17.21", "4.17.21", false),
                (4, "pkg:npm/other@1", "1", true),
            ] {
                let name = if purl.contains("lodash") {
                    "lodash"
                } else {
                    "other"
                };
                crate::on!(&mut conn, c => {
                    diesel::insert_into(d::table)
                        .values((
                            d::request_id.eq(id),
                            d::purl.eq(purl),
                            d::kind.eq("npm"),
                            d::name.eq(name),
                            d::version.eq(version),
                            d::dev.eq(dev),
                        ))
                        .execute(c)
                        .await
                })
                .unwrap();
            }
            let mut answer = Vec::new();
            for query in [
                "type=npm&name=lodash",
                "type=npm&name=lodash&version=4.17.21",
                "type=npm&name=lodash&state=complete",
                "purl=pkg:npm/lodash@4.17.21",
                "purl=pkg:npm/other@1",
                "type=npm&name=nothing",
            ] {
                let mut q = parse(query).unwrap();
                for (before, limit, offset) in [(None, 10, 0), (None, 1, 1), (Some(3), 10, 0)] {
                    q.before = before;
                    let rows = q.page(&mut conn, limit, offset).await.unwrap();
                    answer.push(format!(
                        "{query} {before:?} {limit} {offset}: {:?}",
                        rows.iter()
                            .map(|f| (f.id, &f.repo, &f.git_ref, &f.state, f.created, f.dev))
                            .collect::<Vec<_>>()
                    ));
                }
            }
            answers.push(answer);
        }
        assert_eq!(answers[0], answers[1]);
        assert!(answers[1][0].contains("(3, "), "{:?}", answers[1]);
        assert!(answers[1][0].contains("false), (2, "), "{:?}", answers[1]);
    }

    fn parse(query: &str) -> ApiResult<SearchQuery> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        SearchQuery::parse(&pairs)
    }

    #[test]
    fn reads_each_form() {
        let q = parse("purl=pkg:npm/@s/n@1.0.0&state=complete&page=2").unwrap();
        assert_eq!(
            q.target,
            Target::Purl {
                given: "pkg:npm/@s/n@1.0.0".into(),
                key: "pkg:npm/%40s/n@1.0.0".into()
            }
        );
        assert_eq!(q.state, Some(RequestState::Complete));
        assert_eq!(q.sql_from_where().0, "FROM request_dependencies d JOIN requests r ON r.id = d.request_id WHERE d.purl = $1 AND r.state = $2");
        let q = parse("type=npm&name=lodash&version=4.17.21").unwrap();
        assert_eq!(
            q.sql_from_where(),
            (
                "FROM request_dependencies d WHERE d.type = $1 AND d.name = $2 AND d.version = $3"
                    .into(),
                4
            )
        );
        assert_eq!(
            q.link_pairs(),
            [("type", "npm"), ("name", "lodash"), ("version", "4.17.21")]
        );
    }

    #[test]
    fn refuses_bad_queries() {
        for (query, message) in [
            ("", NEEDS_TARGET),
            ("type=npm", NEEDS_TARGET),
            ("name=lodash", NEEDS_TARGET),
            ("type=&name=lodash", NEEDS_TARGET),
            ("purl=pkg:npm/a@1&name=a", "The \"purl\" parameter cannot be combined with \"type\" or \"name\""),
            ("purl=pkg:npm/a@1&version=1", "The \"version\" parameter cannot be combined with \"purl\" (a purl names its version)"),
            ("purl=npm/a", "The \"purl\" parameter is not a valid package URL: npm/a"),
            ("type=npm&name=a&state=done", "done is not a valid request state. Valid states are: complete, failed, in_progress, stale"),
            ("type=npm&name=a&colour=red", "The following query parameters are invalid: colour"),
            ("type=npm&type=pip&name=a", "The \"type\" parameter must be given once"),
            ("type=npm&name=a%00", "The \"name\" parameter must not contain control characters"),
            ("type=npm&name=a&page=0", "The \"page\" parameter must be an integer of at least 1"),
        ] {
            let e = parse(query).unwrap_err();
            assert_eq!((e.status.as_u16(), e.message.as_str()), (400, message), "{query}");
        }
    }
}
