//! npm-registry lockfile formats benchmark (not run by CI): `cargo bench --bench js`
//! (`LARDER_JS_BENCH_N` packages, default 1000; `LARDER_JS_BENCH_FORMATS`, default every one).
//!
//! Per format: the real client writes the lockfile of a synthetic tree against a fixture
//! registry on loopback (not timed); then a real Larder prefetches it cold and warm (submit →
//! complete), next to the real client installing the same lockfile from the same fixture
//! registry into an empty cache, through the per-request registry with only the configuration
//! files Larder hands back, and offline from the unpacked bundle (its app overlay over `app/`).

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};
use support::clients::{pnpm, yarn, yarn_berry};
use support::*;

/// A lockfile format and its real client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    YarnV1,
    YarnBerry,
    Pnpm,
}

impl Format {
    const ALL: &'static [Format] = &[Format::YarnV1, Format::YarnBerry, Format::Pnpm];

    fn name(self) -> &'static str {
        match self {
            Format::YarnV1 => "yarn-v1",
            Format::YarnBerry => "yarn-berry",
            Format::Pnpm => "pnpm",
        }
    }

    fn pm(self) -> &'static str {
        match self {
            Format::YarnV1 | Format::YarnBerry => "yarn",
            Format::Pnpm => "pnpm",
        }
    }

    fn lockfile(self) -> &'static str {
        match self {
            Format::YarnV1 | Format::YarnBerry => "yarn.lock",
            Format::Pnpm => "pnpm-lock.yaml",
        }
    }

    fn client(self) -> &'static str {
        match self {
            Format::YarnV1 => "yarn install --frozen-lockfile --ignore-scripts",
            Format::YarnBerry => "yarn install --immutable (Yarn 4, node-modules linker)",
            Format::Pnpm => "pnpm install --frozen-lockfile --ignore-scripts",
        }
    }

    /// The client resolving `dir`'s package.json against `registry`: writes the lockfile.
    fn lock(self, dir: &Path, home: &Path, registry: &str) {
        let (ok, out) = match self {
            Format::YarnV1 => yarn(
                dir,
                home,
                &[
                    "install",
                    "--ignore-scripts",
                    "--non-interactive",
                    "--registry",
                    registry,
                ],
            ),
            Format::YarnBerry => {
                // the repository's own settings (kept in the repository below): Yarn 4.18
                // quarantines versions younger than a day by a `time` the fixture lacks
                npm_fixtures::write(
                    &dir.join(".yarnrc.yml"),
                    format!(
                        "nodeLinker: node-modules\nnpmRegistryServer: \"{registry}\"\nunsafeHttpWhitelist:\n  - 127.0.0.1\nnpmMinimalAgeGate: 0\n"
                    ),
                );
                yarn_berry(dir, home, &["install"])
            }
            Format::Pnpm => {
                // the directory's `.npmrc`: the `locked` copy installs from the fixture too
                npm_fixtures::write(&dir.join(".npmrc"), format!("registry={registry}/\n"));
                pnpm(
                    dir,
                    home,
                    &["install", "--lockfile-only", "--ignore-scripts"],
                )
            }
        };
        assert!(ok, "{}: locking failed:\n{out}", self.name());
        std::fs::remove_dir_all(dir.join("node_modules")).ok();
        std::fs::remove_dir_all(dir.join(".yarn")).ok();
    }

    /// Files of the locking directory the repository keeps besides package.json and the
    /// lockfile.
    fn repo_files(self) -> &'static [&'static str] {
        match self {
            Format::YarnBerry => &[".yarnrc.yml"],
            Format::YarnV1 | Format::Pnpm => &[],
        }
    }

    /// The client installing the unpacked bundle's `app/` (its overlay applied) with no
    /// registry (README's offline command of each).
    fn install_offline(self, dir: &Path, home: &Path) -> Duration {
        let t = Instant::now();
        let (ok, out) = match self {
            Format::YarnV1 => yarn(
                dir,
                home,
                &[
                    "install",
                    "--offline",
                    "--frozen-lockfile",
                    "--ignore-scripts",
                    "--non-interactive",
                ],
            ),
            Format::YarnBerry => yarn_berry(dir, home, &["install", "--immutable"]),
            Format::Pnpm => pnpm(
                dir,
                home,
                &[
                    "install",
                    "--offline",
                    "--frozen-lockfile",
                    "--ignore-scripts",
                ],
            ),
        };
        let took = t.elapsed();
        assert!(ok, "{}: offline install failed:\n{out}", self.name());
        took
    }

    /// The client installing `dir` from its lockfile into an empty cache under `home`.
    fn install(self, dir: &Path, home: &Path) -> Duration {
        let t = Instant::now();
        let (ok, out) = match self {
            Format::YarnV1 => yarn(
                dir,
                home,
                &[
                    "install",
                    "--frozen-lockfile",
                    "--ignore-scripts",
                    "--non-interactive",
                ],
            ),
            Format::YarnBerry => yarn_berry(dir, home, &["install", "--immutable"]),
            Format::Pnpm => pnpm(
                dir,
                home,
                &["install", "--frozen-lockfile", "--ignore-scripts"],
            ),
        };
        let took = t.elapsed();
        assert!(ok, "{}: install failed:\n{out}", self.name());
        took
    }
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let n: usize = std::env::var("LARDER_JS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let formats: Vec<Format> = match std::env::var("LARDER_JS_BENCH_FORMATS") {
        Ok(list) => list
            .split(',')
            .map(|f| {
                *Format::ALL
                    .iter()
                    .find(|x| x.name() == f.trim())
                    .unwrap_or_else(|| panic!("unknown format {f:?}"))
            })
            .collect(),
        Err(_) => Format::ALL.to_vec(),
    };
    let tmp = tempfile::tempdir().unwrap();
    let up_dir = tmp.path().join("upstream");
    std::fs::create_dir_all(&up_dir).unwrap();
    let upstream = StaticServer::start(&up_dir).await;
    let (root, tree) = npm_fixtures::synthetic(n);
    let pkgs: Vec<_> = tree.iter().map(|e| e.pkg.clone()).collect();
    npm_fixtures::write_registry(&up_dir, &upstream.url, &pkgs).unwrap();
    let package_json = serde_json::to_string_pretty(&root.package_json()).unwrap();

    let larder = npm_fixtures::larder_for(&upstream).await;
    let mut rows = Vec::new();
    for format in formats {
        let base = tmp.path().join(format.name());
        let locked = base.join("locked");
        npm_fixtures::write(&locked.join("package.json"), &package_json);
        format.lock(&locked, &base.join("home-lock"), &upstream.url);
        let lockfile = std::fs::read(locked.join(format.lockfile())).unwrap();

        let repo = GitRepo::new(base.join("repo"));
        repo.write("package.json", &package_json);
        npm_fixtures::write(&repo.dir.join(format.lockfile()), &lockfile);
        for f in format.repo_files() {
            npm_fixtures::write(&repo.dir.join(f), std::fs::read(locked.join(f)).unwrap());
        }
        let commit = repo.commit("bench");

        let prefetch = || async {
            let t = Instant::now();
            let id = larder
                .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": [format.pm()]}))
                .await;
            let done = larder
                .wait_until(id, Duration::from_secs(1800), |r| {
                    r["state"] != "in_progress"
                })
                .await;
            assert_eq!(done["state"], "complete", "{}: {done}", format.name());
            (id, t.elapsed())
        };
        let (_, cold) = prefetch().await;
        let (id, warm) = prefetch().await;

        // the real client, the fixture registry, an empty cache
        let direct = base.join("direct");
        npm_fixtures::copy_dir(&locked, &direct);
        let home = base.join("home-direct");
        let client_direct = tokio::task::spawn_blocking(move || format.install(&direct, &home))
            .await
            .unwrap();

        // the real client through the per-request registry, only the hand-back over a checkout
        let via = base.join("via-larder");
        npm_fixtures::copy_dir(&repo.dir, &via);
        for (path, content) in larder.config_files(id).await {
            npm_fixtures::write(&via.join(path.strip_prefix("app/").unwrap()), content);
        }
        let home = base.join("home-via");
        let client_via = tokio::task::spawn_blocking(move || format.install(&via, &home))
            .await
            .unwrap();

        // offline: the unpacked bundle, its app overlay over `app/`, no registry
        let bundle = larder.download(id).await.0;
        let unpacked = base.join("bundle");
        tar::Archive::new(flate2::read::MultiGzDecoder::new(&bundle[..]))
            .unpack(&unpacked)
            .unwrap();
        apply_app_overlay(&unpacked);
        let home = base.join("home-offline");
        let client_offline = tokio::task::spawn_blocking(move || {
            format.install_offline(&unpacked.join("app"), &home)
        })
        .await
        .unwrap();
        rows.push((
            format,
            cold,
            warm,
            client_direct,
            client_via,
            client_offline,
        ));
    }

    println!("npm-registry lockfile formats: {n} packages, fixture registry on 127.0.0.1");
    println!(
        "| format | Larder cold | Larder warm | client, fixture registry, empty cache | client, per-request registry, empty cache | client, offline from the bundle | cold / client | client |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (format, cold, warm, direct, via, offline) in rows {
        println!(
            "| {} | {cold:.2?} | {warm:.2?} | {direct:.2?} | {via:.2?} | {offline:.2?} | {:.2} | `{}` |",
            format.name(),
            cold.as_secs_f64() / direct.as_secs_f64(),
            format.client()
        );
    }
}
