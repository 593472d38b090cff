//! `deps/rubygems/` (`deps/bundler/` in `larder fetch-deps`'s output directory, as Hermeto's)
//! as Bundler's `vendor/cache` (`bundle cache --all`): every fetched `.gem`
//! by its file name, every git source checked out as `<repository basename>-<12-hex commit>/`
//! (a git repository at the locked commit, so Bundler's local overrides accept it too); the
//! packages, `.bundle/config` files and the gem server's artifacts.
//!
//! Purls: registry gems `pkg:gem/<name>@<version>` (`?platform=` for a platform gem); git gems
//! `pkg:gem/<name>@<version>?vcs_url=<"git+<url>@<commit>">`; PATH gems, Cachito's way, the
//! request repository's purl with `#<path>`.

use super::lockfile::{GemLock, GitSource, Spec};
use super::{config, gemspec, GemPlan};
use crate::pkg_managers::{Fetched, GitFetch, LayoutContext, PmOutput};
use common::artifact::rubygems::{info_line_store_key, GemMeta};
use common::{Artifact, ArtifactMeta, Dependency, ErrorKind, Failure, Package};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("Cannot write {what}: {reason}")]
    Io { what: String, reason: String },
    #[error("The git source {0} was not fetched")]
    NotFetched(String),
    #[error("The git source {0} has no usable repository name")]
    NoRepositoryName(String),
    #[error("The cached git source {key} is damaged: {reason}")]
    Damaged { key: String, reason: String },
    #[error("The checkout of {remote} at {commit}: {reason}")]
    Git {
        remote: String,
        commit: String,
        reason: String,
    },
}

impl common::Classify for LayoutError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NoRepositoryName(_) => ErrorKind::InvalidRequestData,
            Self::Io { .. } | Self::NotFetched(_) | Self::Damaged { .. } | Self::Git { .. } => {
                ErrorKind::FileAccessError
            }
        }
    }
}

fn io_failure<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> LayoutError + '_ {
    move |e| LayoutError::Io {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

/// The gem server's artifact of every fetched gem (also the SBOM's).
fn artifacts<'p>(
    plan: &'p GemPlan,
    licenses: &'p BTreeMap<String, String>,
) -> impl Iterator<Item = Artifact> + 'p {
    plan.gems.values().map(|g| Artifact {
        pm: "rubygems".into(),
        name: g.name.clone(),
        version: g.version.clone(),
        filename: format!("{}.gem", g.full_name()),
        store_key: g.store_key(),
        meta: ArtifactMeta::Rubygems(GemMeta {
            platform: g.platform.clone(),
            info_line: g.info_line.clone(),
            sha256: g.sha256.hex(),
            integrity: g.integrity,
            license: licenses.get(&g.full_name()).cloned(),
        }),
        source_url: common::artifact::distribution_url(&g.download_url),
    })
}

pub fn layout(plan: GemPlan, fetched: Fetched, ctx: &LayoutContext) -> Result<PmOutput, Failure> {
    // every gem verified: the index lines seen for the first time are recorded now, for good
    for gem in plan.gems.values().filter(|g| g.new_line) {
        let key = info_line_store_key(&gem.name, &gem.version, gem.platform.as_deref());
        if !ctx.store.contains(&key) {
            ctx.store
                .put_bytes(&key, format!("{}\n", gem.info_line).as_bytes())
                .map_err(io_failure(&key))?;
        }
    }

    let output_dir = ctx.hand_back == crate::pkg_managers::HandBack::OutputDir;
    // the service's bundle keeps Cachito's `deps/rubygems`; an output directory is Hermeto's
    let cache = if output_dir {
        config::OUTPUT_DIR_CACHE
    } else {
        "deps/rubygems"
    };
    let deps = ctx.bundle_root().join(cache);
    std::fs::create_dir_all(&deps).map_err(io_failure(cache))?;
    let mut licenses: BTreeMap<String, String> = BTreeMap::new();
    for gem in plan.gems.values() {
        ctx.place_stored(
            &format!("{cache}/{}.gem", gem.full_name()),
            &gem.store_key(),
        )?;
        // the SBOM's licence: only the small gemspec is read; a gem it cannot be read from
        // (it installs from its data, not from this) is handed back without one
        let license = ctx
            .store
            .path(&gem.store_key())
            .map_err(|e| e.to_string())
            .and_then(|path| gemspec::gem_license(&path).map_err(|e| e.to_string()));
        match license {
            Ok(Some(license)) => {
                licenses.insert(gem.full_name(), license);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::info!(gem = %gem.full_name(), error = %e, "no licence read from the gem")
            }
        }
    }
    let mut done_git = BTreeSet::new();
    for lock in &plan.locks {
        for g in &lock.git {
            let dir = git_cache_dirname(g)?;
            if done_git.insert(dir.clone()) {
                let fetch = GitFetch {
                    url: g.remote.clone(),
                    commit: g.revision.clone(),
                };
                let checkout = fetched
                    .git
                    .get(&fetch)
                    .ok_or_else(|| LayoutError::NotFetched(g.remote.clone()))?;
                git_checkout(ctx, &checkout.store_key, g, &deps.join(&dir))?;
            }
        }
    }

    let mut out = PmOutput::default();
    if output_dir {
        // as Hermeto: Bundler's cache (`bundle cache --all`'s layout) and a configuration of
        // the output directory's own that BUNDLE_APP_CONFIG names, so no `.bundle/config` of
        // the project is read; no gem server: `bundle install` installs from the cache (git
        // gems from their cached checkouts)
        let mut repository_configs = Vec::new();
        for lock in &plan.locks {
            out.packages.push(package(lock, &plan, ctx));
            if let Some(found) = repository_config(ctx, lock)? {
                repository_configs.push(found);
            }
        }
        let text = config::output_dir_config(&repository_configs, plan.platform_gems);
        crate::bundle::write_output_overlay_file(
            ctx.bundle_root(),
            &format!("{}/config", config::OUTPUT_DIR_APP_CONFIG),
            text.as_bytes(),
        )?;
        out.env.insert(
            "BUNDLE_APP_CONFIG".into(),
            common::EnvVar::path(config::OUTPUT_DIR_APP_CONFIG),
        );
        out.add_artifacts(artifacts(&plan, &licenses))?;
        return Ok(out);
    }
    for lock in &plan.locks {
        out.packages.push(package(lock, &plan, ctx));
        let up = "../".repeat(lock.package_path.depth() + 1);
        let mut locals = Vec::new();
        for g in &lock.git {
            let dir = format!("{up}deps/rubygems/{}", git_cache_dirname(g)?);
            // Bundler applies a local override to a Gemfile dependency only
            for spec in g
                .specs
                .iter()
                .filter(|s| lock.dependencies.contains(&s.name))
            {
                locals.push((spec.name.clone(), dir.clone()));
            }
        }
        out.config_files.push(config::bundle_config(
            lock,
            &plan.server_url,
            plan.platform_gems,
            &locals,
            ctx.repos_ca,
        )?);
    }
    if let Some(ca) = ctx.repos_ca {
        // Bundler reads the index with BUNDLE_SSL_CA_CERT, but downloads a .gem through
        // RubyGems' fetcher, which trusts only its own setting or OpenSSL's SSL_CERT_FILE
        out.env.insert("SSL_CERT_FILE".into(), ca.env_var());
    }
    out.add_artifacts(artifacts(&plan, &licenses))?;
    Ok(out)
}

/// The `.bundle/config` of a Gemfile's directory, if the repository has one: its path as
/// messages name it and its text. One that is a link out of the repository is refused.
fn repository_config(
    ctx: &LayoutContext,
    lock: &GemLock,
) -> Result<Option<(String, String)>, Failure> {
    let rel = lock
        .package_path
        .join(".bundle/config")
        .map_err(io_failure(".bundle/config"))?;
    let path = match rel.resolve(&ctx.app_dir()) {
        Ok(path) => path,
        Err(common::repo_path::RepoPathError::Missing(_)) => return Ok(None),
        Err(e) => return Err(io_failure(rel.as_str())(e).into()),
    };
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(io_failure(rel.as_str()))?;
    Ok(Some((rel.as_str().to_string(), text)))
}

/// `bundle cache --all`'s name of a git source's directory: the URL's basename without `.git`,
/// `-`, the commit's first 12 hex digits.
pub fn git_cache_dirname(g: &GitSource) -> Result<String, Failure> {
    let trimmed = g.remote.trim_end_matches('/');
    let base = trimmed
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(trimmed)
        .trim_end_matches(".git");
    if !common::artifact::rubygems::is_gem_name(base) {
        return Err(LayoutError::NoRepositoryName(g.remote.clone()).into());
    }
    Ok(format!("{base}-{}", &g.revision.as_str()[..12]))
}

/// The git source's archive (its `.git` kept) unpacked at `dest`, HEAD on the locked branch
/// (or detached) at the locked commit, marked as Bundler marks a cached checkout.
fn git_checkout(
    ctx: &LayoutContext,
    store_key: &str,
    g: &GitSource,
    dest: &Path,
) -> Result<(), Failure> {
    let archive = ctx.store.path(store_key).map_err(io_failure(store_key))?;
    let parent = dest.parent().unwrap_or(dest);
    let tmp = tempfile::tempdir_in(parent).map_err(io_failure("the gem cache"))?;
    common::archive::unpack_tar_gz(&archive, tmp.path(), Default::default()).map_err(|e| {
        LayoutError::Damaged {
            key: store_key.to_string(),
            reason: e.to_string(),
        }
    })?;
    let _ = std::fs::remove_dir_all(dest);
    std::fs::rename(tmp.path().join("app"), dest).map_err(io_failure(store_key))?;
    crate::sandbox::check_symlinks(dest, false)?;
    let git_error = |e: git2::Error| LayoutError::Git {
        remote: g.remote.clone(),
        commit: g.revision.to_string(),
        reason: e.to_string(),
    };
    let repo = git2::Repository::open(dest).map_err(git_error)?;
    let oid = git2::Oid::from_str(g.revision.as_str()).map_err(git_error)?;
    let commit = repo.find_commit(oid).map_err(git_error)?;
    match g
        .branch
        .as_deref()
        .filter(|b| git2::Branch::name_is_valid(b).unwrap_or(false))
    {
        Some(branch) => {
            repo.branch(branch, &commit, true).map_err(git_error)?;
            repo.set_head(&format!("refs/heads/{branch}"))
                .map_err(git_error)?;
        }
        None => repo.set_head_detached(oid).map_err(git_error)?,
    }
    std::fs::write(dest.join(".bundlecache"), b"").map_err(io_failure(store_key))?;
    Ok(())
}

fn dependency(name: &str, version: &str, purl: String) -> Dependency {
    Dependency {
        kind: "rubygems".into(),
        name: name.to_string(),
        version: Some(version.to_string()),
        dev: None,
        optional: None,
        replaces: None,
        purl,
        depends_on: Vec::new(),
    }
}

pub fn gem_purl(spec: &Spec) -> String {
    let base = format!(
        "pkg:gem/{}@{}",
        spec.name,
        common::percent::encode_component(&spec.version)
    );
    match &spec.platform {
        Some(p) => format!("{base}?platform={}", common::percent::encode_component(p)),
        None => base,
    }
}

/// One `rubygems` package for a Gemfile: its gemspec's literal name and version, else the
/// repository's name at the commit; every locked gem as a dependency.
fn package(lock: &GemLock, plan: &GemPlan, ctx: &LayoutContext) -> Package {
    let job = ctx.job;
    let (name, version) = lock
        .package_path
        .resolve(&ctx.app_dir())
        .ok()
        .and_then(|dir| literal_gemspec(&dir))
        .unwrap_or_else(|| (repository_name(&job.repo), job.git_ref.clone()));
    let mut deps: BTreeSet<Dependency> = BTreeSet::new();
    // the graph (Gemfile.lock's indentation): each spec's dependency names, by the purl it is
    // reported as; names resolve to every locked spec of that name (one per platform)
    let mut requires: Vec<(String, &Vec<String>)> = Vec::new();
    let mut own: Vec<&String> = Vec::new();
    for source in &lock.gem {
        for spec in &source.specs {
            let fetched = plan.gems.contains_key(&spec.full_name());
            if spec.platform.is_none() || fetched {
                requires.push((gem_purl(spec), &spec.dependencies));
                deps.insert(dependency(&spec.name, &spec.version, gem_purl(spec)));
            }
        }
    }
    for g in &lock.git {
        let vcs = common::percent::encode_component(&format!("git+{}@{}", g.remote, g.revision));
        for spec in &g.specs {
            let purl = gem_purl(spec);
            let sep = if purl.contains('?') { '&' } else { '?' };
            let purl = format!("{purl}{sep}vcs_url={vcs}");
            requires.push((purl.clone(), &spec.dependencies));
            deps.insert(dependency(&spec.name, &spec.version, purl));
        }
    }
    for p in &lock.path {
        if p.path == lock.package_path {
            // the package's own gemspec: its dependencies are the package's
            own.extend(p.specs.iter().flat_map(|s| &s.dependencies));
            continue;
        }
        for spec in &p.specs {
            let purl = crate::pkg_managers::npm::layout::vcs_purl(
                &job.repo,
                &job.git_ref,
                &spec.name,
                &p.path,
            );
            requires.push((purl.clone(), &spec.dependencies));
            deps.insert(dependency(&spec.name, &spec.version, purl));
        }
    }
    let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for d in &deps {
        by_name
            .entry(d.name.as_str())
            .or_default()
            .push(d.purl.as_str());
    }
    let resolve = |names: &mut dyn Iterator<Item = &String>| -> Vec<String> {
        let set: BTreeSet<String> = names
            .flat_map(|n| by_name.get(n.as_str()).into_iter().flatten())
            .map(|p| p.to_string())
            .collect();
        set.into_iter().collect()
    };
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (purl, names) in &requires {
        let targets = resolve(&mut names.iter());
        edges.entry(purl.clone()).or_default().extend(targets);
    }
    let roots = resolve(&mut lock.dependencies.iter().chain(own));
    let deps: Vec<Dependency> = deps
        .into_iter()
        .map(|mut d| {
            if let Some(mut targets) = edges.remove(&d.purl) {
                targets.sort();
                targets.dedup();
                targets.retain(|t| *t != d.purl);
                d.depends_on = targets;
            }
            d
        })
        .collect();
    Package {
        kind: "rubygems".into(),
        purl: crate::pkg_managers::npm::layout::vcs_purl(
            &job.repo,
            &job.git_ref,
            &name,
            &lock.package_path,
        ),
        name,
        version,
        path: (!lock.package_path.is_root()).then(|| lock.package_path.to_string()),
        dependencies: deps,
        depends_on: roots,
    }
}

/// The repository's name: the last segment of its URL without `.git`.
fn repository_name(repo: &str) -> String {
    let t = repo.trim_end_matches('/');
    t.rsplit(['/', ':'])
        .next()
        .unwrap_or(t)
        .trim_end_matches(".git")
        .to_string()
}

/// `(name, version)` of the directory's gemspec when both are string literals
/// (`s.name = "x"`, `spec.version = '1.0'`); a computed one (`Foo::VERSION`) gives `None`:
/// Larder never evaluates Ruby.
pub fn literal_gemspec(dir: &Path) -> Option<(String, String)> {
    let mut specs: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "gemspec") && p.is_file())
        .collect();
    specs.sort();
    let path = specs.first()?;
    if std::fs::metadata(path).ok()?.len() > 1 << 20 {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let field = |key: &str| -> Option<String> {
        text.lines().find_map(|line| {
            let (lhs, rhs) = line.trim().split_once('=')?;
            let lhs = lhs.trim();
            if !lhs.ends_with(&format!(".{key}")) || lhs.contains(' ') {
                return None;
            }
            // `"x".freeze`, what `bundle gem` writes, is as literal
            let rhs = rhs.trim().trim_end_matches(".freeze");
            let quote = rhs.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let inner = rhs[1..].strip_suffix(quote)?;
            (!inner.contains(['"', '\'', '#', '\\'])).then(|| inner.to_string())
        })
    };
    let name = field("name").filter(|n| common::artifact::rubygems::is_gem_name(n))?;
    let version =
        field("version").filter(|v| common::artifact::rubygems::is_version_or_platform(v))?;
    Some((name, version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::commit::CommitId;

    #[test]
    fn cache_dirnames_and_gemspecs() {
        let g = GitSource {
            remote: "https://github.com/o/porta.git".into(),
            revision: CommitId::parse(&"ab".repeat(20)).unwrap(),
            branch: None,
            glob: None,
            submodules: false,
            specs: vec![],
        };
        assert_eq!(git_cache_dirname(&g).unwrap(), "porta-abababababab");
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("app.gemspec"),
            "Gem::Specification.new do |s|\n  s.name = \"app\"\n  s.version = '1.2.0'\nend\n",
        )
        .unwrap();
        assert_eq!(
            literal_gemspec(d.path()),
            Some(("app".into(), "1.2.0".into()))
        );
        std::fs::write(
            d.path().join("app.gemspec"),
            "Gem::Specification.new do |s|\n  s.name = \"app\"\n  s.version = App::VERSION\nend\n",
        )
        .unwrap();
        assert_eq!(literal_gemspec(d.path()), None);
        std::fs::write(
            d.path().join("app.gemspec"),
            "Gem::Specification.new do |spec|\n  spec.name = \"app\".freeze\n  spec.version = \"2.0.0\".freeze\nend\n",
        )
        .unwrap();
        assert_eq!(
            literal_gemspec(d.path()),
            Some(("app".into(), "2.0.0".into()))
        );
        assert_eq!(repository_name("file:///tmp/x/shop.git"), "shop");
    }
}
