//! `yarn.lock` v1 (Yarn Classic), read natively (never by running yarn): the grammar of
//! `yarnpkg/yarn:src/lockfile/parse.js` as yarn writes it.
//!
//! - `#` comments; the `# yarn lockfile v1` comment marks the version (a Berry lockfile has a
//!   `__metadata:` entry instead and is refused);
//! - 2 spaces per indentation level (an odd indentation or a tab is an error);
//! - an entry is one or more comma-separated keys (`name@range`, quoted when needed, JSON
//!   string escapes) and `:`; its fields are `key value` (no colon); `dependencies:` and
//!   `optionalDependencies:` are nested maps of `name range`.
//!
//! Hostile input (NUL, huge files, deep or odd indentation, unterminated strings) is an error
//! naming the line, never a panic.

use crate::pkg_managers::limits::{MAX_LOCKFILE_BYTES, MAX_LOCKFILE_ENTRIES};
use common::{Classify, ErrorKind};
use std::collections::BTreeMap;

pub const YARN_LOCK: &str = "yarn.lock";
pub const V1_MARKER: &str = "# yarn lockfile v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum YarnLockError {
    #[error("yarn Berry lockfiles are not supported yet ({0} has a __metadata entry); only yarn v1 (Classic) lockfiles are")]
    Berry(String),
    #[error("{0} is not a yarn v1 lockfile: the \"# yarn lockfile v1\" marker is missing")]
    NotV1(String),
    #[error("{file} is larger than {max} bytes")]
    TooLarge { file: String, max: u64 },
    #[error("{file} has more than {max} entries")]
    TooManyEntries { file: String, max: usize },
    #[error("{file} line {line}: {reason}")]
    Syntax {
        file: String,
        line: usize,
        reason: String,
    },
}

impl Classify for YarnLockError {
    fn kind(&self) -> ErrorKind {
        match self {
            YarnLockError::Berry(_) => ErrorKind::UnsupportedFeature,
            _ => ErrorKind::InvalidFileFormat,
        }
    }
}

/// One key of an entry: `name@range` (an alias `alias@npm:real@range` keeps `name` = alias).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub name: String,
    pub range: String,
}

impl Key {
    /// Split at the first `@` after the first character (a scope's `@` stays in the name).
    pub fn parse(text: &str) -> Option<Key> {
        let at = text.char_indices().skip(1).find(|(_, c)| *c == '@')?.0;
        let (name, range) = (&text[..at], &text[at + 1..]);
        (!name.is_empty()).then(|| Key {
            name: name.to_string(),
            range: range.to_string(),
        })
    }

    /// The package's real name and range: `npm:real@range` of an alias, else the key's own.
    pub fn real(&self) -> (String, String) {
        if let Some(rest) = self.range.strip_prefix("npm:") {
            if let Some(k) = Key::parse(rest) {
                return (k.name, k.range);
            }
            return (rest.to_string(), String::new());
        }
        (self.name.clone(), self.range.clone())
    }

    pub fn text(&self) -> String {
        format!("{}@{}", self.name, self.range)
    }
}

/// One entry of the lockfile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub keys: Vec<Key>,
    /// `version`, `resolved`, `integrity`, … (scalar fields)
    pub fields: BTreeMap<String, String>,
    pub dependencies: Vec<(String, String)>,
    pub optional_dependencies: Vec<(String, String)>,
    /// 1-based line of its header
    pub line: usize,
}

impl Entry {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct YarnLock {
    pub entries: Vec<Entry>,
}

#[derive(Debug, PartialEq, Eq)]
enum Tok {
    Str(String),
    Colon,
    Comma,
}

/// The tokens of one line (indentation and comment already removed).
fn tokens(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' => i += 1,
            b':' => {
                out.push(Tok::Colon);
                i += 1;
            }
            b',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            b'"' => {
                // a JSON string: up to the first unescaped quote
                let mut j = i + 1;
                loop {
                    match b.get(j) {
                        None => return Err("unterminated string".into()),
                        Some(b'\\') => j += 2,
                        Some(b'"') => break,
                        Some(_) => j += 1,
                    }
                }
                let text = s.get(i..=j).ok_or("unterminated string")?;
                let v: String =
                    serde_json::from_str(text).map_err(|e| format!("invalid string: {e}"))?;
                out.push(Tok::Str(v));
                i = j + 1;
            }
            _ => {
                let start = i;
                while i < b.len() && !matches!(b[i], b' ' | b':' | b',' | b'"') {
                    i += 1;
                }
                out.push(Tok::Str(s[start..i].to_string()));
            }
        }
    }
    Ok(out)
}

/// The words of a field line (`key value`), None when it has a `:` or `,` or is not valid.
pub fn tokens_of(content: &str) -> Option<Vec<String>> {
    tokens(content)
        .ok()?
        .into_iter()
        .map(|t| match t {
            Tok::Str(s) => Some(s),
            Tok::Colon | Tok::Comma => None,
        })
        .collect()
}

/// The keys of an entry's header line, `key (, key)* :`.
fn header_keys(toks: Vec<Tok>) -> Result<Vec<Key>, String> {
    let mut keys = Vec::new();
    let mut it = toks.into_iter().peekable();
    loop {
        let Some(Tok::Str(k)) = it.next() else {
            return Err("expected a key".into());
        };
        keys.push(Key::parse(&k).ok_or_else(|| format!("{k:?} is not a name@range key"))?);
        match it.next() {
            Some(Tok::Comma) => continue,
            Some(Tok::Colon) if it.peek().is_none() => return Ok(keys),
            _ => return Err("expected \",\" or a final \":\"".into()),
        }
    }
}

/// The keys of an entry's header line (indentation removed), None when it is not one.
pub fn keys_of(content: &str) -> Option<Vec<Key>> {
    header_keys(tokens(content).ok()?).ok()
}

/// Parse `text`, the content of `file` (named in errors).
pub fn parse(text: &str, file: &str) -> Result<YarnLock, YarnLockError> {
    if text.len() as u64 > MAX_LOCKFILE_BYTES {
        return Err(YarnLockError::TooLarge {
            file: file.into(),
            max: MAX_LOCKFILE_BYTES,
        });
    }
    let syntax = |line: usize, reason: &str| YarnLockError::Syntax {
        file: file.into(),
        line,
        reason: reason.into(),
    };
    let mut marker = false;
    let mut out = YarnLock::default();
    // the nested map being filled: Some(true) optionalDependencies, Some(false) dependencies
    let mut nested: Option<Option<bool>> = None;
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        if raw.contains('\0') {
            return Err(syntax(line_no, "NUL character"));
        }
        let line = raw.trim_end_matches([' ', '\r']);
        let content = line.trim_start_matches(' ');
        if content.is_empty() {
            continue;
        }
        if content.starts_with('#') {
            marker |= line == V1_MARKER;
            continue;
        }
        if content.starts_with('\t') {
            return Err(syntax(line_no, "tab indentation"));
        }
        let indent = line.len() - content.len();
        if indent % 2 == 1 {
            return Err(syntax(line_no, "Invalid number of spaces"));
        }
        let toks = tokens(content).map_err(|r| syntax(line_no, &r))?;
        match indent {
            0 => {
                if content.starts_with("__metadata") {
                    return Err(YarnLockError::Berry(file.into()));
                }
                let keys = header_keys(toks).map_err(|r| syntax(line_no, &r))?;
                if out.entries.len() >= MAX_LOCKFILE_ENTRIES {
                    return Err(YarnLockError::TooManyEntries {
                        file: file.into(),
                        max: MAX_LOCKFILE_ENTRIES,
                    });
                }
                out.entries.push(Entry {
                    keys,
                    line: line_no,
                    ..Entry::default()
                });
                nested = None;
            }
            2 => {
                let entry = out
                    .entries
                    .last_mut()
                    .ok_or_else(|| syntax(line_no, "a field outside any entry"))?;
                match toks.as_slice() {
                    [Tok::Str(k), Tok::Colon] => {
                        nested = Some(match k.as_str() {
                            "dependencies" => Some(false),
                            "optionalDependencies" => Some(true),
                            _ => None,
                        });
                    }
                    [Tok::Str(k), Tok::Str(v)] => {
                        nested = None;
                        entry.fields.insert(k.clone(), v.clone());
                    }
                    _ => return Err(syntax(line_no, "expected \"key value\" or \"key:\"")),
                }
            }
            4 => {
                let (Some(entry), Some(which)) = (out.entries.last_mut(), nested) else {
                    return Err(syntax(line_no, "unexpected indentation"));
                };
                let [Tok::Str(k), Tok::Str(v)] = toks.as_slice() else {
                    return Err(syntax(line_no, "expected \"name range\""));
                };
                match which {
                    Some(false) => entry.dependencies.push((k.clone(), v.clone())),
                    Some(true) => entry.optional_dependencies.push((k.clone(), v.clone())),
                    None => {}
                }
            }
            _ => return Err(syntax(line_no, "unexpected indentation")),
        }
    }
    if !marker {
        return Err(YarnLockError::NotV1(file.into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.\n# yarn lockfile v1\n\n\n";

    fn p(body: &str) -> Result<YarnLock, YarnLockError> {
        parse(&format!("{HEAD}{body}"), "yarn.lock")
    }

    #[test]
    fn real_grammar() {
        let l = p(r#""@babel/code-frame@^7.0.0", "@babel/code-frame@^7.10.4":
  version "7.12.13"
  resolved "https://registry.yarnpkg.com/@babel/code-frame/-/code-frame-7.12.13.tgz#dcfc826beef65e75c50e21d3837d7d95798dd658"
  integrity sha512-HV1Cm0Q3ZrpCR93tkWOYiuYIgLxZXZFVG2VgK+MBWjUqZTundupbfx2aXarXuw5Ko5aMcjtJgbSs4vUGBS5v6g==
  dependencies:
    "@babel/highlight" "^7.12.13"

"date-in-spanish@npm:fecha", fecha@^4.0.0:
  version "4.2.3"
  resolved "https://registry.yarnpkg.com/fecha/-/fecha-4.2.3.tgz#4d9ccdbc61e8629b259fdca67e65891448d569fd"
  integrity sha512-OP2IUU6HeYKJi3i0z4A19kHMQoLVs4Hc+DPqqxI2h/DPZHTm/vjsfC6P0b4jCMy14XizLBqvndQ+UilD7707Jw==

# a comment
js-tokens@^4.0.0:
  version "4.0.0"
  optionalDependencies:
    fsevents "~2.3.1"
  dependencies:
    a "1"
    b "^2 || ^3"
"#)
        .unwrap();
        assert_eq!(l.entries.len(), 3);
        let e = &l.entries[0];
        assert_eq!(e.keys.len(), 2);
        assert_eq!(e.keys[0].name, "@babel/code-frame");
        assert_eq!(e.keys[1].range, "^7.10.4");
        assert_eq!(e.field("version"), Some("7.12.13"));
        assert!(e.field("integrity").unwrap().starts_with("sha512-HV1"));
        assert_eq!(
            e.dependencies,
            vec![("@babel/highlight".into(), "^7.12.13".into())]
        );
        let alias = &l.entries[1];
        assert_eq!(alias.keys[0].name, "date-in-spanish");
        assert_eq!(alias.keys[0].real(), ("fecha".into(), String::new()));
        assert_eq!(alias.keys[1].real(), ("fecha".into(), "^4.0.0".into()));
        assert_eq!(
            Key::parse("a@npm:@s/b@^1").unwrap().real(),
            ("@s/b".into(), "^1".into())
        );
        let t = &l.entries[2];
        assert_eq!(t.line, 18);
        assert_eq!(t.optional_dependencies.len(), 1);
        assert_eq!(t.dependencies[1], ("b".into(), "^2 || ^3".into()));
        // CRLF line ends and escapes in quoted keys
        let l = p("\"a@\\u005e1\":\r\n  version \"1.0.0\"\r\n").unwrap();
        assert_eq!(l.entries[0].keys[0].range, "^1");
    }

    #[test]
    fn berry_and_missing_marker() {
        let e = parse(
            "__metadata:\n  version: 6\n\n\"a@npm:1\":\n  version: 1\n",
            "yarn.lock",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("yarn Berry lockfiles are not supported yet"),
            "{e}"
        );
        assert_eq!(e.kind().origin(), common::ErrorOrigin::Client);
        let e = parse("a@1:\n  version \"1\"\n", "x/yarn.lock").unwrap_err();
        assert_eq!(e, YarnLockError::NotV1("x/yarn.lock".into()));
    }

    #[test]
    fn hostile_input_is_an_error_never_a_panic() {
        for (body, reason) in [
            ("a@1:\n   version \"1\"\n", "Invalid number of spaces"),
            ("a@1:\n\tversion \"1\"\n", "tab indentation"),
            ("a@1:\n  version \"1\0\"\n", "NUL character"),
            ("a@1:\n  version \"1\n", "unterminated string"),
            ("a@1:\n  version \"1\\\n", "unterminated string"),
            ("  version \"1\"\n", "a field outside any entry"),
            ("a@1:\n      x y\n", "unexpected indentation"),
            ("a@1:\n  version \"1\"\n    x y\n", "unexpected indentation"),
            ("a@1\n", "expected \",\" or a final \":\""),
            ("a@1:\n  version\n", "expected \"key value\" or \"key:\""),
            ("nokey:\n", "\"nokey\" is not a name@range key"),
            (":\n", "expected a key"),
            ("\"\\u00\":\n", "invalid string"),
            ("a@1, :\n", "expected a key"),
            ("a@1:\n  dependencies:\n    x\n", "expected \"name range\""),
        ] {
            match p(body) {
                Err(YarnLockError::Syntax { reason: r, .. }) => {
                    assert!(r.starts_with(reason), "{body:?}: {r}")
                }
                other => panic!("{body:?}: {other:?}"),
            }
        }
        // multi-byte text never splits a character
        assert!(p("é@1:\n  version \"ü\"\n").is_ok());
        assert!(p("\"é:\n").is_err());
        let huge = "a".repeat(MAX_LOCKFILE_BYTES as usize + 1);
        assert!(matches!(
            parse(&huge, "yarn.lock"),
            Err(YarnLockError::TooLarge { .. })
        ));
    }
}
