//! Larder's api: the Cachito-compatible REST API, the per-request repositories, and the
//! publisher that hands jobs to workers.

pub mod auth;
pub mod bundles;
pub mod cleanup;
pub mod counters;
pub mod db;
pub mod docs;
pub mod error;
pub mod health;
pub mod json_stream;
pub mod models;
pub mod publisher;
pub mod repos;
pub mod schema;
pub mod search_backfill;
pub mod secret;
pub mod sql_types;
pub mod store_usage;
pub mod sweeper;
pub mod tls;
pub mod transfers;
pub mod ui;
pub mod v1;

#[cfg(test)]
mod test_db;
/// A real S3 server (moto) for the tests, as the end-to-end tests start it.
#[cfg(test)]
#[path = "../../tests/e2e/support/s3.rs"]
#[allow(dead_code)]
mod test_s3;

use actix_web::{web, App, HttpServer};
use common::job_queue::InProcessQueue;
use common::store::object::ObjectTier;
use common::store::SharedStore;
use common::token::TokenSecret;
use common::{Catalogue, Config, Store};
use std::sync::Arc;
use std::time::Duration;

/// The `service_counters` row of `larder_bytes_downloaded_total`.
const BYTES_DOWNLOADED: &str = "bytes_downloaded";

pub struct AppState {
    pub config: Config,
    pub database: db::Database,
    pub pool: db::DbPool,
    pub publisher: Arc<publisher::Publisher>,
    /// The store every api and worker shares (`LARDER_STORE_URL`).
    pub shared: SharedStore,
    /// The shared store's directory; on an object store, `LARDER_DATA_DIR` (what an earlier
    /// version left there: logs, the secret file).
    pub store: Store,
    /// Set when the shared store is an object store: stored files are read from it.
    pub objects: Option<ObjectTier>,
    pub secret: TokenSecret,
    /// `None` when authentication is off.
    pub auth: Option<auth::Authentication>,
    /// Bytes served to clients, by every instance (`/metrics`).
    pub bytes_downloaded: Arc<counters::SharedCounter>,
    pub database_health: Arc<health::DatabaseHealth>,
    /// The package managers this deployment processes (the worker's registry).
    pub catalogue: Catalogue,
    /// What the store holds, as last measured (`/ui/status`).
    pub store_usage: Arc<store_usage::StoreUsage>,
    /// With an in-process queue: its lock on the database, for as long as the api runs.
    pub in_process_lock: Option<publisher::InProcessQueueLock>,
    /// An SQLite database's one server (see `db::lock_server`).
    _server_lock: db::ServerLock,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] db::DbSetupError),
    #[error(transparent)]
    Auth(#[from] auth::AuthSetupError),
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    #[error("LARDER_STORE_URL: {0}")]
    Store(#[from] common::store::object::ObjectTierError),
    #[error("cannot read or create the token secret: {0}")]
    Secret(#[from] secret::SecretError),
    #[error("LARDER_AMQP_URL is not a valid AMQP URI: {0}")]
    BrokerUri(String),
    #[error("LARDER_AMQP_URL is not set: `larder api` sends jobs to RabbitMQ (only `larder serve` has a queue of its own)")]
    NoBroker,
    #[error("cannot resend the jobs of the in-process queue: {0}")]
    Resend(#[from] publisher::DispatchError),
    #[error(transparent)]
    QueueLock(#[from] publisher::QueueLockError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Registers every route of the API from one table, which the OpenAPI test reads too (the web
/// pages for people have their own, `ui::UI_ROUTES`). Each route is its
/// own resource, guarded by its method, with the JSON body limit of its endpoint.
macro_rules! routes {
    ($($method:ident $path:literal => $handler:path),* $(,)?) => {
        /// Every route of the api: (method, path).
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(cfg.service(
                web::resource($path)
                    .guard(method_guard(stringify!($method)))
                    .app_data(error::json_config(json_body_limit(stringify!($method), $path)))
                    .route(web::route().to($handler)),
            );)*
        }
    };
}

/// `HEAD` answers wherever `GET` does (actix sends the headers, Content-Length included, and no
/// body).
fn method_guard(method: &str) -> actix_web::guard::AnyGuard {
    use actix_web::guard;
    match method {
        "get" => guard::Any(guard::Get()).or(guard::Head()),
        "post" => guard::Any(guard::Post()),
        "put" => guard::Any(guard::Put()),
        "patch" => guard::Any(guard::Patch()),
        other => unreachable!("no route uses the method {other}"),
    }
}

/// Submissions are small; a worker's reports of a large lockfile are not.
fn json_body_limit(method: &str, path: &str) -> usize {
    match (method, path) {
        ("post", "/api/v1/requests") => error::SUBMISSION_BODY_LIMIT,
        ("patch", _) => error::WORKER_UPDATE_BODY_LIMIT,
        ("put" | "post", _) => error::WORKER_REPORT_BODY_LIMIT,
        _ => error::SUBMISSION_BODY_LIMIT,
    }
}

/// The longest path and query string the api reads (the longest real one, a deep npm or Go
/// module path, is a few hundred bytes).
pub const MAX_URI_BYTES: usize = 8 << 10;
/// The most header bytes (names and values) the api reads.
pub const MAX_HEADER_BYTES: usize = 32 << 10;

/// Refuse request heads beyond the bounds above with Cachito's error body (actix itself closes
/// the connection with an empty 431 past 128 KiB or 96 headers).
async fn bound_request_head(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::http::StatusCode;
    let uri = req.uri();
    let uri_bytes = uri.path().len() + uri.query().map_or(0, |q| q.len() + 1);
    if uri_bytes > MAX_URI_BYTES {
        return Err(error::ApiError {
            status: StatusCode::URI_TOO_LONG,
            message: format!("The request URI is longer than {MAX_URI_BYTES} bytes"),
        }
        .into());
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(error::ApiError {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            message: format!("The request headers are larger than {MAX_HEADER_BYTES} bytes"),
        }
        .into());
    }
    next.call(req).await
}

/// Stored files (bundles, tarballs, crates, zips, wheels) go out as stored, with their
/// Content-Length: their handlers mark them `Content-Encoding: identity`, which keeps
/// `Compress` off them, and this strips the marker on the way out.
async fn strip_identity_marker(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    if headers
        .get(actix_web::http::header::CONTENT_ENCODING)
        .is_some_and(|v| v == "identity")
    {
        headers.remove(actix_web::http::header::CONTENT_ENCODING);
    }
    Ok(res)
}

routes! {
    get "/" => ui::landing::page,
    get "/api" => docs::index,
    get "/openapi.yaml" => docs::openapi,
    get "/healthz" => v1::status::healthz,
    get "/metrics" => v1::status::metrics,
    get "/api/v1/status" => v1::status::status,
    get "/api/v1/status/short" => v1::status::status_short,
    get "/api/v1/content-manifest" => v1::manifests::content_manifest,
    get "/api/v1/dependencies" => v1::dependencies::search,
    get "/api/v1/sbom" => v1::manifests::sbom,
    get "/api/v1/request-metrics" => v1::request_metrics::list,
    get "/api/v1/request-metrics/summary" => v1::request_metrics::summary,
    get "/api/v1/transfers" => v1::transfers::list,
    get "/api/v1/requests" => v1::requests::list,
    post "/api/v1/requests" => v1::requests::create,
    get "/api/v1/requests/latest" => v1::requests::latest,
    get "/api/v1/requests/{id}" => v1::requests::get,
    patch "/api/v1/requests/{id}" => v1::requests::patch,
    post "/api/v1/requests/{id}/claim" => v1::leases::claim,
    post "/api/v1/requests/{id}/heartbeat" => v1::leases::heartbeat,
    get "/api/v1/requests/{id}/download" => v1::files::download,
    get "/api/v1/requests/{id}/logs" => v1::logs::get,
    post "/api/v1/requests/{id}/logs" => v1::logs::append,
    get "/api/v1/requests/{id}/environment-variables" => v1::files::environment_variables,
    get "/api/v1/requests/{id}/configuration-files" => v1::files::get_configuration_files,
    post "/api/v1/requests/{id}/configuration-files" => v1::files::add_configuration_files,
    get "/api/v1/requests/{id}/content-manifest" => v1::files::content_manifest,
    get "/api/v1/requests/{id}/sbom" => v1::manifests::request_sbom,
    get "/api/v1/requests/{id}/packages" => v1::files::get_packages,
    put "/api/v1/requests/{id}/packages" => v1::files::put_packages,
    put "/api/v1/requests/{id}/artifacts" => v1::files::put_artifacts,
    post "/api/v1/requests/{id}/artifacts" => v1::files::add_artifacts,
    get "/repos/{id}/t/{token}/{pm}/{tail:.*}" => repos::serve_with_path_token,
    get "/repos/{id}/{pm}/{tail:.*}" => repos::serve_with_header_token,
}

impl AppState {
    /// `in_process`: the queue of `larder serve`'s own worker, used when `LARDER_AMQP_URL` is
    /// unset.
    pub async fn new(
        config: Config,
        catalogue: Catalogue,
        in_process: Option<InProcessQueue>,
    ) -> Result<Self, StartError> {
        let auth = auth::Authentication::from_config(&config)?;
        if auth.is_none() {
            tracing::warn!("none of LARDER_API_TOKENS, LARDER_TLS_CLIENT_CA, LARDER_TRUSTED_PROXIES is set: authentication is OFF, anyone can submit requests and act as a worker");
        }
        let database = db::Database::of(&config)?;
        tracing::info!(database = %database.describe(), "database");
        db::create(&database).await?;
        let server_lock = db::lock_server(&database)?;
        let pool = db::setup(&database, config.db_pool_size.into()).await?;
        let database_health = Arc::new(health::DatabaseHealth::new(&database));
        let shared = SharedStore::open(&config)?;
        let store = shared.directory(&config);
        let objects = shared.objects().cloned();
        let secret = secret::load_or_create(&pool, &config.data_dir).await?;
        let mut in_process_lock = None;
        let publisher = match (
            config.broker_uri().map_err(StartError::BrokerUri)?,
            in_process,
        ) {
            (Some(broker), _) => publisher::Publisher::new(broker, &config.queue),
            (None, Some(queue)) => {
                in_process_lock = Some(publisher::lock_in_process_queue(&database).await?);
                publisher::Publisher::InProcess(queue)
            }
            (None, None) => return Err(StartError::NoBroker),
        };
        let publisher = Arc::new(publisher);
        Ok(Self {
            config,
            database,
            pool,
            publisher,
            shared,
            store,
            objects,
            secret,
            auth,
            bytes_downloaded: Arc::new(counters::SharedCounter::new(BYTES_DOWNLOADED)),
            database_health,
            catalogue,
            store_usage: Arc::default(),
            in_process_lock,
            _server_lock: server_lock,
        })
    }
}

/// Connections the kernel queues before the api accepts them.
const BACKLOG: u32 = 2048;
/// Open connections per server thread (4 threads); past it, new ones wait in the backlog.
const MAX_CONNECTIONS_PER_WORKER: usize = 2048;
/// A client has this long to send its request head.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Start the api: listen, and run the dispatcher beside it. `catalogue` is what the workers
/// process (`worker::pkg_managers::catalogue()`); `in_process` the queue of `larder serve`'s
/// worker (used without `LARDER_AMQP_URL`). Returns the server to await.
pub async fn start(
    config: Config,
    catalogue: Catalogue,
    in_process: Option<InProcessQueue>,
) -> Result<actix_web::dev::Server, StartError> {
    let state = web::Data::new(AppState::new(config, catalogue, in_process).await?);
    if let publisher::Publisher::InProcess(queue) = &*state.publisher {
        let resent = publisher::resend_in_process_jobs(&state.pool, queue).await?;
        if resent > 0 {
            tracing::info!(
                requests = resent,
                "jobs of requests in progress sent again to this process's worker"
            );
        }
    } else {
        let requeued = publisher::requeue_in_process_jobs(&state.database).await?;
        if requeued > 0 {
            tracing::info!(
                requests = requeued,
                "jobs a `larder serve` queued in its own process sent to RabbitMQ"
            );
        }
    }
    if !state.publisher.is_in_process() && !state.publisher.check().await {
        tracing::warn!(
            "RabbitMQ is not reachable now; requests are recorded and their jobs sent once it is"
        );
    }
    // The first check before listening, so /healthz is right from the first answer.
    let mut health_conn = None;
    state.database_health.check(&mut health_conn).await;
    tokio::spawn(state.database_health.clone().run(health_conn));
    tokio::spawn(publisher::run_dispatcher(
        state.pool.clone(),
        state.publisher.clone(),
        Duration::from_secs(2),
    ));
    tokio::spawn(search_backfill::run(state.pool.clone()));
    tokio::spawn(counters::run(
        state.bytes_downloaded.clone(),
        state.pool.clone(),
    ));
    tokio::spawn(sweeper::run(
        state.pool.clone(),
        state.publisher.clone(),
        state.config.clone(),
        (state.config.heartbeat_timeout / 4)
            .clamp(Duration::from_millis(200), Duration::from_secs(15)),
    ));
    let addr = state.config.listen.clone();
    let tls = tls::server_config(&state.config)?;
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .app_data(error::path_config())
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                error::ApiError::bad_request(format!("Invalid query: {e}")).into()
            }))
            .wrap(actix_web::middleware::Compress::default())
            .wrap(actix_web::middleware::from_fn(strip_identity_marker))
            .wrap(actix_web::middleware::from_fn(bound_request_head))
            .configure(configure)
            .configure(ui::configure)
            .default_service(web::to(|| async {
                Err::<actix_web::HttpResponse, _>(error::ApiError::not_found())
            }))
    })
    .workers(4)
    // a response streamed in several writes (a request's JSON, a repository's index) waited
    // for the client's delayed ACK: Nagle's algorithm held its last segment 40 ms
    .tcp_nodelay(true)
    .backlog(BACKLOG)
    .max_connections(MAX_CONNECTIONS_PER_WORKER)
    .client_request_timeout(REQUEST_HEAD_TIMEOUT)
    .client_disconnect_timeout(Duration::from_secs(2))
    .on_connect(tls::on_connect);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = match tls {
        Some(tls) => server.bind_rustls_0_23(&addr, tls),
        None => server.bind(&addr),
    }
    .map_err(|source| StartError::Bind {
        addr: addr.clone(),
        source,
    })?
    .run();
    tracing::info!(%addr, scheme, "api listening");
    Ok(server)
}
