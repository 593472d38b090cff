//! The files a request's per-request repositories serve: recorded by the worker when it lays a
//! package manager out, looked up by the api's protocol modules. What a protocol needs to know
//! of a file beyond its name is typed, one variant per protocol.

pub mod cargo;
pub mod gomod;
pub mod npm;
pub mod pip;
pub mod rubygems;

use crate::pm::PmName;
use serde::{Deserialize, Serialize};

/// One file a per-request repository serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub pm: PmName,
    pub name: String,
    pub version: String,
    pub filename: String,
    pub store_key: String,
    pub meta: ArtifactMeta,
    /// The upstream URL the file was fetched from, credentials stripped (the SBOM's
    /// `distribution` reference); none for files Larder made (git packs) or recorded before
    /// it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
}

/// `url` as an SBOM may show it: an absolute http(s) URL without userinfo, query or fragment
/// (a token, password or presigned signature of a private upstream stays out of the document);
/// `None` for anything else.
pub fn distribution_url(url: &str) -> Option<String> {
    let mut parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return None;
    }
    // both only fail for URLs that cannot have userinfo, which http(s) ones can
    parsed.set_username("").ok()?;
    parsed.set_password(None).ok()?;
    parsed.set_query(None);
    parsed.set_fragment(None);
    Some(parsed.into())
}

/// What the protocol serving an artifact needs to know of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum ArtifactMeta {
    /// Boxed: a packument entry is many times the size of the other variants.
    Npm(Box<npm::NpmMeta>),
    Pip(pip::PipMeta),
    Cargo(cargo::CargoMeta),
    Gomod(gomod::GoMeta),
    Rubygems(rubygems::GemMeta),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_urls_lose_credentials_queries_and_fragments() {
        assert_eq!(
            distribution_url("https://user:s3cret@registry.example/a/-/a-1.0.0.tgz").as_deref(),
            Some("https://registry.example/a/-/a-1.0.0.tgz")
        );
        assert_eq!(
            distribution_url("https://__token__@files.example/p/p-1.0.tar.gz#sha256=ab").as_deref(),
            Some("https://files.example/p/p-1.0.tar.gz")
        );
        assert_eq!(
            distribution_url("http://127.0.0.1:8080/p/a.whl?X-Amz-Signature=ab&private_token=t")
                .as_deref(),
            Some("http://127.0.0.1:8080/p/a.whl")
        );
        assert_eq!(distribution_url("file:///tmp/a.tgz"), None);
        assert_eq!(distribution_url("git+https://github.com/o/r"), None);
        assert_eq!(distribution_url("not a url"), None);
    }

    #[test]
    fn artifacts_recorded_before_source_urls_still_read() {
        let old = serde_json::json!({
            "pm": "cargo", "name": "a", "version": "1.0.0", "filename": "a-1.0.0.crate",
            "store_key": "deps/cargo/a-1.0.0.crate",
            "meta": {"protocol": "cargo", "index_line": "{}", "cksum": "ab"}
        });
        let a: Artifact = serde_json::from_value(old).unwrap();
        assert_eq!(a.source_url, None);
        let ArtifactMeta::Cargo(m) = &a.meta else {
            panic!()
        };
        assert_eq!(m.license, None);
        let v = serde_json::to_value(&a).unwrap();
        assert!(v.get("source_url").is_none() && v["meta"].get("license").is_none());
    }
}
