//! Test fixtures (public, for end-to-end tests and the benchmark): real `.crate` files with real
//! sha256, a static sparse registry tree, and a matching workspace + `Cargo.lock` (v4, byte-for-byte
//! what cargo 1.95 writes, so `--locked` accepts it).

use sha2::Digest as _;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// The lockfile source of crates.io packages.
pub const CRATES_IO_REGISTRY: &str = "registry+https://github.com/rust-lang/crates.io-index";

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Sparse index path of a crate, lowercased: `1/a`, `2/ab`, `3/a/abc`, `ca/rg/cargo`.
pub fn index_path(name: &str) -> Result<String, String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!("invalid crate name {name:?}"));
    }
    let pre = match name.len() {
        1 => "1".to_string(),
        2 => "2".to_string(),
        3 => format!("3/{}", &name[..1]),
        _ => format!("{}/{}", &name[..2], &name[2..4]),
    };
    Ok(format!("{pre}/{name}").to_ascii_lowercase())
}

/// A file inside a `.crate`, path relative to the `<name>-<version>/` prefix.
#[derive(Clone, Debug)]
pub struct CrateFile {
    pub path: String,
    pub data: Vec<u8>,
}

impl CrateFile {
    pub fn new(path: &str, data: &[u8]) -> Self {
        Self {
            path: path.to_string(),
            data: data.to_vec(),
        }
    }
}

/// Build a deterministic `.crate` (gzip tar, entries under `<name>-<version>/`).
pub fn build_crate_from_files(name: &str, version: &str, files: &[CrateFile]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for f in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(f.data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        // ignore errors: fixture paths are controlled by the caller
        let _ = b.append_data(
            &mut h,
            format!("{name}-{version}/{}", f.path),
            f.data.as_slice(),
        );
    }
    let tar = b.into_inner().unwrap_or_default();
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(tar.len() / 4),
        flate2::Compression::fast(),
    );
    let _ = gz.write_all(&tar);
    gz.finish().unwrap_or_default()
}

/// A registry crate to publish into the fixture registry; `deps` = (name, exact version).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FixtureCrate {
    pub name: String,
    pub version: String,
    pub deps: Vec<(String, String)>,
    /// Cargo.toml's `license`, as written.
    pub license: Option<String>,
}

impl FixtureCrate {
    pub fn new(name: &str, version: &str, deps: &[(&str, &str)]) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            deps: deps
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            license: None,
        }
    }

    pub fn license(mut self, license: &str) -> Self {
        self.license = Some(license.into());
        self
    }
}

#[derive(Clone, Debug)]
pub struct BuiltCrate {
    pub name: String,
    pub version: String,
    pub deps: Vec<(String, String)>,
    pub bytes: Vec<u8>,
    pub cksum: String,
    /// the index line (no newline)
    pub index_line: String,
}

fn ident(name: &str) -> String {
    name.replace('-', "_")
}

/// Build a `.crate` with a Cargo.toml declaring `deps` (as `=version`) and a `src/lib.rs`
/// exporting `pub fn <name>() -> u64` that calls its deps.
pub fn build_crate(c: &FixtureCrate) -> BuiltCrate {
    let mut manifest = format!(
        "[package]\nedition = \"2021\"\nname = \"{}\"\nversion = \"{}\"\n",
        c.name, c.version
    );
    if let Some(license) = &c.license {
        let _ = writeln!(manifest, "license = {license:?}");
    }
    let mut body = String::from("1");
    if !c.deps.is_empty() {
        manifest.push_str("\n[dependencies]\n");
        for (n, v) in &c.deps {
            let _ = writeln!(manifest, "{n} = \"={v}\"");
            let _ = write!(body, " + {}::{}()", ident(n), ident(n));
        }
    }
    let lib = format!("pub fn {}() -> u64 {{ {body} }}\n", ident(&c.name));
    let bytes = build_crate_from_files(
        &c.name,
        &c.version,
        &[
            CrateFile::new("Cargo.toml", manifest.as_bytes()),
            CrateFile::new("src/lib.rs", lib.as_bytes()),
        ],
    );
    let cksum = sha256_hex(&bytes);
    let deps: Vec<serde_json::Value> = c
        .deps
        .iter()
        .map(|(n, v)| {
            serde_json::json!({"name": n, "req": format!("={v}"), "features": [], "optional": false,
                "default_features": true, "target": null, "kind": "normal"})
        })
        .collect();
    let line = serde_json::json!({"name": c.name, "vers": c.version, "deps": deps, "cksum": cksum,
        "features": {}, "yanked": false});
    BuiltCrate {
        name: c.name.clone(),
        version: c.version.clone(),
        deps: c.deps.clone(),
        bytes,
        cksum,
        index_line: line.to_string(),
    }
}

/// A crate with arbitrary files (Cargo.toml must be among them); `deps` only go to the index line.
pub fn build_custom(name: &str, version: &str, files: &[CrateFile]) -> BuiltCrate {
    let bytes = build_crate_from_files(name, version, files);
    let cksum = sha256_hex(&bytes);
    let line = serde_json::json!({"name": name, "vers": version, "deps": [], "cksum": cksum,
        "features": {}, "yanked": false});
    BuiltCrate {
        name: name.into(),
        version: version.into(),
        deps: vec![],
        bytes,
        cksum,
        index_line: line.to_string(),
    }
}

/// Write a static sparse registry: `<dir>/config.json` (`dl` as given), the index files and the
/// crates at `<dir>/crates/<name>/<name>-<version>.crate`. Use a `dl` such as
/// `http://127.0.0.1:<port>/crates/{crate}/{crate}-{version}.crate`.
pub fn write_registry(dir: &Path, dl: &str, crates: &[BuiltCrate]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(
        dir.join("config.json"),
        serde_json::json!({"dl": dl}).to_string(),
    )?;
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for c in crates {
        let p = index_path(&c.name).map_err(|e| io::Error::other(e.to_string()))?;
        let f = files.entry(p).or_default();
        f.push_str(&c.index_line);
        f.push('\n');
        let cdir = dir.join("crates").join(&c.name);
        fs::create_dir_all(&cdir)?;
        fs::write(
            cdir.join(format!("{}-{}.crate", c.name, c.version)),
            &c.bytes,
        )?;
    }
    for (p, content) in files {
        let path = dir.join(&p);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(path, content)?;
    }
    Ok(())
}

/// A workspace member for [`write_workspace`]; `path` relative to the workspace root.
#[derive(Clone, Debug)]
pub struct FixtureMember {
    pub name: String,
    pub version: String,
    pub path: String,
    /// registry deps (name, exact version)
    pub deps: Vec<(String, String)>,
    /// other members this one depends on by path (member names)
    pub path_deps: Vec<String>,
}

/// One lockfile package, for [`render_lockfile`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LockEntry {
    pub name: String,
    pub version: String,
    pub source: Option<String>,
    pub checksum: Option<String>,
    /// (name, version, source)
    pub deps: Vec<(String, String, Option<String>)>,
}

/// Render a v4 `Cargo.lock` exactly as cargo does.
pub fn render_lockfile(entries: &[LockEntry]) -> String {
    let mut entries: Vec<LockEntry> = entries.to_vec();
    entries.sort();
    let mut count: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in &entries {
        count.entry(&e.name).or_default().insert(&e.version);
    }
    let mut out = String::from("# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\nversion = 4\n");
    for e in &entries {
        let _ = write!(
            out,
            "\n[[package]]\nname = \"{}\"\nversion = \"{}\"\n",
            e.name, e.version
        );
        if let Some(s) = &e.source {
            let _ = writeln!(out, "source = \"{s}\"");
        }
        if let Some(c) = &e.checksum {
            let _ = writeln!(out, "checksum = \"{c}\"");
        }
        if !e.deps.is_empty() {
            let mut deps = e.deps.clone();
            deps.sort();
            deps.dedup();
            out.push_str("dependencies = [\n");
            for (n, v, _) in &deps {
                if count.get(n.as_str()).map(|s| s.len()).unwrap_or(1) > 1 {
                    let _ = writeln!(out, " \"{n} {v}\",");
                } else {
                    let _ = writeln!(out, " \"{n}\",");
                }
            }
            out.push_str("]\n");
        }
    }
    out
}

/// Write a workspace (root `Cargo.toml` with `[workspace] members`, each member's manifest and
/// `src/lib.rs`) and its `Cargo.lock` covering `crates` (all must be reachable from members).
pub fn write_workspace(
    dir: &Path,
    members: &[FixtureMember],
    crates: &[BuiltCrate],
) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut root = String::from("[workspace]\nresolver = \"2\"\nmembers = [\n");
    for m in members {
        let _ = writeln!(root, "    \"{}\",", m.path);
    }
    root.push_str("]\n");
    fs::write(dir.join("Cargo.toml"), root)?;
    let mut entries = Vec::new();
    for m in members {
        let mdir = dir.join(&m.path);
        fs::create_dir_all(mdir.join("src"))?;
        let mut manifest = format!(
            "[package]\nname = \"{}\"\nversion = \"{}\"\nedition = \"2021\"\n\n[dependencies]\n",
            m.name, m.version
        );
        let mut body = String::from("0");
        let mut deps = Vec::new();
        for (n, v) in &m.deps {
            // a crate with several versions in the graph needs a rename per version
            let key = format!("{}_{}", ident(n), v.replace(['.', '-', '+'], "_"));
            let _ = writeln!(
                manifest,
                "{key} = {{ package = \"{n}\", version = \"={v}\" }}"
            );
            let _ = write!(body, " + {key}::{}()", ident(n));
            deps.push((n.clone(), v.clone(), Some(CRATES_IO_REGISTRY.to_string())));
        }
        for p in &m.path_deps {
            let Some(target) = members.iter().find(|x| &x.name == p) else {
                continue;
            };
            let rel = relative_path(&m.path, &target.path);
            let _ = writeln!(manifest, "{} = {{ path = \"{rel}\" }}", target.name);
            deps.push((target.name.clone(), target.version.clone(), None));
        }
        fs::write(mdir.join("Cargo.toml"), manifest)?;
        fs::write(
            mdir.join("src/lib.rs"),
            format!("pub fn {}() -> u64 {{ {body} }}\n", ident(&m.name)),
        )?;
        entries.push(LockEntry {
            name: m.name.clone(),
            version: m.version.clone(),
            source: None,
            checksum: None,
            deps,
        });
    }
    for c in crates {
        entries.push(LockEntry {
            name: c.name.clone(),
            version: c.version.clone(),
            source: Some(CRATES_IO_REGISTRY.to_string()),
            checksum: Some(c.cksum.clone()),
            deps: c
                .deps
                .iter()
                .map(|(n, v)| (n.clone(), v.clone(), Some(CRATES_IO_REGISTRY.to_string())))
                .collect(),
        });
    }
    fs::write(dir.join("Cargo.lock"), render_lockfile(&entries))
}

fn relative_path(from: &str, to: &str) -> String {
    let f: Vec<&str> = from.split('/').filter(|s| !s.is_empty()).collect();
    let t: Vec<&str> = to.split('/').filter(|s| !s.is_empty()).collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; f.len() - common];
    parts.extend(&t[common..]);
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// A synthetic crate graph of `n` crates (`n >= 1`) named `fx-crate-<i>`: crate `i` depends on
/// up to 3 lower-numbered crates; every 10th crate also exists in a second version. Returns the
/// crates and the "roots" a member should depend on to reach all of them.
pub fn synthetic_graph(n: usize) -> (Vec<FixtureCrate>, Vec<(String, String)>) {
    let mut crates = Vec::with_capacity(n + n / 10);
    let mut depended: BTreeSet<(String, String)> = BTreeSet::new();
    for i in 0..n {
        let name = format!("fx-crate-{i}");
        let mut deps = Vec::new();
        for k in [i / 2, i / 3, i.saturating_sub(7)] {
            if k < i {
                let d = (format!("fx-crate-{k}"), "1.0.0".to_string());
                if !deps.contains(&d) {
                    deps.push(d);
                }
            }
        }
        for d in &deps {
            depended.insert(d.clone());
        }
        crates.push(FixtureCrate {
            name: name.clone(),
            version: "1.0.0".into(),
            deps,
            license: None,
        });
        if i % 10 == 0 {
            crates.push(FixtureCrate {
                name,
                version: "2.0.0".into(),
                deps: vec![],
                license: None,
            });
        }
    }
    let roots = crates
        .iter()
        .map(|c| (c.name.clone(), c.version.clone()))
        .filter(|k| !depended.contains(k))
        .collect();
    (crates, roots)
}

#[cfg(test)]
mod tests {

    #[test]
    fn crate_is_deterministic_and_indexed() {
        use super::*;
        let c = FixtureCrate::new("foo-bar", "1.0.0", &[("baz", "0.1.0")]);
        let a = build_crate(&c);
        let b = build_crate(&c);
        assert_eq!(a.bytes, b.bytes);
        assert_eq!(a.cksum, sha256_hex(&a.bytes));
        let v: serde_json::Value = serde_json::from_str(&a.index_line).unwrap();
        assert_eq!(v["cksum"], a.cksum.as_str());
        assert_eq!(v["deps"][0]["req"], "=0.1.0");
    }

    #[test]
    fn registry_and_workspace() {
        use super::*;
        let d = tempfile::tempdir().unwrap();
        let (graph, roots) = synthetic_graph(30);
        let built: Vec<BuiltCrate> = graph.iter().map(build_crate).collect();
        write_registry(
            &d.path().join("reg"),
            "http://127.0.0.1:1/crates/{crate}/{crate}-{version}.crate",
            &built,
        )
        .unwrap();
        assert!(d.path().join("reg/fx/-c/fx-crate-1").is_file());
        assert!(d
            .path()
            .join("reg/crates/fx-crate-1/fx-crate-1-1.0.0.crate")
            .is_file());
        let members = vec![
            FixtureMember {
                name: "app".into(),
                version: "0.1.0".into(),
                path: "app".into(),
                deps: roots,
                path_deps: vec!["lib".into()],
            },
            FixtureMember {
                name: "lib".into(),
                version: "0.2.0".into(),
                path: "libs/lib".into(),
                deps: vec![],
                path_deps: vec![],
            },
        ];
        write_workspace(&d.path().join("ws"), &members, &built).unwrap();
        let lock = fs::read_to_string(d.path().join("ws/Cargo.lock")).unwrap();
        assert_eq!(lock.matches("checksum = ").count(), built.len());
        assert_eq!(lock.matches("[[package]]").count(), built.len() + 2);
        assert_eq!(relative_path("app", "libs/lib"), "../libs/lib");
    }
}
