//! Go module fixtures: modules built from in-memory source trees into a static GOPROXY tree
//! (real `h1:` sums), and the real `go` command run from a bundle or against a GOPROXY.
#![allow(dead_code)]

use crate::support::clean_command;
use std::path::{Path, PathBuf};
pub use worker::pkg_managers::gomod::fixtures::{
    build_module, gosum_text, write_proxy_tree, BuiltModule, FixtureModule,
};

/// A library module `path@v` with one package `pkg` (`<pkg>.go` = `body`), a test file, a
/// LICENSE and testdata, its go.mod saying `go 1.19`.
pub fn lib(path: &str, v: &str, pkg: &str, requires: &[(&str, &str)], body: &str) -> BuiltModule {
    build_module(
        &FixtureModule::new(path, v)
            .gomod("1.19", requires)
            .file(&format!("{pkg}.go"), body)
            .file(&format!("{pkg}_test.go"), format!("package {pkg}\n"))
            .file("LICENSE", "MIT\n")
            .file("testdata/x.txt", "data"),
    )
    .unwrap()
}

/// `package main` printing `calls`.
pub fn main_go(imports: &[&str], calls: &str) -> String {
    let mut s = "package main\n\nimport (\n\t\"fmt\"\n".to_string();
    for i in imports {
        s.push_str(&format!("\t\"{i}\"\n"));
    }
    s.push_str(&format!(
        ")\n\nfunc main() {{\n\tfmt.Println({calls})\n}}\n"
    ));
    s
}

/// `example.com/b` <- `github.com/Fix/Upper` (upper-case path: exercises `!` escaping).
pub struct Transitive {
    pub upper: BuiltModule,
    pub b: BuiltModule,
    /// On the upstream but in no go.sum: the per-request GOPROXY must not serve it.
    pub undeclared: BuiltModule,
}

pub const APP_GOMOD: &str = "module example.com/app\n\ngo 1.19\n\nrequire github.com/Fix/Upper v1.0.0\n\nrequire example.com/b v1.1.0 // indirect\n";

pub fn transitive(proxy: &Path) -> Transitive {
    let b = lib(
        "example.com/b",
        "v1.1.0",
        "b",
        &[],
        "package b\n\nfunc B() string { return \"b\" }\n",
    );
    let upper = lib(
        "github.com/Fix/Upper",
        "v1.0.0",
        "upper",
        &[("example.com/b", "v1.1.0")],
        "package upper\n\nimport \"example.com/b\"\n\nfunc A() string { return \"a\" + b.B() }\n",
    );
    let undeclared = lib(
        "example.com/undeclared",
        "v1.0.0",
        "undeclared",
        &[],
        "package undeclared\n\nfunc U() string { return \"u\" }\n",
    );
    write_proxy_tree(proxy, &[upper.clone(), b.clone(), undeclared.clone()]).unwrap();
    Transitive {
        upper,
        b,
        undeclared,
    }
}

/// A wide module graph for the benchmark: `n` leaf modules `example.com/m<i>` (each with a
/// few files), all required by the app, which imports every one of them.
/// Returns (go.mod, go.sum, main.go).
pub fn wide(proxy: &Path, n: usize) -> (String, String, String) {
    let mut built = Vec::with_capacity(n);
    for i in 0..n {
        let path = format!("example.com/m{i}");
        let mut m = FixtureModule::new(&path, "v1.0.0")
            .gomod("1.19", &[])
            .file(
                &format!("m{i}.go"),
                format!("package m{i}\n\nfunc F() int {{ return {i} }}\n"),
            )
            .file("LICENSE", "MIT\n");
        for j in 0..8 {
            m = m.file(
                &format!("internal/p{j}/p.go"),
                format!("package p{j}\n\n// filler {}\n", "x".repeat(2000)),
            );
        }
        built.push(build_module(&m).unwrap());
    }
    write_proxy_tree(proxy, &built).unwrap();
    let mut gomod = "module example.com/app\n\ngo 1.19\n\nrequire (\n".to_string();
    let mut imports = Vec::new();
    let mut calls = Vec::new();
    for (i, m) in built.iter().enumerate() {
        gomod.push_str(&format!("\t{} {}\n", m.path, m.version));
        imports.push(m.path.clone());
        calls.push(format!("m{i}.F()"));
    }
    gomod.push_str(")\n");
    let refs: Vec<&BuiltModule> = built.iter().collect();
    let sum = gosum_text(&refs, &[]);
    let imports: Vec<&str> = imports.iter().map(String::as_str).collect();
    let main = main_go(&imports, &calls.join(" + "));
    (gomod, sum, main)
}

/// Unpack a bundle (`.tar.gz`) into `dest`.
pub fn unpack(bytes: &[u8], dest: &Path) {
    super::gnu_untar(bytes, dest);
}

/// The request's environment variables as the client sets them (`path` kinds made absolute
/// below `bundle`).
pub fn env_from(vars: &serde_json::Value, bundle: &Path) -> Vec<(String, String)> {
    vars.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let value = v["value"].as_str().unwrap();
            let value = if v["kind"] == "path" {
                bundle.join(value).display().to_string()
            } else {
                value.to_string()
            };
            (k.clone(), value)
        })
        .collect()
}

/// Replace or add `key=value` in `env`.
pub fn with(env: &[(String, String)], key: &str, value: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = env.iter().filter(|(k, _)| k != key).cloned().collect();
    out.push((key.to_string(), value.to_string()));
    out
}

/// Run the real `go` in `dir` on a clean machine (no GO* from this environment) plus `env`.
pub fn go(dir: &Path, home: &Path, args: &[&str], env: &[(String, String)]) -> (bool, String) {
    std::fs::create_dir_all(home).unwrap();
    let mut cmd = clean_command("go", home);
    cmd.args(args)
        .current_dir(dir)
        .env("GOTELEMETRY", "off")
        .env("CGO_ENABLED", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the go command is installed");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// go makes extracted module directories read-only; make a tree deletable again.
pub fn make_writable(dir: &Path) {
    let _ = std::process::Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(dir)
        .status();
}

/// Every file below `dir` (relative paths).
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}
