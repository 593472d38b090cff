//! Module path and version case-encoding (`!x`), decoding and validation
//! (golang.org/x/mod/module `EscapePath`, `CheckPath`, `CheckFilePath`), and version order.
//! Shared by the worker's `gomod` package manager and the api's per-request GOPROXY.

use crate::{Classify, ErrorKind};
use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscapeError {
    #[error("The module path {path:?} is invalid: {reason}.")]
    InvalidPath { path: String, reason: String },
    #[error("The version {version:?} of module {module:?} is invalid: {reason}.")]
    InvalidVersion {
        module: String,
        version: String,
        reason: String,
    },
    #[error("The file path {path:?} is invalid: {reason}.")]
    InvalidFilePath { path: String, reason: String },
    #[error("The escaped name {escaped:?} is not a valid case-encoded Go module path or version.")]
    BadEscape { escaped: String },
}

impl Classify for EscapeError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidRequestData
    }
}

fn invalid_path(path: &str, reason: impl Into<String>) -> EscapeError {
    EscapeError::InvalidPath {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Characters allowed in a module path element (module.modPathOK).
fn mod_path_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

const WINDOWS_RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

fn windows_reserved(elem: &str) -> bool {
    let short = elem.split('.').next().unwrap_or(elem);
    WINDOWS_RESERVED
        .iter()
        .any(|r| r.eq_ignore_ascii_case(short))
}

/// Validate a module path as the go command does for dependencies (`module.CheckPath`):
/// ASCII letters, digits and `-._~`, `/`-separated non-empty elements, no `.`/`..` elements, no
/// leading dot or trailing dot in an element, a dot in the first element, no Windows reserved
/// names.
pub fn check_module_path(path: &str) -> Result<(), EscapeError> {
    check_path_common(path)?;
    let first = path.split('/').next().unwrap_or("");
    if !first.contains('.') {
        return Err(invalid_path(path, "missing dot in first path element"));
    }
    if first.starts_with('-') {
        return Err(invalid_path(path, "leading dash in first path element"));
    }
    if let Some(c) = first
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return Err(invalid_path(
            path,
            format!("invalid char {c:?} in first path element"),
        ));
    }
    Ok(())
}

/// Like [`check_module_path`] but without the "dot in first element" rule: the main module (or a
/// locally replaced module) may be called `example/app` or even `app`.
pub fn check_main_module_path(path: &str) -> Result<(), EscapeError> {
    check_path_common(path)
}

fn check_path_common(path: &str) -> Result<(), EscapeError> {
    if path.is_empty() {
        return Err(invalid_path(path, "empty string"));
    }
    if !path.is_ascii() {
        return Err(invalid_path(path, "non-ASCII character"));
    }
    if path.starts_with('/') || path.ends_with('/') {
        return Err(invalid_path(path, "leading or trailing slash"));
    }
    for elem in path.split('/') {
        if elem.is_empty() {
            return Err(invalid_path(path, "double slash"));
        }
        if elem == "." || elem == ".." {
            return Err(invalid_path(path, "\".\" or \"..\" path element"));
        }
        if let Some(c) = elem.chars().find(|c| !mod_path_ok(*c)) {
            return Err(invalid_path(path, format!("invalid character {c:?}")));
        }
        if elem.starts_with('.') {
            return Err(invalid_path(path, "leading dot in path element"));
        }
        if elem.ends_with('.') {
            return Err(invalid_path(path, "trailing dot in path element"));
        }
        if windows_reserved(elem) {
            return Err(invalid_path(
                path,
                format!("{elem:?} is a reserved file name"),
            ));
        }
    }
    Ok(())
}

/// Validate a version string: `v` + ASCII letters, digits and `.-+` (semver / pseudo-version /
/// `+incompatible`). This is deliberately stricter than a plain string so a version can never
/// form a path (`/`, `..`, `!`).
pub fn check_version(module: &str, version: &str) -> Result<(), EscapeError> {
    let err = |reason: &str| EscapeError::InvalidVersion {
        module: module.to_string(),
        version: version.to_string(),
        reason: reason.to_string(),
    };
    if !version.starts_with('v') || version.len() < 2 {
        return Err(err("versions must start with \"v\" followed by a number"));
    }
    if !version[1..].starts_with(|c: char| c.is_ascii_digit()) {
        return Err(err("versions must start with \"v\" followed by a number"));
    }
    if version.len() > 200 {
        return Err(err("version too long"));
    }
    if let Some(c) = version
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+')))
    {
        return Err(err(&format!("invalid character {c:?}")));
    }
    if version.contains("..") {
        return Err(err("empty version component"));
    }
    Ok(())
}

/// Characters allowed in a file path inside a module zip (module.fileNameOK).
fn file_name_ok(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == ' ' || "!#$%&()+,-.=@[]^_{}~".contains(c)
    } else {
        c.is_alphabetic()
    }
}

/// Validate a file path relative to the module root (`module.CheckFilePath`).
pub fn check_file_path(path: &str) -> Result<(), EscapeError> {
    let err = |reason: String| EscapeError::InvalidFilePath {
        path: path.to_string(),
        reason,
    };
    if path.is_empty() {
        return Err(err("empty string".into()));
    }
    if path.starts_with('/') || path.ends_with('/') {
        return Err(err("leading or trailing slash".into()));
    }
    if path.contains('\\') {
        return Err(err("backslash".into()));
    }
    for elem in path.split('/') {
        if elem.is_empty() {
            return Err(err("double slash".into()));
        }
        if elem == "." || elem == ".." {
            return Err(err("\".\" or \"..\" path element".into()));
        }
        if let Some(c) = elem.chars().find(|c| !file_name_ok(*c)) {
            return Err(err(format!("invalid character {c:?}")));
        }
        if elem.ends_with('.') {
            return Err(err("trailing dot in path element".into()));
        }
        if windows_reserved(elem) {
            return Err(err(format!("{elem:?} is a reserved file name")));
        }
    }
    Ok(())
}

fn escape_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn unescape_string(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut bang = false;
    for c in s.chars() {
        if bang {
            if !c.is_ascii_lowercase() {
                return None;
            }
            out.push(c.to_ascii_uppercase());
            bang = false;
        } else if c == '!' {
            bang = true;
        } else if c.is_ascii_uppercase() {
            return None;
        } else {
            out.push(c);
        }
    }
    if bang {
        return None;
    }
    Some(out)
}

/// Validate then case-encode a module path (`github.com/Azure/x` -> `github.com/!azure/x`).
pub fn escape_path(path: &str) -> Result<String, EscapeError> {
    check_module_path(path)?;
    Ok(escape_string(path))
}

/// Validate then case-encode a version.
pub fn escape_version(module: &str, version: &str) -> Result<String, EscapeError> {
    check_version(module, version)?;
    Ok(escape_string(version))
}

/// Decode a case-encoded module path and validate the result.
pub fn unescape_path(escaped: &str) -> Result<String, EscapeError> {
    let path = unescape_string(escaped).ok_or_else(|| EscapeError::BadEscape {
        escaped: escaped.to_string(),
    })?;
    check_module_path(&path)?;
    Ok(path)
}

/// Decode a case-encoded version and validate the result.
pub fn unescape_version(module: &str, escaped: &str) -> Result<String, EscapeError> {
    let v = unescape_string(escaped).ok_or_else(|| EscapeError::BadEscape {
        escaped: escaped.to_string(),
    })?;
    check_version(module, &v)?;
    Ok(v)
}

/// Compare Go module versions (`v` + semver 2.0) by precedence, build metadata such as
/// `+incompatible` ignored as Go does; versions that are not canonical sort last, bytewise.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parse = |v: &str| semver::Version::parse(v.strip_prefix('v')?).ok();
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x.cmp_precedence(&y).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_uppercase() {
        assert_eq!(
            escape_path("github.com/Azure/azure-SDK").unwrap(),
            "github.com/!azure/azure-!s!d!k"
        );
        assert_eq!(escape_path("golang.org/x/mod").unwrap(), "golang.org/x/mod");
        assert_eq!(
            escape_version("m.io/x", "v1.0.0-RC1").unwrap(),
            "v1.0.0-!r!c1"
        );
    }

    #[test]
    fn roundtrip() {
        for p in [
            "github.com/Azure/x",
            "gopkg.in/yaml.v2",
            "example.com/A/B~c_d-e",
        ] {
            assert_eq!(unescape_path(&escape_path(p).unwrap()).unwrap(), p);
        }
        assert_eq!(
            unescape_version("m.io/x", "v1.0.0-!r!c1").unwrap(),
            "v1.0.0-RC1"
        );
    }

    #[test]
    fn bad_escapes() {
        assert!(unescape_path("github.com/Azure/x").is_err()); // uppercase in escaped form
        assert!(unescape_path("github.com/!/x").is_err());
        assert!(unescape_path("github.com/x!").is_err());
        assert!(unescape_path("github.com/!1x").is_err());
        assert!(unescape_version("m", "v1!").is_err());
    }

    #[test]
    fn invalid_paths() {
        for p in [
            "",
            "/abs.com/x",
            "example.com/x/",
            "example.com//x",
            "example.com/../x",
            "example.com/./x",
            "example.com/.hidden",
            "example.com/x.",
            "exämple.com/x",
            "example.com/a b",
            "example.com/a!b",
            "nodot/x",
            "example.com/con",
            "example.com/a\\b",
            "-x.com/a",
            "GitHub.com/a",
            "git_hub.com/a",
        ] {
            assert!(check_module_path(p).is_err(), "{p:?} should be invalid");
        }
        assert!(check_main_module_path("app").is_ok());
        assert!(check_main_module_path("../app").is_err());
    }

    #[test]
    fn versions() {
        for v in [
            "v1.2.3",
            "v0.0.0-20200101000000-abcdefabcdef",
            "v2.0.0+incompatible",
        ] {
            assert!(check_version("m", v).is_ok(), "{v}");
        }
        for v in [
            "", "1.2.3", "v", "v1/../x", "v1..2", "vX", "v1.0.0!", "v1 0",
        ] {
            assert!(check_version("m", v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn file_paths() {
        assert!(check_file_path("a/b c/d.go").is_ok());
        assert!(check_file_path("dïr/ü.go").is_ok());
        for p in [
            "../x", "a/../b", "/a", "a/", "a//b", "a/./b", "a:b", "x.", "NUL.txt", "a\\b", "a\"b",
            "",
        ] {
            assert!(check_file_path(p).is_err(), "{p:?}");
        }
    }
}
