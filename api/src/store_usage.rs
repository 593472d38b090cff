//! What the store holds, by area: each package manager's files (`deps/<name>/`), the source
//! archives, the bundles, and the rest. Larder keeps no running total (files are written by
//! every worker, damaged ones removed and fetched again, bundles released by cleanup), so the
//! store itself is measured: a walk of the directory, or a listing of the object store's keys.
//! `/ui/status` shows the last measurement and asks for a new one when it is old; one runs at a
//! time, and the next waits at least twenty times as long as the last took (a store that takes
//! a second to list is listed at most once in twenty).

use common::store::SharedStore;
use futures_util::TryStreamExt;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The shortest time between two measurements.
const MIN_INTERVAL: Duration = Duration::from_secs(10);
/// How much longer than a measurement took the next one waits.
const INTERVAL_FACTOR: u32 = 20;

/// Files and bytes of one area of the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AreaUsage {
    pub files: u64,
    pub bytes: u64,
}

/// One measurement of the whole store.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// `deps/npm`, `sources`, `bundles`, … in key order.
    pub areas: BTreeMap<String, AreaUsage>,
    pub at: chrono::NaiveDateTime,
    pub took: Duration,
}

impl Measurement {
    pub fn total(&self) -> AreaUsage {
        self.areas
            .values()
            .fold(AreaUsage::default(), |t, a| AreaUsage {
                files: t.files + a.files,
                bytes: t.bytes + a.bytes,
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("walking the store: {0}")]
    Io(#[from] std::io::Error),
    #[error("listing the object store: {0}")]
    Objects(#[from] common::store::object::ObjectTierError),
}

/// The area a store key counts in: `deps/<name>` for a package manager's files, otherwise its
/// first segment.
pub fn area_of(key: &str) -> &str {
    let mut segments = key.splitn(3, '/');
    let first = segments.next().unwrap_or_default();
    match (first, segments.next(), segments.next()) {
        ("deps", Some(name), Some(_)) => &key[..first.len() + 1 + name.len()],
        _ => first,
    }
}

/// The store's usage as last measured, and the measuring.
#[derive(Default)]
pub struct StoreUsage {
    inner: Mutex<State>,
}

#[derive(Default)]
struct State {
    last: Option<Measurement>,
    last_error: Option<String>,
    running: bool,
    /// When the next measurement may start.
    next: Option<Instant>,
}

impl StoreUsage {
    /// The last measurement (or the error of the last attempt), starting a new one in the
    /// background when none runs and the last is old enough.
    pub fn current(
        self: &std::sync::Arc<Self>,
        store: &SharedStore,
    ) -> (Option<Measurement>, Option<String>) {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let due = state.next.is_none_or(|next| Instant::now() >= next);
        if due && !state.running {
            state.running = true;
            let usage = self.clone();
            let store = store.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let result = measure(&store).await;
                let took = started.elapsed();
                let mut state = usage.inner.lock().unwrap_or_else(|e| e.into_inner());
                state.running = false;
                state.next = Some(Instant::now() + (took * INTERVAL_FACTOR).max(MIN_INTERVAL));
                match result {
                    Ok(areas) => {
                        state.last_error = None;
                        state.last = Some(Measurement {
                            areas,
                            at: chrono::Utc::now().naive_utc(),
                            took,
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not measure the store");
                        state.last_error = Some(e.to_string());
                    }
                }
            });
        }
        (state.last.clone(), state.last_error.clone())
    }
}

/// Every file of the store, by area.
pub async fn measure(store: &SharedStore) -> Result<BTreeMap<String, AreaUsage>, MeasureError> {
    match store {
        SharedStore::Directory(dir) => {
            let root = dir.root().to_path_buf();
            tokio::task::spawn_blocking(move || walk(&root))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?
        }
        SharedStore::Objects(tier) => {
            let mut areas = BTreeMap::new();
            let mut listed = tier.list("");
            while let Some(object) = listed.try_next().await? {
                add(&mut areas, area_of(&object.key), object.size);
            }
            Ok(areas)
        }
    }
}

fn add(areas: &mut BTreeMap<String, AreaUsage>, area: &str, bytes: u64) {
    let usage = match areas.get_mut(area) {
        Some(usage) => usage,
        None => areas.entry(area.to_string()).or_default(),
    };
    usage.files += 1;
    usage.bytes += bytes;
}

/// The regular files below `root` (symbolic links are not followed), by the area of their path.
fn walk(root: &Path) -> Result<BTreeMap<String, AreaUsage>, MeasureError> {
    let mut areas = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // removed while the walk ran (a temporary directory, a released bundle)
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() {
                let Ok(meta) = entry.metadata() else { continue };
                let key = path.strip_prefix(root).unwrap_or(&path);
                add(&mut areas, area_of(&key.to_string_lossy()), meta.len());
            }
        }
    }
    Ok(areas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_count_in_their_package_manager_or_first_segment() {
        assert_eq!(area_of("deps/npm/a/-/a-1.0.0.tgz"), "deps/npm");
        assert_eq!(area_of("deps/pip/x.whl"), "deps/pip");
        assert_eq!(area_of("deps/stray"), "deps");
        assert_eq!(area_of("sources/ab/cd.tar.gz"), "sources");
        assert_eq!(area_of("bundles/sha256/ab"), "bundles");
        assert_eq!(area_of("secret.key"), "secret.key");
    }

    #[tokio::test]
    async fn a_directory_is_measured_by_area() {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            ("deps/npm/a/-/a-1.0.0.tgz", 10),
            ("deps/npm/b/-/b-2.0.0.tgz", 5),
            ("deps/pip/x-1.0.tar.gz", 7),
            ("sources/ab.tar.gz", 3),
        ];
        for (key, len) in files {
            let path = dir.path().join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, vec![0u8; len]).unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("deps/npm/link")).unwrap();
        let store = SharedStore::Directory(common::store::Store::new(dir.path()));
        let areas = measure(&store).await.unwrap();
        let shown: Vec<(&str, u64, u64)> = areas
            .iter()
            .map(|(k, a)| (k.as_str(), a.files, a.bytes))
            .collect();
        assert_eq!(
            shown,
            [("deps/npm", 2, 15), ("deps/pip", 1, 7), ("sources", 1, 3)]
        );
    }
}
