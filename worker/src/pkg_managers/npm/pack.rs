//! Turn a checked-out git dependency into the tarball npm would publish: `package/` prefix,
//! package.json `files`, root `.npmignore` (else `.gitignore`) basics, npm's always-included and
//! always-excluded files; deterministic (sorted, fixed mtime, uid/gid 0) so the same commit always
//! gives the same bytes and integrity. Never runs scripts: packages with `prepare`/`prepack`
//! scripts are rejected, as Cachito does.

use crate::pkg_managers::npm::integrity::digests_of;
use common::digest::FileDigests;
use common::{Classify, ErrorKind};
use std::fs;
use std::io::Write;
use std::path::Path;

/// npm's fixed tar mtime (1985-10-26T08:15:00Z).
pub const NPM_MTIME: u64 = 499_162_500;
pub const MAX_PACK_FILE_BYTES: u64 = 256 * 1024 * 1024;
pub const MAX_PACK_TOTAL_BYTES: u64 = 1024 * 1024 * 1024;
pub const MAX_PACK_FILES: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("The git dependency {label} has no package.json at its root")]
    NoPackageJson { label: String },
    #[error("The package.json of the git dependency {label} is invalid: {reason}")]
    BadPackageJson { label: String, reason: String },
    #[error("The git dependency {label} declares a \"{script}\" script; git dependencies that need build scripts are not supported (scripts are never run)")]
    Script { label: String, script: String },
    #[error("The git dependency {label} is too large to pack ({reason})")]
    TooLarge { label: String, reason: String },
    #[error("Could not pack the git dependency {label}: {reason}")]
    Io { label: String, reason: String },
}

impl Classify for PackError {
    fn kind(&self) -> ErrorKind {
        match self {
            PackError::Io { .. } => ErrorKind::FileAccessError,
            PackError::Script { .. } => ErrorKind::UnsupportedFeature,
            PackError::NoPackageJson { .. }
            | PackError::BadPackageJson { .. }
            | PackError::TooLarge { .. } => ErrorKind::InvalidRepoStructure,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Packed {
    pub name: String,
    pub version: String,
    pub bytes: Vec<u8>,
    pub digests: FileDigests,
    /// relative paths packed (below `package/`), sorted
    pub files: Vec<String>,
}

/// One tar member for [`write_tgz`].
pub struct TgzEntry<'a> {
    pub path: String,
    pub data: &'a [u8],
    pub executable: bool,
}

/// Deterministic npm-style `.tgz` (entries taken in the given order).
pub fn write_tgz(entries: &[TgzEntry<'_>]) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    let mut b = tar::Builder::new(gz);
    b.mode(tar::HeaderMode::Deterministic);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(e.data.len() as u64);
        h.set_mode(if e.executable { 0o755 } else { 0o644 });
        h.set_mtime(NPM_MTIME);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, &e.path, e.data)?;
    }
    let gz = b.into_inner()?;
    let mut out = gz.finish()?;
    out.flush()?;
    Ok(out)
}

/// A minimal gitignore-style pattern.
#[derive(Clone, Debug)]
struct Rule {
    neg: bool,
    dir_only: bool,
    anchored: bool,
    pat: String,
}

fn parse_rules(text: &str) -> Vec<Rule> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_end();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let (neg, l) = match l.strip_prefix('!') {
                Some(r) => (true, r),
                None => (false, l),
            };
            let dir_only = l.ends_with('/');
            let l = l.trim_end_matches('/');
            let anchored = l.starts_with('/') || l.trim_start_matches('/').contains('/');
            let pat = l.trim_start_matches('/').to_string();
            (!pat.is_empty()).then_some(Rule {
                neg,
                dir_only,
                anchored,
                pat,
            })
        })
        .collect()
}

/// Glob match of `*`, `?`, `**` over a `/`-separated path.
pub fn glob(pat: &str, path: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        if p.is_empty() {
            return s.is_empty();
        }
        if p.starts_with(b"**") {
            let rest = &p[2..];
            let rest = rest.strip_prefix(b"/").unwrap_or(rest);
            // ** matches any number of segments
            if m(rest, s) {
                return true;
            }
            for i in 0..s.len() {
                if s[i] == b'/' && m(rest, &s[i + 1..]) {
                    return true;
                }
            }
            return m(rest, b"") && s.is_empty();
        }
        match p[0] {
            b'*' => {
                for i in 0..=s.len() {
                    if i > 0 && s[i - 1] == b'/' {
                        break;
                    }
                    if m(&p[1..], &s[i..]) {
                        return true;
                    }
                }
                false
            }
            b'?' => !s.is_empty() && s[0] != b'/' && m(&p[1..], &s[1..]),
            c => !s.is_empty() && s[0] == c && m(&p[1..], &s[1..]),
        }
    }
    m(pat.as_bytes(), path.as_bytes())
}

/// Does the rule match `path` (file) or one of its parent directories?
fn rule_matches(r: &Rule, path: &str) -> bool {
    let segs: Vec<&str> = path.split('/').collect();
    for end in 1..=segs.len() {
        let is_dir = end < segs.len();
        if r.dir_only && !is_dir {
            continue;
        }
        let prefix = segs[..end].join("/");
        let hit = if r.anchored {
            glob(&r.pat, &prefix)
        } else {
            glob(&r.pat, segs[end - 1])
        };
        if hit {
            return true;
        }
    }
    false
}

fn ignored(rules: &[Rule], path: &str) -> bool {
    let mut ign = false;
    for r in rules {
        if rule_matches(r, path) {
            ign = !r.neg;
        }
    }
    ign
}

fn always_excluded(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    let segs: Vec<&str> = path.split('/').collect();
    if segs
        .iter()
        .any(|s| matches!(*s, ".git" | ".svn" | ".hg" | "CVS" | "node_modules"))
    {
        return true;
    }
    matches!(
        base,
        ".npmrc" | ".DS_Store" | "npm-debug.log" | ".npmignore" | ".gitignore" | ".lock-wscript"
    ) || base.starts_with("._")
        || (base.starts_with('.') && base.ends_with(".swp"))
        || base.ends_with(".orig")
        || matches!(
            path,
            "package-lock.json" | "yarn.lock" | "pnpm-lock.yaml" | "build/config.gypi"
        )
}

fn always_included(path: &str) -> bool {
    if path.contains('/') {
        return false;
    }
    let up = path.to_ascii_uppercase();
    path == "package.json"
        || up.starts_with("README")
        || up.starts_with("LICENSE")
        || up.starts_with("LICENCE")
        || up.starts_with("COPYING")
}

fn walk(root: &Path, rel: &str, out: &mut Vec<String>, label: &str) -> Result<(), PackError> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let rd = fs::read_dir(&dir).map_err(|e| PackError::Io {
        label: label.into(),
        reason: e.to_string(),
    })?;
    let mut names: Vec<_> = rd.filter_map(|e| e.ok()).collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let ft = e.file_type().map_err(|e| PackError::Io {
            label: label.into(),
            reason: e.to_string(),
        })?;
        if ft.is_symlink() {
            continue; // npm does not pack symlinks
        }
        if ft.is_dir() {
            if matches!(name.as_str(), ".git" | "node_modules") {
                continue;
            }
            walk(root, &p, out, label)?;
        } else if ft.is_file() {
            out.push(p);
            if out.len() > MAX_PACK_FILES {
                return Err(PackError::TooLarge {
                    label: label.into(),
                    reason: "too many files".into(),
                });
            }
        }
    }
    Ok(())
}

/// Pack a checked-out directory. `label` names the dependency in errors
/// (e.g. "foo@git+https://github.com/u/r.git#<sha>").
pub fn pack_dir(dir: &Path, label: &str) -> Result<Packed, PackError> {
    let pj_path = dir.join("package.json");
    let meta = fs::symlink_metadata(&pj_path).map_err(|_| PackError::NoPackageJson {
        label: label.into(),
    })?;
    if !meta.is_file() || meta.len() > 16 * 1024 * 1024 {
        return Err(PackError::NoPackageJson {
            label: label.into(),
        });
    }
    let pj_bytes = fs::read(&pj_path).map_err(|e| PackError::Io {
        label: label.into(),
        reason: e.to_string(),
    })?;
    let pj: serde_json::Value =
        serde_json::from_slice(&pj_bytes).map_err(|e| PackError::BadPackageJson {
            label: label.into(),
            reason: e.to_string(),
        })?;
    let name = pj
        .get("name")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let version = pj
        .get("version")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    if name.is_empty() || version.is_empty() {
        return Err(PackError::BadPackageJson {
            label: label.into(),
            reason: "\"name\" and \"version\" are required".into(),
        });
    }
    if let Some(scripts) = pj.get("scripts").and_then(|s| s.as_object()) {
        for s in ["prepare", "prepack"] {
            if scripts.contains_key(s) {
                return Err(PackError::Script {
                    label: label.into(),
                    script: s.into(),
                });
            }
        }
    }
    let files_field: Option<Vec<String>> = pj.get("files").and_then(|f| f.as_array()).map(|a| {
        a.iter()
            .filter_map(|x| x.as_str())
            .map(|s| s.trim_start_matches("./").trim_end_matches('/').to_string())
            .collect()
    });
    let mut extra_included: Vec<String> = Vec::new();
    if let Some(m) = pj.get("main").and_then(|v| v.as_str()) {
        extra_included.push(m.trim_start_matches("./").to_string());
    }
    match pj.get("bin") {
        Some(serde_json::Value::String(s)) => {
            extra_included.push(s.trim_start_matches("./").to_string())
        }
        Some(serde_json::Value::Object(o)) => extra_included.extend(
            o.values()
                .filter_map(|v| v.as_str())
                .map(|s| s.trim_start_matches("./").to_string()),
        ),
        _ => {}
    }
    let ignore_text = fs::read_to_string(dir.join(".npmignore"))
        .or_else(|_| fs::read_to_string(dir.join(".gitignore")))
        .unwrap_or_default();
    let rules = parse_rules(&ignore_text);
    let mut all = Vec::new();
    walk(dir, "", &mut all, label)?;
    let mut chosen = Vec::new();
    for p in all {
        if always_included(&p) || extra_included.contains(&p) {
            chosen.push(p);
            continue;
        }
        if always_excluded(&p) {
            continue;
        }
        let listed = match &files_field {
            Some(globs) => globs.iter().any(|g| {
                let segs: Vec<&str> = p.split('/').collect();
                (1..=segs.len()).any(|end| glob(g, &segs[..end].join("/")))
            }),
            None => true,
        };
        if listed && (files_field.is_some() || !ignored(&rules, &p)) {
            chosen.push(p);
        }
    }
    chosen.sort();
    chosen.dedup();
    let mut total = 0u64;
    let mut datas = Vec::with_capacity(chosen.len());
    for p in &chosen {
        let full = dir.join(p);
        let m = fs::metadata(&full).map_err(|e| PackError::Io {
            label: label.into(),
            reason: e.to_string(),
        })?;
        if m.len() > MAX_PACK_FILE_BYTES {
            return Err(PackError::TooLarge {
                label: label.into(),
                reason: format!("{p} is {} bytes", m.len()),
            });
        }
        total += m.len();
        if total > MAX_PACK_TOTAL_BYTES {
            return Err(PackError::TooLarge {
                label: label.into(),
                reason: "more than 1 GiB".into(),
            });
        }
        use std::os::unix::fs::PermissionsExt;
        let exec = m.permissions().mode() & 0o111 != 0;
        let d = fs::read(&full).map_err(|e| PackError::Io {
            label: label.into(),
            reason: e.to_string(),
        })?;
        datas.push((format!("package/{p}"), d, exec));
    }
    let entries: Vec<TgzEntry<'_>> = datas
        .iter()
        .map(|(p, d, x)| TgzEntry {
            path: p.clone(),
            data: d,
            executable: *x,
        })
        .collect();
    let bytes = write_tgz(&entries).map_err(|e| PackError::Io {
        label: label.into(),
        reason: e.to_string(),
    })?;
    Ok(Packed {
        name,
        version,
        digests: digests_of(&bytes),
        bytes,
        files: chosen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(dir: &Path, files: &[(&str, &str)]) {
        for (p, c) in files {
            let f = dir.join(p);
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            fs::write(f, c).unwrap();
        }
    }

    #[test]
    fn globbing() {
        assert!(glob("*.js", "a.js"));
        assert!(!glob("*.js", "d/a.js"));
        assert!(glob("**/*.js", "d/e/a.js"));
        assert!(glob("**/*.js", "a.js"));
        assert!(glob("lib", "lib"));
        assert!(glob("l?b", "lib"));
        assert!(!glob("lib", "libx"));
    }

    #[test]
    fn files_field_and_defaults() {
        let t = tempfile::tempdir().unwrap();
        mk(
            t.path(),
            &[
                (
                    "package.json",
                    r#"{"name":"g","version":"1.0.0","files":["lib","*.d.ts"],"main":"main.js"}"#,
                ),
                ("README.md", "r"),
                ("LICENSE", "l"),
                ("lib/a.js", "a"),
                ("lib/sub/b.js", "b"),
                ("x.d.ts", "t"),
                ("src/c.js", "c"),
                ("main.js", "m"),
                (".git/HEAD", "h"),
                ("node_modules/z/index.js", "z"),
                ("lib/.npmrc", "secret"),
            ],
        );
        let p = pack_dir(t.path(), "g@git").unwrap();
        assert_eq!(
            p.files,
            vec![
                "LICENSE",
                "README.md",
                "lib/a.js",
                "lib/sub/b.js",
                "main.js",
                "package.json",
                "x.d.ts"
            ]
        );
        let p2 = pack_dir(t.path(), "g@git").unwrap();
        assert_eq!(p.bytes, p2.bytes, "deterministic");
        assert_eq!(p.digests.size, p.bytes.len() as u64);
        let m =
            crate::pkg_managers::npm::layout::read_manifest_from_tgz_bytes(&p.bytes, "g").unwrap();
        assert_eq!(m["name"], "g");
    }

    #[test]
    fn npmignore() {
        let t = tempfile::tempdir().unwrap();
        mk(
            t.path(),
            &[
                ("package.json", r#"{"name":"g","version":"1.0.0"}"#),
                (".npmignore", "test/\n*.log\n!keep.log\n/root.txt\n"),
                (".gitignore", "lib\n"),
                ("lib/a.js", "a"),
                ("test/t.js", "t"),
                ("x.log", "x"),
                ("keep.log", "k"),
                ("root.txt", "r"),
                ("d/root.txt", "r"),
                ("package-lock.json", "{}"),
            ],
        );
        let p = pack_dir(t.path(), "g").unwrap();
        assert_eq!(
            p.files,
            vec!["d/root.txt", "keep.log", "lib/a.js", "package.json"]
        );
    }

    #[test]
    fn rejects_scripts_and_missing() {
        let t = tempfile::tempdir().unwrap();
        assert!(matches!(
            pack_dir(t.path(), "g").unwrap_err(),
            PackError::NoPackageJson { .. }
        ));
        mk(t.path(), &[("package.json", "{")]);
        assert!(matches!(
            pack_dir(t.path(), "g").unwrap_err(),
            PackError::BadPackageJson { .. }
        ));
        mk(
            t.path(),
            &[(
                "package.json",
                r#"{"name":"g","version":"1.0.0","scripts":{"prepare":"tsc"}}"#,
            )],
        );
        let e = pack_dir(t.path(), "g@git+https://h/u/r#abc").unwrap_err();
        assert!(e.to_string().contains("\"prepare\""));
        assert!(e.to_string().contains("g@git+https://h/u/r#abc"));
        assert_eq!(e.kind(), ErrorKind::UnsupportedFeature);
    }

    #[test]
    fn symlinks_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        fs::write(out.path().join("secret"), "s").unwrap();
        mk(
            t.path(),
            &[("package.json", r#"{"name":"g","version":"1.0.0"}"#)],
        );
        std::os::unix::fs::symlink(out.path().join("secret"), t.path().join("leak")).unwrap();
        std::os::unix::fs::symlink(out.path(), t.path().join("leakdir")).unwrap();
        assert_eq!(pack_dir(t.path(), "g").unwrap().files, vec!["package.json"]);
    }
}
