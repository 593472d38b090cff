//! `/`: what Larder is, and links to the pages and the API reference.

use super::{html, UiResult};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use askama::Template;

#[derive(Template)]
#[template(path = "landing.html")]
pub struct LandingPage {
    pub version: &'static str,
}

pub async fn page() -> UiResult<HttpResponse> {
    html(
        StatusCode::OK,
        &LandingPage {
            version: env!("CARGO_PKG_VERSION"),
        },
    )
}
