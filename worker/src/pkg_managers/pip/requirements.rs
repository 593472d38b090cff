//! pip requirements files: parsing with pip's own line rules, `-r`/`-c` includes confined to
//! the repository, and Larder's policy checks (exact pins, hashes, VCS commits, URL hashes).
//!
//! Decisions (documented for users):
//! - `${VAR}` references are refused: the worker cannot know the value the user meant and must
//!   not expand its own environment into a request.
//! - Constraint files (`-c`) are parsed with the same rules and their pins are prefetched too
//!   (they are flagged `constraint: true`): pip only installs them when something depends on
//!   them, so having them available is the conservative choice.
//! - Index options (`-i`, `--index-url`, `--extra-index-url`, `--no-index`, `-f`,
//!   `--find-links`, `--only-binary`) and editables are refused; options that only affect how
//!   pip builds (`--no-binary`, `--prefer-binary`, `--pre`, `--trusted-host`, `--use-feature`)
//!   are accepted and ignored.
//! - Environment markers are kept verbatim and never evaluated: every branch is prefetched.
//! - VCS requirements are accepted in hash-checking mode: the handed-back requirements file
//!   replaces them by a URL with a `#sha256=` of the served archive, which pip accepts.

use crate::pkg_managers::pip::names::{
    checked_name, is_valid_name, normalize_name, sdist_extension, Version,
};
use common::commit::CommitId;
use common::digest::{Digest, HashAlgorithm};
use common::repo_path::RepoPath;
use common::{Classify, ErrorKind};
use std::path::{Path, PathBuf};

/// Largest requirements file read (bytes).
pub const MAX_FILE_SIZE: u64 = 4 * 1024 * 1024;
/// Most files one top-level requirements file may pull in through `-r`/`-c`.
pub const MAX_FILES: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequirementsError {
    #[error("Following requirement file has an invalid path: {0}")]
    InvalidPath(String),
    #[error("The requirements file {0} could not be read: {1}")]
    Unreadable(String, String),
    #[error("The requirements file {0} is larger than {MAX_FILE_SIZE} bytes")]
    TooLarge(String),
    #[error("The requirements file {0} is not valid UTF-8")]
    NotUtf8(String),
    #[error("The requirements file {file} includes itself through {chain}")]
    Cycle { file: String, chain: String },
    #[error("The requirements file {0} includes too many other files (more than {MAX_FILES})")]
    TooManyFiles(String),
    #[error("{file}:{line}: the option {option} is not supported in requirements files; Larder serves the dependencies from its own index, remove this line")]
    RefusedOption {
        file: String,
        line: usize,
        option: String,
    },
    #[error("{file}:{line}: editable requirements (-e) are not supported: {text}")]
    Editable {
        file: String,
        line: usize,
        text: String,
    },
    #[error("{file}:{line}: unknown or misplaced option {option}")]
    UnknownOption {
        file: String,
        line: usize,
        option: String,
    },
    #[error("{file}:{line}: the option {option} needs a value")]
    MissingValue {
        file: String,
        line: usize,
        option: String,
    },
    #[error("{file}:{line}: environment variable reference {var} is not supported; write the value literally")]
    EnvVar {
        file: String,
        line: usize,
        var: String,
    },
    #[error("{file}:{line}: the requirement '{text}' could not be parsed: {reason}")]
    Syntax {
        file: String,
        line: usize,
        text: String,
        reason: String,
    },
    #[error("{file}:{line}: the requirement '{text}' is not pinned to an exact version; use '==' or '===' (for example name==1.2.3)")]
    NotPinned {
        file: String,
        line: usize,
        text: String,
    },
    #[error("{file}:{line}: invalid hash '{hash}' for '{text}': use --hash=sha256:<hex> (sha256, sha384 or sha512)")]
    BadHash {
        file: String,
        line: usize,
        text: String,
        hash: String,
    },
    #[error("Direct references with 'file' scheme are not supported, '{text}' in {file}:{line}")]
    FileScheme {
        file: String,
        line: usize,
        text: String,
    },
    #[error("{file}:{line}: the VCS requirement '{text}' is not supported: {reason}")]
    Vcs {
        file: String,
        line: usize,
        text: String,
        reason: String,
    },
    #[error("{file}:{line}: the URL requirement '{text}' is not supported: {reason}")]
    Url {
        file: String,
        line: usize,
        text: String,
        reason: String,
    },
    #[error("Hash is required for every requirement when --require-hashes is used or any requirement has --hash, but '{text}' ({file}:{line}) has none")]
    MissingHash {
        file: String,
        line: usize,
        text: String,
    },
}

impl Classify for RequirementsError {
    fn kind(&self) -> ErrorKind {
        use RequirementsError::*;
        match self {
            InvalidPath(_) | Cycle { .. } | TooManyFiles(_) | TooLarge(_) | NotUtf8(_) => {
                ErrorKind::InvalidRepoStructure
            }
            Unreadable(..) => ErrorKind::InvalidRepoStructure,
            RefusedOption { .. }
            | Editable { .. }
            | FileScheme { .. }
            | Vcs { .. }
            | Url { .. }
            | EnvVar { .. } => ErrorKind::UnsupportedFeature,
            MissingHash { .. } => ErrorKind::ValidationError,
            _ => ErrorKind::InvalidRequestData,
        }
    }
}

/// The algorithms pip's hash-checking mode accepts (`hashlib` names): sha256, sha384, sha512.
pub fn pip_algorithm(name: &str) -> Option<HashAlgorithm> {
    HashAlgorithm::from_name(name).filter(|a| *a != HashAlgorithm::Sha1)
}

/// A hash as pip writes it: `alg:hex` (as in `--hash`) or `alg=hex` (as in URL fragments).
pub fn parse_hash(s: &str) -> Option<Digest> {
    let (alg, hex) = s.split_once(':').or_else(|| s.split_once('='))?;
    Digest::from_hex(pip_algorithm(alg)?, hex).ok()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `name==version` / `name===version` from the package index.
    Index { version: String, arbitrary: bool },
    /// `git+<url>@<commit>`: `url` has no `git+` prefix, no ref and no fragment.
    Vcs {
        url: String,
        commit: CommitId,
        subdirectory: Option<String>,
    },
    /// `name @ https://...` (fragment removed) with the hash that verifies it.
    Url {
        url: String,
        hash: Digest,
        extension: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// the name as written
    pub name: String,
    pub normalized: String,
    pub extras: Vec<String>,
    /// environment marker text, kept verbatim (never evaluated)
    pub marker: Option<String>,
    pub source: Source,
    /// `--hash` options (in order, deduplicated)
    pub hashes: Vec<Digest>,
    /// per-requirement options other than `--hash`, verbatim (kept in rewritten files)
    pub other_options: Vec<String>,
    /// the file that declares it
    pub file: RepoPath,
    /// first and last physical line (1-based) of the logical line
    pub line: usize,
    pub end_line: usize,
    /// the requirement as written (without options)
    pub text: String,
    /// declared in a constraints file (`-c`)
    pub constraint: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    pub path: String,
    pub constraint: bool,
    pub line: usize,
}

/// One file's content, includes not followed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileContent {
    pub requirements: Vec<Requirement>,
    pub includes: Vec<Include>,
    pub require_hashes: bool,
}

/// A requirements file with everything it includes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedRequirements {
    /// every file read, first the top-level one
    pub files: Vec<RepoPath>,
    pub requirements: Vec<Requirement>,
    /// hash-checking mode (a `--require-hashes` line or any `--hash`)
    pub require_hashes: bool,
}

/// Split text into pip's logical lines: `(first line, last line, text)`, comments removed.
pub fn logical_lines(text: &str) -> Vec<(usize, usize, String)> {
    fn is_comment_line(l: &str) -> bool {
        comment_start(l).is_some()
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut acc: Option<(usize, String)> = None;
    let mut last = 0;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        last = n;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if !line.ends_with('\\') || is_comment_line(line) {
            let (start, mut joined) = acc.take().unwrap_or((n, String::new()));
            joined.push_str(line);
            out.push((start, n, joined));
        } else {
            let e = acc.get_or_insert((n, String::new()));
            e.1.push_str(line.trim_end_matches('\\'));
        }
    }
    if let Some((start, joined)) = acc {
        out.push((start, last, joined));
    }
    out.into_iter()
        .filter_map(|(s, e, l)| {
            let l = match comment_start(&l) {
                Some(i) => l[..i].to_string(),
                None => l,
            };
            let l = l.trim().to_string();
            (!l.is_empty()).then_some((s, e, l))
        })
        .collect()
}

/// Byte index where a comment starts: `#` at the line start or after whitespace.
fn comment_start(l: &str) -> Option<usize> {
    let b = l.as_bytes();
    (0..b.len()).find(|&i| b[i] == b'#' && (i == 0 || b[i - 1].is_ascii_whitespace()))
}

/// pip's `break_args_options`: tokens before the first one starting with `-` are the
/// requirement, the rest are options.
fn break_args_options(line: &str) -> (String, String) {
    let tokens: Vec<&str> = line.split(' ').collect();
    let idx = tokens
        .iter()
        .position(|t| t.starts_with('-'))
        .unwrap_or(tokens.len());
    (
        tokens[..idx].join(" ").trim().to_string(),
        tokens[idx..].join(" "),
    )
}

/// Minimal POSIX shell-like split (quotes and backslashes), as `shlex.split`.
fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                have = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err("unterminated quote".into()),
                    }
                }
            }
            '"' => {
                have = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x) => cur.push(x),
                            None => return Err("unterminated quote".into()),
                        },
                        Some(x) => cur.push(x),
                        None => return Err("unterminated quote".into()),
                    }
                }
            }
            '\\' => {
                have = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            c if c.is_whitespace() => {
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            c => {
                have = true;
                cur.push(c);
            }
        }
    }
    if have {
        out.push(cur);
    }
    Ok(out)
}

/// `${UPPER_CASE}` references, as pip expands them.
fn find_env_var(line: &str) -> Option<String> {
    let mut rest = line;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        if let Some(end) = after.find('}') {
            let name = &after[..end];
            if !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                return Some(format!("${{{name}}}"));
            }
        }
        rest = &rest[i + 2..];
    }
    None
}

struct Ctx<'a> {
    path: &'a RepoPath,
    /// `path` as messages name it
    file: &'a str,
    line: usize,
}

impl Ctx<'_> {
    fn syntax(&self, text: &str, reason: impl Into<String>) -> RequirementsError {
        RequirementsError::Syntax {
            file: self.file.into(),
            line: self.line,
            text: text.into(),
            reason: reason.into(),
        }
    }
}

/// Options: `(name, value)`; `takes_value` tells which names consume one.
fn parse_options(
    ctx: &Ctx,
    tokens: &[String],
    takes_value: impl Fn(&str) -> bool,
) -> Result<Vec<(String, Option<String>)>, RequirementsError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        i += 1;
        let (name, inline) = if let Some(long) = t.strip_prefix("--") {
            match long.split_once('=') {
                Some((n, v)) => (format!("--{n}"), Some(v.to_string())),
                None => (t.clone(), None),
            }
        } else if let Some((short, rest)) = t
            .get(..2)
            .filter(|s| s.starts_with('-') && t.len() > 2 && takes_value(s))
            .and_then(|s| Some((s, t.get(2..)?)))
        {
            (short.to_string(), Some(rest.to_string()))
        } else if t.starts_with('-') {
            (t.clone(), None)
        } else {
            return Err(RequirementsError::UnknownOption {
                file: ctx.file.into(),
                line: ctx.line,
                option: t.clone(),
            });
        };
        if takes_value(&name) {
            let v = match inline {
                Some(v) => v,
                None => {
                    let v = tokens
                        .get(i)
                        .ok_or_else(|| RequirementsError::MissingValue {
                            file: ctx.file.into(),
                            line: ctx.line,
                            option: name.clone(),
                        })?
                        .clone();
                    i += 1;
                    v
                }
            };
            out.push((name, Some(v)));
        } else {
            if inline.is_some() {
                return Err(RequirementsError::UnknownOption {
                    file: ctx.file.into(),
                    line: ctx.line,
                    option: t.clone(),
                });
            }
            out.push((name, None));
        }
    }
    Ok(out)
}

const REFUSED: &[&str] = &[
    "-i",
    "--index-url",
    "--extra-index-url",
    "--no-index",
    "-f",
    "--find-links",
    "--only-binary",
];

fn line_option_takes_value(n: &str) -> bool {
    matches!(
        n,
        "-r" | "--requirement"
            | "-c"
            | "--constraint"
            | "-i"
            | "--index-url"
            | "--extra-index-url"
            | "-f"
            | "--find-links"
            | "--only-binary"
            | "--no-binary"
            | "--trusted-host"
            | "--use-feature"
            | "-e"
            | "--editable"
    )
}

fn req_option_takes_value(n: &str) -> bool {
    matches!(
        n,
        "--hash" | "--config-settings" | "--global-option" | "--install-option"
    )
}

/// Parse one requirements file's text; `path` is where it is (for messages).
pub fn parse_str(text: &str, path: &RepoPath) -> Result<FileContent, RequirementsError> {
    let file = path.as_str();
    let mut content = FileContent::default();
    for (line, end_line, l) in logical_lines(text) {
        let ctx = Ctx { path, file, line };
        if let Some(var) = find_env_var(&l) {
            return Err(RequirementsError::EnvVar {
                file: file.into(),
                line,
                var,
            });
        }
        let (args, opts) = break_args_options(&l);
        let tokens = shell_split(&opts).map_err(|e| ctx.syntax(&l, e))?;
        if args.is_empty() {
            let options = parse_options(&ctx, &tokens, line_option_takes_value)?;
            for (name, value) in options {
                let n = name.as_str();
                if REFUSED.contains(&n) {
                    return Err(RequirementsError::RefusedOption {
                        file: file.into(),
                        line,
                        option: name,
                    });
                }
                match (n, value) {
                    ("-r" | "--requirement", Some(p)) => content.includes.push(Include {
                        path: p,
                        constraint: false,
                        line,
                    }),
                    ("-c" | "--constraint", Some(p)) => content.includes.push(Include {
                        path: p,
                        constraint: true,
                        line,
                    }),
                    ("--require-hashes", None) => content.require_hashes = true,
                    ("-e" | "--editable", v) => {
                        return Err(RequirementsError::Editable {
                            file: file.into(),
                            line,
                            text: v.unwrap_or_default(),
                        })
                    }
                    ("--no-binary" | "--trusted-host" | "--use-feature", Some(_))
                    | ("--prefer-binary" | "--pre", None) => {}
                    _ => {
                        return Err(RequirementsError::UnknownOption {
                            file: file.into(),
                            line,
                            option: name,
                        })
                    }
                }
            }
            continue;
        }
        let options = parse_options(&ctx, &tokens, req_option_takes_value)?;
        let mut hashes: Vec<Digest> = Vec::new();
        let mut other_options = Vec::new();
        for (name, value) in options {
            match (name.as_str(), value) {
                ("--hash", Some(h)) => {
                    let parsed = parse_hash(&h).ok_or_else(|| RequirementsError::BadHash {
                        file: file.into(),
                        line,
                        text: args.clone(),
                        hash: h.clone(),
                    })?;
                    if !hashes.contains(&parsed) {
                        hashes.push(parsed);
                    }
                }
                ("--config-settings" | "--global-option" | "--install-option", Some(v)) => {
                    other_options.push(format!("{name}={v}"))
                }
                _ => {
                    return Err(RequirementsError::UnknownOption {
                        file: file.into(),
                        line,
                        option: name,
                    })
                }
            }
        }
        let mut req = parse_requirement(&ctx, &args, &hashes)?;
        req.hashes = hashes;
        req.other_options = other_options;
        req.end_line = end_line;
        content.requirements.push(req);
    }
    Ok(content)
}

fn is_vcs_prefix(lower: &str) -> bool {
    ["git+", "hg+", "svn+", "bzr+"]
        .iter()
        .any(|p| lower.starts_with(p))
}

fn has_scheme(s: &str) -> bool {
    match s.find(':') {
        Some(i) if i > 1 => s[..i]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')),
        _ => false,
    }
}

/// Parse the requirement part of a line (no options).
fn parse_requirement(
    ctx: &Ctx,
    text: &str,
    hashes: &[Digest],
) -> Result<Requirement, RequirementsError> {
    let lower = text.to_ascii_lowercase();
    let base =
        |name: String, extras: Vec<String>, marker: Option<String>, source: Source| Requirement {
            normalized: normalize_name(&name),
            name,
            extras,
            marker,
            source,
            hashes: Vec::new(),
            other_options: Vec::new(),
            file: ctx.path.clone(),
            line: ctx.line,
            end_line: ctx.line,
            text: text.into(),
            constraint: false,
        };
    // bare URL or local path forms
    if is_vcs_prefix(&lower) || has_scheme(text) || looks_like_path(text) {
        let (url, marker) = split_url_marker(text);
        if lower.starts_with("file:") || lower.starts_with("git+file:") || !has_scheme(text) {
            return Err(RequirementsError::FileScheme {
                file: ctx.file.into(),
                line: ctx.line,
                text: text.into(),
            });
        }
        let egg = fragment_param(url, "egg");
        let name = match egg {
            Some(e) => e,
            None if !is_vcs_prefix(&lower) => {
                url_sdist_name(url).ok_or_else(|| RequirementsError::Url {
                    file: ctx.file.into(),
                    line: ctx.line,
                    text: text.into(),
                    reason: "name the package: write 'name @ <url>' or add #egg=<name>".into(),
                })?
            }
            None => {
                return Err(RequirementsError::Vcs {
                    file: ctx.file.into(),
                    line: ctx.line,
                    text: text.into(),
                    reason: "name the package: write 'name @ git+https://...' or add #egg=<name>"
                        .into(),
                })
            }
        };
        let (name, extras) = split_extras(ctx, text, &name)?;
        let source = parse_url_source(ctx, text, url, &name, hashes)?;
        return Ok(base(name, extras, marker, source));
    }
    // PEP 508
    let name_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or(text.len());
    let name = &text[..name_end];
    if !is_valid_name(name) {
        return Err(ctx.syntax(text, "it does not start with a valid package name"));
    }
    let mut rest = text[name_end..].trim_start();
    let mut extras = Vec::new();
    if let Some(r) = rest.strip_prefix('[') {
        let close = r
            .find(']')
            .ok_or_else(|| ctx.syntax(text, "unclosed '[' in extras"))?;
        for e in r[..close]
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            extras.push(checked_name(e).map_err(|_| ctx.syntax(text, "invalid extra name"))?);
        }
        rest = r[close + 1..].trim_start();
    }
    if let Some(r) = rest.strip_prefix('@') {
        let (url, marker) = split_url_marker(r.trim());
        let source = parse_url_source(ctx, text, url, name, hashes)?;
        return Ok(base(name.into(), extras, marker, source));
    }
    let (spec, marker) = match rest.split_once(';') {
        Some((s, m)) => {
            let m = m.trim();
            if m.is_empty() {
                return Err(ctx.syntax(text, "empty environment marker after ';'"));
            }
            (s.trim(), Some(m.to_string()))
        }
        None => (rest.trim(), None),
    };
    let spec = spec
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(spec)
        .trim();
    let not_pinned = || RequirementsError::NotPinned {
        file: ctx.file.into(),
        line: ctx.line,
        text: text.into(),
    };
    if spec.is_empty() || spec.contains(',') {
        return Err(not_pinned());
    }
    let source = if let Some(v) = spec.strip_prefix("===") {
        let v = v.trim();
        if v.is_empty() || v.contains(char::is_whitespace) {
            return Err(ctx.syntax(text, "missing version after '==='"));
        }
        Source::Index {
            version: v.into(),
            arbitrary: true,
        }
    } else if let Some(v) = spec.strip_prefix("==") {
        let v = v.trim();
        if v.ends_with(".*") {
            return Err(not_pinned());
        }
        let parsed = Version::parse(v)
            .map_err(|_| ctx.syntax(text, format!("'{v}' is not a valid version")))?;
        Source::Index {
            version: parsed.to_string(),
            arbitrary: false,
        }
    } else if spec.starts_with(['<', '>', '!', '~', '=']) {
        return Err(not_pinned());
    } else {
        return Err(ctx.syntax(text, format!("unexpected '{spec}'")));
    };
    Ok(base(name.into(), extras, marker, source))
}

fn looks_like_path(s: &str) -> bool {
    if s.starts_with(['.', '/', '~', '\\']) {
        return true;
    }
    let first = s.split(';').next().unwrap_or("").trim();
    !s.contains('@')
        && (s.contains('/')
            || s.contains('\\')
            || sdist_extension(first).is_some()
            || first.to_ascii_lowercase().ends_with(".whl"))
}

/// URL forms take their marker after "; " (pip requires whitespace around it).
fn split_url_marker(s: &str) -> (&str, Option<String>) {
    let b = s.as_bytes();
    for i in 0..b.len() {
        if b[i] == b';' && (i > 0 && b[i - 1].is_ascii_whitespace() || s[i + 1..].starts_with(' '))
        {
            let m = s[i + 1..].trim();
            return (s[..i].trim(), (!m.is_empty()).then(|| m.to_string()));
        }
    }
    (s.trim(), None)
}

fn fragment_param(url: &str, key: &str) -> Option<String> {
    let frag = url.split_once('#')?.1;
    frag.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

fn url_sdist_name(url: &str) -> Option<String> {
    let path = url.split(['#', '?']).next()?;
    let file = path.rsplit('/').next()?;
    crate::pkg_managers::pip::names::parse_sdist_filename(file)
        .ok()
        .map(|s| s.name)
}

/// `name[extra]` inside an `#egg=` value.
fn split_extras(
    ctx: &Ctx,
    text: &str,
    egg: &str,
) -> Result<(String, Vec<String>), RequirementsError> {
    let (name, extras) = match egg.split_once('[') {
        Some((n, e)) => (n, e.trim_end_matches(']')),
        None => (egg, ""),
    };
    if !is_valid_name(name) {
        return Err(ctx.syntax(text, format!("'{name}' is not a valid package name")));
    }
    let mut ex = Vec::new();
    for e in extras.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        ex.push(checked_name(e).map_err(|_| ctx.syntax(text, "invalid extra name"))?);
    }
    Ok((name.into(), ex))
}

fn parse_url_source(
    ctx: &Ctx,
    text: &str,
    url: &str,
    name: &str,
    hashes: &[Digest],
) -> Result<Source, RequirementsError> {
    let lower = url.to_ascii_lowercase();
    let file_err = || RequirementsError::FileScheme {
        file: ctx.file.into(),
        line: ctx.line,
        text: text.into(),
    };
    if lower.starts_with("file:") || lower.starts_with("git+file:") || !has_scheme(url) {
        return Err(file_err());
    }
    let egg = fragment_param(url, "egg");
    if let Some(e) = &egg {
        let en = e.split('[').next().unwrap_or("");
        if normalize_name(en) != normalize_name(name) {
            return Err(ctx.syntax(text, format!("#egg={e} does not match the name {name}")));
        }
    }
    if is_vcs_prefix(&lower) {
        let vcs_err = |reason: &str| RequirementsError::Vcs {
            file: ctx.file.into(),
            line: ctx.line,
            text: text.into(),
            reason: reason.into(),
        };
        if !lower.starts_with("git+") {
            return Err(vcs_err("only git repositories are supported"));
        }
        let inner = &url[4..];
        let parsed = url::Url::parse(inner).map_err(|e| vcs_err(&format!("invalid URL ({e})")))?;
        if !matches!(parsed.scheme(), "https" | "http" | "ssh") {
            return Err(vcs_err(
                "only git+https, git+http and git+ssh URLs are supported",
            ));
        }
        if parsed.password().is_some()
            || (parsed.scheme() != "ssh" && !parsed.username().is_empty())
        {
            return Err(vcs_err("the URL must not contain credentials"));
        }
        if parsed.host_str().is_none_or(str::is_empty) || parsed.query().is_some() {
            return Err(vcs_err("the URL needs a host and no query"));
        }
        let path = parsed.path();
        let (repo_path, reference) = path
            .rsplit_once('@')
            .ok_or_else(|| vcs_err("it must name a full 40-character commit id with @<commit>"))?;
        let commit = CommitId::parse_any_case(reference).map_err(|_| {
            vcs_err(&format!(
                "'{reference}' is not a full 40-character commit id"
            ))
        })?;
        let repo_path = repo_path.trim_end_matches('/');
        if repo_path.is_empty()
            || repo_path == "/"
            || repo_path.split('/').any(|s| s == ".." || s == ".")
        {
            return Err(vcs_err("the URL has no repository path"));
        }
        let mut base = parsed.clone();
        base.set_fragment(None);
        base.set_path(repo_path);
        let subdirectory = fragment_param(url, "subdirectory");
        if let Some(s) = &subdirectory {
            if RepoPath::parse(s).is_err() {
                return Err(vcs_err(
                    "subdirectory must be a relative path inside the repository",
                ));
            }
        }
        return Ok(Source::Vcs {
            url: base.to_string(),
            commit,
            subdirectory,
        });
    }
    let url_err = |reason: &str| RequirementsError::Url {
        file: ctx.file.into(),
        line: ctx.line,
        text: text.into(),
        reason: reason.into(),
    };
    let parsed = url::Url::parse(url).map_err(|e| url_err(&format!("invalid URL ({e})")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(url_err("only http and https URLs are supported"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(url_err("the URL must not contain credentials"));
    }
    let filename = parsed
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or("");
    let extension = sdist_extension(filename).ok_or_else(|| {
        url_err("the URL must point to a source archive (.tar.gz, .tar.bz2, .tar.xz, .zip, .tgz or .tar)")
    })?;
    let mut frag_hash = None;
    if let Some(frag) = parsed.fragment() {
        for kv in frag.split('&') {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            if k == "cachito_hash" {
                frag_hash = Some(parse_hash(v).ok_or_else(|| url_err("invalid cachito_hash"))?);
            } else if pip_algorithm(k).is_some() {
                frag_hash =
                    Some(parse_hash(kv).ok_or_else(|| url_err("invalid hash in URL fragment"))?);
            }
        }
    }
    let hash = frag_hash
        .or_else(|| {
            hashes
                .iter()
                .find(|h| h.algorithm == HashAlgorithm::Sha256)
                .or(hashes.first())
                .cloned()
        })
        .ok_or_else(|| {
            url_err("a hash is required: add #sha256=<hex> to the URL or --hash=sha256:<hex>")
        })?;
    let mut clean = parsed.clone();
    clean.set_fragment(None);
    Ok(Source::Url {
        url: clean.to_string(),
        hash,
        extension,
    })
}

/// A requirements file on disk: it must stay inside the repository (symlinks followed) and be
/// a regular file.
pub fn resolve_file(repo_root: &Path, rel: &RepoPath) -> Result<PathBuf, RequirementsError> {
    rel.resolve(repo_root)
        .ok()
        .filter(|real| real.is_file())
        .ok_or_else(|| RequirementsError::InvalidPath(rel.to_string()))
}

/// A requested requirements file (relative to the package path), checked without touching the
/// disk as the API does at submission.
pub fn check_requested_path(
    package_path: &RepoPath,
    file: &str,
) -> Result<RepoPath, RequirementsError> {
    package_path
        .join(file)
        .map_err(|_| RequirementsError::InvalidPath(file.to_string()))
}

fn read_file(repo_root: &Path, rel: &RepoPath) -> Result<String, RequirementsError> {
    let real = resolve_file(repo_root, rel)?;
    let unreadable =
        |e: std::io::Error| RequirementsError::Unreadable(rel.to_string(), e.to_string());
    let meta = std::fs::metadata(&real).map_err(unreadable)?;
    if meta.len() > MAX_FILE_SIZE {
        return Err(RequirementsError::TooLarge(rel.to_string()));
    }
    let bytes = std::fs::read(&real).map_err(unreadable)?;
    String::from_utf8(bytes).map_err(|_| RequirementsError::NotUtf8(rel.to_string()))
}

/// Load a requirements file and everything it includes, then apply the hash rule (if any
/// requirement has a hash, all must).
pub fn load(repo_root: &Path, rel: &RepoPath) -> Result<ParsedRequirements, RequirementsError> {
    let mut out = ParsedRequirements::default();
    let mut stack = Vec::new();
    load_rec(repo_root, rel, false, &mut stack, &mut out)?;
    let any_hash = out.requirements.iter().any(|r| !r.hashes.is_empty());
    out.require_hashes |= any_hash;
    if out.require_hashes {
        if let Some(r) = out.requirements.iter().find(|r| {
            !r.constraint && r.hashes.is_empty() && matches!(r.source, Source::Index { .. })
        }) {
            return Err(RequirementsError::MissingHash {
                file: r.file.to_string(),
                line: r.line,
                text: r.text.clone(),
            });
        }
    }
    Ok(out)
}

fn load_rec(
    repo_root: &Path,
    rel: &RepoPath,
    constraint: bool,
    stack: &mut Vec<RepoPath>,
    out: &mut ParsedRequirements,
) -> Result<(), RequirementsError> {
    if stack.contains(rel) {
        let chain: Vec<&str> = stack.iter().chain([rel]).map(RepoPath::as_str).collect();
        return Err(RequirementsError::Cycle {
            file: rel.to_string(),
            chain: chain.join(" -> "),
        });
    }
    if out.files.len() >= MAX_FILES {
        return Err(RequirementsError::TooManyFiles(
            stack.first().map(RepoPath::to_string).unwrap_or_default(),
        ));
    }
    let text = read_file(repo_root, rel)?;
    let content = parse_str(&text, rel)?;
    out.files.push(rel.clone());
    out.require_hashes |= content.require_hashes;
    out.requirements
        .extend(content.requirements.into_iter().map(|mut r| {
            r.constraint = constraint;
            r
        }));
    stack.push(rel.clone());
    let dir = rel.parent().unwrap_or_default();
    for inc in content.includes {
        let invalid = || RequirementsError::InvalidPath(inc.path.clone());
        // pip would fetch a URL: never from here
        if inc.path.is_empty() || inc.path.contains("://") || inc.path.starts_with("file:") {
            return Err(invalid());
        }
        let target = dir.join(&inc.path).map_err(|_| invalid())?;
        load_rec(repo_root, &target, constraint || inc.constraint, stack, out)?;
    }
    stack.pop();
    Ok(())
}

/// Requirements files for one package: `(runtime files, build files)`. Defaults
/// (`requirements.txt`, `requirements-build.txt`) are used only if they exist; explicitly
/// requested files must exist inside the repository.
pub fn files_for_package(
    repo_root: &Path,
    spec: &common::PackageSpec,
) -> Result<(Vec<RepoPath>, Vec<RepoPath>), RequirementsError> {
    let pick = |explicit: &Option<Vec<String>>,
                default: &str|
     -> Result<Vec<RepoPath>, RequirementsError> {
        match explicit {
            Some(list) => list
                .iter()
                .map(|f| {
                    let rel = check_requested_path(&spec.path, f)?;
                    resolve_file(repo_root, &rel)?;
                    Ok(rel)
                })
                .collect(),
            None => {
                let rel = check_requested_path(&spec.path, default)?;
                Ok(resolve_file(repo_root, &rel)
                    .ok()
                    .map(|_| rel)
                    .into_iter()
                    .collect())
            }
        }
    };
    Ok((
        pick(&spec.requirements_files, "requirements.txt")?,
        pick(&spec.requirements_build_files, "requirements-build.txt")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "0000000000000000000000000000000000000000000000000000000000000001";
    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn parse_str(text: &str, file: &str) -> Result<FileContent, RequirementsError> {
        super::parse_str(text, &RepoPath::parse(file).unwrap())
    }

    fn load(root: &Path, file: &str) -> Result<ParsedRequirements, RequirementsError> {
        super::load(root, &RepoPath::parse(file).unwrap())
    }

    fn one(line: &str) -> Result<Requirement, RequirementsError> {
        let c = parse_str(line, "requirements.txt")?;
        assert_eq!(c.requirements.len(), 1, "{line}");
        Ok(c.requirements.into_iter().next().unwrap())
    }

    #[test]
    fn lines_comments_continuations() {
        let t =
            "# top\nfoo==1.0 # c\nbar==\\\n2.0\nurl @ https://h/x-1.0.tar.gz#sha256=ab\n\n  \\\n";
        let l = logical_lines(t);
        assert_eq!(l[0], (2, 2, "foo==1.0".to_string()));
        assert_eq!(l[1], (3, 4, "bar==2.0".to_string()));
        assert!(l[2].2.ends_with("#sha256=ab"));
        assert_eq!(l.len(), 3);
        // a comment line ending with a backslash does not continue
        let l = logical_lines("# x \\\nfoo==1\r\n");
        assert_eq!(l, vec![(2, 2, "foo==1".to_string())]);
    }

    #[test]
    fn pins_extras_markers() {
        let r = one("Requests[Security, socks]==2.31.0 ; python_version < \"3.12\"").unwrap();
        assert_eq!(r.normalized, "requests");
        assert_eq!(r.extras, vec!["security", "socks"]);
        assert_eq!(r.marker.as_deref(), Some("python_version < \"3.12\""));
        assert_eq!(
            r.source,
            Source::Index {
                version: "2.31.0".into(),
                arbitrary: false
            }
        );
        let r = one("foo==V1.0-1;sys_platform=='linux'").unwrap();
        assert_eq!(
            r.source,
            Source::Index {
                version: "1.0.post1".into(),
                arbitrary: false
            }
        );
        let r = one("foo (==1.0)").unwrap();
        assert!(matches!(r.source, Source::Index { .. }));
        let r = one("foo===1.0-weird").unwrap();
        assert_eq!(
            r.source,
            Source::Index {
                version: "1.0-weird".into(),
                arbitrary: true
            }
        );
    }

    #[test]
    fn unpinned_refused() {
        for l in [
            "foo",
            "foo>=1.0",
            "foo==1.*",
            "foo~=1.0",
            "foo!=1",
            "foo==1.0,<2",
            "foo<2",
        ] {
            let e = one(l).unwrap_err();
            assert!(matches!(e, RequirementsError::NotPinned { .. }), "{l}: {e}");
            assert!(e.to_string().contains(l), "{e}");
            assert_eq!(
                common::Failure::from(e).origin(),
                common::ErrorOrigin::Client
            );
        }
        assert!(matches!(
            one("foo==notaversion").unwrap_err(),
            RequirementsError::Syntax { .. }
        ));
        assert!(one("-foo==1").is_err());
        assert!(one("foo[bar==1").is_err());
        assert!(one("foo==1 ;").is_err());
    }

    #[test]
    fn hashes() {
        let r = one(&format!(
            "foo==1.0 --hash=sha256:{H1} --hash sha256:{} \\\n --hash=SHA256:{H1}",
            H1.replace('1', "2")
        ))
        .unwrap();
        assert_eq!(r.hashes.len(), 2);
        assert_eq!(r.end_line, 2);
        for bad in ["md5:abc", "sha256:xyz", "sha256:abcd", "sha1:0123"] {
            let e = one(&format!("foo==1.0 --hash={bad}")).unwrap_err();
            assert!(matches!(e, RequirementsError::BadHash { .. }), "{bad}");
        }
        let h384 = "a".repeat(96);
        assert!(one(&format!("foo==1.0 --hash=sha384:{h384}")).is_ok());
        assert!(one("foo==1.0 --hash").is_err());
        assert!(one("foo==1.0 --bogus").is_err());
    }

    #[test]
    fn refused_options() {
        for l in [
            "-i https://x/simple",
            "--index-url=https://x",
            "--extra-index-url https://x",
            "--no-index",
            "-f ./dir",
            "--find-links=https://x",
            "--only-binary :all:",
        ] {
            let e = parse_str(l, "r.txt").unwrap_err();
            assert!(matches!(e, RequirementsError::RefusedOption { .. }), "{l}");
            assert!(e.to_string().contains("r.txt:1"));
        }
        assert!(matches!(
            parse_str("-e git+https://h/r@x#egg=a", "r.txt").unwrap_err(),
            RequirementsError::Editable { .. }
        ));
        assert!(matches!(
            parse_str("--frobnicate", "r.txt").unwrap_err(),
            RequirementsError::UnknownOption { .. }
        ));
        let c = parse_str(
            "--require-hashes\n--no-binary :all:\n--pre\n--prefer-binary\n-r a.txt\n-cb.txt\n--constraint=c.txt",
            "r.txt",
        )
        .unwrap();
        assert!(c.require_hashes);
        assert_eq!(c.includes.len(), 3);
        assert!(c.includes[1].constraint);
        assert_eq!(c.includes[1].path, "b.txt");
    }

    #[test]
    fn env_vars_refused() {
        let e = parse_str("foo==${VERSION}", "r.txt").unwrap_err();
        assert!(matches!(e, RequirementsError::EnvVar { .. }));
        assert!(e.to_string().contains("${VERSION}"));
        // lower-case is not expanded by pip either: then it is just an invalid version
        assert!(parse_str("foo==${v}", "r.txt").is_err());
    }

    #[test]
    fn vcs() {
        let r = one(&format!(
            "git+https://github.com/Org/Repo.git@{SHA}#egg=Repo-Name"
        ))
        .unwrap();
        assert_eq!(r.normalized, "repo-name");
        assert_eq!(
            r.source,
            Source::Vcs {
                url: "https://github.com/Org/Repo.git".into(),
                commit: CommitId::parse(SHA).unwrap(),
                subdirectory: None
            }
        );
        let r = one(&format!(
            "pkg[x] @ git+https://gitlab.com/a/b/c@{} ; python_version>'3'",
            SHA.to_uppercase()
        ))
        .unwrap();
        assert_eq!(r.extras, vec!["x"]);
        assert_eq!(r.marker.as_deref(), Some("python_version>'3'"));
        assert!(matches!(&r.source, Source::Vcs { commit, .. } if commit.as_str() == SHA));
        let r = one(&format!(
            "git+ssh://git@h.example/a/b.git@{SHA}#egg=b&subdirectory=sub/dir"
        ))
        .unwrap();
        assert!(
            matches!(&r.source, Source::Vcs { subdirectory: Some(s), url, .. } if s == "sub/dir" && url.starts_with("ssh://git@"))
        );
        for bad in [
            "git+https://h/a/b@main#egg=b".to_string(),
            "git+https://h/a/b@0123abc#egg=b".to_string(),
            "git+https://h/a/b#egg=b".to_string(),
            format!("git+https://h/a/b@{SHA}"),
            format!("hg+https://h/a/b@{SHA}#egg=b"),
            format!("git+https://u:p@h/a/b@{SHA}#egg=b"),
            format!("git+https://h/a/b@{SHA}#egg=b&subdirectory=../x"),
            format!("b @ git+https://h/a/b@{SHA}#egg=other"),
        ] {
            assert!(one(&bad).is_err(), "{bad}");
        }
        let e = one(&format!("git+file:///tmp/r@{SHA}#egg=b")).unwrap_err();
        assert!(matches!(e, RequirementsError::FileScheme { .. }));
    }

    #[test]
    fn urls() {
        let r = one(&format!(
            "foo @ https://h.example/d/foo-1.0.tar.gz#sha256={H1}"
        ))
        .unwrap();
        assert_eq!(
            r.source,
            Source::Url {
                url: "https://h.example/d/foo-1.0.tar.gz".into(),
                hash: parse_hash(&format!("sha256:{H1}")).unwrap(),
                extension: ".tar.gz"
            }
        );
        let r = one(&format!(
            "foo @ https://h.example/foo-1.0.zip --hash=sha256:{H1}"
        ))
        .unwrap();
        assert!(matches!(
            r.source,
            Source::Url {
                extension: ".zip",
                ..
            }
        ));
        let r = one(&format!(
            "https://h.example/foo-1.0.tgz#egg=foo&cachito_hash=sha256:{H1}"
        ))
        .unwrap();
        assert_eq!(r.normalized, "foo");
        let r = one(&format!("https://h.example/Foo-1.0.tar.gz#sha256={H1}")).unwrap();
        assert_eq!(r.name, "Foo");
        for bad in [
            "foo @ https://h/foo-1.0.tar.gz".to_string(),
            format!("foo @ https://h/foo-1.0-py3-none-any.whl#sha256={H1}"),
            format!("foo @ ftp://h/foo-1.0.tar.gz#sha256={H1}"),
            format!("foo @ https://u:p@h/foo-1.0.tar.gz#sha256={H1}"),
            "foo @ https://h/foo-1.0.tar.gz#sha256=abc".to_string(),
        ] {
            assert!(one(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_scheme() {
        for l in [
            "foo @ file:///tmp/foo-1.0.tar.gz",
            "file:///tmp/foo-1.0.tar.gz",
            "./dist/foo-1.0.tar.gz",
            "../foo",
            "/abs/foo-1.0-py3-none-any.whl",
            "foo-1.0.tar.gz",
            "sub/dir",
        ] {
            let e = one(l).unwrap_err();
            assert!(
                matches!(e, RequirementsError::FileScheme { .. }),
                "{l}: {e}"
            );
            assert!(e
                .to_string()
                .starts_with("Direct references with 'file' scheme are not supported"));
        }
    }

    #[test]
    fn paths() {
        let p = |s: &str| RepoPath::parse(s).unwrap();
        assert_eq!(
            check_requested_path(&p("sub"), "req.txt").unwrap(),
            p("sub/req.txt")
        );
        assert_eq!(
            check_requested_path(&p("a/b"), "../c.txt").unwrap(),
            p("a/c.txt")
        );
        assert_eq!(
            check_requested_path(&p("."), "./x/./y.txt").unwrap(),
            p("x/y.txt")
        );
        assert_eq!(
            check_requested_path(&p("."), "../../x")
                .unwrap_err()
                .to_string(),
            "Following requirement file has an invalid path: ../../x"
        );
        assert!(check_requested_path(&p("."), "/etc/passwd").is_err());
        assert!(check_requested_path(&p("a"), "../../x").is_err());
    }

    fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, c) in files {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, c).unwrap();
        }
        d
    }

    #[test]
    fn includes() {
        let d = repo(&[
            (
                "requirements.txt",
                "a==1\n-r sub/more.txt\n-c constraints.txt\n",
            ),
            ("sub/more.txt", "b==2\n-r ../common.txt\n"),
            ("common.txt", "c==3\n"),
            ("constraints.txt", "d==4\n"),
        ]);
        let p = load(d.path(), "requirements.txt").unwrap();
        let names: Vec<_> = p
            .requirements
            .iter()
            .map(|r| (r.normalized.as_str(), r.constraint, r.file.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("a", false, "requirements.txt"),
                ("b", false, "sub/more.txt"),
                ("c", false, "common.txt"),
                ("d", true, "constraints.txt")
            ]
        );
        assert_eq!(p.files.len(), 4);
        assert!(!p.require_hashes);
    }

    #[test]
    fn include_cycles_and_escapes() {
        let d = repo(&[("a.txt", "-r b.txt\n"), ("b.txt", "-r ./a.txt\n")]);
        let e = load(d.path(), "a.txt").unwrap_err();
        assert!(matches!(e, RequirementsError::Cycle { .. }), "{e}");
        let d = repo(&[("a.txt", "-r https://h/r.txt\n")]);
        assert_eq!(
            load(d.path(), "a.txt").unwrap_err(),
            RequirementsError::InvalidPath("https://h/r.txt".into())
        );
        assert!(e.to_string().contains("a.txt -> b.txt -> a.txt"));
        let d = repo(&[("a.txt", "-r ../outside.txt\n")]);
        let e = load(d.path(), "a.txt").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Following requirement file has an invalid path: ../outside.txt"
        );
        let d = repo(&[("a.txt", "-r /etc/passwd\n")]);
        assert!(matches!(
            load(d.path(), "a.txt").unwrap_err(),
            RequirementsError::InvalidPath(_)
        ));
        let d = repo(&[("a.txt", "-r missing.txt\n")]);
        assert!(matches!(
            load(d.path(), "a.txt").unwrap_err(),
            RequirementsError::InvalidPath(_)
        ));
        let d = repo(&[("a.txt", "-r sub\n"), ("sub/x", "")]);
        assert!(load(d.path(), "a.txt").is_err());
        let d = repo(&[("a.txt", "\u{ff}")]);
        std::fs::write(d.path().join("a.txt"), [0xff, 0xfe]).unwrap();
        assert!(matches!(
            load(d.path(), "a.txt").unwrap_err(),
            RequirementsError::NotUtf8(_)
        ));
    }

    #[cfg(unix)]
    #[test]
    fn symlink_escape() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("x.txt"), "a==1\n").unwrap();
        let d = repo(&[("a.txt", "-r link.txt\n")]);
        std::os::unix::fs::symlink(outside.path().join("x.txt"), d.path().join("link.txt"))
            .unwrap();
        assert!(matches!(
            load(d.path(), "a.txt").unwrap_err(),
            RequirementsError::InvalidPath(_)
        ));
        assert!(matches!(
            load(d.path(), "link.txt").unwrap_err(),
            RequirementsError::InvalidPath(_)
        ));
    }

    #[test]
    fn hash_mode() {
        let d = repo(&[
            ("r.txt", &format!("a==1 --hash=sha256:{H1}\n-r more.txt\n")),
            ("more.txt", "b==2\n"),
        ]);
        let e = load(d.path(), "r.txt").unwrap_err();
        assert!(matches!(e, RequirementsError::MissingHash { ref text, .. } if text == "b==2"));
        let d = repo(&[("r.txt", "--require-hashes\na==1\n")]);
        assert!(load(d.path(), "r.txt").is_err());
        let d = repo(&[(
            "r.txt",
            &format!("--require-hashes\na==1 --hash=sha256:{H1}\nb @ https://h/b-1.tar.gz#sha256={H1}\ngit+https://h/x/y@{SHA}#egg=y\n"),
        )]);
        let p = load(d.path(), "r.txt").unwrap();
        assert!(p.require_hashes);
        assert_eq!(p.requirements.len(), 3);
    }

    #[test]
    fn package_files() {
        let d = repo(&[("requirements.txt", "a==1\n"), ("sub/req.txt", "b==1\n")]);
        let spec = common::PackageSpec {
            path: common::repo_path::RepoPath::root(),
            ..Default::default()
        };
        assert_eq!(
            files_for_package(d.path(), &spec).unwrap(),
            (vec![RepoPath::parse("requirements.txt").unwrap()], vec![])
        );
        let spec = common::PackageSpec {
            path: common::repo_path::RepoPath::parse("sub").unwrap(),
            requirements_files: Some(vec!["req.txt".into()]),
            requirements_build_files: Some(vec!["nope.txt".into()]),
        };
        assert_eq!(
            files_for_package(d.path(), &spec).unwrap_err().to_string(),
            "Following requirement file has an invalid path: sub/nope.txt"
        );
    }

    #[test]
    fn random_input_does_not_panic() {
        let alphabet: Vec<char> = "ab1.=<>!~;@#[](),-_ \t\n\\'\"$/{}:+*éß€𝄞".chars().collect();
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..3000 {
            let mut s = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let _ = parse_str(&s, "r.txt");
            let _ = parse_str(&format!("-{s}"), "r.txt");
            let _ = parse_str(&format!("a @ {s}"), "r.txt");
            let _ = parse_str(&format!("git+https://h/{s}"), "r.txt");
            let _ = crate::pkg_managers::pip::names::Version::parse(&s);
            let _ = crate::pkg_managers::pip::names::parse_sdist_filename(&s);
            let _ = crate::pkg_managers::pip::names::parse_wheel_filename(&s);
            let _ = crate::pkg_managers::pip::index::parse_project_page(
                s.as_bytes(),
                "text/html",
                "https://i/s/a/",
            );
            let _ = crate::pkg_managers::pip::index::parse_project_page(
                format!("<a href=\"{s}\">{s}</a>").as_bytes(),
                "text/html",
                "https://i/s/a/",
            );
            let _ = crate::pkg_managers::pip::metadata::from_setup_py(&s);
        }
        assert!(parse_str("-é", "r.txt").is_err());
        assert!(parse_str("-ré", "r.txt").is_ok_and(|c| c.includes[0].path == "é"));
    }

    #[test]
    fn malformed_input_does_not_panic() {
        for s in [
            "\\",
            "\\\\\n\\",
            "#",
            "a==1 '",
            "-r",
            "--hash=",
            "[",
            "@",
            "a @",
            "a[",
            "a==",
            ";",
            "a @ https://",
            "git+",
            "git+https://@",
            "é==1",
            "a==1 ; ",
            "http://",
            "-",
            "--",
            "a==1 -- x",
            "${",
            "${A",
            "a ; b",
        ] {
            let _ = parse_str(s, "r.txt");
        }
    }
}
