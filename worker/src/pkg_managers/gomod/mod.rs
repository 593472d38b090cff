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

use super::{PmContext, PmOutput};
use crate::fetch::Check;
use crate::pipeline::blocking;
use common::{Failure, PackageManager};
use plan::{ExpectedH1, Flags, GoDownload};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub async fn run(ctx: &PmContext<'_>) -> Result<PmOutput, Failure> {
    let paths: Vec<String> = ctx
        .specs(PackageManager::Gomod)
        .into_iter()
        .map(|s| s.path)
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
        .ok_or_else(|| Failure::server("FileAccessError", "The bundle has no root"))?
        .to_path_buf();
    let main_version = main_version(ctx.app_dir, &ctx.job.git_ref);
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
            main_version: &main_version,
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
    let items = downloads
        .iter()
        .map(|d| (d.download.clone(), h1_check(d.clone(), recorded.clone())))
        .collect();
    let staged = ctx.stage_all(items, what).await?;
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

/// The main module's version: a semver tag on the commit, else a v0.0.0 pseudo-version.
fn main_version(app_dir: &Path, git_ref: &str) -> String {
    let short: String = git_ref.chars().take(12).collect();
    let Ok(repo) = git2::Repository::open(app_dir) else {
        return format!("v0.0.0-19700101000000-{short}");
    };
    let Ok(commit) = repo.head().and_then(|h| h.peel_to_commit()) else {
        return format!("v0.0.0-19700101000000-{short}");
    };
    let id = commit.id();
    let mut tags: Vec<String> = Vec::new();
    if let Ok(names) = repo.tag_names(Some("v*")) {
        for name in (0..names.len()).filter_map(|i| names.get(i).ok().flatten()) {
            let target = repo
                .revparse_single(&format!("refs/tags/{name}"))
                .and_then(|o| o.peel_to_commit());
            if target.is_ok_and(|c| c.id() == id) && is_release(name) {
                tags.push(name.to_string());
            }
        }
    }
    tags.sort_by(|a, b| common::gomod::compare_versions(a, b));
    if let Some(tag) = tags.pop() {
        return tag;
    }
    let time = chrono::DateTime::from_timestamp(commit.time().seconds(), 0)
        .unwrap_or_default()
        .format("%Y%m%d%H%M%S");
    let short: String = id.to_string().chars().take(12).collect();
    format!("v0.0.0-{time}-{short}")
}

/// `vMAJOR.MINOR.PATCH`, optionally with a `-pre` suffix.
fn is_release(tag: &str) -> bool {
    let Some(v) = tag.strip_prefix('v') else {
        return false;
    };
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}
