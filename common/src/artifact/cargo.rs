//! What the per-request cargo registry knows of one of its `.crate`s beyond name and version.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CargoMeta {
    /// The crate version's verbatim line of the upstream sparse index (its `cksum` checked
    /// against Cargo.lock): the per-request index serves it as it is.
    pub index_line: String,
    /// Cargo.lock's sha256 of the `.crate`, hex.
    pub cksum: String,
}
