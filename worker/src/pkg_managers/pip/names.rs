//! Python package names (PEP 503/508), versions (PEP 440) and distribution file names
//! (sdists, PEP 427 wheels).

use common::{Classify, ErrorKind};
use std::cmp::Ordering;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamesError {
    #[error("'{0}' is not a valid Python package name")]
    InvalidName(String),
    #[error("'{0}' is not a valid PEP 440 version")]
    InvalidVersion(String),
    #[error("'{0}' is not a recognised Python distribution file name (expected a wheel or an sdist: .tar.gz, .zip, .tar.bz2, .tar.xz, .tgz, .tar)")]
    InvalidFilename(String),
}

impl Classify for NamesError {
    fn kind(&self) -> ErrorKind {
        match self {
            NamesError::InvalidFilename(_) => ErrorKind::InvalidFileFormat,
            _ => ErrorKind::InvalidRequestData,
        }
    }
}

pub use common::pypi::normalize_name;

/// PEP 508 name rule: ASCII letters/digits, with `.`, `_`, `-` inside.
pub fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 200
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Validate and normalize a package name.
pub fn checked_name(name: &str) -> Result<String, NamesError> {
    if is_valid_name(name) {
        Ok(normalize_name(name))
    } else {
        Err(NamesError::InvalidName(name.to_string()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PreKind {
    A,
    B,
    Rc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalSeg {
    Num(u64),
    Str(String),
}

/// A parsed PEP 440 version. Equality and ordering follow PEP 440 (`1.0 == 1.0.0`).
#[derive(Debug, Clone)]
pub struct Version {
    pub epoch: u64,
    pub release: Vec<u64>,
    pub pre: Option<(PreKind, u64)>,
    pub post: Option<u64>,
    pub dev: Option<u64>,
    pub local: Vec<LocalSeg>,
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    fn peek_at(&self, off: usize) -> Option<u8> {
        self.s.get(self.pos + off).copied()
    }
    fn eat_sep(&mut self) -> bool {
        if matches!(self.peek(), Some(b'-' | b'_' | b'.')) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn number(&mut self) -> Option<Result<u64, ()>> {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        if start == self.pos {
            return None;
        }
        let txt = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        Some(txt.parse::<u64>().map_err(|_| ()))
    }
    fn eat_word(&mut self, words: &[&str]) -> Option<usize> {
        for (i, w) in words.iter().enumerate() {
            if self.s[self.pos..].starts_with(w.as_bytes()) {
                self.pos += w.len();
                return Some(i);
            }
        }
        None
    }
    /// `[sep] <word> [sep] [digits]`, restoring the position when `word` is absent.
    fn labelled(&mut self, words: &[&str]) -> Result<Option<(usize, u64)>, ()> {
        let save = self.pos;
        self.eat_sep();
        let Some(which) = self.eat_word(words) else {
            self.pos = save;
            return Ok(None);
        };
        let before_sep = self.pos;
        let had_sep = self.eat_sep();
        let n = match self.number() {
            Some(n) => n?,
            None => {
                if had_sep {
                    self.pos = before_sep;
                }
                0
            }
        };
        Ok(Some((which, n)))
    }
}

impl Version {
    pub fn parse(input: &str) -> Result<Version, NamesError> {
        let err = || NamesError::InvalidVersion(input.to_string());
        let lower = input.trim().to_ascii_lowercase();
        if lower.is_empty() || lower.len() > 256 {
            return Err(err());
        }
        let mut c = Cursor {
            s: lower.as_bytes(),
            pos: 0,
        };
        if c.peek() == Some(b'v') {
            c.pos += 1;
        }
        let first = c.number().ok_or_else(err)?.map_err(|_| err())?;
        let mut epoch = 0;
        let mut release = vec![first];
        if c.peek() == Some(b'!') {
            c.pos += 1;
            epoch = first;
            release = vec![c.number().ok_or_else(err)?.map_err(|_| err())?];
        }
        while c.peek() == Some(b'.') && matches!(c.peek_at(1), Some(b'0'..=b'9')) {
            c.pos += 1;
            release.push(c.number().ok_or_else(err)?.map_err(|_| err())?);
        }
        let pre = c
            .labelled(&["preview", "alpha", "beta", "pre", "rc", "a", "b", "c"])
            .map_err(|_| err())?
            .map(|(w, n)| {
                let kind = match w {
                    1 | 5 => PreKind::A,
                    2 | 6 => PreKind::B,
                    _ => PreKind::Rc,
                };
                (kind, n)
            });
        let post = if c.peek() == Some(b'-') && matches!(c.peek_at(1), Some(b'0'..=b'9')) {
            c.pos += 1;
            Some(c.number().ok_or_else(err)?.map_err(|_| err())?)
        } else {
            c.labelled(&["post", "rev", "r"])
                .map_err(|_| err())?
                .map(|(_, n)| n)
        };
        let dev = c.labelled(&["dev"]).map_err(|_| err())?.map(|(_, n)| n);
        let mut local = Vec::new();
        if c.peek() == Some(b'+') {
            c.pos += 1;
            let rest = std::str::from_utf8(&c.s[c.pos..]).map_err(|_| err())?;
            for seg in rest.split(['-', '_', '.']) {
                if seg.is_empty() || !seg.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(err());
                }
                if seg.bytes().all(|b| b.is_ascii_digit()) {
                    local.push(LocalSeg::Num(seg.parse().map_err(|_| err())?));
                } else {
                    local.push(LocalSeg::Str(seg.to_string()));
                }
            }
            c.pos = c.s.len();
        }
        if c.pos != c.s.len() {
            return Err(err());
        }
        Ok(Version {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    /// The version without its local label.
    pub fn public(&self) -> Version {
        Version {
            local: Vec::new(),
            ..self.clone()
        }
    }

    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }

    /// Does this (file) version satisfy the pin `==pin`? PEP 440: trailing zeros are ignored
    /// and a pin without a local label matches any local label.
    pub fn matches_pin(&self, pin: &Version) -> bool {
        if pin.local.is_empty() {
            self.public() == *pin
        } else {
            self == pin
        }
    }

    fn trimmed_release(&self) -> &[u64] {
        let mut end = self.release.len();
        while end > 1 && self.release[end - 1] == 0 {
            end -= 1;
        }
        &self.release[..end]
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}!", self.epoch)?;
        }
        let rel: Vec<String> = self.release.iter().map(|n| n.to_string()).collect();
        f.write_str(&rel.join("."))?;
        if let Some((k, n)) = self.pre {
            let l = match k {
                PreKind::A => "a",
                PreKind::B => "b",
                PreKind::Rc => "rc",
            };
            write!(f, "{l}{n}")?;
        }
        if let Some(n) = self.post {
            write!(f, ".post{n}")?;
        }
        if let Some(n) = self.dev {
            write!(f, ".dev{n}")?;
        }
        if !self.local.is_empty() {
            let segs: Vec<String> = self
                .local
                .iter()
                .map(|s| match s {
                    LocalSeg::Num(n) => n.to_string(),
                    LocalSeg::Str(s) => s.clone(),
                })
                .collect();
            write!(f, "+{}", segs.join("."))?;
        }
        Ok(())
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        // pre key: dev-only releases sort before pre-releases; finals after them.
        fn pre_key(v: &Version) -> (i8, Option<(PreKind, u64)>) {
            match (v.pre, v.post, v.dev) {
                (None, None, Some(_)) => (-1, None),
                (None, _, _) => (1, None),
                (Some(p), _, _) => (0, Some(p)),
            }
        }
        fn post_key(v: &Version) -> (i8, u64) {
            v.post.map_or((-1, 0), |n| (0, n))
        }
        fn dev_key(v: &Version) -> (i8, u64) {
            v.dev.map_or((1, 0), |n| (0, n))
        }
        fn local_cmp(a: &[LocalSeg], b: &[LocalSeg]) -> Ordering {
            for (x, y) in a.iter().zip(b.iter()) {
                let o = match (x, y) {
                    (LocalSeg::Num(x), LocalSeg::Num(y)) => x.cmp(y),
                    (LocalSeg::Str(x), LocalSeg::Str(y)) => x.cmp(y),
                    (LocalSeg::Num(_), LocalSeg::Str(_)) => Ordering::Greater,
                    (LocalSeg::Str(_), LocalSeg::Num(_)) => Ordering::Less,
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            a.len().cmp(&b.len())
        }
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| self.trimmed_release().cmp(other.trimmed_release()))
            .then_with(|| pre_key(self).cmp(&pre_key(other)))
            .then_with(|| post_key(self).cmp(&post_key(other)))
            .then_with(|| dev_key(self).cmp(&dev_key(other)))
            .then_with(|| local_cmp(&self.local, &other.local))
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Version {}

/// Normalized string form of a version (`V1.0-1` -> `1.0.post1`).
pub fn normalize_version(v: &str) -> Result<String, NamesError> {
    Ok(Version::parse(v)?.to_string())
}

/// Source distribution archive extensions (longest first), as Cachito accepts them.
pub const SDIST_EXTENSIONS: &[&str] = &[".tar.gz", ".tar.bz2", ".tar.xz", ".zip", ".tgz", ".tar"];

/// The sdist extension of `filename` (case-insensitive), if any.
pub fn sdist_extension(filename: &str) -> Option<&'static str> {
    let lower = filename.to_ascii_lowercase();
    SDIST_EXTENSIONS
        .iter()
        .find(|e| lower.ends_with(*e) && lower.len() > e.len())
        .copied()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdistName {
    /// the name as written in the file name
    pub name: String,
    pub version: String,
    pub extension: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelName {
    pub name: String,
    pub version: String,
    pub build: Option<String>,
    pub python_tags: Vec<String>,
    pub abi_tags: Vec<String>,
    pub platform_tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DistFilename {
    Sdist(SdistName),
    Wheel(WheelName),
}

impl DistFilename {
    pub fn name(&self) -> &str {
        match self {
            DistFilename::Sdist(s) => &s.name,
            DistFilename::Wheel(w) => &w.name,
        }
    }
    pub fn version(&self) -> &str {
        match self {
            DistFilename::Sdist(s) => &s.version,
            DistFilename::Wheel(w) => &w.version,
        }
    }
    pub fn is_wheel(&self) -> bool {
        matches!(self, DistFilename::Wheel(_))
    }
}

fn plain_filename(f: &str) -> bool {
    !f.is_empty() && !f.contains(['/', '\\', '\0']) && f != "." && f != ".."
}

/// Parse `{name}-{ver}(-{build})?-{py}-{abi}-{plat}.whl`.
pub fn parse_wheel_filename(filename: &str) -> Result<WheelName, NamesError> {
    let err = || NamesError::InvalidFilename(filename.to_string());
    if !plain_filename(filename) {
        return Err(err());
    }
    let stem = filename
        .strip_suffix(".whl")
        .or_else(|| filename.strip_suffix(".WHL"))
        .ok_or_else(err)?;
    let parts: Vec<&str> = stem.split('-').collect();
    let (name, version, build, py, abi, plat) = match parts.as_slice() {
        [n, v, p, a, pl] => (*n, *v, None, *p, *a, *pl),
        [n, v, b, p, a, pl] => (*n, *v, Some(*b), *p, *a, *pl),
        _ => return Err(err()),
    };
    if !is_valid_name(name) || Version::parse(version).is_err() {
        return Err(err());
    }
    if let Some(b) = build {
        if !b.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(err());
        }
    }
    let tags = |t: &str| -> Result<Vec<String>, NamesError> {
        let v: Vec<String> = t.split('.').map(str::to_string).collect();
        if v.iter().any(|s| s.is_empty()) {
            return Err(err());
        }
        Ok(v)
    };
    Ok(WheelName {
        name: name.to_string(),
        version: version.to_string(),
        build: build.map(str::to_string),
        python_tags: tags(py)?,
        abi_tags: tags(abi)?,
        platform_tags: tags(plat)?,
    })
}

/// Parse `{name}-{version}{ext}`; the split is at the last `-` followed by a valid version.
/// Prefer [`sdist_version_for`] when the project name is known (legacy names/versions with `-`).
pub fn parse_sdist_filename(filename: &str) -> Result<SdistName, NamesError> {
    let err = || NamesError::InvalidFilename(filename.to_string());
    if !plain_filename(filename) {
        return Err(err());
    }
    let ext = sdist_extension(filename).ok_or_else(err)?;
    let stem = &filename[..filename.len() - ext.len()];
    let mut idx = stem.len();
    while let Some(i) = stem[..idx].rfind('-') {
        let (n, v) = (&stem[..i], &stem[i + 1..]);
        if is_valid_name(n) && Version::parse(v).is_ok() {
            return Ok(SdistName {
                name: n.to_string(),
                version: v.to_string(),
                extension: ext,
            });
        }
        idx = i;
    }
    Err(err())
}

/// If `filename` is an sdist of project `name` (compared normalized), its version string.
pub fn sdist_version_for(filename: &str, name: &str) -> Option<(String, &'static str)> {
    if !plain_filename(filename) {
        return None;
    }
    let ext = sdist_extension(filename)?;
    let stem = &filename[..filename.len() - ext.len()];
    let want = normalize_name(name);
    for (i, _) in stem.match_indices('-') {
        let (n, v) = (&stem[..i], &stem[i + 1..]);
        if normalize_name(n) == want && Version::parse(v).is_ok() {
            return Some((v.to_string(), ext));
        }
    }
    None
}

/// Classify a file of project `name`: wheel or sdist with its version; None if it is neither
/// or belongs to another project.
pub fn parse_dist_filename_for(filename: &str, name: &str) -> Option<DistFilename> {
    let want = normalize_name(name);
    if filename.to_ascii_lowercase().ends_with(".whl") {
        let w = parse_wheel_filename(filename).ok()?;
        return (normalize_name(&w.name) == want).then_some(DistFilename::Wheel(w));
    }
    let (version, extension) = sdist_version_for(filename, name)?;
    let name_len = filename.len() - extension.len() - version.len() - 1;
    Some(DistFilename::Sdist(SdistName {
        name: filename[..name_len].to_string(),
        version,
        extension,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn names() {
        assert_eq!(normalize_name("My.Pkg__x--y"), "my-pkg-x-y");
        assert_eq!(normalize_name("PyYAML"), "pyyaml");
        assert!(is_valid_name("a"));
        assert!(is_valid_name("zope.interface"));
        assert!(!is_valid_name("-a"));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name("../x"));
        assert!(!is_valid_name(""));
        assert!(checked_name("a/b").is_err());
        assert_eq!(checked_name("Foo_Bar").unwrap(), "foo-bar");
    }

    #[test]
    fn version_normalization() {
        for (i, o) in [
            ("1.0", "1.0"),
            ("v1.0", "1.0"),
            ("V1.0-1", "1.0.post1"),
            ("1.0rev2", "1.0.post2"),
            ("1.0r", "1.0.post0"),
            ("1.0alpha1", "1.0a1"),
            ("1.0-beta.2", "1.0b2"),
            ("1.0c1", "1.0rc1"),
            ("1.0pre", "1.0rc0"),
            ("1.0preview3", "1.0rc3"),
            ("1.0a", "1.0a0"),
            ("1!2.0.DEV3", "1!2.0.dev3"),
            ("1.0-dev", "1.0.dev0"),
            ("1.0.post1.dev2", "1.0.post1.dev2"),
            ("1.0+Ubuntu-1_2", "1.0+ubuntu.1.2"),
            ("01.002", "1.2"),
            (" 1.0 ", "1.0"),
            ("1.0_a_1", "1.0a1"),
            ("2024.01.15", "2024.1.15"),
        ] {
            assert_eq!(normalize_version(i).unwrap(), o, "{i}");
        }
        for bad in [
            "",
            "abc",
            "1.0.",
            "1..0",
            "1.0+",
            "1.0+a..b",
            "1.0-",
            "1.0foo",
            "1.0 a",
            "!1",
            "1!",
            "1.0++a",
            "99999999999999999999999",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn version_ordering() {
        let ordered = [
            "1.0.dev0",
            "1.0a1.dev1",
            "1.0a1",
            "1.0b1",
            "1.0rc1",
            "1.0",
            "1.0+abc",
            "1.0+5",
            "1.0.post1.dev1",
            "1.0.post1",
            "1.1",
            "1!0.1",
        ];
        for w in ordered.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(v("1.0"), v("1.0.0"));
        assert_eq!(v("1.0a"), v("1.0a0"));
        assert!(v("1.0+local").matches_pin(&v("1.0")));
        assert!(v("1.0.0").matches_pin(&v("1")));
        assert!(!v("1.0").matches_pin(&v("1.0+x")));
        assert!(!v("1.0.post1").matches_pin(&v("1.0")));
        assert!(v("1.0rc1").is_prerelease());
    }

    #[test]
    fn wheel_filenames() {
        let w = parse_wheel_filename("my_pkg-1.0-py2.py3-none-any.whl").unwrap();
        assert_eq!(w.name, "my_pkg");
        assert_eq!(w.version, "1.0");
        assert_eq!(w.python_tags, vec!["py2", "py3"]);
        let w = parse_wheel_filename(
            "numpy-1.26.0-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        )
        .unwrap();
        assert_eq!(w.build.as_deref(), Some("1"));
        assert_eq!(w.platform_tags.len(), 2);
        for bad in [
            "x.whl",
            "a-1.0-py3-none.whl",
            "a-1.0-x-py3-none-any.whl",
            "a-notaversion-py3-none-any.whl",
            "../a-1.0-py3-none-any.whl",
            "a-1.0-py3-none-.whl",
        ] {
            assert!(parse_wheel_filename(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sdist_filenames() {
        let s = parse_sdist_filename("PyYAML-6.0.tar.gz").unwrap();
        assert_eq!((s.name.as_str(), s.version.as_str()), ("PyYAML", "6.0"));
        let s = parse_sdist_filename("python-dateutil-2.8.2.zip").unwrap();
        assert_eq!(s.name, "python-dateutil");
        assert_eq!(s.extension, ".zip");
        assert!(parse_sdist_filename("foo.tar.gz").is_err());
        assert!(parse_sdist_filename("foo-1.0.exe").is_err());
        assert!(parse_sdist_filename("a/b-1.0.tar.gz").is_err());
        assert_eq!(
            sdist_version_for("Foo.Bar-1.0-1.tar.gz", "foo-bar")
                .unwrap()
                .0,
            "1.0-1"
        );
        assert!(sdist_version_for("foobar-1.0.tar.gz", "foo").is_none());
        assert!(sdist_version_for("foo-bar-1.0.tar.gz", "foo").is_none());
        let d = parse_dist_filename_for("Foo_Bar-2.0.tar.gz", "foo.bar").unwrap();
        assert_eq!(
            (d.name(), d.version(), d.is_wheel()),
            ("Foo_Bar", "2.0", false)
        );
        let d = parse_dist_filename_for("foo_bar-2.0-py3-none-any.whl", "Foo-Bar").unwrap();
        assert!(d.is_wheel());
        assert!(parse_dist_filename_for("other-2.0-py3-none-any.whl", "foo").is_none());
        assert_eq!(sdist_extension("X-1.TAR.GZ"), Some(".tar.gz"));
    }
}
