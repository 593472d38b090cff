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
        // git dependencies are refused when the lockfile is read: nothing to pack
        let (fetches, _) = collect_fetches(&mut projects, what, ctx.store);
        Ok((YarnPlan { projects }, fetches))
    }

    fn layout(
        plan: YarnPlan,
        mut fetched: Fetched,
        ctx: &LayoutContext,
    ) -> Result<PmOutput, Failure> {
        let digests = std::mem::take(&mut fetched.files);
        drop(fetched);
        let lctx = layout_context(ctx, "yarn", layout::mirror_rel);
        let mut output = PmOutput {
            env: npm::layout::default_env_vars(),
            ..PmOutput::default()
        };
        emit_artifacts(&plan.projects, &digests, &lctx, ctx.store, &mut output)?;
        drop(digests);
        for (project, p) in &plan.projects {
            let (package, config_files) = layout::layout(project, p, &lctx)?;
            output.packages.push(package);
            output.config_files.extend(config_files);
        }
        Ok(output)
    }
}
