//! What the per-request gem server knows of one `.gem` beyond name and version, and the names
//! both sides agree on (store keys, file names, what a gem name may be).

use serde::{Deserialize, Serialize};

/// How a gem's sha256 was established before it was kept (the SBOM says which).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GemIntegrity {
    /// Gemfile.lock's `CHECKSUMS` entry.
    LockfileChecksum,
    /// No `CHECKSUMS` entry: the upstream Compact Index `checksum:` as Larder first saw it,
    /// recorded with the gem and never replaced.
    UpstreamIndex,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GemMeta {
    /// `x86_64-linux` for a platform gem, `None` for the `ruby` platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The gem version's Compact Index `info/<name>` line as upstream first served it
    /// (`1.0.0 dep:>= 1|checksum:<sha256>,ruby:>= 2.7`); served as it is.
    pub info_line: String,
    /// The `.gem`'s sha256, hex (the one in `info_line`).
    pub sha256: String,
    pub integrity: GemIntegrity,
    /// The gemspec's `licenses`, one SPDX expression when each reads as one (several joined
    /// with `AND`), when it declares any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
}

/// A gem name as RubyGems.org allows it (letters, digits, `.`, `-`, `_`; not starting with a
/// dot or dash), at most 100 bytes: safe as a path segment and in a URL.
pub fn is_gem_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A gem version (`1.2.3`, `2.0.0.rc1`) or platform (`x86_64-linux`, `arm64-darwin-22`): the
/// same safe alphabet.
pub fn is_version_or_platform(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 100
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && text
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && !text.contains("..")
}

/// `name-version[-platform]`, what bundler and gem servers call a gem's full name.
pub fn full_name(name: &str, version: &str, platform: Option<&str>) -> String {
    match platform {
        Some(p) => format!("{name}-{version}-{p}"),
        None => format!("{name}-{version}"),
    }
}

/// Where a `.gem` lives in the store.
pub fn gem_store_key(name: &str, version: &str, platform: Option<&str>) -> String {
    format!(
        "deps/rubygems/{name}/{}.gem",
        full_name(name, version, platform)
    )
}

/// Where the Compact Index line recorded at first sight lives in the store.
pub fn info_line_store_key(name: &str, version: &str, platform: Option<&str>) -> String {
    format!(
        "deps/rubygems/{name}/{}.info-line",
        full_name(name, version, platform)
    )
}

/// The `checksum:` of a Compact Index line (`<version> <deps>|checksum:<hex>,ruby:…`).
pub fn info_line_checksum(line: &str) -> Option<&str> {
    let (_, requirements) = line.split_once('|')?;
    requirements
        .split(',')
        .find_map(|r| r.trim().strip_prefix("checksum:"))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keys_and_checksums() {
        assert!(is_gem_name("rack"));
        assert!(is_gem_name("net-http_persistent.x"));
        assert!(!is_gem_name("../x"));
        assert!(!is_gem_name("a/b"));
        assert!(!is_gem_name("-a"));
        assert!(is_version_or_platform("1.0.0.rc1"));
        assert!(is_version_or_platform("x86_64-linux"));
        assert!(!is_version_or_platform("1..0"));
        assert!(!is_version_or_platform("1 0"));
        assert_eq!(
            gem_store_key("nokogiri", "1.15.0", Some("x86_64-linux")),
            "deps/rubygems/nokogiri/nokogiri-1.15.0-x86_64-linux.gem"
        );
        assert_eq!(
            info_line_checksum("1.0.0 a:>= 1&< 2,b:~> 1|checksum:abc,ruby:>= 2.7"),
            Some("abc")
        );
        assert_eq!(info_line_checksum("1.0.0 |ruby:>= 2.7"), None);
        assert_eq!(info_line_checksum("1.0.0"), None);
    }
}
