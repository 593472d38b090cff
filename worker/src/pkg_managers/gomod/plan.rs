//! Download planning: read go.mod/go.sum at each requested path, apply request-level
//! `dependency_replacements`, check local replaces and vendoring, and list the exact files to
//! fetch from the upstream GOPROXY with the `h1:` each one must match.

use super::dirhash::{hash_gomod, validate_zip, DirhashError};
use super::gomod_file::{
    apply_replace_edits, parse_go_mod, GoMod, GoModError, ReplaceEdit, ReplaceTarget,
};
use super::gosum::{format_go_sum, parse_go_sum, GoSum, GoSumError, GoSumLine};
use super::vendor::{self, VendorError};
use crate::pkg_managers::limits;
use common::digest::Expected;
use common::gomod::{escape_path, escape_version, EscapeError};
use common::repo_path::{RepoPath, RepoPathError};
use common::{Classify, Download, ErrorKind, Replaced};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

pub const STORE_PREFIX: &str = "deps/gomod/cache/download";
const MAX_INFO: u64 = 64 << 10;
const MAX_MOD: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("The package path {path:?} is invalid: it must be a relative path inside the repository without \"..\".")]
    BadPackagePath { path: String },
    #[error("The {file} file must be present for the gomod package manager")]
    MissingGoMod { file: String },
    #[error("Cannot read {file}: {source}.")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file} is not valid UTF-8.")]
    NotUtf8 { file: String },
    #[error(transparent)]
    Limit(#[from] crate::pkg_managers::limits::LimitError),
    #[error(transparent)]
    GoMod(#[from] GoModError),
    #[error(transparent)]
    GoSum(#[from] GoSumError),
    #[error(transparent)]
    Escape(#[from] EscapeError),
    #[error(transparent)]
    Vendor(#[from] VendorError),
    #[error("The module {module}@{version} required by {gomod} has no line in {gosum}; run `go mod tidy` and commit go.sum.")]
    MissingGoSumLine {
        module: String,
        version: String,
        gomod: String,
        gosum: String,
    },
    #[error("The file {file} is a symbolic link pointing outside the repository.")]
    FileOutside { file: String },
    #[error("The local file dependency path {path} is outside the repository")]
    LocalOutside { path: String },
    #[error(
        "The local replacement {path} of {module} in {gomod} does not exist or has no go.mod file."
    )]
    LocalMissing {
        path: String,
        module: String,
        gomod: String,
    },
    #[error("Dependency replacements are only supported for a single go module path.")]
    ReplacementsMultiplePaths,
    #[error("The following gomod dependency replacements don't apply: {names}")]
    ReplacementsDontApply { names: String },
    #[error("The dependency replacement of {name} has type {kind:?}; only \"gomod\" replacements are supported.")]
    ReplacementKind { name: String, kind: String },
    #[error("{files} disagree on the {what} hash of {label} ({hashes}).")]
    SumConflict {
        /// module@version
        label: String,
        what: &'static str,
        /// "a/go.sum and b/go.sum"
        files: String,
        /// "h1:... vs h1:..."
        hashes: String,
    },
    #[error("The dependency replacement {new}@{version} requires {req}@{req_version}, which {gosum} does not list, so Larder cannot verify it. Add the replacement to go.mod yourself, run `go mod tidy` and commit go.sum, or choose a version whose requirements are already in go.sum.")]
    ReplacementNeedsSums {
        new: String,
        version: String,
        req: String,
        req_version: String,
        gosum: String,
    },
    #[error("The checksum of {store_key} was not recorded after download; the replacement {label} cannot be added to go.sum.")]
    NotRecorded { store_key: String, label: String },
}

impl Classify for PlanError {
    fn kind(&self) -> ErrorKind {
        match self {
            PlanError::GoMod(e) => e.kind(),
            PlanError::GoSum(e) => e.kind(),
            PlanError::Escape(e) => e.kind(),
            PlanError::Vendor(e) => e.kind(),
            PlanError::Limit(e) => e.kind(),
            PlanError::Io { .. } | PlanError::NotRecorded { .. } => ErrorKind::FileAccessError,
            PlanError::MissingGoMod { .. } | PlanError::NotUtf8 { .. } => {
                ErrorKind::InvalidRepoStructure
            }
            PlanError::BadPackagePath { .. }
            | PlanError::ReplacementsMultiplePaths
            | PlanError::ReplacementsDontApply { .. }
            | PlanError::ReplacementKind { .. } => ErrorKind::InvalidRequestData,
            PlanError::LocalOutside { .. }
            | PlanError::LocalMissing { .. }
            | PlanError::FileOutside { .. } => ErrorKind::ValidationError,
            PlanError::MissingGoSumLine { .. }
            | PlanError::SumConflict { .. }
            | PlanError::ReplacementNeedsSums { .. } => ErrorKind::GoModError,
        }
    }

    fn message(&self) -> String {
        match self {
            PlanError::Vendor(e) => e.message(),
            _ => self.to_string(),
        }
    }
}

pub use common::DependencyReplacement;

/// Request flags relevant to gomod.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub gomod_vendor: bool,
    pub gomod_vendor_check: bool,
    /// deployment setting (Cachito's `cachito_gomod_strict_vendor`)
    pub strict_vendor: bool,
    /// `larder fetch-deps` ([`crate::pkg_managers::HandBack::OutputDir`]): the source is the
    /// user's own directory and is never written. As Hermeto: `vendor/` is never generated
    /// (`gomod-vendor` and `gomod-vendor-check` are accepted and change nothing), and one that
    /// exists is checked as `gomod-vendor-check` checks it, with or without a flag.
    pub read_only_source: bool,
}

impl Flags {
    pub fn from_names<S: AsRef<str>>(flags: &[S], strict_vendor: bool) -> Self {
        let has = |n: &str| flags.iter().any(|f| f.as_ref() == n);
        Self {
            gomod_vendor: has("gomod-vendor"),
            gomod_vendor_check: has("gomod-vendor-check"),
            strict_vendor,
            read_only_source: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GoFileKind {
    Info,
    Mod,
    Zip,
}

impl GoFileKind {
    pub fn ext(self) -> &'static str {
        match self {
            GoFileKind::Info => "info",
            GoFileKind::Mod => "mod",
            GoFileKind::Zip => "zip",
        }
    }
}

/// What the fetched file must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedH1 {
    /// `.info`: not authenticated (only its Version field is checked).
    None,
    /// go.sum's `h1:`; a mismatch fails the request.
    Verify(String),
    /// Module introduced by a request `dependency_replacements` with no go.sum line: the hash is
    /// computed from the fetched file (trust on first use) and appended to the bundle's go.sum.
    Record,
}

/// One Go proxy file to fetch, with the check [`verify_download`] performs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoDownload {
    /// Shared with the fetch.
    pub download: Arc<Download>,
    pub module: String,
    pub version: String,
    pub kind: GoFileKind,
    pub h1: ExpectedH1,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorMode {
    /// No vendoring: the module cache is used.
    None,
    /// `vendor/` exists and is consistent with go.mod: keep it as is.
    UseExisting,
    /// Write `vendor/` from the fetched zips (see [`super::vendor::generate_vendor`]).
    Generate,
}

/// Where a dependency's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepSource {
    Module {
        path: String,
        version: String,
    },
    /// Relative path from the go.mod's directory, as written in go.mod; `repo_rel` is the
    /// normalized path relative to the repository root.
    Local {
        path: String,
        repo_rel: RepoPath,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDep {
    /// Module path as required in go.mod.
    pub required_path: String,
    pub required_version: String,
    pub indirect: bool,
    /// Listed in go.mod's `require` (false: found only through go.sum, see [`plan`]).
    pub explicit: bool,
    pub source: DepSource,
    /// Set when a request `dependency_replacements` item replaced this module.
    pub replaces: Option<Replaced>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulePlan {
    /// The requested path.
    pub path: RepoPath,
    pub gomod: GoMod,
    pub gosum: GoSum,
    /// go.sum text as found in the repository (empty when absent).
    pub gosum_text: String,
    /// New go.mod text when `dependency_replacements` changed it.
    pub gomod_rewritten: Option<String>,
    pub vendor: VendorMode,
    pub deps: Vec<PlannedDep>,
}

impl ModulePlan {
    /// A file of this module, as messages name it (`web/go.mod`).
    pub fn file(&self, name: &str) -> String {
        self.path
            .join(name)
            .map(|p| p.as_str().to_string())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub modules: Vec<ModulePlan>,
    /// Deduplicated by store key, sorted.
    /// Sorted by store key. Shared with the downloads' checks (one copy of 75,000 of them).
    pub downloads: Vec<Arc<GoDownload>>,
    /// zip h1 per (module, version) known from go.sum (for `.ziphash`).
    pub zip_h1: BTreeMap<(String, String), String>,
}

/// A text file of the repository (`None` when absent); symlinks may not lead out of it.
fn read_text(repo: &Path, rel: &RepoPath, limit: u64) -> Result<Option<String>, PlanError> {
    let file = rel.as_str().to_string();
    let real = match rel.resolve(repo) {
        Ok(real) => real,
        Err(RepoPathError::Missing(_)) => return Ok(None),
        Err(_) => return Err(PlanError::FileOutside { file }),
    };
    let meta = std::fs::metadata(&real).map_err(|e| PlanError::Io {
        file: file.clone(),
        source: e,
    })?;
    if !meta.is_file() {
        return Ok(None);
    }
    if meta.len() > limit {
        return Err(PlanError::Io {
            file,
            source: std::io::Error::other("file too large"),
        });
    }
    let bytes = std::fs::read(&real).map_err(|e| PlanError::Io {
        file: file.clone(),
        source: e,
    })?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| PlanError::NotUtf8 { file })
}

fn store_key(module: &str, version: &str, kind: GoFileKind) -> Result<String, EscapeError> {
    Ok(format!(
        "{STORE_PREFIX}/{}/@v/{}.{}",
        escape_path(module)?,
        escape_version(module, version)?,
        kind.ext()
    ))
}

fn go_download(
    upstream: &str,
    module: &str,
    version: &str,
    kind: GoFileKind,
    h1: ExpectedH1,
) -> Result<GoDownload, EscapeError> {
    let ep = escape_path(module)?;
    let ev = escape_version(module, version)?;
    Ok(GoDownload {
        download: Arc::new(Download {
            url: format!("{upstream}/{ep}/@v/{ev}.{}", kind.ext()),
            store_key: format!("{STORE_PREFIX}/{ep}/@v/{ev}.{}", kind.ext()),
            expected: Expected::none(),
            label: format!("{module}@{version}"),
        }),
        module: module.to_string(),
        version: version.to_string(),
        kind,
        h1,
    })
}

/// Build the plan. `repo` is the unpacked source dir (`app/`), `paths` the requested package
/// paths (empty = ["."]), `upstream` the GOPROXY base URL (e.g. `https://proxy.golang.org`).
pub fn plan(
    repo: &Path,
    paths: &[RepoPath],
    replacements: &[DependencyReplacement],
    flags: Flags,
    upstream: &str,
) -> Result<Plan, PlanError> {
    let upstream = upstream.trim_end_matches('/');
    let default = [RepoPath::root()];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    if !replacements.is_empty() && paths.len() > 1 {
        return Err(PlanError::ReplacementsMultiplePaths);
    }
    for r in replacements {
        if r.kind != "gomod" {
            return Err(PlanError::ReplacementKind {
                name: r.name.clone(),
                kind: r.kind.clone(),
            });
        }
    }
    let mut downloads: BTreeMap<String, (GoDownload, String)> = BTreeMap::new();
    let mut zip_h1 = BTreeMap::new();
    let mut modules = Vec::new();
    let mut seen_paths = BTreeSet::new();
    for norm in paths {
        let path = norm.as_str().to_string();
        if !seen_paths.insert(norm.clone()) {
            continue;
        }
        let dir = norm.under(repo);
        match norm.resolve(repo) {
            Ok(_) => {}
            Err(RepoPathError::Missing(_)) => {
                return Err(PlanError::MissingGoMod {
                    file: format!("{path}/go.mod"),
                })
            }
            Err(_) => return Err(PlanError::BadPackagePath { path }),
        }
        let file = |name: &str| {
            norm.join(name)
                .map_err(|_| PlanError::BadPackagePath { path: path.clone() })
        };
        let (gomod_path, gosum_path) = (file("go.mod")?, file("go.sum")?);
        let (gomod_file, gosum_file) = (
            gomod_path.as_str().to_string(),
            gosum_path.as_str().to_string(),
        );
        let text =
            read_text(repo, &gomod_path, MAX_MOD)?.ok_or_else(|| PlanError::MissingGoMod {
                file: format!("{path}/go.mod"),
            })?;
        let mut gomod = parse_go_mod(&gomod_file, &text)?;
        if let Ok(meta) = std::fs::metadata(gosum_path.under(repo)) {
            limits::check_size(&gosum_file, meta.len())?;
        }
        let sum_text =
            read_text(repo, &gosum_path, limits::MAX_LOCKFILE_BYTES)?.unwrap_or_default();
        limits::check_entries(&gosum_file, sum_text.lines().count())?;
        let gosum = parse_go_sum(&gosum_file, &sum_text)?;

        // request-level replacements
        let mut gomod_rewritten = None;
        let mut replaced_by_request: BTreeMap<String, ()> = BTreeMap::new();
        if !replacements.is_empty() {
            let edits: Vec<ReplaceEdit> = replacements
                .iter()
                .map(|r| ReplaceEdit {
                    name: r.name.clone(),
                    new_name: r.new_name.clone().unwrap_or_else(|| r.name.clone()),
                    version: r.version.clone(),
                })
                .collect();
            let new_text = apply_replace_edits(&gomod_file, &text, &edits)?;
            gomod = parse_go_mod(&gomod_file, &new_text)?;
            gomod_rewritten = Some(new_text);
            for r in replacements {
                replaced_by_request.insert(r.name.clone(), ());
            }
        }

        // vendoring
        let vendor_dir = dir.join("vendor");
        let vendor_exists = vendor_dir.is_dir();
        // the consistency of an existing vendor/: Err when it cannot be read at all, Ok(Err)
        // when it is not consistent with go.mod
        let check_vendor = || -> Result<Result<(), PlanError>, PlanError> {
            let mt_path = file("vendor/modules.txt")?;
            let mt_file = mt_path.as_str().to_string();
            Ok(match read_text(repo, &mt_path, 64 << 20)? {
                Some(mt) => vendor::parse_modules_txt(&mt_file, &mt)
                    .map_err(PlanError::from)
                    .and_then(|parsed| {
                        vendor::check_consistency(&gomod, &parsed).map_err(PlanError::from)
                    }),
                None => Err(VendorError::Inconsistent {
                    details: vec![format!("{mt_file} is missing")],
                }
                .into()),
            })
        };
        let vendor_mode = if flags.read_only_source {
            // never written: checked when it exists, and refused when inconsistent
            if vendor_exists {
                check_vendor()??;
                VendorMode::UseExisting
            } else {
                VendorMode::None
            }
        } else if !flags.gomod_vendor && !flags.gomod_vendor_check {
            if vendor_exists && flags.strict_vendor {
                return Err(VendorError::StrictVendor.into());
            }
            VendorMode::None
        } else if vendor_exists {
            match check_vendor()? {
                Ok(()) => VendorMode::UseExisting,
                Err(e) if flags.gomod_vendor_check => return Err(e),
                Err(_) => VendorMode::Generate,
            }
        } else {
            VendorMode::Generate
        };

        // dependencies
        let mut deps = Vec::new();
        for r in &gomod.require {
            let rep = gomod.replacement_for(&r.path, &r.version);
            let replaces = if replaced_by_request.contains_key(&r.path) {
                Some(Replaced {
                    kind: "gomod".into(),
                    name: r.path.clone(),
                    version: Some(r.version.clone()),
                })
            } else {
                None
            };
            let source = match rep.map(|x| &x.new) {
                None => DepSource::Module {
                    path: r.path.clone(),
                    version: r.version.clone(),
                },
                Some(ReplaceTarget::Module {
                    path: p,
                    version: v,
                }) => DepSource::Module {
                    path: p.clone(),
                    version: v.clone(),
                },
                Some(ReplaceTarget::Local { path: lp }) => {
                    let outside = || PlanError::LocalOutside { path: lp.clone() };
                    let missing = || PlanError::LocalMissing {
                        path: lp.clone(),
                        module: r.path.clone(),
                        gomod: gomod_file.clone(),
                    };
                    let rel = norm.join(&lp.replace('\\', "/")).map_err(|_| outside())?;
                    let module_file = rel.join("go.mod").map_err(|_| outside())?;
                    for p in [&rel, &module_file] {
                        match p.resolve(repo) {
                            Ok(real) if p != &module_file || real.is_file() => {}
                            Ok(_) | Err(RepoPathError::Missing(_)) => return Err(missing()),
                            Err(_) => return Err(outside()),
                        }
                    }
                    DepSource::Local {
                        path: lp.clone(),
                        repo_rel: rel,
                    }
                }
            };
            if let DepSource::Module {
                path: p,
                version: v,
            } = &source
            {
                let by_request = replaces.is_some();
                if !by_request && gosum.mod_h1(p, v).is_none() && gosum.zip_h1(p, v).is_none() {
                    return Err(PlanError::MissingGoSumLine {
                        module: p.clone(),
                        version: v.clone(),
                        gomod: gomod_file.clone(),
                        gosum: gosum_file.clone(),
                    });
                }
            }
            deps.push(PlannedDep {
                required_path: r.path.clone(),
                required_version: r.version.clone(),
                indirect: r.indirect,
                explicit: true,
                source,
                replaces,
            });
        }
        // a replacement of a module the build does not require would silently do nothing
        let unused: BTreeSet<&str> = replacements
            .iter()
            .map(|r| r.name.as_str())
            .filter(|name| {
                !deps
                    .iter()
                    .any(|d| d.replaces.is_some() && d.required_path == *name)
            })
            .collect();
        if !unused.is_empty() {
            return Err(PlanError::ReplacementsDontApply {
                names: unused.into_iter().collect::<Vec<_>>().join(", "),
            });
        }
        // Before go 1.17, go.mod need not list indirect dependencies. Modules whose zip hash is
        // in go.sum provided packages, so report them too (highest version with a zip line).
        if gomod.go_version() < (1, 17) {
            let known: BTreeSet<String> = deps
                .iter()
                .flat_map(|d| {
                    let mut v = vec![d.required_path.clone()];
                    if let DepSource::Module { path, .. } = &d.source {
                        v.push(path.clone());
                    }
                    v
                })
                .collect();
            let mut extra: BTreeMap<String, String> = BTreeMap::new();
            for l in gosum.lines.iter().filter(|l| !l.is_gomod) {
                if known.contains(&l.module) || l.module == gomod.module {
                    continue;
                }
                let e = extra
                    .entry(l.module.clone())
                    .or_insert_with(|| l.version.clone());
                if super::layout::compare_versions(&l.version, e) == std::cmp::Ordering::Greater {
                    *e = l.version.clone();
                }
            }
            for (p, v) in extra {
                deps.push(PlannedDep {
                    required_path: p.clone(),
                    required_version: v.clone(),
                    indirect: true,
                    explicit: false,
                    source: DepSource::Module {
                        path: p,
                        version: v,
                    },
                    replaces: None,
                });
            }
        }

        // downloads from go.sum
        let mut add = |d: GoDownload, file: &str| -> Result<(), PlanError> {
            match downloads.get(&d.download.store_key) {
                Some((prev, prev_file)) => {
                    if let (ExpectedH1::Verify(a), ExpectedH1::Verify(b)) = (&prev.h1, &d.h1) {
                        if a != b {
                            return Err(PlanError::SumConflict {
                                label: format!("{}@{}", d.module, d.version),
                                what: if d.kind == GoFileKind::Zip {
                                    "zip"
                                } else {
                                    "go.mod"
                                },
                                files: format!("{prev_file} and {file}"),
                                hashes: format!("{a} vs {b}"),
                            });
                        }
                    }
                    if prev.h1 == ExpectedH1::Record && matches!(d.h1, ExpectedH1::Verify(_)) {
                        downloads.insert(d.download.store_key.clone(), (d, file.to_string()));
                    }
                }
                None => {
                    downloads.insert(d.download.store_key.clone(), (d, file.to_string()));
                }
            }
            Ok(())
        };
        for l in &gosum.lines {
            let kind = if l.is_gomod {
                GoFileKind::Mod
            } else {
                GoFileKind::Zip
            };
            add(
                go_download(
                    upstream,
                    &l.module,
                    &l.version,
                    kind,
                    ExpectedH1::Verify(l.h1.clone()),
                )?,
                &gosum_file,
            )?;
            add(
                go_download(
                    upstream,
                    &l.module,
                    &l.version,
                    GoFileKind::Info,
                    ExpectedH1::None,
                )?,
                &gosum_file,
            )?;
            if !l.is_gomod {
                zip_h1.insert((l.module.clone(), l.version.clone()), l.h1.clone());
            }
        }
        // modules introduced by request replacements
        for d in &deps {
            if d.replaces.is_none() {
                continue;
            }
            let DepSource::Module {
                path: p,
                version: v,
            } = &d.source
            else {
                continue;
            };
            let mod_h1 = gosum
                .mod_h1(p, v)
                .map(|h| ExpectedH1::Verify(h.to_string()))
                .unwrap_or(ExpectedH1::Record);
            add(
                go_download(upstream, p, v, GoFileKind::Mod, mod_h1)?,
                &gosum_file,
            )?;
            add(
                go_download(upstream, p, v, GoFileKind::Info, ExpectedH1::None)?,
                &gosum_file,
            )?;
            let needs_zip = gosum
                .zip_h1(&d.required_path, &d.required_version)
                .is_some()
                || gosum.zip_h1(p, v).is_some();
            if needs_zip {
                let zh = gosum
                    .zip_h1(p, v)
                    .map(|h| ExpectedH1::Verify(h.to_string()))
                    .unwrap_or(ExpectedH1::Record);
                if let ExpectedH1::Verify(h) = &zh {
                    zip_h1.insert((p.clone(), v.clone()), h.clone());
                }
                add(
                    go_download(upstream, p, v, GoFileKind::Zip, zh)?,
                    &gosum_file,
                )?;
            }
        }
        modules.push(ModulePlan {
            path: norm.clone(),
            gomod,
            gosum,
            gosum_text: sum_text,
            gomod_rewritten,
            vendor: vendor_mode,
            deps,
        });
    }
    Ok(Plan {
        modules,
        downloads: downloads.into_values().map(|(d, _)| Arc::new(d)).collect(),
        zip_h1,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Hash(#[from] DirhashError),
    #[error("The {what} file of {label} is invalid: {reason}.")]
    Invalid {
        label: String,
        what: &'static str,
        reason: String,
    },
    #[error("Cannot read the downloaded {what} file of {label}: {source}.")]
    Io {
        label: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for VerifyError {
    fn kind(&self) -> ErrorKind {
        match self {
            VerifyError::Hash(e) => e.kind(),
            VerifyError::Invalid { .. } => ErrorKind::ValidationError,
            VerifyError::Io { .. } => ErrorKind::FileAccessError,
        }
    }
}

fn read_limited(
    path: &Path,
    limit: u64,
    label: &str,
    what: &'static str,
) -> Result<Vec<u8>, VerifyError> {
    let io = |e| VerifyError::Io {
        label: label.to_string(),
        what,
        source: e,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > limit {
        return Err(VerifyError::Invalid {
            label: label.to_string(),
            what,
            reason: format!("{len} bytes is larger than the {limit} byte limit"),
        });
    }
    std::fs::read(path).map_err(io)
}

/// Check a fetched file (before it is kept in the store). Returns the computed h1 for `.mod` and
/// `.zip` files (callers keep it for [`ExpectedH1::Record`] downloads).
pub fn verify_download(d: &GoDownload, file: &Path) -> Result<Option<String>, VerifyError> {
    let label = d.download.label.as_str();
    match d.kind {
        GoFileKind::Info => {
            let b = read_limited(file, MAX_INFO, label, ".info")?;
            let v: serde_json::Value =
                serde_json::from_slice(&b).map_err(|e| VerifyError::Invalid {
                    label: label.to_string(),
                    what: ".info",
                    reason: format!("not JSON: {e}"),
                })?;
            if v.get("Version").and_then(|x| x.as_str()) != Some(d.version.as_str()) {
                return Err(VerifyError::Invalid {
                    label: label.to_string(),
                    what: ".info",
                    reason: format!("its Version is not {:?}", d.version),
                });
            }
            Ok(None)
        }
        GoFileKind::Mod => {
            let b = read_limited(file, MAX_MOD, label, "go.mod")?;
            let h = hash_gomod(&b);
            if let ExpectedH1::Verify(e) = &d.h1 {
                if *e != h {
                    return Err(DirhashError::Mismatch {
                        label: label.to_string(),
                        what: "go.mod",
                        expected: e.clone(),
                    }
                    .into());
                }
            }
            Ok(Some(h))
        }
        GoFileKind::Zip => {
            let h1 = zip_h1(file, &d.module, &d.version)?;
            if let ExpectedH1::Verify(e) = &d.h1 {
                if *e != h1 {
                    return Err(DirhashError::Mismatch {
                        label: label.to_string(),
                        what: "the module zip",
                        expected: e.clone(),
                    }
                    .into());
                }
            }
            Ok(Some(h1))
        }
    }
}

/// The `h1:` of a module zip that passes the zip rules for `module@version`: recorded on the
/// stored file the first time (`file_record`), so that a request finding it again does not
/// unpack and hash every file of it again.
fn zip_h1(file: &Path, module: &str, version: &str) -> Result<String, VerifyError> {
    use common::store::file_record;
    const RECORD: &str = "gomod-zip-h1";
    let tag = format!("{module}@{version} ");
    let recorded = file_record::recorded(file, RECORD)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(&tag).map(str::to_string));
    if let Some(h1) = recorded {
        return Ok(h1);
    }
    let before = std::fs::metadata(file).ok();
    let h1 = validate_zip(file, module, version)?.h1;
    // a filesystem without records: validated again next time
    if let Some(before) = before {
        let _ = file_record::record(file, RECORD, format!("{tag}{h1}").as_bytes(), &before);
    }
    Ok(h1)
}

/// A file of the repository the bundle must carry with new content (path relative to `app/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewrittenFile {
    pub path: String,
    pub content: Vec<u8>,
}

impl Plan {
    /// After all downloads succeeded: the go.mod/go.sum files to overwrite in the bundle for
    /// `dependency_replacements`. `recorded` maps the store key of every [`ExpectedH1::Record`]
    /// download to the h1 [`verify_download`] returned; `read_store(key)` returns a stored file.
    /// Fails when a replacement module requires modules go.sum cannot vouch for.
    pub fn rewritten_files(
        &self,
        recorded: &BTreeMap<String, String>,
        read_store: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
    ) -> Result<Vec<RewrittenFile>, PlanError> {
        let mut out = Vec::new();
        for m in &self.modules {
            let Some(text) = &m.gomod_rewritten else {
                continue;
            };
            let gosum_file = m.file("go.sum");
            let mut lines: Vec<GoSumLine> = Vec::new();
            for d in &m.deps {
                if d.replaces.is_none() {
                    continue;
                }
                let DepSource::Module {
                    path: p,
                    version: v,
                } = &d.source
                else {
                    continue;
                };
                for kind in [GoFileKind::Mod, GoFileKind::Zip] {
                    let is_gomod = kind == GoFileKind::Mod;
                    let known = if is_gomod {
                        m.gosum.mod_h1(p, v)
                    } else {
                        m.gosum.zip_h1(p, v)
                    };
                    if known.is_some() {
                        continue;
                    }
                    let key = store_key(p, v, kind)?;
                    let fetched = self
                        .downloads
                        .binary_search_by(|x| x.download.store_key.as_str().cmp(&key))
                        .is_ok();
                    if !fetched {
                        continue;
                    }
                    let h1 = recorded.get(&key).ok_or_else(|| PlanError::NotRecorded {
                        store_key: key.clone(),
                        label: format!("{p}@{v}"),
                    })?;
                    lines.push(GoSumLine {
                        module: p.clone(),
                        version: v.clone(),
                        is_gomod,
                        h1: h1.clone(),
                    });
                }
                // the replacement's own requirements must already be vouched for by go.sum
                let key = store_key(p, v, GoFileKind::Mod)?;
                let bytes = read_store(&key).map_err(|e| PlanError::Io {
                    file: key.clone(),
                    source: e,
                })?;
                let text = String::from_utf8_lossy(&bytes);
                let dep_mod = parse_go_mod(&format!("{p}@{v}/go.mod"), &text)?;
                for req in &dep_mod.require {
                    if m.gomod.replacement_for(&req.path, &req.version).is_some() {
                        continue;
                    }
                    if m.gosum.mod_h1(&req.path, &req.version).is_none() {
                        return Err(PlanError::ReplacementNeedsSums {
                            new: p.clone(),
                            version: v.clone(),
                            req: req.path.clone(),
                            req_version: req.version.clone(),
                            gosum: gosum_file.clone(),
                        });
                    }
                }
            }
            out.push(RewrittenFile {
                path: m.file("go.mod"),
                content: text.clone().into_bytes(),
            });
            if !lines.is_empty() {
                let mut sum = m.gosum_text.clone();
                if !sum.is_empty() && !sum.ends_with('\n') {
                    sum.push('\n');
                }
                sum.push_str(&format_go_sum(&lines));
                out.push(RewrittenFile {
                    path: gosum_file,
                    content: sum.into_bytes(),
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{build_module, gosum_text, BuiltModule, FixtureModule};
    use super::*;

    fn rp(path: &str) -> RepoPath {
        RepoPath::parse(path).unwrap()
    }

    fn m(path: &str, v: &str) -> BuiltModule {
        build_module(
            &FixtureModule::new(path, v)
                .gomod("1.19", &[])
                .file("x.go", "package x\n"),
        )
        .unwrap()
    }

    fn write(dir: &Path, rel: &str, content: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    const UP: &str = "https://proxy.example/";

    #[test]
    fn plans_downloads_from_gosum() {
        let a = m("github.com/Azure/a", "v1.0.0");
        let b = m("example.com/b", "v0.1.0");
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "go.mod",
            "module example.com/app\ngo 1.19\nrequire (\n\tgithub.com/Azure/a v1.0.0\n\texample.com/b v0.1.0 // indirect\n)\n",
        );
        write(d.path(), "go.sum", &gosum_text(&[&a], &[&b]));
        let p = plan(d.path(), &[], &[], Flags::default(), UP).unwrap();
        assert_eq!(p.modules.len(), 1);
        assert_eq!(p.modules[0].path.as_str(), ".");
        assert_eq!(p.modules[0].vendor, VendorMode::None);
        let keys: Vec<&str> = p
            .downloads
            .iter()
            .map(|d| d.download.store_key.as_str())
            .collect();
        assert_eq!(
            keys,
            vec![
                "deps/gomod/cache/download/example.com/b/@v/v0.1.0.info",
                "deps/gomod/cache/download/example.com/b/@v/v0.1.0.mod",
                "deps/gomod/cache/download/github.com/!azure/a/@v/v1.0.0.info",
                "deps/gomod/cache/download/github.com/!azure/a/@v/v1.0.0.mod",
                "deps/gomod/cache/download/github.com/!azure/a/@v/v1.0.0.zip",
            ]
        );
        let z = &p.downloads[4];
        assert_eq!(
            z.download.url,
            "https://proxy.example/github.com/!azure/a/@v/v1.0.0.zip"
        );
        assert_eq!(z.download.label, "github.com/Azure/a@v1.0.0");
        assert_eq!(z.h1, ExpectedH1::Verify(a.h1.clone()));
        assert_eq!(p.downloads[0].h1, ExpectedH1::None);
        assert_eq!(p.zip_h1.len(), 1);
    }

    #[test]
    fn a_module_zip_validated_once_is_recorded_for_its_module_and_version() {
        let a = m("example.com/a", "v1.0.0");
        let d = tempfile::tempdir().unwrap();
        let zip = d.path().join("v1.0.0.zip");
        std::fs::write(&zip, &a.zip).unwrap();
        let h1 = zip_h1(&zip, "example.com/a", "v1.0.0").unwrap();
        assert_eq!(h1, a.h1);
        // another module@version is not taken from the record: it is validated, and refused
        assert!(zip_h1(&zip, "example.com/b", "v1.0.0").is_err());
        if !common::store::file_record::kept_in(d.path()) {
            return;
        }
        // the record answers without reading the zip (here: it could not be read as one)
        let mtime = std::fs::metadata(&zip).unwrap().modified().unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&zip).unwrap();
        std::io::Write::write_all(&mut &f, &vec![0u8; a.zip.len()]).unwrap();
        f.set_modified(mtime).unwrap();
        assert_eq!(zip_h1(&zip, "example.com/a", "v1.0.0").unwrap(), a.h1);
        // written since: validated again
        f.set_modified(mtime + std::time::Duration::from_secs(1))
            .unwrap();
        assert!(zip_h1(&zip, "example.com/a", "v1.0.0").is_err());
    }

    #[test]
    fn missing_gosum_line() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "go.mod",
            "module example.com/app\ngo 1.19\nrequire example.com/b v0.1.0\n",
        );
        let e = plan(d.path(), &[], &[], Flags::default(), UP).unwrap_err();
        assert_eq!(
            e.to_string(),
            "The module example.com/b@v0.1.0 required by go.mod has no line in go.sum; run `go mod tidy` and commit go.sum."
        );
        assert_eq!(e.kind().origin(), common::ErrorOrigin::Client);
    }

    #[test]
    fn missing_gomod() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        let e = plan(d.path(), &[rp("sub")], &[], Flags::default(), UP).unwrap_err();
        assert_eq!(
            e.to_string(),
            "The sub/go.mod file must be present for the gomod package manager"
        );
        let e = plan(d.path(), &[], &[], Flags::default(), UP).unwrap_err();
        assert_eq!(e.kind().error_type(), "InvalidRepoStructure");
    }

    #[test]
    fn package_paths_may_not_lead_outside() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("go.mod"), "module x\n").unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("out")).unwrap();
        let e = plan(d.path(), &[rp("out")], &[], Flags::default(), UP).unwrap_err();
        assert!(matches!(e, PlanError::BadPackagePath { .. }), "{e}");
    }

    #[test]
    fn local_replaces() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("repo");
        write(&r, "lib/go.mod", "module example.com/lib\n");
        write(
            &r,
            "svc/go.mod",
            "module example.com/svc\ngo 1.19\nrequire example.com/lib v0.0.0\nreplace example.com/lib => ../lib\n",
        );
        let p = plan(&r, &[rp("svc")], &[], Flags::default(), UP).unwrap();
        assert_eq!(
            p.modules[0].deps[0].source,
            DepSource::Local {
                path: "../lib".into(),
                repo_rel: rp("lib")
            }
        );
        assert!(p.downloads.is_empty());
        // outside the repository (lexically)
        write(
            &r,
            "svc/go.mod",
            "module example.com/svc\nrequire example.com/lib v0.0.0\nreplace example.com/lib => ../../lib\n",
        );
        write(d.path(), "lib/go.mod", "module example.com/lib\n");
        let e = plan(&r, &[rp("svc")], &[], Flags::default(), UP).unwrap_err();
        assert_eq!(
            e.to_string(),
            "The local file dependency path ../../lib is outside the repository"
        );
        // outside through a symlink
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(d.path().join("lib"), r.join("evil")).unwrap();
            write(
                &r,
                "svc/go.mod",
                "module example.com/svc\nrequire example.com/lib v0.0.0\nreplace example.com/lib => ../evil\n",
            );
            let e = plan(&r, &[rp("svc")], &[], Flags::default(), UP).unwrap_err();
            assert!(matches!(e, PlanError::LocalOutside { .. }), "{e}");
        }
        // missing dir
        write(
            &r,
            "svc/go.mod",
            "module example.com/svc\nrequire example.com/lib v0.0.0\nreplace example.com/lib => ./nope\n",
        );
        let e = plan(&r, &[rp("svc")], &[], Flags::default(), UP).unwrap_err();
        assert!(matches!(e, PlanError::LocalMissing { .. }), "{e}");
        // absolute
        write(
            &r,
            "svc/go.mod",
            "module example.com/svc\nrequire example.com/lib v0.0.0\nreplace example.com/lib => /lib\n",
        );
        let e = plan(&r, &[rp("svc")], &[], Flags::default(), UP).unwrap_err();
        assert_eq!(e.kind().error_type(), "UnsupportedFeature");
    }

    #[test]
    fn module_replace_and_multi_path_merge() {
        let a = m("example.com/a", "v1.0.0");
        let fork = m("example.com/fork", "v1.1.0");
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "go.mod",
            "module example.com/app\ngo 1.19\nrequire example.com/a v1.0.0\nreplace example.com/a => example.com/fork v1.1.0\n",
        );
        write(d.path(), "go.sum", &gosum_text(&[&fork], &[]));
        write(
            d.path(),
            "sub/go.mod",
            "module example.com/sub\ngo 1.19\nrequire example.com/a v1.0.0\n",
        );
        write(d.path(), "sub/go.sum", &gosum_text(&[&a, &fork], &[]));
        let p = plan(
            d.path(),
            &[rp("."), rp("sub"), rp("./sub/")],
            &[],
            Flags::default(),
            UP,
        )
        .unwrap();
        assert_eq!(p.modules.len(), 2);
        assert_eq!(
            p.modules[0].deps[0].source,
            DepSource::Module {
                path: "example.com/fork".into(),
                version: "v1.1.0".into()
            }
        );
        assert_eq!(p.modules[0].deps[0].replaces, None);
        assert_eq!(p.downloads.len(), 6);
        // conflicting sums between paths
        let evil = m("example.com/fork", "v1.1.0");
        let mut evil = evil;
        evil.h1 = a.h1.clone();
        write(d.path(), "sub/go.sum", &gosum_text(&[&a, &evil], &[]));
        let e = plan(d.path(), &[rp("."), rp("sub")], &[], Flags::default(), UP).unwrap_err();
        assert!(matches!(e, PlanError::SumConflict { .. }), "{e}");
    }

    #[test]
    fn request_replacements() {
        let a = m("example.com/a", "v1.0.0");
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "go.mod",
            "module example.com/app\ngo 1.19\nrequire example.com/a v1.0.0\n",
        );
        write(d.path(), "go.sum", &gosum_text(&[&a], &[]));
        let reps = vec![DependencyReplacement {
            kind: "gomod".into(),
            name: "example.com/a".into(),
            version: "v1.2.0".into(),
            new_name: None,
        }];
        let p = plan(d.path(), &[], &reps, Flags::default(), UP).unwrap();
        let m0 = &p.modules[0];
        assert!(m0
            .gomod_rewritten
            .as_deref()
            .unwrap()
            .ends_with("\nreplace example.com/a => example.com/a v1.2.0\n"));
        assert_eq!(
            m0.deps[0].replaces,
            Some(Replaced {
                kind: "gomod".into(),
                name: "example.com/a".into(),
                version: Some("v1.0.0".into())
            })
        );
        let rec: Vec<_> = p
            .downloads
            .iter()
            .filter(|d| d.h1 == ExpectedH1::Record)
            .collect();
        assert_eq!(rec.len(), 2); // .mod and .zip of v1.2.0
                                  // two paths -> Cachito's error
        let e = plan(d.path(), &[rp("."), rp("x")], &reps, Flags::default(), UP).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Dependency replacements are only supported for a single go module path."
        );
        let mut bad = reps.clone();
        bad[0].kind = "npm".into();
        assert!(plan(d.path(), &[], &bad, Flags::default(), UP).is_err());
        // a replacement of a module go.mod does not require fails, naming it (Cachito's message)
        let mut unused = reps.clone();
        unused.push(DependencyReplacement {
            kind: "gomod".into(),
            name: "example.com/pizza".into(),
            version: "v1.0.0".into(),
            new_name: None,
        });
        let e = plan(d.path(), &[], &unused, Flags::default(), UP).unwrap_err();
        assert_eq!(
            e.to_string(),
            "The following gomod dependency replacements don't apply: example.com/pizza"
        );
        assert_eq!(e.kind().origin(), common::ErrorOrigin::Client);
    }

    #[test]
    fn strict_vendor_and_check() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "go.mod", "module example.com/app\ngo 1.19\n");
        write(d.path(), "vendor/modules.txt", "");
        let strict = Flags {
            strict_vendor: true,
            ..Flags::default()
        };
        let e = plan(d.path(), &[], &[], strict, UP).unwrap_err();
        assert_eq!(e.message(), super::vendor::STRICT_VENDOR_MESSAGE);
        assert!(plan(d.path(), &[], &[], Flags::default(), UP).is_ok());
        let check = Flags::from_names(&["gomod-vendor-check"], true);
        assert_eq!(
            plan(d.path(), &[], &[], check, UP).unwrap().modules[0].vendor,
            VendorMode::UseExisting
        );
        write(
            d.path(),
            "vendor/modules.txt",
            "# example.com/x v1.0.0\n## explicit\nexample.com/x\n",
        );
        let e = plan(d.path(), &[], &[], check, UP).unwrap_err();
        assert_eq!(e.message(), super::vendor::INCONSISTENT_MESSAGE);
        let vend = Flags::from_names(&["gomod-vendor"], true);
        assert_eq!(
            plan(d.path(), &[], &[], vend, UP).unwrap().modules[0].vendor,
            VendorMode::Generate
        );
        std::fs::remove_dir_all(d.path().join("vendor")).unwrap();
        assert_eq!(
            plan(d.path(), &[], &[], check, UP).unwrap().modules[0].vendor,
            VendorMode::Generate
        );
    }

    #[test]
    fn read_only_source_checks_vendor_and_never_generates_it() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "go.mod", "module example.com/app\ngo 1.19\n");
        let ro = |names: &[&str]| Flags {
            read_only_source: true,
            ..Flags::from_names(names, true)
        };
        let all: [&[&str]; 4] = [
            &[],
            &["gomod-vendor"],
            &["gomod-vendor-check"],
            &["gomod-vendor", "gomod-vendor-check"],
        ];
        // no vendor/: the flags change nothing (and strict is not asked for)
        for names in all {
            let p = plan(d.path(), &[], &[], ro(names), UP).unwrap();
            assert_eq!(p.modules[0].vendor, VendorMode::None, "{names:?}");
        }
        // a consistent one is used, with or without a flag
        write(d.path(), "vendor/modules.txt", "");
        for names in all {
            let p = plan(d.path(), &[], &[], ro(names), UP).unwrap();
            assert_eq!(p.modules[0].vendor, VendorMode::UseExisting, "{names:?}");
        }
        // an inconsistent one is refused, gomod-vendor or not
        write(
            d.path(),
            "vendor/modules.txt",
            "# example.com/x v1.0.0\n## explicit\nexample.com/x\n",
        );
        for names in all {
            let e = plan(d.path(), &[], &[], ro(names), UP).unwrap_err();
            assert_eq!(
                e.message(),
                super::vendor::INCONSISTENT_MESSAGE,
                "{names:?}"
            );
        }
        // vendor/ without modules.txt: inconsistent
        std::fs::remove_file(d.path().join("vendor/modules.txt")).unwrap();
        let e = plan(d.path(), &[], &[], ro(&["gomod-vendor"]), UP).unwrap_err();
        assert_eq!(e.message(), super::vendor::INCONSISTENT_MESSAGE);
    }

    #[test]
    fn verify_downloads() {
        let a = m("example.com/a", "v1.0.0");
        let d = tempfile::tempdir().unwrap();
        let dl = |kind, h1| go_download(UP, "example.com/a", "v1.0.0", kind, h1).unwrap();
        let zp = d.path().join("a.zip");
        std::fs::write(&zp, &a.zip).unwrap();
        assert_eq!(
            verify_download(&dl(GoFileKind::Zip, ExpectedH1::Verify(a.h1.clone())), &zp).unwrap(),
            Some(a.h1.clone())
        );
        let e = verify_download(
            &dl(GoFileKind::Zip, ExpectedH1::Verify(a.gomod_h1.clone())),
            &zp,
        )
        .unwrap_err();
        assert_eq!(e.kind().error_type(), "InvalidChecksum");
        assert!(e.to_string().contains("example.com/a@v1.0.0"));
        let mp = d.path().join("a.mod");
        std::fs::write(&mp, &a.gomod).unwrap();
        assert!(verify_download(
            &dl(GoFileKind::Mod, ExpectedH1::Verify(a.gomod_h1.clone())),
            &mp
        )
        .is_ok());
        std::fs::write(&mp, b"module evil\n").unwrap();
        assert!(verify_download(
            &dl(GoFileKind::Mod, ExpectedH1::Verify(a.gomod_h1.clone())),
            &mp
        )
        .is_err());
        assert!(
            verify_download(&dl(GoFileKind::Mod, ExpectedH1::Record), &mp)
                .unwrap()
                .is_some()
        );
        let ip = d.path().join("a.info");
        std::fs::write(&ip, &a.info).unwrap();
        assert!(verify_download(&dl(GoFileKind::Info, ExpectedH1::None), &ip).is_ok());
        std::fs::write(&ip, br#"{"Version":"v6.6.6"}"#).unwrap();
        assert!(verify_download(&dl(GoFileKind::Info, ExpectedH1::None), &ip).is_err());
        std::fs::write(&ip, b"nope").unwrap();
        assert!(verify_download(&dl(GoFileKind::Info, ExpectedH1::None), &ip).is_err());
    }
}
