//! `/ui/requests/{id}`: one request — state, reason, history as a timeline, its packages and
//! dependencies (dev ones marked, a filter), environment variables and configuration files
//! (what holds its repository token only for those `auth::may_see_secrets` lets see it, as
//! the API decides), the end of its log, and links to its bundle, manifest and SBOMs.

use super::live::log_tail;
use super::{filled_pairs, html, shown_time, state_class, UiResult};
use crate::auth;
use crate::error::ApiError;
use crate::models::REDACTED;
use crate::schema::configuration_files;
use crate::v1::requests::{find, hidden_token, load_history, shown_packages_data};
use crate::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use common::RequestState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// The most dependency rows a page lists (a lockfile may have 50,000): past it the page says
/// how many it left out and the filter or the API finds them.
pub const MAX_DEPENDENCY_ROWS: usize = 2000;
/// Configuration files up to this size are shown inline (to those who may read them).
pub const MAX_SHOWN_FILE_BYTES: i32 = 64 << 10;

/// A request id in a page's path: anything else is the API's 404.
pub fn parse_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(ApiError::not_found)
}

pub struct HistoryEntry {
    pub state: String,
    pub state_class: &'static str,
    pub state_reason: String,
    pub updated: String,
}

pub struct DependencyRow {
    pub kind: String,
    pub name: String,
    pub version: String,
    pub purl: String,
    pub dev: bool,
    pub optional: bool,
    pub replaces: Option<String>,
}

pub struct PackageView {
    pub kind: String,
    pub name: String,
    pub version: String,
    pub path: String,
    pub purl: String,
    pub dependency_count: usize,
    pub dependencies: Vec<DependencyRow>,
}

pub struct EnvVarView {
    pub name: String,
    pub value: String,
    pub kind: String,
}

pub struct ConfigFileView {
    pub path: String,
    /// The content, for those who may read it and when small enough.
    pub content: Option<String>,
    pub size: Option<i32>,
}

#[derive(Template)]
#[template(path = "request.html")]
pub struct RequestPage {
    pub id: i64,
    pub repo: String,
    pub git_ref: String,
    pub pkg_managers: String,
    pub flags: String,
    pub state: String,
    pub state_class: &'static str,
    pub state_reason: String,
    pub error: Option<String>,
    pub created: String,
    pub updated: String,
    pub in_progress: bool,
    pub complete: bool,
    pub history: Vec<HistoryEntry>,
    pub packages: Vec<PackageView>,
    pub dependency_filter: String,
    pub dependencies_shown: usize,
    pub dependencies_matching: usize,
    pub env_vars: Vec<EnvVarView>,
    pub config_files: Vec<ConfigFileView>,
    pub may_see_secrets: bool,
    pub log_tail: String,
    pub log_gone: bool,
}

impl RequestPage {
    pub fn dependencies_left_out(&self) -> usize {
        self.dependencies_matching - self.dependencies_shown
    }
}

/// Whether a dependency matches the filter (a case-insensitive part of its name, version or
/// purl; an empty filter matches all).
fn matches(dep: &common::Dependency, filter_lower: &str) -> bool {
    filter_lower.is_empty()
        || dep.name.to_lowercase().contains(filter_lower)
        || dep.purl.to_lowercase().contains(filter_lower)
        || dep
            .version
            .as_deref()
            .is_some_and(|v| v.to_lowercase().contains(filter_lower))
}

pub async fn page(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> UiResult<HttpResponse> {
    let caller = auth::caller(&req)?;
    let id = parse_id(&id)?;
    let dependency_filter = filled_pairs(&req)
        .into_iter()
        .find(|(k, _)| k == "dep")
        .map(|(_, v)| v.trim().chars().take(200).collect::<String>())
        .unwrap_or_default();
    let mut conn = state.pool.get().await?;
    let row = find(&mut conn, id).await?;
    let history = load_history(&mut conn, id).await?;
    let data = shown_packages_data(&mut conn, &row).await?;
    let may_see_secrets = auth::may_see_secrets(
        &caller,
        row.submitted_by.as_deref(),
        row.user_name.as_deref(),
    );
    // the size in bytes: SQLite's `length` of a blob is its bytes
    let files: Vec<(String, Option<i32>)> = crate::on!(&mut conn, c => {
        configuration_files::table
            .filter(configuration_files::request_id.eq(id))
            .order(configuration_files::path)
            .select((
                configuration_files::path,
                diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Integer>>(
                    crate::sql!(postgres: "octet_length(content)", sqlite: "length(content)"),
                ),
            ))
            .load(c)
            .await
    })?;
    let mut shown_contents: Vec<(String, Vec<u8>)> = Vec::new();
    if may_see_secrets && files.iter().any(|(_, size)| size.is_some()) {
        shown_contents = crate::on!(&mut conn, c => {
            configuration_files::table
                .filter(configuration_files::request_id.eq(id))
                .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
                    "{} <= {MAX_SHOWN_FILE_BYTES}",
                    crate::sql!(postgres: "octet_length(content)", sqlite: "length(content)"),
                )))
                .select((
                    configuration_files::path,
                    diesel::dsl::sql::<diesel::sql_types::Binary>("content"),
                ))
                .load(c)
                .await
        })?;
    }
    let is_stale = row.state == RequestState::Stale.as_str();
    let log_tail = if is_stale {
        String::new()
    } else {
        log_tail(&mut conn, &state.store, id).await?
    };
    drop(conn);

    let token = hidden_token(&state, &caller, &row);
    let env_vars = row
        .env_vars()
        .into_iter()
        .map(|(name, var)| EnvVarView {
            value: match &token {
                Some(token) if !token.is_empty() => var.value.replace(token.as_str(), REDACTED),
                _ => var.value,
            },
            name,
            kind: var.kind,
        })
        .collect();
    let config_files = files
        .into_iter()
        .map(|(path, size)| {
            let content = shown_contents
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned());
            ConfigFileView {
                path,
                content,
                size,
            }
        })
        .collect();

    let filter_lower = dependency_filter.to_lowercase();
    let mut dependencies_shown = 0;
    let mut dependencies_matching = 0;
    let packages = data
        .map(|d| d.packages)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let dependency_count = p.dependencies.len();
            let dependencies = p
                .dependencies
                .into_iter()
                .filter(|d| matches(d, &filter_lower))
                .filter_map(|d| {
                    dependencies_matching += 1;
                    if dependencies_shown >= MAX_DEPENDENCY_ROWS {
                        return None;
                    }
                    dependencies_shown += 1;
                    Some(DependencyRow {
                        version: d.version.unwrap_or_default(),
                        dev: d.dev == Some(true),
                        optional: d.optional == Some(true),
                        replaces: d
                            .replaces
                            .map(|r| format!("{} {}", r.name, r.version.unwrap_or_default())),
                        kind: d.kind,
                        name: d.name,
                        purl: d.purl,
                    })
                })
                .collect();
            PackageView {
                path: p.path.unwrap_or_else(|| ".".into()),
                kind: p.kind,
                name: p.name,
                version: p.version,
                purl: p.purl,
                dependency_count,
                dependencies,
            }
        })
        .collect();
    let page = RequestPage {
        id,
        pkg_managers: row.pkg_managers.join(", "),
        flags: row.flags.join(", "),
        state_class: state_class(&row.state),
        in_progress: row.state == RequestState::InProgress.as_str(),
        complete: row.state == RequestState::Complete.as_str(),
        error: match (&row.error_origin, &row.error_type) {
            (Some(origin), Some(kind)) => Some(format!("{kind} ({origin})")),
            _ => None,
        },
        created: shown_time(&row.created),
        updated: shown_time(&row.updated),
        history: history
            .into_iter()
            .rev()
            .map(|h| HistoryEntry {
                state_class: state_class(&h.state),
                state: h.state,
                state_reason: h.state_reason,
                updated: shown_time(&h.updated),
            })
            .collect(),
        packages,
        dependency_filter,
        dependencies_shown,
        dependencies_matching,
        env_vars,
        config_files,
        may_see_secrets,
        log_tail,
        log_gone: is_stale,
        repo: row.repo,
        git_ref: row.git_ref,
        state: row.state,
        state_reason: row.state_reason,
    };
    html(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "<img src=x onerror=alert(1)><script>alert(2)</script>";

    fn page() -> RequestPage {
        RequestPage {
            id: 3,
            repo: HOSTILE.into(),
            git_ref: "0123456789abcdef0123456789abcdef01234567".into(),
            pkg_managers: "npm".into(),
            flags: String::new(),
            state: "complete".into(),
            state_class: "state-complete",
            state_reason: HOSTILE.into(),
            error: None,
            created: "2026-12-01 00:00:00".into(),
            updated: "2026-12-01 00:00:01".into(),
            in_progress: false,
            complete: true,
            history: vec![HistoryEntry {
                state: "complete".into(),
                state_class: "state-complete",
                state_reason: HOSTILE.into(),
                updated: "2026-12-01 00:00:01".into(),
            }],
            packages: vec![PackageView {
                kind: "npm".into(),
                name: "app".into(),
                version: "1.0.0".into(),
                path: ".".into(),
                purl: "pkg:npm/app@1.0.0".into(),
                dependency_count: 2,
                dependencies: vec![
                    DependencyRow {
                        kind: "npm".into(),
                        name: HOSTILE.into(),
                        version: "1.0.0".into(),
                        purl: "pkg:npm/%40s/x@1.0.0?a=b&c=d".into(),
                        dev: true,
                        optional: false,
                        replaces: None,
                    },
                    DependencyRow {
                        kind: "npm".into(),
                        name: "leaf".into(),
                        version: "2.0.0".into(),
                        purl: "pkg:npm/leaf@2.0.0".into(),
                        dev: false,
                        optional: false,
                        replaces: None,
                    },
                ],
            }],
            dependency_filter: HOSTILE.into(),
            dependencies_shown: 2,
            dependencies_matching: 2,
            env_vars: vec![EnvVarView {
                name: "NPM_CONFIG_REGISTRY".into(),
                value: format!("http://x/repos/3/t/{REDACTED}/npm/"),
                kind: "literal".into(),
            }],
            config_files: vec![ConfigFileView {
                path: ".npmrc".into(),
                content: None,
                size: Some(120),
            }],
            may_see_secrets: false,
            log_tail: format!("line\n{HOSTILE}"),
            log_gone: false,
        }
    }

    #[test]
    fn everything_shown_is_escaped() {
        let html = page().render().unwrap();
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<script>alert"), "{html}");
        let escaped =
            "&#60;img src=x onerror=alert(1)&#62;&#60;script&#62;alert(2)&#60;/script&#62;";
        // repository, reason, history, dependency name, filter value, log
        assert_eq!(html.matches(escaped).count(), 6, "{html}");
        // a purl goes into a search link encoded, then escaped
        assert!(
            html.contains("href=\"/ui/search?purl=pkg%3Anpm/%2540s/x%401.0.0%3Fa%3Db%26c%3Dd\""),
            "{html}"
        );
    }

    #[test]
    fn dev_dependencies_are_marked_and_secrets_hidden() {
        let html = page().render().unwrap();
        assert_eq!(
            html.matches("<span class=\"tag dev\">dev</span>").count(),
            1
        );
        assert!(html.contains("REDACTED"));
        assert!(html.contains("only the request's submitter, its user, a representative or a worker may read them"), "{html}");
        // a reader who may not see it gets no content and no size
        assert!(!html.contains("120 bytes"));
        let mut reader = page();
        reader.may_see_secrets = true;
        reader.config_files[0].content = Some("//x/:_authToken=secret".into());
        let html = reader.render().unwrap();
        assert!(
            html.contains("<pre class=\"file\">//x/:_authToken=secret</pre>"),
            "{html}"
        );
        // links to what a complete request has
        for link in [
            "/download",
            "/content-manifest",
            "/sbom?format=cyclonedx",
            "/sbom?format=spdx",
        ] {
            assert!(
                html.contains(&format!("href=\"/api/v1/requests/3{link}\"")),
                "{link}"
            );
        }
    }

    #[test]
    fn a_request_in_progress_is_followed() {
        let mut p = page();
        p.in_progress = true;
        p.complete = false;
        let html = p.render().unwrap();
        assert!(html.contains("data-live-request=\"3\""));
        assert!(!html.contains("/download\""));
        assert!(!page().render().unwrap().contains("data-live-request"));
    }

    #[test]
    fn ids_in_paths() {
        assert_eq!(parse_id("12").unwrap(), 12);
        for bad in ["0", "-1", "x", "", "99999999999999999999"] {
            assert_eq!(parse_id(bad).unwrap_err().status, 404, "{bad}");
        }
    }
}
