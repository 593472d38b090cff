//! rubygems test fixtures: gems built with the real `gem build` (Debian's ruby), a static gem
//! server tree (Compact Index `versions`, `names`, `info/<name>`, and `gems/`) generated here,
//! and the real `bundle` run as on a clean machine. Used by `tests/e2e/rubygems.rs` and
//! `bench/rubygems.rs`.
#![allow(dead_code)]

use super::clean_command;
use super::clients::run;
use sha2::Digest;
use std::path::{Path, PathBuf};

/// A gem to build.
#[derive(Clone, Debug)]
pub struct FixtureGem {
    pub name: String,
    pub version: String,
    pub platform: Option<String>,
    /// (name, requirement) of its runtime dependencies.
    pub deps: Vec<(String, String)>,
    /// The gemspec's `licenses`.
    pub licenses: Vec<String>,
}

impl FixtureGem {
    pub fn new(name: &str, version: &str, deps: &[(&str, &str)]) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            platform: None,
            deps: deps
                .iter()
                .map(|(n, r)| (n.to_string(), r.to_string()))
                .collect(),
            licenses: vec!["MIT".into()],
        }
    }

    pub fn licenses(mut self, licenses: &[&str]) -> Self {
        self.licenses = licenses.iter().map(|l| l.to_string()).collect();
        self
    }

    pub fn platform(mut self, platform: &str) -> Self {
        self.platform = Some(platform.into());
        self
    }

    /// `name-version[-platform]`.
    pub fn full_name(&self) -> String {
        match &self.platform {
            Some(p) => format!("{}-{}-{p}", self.name, self.version),
            None => format!("{}-{}", self.name, self.version),
        }
    }
}

/// A built `.gem` and its Compact Index line.
#[derive(Clone, Debug)]
pub struct BuiltGem {
    pub gem: FixtureGem,
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub sha256: String,
}

impl BuiltGem {
    /// `version[-platform] dep:req,…|checksum:<sha256>,ruby:>= 2.0`
    pub fn info_line(&self) -> String {
        let v = match &self.gem.platform {
            Some(p) => format!("{}-{p}", self.gem.version),
            None => self.gem.version.clone(),
        };
        let deps: Vec<String> = self
            .gem
            .deps
            .iter()
            .map(|(n, r)| format!("{n}:{r}"))
            .collect();
        format!(
            "{v} {}|checksum:{},ruby:>= 2.0",
            deps.join(","),
            self.sha256
        )
    }
}

pub fn gemspec(g: &FixtureGem, files: &[&str]) -> String {
    let mut s = format!(
        "Gem::Specification.new do |s|\n  s.name = \"{}\"\n  s.version = \"{}\"\n  s.summary = \"{} fixture\"\n  s.authors = [\"Larder Test\"]\n  s.licenses = {:?}\n  s.required_ruby_version = \">= 2.0\"\n  s.files = {files:?}\n",
        g.name, g.version, g.name, g.licenses
    );
    if let Some(p) = &g.platform {
        s.push_str(&format!("  s.platform = \"{p}\"\n"));
    }
    for (n, r) in &g.deps {
        s.push_str(&format!("  s.add_runtime_dependency \"{n}\", \"{r}\"\n"));
    }
    s.push_str("end\n");
    s
}

/// The Ruby source of a fixture gem: `lib/<name>.rb` defining a module that names its
/// platform, so a test can tell which variant was installed.
pub fn lib_source(g: &FixtureGem) -> String {
    let module: String = g
        .name
        .split(['-', '_'])
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    format!("module {module}\n  VARIANT = \"{}\"\nend\n", g.full_name())
}

/// Build `g` with the real `gem build` in a directory below `work`.
pub fn build_gem(work: &Path, g: &FixtureGem) -> BuiltGem {
    let dir = work.join(format!("src-{}", g.full_name()));
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    let lib = format!("lib/{}.rb", g.name);
    std::fs::write(dir.join(&lib), lib_source(g)).unwrap();
    let spec = format!("{}.gemspec", g.name);
    std::fs::write(dir.join(&spec), gemspec(g, &[&lib])).unwrap();
    let home = work.join("home-gem-build");
    std::fs::create_dir_all(&home).unwrap();
    let (ok, out) = run(clean_command("gem", &home)
        .args(["build", &spec])
        .current_dir(&dir)
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    assert!(ok, "gem build {}: {out}", g.full_name());
    let file_name = format!("{}.gem", g.full_name());
    let bytes = std::fs::read(dir.join(&file_name)).unwrap();
    let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
    BuiltGem {
        gem: g.clone(),
        file_name,
        bytes,
        sha256,
    }
}

/// Build many gems in one `ruby` process with RubyGems' own builder (`Gem::Package.build`,
/// what `gem build` runs), for a benchmark's hundreds of gems.
pub fn build_gems(work: &Path, gems: &[FixtureGem]) -> Vec<BuiltGem> {
    let mut dirs = Vec::new();
    for g in gems {
        let dir = work.join(format!("src-{}", g.full_name()));
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        let lib = format!("lib/{}.rb", g.name);
        std::fs::write(dir.join(&lib), lib_source(g)).unwrap();
        std::fs::write(dir.join(format!("{}.gemspec", g.name)), gemspec(g, &[&lib])).unwrap();
        dirs.push(dir);
    }
    let list = work.join("gem-dirs.txt");
    let text: String = dirs.iter().map(|d| format!("{}\n", d.display())).collect();
    std::fs::write(&list, text).unwrap();
    let home = work.join("home-gem-build");
    std::fs::create_dir_all(&home).unwrap();
    let script = "require 'rubygems/package'\nFile.readlines(ARGV[0], chomp: true).each do |d|\n  Dir.chdir(d) { Gem::Package.build(Gem::Specification.load(Dir['*.gemspec'].first)) }\nend\n";
    let (ok, out) = run(clean_command("ruby", &home)
        .args(["-e", script])
        .arg(&list)
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    assert!(ok, "building gems: {out}");
    gems.iter()
        .zip(&dirs)
        .map(|(g, dir)| {
            let file_name = format!("{}.gem", g.full_name());
            let bytes = std::fs::read(dir.join(&file_name)).unwrap();
            let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
            BuiltGem {
                gem: g.clone(),
                file_name,
                bytes,
                sha256,
            }
        })
        .collect()
}

/// Write a static gem server tree at `root`: `gems/<file>`, `info/<name>`, `versions`, `names`.
pub fn write_server(root: &Path, gems: &[BuiltGem]) {
    std::fs::create_dir_all(root.join("gems")).unwrap();
    std::fs::create_dir_all(root.join("info")).unwrap();
    let mut by_name: std::collections::BTreeMap<&str, Vec<&BuiltGem>> = Default::default();
    for g in gems {
        std::fs::write(root.join("gems").join(&g.file_name), &g.bytes).unwrap();
        by_name.entry(&g.gem.name).or_default().push(g);
    }
    let mut versions = String::from("created_at: 2026-01-01T00:00:00Z\n---\n");
    let mut names = String::from("---\n");
    for (name, list) in by_name {
        let mut info = String::from("---\n");
        for g in &list {
            info.push_str(&g.info_line());
            info.push('\n');
        }
        std::fs::write(root.join("info").join(name), &info).unwrap();
        let vs: Vec<String> = list
            .iter()
            .map(|g| g.full_name()[name.len() + 1..].to_string())
            .collect();
        // the MD5 of the info file in real servers; Bundler only compares it with its cache
        let sum = &hex::encode(sha2::Sha256::digest(info.as_bytes()))[..32];
        versions.push_str(&format!("{name} {} {sum}\n", vs.join(",")));
        names.push_str(name);
        names.push('\n');
    }
    std::fs::write(root.join("versions"), versions).unwrap();
    std::fs::write(root.join("names"), names).unwrap();
}

impl BuiltGem {
    pub fn full_name(&self) -> String {
        self.gem.full_name()
    }
}

/// `bundle <args>` in `dir` as on a clean machine: a fresh `HOME`, no `BUNDLE_*`/`GEM_*`
/// from this environment, plus `env`.
pub fn bundle(dir: &Path, home: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    std::fs::create_dir_all(home).unwrap();
    let mut cmd = clean_command("bundle", home);
    cmd.args(args).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// The gems installed below a `vendor/bundle` (deployment mode's path), as `name-version[-platform]`.
pub fn installed_gems(vendor_bundle: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rubies) = std::fs::read_dir(vendor_bundle.join("ruby")) else {
        return out;
    };
    for ruby in rubies.flatten() {
        for sub in ["gems", "bundler/gems"] {
            if let Ok(rd) = std::fs::read_dir(ruby.path().join(sub)) {
                out.extend(
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned()),
                );
            }
        }
    }
    out.sort();
    out
}

pub fn path_of(p: &Path) -> PathBuf {
    p.to_path_buf()
}
