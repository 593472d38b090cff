//! Small helpers shared by the modules (no dependencies beyond std + sha2/hex).

use sha2::{Digest, Sha256};

/// crates.io-compatible crate name: ASCII alphanumerics, `-` and `_`, 1..=64 chars, starting
/// with a letter or `_` (this also rules out any path trick in store keys and URLs).
pub fn is_valid_crate_name(name: &str) -> bool {
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

/// A version string safe to put into a path/URL segment (semver charset).
pub fn is_safe_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
        && !v.starts_with('.')
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Shell-style match of one path segment: `*` any run, `?` one char (no `[..]` classes:
/// a `[` only matches itself).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_crate_name("serde_json"));
        assert!(is_valid_crate_name("a-b"));
        assert!(!is_valid_crate_name("../x"));
        assert!(!is_valid_crate_name(""));
        assert!(!is_valid_crate_name("1abc"));
        assert!(!is_valid_crate_name(&"a".repeat(65)));
        assert!(is_safe_version("1.0.0-rc.1+build.5"));
        assert!(!is_safe_version("../1"));
        assert!(!is_safe_version("1/2"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "abc"));
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*.rs", "lib.rs"));
        assert!(!glob_match("*.rs", "lib.rsx"));
    }
}
