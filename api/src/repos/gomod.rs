//! The per-request GOPROXY at `/repos/{id}/…/gomod/`: `@v/list`, `.info`, `.mod` and `.zip` of
//! exactly the modules the request recorded; anything else (incl. `@latest`, `sumdb/…`) is 404.

use super::{RepoRequest, Served};
use crate::error::ApiResult;
use actix_web::{HttpRequest, HttpResponse};
use common::gomod::{compare_versions, unescape_path, unescape_version};
use common::Artifact;

pub async fn serve(repo: &RepoRequest, tail: &str) -> ApiResult<HttpResponse> {
    let Some(module) = module_of(tail) else {
        return repo.respond(Served::NotFound).await;
    };
    let artifacts = repo.artifacts(Some(&module)).await?;
    repo.respond(route(&artifacts, tail)).await
}

/// The module a GOPROXY path asks about (`<escaped module>/@v/...`).
pub fn module_of(path: &str) -> Option<String> {
    if path.contains('?') || path.contains('#') {
        return None;
    }
    let decoded = common::percent::decode(path)?;
    let path = decoded.trim_start_matches('/');
    let i = path.rfind("/@v/")?;
    unescape_path(&path[..i]).ok()
}

pub const TEXT: &str = "text/plain; charset=utf-8";
pub const JSON: &str = "application/json";
pub const ZIP: &str = "application/zip";

/// Route `path` (e.g. `github.com/!azure/x/@v/list`, `.../@v/v1.2.3.zip`) against the request's
/// gomod artifacts. `@latest`, `sumdb/...`, unknown modules/versions and malformed paths are
/// `NotFound`.
///
/// The path may be raw or already percent-decoded: the go command sends `!` as `%21`
/// (VERIFIED with Go 1.19), so `%XX` sequences are decoded once here; valid module paths and
/// versions never contain `%`, so a decoded path is left unchanged.
pub fn route(artifacts: &[Artifact], path: &str) -> Served {
    if path.contains('?') || path.contains('#') {
        return Served::NotFound;
    }
    let Some(decoded) = common::percent::decode(path) else {
        return Served::NotFound;
    };
    let path = decoded.trim_start_matches('/');
    let Some(i) = path.rfind("/@v/") else {
        return Served::NotFound;
    };
    let (esc_mod, file) = (&path[..i], &path[i + 4..]);
    let Ok(module) = unescape_path(esc_mod) else {
        return Served::NotFound;
    };
    let mine = artifacts
        .iter()
        .filter(|a| a.pm == "gomod" && a.name == module);
    if file == "list" {
        let mut versions: Vec<&str> = mine
            .filter(|a| a.filename.ends_with(".mod"))
            .map(|a| a.version.as_str())
            .collect();
        if versions.is_empty() {
            return Served::NotFound;
        }
        versions.sort_by(|a, b| compare_versions(a, b));
        versions.dedup();
        let mut body = versions.join("\n");
        body.push('\n');
        return Served::Body {
            bytes: body.into_bytes(),
            content_type: TEXT,
        };
    }
    let Some((esc_ver, ext)) = file.rsplit_once('.') else {
        return Served::NotFound;
    };
    let content_type = match ext {
        "info" => JSON,
        "mod" => TEXT,
        "zip" => ZIP,
        _ => return Served::NotFound,
    };
    let Ok(version) = unescape_version(&module, esc_ver) else {
        return Served::NotFound;
    };
    let filename = format!("{version}.{ext}");
    mine.filter(|a| a.version == version && a.filename == filename)
        .map(|a| Served::File {
            store_key: a.store_key.clone(),
            content_type,
        })
        .next()
        .unwrap_or(Served::NotFound)
}

/// The per-request GOPROXY.
pub struct GoProxy;

impl super::Repository for GoProxy {
    fn segment(&self) -> &'static str {
        "gomod"
    }

    fn package_managers(&self) -> &'static [&'static str] {
        &["gomod"]
    }

    fn may_serve(&self, key: &str) -> bool {
        // the module proxy files (worker/src/pkg_managers/gomod/plan.rs STORE_PREFIX)
        key.starts_with("deps/gomod/cache/download/")
    }

    fn handle<'a>(
        &'a self,
        repo: &'a RepoRequest,
        _req: &'a HttpRequest,
        tail: &'a str,
    ) -> futures_util::future::LocalBoxFuture<'a, ApiResult<HttpResponse>> {
        Box::pin(serve(repo, tail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn art(name: &str, version: &str, ext: &str) -> Artifact {
        Artifact {
            pm: "gomod".into(),
            name: name.into(),
            version: version.into(),
            filename: format!("{version}.{ext}"),
            store_key: format!("deps/gomod/cache/download/{name}/@v/{version}.{ext}"),
            meta: common::ArtifactMeta::Gomod(Default::default()),
            source_url: None,
        }
    }

    fn arts() -> Vec<Artifact> {
        let mut v = Vec::new();
        for (n, ver) in [
            ("github.com/Azure/x", "v1.2.3"),
            ("github.com/Azure/x", "v1.10.0"),
            ("github.com/Azure/x", "v1.0.0-RC1"),
            ("example.com/a", "v0.1.0"),
        ] {
            for e in ["info", "mod", "zip"] {
                v.push(art(n, ver, e));
            }
        }
        v.push(art("example.com/modonly", "v1.0.0", "mod"));
        let mut other = art("example.com/a", "v9.9.9", "zip");
        other.pm = "npm".into();
        v.push(other);
        v
    }

    #[test]
    fn list() {
        let a = arts();
        assert_eq!(
            route(&a, "github.com/!azure/x/@v/list"),
            Served::Body {
                bytes: b"v1.0.0-RC1\nv1.2.3\nv1.10.0\n".to_vec(),
                content_type: TEXT
            }
        );
        assert!(matches!(
            route(&a, "/example.com/modonly/@v/list"),
            Served::Body { .. }
        ));
        assert_eq!(route(&a, "example.com/unknown/@v/list"), Served::NotFound);
    }

    #[test]
    fn files() {
        let a = arts();
        assert_eq!(
            route(&a, "github.com/!azure/x/@v/v1.2.3.zip"),
            Served::File {
                store_key: "deps/gomod/cache/download/github.com/Azure/x/@v/v1.2.3.zip".into(),
                content_type: ZIP
            }
        );
        assert!(matches!(
            route(&a, "github.com/!azure/x/@v/v1.0.0-!r!c1.info"),
            Served::File {
                content_type: JSON,
                ..
            }
        ));
        assert!(matches!(
            route(&a, "github.com/%21azure/x/@v/v1.0.0-%21r%21c1.zip"),
            Served::File {
                content_type: ZIP,
                ..
            }
        ));
        assert!(matches!(
            route(&a, "example.com/a/@v/v0.1.0.mod"),
            Served::File {
                content_type: TEXT,
                ..
            }
        ));
    }

    #[test]
    fn not_found() {
        let a = arts();
        for p in [
            "github.com/Azure/x/@v/v1.2.3.zip", // not escaped
            "github.com/!azure/x/@latest",
            "github.com/!azure/x/@v/v9.9.9.zip",
            "github.com/!azure/x/@v/v1.2.3.tar",
            "github.com/!azure/x/@v/v1.2.3",
            "sumdb/sum.golang.org/supported",
            "example.com/a/@v/v9.9.9.zip", // other pm's artifact
            "example.com/modonly/@v/v1.0.0.zip",
            "example.com/a/@v/../../x/@v/v0.1.0.zip",
            "example.com/a/@v/v0.1.0.zip?x=1",
            "example.com/a/@v/v0.1.0.zip%00",
            "example.com/a/@v/v0.1.0.zip%",
            "example.com/a/@v/v0.1.0%2Ezip%2",
            "example.com%2Fa%2F..%2F..%2Fx/@v/v0.1.0.zip",
            "example.com/a/@v/v0.1.0.zip%2500",
            "",
            "/",
            "@v/list",
        ] {
            assert_eq!(route(&a, p), Served::NotFound, "{p}");
        }
    }
}
