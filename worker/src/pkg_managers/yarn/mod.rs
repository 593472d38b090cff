//! `yarn` (v1, Yarn Classic): yarn.lock → verified tarballs in the store, served by the
//! per-request npm registry (`api/src/repos/npm.rs`) with a rewritten yarn.lock and `.npmrc`
//! handed back, and a yarn offline mirror `deps/yarn-classic/` in the bundle.
//!
//! read (`lockfile`, `project`: yarn.lock as npm lockfile entries) → npm's plan, fetch and
//! artifacts (`crate::pkg_managers::npm`) → `layout` (hand-back, mirror, report).

pub mod layout;
pub mod lockfile;
pub mod project;

use super::npm::{self, collect_fetches, emit_artifacts, layout_context, plan_projects};
use super::{Fetched, Fetches, LayoutContext, PackageManager, PmContext, PmOutput};
use common::{Descriptor, Failure};

/// The `yarn` package manager (Cachito's name; yarn v1 lockfiles).
pub struct Yarn;

pub struct YarnPlan {
    projects: Vec<(npm::lockfile::Project, npm::plan::Plan)>,
    /// Git dependencies whose packed tarball the store does not hold yet, with their checkout.
    to_pack: Vec<(npm::plan::GitDep, super::GitFetch)>,
}

impl PackageManager for Yarn {
    type Plan = YarnPlan;

    const DESCRIPTOR: Descriptor = Descriptor {
        exclusive_with: &["npm"],
        ..Descriptor::new("yarn")
    };

    async fn plan(&self, ctx: &PmContext<'_>) -> Result<(YarnPlan, Fetches), Failure> {
        let (mut projects, what) =
            plan_projects(ctx, |app, path| Ok(project::read_project(app, path)?)).await?;
        layout::check_mirror_names(projects.iter().map(|(_, p)| p))?;
        let (fetches, to_pack) = collect_fetches(&mut projects, what, ctx.store);
        Ok((YarnPlan { projects, to_pack }, fetches))
    }

    fn layout(plan: YarnPlan, fetched: Fetched, ctx: &LayoutContext) -> Result<PmOutput, Failure> {
        let digests = npm::pack_git_deps(&plan.projects, &plan.to_pack, fetched, ctx.store)?;
        let lctx = layout_context(ctx, "yarn", layout::mirror_rel);
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
