//! `pnpm` (pnpm-lock.yaml lockfileVersion 9.x): verified tarballs in the store, served by the
//! per-request npm registry (`api/src/repos/npm.rs`) with `.npmrc` (and, when the lockfile
//! names tarball URLs or git repositories, a rewritten `pnpm-lock.yaml`) handed back, and
//! `deps/pnpm/` with an offline lockfile in the bundle.
//!
//! read (`lockfile`, `project`: pnpm-lock.yaml as npm lockfile entries and their graph) → npm's plan, fetch, git packing and artifacts (`crate::pkg_managers::npm`) →
//! `layout` (hand-back, offline lockfile, report).

pub mod layout;
pub mod lockfile;
pub mod project;

use super::npm::{
    self, collect_fetches, emit_artifacts, layout_context, pack_git_deps, plan_projects,
};
use super::{Fetched, Fetches, GitFetch, LayoutContext, PackageManager, PmContext, PmOutput};
use common::{Descriptor, Failure};

/// The `pnpm` package manager.
pub struct Pnpm;

pub struct PnpmPlan {
    /// Each requested package directory (its lockfile entries moved into its plan).
    projects: Vec<(npm::lockfile::Project, npm::plan::Plan)>,
    /// Git dependencies whose packed tarball the store does not hold yet, with their checkout.
    to_pack: Vec<(npm::plan::GitDep, GitFetch)>,
}

impl PackageManager for Pnpm {
    type Plan = PnpmPlan;

    const DESCRIPTOR: Descriptor = Descriptor {
        // each hands back `app/<path>/.npmrc`
        exclusive_with: &["npm", "yarn"],
        ..Descriptor::new("pnpm")
    };

    const HANDS_BACK_OUTPUT_DIR: bool = true;

    async fn plan(&self, ctx: &PmContext<'_>) -> Result<(PnpmPlan, Fetches), Failure> {
        let (mut projects, what) =
            plan_projects(ctx, |app, path| Ok(project::read_project(app, path)?)).await?;
        let (fetches, to_pack) = collect_fetches(&mut projects, what, ctx.store);
        Ok((PnpmPlan { projects, to_pack }, fetches))
    }

    fn layout(plan: PnpmPlan, fetched: Fetched, ctx: &LayoutContext) -> Result<PmOutput, Failure> {
        let digests = pack_git_deps(&plan.projects, &plan.to_pack, fetched, ctx.store)?;
        let lctx = layout_context(ctx, "pnpm", layout::bundle_rel);
        let mut output = PmOutput {
            env: npm::layout::default_env_vars(),
            ..PmOutput::default()
        };
        let tarballs = emit_artifacts(&plan.projects, &digests, &lctx, ctx.store, &mut output)?;
        drop(digests);
        for (project, p) in &plan.projects {
            let (package, config_files) = layout::layout(project, p, &tarballs, &lctx)?;
            output.packages.push(package);
            output.config_files.extend(config_files);
        }
        Ok(output)
    }
}
