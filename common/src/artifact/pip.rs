//! What the per-request pip index knows of one of its files beyond name, version and file name.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipMeta {
    /// Lowercase hex; the index pages give it as `#sha256=` and in PEP 691 `hashes`.
    pub sha256: String,
    /// PEP 345 `Requires-Python` as the upstream index listed it.
    #[serde(default)]
    pub requires_python: Option<String>,
    pub size: u64,
    #[serde(default)]
    pub kind: PipFileKind,
    /// Where the index serves the file, below its base URL: `files/<…>`.
    pub path: String,
    /// The file's core metadata `License-Expression` (PEP 639), else its `License`, when it
    /// declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
}

/// How a file came into the request: only index files are listed on project pages; the
/// others are reached by the URL the rewritten requirements files give them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PipFileKind {
    /// An sdist or wheel from the package index.
    #[default]
    Index,
    /// A git dependency, packed at its commit.
    Vcs,
    /// A direct URL dependency.
    Url,
}
