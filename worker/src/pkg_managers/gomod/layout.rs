//! Bundle layout: the Go module download cache under `deps/gomod/pkg/mod/cache/download`,
//! vendoring, rewritten go.mod/go.sum, and the packages/env vars/artifacts report.

use super::plan::{
    DepSource, ExpectedH1, GoFileKind, Plan, PlanError, RewrittenFile, VendorMode, STORE_PREFIX,
};
use super::vendor::{generate_vendor, VendorError, VendorInput, VendorSource};
use crate::artifact_spool::ArtifactSpool;
use crate::bundle::BundleTree;
use crate::pkg_managers::ReposCa;
use common::artifact::gomod::GoMeta;
use common::gomod::{escape_path, escape_version, EscapeError};
use common::repo_path::RepoPath;
use common::{
    Artifact, ArtifactMeta, Classify, Dependency, EnvVar, EnvVars, ErrorKind, Package, Store,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub const CACHE_DIR: &str = "deps/gomod/pkg/mod/cache/download";

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("Cannot write {path} into the bundle: {source}.")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("The stored file {store_key} of {label} is missing or unreadable: {source}.")]
    Store {
        store_key: String,
        label: String,
        #[source]
        source: std::io::Error,
    },
    #[error("The h1 checksum of {label} is unknown; the download was not verified.")]
    MissingH1 { label: String },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Vendor(#[from] VendorError),
    #[error(transparent)]
    Escape(#[from] EscapeError),
    #[error("Cannot spool the artifacts: {0}")]
    Spool(std::io::Error),
}

impl Classify for LayoutError {
    fn kind(&self) -> ErrorKind {
        match self {
            LayoutError::Plan(e) => e.kind(),
            LayoutError::Vendor(e) => e.kind(),
            LayoutError::Escape(e) => e.kind(),
            _ => ErrorKind::FileAccessError,
        }
    }

    fn message(&self) -> String {
        match self {
            LayoutError::Plan(e) => e.message(),
            LayoutError::Vendor(e) => e.message(),
            _ => self.to_string(),
        }
    }
}

pub struct LayoutOutput {
    pub packages: Vec<Package>,
    pub env_vars: EnvVars,
    /// Spooled as they are made: a 50,000-line go.sum makes 75,000.
    pub artifacts: ArtifactSpool,
    /// go.mod/go.sum files overwritten in `app/` (dependency_replacements), already written.
    pub rewritten: Vec<RewrittenFile>,
}

/// Inputs of [`write_layout`].
pub struct LayoutInput<'a> {
    /// Bundle working dir holding `app/`; `deps/gomod/...` is created below it.
    pub bundle_root: &'a Path,
    pub plan: &'a Plan,
    /// store key -> h1 returned by `verify_download` for `ExpectedH1::Record` downloads
    /// (missing entries are recomputed from the stored file).
    pub recorded: &'a BTreeMap<String, String>,
    pub store: &'a Store,
    /// Where the module cache's stored files are placed.
    pub bundle: &'a BundleTree,
    /// requested path ("." for the root) -> version reported for that main module (from git:
    /// tag or pseudo-version, see `version::main_module_version`).
    pub main_versions: &'a BTreeMap<RepoPath, String>,
    /// this request's GOPROXY URL (with its token), returned as `GOPROXY`.
    pub repo_url: &'a str,
    /// the GOPROXY's CA (`LARDER_REPOS_CA_FILE`), returned as `SSL_CERT_FILE`.
    pub repos_ca: Option<&'a ReposCa>,
}

pub use common::gomod::compare_versions;

/// Python `urllib.parse.quote(s, safe="")`.
fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Cachito's Go purl: `pkg:golang/<quoted name>@<version>` (no `@` without a version).
pub fn go_purl(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("pkg:golang/{}@{}", pct(name), v),
        None => format!("pkg:golang/{}", pct(name)),
    }
}

/// POSIX `os.path.normpath` for relative paths.
fn normpath(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if matches!(out.last(), Some(l) if *l != "..") {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            x => out.push(x),
        }
    }
    if out.is_empty() {
        ".".into()
    } else {
        out.join("/")
    }
}

/// Purl of a local (path-replaced) dependency: the parent module's purl plus `#<path>`.
pub fn local_purl(parent_purl: &str, rel_version: &str) -> String {
    let sub = normpath(rel_version);
    if sub == "." {
        parent_purl.to_string()
    } else {
        format!("{parent_purl}#{sub}")
    }
}

fn cache_rel(store_key: &str) -> String {
    let rest = store_key
        .strip_prefix(STORE_PREFIX)
        .unwrap_or(store_key)
        .trim_start_matches('/');
    format!("{CACHE_DIR}/{rest}")
}

/// Write the bundle's gomod part and report packages, env vars and artifacts.
pub fn write_layout(inp: &LayoutInput) -> Result<LayoutOutput, LayoutError> {
    let root = inp.bundle_root;
    let store_path = |k: &str| inp.store.root().join(k);
    let io = |p: &Path, e: std::io::Error| LayoutError::Io {
        path: p.display().to_string(),
        source: e,
    };
    let cache = root.join(CACHE_DIR);
    std::fs::create_dir_all(&cache).map_err(|e| io(&cache, e))?;

    // h1 of `Record` downloads: from the fetch, or recomputed from the store when the file
    // was already there (warm store: the foundation skipped the download and its verify call).
    let mut recorded = inp.recorded.clone();
    for d in &inp.plan.downloads {
        if d.h1 == ExpectedH1::Record && !recorded.contains_key(&d.download.store_key) {
            let src = store_path(&d.download.store_key);
            let h = super::plan::verify_download(d, &src)
                .map_err(|e| LayoutError::Store {
                    store_key: d.download.store_key.clone(),
                    label: d.download.label.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?
                .ok_or_else(|| LayoutError::MissingH1 {
                    label: d.download.label.clone(),
                })?;
            recorded.insert(d.download.store_key.clone(), h);
        }
    }
    let mut artifacts = ArtifactSpool::default();
    let mut lists: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in &inp.plan.downloads {
        let key = &d.download.store_key;
        inp.bundle
            .place_stored(inp.store, &cache_rel(key), key)
            .map_err(|e| LayoutError::Store {
                store_key: key.clone(),
                label: d.download.label.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let h1 = match &d.h1 {
            ExpectedH1::Verify(h) => Some(h.clone()),
            ExpectedH1::Record => {
                Some(
                    recorded
                        .get(key)
                        .cloned()
                        .ok_or_else(|| LayoutError::MissingH1 {
                            label: d.download.label.clone(),
                        })?,
                )
            }
            ExpectedH1::None => None,
        };
        if d.kind == GoFileKind::Zip {
            let h = h1.clone().unwrap_or_default();
            let zh = cache_rel(key)
                .strip_suffix(".zip")
                .map(|stem| format!("{stem}.ziphash"))
                .unwrap_or_else(|| format!("{}.ziphash", cache_rel(key)));
            inp.bundle
                .place_bytes(&zh, h.into_bytes())
                .map_err(|e| io(Path::new(&zh), std::io::Error::other(e.to_string())))?;
        }
        if d.kind == GoFileKind::Mod {
            lists
                .entry(escape_path(&d.module)?)
                .or_default()
                .insert(d.version.clone());
        }
        artifacts
            .push(&Artifact {
                pm: "gomod".into(),
                name: d.module.clone(),
                version: d.version.clone(),
                filename: format!("{}.{}", d.version, d.kind.ext()),
                store_key: key.clone(),
                meta: ArtifactMeta::Gomod(GoMeta { h1: h1.clone() }),
                source_url: common::artifact::distribution_url(&d.download.url),
            })
            .map_err(LayoutError::Spool)?;
    }
    for (ep, versions) in lists {
        let p = format!("{CACHE_DIR}/{ep}/@v/list");
        let mut all: Vec<String> = versions.into_iter().collect();
        all.sort_by(|a, b| compare_versions(a, b));
        let mut text = all.join("\n");
        text.push('\n');
        inp.bundle
            .place_bytes(&p, text.into_bytes())
            .map_err(|e| io(Path::new(&p), std::io::Error::other(e.to_string())))?;
    }

    // rewritten go.mod / go.sum (dependency_replacements)
    let read_store = |k: &str| std::fs::read(store_path(k));
    let rewritten = inp.plan.rewritten_files(&recorded, &read_store)?;
    for f in &rewritten {
        let p = root.join("app").join(&f.path);
        std::fs::write(&p, &f.content).map_err(|e| io(&p, e))?;
    }

    // vendoring
    let zip_keys: BTreeSet<&str> = inp
        .plan
        .downloads
        .iter()
        .filter(|d| d.kind == GoFileKind::Zip)
        .map(|d| d.download.store_key.as_str())
        .collect();
    for m in &inp.plan.modules {
        if m.vendor != VendorMode::Generate {
            continue;
        }
        let mut inputs = Vec::new();
        for d in &m.deps {
            let source = match &d.source {
                DepSource::Local { repo_rel, .. } => {
                    VendorSource::Dir(repo_rel.under(&root.join("app")))
                }
                DepSource::Module { path, version } => {
                    let key = format!(
                        "{STORE_PREFIX}/{}/@v/{}.zip",
                        escape_path(path)?,
                        escape_version(path, version)?
                    );
                    if zip_keys.contains(key.as_str()) {
                        VendorSource::Zip {
                            path: store_path(&key),
                            module: path.clone(),
                            version: version.clone(),
                        }
                    } else {
                        VendorSource::None
                    }
                }
            };
            inputs.push(VendorInput {
                path: d.required_path.clone(),
                version: d.required_version.clone(),
                explicit: d.explicit,
                source,
            });
        }
        let dir = m.path.under(&root.join("app"));
        generate_vendor(&dir, &m.gomod, &inputs)?;
    }

    // packages
    let mut packages = Vec::new();
    for m in &inp.plan.modules {
        let main_version = inp
            .main_versions
            .get(&m.path)
            .map(String::as_str)
            .unwrap_or_default();
        let purl = go_purl(&m.gomod.module, Some(main_version));
        let mut deps: Vec<Dependency> = m
            .deps
            .iter()
            .map(|d| match &d.source {
                DepSource::Module { path, version } => Dependency {
                    kind: "gomod".into(),
                    name: path.clone(),
                    version: Some(version.clone()),
                    dev: None,
                    optional: None,
                    replaces: d.replaces.clone(),
                    purl: go_purl(path, Some(version)),
                    depends_on: Vec::new(),
                },
                DepSource::Local { path, .. } => Dependency {
                    kind: "gomod".into(),
                    name: d.required_path.clone(),
                    version: Some(path.clone()),
                    dev: None,
                    optional: None,
                    replaces: d.replaces.clone(),
                    purl: local_purl(&purl, path),
                    depends_on: Vec::new(),
                },
            })
            .collect();
        // the graph: each module's go.mod requirements (the main module's, and each dependency's
        // .mod from the bundle's download cache, verified against go.sum), to the versions the
        // build list selected
        let selected: BTreeMap<&str, String> = m
            .deps
            .iter()
            .zip(&deps)
            .map(|(p, d)| (p.required_path.as_str(), d.purl.clone()))
            .collect();
        let edges_of = |gomod: &super::gomod_file::GoMod| -> Vec<String> {
            let mut out: Vec<String> = gomod
                .require
                .iter()
                .filter_map(|r| selected.get(r.path.as_str()).cloned())
                .collect();
            out.sort();
            out.dedup();
            out
        };
        let main_edges = edges_of(&m.gomod);
        let mut dep_edges: Vec<Vec<String>> = Vec::with_capacity(m.deps.len());
        for d in &m.deps {
            let edges = match &d.source {
                DepSource::Module { path, version } => {
                    let file = escape_path(path)
                        .ok()
                        .zip(escape_version(path, version).ok())
                        .map(|(p, v)| store_path(&format!("{STORE_PREFIX}/{p}/@v/{v}.mod")));
                    file.and_then(|f| std::fs::read_to_string(f).ok())
                        .and_then(|text| {
                            super::gomod_file::parse_go_mod(
                                &format!("{path}@{version}/go.mod"),
                                &text,
                            )
                            .ok()
                        })
                        .map(|g| edges_of(&g))
                        .unwrap_or_default()
                }
                DepSource::Local { .. } => Vec::new(),
            };
            dep_edges.push(edges);
        }
        for (dep, edges) in deps.iter_mut().zip(dep_edges) {
            dep.depends_on = edges.into_iter().filter(|e| *e != dep.purl).collect();
        }
        // Every module whose source ships in the bundle is reported: go.sum zip lines outside the
        // build list (test dependencies of dependencies, older versions MVS did not pick) are
        // `dev`.
        let built: BTreeSet<(&str, &str)> = m
            .deps
            .iter()
            .filter_map(|d| match &d.source {
                DepSource::Module { path, version } => Some((path.as_str(), version.as_str())),
                DepSource::Local { .. } => None,
            })
            .collect();
        for line in m.gosum.lines.iter().filter(|l| !l.is_gomod) {
            if line.module == m.gomod.module
                || built.contains(&(line.module.as_str(), line.version.as_str()))
            {
                continue;
            }
            deps.push(Dependency {
                kind: "gomod".into(),
                name: line.module.clone(),
                version: Some(line.version.clone()),
                dev: Some(true),
                optional: None,
                replaces: None,
                purl: go_purl(&line.module, Some(&line.version)),
                depends_on: Vec::new(),
            });
        }
        deps.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        deps.dedup();
        packages.push(Package {
            kind: "gomod".into(),
            name: m.gomod.module.clone(),
            version: main_version.to_string(),
            path: if m.path.is_root() {
                None
            } else {
                Some(m.path.as_str().to_string())
            },
            dependencies: deps,
            purl,
            depends_on: main_edges,
        });
    }

    Ok(LayoutOutput {
        packages,
        env_vars: env_vars(inp.repo_url, inp.repos_ca),
        artifacts,
        rewritten,
    })
}

/// Environment variables handed back for gomod. With the GOPROXY's CA, `SSL_CERT_FILE` (path)
/// names it: on Linux `go` reads its roots from that file instead of the system's (Go has no
/// variable of its own for it); `GOSUMDB=off` and a GOPROXY without `direct` leave it nothing
/// else to verify.
pub fn env_vars(repo_url: &str, repos_ca: Option<&ReposCa>) -> EnvVars {
    let mut e = EnvVars::new();
    let path = |v: &str| EnvVar {
        value: v.into(),
        kind: "path".into(),
    };
    let lit = |v: &str| EnvVar {
        value: v.into(),
        kind: "literal".into(),
    };
    e.insert("GOMODCACHE".into(), path("deps/gomod/pkg/mod"));
    e.insert("GOPATH".into(), path("deps/gomod"));
    e.insert("GOCACHE".into(), path("deps/gomod/cache"));
    e.insert("GOSUMDB".into(), lit("off"));
    e.insert("GOTOOLCHAIN".into(), lit("local"));
    e.insert("GOFLAGS".into(), lit("-mod=mod"));
    e.insert("GOPROXY".into(), lit(repo_url));
    if let Some(ca) = repos_ca {
        e.insert("SSL_CERT_FILE".into(), ca.env_var());
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order() {
        let mut v = vec![
            "v1.10.0",
            "v1.2.0",
            "v1.2.0-rc.1",
            "v1.2.0-beta.2",
            "v1.2.0-beta.11",
            "v0.0.0-20200101000000-abcdefabcdef",
            "v2.0.0+incompatible",
            "junk",
            "v1.2.0-alpha",
        ];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            v,
            vec![
                "v0.0.0-20200101000000-abcdefabcdef",
                "v1.2.0-alpha",
                "v1.2.0-beta.2",
                "v1.2.0-beta.11",
                "v1.2.0-rc.1",
                "v1.2.0",
                "v1.10.0",
                "v2.0.0+incompatible",
                "junk"
            ]
        );
    }

    #[test]
    fn purls() {
        assert_eq!(
            go_purl("github.com/Azure/go-autorest", Some("v14.2.0+incompatible")),
            "pkg:golang/github.com%2FAzure%2Fgo-autorest@v14.2.0+incompatible"
        );
        assert_eq!(go_purl("example.com/x", None), "pkg:golang/example.com%2Fx");
        let parent = go_purl("example.com/app", Some("v1.0.0"));
        assert_eq!(
            local_purl(&parent, "./lib"),
            "pkg:golang/example.com%2Fapp@v1.0.0#lib"
        );
        assert_eq!(
            local_purl(&parent, "../lib/"),
            "pkg:golang/example.com%2Fapp@v1.0.0#../lib"
        );
        assert_eq!(local_purl(&parent, "./"), parent);
    }

    #[test]
    fn env() {
        let e = env_vars("http://127.0.0.1:8080/repos/7/t/tok/gomod/", None);
        assert_eq!(e["GOMODCACHE"].kind, "path");
        assert_eq!(e["GOCACHE"].value, "deps/gomod/cache");
        assert_eq!(e["GOFLAGS"].value, "-mod=mod");
        assert_eq!(e["GOPROXY"].kind, "literal");
        assert_eq!(e.len(), 7);
        assert!(!e.contains_key("SSL_CERT_FILE"));
        let ca = crate::pkg_managers::repos_ca::tests::test_ca();
        let with_ca = env_vars("https://larder.example/repos/7/t/tok/gomod", Some(&ca));
        assert_eq!(
            with_ca["SSL_CERT_FILE"],
            EnvVar::path("app/registry-ca.pem")
        );
        assert_eq!(with_ca.len(), 8);
    }
}
