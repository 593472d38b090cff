//! The per-request gem server: the Compact Index (guides.rubygems.org, "Compact Index API")
//! of the request's gems only, and the `.gem` files.
//!
//! Below the request's base (`…/repos/{id}/rubygems/` with the token as HTTP Basic password,
//! or the token-path form):
//! - `versions`: `created_at:` header, `---`, then `<name> <v>[-<platform>],… <md5 of info>`;
//! - `names`: `---` then one name a line;
//! - `info/<name>`: `---` then the recorded upstream line of each of the request's versions;
//! - `gems/<name>-<version>[-<platform>].gem`: the stored file;
//! - anything else: 404.
//!
//! Each index document carries `ETag: "<md5 hex>"` (Bundler ≤ 2.4 compares it with the MD5 of
//! what it holds, and `versions` lists the same MD5 of each info file) and
//! `Repr-Digest: sha-256=:<base64>:` (Bundler ≥ 2.5 verifies the body against it); an
//! `If-None-Match` naming the current ETag is a 304. Ranges are not served: the whole document
//! is a correct answer to Bundler's `Range: bytes=n-`.

use super::{FileRepository, RepoRequest, Served};
use crate::error::ApiResult;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use common::artifact::rubygems::is_gem_name;
use common::{Artifact, ArtifactMeta};
use md5::Digest as _;
use sha2::Digest as _;
use std::collections::BTreeMap;

pub const INDEX_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
pub const GEM_CONTENT_TYPE: &str = "application/octet-stream";

/// A stable `created_at`: the document changes only with the request's gems, never by the hour.
const CREATED_AT: &str = "created_at: 1970-01-01T00:00:00Z";

/// What a path below the gem server answers.
#[derive(Debug, PartialEq, Eq)]
pub enum GemServed {
    /// An index document, with its validators.
    Index(Vec<u8>),
    Gem {
        store_key: String,
    },
    NotFound,
}

/// The `info/<name>` document of `name` from the request's artifacts (`None`: not one of them).
pub fn info_body(artifacts: &[Artifact], name: &str) -> Option<Vec<u8>> {
    info_body_of(artifacts.iter().filter(|a| a.name == name))
}

/// The `info/<name>` document of one gem's artifacts.
fn info_body_of<'a>(artifacts: impl Iterator<Item = &'a Artifact>) -> Option<Vec<u8>> {
    let mut lines: Vec<&str> = artifacts
        .filter(|a| a.pm == "rubygems")
        .filter_map(|a| match &a.meta {
            ArtifactMeta::Rubygems(m) => Some(m.info_line.trim_end_matches(['\n', '\r'])),
            _ => None,
        })
        .collect();
    if lines.is_empty() {
        return None;
    }
    lines.sort();
    lines.dedup();
    let mut body = b"---\n".to_vec();
    for l in lines {
        body.extend_from_slice(l.as_bytes());
        body.push(b'\n');
    }
    Some(body)
}

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(md5::Md5::digest(bytes))
}

/// The names of the request's gems, each with its `version[-platform]`s (sorted) and its
/// artifacts.
fn versions_by_name(artifacts: &[Artifact]) -> BTreeMap<&str, (Vec<String>, Vec<&Artifact>)> {
    let mut out: BTreeMap<&str, (Vec<String>, Vec<&Artifact>)> = BTreeMap::new();
    for a in artifacts.iter().filter(|a| a.pm == "rubygems") {
        if let ArtifactMeta::Rubygems(m) = &a.meta {
            let v = match &m.platform {
                Some(p) => format!("{}-{p}", a.version),
                None => a.version.clone(),
            };
            let entry = out.entry(a.name.as_str()).or_default();
            entry.0.push(v);
            entry.1.push(a);
        }
    }
    for (v, _) in out.values_mut() {
        v.sort();
        v.dedup();
    }
    out
}

pub fn serve(artifacts: &[Artifact], path: &str) -> GemServed {
    let path = path.trim_start_matches('/');
    match path.split_once('/') {
        None if path == "versions" => {
            let mut body = format!("{CREATED_AT}\n---\n").into_bytes();
            for (name, (versions, of_name)) in versions_by_name(artifacts) {
                let info = info_body_of(of_name.into_iter()).unwrap_or_default();
                body.extend_from_slice(
                    format!("{name} {} {}\n", versions.join(","), md5_hex(&info)).as_bytes(),
                );
            }
            GemServed::Index(body)
        }
        None if path == "names" => {
            let mut body = b"---\n".to_vec();
            for name in versions_by_name(artifacts).keys() {
                body.extend_from_slice(name.as_bytes());
                body.push(b'\n');
            }
            GemServed::Index(body)
        }
        Some(("info", name)) if is_gem_name(name) => match info_body(artifacts, name) {
            Some(body) => GemServed::Index(body),
            None => GemServed::NotFound,
        },
        Some(("gems", file)) if !file.contains('/') && file.ends_with(".gem") => artifacts
            .iter()
            .find(|a| a.pm == "rubygems" && a.filename == file)
            .map_or(GemServed::NotFound, |a| GemServed::Gem {
                store_key: a.store_key.clone(),
            }),
        _ => GemServed::NotFound,
    }
}

/// The gem names a path may be about, so only those gems' artifacts are loaded (empty: all of
/// them; `None`: no gem's).
fn gem_names(path: &str) -> Option<Vec<String>> {
    match path.trim_start_matches('/').split_once('/') {
        None => Some(Vec::new()),
        Some(("info", name)) => Some(vec![name.to_string()]),
        // `<name>-<version>[-<platform>].gem`: the name may hold dashes, so each prefix before
        // one is a candidate
        Some(("gems", file)) => {
            let stem = file.strip_suffix(".gem")?;
            let names: Vec<String> = stem
                .match_indices('-')
                .map(|(at, _)| stem[..at].to_string())
                .filter(|n| is_gem_name(n))
                .collect();
            (!names.is_empty()).then_some(names)
        }
        _ => None,
    }
}

pub async fn handle(repo: &RepoRequest, req: &HttpRequest, tail: &str) -> ApiResult<HttpResponse> {
    let Some(names) = gem_names(tail) else {
        return repo.respond(Served::NotFound).await;
    };
    let artifacts = if names.is_empty() {
        repo.artifacts(None).await?
    } else {
        let mut all = Vec::new();
        let file = tail.rsplit('/').next().unwrap_or_default();
        for name in &names {
            all.extend(repo.artifacts(Some(name)).await?);
            if all.iter().any(|a| a.filename == file) {
                break;
            }
        }
        all
    };
    match serve(&artifacts, tail) {
        GemServed::NotFound => repo.respond(Served::NotFound).await,
        GemServed::Gem { store_key } => {
            repo.respond(Served::File {
                store_key,
                content_type: GEM_CONTENT_TYPE,
            })
            .await
        }
        GemServed::Index(body) => {
            let etag = format!("\"{}\"", md5_hex(&body));
            let repr_digest = format!(
                "sha-256=:{}:",
                base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&body))
            );
            let not_modified = req
                .headers()
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    v.split(',')
                        .any(|t| t.trim().trim_start_matches("W/") == etag)
                });
            if not_modified {
                return Ok(HttpResponse::NotModified()
                    .insert_header((header::ETAG, etag))
                    .finish());
            }
            repo.state.bytes_downloaded.add(body.len() as u64);
            Ok(HttpResponse::Ok()
                .content_type(INDEX_CONTENT_TYPE)
                .insert_header((header::ETAG, etag))
                .insert_header(("Repr-Digest", repr_digest))
                .insert_header((header::ACCEPT_RANGES, "none"))
                .body(body))
        }
    }
}

/// The per-request gem server.
pub static GEM_SERVER: FileRepository = FileRepository {
    segment: "rubygems",
    package_managers: &["rubygems"],
    // `.gem` files (common::artifact::rubygems::gem_store_key)
    store_keys: ("deps/rubygems/", ".gem"),
    handle: |repo, req, tail| Box::pin(handle(repo, req, tail)),
};

#[cfg(test)]
mod tests {
    use super::*;
    use common::artifact::rubygems::{GemIntegrity, GemMeta};

    fn art(name: &str, version: &str, platform: Option<&str>) -> Artifact {
        let full = common::artifact::rubygems::full_name(name, version, platform);
        Artifact {
            pm: "rubygems".into(),
            name: name.into(),
            version: version.into(),
            filename: format!("{full}.gem"),
            store_key: common::artifact::rubygems::gem_store_key(name, version, platform),
            meta: ArtifactMeta::Rubygems(GemMeta {
                platform: platform.map(str::to_string),
                info_line: format!(
                    "{}{} |checksum:aa",
                    version,
                    platform.map(|p| format!("-{p}")).unwrap_or_default()
                ),
                sha256: "aa".into(),
                integrity: GemIntegrity::UpstreamIndex,
                license: None,
            }),
            source_url: None,
        }
    }

    fn text(s: GemServed) -> String {
        match s {
            GemServed::Index(b) => String::from_utf8(b).unwrap(),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn compact_index() {
        let a = vec![
            art("rack", "3.0.0", None),
            art("rack", "2.0.0", None),
            art("nokogiri", "1.0.0", Some("x86_64-linux")),
            art("nokogiri", "1.0.0", None),
        ];
        let info = text(serve(&a, "info/rack"));
        assert_eq!(info, "---\n2.0.0 |checksum:aa\n3.0.0 |checksum:aa\n");
        let versions = text(serve(&a, "versions"));
        assert_eq!(
            versions,
            format!(
                "{CREATED_AT}\n---\nnokogiri 1.0.0,1.0.0-x86_64-linux {}\nrack 2.0.0,3.0.0 {}\n",
                md5_hex(info_body(&a, "nokogiri").unwrap().as_slice()),
                md5_hex(info.as_bytes())
            )
        );
        assert_eq!(text(serve(&a, "names")), "---\nnokogiri\nrack\n");
        assert_eq!(
            gem_names("gems/net-http-1.0.0-x86_64-linux.gem").unwrap(),
            vec!["net", "net-http", "net-http-1.0.0", "net-http-1.0.0-x86_64"]
        );
        assert_eq!(gem_names("versions").unwrap(), Vec::<String>::new());
        assert_eq!(gem_names("gems/x"), None);
        assert_eq!(
            serve(&a, "gems/nokogiri-1.0.0-x86_64-linux.gem"),
            GemServed::Gem {
                store_key: "deps/rubygems/nokogiri/nokogiri-1.0.0-x86_64-linux.gem".into()
            }
        );
        for p in [
            "info/json",
            "info/../rack",
            "gems/rack-9.gem",
            "gems/../rack-3.0.0.gem",
            "specs.4.8.gz",
            "api/v1/dependencies",
            "",
        ] {
            assert_eq!(serve(&a, p), GemServed::NotFound, "{p}");
        }
    }
}
