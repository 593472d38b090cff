//! Types and building blocks shared by Larder's api, worker and CLI.

pub mod archive;
pub mod artifact;
pub mod commit;
pub mod config;
pub mod digest;
pub mod failure;
pub mod gomod;
pub mod job_queue;
pub mod manifest;
pub mod model;
pub mod percent;
pub mod pm;
pub mod purl;
pub mod pypi;
pub mod repo_path;
pub mod sbom;
pub mod store;
/// A real S3 server (moto) for the tests, as the end-to-end tests start it.
#[cfg(test)]
#[path = "../../tests/e2e/support/s3.rs"]
#[allow(dead_code)]
mod test_s3;
pub mod text;
pub mod token;
pub mod transfer;

pub use artifact::{Artifact, ArtifactMeta};
pub use config::{Config, HostList, HostPattern};
pub use failure::{Classify, ErrorKind, ErrorOrigin, Failure};
pub use model::*;
pub use pm::{Catalogue, Descriptor, PmName};
pub use store::Store;

/// Cachito's timestamp format: naive UTC with microseconds and no zone suffix.
pub fn format_time(t: &chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}
