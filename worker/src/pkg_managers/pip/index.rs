//! Upstream simple-repository API project pages: PEP 691 JSON (preferred) and PEP 503 HTML.

use crate::pkg_managers::pip::names::normalize_name;
use common::{Classify, ErrorKind};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The `Accept` header to send for project pages (JSON preferred, HTML accepted).
pub const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";
pub const JSON_CONTENT_TYPE: &str = "application/vnd.pypi.simple.v1+json";
pub const HTML_CONTENT_TYPE: &str = "application/vnd.pypi.simple.v1+html";
/// Largest project page parsed (bytes).
pub const MAX_PAGE_SIZE: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("The package index URL '{0}' is not a valid http(s) URL")]
    BadIndexUrl(String),
    #[error("'{0}' is not a valid package name to look up in the package index")]
    BadName(String),
    #[error("The package index page {url} has unsupported content type '{content_type}'")]
    ContentType { url: String, content_type: String },
    #[error("The package index page {url} could not be parsed: {reason}")]
    Malformed { url: String, reason: String },
    #[error("The package index page {0} is too large")]
    TooLarge(String),
}

impl Classify for IndexError {
    fn kind(&self) -> ErrorKind {
        match self {
            IndexError::BadName(_) => ErrorKind::InvalidRequestData,
            _ => ErrorKind::NetworkError,
        }
    }
}

/// One distribution file listed on a project page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct IndexFile {
    pub filename: String,
    /// absolute URL, fragment removed
    pub url: String,
    /// lowercase hex
    pub sha256: Option<String>,
    /// unescaped (`>=3.8`)
    pub requires_python: Option<String>,
    pub yanked: bool,
    pub size: Option<u64>,
}

/// `<index base>/<normalized name>/` (the trailing slash matters).
pub fn project_page_url(index_base: &str, name: &str) -> Result<String, IndexError> {
    if !crate::pkg_managers::pip::names::is_valid_name(name) {
        return Err(IndexError::BadName(name.to_string()));
    }
    let parsed =
        url::Url::parse(index_base).map_err(|_| IndexError::BadIndexUrl(index_base.into()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(IndexError::BadIndexUrl(index_base.into()));
    }
    let base = index_base.split(['#', '?']).next().unwrap_or(index_base);
    let base = base.trim_end_matches('/');
    Ok(format!("{base}/{}/", normalize_name(name)))
}

/// Parse a project page according to its `Content-Type`.
pub fn parse_project_page(
    body: &[u8],
    content_type: &str,
    page_url: &str,
) -> Result<Vec<IndexFile>, IndexError> {
    if body.len() > MAX_PAGE_SIZE {
        return Err(IndexError::TooLarge(page_url.into()));
    }
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        // Plain `application/json` from a static server holding PEP 691 pages.
        JSON_CONTENT_TYPE | "application/json" => parse_json(body, page_url),
        HTML_CONTENT_TYPE | "text/html" => {
            let text = String::from_utf8_lossy(body);
            parse_html(&text, page_url)
        }
        _ => Err(IndexError::ContentType {
            url: page_url.into(),
            content_type: content_type.into(),
        }),
    }
}

#[derive(Deserialize)]
struct JsonPage {
    #[serde(default)]
    files: Vec<JsonFile>,
}

#[derive(Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: BTreeMap<String, serde_json::Value>,
    #[serde(default, rename = "requires-python")]
    requires_python: Option<String>,
    #[serde(default)]
    yanked: Option<serde_json::Value>,
    #[serde(default)]
    size: Option<u64>,
}

/// A sha256 as an index page gives it, lowercased; anything else is no sha256.
fn valid_sha256(h: &str) -> Option<String> {
    common::digest::Digest::from_hex(common::digest::HashAlgorithm::Sha256, h)
        .ok()
        .map(|d| d.hex())
}

fn plain_filename(f: &str) -> bool {
    !f.is_empty()
        && f.len() <= 255
        && !f.contains(['/', '\\', '\0'])
        && !f.starts_with('.')
        && !f.chars().any(char::is_control)
}

/// Resolve `href` against the page URL; only http(s) results are kept. Returns (url, fragment).
fn resolve(page: &url::Url, href: &str) -> Option<(String, Option<String>)> {
    let mut u = page.join(href.trim()).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    let frag = u.fragment().map(str::to_string);
    u.set_fragment(None);
    Some((u.to_string(), frag))
}

fn parse_json(body: &[u8], page_url: &str) -> Result<Vec<IndexFile>, IndexError> {
    let page_u = url::Url::parse(page_url).map_err(|_| IndexError::BadIndexUrl(page_url.into()))?;
    let page: JsonPage = serde_json::from_slice(body).map_err(|e| IndexError::Malformed {
        url: page_url.into(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for f in page.files {
        if !plain_filename(&f.filename) {
            continue;
        }
        let Some((url, _)) = resolve(&page_u, &f.url) else {
            continue;
        };
        let sha256 = f
            .hashes
            .get("sha256")
            .and_then(|v| v.as_str())
            .and_then(valid_sha256);
        let yanked = match f.yanked {
            Some(serde_json::Value::Bool(b)) => b,
            Some(serde_json::Value::String(_)) => true,
            _ => false,
        };
        out.push(IndexFile {
            filename: f.filename,
            url,
            sha256,
            requires_python: f.requires_python.filter(|s| !s.trim().is_empty()),
            yanked,
            size: f.size,
        });
    }
    Ok(out)
}

/// A start tag's attributes (names lowercased, values unescaped; bare attributes -> None).
fn parse_attrs(tag: &str) -> Vec<(String, Option<String>)> {
    let b = tag.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        if start == i {
            break;
        }
        let name = tag[start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let value = if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                i += 1;
                let vs = i;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                let v = &tag[vs..i];
                i += 1;
                v
            } else {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                &tag[vs..i]
            };
            out.push((
                name,
                Some(html_escape::decode_html_entities(value).into_owned()),
            ));
        } else {
            out.push((name, None));
        }
    }
    out
}

/// Find tags named `name` (case-insensitive): yields (attribute text, index after `>`).
fn find_tags<'a>(
    html: &'a str,
    lower: &'a str,
    name: &'a str,
) -> impl Iterator<Item = (&'a str, usize)> + 'a {
    let open = format!("<{name}");
    let mut pos = 0;
    std::iter::from_fn(move || loop {
        let i = pos + lower.get(pos..)?.find(&open)?;
        let after = i + open.len();
        let next = lower.as_bytes().get(after).copied();
        pos = after;
        if !matches!(next, Some(c) if c.is_ascii_whitespace() || c == b'>' || c == b'/') {
            continue;
        }
        let end = after + lower[after..].find('>')?;
        pos = end + 1;
        return Some((&html[after..end], end + 1));
    })
}

fn parse_html(html: &str, page_url: &str) -> Result<Vec<IndexFile>, IndexError> {
    let mut base =
        url::Url::parse(page_url).map_err(|_| IndexError::BadIndexUrl(page_url.into()))?;
    // ASCII lowercasing keeps byte offsets identical.
    let lower = html.to_ascii_lowercase();
    if let Some((attrs, _)) = find_tags(html, &lower, "base").next() {
        if let Some((_, Some(h))) = parse_attrs(attrs).into_iter().find(|(n, _)| n == "href") {
            if let Ok(b) = base.join(&h) {
                base = b;
            }
        }
    }
    let mut out = Vec::new();
    for (attrs, after) in find_tags(html, &lower, "a") {
        let attrs = parse_attrs(attrs);
        let get = |n: &str| attrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let Some(Some(href)) = get("href") else {
            continue;
        };
        let text_end = lower[after..].find("</a").map_or(html.len(), |e| after + e);
        let text = html_escape::decode_html_entities(html[after..text_end].trim()).into_owned();
        let Some((url, frag)) = resolve(&base, &href) else {
            continue;
        };
        let filename = if text.is_empty() {
            url.rsplit('/').next().unwrap_or("").to_string()
        } else {
            text
        };
        if !plain_filename(&filename) {
            continue;
        }
        let sha256 = frag.as_deref().and_then(|f| {
            f.split('&')
                .find_map(|kv| kv.strip_prefix("sha256="))
                .and_then(valid_sha256)
        });
        out.push(IndexFile {
            filename,
            url,
            sha256,
            requires_python: get("data-requires-python")
                .flatten()
                .filter(|s| !s.trim().is_empty()),
            yanked: get("data-yanked").is_some(),
            size: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

    #[test]
    fn page_urls() {
        assert_eq!(
            project_page_url("https://pypi.org/simple", "My.Pkg").unwrap(),
            "https://pypi.org/simple/my-pkg/"
        );
        assert_eq!(
            project_page_url("http://127.0.0.1:9/x/simple/", "a_b").unwrap(),
            "http://127.0.0.1:9/x/simple/a-b/"
        );
        assert!(project_page_url("ftp://x/simple", "a").is_err());
        assert!(project_page_url("https://x/simple", "../etc").is_err());
        assert!(project_page_url("not a url", "a").is_err());
    }

    #[test]
    fn html_page() {
        let html = format!(
            r#"<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.0"></head><body>
<A HREF="../../packages/foo-1.0.tar.gz#sha256={H}" data-requires-python="&gt;=3.8">foo-1.0.tar.gz</A><br/>
<a href='https://files.example/foo-1.0-py3-none-any.whl#sha256={}' data-yanked>foo-1.0-py3-none-any.whl</a>
<a href="foo-0.9.zip#md5=abc" data-yanked="bad &amp; broken">foo-0.9.zip</a>
<a href="javascript:alert(1)">evil-1.0.tar.gz</a>
<a href="x/../../y">../evil.tar.gz</a>
<abbr>not a link</abbr>
</body></html>"#,
            H.to_uppercase()
        );
        let files = parse_project_page(
            html.as_bytes(),
            "text/html; charset=utf-8",
            "https://idx.example/simple/foo/",
        )
        .unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(files[0].filename, "foo-1.0.tar.gz");
        assert_eq!(files[0].url, "https://idx.example/packages/foo-1.0.tar.gz");
        assert_eq!(files[0].sha256.as_deref(), Some(H));
        assert_eq!(files[0].requires_python.as_deref(), Some(">=3.8"));
        assert!(!files[0].yanked);
        assert!(files[1].yanked);
        assert_eq!(files[1].sha256.as_deref(), Some(H));
        assert_eq!(files[2].url, "https://idx.example/simple/foo/foo-0.9.zip");
        assert_eq!(files[2].sha256, None);
        assert!(files[2].yanked);
    }

    #[test]
    fn html_base_tag() {
        let html = r#"<html><head><base href="https://cdn.example/root/"></head><a href="f/a-1.tar.gz">a-1.tar.gz</a>"#;
        let files =
            parse_project_page(html.as_bytes(), HTML_CONTENT_TYPE, "https://i/simple/a/").unwrap();
        assert_eq!(files[0].url, "https://cdn.example/root/f/a-1.tar.gz");
    }

    #[test]
    fn json_page() {
        let json = format!(
            r#"{{"meta":{{"api-version":"1.1"}},"name":"foo","versions":["1.0"],"files":[
{{"filename":"foo-1.0.tar.gz","url":"/packages/foo-1.0.tar.gz","hashes":{{"sha256":"{H}"}},"requires-python":">=3.8","yanked":false,"size":123,"_x":1}},
{{"filename":"foo-1.0-py3-none-any.whl","url":"https://f.example/w.whl#sha256=00","hashes":{{}},"yanked":"reason"}},
{{"filename":"../../etc/passwd","url":"https://f/x","hashes":{{}}}},
{{"filename":"bad-1.tar.gz","url":"file:///etc/passwd","hashes":{{}}}}
]}}"#
        );
        let files = parse_project_page(
            json.as_bytes(),
            JSON_CONTENT_TYPE,
            "https://idx.example/simple/foo/",
        )
        .unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0],
            IndexFile {
                filename: "foo-1.0.tar.gz".into(),
                url: "https://idx.example/packages/foo-1.0.tar.gz".into(),
                sha256: Some(H.into()),
                requires_python: Some(">=3.8".into()),
                yanked: false,
                size: Some(123)
            }
        );
        assert!(files[1].yanked);
        assert_eq!(files[1].url, "https://f.example/w.whl");
        assert_eq!(files[1].sha256, None);
    }

    #[test]
    fn bad_pages() {
        assert!(matches!(
            parse_project_page(b"{}", "application/xml", "https://i/s/a/"),
            Err(IndexError::ContentType { .. })
        ));
        assert!(matches!(
            parse_project_page(b"{", JSON_CONTENT_TYPE, "https://i/s/a/"),
            Err(IndexError::Malformed { .. })
        ));
        assert!(parse_project_page(
            b"{\"files\":[{\"filename\":1}]}",
            JSON_CONTENT_TYPE,
            "https://i/s/a/"
        )
        .is_err());
        for h in [
            "<a",
            "<a href",
            "<a href='x",
            "<a href=x>",
            "&#xFFFFFFFF;",
            "<a href=\"&#0;\">\u{0}</a>",
        ] {
            let _ = parse_project_page(h.as_bytes(), "text/html", "https://i/s/a/");
        }
        let page = r#"<a href="x-1.tar.gz" data-requires-python="&lt;&gt;&amp;&quot;&#39;&#x41;&bogus;&">x-1.tar.gz</a>"#;
        let files = parse_project_page(page.as_bytes(), "text/html", "https://i/s/x/").unwrap();
        assert_eq!(files[0].requires_python.as_deref(), Some("<>&\"'A&bogus;&"));
    }
}
