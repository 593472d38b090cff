//! The real package clients (npm, pip, cargo) run as on a clean machine ([`clean_command`]),
//! shared by the modules that drive them. `go` is in [`super::gomod_fixtures`].

use super::clean_command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Run `cmd` to its end: (success, stdout + stderr).
pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `npm <args>` in `dir` with a clean environment (its cache under `home`) plus `env`.
pub fn npm(dir: &Path, home: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    std::fs::create_dir_all(home).unwrap();
    let mut cmd = clean_command("npm", home);
    cmd.args(args)
        .current_dir(dir)
        .env("npm_config_cache", home.join("cache"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// The real yarn 1.22 (`.ci/run` installs it: `npm install -g --prefix .ci/tools
/// yarn@1.22.22`); `LARDER_YARN` names another.
pub fn yarn_path() -> PathBuf {
    let p = std::env::var_os("LARDER_YARN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/tools/bin/yarn"));
    assert!(
        p.is_file(),
        "yarn 1.22 is not at {} (run `npm install -g --prefix .ci/tools yarn@1.22.22` or set LARDER_YARN)",
        p.display()
    );
    p
}

/// `yarn <args>` in `dir` with a clean environment (no YARN_*/npm_config_* of this machine; its
/// cache under `home`).
pub fn yarn(dir: &Path, home: &Path, args: &[&str]) -> (bool, String) {
    std::fs::create_dir_all(home).unwrap();
    let mut cmd = clean_command(yarn_path().to_str().unwrap(), home);
    cmd.args(args)
        .current_dir(dir)
        .env("YARN_CACHE_FOLDER", home.join("yarn-cache"))
        .env("YARN_DISABLE_SELF_UPDATE_CHECK", "true");
    run(&mut cmd)
}

/// The real pnpm 9 (`.ci/run` installs it: `npm install -g --prefix .ci/tools pnpm@9.15.9`);
/// `LARDER_PNPM` names another.
pub fn pnpm_path() -> PathBuf {
    let p = std::env::var_os("LARDER_PNPM")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/tools/bin/pnpm"));
    assert!(
        p.is_file(),
        "pnpm 9 is not at {} (run `npm install -g --prefix .ci/tools pnpm@9.15.9` or set LARDER_PNPM)",
        p.display()
    );
    p
}

/// `pnpm <args>` in `dir` with a clean environment (no PNPM_*/npm_config_*/YARN_* of this
/// machine; its store and cache under `home`).
pub fn pnpm(dir: &Path, home: &Path, args: &[&str]) -> (bool, String) {
    std::fs::create_dir_all(home).unwrap();
    let mut cmd = clean_command(pnpm_path().to_str().unwrap(), home);
    cmd.args(args)
        .current_dir(dir)
        .env("npm_config_store_dir", home.join("pnpm-store"))
        .env("npm_config_cache_dir", home.join("pnpm-cache"))
        .env("npm_config_update_notifier", "false")
        .env("CI", "true");
    run(&mut cmd)
}

/// The real Yarn 4 (`.ci/run` installs it: `npm install -g --prefix .ci/tools/berry
/// @yarnpkg/cli-dist@4.18.1`, a prefix of its own: its `bin/yarn` would take yarn 1's place);
/// `LARDER_YARN_BERRY` names another.
pub fn yarn_berry_path() -> PathBuf {
    let p = std::env::var_os("LARDER_YARN_BERRY")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/tools/berry/bin/yarn")
        });
    assert!(
        p.is_file(),
        "Yarn 4 is not at {} (run `npm install -g --ignore-scripts --prefix .ci/tools/berry @yarnpkg/cli-dist@4.18.1` or set LARDER_YARN_BERRY)",
        p.display()
    );
    p
}

/// `yarn <args>` of Yarn 4 in `dir` with a clean environment (no YARN_*/npm_config_* of this
/// machine; its global folder under `home`), no telemetry, no build scripts.
pub fn yarn_berry(dir: &Path, home: &Path, args: &[&str]) -> (bool, String) {
    std::fs::create_dir_all(home).unwrap();
    let mut cmd = clean_command(yarn_berry_path().to_str().unwrap(), home);
    cmd.args(args)
        .current_dir(dir)
        .env("YARN_GLOBAL_FOLDER", home.join("yarn-berry-global"))
        .env("YARN_ENABLE_TELEMETRY", "false")
        .env("YARN_ENABLE_SCRIPTS", "false")
        .env("YARN_ENABLE_INLINE_BUILDS", "false")
        .env("YARN_ENABLE_PROGRESS_BARS", "false");
    run(&mut cmd)
}

/// `location@version` of what npm installed in `dir` (its hidden lockfile), links and
/// workspaces left out.
pub fn npm_installed(dir: &Path) -> Vec<String> {
    let v: Value = serde_json::from_slice(
        &std::fs::read(dir.join("node_modules/.package-lock.json")).unwrap(),
    )
    .unwrap();
    let mut out: Vec<String> = v["packages"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, e)| k.starts_with("node_modules/") && e.get("link").is_none())
        .map(|(k, e)| format!("{k}@{}", e["version"].as_str().unwrap_or("?")))
        .collect();
    out.sort();
    out
}

/// A fresh virtual environment; returns its python.
pub fn venv(dir: &Path, home: &Path) -> PathBuf {
    let (ok, log) = run(clean_command("python3", home).args(["-m", "venv"]).arg(dir));
    assert!(ok, "venv: {log}");
    dir.join("bin/python")
}

/// `python -m pip <args>` with a clean environment plus `env`.
pub fn pip(python: &Path, home: &Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let mut cmd = clean_command(python.to_str().unwrap(), home);
    cmd.args([
        "-m",
        "pip",
        "--disable-pip-version-check",
        "--no-cache-dir",
        "--no-input",
    ]);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// `cargo` as on a clean machine: fresh CARGO_HOME (under `home`), the rustup toolchain kept.
pub fn cargo(home: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut c = clean_command("cargo", home);
    c.env("CARGO_HOME", home.join(".cargo"))
        .env("CARGO_TARGET_DIR", home.join("target"))
        .env("CARGO_NET_RETRY", "0")
        .env("CARGO_HTTP_TIMEOUT", "30");
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".rustup")));
    if let Some(r) = rustup_home {
        c.env("RUSTUP_HOME", r);
    }
    if let Ok(t) = std::env::var("RUSTUP_TOOLCHAIN") {
        c.env("RUSTUP_TOOLCHAIN", t);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    std::fs::create_dir_all(home.join(".cargo")).unwrap();
    let (ok, out) = run(c.args(args).current_dir(dir));
    if std::env::var_os("LARDER_TEST_VERBOSE").is_some() {
        eprintln!("$ cargo {args:?} in {}: {ok}\n{out}", dir.display());
    }
    (ok, out)
}
