//! The benchmarks' synthetic projects, one per package manager: a fixture upstream on loopback
//! (the shared [`StaticServer`]) holding every dependency, and a committed repository whose
//! lockfile names all of them. Used by `bench/npm.rs`, `cargo.rs`, `pip.rs`, `gomod.rs`,
//! `memory.rs` and `warm.rs`.

use super::{cargo_fixtures, gomod_fixtures, npm_fixtures, pip_fixtures, rubygems_fixtures};
use super::{GitRepo, Larder, StaticServer};
use serde_json::{json, Value};
use std::path::Path;

/// A repository at a commit and the upstream its package manager fetches from.
pub struct Project {
    /// The package manager to request.
    pub pm: &'static str,
    /// Request flags (`pip-allow-binary`), none for most.
    pub flags: Vec<&'static str>,
    pub upstream: StaticServer,
    pub repo: GitRepo,
    pub commit: String,
    /// Larder's configuration pointing the package manager at `upstream`.
    pub env: Vec<(String, String)>,
}

impl Project {
    /// The request body: this repository, this commit, this package manager.
    pub fn body(&self) -> Value {
        let mut body =
            json!({"repo": self.repo.url(), "ref": self.commit, "pkg_managers": [self.pm]});
        if !self.flags.is_empty() {
            body["flags"] = json!(self.flags);
        }
        body
    }

    /// Point `larder`'s package manager at this project's upstream.
    pub fn configure(&self, larder: &mut Larder) {
        for (k, v) in &self.env {
            larder.env.insert(k.clone(), v.clone());
        }
    }
}

/// npm: [`npm_fixtures::synthetic`] of `n` packages on a fixture registry; the repository holds
/// package.json and a package-lock.json v3 resolved at `https://registry.npmjs.org/` (what npm
/// writes; Larder's `LARDER_NPM_REGISTRY` points at the fixture).
pub struct Npm {
    pub project: Project,
    pub root: npm_fixtures::RootProject,
    pub tree: Vec<npm_fixtures::TreeEntry>,
}

pub async fn npm(dir: &Path, n: usize) -> Npm {
    npm_with_payload(dir, n, 0).await
}

/// [`npm`] with `payload` incompressible bytes in each package
/// ([`npm_fixtures::synthetic_with_payload`]).
pub async fn npm_with_payload(dir: &Path, n: usize, payload: usize) -> Npm {
    let up_dir = dir.join("upstream");
    std::fs::create_dir_all(&up_dir).unwrap();
    let upstream = StaticServer::start(&up_dir).await;
    let (root, tree) = npm_fixtures::synthetic_with_payload(n, payload);
    let pkgs: Vec<_> = tree.iter().map(|e| e.pkg.clone()).collect();
    npm_fixtures::write_registry(&up_dir, &upstream.url, &pkgs).unwrap();
    let (repo, commit) = npm_fixtures::committed_project(dir.join("repo"), &root, &tree, "npm");
    let env = vec![("LARDER_NPM_REGISTRY".into(), upstream.url.clone())];
    Npm {
        project: Project {
            pm: "npm",
            flags: vec![],
            upstream,
            repo,
            commit,
            env,
        },
        root,
        tree,
    }
}

/// cargo: [`cargo_fixtures::synthetic_graph`] of `n` crates (plus every 10th in a second
/// version) on a fixture sparse registry; the repository is a workspace of one member `app`
/// depending on them, with its Cargo.lock.
pub struct Cargo {
    pub project: Project,
    pub built: Vec<cargo_fixtures::BuiltCrate>,
    /// `sparse+<upstream>/`
    pub index: String,
}

pub async fn cargo(dir: &Path, n: usize) -> Cargo {
    use cargo_fixtures::*;
    let (graph, roots) = synthetic_graph(n);
    let built: Vec<BuiltCrate> = graph.iter().map(build_crate).collect();
    let up_dir = dir.join("upstream");
    std::fs::create_dir_all(&up_dir).unwrap();
    let upstream = StaticServer::start(&up_dir).await;
    write_registry(
        &up_dir,
        &format!(
            "{}/crates/{{crate}}/{{crate}}-{{version}}.crate",
            upstream.url
        ),
        &built,
    )
    .unwrap();
    let index = format!("sparse+{}/", upstream.url);
    let repo_dir = dir.join("repo");
    write_workspace(
        &repo_dir,
        &[FixtureMember {
            name: "app".into(),
            version: "0.1.0".into(),
            path: "app".into(),
            deps: roots,
            path_deps: vec![],
        }],
        &built,
    )
    .unwrap();
    let repo = GitRepo::new(repo_dir);
    let commit = repo.commit("cargo");
    let env = vec![("LARDER_CRATES_INDEX".into(), index.clone())];
    Cargo {
        project: Project {
            pm: "cargo",
            flags: vec![],
            upstream,
            repo,
            commit,
            env,
        },
        built,
        index,
    }
}

/// pip: [`pip_fixtures::benchmark_set`] of `n` pinned packages (sdists; with `wheels` also a
/// wheel each, and the request flag `pip-allow-binary`) on a fixture simple index (HTML pages
/// only, so that the static server answers `text/html`, which pip accepts too); the repository
/// holds a pyproject.toml and the fully hashed requirements.txt.
pub struct Pip {
    pub project: Project,
    pub files: Vec<pip_fixtures::FixtureFile>,
    pub requirements: String,
    /// `<upstream>/simple/`
    pub index: String,
}

pub async fn pip(dir: &Path, n: usize, wheels: bool) -> Pip {
    let dist = dir.join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    let (files, requirements) = pip_fixtures::benchmark_set(&dist, n, wheels).unwrap();
    let root = dir.join("upstream");
    pip_fixtures::write_simple_index(&root, &files).unwrap();
    for f in &files {
        let json = root
            .join("simple")
            .join(pip_fixtures::normalize_name(&f.name))
            .join("index.json");
        let _ = std::fs::remove_file(json);
    }
    let upstream = StaticServer::start(&root).await;
    let index = format!("{}/simple/", upstream.url);
    let repo = GitRepo::new(dir.join("repo"));
    repo.write(
        "pyproject.toml",
        "[project]\nname = \"bench\"\nversion = \"1.0\"\n",
    )
    .write("requirements.txt", &requirements);
    let commit = repo.commit("pip");
    let env = vec![("LARDER_PYPI_INDEX".into(), index.clone())];
    Pip {
        project: Project {
            pm: "pip",
            flags: if wheels {
                vec!["pip-allow-binary"]
            } else {
                vec![]
            },
            upstream,
            repo,
            commit,
            env,
        },
        files,
        requirements,
        index,
    }
}

/// gomod: [`gomod_fixtures::wide`] (`n` leaf modules, all required and imported by the app)
/// on a fixture GOPROXY; the repository holds go.mod, go.sum and main.go.
pub struct Gomod {
    pub project: Project,
    pub gomod: String,
    pub gosum: String,
    pub main: String,
}

pub async fn gomod(dir: &Path, n: usize) -> Gomod {
    let proxy = dir.join("upstream");
    let (gomod, gosum, main) = gomod_fixtures::wide(&proxy, n);
    let upstream = StaticServer::start(&proxy).await;
    let repo = GitRepo::new(dir.join("repo"));
    repo.write("go.mod", &gomod)
        .write("go.sum", &gosum)
        .write("main.go", &main);
    let commit = repo.commit("gomod");
    let env = vec![("LARDER_GOPROXY".into(), upstream.url.clone())];
    Gomod {
        project: Project {
            pm: "gomod",
            flags: vec![],
            upstream,
            repo,
            commit,
            env,
        },
        gomod,
        gosum,
        main,
    }
}

/// A one-gem rubygems project: the gem server and a repository whose Gemfile.lock names it.
pub struct Gems {
    _dir: tempfile::TempDir,
    pub server: StaticServer,
    pub gem: Vec<u8>,
    pub repo: GitRepo,
    pub commit: String,
}

pub async fn gems(work: &Path) -> Gems {
    let rack = rubygems_fixtures::build_gem(
        work,
        &rubygems_fixtures::FixtureGem::new("rack", "1.0.0", &[]),
    );
    let dir = tempfile::tempdir().unwrap();
    rubygems_fixtures::write_server(dir.path(), std::slice::from_ref(&rack));
    let server = StaticServer::start(dir.path()).await;
    let repo = GitRepo::new(work.join("gems-repo"));
    repo.write(
        "Gemfile",
        "source \"https://rubygems.org\"\n\ngem \"rack\"\n",
    )
    .write(
        "Gemfile.lock",
        "GEM\n  remote: https://rubygems.org/\n  specs:\n    rack (1.0.0)\n\nPLATFORMS\n  ruby\n\n\
             DEPENDENCIES\n  rack\n\nBUNDLED WITH\n   2.3.7\n",
    );
    let commit = repo.commit("gems");
    Gems {
        _dir: dir,
        server,
        gem: rack.bytes,
        repo,
        commit,
    }
}
