//! Package managers: each one reads its lockfiles from the unpacked source, makes sure every
//! dependency is in the store (verified), lays out `deps/<pm>/`, and reports what it found.

pub mod cargo;
pub mod git_submodule;
pub mod gomod;
pub mod limits;
pub mod npm;
pub mod pip;
pub mod unique_map;

use crate::api_client::ApiClient;
use crate::fetch::{Check, Fetched, Fetcher, Staged};
use common::{
    ArtifactReport, Config, ConfigFile, EnvVars, ErrorKind, Failure, Job, Package, PackageManager,
    PackageSpec, Store,
};
use futures_util::{stream, StreamExt, TryStreamExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a package manager works with for one request.
pub struct PmContext<'a> {
    pub job: &'a Job,
    /// The unpacked source (`app/` in the bundle).
    pub app_dir: &'a Path,
    /// `deps/` in the bundle.
    pub deps_dir: &'a Path,
    pub store: &'a Store,
    pub config: &'a Config,
    pub api: &'a ApiClient,
    /// Verified downloads into the store, bounded by `LARDER_DOWNLOAD_CONCURRENCY`.
    pub fetcher: &'a Fetcher,
}

impl PmContext<'_> {
    /// The request's `packages.<pm>` entries, or the repository root.
    pub fn specs(&self, pm: PackageManager) -> Vec<PackageSpec> {
        self.job
            .packages
            .get(&pm)
            .filter(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(|| vec![PackageSpec::default()])
    }

    /// This request's repository for `pm`, token included: `<public>/repos/<id>/t/<token>/<pm>/`.
    pub fn repository_url(&self, pm: &str) -> String {
        format!("{}{pm}/", self.job.repository_url)
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.job.flags.iter().any(|f| f == flag)
    }

    /// Verify (store hits) or download every file with bounded concurrency, reporting
    /// `<what> (n/total)` about every tenth. Nothing enters the store until `commit`, so one
    /// bad file leaves the store unchanged.
    pub async fn stage_all(
        &self,
        items: Vec<(common::Download, Check)>,
        what: &str,
    ) -> Result<Vec<Staged>, Failure> {
        let total = items.len();
        let step = (total / 10).max(1);
        let done = AtomicUsize::new(0);
        // Collected first: a lazily mapped stream of borrowing futures trips the `Send` check.
        let futures: Vec<_> = items
            .into_iter()
            .map(|(download, check)| {
                let done = &done;
                async move {
                    let staged = self.fetcher.stage(&download, check).await?;
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_multiple_of(step) || n == total {
                        self.progress(&format!("{what} ({n}/{total})")).await;
                    }
                    Ok::<_, Failure>(staged)
                }
            })
            .collect();
        stream::iter(futures)
            .buffer_unordered(self.config.download_concurrency.max(1))
            .try_collect()
            .await
    }

    /// Move staged files into the store.
    pub async fn commit(&self, staged: Vec<Staged>) -> Result<Vec<Fetched>, Failure> {
        let fetcher = self.fetcher.clone();
        crate::pipeline::blocking(move || fetcher.commit(staged)).await
    }

    /// Report progress; it moves the request's `updated`, which clients watch for liveness.
    pub async fn progress(&self, reason: &str) {
        if let Err(e) = self.api.progress(self.job.id, reason).await {
            tracing::warn!(error = %e, "could not report progress");
        }
    }
}

/// What a package manager found and made.
#[derive(Default)]
pub struct PmOutput {
    pub packages: Vec<Package>,
    pub env: EnvVars,
    pub config_files: Vec<ConfigFile>,
    pub artifacts: Vec<ArtifactReport>,
}

impl PmOutput {
    pub fn merge(&mut self, other: PmOutput) {
        self.packages.extend(other.packages);
        self.env.extend(other.env);
        self.config_files.extend(other.config_files);
        self.artifacts.extend(other.artifacts);
    }
}

/// The order package managers run in.
pub const ORDER: [PackageManager; 7] = [
    PackageManager::Gomod,
    PackageManager::Npm,
    PackageManager::Pip,
    PackageManager::Cargo,
    PackageManager::Rubygems,
    PackageManager::GitSubmodule,
    PackageManager::Yarn,
];

pub fn not_implemented(pm: PackageManager) -> Failure {
    Failure::new(
        ErrorKind::UnsupportedFeature,
        format!("The {pm} package manager is not supported by this Larder deployment yet"),
    )
}

/// Whether `pm` opens the request's repository (`app/.git`): gomod reads tags for the main
/// module's version, git-submodule reads the submodules. Other requests get `app/` without it.
pub fn reads_git_dir(pm: PackageManager) -> bool {
    matches!(pm, PackageManager::Gomod | PackageManager::GitSubmodule)
}

pub async fn run(pm: PackageManager, ctx: &PmContext<'_>) -> Result<PmOutput, Failure> {
    match pm {
        PackageManager::Cargo => cargo::run(ctx).await,
        PackageManager::GitSubmodule => git_submodule::run(ctx).await,
        PackageManager::Gomod => gomod::run(ctx).await,
        PackageManager::Npm => npm::run(ctx).await,
        PackageManager::Pip => pip::run(ctx).await,
        other => Err(not_implemented(other)),
    }
}
