//! pip test fixtures: real sdists and wheels built in-process, and a static simple index tree.
//! Self-contained: used by `tests/e2e/pip.rs`, `bench/pip.rs` and the worker's pip unit tests.
#![allow(dead_code)]
//!
//! Sdists carry a tiny in-tree PEP 517 backend (`backend-path = ["."]`, `requires = []`), so
//! pip 23.2 builds and installs them with no network and no setuptools.

use html_escape::encode_quoted_attribute as html_escape;
use sha2::Digest;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use common::pypi::normalize_name;

/// A distribution file written by the fixtures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureFile {
    pub name: String,
    pub version: String,
    pub filename: String,
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub requires_python: Option<String>,
}

fn set_header(h: &mut tar::Header, size: u64) {
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
}

/// Write a gzip-compressed tar with regular files (deterministic).
pub fn write_tar_gz(path: &Path, entries: &[(&str, &[u8])]) -> io::Result<()> {
    let f = std::fs::File::create(path)?;
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        set_header(&mut h, data.len() as u64);
        b.append_data(&mut h, name, *data)?;
    }
    b.into_inner()?.finish()?.flush()
}

/// Write a deflate zip with regular files.
pub fn write_zip(path: &Path, entries: &[(&str, &[u8])]) -> io::Result<()> {
    let f = std::fs::File::create(path)?;
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        z.start_file(*name, opts).map_err(io::Error::other)?;
        z.write_all(data)?;
    }
    z.finish().map_err(io::Error::other)?;
    Ok(())
}

fn b64_urlsafe_nopad(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

fn finish(path: PathBuf, name: &str, version: &str, rp: Option<&str>) -> io::Result<FixtureFile> {
    let data = std::fs::read(&path)?;
    Ok(FixtureFile {
        name: name.into(),
        version: version.into(),
        filename: path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sha256: sha256_hex(&data),
        size: data.len() as u64,
        path,
        requires_python: rp.map(str::to_string),
    })
}

/// `my_pkg` form used in wheel names and as the module name.
pub fn wheel_name(name: &str) -> String {
    normalize_name(name).replace('-', "_")
}

/// Core metadata (METADATA / PKG-INFO).
pub fn core_metadata(
    name: &str,
    version: &str,
    deps: &[&str],
    requires_python: Option<&str>,
) -> String {
    core_metadata_with(name, version, deps, requires_python, &[])
}

/// [`core_metadata`] with more headers (`("License-Expression", "MIT")`).
pub fn core_metadata_with(
    name: &str,
    version: &str,
    deps: &[&str],
    requires_python: Option<&str>,
    headers: &[(&str, &str)],
) -> String {
    let mut m = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
    if let Some(rp) = requires_python {
        m.push_str(&format!("Requires-Python: {rp}\n"));
    }
    for (key, value) in headers {
        m.push_str(&format!("{key}: {value}\n"));
    }
    for d in deps {
        m.push_str(&format!("Requires-Dist: {d}\n"));
    }
    m
}

fn module_source(name: &str, version: &str) -> String {
    format!(
        "__version__ = {}\nNAME = {}\n",
        serde_json::json!(version),
        serde_json::json!(name)
    )
}

const WHEEL_FILE: &str =
    "Wheel-Version: 1.0\nGenerator: larder-fixtures\nRoot-Is-Purelib: true\nTag: py3-none-any\n";

/// Build `<name>-<version>-py3-none-any.whl` in `dir` (valid METADATA, WHEEL, RECORD).
pub fn build_wheel(
    dir: &Path,
    name: &str,
    version: &str,
    deps: &[&str],
    requires_python: Option<&str>,
) -> io::Result<FixtureFile> {
    build_wheel_with(dir, name, version, deps, requires_python, &[])
}

/// [`build_wheel`] whose METADATA has more headers.
pub fn build_wheel_with(
    dir: &Path,
    name: &str,
    version: &str,
    deps: &[&str],
    requires_python: Option<&str>,
    headers: &[(&str, &str)],
) -> io::Result<FixtureFile> {
    let w = wheel_name(name);
    let di = format!("{w}-{version}.dist-info");
    let files: Vec<(String, Vec<u8>)> = vec![
        (
            format!("{w}/__init__.py"),
            module_source(name, version).into_bytes(),
        ),
        (
            format!("{di}/METADATA"),
            core_metadata_with(name, version, deps, requires_python, headers).into_bytes(),
        ),
        (format!("{di}/WHEEL"), WHEEL_FILE.as_bytes().to_vec()),
    ];
    let mut record = String::new();
    for (p, d) in &files {
        let h = b64_urlsafe_nopad(&sha2::Sha256::digest(d));
        record.push_str(&format!("{p},sha256={h},{}\n", d.len()));
    }
    record.push_str(&format!("{di}/RECORD,,\n"));
    let mut entries: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    let rec_path = format!("{di}/RECORD");
    entries.push((&rec_path, record.as_bytes()));
    let path = dir.join(format!("{w}-{version}-py3-none-any.whl"));
    write_zip(&path, &entries)?;
    finish(path, name, version, requires_python)
}

fn backend_source(name: &str, version: &str, metadata: &str) -> String {
    let w = wheel_name(name);
    format!(
        r#"# Minimal in-tree PEP 517 backend generated by larder fixtures (no dependencies).
import base64, hashlib, os, zipfile
DIST = {dist}
VERSION = {version}
METADATA = {metadata}
WHEEL = {wheel}

def get_requires_for_build_wheel(config_settings=None):
    return []

def get_requires_for_build_sdist(config_settings=None):
    return []

def _line(path, data):
    h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (path, h, len(data))

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    here = os.path.dirname(os.path.abspath(__file__))
    fn = "%s-%s-py3-none-any.whl" % (DIST, VERSION)
    di = "%s-%s.dist-info" % (DIST, VERSION)
    with open(os.path.join(here, DIST, "__init__.py"), "rb") as f:
        init = f.read()
    files = [(DIST + "/__init__.py", init), (di + "/METADATA", METADATA.encode()), (di + "/WHEEL", WHEEL.encode())]
    record = "".join(_line(p, d) + "\n" for p, d in files) + di + "/RECORD,,\n"
    with zipfile.ZipFile(os.path.join(wheel_directory, fn), "w") as z:
        for p, d in files:
            z.writestr(p, d)
        z.writestr(di + "/RECORD", record)
    return fn

def build_sdist(sdist_directory, config_settings=None):
    raise NotImplementedError("fixture sdists are prebuilt")
"#,
        dist = serde_json::json!(w),
        version = serde_json::json!(version),
        metadata = serde_json::json!(metadata),
        wheel = serde_json::json!(WHEEL_FILE),
    )
}

/// Build `<name>-<version>.tar.gz` in `dir`: PKG-INFO, pyproject.toml with an in-tree backend,
/// the module. `pip install` builds it offline.
pub fn build_sdist(
    dir: &Path,
    name: &str,
    version: &str,
    deps: &[&str],
    requires_python: Option<&str>,
) -> io::Result<FixtureFile> {
    build_sdist_with(dir, name, version, deps, requires_python, &[])
}

/// [`build_sdist`] whose PKG-INFO (and built wheel's METADATA) has more headers.
pub fn build_sdist_with(
    dir: &Path,
    name: &str,
    version: &str,
    deps: &[&str],
    requires_python: Option<&str>,
    headers: &[(&str, &str)],
) -> io::Result<FixtureFile> {
    let w = wheel_name(name);
    let top = format!("{w}-{version}");
    let metadata = core_metadata_with(name, version, deps, requires_python, headers);
    let pyproject = format!(
        "[build-system]\nrequires = []\nbuild-backend = \"larder_fixture_backend\"\nbackend-path = [\".\"]\n\n[project]\nname = {}\nversion = {}\n",
        serde_json::json!(name),
        serde_json::json!(version)
    );
    let backend = backend_source(name, version, &metadata);
    let module = module_source(name, version);
    let entries: Vec<(String, Vec<u8>)> = vec![
        (format!("{top}/PKG-INFO"), metadata.clone().into_bytes()),
        (format!("{top}/pyproject.toml"), pyproject.into_bytes()),
        (
            format!("{top}/larder_fixture_backend.py"),
            backend.into_bytes(),
        ),
        (format!("{top}/{w}/__init__.py"), module.into_bytes()),
    ];
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    let path = dir.join(format!("{top}.tar.gz"));
    write_tar_gz(&path, &refs)?;
    finish(path, name, version, requires_python)
}

/// Write a static simple index under `root`: `files/<normalized>/<filename>` (copies),
/// `simple/index.html`, `simple/<normalized>/index.html` (PEP 503, relative hrefs with
/// `#sha256=`) and `simple/<normalized>/index.json` (PEP 691, for parsers).
pub fn write_simple_index(root: &Path, files: &[FixtureFile]) -> io::Result<()> {
    let mut by_name: std::collections::BTreeMap<String, Vec<&FixtureFile>> = Default::default();
    for f in files {
        by_name.entry(normalize_name(&f.name)).or_default().push(f);
    }
    let simple = root.join("simple");
    std::fs::create_dir_all(&simple)?;
    let mut rootpage = String::from("<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.0\"></head><body>\n");
    for (n, list) in &by_name {
        rootpage.push_str(&format!("<a href=\"{n}/\">{n}</a>\n"));
        let fdir = root.join("files").join(n);
        std::fs::create_dir_all(&fdir)?;
        let pdir = simple.join(n);
        std::fs::create_dir_all(&pdir)?;
        let mut html = format!("<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.0\"><title>Links for {n}</title></head><body>\n");
        let mut jfiles = Vec::new();
        for f in list {
            std::fs::copy(&f.path, fdir.join(&f.filename))?;
            let rp = f
                .requires_python
                .as_ref()
                .map(|r| format!(" data-requires-python=\"{}\"", html_escape(r)))
                .unwrap_or_default();
            html.push_str(&format!(
                "<a href=\"../../files/{n}/{fname}#sha256={sha}\"{rp}>{fname}</a><br/>\n",
                fname = html_escape(&f.filename),
                sha = f.sha256
            ));
            jfiles.push(serde_json::json!({
                "filename": f.filename,
                "url": format!("../../files/{n}/{}", f.filename),
                "hashes": {"sha256": f.sha256},
                "requires-python": f.requires_python,
                "size": f.size,
                "yanked": false,
            }));
        }
        html.push_str("</body></html>\n");
        std::fs::write(pdir.join("index.html"), html)?;
        let json = serde_json::json!({"meta": {"api-version": "1.1"}, "name": n, "files": jfiles});
        std::fs::write(pdir.join("index.json"), serde_json::to_vec_pretty(&json)?)?;
    }
    rootpage.push_str("</body></html>\n");
    std::fs::write(simple.join("index.html"), rootpage)
}

/// A benchmark project: `n` packages `bench-pkg-<i>` 1.0.<i> (sdists; with `wheels` also a
/// wheel each) written to `dir`, and a fully hashed requirements.txt text pinning all of them.
pub fn benchmark_set(dir: &Path, n: usize, wheels: bool) -> io::Result<(Vec<FixtureFile>, String)> {
    let mut files = Vec::with_capacity(n * 2);
    let mut req = String::from("# generated benchmark requirements\n");
    for i in 0..n {
        let name = format!("bench-pkg-{i}");
        let version = format!("1.0.{i}");
        let s = build_sdist(dir, &name, &version, &[], None)?;
        req.push_str(&format!(
            "{name}=={version} \\\n    --hash=sha256:{}",
            s.sha256
        ));
        files.push(s);
        if wheels {
            let w = build_wheel(dir, &name, &version, &[], None)?;
            req.push_str(&format!(" \\\n    --hash=sha256:{}", w.sha256));
            files.push(w);
        }
        req.push('\n');
    }
    Ok((files, req))
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64() {
        assert_eq!(super::b64_urlsafe_nopad(b""), "");
        assert_eq!(super::b64_urlsafe_nopad(b"f"), "Zg");
        assert_eq!(super::b64_urlsafe_nopad(b"fo"), "Zm8");
        assert_eq!(super::b64_urlsafe_nopad(b"foo"), "Zm9v");
        assert_eq!(super::b64_urlsafe_nopad(&[0xfb, 0xff]), "-_8");
    }
}
