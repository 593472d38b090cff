//! What the per-request cargo registry knows of one of its `.crate`s beyond name and version.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CargoMeta {
    /// The crate version's verbatim line of the upstream sparse index (its `cksum` checked
    /// against Cargo.lock): the per-request index serves it as it is.
    pub index_line: String,
    /// Cargo.lock's sha256 of the `.crate`, hex.
    pub cksum: String,
    /// The `license` of the crate's own Cargo.toml (an SPDX expression, cargo's deprecated
    /// `/` read as `OR`), when it declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
}

/// A crates.io-compatible crate name: ASCII alphanumerics, `-` and `_`, 1 to 64 characters,
/// starting with a letter or `_` (which also rules out any path trick in store keys and URLs).
pub fn is_crate_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
}

/// The directory of a crate's file in a sparse index, in the name's case (`1`, `2`, `3/a`,
/// `Se/rd`: a `dl` template's `{prefix}`); `None` for an invalid name.
pub fn index_prefix(name: &str) -> Option<String> {
    if !is_crate_name(name) {
        return None;
    }
    // valid names are ASCII, so byte slicing is safe
    Some(match name.len() {
        1 => "1".to_string(),
        2 => "2".to_string(),
        3 => format!("3/{}", &name[..1]),
        _ => format!("{}/{}", &name[..2], &name[2..4]),
    })
}

/// A crate's file in a sparse index, lowercased: `1/a`, `2/ab`, `3/a/abc`, `ca/rg/cargo`.
pub fn index_path(name: &str) -> Option<String> {
    Some(format!("{}/{name}", index_prefix(name)?).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_index_paths() {
        assert!(is_crate_name("serde_json"));
        assert!(is_crate_name("a-b"));
        assert!(!is_crate_name("../x"));
        assert!(!is_crate_name(""));
        assert!(!is_crate_name("1abc"));
        assert!(!is_crate_name(&"a".repeat(65)));
        assert_eq!(index_path("a").unwrap(), "1/a");
        assert_eq!(index_path("ab").unwrap(), "2/ab");
        assert_eq!(index_path("abc").unwrap(), "3/a/abc");
        assert_eq!(index_path("cargo").unwrap(), "ca/rg/cargo");
        assert_eq!(index_path("Serde_JSON").unwrap(), "se/rd/serde_json");
        assert_eq!(index_prefix("Serde").unwrap(), "Se/rd");
        assert_eq!(index_path("../etc"), None);
    }
}
