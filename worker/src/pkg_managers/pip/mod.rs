//! `pip`: pinned requirements files → verified sdists (and wheels with `pip-allow-binary`),
//! git and URL dependencies → `deps/pip/` and the per-request simple index.
//!
//! parse (requirements, project metadata) → project pages from `LARDER_PYPI_INDEX` (or the
//! per-pin cache) → plan → stage every file (verified: requirement hashes, or the index sha256;
//! sdists must carry the right PKG-INFO) → git dependencies → commit into the store (all or
//! nothing) → layout. No code from the repository or its dependencies is ever run.

pub mod index;
pub mod layout;
pub mod metadata;
pub mod names;
pub mod plan;
pub mod requirements;

#[cfg(test)]
#[path = "../../../../tests/e2e/support/pip_fixtures.rs"]
mod fixtures;

use super::{PmContext, PmOutput};
use crate::blocking::blocking;
use crate::fetch::{Check, Staged};
use common::{Download, ErrorKind, Failure};
use futures_util::{stream, StreamExt, TryStreamExt};
use index::IndexFile;
use layout::{PackageInput, RepoRef, ServeInfo};
use plan::{FileKind, Plan};
use requirements::{ParsedRequirements, Requirement, Source};
use std::collections::{BTreeMap, BTreeSet};

/// Where the files of one pinned version, as the index listed them, are kept: a second
/// request with the same pins needs no upstream request at all.
fn pin_cache_key(name: &str, version: &str) -> String {
    format!("deps/pip-index/{name}/{}.json", layout::pct(version))
}

fn pin_of(req: &Requirement) -> Option<(String, String)> {
    match &req.source {
        Source::Index { version, .. } => Some((req.normalized.clone(), version.clone())),
        _ => None,
    }
}

fn io_failure(e: impl std::fmt::Display) -> Failure {
    Failure::new(ErrorKind::FileAccessError, e.to_string())
}

pub async fn run(ctx: &PmContext<'_>) -> Result<PmOutput, Failure> {
    let specs = ctx.specs();
    let mut inputs = Vec::new();
    for spec in specs {
        let shown = if spec.path.is_root() {
            "."
        } else {
            spec.path.as_str()
        };
        ctx.progress(&format!(
            "Fetching the pip dependencies at the \"{shown}\" directory"
        ))
        .await;
        let app = ctx.app_dir.to_path_buf();
        let (repo_url, commit) = (ctx.job.repo.clone(), ctx.job.git_ref.clone());
        inputs.push(blocking(move || parse_package(&app, &spec, &repo_url, &commit)).await?);
    }
    let all_sets: Vec<(&ParsedRequirements, bool)> = inputs
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
    for req in &index_reqs {
        let (name, version) = pin_of(req).expect("index requirement");
        let key = pin_cache_key(&name, &version);
        let hit = ctx
            .store
            .path(&key)
            .ok()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<Vec<IndexFile>>(&b).ok())
            .filter(|files| !files.is_empty());
        match hit {
            Some(files) => cached.entry(name).or_default().extend(files),
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
    let plan = plan::plan(&all_sets, &pages, allow_binary).map_err(|e| e.failure())?;
    let total = plan.files.len() + plan.urls.len();
    ctx.progress(&format!(
        "Fetching the pip dependencies: {} files, {} git dependencies",
        total,
        plan.git.len()
    ))
    .await;

    // Stage every file (nothing enters the store yet), then git, then commit.
    let staged = stage_all(ctx, &plan).await?;
    let mut plan = plan;
    let checkout_root = ctx.store.temp_dir("pip-git-").map_err(io_failure)?;
    for (i, g) in plan.git.iter_mut().enumerate() {
        let dest = checkout_root.path().join(i.to_string());
        g.store_key = crate::git_deps::checkout(
            ctx.store,
            ctx.fetcher.outbound(),
            &g.url,
            &crate::git_deps::commit_id(&g.url, &g.commit)?,
            &dest,
        )
        .await?;
    }
    drop(checkout_root);
    let fetched = ctx.commit(staged).await?;
    let from_network = fetched.iter().filter(|f| f.from_network).count();
    tracing::info!(
        files = fetched.len(),
        from_network,
        "pip dependencies are in the store"
    );

    // Remember the files of each pin read from upstream.
    let cache: Vec<(String, Vec<u8>)> = index_reqs
        .iter()
        .filter(|r| uncached.contains(&r.normalized))
        .filter_map(|r| {
            let (name, version) = pin_of(r)?;
            let files = plan::files_of_pin(r, pages.get(&name)?);
            (!files.is_empty()).then(|| {
                (
                    pin_cache_key(&name, &version),
                    serde_json::to_vec(&files).unwrap_or_default(),
                )
            })
        })
        .collect();

    let repo = RepoRef {
        url: ctx.job.repo.clone(),
        commit: ctx.job.git_ref.clone(),
    };
    let serve = ServeInfo {
        base_url: pip_base_url(ctx),
        token: ctx.job.repository_token.clone(),
    };
    let (store, app, bundle) = (
        ctx.store.clone(),
        ctx.app_dir.to_path_buf(),
        ctx.deps_dir
            .parent()
            .expect("deps/ is inside the work directory")
            .to_path_buf(),
    );
    let out = blocking(move || {
        for (key, bytes) in &cache {
            store.put_bytes(key, bytes).map_err(io_failure)?;
        }
        layout::layout(store.root(), &bundle, &app, &plan, &inputs, &repo, &serve)
            .map_err(|e| e.failure())
    })
    .await?;
    Ok(PmOutput {
        packages: out.packages,
        env: out.env_vars,
        config_files: out.config_files,
        artifacts: out.artifacts,
    })
}

/// `<public>/repos/<id>/pypi/`: the token goes in as the Basic password of `PIP_INDEX_URL`.
fn pip_base_url(ctx: &PmContext<'_>) -> String {
    let with_token = ctx.job.repository_url.as_str();
    let suffix = format!("t/{}/", ctx.job.repository_token);
    match with_token.strip_suffix(&suffix) {
        Some(base) => format!("{base}pypi/"),
        None => ctx.repository_url("pypi"),
    }
}

fn parse_package(
    app: &std::path::Path,
    spec: &common::PackageSpec,
    repo_url: &str,
    commit: &str,
) -> Result<PackageInput, Failure> {
    let (runtime_files, build_files) =
        requirements::files_for_package(app, spec).map_err(|e| e.failure())?;
    let load = |files: &[String]| -> Result<Vec<ParsedRequirements>, Failure> {
        files
            .iter()
            .map(|f| requirements::load(app, f).map_err(|e| e.failure()))
            .collect()
    };
    let runtime = load(&runtime_files)?;
    let build = load(&build_files)?;
    let path = if spec.path.is_root() {
        ".".to_string()
    } else {
        spec.path.as_str().to_string()
    };
    let dir = if path == "." {
        app.to_path_buf()
    } else {
        app.join(&path)
    };
    let fallback = metadata::Fallback::from_repository(repo_url, commit, &path);
    let metadata = metadata::project_metadata(&dir, &path, &fallback).map_err(|e| e.failure())?;
    Ok(PackageInput {
        path,
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
    let futures: Vec<_> = names
        .iter()
        .cloned()
        .map(|name| {
            let base = base.clone();
            async move {
                let url = index::project_page_url(&base, &name).map_err(|e| e.failure())?;
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
                    index::parse_project_page(&body, &ct, &url).map_err(|e| e.failure())
                })
                .await?;
                Ok((name, files))
            }
        })
        .collect();
    stream::iter(futures)
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}

/// The check run on a downloaded (or already stored) file before it is kept.
fn check_for(
    filename: String,
    label: String,
    accept: Vec<Vec<requirements::FileHash>>,
    verify: bool,
    sdist: Option<(String, String)>,
) -> Check {
    Box::new(move |path| {
        if verify {
            for list in &accept {
                plan::verify_file_named(path, &filename, &label, list).map_err(|e| e.failure())?;
            }
        }
        if let Some((name, version)) = &sdist {
            metadata::check_sdist_named(path, &filename, name, version).map_err(|e| e.failure())?;
        }
        Ok(())
    })
}

/// Download and verify every planned file into staged temporary files; the first failure
/// drops them all (nothing is stored).
async fn stage_all(ctx: &PmContext<'_>, plan: &Plan) -> Result<Vec<Staged>, Failure> {
    let mut work: Vec<(Download, Check)> = Vec::new();
    for f in &plan.files {
        let sdist = (f.kind == FileKind::Sdist).then(|| (f.name.clone(), f.version.clone()));
        let check = check_for(
            f.filename.clone(),
            f.download.label.clone(),
            std::iter::once(f.accept.clone())
                .chain(f.also_accept.iter().cloned())
                .collect(),
            f.verify_after,
            sdist,
        );
        work.push((f.download.clone(), check));
    }
    for u in &plan.urls {
        let check = check_for(
            u.filename.clone(),
            u.download.label.clone(),
            vec![vec![u.hash.clone()]],
            u.verify_after,
            None,
        );
        work.push((u.download.clone(), check));
    }
    {
        let total = work.len();
        ctx.stage_all(work, "Fetching the pip dependencies", total)
            .await
    }
}

/// The `pip` package manager (its `run` drives the whole flow itself).
pub struct Pip;

pub static DESCRIPTOR: common::Descriptor = common::Descriptor {
    package_keys: &["requirements_build_files", "requirements_files"],
    ..common::Descriptor::new("pip")
};

impl super::Registered for Pip {
    fn descriptor(&self) -> &'static common::Descriptor {
        &DESCRIPTOR
    }

    fn run<'a>(
        &'a self,
        ctx: &'a PmContext<'a>,
    ) -> futures_util::future::BoxFuture<'a, Result<PmOutput, Failure>> {
        futures_util::FutureExt::boxed(run(ctx))
    }
}
