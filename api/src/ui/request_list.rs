//! `/ui/requests`: the requests, newest first, with the API's filters (`v1::requests::ListQuery`:
//! state, repo, ref, package manager, creation window, error), a page at a time by keyset.
//! In-progress rows carry `data-live-id`: the script polls `/ui/states` for them. The newest
//! page names `/ui/newer?after=<its top id>&<its filters>` (`data-newer`): the script polls it and
//! puts requests made since on top.

use super::{filled_pairs, html, link, shown_time, state_class, Keyset, UiResult};
use crate::auth;
use crate::error::ApiError;
use crate::schema::requests;
use crate::v1::requests::ListQuery;
use crate::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use common::RequestState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// Rows on a page unless `per_page` says otherwise (at most the API's 100).
pub const DEFAULT_ROWS: i64 = 25;

/// The columns a row of the list shows.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = requests)]
pub struct ListedRequest {
    pub id: i64,
    pub repo: String,
    pub git_ref: String,
    pub pkg_managers: Vec<String>,
    pub state: String,
    pub state_reason: String,
    pub created: chrono::NaiveDateTime,
}

/// A row as shown (and as `/ui/newer` sends it to the script).
#[derive(serde::Serialize)]
pub struct Row {
    pub id: i64,
    pub repo: String,
    pub git_ref: String,
    pub short_ref: String,
    pub pkg_managers: String,
    pub state: String,
    pub state_class: &'static str,
    pub state_reason: String,
    pub created: String,
    pub in_progress: bool,
}

impl From<ListedRequest> for Row {
    fn from(r: ListedRequest) -> Self {
        Self {
            id: r.id,
            short_ref: r.git_ref.chars().take(12).collect(),
            git_ref: r.git_ref,
            repo: r.repo,
            pkg_managers: r.pkg_managers.join(", "),
            state_class: state_class(&r.state),
            in_progress: r.state == RequestState::InProgress.as_str(),
            state: r.state,
            state_reason: r.state_reason,
            created: shown_time(&r.created),
        }
    }
}

/// The filter form's fields as given.
#[derive(Default)]
pub struct Filters {
    pub state: String,
    pub repo: String,
    pub git_ref: String,
    pub pkg_manager: String,
}

#[derive(Template)]
#[template(path = "requests.html")]
pub struct RequestListPage {
    pub rows: Vec<Row>,
    pub filters: Filters,
    pub states: Vec<&'static str>,
    pub pkg_managers: Vec<&'static str>,
    pub newer: Option<String>,
    pub older: Option<String>,
    pub first: Option<String>,
    /// On the newest page: where the script asks for requests made since.
    pub watch: Option<String>,
    pub error: Option<String>,
}

/// One page of the filtered list: `limit` rows from the keyset, newest first, and whether
/// there are more past them in the keyset's direction. An index range of the filters' index
/// (the primary key, or `(state, id)`, `(repo, id)`, …), never a count or an offset.
pub(crate) async fn load_page(
    conn: &mut impl crate::db::AsDb,
    query: &ListQuery,
    keyset: Keyset,
    limit: i64,
) -> Result<(Vec<ListedRequest>, bool), ApiError> {
    // built per backend: the boxed query is typed by it
    let mut rows: Vec<ListedRequest> = crate::on!(conn, c => {
        let filtered = query.filtered();
        let ordered = match keyset {
            Keyset::Newest => filtered.order(requests::id.desc()),
            Keyset::Before(id) => filtered
                .filter(requests::id.lt(id))
                .order(requests::id.desc()),
            Keyset::After(id) => filtered
                .filter(requests::id.gt(id))
                .order(requests::id.asc()),
        };
        ordered
            .limit(limit + 1)
            .select(ListedRequest::as_select())
            .load(c)
            .await
    })?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    if matches!(keyset, Keyset::After(_)) {
        rows.reverse();
    }
    Ok((rows, more))
}

fn empty_page(state: &AppState, filters: Filters, error: Option<String>) -> RequestListPage {
    RequestListPage {
        rows: Vec::new(),
        filters,
        states: RequestState::ALL.iter().map(|s| s.as_str()).collect(),
        pkg_managers: state.catalogue.names().collect(),
        newer: None,
        older: None,
        first: None,
        watch: None,
        error,
    }
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
    let filters = Filters {
        state: given("state"),
        repo: given("repo"),
        git_ref: given("ref"),
        pkg_manager: given("pkg_manager"),
    };
    let parsed = Keyset::take(&mut pairs).and_then(|keyset| {
        let query = ListQuery::parse(&pairs, &state.catalogue)?;
        if query.pagination.page != 1 {
            return Err(ApiError::bad_request(
                "The web pages page with \"before\" and \"after\", not \"page\"",
            ));
        }
        Ok((keyset, query))
    });
    let (keyset, mut query) = match parsed {
        Ok(parsed) => parsed,
        // the form again, with what was wrong
        Err(e) => return html(e.status, &empty_page(&state, filters, Some(e.message))),
    };
    if !pairs.iter().any(|(k, _)| k == "per_page") {
        query.pagination.per_page = DEFAULT_ROWS;
    }
    let limit = query.pagination.per_page;
    let mut conn = state.pool.get().await?;
    let (rows, more) = load_page(&mut conn, &query, keyset, limit).await?;
    drop(conn);
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, _)| k != "page")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let at = |key: &'static str, id: i64| {
        let id = id.to_string();
        let mut with = kept.clone();
        with.push((key, &id));
        link("/ui/requests", &with)
    };
    let (first_id, last_id) = (
        // the slice's, not diesel's `first`
        <[ListedRequest]>::first(&rows).map(|r| r.id),
        <[ListedRequest]>::last(&rows).map(|r| r.id),
    );
    let (newer, older) = match keyset {
        Keyset::Newest => (None, more.then_some(()).and(last_id)),
        Keyset::Before(_) => (first_id, more.then_some(()).and(last_id)),
        Keyset::After(_) => (more.then_some(()).and(first_id), last_id),
    };
    let mut page = empty_page(&state, filters, None);
    page.newer = newer.map(|id| at("after", id));
    page.older = older.map(|id| at("before", id));
    page.first = (keyset != Keyset::Newest).then(|| link("/ui/requests", &kept));
    if keyset == Keyset::Newest {
        let top = first_id.unwrap_or(0).to_string();
        let mut with = kept.clone();
        with.push(("after", &top));
        page.watch = Some(link("/ui/newer", &with));
    }
    page.rows = rows.into_iter().map(Row::from).collect();
    html(StatusCode::OK, &page)
}

/// `GET /ui/newer?after=ID&<the list's filters>`: `{"requests": [rows newest first], "more"}`,
/// the requests past `after` (0: any) that the filters select, at most `per_page` (25 unless
/// given); `more` when there are others past those. Errors in the API's JSON shape: a script
/// reads this.
pub async fn newer(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    auth::caller(&req)?;
    let mut pairs = filled_pairs(&req);
    let mut after = None;
    pairs.retain(|(k, v)| {
        if k != "after" {
            return true;
        }
        after = Some(v.parse::<i64>().ok().filter(|n| *n >= 0));
        false
    });
    let after = after.flatten().ok_or_else(|| {
        ApiError::bad_request("The \"after\" parameter must be a request id or 0")
    })?;
    let mut query = ListQuery::parse(&pairs, &state.catalogue)?;
    if !pairs.iter().any(|(k, _)| k == "per_page") {
        query.pagination.per_page = DEFAULT_ROWS;
    }
    let mut conn = state.pool.get().await?;
    let (rows, more) = load_page(
        &mut conn,
        &query,
        Keyset::After(after),
        query.pagination.per_page,
    )
    .await?;
    drop(conn);
    #[derive(serde::Serialize)]
    struct Newer {
        requests: Vec<Row>,
        more: bool,
    }
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(Newer {
            requests: rows.into_iter().map(Row::from).collect(),
            more,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "<script>document.title='pwned'</script>\"'&";

    #[test]
    fn rows_are_escaped_and_in_progress_ones_are_live() {
        let page = RequestListPage {
            rows: vec![Row::from(ListedRequest {
                id: 7,
                repo: format!("https://h/{HOSTILE}"),
                git_ref: "0123456789abcdef0123456789abcdef01234567".into(),
                pkg_managers: vec!["npm".into()],
                state: "in_progress".into(),
                state_reason: HOSTILE.into(),
                created: chrono::NaiveDateTime::default(),
            })],
            filters: Filters {
                repo: HOSTILE.into(),
                ..Default::default()
            },
            states: RequestState::ALL.iter().map(|s| s.as_str()).collect(),
            pkg_managers: vec!["npm", "pip"],
            newer: None,
            older: Some(link("/ui/requests", &[("repo", HOSTILE), ("before", "7")])),
            first: None,
            watch: Some(link("/ui/newer", &[("repo", HOSTILE), ("after", "7")])),
            error: Some(HOSTILE.into()),
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>document"), "{html}");
        assert!(!html.contains("'pwned'"), "{html}");
        let escaped =
            "&#60;script&#62;document.title=&#39;pwned&#39;&#60;/script&#62;&#34;&#39;&#38;";
        // the repository, the reason, the filter's value and the error
        assert_eq!(html.matches(escaped).count(), 4, "{html}");
        assert!(html.contains("<tr data-live-id=\"7\">"), "{html}");
        assert!(
            html.contains("<span class=\"state state-in_progress\" data-state>in_progress</span>")
        );
        assert!(html.contains(
            "<code title=\"0123456789abcdef0123456789abcdef01234567\">0123456789ab</code>"
        ));
        assert!(html.contains("<html lang=\"en\">"));
        assert!(html.contains("name=\"viewport\""));
        // the link's query is form-encoded, then escaped as an attribute
        assert!(html.contains("data-newer=\"/ui/newer?repo=%3Cscript%3Edocument.title%3D%27pwned%27%3C%2Fscript%3E%22%27%26&#38;after=7\""), "{html}");
        assert!(html.contains("href=\"/ui/requests?repo=%3Cscript%3Edocument.title%3D%27pwned%27%3C%2Fscript%3E%22%27%26&#38;before=7\""), "{html}");
        // every input has its label
        for id in ["f-state", "f-repo", "f-ref", "f-pm"] {
            assert!(html.contains(&format!("<label for=\"{id}\">")), "{id}");
        }
    }

    #[test]
    fn a_final_request_is_not_polled() {
        let row = Row::from(ListedRequest {
            id: 1,
            repo: "r".into(),
            git_ref: "g".into(),
            pkg_managers: vec![],
            state: "complete".into(),
            state_reason: "done".into(),
            created: chrono::NaiveDateTime::default(),
        });
        assert!(!row.in_progress);
        assert_eq!(row.state_class, "state-complete");
    }
}
