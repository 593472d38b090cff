//! The object tier against a real S3-compatible server (moto, started per test) and against a
//! `file://` directory: the same cases on both where they mean the same thing.

#[path = "../../tests/e2e/support/s3.rs"]
#[allow(dead_code)]
mod s3;

use common::digest::{Digest, HashAlgorithm};
use common::store::object::{ObjectTier, ObjectTierError, StoreUrl, Stored, DEFAULT_PART_SIZE};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use s3::MotoServer;
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where a case runs: a tier, and a way around it to the raw objects.
enum Backend {
    S3 {
        moto: MotoServer,
        prefix: &'static str,
        files: tempfile::TempDir,
    },
    File {
        root: tempfile::TempDir,
        files: tempfile::TempDir,
    },
}

const PREFIX: &str = "larder/test";

impl Backend {
    fn s3() -> Option<Backend> {
        Some(Backend::S3 {
            moto: MotoServer::start("larder-store")?,
            prefix: PREFIX,
            files: tempfile::tempdir().unwrap(),
        })
    }

    fn file() -> Option<Backend> {
        Some(Backend::File {
            root: tempfile::tempdir().unwrap(),
            files: tempfile::tempdir().unwrap(),
        })
    }

    fn tier(&self) -> ObjectTier {
        match self {
            Backend::S3 { moto, prefix, .. } => s3_tier(moto, prefix),
            Backend::File { root, .. } => {
                let url = StoreUrl::parse(&format!("file://{}", root.path().display())).unwrap();
                ObjectTier::open(&url).unwrap()
            }
        }
    }

    /// A scratch directory for the files a case puts and gets.
    fn files(&self) -> &Path {
        match self {
            Backend::S3 { files, .. } | Backend::File { files, .. } => files.path(),
        }
    }

    /// Replace the bytes under `key` without the tier, keeping its recorded sha256.
    fn corrupt(&self, key: &str, bytes: &[u8], recorded: &Digest) {
        match self {
            Backend::S3 { moto, prefix, .. } => moto.put_raw(
                &format!("{prefix}/{key}"),
                bytes,
                &[("sha256", &recorded.hex())],
            ),
            // written in place: the same inode, so the same extended attribute
            Backend::File { root, .. } => std::fs::write(root.path().join(key), bytes).unwrap(),
        }
    }

    /// An object under `key` put without the tier, with no sha256 recorded.
    fn put_unrecorded(&self, key: &str, bytes: &[u8]) {
        match self {
            Backend::S3 { moto, prefix, .. } => {
                moto.put_raw(&format!("{prefix}/{key}"), bytes, &[])
            }
            Backend::File { root, .. } => {
                let path = root.path().join(key);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, bytes).unwrap();
            }
        }
    }

    fn multipart_uploads(&self) -> Vec<String> {
        match self {
            Backend::S3 { moto, .. } => moto.multipart_uploads(),
            Backend::File { .. } => Vec::new(),
        }
    }
}

fn s3_tier(moto: &MotoServer, prefix: &str) -> ObjectTier {
    let builder = AmazonS3Builder::new()
        .with_endpoint(moto.endpoint())
        .with_allow_http(true)
        .with_region(s3::REGION)
        .with_access_key_id(s3::CREDENTIALS.0)
        .with_secret_access_key(s3::CREDENTIALS.1);
    ObjectTier::s3(builder, &moto.bucket, prefix).unwrap()
}

/// `len` incompressible bytes (xorshift64*) from `seed` (`seed` and `seed | 1` give the same)
/// written to `path`; their sha256.
fn write_random(path: &Path, len: usize, seed: u64) -> Digest {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hasher = Sha256::new();
    let mut state = seed | 1;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for chunk in buf.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            chunk.copy_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        let n = left.min(buf.len());
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).unwrap();
        left -= n;
    }
    out.flush().unwrap();
    sha256(&hasher.finalize())
}

fn sha256(bytes: &[u8]) -> Digest {
    Digest::new(HashAlgorithm::Sha256, bytes).unwrap()
}

fn sha256_of(bytes: &[u8]) -> Digest {
    sha256(&Sha256::digest(bytes))
}

fn sha256_of_file(path: &Path) -> Digest {
    sha256_of(&std::fs::read(path).unwrap())
}

/// A file below the part size (one PUT) and one above it (a multipart upload on S3).
const SMALL: usize = 100 * 1024;
const LARGE: usize = DEFAULT_PART_SIZE * 2 + 12345;

async fn round_trip_verifies(backend: &Backend) {
    let tier = backend.tier();
    for (len, key) in [
        (SMALL, "deps/npm/left-pad/-/left-pad-1.3.0.tgz"),
        (LARGE, "bundles/sha256/big.tar.gz"),
        (0, "empty/file"),
    ] {
        let source = backend.files().join("source");
        let digest = write_random(&source, len, len as u64);
        assert_eq!(tier.head(key).await.unwrap(), None);
        assert_eq!(
            tier.put_file(key, &source, &digest).await.unwrap(),
            Stored::Written
        );
        let info = tier.head(key).await.unwrap().expect("stored");
        assert_eq!(info.size, len as u64);
        assert_eq!(
            info.sha256.as_ref(),
            Some(&digest),
            "{key}: sha256 recorded"
        );

        let dest = backend.files().join("copy");
        let got = tier.get_to_file(key, &dest).await.unwrap();
        assert_eq!(got, info);
        assert_eq!(sha256_of_file(&dest), digest, "{key}: the bytes put");

        let stream = tier.get_stream(key).await.unwrap();
        assert_eq!(stream.size, len as u64);
        assert_eq!(stream.sha256.as_ref(), Some(&digest));
        let streamed: Vec<u8> = stream
            .bytes
            .try_fold(Vec::new(), |mut all, chunk| async move {
                all.extend_from_slice(&chunk);
                Ok(all)
            })
            .await
            .unwrap();
        assert_eq!(sha256_of(&streamed), digest);
    }
    assert_eq!(backend.multipart_uploads(), Vec::<String>::new());
}

async fn same_bytes_again_converge(backend: &Backend) {
    let tier = backend.tier();
    for len in [SMALL, LARGE] {
        let key = format!("deps/pip/x/x-{len}.whl");
        let source = backend.files().join("source");
        let digest = write_random(&source, len, 7);
        assert_eq!(
            tier.put_file(&key, &source, &digest).await.unwrap(),
            Stored::Written
        );
        // another worker's copy of the same bytes
        let again = backend.files().join("again");
        std::fs::copy(&source, &again).unwrap();
        assert_eq!(
            tier.put_file(&key, &again, &digest).await.unwrap(),
            Stored::AlreadyThere
        );
    }
}

async fn other_bytes_conflict_and_leave_the_original(backend: &Backend) {
    let tier = backend.tier();
    for len in [SMALL, LARGE] {
        let key = format!("deps/cargo/c/c-{len}.crate");
        let original = backend.files().join("original");
        let digest = write_random(&original, len, 1);
        tier.put_file(&key, &original, &digest).await.unwrap();

        let other = backend.files().join("other");
        let other_digest = write_random(&other, len, 2);
        match tier.put_file(&key, &other, &other_digest).await {
            Err(ObjectTierError::Conflict {
                existing, offered, ..
            }) => {
                assert_eq!(existing, digest.hex());
                assert_eq!(offered, other_digest.hex());
            }
            other => panic!("{len} bytes: expected a conflict, got {other:?}"),
        }
        let dest = backend.files().join("copy");
        tier.get_to_file(&key, &dest).await.unwrap();
        assert_eq!(sha256_of_file(&dest), digest, "the original stays");
    }
}

async fn an_unrecorded_object_is_compared_by_its_bytes(backend: &Backend) {
    let tier = backend.tier();
    let key = "sources/example.com/a/b/0123.tar.gz";
    backend.put_unrecorded(key, b"written by something else");
    let same = backend.files().join("same");
    std::fs::write(&same, b"written by something else").unwrap();
    let same_digest = sha256_of(b"written by something else");
    assert_eq!(
        tier.put_file(key, &same, &same_digest).await.unwrap(),
        Stored::AlreadyThere
    );
    let other = backend.files().join("other");
    std::fs::write(&other, b"other bytes").unwrap();
    assert!(matches!(
        tier.put_file(key, &other, &sha256_of(b"other bytes")).await,
        Err(ObjectTierError::Conflict { .. })
    ));
    // and it is never handed back unverified
    let dest = backend.files().join("copy");
    assert!(matches!(
        tier.get_to_file(key, &dest).await,
        Err(ObjectTierError::Unrecorded(_))
    ));
    assert!(!dest.exists());
}

async fn concurrent_writers_of_the_same_bytes_converge(backend: &Backend) {
    let tier = backend.tier();
    for len in [SMALL, LARGE] {
        let key = format!("deps/gomod/m/@v/v{len}.zip");
        let source = backend.files().join(format!("source-{len}"));
        let digest = write_random(&source, len, 3);
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let (tier, key, source, digest) =
                    (tier.clone(), key.clone(), source.clone(), digest.clone());
                tokio::spawn(async move { tier.put_file(&key, &source, &digest).await })
            })
            .collect();
        let mut written = 0;
        for writer in writers {
            match writer.await.unwrap() {
                Ok(Stored::Written) => written += 1,
                Ok(Stored::AlreadyThere) => {}
                Err(e) => panic!("{len} bytes: a writer failed: {e}"),
            }
        }
        assert!(written >= 1, "someone wrote it");
        if matches!(backend, Backend::File { .. }) {
            // one hard link wins (moto's conditional writes are not atomic: on S3 two may)
            assert_eq!(written, 1, "{len} bytes: written once");
        }
        let dest = backend.files().join("copy");
        let info = tier.get_to_file(&key, &dest).await.unwrap();
        assert_eq!(info.size, len as u64);
        assert_eq!(sha256_of_file(&dest), digest, "{len} bytes: whole");
    }
    assert_eq!(backend.multipart_uploads(), Vec::<String>::new());
}

/// Only on `file://`: moto checks `If-None-Match` and then writes, so two completions at the
/// same moment can both succeed there (AWS S3's are atomic). The S3 side is
/// [`a_key_taken_during_an_upload_refuses_its_completion`].
async fn concurrent_writers_of_different_bytes_one_wins(backend: &Backend) {
    let tier = backend.tier();
    for len in [SMALL, LARGE] {
        let key = format!("deps/gomod/race/@v/v{len}.zip");
        let writers: Vec<_> = (0..3u64)
            .map(|seed| {
                let source = backend.files().join(format!("source-{len}-{seed}"));
                let digest = write_random(&source, len, 100 + 2 * seed);
                let (tier, key) = (tier.clone(), key.clone());
                let put = tokio::spawn({
                    let digest = digest.clone();
                    async move { tier.put_file(&key, &source, &digest).await }
                });
                (digest, put)
            })
            .collect();
        let mut winners = Vec::new();
        for (digest, put) in writers {
            match put.await.unwrap() {
                Ok(Stored::Written) => winners.push(digest),
                Err(ObjectTierError::Conflict { .. }) => {}
                other => panic!("{len} bytes: expected written or a conflict, got {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "{len} bytes: one writer wins");
        let dest = backend.files().join("copy");
        tier.get_to_file(&key, &dest).await.unwrap();
        assert_eq!(
            sha256_of_file(&dest),
            winners[0],
            "{len} bytes: the winner's, whole"
        );
    }
    assert_eq!(backend.multipart_uploads(), Vec::<String>::new());
}

async fn a_source_unlike_its_digest_stores_nothing(backend: &Backend) {
    let tier = backend.tier();
    for len in [SMALL, LARGE] {
        let key = format!("deps/npm/bad/-/bad-{len}.tgz");
        let source = backend.files().join("source");
        write_random(&source, len, 4);
        let wrong = sha256_of(b"not these bytes");
        assert!(
            matches!(
                tier.put_file(&key, &source, &wrong).await,
                Err(ObjectTierError::SourceChanged { .. })
            ),
            "{len} bytes"
        );
        assert_eq!(tier.head(&key).await.unwrap(), None, "{len} bytes");
    }
    // every upload aborted, nothing staged left behind
    assert_eq!(backend.multipart_uploads(), Vec::<String>::new());
    let listed: Vec<_> = tier.list("").try_collect().await.unwrap();
    assert_eq!(listed, Vec::new());
    if let Backend::File { root, .. } = backend {
        let leftovers: Vec<_> = walk(root.path())
            .into_iter()
            .filter(|p| p.is_file())
            .collect();
        assert_eq!(leftovers, Vec::<PathBuf>::new());
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(walk(&path));
        }
        all.push(path);
    }
    all
}

async fn a_corrupted_object_is_damaged_not_served(backend: &Backend) {
    let tier = backend.tier();
    for len in [SMALL, LARGE] {
        let key = format!("deps/pip/rot/rot-{len}.tar.gz");
        let source = backend.files().join("source");
        let digest = write_random(&source, len, 5);
        tier.put_file(&key, &source, &digest).await.unwrap();
        let mut rotten = std::fs::read(&source).unwrap();
        rotten[len / 2] ^= 0x01;
        backend.corrupt(&key, &rotten, &digest);
        assert_eq!(
            tier.head(&key).await.unwrap().unwrap().sha256,
            Some(digest.clone()),
            "the record still says the original"
        );

        let dest = backend.files().join("copy");
        std::fs::write(&dest, b"what was there before").unwrap();
        match tier.get_to_file(&key, &dest).await {
            Err(ObjectTierError::Damaged {
                recorded, actual, ..
            }) => {
                assert_eq!(recorded, digest.hex());
                assert_eq!(actual, sha256_of(&rotten).hex());
            }
            other => panic!("{len} bytes: expected damage, got {other:?}"),
        }
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            b"what was there before",
            "dest untouched"
        );
        let temps: Vec<_> = std::fs::read_dir(backend.files())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".larder-get-"))
            .collect();
        assert_eq!(temps, Vec::<String>::new(), "the partial copy is removed");
    }
}

async fn range_reads_return_exactly_the_bytes_asked(backend: &Backend) {
    let tier = backend.tier();
    let key = "deps/npm/r/-/r-1.0.0.tgz";
    let source = backend.files().join("source");
    let len = 3 * 1024 * 1024 + 17;
    let digest = write_random(&source, len, 6);
    tier.put_file(key, &source, &digest).await.unwrap();
    let bytes = std::fs::read(&source).unwrap();
    let len = len as u64;
    for (asked, served) in [
        (0..1, 0..1),
        (1000..5000, 1000..5000),
        (len - 10..len, len - 10..len),
        (len - 10..len + 100, len - 10..len),
        (0..len, 0..len),
    ] {
        let read = tier.get_range(key, asked.clone()).await.unwrap();
        assert_eq!(read.range, served, "{asked:?}");
        assert_eq!(read.size, len);
        let got: Vec<u8> = read
            .bytes
            .map(|chunk| chunk.unwrap())
            .collect::<Vec<_>>()
            .await
            .concat();
        assert_eq!(
            got,
            bytes[served.start as usize..served.end as usize],
            "{asked:?}"
        );
    }
}

async fn list_and_delete(backend: &Backend) {
    let tier = backend.tier();
    let source = backend.files().join("source");
    let digest = write_random(&source, 10, 8);
    for key in ["a/x", "a/y/z", "ab/w"] {
        tier.put_file(key, &source, &digest).await.unwrap();
    }
    let mut under_a: Vec<_> = tier.list("a").try_collect().await.unwrap();
    under_a.sort_by(|l, r| l.key.cmp(&r.key));
    assert_eq!(
        under_a.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["a/x", "a/y/z"]
    );
    assert!(under_a.iter().all(|o| o.size == 10));
    let all: Vec<_> = tier.list("").try_collect().await.unwrap();
    assert_eq!(all.len(), 3);

    tier.delete("a/x").await.unwrap();
    assert_eq!(tier.head("a/x").await.unwrap(), None);
    tier.delete("a/x").await.unwrap();
    assert!(matches!(
        tier.get_to_file("a/x", &backend.files().join("gone")).await,
        Err(ObjectTierError::NotFound(_))
    ));
    let all: Vec<_> = tier.list("").try_collect().await.unwrap();
    assert_eq!(all.len(), 2);
    let none: Vec<_> = tier.list("no/such/prefix").try_collect().await.unwrap();
    assert_eq!(none, Vec::new());
}

macro_rules! on_s3_and_file {
    ($($case:ident),* $(,)?) => {
        mod on_s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(backend) = super::Backend::s3() {
                        super::$case(&backend).await;
                    }
                }
            )*
        }
        mod on_file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(backend) = super::Backend::file() {
                        super::$case(&backend).await;
                    }
                }
            )*
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_of_different_bytes_one_wins_on_file() {
    concurrent_writers_of_different_bytes_one_wins(&Backend::file().unwrap()).await;
}

on_s3_and_file!(
    round_trip_verifies,
    same_bytes_again_converge,
    other_bytes_conflict_and_leave_the_original,
    an_unrecorded_object_is_compared_by_its_bytes,
    concurrent_writers_of_the_same_bytes_converge,
    a_source_unlike_its_digest_stores_nothing,
    a_corrupted_object_is_damaged_not_served,
    range_reads_return_exactly_the_bytes_asked,
    list_and_delete,
);

/// A file cut short while its parts go up: the upload is aborted, nothing is stored, and no
/// multipart upload is left in the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_that_fails_midway_is_aborted() {
    let Some(moto) = MotoServer::start("larder-store") else {
        return;
    };
    // small parts: many of them, so the cut comes while most are still to be read
    let tier = s3_tier(&moto, PREFIX).with_part_size(5 << 20);
    let files = tempfile::tempdir().unwrap();
    let source = files.path().join("source");
    let digest = write_random(&source, 64 << 20, 9);
    let key = "bundles/sha256/cut.tar.gz";
    let put = tokio::spawn({
        let (tier, source, digest) = (tier.clone(), source.clone(), digest.clone());
        async move { tier.put_file(key, &source, &digest).await }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while moto.multipart_uploads().is_empty() {
        assert!(!put.is_finished(), "the upload ended before it was seen");
        assert!(Instant::now() < deadline, "no multipart upload began");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(&source)
        .unwrap()
        .set_len(0)
        .unwrap();
    match put.await.unwrap() {
        Err(ObjectTierError::SourceChanged {
            expected_size,
            read_size,
            ..
        }) => {
            assert_eq!(expected_size, 64 << 20);
            assert!(read_size < expected_size, "{read_size}");
        }
        other => panic!("expected the put to fail on the cut file, got {other:?}"),
    }
    assert_eq!(moto.multipart_uploads(), Vec::<String>::new(), "aborted");
    assert_eq!(tier.head(key).await.unwrap(), None);
}

/// Another writer takes the key while an upload's parts go up (after its look for the key):
/// the completion, conditional, is refused, the upload aborted, and the other object stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_taken_during_an_upload_refuses_its_completion() {
    let Some(moto) = MotoServer::start("larder-store") else {
        return;
    };
    let tier = s3_tier(&moto, PREFIX).with_part_size(5 << 20);
    let files = tempfile::tempdir().unwrap();
    let source = files.path().join("source");
    let digest = write_random(&source, 64 << 20, 40);
    let key = "bundles/sha256/taken.tar.gz";
    let put = tokio::spawn({
        let (tier, source, digest) = (tier.clone(), source.clone(), digest.clone());
        async move { tier.put_file(key, &source, &digest).await }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while moto.multipart_uploads().is_empty() {
        assert!(!put.is_finished(), "the upload ended before it was seen");
        assert!(Instant::now() < deadline, "no multipart upload began");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    moto.put_raw(&format!("{PREFIX}/{key}"), b"the other writer's", &[]);
    match put.await.unwrap() {
        Err(ObjectTierError::Conflict { existing, .. }) => {
            assert_eq!(existing, sha256_of(b"the other writer's").hex())
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(moto.multipart_uploads(), Vec::<String>::new(), "aborted");
    let (status, body) = moto
        .request("GET", &format!("/{}/{PREFIX}/{key}", moto.bucket), &[], b"")
        .unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"the other writer's"[..]));
}

/// The bucket's other keys are not the tier's: it lists and reads only below its prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_keeps_tiers_apart() {
    let Some(moto) = MotoServer::start("larder-store") else {
        return;
    };
    let files = tempfile::tempdir().unwrap();
    let source = files.path().join("source");
    let digest = write_random(&source, 100, 10);
    let prod = s3_tier(&moto, "prod");
    let staging = s3_tier(&moto, "staging");
    prod.put_file("k", &source, &digest).await.unwrap();
    assert_eq!(staging.head("k").await.unwrap(), None);
    let listed: Vec<_> = staging.list("").try_collect().await.unwrap();
    assert_eq!(listed, Vec::new());
    let listed: Vec<_> = prod.list("").try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, "k");
    // the raw object is where the prefix says
    let (status, body) = moto
        .request("GET", &format!("/{}/prod/k", moto.bucket), &[], b"")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(sha256_of(&body), digest);
}

/// Peak resident memory (`VmHWM`) of this process, KiB.
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

const MEMORY_OBJECT: usize = 64 << 20;

/// Run by [`memory_does_not_grow_with_the_object`] in a process of its own (peak memory is
/// per process, and other tests run beside it in this one): put and get a 64 MiB object on
/// S3 and on `file://`, and print how much the peak grew and how fast it went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run in a child process by memory_does_not_grow_with_the_object"]
async fn memory_probe() {
    let moto = MotoServer::start("larder-store").expect("moto");
    let files = tempfile::tempdir().unwrap();
    let source = files.path().join("source");
    let digest = write_random(&source, MEMORY_OBJECT, 11);
    let local_root = tempfile::tempdir().unwrap();
    for (name, tier) in [
        ("s3", s3_tier(&moto, PREFIX)),
        ("file", ObjectTier::local(local_root.path()).unwrap()),
    ] {
        // a small round trip first, so connections and buffers are there before measuring
        let warm = files.path().join("warm");
        let warm_digest = write_random(&warm, SMALL, 12);
        tier.put_file("warm", &warm, &warm_digest).await.unwrap();
        tier.get_to_file("warm", &files.path().join("warm-copy"))
            .await
            .unwrap();
        let before = vm_hwm_kib();

        let started = Instant::now();
        tier.put_file("big", &source, &digest).await.unwrap();
        let put_secs = started.elapsed().as_secs_f64();
        let started = Instant::now();
        tier.get_to_file("big", &files.path().join("copy"))
            .await
            .unwrap();
        let get_secs = started.elapsed().as_secs_f64();
        let growth = vm_hwm_kib().saturating_sub(before);
        let mb = MEMORY_OBJECT as f64 / 1e6;
        println!(
            "MEMORY_PROBE {name} growth_kib={growth} put_mb_s={:.1} get_mb_s={:.1}",
            mb / put_secs,
            mb / get_secs
        );
    }
}

#[test]
fn memory_does_not_grow_with_the_object() {
    if !MotoServer::venv().join("bin/moto_server").exists() {
        // says so loudly (or fails under LARDER_REQUIRE_MOTO)
        assert!(MotoServer::start("unused").is_none());
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["memory_probe", "--exact", "--ignored", "--nocapture"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the probe failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("MEMORY_PROBE"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in lines {
        eprintln!("{line}");
        let growth: u64 = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("growth_kib="))
            .and_then(|v| v.parse().ok())
            .unwrap();
        // a copy of the object in memory would be 65,536 KiB; the parts in flight are a few MiB
        assert!(
            growth < (MEMORY_OBJECT as u64 / 1024) / 2,
            "peak memory grew by {growth} KiB for a {} KiB object: {line}",
            MEMORY_OBJECT / 1024
        );
    }
}

/// Run by [`s3_settings_come_from_the_aws_variables`] in a process of its own, with the
/// variables set: store one object of several parts (a multipart upload, its completion
/// signed by the tier itself) through the tier `LARDER_STORE_URL` names.
#[tokio::test]
#[ignore = "run in a child process by s3_settings_come_from_the_aws_variables"]
async fn environment_probe() {
    let url = StoreUrl::parse(&std::env::var("LARDER_STORE_URL").unwrap()).unwrap();
    let tier = ObjectTier::open(&url).unwrap();
    let files = tempfile::tempdir().unwrap();
    let source = files.path().join("source");
    let digest = write_random(&source, LARGE, ENV_PROBE_SEED);
    assert_eq!(
        tier.put_file("from-env", &source, &digest).await.unwrap(),
        Stored::Written
    );
}

const ENV_PROBE_SEED: u64 = 13;

/// `s3://bucket/prefix` takes the endpoint, region and credentials from the standard AWS
/// variables, and a plain-http endpoint only with `AWS_ALLOW_HTTP`.
#[test]
fn s3_settings_come_from_the_aws_variables() {
    let Some(moto) = MotoServer::start("larder-env") else {
        return;
    };
    let probe = |allow_http: Option<&str>| {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child
            .args(["environment_probe", "--exact", "--ignored", "--nocapture"])
            .env("LARDER_STORE_URL", "s3://larder-env/from/env")
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_REGION", s3::REGION)
            .env("AWS_ACCESS_KEY_ID", s3::CREDENTIALS.0)
            .env("AWS_SECRET_ACCESS_KEY", s3::CREDENTIALS.1)
            .env_remove("AWS_ALLOW_HTTP");
        if let Some(allow) = allow_http {
            child.env("AWS_ALLOW_HTTP", allow);
        }
        child.output().unwrap()
    };
    let refused = probe(None);
    assert!(
        !refused.status.success(),
        "an http endpoint without AWS_ALLOW_HTTP was used"
    );
    let (status, _) = moto
        .request("GET", "/larder-env/from/env/from-env", &[], b"")
        .unwrap();
    assert_eq!(status, 404);

    let stored = probe(Some("true"));
    assert!(
        stored.status.success(),
        "{}{}",
        String::from_utf8_lossy(&stored.stdout),
        String::from_utf8_lossy(&stored.stderr)
    );
    let (status, body) = moto
        .request("GET", "/larder-env/from/env/from-env", &[], b"")
        .unwrap();
    assert_eq!(status, 200);
    let expected = write_random(
        &tempfile::tempdir().unwrap().path().join("expected"),
        LARGE,
        ENV_PROBE_SEED,
    );
    assert_eq!(sha256_of(&body), expected);
}

/// Against a server that checks every signature: each request the tier makes is signed right,
/// the CompleteMultipartUpload it signs itself included, and a wrong secret gets nothing in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_signed_right() {
    let Some((moto, (key_id, secret))) = MotoServer::start_checking_signatures("larder-signed")
    else {
        return;
    };
    let tier_with = |secret: &str| {
        let builder = AmazonS3Builder::new()
            .with_endpoint(moto.endpoint())
            .with_allow_http(true)
            .with_region(s3::REGION)
            .with_access_key_id(&key_id)
            .with_secret_access_key(secret);
        ObjectTier::s3(builder, &moto.bucket, PREFIX).unwrap()
    };
    let tier = tier_with(&secret);
    let files = tempfile::tempdir().unwrap();
    for len in [SMALL, LARGE] {
        let key = format!("signed/{len}");
        let source = files.path().join("source");
        let digest = write_random(&source, len, 20);
        assert_eq!(
            tier.put_file(&key, &source, &digest).await.unwrap(),
            Stored::Written
        );
        // found by the look before any upload
        let other = files.path().join("other");
        write_random(&other, len, 22);
        let other_digest = sha256_of_file(&other);
        assert!(matches!(
            tier.put_file(&key, &other, &other_digest).await,
            Err(ObjectTierError::Conflict { .. })
        ));
        let dest = files.path().join("copy");
        tier.get_to_file(&key, &dest).await.unwrap();
        assert_eq!(sha256_of_file(&dest), digest);
        let range = tier.get_range(&key, 10..20).await.unwrap();
        assert_eq!(range.range, 10..20);
    }
    let listed: Vec<_> = tier.list("signed").try_collect().await.unwrap();
    assert_eq!(listed.len(), 2);
    tier.delete(&format!("signed/{SMALL}")).await.unwrap();
    assert_eq!(tier.head(&format!("signed/{SMALL}")).await.unwrap(), None);

    let source = files.path().join("source");
    let digest = write_random(&source, SMALL, 24);
    assert!(matches!(
        tier_with("not-the-secret")
            .put_file("signed/refused", &source, &digest)
            .await,
        Err(ObjectTierError::Backend { .. })
    ));
}
