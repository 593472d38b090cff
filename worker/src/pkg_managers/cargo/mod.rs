//! `cargo`: `Cargo.lock` prefetch into a `cargo vendor`-identical `deps/cargo/`, an offline
//! `.cargo/config.toml`, and the artifacts of the per-request sparse registry.
//!
//! Flow per request: parse every requested path's `Cargo.lock` (+ workspace manifests) → plan
//! (`.crate` downloads verified against the lockfile `checksum`, upstream index lines, git
//! repositories) → fetch: index files only when a wanted line is not in the store yet, `.crate`s
//! staged and verified all together and only then committed to the store (all or nothing), index
//! lines stored after the crates → git dependencies (`git_deps::checkout`) → layout (vendored
//! crates, config files, packages, artifacts). A warm request makes no upstream request at all.
//! The worker never runs `cargo` or a build script.

pub mod config;
pub mod index;
pub mod layout;
pub mod lockfile;
pub mod plan;
pub mod util;
pub mod vendor;

#[cfg(test)]
#[allow(dead_code)]
#[path = "../../../../tests/e2e/support/cargo_fixtures.rs"]
pub mod fixtures;

use super::{PmContext, PmOutput};
use crate::blocking::blocking;
use crate::fetch::no_check;
use common::{ErrorKind, Failure};
use futures_util::{stream, StreamExt, TryStreamExt};
use lockfile::CargoLock;
use std::collections::BTreeMap;
use std::path::PathBuf;

use std::sync::Arc;

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "."
    } else {
        path
    }
}

/// The request's cargo registry in the header-token form (`<public>/repos/<id>/cargo/`): cargo
/// sends the token as the raw `Authorization` header (`auth-required` in its `config.json`).
fn registry_url(ctx: &PmContext<'_>) -> String {
    let base = &ctx.job.repository_url;
    let token_part = format!("t/{}/", ctx.job.repository_token);
    match base.strip_suffix(&token_part) {
        Some(head) if !ctx.job.repository_token.is_empty() => format!("{head}cargo/"),
        _ => ctx.repository_url("cargo"),
    }
}

pub async fn run(ctx: &PmContext<'_>) -> Result<PmOutput, Failure> {
    // 1. parse
    let mut locks: Vec<CargoLock> = Vec::new();
    for spec in ctx.specs() {
        let root = ctx.app_dir.to_path_buf();
        let path = spec.path.as_str().to_string();
        let lock = blocking(move || lockfile::parse(&root, &path).map_err(|e| e.failure())).await?;
        locks.push(lock);
    }
    let paths: Vec<String> = locks
        .iter()
        .map(|l| format!("\"{}\"", display_path(&l.package_path)))
        .collect();
    let what = format!(
        "Fetching the cargo dependencies at the {} director{}",
        paths.join(", "),
        if paths.len() == 1 { "y" } else { "ies" }
    );
    ctx.progress(&what).await;
    let refs: Vec<&CargoLock> = locks.iter().collect();

    // 2. plan: config.json is only needed when something is missing from the store
    let store = ctx.store;
    let required = plan::required_store_keys(&refs);
    let index_config = if required.iter().all(|k| store.contains(k)) {
        // every download is a store hit (re-verified, never fetched): no upstream URL needed
        index::IndexConfig {
            dl: "http://upstream.invalid/".into(),
            api: None,
            auth_required: false,
        }
    } else {
        let url = index::config_url(&ctx.config.crates_index);
        let (bytes, _) = ctx
            .fetcher
            .get_bytes(&url, Some("application/json"))
            .await?
            .ok_or_else(|| {
                Failure::new(
                    ErrorKind::NetworkError,
                    format!("The cargo index {url} was not found"),
                )
            })?;
        index::parse_config(&bytes).map_err(|e| e.failure())?
    };
    let plan =
        plan::plan(&refs, &ctx.config.crates_index, &index_config).map_err(|e| e.failure())?;

    // 3a. index lines: the stored ones, else from the upstream index file (checked against the
    // lockfile checksums), kept in memory until the crates are committed
    let index_futures: Vec<_> = plan
        .index
        .iter()
        .map(|f| async move {
            let mut out = Vec::new();
            let missing = f.lines.iter().any(|l| !store.contains(&l.store_key));
            let upstream = if missing {
                let bytes = ctx
                    .fetcher
                    .get_bytes(&f.url, None)
                    .await?
                    .map(|(b, _)| b)
                    .ok_or_else(|| {
                        Failure::new(
                            ErrorKind::ValidationError,
                            format!(
                                "The crate {} is not in the upstream index ({})",
                                f.name, f.url
                            ),
                        )
                    })?;
                let wanted: Vec<(&str, &str)> = f
                    .lines
                    .iter()
                    .map(|l| (l.version.as_str(), l.checksum.as_str()))
                    .collect();
                index::find_index_lines(&f.name, &bytes, &wanted).map_err(|e| e.failure())?
            } else {
                BTreeMap::new()
            };
            for l in &f.lines {
                if let Some(line) = upstream.get(&l.version) {
                    out.push((f.name.clone(), l.version.clone(), line.clone(), true));
                } else {
                    let p = store
                        .path(&l.store_key)
                        .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
                    let line = tokio::fs::read_to_string(&p).await.map_err(|e| {
                        Failure::new(ErrorKind::FileAccessError, format!("{}: {e}", l.store_key))
                    })?;
                    out.push((f.name.clone(), l.version.clone(), line, false));
                }
            }
            Ok::<_, Failure>(out)
        })
        .collect();
    let fetched_lines: Vec<Vec<(String, String, String, bool)>> = stream::iter(index_futures)
        .buffer_unordered(ctx.config.download_concurrency.max(1))
        .try_collect()
        .await?;

    // 3b. crates: stage (download + verify, or re-verify a store hit) everything, then commit
    let items: Vec<_> = plan
        .downloads
        .iter()
        .map(|d| (d.clone(), no_check(d)))
        .collect();
    let staged = {
        let total = items.len();
        ctx.stage_all(items, &format!("{what} (crates)"), total)
            .await?
    };
    let fetched_from_network = staged.iter().filter(|s| s.fetched.from_network).count();
    ctx.commit(staged).await?;
    let mut lines: BTreeMap<(String, String), String> = BTreeMap::new();
    for (name, version, line, new) in fetched_lines.into_iter().flatten() {
        if new {
            store
                .put_bytes(
                    &plan::index_line_store_key(&name, &version),
                    line.as_bytes(),
                )
                .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
        }
        lines.insert((name, version), line);
    }
    tracing::info!(
        crates = plan.downloads.len(),
        fetched = fetched_from_network,
        "cargo registry crates are in the store"
    );

    // 3c. git dependencies, once per (url, commit)
    let git_tmp = store
        .temp_dir("cargo-git-")
        .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
    let mut checkouts: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
    for (i, g) in plan.git.iter().enumerate() {
        ctx.progress(&format!(
            "{what}: fetching the git dependency {}@{}",
            g.url, g.commit
        ))
        .await;
        let dest = git_tmp.path().join(i.to_string());
        crate::git_deps::checkout(
            store,
            ctx.fetcher.outbound(),
            &g.url,
            &crate::git_deps::commit_id(&g.url, &g.commit)?,
            &dest,
        )
        .await?;
        checkouts.insert((g.url.clone(), g.commit.clone()), dest);
    }

    // 4. layout
    let deps_cargo = ctx.deps_dir.join("cargo");
    let st = store.clone();
    let locks = Arc::new(locks);
    let l2 = locks.clone();
    blocking(move || {
        for lock in l2.iter() {
            layout::vendor_all(
                lock,
                &deps_cargo,
                &|n, v| {
                    st.path(&plan::crate_store_key(n, v))
                        .unwrap_or_else(|_| PathBuf::from("/nonexistent"))
                },
                &|url, commit| {
                    checkouts
                        .get(&(url.to_string(), commit.to_string()))
                        .cloned()
                        .unwrap_or_else(|| PathBuf::from("/nonexistent"))
                },
                &vendor::Limits::default(),
            )
            .map_err(|e| e.failure())?;
        }
        drop(git_tmp);
        Ok(())
    })
    .await?;

    let repo_url = registry_url(ctx);
    let bundle_root = ctx
        .app_dir
        .parent()
        .ok_or_else(|| Failure::new(ErrorKind::FileAccessError, "The bundle has no root"))?;
    let mut out = PmOutput::default();
    let mut seen = std::collections::BTreeSet::new();
    for lock in locks.iter() {
        out.packages.extend(layout::packages(lock));
        let git = config::git_sources(lock);
        let offline = config::offline_config(&lock.package_path, &git).map_err(|e| e.failure())?;
        crate::bundle::write_overlay_file(bundle_root, &offline.path, &offline.content)?;
        out.config_files.push(offline);
        out.config_files
            .push(config::registry_config(&lock.package_path, &repo_url).map_err(|e| e.failure())?);
        for a in layout::artifacts(lock, &lines).map_err(|e| e.failure())? {
            if seen.insert((a.name.clone(), a.version.clone())) {
                out.artifacts.push(a);
            }
        }
    }
    out.env = config::registry_env(&ctx.job.repository_token);
    Ok(out)
}

/// The `cargo` package manager (its `run` drives the whole flow itself).
pub struct Cargo;

pub static DESCRIPTOR: common::Descriptor = common::Descriptor::new("cargo");

impl super::Registered for Cargo {
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
