//! Registry index rules: sparse index paths, `config.json`, download URLs, and extraction of
//! the verbatim upstream index lines for the locked versions.

use crate::pkg_managers::cargo::util::is_safe_version;
use common::artifact::cargo;
use common::ErrorKind;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("The crate name {0:?} is not a valid crate name")]
    InvalidName(String),
    #[error("The upstream index config.json is invalid: {0}")]
    InvalidConfig(String),
    #[error("The upstream index file for crate {name} is invalid: {reason}")]
    InvalidIndexFile { name: String, reason: String },
    #[error("The upstream index has no entry for {name}@{version} (was it deleted upstream?)")]
    MissingVersion { name: String, version: String },
    #[error(
        "The upstream index checksum of {name}@{version} is {index} but Cargo.lock says {lock}"
    )]
    ChecksumMismatch {
        name: String,
        version: String,
        index: String,
        lock: String,
    },
}

impl common::Classify for IndexError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidName(_) | Self::MissingVersion { .. } => ErrorKind::ValidationError,
            Self::InvalidConfig(_) | Self::InvalidIndexFile { .. } => ErrorKind::NetworkError,
            Self::ChecksumMismatch { .. } => ErrorKind::InvalidChecksum,
        }
    }
}

/// Directory part of the index path, with the original case (`{prefix}` marker).
pub fn prefix(name: &str) -> Result<String, IndexError> {
    cargo::index_prefix(name).ok_or_else(|| IndexError::InvalidName(name.into()))
}

/// Sparse index path of a crate, lowercased: `1/a`, `2/ab`, `3/a/abc`, `ca/rg/cargo`.
pub fn index_path(name: &str) -> Result<String, IndexError> {
    cargo::index_path(name).ok_or_else(|| IndexError::InvalidName(name.into()))
}

/// The parts of an index `config.json` that matter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexConfig {
    pub dl: String,
    pub api: Option<String>,
    pub auth_required: bool,
}

pub fn parse_config(bytes: &[u8]) -> Result<IndexConfig, IndexError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| IndexError::InvalidConfig(e.to_string()))?;
    let dl = v
        .get("dl")
        .and_then(|d| d.as_str())
        .ok_or_else(|| IndexError::InvalidConfig("no \"dl\" string".into()))?
        .to_string();
    let parsed =
        url::Url::parse(&dl).map_err(|e| IndexError::InvalidConfig(format!("dl {dl:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https" | "file") {
        return Err(IndexError::InvalidConfig(format!(
            "dl {dl:?} is not an http(s) URL"
        )));
    }
    Ok(IndexConfig {
        dl,
        api: v.get("api").and_then(|a| a.as_str()).map(String::from),
        auth_required: v
            .get("auth-required")
            .and_then(|a| a.as_bool())
            .unwrap_or(false),
    })
}

const MARKERS: [&str; 5] = [
    "{crate}",
    "{version}",
    "{prefix}",
    "{lowerprefix}",
    "{sha256-checksum}",
];

impl IndexConfig {
    /// Download URL of `name-version.crate` following cargo's rules.
    pub fn download_url(
        &self,
        name: &str,
        version: &str,
        checksum: &str,
    ) -> Result<String, IndexError> {
        let pre = prefix(name)?;
        if !MARKERS.iter().any(|m| self.dl.contains(m)) {
            let base = self.dl.trim_end_matches('/');
            return Ok(format!("{base}/{name}/{version}/download"));
        }
        Ok(self
            .dl
            .replace("{crate}", name)
            .replace("{version}", version)
            .replace("{lowerprefix}", &pre.to_ascii_lowercase())
            .replace("{prefix}", &pre)
            .replace("{sha256-checksum}", checksum))
    }
}

/// URL of a crate's index file below a sparse index base (`sparse+` prefix accepted).
pub fn index_file_url(index_base: &str, name: &str) -> Result<String, IndexError> {
    let base = index_base.strip_prefix("sparse+").unwrap_or(index_base);
    let sep = if base.ends_with('/') { "" } else { "/" };
    Ok(format!("{base}{sep}{}", index_path(name)?))
}

/// URL of an index's `config.json`.
pub fn config_url(index_base: &str) -> String {
    let base = index_base.strip_prefix("sparse+").unwrap_or(index_base);
    let sep = if base.ends_with('/') { "" } else { "/" };
    format!("{base}{sep}config.json")
}

/// From an upstream index file, return the verbatim line (without newline) of each wanted
/// `(version, lockfile checksum)`; fails when a version is missing or its `cksum` differs.
pub fn find_index_lines(
    name: &str,
    bytes: &[u8],
    wanted: &[(&str, &str)],
) -> Result<BTreeMap<String, String>, IndexError> {
    let text = std::str::from_utf8(bytes).map_err(|_| IndexError::InvalidIndexFile {
        name: name.into(),
        reason: "not UTF-8".into(),
    })?;
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue; // cargo also skips lines it cannot parse
        };
        let Some(vers) = v.get("vers").and_then(|x| x.as_str()) else {
            continue;
        };
        let Some((_, cksum)) = wanted.iter().find(|(w, _)| *w == vers) else {
            continue;
        };
        let line_name = v.get("name").and_then(|x| x.as_str()).unwrap_or("");
        if !line_name.eq_ignore_ascii_case(name) {
            return Err(IndexError::InvalidIndexFile {
                name: name.into(),
                reason: format!("line for version {vers} names crate {line_name:?}"),
            });
        }
        let index_ck = v.get("cksum").and_then(|x| x.as_str()).unwrap_or("");
        if !index_ck.eq_ignore_ascii_case(cksum) {
            return Err(IndexError::ChecksumMismatch {
                name: name.into(),
                version: vers.into(),
                index: index_ck.into(),
                lock: (*cksum).into(),
            });
        }
        found.insert(vers.to_string(), line.to_string());
    }
    for (w, _) in wanted {
        if !found.contains_key(*w) {
            return Err(IndexError::MissingVersion {
                name: name.into(),
                version: (*w).into(),
            });
        }
    }
    Ok(found)
}

/// Like [`find_index_lines`] but returns an index file with only those lines, in upstream order,
/// newline-terminated.
pub fn filter_index_lines(
    name: &str,
    bytes: &[u8],
    wanted: &[(&str, &str)],
) -> Result<Vec<u8>, IndexError> {
    let found = find_index_lines(name, bytes, wanted)?;
    let mut pending: std::collections::BTreeSet<&str> =
        found.values().map(String::as_str).collect();
    let mut out = Vec::new();
    // keep upstream order; found lines are valid UTF-8 so the lossy view equals the input
    let text = String::from_utf8_lossy(bytes);
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if pending.remove(line) {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    Ok(out)
}

/// Check that a stored index line still is what the lockfile expects (name, version, cksum).
pub fn check_line(name: &str, version: &str, checksum: &str, line: &str) -> Result<(), IndexError> {
    if !is_safe_version(version) {
        return Err(IndexError::MissingVersion {
            name: name.into(),
            version: version.into(),
        });
    }
    find_index_lines(name, line.as_bytes(), &[(version, checksum)]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        // every shape is tested in common::artifact::cargo
        assert_eq!(index_path("Serde_JSON").unwrap(), "se/rd/serde_json");
        assert_eq!(prefix("Serde").unwrap(), "Se/rd");
        assert!(matches!(
            index_path("../etc"),
            Err(IndexError::InvalidName(_))
        ));
        assert!(matches!(prefix(""), Err(IndexError::InvalidName(_))));
    }

    #[test]
    fn config_and_urls() {
        let c =
            parse_config(br#"{"dl":"https://static.crates.io/crates","api":"https://crates.io"}"#)
                .unwrap();
        assert_eq!(
            c.download_url("serde", "1.0.0", "ab").unwrap(),
            "https://static.crates.io/crates/serde/1.0.0/download"
        );
        let c = parse_config(br#"{"dl":"https://x/{prefix}/{lowerprefix}/{crate}-{version}.crate?ck={sha256-checksum}","auth-required":true}"#).unwrap();
        assert!(c.auth_required);
        assert_eq!(
            c.download_url("Serde", "1.0.0", "ab").unwrap(),
            "https://x/Se/rd/se/rd/Serde-1.0.0.crate?ck=ab"
        );
        assert!(parse_config(b"{}").is_err());
        assert!(parse_config(b"not json").is_err());
        assert!(parse_config(br#"{"dl":"javascript:alert(1)"}"#).is_err());
        assert_eq!(
            index_file_url("sparse+https://index.crates.io/", "serde").unwrap(),
            "https://index.crates.io/se/rd/serde"
        );
        assert_eq!(
            config_url("sparse+https://index.crates.io/"),
            "https://index.crates.io/config.json"
        );
    }

    const FILE: &str = "{\"name\":\"foo\",\"vers\":\"1.0.0\",\"deps\":[],\"cksum\":\"aa\",\"features\":{},\"yanked\":false}\n{\"name\":\"foo\",\"vers\":\"1.1.0\",\"deps\":[],\"cksum\":\"bb\",\"features\":{},\"yanked\":true}\n{\"name\":\"foo\",\"vers\":\"2.0.0\",\"deps\":[],\"cksum\":\"cc\",\"features\":{},\"yanked\":false}\n";

    #[test]
    fn filters_verbatim() {
        let out = filter_index_lines("foo", FILE.as_bytes(), &[("2.0.0", "cc"), ("1.1.0", "bb")])
            .unwrap();
        let lines: Vec<&str> = FILE.lines().collect();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{}\n{}\n", lines[1], lines[2])
        );
    }

    #[test]
    fn filter_failures() {
        assert!(matches!(
            filter_index_lines("foo", FILE.as_bytes(), &[("3.0.0", "aa")]),
            Err(IndexError::MissingVersion { .. })
        ));
        let e = filter_index_lines("foo", FILE.as_bytes(), &[("1.0.0", "ff")]).unwrap_err();
        assert!(matches!(e, IndexError::ChecksumMismatch { .. }));
        assert_eq!(common::Classify::kind(&e).error_type(), "InvalidChecksum");
        assert!(filter_index_lines("foo", &[0xff, 0xfe], &[("1.0.0", "aa")]).is_err());
        assert!(filter_index_lines("bar", FILE.as_bytes(), &[("1.0.0", "aa")]).is_err());
        assert!(check_line("foo", "1.0.0", "aa", FILE.lines().next().unwrap()).is_ok());
        assert!(check_line("foo", "1.0.0", "ab", FILE.lines().next().unwrap()).is_err());
    }
}
