//! Package managers as the api sees them: a name, and what a request may ask of it. The
//! worker's registry describes each package manager it implements; `larder` hands that
//! catalogue to the api, so validation, `/status` and the worker never disagree.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A package manager's one name: on the wire (`pkg_managers`, `packages.<name>`), in the store
/// (`deps/<name>/`), in artifacts and in the per-request repository paths.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PmName(String);

impl PmName {
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for PmName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for PmName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// The package managers Cachito knows: a request naming one this deployment does not implement
/// gets Cachito's "not enabled" rather than "invalid".
pub const CACHITO_PACKAGE_MANAGERS: &[&str] =
    &["gomod", "npm", "pip", "git-submodule", "yarn", "rubygems"];

/// What the api needs to know of one package manager.
#[derive(Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub name: &'static str,
    /// Whether a request may configure `packages.<name>` (git-submodule: no).
    pub takes_packages: bool,
    /// Keys a `packages.<name>` entry may carry besides `path` (pip: its requirements files).
    pub package_keys: &'static [&'static str],
    /// Whether `dependency_replacements` of this type are applied (to one path only).
    pub replacements: bool,
    /// What one package path is called in messages ("go module").
    pub path_noun: &'static str,
    /// Package managers that may not process the same path (Cachito: npm and yarn).
    pub exclusive_with: &'static [&'static str],
    /// Whether it reads the repository's `.git` (so the work directory must keep it).
    pub reads_git_dir: bool,
    /// Whether the source archive must hold the repository's submodules (git-submodule).
    pub submodules: bool,
}

impl Descriptor {
    /// The defaults: `packages` entries with a `path` only, no replacements, no exclusions.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            takes_packages: true,
            package_keys: &[],
            replacements: false,
            path_noun: "package",
            exclusive_with: &[],
            reads_git_dir: false,
            submodules: false,
        }
    }
}

/// The package managers this deployment processes, in the order they run.
#[derive(Clone, Debug)]
pub struct Catalogue(pub Vec<&'static Descriptor>);

impl Catalogue {
    pub fn get(&self, name: &str) -> Option<&'static Descriptor> {
        self.0.iter().copied().find(|d| d.name == name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().map(|d| d.name)
    }

    /// Every name a request may mention: those processed here and Cachito's others.
    pub fn known(&self, name: &str) -> bool {
        self.get(name).is_some() || CACHITO_PACKAGE_MANAGERS.contains(&name)
    }
}

impl From<&str> for PmName {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}
