//! `Gemfile.lock`, read natively (Bundler's `lockfile_parser.rb` grammar): line oriented,
//! section headers at column 0, source options at 2 spaces, specs at 4, their dependencies at
//! 6. Nothing here runs Ruby; every name, version and platform is checked against a safe
//! alphabet before it becomes a store key or a URL.

use crate::pkg_managers::limits::{self, LimitError};
use common::artifact::rubygems::{is_gem_name, is_version_or_platform};
use common::commit::CommitId;
use common::digest::{Digest, HashAlgorithm};
use common::repo_path::RepoPath;
use common::ErrorKind;
use std::collections::BTreeMap;
use std::path::Path;

pub const LOCKFILE: &str = "Gemfile.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("The {file} file is missing")]
    Missing { file: String },
    #[error("Cannot read {file}: {reason}")]
    Unreadable { file: String, reason: String },
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error("{file} line {line}: {reason}")]
    Syntax {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("{file} contains merge conflict markers")]
    MergeConflict { file: String },
    #[error(
        "{file}: the GIT source {remote} must name a full commit as its revision, not {revision:?}"
    )]
    GitRevision {
        file: String,
        remote: String,
        revision: String,
    },
    #[error("{file}: the PATH source {path:?} is outside the repository")]
    PathOutside { file: String, path: String },
    #[error("{file}: the PLUGIN SOURCE section is not supported")]
    Plugin { file: String },
    #[error("{file}: the CHECKSUMS entry of {gem} is not a valid sha256: {reason}")]
    BadChecksum {
        file: String,
        gem: String,
        reason: String,
    },
}

impl common::Classify for LockError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Missing { .. } => ErrorKind::InvalidRepoStructure,
            Self::Unreadable { .. } => ErrorKind::FileAccessError,
            Self::Limit(e) => e.kind(),
            Self::Syntax { .. } | Self::MergeConflict { .. } => ErrorKind::InvalidFileFormat,
            Self::GitRevision { .. } | Self::PathOutside { .. } => ErrorKind::InvalidRequestData,
            Self::Plugin { .. } => ErrorKind::UnsupportedFeature,
            Self::BadChecksum { .. } => ErrorKind::InvalidChecksum,
        }
    }
}

/// One locked spec: `name (version[-platform])` and the names it depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub version: String,
    /// `None` for the `ruby` platform.
    pub platform: Option<String>,
    pub dependencies: Vec<String>,
}

impl Spec {
    pub fn full_name(&self) -> String {
        common::artifact::rubygems::full_name(&self.name, &self.version, self.platform.as_deref())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GemSource {
    pub remotes: Vec<String>,
    pub specs: Vec<Spec>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitSource {
    pub remote: String,
    pub revision: CommitId,
    /// `branch:`, `tag:` or `ref:` as locked (bundler's local override names a branch).
    pub branch: Option<String>,
    pub glob: Option<String>,
    pub submodules: bool,
    pub specs: Vec<Spec>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathSource {
    /// As the lockfile writes it, relative to the Gemfile's directory.
    pub remote: String,
    /// The same, from the repository root.
    pub path: RepoPath,
    pub specs: Vec<Spec>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GemLock {
    /// The requested path (the Gemfile's directory).
    pub package_path: RepoPath,
    pub gem: Vec<GemSource>,
    pub git: Vec<GitSource>,
    pub path: Vec<PathSource>,
    pub platforms: Vec<String>,
    /// DEPENDENCIES: the names the Gemfile asks for.
    pub dependencies: Vec<String>,
    /// CHECKSUMS: `name-version[-platform]` → its sha256 (`None`: listed without one).
    pub checksums: BTreeMap<String, Option<Digest>>,
    pub bundled_with: Option<String>,
}

/// The lockfile of `path` as messages name it: `Gemfile.lock`, `web/Gemfile.lock`.
pub fn label(path: &RepoPath) -> String {
    if path.is_root() {
        LOCKFILE.to_string()
    } else {
        format!("{path}/{LOCKFILE}")
    }
}

/// Read and parse `<path>/Gemfile.lock` below `root`.
pub fn read(root: &Path, path: &RepoPath) -> Result<GemLock, LockError> {
    let label = label(path);
    let dir = path.resolve(root).map_err(|e| LockError::Unreadable {
        file: label.clone(),
        reason: e.to_string(),
    })?;
    let file = dir.join(LOCKFILE);
    let meta = match std::fs::symlink_metadata(&file) {
        Ok(m) if m.is_file() => m,
        Ok(_) | Err(_) => return Err(LockError::Missing { file: label }),
    };
    limits::check_size(&label, meta.len())?;
    let bytes = std::fs::read(&file).map_err(|e| LockError::Unreadable {
        file: label.clone(),
        reason: e.to_string(),
    })?;
    let text = String::from_utf8(bytes).map_err(|_| LockError::Unreadable {
        file: label.clone(),
        reason: "it is not UTF-8".into(),
    })?;
    parse(&text, &label, path)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Gem,
    Git,
    Path,
    Platforms,
    Dependencies,
    Checksums,
    BundledWith,
    Ignored,
}

/// A source block being read: its options, then its specs.
#[derive(Default)]
struct Block {
    options: Vec<(String, String)>,
    specs: Vec<Spec>,
    in_specs: bool,
}

impl Block {
    fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parse a Gemfile.lock's text; `file` names it in messages, `package_path` is where it is.
pub fn parse(text: &str, file: &str, package_path: &RepoPath) -> Result<GemLock, LockError> {
    let syntax = |line: usize, reason: String| LockError::Syntax {
        file: file.to_string(),
        line,
        reason,
    };
    let mut lock = GemLock {
        package_path: package_path.clone(),
        ..GemLock::default()
    };
    let mut section = Section::None;
    let mut block = Block::default();
    let mut entries = 0usize;
    for (i, raw) in text.split('\n').enumerate() {
        let n = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if ["<<<<<<<", "=======", ">>>>>>>", "|||||||"]
            .iter()
            .any(|m| line.starts_with(m))
        {
            return Err(LockError::MergeConflict {
                file: file.to_string(),
            });
        }
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            finish(&mut lock, section, std::mem::take(&mut block), file, n)?;
            section = match line {
                "GEM" => Section::Gem,
                "GIT" => Section::Git,
                "PATH" => Section::Path,
                "PLATFORMS" => Section::Platforms,
                "DEPENDENCIES" => Section::Dependencies,
                "CHECKSUMS" => Section::Checksums,
                "BUNDLED WITH" => Section::BundledWith,
                "PLUGIN SOURCE" => {
                    return Err(LockError::Plugin {
                        file: file.to_string(),
                    })
                }
                // RUBY VERSION and sections of later bundlers: nothing to fetch
                _ => Section::Ignored,
            };
            continue;
        }
        entries += 1;
        limits::check_entries(file, entries)?;
        let indent = line.len() - line.trim_start_matches(' ').len();
        let body = &line[indent..];
        match section {
            Section::Gem | Section::Git | Section::Path => match indent {
                2 if body == "specs:" => block.in_specs = true,
                2 => {
                    let (key, value) = body
                        .split_once(": ")
                        .filter(|(k, _)| {
                            !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphabetic())
                        })
                        .ok_or_else(|| {
                            syntax(n, format!("expected a source option, found {body:?}"))
                        })?;
                    if block.in_specs {
                        return Err(syntax(n, format!("the option {key:?} follows the specs")));
                    }
                    block.options.push((key.to_string(), value.to_string()));
                }
                4 if block.in_specs => {
                    let (name, version) = name_version(body).map_err(|r| syntax(n, r))?;
                    let version = version
                        .ok_or_else(|| syntax(n, format!("the spec {name} has no version")))?;
                    let (version, platform) = split_platform(&version);
                    block.specs.push(Spec {
                        name,
                        version,
                        platform,
                        dependencies: Vec::new(),
                    });
                }
                6 if block.in_specs => {
                    let (name, _) = name_version(body).map_err(|r| syntax(n, r))?;
                    let spec = block
                        .specs
                        .last_mut()
                        .ok_or_else(|| syntax(n, "a dependency before any spec".into()))?;
                    spec.dependencies.push(name);
                }
                _ => return Err(syntax(n, format!("unexpected indentation of {body:?}"))),
            },
            Section::Platforms => {
                if indent != 2 || !is_version_or_platform(body) {
                    return Err(syntax(n, format!("not a platform: {body:?}")));
                }
                lock.platforms.push(body.to_string());
            }
            Section::Dependencies => {
                if indent != 2 {
                    return Err(syntax(n, format!("unexpected indentation of {body:?}")));
                }
                let (name, _) =
                    name_version(body.trim_end_matches('!')).map_err(|r| syntax(n, r))?;
                lock.dependencies.push(name);
            }
            Section::Checksums => {
                if indent != 2 {
                    return Err(syntax(n, format!("unexpected indentation of {body:?}")));
                }
                let (spec, sums) = match body.find(") ") {
                    Some(at) => (&body[..=at], Some(body[at + 2..].trim())),
                    None => (body, None),
                };
                let (name, version) = name_version(spec).map_err(|r| syntax(n, r))?;
                let version = version
                    .ok_or_else(|| syntax(n, format!("the checksum of {name} has no version")))?;
                let (version, platform) = split_platform(&version);
                let full =
                    common::artifact::rubygems::full_name(&name, &version, platform.as_deref());
                let digest = match sums {
                    None => None,
                    Some(sums) => sha256_of(sums).map_err(|reason| LockError::BadChecksum {
                        file: file.to_string(),
                        gem: full.clone(),
                        reason,
                    })?,
                };
                lock.checksums.insert(full, digest);
            }
            Section::BundledWith => lock.bundled_with = Some(body.trim().to_string()),
            Section::Ignored => {}
            Section::None => return Err(syntax(n, format!("{body:?} is outside any section"))),
        }
    }
    finish(&mut lock, section, block, file, text.split('\n').count())?;
    Ok(lock)
}

/// `sha256=<hex>[,algo=<hex>…]`: the sha256 (other algorithms are not checked).
fn sha256_of(sums: &str) -> Result<Option<Digest>, String> {
    let mut found = None;
    for part in sums.split(',') {
        let (algo, hex) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not algorithm=hex"))?;
        if algo == "sha256" {
            found = Some(Digest::from_hex(HashAlgorithm::Sha256, hex).map_err(|e| e.to_string())?);
        }
    }
    Ok(found)
}

/// The end of a section: a source block becomes a source.
fn finish(
    lock: &mut GemLock,
    section: Section,
    block: Block,
    file: &str,
    line: usize,
) -> Result<(), LockError> {
    let missing = |what: &str, section: &str| LockError::Syntax {
        file: file.to_string(),
        line,
        reason: format!("the {section} source before this line has no {what}"),
    };
    match section {
        Section::Gem => {
            let remotes: Vec<String> = block
                .options
                .iter()
                .filter(|(k, _)| k == "remote")
                .map(|(_, v)| v.clone())
                .collect();
            if remotes.is_empty() {
                return Err(missing("remote", "GEM"));
            }
            lock.gem.push(GemSource {
                remotes,
                specs: block.specs,
            });
        }
        Section::Git => {
            let remote = block
                .option("remote")
                .ok_or_else(|| missing("remote", "GIT"))?;
            let revision = block
                .option("revision")
                .ok_or_else(|| missing("revision", "GIT"))?;
            let commit =
                CommitId::parse_any_case(revision).map_err(|_| LockError::GitRevision {
                    file: file.to_string(),
                    remote: remote.to_string(),
                    revision: revision.to_string(),
                })?;
            lock.git.push(GitSource {
                remote: remote.to_string(),
                revision: commit,
                branch: block
                    .option("branch")
                    .or_else(|| block.option("tag"))
                    .or_else(|| block.option("ref"))
                    .map(str::to_string),
                glob: block.option("glob").map(str::to_string),
                submodules: block.option("submodules") == Some("true"),
                specs: block.specs.clone(),
            });
        }
        Section::Path => {
            let remote = block
                .option("remote")
                .ok_or_else(|| missing("remote", "PATH"))?;
            let path = lock
                .package_path
                .join(remote)
                .map_err(|_| LockError::PathOutside {
                    file: file.to_string(),
                    path: remote.to_string(),
                })?;
            lock.path.push(PathSource {
                remote: remote.to_string(),
                path,
                specs: block.specs,
            });
        }
        _ => {}
    }
    Ok(())
}

/// `name`, `name (1.0)`, `name (>= 1, < 2)`: the name, checked, and what the parentheses hold.
fn name_version(text: &str) -> Result<(String, Option<String>), String> {
    let (name, rest) = match text.split_once(' ') {
        Some((name, rest)) => (name, Some(rest.trim())),
        None => (text, None),
    };
    if !is_gem_name(name) {
        return Err(format!("{name:?} is not a gem name"));
    }
    let inner = match rest {
        None => None,
        Some(rest) => Some(
            rest.strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("expected \"(…)\" after {name}, found {rest:?}"))?
                .to_string(),
        ),
    };
    Ok((name.to_string(), inner))
}

/// `1.0.0-x86_64-linux` → (`1.0.0`, `x86_64-linux`); versions never hold a dash (bundler
/// splits at the first one too).
fn split_platform(text: &str) -> (String, Option<String>) {
    match text.split_once('-') {
        Some((v, p)) if p != "ruby" => (v.to_string(), Some(p.to_string())),
        Some((v, _)) => (v.to_string(), None),
        None => (text.to_string(), None),
    }
}

/// Checked where a spec's version becomes part of a store key.
pub fn check_spec(spec: &Spec) -> Result<(), String> {
    if !is_version_or_platform(&spec.version) || spec.version.contains('-') {
        return Err(format!("{:?} is not a gem version", spec.version));
    }
    if let Some(p) = &spec.platform {
        if !is_version_or_platform(p) {
            return Err(format!("{p:?} is not a platform"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::Classify;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn sample() -> String {
        format!(
            "GIT
  remote: https://github.com/o/porta.git
  revision: {SHA}
  branch: main
  specs:
    porta (2.14.1)
      rack

PATH
  remote: gems/local
  specs:
    local (0.1.0)

GEM
  remote: https://rubygems.org/
  remote: https://gems.example.com/
  specs:
    nokogiri (1.15.0)
      racc (~> 1.4)
    nokogiri (1.15.0-x86_64-linux)
      racc (~> 1.4)
    racc (1.7.1)
    rack (3.0.8)

PLATFORMS
  ruby
  x86_64-linux

DEPENDENCIES
  local!
  nokogiri (~> 1.15)
  porta!

CHECKSUMS
  nokogiri (1.15.0) sha256={}
  racc (1.7.1)

RUBY VERSION
   ruby 3.1.2p20

BUNDLED WITH
   2.5.3
",
            "ab".repeat(32)
        )
    }

    #[test]
    fn every_section() {
        let path = RepoPath::parse("app").unwrap();
        let l = parse(&sample(), "app/Gemfile.lock", &path).unwrap();
        assert_eq!(l.gem.len(), 1);
        assert_eq!(
            l.gem[0].remotes,
            vec!["https://rubygems.org/", "https://gems.example.com/"]
        );
        assert_eq!(l.gem[0].specs.len(), 4);
        assert_eq!(l.gem[0].specs[1].platform.as_deref(), Some("x86_64-linux"));
        assert_eq!(l.gem[0].specs[0].dependencies, vec!["racc"]);
        assert_eq!(l.git[0].revision.as_str(), SHA);
        assert_eq!(l.git[0].branch.as_deref(), Some("main"));
        assert_eq!(l.git[0].specs[0].name, "porta");
        assert_eq!(l.path[0].path.to_string(), "app/gems/local");
        assert_eq!(l.platforms, vec!["ruby", "x86_64-linux"]);
        assert_eq!(l.dependencies, vec!["local", "nokogiri", "porta"]);
        assert!(l.checksums["nokogiri-1.15.0"].is_some());
        assert_eq!(l.checksums["racc-1.7.1"], None);
        assert_eq!(l.bundled_with.as_deref(), Some("2.5.3"));
    }

    #[test]
    fn refusals() {
        let root = RepoPath::root();
        let cases = [
            (
                "GIT\n  remote: https://x/y\n  revision: abc\n  specs:\n    y (1)\n",
                "InvalidRequestData",
            ),
            (
                "PATH\n  remote: ../outside\n  specs:\n    o (1)\n",
                "InvalidRequestData",
            ),
            (
                "GEM\n  remote: https://rubygems.org/\n  specs:\n    ../x (1.0)\n",
                "InvalidFileFormat",
            ),
            (
                "GEM\n  remote: https://rubygems.org/\n  specs:\n    x\n",
                "InvalidFileFormat",
            ),
            ("GEM\n  specs:\n    x (1)\n", "InvalidFileFormat"),
            ("<<<<<<< HEAD\n", "InvalidFileFormat"),
            ("CHECKSUMS\n  x (1) sha256=zz\n", "InvalidChecksum"),
            ("PLUGIN SOURCE\n  remote: x\n", "UnsupportedFeature"),
            ("  stray\n", "InvalidFileFormat"),
        ];
        for (text, kind) in cases {
            let e = parse(text, "Gemfile.lock", &root).unwrap_err();
            assert_eq!(e.kind().error_type(), kind, "{text}: {e}");
        }
    }

    #[test]
    fn hostile_input_never_panics() {
        let root = RepoPath::root();
        for text in [
            "GEM\n  remote: x\n  specs:\n    a (\u{e9}-\u{e9})\n",
            "GEM\n  remote: x\n  specs:\n      a (1)\n",
            "CHECKSUMS\n  a (1-) sha256=\n",
            "GEM\n  remote: x\n  specs:\n    a ()\n",
            "\u{0}\n",
            "GEM\n  : \n",
        ] {
            let _ = parse(text, "Gemfile.lock", &root);
        }
    }
}
