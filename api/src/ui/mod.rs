//! The web pages for people (issue 18): server-rendered HTML from askama templates
//! (`api/templates/`, checked when the crate compiles, escaped by default), one module per page.
//! They work without JavaScript; `larder.js` (served here, like the CSS) only adds live states,
//! the log that follows a request in progress and the dependency filter as one types.
//!
//! The pages read what the API reads, through the API's own code: the request list's filters
//! (`v1::requests::ListQuery`), the dependency search (`v1::dependencies::SearchQuery`), the
//! service status (`v1::status`), and who may see a request's token (`auth`). They page by
//! keyset (`?before=<id>` / `?after=<id>`, an index range), never by an offset or a count of
//! every matching request.
//!
//! Their routes are in [`UI_ROUTES`], outside the API's table (`crate::ROUTES`) and
//! `openapi.yaml`, which document the API; `/` (the landing page) and `/api` (the rendered API
//! reference) are in the API's table and documented as HTML.

pub mod assets;
pub mod landing;
pub mod live;
pub mod request_detail;
pub mod request_list;
pub mod search;
pub mod status;

use crate::error::ApiError;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;

pub const HTML: &str = "text/html; charset=utf-8";

/// Registers the pages from one table (every one answers `GET` and `HEAD`).
macro_rules! ui_routes {
    ($($path:literal => $handler:path),* $(,)?) => {
        /// Every route of the web pages and their helpers; none is part of the API.
        pub const UI_ROUTES: &[&str] = &[$($path),*];

        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(cfg.service(
                web::resource($path)
                    .guard(crate::method_guard("get"))
                    .route(web::route().to($handler)),
            );)*
        }
    };
}

ui_routes! {
    "/ui/requests" => request_list::page,
    "/ui/requests/{id}" => request_detail::page,
    "/ui/requests/{id}/live" => live::request,
    "/ui/states" => live::states,
    "/ui/newer" => request_list::newer,
    "/ui/search" => search::page,
    "/ui/status" => status::page,
    "/ui/static/larder.css" => assets::css,
    "/ui/static/larder.js" => assets::js,
}

/// Why a page could not be shown: answered as an HTML page with the status.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// What the API would have answered (a bad filter is a 400, an unknown request a 404).
    #[error("{}", .0.message)]
    Api(#[from] ApiError),
    #[error("the page could not be rendered: {0}")]
    Render(#[from] askama::Error),
}

pub type UiResult<T> = Result<T, UiError>;

impl From<diesel::result::Error> for UiError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Api(e.into())
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for UiError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Self::Api(e.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Api(e) => e.status,
            Self::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let Self::Render(e) = self {
            tracing::error!(error = %e, "a page could not be rendered");
        }
        let message = self.to_string();
        let page = ErrorPage {
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error"),
            message: &message,
        };
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((
                actix_web::http::header::RETRY_AFTER,
                crate::error::RETRY_AFTER_SECONDS.to_string(),
            ));
        }
        match page.render() {
            Ok(html) => response.content_type(HTML).body(html),
            Err(_) => response
                .content_type("text/plain; charset=utf-8")
                .body(message),
        }
    }
}

/// A rendered page, `200 OK` unless `status` says otherwise.
pub fn html(status: StatusCode, page: &impl Template) -> UiResult<HttpResponse> {
    Ok(HttpResponse::build(status)
        .content_type(HTML)
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(page.render()?))
}

/// The query string's pairs, those left empty dropped: an HTML form sends every field, filled
/// or not, and an empty field filters nothing. Never fails (bad UTF-8 reads as U+FFFD).
pub fn filled_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect()
}

/// Where a page of a list starts: the newest, older than a request, or newer than one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keyset {
    Newest,
    Before(i64),
    After(i64),
}

impl Keyset {
    /// Takes `before` / `after` out of `pairs` (the rest are the list's filters).
    pub fn take(pairs: &mut Vec<(String, String)>) -> Result<Self, ApiError> {
        let mut keyset = Self::Newest;
        let mut error = None;
        pairs.retain(|(k, v)| {
            let make: fn(i64) -> Keyset = match k.as_str() {
                "before" => Keyset::Before,
                "after" => Keyset::After,
                _ => return true,
            };
            match v.parse::<i64>().ok().filter(|n| *n >= 1) {
                Some(id) if keyset == Keyset::Newest => keyset = make(id),
                Some(_) => {
                    error = Some(ApiError::bad_request(
                        "Only one of \"before\" and \"after\" may be given, once",
                    ))
                }
                None => {
                    error = Some(ApiError::bad_request(format!(
                        "The \"{k}\" parameter must be a request id (an integer of at least 1)"
                    )))
                }
            }
            false
        });
        match error {
            Some(e) => Err(e),
            None => Ok(keyset),
        }
    }
}

/// `path?pairs`, the pairs in order (form-encoded).
pub fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return path.to_string();
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{path}?{query}")
}

/// A timestamp as the pages show it (UTC, to the second).
pub fn shown_time(t: &chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The CSS class of a state (the four known ones; anything else reads as unknown).
pub fn state_class(state: &str) -> &'static str {
    match state {
        "complete" => "state-complete",
        "failed" => "state-failed",
        "in_progress" => "state-in_progress",
        "stale" => "state-stale",
        _ => "state-unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    #[test]
    fn keyset_is_taken_out_of_the_filters() {
        let mut p = pairs("state=complete&before=42");
        assert_eq!(Keyset::take(&mut p).unwrap(), Keyset::Before(42));
        assert_eq!(p, pairs("state=complete"));
        let mut p = pairs("after=7");
        assert_eq!(Keyset::take(&mut p).unwrap(), Keyset::After(7));
        assert_eq!(Keyset::take(&mut pairs("repo=x")).unwrap(), Keyset::Newest);
        for bad in [
            "before=0",
            "before=x",
            "after=-1",
            "before=1&after=2",
            "before=99999999999999999999",
        ] {
            let e = Keyset::take(&mut pairs(bad)).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
        }
    }

    #[test]
    fn links_are_form_encoded() {
        assert_eq!(link("/ui/requests", &[]), "/ui/requests");
        assert_eq!(
            link(
                "/ui/requests",
                &[("repo", "https://h/a b?&<x>"), ("before", "3")]
            ),
            "/ui/requests?repo=https%3A%2F%2Fh%2Fa+b%3F%26%3Cx%3E&before=3"
        );
    }

    #[test]
    fn an_error_is_an_escaped_page_with_its_status() {
        let e = UiError::Api(ApiError::bad_request("<script>alert(1)</script> is bad"));
        let response = e.error_response();
        assert_eq!(response.status(), 400);
        let page = ErrorPage {
            status: 400,
            title: "Bad Request",
            message: &e.to_string(),
        }
        .render()
        .unwrap();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(
            page.contains("&#60;script&#62;alert(1)&#60;/script&#62; is bad"),
            "{page}"
        );
    }
}
