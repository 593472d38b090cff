//! Single-flight downloads: which request is fetching a store key right now, across the requests
//! of one worker and the worker processes sharing one store directory.
//!
//! Under `<store>/download-leases/`:
//! - `owners/<token>`: one file per request that takes leases ([`LeaseOwner`]), locked (`flock`)
//!   for as long as the request lives. The kernel drops the lock when its process dies, so a
//!   `try_lock` tells a live owner from a dead one without a descriptor per lease (a cold
//!   request holds tens of thousands).
//! - `<sha256 of key>`: a lease, a symlink whose target is its owner's token. One `symlink` call
//!   makes it or fails because one exists: a lease is never seen half written.
//! - `<sha256 of key>.ready`: a hard link to the owner's staged file once it verified. A waiter
//!   takes a link of its own and verifies it with its own digests instead of waiting for the
//!   owner's commit: that comes only once the owner's whole request verified, which may be
//!   waiting on a lease of the waiter's request (two requests would wait on each other).
//! - `takeover.lock`: held while a dead owner's lease is replaced, so two waiters never both take
//!   it over.

use super::Store;
use crate::{Classify, ErrorKind};
use sha2::{Digest as _, Sha256};
use std::ffi::OsStr;
use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const OWNERS: &str = "owners";
const TAKEOVER: &str = "takeover.lock";
/// An owner file before it is locked: never read as an owner.
const UNLOCKED_SUFFIX: &str = ".new";

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl Classify for LeaseError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::FileAccessError
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> LeaseError + '_ {
    move |source| LeaseError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One request as a holder of leases: its owner file, locked while it lives. Dropped (with the
/// last of its leases), the file goes.
#[derive(Debug)]
pub struct LeaseOwner {
    store: Store,
    /// `<store>/download-leases`
    dir: PathBuf,
    token: String,
    /// Its lock is what says this owner is alive.
    _locked: File,
}

/// What [`LeaseOwner::try_take`] found.
#[derive(Debug)]
pub enum Attempt {
    Taken(DownloadLease),
    /// Held by another live owner, or changing hands: look again later.
    HeldByOther,
    /// This owner holds it already (the same key twice in one request).
    HeldByThisOwner,
}

impl LeaseOwner {
    pub fn new(store: &Store) -> Result<Arc<Self>, LeaseError> {
        let dir = store.root().join("download-leases");
        let owners = dir.join(OWNERS);
        fs::create_dir_all(&owners).map_err(io_at(&owners))?;
        remove_dead_owners(&owners);
        let token = format!("{:032x}", rand::random::<u128>());
        let path = owners.join(&token);
        // locked under a name no waiter reads, then renamed: no waiter finds it unlocked
        let unlocked = owners.join(format!("{token}{UNLOCKED_SUFFIX}"));
        let file = File::create_new(&unlocked).map_err(io_at(&unlocked))?;
        if let Err(e) = file.lock().and_then(|()| fs::rename(&unlocked, &path)) {
            let _ = fs::remove_file(&unlocked);
            return Err(io_at(&path)(e));
        }
        Ok(Arc::new(Self {
            store: store.clone(),
            dir,
            token,
            _locked: file,
        }))
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Take the lease on `key`, or say who holds it. A lease whose owner is dead is taken over.
    pub fn try_take(self: &Arc<Self>, key: &str) -> Result<Attempt, LeaseError> {
        let name = LeaseName::of(key);
        let path = self.dir.join(name.lease());
        // a lease released between our symlink and our read_link: try again, a few times
        for _ in 0..3 {
            match std::os::unix::fs::symlink(&self.token, &path) {
                Ok(()) => return Ok(Attempt::Taken(self.lease(name))),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_at(&path)(e)),
            }
            let holder = match fs::read_link(&path) {
                Ok(holder) => holder,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_at(&path)(e)),
            };
            if holder.as_os_str() == OsStr::new(&self.token) {
                return Ok(Attempt::HeldByThisOwner);
            }
            if owner_is_alive(&self.dir, holder.as_os_str())? {
                return Ok(Attempt::HeldByOther);
            }
            return self.take_over(name, holder.as_os_str());
        }
        Ok(Attempt::HeldByOther)
    }

    /// A link of its own (a temporary file in the store) to the verified file the holder of
    /// `key`'s lease published; None when there is none.
    pub fn link_ready(&self, key: &str) -> Result<Option<tempfile::TempPath>, LeaseError> {
        let ready = self.dir.join(LeaseName::of(key).ready());
        let tmp = self.store.root().join("tmp");
        fs::create_dir_all(&tmp).map_err(io_at(&tmp))?;
        match tempfile::Builder::new()
            .prefix("ready-")
            .make_in(&tmp, |path| fs::hard_link(&ready, path))
        {
            Ok(linked) => Ok(Some(linked.into_temp_path())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_at(&ready)(e)),
        }
    }

    fn lease(self: &Arc<Self>, name: LeaseName) -> DownloadLease {
        DownloadLease {
            owner: self.clone(),
            name,
            published: false,
        }
    }

    /// Replace the lease of the dead owner `dead` with ours, unless someone else got there first.
    fn take_over(self: &Arc<Self>, name: LeaseName, dead: &OsStr) -> Result<Attempt, LeaseError> {
        // another waiter is taking one over: ours is looked at again on the next poll
        let Some(_takeover) = try_lock_takeover(&self.dir)? else {
            return Ok(Attempt::HeldByOther);
        };
        // under the lock nobody else replaces a lease, and a dead owner releases nothing: if it
        // still names `dead`, it is ours to replace
        let path = self.dir.join(name.lease());
        match fs::read_link(&path) {
            Ok(holder) if holder.as_os_str() == dead => {}
            _ => return Ok(Attempt::HeldByOther),
        }
        fs::remove_file(&path).map_err(io_at(&path))?;
        let _ = fs::remove_file(self.dir.join(name.ready()));
        match std::os::unix::fs::symlink(&self.token, &path) {
            Ok(()) => Ok(Attempt::Taken(self.lease(name))),
            // taken afresh between our remove and our symlink
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Attempt::HeldByOther),
            Err(e) => Err(io_at(&path)(e)),
        }
    }
}

impl Drop for LeaseOwner {
    fn drop(&mut self) {
        // removed while still locked; the lock goes with the descriptor right after
        let _ = fs::remove_file(self.dir.join(OWNERS).join(&self.token));
    }
}

/// Whether the owner `token` is alive: its file exists and someone holds its lock.
fn owner_is_alive(dir: &Path, token: &OsStr) -> Result<bool, LeaseError> {
    // a token is one file name; anything else is no owner's
    if Path::new(token).file_name() != Some(token) {
        return Ok(false);
    }
    let path = dir.join(OWNERS).join(token);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_at(&path)(e)),
    };
    // shared: two waiters looking at once do not take each other for the owner
    match file.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => Err(io_at(&path)(e)),
    }
}

/// The lock under which leases of dead owners are replaced or removed; None while another
/// holds it.
fn try_lock_takeover(dir: &Path) -> Result<Option<File>, LeaseError> {
    let path = dir.join(TAKEOVER);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_at(&path))?;
    match lock.try_lock() {
        Ok(()) => Ok(Some(lock)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(io_at(&path)(e)),
    }
}

/// Remove what owners that died left behind (their processes crashed): leases of keys nobody
/// asked for since, with their published files, and the owner files. Returns how many leases
/// went. A lease being taken over meanwhile is left to its taker.
pub fn remove_dead_leases(store: &Store) -> Result<usize, LeaseError> {
    let dir = store.root().join("download-leases");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_at(&dir)(e)),
    };
    let Some(_takeover) = try_lock_takeover(&dir)? else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if let Some((_, token)) = name.split_once(".ready.") {
            // a published file's link that its owner died before renaming
            if !owner_is_alive(&dir, OsStr::new(token))? {
                let _ = fs::remove_file(&path);
            }
            continue;
        }
        if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let Ok(holder) = fs::read_link(&path) else {
            continue;
        };
        // under the takeover lock only a live owner's lease changes, and a dead one stays dead
        if !owner_is_alive(&dir, holder.as_os_str())? {
            let _ = fs::remove_file(dir.join(format!("{name}.ready")));
            fs::remove_file(&path).map_err(io_at(&path))?;
            removed += 1;
        }
    }
    remove_dead_owners(&dir.join(OWNERS));
    Ok(removed)
}

/// Remove the files of owners whose process died (their leases are then stale by absence).
fn remove_dead_owners(owners: &Path) {
    let Ok(entries) = fs::read_dir(owners) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(UNLOCKED_SUFFIX) {
            continue;
        }
        let Ok(file) = File::open(entry.path()) else {
            continue;
        };
        if file.try_lock().is_ok() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The file name of a key's lease: the sha256 of the key (keys are paths; leases are one flat
/// directory).
#[derive(Clone, Copy, Debug)]
struct LeaseName([u8; 32]);

impl LeaseName {
    fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    fn lease(&self) -> String {
        hex::encode(self.0)
    }

    fn ready(&self) -> String {
        format!("{}.ready", hex::encode(self.0))
    }
}

/// The right to download one key; released (with its published file) when dropped: once the
/// file is in the store, or when the request gave up on it.
#[derive(Debug)]
pub struct DownloadLease {
    owner: Arc<LeaseOwner>,
    name: LeaseName,
    published: bool,
}

impl DownloadLease {
    /// Let waiters link `verified` (a staged file, synced, never written again) before this
    /// request commits it.
    pub fn publish(&mut self, verified: &Path) -> Result<(), LeaseError> {
        let ready = self.owner.dir.join(self.name.ready());
        // linked under a name of ours, then renamed over a dead owner's leftover, if any
        let linking = self
            .owner
            .dir
            .join(format!("{}.{}", self.name.ready(), self.owner.token));
        let _ = fs::remove_file(&linking);
        fs::hard_link(verified, &linking).map_err(io_at(&linking))?;
        if let Err(e) = fs::rename(&linking, &ready) {
            let _ = fs::remove_file(&linking);
            return Err(io_at(&ready)(e));
        }
        self.published = true;
        Ok(())
    }
}

impl Drop for DownloadLease {
    fn drop(&mut self) {
        let dir = &self.owner.dir;
        // the published file first: a waiter that then finds no lease either looks in the
        // store, then takes the lease itself
        if self.published {
            let _ = fs::remove_file(dir.join(self.name.ready()));
        }
        let path = dir.join(self.name.lease());
        if fs::read_link(&path).is_ok_and(|holder| holder.as_os_str() == self.owner.token.as_str())
        {
            let _ = fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        (dir, store)
    }

    fn taken(attempt: Attempt) -> DownloadLease {
        match attempt {
            Attempt::Taken(lease) => lease,
            other => panic!("not taken: {other:?}"),
        }
    }

    #[test]
    fn one_owner_takes_a_key_the_other_waits_until_it_is_released() {
        let (_dir, store) = store();
        let (a, b) = (
            LeaseOwner::new(&store).unwrap(),
            LeaseOwner::new(&store).unwrap(),
        );
        let lease = taken(a.try_take("deps/npm/x.tgz").unwrap());
        assert!(matches!(
            b.try_take("deps/npm/x.tgz").unwrap(),
            Attempt::HeldByOther
        ));
        assert!(matches!(
            a.try_take("deps/npm/x.tgz").unwrap(),
            Attempt::HeldByThisOwner
        ));
        // another key is free
        drop(taken(b.try_take("deps/npm/y.tgz").unwrap()));
        drop(lease);
        drop(taken(b.try_take("deps/npm/x.tgz").unwrap()));
        drop(taken(a.try_take("deps/npm/x.tgz").unwrap()));
    }

    #[test]
    fn a_lease_is_released_on_drop_and_its_owner_file_with_the_owner() {
        let (dir, store) = store();
        let owner = LeaseOwner::new(&store).unwrap();
        let owner_file = dir
            .path()
            .join("download-leases/owners")
            .join(owner.token());
        assert!(owner_file.is_file());
        let lease = taken(owner.try_take("k").unwrap());
        let lease_file = dir
            .path()
            .join("download-leases")
            .join(LeaseName::of("k").lease());
        assert!(lease_file.symlink_metadata().is_ok());
        drop(owner);
        assert!(owner_file.is_file(), "a lease keeps its owner alive");
        drop(lease);
        assert!(lease_file.symlink_metadata().is_err());
        assert!(!owner_file.exists());
    }

    #[test]
    fn a_dead_owners_lease_is_taken_over_once() {
        let (dir, store) = store();
        let owners = dir.path().join("download-leases/owners");
        let (a, b) = (
            LeaseOwner::new(&store).unwrap(),
            LeaseOwner::new(&store).unwrap(),
        );
        // a dead process: its lease and its owner file are left, nobody holds the lock
        let dead = "0123456789abcdef0123456789abcdef";
        File::create(owners.join(dead)).unwrap();
        let path = dir
            .path()
            .join("download-leases")
            .join(LeaseName::of("k").lease());
        std::os::unix::fs::symlink(dead, &path).unwrap();

        let lease = taken(a.try_take("k").unwrap());
        assert_eq!(fs::read_link(&path).unwrap(), Path::new(a.token()));
        assert!(matches!(b.try_take("k").unwrap(), Attempt::HeldByOther));
        drop(lease);

        // a dead owner whose file was already removed
        std::os::unix::fs::symlink("gone", &path).unwrap();
        drop(taken(b.try_take("k").unwrap()));

        // the next owner made removes the dead one's file
        let _c = LeaseOwner::new(&store).unwrap();
        assert!(!owners.join(dead).exists());
        assert!(owners.join(a.token()).exists(), "a live owner stays");
    }

    #[test]
    fn dead_owners_leases_are_removed_live_ones_kept() {
        let (dir, store) = store();
        let leases = dir.path().join("download-leases");
        let live = LeaseOwner::new(&store).unwrap();
        let kept = taken(live.try_take("kept").unwrap());
        let dead = "0123456789abcdef0123456789abcdef";
        File::create(leases.join(OWNERS).join(dead)).unwrap();
        let stale = LeaseName::of("stale");
        std::os::unix::fs::symlink(dead, leases.join(stale.lease())).unwrap();
        fs::write(leases.join(stale.ready()), b"verified").unwrap();
        fs::write(
            leases.join(format!("{}.{dead}", stale.ready())),
            b"verified",
        )
        .unwrap();

        assert_eq!(remove_dead_leases(&store).unwrap(), 1);
        let mut left: Vec<_> = fs::read_dir(&leases)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut expected = vec![
            LeaseName::of("kept").lease(),
            OWNERS.to_string(),
            TAKEOVER.to_string(),
        ];
        expected.sort();
        assert_eq!(left, expected);
        assert!(!leases.join(OWNERS).join(dead).exists());
        assert!(leases.join(OWNERS).join(live.token()).exists());
        drop(kept);
    }

    #[test]
    fn a_takeover_in_progress_is_not_raced() {
        let (dir, store) = store();
        let a = LeaseOwner::new(&store).unwrap();
        let path = dir
            .path()
            .join("download-leases")
            .join(LeaseName::of("k").lease());
        std::os::unix::fs::symlink("dead", &path).unwrap();
        let takeover = File::create(dir.path().join("download-leases").join(TAKEOVER)).unwrap();
        takeover.lock().unwrap();
        assert!(matches!(a.try_take("k").unwrap(), Attempt::HeldByOther));
        takeover.unlock().unwrap();
        drop(taken(a.try_take("k").unwrap()));
    }

    #[test]
    fn a_published_file_is_linked_by_waiters_and_goes_with_the_lease() {
        let (dir, store) = store();
        let (a, b) = (
            LeaseOwner::new(&store).unwrap(),
            LeaseOwner::new(&store).unwrap(),
        );
        let mut lease = taken(a.try_take("k").unwrap());
        assert!(b.link_ready("k").unwrap().is_none());
        let staged = store.temp_file().unwrap().into_temp_path();
        fs::write(&staged, b"verified").unwrap();
        lease.publish(&staged).unwrap();
        let linked = b.link_ready("k").unwrap().unwrap();
        assert_eq!(fs::read(&linked).unwrap(), b"verified");
        drop(lease);
        assert!(b.link_ready("k").unwrap().is_none());
        // the waiter's own link outlives the lease
        assert_eq!(fs::read(&linked).unwrap(), b"verified");
        let left: Vec<_> = fs::read_dir(dir.path().join("download-leases"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, vec![OsStr::new(OWNERS)], "nothing else is left");
    }
}
