//! go.sum parser.

use common::gomod::{check_module_path, check_version};
use common::{Classify, ErrorKind};
use std::collections::BTreeMap;

/// The hash of an empty go.mod that old go versions wrote by mistake; the go command ignores it.
pub const BAD_EMPTY_GOMOD_H1: &str = "h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY=";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoSumError {
    #[error("{file}:{line}: malformed go.sum line {text:?}: {reason}.")]
    Malformed {
        file: String,
        line: usize,
        text: String,
        reason: String,
    },
    #[error("{file}:{line}: {label} has two different {detail} in go.sum.")]
    Conflict {
        file: String,
        line: usize,
        /// module@version
        label: String,
        detail: String,
    },
}

impl Classify for GoSumError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidFileFormat
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoSumLine {
    pub module: String,
    pub version: String,
    /// true for `<version>/go.mod` lines (hash of the go.mod only).
    pub is_gomod: bool,
    pub h1: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoSum {
    pub lines: Vec<GoSumLine>,
}

impl GoSum {
    /// h1 of the module zip for `module@version`.
    pub fn zip_h1(&self, module: &str, version: &str) -> Option<&str> {
        self.find(module, version, false)
    }
    /// h1 of the go.mod of `module@version`.
    pub fn mod_h1(&self, module: &str, version: &str) -> Option<&str> {
        self.find(module, version, true)
    }
    fn find(&self, module: &str, version: &str, is_gomod: bool) -> Option<&str> {
        self.lines
            .iter()
            .find(|l| l.module == module && l.version == version && l.is_gomod == is_gomod)
            .map(|l| l.h1.as_str())
    }
    /// Lines grouped per (module, version): (zip h1, go.mod h1).
    pub fn by_module(&self) -> BTreeMap<(String, String), (Option<String>, Option<String>)> {
        let mut out: BTreeMap<(String, String), (Option<String>, Option<String>)> = BTreeMap::new();
        for l in &self.lines {
            let e = out
                .entry((l.module.clone(), l.version.clone()))
                .or_default();
            if l.is_gomod {
                e.1 = Some(l.h1.clone());
            } else {
                e.0 = Some(l.h1.clone());
            }
        }
        out
    }
}

fn valid_h1(h: &str) -> bool {
    use base64::Engine;
    match h.strip_prefix("h1:") {
        Some(b) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map(|d| d.len() == 32)
            .unwrap_or(false),
        None => false,
    }
}

/// Parse go.sum text. Blank lines are ignored; the known-bad empty go.mod hash is dropped (as the
/// go command does); hashes other than `h1:` and any other malformation are errors.
pub fn parse_go_sum(file: &str, text: &str) -> Result<GoSum, GoSumError> {
    let mut lines: Vec<GoSumLine> = Vec::new();
    let mut seen: BTreeMap<(String, String, bool), (String, usize)> = BTreeMap::new();
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let raw_t = raw.trim_end_matches('\r');
        if raw_t.trim().is_empty() {
            continue;
        }
        let bad = |reason: &str| GoSumError::Malformed {
            file: file.to_string(),
            line: line_no,
            text: raw_t.chars().take(200).collect(),
            reason: reason.to_string(),
        };
        let f: Vec<&str> = raw_t.split_whitespace().collect();
        if f.len() != 3 {
            return Err(bad("expected 3 fields: module, version and hash"));
        }
        let (module, ver_field, h1) = (f[0], f[1], f[2]);
        check_module_path(module).map_err(|e| bad(&e.to_string()))?;
        let (version, is_gomod) = match ver_field.strip_suffix("/go.mod") {
            Some(v) => (v, true),
            None => (ver_field, false),
        };
        check_version(module, version).map_err(|e| bad(&e.to_string()))?;
        if !h1.starts_with("h1:") {
            return Err(bad("only h1: hashes are supported"));
        }
        if !valid_h1(h1) {
            return Err(bad("the h1: hash is not a base64 SHA-256 digest"));
        }
        if is_gomod && h1 == BAD_EMPTY_GOMOD_H1 {
            continue;
        }
        let key = (module.to_string(), version.to_string(), is_gomod);
        if let Some((prev, _)) = seen.get(&key) {
            if prev != h1 {
                return Err(GoSumError::Conflict {
                    file: file.to_string(),
                    line: line_no,
                    label: format!("{module}@{version}"),
                    detail: format!(
                        "{} hashes ({prev} and {h1})",
                        if is_gomod { "go.mod" } else { "zip" }
                    ),
                });
            }
            continue;
        }
        seen.insert(key, (h1.to_string(), line_no));
        lines.push(GoSumLine {
            module: module.to_string(),
            version: version.to_string(),
            is_gomod,
            h1: h1.to_string(),
        });
    }
    Ok(GoSum { lines })
}

/// Format go.sum lines the way the go command writes them (sorted, one per line).
pub fn format_go_sum(lines: &[GoSumLine]) -> String {
    let mut v: Vec<&GoSumLine> = lines.iter().collect();
    v.sort_by(|a, b| {
        (a.module.as_str(), a.version.as_str(), a.is_gomod).cmp(&(
            b.module.as_str(),
            b.version.as_str(),
            b.is_gomod,
        ))
    });
    v.dedup();
    let mut out = String::new();
    for l in v {
        out.push_str(&l.module);
        out.push(' ');
        out.push_str(&l.version);
        if l.is_gomod {
            out.push_str("/go.mod");
        }
        out.push(' ');
        out.push_str(&l.h1);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "h1:zY54UmvipHiNd+Lm4FSPsD6+H4sk/ew/Ve3wI1/ICqA=";
    const G: &str = "h1:hTbmBsO62+eylJbnUtE2MGJUyE7QWk4xUqPFrRgJ+7c=";

    #[test]
    fn parses() {
        let text = format!(
            "golang.org/x/mod v0.17.0 {H}\ngolang.org/x/mod v0.17.0/go.mod {G}\n\n\r\ngithub.com/Azure/x v1.0.0/go.mod {G}\r\n"
        );
        let s = parse_go_sum("go.sum", &text).unwrap();
        assert_eq!(s.lines.len(), 3);
        assert_eq!(s.zip_h1("golang.org/x/mod", "v0.17.0"), Some(H));
        assert_eq!(s.mod_h1("golang.org/x/mod", "v0.17.0"), Some(G));
        assert_eq!(s.zip_h1("github.com/Azure/x", "v1.0.0"), None);
        assert_eq!(s.mod_h1("github.com/Azure/x", "v1.0.0"), Some(G));
        assert_eq!(s.by_module().len(), 2);
    }

    #[test]
    fn drops_bad_empty_hash_and_dupes() {
        let text = format!(
            "a.com/b v1.0.0/go.mod {BAD_EMPTY_GOMOD_H1}\na.com/b v1.0.0 {H}\na.com/b v1.0.0 {H}\n"
        );
        let s = parse_go_sum("go.sum", &text).unwrap();
        assert_eq!(s.lines.len(), 1);
    }

    #[test]
    fn malformed() {
        for bad in [
            "a.com/b v1.0.0".to_string(),
            format!("a.com/b v1.0.0 {H} extra"),
            format!("a.com/b 1.0.0 {H}"),
            format!("../b v1.0.0 {H}"),
            "a.com/b v1.0.0 h2:abc".to_string(),
            "a.com/b v1.0.0 h1:notbase64!".to_string(),
            "a.com/b v1.0.0 h1:YWJj".to_string(),
            format!("a.com/b v1.0.0/go.sum {H}"),
        ] {
            let e = parse_go_sum("sub/go.sum", &bad).unwrap_err();
            assert!(e.to_string().starts_with("sub/go.sum:1:"), "{e}");
        }
        let e = parse_go_sum(
            "go.sum",
            &format!("a.com/b v1.0.0 {H}\na.com/b v1.0.0 {G}\n"),
        )
        .unwrap_err();
        assert!(matches!(e, GoSumError::Conflict { line: 2, .. }));
        assert_eq!(e.kind().error_type(), "InvalidFileFormat");
    }

    #[test]
    fn formats_sorted() {
        let s = parse_go_sum(
            "go.sum",
            &format!("b.com/x v1.0.0 {H}\na.com/x v1.0.0/go.mod {G}\na.com/x v1.0.0 {H}\n"),
        )
        .unwrap();
        assert_eq!(
            format_go_sum(&s.lines),
            format!("a.com/x v1.0.0 {H}\na.com/x v1.0.0/go.mod {G}\nb.com/x v1.0.0 {H}\n")
        );
    }
}
