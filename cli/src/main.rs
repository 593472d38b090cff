//! `larder`: the service (serve, api, worker, migrate, cleanup) and its command-line client.

mod client;
mod hermeto;
mod sbom_merge;
mod transfer;

// glibc's malloc keeps what a large request freed (per-thread arenas, fragmented pages): the
// same build ran a 10,000-package npm request (`cargo bench --bench memory`, debug) at 409 MiB
// peak RSS with glibc (MALLOC_ARENA_MAX=2) and at 216 MiB with jemalloc, which returns freed
// pages to the system; its live heap peaked at 120 MiB (heaptrack).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (`_RJEM_MALLOC_CONF` still overrides them). Pages freed are returned to
/// the system at once instead of after 10 s: a large request frees hundreds of megabytes of
/// short-lived buffers within seconds (a 50,000-package npm request peaked at 377 MiB with the
/// default decay, 315 MiB without it). No per-thread caches: what each of the worker's
/// blocking threads kept cached grew `serve` by 0.5 MiB a warm npm request (40 warm requests
/// of 1,000 packages: 85 MiB peak with them, 41 MiB without; cold 42 and 37).
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: MallocConf =
    MallocConf(c"dirty_decay_ms:0,muzzy_decay_ms:0,tcache:false".as_ptr());

/// A C string pointer as jemalloc reads it (`const char *`).
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);

// SAFETY: points at a static, immutable C string.
unsafe impl Sync for MallocConf {}

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use common::job_queue::InProcessQueue;
use common::Config;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "larder",
    version,
    about = "Source and dependency bundling service (Cachito-compatible)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Hermeto's global options, accepted where pipelines pass them (`hermeto --log-level=info
    /// fetch-deps …`). The log level, unless `LARDER_LOG` says otherwise.
    #[arg(long, global = true, value_name = "LEVEL", ignore_case = true,
          value_parser = ["debug", "info", "warning", "error", "critical"])]
    log_level: Option<String>,
    /// Hermeto's configuration file: not read (Larder's settings are its `LARDER_*` variables).
    #[arg(long, global = true, value_name = "FILE")]
    config_file: Option<std::path::PathBuf>,
    /// Hermeto's mode: Larder is always strict (`permissive` is refused).
    #[arg(long, global = true, value_parser = ["strict"])]
    mode: Option<String>,
}

/// The level `--log-level` asked for, as a tracing filter.
static LOG_LEVEL: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

#[derive(Subcommand)]
enum Command {
    /// Run the api and a worker in one process (creates and migrates the database).
    Serve {
        /// Development mode: allow local repositories and run without authentication.
        #[arg(long)]
        dev: bool,
        #[command(flatten)]
        config: Config,
    },
    /// Run only the api.
    Api {
        #[command(flatten)]
        config: Config,
    },
    /// Run only a worker (several may share one queue).
    Worker {
        #[command(flatten)]
        config: Config,
    },
    /// Create the database if missing and apply migrations.
    Migrate {
        #[command(flatten)]
        config: Config,
    },
    /// Mark requests past their lifetime stale (run it periodically, e.g. from cron).
    Cleanup {
        #[command(flatten)]
        config: Config,
    },
    /// Write what the store holds (sources, dependencies) as volumes and a manifest, to carry
    /// across an air gap: everything, or what was stored since a time or the last export.
    Export(transfer::ExportArgs),
    /// Bring an export into this store: every object checked against the manifest before it
    /// is stored; run again after any failure, it finishes the job. Exit status 2 when some
    /// objects were refused (listed), 1 on an error.
    Import(transfer::ImportArgs),
    /// A worker's git fetch, in a process of its own: a job as JSON on stdin, its report on
    /// stdout.
    #[command(hide = true)]
    GitFetch,
    /// Hermeto's `fetch-deps` with no service: fetch and verify a source directory's
    /// dependencies into an output directory (`deps/`, `bom.json`, `.build-config.json`),
    /// cached in `LARDER_CACHE_DIR` (else `~/.cache/larder`). Exit status 2 on bad input.
    FetchDeps(hermeto::FetchDepsArgs),
    /// Hermeto's `generate-env`: the environment variables a build of a `fetch-deps` output
    /// needs.
    GenerateEnv(hermeto::GenerateEnvArgs),
    /// Hermeto's `inject-files`: write the project files of a `fetch-deps` output into the
    /// source.
    InjectFiles(hermeto::InjectFilesArgs),
    /// Hermeto's `merge-sboms`: one CycloneDX SBOM of several, each component once by purl.
    MergeSboms(hermeto::MergeSbomsArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
}

/// The worker's git fetches run in `larder git-fetch` processes (see
/// `worker::source::fetch_in_child_processes`).
fn fetch_in_child_processes() -> Result<()> {
    let program = std::env::current_exe().context("the path of this program")?;
    worker::source::fetch_in_child_processes(program);
    Ok(())
}

/// Logging to stderr, and, for a process that runs a worker, to the requests' logs (sent to
/// the api once the worker starts).
fn init_tracing(with_request_logs: bool) -> Option<worker::request_log::RequestLogs> {
    let filter = EnvFilter::try_from_env("LARDER_LOG").unwrap_or_else(|_| {
        EnvFilter::new(
            LOG_LEVEL
                .get()
                .copied()
                .unwrap_or("info,lapin=warn,actix_server=warn"),
        )
    });
    use std::io::IsTerminal;
    // colour only on a terminal: redirected logs and log files stay plain text
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry().with(filter).with(fmt);
    if with_request_logs {
        let (layer, logs) = worker::request_log::layer();
        registry.with(layer).init();
        Some(logs)
    } else {
        registry.init();
        None
    }
}

/// The worker of `serve`, on its own runtime whose threads (and their blocking pool, where the
/// archive and hashing work runs) the kernel schedules after the api's: a busy worker on a
/// small machine must not make `/healthz` or a submission wait.
fn spawn_background_worker(
    config: Config,
    request_logs: Option<worker::request_log::RequestLogs>,
    in_process: Option<InProcessQueue>,
) -> Result<std::thread::JoinHandle<()>> {
    spawn_worker(config, true, request_logs, in_process)
}

/// The worker on a runtime of its own. Its blocking pool is bounded: every file a request
/// checks is a short task there, and tokio's default (up to 512 threads, each kept 10 s) made
/// a hundred threads whose allocator caches doubled `serve`'s RSS over repeated warm requests.
fn spawn_worker(
    config: Config,
    lower: bool,
    request_logs: Option<worker::request_log::RequestLogs>,
    in_process: Option<InProcessQueue>,
) -> Result<std::thread::JoinHandle<()>> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(2)
        .max_blocking_threads(config.download_concurrency.max(1) + 8)
        .thread_name("larder-worker")
        .enable_all();
    if lower {
        builder.on_thread_start(lower_priority);
    }
    let runtime = builder
        .build()
        .context("cannot start the worker's runtime")?;
    std::thread::Builder::new()
        .name("larder-worker".into())
        .spawn(move || runtime.block_on(worker::run(config, request_logs, in_process)))
        .context("cannot start the worker's thread")
}

/// Linux keeps a nice value per thread: raise this thread's (a lower priority).
fn lower_priority() {
    // SAFETY: plain system calls on the calling thread's id, no memory is passed
    let done = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10)
    };
    if done != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the worker's priority");
    }
}

/// The store `LARDER_STORE_URL` names, checked at start rather than by the first request.
fn shared_store(config: &Config) -> Result<common::store::SharedStore> {
    common::store::SharedStore::open(config).context("LARDER_STORE_URL")
}

/// A worker on an object store holds its work directory for as long as it runs (kept open by
/// the caller): two worker processes on one directory are refused at start.
fn work_dir_of(config: &Config) -> Result<Option<std::fs::File>> {
    match shared_store(config)? {
        common::store::SharedStore::Objects(_) => {
            let dir = config.work_dir();
            worker::shared_objects::lock_work_dir(&dir)
                .with_context(|| format!("LARDER_WORK_DIR {}", dir.display()))
                .map(Some)
        }
        common::store::SharedStore::Directory(_) => Ok(None),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(level) = &cli.log_level {
        let _ = LOG_LEVEL.set(match level.to_ascii_lowercase().as_str() {
            "debug" => "debug",
            "info" => "info",
            "warning" => "warn",
            _ => "error",
        });
    }
    if let Some(file) = &cli.config_file {
        eprintln!(
            "note: --config-file {} is not read: Larder is configured by its LARDER_* variables",
            file.display()
        );
    }
    let _ = cli.mode;
    match cli.command {
        Command::Serve { dev, mut config } => {
            if dev {
                config.allow_local_repos = true;
                config.api_tokens = None;
                config.tls_client_ca = None;
                config.trusted_proxies = None;
                eprintln!("WARNING: development mode: local repositories are allowed and authentication is OFF");
            }
            let request_logs = init_tracing(true);
            // over TLS the in-process worker reaches the api by its public name, which the
            // certificate is for
            if config.api_url.is_none() && config.tls_cert.is_none() {
                config.api_url = Some(format!(
                    "http://{}",
                    config.listen.replace("0.0.0.0", "127.0.0.1")
                ));
            }
            if config.authentication_on() && config.worker_token.is_none() {
                // The in-process worker gets a token of its own.
                let token = common::token::new_salt();
                config.api_tokens = Some(format!(
                    "{},{token}=larder-worker:worker",
                    config.api_tokens.as_deref().unwrap_or_default()
                ));
                config.worker_token = Some(token);
            }
            let _work_dir = work_dir_of(&config)?;
            worker::check_config(&config)?;
            // without RabbitMQ, jobs go from the api to the worker of this process
            let in_process = match config.broker_uri() {
                Ok(None) => Some(InProcessQueue::default()),
                _ => None,
            };
            if in_process.is_some() {
                eprintln!("LARDER_AMQP_URL is not set: jobs are queued in this process (one `larder serve` per database)");
            }
            let server = api::start(
                config.clone(),
                worker::pkg_managers::catalogue(),
                in_process.clone(),
            )
            .await?;
            fetch_in_child_processes()?;
            let url = config.public_url.trim_end_matches('/').to_string();
            eprintln!(
                "Larder is serving {url}/ (its pages; the API under {url}/api/v1). From a git \
                 checkout, submit its HEAD and download the bundle:\n  LARDER_URL={url} larder \
                 submit --repo . --ref HEAD --download bundle.tar.gz"
            );
            let worker = spawn_background_worker(config, request_logs, in_process)?;
            // a serve whose worker ended would take requests nobody processes: it stops, and
            // a supervisor's restart sends its jobs again
            let worker_ended = tokio::task::spawn_blocking(move || worker.join());
            tokio::select! {
                served = server => served.context("the api stopped")?,
                ended = worker_ended => {
                    let why = match ended {
                        Ok(Ok(())) => "returned",
                        _ => "panicked",
                    };
                    anyhow::bail!("the worker of this process {why} (see its log above); stopping");
                }
            }
        }
        Command::Api { config } => {
            init_tracing(false);
            shared_store(&config)?;
            api::start(config, worker::pkg_managers::catalogue(), None)
                .await?
                .await
                .context("the api stopped")?;
        }
        Command::Worker { config } => {
            if config
                .broker_uri()
                .map_err(|e| anyhow::anyhow!("LARDER_AMQP_URL is not a valid AMQP URI: {e}"))?
                .is_none()
            {
                anyhow::bail!("LARDER_AMQP_URL is not set: `larder worker` takes jobs from RabbitMQ (only `larder serve` has a queue of its own)");
            }
            let request_logs = init_tracing(true);
            let _work_dir = work_dir_of(&config)?;
            worker::check_config(&config)?;
            fetch_in_child_processes()?;
            let worker = spawn_worker(config, false, request_logs, None)?;
            tokio::task::spawn_blocking(move || worker.join())
                .await
                .context("the worker stopped")?
                .map_err(|_| anyhow::anyhow!("the worker panicked"))?;
        }
        Command::Migrate { config } => {
            init_tracing(false);
            let database = api::db::Database::of(&config)?;
            tracing::info!(database = %database.describe(), "database");
            api::db::create(&database).await?;
            let applied = api::db::migrate(&database).await?;
            println!("applied {} migration(s)", applied.len());
        }
        Command::Cleanup { config } => {
            let shared = shared_store(&config)?;
            init_tracing(false);
            let database = api::db::Database::of(&config)?.existing()?;
            tracing::info!(database = %database.describe(), "database");
            let pool = api::db::setup(&database, config.db_pool_size.into()).await?;
            let directory = shared.directory(&config);
            // a blob younger than a request may run can be a running request's, not yet named
            let grace = chrono::Duration::from_std(config.request_timeout * 2)
                .unwrap_or(chrono::Duration::days(1));
            let ids = api::cleanup::run(
                &pool,
                &shared,
                &directory,
                config.request_lifetime_days,
                grace,
            )
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
            println!("{} request(s) marked stale", ids.len());
        }
        Command::Export(args) => {
            init_tracing(false);
            std::process::exit(transfer::export(args).await?)
        }
        Command::Import(args) => {
            init_tracing(false);
            std::process::exit(transfer::import(args).await?)
        }
        Command::GitFetch => {
            let job = serde_json::from_reader(std::io::stdin().lock())
                .context("a git fetch job on stdin")?;
            let report = tokio::task::block_in_place(|| worker::source::run_fetch_job(job));
            serde_json::to_writer(std::io::stdout().lock(), &report)?;
        }
        Command::FetchDeps(args) => {
            init_tracing(false);
            fetch_in_child_processes()?;
            std::process::exit(hermeto::fetch_deps(args).await?)
        }
        Command::GenerateEnv(args) => {
            init_tracing(false);
            std::process::exit(hermeto::generate_env(args)?)
        }
        Command::InjectFiles(args) => {
            init_tracing(false);
            std::process::exit(hermeto::inject_files(args)?)
        }
        Command::MergeSboms(args) => {
            init_tracing(false);
            std::process::exit(hermeto::merge_sboms(args)?)
        }
        Command::Client(cmd) => std::process::exit(client::run(cmd).await?),
    }
    Ok(())
}
