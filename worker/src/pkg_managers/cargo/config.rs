//! Configuration handed back to the client.
//!
//! Two ways to build, both from the unpacked bundle (`cd app/<path>`):
//! 1. offline (default, always present): `app/<path>/.cargo/config.toml` replaces crates.io and
//!    every git source with the vendored directory `deps/cargo`; cargo finds it by itself:
//!    `cargo build --offline --locked`.
//! 2. per-request registry: `app/<path>/.cargo/config.registry.toml` declares the registry
//!    `larder` and makes it replace crates.io; the token comes from the env var
//!    `CARGO_REGISTRIES_LARDER_TOKEN` (returned as a literal). Command:
//!    `cargo --config .cargo/config.registry.toml fetch --locked` (a `--config` file takes
//!    precedence over `.cargo/config.toml`, so crates.io goes to the registry while git sources
//!    keep coming from the vendored directory: the registry cannot serve git sources).
//!    With the registry's CA (`LARDER_REPOS_CA_FILE`), the same file sets `http.cainfo` to it:
//!    the CA travels with the configuration that points at the registry, and no other cargo
//!    command of the environment is made to trust it alone.
//!
//! Relative `directory` and `http.cainfo` paths in a config file (a `--config` one too) are
//! resolved by cargo against the directory containing `.cargo/` (VERIFIED with cargo 1.95),
//! i.e. `app/<path>/`.

use crate::pkg_managers::cargo::lockfile::{CargoLock, GitRef, Source};
use crate::pkg_managers::ReposCa;
use common::repo_path::RepoPath;
use common::{ConfigFile, EnvVar, EnvVars, ErrorKind};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

pub const REGISTRY_NAME: &str = "larder";
pub const VENDORED: &str = "vendored-sources";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("The repository URL {0:?} must be an absolute http(s) URL ending with '/'")]
    BadRepoUrl(String),
    /// The repository's own `.cargo/config(.toml)` cannot be merged into safely.
    #[error("The repository's cargo configuration {file} cannot be used: {reason}")]
    RepoConfig { file: String, reason: String },
    #[error("The repository's cargo configuration {file} is not valid TOML: {reason}")]
    Malformed { file: String, reason: String },
}

impl common::Classify for ConfigError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::BadRepoUrl(_) => ErrorKind::Misconfigured,
            Self::RepoConfig { .. } => ErrorKind::InvalidRepoStructure,
            Self::Malformed { .. } => ErrorKind::InvalidFileFormat,
        }
    }
}

/// Largest repository `.cargo/config(.toml)` read.
const MAX_REPO_CONFIG_BYTES: u64 = 1 << 20;

/// TOML basic string literal.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn config_path(package_path: &RepoPath, file: &str) -> String {
    if package_path.is_root() {
        format!("app/.cargo/{file}")
    } else {
        format!("app/{package_path}/.cargo/{file}")
    }
}

/// `directory` value: from `app/<path>/` back to the bundle root, then `deps/cargo`.
pub fn vendor_dir_relative(package_path: &RepoPath) -> String {
    format!("{}deps/cargo", "../".repeat(package_path.depth() + 1))
}

/// One git source to replace with the vendored directory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GitSource {
    /// lockfile source id without `#commit`, e.g. `git+https://github.com/o/r?branch=dev`
    pub source_id: String,
    pub url: String,
    pub reference: GitRef,
}

pub fn git_sources(lock: &CargoLock) -> Vec<GitSource> {
    let mut v: Vec<GitSource> = lock
        .packages
        .iter()
        .filter_map(|p| match &p.source {
            Source::Git {
                url,
                source_id,
                reference,
                ..
            } => Some(GitSource {
                source_id: source_id.clone(),
                url: url.clone(),
                reference: reference.clone(),
            }),
            _ => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// `app/<path>/.cargo/config.toml` for `cargo build --offline --locked` from the bundle: its
/// path below the bundle root and its text (written into the overlay and handed back).
pub fn offline_config(package_path: &RepoPath, git: &[GitSource]) -> (String, String) {
    offline_config_in(package_path, git, &vendor_dir_relative(package_path))
}

/// [`offline_config`] whose vendored sources are the directory `vendor_dir` (an output
/// directory's `deps/cargo`, `larder fetch-deps`).
pub fn offline_config_in(
    package_path: &RepoPath,
    git: &[GitSource],
    vendor_dir: &str,
) -> (String, String) {
    (
        config_path(package_path, "config.toml"),
        offline_config_text(git, vendor_dir),
    )
}

/// An output directory's configuration (`larder fetch-deps`) for the package at
/// `package_path` of the source `app`: as Hermeto's, the repository's own configuration with
/// the `[source.*]` tables of [`offline_config_in`] merged in (crates.io and every git source
/// replaced by `vendor_dir`; every other key kept), written to the file cargo reads: the
/// legacy `.cargo/config` when the repository has one (cargo prefers it), else
/// `.cargo/config.toml`. Its path below the bundle root and its text.
///
/// The file becomes a project file that `inject-files` writes into the source: a `.cargo` or a
/// configuration file that is a symbolic link, or that resolves outside the source, is refused
/// (as are a configuration that is not TOML and a `source` that is not a table).
pub fn offline_config_merged(
    app: &Path,
    package_path: &RepoPath,
    git: &[GitSource],
    vendor_dir: &str,
) -> Result<(String, String), ConfigError> {
    let name = |rel: &RepoPath| rel.as_str().to_string();
    let refuse = |rel: &RepoPath, reason: &str| ConfigError::RepoConfig {
        file: name(rel),
        reason: reason.to_string(),
    };
    let join = |rel: &str| {
        package_path
            .join(rel)
            .map_err(|e| refuse(package_path, &e.to_string()))
    };
    let cargo_dir = join(".cargo")?;
    let mut existing = None;
    match std::fs::symlink_metadata(cargo_dir.under(app)) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(refuse(&cargo_dir, "it is a symbolic link"))
        }
        Ok(m) if !m.is_dir() => return Err(refuse(&cargo_dir, "it is not a directory")),
        Ok(_) => {
            // cargo reads `config` when both exist
            for file in ["config", "config.toml"] {
                let rel = join(&format!(".cargo/{file}"))?;
                match std::fs::symlink_metadata(rel.under(app)) {
                    Ok(m) if m.file_type().is_symlink() => {
                        return Err(refuse(&rel, "it is a symbolic link"))
                    }
                    Ok(m) if !m.is_file() => return Err(refuse(&rel, "it is not a file")),
                    Ok(_) => {
                        existing = Some(rel);
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(refuse(&rel, &e.to_string())),
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(refuse(&cargo_dir, &e.to_string())),
    }
    let target = match &existing {
        Some(rel) => rel.clone(),
        None => join(".cargo/config.toml")?,
    };
    // every directory on the way stays inside the source
    target
        .resolve_new(app)
        .map_err(|e| refuse(&target, &e.to_string()))?;

    let mut table = match &existing {
        None => toml::Table::new(),
        Some(rel) => {
            let real = rel.resolve(app).map_err(|e| refuse(rel, &e.to_string()))?;
            use std::io::Read as _;
            let mut text = String::new();
            std::fs::File::open(&real)
                .and_then(|f| f.take(MAX_REPO_CONFIG_BYTES + 1).read_to_string(&mut text))
                .map_err(|e| refuse(rel, &e.to_string()))?;
            if text.len() as u64 > MAX_REPO_CONFIG_BYTES {
                return Err(refuse(
                    rel,
                    &format!("it is larger than {MAX_REPO_CONFIG_BYTES} bytes"),
                ));
            }
            text.parse::<toml::Table>().map_err(|e| {
                let at = e
                    .span()
                    .map(|s| format!(" (line {})", text[..s.start].matches('\n').count() + 1))
                    .unwrap_or_default();
                ConfigError::Malformed {
                    file: name(rel),
                    reason: format!("{}{at}", e.message().trim_end()),
                }
            })?
        }
    };
    let ours: toml::Table = offline_config_text(git, vendor_dir)
        .parse()
        .expect("Larder's own configuration is TOML");
    let ours = match ours.get("source") {
        Some(toml::Value::Table(t)) => t.clone(),
        _ => unreachable!("Larder's configuration has [source]"),
    };
    let sources = table
        .entry("source")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let toml::Value::Table(sources) = sources else {
        return Err(ConfigError::Malformed {
            file: name(&target),
            reason: "`source` is not a table".into(),
        });
    };
    for (id, source) in ours {
        sources.insert(id, source);
    }
    let body = toml::to_string(&table).map_err(|e| refuse(&target, &e.to_string()))?;
    let header = if existing.is_some() {
        "# The repository's configuration; Larder replaced its [source] entries of crates.io and\n\
         # the git dependencies: build offline from the output directory's deps/cargo.\n"
    } else {
        "# Generated by Larder: build offline from the output directory's deps/cargo.\n"
    };
    Ok((format!("app/{target}"), format!("{header}{body}")))
}

fn offline_config_text(git: &[GitSource], vendor_dir: &str) -> String {
    let mut s =
        String::from("# Generated by Larder: build offline from the bundle's deps/cargo.\n");
    let _ = write!(s, "[source.crates-io]\nreplace-with = {}\n", q(VENDORED));
    for g in git {
        let _ = write!(s, "\n[source.{}]\ngit = {}\n", q(&g.source_id), q(&g.url));
        match &g.reference {
            GitRef::DefaultBranch => {}
            GitRef::Branch(b) => {
                let _ = writeln!(s, "branch = {}", q(b));
            }
            GitRef::Tag(t) => {
                let _ = writeln!(s, "tag = {}", q(t));
            }
            GitRef::Rev(r) => {
                let _ = writeln!(s, "rev = {}", q(r));
            }
        }
        let _ = writeln!(s, "replace-with = {}", q(VENDORED));
    }
    let _ = write!(s, "\n[source.{VENDORED}]\ndirectory = {}\n", q(vendor_dir));
    s
}

/// `app/<path>/.cargo/config.registry.toml`: the per-request sparse registry replacing crates.io
/// (and `http.cainfo`, the registry's CA, relative to `app/<path>/`, when there is one).
/// `repo_url` is the request's cargo repository base, e.g. `http://host/repos/7/cargo/`.
pub fn registry_config(
    package_path: &RepoPath,
    repo_url: &str,
    repos_ca: Option<&ReposCa>,
) -> Result<ConfigFile, ConfigError> {
    let ok = (repo_url.starts_with("http://") || repo_url.starts_with("https://"))
        && repo_url.ends_with('/');
    if !ok || url::Url::parse(repo_url).is_err() {
        return Err(ConfigError::BadRepoUrl(repo_url.into()));
    }
    let mut s = format!(
        "# Generated by Larder: fetch from the per-request registry.\n# Use: CARGO_REGISTRIES_LARDER_TOKEN=<token> cargo --config .cargo/config.registry.toml fetch --locked\n[registries.{REGISTRY_NAME}]\nindex = {}\ncredential-provider = \"cargo:token\"\n\n[source.crates-io]\nreplace-with = {}\n",
        q(&format!("sparse+{repo_url}")),
        q(REGISTRY_NAME)
    );
    if let Some(ca) = repos_ca {
        let _ = write!(
            s,
            "\n[http]\ncainfo = {}\n",
            q(&ca.relative_to(package_path))
        );
    }
    Ok(ConfigFile::inline(
        config_path(package_path, "config.registry.toml"),
        s,
    ))
}

/// Env vars for the registry variant (request-wide). The offline variant needs none.
pub fn registry_env(token: &str) -> EnvVars {
    let mut m = BTreeMap::new();
    m.insert(
        "CARGO_REGISTRIES_LARDER_TOKEN".to_string(),
        EnvVar {
            value: token.to_string(),
            kind: "literal".into(),
        },
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline() {
        let git = vec![
            GitSource {
                source_id: "git+https://github.com/o/r?branch=dev".into(),
                url: "https://github.com/o/r".into(),
                reference: GitRef::Branch("dev".into()),
            },
            GitSource {
                source_id: "git+https://x/y".into(),
                url: "https://x/y".into(),
                reference: GitRef::DefaultBranch,
            },
        ];
        let at = |p: &str| RepoPath::parse(p).unwrap();
        let (path, text) = offline_config(&at("sub/dir"), &git);
        assert_eq!(path, "app/sub/dir/.cargo/config.toml");
        let t: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(
            t["source"]["crates-io"]["replace-with"].as_str(),
            Some("vendored-sources")
        );
        assert_eq!(
            t["source"]["vendored-sources"]["directory"].as_str(),
            Some("../../../deps/cargo")
        );
        let g = &t["source"]["git+https://github.com/o/r?branch=dev"];
        assert_eq!(g["branch"].as_str(), Some("dev"));
        assert_eq!(g["git"].as_str(), Some("https://github.com/o/r"));
        assert_eq!(offline_config(&at("."), &[]).0, "app/.cargo/config.toml");
        assert_eq!(vendor_dir_relative(&at(".")), "../deps/cargo");
        // a package path is a RepoPath: it cannot lead out of app/
        assert!(RepoPath::parse("../x").is_err());
        assert!(RepoPath::parse("/x").is_err());
    }

    #[test]
    fn output_dir_merges_into_the_repository_configuration() {
        let src = tempfile::tempdir().unwrap();
        let app = src.path();
        let at = |p: &str| RepoPath::parse(p).unwrap();
        let git = vec![GitSource {
            source_id: "git+https://x/y".into(),
            url: "https://x/y".into(),
            reference: GitRef::Rev("abc".into()),
        }];
        let dir = "@o@/deps/cargo";
        let merged = |p: &str| offline_config_merged(app, &at(p), &git, dir);

        // none: ours alone, in config.toml
        let (path, text) = merged(".").unwrap();
        assert_eq!(path, "app/.cargo/config.toml");
        let t: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(
            t["source"]["crates-io"]["replace-with"].as_str(),
            Some(VENDORED)
        );
        assert_eq!(t["source"][VENDORED]["directory"].as_str(), Some(dir));
        assert!(!app.join(".cargo").exists(), "nothing written");

        // the repository's config.toml: every key kept, crates-io replaced, other sources kept
        std::fs::create_dir_all(app.join(".cargo")).unwrap();
        std::fs::write(
            app.join(".cargo/config.toml"),
            "[build]\nrustflags = [\"--cfg\", \"x\"]\n[alias]\nb2 = \"build\"\n\
             [source.crates-io]\nreplace-with = \"mine\"\n[source.mine]\ndirectory = \"v\"\n",
        )
        .unwrap();
        let (path, text) = merged(".").unwrap();
        assert_eq!(path, "app/.cargo/config.toml");
        let t: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(t["build"]["rustflags"][1].as_str(), Some("x"));
        assert_eq!(t["alias"]["b2"].as_str(), Some("build"));
        assert_eq!(
            t["source"]["crates-io"]["replace-with"].as_str(),
            Some(VENDORED)
        );
        assert_eq!(t["source"]["mine"]["directory"].as_str(), Some("v"));
        assert_eq!(t["source"]["git+https://x/y"]["rev"].as_str(), Some("abc"));
        assert_eq!(t["source"][VENDORED]["directory"].as_str(), Some(dir));

        // the legacy .cargo/config is the one cargo reads: it is the one written
        std::fs::write(app.join(".cargo/config"), "[env]\nA = \"1\"\n").unwrap();
        let (path, text) = merged(".").unwrap();
        assert_eq!(path, "app/.cargo/config");
        let t: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(t["env"]["A"].as_str(), Some("1"));
        assert_eq!(t["source"][VENDORED]["directory"].as_str(), Some(dir));

        // malformed: a clear error, no panic
        std::fs::write(app.join(".cargo/config"), "[build\nx = 1\n").unwrap();
        let e = merged(".").unwrap_err();
        assert!(matches!(e, ConfigError::Malformed { .. }), "{e}");
        assert!(e.to_string().contains(".cargo/config"), "{e}");
        std::fs::write(app.join(".cargo/config"), "source = 1\n").unwrap();
        assert!(matches!(
            merged(".").unwrap_err(),
            ConfigError::Malformed { .. }
        ));
        std::fs::remove_file(app.join(".cargo/config")).unwrap();

        // symbolic links: the file, .cargo, out of the source
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("c.toml"), "").unwrap();
        std::fs::remove_file(app.join(".cargo/config.toml")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("c.toml"),
            app.join(".cargo/config.toml"),
        )
        .unwrap();
        let e = merged(".").unwrap_err();
        assert!(matches!(e, ConfigError::RepoConfig { .. }), "{e}");
        std::fs::create_dir_all(app.join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.path(), app.join("sub/.cargo")).unwrap();
        let e = merged("sub").unwrap_err();
        assert!(e.to_string().contains("sub/.cargo"), "{e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        std::fs::create_dir_all(app.join("in/.cargo")).unwrap();
        std::os::unix::fs::symlink(outside.path(), app.join("out")).unwrap();
        assert!(
            merged("out").is_err(),
            "a package directory outside the source"
        );
    }

    #[test]
    fn registry() {
        let c = registry_config(&RepoPath::root(), "http://h:8080/repos/7/cargo/", None).unwrap();
        assert_eq!(c.path, "app/.cargo/config.registry.toml");
        let t: toml::Table =
            toml::from_str(std::str::from_utf8(c.inline_content().unwrap()).unwrap()).unwrap();
        assert_eq!(
            t["registries"]["larder"]["index"].as_str(),
            Some("sparse+http://h:8080/repos/7/cargo/")
        );
        assert_eq!(
            t["registries"]["larder"]["credential-provider"].as_str(),
            Some("cargo:token")
        );
        assert_eq!(
            t["source"]["crates-io"]["replace-with"].as_str(),
            Some("larder")
        );
        assert!(t.get("http").is_none(), "no CA: cargo's own roots");
        assert!(registry_config(&RepoPath::root(), "http://h/no-slash", None).is_err());
        assert!(registry_config(&RepoPath::root(), "ftp://h/", None).is_err());
        // the registry's CA, from the package directory
        let ca = crate::pkg_managers::repos_ca::tests::test_ca();
        let at = |p: &str| RepoPath::parse(p).unwrap();
        for (path, cainfo) in [(".", "registry-ca.pem"), ("a/b", "../../registry-ca.pem")] {
            let c = registry_config(&at(path), "https://h/repos/7/cargo/", Some(&ca)).unwrap();
            let t: toml::Table =
                toml::from_str(std::str::from_utf8(c.inline_content().unwrap()).unwrap()).unwrap();
            assert_eq!(t["http"]["cainfo"].as_str(), Some(cainfo), "{path}");
            assert_eq!(
                t["registries"]["larder"]["index"].as_str(),
                Some("sparse+https://h/repos/7/cargo/")
            );
        }
        assert_eq!(
            registry_env("tok")["CARGO_REGISTRIES_LARDER_TOKEN"].kind,
            "literal"
        );
    }
}
