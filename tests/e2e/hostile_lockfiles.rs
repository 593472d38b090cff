//! Hostile lockfiles: NUL bytes, terminal escapes and megabytes of text in every lockfile format
//! end in a clear `failed` request whose reason is clean and bounded, and never in a request that
//! stays `in_progress` or a worker that stops taking work.

use crate::support::*;
use serde_json::{json, Value};

/// A Larder whose upstreams all answer 404 (nothing leaves the machine).
async fn larder(dead: &StaticServer) -> Larder {
    let mut larder = Larder::new();
    for var in [
        "LARDER_NPM_REGISTRY",
        "LARDER_PYPI_INDEX",
        "LARDER_GOPROXY",
        "LARDER_RUBYGEMS_URL",
    ] {
        larder.env.insert(var.into(), dead.url.clone());
    }
    larder.env.insert(
        "LARDER_CRATES_INDEX".into(),
        format!("sparse+{}/", dead.url),
    );
    larder.spawn("serve", &[("LARDER_WORKER_CONCURRENCY", "1")]);
    larder.wait_healthy().await;
    larder
}

fn assert_clean_failure(r: &Value) {
    assert_eq!(r["state"], "failed", "{r}");
    let reason = r["state_reason"].as_str().unwrap();
    assert!(
        !reason
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "{reason:?}"
    );
    assert!(
        reason.len() <= common::text::MAX_REASON_BYTES + 64,
        "{} bytes",
        reason.len()
    );
    assert!(r["error_origin"].is_string(), "{r}");
    let history = r["state_history"].as_array().unwrap();
    assert!(history.len() < 12, "a bounded history: {r}");
}

struct Case {
    name: &'static str,
    pm: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
}

fn cases() -> Vec<Case> {
    let nul_npm = json!({
        "name": "app", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
        "packages": {
            "": {"name": "app", "version": "1.0.0", "dependencies": {"evil\u{0}pkg": "1.0.0"}},
            "node_modules/evil\u{0}pkg": {"version": "1.0.0\u{1b}[31m",
                "resolved": "https://registry.npmjs.org/evil/-/evil-1.0.0.tgz",
                "integrity": "sha512-AAAA"}
        }
    });
    let registry_entry = |integrity: Option<&str>| {
        let mut e =
            json!({"version": "1.0.0", "resolved": "https://registry.npmjs.org/a/-/a-1.0.0.tgz"});
        if let Some(i) = integrity {
            e["integrity"] = json!(i);
        }
        e
    };
    let lock = |packages: Value| {
        let mut doc = json!({"name": "app", "version": "1.0.0", "lockfileVersion": 3,
            "packages": {"": {"name": "app", "version": "1.0.0", "dependencies": {"a": "1.0.0"}}}});
        for (k, v) in packages.as_object().unwrap() {
            doc["packages"][k] = v.clone();
        }
        serde_json::to_vec(&doc).unwrap()
    };
    let sha512 = |b: u8| {
        use base64::Engine;
        format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode([b; 64])
        )
    };
    let no_integrity = lock(json!({"node_modules/a": registry_entry(None)}));
    let ambiguous = lock(json!({
        "node_modules/a": registry_entry(Some(&sha512(1))),
        "node_modules/b/node_modules/a": registry_entry(Some(&sha512(2))),
    }));
    let cargo_lock = "version = 3\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\"evil\\u0000crate\"]\n\n[[package]]\nname = \"evil\\u0000crate\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"0000000000000000000000000000000000000000000000000000000000000000\"\n";
    let crate_entry = |checksum: char| {
        format!("\n[[package]]\nname = \"serde\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{}\"\n", checksum.to_string().repeat(64))
    };
    let cargo_twice = format!(
        "version = 3\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\"serde\"]\n{}{}",
        crate_entry('0'),
        crate_entry('1')
    );
    let cargo_toml =
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n";
    vec![
        Case {
            name: "npm key and version with NUL and ESC",
            pm: "npm",
            files: vec![
                ("package.json", br#"{"name":"app","version":"1.0.0"}"#.to_vec()),
                ("package-lock.json", serde_json::to_vec(&nul_npm).unwrap()),
            ],
        },
        Case {
            name: "npm registry package without integrity",
            pm: "npm",
            files: vec![
                ("package.json", br#"{"name":"app","version":"1.0.0"}"#.to_vec()),
                ("package-lock.json", no_integrity),
            ],
        },
        Case {
            name: "npm package twice with different integrity",
            pm: "npm",
            files: vec![
                ("package.json", br#"{"name":"app","version":"1.0.0"}"#.to_vec()),
                ("package-lock.json", ambiguous),
            ],
        },
        Case {
            name: "npm lockfile naming one entry twice",
            pm: "npm",
            files: vec![
                ("package.json", br#"{"name":"app","version":"1.0.0"}"#.to_vec()),
                (
                    "package-lock.json",
                    br#"{"name":"app","lockfileVersion":3,"packages":{"":{"name":"app"},"node_modules/a":{"version":"1.0.0","resolved":"https://registry.npmjs.org/a/-/a-1.0.0.tgz","integrity":"sha512-AAAA"},"node_modules/a":{"version":"2.0.0","resolved":"https://registry.npmjs.org/a/-/a-2.0.0.tgz","integrity":"sha512-BBBB"}}}"#.to_vec(),
                ),
            ],
        },
        Case {
            name: "Cargo.lock naming one crate twice",
            pm: "cargo",
            files: vec![
                ("Cargo.toml", cargo_toml.as_bytes().to_vec()),
                ("src/lib.rs", b"".to_vec()),
                ("Cargo.lock", cargo_twice.into_bytes()),
            ],
        },
        Case {
            name: "requirements line with NUL",
            pm: "pip",
            files: vec![("requirements.txt", b"alpha\0==1.0\n\x1b]0;pwned\x07beta==2.0\n".to_vec())],
        },
        Case {
            name: "17 MiB requirements line",
            pm: "pip",
            files: vec![(
                "requirements.txt",
                [b"x".repeat(17 << 20), b" >= 1\n".to_vec()].concat(),
            )],
        },
        Case {
            name: "3 MiB requirement quoted in its failure",
            pm: "pip",
            files: vec![(
                "requirements.txt",
                [b"alpha\0".to_vec(), b"y".repeat(3 << 20), b"==1.0\n".to_vec()].concat(),
            )],
        },
        Case {
            name: "pnpm-lock.yaml with NUL and escapes",
            pm: "pnpm",
            files: vec![
                ("package.json", br#"{"name":"app","version":"1.0.0"}"#.to_vec()),
                (
                    "pnpm-lock.yaml",
                    b"lockfileVersion: '9.0'\n\npackages:\n\n  evil\0pkg@1.0.0\x1b[31m:\n    resolution: {integrity: sha512-AAAA}\n"
                        .to_vec(),
                ),
            ],
        },
        Case {
            name: "pnpm-lock.yaml with a 17 MiB package key",
            pm: "pnpm",
            files: vec![
                ("package.json", br#"{"name":"app","version":"1.0.0"}"#.to_vec()),
                (
                    "pnpm-lock.yaml",
                    [
                        b"lockfileVersion: '9.0'\n\npackages:\n\n  a\x1b[2J".to_vec(),
                        b"x".repeat(17 << 20),
                        b"@1.0.0:\n    resolution: {}\n".to_vec(),
                    ]
                    .concat(),
                ),
            ],
        },
        Case {
            name: "Cargo.lock package name with NUL",
            pm: "cargo",
            files: vec![
                ("Cargo.toml", cargo_toml.as_bytes().to_vec()),
                ("src/lib.rs", b"".to_vec()),
                ("Cargo.lock", cargo_lock.as_bytes().to_vec()),
            ],
        },
        Case {
            name: "Gemfile.lock gem name with NUL and escapes",
            pm: "rubygems",
            files: vec![(
                "Gemfile.lock",
                b"GEM\n  remote: https://rubygems.org/\n  specs:\n    evil\0gem (1.0.0\x1b[31m)\n\nPLATFORMS\n  ruby\n"
                    .to_vec(),
            )],
        },
        Case {
            name: "Gemfile.lock with a 3 MiB spec line",
            pm: "rubygems",
            files: vec![(
                "Gemfile.lock",
                [
                    b"GEM\n  remote: https://rubygems.org/\n  specs:\n    ".to_vec(),
                    b"z".repeat(3 << 20),
                    b"\0 (1.0.0)\n".to_vec(),
                ]
                .concat(),
            )],
        },
        Case {
            name: "go.mod and go.sum with NUL",
            pm: "gomod",
            files: vec![
                (
                    "go.mod",
                    b"module example.com/app\n\ngo 1.19\n\nrequire example.com/evil\0mod v1.0.0\n"
                        .to_vec(),
                ),
                (
                    "go.sum",
                    b"example.com/evil\0mod v1.0.0 h1:AAAA\x1b[2J=\nexample.com/evil\0mod v1.0.0/go.mod h1:AAAA=\n"
                        .to_vec(),
                ),
            ],
        },
        Case {
            name: "yarn Berry lockfile with NUL and escapes",
            pm: "yarn",
            files: vec![
                ("package.json", br#"{"name":"app","version":"1.0.0"}"#.to_vec()),
                (
                    "yarn.lock",
                    b"__metadata:\n  version: 8\n  cacheKey: 10c0\n\n\"evil\0pkg@npm:1\":\n  version: 1.0.0\n  resolution: \"evil\0pkg@npm:1.0.0\x1b[31m\"\n  checksum: 10c0/00\n"
                        .to_vec(),
                ),
            ],
        },
        Case {
            // YAML's own escapes: the control characters are in the parsed name
            name: "yarn Berry lockfile with escaped control characters",
            pm: "yarn",
            files: vec![
                ("package.json", br#"{"name":"app","version":"1.0.0"}"#.to_vec()),
                (
                    "yarn.lock",
                    br#"__metadata:
  version: 8
  cacheKey: 10c0

"evil@npm:1":
  version: 1.0.0
  resolution: "evil\x1b[2J\0pkg@npm:1.0.0"
  checksum: 10c0/00
"#
                    .to_vec(),
                ),
            ],
        },
        Case {
            name: "yarn Berry lockfile alias bomb",
            pm: "yarn",
            files: vec![
                ("package.json", br#"{"name":"app","version":"1.0.0"}"#.to_vec()),
                ("yarn.lock", b"__metadata:\n  version: 8\n  cacheKey: 10c0\na: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n".to_vec()),
            ],
        },
    ]
}

#[tokio::test]
async fn nul_bytes_escapes_and_huge_lines_in_every_lockfile_end_in_a_clean_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let dead = StaticServer::start(&tmp.path().join("empty")).await;
    let larder = larder(&dead).await;
    let mut ids = Vec::new();
    for (i, case) in cases().into_iter().enumerate() {
        let repo = GitRepo::new(tmp.path().join(format!("repo{i}")));
        for (path, content) in &case.files {
            let p = repo.dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let commit = repo.commit(case.name);
        let id = larder
            .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": [case.pm]}))
            .await;
        ids.push((case.name, id));
    }
    for (name, id) in ids {
        let done = larder.wait(id).await;
        let reason = done["state_reason"].as_str().unwrap();
        eprintln!("{name}: {}", &reason[..reason.len().min(300)]);
        assert_clean_failure(&done);
        if name.starts_with("3 MiB") {
            assert!(reason.ends_with("more bytes cut]"), "{}", reason.len());
        }
        if name.starts_with("npm registry") {
            assert!(reason.contains("has no integrity value"), "{reason}");
        }
        if name.contains("twice") && !name.starts_with("npm package twice") {
            assert!(reason.contains("ambiguous"), "{reason}");
        }
        if name.starts_with("npm package twice") {
            assert!(
                reason.contains("ambiguous") && reason.contains("node_modules/b/node_modules/a"),
                "{reason}"
            );
        }
    }
    // the single worker slot was never held: a trivial request still completes
    let (repo, commit) = GitRepo::with_file(tmp.path().join("ok"), "a.txt", "a");
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    assert_eq!(larder.wait(id).await["state"], "complete");
    let logs = larder.logs();
    assert!(!logs.contains('\0'), "a NUL reached the log");
}
