//! Hermeto's command line on the worker's engine, with no service: `fetch-deps`,
//! `generate-env`, `inject-files`, `merge-sboms`. The input forms, the output directory
//! (`deps/<pm>/…`, `bom.json`, `.build-config.json`) and the templates (`${output_dir}`, read
//! as Python's `string.Template` reads them) are Hermeto's; the fetch is
//! `worker::local::fetch_deps` on a permanent local store (`LARDER_CACHE_DIR`, else
//! `~/.cache/larder`).

use crate::sbom_merge;
use anyhow::{Context, Result};
use common::repo_path::RepoPath;
use common::{PackageSpec, PmName};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Exit status of a command used wrongly (bad input, unknown flag): Hermeto's usage error.
pub const EXIT_USAGE: i32 = 2;

/// A usage error: the caller exits with [`EXIT_USAGE`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum SbomType {
    Cyclonedx,
    Spdx,
}

#[derive(clap::Args)]
pub struct FetchDepsArgs {
    /// What to fetch: a package manager's name, a JSON package (`{"type": "npm", "path":
    /// "web"}`), a JSON list of them, `{"packages": [...], "flags": [...]}`, or a file holding
    /// any of those.
    #[arg(value_name = "PKG")]
    input: String,
    /// The source directory (a git repository's work tree).
    #[arg(long, default_value = ".")]
    source: PathBuf,
    /// Where the output goes: `deps/`, `bom.json`, `.build-config.json`.
    #[arg(long, default_value = "./hermeto-output")]
    output: PathBuf,
    /// The SBOM's format.
    #[arg(long, value_enum, default_value = "cyclonedx")]
    sbom_output_type: SbomType,
    /// Hermeto's flags, as options (the same as in the input's `flags`).
    #[arg(long)]
    cgo_disable: bool,
    #[arg(long)]
    dev_package_managers: bool,
    #[arg(long)]
    force_gomod_tidy: bool,
    #[arg(long)]
    gomod_vendor: bool,
    #[arg(long)]
    gomod_vendor_check: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq, Eq)]
pub enum EnvFormat {
    Env,
    Json,
}

#[derive(clap::Args)]
pub struct GenerateEnvArgs {
    /// An output directory `fetch-deps` filled.
    from_output_dir: PathBuf,
    /// The output directory's path where the build will see it (default: where it is).
    #[arg(long)]
    for_output_dir: Option<PathBuf>,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// `env` (`export NAME=value` lines) or `json`; default: from the output file's suffix
    /// (`.env`, `.sh`, `.json`), else `json`.
    #[arg(short, long, value_enum)]
    format: Option<EnvFormat>,
}

#[derive(clap::Args)]
pub struct InjectFilesArgs {
    /// An output directory `fetch-deps` filled.
    from_output_dir: PathBuf,
    /// The output directory's path where the build will see it (default: where it is).
    #[arg(long)]
    for_output_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct MergeSbomsArgs {
    /// Two or more SBOMs, CycloneDX or SPDX 2 (`fetch-deps`'s `bom.json`, Larder's or
    /// Hermeto's), in any mix.
    #[arg(required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The merged SBOM's format (Hermeto's: CycloneDX unless told, whatever the inputs).
    #[arg(long = "sbom-output-type", value_enum, default_value = "cyclonedx")]
    sbom_type: SbomType,
    /// The merged SPDX document's name (default: the first SPDX input's).
    #[arg(long)]
    sbom_name: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Input

/// Hermeto's flags (`hermeto.core.models.input.Flag`); all are passed to the package managers,
/// which read Cachito's flags of the same names.
const FLAGS: &[&str] = &[
    "cgo-disable",
    "dev-package-managers",
    "force-gomod-tidy",
    "gomod-vendor",
    "gomod-vendor-check",
];

/// One package of the input, read.
#[derive(Debug, PartialEq, Eq)]
pub struct Input {
    /// Larder's package managers' names with their packages, deduplicated.
    pub packages: BTreeMap<PmName, Vec<PackageSpec>>,
    pub flags: Vec<String>,
}

/// Hermeto's package type → Larder's package manager.
fn larder_name(hermeto_type: &str) -> Option<&'static str> {
    Some(match hermeto_type {
        "npm" => "npm",
        "pip" => "pip",
        "gomod" => "gomod",
        "cargo" => "cargo",
        "yarn" => "yarn",
        "pnpm" => "pnpm",
        "bundler" => "rubygems",
        // Larder's own names for what Hermeto has not
        "rubygems" => "rubygems",
        "git-submodule" => "git-submodule",
        _ => return None,
    })
}

/// Read `raw` as Hermeto does: a file's content when it names a file, JSON when it starts
/// with `{` or `[`, else a package manager's name.
pub fn parse_input(raw: &str) -> Result<Input> {
    let path = Path::new(raw);
    let text = if path.is_file() {
        std::fs::read_to_string(path).with_context(|| format!("reading {raw}"))?
    } else {
        raw.to_string()
    };
    let trimmed = text.trim_start();
    let value: Value = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::from_str(&text).map_err(|e| {
            usage(format!(
                "The input looks like JSON but is not valid JSON: {e}"
            ))
        })?
    } else {
        Value::Object(Map::from_iter([(
            "type".to_string(),
            Value::String(text.trim().to_string()),
        )]))
    };
    let (packages, flags) = match value {
        Value::Object(mut map) if map.contains_key("packages") => {
            let packages = map.remove("packages").unwrap_or_default();
            let flags = map.remove("flags").unwrap_or(Value::Array(Vec::new()));
            if let Some(other) = map.keys().next() {
                return Err(usage(format!(
                    "Unknown field {other:?} in the input (it takes \"packages\" and \"flags\")"
                )));
            }
            let Value::Array(packages) = packages else {
                return Err(usage("\"packages\" must be a list of packages"));
            };
            let Value::Array(flags) = flags else {
                return Err(usage("\"flags\" must be a list of strings"));
            };
            (packages, flags)
        }
        Value::Object(map) => (vec![Value::Object(map)], Vec::new()),
        Value::Array(list) => (list, Vec::new()),
        _ => {
            return Err(usage(
                "The input must be a package, a list of them, or an object with \"packages\"",
            ))
        }
    };
    if packages.is_empty() {
        return Err(usage(
            "At least one package must be given, the list is empty",
        ));
    }
    let mut out: BTreeMap<PmName, Vec<PackageSpec>> = BTreeMap::new();
    let mut flag_names: Vec<String> = Vec::new();
    for package in packages {
        let (name, spec, flag) = parse_package(package)?;
        if let Some(flag) = flag.filter(|f| !flag_names.iter().any(|n| n == f)) {
            flag_names.push(flag.to_string());
        }
        let specs = out.entry(PmName::new(name)).or_default();
        // as Hermeto: a package once by (type, path), and two that differ are a conflict
        match specs.iter().find(|s| s.path == spec.path) {
            None => specs.push(spec),
            Some(same) if *same == spec => {}
            Some(_) => {
                return Err(usage(format!(
                    "Conflicting {name} packages at the path {:?}: give each path once",
                    spec.path.as_str()
                )))
            }
        }
    }
    for flag in flags {
        let Value::String(flag) = flag else {
            return Err(usage("\"flags\" must be a list of strings"));
        };
        let flag = flag.trim().to_string();
        if !FLAGS.contains(&flag.as_str()) {
            return Err(usage(format!(
                "Unknown flag {flag:?} (known: {})",
                FLAGS.join(", ")
            )));
        }
        if !flag_names.contains(&flag) {
            flag_names.push(flag);
        }
    }
    Ok(Input {
        packages: out,
        flags: flag_names,
    })
}

/// One package of the input: Larder's package manager, its spec, and the request flags it
/// asks for (pip's `allow_binary`: Larder's `pip-allow-binary`, for every pip package).
fn parse_package(package: Value) -> Result<(&'static str, PackageSpec, Option<&'static str>)> {
    let Value::Object(mut map) = package else {
        return Err(usage(format!(
            "A package must be a JSON object, not {package}"
        )));
    };
    let kind = match map.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(other) => {
            return Err(usage(format!(
                "A package's \"type\" must be a string, not {other}"
            )))
        }
        None => return Err(usage("A package needs a \"type\"")),
    };
    let Some(name) = larder_name(&kind) else {
        return Err(usage(format!(
            "The package type {kind:?} is not one Larder has (npm, pip, gomod, cargo, yarn, pnpm, bundler, git-submodule)"
        )));
    };
    let path = match map.remove("path") {
        None => RepoPath::root(),
        Some(Value::String(p)) => RepoPath::parse(&p).map_err(|e| {
            usage(format!(
                "The {kind} package's path {p:?} is not usable: {e}"
            ))
        })?,
        Some(other) => {
            return Err(usage(format!(
                "A package's \"path\" must be a string, not {other}"
            )))
        }
    };
    let mut spec = PackageSpec {
        path,
        ..PackageSpec::default()
    };
    let mut flag = None;
    let paths = |field: &str, value: Value| -> Result<Vec<String>> {
        let Value::Array(items) = value else {
            return Err(usage(format!("\"{field}\" must be a list of paths")));
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => RepoPath::parse(&s)
                    .map(|_| s.clone())
                    .map_err(|e| usage(format!("\"{field}\": {s:?} is not usable: {e}"))),
                other => Err(usage(format!(
                    "\"{field}\" must be a list of paths, not {other}"
                ))),
            })
            .collect()
    };
    for (field, value) in map {
        match (name, field.as_str()) {
            ("pip", "requirements_files") => spec.requirements_files = Some(paths(&field, value)?),
            ("pip", "requirements_build_files") => {
                spec.requirements_build_files = Some(paths(&field, value)?)
            }
            ("pip" | "rubygems", "allow_binary") if value == Value::Bool(false) => {}
            // every wheel of a pinned version, as Hermeto's legacy `allow_binary`
            ("pip", "allow_binary") if value == Value::Bool(true) => {
                flag = Some(worker::pkg_managers::pip::plan::FLAG_ALLOW_BINARY)
            }
            // Hermeto's binary filters (architecture, OS, Python version) are not Larder's
            ("pip" | "rubygems", "allow_binary" | "binary") => {
                return Err(usage(format!(
                    "The {kind} package's {field:?} is not supported by Larder yet"
                )))
            }
            ("yarn", "workspaces") => {
                return Err(usage(
                    "The yarn package's \"workspaces\" is not supported by Larder yet (every workspace of the lockfile is fetched)",
                ))
            }
            _ => {
                return Err(usage(format!(
                    "Unknown field {field:?} for a {kind} package"
                )))
            }
        }
    }
    Ok((name, spec, flag))
}

// ---------------------------------------------------------------------------------------------
// fetch-deps

/// `.build-config.json` (Hermeto's `BuildConfig`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct BuildConfig {
    #[serde(default)]
    pub environment_variables: Vec<BuildEnvVar>,
    #[serde(default)]
    pub project_files: Vec<BuildProjectFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Value>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BuildEnvVar {
    pub name: String,
    /// A template (`${output_dir}`, other variables by name, `$$` for `$`).
    pub value: String,
    /// Older Hermeto versions: `path` (relative to the output directory) or `literal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BuildProjectFile {
    pub abspath: PathBuf,
    pub template: String,
}

/// The permanent local store: `LARDER_CACHE_DIR`, else `$XDG_CACHE_HOME/larder`, else
/// `~/.cache/larder`.
fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("LARDER_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("larder"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither LARDER_CACHE_DIR nor HOME is set: no place for the cache")?;
    Ok(PathBuf::from(home).join(".cache/larder"))
}

/// Run `fetch-deps`: the exit status.
pub async fn fetch_deps(args: FetchDepsArgs) -> Result<i32> {
    let mut input = match parse_input(&args.input) {
        Ok(input) => input,
        Err(e) => return usage_exit(e),
    };
    for (set, flag) in [
        (args.cgo_disable, "cgo-disable"),
        (args.dev_package_managers, "dev-package-managers"),
        (args.force_gomod_tidy, "force-gomod-tidy"),
        (args.gomod_vendor, "gomod-vendor"),
        (args.gomod_vendor_check, "gomod-vendor-check"),
    ] {
        if set && !input.flags.iter().any(|f| f == flag) {
            input.flags.push(flag.to_string());
        }
    }
    if !args.source.is_dir() {
        return usage_exit(usage(format!(
            "The source directory {} does not exist",
            args.source.display()
        )));
    }
    let source = args.source.canonicalize()?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let output = args.output.canonicalize()?;
    // an earlier run's results go first: a run that fails leaves none that look current
    for earlier in [".build-config.json", "bom.json"] {
        match std::fs::remove_file(output.join(earlier)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {earlier}"))
            }
            _ => {}
        }
    }
    let config = common::Config::from_env();
    let cache = cache_dir()?;
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let store = common::Store::new(&cache);
    // what runs killed on this cache left (nothing runs a day)
    worker::pipeline::remove_stale_temp(&store, std::time::Duration::from_secs(24 * 3600));
    tracing::info!(cache = %cache.display(), "the dependencies' cache");
    let request = worker::local::LocalRequest {
        source,
        output: output.clone(),
        packages: input.packages,
        flags: input.flags,
    };
    let fetched = match worker::local::fetch_deps(&config, &store, &request).await {
        Ok(fetched) => fetched,
        Err(failure) => {
            eprintln!("Error: {}", failure.message);
            return Ok(1);
        }
    };
    let build_config = BuildConfig {
        environment_variables: fetched
            .env
            .iter()
            .map(|(name, var)| BuildEnvVar {
                name: name.clone(),
                value: if var.kind == "path" {
                    format!("${{output_dir}}/{}", escape_dollars(&var.value))
                } else {
                    escape_dollars(&var.value)
                },
                kind: None,
            })
            .collect(),
        project_files: fetched
            .project_files
            .into_iter()
            .map(|f| BuildProjectFile {
                abspath: f.abspath,
                template: f.template,
            })
            .collect(),
        options: None,
    };
    let input = common::sbom::SbomInput {
        id: 0,
        repo: &fetched.repo,
        git_ref: &fetched.git_ref,
        data: &fetched.packages,
        artifacts: &fetched.artifacts,
    };
    let timestamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let uuid = common::sbom::new_uuid();
    let ctx = common::sbom::SbomContext {
        timestamp: &timestamp,
        uuid: &uuid,
        tool_version: env!("CARGO_PKG_VERSION"),
        url: "https://spdx.org/spdxdocs/larder-fetch-deps",
    };
    let bom = match args.sbom_output_type {
        SbomType::Cyclonedx => common::sbom::cyclonedx(&[input], &ctx),
        SbomType::Spdx => common::sbom::spdx(&[input], &ctx),
    };
    // each whole or not at all, the build configuration last: an output with one is complete
    write_whole(&output.join("bom.json"), &bom)?;
    let mut config = serde_json::to_vec_pretty(&build_config)?;
    config.push(b'\n');
    write_whole(&output.join(".build-config.json"), &config)?;
    tracing::info!(
        output = %output.display(),
        packages = fetched.packages.packages.len(),
        files = fetched.artifacts.len(),
        "all dependencies fetched and verified"
    );
    Ok(0)
}

fn usage_exit(e: anyhow::Error) -> Result<i32> {
    if e.downcast_ref::<UsageError>().is_some() {
        eprintln!("Error: {e}");
        Ok(EXIT_USAGE)
    } else {
        Err(e)
    }
}

/// `bytes` at `path`, through a new file renamed into place.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing in {}", dir.display()))?;
    std::io::Write::write_all(&mut temp, bytes)
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    temp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn escape_dollars(text: &str) -> String {
    text.replace('$', "$$")
}

// ---------------------------------------------------------------------------------------------
// Templates: Python's `string.Template.safe_substitute`

/// Substitute `$name` and `${name}` from `lookup` (names as Python's identifiers, ASCII), `$$`
/// as `$`, and leave any other `$` as it is.
pub fn safe_substitute(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = template.as_bytes();
    let mut out = String::with_capacity(template.len());
    let mut i = 0;
    let ident_start = |b: u8| b == b'_' || b.is_ascii_alphabetic();
    let ident_rest = |b: u8| b == b'_' || b.is_ascii_alphanumeric();
    let mut last = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        out.push_str(&template[last..i]);
        let rest = &bytes[i + 1..];
        if rest.first() == Some(&b'$') {
            out.push('$');
            i += 2;
        } else if rest.first() == Some(&b'{') {
            let name_len = rest[1..].iter().take_while(|&&b| ident_rest(b)).count();
            let closed = rest.get(1 + name_len) == Some(&b'}');
            let name = &template[i + 2..i + 2 + name_len];
            match lookup(name).filter(|_| closed && name_len > 0 && ident_start(rest[1])) {
                Some(value) => {
                    out.push_str(&value);
                    i += 3 + name_len;
                }
                None => {
                    out.push('$');
                    i += 1;
                }
            }
        } else if rest.first().is_some_and(|&b| ident_start(b)) {
            let name_len = rest.iter().take_while(|&&b| ident_rest(b)).count();
            let name = &template[i + 1..i + 1 + name_len];
            match lookup(name) {
                Some(value) => {
                    out.push_str(&value);
                    i += 1 + name_len;
                }
                None => {
                    out.push('$');
                    i += 1;
                }
            }
        } else {
            out.push('$');
            i += 1;
        }
        last = i;
    }
    out.push_str(&template[last..]);
    out
}

fn read_build_config(output_dir: &Path) -> Result<BuildConfig> {
    let path = output_dir.join(".build-config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        usage(format!(
            "No .build-config.json in {} ({e}): run fetch-deps first",
            output_dir.display()
        ))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| usage(format!("{} is not a build config: {e}", path.display())))
}

/// The output directory as the build sees it: `--for-output-dir`, else where it is.
fn for_output_dir(from: &Path, for_dir: Option<&Path>) -> Result<PathBuf> {
    match for_dir {
        Some(dir) => Ok(std::path::absolute(dir)?),
        None => Ok(from.canonicalize()?),
    }
}

/// Each variable's value: `${output_dir}` and the other variables named in it substituted,
/// those resolved first (as Hermeto resolves them: `GOPROXY=file://${GOMODCACHE}/…` with
/// `GOMODCACHE=${output_dir}/…`); an older config's `path` variable is below the output
/// directory. Variables that name each other are an error.
pub fn resolved_env(
    config: &BuildConfig,
    output_dir: &Path,
) -> std::result::Result<Vec<(String, String)>, String> {
    let output_dir = output_dir.to_string_lossy().into_owned();
    let vars: BTreeMap<&str, &BuildEnvVar> = config
        .environment_variables
        .iter()
        .map(|v| (v.name.as_str(), v))
        .collect();
    let resolver = EnvResolver {
        vars,
        output_dir,
        done: Default::default(),
        resolving: Default::default(),
        cycle: Default::default(),
    };
    let mut resolved = Vec::with_capacity(config.environment_variables.len());
    for var in &config.environment_variables {
        let value = resolver.value(&var.name);
        if let Some(names) = resolver.cycle.borrow().as_ref() {
            return Err(format!("the variables {names} name each other"));
        }
        resolved.push((var.name.clone(), value.unwrap_or_default()));
    }
    Ok(resolved)
}

struct EnvResolver<'a> {
    vars: BTreeMap<&'a str, &'a BuildEnvVar>,
    output_dir: String,
    done: std::cell::RefCell<BTreeMap<String, String>>,
    /// The variables being resolved, outermost first.
    resolving: std::cell::RefCell<Vec<String>>,
    cycle: std::cell::RefCell<Option<String>>,
}

impl EnvResolver<'_> {
    /// `name`'s value (`None`: no such variable; the reference stays as written).
    fn value(&self, name: &str) -> Option<String> {
        if name == "output_dir" {
            return Some(self.output_dir.clone());
        }
        if let Some(value) = self.done.borrow().get(name) {
            return Some(value.clone());
        }
        let var = self.vars.get(name)?;
        if self.resolving.borrow().iter().any(|n| n == name) {
            let mut names = self.resolving.borrow().clone();
            names.push(name.to_string());
            *self.cycle.borrow_mut() = Some(names.join(" → "));
            return Some(String::new());
        }
        self.resolving.borrow_mut().push(name.to_string());
        let mut value = safe_substitute(&var.value, &|n| self.value(n));
        self.resolving.borrow_mut().pop();
        if var.kind.as_deref() == Some("path") {
            value = format!("{}/{value}", self.output_dir);
        }
        self.done
            .borrow_mut()
            .insert(name.to_string(), value.clone());
        Some(value)
    }
}

/// Run `generate-env`: the exit status.
pub fn generate_env(args: GenerateEnvArgs) -> Result<i32> {
    let run = || -> Result<()> {
        let config = read_build_config(&args.from_output_dir)?;
        let dir = for_output_dir(&args.from_output_dir, args.for_output_dir.as_deref())?;
        let format = match (args.format, &args.output) {
            (Some(f), _) => f,
            (None, Some(file)) => match file.extension().and_then(|e| e.to_str()) {
                Some("env" | "sh") => EnvFormat::Env,
                Some("json") => EnvFormat::Json,
                _ => {
                    return Err(usage(format!(
                        "Cannot tell the format from {}: use --format env|json",
                        file.display()
                    )))
                }
            },
            (None, None) => EnvFormat::Json,
        };
        let vars = resolved_env(&config, &dir).map_err(usage)?;
        let text = match format {
            EnvFormat::Json => env_json(&vars),
            EnvFormat::Env => vars
                .iter()
                .map(|(name, value)| {
                    let name =
                        shlex::try_quote(name).map_err(|e| usage(format!("{name:?}: {e}")))?;
                    let value =
                        shlex::try_quote(value).map_err(|e| usage(format!("{value:?}: {e}")))?;
                    Ok(format!("export {name}={value}"))
                })
                .collect::<Result<Vec<_>>>()?
                .join("\n"),
        };
        match &args.output {
            Some(file) => std::fs::write(file, format!("{text}\n"))
                .with_context(|| format!("writing {}", file.display()))?,
            None => println!("{text}"),
        }
        Ok(())
    };
    run().map(|()| 0).or_else(usage_exit)
}

/// The variables as Hermeto's `generate-env --format json` prints them: Python's
/// `json.dumps` of a list of `{"name", "value"}` objects (one line, `", "` and `": "` between
/// items, every character outside printable ASCII escaped as `\uXXXX`).
pub fn env_json(vars: &[(String, String)]) -> String {
    let items: Vec<String> = vars
        .iter()
        .map(|(name, value)| {
            format!(
                "{{\"name\": {}, \"value\": {}}}",
                python_json_string(name),
                python_json_string(value)
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// A JSON string as Python's `json.dumps` writes it with `ensure_ascii` (its default).
fn python_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// Run `inject-files`: the exit status.
pub fn inject_files(args: InjectFilesArgs) -> Result<i32> {
    let run = || -> Result<()> {
        let config = read_build_config(&args.from_output_dir)?;
        let dir = for_output_dir(&args.from_output_dir, args.for_output_dir.as_deref())?;
        let dir = dir.to_string_lossy().into_owned();
        for file in &config.project_files {
            let content = safe_substitute(&file.template, &|name| {
                (name == "output_dir").then(|| dir.clone())
            });
            let parent = file
                .abspath
                .parent()
                .with_context(|| format!("{} names no directory", file.abspath.display()))?;
            if file.abspath.exists() {
                tracing::info!(path = %file.abspath.display(), "overwriting");
            } else {
                tracing::info!(path = %file.abspath.display(), "creating");
                std::fs::create_dir_all(parent)?;
            }
            // a new file renamed over the old: a symbolic link put there since fetch-deps
            // checked the source is replaced, never written through
            let mut temp = tempfile::NamedTempFile::new_in(parent)
                .with_context(|| format!("writing in {}", parent.display()))?;
            std::io::Write::write_all(&mut temp, content.as_bytes())
                .with_context(|| format!("writing {}", file.abspath.display()))?;
            temp.persist(&file.abspath)
                .with_context(|| format!("writing {}", file.abspath.display()))?;
        }
        Ok(())
    };
    run().map(|()| 0).or_else(usage_exit)
}

// ---------------------------------------------------------------------------------------------
// merge-sboms

/// Run `merge-sboms`: the exit status.
pub fn merge_sboms(args: MergeSbomsArgs) -> Result<i32> {
    let run = || -> Result<()> {
        let mut files = args.files.clone();
        files.sort();
        files.dedup();
        if files.len() < 2 {
            return Err(usage("Need at least two different SBOM files"));
        }
        let mut docs = Vec::new();
        let mut labels = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file)
                .map_err(|e| usage(format!("Cannot read {}: {e}", file.display())))?;
            let doc: Value = serde_json::from_str(&text)
                .map_err(|_| usage(format!("{} does not look like a SBOM file", file.display())))?;
            let label = file.display().to_string();
            let format = sbom_merge::format_of(&doc, &label).map_err(|e| usage(e.to_string()))?;
            docs.push((format, doc));
            labels.push(label);
        }
        // as Hermeto: every input converted to the output's format, then merged
        let merged = match args.sbom_type {
            SbomType::Cyclonedx => {
                let docs: Vec<Value> = docs
                    .into_iter()
                    .map(|(format, doc)| match format {
                        sbom_merge::Format::CycloneDx => doc,
                        sbom_merge::Format::Spdx => sbom_merge::cyclonedx_of_spdx(&doc),
                    })
                    .collect();
                merge_cyclonedx(&docs)
            }
            SbomType::Spdx => {
                let name = args.sbom_name.clone().or_else(|| {
                    docs.iter()
                        .find(|(format, _)| *format == sbom_merge::Format::Spdx)
                        .and_then(|(_, doc)| doc.get("name").and_then(Value::as_str))
                        .map(str::to_string)
                });
                let docs: Vec<Value> = docs
                    .into_iter()
                    .map(|(format, doc)| match format {
                        sbom_merge::Format::Spdx => doc,
                        sbom_merge::Format::CycloneDx => sbom_merge::spdx_of_cyclonedx(&doc),
                    })
                    .collect();
                sbom_merge::merge_spdx(&docs, &labels, name.as_deref())
                    .map_err(|e| usage(e.to_string()))?
            }
        };
        let text = serde_json::to_string_pretty(&merged)?;
        match &args.output {
            Some(file) => std::fs::write(file, format!("{text}\n"))
                .with_context(|| format!("writing {}", file.display()))?,
            None => println!("{text}"),
        }
        Ok(())
    };
    run().map(|()| 0).or_else(usage_exit)
}

/// One CycloneDX document of every component of `docs`, each once by its purl (else by its
/// `bom-ref`, else name and version), its properties merged, the first's fields kept; the
/// dependency graph's edges of every document, each node once; the first document's
/// metadata with a new serial number.
pub fn merge_cyclonedx(docs: &[Value]) -> Value {
    let key = |c: &Value| -> String {
        for field in ["purl", "bom-ref"] {
            if let Some(k) = c.get(field).and_then(Value::as_str) {
                return format!("{field}:{k}");
            }
        }
        format!(
            "name:{}@{}",
            c.get("name").and_then(Value::as_str).unwrap_or_default(),
            c.get("version").and_then(Value::as_str).unwrap_or_default()
        )
    };
    let mut components: BTreeMap<String, Value> = BTreeMap::new();
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut annotations: Vec<Value> = Vec::new();
    // a root component of one document (metadata.component) is a component of the merge
    let mut roots: Vec<&Value> = Vec::new();
    for doc in docs {
        if let Some(root) = doc.pointer("/metadata/component") {
            roots.push(root);
        }
        for c in doc
            .get("components")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match components.get_mut(&key(c)) {
                Some(kept) => merge_properties(kept, c),
                None => {
                    components.insert(key(c), c.clone());
                }
            }
        }
        for d in doc
            .get("dependencies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(from) = d.get("ref").and_then(Value::as_str) else {
                continue;
            };
            let edges = graph.entry(from.to_string()).or_default();
            for to in d
                .get("dependsOn")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !edges.iter().any(|e| e == to) {
                    edges.push(to.to_string());
                }
            }
        }
        for a in doc
            .get("annotations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !annotations.contains(a) {
                annotations.push(a.clone());
            }
        }
    }
    let first = &docs[0];
    let first_root_key = first.pointer("/metadata/component").map(key);
    // the first document's root is the merge's: not a component too (an SPDX input converted
    // has its repository's package among its components)
    if let Some(k) = &first_root_key {
        components.remove(k);
    }
    for root in roots {
        let k = key(root);
        if Some(&k) != first_root_key.as_ref() && !components.contains_key(&k) {
            components.insert(k, root.clone());
        }
    }
    let refs: std::collections::BTreeSet<String> = components
        .values()
        .chain(first.pointer("/metadata/component"))
        .filter_map(|c| c.get("bom-ref").and_then(Value::as_str).map(str::to_string))
        .collect();
    let mut out = first.clone();
    let obj = out
        .as_object_mut()
        .expect("a CycloneDX document is an object");
    obj.insert(
        "serialNumber".into(),
        Value::String(format!("urn:uuid:{}", common::sbom::new_uuid())),
    );
    obj.insert("version".into(), Value::from(1));
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "timestamp".into(),
            Value::String(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        );
    }
    obj.insert(
        "components".into(),
        Value::Array(components.into_values().collect()),
    );
    if !graph.is_empty() || obj.contains_key("dependencies") {
        // only edges between components the merge has (a validator refuses dangling refs)
        let deps = graph
            .into_iter()
            .filter(|(from, _)| refs.contains(from))
            .map(|(from, to)| {
                let to: Vec<String> = to.into_iter().filter(|t| refs.contains(t)).collect();
                serde_json::json!({"ref": from, "dependsOn": to})
            })
            .collect();
        obj.insert("dependencies".into(), Value::Array(deps));
    }
    if !annotations.is_empty() {
        obj.insert("annotations".into(), Value::Array(annotations));
    }
    out
}

/// Add `other`'s properties `kept` lacks (by name and value).
fn merge_properties(kept: &mut Value, other: &Value) {
    let Some(more) = other.get("properties").and_then(Value::as_array) else {
        return;
    };
    let Some(obj) = kept.as_object_mut() else {
        return;
    };
    let props = obj
        .entry("properties")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(props) = props {
        for p in more {
            if !props.contains(p) {
                props.push(p.clone());
            }
        }
        props.sort_by_key(|p| p.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_forms() {
        let bare = parse_input("npm").unwrap();
        assert_eq!(bare.packages.len(), 1);
        assert!(bare.packages[&PmName::new("npm")][0].path.is_root());
        let one = parse_input(r#"{"type": "pip", "path": "py", "requirements_files": ["r.txt"]}"#)
            .unwrap();
        let pip = &one.packages[&PmName::new("pip")][0];
        assert_eq!(pip.path.as_str(), "py");
        assert_eq!(
            pip.requirements_files.as_deref(),
            Some(&["r.txt".to_string()][..])
        );
        let list =
            parse_input(r#"[{"type": "npm"}, {"type": "npm"}, {"type": "bundler", "path": "a"}]"#)
                .unwrap();
        assert_eq!(list.packages[&PmName::new("npm")].len(), 1);
        assert_eq!(list.packages[&PmName::new("rubygems")].len(), 1);
        let full =
            parse_input(r#"{"packages": [{"type": "gomod"}], "flags": ["cgo-disable"]}"#).unwrap();
        assert_eq!(full.flags, ["cgo-disable"]);
        let wheels = parse_input(r#"{"type": "pip", "allow_binary": true}"#).unwrap();
        assert_eq!(wheels.flags, ["pip-allow-binary"]);
    }

    #[test]
    fn bad_inputs_are_usage_errors() {
        for bad in [
            "nosuch",
            r#"{"type": "npm", "paht": "x"}"#,
            r#"{"type": "npm", "path": "../x"}"#,
            r#"{"packages": [], "flags": []}"#,
            r#"{"packages": [{"type": "npm"}], "flags": ["no-such-flag"]}"#,
            r#"{"packages": [{"type": "npm"}], "extra": 1}"#,
            r#"{"type": "npm""#,
            r#"[1]"#,
            r#"{"type": "pip", "binary": {"arch": "x86_64"}}"#,
            r#"[{"type": "pip", "requirements_files": ["a.txt"]}, {"type": "pip", "requirements_files": ["b.txt"]}]"#,
        ] {
            let e = parse_input(bad).unwrap_err();
            assert!(e.downcast_ref::<UsageError>().is_some(), "{bad}: {e}");
        }
    }

    fn config_of(vars: &[(&str, &str)]) -> BuildConfig {
        BuildConfig {
            environment_variables: vars
                .iter()
                .map(|(name, value)| BuildEnvVar {
                    name: name.to_string(),
                    value: value.to_string(),
                    kind: None,
                })
                .collect(),
            project_files: Vec::new(),
            options: None,
        }
    }

    #[test]
    fn variables_naming_variables_resolve_as_hermeto_resolves_them() {
        // Hermeto's own gomod variables
        let config = config_of(&[
            ("GOPROXY", "file://${GOMODCACHE}/cache/download"),
            ("GOMODCACHE", "${GOPATH}/pkg/mod"),
            ("GOPATH", "${output_dir}/deps/gomod"),
            ("PRICE", "$$5 ${NOT_A_VARIABLE}"),
        ]);
        assert_eq!(
            resolved_env(&config, Path::new("/out")).unwrap(),
            [
                (
                    "GOPROXY".to_string(),
                    "file:///out/deps/gomod/pkg/mod/cache/download".to_string()
                ),
                (
                    "GOMODCACHE".to_string(),
                    "/out/deps/gomod/pkg/mod".to_string()
                ),
                ("GOPATH".to_string(), "/out/deps/gomod".to_string()),
                ("PRICE".to_string(), "$5 ${NOT_A_VARIABLE}".to_string()),
            ]
        );
        let cycle = config_of(&[("A", "x${B}"), ("B", "${C}"), ("C", "$A")]);
        let e = resolved_env(&cycle, Path::new("/out")).unwrap_err();
        assert_eq!(e, "the variables A → B → C → A name each other");
    }

    #[test]
    fn env_json_is_what_pythons_json_dumps_prints() {
        // python3 -c 'import json; print(json.dumps([{"name": ..., "value": ...}, ...]))'
        let vars = [
            (
                "A".to_string(),
                "é\u{2028}😀\u{7f}\u{1}\u{8}\"\\/".to_string(),
            ),
            ("GOFLAGS".to_string(), "-mod=mod\tx\n".to_string()),
        ];
        assert_eq!(
            env_json(&vars),
            r#"[{"name": "A", "value": "\u00e9\u2028\ud83d\ude00\u007f\u0001\b\"\\/"}, {"name": "GOFLAGS", "value": "-mod=mod\tx\n"}]"#
        );
        assert_eq!(env_json(&[]), "[]");
    }

    #[test]
    fn templates_as_python_reads_them() {
        let lookup = |n: &str| (n == "output_dir").then(|| "/out".to_string());
        assert_eq!(
            safe_substitute(
                "file://${output_dir}/deps $output_dir/x $$ $HOME ${x $ ${}",
                &lookup
            ),
            "file:///out/deps /out/x $ $HOME ${x $ ${}"
        );
        assert_eq!(safe_substitute("$$$$output_dir", &lookup), "$$output_dir");
    }
}
