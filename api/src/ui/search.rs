//! `/ui/search`: which requests contain a dependency, by its purl or by type, name and
//! version — the API's search (`v1::dependencies::SearchQuery`, an index lookup), newest
//! first, a page at a time by keyset.

use super::{filled_pairs, html, link, shown_time, state_class, Keyset, UiResult};
use crate::auth;
use crate::error::ApiError;
use crate::v1::dependencies::SearchQuery;
use crate::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use common::RequestState;

const DEFAULT_ROWS: i64 = 25;

pub struct FoundRow {
    pub id: i64,
    pub repo: String,
    pub git_ref: String,
    pub short_ref: String,
    pub state: String,
    pub state_class: &'static str,
    pub created: String,
    pub dev: bool,
}

#[derive(Default)]
pub struct SearchForm {
    pub purl: String,
    pub kind: String,
    pub name: String,
    pub version: String,
    pub state: String,
}

#[derive(Template)]
#[template(path = "search.html")]
pub struct SearchPage {
    pub form: SearchForm,
    pub states: Vec<&'static str>,
    pub searched: bool,
    pub rows: Vec<FoundRow>,
    pub older: Option<String>,
    pub first: Option<String>,
    pub error: Option<String>,
}

pub async fn page(req: HttpRequest, state: web::Data<AppState>) -> UiResult<HttpResponse> {
    auth::caller(&req)?;
    let mut pairs = filled_pairs(&req);
    let given = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let form = SearchForm {
        purl: given("purl"),
        kind: given("type"),
        name: given("name"),
        version: given("version"),
        state: given("state"),
    };
    let mut page = SearchPage {
        form,
        states: RequestState::ALL.iter().map(|s| s.as_str()).collect(),
        searched: false,
        rows: Vec::new(),
        older: None,
        first: None,
        error: None,
    };
    let asks = ["purl", "type", "name", "version"];
    if !pairs.iter().any(|(k, _)| asks.contains(&k.as_str())) {
        // the form alone
        return html(StatusCode::OK, &page);
    }
    let parsed = Keyset::take(&mut pairs).and_then(|keyset| {
        let before = match keyset {
            Keyset::Newest => None,
            Keyset::Before(id) => Some(id),
            Keyset::After(_) => {
                return Err(ApiError::bad_request(
                    "The search pages only with \"before\"",
                ))
            }
        };
        let mut query = SearchQuery::parse(&pairs)?;
        if query.pagination.page != 1 {
            return Err(ApiError::bad_request(
                "The web pages page with \"before\", not \"page\"",
            ));
        }
        query.before = before;
        Ok(query)
    });
    let mut query = match parsed {
        Ok(query) => query,
        Err(e) => {
            page.error = Some(e.message);
            return html(e.status, &page);
        }
    };
    if !pairs.iter().any(|(k, _)| k == "per_page") {
        query.pagination.per_page = DEFAULT_ROWS;
    }
    let limit = query.pagination.per_page;
    let mut conn = state.pool.get().await?;
    let mut found = query.page(&mut conn, limit + 1, 0).await?;
    drop(conn);
    let more = found.len() as i64 > limit;
    found.truncate(limit as usize);
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, _)| k != "page")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if more {
        if let Some(last) = found.last() {
            let id = last.id.to_string();
            let mut with = kept.clone();
            with.push(("before", &id));
            page.older = Some(link("/ui/search", &with));
        }
    }
    if query.before.is_some() {
        page.first = Some(link("/ui/search", &kept));
    }
    page.searched = true;
    page.rows = found
        .into_iter()
        .map(|f| FoundRow {
            id: f.id,
            short_ref: f.git_ref.chars().take(12).collect(),
            git_ref: f.git_ref,
            repo: f.repo,
            state_class: state_class(&f.state),
            state: f.state,
            created: shown_time(&f.created),
            dev: f.dev,
        })
        .collect();
    html(StatusCode::OK, &page)
}
