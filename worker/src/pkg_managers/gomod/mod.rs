//! `gomod`: Go modules from go.mod + go.sum, without running the `go` command.
//!
//! parse (`plan::plan`) → fetch every `.info`/`.mod`/`.zip` go.sum vouches for from
//! `LARDER_GOPROXY` into the store, each checked against its `h1:` before anything is kept
//! (all or nothing) → lay out `deps/gomod/pkg/mod/cache/download` (+ vendoring, rewritten
//! go.mod/go.sum) → packages, env vars and the artifacts the per-request GOPROXY serves.

pub mod dirhash;
/// Proxy-compatible module files with real `h1:` sums, for tests and benchmarks.
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod gomod_file;
pub mod gosum;
pub mod layout;
pub mod plan;
pub mod vendor;
pub mod version;

use super::{PmContext, PmOutput};
use crate::blocking::blocking;
use crate::fetch::Check;
use common::{ErrorKind, Failure};
use plan::{ExpectedH1, Flags, GoDownload};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub async fn run(ctx: &PmContext<'_>) -> Result<PmOutput, Failure> {
    let paths: Vec<String> = ctx
        .specs()
        .into_iter()
        .map(|s| s.path.as_str().to_string())
        .collect();
    let where_ = paths
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let what = format!(
        "Fetching the gomod dependencies at the {where_} director{}",
        if paths.len() == 1 { "y" } else { "ies" }
    );
    ctx.progress(&what).await;

    let replacements: Vec<_> = ctx
        .job
        .dependency_replacements
        .iter()
        .filter(|r| r.kind == "gomod")
        .cloned()
        .collect();
    let flags = Flags::from_names(&ctx.job.flags, ctx.config.gomod_strict_vendor);
    let (app, upstream) = (ctx.app_dir.to_path_buf(), ctx.config.goproxy.clone());
    let plan = {
        let paths = paths.clone();
        blocking(move || {
            plan::plan(&app, &paths, &replacements, flags, &upstream).map_err(|e| e.failure())
        })
        .await?
    };

    let recorded = fetch_verified(ctx, &plan.downloads, &what).await?;

    let bundle_root = ctx
        .app_dir
        .parent()
        .ok_or_else(|| Failure::new(ErrorKind::FileAccessError, "The bundle has no root"))?
        .to_path_buf();
    let main_versions: BTreeMap<String, String> = {
        let (app, git_ref) = (ctx.app_dir.to_path_buf(), ctx.job.git_ref.clone());
        let modules: Vec<(String, String)> = plan
            .modules
            .iter()
            .map(|m| (m.path.clone(), m.gomod.module.clone()))
            .collect();
        blocking(move || {
            Ok(modules
                .into_iter()
                .map(|(path, module)| {
                    let sub = (path != ".").then_some(path.as_str());
                    let v = version::main_version_or_fallback(&app, &git_ref, &module, sub);
                    (path, v)
                })
                .collect())
        })
        .await?
    };
    let repo_url = ctx
        .repository_url("gomod")
        .trim_end_matches('/')
        .to_string();
    let store = ctx.store.clone();
    let out = blocking(move || {
        let store_path = |k: &str| store.root().join(k);
        layout::write_layout(&layout::LayoutInput {
            bundle_root: &bundle_root,
            plan: &plan,
            recorded: &recorded,
            store_path: &store_path,
            main_versions: &main_versions,
            repo_url: &repo_url,
        })
        .map_err(|e| e.failure())
    })
    .await?;
    Ok(PmOutput {
        packages: out.packages,
        env: out.env_vars,
        config_files: Vec::new(),
        artifacts: out.artifacts,
    })
}

/// Stage every download (store hits re-verified, misses fetched and checked against go.sum),
/// then move them into the store only if all of them verified. Returns the `h1:` computed for
/// `ExpectedH1::Record` downloads (modules added by `dependency_replacements`).
async fn fetch_verified(
    ctx: &PmContext<'_>,
    downloads: &[GoDownload],
    what: &str,
) -> Result<BTreeMap<String, String>, Failure> {
    let recorded: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let items: Vec<_> = downloads
        .iter()
        .map(|d| (d.download.clone(), h1_check(d.clone(), recorded.clone())))
        .collect();
    let staged = {
        let total = items.len();
        ctx.stage_all(items, what, total).await?
    };
    let from_network = staged.iter().filter(|s| s.fetched.from_network).count();
    tracing::info!(
        files = downloads.len(),
        from_network,
        "gomod dependencies verified"
    );
    ctx.commit(staged).await?;
    let recorded = recorded.lock().expect("not poisoned").clone();
    Ok(recorded)
}

/// The go.sum check of one file (`.info`: its Version; `.mod`/`.zip`: `h1:` and zip rules).
fn h1_check(d: GoDownload, recorded: Arc<Mutex<BTreeMap<String, String>>>) -> Check {
    Box::new(move |path: &Path| {
        let h1 = plan::verify_download(&d, path).map_err(|e| e.failure())?;
        if let (ExpectedH1::Record, Some(h1)) = (&d.h1, h1) {
            recorded
                .lock()
                .expect("not poisoned")
                .insert(d.download.store_key.clone(), h1);
        }
        Ok(())
    })
}

/// The `gomod` package manager (its `run` drives the whole flow itself).
pub struct Gomod;

pub static DESCRIPTOR: common::Descriptor = common::Descriptor {
    replacements: true,
    path_noun: "go module",
    reads_git_dir: true,
    ..common::Descriptor::new("gomod")
};

impl super::Registered for Gomod {
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
