//! `page` and `per_page`, and the `meta` of a paginated answer in Cachito's shape: the request
//! list and the request metrics page the same way.

use crate::error::{ApiError, ApiResult};
use serde::Serialize;

/// Cachito's `CACHITO_MAX_PER_PAGE`: a larger `per_page` is capped, not refused.
pub const MAX_PER_PAGE: i64 = 100;
const DEFAULT_PER_PAGE: i64 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pagination {
    pub page: i64,
    pub per_page: i64,
}

impl Default for Pagination {
    fn default() -> Self {
        Self {
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        }
    }
}

/// `meta`: links to the first, last, next and previous pages (absolute, every filter kept) and
/// the counts. Fields in Cachito's (sorted) order.
#[derive(Debug, Serialize)]
pub struct PageMeta {
    pub first: String,
    pub last: String,
    pub next: Option<String>,
    pub page: i64,
    pub pages: i64,
    pub per_page: i64,
    pub previous: Option<String>,
    pub total: i64,
}

impl Pagination {
    /// Reads `key=value` when it is `page` or `per_page`; `Ok(false)` leaves any other
    /// parameter to the caller.
    pub fn accept(&mut self, key: &str, value: &str) -> ApiResult<bool> {
        let at_least_one = |name: &str| -> ApiResult<i64> {
            value
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "The \"{name}\" parameter must be an integer of at least 1"
                    ))
                })
        };
        match key {
            "page" => self.page = at_least_one("page")?,
            "per_page" => self.per_page = at_least_one("per_page")?.min(MAX_PER_PAGE),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The rows before this page. A page whose first row lies beyond any possible offset does
    /// not exist.
    pub fn offset(&self) -> ApiResult<i64> {
        (self.page - 1)
            .checked_mul(self.per_page)
            .ok_or_else(ApiError::not_found)
    }

    /// A page past the last is a 404 (the first page exists even when empty).
    pub fn check_exists(&self, rows_on_page: usize) -> ApiResult<()> {
        if rows_on_page == 0 && self.page > 1 {
            return Err(ApiError::not_found());
        }
        Ok(())
    }

    /// `meta` for `total` rows; `link(page)` is the URL of that page.
    pub fn meta(&self, total: i64, link: impl Fn(i64) -> String) -> PageMeta {
        let pages = ((total + self.per_page - 1) / self.per_page).max(1);
        PageMeta {
            first: link(1),
            last: link(pages),
            next: (self.page < pages).then(|| link(self.page + 1)),
            page: self.page,
            pages,
            per_page: self.per_page,
            previous: (self.page > 1).then(|| link((self.page - 1).min(pages))),
            total,
        }
    }

    /// The absolute URL of `page` of `path`: `page`, `per_page`, then `filters` in order.
    pub fn link(
        &self,
        public_url: &str,
        path: &str,
        page: i64,
        filters: &[(&str, &str)],
    ) -> String {
        let mut url = url::Url::parse(&format!("{}{path}", public_url.trim_end_matches('/')))
            .expect("the public URL is valid");
        url.query_pairs_mut()
            .append_pair("page", &page.to_string())
            .append_pair("per_page", &self.per_page.to_string())
            .extend_pairs(filters);
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_page_and_per_page_and_caps_per_page() {
        let mut pagination = Pagination::default();
        assert!(pagination.accept("page", "3").unwrap());
        assert!(pagination.accept("per_page", "1000").unwrap());
        assert!(!pagination.accept("state", "complete").unwrap());
        assert_eq!(
            pagination,
            Pagination {
                page: 3,
                per_page: MAX_PER_PAGE
            }
        );
        for bad in ["0", "-1", "x", "", "99999999999999999999"] {
            assert!(pagination.accept("page", bad).is_err(), "{bad}");
        }
        let far = Pagination {
            page: i64::MAX,
            per_page: 10,
        };
        assert_eq!(far.offset().unwrap_err().status, 404);
    }

    #[test]
    fn meta_links_keep_filters() {
        let pagination = Pagination {
            page: 2,
            per_page: 2,
        };
        let link = |page| {
            pagination.link(
                "http://larder.test/",
                "/api/v1/request-metrics",
                page,
                &[("finished_to", "2026-01-31"), ("error_type", "a&b")],
            )
        };
        let meta = pagination.meta(5, link);
        assert_eq!(meta.pages, 3);
        assert_eq!(
            meta.next.as_deref(),
            Some("http://larder.test/api/v1/request-metrics?page=3&per_page=2&finished_to=2026-01-31&error_type=a%26b")
        );
        assert_eq!(
            meta.previous.as_deref(),
            Some("http://larder.test/api/v1/request-metrics?page=1&per_page=2&finished_to=2026-01-31&error_type=a%26b")
        );
        let empty = Pagination::default().meta(0, |page| page.to_string());
        assert_eq!((empty.pages, empty.next, empty.previous), (1, None, None));
    }
}
