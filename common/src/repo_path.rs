//! A path inside the repository: the one checked type for request package paths, lockfile
//! references (`file:`, `path =`, `replace … => ../lib`, `-r other.txt`) and the files a package
//! manager reads. Lexically it is relative and normalized; on disk it is resolved through
//! symlinks and must stay inside the repository's root.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Relative, normalized, `/`-separated, never leaving the root; the root itself is `.`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RepoPath(
    /// Empty for the root, else `a/b` (no `.`, `..` or empty segments).
    String,
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoPathError {
    #[error("{0:?} is an absolute path")]
    Absolute(String),
    #[error("{0:?} leads outside the repository")]
    Outside(String),
    #[error("{0:?} is not a usable path (empty, NUL, backslash or not UTF-8)")]
    Invalid(String),
    #[error("{0:?} does not exist in the repository")]
    Missing(String),
}

impl RepoPath {
    pub fn root() -> Self {
        Self::default()
    }

    /// A path as a request or a user names it: relative, no `..` at all (Cachito refuses any
    /// `..`, even one that would stay inside); `.` and `""` are the root.
    pub fn parse(path: &str) -> Result<Self, RepoPathError> {
        if path.split('/').any(|seg| seg == "..") {
            return Err(RepoPathError::Outside(path.into()));
        }
        Self::root().join(path)
    }

    /// `rel` below this path, as a file inside the repository names another (`../lib`,
    /// `./vendor/x.tgz`): `..` may climb, but never above the root.
    pub fn join(&self, rel: &str) -> Result<Self, RepoPathError> {
        if rel.contains('\0') || rel.contains('\\') {
            return Err(RepoPathError::Invalid(rel.into()));
        }
        if rel.starts_with('/') {
            return Err(RepoPathError::Absolute(rel.into()));
        }
        let mut parts: Vec<&str> = if self.0.is_empty() {
            Vec::new()
        } else {
            self.0.split('/').collect()
        };
        for seg in rel.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(RepoPathError::Outside(rel.into()));
                    }
                }
                s => parts.push(s),
            }
        }
        Ok(Self(parts.join("/")))
    }

    /// A relative `Path` (for instance of an archive entry), with the same rules as `join`.
    pub fn from_path(path: &Path) -> Result<Self, RepoPathError> {
        let text = path
            .to_str()
            .ok_or_else(|| RepoPathError::Invalid(path.display().to_string()))?;
        if path.has_root() || matches!(path.components().next(), Some(Component::Prefix(_))) {
            return Err(RepoPathError::Absolute(text.into()));
        }
        Self::root().join(text)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// `.` for the root, else `a/b`.
    pub fn as_str(&self) -> &str {
        if self.0.is_empty() {
            "."
        } else {
            &self.0
        }
    }

    /// The directory this path is in (`None` for the root).
    pub fn parent(&self) -> Option<Self> {
        if self.0.is_empty() {
            return None;
        }
        Some(Self(
            self.0.rsplit_once('/').map(|(p, _)| p).unwrap_or("").into(),
        ))
    }

    /// The last segment (`None` for the root).
    pub fn file_name(&self) -> Option<&str> {
        (!self.0.is_empty()).then(|| self.0.rsplit('/').next().unwrap_or(&self.0))
    }

    /// How many segments deep (the root is 0).
    pub fn depth(&self) -> usize {
        if self.0.is_empty() {
            0
        } else {
            self.0.split('/').count()
        }
    }

    /// Where this path is below `root`, lexically (symlinks not followed).
    pub fn under(&self, root: &Path) -> PathBuf {
        if self.0.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&self.0)
        }
    }

    /// The file or directory on disk below `root`, following symlinks: it must exist and stay
    /// inside `root`. Returns its canonical path.
    pub fn resolve(&self, root: &Path) -> Result<PathBuf, RepoPathError> {
        let canonical_root = root
            .canonicalize()
            .map_err(|_| RepoPathError::Missing(".".into()))?;
        let real = self
            .under(&canonical_root)
            .canonicalize()
            .map_err(|_| RepoPathError::Missing(self.as_str().into()))?;
        if real.starts_with(&canonical_root) {
            Ok(real)
        } else {
            Err(RepoPathError::Outside(self.as_str().into()))
        }
    }

    /// Like `resolve`, for a path that need not exist yet: its nearest existing ancestor must
    /// resolve inside `root`. Returns the lexical path below `root`.
    pub fn resolve_new(&self, root: &Path) -> Result<PathBuf, RepoPathError> {
        let mut ancestor = Some(self.clone());
        while let Some(a) = ancestor {
            match a.resolve(root) {
                Ok(_) => return Ok(self.under(root)),
                Err(RepoPathError::Missing(_)) => ancestor = a.parent(),
                Err(e) => return Err(e),
            }
        }
        Err(RepoPathError::Missing(".".into()))
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoPath({:?})", self.as_str())
    }
}

impl serde::Serialize for RepoPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for RepoPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        RepoPath::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_rules() {
        for (input, normal) in [
            (".", "."),
            ("", "."),
            ("./", "."),
            ("a/./b/", "a/b"),
            ("a//b", "a/b"),
        ] {
            assert_eq!(RepoPath::parse(input).unwrap().as_str(), normal, "{input}");
        }
        for bad in ["/etc", "..", "a/../b", "../x", "a\0b", "a\\b"] {
            assert!(RepoPath::parse(bad).is_err(), "{bad}");
        }
        let web = RepoPath::parse("web/app").unwrap();
        assert_eq!(web.join("../lib").unwrap().as_str(), "web/lib");
        assert_eq!(web.join("../../x").unwrap().as_str(), "x");
        assert!(matches!(
            web.join("../../../x"),
            Err(RepoPathError::Outside(_))
        ));
        assert!(matches!(web.join("/x"), Err(RepoPathError::Absolute(_))));
        assert_eq!(web.parent().unwrap().as_str(), "web");
        assert_eq!(web.file_name(), Some("app"));
        assert_eq!(web.depth(), 2);
        assert_eq!(RepoPath::root().parent(), None);
        assert_eq!(RepoPath::root().depth(), 0);
        assert_eq!(serde_json::to_string(&RepoPath::root()).unwrap(), "\".\"");
        assert!(serde_json::from_str::<RepoPath>("\"../x\"").is_err());
    }

    #[test]
    fn resolving_follows_symlinks_but_never_out() {
        let outside = tempfile::tempdir().unwrap();
        let repo = tempfile::tempdir().unwrap();
        let root = repo.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink("a/b", root.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("escape")).unwrap();
        let p = |s: &str| RepoPath::parse(s).unwrap();
        assert!(p("link/f").resolve(root).unwrap().ends_with("a/b/f"));
        assert!(matches!(
            p("escape").resolve(root),
            Err(RepoPathError::Outside(_))
        ));
        assert!(matches!(
            p("nope").resolve(root),
            Err(RepoPathError::Missing(_))
        ));
        assert_eq!(
            p("a/b/new/file").resolve_new(root).unwrap(),
            root.join("a/b/new/file")
        );
        assert!(matches!(
            p("escape/new").resolve_new(root),
            Err(RepoPathError::Outside(_))
        ));
    }
}
