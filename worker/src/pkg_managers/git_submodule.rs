//! `git-submodule`: the submodules were fetched with the source (one level); report them.
//! For `larder fetch-deps` the source is the caller's checkout: each submodule's directory must
//! be checked out at exactly the commit HEAD pins (read with git2, nothing run); nothing goes
//! in `deps/`.

use super::{Fetched, Fetches, HandBack, LayoutContext, PackageManager, PmContext, PmOutput};
use common::repo_path::RepoPath;
use common::{Descriptor, ErrorKind, Failure, Package};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SubmoduleError {
    #[error("The submodule {name} has a path that is not inside the source: {path}")]
    BadPath { name: String, path: String },
    #[error(
        "The submodule {name} at {path} is not checked out ({reason}): run `git submodule update --init` first"
    )]
    NotCheckedOut {
        name: String,
        path: String,
        reason: String,
    },
    #[error(
        "The submodule {name} at {path} is checked out at {actual}, not at {pinned}, the commit HEAD pins: run `git submodule update` (or commit the new pin) first"
    )]
    OtherCommit {
        name: String,
        path: String,
        actual: String,
        pinned: String,
    },
}

impl common::Classify for SubmoduleError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidRepoStructure
    }
}

/// The submodule `name` at `path` below `source` is a repository of its own whose HEAD is
/// `pinned`.
fn check_checked_out(
    source: &Path,
    name: &str,
    path: &str,
    pinned: git2::Oid,
) -> Result<(), SubmoduleError> {
    let bad_path = || SubmoduleError::BadPath {
        name: name.to_string(),
        path: path.to_string(),
    };
    let rel = RepoPath::parse(path).map_err(|_| bad_path())?;
    if rel.is_root() {
        return Err(bad_path());
    }
    let not_checked_out = |reason: String| SubmoduleError::NotCheckedOut {
        name: name.to_string(),
        path: path.to_string(),
        reason,
    };
    let dir = rel.resolve(source).map_err(|e| match e {
        common::repo_path::RepoPathError::Missing(_) => not_checked_out("no such directory".into()),
        _ => bad_path(),
    })?;
    // `open`, never `discover`: the parent's repository must not stand in for a missing one
    let repo =
        git2::Repository::open(&dir).map_err(|e| not_checked_out(e.message().to_string()))?;
    let own = repo
        .workdir()
        .and_then(|w| w.canonicalize().ok())
        .is_some_and(|w| w == dir);
    if !own {
        return Err(not_checked_out(
            "its directory is not a repository's work tree".into(),
        ));
    }
    let actual = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(|e| not_checked_out(e.message().to_string()))?
        .id();
    if actual != pinned {
        return Err(SubmoduleError::OtherCommit {
            name: name.to_string(),
            path: path.to_string(),
            actual: actual.to_string(),
            pinned: pinned.to_string(),
        });
    }
    Ok(())
}

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

    // reported only; each checked against its pin in the caller's checkout
    const HANDS_BACK_OUTPUT_DIR: bool = true;

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
            if ctx.hand_back == HandBack::OutputDir {
                check_checked_out(ctx.app_dir, &name, &sub.path().to_string_lossy(), commit)?;
            }
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
