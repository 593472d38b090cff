//! Pure sparse-registry router for the per-request repository (api side).
//!
//! Below the request's cargo base URL (`.../repos/{id}/cargo/` or the token-path form):
//! - `config.json` -> `{"dl": "<base>api/v1/crates", "api": "<base without '/'>", "auth-required": true}`
//!   (`dl` without markers: cargo appends `/{crate}/{version}/download`, the crates.io API shape);
//! - `1/a`, `2/ab`, `3/a/abc`, `ab/cd/abcd…` -> the request's verbatim index lines for that crate
//!   (case-insensitive), newline-terminated;
//! - `api/v1/crates/<name>/<version>/download` -> the `.crate` from the store;
//! - anything else -> NotFound.
//!
//! Auth (raw token in `Authorization`, 401/410) is the api's job before calling [`serve`].

use super::{FileRepository, RepoRequest, Served};
use crate::error::ApiResult;
use actix_web::{HttpRequest, HttpResponse};
use common::artifact::cargo::index_path;
use common::{Artifact, ArtifactMeta};

/// Serve `tail` (the path below the request's cargo base) from the request's artifacts; index
/// files and downloads load only the artifacts of the crate they name.
pub async fn handle(repo: &RepoRequest, req: &HttpRequest, tail: &str) -> ApiResult<HttpResponse> {
    // a client that sends the token in `Authorization` gets download URLs without it
    let header_form = format!("/repos/{}/cargo/", repo.request_id);
    let base = if req.path().starts_with(&header_form) {
        format!(
            "{}{header_form}",
            repo.state.config.public_url.trim_end_matches('/')
        )
    } else {
        repo.base_url.clone()
    };
    let segs: Vec<&str> = tail.trim_start_matches('/').split('/').collect();
    let name = match segs.as_slice() {
        ["config.json"] => None,
        ["api", "v1", "crates", name, _, "download"] => Some(name.to_string()),
        [.., last] => Some(last.to_string()),
        [] => None,
    };
    let artifacts = match &name {
        None => Vec::new(),
        Some(n) => {
            let mut a = repo.artifacts(Some(n)).await?;
            if a.is_empty() {
                // index paths are lowercase; the crate may be published with another case
                a = repo
                    .artifacts(None)
                    .await?
                    .into_iter()
                    .filter(|x| x.name.eq_ignore_ascii_case(n))
                    .collect();
            }
            a
        }
    };
    repo.respond(serve(&artifacts, &base, tail)).await
}

pub const CRATE_CONTENT_TYPE: &str = "application/gzip";
pub const INDEX_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// The registry's `config.json` for a repository base URL (must end with `/`).
pub fn config_json(repo_url: &str) -> Vec<u8> {
    let base = if repo_url.ends_with('/') {
        repo_url.to_string()
    } else {
        format!("{repo_url}/")
    };
    serde_json::to_vec(&serde_json::json!({
        "dl": format!("{base}api/v1/crates"),
        "api": base.trim_end_matches('/'),
        "auth-required": true,
    }))
    .unwrap_or_default()
}

pub fn serve(artifacts: &[Artifact], repo_url: &str, path: &str) -> Served {
    let path = path.trim_start_matches('/');
    if path.is_empty() || path.contains("..") || path.contains('\\') || path.contains("//") {
        return Served::NotFound;
    }
    let cargo = artifacts.iter().filter(|a| a.pm == "cargo");
    if path == "config.json" {
        return Served::Body {
            bytes: config_json(repo_url),
            content_type: JSON_CONTENT_TYPE,
        };
    }
    let segs: Vec<&str> = path.split('/').collect();
    if let ["api", "v1", "crates", name, version, "download"] = segs.as_slice() {
        let hit = cargo
            .clone()
            .find(|a| a.name == *name && a.version == *version)
            .or_else(|| {
                cargo
                    .clone()
                    .find(|a| a.name.eq_ignore_ascii_case(name) && a.version == *version)
            });
        return match hit {
            Some(a) => Served::File {
                store_key: a.store_key.clone(),
                content_type: CRATE_CONTENT_TYPE,
            },
            None => Served::NotFound,
        };
    }
    // index file
    let Some(name) = segs.last() else {
        return Served::NotFound;
    };
    let Some(expected) = index_path(name) else {
        return Served::NotFound;
    };
    if expected != path.to_ascii_lowercase() {
        return Served::NotFound;
    }
    let mut lines: Vec<(&str, &str)> = cargo
        .filter(|a| a.name.eq_ignore_ascii_case(name))
        .filter_map(|a| match &a.meta {
            ArtifactMeta::Cargo(m) => Some((a.version.as_str(), m.index_line.as_str())),
            _ => None,
        })
        .collect();
    if lines.is_empty() {
        return Served::NotFound;
    }
    lines.sort();
    lines.dedup();
    let mut bytes = Vec::new();
    for (_, l) in lines {
        bytes.extend_from_slice(l.trim_end_matches(['\n', '\r']).as_bytes());
        bytes.push(b'\n');
    }
    Served::Body {
        bytes,
        content_type: INDEX_CONTENT_TYPE,
    }
}

/// The per-request sparse cargo registry.
pub static SPARSE_REGISTRY: FileRepository = FileRepository {
    segment: "cargo",
    package_managers: &["cargo"],
    // registry crates (worker/src/pkg_managers/cargo/plan.rs crate_store_key)
    store_keys: ("deps/cargo/", ".crate"),
    handle: |repo, req, tail| Box::pin(handle(repo, req, tail)),
};

#[cfg(test)]
mod tests {
    use super::*;

    fn art(name: &str, version: &str) -> Artifact {
        Artifact {
            pm: "cargo".into(),
            name: name.into(),
            version: version.into(),
            filename: format!("{name}-{version}.crate"),
            store_key: format!("deps/cargo/{name}/{name}-{version}.crate"),
            meta: ArtifactMeta::Cargo(common::artifact::cargo::CargoMeta {
                index_line: format!("{{\"name\":\"{name}\",\"vers\":\"{version}\"}}"),
                cksum: "x".into(),
                license: None,
            }),
            source_url: None,
        }
    }

    const BASE: &str = "http://h/repos/7/cargo/";

    #[test]
    fn routes() {
        let a = vec![
            art("Serde", "1.0.0"),
            art("Serde", "1.0.1"),
            art("a", "0.1.0"),
            art("abc", "0.1.0"),
        ];
        match serve(&a, BASE, "config.json") {
            Served::Body { bytes, .. } => {
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(v["dl"], "http://h/repos/7/cargo/api/v1/crates");
                assert_eq!(v["auth-required"], true);
                assert_eq!(v["api"], "http://h/repos/7/cargo");
            }
            o => panic!("{o:?}"),
        }
        match serve(&a, BASE, "se/rd/serde") {
            Served::Body { bytes, .. } => assert_eq!(
                String::from_utf8(bytes).unwrap(),
                "{\"name\":\"Serde\",\"vers\":\"1.0.0\"}\n{\"name\":\"Serde\",\"vers\":\"1.0.1\"}\n"
            ),
            o => panic!("{o:?}"),
        }
        assert!(matches!(serve(&a, BASE, "1/a"), Served::Body { .. }));
        assert!(matches!(serve(&a, BASE, "3/a/abc"), Served::Body { .. }));
        assert_eq!(
            serve(&a, BASE, "api/v1/crates/Serde/1.0.1/download"),
            Served::File {
                store_key: "deps/cargo/Serde/Serde-1.0.1.crate".into(),
                content_type: CRATE_CONTENT_TYPE,
            }
        );
    }

    #[test]
    fn not_found() {
        let mut other = art("lodash", "1.0.0");
        other.pm = "npm".into();
        let a = vec![art("serde", "1.0.0"), other];
        for p in [
            "",
            "se/rd/serde_json",
            "xx/yy/serde",
            "se/rd/../rd/serde",
            "api/v1/crates/serde/9.9.9/download",
            "api/v1/crates/serde/1.0.0",
            "lo/da/lodash",
            "api/v1/crates/lodash/1.0.0/download",
            "2/a",
            "se/rd",
            "se//rd/serde",
            "index.html",
        ] {
            assert_eq!(serve(&a, BASE, p), Served::NotFound, "{p}");
        }
    }
}
