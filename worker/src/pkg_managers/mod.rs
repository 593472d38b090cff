//! Package managers: each one reads its lockfiles from the unpacked source, says which files the
//! store must hold, and lays out `deps/<name>/` and its report once they are there, verified.
//!
//! A package manager is one folder here implementing [`PackageManager`] and one line in
//! [`REGISTRY`]. The driver ([`Registered::run`]) does what every one of them needs between its
//! plan and its layout: all-or-nothing staging of downloads, git checkouts, files from the
//! repository, progress messages, and the blocking pool for the layout.
//!
//! A package manager whose hand-back points a client at the request's repositories
//! ([`PackageManager::HANDS_BACK_REPOSITORY`]) is given the repositories' CA
//! (`LARDER_REPOS_CA_FILE`, [`ReposCa`]) in its [`LayoutContext`] and names it in its client
//! configuration; the pipeline hands the CA file itself back once per request.

pub mod cargo;
pub mod git_submodule;
pub mod gomod;
pub mod limits;
pub mod npm;
pub mod pip;
pub mod pnpm;
pub mod repos_ca;
pub mod rubygems;
pub mod unique_map;
pub mod yarn;

pub use repos_ca::ReposCa;

use crate::api_client::ApiClient;
use crate::artifact_spool::ArtifactSpool;
use crate::blocking::blocking;
use crate::bundle::BundleTree;
use crate::fetch::{Check, Fetcher};
use common::digest::{Expected, FileDigests};
use common::repo_path::RepoPath;
use common::{
    Artifact, Config, ConfigFile, Descriptor, Download, EnvVars, ErrorKind, Failure, Job, Package,
    PackageSpec, Store,
};
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The least time between two notes of a fetch's progress.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// The package managers this worker processes, in the order they run (Cachito's).
pub static REGISTRY: &[&dyn Registered] = &[
    &gomod::Gomod,
    &npm::Npm,
    &pip::Pip,
    &cargo::Cargo,
    &git_submodule::GitSubmodule,
    &yarn::Yarn,
    &pnpm::Pnpm,
    &rubygems::Rubygems,
];

/// Where a layout's hand-back is for: the kind of output the same plan and fetch end in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HandBack {
    /// The service: a bundle, clients pointed at the request's repositories, a report to the
    /// api.
    #[default]
    Service,
    /// `larder fetch-deps` (Hermeto's layout): `deps/<pm>/…` in an output directory, and the
    /// files an offline build needs over the source written into the app overlay with
    /// [`output_dir_mark`] where the output directory's absolute path goes (the local runner
    /// turns them into `${output_dir}` templates). Environment variables of kind `path` are
    /// relative to the output directory.
    OutputDir,
}

/// Stands for the output directory's absolute path in what a layout writes for
/// [`HandBack::OutputDir`] (no `$` in it: every `$` of the rest is escaped as `$$` when it
/// becomes a template). Random per process: a fixed mark written in a repository's own files
/// would have been turned into the output directory's path too.
pub fn output_dir_mark() -> &'static str {
    static MARK: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("@larder-output-dir-{}@", common::token::new_salt()));
    &MARK
}

/// Where a running package manager's progress goes.
#[derive(Clone, Copy)]
pub enum ProgressTo<'a> {
    /// The request's progress on the api (it moves the request's `updated`).
    Api(&'a ApiClient),
    /// The log only (`larder fetch-deps`: no api).
    Log,
}

/// The registry's descriptors, for the api's validation and `/status`.
pub fn catalogue() -> common::Catalogue {
    common::Catalogue(REGISTRY.iter().map(|pm| pm.descriptor()).collect())
}

/// One package manager: plan what the store must hold, then lay out and report.
pub trait PackageManager: Send + Sync + 'static {
    /// What the plan knows that the layout needs.
    type Plan: Send + 'static;

    const DESCRIPTOR: Descriptor;

    /// Whether the layout reads `Fetched::files` (each file's digests, as it was verified); a
    /// layout that does not spares 184 bytes for each of tens of thousands of files.
    const READS_DIGESTS: bool = true;

    /// Whether its hand-back points a client at this request's repositories: then its layout
    /// is given the repositories' CA when one is configured (`LayoutContext::repos_ca`) and
    /// names it in that configuration, and the request hands the CA file back.
    const HANDS_BACK_REPOSITORY: bool = true;

    /// Whether its layout makes Hermeto's hand-back for [`HandBack::OutputDir`] (`larder
    /// fetch-deps`); one that does not is refused there by name.
    const HANDS_BACK_OUTPUT_DIR: bool = false;

    /// Read the lockfiles of every requested path (`ctx.specs()`) and list the files the store
    /// must hold. May read upstream indexes; never downloads an artifact itself.
    fn plan(
        &self,
        ctx: &PmContext<'_>,
    ) -> impl Future<Output = Result<(Self::Plan, Fetches), Failure>> + Send;

    /// Lay out `deps/<name>/` and report, from the plan and the verified files. Runs on the
    /// blocking pool.
    fn layout(plan: Self::Plan, fetched: Fetched, ctx: &LayoutContext)
        -> Result<PmOutput, Failure>;
}

/// What one package manager needs fetched.
#[derive(Default)]
pub struct Fetches {
    /// Progress messages say `<what> (n/total)`.
    pub what: String,
    /// Files to download, or to re-verify when the store has them: all or nothing.
    /// (shared: a package manager may keep each in its plan too, for the layout)
    pub downloads: Vec<(Arc<Download>, Check)>,
    /// Repositories at a commit, checked out for the layout (and kept in the store).
    pub git: Vec<GitFetch>,
    /// Files of the repository to verify and keep in the store (npm `file:` tarballs).
    pub local: Vec<LocalFile>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GitFetch {
    pub url: String,
    pub commit: common::commit::CommitId,
}

pub struct LocalFile {
    pub path: RepoPath,
    pub store_key: String,
    pub expected: Expected,
    /// Names the file in messages.
    pub label: String,
}

/// What the fetch produced, for the layout.
#[derive(Default)]
pub struct Fetched {
    /// The digests of every downloaded and local file, by store key (computed as they were
    /// verified: the layout never reads a file again to hash it).
    pub files: BTreeMap<String, FileDigests>,
    /// Each git fetch: its checkout (removed once the layout is done) and its archive's key.
    pub git: BTreeMap<GitFetch, GitCheckout>,
    /// How many files came from the network (the rest were in the store).
    pub from_network: usize,
    /// Where the checkouts are: removed when the layout is done with them.
    checkouts: Option<tempfile::TempDir>,
}

#[derive(Clone, Debug)]
pub struct GitCheckout {
    pub dir: PathBuf,
    pub store_key: String,
}

/// What a layout works with.
pub struct LayoutContext<'a> {
    pub job: &'a Job,
    pub config: &'a Config,
    pub store: &'a Store,
    /// The bundle: `app/` (the source) and `deps/` below its root; stored files are placed in
    /// it without a copy.
    pub bundle: &'a BundleTree,
    /// The CA of the request's repositories (`LARDER_REPOS_CA_FILE`), for a package manager
    /// that hands back a repository: its client configuration names it
    /// ([`ReposCa::relative_to`], [`ReposCa::env_var`]); the file itself, [`ReposCa::PATH`],
    /// is handed back once by the pipeline.
    pub repos_ca: Option<&'a ReposCa>,
    /// What the hand-back is for.
    pub hand_back: HandBack,
}

impl LayoutContext<'_> {
    /// The bundle's root: `app/` (the source) and `deps/` below it.
    pub fn bundle_root(&self) -> &Path {
        self.bundle.root()
    }

    /// Put the stored file `key` at `path` (`deps/...`) in the bundle.
    pub fn place_stored(&self, path: &str, key: &str) -> Result<(), Failure> {
        self.bundle
            .place_stored(self.store, path, key)
            .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))
    }

    pub fn app_dir(&self) -> PathBuf {
        self.bundle_root().join("app")
    }

    pub fn deps_dir(&self) -> PathBuf {
        self.bundle_root().join("deps")
    }
}

/// What a package manager works with for one request.
pub struct PmContext<'a> {
    pub job: &'a Job,
    /// The unpacked source (`app/` in the bundle).
    pub app_dir: &'a Path,
    /// `deps/` in the bundle.
    pub deps_dir: &'a Path,
    /// The bundle being laid out.
    pub bundle: &'a BundleTree,
    pub store: &'a Store,
    pub config: &'a Config,
    /// Where progress goes.
    pub progress_to: ProgressTo<'a>,
    /// What the hand-back is for (the layout's [`LayoutContext::hand_back`]).
    pub hand_back: HandBack,
    /// Verified downloads into the store, bounded by `LARDER_DOWNLOAD_CONCURRENCY`.
    pub fetcher: &'a Fetcher,
    /// The package manager being run.
    pub descriptor: &'static Descriptor,
    /// The repositories' CA of this request, when `LARDER_REPOS_CA_FILE` is set (read once per
    /// request, [`ReposCa::for_request`]).
    pub repos_ca: Option<&'a ReposCa>,
}

impl PmContext<'_> {
    /// The request's `packages.<name>` entries, or the repository root.
    pub fn specs(&self) -> Vec<PackageSpec> {
        self.job
            .packages
            .iter()
            .find(|(name, _)| name.as_str() == self.descriptor.name)
            .map(|(_, specs)| specs.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec![PackageSpec::default()])
    }

    /// The requested paths, and the progress text naming them (`Fetching the npm dependencies
    /// at the "a", "b" directories`).
    pub fn paths_and_what(&self) -> (Vec<RepoPath>, String) {
        let paths: Vec<RepoPath> = self.specs().into_iter().map(|s| s.path).collect();
        let where_ = paths
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let what = format!(
            "Fetching the {} dependencies at the {where_} director{}",
            self.descriptor.name,
            if paths.len() == 1 { "y" } else { "ies" }
        );
        (paths, what)
    }

    /// This request's repository for a protocol, token in the path:
    /// `<public>/repos/<id>/t/<token>/<segment>/`.
    pub fn repository_url(&self, segment: &str) -> String {
        format!("{}{segment}/", self.job.repository_url)
    }

    /// The same without the token (clients that send it as a header): `<public>/repos/<id>/<segment>/`.
    pub fn repository_url_without_token(&self, segment: &str) -> String {
        format!(
            "{}/repos/{}/{segment}/",
            self.config.public_url.trim_end_matches('/'),
            self.job.id
        )
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.job.flags.iter().any(|f| f == flag)
    }

    /// Report progress; it moves the request's `updated`, which clients watch for liveness.
    pub async fn progress(&self, reason: &str) {
        match self.progress_to {
            ProgressTo::Api(api) => {
                if let Err(e) = api.progress(self.job.id, reason).await {
                    tracing::warn!(error = %e, "could not report progress");
                }
            }
            ProgressTo::Log => tracing::info!(pm = self.descriptor.name, "{reason}"),
        }
    }

    /// Make sure every file is in the store, verified: nothing enters it unless all of them
    /// verify. Downloads run `LARDER_DOWNLOAD_CONCURRENCY` at a time (futures made as they
    /// start, so memory does not grow with the lockfile), progress every tenth.
    pub async fn fetch_all(
        &self,
        fetches: Fetches,
        keep_digests: bool,
    ) -> Result<Fetched, Failure> {
        let Fetches {
            what,
            downloads,
            git,
            local,
        } = fetches;
        let total = downloads.len() + git.len() + local.len();
        let staged = self
            .stage_all(downloads, &what, total, keep_digests)
            .await?;
        let staged_count = staged.len();
        let mut done = staged_count;
        let mut out = Fetched::default();
        let checkouts = self
            .store
            .temp_dir("checkouts-")
            .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
        for (i, g) in git.into_iter().enumerate() {
            let dir = checkouts.path().join(i.to_string());
            let store_key =
                crate::git_deps::checkout(self.fetcher, &g.url, &g.commit, &dir).await?;
            out.git.insert(g, GitCheckout { dir, store_key });
            done += 1;
        }
        let mut local_files = Vec::with_capacity(local.len());
        for l in local {
            let source = l.path.resolve(self.app_dir).map_err(|e| {
                Failure::new(ErrorKind::InvalidRepoStructure, format!("{}: {e}", l.label))
            })?;
            let digests = blocking(move || {
                FileDigests::of_file(&source)
                    .map(|d| (source, d))
                    .map_err(|e| Failure::new(ErrorKind::InvalidRepoStructure, e.to_string()))
            })
            .await?;
            crate::fetch::verify(&l.expected, &digests.1, &l.label)?;
            local_files.push((l.store_key, digests));
            done += 1;
        }
        if done > staged_count {
            self.progress(&format!("{what} ({done}/{total})")).await;
        }
        // everything verified: only now does anything new enter the store
        let fetcher = self.fetcher.clone();
        // straight into the map: no second list of 75,000 files
        let (files, from_network) = blocking(move || {
            let mut files = BTreeMap::new();
            let mut from_network = 0;
            for s in staged {
                let f = fetcher.commit(s)?;
                from_network += usize::from(f.from_network);
                if let Some(digests) = f.digests {
                    files.insert(f.store_key, *digests);
                }
            }
            Ok::<_, Failure>((files, from_network))
        })
        .await?;
        out.files = files;
        out.from_network = from_network;
        tracing::info!(
            pm = self.descriptor.name,
            files = total,
            from_network = out.from_network,
            "dependencies verified and in the store"
        );
        let store = self.store.clone();
        let locals = blocking(move || {
            local_files
                .into_iter()
                .map(|(key, (source, digests))| {
                    if !store.contains(&key) {
                        let mut temp = store
                            .temp_file()
                            .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
                        let mut file = std::fs::File::open(&source)
                            .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
                        std::io::copy(&mut file, &mut temp)
                            .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
                        store
                            .persist(temp, &key)
                            .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
                    }
                    Ok((key, digests))
                })
                .collect::<Result<Vec<_>, Failure>>()
        })
        .await?;
        out.files.extend(locals);
        out.checkouts = Some(checkouts);
        Ok(out)
    }
}

/// The files of `batch` the store holds with a record that answers for them, staged; and the
/// others, to stage the long way.
async fn stage_stored_batch(
    fetcher: Fetcher,
    batch: Vec<(Arc<Download>, Check)>,
    keep_digests: bool,
) -> Result<(Vec<crate::fetch::Staged>, Vec<(Arc<Download>, Check)>), Failure> {
    blocking(move || {
        let mut found = Vec::with_capacity(batch.len());
        let mut missing = Vec::new();
        for (download, check) in batch {
            match fetcher.stage_stored(&download, &check) {
                Some(Ok(mut file)) => {
                    if !keep_digests {
                        file.forget_digests();
                    }
                    found.push(file);
                }
                Some(Err(failure)) => return Err(failure),
                None => missing.push((download, check)),
            }
        }
        Ok((found, missing))
    })
    .await
}

/// Files checked in one blocking task of the stored pass.
const STORED_BATCH: usize = 64;

/// `items` in vectors of `size` (the last one shorter).
fn chunked<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::with_capacity(items.len().div_ceil(size));
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        out.push(items.by_ref().take(size).collect());
    }
    out
}

async fn stage_one(
    fetcher: Fetcher,
    download: Arc<Download>,
    check: Check,
) -> Result<crate::fetch::Staged, Failure> {
    fetcher.stage(&download, check).await
}

impl PmContext<'_> {
    /// Verify (store hits) or download every file, `LARDER_DOWNLOAD_CONCURRENCY` at a time.
    /// Nothing enters the store until `Fetcher::commit`.
    async fn stage_all(
        &self,
        items: Vec<(Arc<Download>, Check)>,
        what: &str,
        total: usize,
        keep_digests: bool,
    ) -> Result<Vec<crate::fetch::Staged>, Failure> {
        let step = (total / 10).max(1);
        let mut last_note = Instant::now();
        let limit = self.config.download_concurrency.max(1);
        // what the store holds with a record that answers for it, in blocking tasks of many
        // files each (on a warm request that is every file, each a few system calls and its
        // package manager's check), as many at once as downloads
        let mut staged = Vec::with_capacity(items.len());
        let mut rest = Vec::new();
        let fetcher = self.fetcher.clone();
        let batches: Vec<_> = chunked(items, STORED_BATCH)
            .into_iter()
            .map(|batch| stage_stored_batch(fetcher.clone(), batch, keep_digests))
            .collect();
        let mut batches = futures_util::stream::iter(batches).buffer_unordered(limit);
        while let Some(batch) = batches.next().await {
            let (found, missing) = batch?;
            staged.extend(found);
            rest.extend(missing);
            if last_note.elapsed() >= PROGRESS_INTERVAL {
                let n = staged.len();
                self.progress(&format!("{what} ({n}/{total})")).await;
                last_note = Instant::now();
            }
        }
        drop(batches);
        let items = rest;
        let mut items = items.into_iter();
        let mut running = FuturesUnordered::new();
        loop {
            // futures are made as slots free up: memory does not grow with the lockfile
            while running.len() < limit {
                let Some((download, check)) = items.next() else {
                    break;
                };
                running.push(stage_one(self.fetcher.clone(), download, check));
            }
            let Some(result) = running.next().await else {
                return Ok(staged);
            };
            let mut file = result?;
            if !keep_digests {
                file.forget_digests();
            }
            staged.push(file);
            let n = staged.len();
            // a note every tenth, when the last is a while ago: a request that finds everything
            // stored is done before the first would tell anyone anything
            if n % step == 0 && last_note.elapsed() >= PROGRESS_INTERVAL {
                self.progress(&format!("{what} ({n}/{total})")).await;
                last_note = Instant::now();
            }
        }
    }
}

/// What a package manager found and made.
#[derive(Default)]
pub struct PmOutput {
    pub packages: Vec<Package>,
    pub env: EnvVars,
    pub config_files: Vec<ConfigFile>,
    pub artifacts: ArtifactSpool,
}

impl PmOutput {
    pub fn merge(&mut self, other: PmOutput) -> Result<(), Failure> {
        self.packages.extend(other.packages);
        self.env.extend(other.env);
        self.config_files.extend(other.config_files);
        self.artifacts
            .append(other.artifacts)
            .map_err(spool_failure)
    }

    /// Spool `artifacts` for the report.
    pub fn add_artifacts(
        &mut self,
        artifacts: impl IntoIterator<Item = Artifact>,
    ) -> Result<(), Failure> {
        for a in artifacts {
            self.artifacts.push(&a).map_err(spool_failure)?;
        }
        Ok(())
    }
}

fn spool_failure(e: std::io::Error) -> Failure {
    Failure::new(
        ErrorKind::FileAccessError,
        format!("Cannot keep the request's artifacts: {e}"),
    )
}

/// A package manager as the pipeline runs it (the dyn-compatible face of [`PackageManager`]).
pub trait Registered: Send + Sync {
    fn descriptor(&self) -> &'static Descriptor;
    /// [`PackageManager::HANDS_BACK_REPOSITORY`].
    fn hands_back_repository(&self) -> bool;
    /// [`PackageManager::HANDS_BACK_OUTPUT_DIR`].
    fn hands_back_output_dir(&self) -> bool;
    fn run<'a>(&'a self, ctx: &'a PmContext<'a>) -> BoxFuture<'a, Result<PmOutput, Failure>>;
}

impl<P: PackageManager> Registered for P {
    fn descriptor(&self) -> &'static Descriptor {
        &P::DESCRIPTOR
    }

    fn hands_back_repository(&self) -> bool {
        P::HANDS_BACK_REPOSITORY
    }

    fn hands_back_output_dir(&self) -> bool {
        P::HANDS_BACK_OUTPUT_DIR
    }

    fn run<'a>(&'a self, ctx: &'a PmContext<'a>) -> BoxFuture<'a, Result<PmOutput, Failure>> {
        async move {
            let (plan, fetches) = self.plan(ctx).await?;
            let fetched = ctx.fetch_all(fetches, P::READS_DIGESTS).await?;
            let (job, config, store) = (ctx.job.clone(), ctx.config.clone(), ctx.store.clone());
            let repos_ca = ctx.repos_ca.filter(|_| P::HANDS_BACK_REPOSITORY).cloned();
            let bundle = ctx.bundle.clone();
            let hand_back = ctx.hand_back;
            let output = blocking(move || {
                let lctx = LayoutContext {
                    job: &job,
                    config: &config,
                    store: &store,
                    bundle: &bundle,
                    repos_ca: repos_ca.as_ref(),
                    hand_back,
                };
                P::layout(plan, fetched, &lctx)
            })
            .await?;
            Ok(output)
        }
        .boxed()
    }
}
