//! Larder's api: the Cachito-compatible REST API, the per-request repositories, and the
//! publisher that hands jobs to workers.

pub mod auth;
pub mod cleanup;
pub mod db;
pub mod docs;
pub mod error;
pub mod models;
pub mod publisher;
pub mod repos;
pub mod schema;
pub mod v1;

use actix_web::{web, App, HttpServer};
use common::config::Identity;
use common::token::TokenSecret;
use common::{Config, Store};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

pub struct AppState {
    pub config: Config,
    pub pool: db::DbPool,
    pub publisher: Arc<publisher::Publisher>,
    pub store: Store,
    pub secret: TokenSecret,
    pub identities: Option<BTreeMap<String, Identity>>,
    pub bytes_downloaded: Arc<AtomicU64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] db::DbSetupError),
    #[error(transparent)]
    Tokens(#[from] common::config::TokenListError),
    #[error("cannot read or create the token secret: {0}")]
    Secret(std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Registers every route from one table, which the OpenAPI test reads too.
macro_rules! routes {
    ($($method:ident $path:literal => $handler:path),* $(,)?) => {
        /// Every route of the api: (method, path).
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(cfg.route($path, method_route(stringify!($method)).to($handler));)*
        }
    };
}

/// `HEAD` answers wherever `GET` does (actix sends the headers, Content-Length included, and no
/// body).
fn method_route(method: &str) -> actix_web::Route {
    use actix_web::guard;
    match method {
        "get" => web::route().guard(guard::Any(guard::Get()).or(guard::Head())),
        "post" => web::post(),
        "put" => web::put(),
        "patch" => web::patch(),
        other => unreachable!("no route uses the method {other}"),
    }
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
    get "/" => docs::index,
    get "/openapi.yaml" => docs::openapi,
    get "/healthz" => v1::status::healthz,
    get "/metrics" => v1::status::metrics,
    get "/api/v1/status" => v1::status::status,
    get "/api/v1/content-manifest" => v1::manifests::content_manifest,
    get "/api/v1/sbom" => v1::manifests::sbom,
    get "/api/v1/requests" => v1::requests::list,
    post "/api/v1/requests" => v1::requests::create,
    get "/api/v1/requests/latest" => v1::requests::latest,
    get "/api/v1/requests/{id}" => v1::requests::get,
    patch "/api/v1/requests/{id}" => v1::requests::patch,
    get "/api/v1/requests/{id}/job" => v1::requests::job,
    get "/api/v1/requests/{id}/download" => v1::files::download,
    get "/api/v1/requests/{id}/logs" => v1::files::logs,
    get "/api/v1/requests/{id}/environment-variables" => v1::files::environment_variables,
    get "/api/v1/requests/{id}/configuration-files" => v1::files::get_configuration_files,
    post "/api/v1/requests/{id}/configuration-files" => v1::files::add_configuration_files,
    get "/api/v1/requests/{id}/content-manifest" => v1::files::content_manifest,
    get "/api/v1/requests/{id}/packages" => v1::files::get_packages,
    put "/api/v1/requests/{id}/packages" => v1::files::put_packages,
    put "/api/v1/requests/{id}/artifacts" => v1::files::put_artifacts,
    post "/api/v1/requests/{id}/artifacts" => v1::files::add_artifacts,
    get "/repos/{id}/t/{token}/{pm}/{tail:.*}" => repos::serve_with_path_token,
    get "/repos/{id}/{pm}/{tail:.*}" => repos::serve_with_header_token,
}

impl AppState {
    pub async fn new(config: Config) -> Result<Self, StartError> {
        let identities = config.identities()?;
        if identities.is_none() {
            tracing::warn!("LARDER_API_TOKENS is not set: authentication is OFF, anyone can submit requests and act as a worker");
        }
        let pool = db::setup(&config.database_url).await?;
        let store = Store::new(&config.data_dir);
        let secret = TokenSecret::load_or_create(&config.data_dir.join("secret.key"))
            .map_err(StartError::Secret)?;
        let publisher = Arc::new(publisher::Publisher::new(&config.amqp_url, &config.queue));
        Ok(Self {
            config,
            pool,
            publisher,
            store,
            secret,
            identities,
            bytes_downloaded: Arc::new(AtomicU64::new(0)),
        })
    }
}

/// Start the api: listen, and run the dispatcher beside it. Returns the server to await.
pub async fn start(config: Config) -> Result<actix_web::dev::Server, StartError> {
    let state = web::Data::new(AppState::new(config).await?);
    if !state.publisher.check().await {
        tracing::warn!(
            "RabbitMQ is not reachable now; requests are recorded and their jobs sent once it is"
        );
    }
    tokio::spawn(publisher::run_dispatcher(
        state.pool.clone(),
        state.publisher.clone(),
        Duration::from_secs(2),
    ));
    let addr = state.config.listen.clone();
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .app_data(error::json_config())
            .app_data(error::path_config())
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                error::ApiError::bad_request(format!("Invalid query: {e}")).into()
            }))
            .wrap(actix_web::middleware::Compress::default())
            .wrap(actix_web::middleware::from_fn(strip_identity_marker))
            .configure(configure)
            .default_service(web::to(|| async {
                Err::<actix_web::HttpResponse, _>(error::ApiError::not_found())
            }))
    })
    .workers(4)
    .bind(&addr)
    .map_err(|source| StartError::Bind {
        addr: addr.clone(),
        source,
    })?
    .run();
    tracing::info!(%addr, "api listening");
    Ok(server)
}
