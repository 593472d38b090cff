//! `pip`: pinned requirements files → verified sdists (and wheels with `pip-allow-binary`),
//! git and URL dependencies → `deps/pip/` and the per-request simple index.
//!
//! plan: requirements and project metadata of every requested path → project pages from
//! `LARDER_PYPI_INDEX` (or the per-pin cache) → the files to fetch (verified: requirement
//! hashes, or the index sha256; sdists must carry the right PKG-INFO) and the git dependencies
//! → the shared fetch (all or nothing) → layout (git dependencies packed from their checkouts).
//! No code from the repository or its dependencies is ever run.

pub mod graph;
pub mod index;
pub mod layout;
pub mod metadata;
pub mod names;
pub mod plan;
pub mod requirements;

#[cfg(test)]
#[path = "../../../../tests/e2e/support/pip_fixtures.rs"]
mod fixtures;

use super::{Fetched, Fetches, GitFetch, LayoutContext, PackageManager, PmContext, PmOutput};
use crate::blocking::blocking;
use crate::fetch::Check;
use common::digest::Digest;
use common::{Descriptor, Download, ErrorKind, Failure, PackageSpec};
use futures_util::{stream, StreamExt, TryStreamExt};
use index::IndexFile;
use layout::{LayoutInput, PackageInput, RepoRef, ServeInfo};
use plan::{FileKind, Plan};
use requirements::{ParsedRequirements, Requirement, Source};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The core metadata of each fetched file, by store key: taken by the checks that already
/// read the file as it is verified (an sdist's PKG-INFO; a wheel's METADATA, one small zip
/// entry), so the layout reads no file again.
pub type MetadataByKey = Arc<Mutex<BTreeMap<String, metadata::CoreMetadata>>>;

/// The `pip` package manager.
pub struct Pip;

/// What the layout needs of the plan.
pub struct PipPlan {
    plan: Plan,
    packages: Vec<PackageInput>,
    /// The files of each pin read from upstream (store key, JSON): kept once everything the
    /// plan asked for is verified.
    pin_cache: Vec<(String, Vec<u8>)>,
    repo: RepoRef,
    serve: ServeInfo,
    /// Filled by the fetch's checks.
    metadata: MetadataByKey,
}

impl PackageManager for Pip {
    type Plan = PipPlan;

    const DESCRIPTOR: Descriptor = Descriptor {
        package_keys: &["requirements_build_files", "requirements_files"],
        ..Descriptor::new("pip")
    };

    const HANDS_BACK_OUTPUT_DIR: bool = true;

    async fn plan(&self, ctx: &PmContext<'_>) -> Result<(PipPlan, Fetches), Failure> {
        let (_, what) = ctx.paths_and_what();
        ctx.progress(&what).await;
        let (app, specs) = (ctx.app_dir.to_path_buf(), ctx.specs());
        let (repo_url, commit) = (ctx.job.repo.clone(), ctx.job.git_ref.clone());
        let packages = blocking(move || {
            specs
                .iter()
                .map(|spec| parse_package(&app, spec, &repo_url, &commit))
                .collect::<Result<Vec<_>, Failure>>()
        })
        .await?;
        let all_sets: Vec<(&ParsedRequirements, bool)> = packages
            .iter()
            .flat_map(|p| {
                p.runtime
                    .iter()
                    .map(|s| (s, false))
                    .chain(p.build.iter().map(|s| (s, true)))
            })
            .collect();
        let index_reqs: Vec<&Requirement> = all_sets
            .iter()
            .flat_map(|(s, _)| s.requirements.iter())
            .filter(|r| pin_of(r).is_some())
            .collect();

        // Project pages: from the per-pin cache, else from upstream.
        let mut pages: BTreeMap<String, Vec<IndexFile>> = BTreeMap::new();
        let mut uncached: BTreeSet<String> = BTreeSet::new();
        let mut cached: BTreeMap<String, Vec<IndexFile>> = BTreeMap::new();
        // pins found in the store: they stand, whatever the index says now
        let mut pinned: BTreeSet<String> = BTreeSet::new();
        for req in &index_reqs {
            let Some((name, version)) = pin_of(req) else {
                continue;
            };
            let key = pin_cache_key(&name, &version);
            // another worker's pins, on an object store (a miss just reads the index)
            if let Err(e) = ctx.fetcher.take_into_cache(&key).await {
                tracing::warn!(key, error = %e.message, "cannot take the pin from the object store");
            }
            let hit = ctx
                .store
                .path(&key)
                .ok()
                .and_then(|p| std::fs::read(p).ok())
                .and_then(|b| serde_json::from_slice::<Vec<IndexFile>>(&b).ok())
                .filter(|files| !files.is_empty());
            match hit {
                Some(files) => {
                    ctx.fetcher.share(key.clone());
                    pinned.insert(key);
                    cached.entry(name).or_default().extend(files)
                }
                None => {
                    uncached.insert(name);
                }
            }
        }
        for (name, mut files) in cached {
            if !uncached.contains(&name) {
                files.sort_by(|a, b| a.filename.cmp(&b.filename));
                files.dedup_by(|a, b| a.filename == b.filename);
                pages.insert(name, files);
            }
        }
        if !uncached.is_empty() {
            ctx.progress(&format!(
                "Fetching the pip dependencies: reading {} project pages from the package index",
                uncached.len()
            ))
            .await;
            let fetched = fetch_pages(ctx, &uncached).await?;
            pages.extend(fetched);
        }

        let allow_binary = ctx.has_flag(plan::FLAG_ALLOW_BINARY);
        let plan = plan::plan(&all_sets, &pages, allow_binary)?;
        ctx.progress(&format!(
            "Fetching the pip dependencies: {} files, {} git dependencies",
            plan.files.len() + plan.urls.len(),
            plan.git.len()
        ))
        .await;

        let pin_cache: Vec<(String, Vec<u8>)> = index_reqs
            .iter()
            .filter(|r| uncached.contains(&r.normalized))
            .filter_map(|r| {
                let (name, version) = pin_of(r)?;
                if pinned.contains(&pin_cache_key(&name, &version)) {
                    return None;
                }
                let files = plan::files_of_pin(r, pages.get(&name)?);
                (!files.is_empty()).then(|| {
                    (
                        pin_cache_key(&name, &version),
                        serde_json::to_vec(&files).unwrap_or_default(),
                    )
                })
            })
            .collect();
        for (key, _) in &pin_cache {
            ctx.fetcher.share(key.clone());
        }
        let metadata = MetadataByKey::default();
        let fetches = Fetches {
            what,
            downloads: downloads(&plan, &metadata),
            git: plan
                .git
                .iter()
                .map(|g| GitFetch {
                    url: g.url.clone(),
                    commit: g.commit.clone(),
                })
                .collect(),
            local: Vec::new(),
        };
        let plan = PipPlan {
            plan,
            packages,
            pin_cache,
            repo: RepoRef {
                url: ctx.job.repo.clone(),
                commit: ctx.job.git_ref.clone(),
            },
            serve: ServeInfo {
                // the token goes in as the Basic password of `PIP_INDEX_URL`
                base_url: ctx.repository_url_without_token("pip"),
                token: ctx.job.repository_token.clone(),
            },
            metadata,
        };
        Ok((plan, fetches))
    }

    fn layout(plan: PipPlan, fetched: Fetched, ctx: &LayoutContext) -> Result<PmOutput, Failure> {
        for (key, bytes) in &plan.pin_cache {
            // written once: another request's pin of the same version stands
            if !ctx.store.contains(key) {
                ctx.store
                    .put_bytes(key, bytes)
                    .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
            }
        }
        // every check has run: nothing else holds the map
        let metadata = std::mem::take(
            &mut *plan
                .metadata
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let out = layout::layout(&LayoutInput {
            store: ctx.store,
            bundle: ctx.bundle,
            plan: &plan.plan,
            packages: &plan.packages,
            files: &fetched.files,
            checkouts: &fetched.git,
            repo: &plan.repo,
            serve: &plan.serve,
            repos_ca: ctx.repos_ca,
            metadata: &metadata,
            hand_back: ctx.hand_back,
        })?;
        let mut output = PmOutput {
            packages: out.packages,
            env: out.env_vars,
            config_files: out.config_files,
            ..PmOutput::default()
        };
        output.add_artifacts(out.artifacts)?;
        Ok(output)
    }
}

/// Where the files of one pinned version, as the index listed them, are kept: a second
/// request with the same pins needs no upstream request at all.
fn pin_cache_key(name: &str, version: &str) -> String {
    format!(
        "deps/pip-index/{name}/{}.json",
        common::percent::encode_component(version)
    )
}

fn pin_of(req: &Requirement) -> Option<(String, String)> {
    match &req.source {
        Source::Index { version, .. } => Some((req.normalized.clone(), version.clone())),
        _ => None,
    }
}

fn parse_package(
    app: &Path,
    spec: &PackageSpec,
    repo_url: &str,
    commit: &str,
) -> Result<PackageInput, Failure> {
    let (runtime_files, build_files) = requirements::files_for_package(app, spec)?;
    let load = |files: &[common::repo_path::RepoPath]| {
        files
            .iter()
            .map(|f| requirements::load(app, f))
            .collect::<Result<Vec<_>, _>>()
    };
    let runtime = load(&runtime_files)?;
    let build = load(&build_files)?;
    let path = spec.path.as_str();
    let fallback = metadata::Fallback::from_repository(repo_url, commit, path);
    let metadata = metadata::project_metadata(&spec.path.under(app), path, &fallback)?;
    Ok(PackageInput {
        path: spec.path.clone(),
        metadata,
        runtime,
        build,
    })
}

async fn fetch_pages(
    ctx: &PmContext<'_>,
    names: &BTreeSet<String>,
) -> Result<BTreeMap<String, Vec<IndexFile>>, Failure> {
    let base = ctx.config.pypi_index.clone();
    let concurrency = ctx.config.download_concurrency.max(1);
    // each page's read made as a slot frees up, not all of them first
    stream::iter(names.iter().cloned())
        .map(|name| {
            let base = base.clone();
            async move {
                let url = index::project_page_url(&base, &name)?;
                let Some((body, content_type)) =
                    ctx.fetcher.get_bytes(&url, Some(index::ACCEPT)).await?
                else {
                    return Err(Failure::new(
                        ErrorKind::InvalidRequestData,
                        format!("The package {name} was not found in the package index ({url})"),
                    ));
                };
                let ct = content_type.unwrap_or_else(|| "text/html".into());
                let files = blocking(move || {
                    index::parse_project_page(&body, &ct, &url).map_err(Failure::from)
                })
                .await?;
                Ok((name, files))
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}

/// The check run on a downloaded (or already stored) file before it is kept: the
/// requirements' own hashes (any of each list) and an sdist's PKG-INFO. It keeps the file's
/// core metadata in `found` (by `store_key`); metadata that cannot be read is left out, never
/// a failure, but for an index sdist's PKG-INFO, which must name the pinned version.
fn check_for(
    filename: String,
    label: String,
    accept: Vec<Vec<Digest>>,
    sdist: Option<(String, String)>,
    store_key: String,
    found: MetadataByKey,
) -> Check {
    Box::new(move |path| {
        for list in &accept {
            plan::verify_file_named(path, &filename, &label, list)?;
        }
        let core = match &sdist {
            Some((name, version)) => {
                Some(metadata::check_sdist_named(path, &filename, name, version)?.core)
            }
            None => metadata::read_core_metadata(path, &filename).and_then(Result::ok),
        };
        if let Some(core) = core {
            found
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(store_key.clone(), core);
        }
        Ok(())
    })
}

/// Every planned file with its check; nothing enters the store unless all of them verify.
fn downloads(plan: &Plan, found: &MetadataByKey) -> Vec<(Arc<Download>, Check)> {
    let index_files = plan.files.iter().map(|f| {
        let sdist = (f.kind == FileKind::Sdist).then(|| (f.name.clone(), f.version.clone()));
        let accept = if f.verify_after {
            std::iter::once(f.accept.clone())
                .chain(f.also_accept.iter().cloned())
                .collect()
        } else {
            Vec::new()
        };
        let check = check_for(
            f.filename.clone(),
            f.download.label.clone(),
            accept,
            sdist,
            f.download.store_key.clone(),
            found.clone(),
        );
        (Arc::new(f.download.clone()), check)
    });
    let url_files = plan.urls.iter().map(|u| {
        // its digest is the `Expected` the fetch checks; the check only reads its metadata
        let check = check_for(
            u.filename.clone(),
            u.download.label.clone(),
            Vec::new(),
            None,
            u.download.store_key.clone(),
            found.clone(),
        );
        (Arc::new(u.download.clone()), check)
    });
    index_files.chain(url_files).collect()
}
