//! The files a request's per-request repositories serve: recorded by the worker when it lays a
//! package manager out, looked up by the api's protocol modules. What a protocol needs to know
//! of a file beyond its name is typed, one variant per protocol.

pub mod cargo;
pub mod gomod;
pub mod npm;
pub mod pip;
pub mod rubygems;

use crate::pm::PmName;
use serde::{Deserialize, Serialize};

/// One file a per-request repository serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub pm: PmName,
    pub name: String,
    pub version: String,
    pub filename: String,
    pub store_key: String,
    pub meta: ArtifactMeta,
}

/// What the protocol serving an artifact needs to know of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum ArtifactMeta {
    /// Boxed: a packument entry is many times the size of the other variants.
    Npm(Box<npm::NpmMeta>),
    Pip(pip::PipMeta),
    Cargo(cargo::CargoMeta),
    Gomod(gomod::GoMeta),
    Rubygems(rubygems::GemMeta),
}
