//! `git-submodule`: the submodules were fetched with the source (one level); report them.

use super::{Fetched, Fetches, LayoutContext, PackageManager, PmContext, PmOutput};
use common::{Descriptor, ErrorKind, Failure, Package};

/// The `git-submodule` package manager: nothing to fetch, its packages are the submodules.
pub struct GitSubmodule;

impl PackageManager for GitSubmodule {
    type Plan = Vec<Package>;

    const DESCRIPTOR: Descriptor = Descriptor {
        takes_packages: false,
        reads_git_dir: true,
        submodules: true,
        ..Descriptor::new("git-submodule")
    };

    // the submodules are in app/: nothing is fetched from a repository of the request
    const HANDS_BACK_REPOSITORY: bool = false;

    async fn plan(&self, ctx: &PmContext<'_>) -> Result<(Vec<Package>, Fetches), Failure> {
        ctx.progress("Processing the git submodules").await;
        let repo = git2::Repository::open(ctx.app_dir).map_err(|e| {
            Failure::new(
                ErrorKind::FileAccessError,
                format!("Cannot open the repository: {e}"),
            )
        })?;
        let submodules = repo.submodules().map_err(|e| {
            Failure::new(
                ErrorKind::InvalidRepoStructure,
                format!("Cannot read .gitmodules: {e}"),
            )
        })?;
        let mut packages = Vec::new();
        for sub in submodules {
            let Some(commit) = sub.head_id() else {
                continue;
            };
            let url = crate::source::resolve_submodule_url(
                &ctx.job.repo,
                sub.url().ok().flatten().unwrap_or_default(),
            );
            let name = sub.name().unwrap_or_default().to_string();
            packages.push(Package {
                kind: "git-submodule".into(),
                purl: common::purl::vcs_purl(&name, &url, &commit.to_string()),
                version: format!("{url}#{commit}"),
                path: Some(sub.path().to_string_lossy().into_owned()),
                name,
                dependencies: Vec::new(),
                depends_on: Vec::new(),
            });
        }
        Ok((packages, Fetches::default()))
    }

    fn layout(packages: Vec<Package>, _: Fetched, _: &LayoutContext) -> Result<PmOutput, Failure> {
        Ok(PmOutput {
            packages,
            ..PmOutput::default()
        })
    }
}
