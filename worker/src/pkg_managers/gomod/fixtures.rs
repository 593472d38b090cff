//! Test support: build modules from in-memory source trees into proxy-compatible
//! `.zip` + `.mod` + `.info` files with their real `h1:` sums, write a static GOPROXY tree and
//! generate go.sum text. Used by end-to-end tests and benchmarks, so it avoids re-reading zips
//! (hashes are computed from the in-memory files) and stores entries uncompressed.

use super::dirhash::{hash_files, hash_gomod};
use common::gomod::{escape_path, escape_version, EscapeError};
use common::{Classify, ErrorKind};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("Fixture module {label} is invalid: {0}", label = .1)]
    Escape(#[source] EscapeError, String),
    #[error("Fixture module {label}: cannot build the zip: {reason}.")]
    Zip { label: String, reason: String },
    #[error("Cannot write the fixture proxy file {path}: {source}.")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for FixtureError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::FileAccessError
    }
}

/// A module source tree: files relative to the module root (include `go.mod` to have one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureModule {
    pub path: String,
    pub version: String,
    pub files: BTreeMap<String, Vec<u8>>,
    /// RFC 3339 time for the `.info` file.
    pub time: String,
}

impl FixtureModule {
    pub fn new(path: &str, version: &str) -> Self {
        Self {
            path: path.to_string(),
            version: version.to_string(),
            files: BTreeMap::new(),
            time: "2024-01-01T00:00:00Z".to_string(),
        }
    }
    pub fn file(mut self, name: &str, content: impl AsRef<[u8]>) -> Self {
        self.files
            .insert(name.to_string(), content.as_ref().to_vec());
        self
    }
    /// Adds `go.mod` with `module`, `go` and `require` lines.
    pub fn gomod(self, go: &str, requires: &[(&str, &str)]) -> Self {
        let mut t = format!("module {}\n\ngo {go}\n", self.path);
        if !requires.is_empty() {
            t.push_str("\nrequire (\n");
            for (p, v) in requires {
                t.push_str(&format!("\t{p} {v}\n"));
            }
            t.push_str(")\n");
        }
        let path = self.path.clone();
        let _ = path;
        self.file("go.mod", t)
    }
}

/// A built module: exact bytes a proxy serves plus the go.sum hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltModule {
    pub path: String,
    pub version: String,
    pub zip: Vec<u8>,
    pub gomod: Vec<u8>,
    pub info: Vec<u8>,
    /// zip hash (`<path> <version> h1:...`)
    pub h1: String,
    /// go.mod hash (`<path> <version>/go.mod h1:...`)
    pub gomod_h1: String,
}

impl BuiltModule {
    /// The two go.sum lines of this module.
    pub fn gosum_lines(&self) -> String {
        format!(
            "{p} {v} {h}\n{p} {v}/go.mod {g}\n",
            p = self.path,
            v = self.version,
            h = self.h1,
            g = self.gomod_h1
        )
    }
    /// Only the `/go.mod` line (module needed for the graph, no package built from it).
    pub fn gosum_gomod_line(&self) -> String {
        format!("{} {}/go.mod {}\n", self.path, self.version, self.gomod_h1)
    }
}

/// Build a module into proxy files. The `.mod` is the module's go.mod, or the synthetic
/// `module <path>\n` when it has none.
pub fn build_module(m: &FixtureModule) -> Result<BuiltModule, FixtureError> {
    let label = format!("{}@{}", m.path, m.version);
    escape_path(&m.path).map_err(|e| FixtureError::Escape(e, label.clone()))?;
    escape_version(&m.path, &m.version).map_err(|e| FixtureError::Escape(e, label.clone()))?;
    let zerr = |e: zip::result::ZipError| FixtureError::Zip {
        label: label.clone(),
        reason: e.to_string(),
    };
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o644);
    for (name, content) in &m.files {
        w.start_file(format!("{}/{}", label, name), opts)
            .map_err(zerr)?;
        w.write_all(content).map_err(|e| FixtureError::Zip {
            label: label.clone(),
            reason: e.to_string(),
        })?;
    }
    let zip = w.finish().map_err(zerr)?.into_inner();
    let gomod = m
        .files
        .get("go.mod")
        .cloned()
        .unwrap_or_else(|| format!("module {}\n", m.path).into_bytes());
    let info = format!("{{\"Version\":\"{}\",\"Time\":\"{}\"}}", m.version, m.time).into_bytes();
    let h1 = hash_files(
        &m.path,
        &m.version,
        m.files.iter().map(|(n, c)| (n.as_str(), c.as_slice())),
    );
    let gomod_h1 = hash_gomod(&gomod);
    Ok(BuiltModule {
        path: m.path.clone(),
        version: m.version.clone(),
        zip,
        gomod,
        info,
        h1,
        gomod_h1,
    })
}

/// Write a static GOPROXY tree (`<escaped module>/@v/{list,<v>.info,<v>.mod,<v>.zip}`).
pub fn write_proxy_tree(dir: &Path, modules: &[BuiltModule]) -> Result<(), FixtureError> {
    let io = |p: &Path, e: std::io::Error| FixtureError::Io {
        path: p.display().to_string(),
        source: e,
    };
    let mut lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in modules {
        let label = format!("{}@{}", m.path, m.version);
        let ep = escape_path(&m.path).map_err(|e| FixtureError::Escape(e, label.clone()))?;
        let ev = escape_version(&m.path, &m.version).map_err(|e| FixtureError::Escape(e, label))?;
        let vdir = dir.join(&ep).join("@v");
        std::fs::create_dir_all(&vdir).map_err(|e| io(&vdir, e))?;
        for (ext, bytes) in [("info", &m.info), ("mod", &m.gomod), ("zip", &m.zip)] {
            let p = vdir.join(format!("{ev}.{ext}"));
            std::fs::write(&p, bytes).map_err(|e| io(&p, e))?;
        }
        lists.entry(ep).or_default().push(m.version.clone());
    }
    for (ep, mut versions) in lists {
        let p = dir.join(&ep).join("@v").join("list");
        if let Ok(old) = std::fs::read_to_string(&p) {
            versions.extend(old.lines().map(str::to_string));
        }
        versions.sort_by(|a, b| common::gomod::compare_versions(a, b));
        versions.dedup();
        let mut text = versions.join("\n");
        text.push('\n');
        std::fs::write(&p, text).map_err(|e| io(&p, e))?;
    }
    Ok(())
}

/// go.sum text for `full` modules (zip + go.mod lines) and `gomod_only` modules (go.mod line).
pub fn gosum_text(full: &[&BuiltModule], gomod_only: &[&BuiltModule]) -> String {
    let mut lines = Vec::new();
    for m in full {
        lines.push(super::gosum::GoSumLine {
            module: m.path.clone(),
            version: m.version.clone(),
            is_gomod: false,
            h1: m.h1.clone(),
        });
    }
    for m in full.iter().chain(gomod_only.iter()) {
        lines.push(super::gosum::GoSumLine {
            module: m.path.clone(),
            version: m.version.clone(),
            is_gomod: true,
            h1: m.gomod_h1.clone(),
        });
    }
    super::gosum::format_go_sum(&lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_hashes_consistently() {
        let m = FixtureModule::new("example.com/Lib", "v1.0.0")
            .gomod("1.19", &[])
            .file("lib.go", "package lib\n");
        let b = build_module(&m).unwrap();
        let d = tempfile::tempdir().unwrap();
        write_proxy_tree(d.path(), std::slice::from_ref(&b)).unwrap();
        let zp = d.path().join("example.com/!lib/@v/v1.0.0.zip");
        let s = super::super::dirhash::validate_zip(&zp, "example.com/Lib", "v1.0.0").unwrap();
        assert_eq!(s.h1, b.h1);
        assert_eq!(
            std::fs::read_to_string(d.path().join("example.com/!lib/@v/list")).unwrap(),
            "v1.0.0\n"
        );
        assert!(b.gosum_lines().contains("/go.mod h1:"));
        let t = gosum_text(&[&b], &[]);
        assert!(super::super::gosum::parse_go_sum("go.sum", &t).is_ok());
    }

    #[test]
    fn synthetic_gomod() {
        let b = build_module(
            &FixtureModule::new("example.com/nogomod", "v1.0.0").file("a.go", "package a\n"),
        )
        .unwrap();
        assert_eq!(b.gomod, b"module example.com/nogomod\n");
    }

    #[test]
    fn rejects_bad_names() {
        assert!(build_module(&FixtureModule::new("../evil", "v1.0.0")).is_err());
    }
}
