//! Static project metadata (never executing code) and sdist `PKG-INFO` reading.

use crate::pkg_managers::pip::names::{is_valid_name, normalize_name, Version};
use common::{Classify, ErrorKind};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Largest PKG-INFO / project metadata file read (bytes).
pub const MAX_METADATA_SIZE: u64 = 1024 * 1024;
/// Most uncompressed bytes walked through while looking for PKG-INFO.
pub const MAX_ARCHIVE_BYTES: u64 = 1024 * 1024 * 1024;
/// Most archive entries looked at.
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("Could not resolve package metadata: {missing} (looked in pyproject.toml [project], setup.cfg [metadata] and literal setup() arguments in setup.py of {path})")]
    Missing { missing: String, path: String },
    #[error("The package name '{name}' found in {file} is not a valid Python package name")]
    InvalidName { name: String, file: String },
    #[error("The file {file} could not be parsed: {reason}")]
    Unparsable { file: String, reason: String },
    #[error("The sdist {file} does not contain a PKG-INFO file")]
    NoPkgInfo { file: String },
    #[error("The sdist {file} could not be read: {reason}")]
    BadArchive { file: String, reason: String },
    #[error("The sdist {file} is for {found_name} {found_version}, not {name} {version}")]
    Mismatch {
        file: String,
        name: String,
        version: String,
        found_name: String,
        found_version: String,
    },
}

impl Classify for MetadataError {
    fn kind(&self) -> ErrorKind {
        match self {
            MetadataError::Missing { .. }
            | MetadataError::InvalidName { .. }
            | MetadataError::Unparsable { .. } => ErrorKind::InvalidRepoStructure,
            _ => ErrorKind::InvalidFileFormat,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectMetadata {
    pub name: String,
    pub version: String,
}

fn read_small(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_METADATA_SIZE {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// `(name, version)` from `pyproject.toml` text (`[project]`; a dynamic version is absent).
pub fn from_pyproject(text: &str) -> Result<(Option<String>, Option<String>), String> {
    let v: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let Some(project) = v.get("project").and_then(|p| p.as_table()) else {
        return Ok((None, None));
    };
    let s = |k: &str| project.get(k).and_then(|x| x.as_str()).map(str::to_string);
    Ok((s("name"), s("version")))
}

/// Minimal INI reader: section -> key -> value (continuation lines joined).
fn parse_ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section = String::new();
    let mut last_key: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(k) = &last_key {
                if let Some(v) = out.get_mut(&section).and_then(|s| s.get_mut(k)) {
                    v.push('\n');
                    v.push_str(trimmed);
                }
            }
            continue;
        }
        if let Some(s) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.trim().to_string();
            last_key = None;
            continue;
        }
        if let Some(i) = trimmed.find(['=', ':']) {
            let k = trimmed[..i].trim().to_ascii_lowercase().replace('-', "_");
            let v = trimmed[i + 1..].trim().to_string();
            out.entry(section.clone()).or_default().insert(k.clone(), v);
            last_key = Some(k);
        }
    }
    out
}

/// `(name, version)` from `setup.cfg` `[metadata]` (`attr:`/`file:` versions are absent).
pub fn from_setup_cfg(text: &str) -> (Option<String>, Option<String>) {
    let ini = parse_ini(text);
    let Some(m) = ini.get("metadata") else {
        return (None, None);
    };
    let literal = |k: &str| {
        m.get(k)
            .filter(|v| !v.is_empty() && !v.starts_with("attr:") && !v.starts_with("file:"))
            .cloned()
    };
    (literal("name"), literal("version"))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Punct(char),
    Other,
}

/// A small Python tokenizer: identifiers, plain string literals (with adjacent literal
/// concatenation left to the caller), punctuation; comments skipped. f-strings/bytes -> Other.
fn tokenize(src: &str) -> Vec<(Tok, bool)> {
    // (token, at line start with no indentation)
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line_start = true;
    let mut depth = 0i32;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line_start = true;
            i += 1;
            continue;
        }
        if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '\\' && chars.get(i + 1) == Some(&'\n') {
            i += 2;
            continue;
        }
        if c.is_whitespace() {
            if line_start && depth == 0 {
                line_start = false;
                // indented line: mark tokens as not top-level
                while i < chars.len() && chars[i] != '\n' && chars[i].is_whitespace() {
                    i += 1;
                }
                if i < chars.len() && chars[i] != '\n' && chars[i] != '#' {
                    out.push((Tok::Other, false));
                }
                continue;
            }
            i += 1;
            continue;
        }
        let top = line_start && depth == 0;
        line_start = false;
        if c.is_alphabetic() || c == '_' {
            let s = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[s..i].iter().collect();
            // string prefixes
            if i < chars.len() && (chars[i] == '"' || chars[i] == '\'') && word.len() <= 2 {
                let lw = word.to_ascii_lowercase();
                let (tok, ni) = read_string(&chars, i);
                i = ni;
                out.push((
                    if lw == "r" || lw == "u" {
                        tok
                    } else {
                        Tok::Other
                    },
                    top,
                ));
                continue;
            }
            out.push((Tok::Ident(word), top));
            continue;
        }
        if c == '"' || c == '\'' {
            let (tok, ni) = read_string(&chars, i);
            i = ni;
            out.push((tok, top));
            continue;
        }
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = (depth - 1).max(0),
            _ => {}
        }
        out.push((Tok::Punct(c), top));
        i += 1;
    }
    out
}

fn read_string(chars: &[char], start: usize) -> (Tok, usize) {
    let q = chars[start];
    let triple = chars.get(start + 1) == Some(&q) && chars.get(start + 2) == Some(&q);
    let mut i = start + if triple { 3 } else { 1 };
    let mut s = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            if let Some(&n) = chars.get(i + 1) {
                s.push(n);
            }
            i += 2;
            continue;
        }
        if triple {
            if c == q && chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q) {
                return (Tok::Str(s), i + 3);
            }
        } else if c == q {
            return (Tok::Str(s), i + 1);
        } else if c == '\n' {
            return (Tok::Other, i);
        }
        s.push(c);
        i += 1;
    }
    (Tok::Other, i)
}

/// `(name, version)` from the literal arguments of the `setup(...)` call in `setup.py`
/// (string literals or top-level `NAME = "..."` constants); never executes anything.
pub fn from_setup_py(src: &str) -> (Option<String>, Option<String>) {
    let toks = tokenize(src);
    let mut consts: BTreeMap<String, String> = BTreeMap::new();
    for w in toks.windows(4) {
        if let [(Tok::Ident(n), true), (Tok::Punct('='), _), (Tok::Str(v), _), (next, _)] = w {
            if !matches!(next, Tok::Str(_) | Tok::Punct('.' | '+' | '%' | '[' | '(')) {
                consts.insert(n.clone(), v.clone());
            }
        }
    }
    let mut name = None;
    let mut version = None;
    for (i, (t, _)) in toks.iter().enumerate() {
        if *t != Tok::Ident("setup".into())
            || toks.get(i + 1).map(|t| &t.0) != Some(&Tok::Punct('('))
        {
            continue;
        }
        let mut depth = 0;
        let mut j = i + 1;
        while j < toks.len() {
            match &toks[j].0 {
                Tok::Punct('(' | '[' | '{') => depth += 1,
                Tok::Punct(')' | ']' | '}') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                Tok::Ident(k)
                    if depth == 1
                        && (k == "name" || k == "version")
                        && toks.get(j + 1).map(|t| &t.0) == Some(&Tok::Punct('=')) =>
                {
                    let after = toks.get(j + 3).map(|t| &t.0);
                    let ends = matches!(after, None | Some(Tok::Punct(',' | ')')));
                    let val = match toks.get(j + 2).map(|t| &t.0) {
                        Some(Tok::Str(s)) if ends => Some(s.clone()),
                        Some(Tok::Ident(c)) if ends => consts.get(c).cloned(),
                        _ => None,
                    };
                    if k == "name" {
                        name = name.or(val);
                    } else {
                        version = version.or(val);
                    }
                }
                _ => {}
            }
            j += 1;
        }
        if name.is_some() || version.is_some() {
            break;
        }
    }
    (name, version)
}

/// The name and version of a project that declares none: most applications pinned with
/// `requirements.txt` have no pyproject.toml, setup.cfg or setup.py.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    pub name: String,
    pub version: String,
}

impl Fallback {
    /// The repository's name (the last segment of its URL without `.git`, PEP 503-normalized;
    /// `-<subpath>` added for a package below the root, so two packages never share a name)
    /// and `0.0.0+<first 7 hex digits of the commit>`.
    pub fn from_repository(repo_url: &str, commit: &str, package_path: &str) -> Self {
        let trimmed = repo_url.trim_end_matches('/');
        let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
        let mut name = trimmed
            .rsplit(['/', ':'])
            .next()
            .unwrap_or_default()
            .to_string();
        if package_path != "." && !package_path.is_empty() {
            name = format!("{name}-{}", package_path.replace('/', "-"));
        }
        Self {
            name: normalize_name(&name),
            version: format!("0.0.0+{}", &commit[..commit.len().min(7)]),
        }
    }
}

/// Read a project's name and version from `dir` (pyproject.toml, then setup.cfg, then setup.py),
/// taking what none of them declares from `fallback`. `display_path` is used in messages
/// (repository-relative).
pub fn project_metadata(
    dir: &Path,
    display_path: &str,
    fallback: &Fallback,
) -> Result<ProjectMetadata, MetadataError> {
    let mut name = None;
    let mut version = None;
    let mut name_file = String::new();
    let mut take = |n: Option<String>, v: Option<String>, file: &str| {
        if name.is_none() && n.is_some() {
            name = n;
            name_file = file.to_string();
        }
        if version.is_none() {
            version = v;
        }
    };
    if let Some(t) = read_small(&dir.join("pyproject.toml")) {
        let (n, v) = from_pyproject(&t).map_err(|reason| MetadataError::Unparsable {
            file: format!("{display_path}/pyproject.toml"),
            reason,
        })?;
        take(n, v, "pyproject.toml");
    }
    if let Some(t) = read_small(&dir.join("setup.cfg")) {
        let (n, v) = from_setup_cfg(&t);
        take(n, v, "setup.cfg");
    }
    if let Some(t) = read_small(&dir.join("setup.py")) {
        let (n, v) = from_setup_py(&t);
        take(n, v, "setup.py");
    }
    if name.is_none() && is_valid_name(&fallback.name) {
        tracing::info!(
            path = display_path,
            name = %fallback.name,
            "no package name in pyproject.toml, setup.cfg or setup.py: using the repository's name"
        );
        name = Some(fallback.name.clone());
        name_file = "the repository URL".into();
    }
    if version.is_none() {
        tracing::info!(
            path = display_path,
            version = %fallback.version,
            "no package version in pyproject.toml, setup.cfg or setup.py: using 0.0.0+<commit>"
        );
        version = Some(fallback.version.clone());
    }
    let mut missing = Vec::new();
    if name.is_none() {
        missing.push("name");
    }
    if version.is_none() {
        missing.push("version");
    }
    match (name, version) {
        (Some(n), Some(v)) => {
            if !is_valid_name(&n) {
                return Err(MetadataError::InvalidName {
                    name: n,
                    file: format!("{display_path}/{name_file}"),
                });
            }
            Ok(ProjectMetadata {
                name: n,
                version: v.trim().to_string(),
            })
        }
        _ => Err(MetadataError::Missing {
            missing: missing.join(", "),
            path: display_path.to_string(),
        }),
    }
}

/// Fields of an sdist's PKG-INFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkgInfo {
    pub name: String,
    pub version: String,
    pub requires_python: Option<String>,
    /// What the SBOM takes of it.
    pub core: CoreMetadata,
}

/// What the SBOM takes of a distribution's core metadata (a wheel's METADATA, an sdist's
/// PKG-INFO).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreMetadata {
    /// `License-Expression` (PEP 639), else a `License` that names a licence (one line, not
    /// `UNKNOWN`; a licence's whole text is no name).
    pub license: Option<String>,
    /// Every `Requires-Dist`, as written.
    pub requires_dist: Vec<String>,
}

/// Longest `License` kept as a licence's name.
const MAX_LICENSE_NAME: usize = 200;

/// [`CoreMetadata`] of core metadata headers (the block before the first blank line).
pub fn parse_core_metadata(text: &str) -> CoreMetadata {
    let mut license_expression = None;
    let mut license: Option<String> = None;
    let mut requires_dist = Vec::new();
    // the header the last line belonged to: a continuation line makes `License` multi-line
    let mut last = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if last == "license" {
                license = None;
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        last = key.trim().to_ascii_lowercase();
        let value = value.trim();
        match last.as_str() {
            "license-expression" if !value.is_empty() => {
                license_expression.get_or_insert_with(|| value.to_string());
            }
            "license" => {
                let names_one = !value.is_empty()
                    && value.len() <= MAX_LICENSE_NAME
                    && !value.eq_ignore_ascii_case("UNKNOWN");
                license = names_one.then(|| value.to_string());
            }
            "requires-dist" if !value.is_empty() => requires_dist.push(value.to_string()),
            _ => {}
        }
    }
    CoreMetadata {
        license: license_expression.or(license),
        requires_dist,
    }
}

/// A wheel's `<name>-<version>.dist-info/METADATA`, read from the zip's directory and that one
/// entry (bounded): `file` names it in errors.
pub fn read_wheel_metadata(path: &Path, file: &str) -> Result<CoreMetadata, MetadataError> {
    let bad = |reason: String| MetadataError::BadArchive {
        file: file.to_string(),
        reason,
    };
    let f = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut z = zip::ZipArchive::new(f).map_err(|e| bad(e.to_string()))?;
    let found = (0..z.len().min(MAX_ENTRIES)).find(|&i| {
        let name = z.name_for_index(i).unwrap_or("");
        match name.split_once('/') {
            Some((dir, rest)) => dir.ends_with(".dist-info") && rest == "METADATA",
            None => false,
        }
    });
    let i = found.ok_or_else(|| bad("no .dist-info/METADATA".to_string()))?;
    let entry = z.by_index(i).map_err(|e| bad(e.to_string()))?;
    Ok(parse_core_metadata(&read_bounded(entry).map_err(bad)?))
}

/// The core metadata of a distribution file by its name: a wheel's METADATA, an sdist's
/// PKG-INFO; `None` for anything else.
pub fn read_core_metadata(path: &Path, file: &str) -> Option<Result<CoreMetadata, MetadataError>> {
    let lower = file.to_ascii_lowercase();
    if lower.ends_with(".whl") {
        Some(read_wheel_metadata(path, file))
    } else if [".tar.gz", ".tgz", ".tar", ".zip"]
        .iter()
        .any(|ext| lower.ends_with(ext))
    {
        Some(read_sdist_pkg_info_named(path, file).map(|info| info.core))
    } else {
        None
    }
}

/// Parse RFC 822-style core metadata headers (stops at the first blank line).
pub fn parse_pkg_info(text: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(k) = &last {
                if let Some(v) = out.get_mut(k) {
                    v.push('\n');
                    v.push_str(line.trim());
                }
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            out.entry(k.clone()).or_insert_with(|| v.trim().to_string());
            last = Some(k);
        }
    }
    out
}

fn is_pkg_info_path(p: &str) -> bool {
    let p = p.trim_start_matches("./");
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    parts.len() == 2 && parts[1] == "PKG-INFO" && parts[0] != ".."
}

/// Read PKG-INFO (top-level directory of the sdist) from a `.tar.gz`/`.tgz`/`.tar` or `.zip`.
/// Nothing is extracted to disk; reads are bounded.
pub fn read_sdist_pkg_info(path: &Path) -> Result<PkgInfo, MetadataError> {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    read_sdist_pkg_info_named(path, &file)
}

/// [`read_sdist_pkg_info`] for a file stored under another name (a download in progress):
/// `file` is the sdist's real file name, which decides its format.
pub fn read_sdist_pkg_info_named(path: &Path, file: &str) -> Result<PkgInfo, MetadataError> {
    let file = file.to_string();
    let bad = |reason: String| MetadataError::BadArchive {
        file: file.clone(),
        reason,
    };
    let lower = file.to_ascii_lowercase();
    let f = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let text = if lower.ends_with(".zip") {
        let mut z = zip::ZipArchive::new(f).map_err(|e| bad(e.to_string()))?;
        let mut found = None;
        for i in 0..z.len().min(MAX_ENTRIES) {
            let name = z.name_for_index(i).unwrap_or("").to_string();
            if is_pkg_info_path(&name) {
                found = Some(i);
                break;
            }
        }
        let i = found.ok_or_else(|| MetadataError::NoPkgInfo { file: file.clone() })?;
        let entry = z.by_index(i).map_err(|e| bad(e.to_string()))?;
        read_bounded(entry).map_err(bad)?
    } else if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") || lower.ends_with(".tar") {
        let reader: Box<dyn Read> = if lower.ends_with(".tar") {
            Box::new(f)
        } else {
            Box::new(flate2::read::GzDecoder::new(f))
        };
        let mut ar = tar::Archive::new(reader.take(MAX_ARCHIVE_BYTES));
        let mut text = None;
        for (n, entry) in ar.entries().map_err(|e| bad(e.to_string()))?.enumerate() {
            if n >= MAX_ENTRIES {
                break;
            }
            let entry = entry.map_err(|e| bad(e.to_string()))?;
            let p = entry
                .path()
                .map_err(|e| bad(e.to_string()))?
                .to_string_lossy()
                .into_owned();
            if entry.header().entry_type().is_file() && is_pkg_info_path(&p) {
                text = Some(read_bounded(entry).map_err(bad)?);
                break;
            }
        }
        text.ok_or_else(|| MetadataError::NoPkgInfo { file: file.clone() })?
    } else {
        return Err(bad(
            "only .tar.gz, .tgz, .tar and .zip sdists can be inspected".to_string(),
        ));
    };
    let h = parse_pkg_info(&text);
    let name = h.get("name").cloned().unwrap_or_default();
    let version = h.get("version").cloned().unwrap_or_default();
    if name.is_empty() || version.is_empty() {
        return Err(bad("PKG-INFO has no Name or Version".to_string()));
    }
    Ok(PkgInfo {
        name,
        version,
        requires_python: h.get("requires-python").cloned().filter(|s| !s.is_empty()),
        core: parse_core_metadata(&text),
    })
}

fn read_bounded(r: impl Read) -> Result<String, String> {
    let mut buf = Vec::new();
    r.take(MAX_METADATA_SIZE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    if buf.len() as u64 > MAX_METADATA_SIZE {
        return Err("PKG-INFO is too large".into());
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Check that an sdist's PKG-INFO names the expected project and version.
pub fn check_sdist(path: &Path, name: &str, version: &str) -> Result<PkgInfo, MetadataError> {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    check_sdist_named(path, &file, name, version)
}

/// [`check_sdist`] for a file stored under another name; `file` is the sdist's file name.
pub fn check_sdist_named(
    path: &Path,
    file: &str,
    name: &str,
    version: &str,
) -> Result<PkgInfo, MetadataError> {
    let info = read_sdist_pkg_info_named(path, file)?;
    let same_version = match (Version::parse(&info.version), Version::parse(version)) {
        (Ok(a), Ok(b)) => a == b,
        _ => info.version.eq_ignore_ascii_case(version),
    };
    if normalize_name(&info.name) != normalize_name(name) || !same_version {
        return Err(MetadataError::Mismatch {
            file: file.to_string(),
            name: name.into(),
            version: version.into(),
            found_name: info.name,
            found_version: info.version,
        });
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyproject() {
        let t = "[project]\nname = \"my-app\"\nversion = \"1.2.3\"\n";
        assert_eq!(
            from_pyproject(t).unwrap(),
            (Some("my-app".into()), Some("1.2.3".into()))
        );
        let t = "[project]\nname = \"x\"\ndynamic = [\"version\"]\n";
        assert_eq!(from_pyproject(t).unwrap(), (Some("x".into()), None));
        assert!(from_pyproject("[project\n").is_err());
        assert_eq!(from_pyproject("[tool.x]\na=1").unwrap(), (None, None));
    }

    #[test]
    fn setup_cfg() {
        let t = "[metadata]\nname = foo\nversion = attr: foo.__version__\n[options]\nx=1\n";
        assert_eq!(from_setup_cfg(t), (Some("foo".into()), None));
        let t = "# c\n[metadata]\nname: bar\nversion=2.0\n";
        assert_eq!(from_setup_cfg(t), (Some("bar".into()), Some("2.0".into())));
    }

    #[test]
    fn setup_py() {
        let src = r#"
import setuptools
NAME = "cool-app"
VERSION = '0.1.0'
OTHER = "x" + "y"
def f():
    NAME = "shadow"
setuptools.setup(
    name=NAME,  # comment (with parens
    version=VERSION,
    install_requires=["a==1", dict(x=1)],
    description="""long ) text""",
)
"#;
        assert_eq!(
            from_setup_py(src),
            (Some("cool-app".into()), Some("0.1.0".into()))
        );
        let src = "from setuptools import setup\nsetup(name='a', version=get_version())\n";
        assert_eq!(from_setup_py(src), (Some("a".into()), None));
        let src = "setup(name=f'x{1}', version='1' + '2')";
        assert_eq!(from_setup_py(src), (None, None));
        for s in [
            "setup(",
            "setup(name=",
            "'''",
            "setup(name='x",
            "((((",
            "\\",
        ] {
            let _ = from_setup_py(s);
        }
    }

    #[test]
    fn fallback_from_the_repository() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let f = Fallback::from_repository("https://github.com/Org/My_App.git", sha, ".");
        assert_eq!(f.name, "my-app");
        assert_eq!(f.version, "0.0.0+0123456");
        assert_eq!(
            Fallback::from_repository("git@host:org/svc.git/", sha, "tools/py").name,
            "svc-tools-py"
        );
        assert_eq!(
            Fallback::from_repository("/srv/repos/app", sha, ".").name,
            "app"
        );
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            project_metadata(d.path(), ".", &f).unwrap(),
            ProjectMetadata {
                name: "my-app".into(),
                version: "0.0.0+0123456".into()
            }
        );
        // a name the repository URL cannot give is still an error
        let bad = Fallback {
            name: "-".into(),
            version: "1".into(),
        };
        let e = project_metadata(d.path(), ".", &bad).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("Could not resolve package metadata: name"));
    }

    #[test]
    fn project_dir() {
        let d = tempfile::tempdir().unwrap();
        let f = Fallback {
            name: "repo".into(),
            version: "0.0.0+abc".into(),
        };
        let project_metadata = |dir: &Path, p: &str| project_metadata(dir, p, &f);
        std::fs::write(
            d.path().join("pyproject.toml"),
            "[project]\nname='p'\ndynamic=['version']\n",
        )
        .unwrap();
        std::fs::write(d.path().join("setup.py"), "setup(version='3.0')").unwrap();
        assert_eq!(
            project_metadata(d.path(), ".").unwrap(),
            ProjectMetadata {
                name: "p".into(),
                version: "3.0".into()
            }
        );
        std::fs::write(
            d.path().join("pyproject.toml"),
            "[project]\nname='bad name'\nversion='1'\n",
        )
        .unwrap();
        assert!(matches!(
            project_metadata(d.path(), ".").unwrap_err(),
            MetadataError::InvalidName { .. }
        ));
    }

    #[test]
    fn pkg_info_tar_and_zip() {
        let d = tempfile::tempdir().unwrap();
        let pkg = "Metadata-Version: 2.1\nName: Foo_Bar\nVersion: 1.0\nRequires-Python: >=3.8\n\nbody: x\n";
        let tgz = d.path().join("Foo_Bar-1.0.tar.gz");
        crate::pkg_managers::pip::fixtures::write_tar_gz(
            &tgz,
            &[
                ("Foo_Bar-1.0/nested/PKG-INFO", b"Name: evil"),
                ("Foo_Bar-1.0/PKG-INFO", pkg.as_bytes()),
            ],
        )
        .unwrap();
        let info = check_sdist(&tgz, "foo-bar", "1.0.0").unwrap();
        assert_eq!(info.requires_python.as_deref(), Some(">=3.8"));
        assert!(matches!(
            check_sdist(&tgz, "foo-bar", "2.0").unwrap_err(),
            MetadataError::Mismatch { .. }
        ));
        let zp = d.path().join("foo-1.0.zip");
        crate::pkg_managers::pip::fixtures::write_zip(&zp, &[("foo-1.0/PKG-INFO", pkg.as_bytes())])
            .unwrap();
        assert_eq!(read_sdist_pkg_info(&zp).unwrap().name, "Foo_Bar");
        let none = d.path().join("n-1.tar.gz");
        crate::pkg_managers::pip::fixtures::write_tar_gz(&none, &[("n-1/setup.py", b"")]).unwrap();
        assert!(matches!(
            read_sdist_pkg_info(&none).unwrap_err(),
            MetadataError::NoPkgInfo { .. }
        ));
        let junk = d.path().join("j-1.tar.gz");
        std::fs::write(&junk, b"not gzip").unwrap();
        assert!(matches!(
            read_sdist_pkg_info(&junk).unwrap_err(),
            MetadataError::BadArchive { .. }
        ));
        let junk = d.path().join("j-1.zip");
        std::fs::write(&junk, b"PK\x03\x04junk").unwrap();
        assert!(read_sdist_pkg_info(&junk).is_err());
        assert!(read_sdist_pkg_info(&d.path().join("x.tar.bz2")).is_err());
    }

    #[test]
    fn pkg_info_headers() {
        let h = parse_pkg_info("Name: a\nSummary: x\n  more\nVersion: 1\n\nName: b\n");
        assert_eq!(h["name"], "a");
        assert_eq!(h["summary"], "x\nmore");
        assert_eq!(h["version"], "1");
    }

    #[test]
    fn core_metadata_licences_and_requirements() {
        let m = parse_core_metadata(
            "Metadata-Version: 2.4\nName: a\nLicense: MIT License\nLicense-Expression: MIT OR Apache-2.0\nRequires-Dist: b>=1\nRequires-Dist: c[x] ; extra == 'tests'\n\nRequires-Dist: not-a-header\n",
        );
        assert_eq!(m.license.as_deref(), Some("MIT OR Apache-2.0"));
        assert_eq!(m.requires_dist, vec!["b>=1", "c[x] ; extra == 'tests'"]);
        // the older field when it names a licence
        let legacy = |license: &str| {
            parse_core_metadata(&format!("Name: a\nLicense: {license}\nVersion: 1\n")).license
        };
        assert_eq!(legacy("BSD-3-Clause").as_deref(), Some("BSD-3-Clause"));
        assert_eq!(legacy("Some licence").as_deref(), Some("Some licence"));
        assert_eq!(legacy("UNKNOWN"), None);
        assert_eq!(legacy(""), None);
        assert_eq!(legacy(&"x".repeat(201)), None);
        // the licence's whole text is no name
        assert_eq!(
            legacy("Copyright (c) 2020\n        Permission is hereby granted"),
            None
        );
        assert_eq!(parse_core_metadata("Name: a\n"), CoreMetadata::default());
    }

    #[test]
    fn core_metadata_of_wheels_and_sdists() {
        use crate::pkg_managers::pip::fixtures::{build_sdist_with, build_wheel_with};
        let d = tempfile::tempdir().unwrap();
        let headers = [("License-Expression", "Apache-2.0")];
        let wheel =
            build_wheel_with(d.path(), "Foo.Bar", "1.0", &["baz==2"], None, &headers).unwrap();
        let m = read_core_metadata(&wheel.path, &wheel.filename)
            .unwrap()
            .unwrap();
        assert_eq!(m.license.as_deref(), Some("Apache-2.0"));
        assert_eq!(m.requires_dist, vec!["baz==2"]);
        let headers = [("License", "BSD")];
        let sdist = build_sdist_with(d.path(), "qux", "2.0", &[], None, &headers).unwrap();
        let info = check_sdist(&sdist.path, "qux", "2.0").unwrap();
        assert_eq!(info.core.license.as_deref(), Some("BSD"));
        assert_eq!(
            read_core_metadata(&sdist.path, &sdist.filename)
                .unwrap()
                .unwrap()
                .license
                .as_deref(),
            Some("BSD")
        );
        // a wheel without METADATA, something that is no archive, another kind of file
        let empty = d.path().join("e-1.0-py3-none-any.whl");
        crate::pkg_managers::pip::fixtures::write_zip(&empty, &[("e/__init__.py", b"")]).unwrap();
        assert!(read_wheel_metadata(&empty, "e-1.0-py3-none-any.whl").is_err());
        let junk = d.path().join("j-1.0-py3-none-any.whl");
        std::fs::write(&junk, b"junk").unwrap();
        assert!(read_core_metadata(&junk, "j-1.0-py3-none-any.whl")
            .unwrap()
            .is_err());
        assert!(read_core_metadata(&junk, "j-1.0.exe").is_none());
    }
}
