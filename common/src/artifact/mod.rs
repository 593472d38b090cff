//! The files a request's per-request repositories serve: recorded by the worker when it lays a
//! package manager out, looked up by the api's protocol modules. What a protocol needs to know
//! of a file beyond its name is typed, one variant per protocol.

pub mod cargo;
pub mod gomod;
pub mod npm;
pub mod pip;

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
}

impl ArtifactMeta {
    /// The metadata as recorded, while a protocol's is not typed yet.
    pub fn fields(&self) -> &serde_json::Map<String, serde_json::Value> {
        match self {
            Self::Pip(m) => m,
            Self::Npm(_) | Self::Cargo(_) | Self::Gomod(_) => {
                static NONE: std::sync::OnceLock<serde_json::Map<String, serde_json::Value>> =
                    std::sync::OnceLock::new();
                NONE.get_or_init(serde_json::Map::new)
            }
        }
    }
}

/// A JSON object as untyped metadata (anything else is none), while a protocol's is not typed.
pub fn untyped(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}
