//! `yarn` (Cachito's name): each package directory's `yarn.lock` says which yarn it is.
//!
//! - **v1 (Classic)**: yarn.lock → verified tarballs in the store, served by the per-request
//!   npm registry (`api/src/repos/npm.rs`) with a rewritten yarn.lock and `.npmrc` handed back,
//!   and a yarn offline mirror `deps/yarn-classic/` in the bundle. read (`lockfile`,
//!   `project`: yarn.lock as npm lockfile entries) → npm's plan, fetch and artifacts
//!   (`crate::pkg_managers::npm`) → `layout` (hand-back, mirror, report).
//! - **Berry (Yarn 2–4)**, a yarn.lock with `__metadata`: read (`berry_lockfile`, `berry`) →
//!   registry and http(s) tarballs verified through Yarn's cache zip rebuilt byte for byte
//!   (`berry_zip`), git sources at a commit packed as v1's → the same registry artifacts →
//!   `berry::layout` (`.yarnrc.yml`, and yarn.lock with http(s)/git entries on the registry,
//!   handed back; the Yarn cache `deps/yarn-berry/cache/` in the bundle, report). For
//!   `larder fetch-deps`, `berry::layout_output_dir`: the zips under Yarn's mirror names in
//!   `deps/yarn/cache/`, named by Hermeto's variables (`YARN_GLOBAL_FOLDER`, …).

pub mod berry;
pub mod berry_lockfile;
pub mod berry_zip;
pub mod graph;
pub mod layout;
pub mod lockfile;
pub mod project;

use super::npm::{self, collect_fetches, emit_artifacts, layout_context, plan_paths};
use super::{Fetched, Fetches, HandBack, LayoutContext, PackageManager, PmContext, PmOutput};
use crate::blocking::blocking;
use common::{Descriptor, Failure};
use std::collections::BTreeSet;

/// The `yarn` package manager (Cachito's name; yarn v1 and Berry lockfiles).
pub struct Yarn;

pub struct YarnPlan {
    classic: Vec<(npm::lockfile::Project, npm::plan::Plan)>,
    /// Git dependencies of v1 lockfiles whose packed tarball the store does not hold yet, with
    /// their checkout.
    to_pack: Vec<(npm::plan::GitDep, super::GitFetch)>,
    berry: Vec<berry::BerryProject>,
}

impl PackageManager for Yarn {
    type Plan = YarnPlan;

    const DESCRIPTOR: Descriptor = Descriptor {
        exclusive_with: &["npm"],
        ..Descriptor::new("yarn")
    };

    /// yarn v1's offline mirror and Berry's (a lockfile of a `…c0` cache key).
    const HANDS_BACK_OUTPUT_DIR: bool = true;

    async fn plan(&self, ctx: &PmContext<'_>) -> Result<(YarnPlan, Fetches), Failure> {
        let (paths, what) = ctx.paths_and_what();
        ctx.progress(&what).await;
        let app = ctx.app_dir.to_path_buf();
        let (berry_reads, classic_paths) = blocking(move || {
            let mut reads = Vec::new();
            let mut classic = Vec::new();
            for path in paths {
                if berry::is_berry_dir(&app, &path) {
                    reads.push(berry::read(&app, &path)?);
                } else {
                    classic.push(path);
                }
            }
            Ok::<_, Failure>((reads, classic))
        })
        .await?;
        let mut classic = plan_paths(ctx, classic_paths, |app, path| {
            Ok(project::read_project(app, path)?)
        })
        .await?;
        layout::check_mirror_names(classic.iter().map(|(_, p)| p))?;
        let (mut fetches, mut to_pack) = collect_fetches(&mut classic, what, ctx.store);
        let mut keys: BTreeSet<String> = fetches
            .downloads
            .iter()
            .map(|(d, _)| d.store_key.clone())
            .collect();
        let berry = berry::plan(ctx, berry_reads, &mut keys, &mut fetches.downloads).await?;
        if ctx.hand_back == HandBack::OutputDir {
            if let Some(e) = berry.iter().find_map(berry::output_dir_unsupported) {
                return Err(e.into());
            }
        }
        // Berry's git sources: checked out and packed as v1's (one pack per store key)
        for g in berry.iter().flat_map(|b| &b.plan.git) {
            npm::add_git_dep(g, &mut keys, ctx.store, &mut fetches, &mut to_pack);
        }
        Ok((
            YarnPlan {
                classic,
                to_pack,
                berry,
            },
            fetches,
        ))
    }

    fn layout(
        mut plan: YarnPlan,
        fetched: Fetched,
        ctx: &LayoutContext,
    ) -> Result<PmOutput, Failure> {
        let lctx = layout_context(ctx, "yarn", layout::mirror_rel);
        let mut output = PmOutput {
            env: npm::layout::default_env_vars(),
            ..PmOutput::default()
        };
        if ctx.hand_back == HandBack::OutputDir && !plan.classic.is_empty() {
            // Hermeto's: the mirror named by yarn's own variables, the repository's `.yarnrc`
            // left as it is
            output.env.insert(
                "YARN_YARN_OFFLINE_MIRROR".into(),
                common::EnvVar::path(layout::MIRROR_DIR),
            );
            output.env.insert(
                "YARN_YARN_OFFLINE_MIRROR_PRUNING".into(),
                common::EnvVar::literal("false"),
            );
        }
        if ctx.hand_back == HandBack::OutputDir && !plan.berry.is_empty() {
            // Hermeto's for Berry: the output's `deps/yarn/cache` is the mirror the project's
            // own cache is filled from (which a PnP install reads)
            for (name, value) in [
                ("YARN_ENABLE_GLOBAL_CACHE", "false"),
                ("YARN_ENABLE_IMMUTABLE_CACHE", "false"),
                ("YARN_ENABLE_MIRROR", "true"),
                ("npm_config_build_from_source", "true"),
            ] {
                output
                    .env
                    .insert(name.into(), common::EnvVar::literal(value));
            }
            output.env.insert(
                "YARN_GLOBAL_FOLDER".into(),
                common::EnvVar::path(berry::OUTPUT_DIR_GLOBAL_FOLDER),
            );
        }
        // every tarball once, whichever yarn needs it (a Berry dependency has no `resolved`:
        // it is not linked into the v1 mirror)
        let classic_len = plan.classic.len();
        let mut all = std::mem::take(&mut plan.classic);
        let mut berry_projects = Vec::new();
        for b in std::mem::take(&mut plan.berry) {
            berry::record_integrities(&b, ctx.store)?;
            all.push((b.project, b.plan));
            berry_projects.push((b.zips, b.offline, b.handback, b.cache_key));
        }
        let digests = npm::pack_git_deps(&all, &plan.to_pack, fetched, ctx.store)?;
        let tarballs = emit_artifacts(&all, &digests, &lctx, ctx.store, &mut output)?;
        drop(digests);
        for (project, p) in &all[..classic_len] {
            let (package, config_files) = layout::layout(project, p, &tarballs, &lctx)?;
            output.packages.push(package);
            output.config_files.extend(config_files);
        }
        drop(tarballs);
        let mut written = BTreeSet::new();
        // Yarn sends no credentials to a tarball URL: the token goes in its path
        let tarball_base = format!("{}npm/", npm::layout::with_slash(&ctx.job.repository_url));
        for ((project, p), (zips, offline, handback, cache_key)) in
            all.into_iter().skip(classic_len).zip(berry_projects)
        {
            let b = berry::BerryProject {
                project,
                plan: p,
                zips,
                offline,
                handback,
                cache_key,
                published: Vec::new(),
            };
            if ctx.hand_back == HandBack::OutputDir {
                output
                    .packages
                    .push(berry::layout_output_dir(&b, &lctx, &mut written)?);
                continue;
            }
            let (package, config_files) = berry::layout(&b, &lctx, &tarball_base, &mut written)?;
            output.packages.push(package);
            output.config_files.extend(config_files);
        }
        Ok(output)
    }
}
