//! The pages' stylesheet and script, compiled into the binary: no CDN, no build step.

use actix_web::http::header;
use actix_web::HttpResponse;

pub const CSS: &str = include_str!("../../static/larder.css");
pub const JS: &str = include_str!("../../static/larder.js");

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(body)
}

pub async fn css() -> HttpResponse {
    asset("text/css; charset=utf-8", CSS)
}

pub async fn js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", JS)
}
