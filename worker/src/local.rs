//! The worker's engine without a service (`larder fetch-deps`): the same plan, verified fetch
//! into the store and layout of every requested package manager, for a source directory on
//! this machine, into an output directory laid out as Hermeto's. No api, no database: progress
//! goes to the log ([`ProgressTo::Log`]) and the layouts make the output directory's hand-back
//! ([`HandBack::OutputDir`]).
//!
//! The store is a local one (`LARDER_CACHE_DIR`, else `~/.cache/larder`, chosen by the
//! caller): what a run verified is there for the next, which re-verifies it through the
//! same "already in the store" path as the service's requests.

use crate::blocking::blocking;
use crate::bundle::{BundleTree, APP_OVERLAY, OUTPUT_OVERLAY};
use crate::fetch::Fetcher;
use crate::outbound::Outbound;
use crate::pkg_managers::{
    output_dir_mark, HandBack, PmContext, PmOutput, ProgressTo, Registered, REGISTRY,
};
use common::{
    Artifact, Config, EnvVars, ErrorKind, Failure, Job, PackageSpec, PackagesData, PmName,
    RequestState, Store,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What to fetch: the source, where the output goes, each package manager's paths.
#[derive(Clone, Debug)]
pub struct LocalRequest {
    /// The source directory (made absolute and canonical by [`fetch_deps`]).
    pub source: PathBuf,
    /// The output directory: its `deps/` is replaced.
    pub output: PathBuf,
    /// Package managers by name, with their packages (paths below the source).
    pub packages: BTreeMap<PmName, Vec<PackageSpec>>,
    pub flags: Vec<String>,
}

/// A file an offline build needs written into the source (`inject-files`): its absolute path
/// and its content as a template where `${output_dir}` is the output directory's path and
/// `$$` a `$` (Python's `string.Template`, as Hermeto reads it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectFile {
    pub abspath: PathBuf,
    pub template: String,
}

/// What a run found and made.
#[derive(Debug)]
pub struct LocalOutput {
    /// The source's repository (its `origin`, else a `file://` URL of the source directory)
    /// and commit, as the purls of its own packages name them.
    pub repo: String,
    pub git_ref: String,
    pub packages: PackagesData,
    /// Every artifact (the verified files), for the SBOM.
    pub artifacts: Vec<Artifact>,
    /// Environment variables; a `path` one is relative to the output directory.
    pub env: EnvVars,
    pub project_files: Vec<ProjectFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{0} is not a package manager Larder knows")]
    Unknown(String),
    #[error(
        "The {0} package manager is not supported by `larder fetch-deps` yet (only by the service)"
    )]
    NotYet(String),
    #[error("The source directory {path} cannot be read: {reason}")]
    Source { path: String, reason: String },
    #[error("Cannot write the output directory {path}: {reason}")]
    Output { path: String, reason: String },
    #[error("The project file {0} is not UTF-8 text")]
    NotText(String),
}

impl common::Classify for LocalError {
    fn kind(&self) -> ErrorKind {
        match self {
            LocalError::Unknown(_) | LocalError::NotYet(_) => ErrorKind::UnsupportedFeature,
            LocalError::Source { .. } => ErrorKind::InvalidRepoStructure,
            LocalError::Output { .. } | LocalError::NotText(_) => ErrorKind::FileAccessError,
        }
    }
}

/// The package managers `larder fetch-deps` runs, by Larder's name.
pub fn output_dir_package_managers() -> Vec<&'static str> {
    REGISTRY
        .iter()
        .filter(|pm| pm.hands_back_output_dir())
        .map(|pm| pm.descriptor().name)
        .collect()
}

/// Run every requested package manager (in [`REGISTRY`] order) on `request.source`, with
/// `store` as the permanent cache, and write `request.output`'s `deps/`. The build
/// configuration and the SBOM are the caller's to write, from what is returned.
pub async fn fetch_deps(
    config: &Config,
    store: &Store,
    request: &LocalRequest,
) -> Result<LocalOutput, Failure> {
    for name in request.packages.keys() {
        let Some(pm) = REGISTRY
            .iter()
            .find(|pm| pm.descriptor().name == name.as_str())
        else {
            return Err(LocalError::Unknown(name.to_string()).into());
        };
        if !pm.hands_back_output_dir() {
            return Err(LocalError::NotYet(name.to_string()).into());
        }
    }
    let source = request
        .source
        .canonicalize()
        .map_err(|e| LocalError::Source {
            path: request.source.display().to_string(),
            reason: e.to_string(),
        })?;
    let (repo, git_ref) = source_identity(&source);
    let job = Job {
        id: 0,
        repo: repo.clone(),
        git_ref: git_ref.clone(),
        state: RequestState::InProgress,
        pkg_managers: request.packages.keys().cloned().collect(),
        packages: request.packages.clone(),
        flags: request.flags.clone(),
        dependency_replacements: Vec::new(),
        repository_url: String::new(),
        repository_token: String::new(),
        attempt: 1,
        deadline: chrono::NaiveDateTime::MAX,
        heartbeat_seconds: 0,
    };
    let running: Vec<&dyn Registered> = REGISTRY
        .iter()
        .copied()
        .filter(|pm| request.packages.keys().any(|n| n == pm.descriptor().name))
        .collect();

    let io = |path: &Path| {
        let path = path.display().to_string();
        move |e: std::io::Error| LocalError::Output {
            path: path.clone(),
            reason: e.to_string(),
        }
    };
    // the layouts read the source at `<work>/app` and write below `<work>/deps`
    let work = store.temp_dir("fetch-deps-").map_err(io(store.root()))?;
    let app = work.path().join("app");
    std::os::unix::fs::symlink(&source, &app).map_err(io(&app))?;
    let deps = work.path().join("deps");
    std::fs::create_dir_all(&deps).map_err(io(&deps))?;
    let tree = BundleTree::new(work.path());
    let fetcher = Fetcher::new(store.clone(), Outbound::for_request(config));
    let mut output = PmOutput::default();
    for pm in running {
        let ctx = PmContext {
            job: &job,
            app_dir: &app,
            deps_dir: &deps,
            bundle: &tree,
            store,
            config,
            progress_to: ProgressTo::Log,
            hand_back: HandBack::OutputDir,
            fetcher: &fetcher,
            descriptor: pm.descriptor(),
            repos_ca: None,
        };
        output.merge(pm.run(&ctx).await?)?;
    }
    crate::pipeline::check_duplicates(&output)?;

    let out_dir = request.output.clone();
    let work_root = work.path().to_path_buf();
    let store_for_copy = store.clone();
    let project_files =
        blocking(move || write_output(&store_for_copy, &tree, &work_root, &source, &out_dir))
            .await?;
    // the link first: the work directory's removal must not reach the source
    std::fs::remove_file(&app).map_err(io(&app))?;
    drop(work);

    let artifacts = output
        .artifacts
        .into_artifacts()
        .map_err(|e| LocalError::Output {
            path: "artifacts".into(),
            reason: e.to_string(),
        })?;
    let mut packages = PackagesData {
        packages: output.packages,
    };
    for package in &mut packages.packages {
        package.dependencies.sort();
    }
    Ok(LocalOutput {
        repo,
        git_ref,
        packages,
        artifacts,
        env: output.env,
        project_files,
    })
}

/// `<output>/deps/` from the work directory (what the layouts wrote, and what they placed
/// from the store), and the project files from the app overlay.
fn write_output(
    store: &Store,
    tree: &BundleTree,
    work: &Path,
    source: &Path,
    output: &Path,
) -> Result<Vec<ProjectFile>, Failure> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |e: std::io::Error| LocalError::Output {
            path: path.clone(),
            reason: e.to_string(),
        }
    };
    let out_deps = output.join("deps");
    // as Hermeto: an earlier run's dependencies go
    match std::fs::remove_dir_all(&out_deps) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&out_deps)(e).into()),
    }
    std::fs::create_dir_all(&out_deps).map_err(io(&out_deps))?;
    let overlay = work.join(APP_OVERLAY);
    let output_overlay = work.join(OUTPUT_OVERLAY);
    let deps = work.join("deps");
    copy_tree(
        &deps,
        &deps,
        &out_deps,
        &[overlay.as_path(), output_overlay.as_path()],
    )
    .map_err(io(&out_deps))?;
    tree.write_placed_to(store, output)
        .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
    let mut project_files = Vec::new();
    if overlay.is_dir() {
        collect_project_files(&overlay, &overlay, source, &mut project_files)?;
    }
    if output_overlay.is_dir() {
        // files of the output directory itself: the layouts named them, no source to guard
        collect_project_files(&output_overlay, &output_overlay, output, &mut project_files)?;
    }
    project_files.sort_by(|a, b| a.abspath.cmp(&b.abspath));
    Ok(project_files)
}

/// Copy the files below `from` to `to`, leaving out `skip`. `root` is the top of the copy
/// (`deps/`): a symbolic link is kept when it leads inside the package directory it is in
/// (`deps/<pm>/<name>/`, a git gem's checkout), and left out, said in the log, otherwise.
fn copy_tree(root: &Path, from: &Path, to: &Path, skip: &[&Path]) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let path = entry.path();
        if skip.contains(&path.as_path()) {
            continue;
        }
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(root, &path, &target, skip)?;
        } else if kind.is_file() {
            std::fs::copy(&path, &target)?;
        } else if kind.is_symlink() {
            match link_inside_package(root, &path) {
                Ok(link) => std::os::unix::fs::symlink(link, &target)?,
                Err(reason) => {
                    tracing::warn!(link = %path.strip_prefix(root).unwrap_or(&path).display(), reason, "a symbolic link left out of the output directory")
                }
            }
        }
    }
    Ok(())
}

/// The text of the link at `link` when what it leads to (followed to the end, links on the
/// way included; a dangling one judged hop by hop) stays inside its package directory, the
/// first two levels below `root`.
fn link_inside_package(root: &Path, link: &Path) -> Result<PathBuf, &'static str> {
    let rel = link
        .strip_prefix(root)
        .map_err(|_| "not below the output")?;
    let package: PathBuf = rel.components().take(2).collect();
    if rel.components().count() <= 2 {
        return Err("it is not inside a package directory");
    }
    let package_dir = root.join(&package);
    let canonical = package_dir
        .canonicalize()
        .map_err(|_| "its package directory cannot be read")?;
    // what it leads to must be there, inside: a dangling link's target could be made in the
    // build, and a link that goes nowhere is no use in a package
    let target = link
        .canonicalize()
        .map_err(|_| "it leads nowhere (dangling, or a chain of links too long)")?;
    if !target.starts_with(&canonical) {
        return Err("it leads outside its package directory");
    }
    let text = std::fs::read_link(link).map_err(|_| "it cannot be read")?;
    if text.is_absolute() {
        // it would name this run's work directory
        return Err("it is absolute");
    }
    Ok(text)
}

fn collect_project_files(
    overlay: &Path,
    dir: &Path,
    source: &Path,
    out: &mut Vec<ProjectFile>,
) -> Result<(), Failure> {
    let io = |e: std::io::Error| LocalError::Output {
        path: dir.display().to_string(),
        reason: e.to_string(),
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        if entry.file_type().map_err(io)?.is_dir() {
            collect_project_files(overlay, &path, source, out)?;
            continue;
        }
        let rel = path.strip_prefix(overlay).unwrap_or(&path);
        // inject-files writes it into the source: no symlinked directory of the source
        // (`.cargo -> /etc`) may carry that write elsewhere, and the file itself is not a
        // symlink (inject-files replaces a file, it never writes through one)
        let outside = |reason: String| LocalError::Source {
            path: rel.display().to_string(),
            reason,
        };
        common::repo_path::RepoPath::from_path(rel)
            .and_then(|r| r.resolve_new(source))
            .map_err(|e| outside(e.to_string()))?;
        if std::fs::symlink_metadata(source.join(rel)).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(outside("it is a symbolic link in the source".into()).into());
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|_| LocalError::NotText(rel.display().to_string()))?;
        out.push(ProjectFile {
            abspath: source.join(rel),
            template: template_of(&text),
        });
    }
    Ok(())
}

/// What a layout wrote for an output directory, as a template: every `$` escaped, then the
/// output directory's mark made the placeholder.
pub fn template_of(text: &str) -> String {
    text.replace('$', "$$")
        .replace(output_dir_mark(), "${output_dir}")
}

/// The source's repository and commit: the `origin` and `HEAD` of the git repository holding
/// it, else a `file://` URL of the directory and no commit (40 zeros), said in the log.
fn source_identity(source: &Path) -> (String, String) {
    let fallback_repo = format!("file://{}", source.display());
    let none = "0".repeat(40);
    let repo = match git2::Repository::discover(source) {
        Ok(repo) => repo,
        Err(e) => {
            tracing::warn!(source = %source.display(), error = %e, "the source is not in a git repository the SBOM can name");
            return (fallback_repo, none);
        }
    };
    let url = match repo
        .find_remote("origin")
        .ok()
        .and_then(|r| r.url().ok().map(str::to_string))
    {
        Some(url) => canonical_origin(&url),
        None => {
            tracing::warn!(source = %source.display(), "the source's repository has no origin remote");
            fallback_repo
        }
    };
    let commit = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id().to_string())
        .unwrap_or(none);
    (url, commit)
}

/// `origin` as the SBOM may name it: without credentials (a deploy token in the URL would be
/// published with the SBOM), an scp-like `user@host:path` as `ssh://user@host/path`.
fn canonical_origin(url: &str) -> String {
    if url.contains("://") {
        let Ok(mut parsed) = url::Url::parse(url) else {
            return url.to_string();
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            tracing::warn!("the origin URL names credentials: left out of the SBOM");
            // both only fail for URLs that cannot have userinfo
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
        }
        return parsed.into();
    }
    match url.split_once(':') {
        Some((host, path)) if !host.contains('/') => {
            format!("ssh://{host}/{}", path.trim_start_matches('/'))
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_lose_credentials_and_scp_forms_become_urls() {
        assert_eq!(
            canonical_origin("https://deploy:glpat-SECRET@gitlab.example.com/grp/demo.git"),
            "https://gitlab.example.com/grp/demo.git"
        );
        assert_eq!(
            canonical_origin("https://token@host.example/r"),
            "https://host.example/r"
        );
        assert_eq!(
            canonical_origin("git@github.com:org/repo.git"),
            "ssh://git@github.com/org/repo.git"
        );
        assert_eq!(
            canonical_origin("https://github.com/org/repo"),
            "https://github.com/org/repo"
        );
        assert_eq!(canonical_origin("/srv/git/repo"), "/srv/git/repo");
    }

    #[test]
    fn links_inside_their_package_are_copied_and_others_left_out() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let (deps, out) = (dir.path().join("deps"), dir.path().join("out"));
        let gem = deps.join("bundler/porta-0123456789ab");
        std::fs::create_dir_all(gem.join("lib/sub")).unwrap();
        std::fs::create_dir_all(deps.join("bundler/other")).unwrap();
        std::fs::write(gem.join("lib/real.rb"), "x").unwrap();
        std::fs::write(deps.join("bundler/other/secret"), "s").unwrap();
        std::fs::write(dir.path().join("outside"), "o").unwrap();
        // inside the checkout: kept as written
        symlink("real.rb", gem.join("lib/same-dir.rb")).unwrap();
        symlink("../../lib/real.rb", gem.join("lib/sub/up.rb")).unwrap();
        symlink("lib", gem.join("lib-dir")).unwrap();
        // through a link inside, then out: refused
        symlink("lib-dir/../..", gem.join("via-link")).unwrap();
        // out of the checkout (another package, the tree, absolute, dangling out): refused
        symlink("../other/secret", gem.join("sibling")).unwrap();
        symlink("../../../outside", gem.join("outside")).unwrap();
        symlink(dir.path().join("outside"), gem.join("absolute")).unwrap();
        symlink("../../../../nowhere", gem.join("dangling")).unwrap();
        // dangling through a link inside: its text reads as inside (`d/..` cancels), the kernel
        // goes up from where `d` leads (the package root) and out
        std::fs::create_dir_all(gem.join("a/b")).unwrap();
        symlink("../..", gem.join("a/b/d")).unwrap();
        symlink("d/../../../tmp-payload", gem.join("a/b/x")).unwrap();
        // a link that is a package directory itself: refused
        symlink("porta-0123456789ab", deps.join("bundler/alias")).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        copy_tree(&deps, &deps, &out, &[]).unwrap();
        let copied = out.join("bundler/porta-0123456789ab");
        assert_eq!(
            std::fs::read_to_string(copied.join("lib/same-dir.rb")).unwrap(),
            "x"
        );
        assert_eq!(
            std::fs::read_to_string(copied.join("lib/sub/up.rb")).unwrap(),
            "x"
        );
        assert_eq!(
            std::fs::read_link(copied.join("lib-dir")).unwrap(),
            Path::new("lib")
        );
        for gone in [
            "via-link", "sibling", "outside", "absolute", "dangling", "a/b/x",
        ] {
            assert!(
                std::fs::symlink_metadata(copied.join(gone)).is_err(),
                "{gone} was copied"
            );
        }
        assert!(std::fs::symlink_metadata(out.join("bundler/alias")).is_err());
        assert_eq!(
            std::fs::read_to_string(out.join("bundler/other/secret")).unwrap(),
            "s"
        );
    }

    #[test]
    fn templates_escape_dollars_and_name_the_output_dir() {
        assert_eq!(
            template_of(&format!(
                "a $HOME file://{}/deps/npm/x.tgz $$",
                output_dir_mark()
            )),
            "a $$HOME file://${output_dir}/deps/npm/x.tgz $$$$"
        );
        // a repository cannot write the mark: it is not known before the run
        assert_eq!(
            template_of("@larder-output-dir@ @larder-output-dir-0@"),
            "@larder-output-dir@ @larder-output-dir-0@"
        );
    }
}
