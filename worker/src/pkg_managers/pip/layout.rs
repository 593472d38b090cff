//! Bundle layout (`deps/pip/...`), packages report with purls, env vars, rewritten
//! requirements files and the artifacts the per-request index serves.

use crate::bundle::BundleTree;
use crate::pkg_managers::pip::graph::{fill_edges, DependencyFacts};
use crate::pkg_managers::pip::metadata::{CoreMetadata, ProjectMetadata};
use crate::pkg_managers::pip::names::{normalize_name, Version};
use crate::pkg_managers::pip::plan::{GitDep, Plan};
use crate::pkg_managers::pip::requirements::{
    resolve_file, ParsedRequirements, Requirement, Source,
};
use crate::pkg_managers::{output_dir_mark, GitCheckout, GitFetch, HandBack, ReposCa};
use common::archive::TarGzWriter;
use common::artifact::pip::{PipFileKind, PipMeta};
use common::commit::CommitId;
use common::digest::{FileDigests, HashAlgorithm};
use common::percent::encode_component;
use common::repo_path::RepoPath;
use common::{
    Artifact, ArtifactMeta, Classify, ConfigFile, Dependency, EnvVar, EnvVars, ErrorKind, Package,
    Store,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

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
    #[error("The archive {key} of {label} could not be written: {reason}")]
    Pack {
        key: String,
        label: String,
        reason: String,
    },
}

impl Classify for LayoutError {
    fn kind(&self) -> ErrorKind {
        match self {
            LayoutError::Reread(_) => ErrorKind::InvalidRepoStructure,
            _ => ErrorKind::FileAccessError,
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
    pub path: RepoPath,
    pub metadata: ProjectMetadata,
    pub runtime: Vec<ParsedRequirements>,
    pub build: Vec<ParsedRequirements>,
}

/// Where the per-request repository is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeInfo {
    /// e.g. `http://127.0.0.1:8080/repos/7/pip/` (the index is `<base>simple/`)
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
        encode_component(&format!("{url}@{reference}"))
    )
}

/// The reported dependency for a requirement (Cachito's version strings and purls).
pub fn dependency_of(req: &Requirement, dev: bool) -> Dependency {
    let name = req.normalized.clone();
    let (version, purl) = match &req.source {
        Source::Index { version, .. } => (
            version.clone(),
            format!(
                "pkg:pypi/{}@{}",
                purl_name(&name),
                encode_component(version)
            ),
        ),
        Source::Vcs { url, commit, .. } => {
            let v = format!("git+{url}@{commit}");
            let purl = vcs_purl(&name, &format!("git+{url}"), commit.as_str());
            (v, purl)
        }
        Source::Url { url, hash, .. } => {
            let checksum = hash.to_string();
            (
                format!("{url}#cachito_hash={checksum}"),
                format!(
                    "pkg:generic/{}?download_url={}&checksum={}",
                    purl_name(&name),
                    encode_component(url),
                    encode_component(&checksum)
                ),
            )
        }
    };
    Dependency {
        kind: "pip".into(),
        name,
        version: Some(version),
        dev: Some(dev),
        optional: None,
        replaces: None,
        purl,
        depends_on: Vec::new(),
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

/// Env vars: `PIP_INDEX_URL` (literal), for plain http to a non-loopback host
/// `PIP_TRUSTED_HOST`, and with the index's CA `PIP_CERT` (path: pip verifies the index with
/// the CA bundle it names instead of its own, as Cachito hands back its `PIP_CERT`) and
/// `REQUESTS_CA_BUNDLE` (path, the same file): pip before 24 lets a `REQUESTS_CA_BUNDLE` or
/// `CURL_CA_BUNDLE` of the environment win over `PIP_CERT` (VERIFIED: pip 23.2.1 with both set
/// to the system bundle fails the index's certificate, pip 26.3 does not), and build images
/// often set them.
pub fn env_vars(serve: &ServeInfo, repos_ca: Option<&ReposCa>) -> Result<EnvVars, LayoutError> {
    let mut env = EnvVars::new();
    if let Some(ca) = repos_ca {
        env.insert("PIP_CERT".into(), ca.env_var());
        env.insert("REQUESTS_CA_BUNDLE".into(), ca.env_var());
    }
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

/// Hermeto's pip variables for an output directory: pip finds every file in `deps/pip` (its
/// links page, [`write_find_links_page`]) and asks no index.
pub fn output_dir_env_vars() -> EnvVars {
    let mut env = EnvVars::new();
    env.insert("PIP_FIND_LINKS".into(), EnvVar::path("deps/pip"));
    env.insert(
        "PIP_NO_INDEX".into(),
        EnvVar {
            value: "true".into(),
            kind: "literal".into(),
        },
    );
    env
}

/// Place the stored file `key` at the same path in the bundle.
fn place(store: &Store, key: &str, bundle: &BundleTree, label: &str) -> Result<(), LayoutError> {
    bundle
        .place_stored(store, key, key)
        .map_err(|e| LayoutError::Store {
            key: key.into(),
            label: label.into(),
            reason: e.to_string(),
        })
}

/// The digests of a fetched file, computed when it was verified.
fn digests_of<'a>(
    files: &'a BTreeMap<String, FileDigests>,
    key: &str,
    label: &str,
) -> Result<&'a FileDigests, LayoutError> {
    files.get(key).ok_or_else(|| LayoutError::Store {
        key: key.into(),
        label: label.into(),
        reason: "it was not fetched".into(),
    })
}

/// Pack a git dependency's checkout as Cachito did (the tree under `app/`), byte-reproducibly,
/// into the store at its bundle path unless the store holds it already (the same bytes: the
/// same commit packs the same). Returns its sha256 (hex) and size.
fn pack_checkout(
    store: &Store,
    checkout: &Path,
    git: &GitDep,
    label: &str,
) -> Result<(String, u64), LayoutError> {
    let key = git.bundle_path.as_str();
    let failed = |e: std::io::Error| LayoutError::Pack {
        key: key.into(),
        label: label.into(),
        reason: e.to_string(),
    };
    let pack = |out: &mut dyn std::io::Write| -> std::io::Result<([u8; 32], u64)> {
        let mut writer = TarGzWriter::new(out);
        writer.append_tree("app", checkout, &|_| false)?;
        let (_, sha256, size) = writer.finish()?;
        Ok((sha256, size))
    };
    let (sha256, size) = if store.contains(key) {
        pack(&mut std::io::sink()).map_err(failed)?
    } else {
        let mut temp = store.temp_file().map_err(failed)?;
        let packed = pack(&mut temp).map_err(failed)?;
        store.persist(temp, key).map_err(|e| LayoutError::Pack {
            key: key.into(),
            label: label.into(),
            reason: e.to_string(),
        })?;
        packed
    };
    Ok((hex::encode(sha256), size))
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
        line.push_str(&format!(" --hash={h}"));
    }
    for o in &req.other_options {
        line.push(' ');
        line.push_str(o);
    }
    line
}

/// What the layout works with.
pub struct LayoutInput<'a> {
    pub store: &'a Store,
    /// `app/` (the unpacked source) and `deps/` are below its root.
    pub bundle: &'a BundleTree,
    pub plan: &'a Plan,
    pub packages: &'a [PackageInput],
    /// The digests of the fetched files, by store key.
    pub files: &'a BTreeMap<String, FileDigests>,
    /// The checkout of each git dependency.
    pub checkouts: &'a BTreeMap<GitFetch, GitCheckout>,
    pub repo: &'a RepoRef,
    pub serve: &'a ServeInfo,
    /// What the hand-back is for.
    pub hand_back: HandBack,
    /// The index's CA (`LARDER_REPOS_CA_FILE`), named by `PIP_CERT`.
    pub repos_ca: Option<&'a ReposCa>,
    /// The core metadata of the fetched files, by store key (as the fetch's checks read it).
    pub metadata: &'a BTreeMap<String, CoreMetadata>,
}

fn pip_artifact(
    name: &str,
    version: String,
    filename: String,
    key: &str,
    meta: PipMeta,
    source_url: Option<String>,
) -> Artifact {
    Artifact {
        pm: "pip".into(),
        name: name.into(),
        version,
        filename,
        store_key: key.into(),
        meta: ArtifactMeta::Pip(meta),
        source_url,
    }
}

/// Whether two version strings name the same PEP 440 version (`1.0` and `1.0.0` do).
fn same_version(a: &str, b: &str) -> bool {
    match (Version::parse(a), Version::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// The core metadata of the files a requirement was fetched as: the index files of its pin,
/// the file of its URL; none for a git dependency (nothing of it is read).
fn metadata_of<'m>(
    r: &Requirement,
    plan: &Plan,
    metadata: &'m BTreeMap<String, CoreMetadata>,
) -> Vec<&'m CoreMetadata> {
    let keys: Vec<&String> = match &r.source {
        Source::Index { version, .. } => plan
            .files
            .iter()
            .filter(|f| f.name == r.normalized && same_version(&f.version, version))
            .map(|f| &f.download.store_key)
            .collect(),
        Source::Url { url, .. } => plan
            .urls
            .iter()
            .filter(|u| u.url == *url)
            .map(|u| &u.download.store_key)
            .collect(),
        Source::Vcs { .. } => Vec::new(),
    };
    keys.into_iter().filter_map(|k| metadata.get(k)).collect()
}

/// Lay out the fetched files under `deps/pip/`, and compute the packages report, env vars,
/// rewritten requirements files and artifacts.
pub fn layout(input: &LayoutInput) -> Result<LayoutOutput, LayoutError> {
    let LayoutInput {
        store,
        bundle,
        plan,
        packages,
        files,
        checkouts,
        repo,
        serve,
        repos_ca,
        metadata,
        hand_back,
    } = *input;
    let output_dir = hand_back == HandBack::OutputDir;
    let bundle_root = bundle.root();
    let license_of = |key: &str| metadata.get(key).and_then(|m| m.license.clone());
    let app_root = bundle_root.join("app");
    let mut artifacts = Vec::new();
    let mut seen = BTreeSet::new();
    // served URL (with token and #sha256) of each VCS/URL dependency, keyed by its bundle path
    // an output directory's files are named by their absolute path (Hermeto's `file://` URLs)
    let base = if output_dir {
        String::new()
    } else {
        base_with_token(serve)?
    };
    let link = |bundle_path: &str| {
        if output_dir {
            format!("file://{}/{bundle_path}", output_dir_mark())
        } else {
            format!("{base}{}", served_file_path(bundle_path))
        }
    };
    let mut vcs_urls: BTreeMap<(String, CommitId), String> = BTreeMap::new();
    let mut url_urls: BTreeMap<String, String> = BTreeMap::new();
    for f in &plan.files {
        let key = &f.download.store_key;
        place(store, key, bundle, &f.download.label)?;
        let digests = digests_of(files, key, &f.download.label)?;
        if seen.insert(key.clone()) {
            let meta = PipMeta {
                sha256: digests.get(HashAlgorithm::Sha256).hex(),
                requires_python: f.requires_python.clone(),
                size: digests.size,
                kind: PipFileKind::Index,
                path: served_file_path(key),
                license: license_of(key),
            };
            let (version, filename) = (f.version.clone(), f.filename.clone());
            let source_url = common::artifact::distribution_url(&f.download.url);
            artifacts.push(pip_artifact(
                &f.name, version, filename, key, meta, source_url,
            ));
        }
    }
    for g in &plan.git {
        let label = format!("{} @ git+{}@{}", g.name, g.url, g.commit);
        let fetch = GitFetch {
            url: g.url.clone(),
            commit: g.commit.clone(),
        };
        let checkout = checkouts.get(&fetch).ok_or_else(|| LayoutError::Store {
            key: g.bundle_path.clone(),
            label: label.clone(),
            reason: "it was not checked out".into(),
        })?;
        let (sha, size) = pack_checkout(store, &checkout.dir, g, &label)?;
        place(store, &g.bundle_path, bundle, &label)?;
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
            format!("{}{frag}", link(&g.bundle_path)),
        );
        if seen.insert(g.bundle_path.clone()) {
            let meta = PipMeta {
                sha256: sha,
                requires_python: None,
                size,
                kind: PipFileKind::Vcs,
                path: served_file_path(&g.bundle_path),
                license: None,
            };
            let version = g.commit.to_string();
            // packed here from the checkout: its source is the VCS reference, not a download
            artifacts.push(pip_artifact(
                &g.name,
                version,
                filename,
                &g.bundle_path,
                meta,
                None,
            ));
        }
    }
    for u in &plan.urls {
        let key = &u.download.store_key;
        place(store, key, bundle, &u.download.label)?;
        let digests = digests_of(files, key, &u.download.label)?;
        let sha = digests.get(HashAlgorithm::Sha256).hex();
        url_urls.insert(u.url.clone(), format!("{}#sha256={sha}", link(key)));
        if seen.insert(key.clone()) {
            let meta = PipMeta {
                sha256: sha,
                requires_python: None,
                size: digests.size,
                kind: PipFileKind::Url,
                path: served_file_path(key),
                license: license_of(key),
            };
            let version = format!("external-{}-{}", u.hash.algorithm, u.hash.hex());
            let source_url = common::artifact::distribution_url(&u.download.url);
            artifacts.push(pip_artifact(
                &u.name,
                version,
                u.filename.clone(),
                key,
                meta,
                source_url,
            ));
        }
    }

    let mut out_packages = Vec::new();
    let mut rewrite: BTreeMap<RepoPath, Vec<(usize, usize, String)>> = BTreeMap::new();
    for p in packages {
        let mut deps: BTreeMap<(String, String), Dependency> = BTreeMap::new();
        let mut facts: BTreeMap<(String, String), DependencyFacts> = BTreeMap::new();
        for (sets, dev) in [(&p.runtime, false), (&p.build, true)] {
            for set in sets {
                for r in &set.requirements {
                    let d = dependency_of(r, dev);
                    let key = (d.name.clone(), d.version.clone().unwrap_or_default());
                    let f = facts.entry(key.clone()).or_default();
                    f.extras.extend(r.extras.iter().map(|e| normalize_name(e)));
                    for m in metadata_of(r, plan, metadata) {
                        f.requires_dist
                            .get_or_insert_with(BTreeSet::new)
                            .extend(m.requires_dist.iter().cloned());
                    }
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
        fill_edges(&mut dependencies, &facts);
        dependencies.sort_by(|a, b| {
            (&a.kind, a.dev, &a.name, &a.version).cmp(&(&b.kind, b.dev, &b.name, &b.version))
        });
        let root = p.path.is_root();
        let mut purl = vcs_purl(&p.metadata.name, &repo.url, &repo.commit);
        if !root {
            purl.push('#');
            purl.push_str(p.path.as_str());
        }
        out_packages.push(Package {
            kind: "pip".into(),
            name: p.metadata.name.clone(),
            version: p.metadata.version.clone(),
            path: (!root).then(|| p.path.to_string()),
            dependencies,
            purl,
            depends_on: Vec::new(),
        });
    }

    let mut config_files = Vec::new();
    for (file, mut lines) in rewrite {
        let reread = || LayoutError::Reread(file.to_string());
        let real = resolve_file(&app_root, &file).map_err(|_| reread())?;
        let text = std::fs::read_to_string(real).map_err(|_| reread())?;
        let mut physical: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
        lines.sort();
        for (start, end, new) in lines.into_iter().rev() {
            if start == 0 || end > physical.len() || start > end {
                return Err(reread());
            }
            physical.splice(start - 1..end, [format!("{new}\n")]);
        }
        if output_dir {
            // a project file of the output directory: the app overlay is what the local
            // runner hands back over the source
            crate::bundle::write_overlay_file(
                bundle_root,
                &format!("app/{file}"),
                physical.concat().as_bytes(),
            )
            .map_err(|f| LayoutError::Write {
                path: file.to_string(),
                reason: f.message,
            })?;
        } else {
            config_files.push(ConfigFile::inline(format!("app/{file}"), physical.concat()));
        }
    }
    write_find_links_page(bundle_root, &artifacts)?;
    let env_vars = if output_dir {
        output_dir_env_vars()
    } else {
        env_vars(serve, repos_ca)?
    };
    Ok(LayoutOutput {
        packages: out_packages,
        env_vars,
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
    let mut entries: Vec<(&str, &str, &str, Option<&str>)> = artifacts
        .iter()
        .filter(|a| a.pm == "pip")
        .filter_map(|a| match &a.meta {
            ArtifactMeta::Pip(m) if m.kind == PipFileKind::Index => {
                let rel = a
                    .store_key
                    .strip_prefix("deps/pip/")
                    .unwrap_or(&a.store_key);
                Some((
                    rel,
                    a.filename.as_str(),
                    m.sha256.as_str(),
                    m.requires_python.as_deref(),
                ))
            }
            _ => None,
        })
        .collect();
    entries.sort();
    entries.dedup();
    for (rel, filename, sha, rp) in entries {
        let rp = rp
            .map(|r| {
                format!(
                    " data-requires-python=\"{}\"",
                    html_escape::encode_quoted_attribute(r)
                )
            })
            .unwrap_or_default();
        html.push_str(&format!(
            "<a href=\"{}#sha256={sha}\"{rp}>{}</a><br/>\n",
            html_escape::encode_quoted_attribute(rel),
            html_escape::encode_quoted_attribute(filename)
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
    use sha2::Digest as _;

    fn load(root: &Path, file: &str) -> ParsedRequirements {
        crate::pkg_managers::pip::requirements::load(root, &RepoPath::parse(file).unwrap()).unwrap()
    }

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
            base_url: "http://127.0.0.1:8080/repos/7/pip/".into(),
            token: "t/k:n".into(),
        };
        let e = env_vars(&s, None).unwrap();
        assert_eq!(
            e["PIP_INDEX_URL"].value,
            "http://__token__:t%2Fk%3An@127.0.0.1:8080/repos/7/pip/simple/"
        );
        assert!(!e.contains_key("PIP_CERT") && !e.contains_key("REQUESTS_CA_BUNDLE"));
        assert_eq!(e["PIP_INDEX_URL"].kind, "literal");
        assert!(!e.contains_key("PIP_TRUSTED_HOST"));
        let s = ServeInfo {
            base_url: "http://larder.example:81/repos/7/pip".into(),
            token: "x".into(),
        };
        let e = env_vars(&s, None).unwrap();
        assert_eq!(e["PIP_TRUSTED_HOST"].value, "larder.example:81");
        assert_eq!(
            e["PIP_INDEX_URL"].value,
            "http://__token__:x@larder.example:81/repos/7/pip/simple/"
        );
        let s = ServeInfo {
            base_url: "https://larder.example/repos/7/pip/".into(),
            token: "x".into(),
        };
        assert!(!env_vars(&s, None).unwrap().contains_key("PIP_TRUSTED_HOST"));
        let ca = crate::pkg_managers::repos_ca::tests::test_ca();
        let e = env_vars(&s, Some(&ca)).unwrap();
        for name in ["PIP_CERT", "REQUESTS_CA_BUNDLE"] {
            assert_eq!(
                (e[name].value.as_str(), e[name].kind.as_str()),
                ("app/registry-ca.pem", "path")
            );
        }
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(env_vars(
            &ServeInfo {
                base_url: "ftp://x/".into(),
                token: "x".into()
            },
            None
        )
        .is_err());
    }

    #[test]
    fn full_layout() {
        let work = tempfile::tempdir().unwrap();
        let store = work.path().join("store");
        let bundle = work.path().join("bundle");
        let app = bundle.join("app");
        std::fs::create_dir_all(app.join("sub")).unwrap();
        std::fs::create_dir_all(store.join("deps/pip/foo")).unwrap();
        let sd = crate::pkg_managers::pip::fixtures::build_sdist(
            &store.join("deps/pip/foo"),
            "foo",
            "1.0",
            &[],
            Some(">=3.8"),
        )
        .unwrap();
        // the git dependency's checkout, as the shared fetch leaves it
        let checkout = work.path().join("checkout");
        std::fs::create_dir_all(checkout.join("repo")).unwrap();
        std::fs::write(checkout.join("setup.py"), b"setup(name='repo')").unwrap();
        std::fs::write(checkout.join("repo/__init__.py"), b"").unwrap();
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
        let rt = load(&app, "sub/requirements.txt");
        let bt = load(&app, "sub/requirements-build.txt");
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
            base_url: "http://127.0.0.1:8080/repos/7/pip/".into(),
            token: "tok".into(),
        };
        let repo = RepoRef {
            url: "https://github.com/me/proj".into(),
            commit: SHA.into(),
        };
        let store = Store::new(store);
        // what the fetch computed while verifying
        let files: BTreeMap<String, FileDigests> = [
            "deps/pip/foo/foo-1.0.tar.gz".to_string(),
            format!("deps/pip/external-bar/bar-external-sha256-{url_hash}.tar.gz"),
        ]
        .into_iter()
        .map(|key| {
            let digests = FileDigests::of_file(&store.path(&key).unwrap()).unwrap();
            (key, digests)
        })
        .collect();
        let checkouts: BTreeMap<GitFetch, GitCheckout> = [(
            GitFetch {
                url: "https://github.com/org/repo.git".into(),
                commit: CommitId::parse(SHA).unwrap(),
            },
            GitCheckout {
                dir: checkout.clone(),
                store_key: format!("deps/git/github.com/org/repo/{SHA}.tar.gz"),
            },
        )]
        .into_iter()
        .collect();
        let packages = [PackageInput {
            path: RepoPath::parse("sub").unwrap(),
            metadata: md,
            runtime: vec![rt],
            build: vec![bt],
        }];
        let tree = BundleTree::new(&bundle);
        // as the fetch's checks read it: foo needs bar and the git dependency, bar needs foo
        // only with an extra nobody asks
        let core: BTreeMap<String, CoreMetadata> = [
            (
                "deps/pip/foo/foo-1.0.tar.gz".to_string(),
                CoreMetadata {
                    license: Some("MIT".into()),
                    requires_dist: vec!["Bar>=1".into(), "repo ; python_version>'3'".into()],
                },
            ),
            (
                format!("deps/pip/external-bar/bar-external-sha256-{url_hash}.tar.gz"),
                CoreMetadata {
                    license: None,
                    requires_dist: vec!["foo ; extra == 'x'".into()],
                },
            ),
        ]
        .into_iter()
        .collect();
        let input = LayoutInput {
            store: &store,
            bundle: &tree,
            plan: &plan,
            packages: &packages,
            files: &files,
            checkouts: &checkouts,
            repo: &repo,
            serve: &serve,
            repos_ca: None,
            metadata: &core,
            hand_back: HandBack::Service,
        };
        let out = layout(&input).unwrap();
        assert!(!out.env_vars.contains_key("PIP_CERT"));
        assert!(tree.has_stored("deps/pip/foo/foo-1.0.tar.gz"));
        assert!(tree.has_stored(&format!(
            "deps/pip/github.com/org/repo/repo-external-gitcommit-{SHA}.tar.gz"
        )));
        assert!(tree.has_stored(&format!(
            "deps/pip/external-bar/bar-external-sha256-{url_hash}.tar.gz"
        )));
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
        // the graph: each dependency's Requires-Dist among the package's dependencies
        let edges = |name: &str| {
            let d = p.dependencies.iter().find(|d| d.name == name).unwrap();
            d.depends_on.clone()
        };
        let bar_purl = p
            .dependencies
            .iter()
            .find(|d| d.name == "bar")
            .unwrap()
            .purl
            .clone();
        assert_eq!(
            edges("foo"),
            vec![bar_purl, format!("pkg:github/org/repo@{SHA}")]
        );
        assert_eq!(edges("bar"), Vec::<String>::new());
        assert_eq!(edges("repo"), Vec::<String>::new());
        // licences and where each file came from
        let source = |key: &str| {
            let a = out.artifacts.iter().find(|a| a.store_key == key).unwrap();
            let ArtifactMeta::Pip(m) = &a.meta else {
                panic!("{a:?}")
            };
            (m.license.clone(), a.source_url.clone())
        };
        assert_eq!(
            source("deps/pip/foo/foo-1.0.tar.gz"),
            (Some("MIT".into()), Some("https://up/foo-1.0.tar.gz".into()))
        );
        assert_eq!(
            source(&format!(
                "deps/pip/external-bar/bar-external-sha256-{url_hash}.tar.gz"
            )),
            (None, Some("https://h.example/bar-1.0.tar.gz".into()))
        );
        assert_eq!(
            source(&format!(
                "deps/pip/github.com/org/repo/repo-external-gitcommit-{SHA}.tar.gz"
            )),
            (None, None)
        );
        assert_eq!(out.artifacts.len(), 3);
        let fl = std::fs::read_to_string(bundle.join("deps/pip/index.html")).unwrap();
        assert!(fl.contains(&format!("<a href=\"foo/foo-1.0.tar.gz#sha256={}\" data-requires-python=\"&gt;=3.8\">foo-1.0.tar.gz</a>", sd.sha256)), "{fl}");
        assert!(!fl.contains("external"));
        let a = &out.artifacts[0];
        assert_eq!(a.store_key, "deps/pip/foo/foo-1.0.tar.gz");
        let ArtifactMeta::Pip(meta) = &a.meta else {
            panic!("{a:?}")
        };
        assert_eq!(meta.sha256, sd.sha256);
        assert_eq!(meta.size, sd.size);
        assert_eq!(meta.requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(meta.kind, PipFileKind::Index);
        assert_eq!(out.config_files.len(), 1);
        let cf = &out.config_files[0];
        assert_eq!(cf.path, "app/sub/requirements.txt");
        let text = String::from_utf8(cf.inline_content().unwrap().to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# deps");
        assert_eq!(lines[1], "foo==1.0");
        // the checkout packed under app/, into the store and the bundle
        let git_key = format!("deps/pip/github.com/org/repo/repo-external-gitcommit-{SHA}.tar.gz");
        let packed = std::fs::read(store.path(&git_key).unwrap()).unwrap();
        assert!(tree.has_stored(&git_key));
        let git_sha = hex::encode(sha2::Sha256::digest(&packed));
        let mut names: Vec<String> = tar::Archive::new(flate2::read::GzDecoder::new(&packed[..]))
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["app", "app/repo", "app/repo/__init__.py", "app/setup.py"]
        );
        let vcs = out
            .artifacts
            .iter()
            .find(|a| a.store_key == git_key)
            .unwrap();
        assert!(
            matches!(&vcs.meta, ArtifactMeta::Pip(m) if m.sha256 == git_sha && m.kind == PipFileKind::Vcs)
        );
        assert_eq!(lines[2], format!("Repo @ http://__token__:tok@127.0.0.1:8080/repos/7/pip/files/github.com/org/repo/repo-external-gitcommit-{SHA}.tar.gz#sha256={git_sha} ; python_version>'3'"));
        assert!(lines[3].starts_with("bar @ http://__token__:tok@127.0.0.1:8080/repos/7/pip/files/external-bar/bar-external-sha256-"));
        assert_eq!(lines.len(), 4);
        // the rewritten file parses (credentials removed: user files may not carry them)
        let c = crate::pkg_managers::pip::requirements::parse_str(
            &text.replace("__token__:tok@", ""),
            &RepoPath::parse("x").unwrap(),
        )
        .unwrap();
        assert_eq!(c.requirements.len(), 3);
        assert!(c
            .requirements
            .iter()
            .all(|r| r.marker.is_none() || r.marker.as_deref() == Some("python_version>'3'")));
        // a second request: the stored archive is the one packed again
        let tree2 = BundleTree::new(work.path().join("bundle2"));
        let again = layout(&LayoutInput {
            bundle: &tree2,
            packages: &[],
            ..input
        })
        .unwrap();
        assert_eq!(again.artifacts, out.artifacts);
        assert!(tree2.has_stored(&git_key));
        assert_eq!(
            std::fs::read(store.path(&git_key).unwrap()).unwrap(),
            packed
        );
        // with the index's CA: PIP_CERT names it, the pipeline hands it back
        let ca = crate::pkg_managers::repos_ca::tests::test_ca();
        let with_ca = layout(&LayoutInput {
            bundle: &tree,
            repos_ca: Some(&ca),
            ..input
        })
        .unwrap();
        assert_eq!(
            with_ca.env_vars["PIP_CERT"],
            EnvVar::path("app/registry-ca.pem")
        );
        assert_eq!(
            with_ca.env_vars["REQUESTS_CA_BUNDLE"],
            with_ca.env_vars["PIP_CERT"]
        );
        assert_eq!(with_ca.config_files, out.config_files);
        // missing stored file
        std::fs::remove_file(store.path("deps/pip/foo/foo-1.0.tar.gz").unwrap()).unwrap();
        let tree3 = BundleTree::new(work.path().join("bundle3"));
        assert!(matches!(
            layout(&LayoutInput {
                bundle: &tree3,
                ..input
            })
            .unwrap_err(),
            LayoutError::Store { .. }
        ));
    }
}
