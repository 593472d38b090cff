//! `cargo`: `Cargo.lock` prefetch into a `cargo vendor`-identical `deps/cargo/`, an offline
//! `.cargo/config.toml`, and the artifacts of the per-request sparse registry.
//!
//! Plan: parse every requested path's `Cargo.lock` (+ workspace manifests), read the upstream
//! index files whose wanted lines are not in the store yet (checked against the lockfile
//! `checksum`), list the `.crate` downloads and git repositories → the shared fetch (all or
//! nothing) → layout: index lines into the store after the crates, vendored crates, config
//! files, packages, artifacts. A warm request makes no upstream request at all. The worker never
//! runs `cargo` or a build script.

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

use super::{
    output_dir_mark, Fetched, Fetches, GitFetch, HandBack, LayoutContext, PackageManager,
    PmContext, PmOutput,
};
use crate::blocking::blocking;
use crate::fetch::no_check;
use common::digest::HashAlgorithm;
use common::{ConfigFile, Descriptor, ErrorKind, Failure};
use futures_util::{stream, StreamExt, TryStreamExt};
use lockfile::CargoLock;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The `cargo` package manager.
pub struct Cargo;

/// What the layout needs of the plan.
pub struct CargoPlan {
    /// One per requested path.
    locks: Vec<CargoLock>,
    /// The verbatim upstream index line of every registry crate, by (name, version).
    lines: BTreeMap<(String, String), String>,
    /// The lines read upstream: they enter the store once the crates have.
    new_lines: BTreeSet<(String, String)>,
    /// This request's registry, for `config.registry.toml`.
    registry_url: String,
    /// The upstream URL of each registry `.crate`, by (name, version): from the upstream's
    /// `config.json` (its download template), else as recorded when the crate was first fetched
    /// (`plan::download_url_store_key`; none for crates stored before URLs were).
    download_urls: BTreeMap<(String, String), String>,
}

impl PackageManager for Cargo {
    type Plan = CargoPlan;

    const DESCRIPTOR: Descriptor = Descriptor::new("cargo");

    const HANDS_BACK_OUTPUT_DIR: bool = true;

    async fn plan(&self, ctx: &PmContext<'_>) -> Result<(CargoPlan, Fetches), Failure> {
        let mut locks: Vec<CargoLock> = Vec::new();
        for spec in ctx.specs() {
            let root = ctx.app_dir.to_path_buf();
            locks.push(
                blocking(move || Ok::<_, Failure>(lockfile::parse(&root, &spec.path)?)).await?,
            );
        }
        let paths: Vec<String> = locks
            .iter()
            .map(|l| format!("\"{}\"", l.package_path))
            .collect();
        let what = format!(
            "Fetching the cargo dependencies at the {} director{}",
            paths.join(", "),
            if paths.len() == 1 { "y" } else { "ies" }
        );
        ctx.progress(&what).await;
        let refs: Vec<&CargoLock> = locks.iter().collect();

        // config.json is only needed when something is missing from the store (on an object
        // store: from this worker's cache and from the objects)
        // where each came from is recorded too (for the SBOM); index lines and these are
        // records every worker shares
        let recorded: Vec<String> = refs
            .iter()
            .flat_map(|lock| lock.registry())
            .map(|(p, _)| plan::download_url_store_key(&p.name, &p.version))
            .collect();
        let required: Vec<String> = plan::required_store_keys(&refs).collect();
        let mut missing: Vec<String> = stream::iter(required.into_iter().chain(recorded))
            .map(|key| async move {
                let found = ctx.fetcher.take_into_cache(&key).await?;
                Ok::<_, Failure>((!found && !key.ends_with(".download-url")).then_some(key))
            })
            .buffer_unordered(ctx.config.download_concurrency.max(1))
            .try_filter_map(|missing| async move { Ok(missing) })
            .try_collect()
            .await?;
        missing.sort();
        for (p, _) in refs.iter().flat_map(|lock| lock.registry()) {
            ctx.fetcher
                .share(plan::index_line_store_key(&p.name, &p.version));
        }
        let warm = missing.is_empty();
        if let (false, true) = (warm, ctx.config.offline) {
            // the index is what would be read first: name what it would be read for instead
            return Err(crate::outbound::Refusal::Offline.failure(&format!(
                "{} ({} file(s) of this lockfile are missing)",
                missing[0],
                missing.len()
            )));
        }
        let index_config = if warm {
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
            index::parse_config(&bytes)?
        };
        let plan = plan::plan(&refs, &ctx.config.crates_index, &index_config)?;
        let mut download_urls = BTreeMap::new();
        let by_key: BTreeMap<&str, &str> = plan
            .downloads
            .iter()
            .map(|d| (d.store_key.as_str(), d.url.as_str()))
            .collect();
        for (p, _) in refs.iter().flat_map(|lock| lock.registry()) {
            let url = if warm {
                recorded_download_url(ctx.store, &p.name, &p.version)
            } else {
                let key = plan::crate_store_key(&p.name, &p.version);
                by_key.get(key.as_str()).map(|url| url.to_string())
            };
            if let Some(url) = url.and_then(|u| common::artifact::distribution_url(&u)) {
                download_urls.insert((p.name.clone(), p.version.clone()), url);
            }
        }
        // recorded by the layout when missing
        for (name, version) in download_urls.keys() {
            ctx.fetcher
                .share(plan::download_url_store_key(name, version));
        }

        // each read made as a slot frees up: 45,000 reads made at once held 45 MB of futures
        // (by index: a closure taking a reference would not be Send for every lifetime)
        let found: Vec<Vec<IndexLine>> = stream::iter(0..plan.index.len())
            .map(|i| index_lines(ctx, &plan.index[i]))
            .buffer_unordered(ctx.config.download_concurrency.max(1))
            .try_collect()
            .await?;
        let mut lines = BTreeMap::new();
        let mut new_lines = BTreeSet::new();
        for l in found.into_iter().flatten() {
            let key = (l.name, l.version);
            if l.upstream {
                new_lines.insert(key.clone());
            }
            lines.insert(key, l.line);
        }

        let fetches = Fetches {
            what,
            downloads: plan
                .downloads
                .into_iter()
                .map(|d| {
                    let check = no_check(&d);
                    (Arc::new(d), check)
                })
                .collect(),
            git: plan.git,
            ..Fetches::default()
        };
        let plan = CargoPlan {
            locks,
            lines,
            new_lines,
            registry_url: registry_url(ctx),
            download_urls,
        };
        Ok((plan, fetches))
    }

    fn layout(plan: CargoPlan, fetched: Fetched, ctx: &LayoutContext) -> Result<PmOutput, Failure> {
        let store_error =
            |e: common::store::StoreError| Failure::new(ErrorKind::FileAccessError, e.to_string());
        for (name, version) in &plan.new_lines {
            let key = plan::index_line_store_key(name, version);
            if let Some(line) = plan.lines.get(&(name.clone(), version.clone())) {
                if !ctx.store.contains(&key) {
                    ctx.store
                        .put_bytes(&key, line.as_bytes())
                        .map_err(store_error)?;
                }
            }
        }

        // every crate verified: where each came from is recorded for the requests that will
        // find it in the store (written once, like the index lines)
        for ((name, version), url) in &plan.download_urls {
            let key = plan::download_url_store_key(name, version);
            if !ctx.store.contains(&key) {
                ctx.store
                    .put_bytes(&key, url.as_bytes())
                    .map_err(store_error)?;
            }
        }

        let target = layout::VendorTarget {
            store: ctx.store,
            bundle: ctx.bundle,
        };
        let crate_file = |name: &str, version: &str| {
            let key = plan::crate_store_key(name, version);
            let verified = fetched.files.get(&key)?.get(HashAlgorithm::Sha256);
            Some((ctx.store.path(&key).ok()?, verified))
        };
        let git_checkout = |url: &str, commit: &common::commit::CommitId| {
            let fetch = GitFetch {
                url: url.to_string(),
                commit: commit.clone(),
            };
            fetched.git.get(&fetch).map(|c| c.dir.clone())
        };
        let mut sources = layout::CrateSources {
            urls: plan.download_urls,
            ..Default::default()
        };
        for lock in &plan.locks {
            sources.licenses.extend(layout::vendor_all(
                lock,
                &target,
                &crate_file,
                &git_checkout,
                &vendor::Limits::default(),
            )?);
        }

        let mut out = PmOutput::default();
        let mut seen = BTreeSet::new();
        // an output directory's configuration names its vendored crates by absolute path (as
        // Hermeto's does); there is no registry to point at
        let output_dir = ctx.hand_back == HandBack::OutputDir;
        for lock in &plan.locks {
            out.packages.extend(layout::packages(lock));
            let git = config::git_sources(lock);
            let (path, text) = if output_dir {
                // the app is the user's source: its own configuration is kept, merged into
                let vendor_dir = format!("{}/deps/cargo", output_dir_mark());
                config::offline_config_merged(
                    &ctx.app_dir(),
                    &lock.package_path,
                    &git,
                    &vendor_dir,
                )?
            } else {
                config::offline_config(&lock.package_path, &git)
            };
            crate::bundle::write_overlay_file(ctx.bundle_root(), &path, text.as_bytes())?;
            if !output_dir {
                out.config_files.push(ConfigFile::inline(path, text));
                out.config_files.push(config::registry_config(
                    &lock.package_path,
                    &plan.registry_url,
                    ctx.repos_ca,
                )?);
            }
            for artifact in layout::artifacts(lock, &plan.lines, &sources) {
                let artifact = artifact?;
                if seen.insert((artifact.name.clone(), artifact.version.clone())) {
                    out.add_artifacts([artifact])?;
                }
            }
        }
        if !output_dir {
            out.env = config::registry_env(&ctx.job.repository_token);
        }
        Ok(out)
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

/// Longest recorded download URL read back.
const MAX_RECORDED_URL_BYTES: u64 = 8 << 10;

/// The download URL recorded when `name@version` was first fetched, if it was and reads.
fn recorded_download_url(store: &common::Store, name: &str, version: &str) -> Option<String> {
    use std::io::Read;
    let path = store
        .path(&plan::download_url_store_key(name, version))
        .ok()?;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_RECORDED_URL_BYTES + 1)
        .read_to_string(&mut text)
        .ok()?;
    (text.len() as u64 <= MAX_RECORDED_URL_BYTES).then_some(text)
}

/// One registry crate's index line.
struct IndexLine {
    name: String,
    version: String,
    line: String,
    /// Read upstream now (else from the store).
    upstream: bool,
}

/// The wanted lines of one crate: from the store, else from the upstream index file (checked
/// against the lockfile checksums).
async fn index_lines(ctx: &PmContext<'_>, f: &plan::IndexFetch) -> Result<Vec<IndexLine>, Failure> {
    let missing = f.lines.iter().any(|l| !ctx.store.contains(&l.store_key));
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
        index::find_index_lines(&f.name, &bytes, &wanted)?
    } else {
        BTreeMap::new()
    };
    let mut out = Vec::with_capacity(f.lines.len());
    for l in &f.lines {
        let (line, upstream) = match upstream.get(&l.version) {
            Some(line) => (line.clone(), true),
            None => {
                let p = ctx
                    .store
                    .path(&l.store_key)
                    .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
                let line = tokio::fs::read_to_string(&p).await.map_err(|e| {
                    Failure::new(ErrorKind::FileAccessError, format!("{}: {e}", l.store_key))
                })?;
                (line, false)
            }
        };
        out.push(IndexLine {
            name: f.name.clone(),
            version: l.version.clone(),
            line,
            upstream,
        });
    }
    Ok(out)
}
