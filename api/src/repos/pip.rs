//! The per-request PyPI simple index, as a pure router over the request's pip artifacts.
//!
//! Paths (below `/repos/{id}/.../pip/`): `simple/` (root listing), `simple/<normalized>/`
//! (project page: PEP 503 HTML or PEP 691 JSON by `Accept`), `files/<artifact meta.path>`
//! (the stored bytes). Non-normalized names and missing trailing slashes redirect; everything
//! else is NotFound. Only index artifacts are listed on project pages; VCS and URL archives are
//! reachable only by their file URL (used by the rewritten requirements files).

use super::{RepoRequest, Served};
use crate::error::ApiResult;
use actix_web::{http::header, HttpRequest, HttpResponse};
use common::artifact::pip::{PipFileKind, PipMeta};
use common::{Artifact, ArtifactMeta};
use html_escape::encode_quoted_attribute as html_escape;
use std::collections::BTreeMap;

pub const JSON_CONTENT_TYPE: &str = "application/vnd.pypi.simple.v1+json";
pub const HTML_CONTENT_TYPE: &str = "application/vnd.pypi.simple.v1+html";

pub use common::pypi::normalize_name;

/// Serve one GET below `/repos/{id}/…/pip/`: project pages load only that project's artifacts.
pub async fn handle(repo: &RepoRequest, req: &HttpRequest, tail: &str) -> ApiResult<HttpResponse> {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let artifacts = match wanted_name(tail) {
        Some(name) => {
            let found = repo.artifacts(Some(&name)).await?;
            if found.is_empty() && tail.starts_with("files/") {
                // VCS archives live below their host's path: look through all of them.
                repo.artifacts(None).await?
            } else {
                found
            }
        }
        None => repo.artifacts(None).await?,
    };
    repo.respond(serve(&artifacts, &repo.base_url, tail, accept))
        .await
}

/// The artifact name a path needs, when one name is enough.
pub fn wanted_name(path: &str) -> Option<String> {
    let path = path.trim_start_matches('/');
    if let Some(rest) = path.strip_prefix("simple/") {
        let name = rest.trim_end_matches('/');
        return (!name.is_empty() && !name.contains('/')).then(|| normalize_name(name));
    }
    let rest = path.strip_prefix("files/")?;
    let first = rest.split('/').next()?;
    Some(first.strip_prefix("external-").unwrap_or(first).to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Html,
    TextHtml,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => JSON_CONTENT_TYPE,
            Format::Html => HTML_CONTENT_TYPE,
            Format::TextHtml => "text/html",
        }
    }
}

/// PEP 691 content negotiation. No `Accept` or only wildcards -> `text/html`.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Format::TextHtml;
    };
    let ours = [
        (
            Format::Json,
            JSON_CONTENT_TYPE,
            "application/vnd.pypi.simple.latest+json",
        ),
        (
            Format::Html,
            HTML_CONTENT_TYPE,
            "application/vnd.pypi.simple.latest+html",
        ),
        (Format::TextHtml, "text/html", "text/html"),
    ];
    let mut best: Option<(u32, u8, Format)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let mt = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1000u32;
        for p in parts {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v
                    .trim()
                    .parse::<f32>()
                    .map_or(0, |f| (f.clamp(0.0, 1.0) * 1000.0) as u32);
            }
        }
        if q == 0 {
            continue;
        }
        for (fmt, a, b) in ours {
            let spec = if mt == a || mt == b {
                2
            } else if mt == "*/*" || (mt.ends_with("/*") && a.starts_with(&mt[..mt.len() - 1])) {
                0
            } else {
                continue;
            };
            let cand = (q, spec, fmt);
            let better = match best {
                None => true,
                Some((bq, bs, _)) => (q, spec) > (bq, bs),
            };
            if better {
                best = Some(cand);
            }
        }
    }
    match best {
        Some((_, 0, _)) | None => Format::TextHtml,
        Some((_, _, f)) => f,
    }
}

/// An artifact of this protocol, with its metadata.
fn pip_meta(a: &Artifact) -> Option<&PipMeta> {
    match &a.meta {
        ArtifactMeta::Pip(m) if a.pm == "pip" => Some(m),
        _ => None,
    }
}

type IndexFile<'a> = (&'a Artifact, &'a PipMeta);

fn projects(artifacts: &[Artifact]) -> BTreeMap<String, Vec<IndexFile<'_>>> {
    let mut m: BTreeMap<String, Vec<IndexFile<'_>>> = BTreeMap::new();
    for a in artifacts {
        if let Some(meta) = pip_meta(a).filter(|m| m.kind == PipFileKind::Index) {
            m.entry(normalize_name(&a.name))
                .or_default()
                .push((a, meta));
        }
    }
    for v in m.values_mut() {
        v.sort_by(|a, b| a.0.filename.cmp(&b.0.filename));
        v.dedup_by(|a, b| a.0.filename == b.0.filename);
    }
    m
}

fn body(bytes: Vec<u8>, fmt: Format) -> Served {
    Served::Body {
        bytes,
        content_type: fmt.content_type(),
    }
}

fn root_page(projects: &BTreeMap<String, Vec<IndexFile<'_>>>, fmt: Format) -> Served {
    if fmt == Format::Json {
        let list: Vec<_> = projects
            .keys()
            .map(|n| serde_json::json!({"name": n}))
            .collect();
        let v = serde_json::json!({"meta": {"api-version": "1.1"}, "projects": list});
        return body(v.to_string().into_bytes(), fmt);
    }
    let mut h = String::from("<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\"><title>Simple index</title></head><body>\n");
    for n in projects.keys() {
        h.push_str(&format!("<a href=\"{n}/\">{n}</a>\n"));
    }
    h.push_str("</body></html>\n");
    body(h.into_bytes(), fmt)
}

fn project_page(name: &str, files: &[IndexFile<'_>], fmt: Format) -> Served {
    if fmt == Format::Json {
        let mut versions: Vec<String> = files.iter().map(|(a, _)| a.version.clone()).collect();
        versions.sort();
        versions.dedup();
        let jf: Vec<_> = files
            .iter()
            .map(|(a, meta)| {
                let sha = meta.sha256.as_str();
                let mut f = serde_json::json!({
                    "filename": a.filename,
                    "url": format!("../../{}", meta.path),
                    "hashes": if sha.is_empty() { serde_json::json!({}) } else { serde_json::json!({"sha256": sha}) },
                    "yanked": false,
                    "size": meta.size,
                });
                if let Some(rp) = &meta.requires_python {
                    f["requires-python"] = rp.as_str().into();
                }
                f
            })
            .collect();
        let v = serde_json::json!({"meta": {"api-version": "1.1"}, "name": name, "versions": versions, "files": jf});
        return body(v.to_string().into_bytes(), fmt);
    }
    let mut h = format!("<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\"><title>Links for {name}</title></head><body>\n<h1>Links for {name}</h1>\n");
    for (a, meta) in files {
        let sha = Some(meta.sha256.as_str())
            .filter(|s| !s.is_empty())
            .map(|s| format!("#sha256={s}"))
            .unwrap_or_default();
        let rp = meta
            .requires_python
            .as_deref()
            .map(|r| format!(" data-requires-python=\"{}\"", html_escape(r)))
            .unwrap_or_default();
        h.push_str(&format!(
            "<a href=\"../../{}{sha}\"{rp}>{}</a><br/>\n",
            html_escape(&meta.path),
            html_escape(&a.filename)
        ));
    }
    h.push_str("</body></html>\n");
    body(h.into_bytes(), fmt)
}

/// Route one GET below the pip base URL. `base_url` ends with `/` (e.g.
/// `http://127.0.0.1:8080/repos/7/pip/`); `path` is the rest, without a leading `/`.
pub fn serve(artifacts: &[Artifact], base_url: &str, path: &str, accept: Option<&str>) -> Served {
    let path = path.trim_start_matches('/');
    let base = if base_url.ends_with('/') {
        base_url.to_string()
    } else {
        format!("{base_url}/")
    };
    if path.split('/').any(|s| s == ".." || s == ".") || path.contains(['\\', '\0', '?', '#']) {
        return Served::NotFound;
    }
    if let Some(rest) = path.strip_prefix("files/") {
        let want = format!("files/{rest}");
        return artifacts
            .iter()
            .find(|a| pip_meta(a).is_some_and(|m| m.path == want))
            .map_or(Served::NotFound, |a| Served::File {
                store_key: a.store_key.clone(),
                content_type: "application/octet-stream",
            });
    }
    let fmt = negotiate(accept);
    if path == "simple" {
        return Served::Redirect {
            location: format!("{base}simple/"),
        };
    }
    if path == "simple/" {
        return root_page(&projects(artifacts), fmt);
    }
    let Some(rest) = path.strip_prefix("simple/") else {
        return Served::NotFound;
    };
    let (name, slash) = match rest.strip_suffix('/') {
        Some(n) => (n, true),
        None => (rest, false),
    };
    if name.is_empty() || name.contains('/') {
        return Served::NotFound;
    }
    let normalized = normalize_name(name);
    let all = projects(artifacts);
    let Some(files) = all.get(&normalized) else {
        return Served::NotFound;
    };
    if !slash || normalized != name {
        return Served::Redirect {
            location: format!("{base}simple/{normalized}/"),
        };
    }
    project_page(&normalized, files, fmt)
}

/// The per-request PyPI simple index.
pub struct SimpleIndex;

impl super::Repository for SimpleIndex {
    fn segment(&self) -> &'static str {
        "pip"
    }

    fn package_managers(&self) -> &'static [&'static str] {
        &["pip"]
    }

    fn may_serve(&self, key: &str) -> bool {
        // index files, URL requirements and the packed VCS requirements; requests laid out
        // before VCS requirements were packed recorded the git archive of their commit
        // (worker/src/pkg_managers/pip/layout.rs)
        key.starts_with("deps/pip/") || super::is_git_archive(key)
    }

    fn handle<'a>(
        &'a self,
        repo: &'a RepoRequest,
        req: &'a HttpRequest,
        tail: &'a str,
    ) -> futures_util::future::LocalBoxFuture<'a, ApiResult<HttpResponse>> {
        Box::pin(handle(repo, req, tail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://127.0.0.1:8080/repos/7/pip/";

    fn art(name: &str, version: &str, filename: &str, kind: PipFileKind, path: &str) -> Artifact {
        Artifact {
            pm: "pip".into(),
            name: name.into(),
            version: version.into(),
            filename: filename.into(),
            store_key: format!("deps/pip/{name}/{filename}"),
            meta: ArtifactMeta::Pip(PipMeta {
                sha256: "ab".repeat(32),
                requires_python: Some(">=3.8".into()),
                size: 12,
                kind,
                path: path.into(),
                license: None,
            }),
            source_url: None,
        }
    }

    fn arts() -> Vec<Artifact> {
        vec![
            art(
                "my-pkg",
                "1.0",
                "My_Pkg-1.0.tar.gz",
                PipFileKind::Index,
                "files/my-pkg/My_Pkg-1.0.tar.gz",
            ),
            art(
                "my-pkg",
                "1.0",
                "my_pkg-1.0-py3-none-any.whl",
                PipFileKind::Index,
                "files/my-pkg/my_pkg-1.0-py3-none-any.whl",
            ),
            art(
                "repo",
                "0123",
                "repo-external-gitcommit-0123.tar.gz",
                PipFileKind::Vcs,
                "files/github.com/o/repo/repo-external-gitcommit-0123.tar.gz",
            ),
            Artifact {
                pm: "npm".into(),
                ..art(
                    "evil",
                    "1",
                    "evil-1.tar.gz",
                    PipFileKind::Index,
                    "files/evil/evil-1.tar.gz",
                )
            },
        ]
    }

    const PIP_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(Some(PIP_ACCEPT)), Format::Json);
        assert_eq!(negotiate(None), Format::TextHtml);
        assert_eq!(negotiate(Some("*/*")), Format::TextHtml);
        assert_eq!(negotiate(Some("text/html")), Format::TextHtml);
        assert_eq!(
            negotiate(Some("application/vnd.pypi.simple.v1+html")),
            Format::Html
        );
        assert_eq!(
            negotiate(Some("application/vnd.pypi.simple.v1+json;q=0, text/html")),
            Format::TextHtml
        );
        assert_eq!(
            negotiate(Some("application/vnd.pypi.simple.latest+json")),
            Format::Json
        );
        assert_eq!(negotiate(Some("garbage;;q=x,,")), Format::TextHtml);
    }

    #[test]
    fn project_pages() {
        let a = arts();
        let Served::Body {
            bytes,
            content_type,
        } = serve(&a, BASE, "simple/my-pkg/", None)
        else {
            panic!()
        };
        assert_eq!(content_type, "text/html");
        let html = String::from_utf8(bytes.clone()).unwrap();
        assert!(html.contains(&format!("<a href=\"../../files/my-pkg/My_Pkg-1.0.tar.gz#sha256={}\" data-requires-python=\"&gt;=3.8\">My_Pkg-1.0.tar.gz</a>", "ab".repeat(32))), "{html}");
        assert!(html.contains("pypi:repository-version"));
        assert!(!html.contains("repo-external"));
        assert_eq!(html.matches("<a href=").count(), 2);
        let Served::Body {
            bytes,
            content_type,
        } = serve(&a, BASE, "simple/my-pkg/", Some(PIP_ACCEPT))
        else {
            panic!()
        };
        assert_eq!(content_type, JSON_CONTENT_TYPE);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["files"][1]["size"], 12);
        assert_eq!(v["files"][1]["requires-python"], ">=3.8");
        assert_eq!(v["files"][0]["url"], "../../files/my-pkg/My_Pkg-1.0.tar.gz");
        assert_eq!(v["versions"], serde_json::json!(["1.0"]));
    }

    #[test]
    fn routing() {
        let a = arts();
        assert_eq!(
            serve(&a, BASE, "simple/My_Pkg/", None),
            Served::Redirect {
                location: format!("{BASE}simple/my-pkg/")
            }
        );
        assert_eq!(
            serve(&a, BASE, "simple/my-pkg", None),
            Served::Redirect {
                location: format!("{BASE}simple/my-pkg/")
            }
        );
        assert_eq!(
            serve(&a, "http://h/x", "simple", None),
            Served::Redirect {
                location: "http://h/x/simple/".into()
            }
        );
        assert_eq!(serve(&a, BASE, "simple/evil/", None), Served::NotFound);
        assert_eq!(serve(&a, BASE, "simple/repo/", None), Served::NotFound);
        assert_eq!(serve(&a, BASE, "simple/unknown/", None), Served::NotFound);
        assert_eq!(
            serve(&a, BASE, "files/evil/evil-1.tar.gz", None),
            Served::NotFound
        );
        assert_eq!(
            serve(&a, BASE, "files/my-pkg/../my-pkg/My_Pkg-1.0.tar.gz", None),
            Served::NotFound
        );
        assert_eq!(
            serve(&a, BASE, "files/my-pkg/nope.tar.gz", None),
            Served::NotFound
        );
        assert_eq!(serve(&a, BASE, "", None), Served::NotFound);
        assert_eq!(serve(&a, BASE, "simple/a/b/", None), Served::NotFound);
        assert!(
            matches!(serve(&a, BASE, "files/my-pkg/My_Pkg-1.0.tar.gz", None), Served::File { ref store_key, .. } if store_key == "deps/pip/my-pkg/My_Pkg-1.0.tar.gz")
        );
        assert!(matches!(
            serve(
                &a,
                BASE,
                "files/github.com/o/repo/repo-external-gitcommit-0123.tar.gz",
                None
            ),
            Served::File { .. }
        ));
        let Served::Body { bytes, .. } = serve(&a, BASE, "simple/", None) else {
            panic!()
        };
        let html = String::from_utf8(bytes).unwrap();
        assert!(
            html.contains("<a href=\"my-pkg/\">my-pkg</a>")
                && !html.contains("evil")
                && !html.contains(">repo<")
        );
        let Served::Body { bytes, .. } = serve(&a, BASE, "simple/", Some(PIP_ACCEPT)) else {
            panic!()
        };
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["projects"], serde_json::json!([{"name": "my-pkg"}]));
        assert_eq!(serve(&[], BASE, "simple/x/", None), Served::NotFound);
    }

    #[test]
    fn names_to_load() {
        assert_eq!(wanted_name("simple/My_Pkg/").as_deref(), Some("my-pkg"));
        assert_eq!(wanted_name("simple/"), None);
        assert_eq!(
            wanted_name("files/my-pkg/a.tar.gz").as_deref(),
            Some("my-pkg")
        );
        assert_eq!(
            wanted_name("files/external-foo/x.zip").as_deref(),
            Some("foo")
        );
    }
}
