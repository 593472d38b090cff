//! Bundle layout (`deps/pip/...`), packages report with purls, env vars, rewritten
//! requirements files and the artifacts the per-request index serves.

use crate::pkg_managers::pip::metadata::ProjectMetadata;
use crate::pkg_managers::pip::names::normalize_name;
use crate::pkg_managers::pip::plan::Plan;
use crate::pkg_managers::pip::requirements::{
    resolve_in_repo, ParsedRequirements, Requirement, Source,
};
use common::{
    Artifact, ArtifactMeta, ConfigFile, Dependency, EnvVar, EnvVars, ErrorKind, Failure, Package,
};
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("The stored file {key} for {label} is missing or unreadable: {reason}")]
    Store {
        key: String,
        label: String,
        reason: String,
    },
    #[error("The bundle file {path} could not be written: {reason}")]
    Write { path: String, reason: String },
    #[error("The storage key or bundle path {0} is not a safe relative path")]
    UnsafePath(String),
    #[error("The per-request repository URL {0} is not a valid http(s) URL")]
    BadBaseUrl(String),
    #[error("The requirements file {0} could not be re-read for rewriting")]
    Reread(String),
}

impl LayoutError {
    pub fn failure(&self) -> Failure {
        match self {
            LayoutError::Reread(_) => {
                Failure::new(ErrorKind::InvalidRepoStructure, self.to_string())
            }
            _ => Failure::new(ErrorKind::FileAccessError, self.to_string()),
        }
    }
}

/// The request's own repository (for the packages' purls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    pub url: String,
    pub commit: String,
}

/// One requested pip package path with its parsed requirements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageInput {
    /// repository-relative package path ("." for the root)
    pub path: String,
    pub metadata: ProjectMetadata,
    pub runtime: Vec<ParsedRequirements>,
    pub build: Vec<ParsedRequirements>,
}

/// Where the per-request repository is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeInfo {
    /// e.g. `http://127.0.0.1:8080/repos/7/pypi/` (the index is `<base>simple/`)
    pub base_url: String,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutOutput {
    pub packages: Vec<Package>,
    pub env_vars: EnvVars,
    pub config_files: Vec<ConfigFile>,
    pub artifacts: Vec<Artifact>,
}

/// Percent-encode everything but RFC 3986 unreserved characters (Python `quote(s, safe="")`).
pub fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Cachito's pip purl name: lowercase, runs of characters other than `[a-z0-9.]` -> `-`.
pub fn purl_name(name: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c);
            sep = false;
        } else if !sep {
            out.push('-');
            sep = true;
        }
    }
    out
}

/// Cachito's VCS purl: github/bitbucket types, else `pkg:generic/<name>?vcs_url=<url@ref>`.
pub fn vcs_purl(name: &str, repo_url: &str, reference: &str) -> String {
    let url = repo_url.trim_end_matches('/');
    let plain = url.strip_prefix("git+").unwrap_or(url);
    if let Ok(u) = url::Url::parse(plain) {
        let ty = match u.host_str() {
            Some("github.com") => Some("github"),
            Some("bitbucket.org") => Some("bitbucket"),
            _ => None,
        };
        if let Some(ty) = ty {
            let path = u.path().trim_matches('/');
            if let Some((ns, repo)) = path.rsplit_once('/') {
                let repo = repo.strip_suffix(".git").unwrap_or(repo);
                return format!(
                    "pkg:{ty}/{}/{}@{reference}",
                    ns.to_lowercase(),
                    repo.to_lowercase()
                );
            }
        }
    }
    format!(
        "pkg:generic/{}?vcs_url={}",
        purl_name(name),
        pct(&format!("{url}@{reference}"))
    )
}

/// The reported dependency for a requirement (Cachito's version strings and purls).
pub fn dependency_of(req: &Requirement, dev: bool) -> Dependency {
    let name = req.normalized.clone();
    let (version, purl) = match &req.source {
        Source::Index { version, .. } => (
            version.clone(),
            format!("pkg:pypi/{}@{}", purl_name(&name), pct(version)),
        ),
        Source::Vcs { url, commit, .. } => {
            let v = format!("git+{url}@{commit}");
            let purl = vcs_purl(&name, &format!("git+{url}"), commit);
            (v, purl)
        }
        Source::Url { url, hash, .. } => {
            let checksum = format!("{}:{}", hash.alg.name(), hash.hex);
            (
                format!("{url}#cachito_hash={checksum}"),
                format!(
                    "pkg:generic/{}?download_url={}&checksum={}",
                    purl_name(&name),
                    pct(url),
                    pct(&checksum)
                ),
            )
        }
    };
    Dependency {
        kind: "pip".into(),
        name,
        version: Some(version),
        dev: Some(dev),
        replaces: None,
        purl,
    }
}

/// `PIP_INDEX_URL` value: `<base>simple/` with `__token__:<token>` as userinfo.
pub fn index_url_with_token(serve: &ServeInfo) -> Result<String, LayoutError> {
    Ok(format!("{}simple/", base_with_token(serve)?))
}

fn base_with_token(serve: &ServeInfo) -> Result<String, LayoutError> {
    let bad = || LayoutError::BadBaseUrl(serve.base_url.clone());
    let mut u = url::Url::parse(&serve.base_url).map_err(|_| bad())?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(bad());
    }
    u.set_username("__token__").map_err(|_| bad())?;
    u.set_password(Some(&serve.token)).map_err(|_| bad())?;
    let mut s = u.to_string();
    if !s.ends_with('/') {
        s.push('/');
    }
    Ok(s)
}

/// Env vars: `PIP_INDEX_URL` (literal) and, for plain http to a non-loopback host,
/// `PIP_TRUSTED_HOST`.
pub fn env_vars(serve: &ServeInfo) -> Result<EnvVars, LayoutError> {
    let mut env = EnvVars::new();
    env.insert(
        "PIP_INDEX_URL".into(),
        EnvVar {
            value: index_url_with_token(serve)?,
            kind: "literal".into(),
        },
    );
    let u = url::Url::parse(&serve.base_url)
        .map_err(|_| LayoutError::BadBaseUrl(serve.base_url.clone()))?;
    let host = u.host_str().unwrap_or("");
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1");
    if u.scheme() == "http" && !loopback {
        let value = match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        env.insert(
            "PIP_TRUSTED_HOST".into(),
            EnvVar {
                value,
                kind: "literal".into(),
            },
        );
    }
    Ok(env)
}

fn safe_rel(p: &str) -> Result<PathBuf, LayoutError> {
    let path = Path::new(p);
    if p.is_empty()
        || path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(LayoutError::UnsafePath(p.into()));
    }
    Ok(path.to_path_buf())
}

/// Hard-link (or copy) a stored file into the bundle; returns (sha256, size).
fn place(
    store_root: &Path,
    key: &str,
    bundle_root: &Path,
    dest: &str,
    label: &str,
) -> Result<(String, u64), LayoutError> {
    let src = store_root.join(safe_rel(key)?);
    let dst = bundle_root.join(safe_rel(dest)?);
    let store_err = |e: std::io::Error| LayoutError::Store {
        key: key.into(),
        label: label.into(),
        reason: e.to_string(),
    };
    let meta = std::fs::symlink_metadata(&src).map_err(store_err)?;
    if !meta.is_file() {
        return Err(LayoutError::Store {
            key: key.into(),
            label: label.into(),
            reason: "not a regular file".into(),
        });
    }
    let werr = |e: std::io::Error| LayoutError::Write {
        path: dest.into(),
        reason: e.to_string(),
    };
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent).map_err(werr)?;
    }
    if !dst.exists() && std::fs::hard_link(&src, &dst).is_err() {
        std::fs::copy(&src, &dst).map_err(werr)?;
    }
    let mut f = std::fs::File::open(&src).map_err(store_err)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(store_err)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex::encode(h.finalize()), size))
}

/// URL path (below the pip base URL) where the index serves a bundle file `deps/pip/<rel>`.
pub fn served_file_path(bundle_path: &str) -> String {
    format!(
        "files/{}",
        bundle_path.strip_prefix("deps/pip/").unwrap_or(bundle_path)
    )
}

fn rewrite_line(req: &Requirement, url: &str) -> String {
    let extras = if req.extras.is_empty() {
        String::new()
    } else {
        format!("[{}]", req.extras.join(","))
    };
    let mut line = format!("{}{} @ {}", req.name, extras, url);
    if let Some(m) = &req.marker {
        line.push_str(" ; ");
        line.push_str(m);
    }
    for h in &req.hashes {
        line.push(' ');
        line.push_str(&h.option());
    }
    for o in &req.other_options {
        line.push(' ');
        line.push_str(o);
    }
    line
}

/// Lay out the fetched files under `bundle_root/deps/pip/`, and compute the packages report,
/// env vars, rewritten requirements files and artifacts. `app_root` is the unpacked source.
pub fn layout(
    store_root: &Path,
    bundle_root: &Path,
    app_root: &Path,
    plan: &Plan,
    packages: &[PackageInput],
    repo: &RepoRef,
    serve: &ServeInfo,
) -> Result<LayoutOutput, LayoutError> {
    let mut artifacts = Vec::new();
    let mut seen = BTreeSet::new();
    // served URL (with token and #sha256) of each VCS/URL dependency, keyed by its bundle path
    let base = base_with_token(serve)?;
    let mut vcs_urls: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut url_urls: BTreeMap<String, String> = BTreeMap::new();
    for f in &plan.files {
        let dest = f.download.store_key.clone();
        let (sha, size) = place(
            store_root,
            &f.download.store_key,
            bundle_root,
            &dest,
            &f.download.label,
        )?;
        if seen.insert(dest.clone()) {
            artifacts.push(Artifact {
                pm: "pip".into(),
                name: f.name.clone(),
                version: f.version.clone(),
                filename: f.filename.clone(),
                store_key: f.download.store_key.clone(),
                meta: ArtifactMeta::Pip(common::artifact::untyped(serde_json::json!({
                    "sha256": sha, "requires_python": f.requires_python, "size": size,
                    "yanked": false, "kind": "index", "path": served_file_path(&dest),
                }))),
            });
        }
    }
    for g in &plan.git {
        let label = format!("{} @ git+{}@{}", g.name, g.url, g.commit);
        let (sha, size) = place(
            store_root,
            &g.store_key,
            bundle_root,
            &g.bundle_path,
            &label,
        )?;
        let filename = g
            .bundle_path
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let mut frag = format!("#sha256={sha}");
        if let Some(s) = &g.subdirectory {
            frag.push_str(&format!("&subdirectory={s}"));
        }
        vcs_urls.insert(
            (g.url.clone(), g.commit.clone()),
            format!("{base}{}{frag}", served_file_path(&g.bundle_path)),
        );
        if seen.insert(g.bundle_path.clone()) {
            artifacts.push(Artifact {
                pm: "pip".into(),
                name: g.name.clone(),
                version: g.commit.clone(),
                filename,
                store_key: g.store_key.clone(),
                meta: ArtifactMeta::Pip(common::artifact::untyped(serde_json::json!({
                    "sha256": sha, "requires_python": null, "size": size, "yanked": false,
                    "kind": "vcs", "path": served_file_path(&g.bundle_path),
                }))),
            });
        }
    }
    for u in &plan.urls {
        let key = &u.download.store_key;
        let (sha, size) = place(store_root, key, bundle_root, key, &u.download.label)?;
        url_urls.insert(
            u.url.clone(),
            format!("{base}{}#sha256={sha}", served_file_path(key)),
        );
        if seen.insert(key.clone()) {
            artifacts.push(Artifact {
                pm: "pip".into(),
                name: u.name.clone(),
                version: format!("external-{}-{}", u.hash.alg.name(), u.hash.hex),
                filename: u.filename.clone(),
                store_key: key.clone(),
                meta: ArtifactMeta::Pip(common::artifact::untyped(serde_json::json!({
                    "sha256": sha, "requires_python": null, "size": size, "yanked": false,
                    "kind": "url", "path": served_file_path(key),
                }))),
            });
        }
    }

    let mut out_packages = Vec::new();
    let mut rewrite: BTreeMap<String, Vec<(usize, usize, String)>> = BTreeMap::new();
    for p in packages {
        let mut deps: BTreeMap<(String, String), Dependency> = BTreeMap::new();
        for (sets, dev) in [(&p.runtime, false), (&p.build, true)] {
            for set in sets {
                for r in &set.requirements {
                    let d = dependency_of(r, dev);
                    let key = (d.name.clone(), d.version.clone().unwrap_or_default());
                    deps.entry(key)
                        .and_modify(|e| {
                            if !dev {
                                e.dev = Some(false);
                            }
                        })
                        .or_insert(d);
                    let served = match &r.source {
                        Source::Vcs { url, commit, .. } => {
                            vcs_urls.get(&(url.clone(), commit.clone()))
                        }
                        Source::Url { url, .. } => url_urls.get(url),
                        Source::Index { .. } => None,
                    };
                    if let Some(su) = served {
                        let entry = rewrite.entry(r.file.clone()).or_default();
                        let line = (r.line, r.end_line, rewrite_line(r, su));
                        if !entry.contains(&line) {
                            entry.push(line);
                        }
                    }
                }
            }
        }
        let mut dependencies: Vec<Dependency> = deps.into_values().collect();
        dependencies.sort_by(|a, b| {
            (&a.kind, a.dev, &a.name, &a.version).cmp(&(&b.kind, b.dev, &b.name, &b.version))
        });
        let root = p.path.is_empty() || p.path == ".";
        let mut purl = vcs_purl(&p.metadata.name, &repo.url, &repo.commit);
        if !root {
            purl.push('#');
            purl.push_str(p.path.trim_matches('/'));
        }
        out_packages.push(Package {
            kind: "pip".into(),
            name: p.metadata.name.clone(),
            version: p.metadata.version.clone(),
            path: (!root).then(|| p.path.trim_matches('/').to_string()),
            dependencies,
            purl,
        });
    }

    let mut config_files = Vec::new();
    for (file, mut lines) in rewrite {
        let real =
            resolve_in_repo(app_root, &file).map_err(|_| LayoutError::Reread(file.clone()))?;
        let text = std::fs::read_to_string(real).map_err(|_| LayoutError::Reread(file.clone()))?;
        let mut physical: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
        lines.sort();
        for (start, end, new) in lines.into_iter().rev() {
            if start == 0 || end > physical.len() || start > end {
                return Err(LayoutError::Reread(file.clone()));
            }
            physical.splice(start - 1..end, [format!("{new}\n")]);
        }
        config_files.push(ConfigFile {
            path: format!("app/{file}"),
            content: physical.concat().into_bytes(),
        });
    }
    write_find_links_page(bundle_root, &artifacts)?;
    Ok(LayoutOutput {
        packages: out_packages,
        env_vars: env_vars(serve)?,
        config_files,
        artifacts,
    })
}

/// Write `deps/pip/index.html`, a flat links page over the index files of the bundle, so that
/// `pip install --no-index --find-links deps/pip -r requirements.txt` finds the files in the
/// per-project subdirectories (pip reads HTML files of a find-links directory as link pages).
pub fn write_find_links_page(
    bundle_root: &Path,
    artifacts: &[Artifact],
) -> Result<(), LayoutError> {
    let mut html = String::from(
        "<!DOCTYPE html>\n<html><head><title>Larder pip dependencies</title></head><body>\n",
    );
    let mut entries: Vec<(String, String, String, Option<String>)> = artifacts
        .iter()
        .filter(|a| {
            a.pm == "pip"
                && a.meta
                    .fields()
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .is_none_or(|k| k == "index")
        })
        .map(|a| {
            let rel = a
                .store_key
                .strip_prefix("deps/pip/")
                .unwrap_or(&a.store_key)
                .to_string();
            let sha = a
                .meta
                .fields()
                .get("sha256")
                .and_then(|s| s.as_str())
                .unwrap_or_default()
                .to_string();
            let rp = a
                .meta
                .fields()
                .get("requires_python")
                .and_then(|s| s.as_str())
                .map(str::to_string);
            (rel, a.filename.clone(), sha, rp)
        })
        .collect();
    entries.sort();
    entries.dedup();
    for (rel, filename, sha, rp) in entries {
        let rp = rp
            .map(|r| {
                format!(
                    " data-requires-python=\"{}\"",
                    crate::pkg_managers::pip::index::html_escape(&r)
                )
            })
            .unwrap_or_default();
        html.push_str(&format!(
            "<a href=\"{}#sha256={sha}\"{rp}>{}</a><br/>\n",
            crate::pkg_managers::pip::index::html_escape(&rel),
            crate::pkg_managers::pip::index::html_escape(&filename)
        ));
    }
    html.push_str("</body></html>\n");
    let dir = bundle_root.join("deps/pip");
    let werr = |e: std::io::Error| LayoutError::Write {
        path: "deps/pip/index.html".into(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(&dir).map_err(werr)?;
    std::fs::write(dir.join("index.html"), html).map_err(werr)
}

/// Normalized project names that have artifacts (for logs/tests).
pub fn artifact_names(artifacts: &[Artifact]) -> BTreeSet<String> {
    artifacts.iter().map(|a| normalize_name(&a.name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkg_managers::pip::index::IndexFile;
    use crate::pkg_managers::pip::requirements::load;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn purls() {
        assert_eq!(purl_name("Zope.Interface_x"), "zope.interface-x");
        assert_eq!(
            vcs_purl("x", "https://github.com/Org/Repo.git", SHA),
            format!("pkg:github/org/repo@{SHA}")
        );
        assert_eq!(
            vcs_purl("x", "git+https://bitbucket.org/a/B", SHA),
            format!("pkg:bitbucket/a/b@{SHA}")
        );
        assert_eq!(
            vcs_purl("My_Pkg", "https://gitlab.com/a/b", "abc"),
            "pkg:generic/my-pkg?vcs_url=https%3A%2F%2Fgitlab.com%2Fa%2Fb%40abc"
        );
    }

    #[test]
    fn env() {
        let s = ServeInfo {
            base_url: "http://127.0.0.1:8080/repos/7/pypi/".into(),
            token: "t/k:n".into(),
        };
        let e = env_vars(&s).unwrap();
        assert_eq!(
            e["PIP_INDEX_URL"].value,
            "http://__token__:t%2Fk%3An@127.0.0.1:8080/repos/7/pypi/simple/"
        );
        assert_eq!(e["PIP_INDEX_URL"].kind, "literal");
        assert!(!e.contains_key("PIP_TRUSTED_HOST"));
        let s = ServeInfo {
            base_url: "http://larder.example:81/repos/7/pypi".into(),
            token: "x".into(),
        };
        let e = env_vars(&s).unwrap();
        assert_eq!(e["PIP_TRUSTED_HOST"].value, "larder.example:81");
        assert_eq!(
            e["PIP_INDEX_URL"].value,
            "http://__token__:x@larder.example:81/repos/7/pypi/simple/"
        );
        let s = ServeInfo {
            base_url: "https://larder.example/repos/7/pypi/".into(),
            token: "x".into(),
        };
        assert!(!env_vars(&s).unwrap().contains_key("PIP_TRUSTED_HOST"));
        assert!(env_vars(&ServeInfo {
            base_url: "ftp://x/".into(),
            token: "x".into()
        })
        .is_err());
    }

    #[test]
    fn full_layout() {
        let work = tempfile::tempdir().unwrap();
        let store = work.path().join("store");
        let bundle = work.path().join("bundle");
        let app = work.path().join("app");
        std::fs::create_dir_all(app.join("sub")).unwrap();
        std::fs::create_dir_all(store.join("deps/pip/foo")).unwrap();
        std::fs::create_dir_all(store.join("deps/git/github.com/org/repo")).unwrap();
        let sd = crate::pkg_managers::pip::fixtures::build_sdist(
            &store.join("deps/pip/foo"),
            "foo",
            "1.0",
            &[],
            Some(">=3.8"),
        )
        .unwrap();
        std::fs::write(
            store.join(format!("deps/git/github.com/org/repo/{SHA}.tar.gz")),
            b"git",
        )
        .unwrap();
        let url_hash = hex::encode(sha2::Sha256::digest(b"urldep"));
        std::fs::create_dir_all(store.join("deps/pip/external-bar")).unwrap();
        std::fs::write(
            store.join(format!(
                "deps/pip/external-bar/bar-external-sha256-{url_hash}.tar.gz"
            )),
            b"urldep",
        )
        .unwrap();
        std::fs::write(
            app.join("sub/requirements.txt"),
            format!("# deps\nfoo==1.0\ngit+https://github.com/org/repo.git@{SHA}#egg=Repo \\\n  ; python_version>'3'\nbar @ https://h.example/bar-1.0.tar.gz#sha256={url_hash}\n"),
        ).unwrap();
        std::fs::write(app.join("sub/requirements-build.txt"), "foo==1.0\n").unwrap();
        std::fs::write(
            app.join("sub/pyproject.toml"),
            "[project]\nname='app'\nversion='0.1'\n",
        )
        .unwrap();
        let rt = load(&app, "sub/requirements.txt").unwrap();
        let bt = load(&app, "sub/requirements-build.txt").unwrap();
        let pages: BTreeMap<String, Vec<IndexFile>> = [(
            "foo".to_string(),
            vec![IndexFile {
                filename: sd.filename.clone(),
                url: "https://up/foo-1.0.tar.gz".into(),
                sha256: Some(sd.sha256.clone()),
                requires_python: Some(">=3.8".into()),
                yanked: false,
                size: None,
            }],
        )]
        .into_iter()
        .collect();
        let plan =
            crate::pkg_managers::pip::plan::plan(&[(&rt, false), (&bt, true)], &pages, false)
                .unwrap();
        let md = crate::pkg_managers::pip::metadata::project_metadata(
            &app.join("sub"),
            "sub",
            &crate::pkg_managers::pip::metadata::Fallback::from_repository(
                "https://github.com/me/proj",
                SHA,
                "sub",
            ),
        )
        .unwrap();
        let serve = ServeInfo {
            base_url: "http://127.0.0.1:8080/repos/7/pypi/".into(),
            token: "tok".into(),
        };
        let repo = RepoRef {
            url: "https://github.com/me/proj".into(),
            commit: SHA.into(),
        };
        let out = layout(
            &store,
            &bundle,
            &app,
            &plan,
            &[PackageInput {
                path: "sub".into(),
                metadata: md,
                runtime: vec![rt],
                build: vec![bt],
            }],
            &repo,
            &serve,
        )
        .unwrap();
        assert!(bundle.join("deps/pip/foo/foo-1.0.tar.gz").is_file());
        assert!(bundle
            .join(format!(
                "deps/pip/github.com/org/repo/repo-external-gitcommit-{SHA}.tar.gz"
            ))
            .is_file());
        assert!(bundle
            .join(format!(
                "deps/pip/external-bar/bar-external-sha256-{url_hash}.tar.gz"
            ))
            .is_file());
        let p = &out.packages[0];
        assert_eq!(
            (p.name.as_str(), p.version.as_str(), p.path.as_deref()),
            ("app", "0.1", Some("sub"))
        );
        assert_eq!(p.purl, format!("pkg:github/me/proj@{SHA}#sub"));
        let deps: Vec<_> = p
            .dependencies
            .iter()
            .map(|d| (d.name.as_str(), d.dev, d.purl.as_str()))
            .collect();
        assert_eq!(deps.len(), 3, "{deps:?}");
        assert!(deps.contains(&("foo", Some(false), "pkg:pypi/foo@1.0")));
        assert!(deps.contains(&("repo", Some(false), &*format!("pkg:github/org/repo@{SHA}"))));
        assert!(deps.iter().any(|d| d.0 == "bar" && d.2.starts_with("pkg:generic/bar?download_url=https%3A%2F%2Fh.example%2Fbar-1.0.tar.gz&checksum=sha256%3A")));
        assert_eq!(out.artifacts.len(), 3);
        let fl = std::fs::read_to_string(bundle.join("deps/pip/index.html")).unwrap();
        assert!(fl.contains(&format!("<a href=\"foo/foo-1.0.tar.gz#sha256={}\" data-requires-python=\"&gt;=3.8\">foo-1.0.tar.gz</a>", sd.sha256)), "{fl}");
        assert!(!fl.contains("external"));
        let a = &out.artifacts[0];
        assert_eq!(a.store_key, "deps/pip/foo/foo-1.0.tar.gz");
        assert_eq!(a.meta.fields()["sha256"], sd.sha256);
        assert_eq!(a.meta.fields()["size"], sd.size);
        assert_eq!(a.meta.fields()["requires_python"], ">=3.8");
        assert_eq!(out.config_files.len(), 1);
        let cf = &out.config_files[0];
        assert_eq!(cf.path, "app/sub/requirements.txt");
        let text = String::from_utf8(cf.content.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# deps");
        assert_eq!(lines[1], "foo==1.0");
        let git_sha = hex::encode(sha2::Sha256::digest(b"git"));
        assert_eq!(lines[2], format!("Repo @ http://__token__:tok@127.0.0.1:8080/repos/7/pypi/files/github.com/org/repo/repo-external-gitcommit-{SHA}.tar.gz#sha256={git_sha} ; python_version>'3'"));
        assert!(lines[3].starts_with("bar @ http://__token__:tok@127.0.0.1:8080/repos/7/pypi/files/external-bar/bar-external-sha256-"));
        assert_eq!(lines.len(), 4);
        // the rewritten file parses (credentials removed: user files may not carry them)
        let c = crate::pkg_managers::pip::requirements::parse_str(
            &text.replace("__token__:tok@", ""),
            "x",
        )
        .unwrap();
        assert_eq!(c.requirements.len(), 3);
        assert!(c
            .requirements
            .iter()
            .all(|r| r.marker.is_none() || r.marker.as_deref() == Some("python_version>'3'")));
        // missing stored file
        std::fs::remove_file(store.join("deps/pip/foo/foo-1.0.tar.gz")).unwrap();
        let bundle2 = work.path().join("bundle2");
        assert!(matches!(
            layout(&store, &bundle2, &app, &plan, &[], &repo, &serve).unwrap_err(),
            LayoutError::Store { .. }
        ));
    }
}
