//! The store every api and worker of a deployment shares, as `LARDER_STORE_URL` names it.

use std::path::PathBuf;

use super::object::{ObjectTier, ObjectTierError, StoreUrl};
use super::Store;
use crate::Config;

/// A directory every process reads and writes in place, or an object store that no process
/// has on its disk.
#[derive(Clone, Debug)]
pub enum SharedStore {
    /// `LARDER_DATA_DIR`, or a `file://` URL: one machine, or a mount every machine shares.
    Directory(Store),
    /// `s3://`: a worker works in a cache of its own (`LARDER_WORK_DIR`), takes from the
    /// objects what its requests need and puts there what they add; the api reads the objects.
    Objects(ObjectTier),
}

impl SharedStore {
    /// The store `config` names.
    pub fn open(config: &Config) -> Result<Self, ObjectTierError> {
        Ok(match &config.store_url {
            None => Self::Directory(Store::new(&config.data_dir)),
            Some(StoreUrl::File(root)) => Self::Directory(Store::new(root)),
            Some(url @ StoreUrl::S3 { .. }) => Self::Objects(ObjectTier::open(url)?),
        })
    }

    /// Where a worker's requests keep and read files: the store itself, or the worker's cache
    /// of the object store.
    pub fn worker_directory(&self, config: &Config) -> Store {
        match self {
            Self::Directory(store) => store.clone(),
            Self::Objects(_) => Store::new(config.work_dir()),
        }
    }

    /// The directory a process reads files of an earlier version from (logs, the secret
    /// file): the store's, or `LARDER_DATA_DIR` on an object store.
    pub fn directory(&self, config: &Config) -> Store {
        match self {
            Self::Directory(store) => store.clone(),
            Self::Objects(_) => Store::new(PathBuf::from(&config.data_dir)),
        }
    }

    pub fn objects(&self) -> Option<&ObjectTier> {
        match self {
            Self::Directory(_) => None,
            Self::Objects(tier) => Some(tier),
        }
    }
}
