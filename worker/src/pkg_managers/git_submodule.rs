//! `git-submodule`: the submodules were fetched with the source (one level); report them.

use super::{PmContext, PmOutput};
use common::{ErrorKind, Failure, Package};

pub async fn run(ctx: &PmContext<'_>) -> Result<PmOutput, Failure> {
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
    let mut output = PmOutput::default();
    for sub in submodules {
        let Some(commit) = sub.head_id() else {
            continue;
        };
        let url = crate::source::resolve_submodule_url(
            &ctx.job.repo,
            sub.url().ok().flatten().unwrap_or_default(),
        );
        let name = sub.name().unwrap_or_default().to_string();
        output.packages.push(Package {
            kind: "git-submodule".into(),
            purl: common::purl::vcs_purl(&name, &url, &commit.to_string()),
            version: format!("{url}#{commit}"),
            path: Some(sub.path().to_string_lossy().into_owned()),
            name,
            dependencies: Vec::new(),
        });
    }
    Ok(output)
}

/// The `git-submodule` package manager.
pub struct GitSubmodule;

pub static DESCRIPTOR: common::Descriptor = common::Descriptor {
    takes_packages: false,
    reads_git_dir: true,
    submodules: true,
    ..common::Descriptor::new("git-submodule")
};

impl super::Registered for GitSubmodule {
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
