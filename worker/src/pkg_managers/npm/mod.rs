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

use super::{PmContext, PmOutput};
use crate::blocking::blocking;
use crate::fetch::{Check, FetchedFile, Staged};
use common::{ErrorKind, Failure};
use integrity::Integrity;
use layout::LayoutContext;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn io_failure(e: impl std::fmt::Display) -> Failure {
    Failure::new(ErrorKind::FileAccessError, e.to_string())
}

/// The per-request registry in its header-token form (`<public>/repos/<id>/npm/`): `.npmrc`
/// carries the token as `_authToken`, npm sends it as `Bearer`.
fn registry_url(ctx: &PmContext<'_>) -> String {
    format!(
        "{}/repos/{}/npm/",
        ctx.config.public_url.trim_end_matches('/'),
        ctx.job.id
    )
}

pub async fn run(ctx: &PmContext<'_>) -> Result<PmOutput, Failure> {
    let mut output = PmOutput {
        env: layout::default_env_vars(),
        ..Default::default()
    };
    let lctx = LayoutContext {
        repo_url: registry_url(ctx),
        token: ctx.job.repository_token.clone(),
        source_repo: ctx.job.repo.clone(),
        source_ref: ctx.job.git_ref.clone(),
    };
    let mut served = BTreeSet::new();
    for spec in ctx.specs() {
        let out = run_path(ctx, spec.path.as_str(), &lctx).await?;
        output.packages.extend(out.package);
        output.config_files.extend(out.config_files);
        for a in out.artifacts {
            if served.insert((a.name.clone(), a.filename.clone())) {
                output.artifacts.push(a);
            }
        }
    }
    Ok(output)
}

async fn run_path(
    ctx: &PmContext<'_>,
    path: &str,
    lctx: &LayoutContext,
) -> Result<layout::LayoutOutput, Failure> {
    let what = format!("Fetching the npm dependencies at the \"{path}\" directory");
    ctx.progress(&what).await;
    let app: PathBuf = ctx.app_dir.to_path_buf();
    let upstream = ctx.config.npm_registry.clone();
    let (project, plan) = {
        let (app, path) = (app.clone(), path.to_string());
        blocking(move || {
            let mut project = lockfile::read_project(&app, &path).map_err(|e| e.failure())?;
            let plan = plan::plan(&app, &project, &upstream).map_err(|e| e.failure())?;
            // every entry now lives in the plan: one copy of a large lockfile, not two
            project.lockfile.entries = Vec::new();
            Ok((project, plan))
        })
        .await?
    };

    // Full SRI checks where the single `Expected` digest is not enough (several values of the
    // strongest algorithm).
    let mut integrity_of: BTreeMap<String, String> = BTreeMap::new();
    for d in &plan.deps {
        let i = match &d.kind {
            classify::Kind::Registry {
                integrity: Some(i), ..
            } => i,
            classify::Kind::HttpsTarball { integrity, .. } => integrity,
            _ => continue,
        };
        if let Some(key) = &d.store_key {
            integrity_of.entry(key.clone()).or_insert_with(|| i.clone());
        }
    }

    let total = plan.downloads.len() + plan.git.len() + plan.local.len();
    let items: Vec<(common::Download, Check)> = plan
        .downloads
        .iter()
        .map(|d| {
            let check: Check = match integrity_of.get(&d.store_key) {
                Some(sri) => {
                    let (sri, label) = (sri.clone(), d.label.clone());
                    Box::new(move |p: &std::path::Path| {
                        let i = Integrity::parse(&sri, &label).map_err(|e| e.failure())?;
                        if !i.needs_full_verify() {
                            return Ok(());
                        }
                        let f = std::fs::File::open(p).map_err(io_failure)?;
                        i.verify_reader(&label, std::io::BufReader::new(f))
                            .map_err(|e| e.failure())
                    })
                }
                None => crate::fetch::no_check(d),
            };
            (d.clone(), check)
        })
        .collect();
    drop(integrity_of);
    let staged: Vec<Staged> = ctx.stage_all(items, &what, total).await?;

    // git dependencies: fetched once per commit (deps/git/…), packed as npm packs them
    let mut to_put: Vec<(String, Vec<u8>)> = Vec::new();
    for g in &plan.git {
        if ctx.store.contains(&g.store_key) {
            continue;
        }
        ctx.progress(&format!("{what}: git dependency {}", g.label))
            .await;
        let tmp = ctx.store.temp_dir("npm-git").map_err(io_failure)?;
        let dest = tmp.path().join("checkout");
        crate::git_deps::checkout(
            ctx.store,
            ctx.fetcher.outbound(),
            &g.url,
            &crate::git_deps::commit_id(&g.url, &g.commit)?,
            &dest,
        )
        .await?;
        let label = g.label.clone();
        let packed = blocking(move || {
            let packed = pack::pack_dir(&dest, &label).map_err(|e| e.failure());
            drop(tmp);
            packed
        })
        .await?;
        to_put.push((g.store_key.clone(), packed.bytes));
    }
    // `file:` tarballs inside the repository
    for l in plan.local.clone() {
        if ctx.store.contains(&l.store_key) {
            continue;
        }
        let bytes = blocking(move || {
            let bytes = std::fs::read(&l.source).map_err(|e| {
                Failure::new(
                    ErrorKind::InvalidRepoStructure,
                    format!("Cannot read the tarball of {}: {e}", l.label),
                )
            })?;
            Integrity::parse(&l.integrity, &l.label)
                .and_then(|i| i.verify_bytes(&l.label, &bytes))
                .map_err(|e| e.failure())?;
            Ok((l.store_key, bytes))
        })
        .await?;
        to_put.push(bytes);
    }

    // everything verified: only now does anything new enter the store
    let fetched: Vec<FetchedFile> = ctx.commit(staged).await?;
    {
        let store = ctx.store.clone();
        blocking(move || {
            for (key, bytes) in &to_put {
                store.put_bytes(key, bytes).map_err(io_failure)?;
            }
            Ok(())
        })
        .await?;
    }
    let from_network = fetched.iter().filter(|f| f.from_network).count();
    ctx.progress(&format!(
        "{what} ({total}/{total}, {from_network} downloaded)"
    ))
    .await;
    tracing::info!(path, total, from_network, "npm dependencies in the store");

    let mut files: BTreeMap<String, PathBuf> =
        fetched.into_iter().map(|f| (f.store_key, f.path)).collect();
    for key in plan
        .git
        .iter()
        .map(|g| &g.store_key)
        .chain(plan.local.iter().map(|l| &l.store_key))
    {
        files.insert(key.clone(), ctx.store.path(key).map_err(io_failure)?);
    }
    let bundle_root = ctx
        .app_dir
        .parent()
        .ok_or_else(|| io_failure("app/ has no parent"))?
        .to_path_buf();
    let lctx = lctx.clone();
    blocking(move || {
        let out = layout::layout(&project, &plan, &files, &lctx).map_err(|e| e.failure())?;
        layout::write_bundle(&out, &bundle_root).map_err(|e| e.failure())?;
        Ok(out)
    })
    .await
}

/// The `npm` package manager (its `run` drives the whole flow itself).
pub struct Npm;

pub static DESCRIPTOR: common::Descriptor = common::Descriptor {
    exclusive_with: &["yarn"],
    ..common::Descriptor::new("npm")
};

impl super::Registered for Npm {
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
