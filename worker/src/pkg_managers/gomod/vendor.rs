//! `vendor/modules.txt`: parser, consistency check against go.mod (cmd/go modload/vendor.go
//! rules for go >= 1.14) and a generator writing `vendor/` from module zips / local directories.

use super::gomod_file::{parse_go_mod, parse_go_version, GoMod, ReplaceTarget};
use common::gomod::{check_file_path, check_module_path};
use common::{Classify, ErrorKind};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Cachito's exact message for an inconsistent vendor directory.
pub const INCONSISTENT_MESSAGE: &str = "The content of the vendor directory is not consistent with go.mod. Run `go mod vendor` locally to fix this problem. See the logs for more details.";
/// Cachito's exact strict-vendor message.
pub const STRICT_VENDOR_MESSAGE: &str = "The \"gomod-vendor\" or \"gomod-vendor-check\" flag must be set when your repository has vendored dependencies.";

#[derive(Debug, thiserror::Error)]
pub enum VendorError {
    #[error("The \"gomod-vendor\" or \"gomod-vendor-check\" flag must be set when your repository has vendored dependencies.")]
    StrictVendor,
    #[error("The content of the vendor directory is not consistent with go.mod. Run `go mod vendor` locally to fix this problem. Details: {}", details.join("; "))]
    Inconsistent { details: Vec<String> },
    #[error("{file}:{line}: malformed vendor/modules.txt line: {reason}.")]
    Malformed {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("Cannot vendor {module}: {reason}.")]
    Source { module: String, reason: String },
    #[error("Cannot write the vendor directory ({path}): {source}.")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for VendorError {
    fn kind(&self) -> ErrorKind {
        match self {
            VendorError::StrictVendor
            | VendorError::Inconsistent { .. }
            | VendorError::Malformed { .. } => ErrorKind::ValidationError,
            VendorError::Source { .. } => ErrorKind::ValidationError,
            VendorError::Io { .. } => ErrorKind::FileAccessError,
        }
    }

    // Cachito's exact texts; the details are in Display (for logs).
    fn message(&self) -> String {
        match self {
            VendorError::StrictVendor => STRICT_VENDOR_MESSAGE.into(),
            VendorError::Inconsistent { .. } => INCONSISTENT_MESSAGE.into(),
            _ => self.to_string(),
        }
    }
}

/// `(path, version)`; version "" = wildcard / directory.
pub type ModVersion = (String, String);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VendorMeta {
    pub explicit: bool,
    pub go_version: Option<String>,
    /// replacement (path, version or "" for a directory)
    pub replacement: Option<ModVersion>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModulesTxt {
    /// modules providing at least one package, in file order
    pub list: Vec<ModVersion>,
    pub meta: BTreeMap<ModVersion, VendorMeta>,
    /// modules marked replaced (incl. wildcard lines)
    pub replaced: Vec<ModVersion>,
    /// package import path -> providing module
    pub packages: BTreeMap<String, ModVersion>,
}

fn looks_like_version(v: &str) -> bool {
    v.starts_with('v') && v[1..].starts_with(|c: char| c.is_ascii_digit())
}

/// Parse vendor/modules.txt as cmd/go's readVendorList does.
pub fn parse_modules_txt(file: &str, text: &str) -> Result<ModulesTxt, VendorError> {
    let mut out = ModulesTxt::default();
    let mut cur: Option<ModVersion> = None;
    for (idx, line) in text.lines().enumerate() {
        let bad = |reason: &str| VendorError::Malformed {
            file: file.to_string(),
            line: idx + 1,
            reason: reason.to_string(),
        };
        if let Some(rest) = line.strip_prefix("# ") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.is_empty() {
                return Err(bad("empty module line"));
            }
            let (m, tail) = if f.len() >= 2 && looks_like_version(f[1]) {
                ((f[0].to_string(), f[1].to_string()), &f[2..])
            } else {
                ((f[0].to_string(), String::new()), &f[1..])
            };
            let entry = out.meta.entry(m.clone()).or_default();
            if tail.len() >= 2 && tail[0] == "=>" {
                let r = match tail.len() {
                    2 => (tail[1].to_string(), String::new()),
                    3 => (tail[1].to_string(), tail[2].to_string()),
                    _ => return Err(bad("expected \"=> path [version]\"")),
                };
                entry.replacement = Some(r);
                out.replaced.push(m.clone());
            } else if !tail.is_empty() {
                return Err(bad("unexpected text after the module version"));
            }
            cur = Some(m);
            continue;
        }
        if let Some(ann) = line.strip_prefix("## ") {
            let Some(m) = &cur else {
                return Err(bad("annotation before any module line"));
            };
            let meta = out.meta.entry(m.clone()).or_default();
            for a in ann.split(';') {
                let a = a.trim();
                if a == "explicit" {
                    meta.explicit = true;
                } else if let Some(g) = a.strip_prefix("go ") {
                    meta.go_version = Some(g.trim().to_string());
                }
            }
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 1 && !line.starts_with('#') {
            match &cur {
                Some(m) if !m.1.is_empty() => {
                    // like cmd/go: only modules providing packages are in the vendor list
                    if !out.list.contains(m) {
                        out.list.push(m.clone());
                    }
                    out.packages.insert(f[0].to_string(), m.clone());
                }
                _ => return Err(bad("package listed outside a versioned module block")),
            }
        }
    }
    Ok(out)
}

fn describe(m: &ModVersion) -> String {
    if m.1.is_empty() {
        m.0.clone()
    } else {
        format!("{} {}", m.0, m.1)
    }
}

fn at(m: &ModVersion) -> String {
    if m.1.is_empty() {
        m.0.clone()
    } else {
        format!("{}@{}", m.0, m.1)
    }
}

fn target_of(t: &ReplaceTarget) -> ModVersion {
    match t {
        ReplaceTarget::Module { path, version } => (path.clone(), version.clone()),
        ReplaceTarget::Local { path } => (path.clone(), String::new()),
    }
}

/// The go command's vendor consistency check (go >= 1.14 main modules; older main modules only
/// get the replacement checks, as the go command is lenient there).
pub fn check_consistency(gomod: &GoMod, mt: &ModulesTxt) -> Result<(), VendorError> {
    let mut errs = Vec::new();
    let pre114 = gomod.go_version() < (1, 14);
    let require: BTreeSet<ModVersion> = gomod
        .require
        .iter()
        .map(|r| (r.path.clone(), r.version.clone()))
        .collect();
    if !pre114 {
        for r in &require {
            if !mt.meta.get(r).map(|m| m.explicit).unwrap_or(false) {
                errs.push(format!(
                    "{}: is explicitly required in go.mod, but not marked as explicit in vendor/modules.txt",
                    at(r)
                ));
            }
        }
    }
    for r in &gomod.replace {
        let old = (
            r.old_path.clone(),
            r.old_version.clone().unwrap_or_default(),
        );
        let new = target_of(&r.new);
        match mt.meta.get(&old).and_then(|m| m.replacement.clone()) {
            None if !pre114 => errs.push(format!(
                "{}: is replaced in go.mod, but not marked as replaced in vendor/modules.txt",
                at(&old)
            )),
            None => {}
            Some(vr) if vr != new => errs.push(format!(
                "{}: is replaced by {} in go.mod, but marked as replaced by {} in vendor/modules.txt",
                at(&old),
                describe(&new),
                describe(&vr)
            )),
            _ => {}
        }
    }
    for m in &mt.list {
        if mt.meta.get(m).map(|x| x.explicit).unwrap_or(false) && !require.contains(m) {
            errs.push(format!(
                "{}: is marked as explicit in vendor/modules.txt, but not explicitly required in go.mod",
                at(m)
            ));
        }
    }
    for m in &mt.replaced {
        let meta_r = mt.meta.get(m).and_then(|x| x.replacement.clone());
        let gomod_r = if m.1.is_empty() {
            gomod
                .replace
                .iter()
                .find(|r| r.old_path == m.0 && r.old_version.is_none())
        } else {
            gomod.replacement_for(&m.0, &m.1)
        };
        match gomod_r {
            None => errs.push(format!(
                "{}: is marked as replaced in vendor/modules.txt, but not replaced in go.mod",
                at(m)
            )),
            Some(r) => {
                let t = target_of(&r.new);
                if Some(&t) != meta_r.as_ref() {
                    errs.push(format!(
                        "{}: is marked as replaced by {} in vendor/modules.txt, but replaced by {} in go.mod",
                        at(m),
                        meta_r.as_ref().map(describe).unwrap_or_default(),
                        describe(&t)
                    ));
                }
            }
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        errs.dedup();
        Err(VendorError::Inconsistent { details: errs })
    }
}

/// Where a vendored module's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorSource {
    /// A validated module zip with entries under `<zip_module>@<zip_version>/`.
    Zip {
        path: PathBuf,
        module: String,
        version: String,
    },
    /// A local replacement directory (already checked to be inside the repository).
    Dir(PathBuf),
    /// Nothing to copy (module only needed for the graph: no zip line in go.sum).
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorInput {
    /// module path and version as required in go.mod
    pub path: String,
    pub version: String,
    /// required in go.mod (`## explicit`)
    pub explicit: bool,
    pub source: VendorSource,
}

fn skip_dir_elem(e: &str) -> bool {
    e == "testdata" || e == "vendor" || e.starts_with('_') || e.starts_with('.')
}

fn wanted_file(name: &str) -> bool {
    !name.ends_with("_test.go") && name != "go.mod" && name != "go.sum"
}

/// Files of a module: relative path -> how to read it.
enum FileSet {
    Zip(zip::ZipArchive<BufReader<File>>, BTreeMap<String, usize>),
    Dir(PathBuf, BTreeSet<String>),
}

fn walk_dir(root: &Path, rel: &str, out: &mut BTreeSet<String>) -> Result<(), VendorError> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let rd = std::fs::read_dir(&dir).map_err(|e| VendorError::Io {
        path: dir.display().to_string(),
        source: e,
    })?;
    for ent in rd {
        let ent = ent.map_err(|e| VendorError::Io {
            path: dir.display().to_string(),
            source: e,
        })?;
        let name = ent.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let ft = ent.file_type().map_err(|e| VendorError::Io {
            path: child.clone(),
            source: e,
        })?;
        if ft.is_symlink() {
            continue; // never follow links out of the local module
        }
        if ft.is_dir() {
            if skip_dir_elem(&name) || ent.path().join("go.mod").exists() {
                continue;
            }
            walk_dir(root, &child, out)?;
        } else if ft.is_file() && check_file_path(&child).is_ok() {
            out.insert(child);
        }
    }
    Ok(())
}

fn open_source(input: &VendorInput) -> Result<Option<FileSet>, VendorError> {
    match &input.source {
        VendorSource::None => Ok(None),
        VendorSource::Dir(d) => {
            let mut files = BTreeSet::new();
            walk_dir(d, "", &mut files)?;
            Ok(Some(FileSet::Dir(d.clone(), files)))
        }
        VendorSource::Zip {
            path,
            module,
            version,
        } => {
            let src = |reason: String| VendorError::Source {
                module: format!("{}@{}", input.path, input.version),
                reason,
            };
            let f = File::open(path)
                .map_err(|e| src(format!("cannot open {}: {e}", path.display())))?;
            let mut z = zip::ZipArchive::new(BufReader::new(f)).map_err(|e| src(e.to_string()))?;
            let prefix = format!("{module}@{version}/");
            let mut idx = BTreeMap::new();
            for i in 0..z.len() {
                let e = z.by_index_raw(i).map_err(|e| src(e.to_string()))?;
                let name = String::from_utf8_lossy(e.name_raw()).into_owned();
                if e.is_dir() {
                    continue;
                }
                let Some(rel) = name.strip_prefix(&prefix) else {
                    return Err(src(format!("zip entry {name:?} is outside {prefix:?}")));
                };
                check_file_path(rel).map_err(|e| src(e.to_string()))?;
                if e.is_symlink() {
                    return Err(src(format!("zip entry {name:?} is a symbolic link")));
                }
                idx.insert(rel.to_string(), i);
            }
            Ok(Some(FileSet::Zip(z, idx)))
        }
    }
}

impl FileSet {
    fn names(&self) -> Vec<String> {
        match self {
            FileSet::Zip(_, idx) => idx.keys().cloned().collect(),
            FileSet::Dir(_, s) => s.iter().cloned().collect(),
        }
    }
    fn read_small(&mut self, rel: &str) -> Option<Vec<u8>> {
        use std::io::Read;
        match self {
            FileSet::Zip(z, idx) => {
                let i = *idx.get(rel)?;
                let f = z.by_index(i).ok()?;
                let mut v = Vec::new();
                f.take(16 << 20).read_to_end(&mut v).ok()?;
                Some(v)
            }
            FileSet::Dir(root, s) => {
                if !s.contains(rel) {
                    return None;
                }
                std::fs::read(root.join(rel)).ok()
            }
        }
    }
    fn copy_to(&mut self, rel: &str, dest: &Path) -> Result<(), VendorError> {
        let io = |e: std::io::Error| VendorError::Io {
            path: dest.display().to_string(),
            source: e,
        };
        match self {
            FileSet::Zip(z, idx) => {
                let Some(i) = idx.get(rel).copied() else {
                    return Ok(());
                };
                let mut f = z.by_index(i).map_err(|e| io(std::io::Error::other(e)))?;
                let mut out = File::create(dest).map_err(io)?;
                std::io::copy(&mut f, &mut out).map_err(io)?;
            }
            FileSet::Dir(root, _) => {
                std::fs::copy(root.join(rel), dest).map_err(io)?;
            }
        }
        Ok(())
    }
}

/// Write `<module_dir>/vendor/` for `gomod` (the main module's go.mod) from `inputs` (one per
/// go.mod `require`) and return the modules.txt text. Every package of each module is vendored
/// (directories holding non-test `.go` files, skipping `testdata`, `vendor`, `_*`, `.*` and
/// nested modules), since Larder does not analyse imports; only files directly in a package
/// directory are copied, without `_test.go` files. An existing `vendor/` is replaced.
pub fn generate_vendor(
    module_dir: &Path,
    gomod: &GoMod,
    inputs: &[VendorInput],
) -> Result<String, VendorError> {
    let vendor = module_dir.join("vendor");
    let io = |p: &Path, e: std::io::Error| VendorError::Io {
        path: p.display().to_string(),
        source: e,
    };
    if std::fs::symlink_metadata(&vendor).is_ok() {
        let md = std::fs::symlink_metadata(&vendor).map_err(|e| io(&vendor, e))?;
        if md.is_dir() {
            std::fs::remove_dir_all(&vendor).map_err(|e| io(&vendor, e))?;
        } else {
            std::fs::remove_file(&vendor).map_err(|e| io(&vendor, e))?;
        }
    }
    std::fs::create_dir_all(&vendor).map_err(|e| io(&vendor, e))?;
    let main_go = gomod.go_version();
    let explicit_mode = main_go >= (1, 14);
    let go_versions = main_go >= (1, 17);

    let mut sorted: Vec<&VendorInput> = inputs.iter().collect();
    sorted.sort_by(|a, b| (&a.path, &a.version).cmp(&(&b.path, &b.version)));
    sorted.dedup_by(|a, b| a.path == b.path && a.version == b.version);
    let mut txt = String::new();
    let mut written_replacements: BTreeSet<ModVersion> = BTreeSet::new();
    for input in sorted {
        check_module_path(&input.path).map_err(|e| VendorError::Source {
            module: input.path.clone(),
            reason: e.to_string(),
        })?;
        let mut line = format!("# {} {}", input.path, input.version);
        if let Some(r) = gomod.replacement_for(&input.path, &input.version) {
            let (p, v) = target_of(&r.new);
            line.push_str(" => ");
            line.push_str(&p);
            if !v.is_empty() {
                line.push(' ');
                line.push_str(&v);
            }
            written_replacements.insert((input.path.clone(), input.version.clone()));
        }
        txt.push_str(&line);
        txt.push('\n');
        let mut set = open_source(input)?;
        let dep_go = set
            .as_mut()
            .and_then(|s| s.read_small("go.mod"))
            .and_then(|b| parse_go_mod("go.mod", &String::from_utf8_lossy(&b)).ok())
            .and_then(|m| m.go)
            .filter(|g| parse_go_version(g).is_some());
        let go_ann = if go_versions { dep_go } else { None };
        match (explicit_mode && input.explicit, go_ann) {
            (true, Some(g)) => txt.push_str(&format!("## explicit; go {g}\n")),
            (true, None) => txt.push_str("## explicit\n"),
            (false, Some(g)) => txt.push_str(&format!("## go {g}\n")),
            (false, None) => {}
        }
        let Some(mut set) = set else { continue };
        let names = set.names();
        // package dirs
        let mut pkgs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for n in &names {
            let (dir, base) = match n.rfind('/') {
                Some(i) => (&n[..i], &n[i + 1..]),
                None => ("", n.as_str()),
            };
            if !dir.is_empty() && dir.split('/').any(skip_dir_elem) {
                continue;
            }
            pkgs.entry(dir.to_string())
                .or_default()
                .push(base.to_string());
        }
        let is_pkg = |files: &Vec<String>| {
            files
                .iter()
                .any(|f| f.ends_with(".go") && !f.ends_with("_test.go"))
        };
        for (dir, files) in &pkgs {
            if !is_pkg(files) {
                continue;
            }
            let import = if dir.is_empty() {
                input.path.clone()
            } else {
                format!("{}/{}", input.path, dir)
            };
            txt.push_str(&import);
            txt.push('\n');
            let dest_dir = vendor.join(&import);
            std::fs::create_dir_all(&dest_dir).map_err(|e| io(&dest_dir, e))?;
            for f in files {
                if !wanted_file(f) {
                    continue;
                }
                let rel = if dir.is_empty() {
                    f.clone()
                } else {
                    format!("{dir}/{f}")
                };
                set.copy_to(&rel, &dest_dir.join(f))?;
            }
        }
    }
    if explicit_mode {
        for r in &gomod.replace {
            let old = (
                r.old_path.clone(),
                r.old_version.clone().unwrap_or_default(),
            );
            if written_replacements.contains(&old) {
                continue;
            }
            let (p, v) = target_of(&r.new);
            let mut line = format!("# {}", describe(&old));
            line.push_str(" => ");
            line.push_str(&p);
            if !v.is_empty() {
                line.push(' ');
                line.push_str(&v);
            }
            txt.push_str(&line);
            txt.push('\n');
        }
    }
    let mt = vendor.join("modules.txt");
    std::fs::write(&mt, &txt).map_err(|e| io(&mt, e))?;
    Ok(txt)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{build_module, FixtureModule};
    use super::*;

    const GOMOD: &str = "module example.com/app\n\ngo 1.19\n\nrequire (\n\texample.com/a v1.0.0\n\texample.com/b v1.1.0 // indirect\n\texample.com/loc v0.0.0\n)\n\nreplace example.com/loc => ./loc\nreplace example.com/b v1.1.0 => example.com/bfork v1.2.0\n";

    fn gm() -> GoMod {
        parse_go_mod("go.mod", GOMOD).unwrap()
    }

    const GOOD_TXT: &str = "# example.com/a v1.0.0\n## explicit; go 1.19\nexample.com/a\nexample.com/a/sub\n# example.com/b v1.1.0 => example.com/bfork v1.2.0\n## explicit\nexample.com/b\n# example.com/loc v0.0.0 => ./loc\n## explicit\nexample.com/loc\n# example.com/loc => ./loc\n";

    #[test]
    fn parses_modules_txt() {
        let mt = parse_modules_txt("vendor/modules.txt", GOOD_TXT).unwrap();
        assert_eq!(mt.list.len(), 3);
        let a = &mt.meta[&("example.com/a".to_string(), "v1.0.0".to_string())];
        assert!(a.explicit);
        assert_eq!(a.go_version.as_deref(), Some("1.19"));
        assert_eq!(mt.replaced.len(), 3);
        assert_eq!(mt.packages.len(), 4);
        assert!(parse_modules_txt("m", "## explicit\n").is_err());
        assert!(parse_modules_txt("m", "example.com/a\n").is_err());
        assert!(parse_modules_txt("m", "# a.com/x v1.0.0 => \n").is_err());
        assert!(parse_modules_txt("m", "# a.com/x v1.0.0 => b c d\n").is_err());
    }

    #[test]
    fn consistent() {
        let mt = parse_modules_txt("vendor/modules.txt", GOOD_TXT).unwrap();
        check_consistency(&gm(), &mt).unwrap();
    }

    #[test]
    fn inconsistent_cases() {
        let cases = [
            (
                GOOD_TXT.replace("## explicit; go 1.19\n", ""),
                "not marked as explicit",
            ),
            (
                GOOD_TXT.replace(" => example.com/bfork v1.2.0", ""),
                "not marked as replaced",
            ),
            (
                GOOD_TXT.replace("bfork v1.2.0", "bfork v1.3.0"),
                "but marked as replaced by",
            ),
            (
                format!("{GOOD_TXT}# example.com/extra v1.0.0\n## explicit\nexample.com/extra\n"),
                "not explicitly required",
            ),
            (
                format!("{GOOD_TXT}# example.com/z => ./z\n"),
                "not replaced in go.mod",
            ),
            (String::new(), "not marked as explicit"),
        ];
        for (txt, want) in cases {
            let mt = parse_modules_txt("vendor/modules.txt", &txt).unwrap();
            let e = check_consistency(&gm(), &mt).unwrap_err();
            assert!(e.to_string().contains(want), "{e} should contain {want}");
            assert_eq!(e.message(), INCONSISTENT_MESSAGE);
        }
    }

    #[test]
    fn strict_message() {
        assert_eq!(
            VendorError::StrictVendor.message(),
            "The \"gomod-vendor\" or \"gomod-vendor-check\" flag must be set when your repository has vendored dependencies."
        );
    }

    #[test]
    fn generates_vendor_dir() {
        let d = tempfile::tempdir().unwrap();
        let a = build_module(
            &FixtureModule::new("example.com/a", "v1.0.0")
                .gomod("1.19", &[])
                .file("a.go", "package a\n")
                .file("a_test.go", "package a\n")
                .file("sub/s.go", "package sub\n")
                .file("sub/data.txt", "x")
                .file("testdata/t.go", "package t\n")
                .file("_x/x.go", "package x\n")
                .file(".h/x.go", "package x\n")
                .file("docs/readme.md", "hi"),
        )
        .unwrap();
        let bfork = build_module(
            &FixtureModule::new("example.com/bfork", "v1.2.0").file("b.go", "package b\n"),
        )
        .unwrap();
        std::fs::write(d.path().join("a.zip"), &a.zip).unwrap();
        std::fs::write(d.path().join("b.zip"), &bfork.zip).unwrap();
        let app = d.path().join("app");
        std::fs::create_dir_all(app.join("loc/inner")).unwrap();
        std::fs::create_dir_all(app.join("loc/nested")).unwrap();
        std::fs::write(app.join("loc/go.mod"), "module example.com/loc\n").unwrap();
        std::fs::write(app.join("loc/l.go"), "package loc\n").unwrap();
        std::fs::write(app.join("loc/inner/i.go"), "package inner\n").unwrap();
        std::fs::write(app.join("loc/nested/go.mod"), "module example.com/n\n").unwrap();
        std::fs::write(app.join("loc/nested/n.go"), "package n\n").unwrap();
        std::fs::create_dir_all(app.join("vendor/stale")).unwrap();
        let inputs = vec![
            VendorInput {
                path: "example.com/a".into(),
                version: "v1.0.0".into(),
                explicit: true,
                source: VendorSource::Zip {
                    path: d.path().join("a.zip"),
                    module: "example.com/a".into(),
                    version: "v1.0.0".into(),
                },
            },
            VendorInput {
                path: "example.com/b".into(),
                version: "v1.1.0".into(),
                explicit: true,
                source: VendorSource::Zip {
                    path: d.path().join("b.zip"),
                    module: "example.com/bfork".into(),
                    version: "v1.2.0".into(),
                },
            },
            VendorInput {
                path: "example.com/loc".into(),
                version: "v0.0.0".into(),
                explicit: true,
                source: VendorSource::Dir(app.join("loc")),
            },
        ];
        let txt = generate_vendor(&app, &gm(), &inputs).unwrap();
        assert_eq!(
            txt,
            "# example.com/a v1.0.0\n## explicit; go 1.19\nexample.com/a\nexample.com/a/sub\n# example.com/b v1.1.0 => example.com/bfork v1.2.0\n## explicit\nexample.com/b\n# example.com/loc v0.0.0 => ./loc\n## explicit\nexample.com/loc\nexample.com/loc/inner\n# example.com/loc => ./loc\n"
        );
        let v = app.join("vendor");
        assert!(v.join("example.com/a/a.go").is_file());
        assert!(!v.join("example.com/a/a_test.go").exists());
        assert!(!v.join("example.com/a/go.mod").exists());
        assert!(v.join("example.com/a/sub/data.txt").is_file());
        assert!(!v.join("example.com/a/testdata").exists());
        assert!(!v.join("example.com/a/_x").exists());
        assert!(!v.join("example.com/a/docs").exists());
        assert!(v.join("example.com/b/b.go").is_file());
        assert!(v.join("example.com/loc/inner/i.go").is_file());
        assert!(!v.join("example.com/loc/nested").exists());
        assert!(!v.join("stale").exists());
        // and what we generate passes our own check
        let mt = parse_modules_txt("vendor/modules.txt", &txt).unwrap();
        check_consistency(&gm(), &mt).unwrap();
    }
}

#[cfg(test)]
mod slip_tests {
    use super::*;

    #[test]
    fn zip_slip_entries_refused() {
        let d = tempfile::tempdir().unwrap();
        for bad in [
            "a.com/m@v1.0.0/../../../evil.go",
            "other@v1.0.0/x.go",
            "a.com/m@v1.0.0//etc/x.go",
        ] {
            let p = super::super::dirhash::tests::write_zip(d.path(), &[(bad, b"package x\n")]);
            let gm = parse_go_mod("go.mod", "module x\ngo 1.19\nrequire a.com/m v1.0.0\n").unwrap();
            let app = d.path().join("app");
            std::fs::create_dir_all(&app).unwrap();
            let e = generate_vendor(
                &app,
                &gm,
                &[VendorInput {
                    path: "a.com/m".into(),
                    version: "v1.0.0".into(),
                    explicit: true,
                    source: VendorSource::Zip {
                        path: p,
                        module: "a.com/m".into(),
                        version: "v1.0.0".into(),
                    },
                }],
            )
            .unwrap_err();
            assert!(e.to_string().contains("a.com/m@v1.0.0"), "{e}");
            assert!(!d.path().join("evil.go").exists());
        }
    }

    #[test]
    fn bad_required_path_refused() {
        let d = tempfile::tempdir().unwrap();
        let gm = parse_go_mod("go.mod", "module x\ngo 1.19\n").unwrap();
        let e = generate_vendor(
            d.path(),
            &gm,
            &[VendorInput {
                path: "../../evil".into(),
                version: "v1.0.0".into(),
                explicit: true,
                source: VendorSource::None,
            }],
        )
        .unwrap_err();
        assert!(matches!(e, VendorError::Source { .. }));
    }
}
