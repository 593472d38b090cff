//! The per-request npm registry as a pure router over the request's npm [`Artifact`]s.
//!
//! Routes (path below `/repos/{id}/.../npm/`, already stripped of the base):
//! - `<name>`, `@scope%2fname`, `@scope/name`: packument listing only the request's registry
//!   versions (artifacts whose `NpmMeta::source` is the registry), full
//!   (`application/json`) or abbreviated (`application/vnd.npm.install-v1+json`, when the Accept
//!   header asks for it), `dist.tarball` on the per-request registry, `dist-tags.latest` = the
//!   highest version (semver precedence, releases over pre-releases);
//! - `<name>/-/<file>.tgz` (also after any extra path prefix, as `replace-registry-host=always`
//!   produces): the artifact's stored file;
//! - everything else: NotFound.

use super::{RepoRequest, Served};
use crate::error::ApiResult;
use actix_web::{http::header, HttpRequest, HttpResponse};
use common::artifact::npm::{NpmManifest, NpmMeta, NpmSource};
use common::percent::decode as pct_decode;
use common::{Artifact, ArtifactMeta};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::cmp::Ordering;

pub const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";
pub const JSON: &str = "application/json";
pub const TARBALL: &str = "application/octet-stream";

/// Does the client prefer the abbreviated document?
pub fn wants_abbreviated(accept: Option<&str>) -> bool {
    let Some(a) = accept else { return false };
    let mut best: Option<(f32, bool)> = None;
    for part in a.split(',') {
        let mut it = part.split(';');
        let mt = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = it
            .filter_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
            })
            .next()
            .unwrap_or(1.0);
        let is_abbr = mt == ABBREVIATED;
        if (is_abbr || mt == JSON || mt == "*/*") && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, is_abbr));
        }
    }
    best.is_some_and(|(_, a)| a)
}

/// Semver precedence (build metadata ignored); unparseable versions sort first, lexically.
pub fn cmp_semver(a: &str, b: &str) -> Ordering {
    let parse = |v: &str| semver::Version::parse(v.trim_start_matches('v')).ok();
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x.cmp_precedence(&y),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => a.cmp(b),
    }
}

/// The metadata of a registry tarball of the request (git, URL and `file:` tarballs are served
/// by file name only, never listed).
fn registry_meta(a: &Artifact) -> Option<&NpmMeta> {
    match &a.meta {
        ArtifactMeta::Npm(m) if served(a) && m.source == NpmSource::Registry => Some(m),
        _ => None,
    }
}

/// One version of a packument.
#[derive(Serialize)]
struct VersionDoc<'a> {
    #[serde(flatten)]
    manifest: NpmManifest,
    name: &'a str,
    version: &'a str,
    dist: DistDoc<'a>,
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    id: Option<String>,
}

#[derive(Serialize)]
struct DistDoc<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    integrity: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    shasum: &'a str,
    tarball: String,
}

/// Build a packument for `name` (None if the request has no registry version of it).
pub fn packument(
    artifacts: &[Artifact],
    repo_url: &str,
    name: &str,
    abbreviated: bool,
) -> Option<Value> {
    let base = if repo_url.ends_with('/') {
        repo_url.to_string()
    } else {
        format!("{repo_url}/")
    };
    let mut mine: Vec<(&Artifact, &NpmMeta)> = artifacts
        .iter()
        .filter(|a| a.name == name)
        .filter_map(|a| Some((a, registry_meta(a)?)))
        .collect();
    if mine.is_empty() {
        return None;
    }
    mine.sort_by(|(a, _), (b, _)| cmp_semver(&a.version, &b.version));
    let latest = mine
        .iter()
        .rev()
        .find(|(a, _)| !a.version.contains('-'))
        .or(mine.last())
        .map(|(a, _)| a.version.clone())
        .unwrap_or_default();
    let mut versions = Map::new();
    for (a, meta) in &mine {
        let mut manifest = meta.manifest.clone();
        if abbreviated {
            manifest.license = None;
        }
        let doc = VersionDoc {
            manifest,
            name: &a.name,
            version: &a.version,
            dist: DistDoc {
                integrity: &meta.dist.integrity,
                shasum: &meta.dist.shasum,
                tarball: format!("{base}{}/-/{}", a.name, a.filename),
            },
            id: (!abbreviated).then(|| format!("{}@{}", a.name, a.version)),
        };
        versions.insert(
            a.version.clone(),
            serde_json::to_value(doc).unwrap_or_default(),
        );
    }
    let mut doc = json!({
        "name": name,
        "dist-tags": {"latest": latest},
        "versions": versions,
    });
    if abbreviated {
        doc["modified"] = Value::String("1985-10-26T08:15:00.000Z".into());
    } else {
        doc["_id"] = Value::String(name.to_string());
    }
    Some(doc)
}

/// What a registry path names: a packument or one tarball of one package.
#[derive(Debug, PartialEq, Eq)]
pub enum NpmPath {
    Packument(String),
    Tarball { name: String, file: String },
}

/// Parse a path below the per-request base (leading `/` optional, may be percent-encoded).
/// A tarball is `…/<name>/-/<file>`; its name is scoped exactly when the segment before the
/// name starts with `@`, so `@jest/expect/-/expect-29.7.0.tgz` can never serve `expect`'s
/// tarball, nor `expect/-/expect-29.7.0.tgz` the scoped one.
pub fn parse_path(path: &str) -> Option<NpmPath> {
    let path = path
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .trim_start_matches('/');
    if path.is_empty() || path.len() > 4096 {
        return None;
    }
    if let Some(idx) = path.rfind("/-/") {
        let file = pct_decode(&path[idx + 3..])?;
        let before = pct_decode(&path[..idx])?;
        if file.is_empty() || file.contains('/') {
            return None;
        }
        let segs: Vec<&str> = before.split('/').collect();
        let last = *segs.last()?;
        let name = match segs.len().checked_sub(2).map(|i| segs[i]) {
            Some(scope) if scope.starts_with('@') => format!("{scope}/{last}"),
            _ => last.to_string(),
        };
        return Some(NpmPath::Tarball { name, file });
    }
    let name = pct_decode(path)?;
    let name = name.trim_end_matches('/');
    let valid = match name.strip_prefix('@') {
        Some(rest) => rest.split('/').count() == 2,
        None => !name.contains('/'),
    };
    valid.then(|| NpmPath::Packument(name.to_string()))
}

/// `GET /repos/{id}/npm/<tail>`: load only the artifacts of the package asked for, then route.
pub async fn handle(repo: &RepoRequest, req: &HttpRequest, tail: &str) -> ApiResult<HttpResponse> {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let artifacts = match parse_path(tail) {
        Some(NpmPath::Packument(name) | NpmPath::Tarball { name, .. }) => {
            repo.artifacts(Some(&name)).await?
        }
        None => Vec::new(),
    };
    let served = serve(&artifacts, &repo.base_url, tail, accept);
    repo.respond(served).await
}

/// Route one request. `path` is below the per-request base (leading `/` optional, may be
/// percent-encoded); `accept` the Accept header.
pub fn serve(artifacts: &[Artifact], repo_url: &str, path: &str, accept: Option<&str>) -> Served {
    match parse_path(path) {
        None => Served::NotFound,
        Some(NpmPath::Tarball { name, file }) => artifacts
            .iter()
            .find(|a| served(a) && a.name == name && a.filename == file)
            .map_or(Served::NotFound, |a| Served::File {
                store_key: a.store_key.clone(),
                content_type: TARBALL,
            }),
        Some(NpmPath::Packument(name)) => {
            let abbr = wants_abbreviated(accept);
            match packument(artifacts, repo_url, &name, abbr) {
                Some(doc) => Served::Body {
                    bytes: serde_json::to_vec(&doc).unwrap_or_default(),
                    content_type: if abbr { ABBREVIATED } else { JSON },
                },
                None => Served::NotFound,
            }
        }
    }
}

/// Whether the registry serves an artifact: npm's, yarn's and pnpm's (never two of them for one
/// package path).
fn served(a: &Artifact) -> bool {
    REGISTRY.package_managers.contains(&a.pm.as_str())
}

/// The per-request npm registry.
pub static REGISTRY: super::FileRepository = super::FileRepository {
    segment: "npm",
    package_managers: &["npm", "yarn", "pnpm"],
    // registry, git, URL and file: tarballs (worker/src/pkg_managers/npm/plan.rs)
    store_keys: ("deps/npm/", ".tgz"),
    handle: |repo, req, tail| Box::pin(handle(repo, req, tail)),
};

#[cfg(test)]
mod tests {
    use super::*;

    fn art(name: &str, version: &str, source: NpmSource) -> Artifact {
        let base = name.rsplit('/').next().unwrap();
        Artifact {
            pm: "npm".into(),
            name: name.into(),
            version: version.into(),
            filename: format!("{base}-{version}.tgz"),
            store_key: format!("deps/npm/{name}/-/{base}-{version}.tgz"),
            meta: ArtifactMeta::Npm(Box::new(NpmMeta {
                source,
                manifest: NpmManifest {
                    dependencies: Some(json!({"x": "^1"})),
                    license: Some(json!("MIT")),
                    ..NpmManifest::default()
                },
                dist: common::artifact::npm::NpmDist {
                    integrity: "sha512-a".into(),
                    shasum: "ab".into(),
                },
            })),
            source_url: None,
        }
    }

    const R: &str = "http://h:1/repos/7/npm/";

    #[test]
    fn tarballs() {
        let a = vec![
            art("lodash", "4.17.21", NpmSource::Registry),
            art("@s/n", "1.0.0", NpmSource::Registry),
        ];
        let f = |p: &str| serve(&a, R, p, None);
        assert_eq!(
            f("lodash/-/lodash-4.17.21.tgz"),
            Served::File {
                store_key: "deps/npm/lodash/-/lodash-4.17.21.tgz".into(),
                content_type: TARBALL
            }
        );
        assert!(matches!(f("/@s/n/-/n-1.0.0.tgz"), Served::File { .. }));
        assert!(matches!(f("@s%2fn/-/n-1.0.0.tgz"), Served::File { .. }));
        assert!(matches!(
            f("artifactory/api/npm/lodash/-/lodash-4.17.21.tgz"),
            Served::File { .. }
        ));
        assert_eq!(f("lodash/-/lodash-4.17.20.tgz"), Served::NotFound);
        assert_eq!(f("other/-/lodash-4.17.21.tgz"), Served::NotFound);
        assert_eq!(f("lodash/-/../lodash-4.17.21.tgz"), Served::NotFound);
        assert_eq!(f(""), Served::NotFound);
        assert_eq!(f("-/npm/v1/security/advisories/bulk"), Served::NotFound);
        assert_eq!(f("%zz"), Served::NotFound);
    }

    #[test]
    fn yarn_and_pnpm_artifacts_are_served_other_package_managers_not() {
        let mut y = art("a", "1.0.0", NpmSource::Registry);
        y.pm = "yarn".into();
        let mut p = art("b", "1.0.0", NpmSource::Registry);
        p.pm = "pip".into();
        let mut n = art("c", "1.0.0", NpmSource::Url);
        n.pm = "pnpm".into();
        let a = vec![y, p, n];
        assert!(matches!(
            serve(&a, R, "c/-/c-1.0.0.tgz", None),
            Served::File { .. }
        ));
        assert!(matches!(
            serve(&a, R, "a/-/a-1.0.0.tgz", None),
            Served::File { .. }
        ));
        assert!(matches!(serve(&a, R, "a", None), Served::Body { .. }));
        assert_eq!(serve(&a, R, "b/-/b-1.0.0.tgz", None), Served::NotFound);
        assert_eq!(serve(&a, R, "b", None), Served::NotFound);
    }

    #[test]
    fn scoped_and_unscoped_tarballs_of_the_same_file_name() {
        let a = vec![
            art("expect", "29.7.0", NpmSource::Registry),
            art("@jest/expect", "29.7.0", NpmSource::Registry),
        ];
        let key = |p: &str| match serve(&a, R, p, None) {
            Served::File { store_key, .. } => store_key,
            other => panic!("{p}: {other:?}"),
        };
        assert_eq!(
            key("@jest/expect/-/expect-29.7.0.tgz"),
            "deps/npm/@jest/expect/-/expect-29.7.0.tgz"
        );
        assert_eq!(
            key("@jest%2fexpect/-/expect-29.7.0.tgz"),
            "deps/npm/@jest/expect/-/expect-29.7.0.tgz"
        );
        assert_eq!(
            key("expect/-/expect-29.7.0.tgz"),
            "deps/npm/expect/-/expect-29.7.0.tgz"
        );
        // only the unscoped package: a scoped path must not fall back to it, nor the reverse
        let only_unscoped = vec![art("expect", "29.7.0", NpmSource::Registry)];
        assert_eq!(
            serve(&only_unscoped, R, "@jest/expect/-/expect-29.7.0.tgz", None),
            Served::NotFound
        );
        let only_scoped = vec![a[1].clone()];
        assert_eq!(
            serve(&only_scoped, R, "expect/-/expect-29.7.0.tgz", None),
            Served::NotFound
        );
    }

    #[test]
    fn packuments() {
        let a = vec![
            art("@s/n", "1.0.0", NpmSource::Registry),
            art("@s/n", "1.10.0", NpmSource::Registry),
            art("@s/n", "2.0.0-beta.1", NpmSource::Registry),
            art("@s/n", "1.2.0", NpmSource::Git),
        ];
        for p in ["@s%2fn", "@s%2Fn", "@s/n", "/@s/n/"] {
            let Served::Body {
                bytes,
                content_type,
            } = serve(
                &a,
                R,
                p,
                Some("application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"),
            )
            else {
                panic!("{p}")
            };
            assert_eq!(content_type, ABBREVIATED);
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(v["dist-tags"]["latest"], "1.10.0");
            assert_eq!(
                v["versions"].as_object().unwrap().len(),
                3,
                "git artifacts are not listed"
            );
            assert_eq!(
                v["versions"]["1.0.0"]["dist"]["tarball"],
                "http://h:1/repos/7/npm/@s/n/-/n-1.0.0.tgz"
            );
            assert_eq!(v["versions"]["1.0.0"]["dist"]["integrity"], "sha512-a");
            assert!(v["versions"]["1.0.0"].get("source").is_none());
        }
        let Served::Body {
            content_type,
            bytes,
        } = serve(&a, R, "@s%2fn", Some("application/json"))
        else {
            panic!()
        };
        assert_eq!(content_type, JSON);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["_id"], "@s/n");
        assert_eq!(serve(&a, R, "lodash", None), Served::NotFound);
        assert_eq!(serve(&a, R, "@s", None), Served::NotFound);
        assert_eq!(serve(&a, R, "a/b", None), Served::NotFound);
    }

    #[test]
    fn semver_order() {
        let mut v = vec![
            "1.0.0",
            "1.0.0-rc.1",
            "1.0.0-alpha",
            "0.9.10",
            "0.9.9",
            "1.0.0-alpha.2",
            "x",
        ];
        v.sort_by(|a, b| cmp_semver(a, b));
        assert_eq!(
            v,
            vec![
                "x",
                "0.9.9",
                "0.9.10",
                "1.0.0-alpha",
                "1.0.0-alpha.2",
                "1.0.0-rc.1",
                "1.0.0"
            ]
        );
        assert!(!wants_abbreviated(Some("application/json")));
        assert!(!wants_abbreviated(None));
        assert!(wants_abbreviated(Some(
            "application/vnd.npm.install-v1+json"
        )));
    }
}
