//! `npm`: package-lock.json / npm-shrinkwrap.json (lockfile v1–v3) → verified tarballs in the
//! store, `deps/npm/…` in the bundle, an offline lockfile in `app/`, and the configuration files
//! pointing a real `npm ci` at the per-request registry (`api/src/repos/npm.rs`).
//!
//! parse (`lockfile`) → plan (`plan`, `classify`) → fetch all registry/https tarballs (all or
//! nothing, SRI verified) + git dependencies (`git_deps::checkout`, packed as npm packs) +
//! `file:` tarballs inside the repository → `layout` (report, artifacts, rewritten lockfiles).

pub mod classify;
pub mod integrity;
pub mod layout;
pub mod lockfile;
pub mod pack;
pub mod plan;

use super::{
    Fetched, Fetches, GitFetch, LayoutContext, LocalFile, PackageManager, PmContext, PmOutput,
};
use crate::blocking::blocking;
use common::digest::FileDigests;
use common::{Descriptor, ErrorKind, Failure};
use std::collections::BTreeSet;
use std::sync::Arc;

fn io_failure(e: impl std::fmt::Display) -> Failure {
    Failure::new(ErrorKind::FileAccessError, e.to_string())
}

/// The `npm` package manager.
pub struct Npm;

/// What the layout needs of the plan.
pub struct NpmPlan {
    /// Each requested package directory (its lockfile entries moved into its plan).
    projects: Vec<(lockfile::Project, plan::Plan)>,
    /// Git dependencies whose packed tarball the store does not hold yet, with their checkout.
    to_pack: Vec<(plan::GitDep, GitFetch)>,
}

impl PackageManager for Npm {
    type Plan = NpmPlan;

    const DESCRIPTOR: Descriptor = Descriptor {
        exclusive_with: &["yarn"],
        ..Descriptor::new("npm")
    };

    const HANDS_BACK_OUTPUT_DIR: bool = true;

    async fn plan(&self, ctx: &PmContext<'_>) -> Result<(NpmPlan, Fetches), Failure> {
        let (mut projects, what) =
            plan_projects(ctx, |app, path| Ok(lockfile::read_project(app, path)?)).await?;
        let (fetches, to_pack) = collect_fetches(&mut projects, what, ctx.store);
        Ok((NpmPlan { projects, to_pack }, fetches))
    }

    fn layout(plan: NpmPlan, fetched: Fetched, ctx: &LayoutContext) -> Result<PmOutput, Failure> {
        let digests = pack_git_deps(&plan.projects, &plan.to_pack, fetched, ctx.store)?;
        let lctx = layout_context(ctx, "npm", layout::at_store_key);
        let mut output = PmOutput {
            env: layout::default_env_vars(),
            ..PmOutput::default()
        };
        let tarballs = emit_artifacts(&plan.projects, &digests, &lctx, ctx.store, &mut output)?;
        // the rewrites need the tarballs only: the digests go before the lockfiles are read
        drop(digests);
        for (project, p) in &plan.projects {
            let out = layout::layout(project, p, &tarballs, &lctx)?;
            output.packages.extend(out.package);
            output.config_files.extend(out.config_files);
        }
        Ok(output)
    }
}

/// The digests of every tarball the layout serves: those `fetched` verified, the git
/// dependencies checked out for this request packed as npm packs them (kept under their npm
/// key), and those an earlier request packed, hashed now.
pub fn pack_git_deps(
    projects: &[(lockfile::Project, plan::Plan)],
    to_pack: &[(plan::GitDep, GitFetch)],
    mut fetched: Fetched,
    store: &common::Store,
) -> Result<std::collections::BTreeMap<String, FileDigests>, Failure> {
    // taken, not cloned: one entry per tarball of a large lockfile
    let mut digests = std::mem::take(&mut fetched.files);
    for (dep, fetch) in to_pack {
        let checkout = fetched.git.get(fetch).ok_or_else(|| {
            io_failure(format!(
                "The git dependency {} was not checked out",
                dep.label
            ))
        })?;
        let packed = pack::pack_dir(&checkout.dir, &dep.label)?;
        if !store.contains(&dep.store_key) {
            store
                .put_bytes(&dep.store_key, &packed.bytes)
                .map_err(io_failure)?;
        }
        digests.insert(dep.store_key.clone(), packed.digests);
    }
    drop(fetched);
    for (_, p) in projects {
        for g in &p.git {
            if !digests.contains_key(&g.store_key) {
                let file = store.path(&g.store_key).map_err(io_failure)?;
                let d = FileDigests::of_file(&file).map_err(io_failure)?;
                digests.insert(g.store_key.clone(), d);
            }
        }
    }
    Ok(digests)
}

/// Read each requested package directory with `read` and plan it (npm's plan: the
/// classification, store keys and downloads); the progress text.
pub async fn plan_projects(
    ctx: &PmContext<'_>,
    read: fn(&std::path::Path, &common::repo_path::RepoPath) -> Result<lockfile::Project, Failure>,
) -> Result<(Vec<(lockfile::Project, plan::Plan)>, String), Failure> {
    let (paths, what) = ctx.paths_and_what();
    ctx.progress(&what).await;
    Ok((plan_paths(ctx, paths, read).await?, what))
}

/// [`plan_projects`] of the package directories `paths` (yarn: its v1 ones), no progress
/// reported.
pub async fn plan_paths(
    ctx: &PmContext<'_>,
    paths: Vec<common::repo_path::RepoPath>,
    read: fn(&std::path::Path, &common::repo_path::RepoPath) -> Result<lockfile::Project, Failure>,
) -> Result<Vec<(lockfile::Project, plan::Plan)>, Failure> {
    let (app, upstream) = (ctx.app_dir.to_path_buf(), ctx.config.npm_registry.clone());
    blocking(move || {
        paths
            .iter()
            .map(|path| {
                let mut project = read(&app, path)?;
                let plan = plan::plan(&app, &mut project, &upstream)?;
                Ok((project, plan))
            })
            .collect::<Result<Vec<_>, Failure>>()
    })
    .await
}

/// The fetches of every project's plan: one per store key, whichever directories name it (the
/// downloads are moved out of the plans: the layout has no use for them), and the git
/// dependencies the store has no packed tarball of yet, with their checkout.
pub fn collect_fetches(
    projects: &mut [(lockfile::Project, plan::Plan)],
    what: String,
    store: &common::Store,
) -> (Fetches, Vec<(plan::GitDep, GitFetch)>) {
    let mut keys = BTreeSet::new();
    let mut fetches = Fetches {
        what,
        ..Fetches::default()
    };
    let mut to_pack = Vec::new();
    for (_, p) in projects {
        for d in std::mem::take(&mut p.downloads) {
            if keys.insert(d.store_key.clone()) {
                let check = crate::fetch::no_check(&d);
                fetches.downloads.push((Arc::new(d), check));
            }
        }
        for g in &p.git {
            add_git_dep(g, &mut keys, store, &mut fetches, &mut to_pack);
        }
        for l in &p.local {
            if keys.insert(l.store_key.clone()) {
                fetches.local.push(LocalFile {
                    path: l.path.clone(),
                    store_key: l.store_key.clone(),
                    expected: l.integrity.expected(),
                    label: l.label.clone(),
                });
            }
        }
    }
    (fetches, to_pack)
}

/// Add the checkout of git dependency `g` to `fetches` and `to_pack`, once per store key, and
/// not when an earlier request packed it already.
pub fn add_git_dep(
    g: &plan::GitDep,
    keys: &mut BTreeSet<String>,
    store: &common::Store,
    fetches: &mut Fetches,
    to_pack: &mut Vec<(plan::GitDep, GitFetch)>,
) {
    if !keys.insert(g.store_key.clone()) || store.contains(&g.store_key) {
        return;
    }
    let fetch = GitFetch {
        url: g.url.clone(),
        commit: g.commit.clone(),
    };
    if !fetches.git.contains(&fetch) {
        fetches.git.push(fetch.clone());
    }
    to_pack.push((g.clone(), fetch));
}

/// The layout's context for the per-request npm registry (`<public>/repos/<id>/npm/`, the
/// header-token form: `.npmrc` carries the token as `_authToken`, sent as `Bearer`).
pub fn layout_context(
    ctx: &LayoutContext,
    pm: &'static str,
    bundle_rel: fn(&plan::PlannedDep, &str) -> Option<String>,
) -> layout::LayoutContext {
    layout::LayoutContext {
        repo_url: format!(
            "{}/repos/{}/npm/",
            ctx.config.public_url.trim_end_matches('/'),
            ctx.job.id
        ),
        token: ctx.job.repository_token.clone(),
        source_repo: ctx.job.repo.clone(),
        source_ref: ctx.job.git_ref.clone(),
        bundle: ctx.bundle.clone(),
        store: ctx.store.clone(),
        repos_ca: ctx.repos_ca.cloned(),
        pm,
        bundle_rel,
        upstream_registry: ctx.config.npm_registry.clone(),
        hand_back: ctx.hand_back,
    }
}

/// Every project's tarballs as artifacts of the registry (each file once), linked into the
/// bundle where `lctx` says; what the rewrites need of each is returned.
pub fn emit_artifacts<'p>(
    projects: &'p [(lockfile::Project, plan::Plan)],
    digests: &std::collections::BTreeMap<String, FileDigests>,
    lctx: &layout::LayoutContext,
    store: &common::Store,
    output: &mut PmOutput,
) -> Result<layout::Tarballs<'p>, Failure> {
    let mut served = BTreeSet::new();
    let mut tarballs = layout::Tarballs::new();
    for (_, p) in projects {
        layout::add_tarballs(p, store, digests, lctx, &mut tarballs, &mut |a| {
            if served.insert((a.name.clone(), a.filename.clone())) {
                output.add_artifacts([a])?;
            }
            Ok(())
        })?;
    }
    Ok(tarballs)
}
