//! The client verbs: talk to a Larder (or Cachito) api over HTTP.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args, Clone)]
pub struct Server {
    /// The api's base URL.
    #[arg(
        long,
        env = "LARDER_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// A user token (`Authorization: Bearer`).
    #[arg(long, env = "LARDER_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// A client certificate (PEM) to authenticate with; its key in `--key` or in the same file.
    #[arg(long, env = "LARDER_CERT", global = true)]
    cert: Option<PathBuf>,
    /// The private key (PEM) of `--cert`.
    #[arg(long, env = "LARDER_KEY", global = true, requires = "cert")]
    key: Option<PathBuf>,
    /// The CA certificates (PEM) to verify the api with, instead of the system's.
    #[arg(long, env = "LARDER_CACERT", global = true)]
    cacert: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Submit a request.
    Submit {
        #[command(flatten)]
        server: Server,
        /// Repository URL, or `.` for the git checkout in the current directory.
        #[arg(long)]
        repo: String,
        /// A full commit id, or `HEAD` (with `--repo .`).
        #[arg(long = "ref")]
        git_ref: String,
        /// Package manager (repeatable).
        #[arg(long = "pkg")]
        pkgs: Vec<String>,
        /// `PM=PATH`: process PATH with PM (repeatable).
        #[arg(long = "package-path")]
        package_paths: Vec<String>,
        /// Request flag (repeatable).
        #[arg(long = "flag")]
        flags: Vec<String>,
        /// Wait until the request is final.
        #[arg(long)]
        wait: bool,
        /// Wait, then download the bundle to FILE.
        #[arg(long)]
        download: Option<PathBuf>,
    },
    /// Show a request.
    Status {
        #[command(flatten)]
        server: Server,
        id: i64,
    },
    /// Wait until a request is final, with a live progress line.
    Wait {
        #[command(flatten)]
        server: Server,
        id: i64,
    },
    /// Download a request's bundle, verifying its Digest.
    Download {
        #[command(flatten)]
        server: Server,
        id: i64,
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Print a request's environment variables.
    Env {
        #[command(flatten)]
        server: Server,
        id: i64,
        #[arg(long, value_enum, default_value_t = EnvFormat::Shell)]
        format: EnvFormat,
        /// Where the bundle is unpacked (`path` variables are made absolute against it).
        #[arg(long, default_value = ".")]
        bundle_dir: PathBuf,
    },
    /// Write a request's configuration files under DIR (the unpacked bundle's root). With
    /// `--offline`, copy the bundle's own `deps/app-overlay/` over `DIR/app` instead (rewritten
    /// lockfiles and configuration for an offline build; no api needed).
    ConfigFiles {
        #[command(flatten)]
        server: Server,
        #[arg(required_unless_present = "offline")]
        id: Option<i64>,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        offline: bool,
    },
    /// List requests.
    List {
        #[command(flatten)]
        server: Server,
        #[arg(long)]
        state: Option<String>,
    },
    /// List the requests that contain a dependency, newest first: by its purl (`pkg:npm/lodash@4.17.21`,
    /// exact) or by `TYPE/NAME` (`npm/lodash`, `gomod/golang.org/x/net`: any version, or
    /// `--version`).
    Search {
        #[command(flatten)]
        server: Server,
        /// A purl, or TYPE/NAME.
        dependency: String,
        /// Only this version (with TYPE/NAME).
        #[arg(long)]
        version: Option<String>,
        /// Only requests in this state (complete, failed, in_progress, stale).
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: u64,
        #[arg(long, default_value_t = 20)]
        per_page: u64,
    },
}

/// The query of `larder search`: `purl=…` or `type=…&name=…`, then the version, state and page.
fn search_query(
    dependency: &str,
    version: Option<&str>,
    state: Option<&str>,
    page: u64,
    per_page: u64,
) -> Result<String> {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if dependency
        .get(..4)
        .is_some_and(|s| s.eq_ignore_ascii_case("pkg:"))
    {
        if version.is_some() {
            bail!("--version goes with TYPE/NAME; a purl names its version");
        }
        query.append_pair("purl", dependency);
    } else {
        let (kind, name) = dependency
            .split_once('/')
            .filter(|(k, n)| !k.is_empty() && !n.is_empty())
            .ok_or_else(|| {
                anyhow!("{dependency:?} is neither a purl (pkg:TYPE/NAME@VERSION) nor TYPE/NAME")
            })?;
        query.append_pair("type", kind).append_pair("name", name);
        if let Some(v) = version {
            query.append_pair("version", v);
        }
    }
    if let Some(s) = state {
        query.append_pair("state", s);
    }
    query
        .append_pair("page", &page.to_string())
        .append_pair("per_page", &per_page.to_string());
    Ok(query.finish())
}

#[derive(Clone, Copy, ValueEnum)]
pub enum EnvFormat {
    Json,
    Shell,
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn new(server: &Server) -> Result<Self> {
        let read = |file: &Path| {
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
        };
        let mut http = reqwest::Client::builder();
        if let Some(cert) = &server.cert {
            let mut pem = read(cert)?;
            if let Some(key) = &server.key {
                pem.push(b'\n');
                pem.extend(read(key)?);
            }
            http =
                http.identity(reqwest::Identity::from_pem(&pem).with_context(|| {
                    format!("{} is not a PEM certificate and key", cert.display())
                })?);
        }
        if let Some(cacert) = &server.cacert {
            let roots = reqwest::Certificate::from_pem_bundle(&read(cacert)?)
                .with_context(|| format!("{} is not a PEM bundle", cacert.display()))?;
            http = http.tls_certs_only(roots);
        }
        Ok(Self {
            http: http.build().context("cannot set up the HTTP client")?,
            base: server.url.trim_end_matches('/').to_string(),
            token: server.token.clone(),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn json(&self, req: reqwest::RequestBuilder) -> Result<Value> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "{status}: {}",
                body["error"].as_str().unwrap_or("request failed")
            );
        }
        Ok(body)
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.json(self.request(reqwest::Method::GET, path)).await
    }
}

/// Resolve `--repo .` / `--ref HEAD` from the git checkout in the current directory.
fn resolve_local(repo: &str, git_ref: &str) -> Result<(String, String)> {
    if repo != "." && git_ref != "HEAD" {
        return Ok((repo.to_string(), git_ref.to_string()));
    }
    let checkout = git2::Repository::discover(".")
        .context("--repo . / --ref HEAD need a git checkout in the current directory")?;
    let repo = if repo == "." {
        let remote = checkout
            .find_remote("origin")
            .ok()
            .and_then(|r| r.url().ok().map(str::to_string));
        match remote {
            Some(url) => url,
            None => checkout
                .workdir()
                .unwrap_or(checkout.path())
                .canonicalize()?
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string(),
        }
    } else {
        repo.to_string()
    };
    let git_ref = if git_ref == "HEAD" {
        checkout.head()?.peel_to_commit()?.id().to_string()
    } else {
        git_ref.to_string()
    };
    eprintln!("repository {repo} at {git_ref}");
    Ok((repo, git_ref))
}

fn print_request(r: &Value) {
    println!(
        "request {}: {} ({})",
        r["id"],
        r["state"].as_str().unwrap_or("?"),
        r["state_reason"].as_str().unwrap_or("")
    );
    println!(
        "  repo {} at {}",
        r["repo"].as_str().unwrap_or(""),
        r["ref"].as_str().unwrap_or("")
    );
    if let Some(origin) = r["error_origin"].as_str() {
        println!(
            "  error: {origin} ({})",
            r["error_type"].as_str().unwrap_or("")
        );
    }
    if let Some(packages) = r["packages"].as_array() {
        for p in packages {
            println!(
                "  package {} {} {}",
                p["type"].as_str().unwrap_or(""),
                p["name"].as_str().unwrap_or(""),
                p["version"].as_str().unwrap_or("")
            );
        }
    }
}

/// Poll until final; returns the final request.
async fn wait(api: &Api, id: i64) -> Result<Value> {
    let tty = atty_stderr();
    let mut last = String::new();
    loop {
        let r = api.get(&format!("/api/v1/requests/{id}")).await?;
        let line = format!(
            "request {id}: {} - {}",
            r["state"].as_str().unwrap_or("?"),
            r["state_reason"].as_str().unwrap_or("")
        );
        if line != last {
            if tty {
                eprint!("\r\x1b[2K{line}");
            } else {
                eprintln!("{line}");
            }
            last = line;
        }
        if r["state"] != "in_progress" {
            if tty {
                eprintln!();
            }
            return Ok(r);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn atty_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

async fn download(api: &Api, id: i64, output: &Path) -> Result<()> {
    let resp = api
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/requests/{id}/download"),
        )
        .send()
        .await?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        bail!(
            "{status}: {}",
            body["error"].as_str().unwrap_or("download failed")
        );
    }
    let digest_header = resp
        .headers()
        .get("Digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let partial = output.with_extension("part");
    let mut file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let mut hasher = Sha256::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        file.write_all(&chunk)?;
    }
    file.sync_all()?;
    let actual = format!(
        "sha-256={}",
        base64::engine::general_purpose::STANDARD.encode(hasher.finalize())
    );
    match digest_header {
        Some(expected) if expected != actual => {
            let _ = std::fs::remove_file(&partial);
            bail!(
                "the downloaded bundle does not match its Digest header ({expected} != {actual})"
            );
        }
        None => eprintln!("warning: the server sent no Digest header; the bundle is not verified"),
        _ => {}
    }
    std::fs::rename(&partial, output)?;
    eprintln!(
        "bundle of request {id} written to {} ({actual})",
        output.display()
    );
    Ok(())
}

/// Copy `<bundle>/deps/app-overlay/` over `<bundle>/app/`, refusing to follow a symlink of the
/// repository out of `app/`.
fn apply_overlay(bundle: &Path) -> Result<()> {
    let overlay = bundle.join(worker::bundle::APP_OVERLAY);
    let app = bundle.join("app");
    if !app.is_dir() {
        bail!("{} is not an unpacked bundle (no app/)", bundle.display());
    }
    if !overlay.is_dir() {
        eprintln!("{} has no app overlay: nothing to apply", bundle.display());
        return Ok(());
    }
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(overlay.join(&rel))? {
            let entry = entry?;
            let rel = rel.join(entry.file_name());
            let target = app.join(&rel);
            if entry.file_type()?.is_dir() {
                if target.is_symlink() {
                    bail!(
                        "refusing to write through the symlink app/{}",
                        rel.display()
                    );
                }
                std::fs::create_dir_all(&target)?;
                stack.push(rel);
            } else {
                if target.is_symlink() {
                    std::fs::remove_file(&target)?;
                }
                std::fs::copy(entry.path(), &target)?;
                eprintln!("wrote {}", target.display());
            }
        }
    }
    Ok(())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Returns the process exit code.
pub async fn run(cmd: ClientCommand) -> Result<i32> {
    match cmd {
        ClientCommand::Submit {
            server,
            repo,
            git_ref,
            pkgs,
            package_paths,
            flags,
            wait: wait_flag,
            download: download_to,
        } => {
            let api = Api::new(&server)?;
            let (repo, git_ref) = resolve_local(&repo, &git_ref)?;
            let mut body =
                json!({"repo": repo, "ref": git_ref, "pkg_managers": pkgs, "flags": flags});
            let mut packages: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for pp in &package_paths {
                let (pm, path) = pp
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--package-path takes PM=PATH, got {pp}"))?;
                packages
                    .entry(pm.to_string())
                    .or_default()
                    .push(json!({"path": path}));
            }
            if !packages.is_empty() {
                body["packages"] = json!(packages);
            }
            let created = api
                .json(
                    api.request(reqwest::Method::POST, "/api/v1/requests")
                        .json(&body),
                )
                .await?;
            let id = created["id"]
                .as_i64()
                .ok_or_else(|| anyhow!("the api answered without an id"))?;
            println!("{id}");
            if wait_flag || download_to.is_some() {
                let r = wait(&api, id).await?;
                if r["state"] != "complete" {
                    print_request(&r);
                    return Ok(1);
                }
                if let Some(out) = download_to {
                    download(&api, id, &out).await?;
                }
            }
            Ok(0)
        }
        ClientCommand::Status { server, id } => {
            print_request(
                &Api::new(&server)?
                    .get(&format!("/api/v1/requests/{id}"))
                    .await?,
            );
            Ok(0)
        }
        ClientCommand::Wait { server, id } => {
            let r = wait(&Api::new(&server)?, id).await?;
            print_request(&r);
            Ok(if r["state"] == "complete" { 0 } else { 1 })
        }
        ClientCommand::Download { server, id, output } => {
            download(&Api::new(&server)?, id, &output).await?;
            Ok(0)
        }
        ClientCommand::Env {
            server,
            id,
            format,
            bundle_dir,
        } => {
            let env = Api::new(&server)?
                .get(&format!("/api/v1/requests/{id}/environment-variables"))
                .await?;
            match format {
                EnvFormat::Json => println!("{}", serde_json::to_string_pretty(&env)?),
                EnvFormat::Shell => {
                    let root = std::path::absolute(&bundle_dir)?;
                    for (name, info) in env.as_object().into_iter().flatten() {
                        let value = info["value"].as_str().unwrap_or_default();
                        let value = if info["kind"] == "path" {
                            root.join(value).to_string_lossy().into_owned()
                        } else {
                            value.to_string()
                        };
                        println!("export {name}={}", shell_quote(&value));
                    }
                }
            }
            Ok(0)
        }
        ClientCommand::ConfigFiles {
            dir, offline: true, ..
        } => {
            apply_overlay(&dir)?;
            Ok(0)
        }
        ClientCommand::ConfigFiles {
            server, id, dir, ..
        } => {
            let id = id.ok_or_else(|| anyhow!("a request id is required"))?;
            let files = Api::new(&server)?
                .get(&format!("/api/v1/requests/{id}/configuration-files"))
                .await?;
            for f in files.as_array().into_iter().flatten() {
                let path = f["path"].as_str().unwrap_or_default();
                let rel = common::archive::safe_relative(Path::new(path)).ok_or_else(|| {
                    anyhow!("refusing the unsafe configuration file path {path:?}")
                })?;
                let content = base64::engine::general_purpose::STANDARD
                    .decode(f["content"].as_str().unwrap_or_default())?;
                let target = dir.join(rel);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&target, content)?;
                eprintln!("wrote {}", target.display());
            }
            Ok(0)
        }
        ClientCommand::List { server, state } => {
            let api = Api::new(&server)?;
            let mut path = "/api/v1/requests?per_page=100".to_string();
            if let Some(s) = state {
                path.push_str(&format!("&state={s}"));
            }
            let list = api.get(&path).await?;
            for r in list["items"].as_array().into_iter().flatten() {
                println!(
                    "{:>6}  {:<11}  {}  {}  {}",
                    r["id"],
                    r["state"].as_str().unwrap_or(""),
                    &r["ref"].as_str().unwrap_or("")
                        [..12.min(r["ref"].as_str().unwrap_or("").len())],
                    r["repo"].as_str().unwrap_or(""),
                    r["state_reason"].as_str().unwrap_or("")
                );
            }
            Ok(0)
        }
        ClientCommand::Search {
            server,
            dependency,
            version,
            state,
            page,
            per_page,
        } => {
            let query = search_query(
                &dependency,
                version.as_deref(),
                state.as_deref(),
                page,
                per_page,
            )?;
            let found = Api::new(&server)?
                .get(&format!("/api/v1/dependencies?{query}"))
                .await?;
            println!(
                "{:>6}  {:<11}  {:<12}  {:<19}  {:<3}  REPO",
                "ID", "STATE", "REF", "CREATED", "DEV"
            );
            for r in found["items"].as_array().into_iter().flatten() {
                let text = |k: &str| r[k].as_str().unwrap_or("").to_string();
                let (git_ref, created) = (text("ref"), text("created"));
                println!(
                    "{:>6}  {:<11}  {:<12}  {:<19}  {:<3}  {}",
                    r["id"],
                    text("state"),
                    &git_ref[..12.min(git_ref.len())],
                    &created[..19.min(created.len())],
                    if r["dev"] == true { "dev" } else { "-" },
                    text("repo"),
                );
            }
            let meta = &found["meta"];
            println!(
                "page {} of {}, {} requests",
                meta["page"], meta["pages"], meta["total"]
            );
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_queries() {
        assert_eq!(
            search_query("pkg:npm/%40s/c@1.0.0", None, Some("complete"), 1, 20).unwrap(),
            "purl=pkg%3Anpm%2F%2540s%2Fc%401.0.0&state=complete&page=1&per_page=20"
        );
        assert_eq!(
            search_query("gomod/golang.org/x/net", Some("v0.1.0"), None, 2, 5).unwrap(),
            "type=gomod&name=golang.org%2Fx%2Fnet&version=v0.1.0&page=2&per_page=5"
        );
        assert!(search_query("lodash", None, None, 1, 20).is_err());
        assert!(search_query("pkg:npm/a@1", Some("1"), None, 1, 20).is_err());
    }
}
