//! Larder's worker: consumes jobs from RabbitMQ and processes requests.

pub mod api_client;
pub mod artifact_spool;
pub mod blocking;
pub mod bundle;
pub mod fetch;
pub mod git_deps;
pub mod git_pack;
pub mod local;
pub mod outbound;
pub mod pipeline;
pub mod pkg_managers;
pub mod request_log;
pub mod sandbox;
pub mod shared_objects;
pub mod source;
/// A real S3 server (moto) for the tests, as the end-to-end tests start it.
#[cfg(test)]
#[path = "../../tests/e2e/support/s3.rs"]
#[allow(dead_code)]
mod test_s3;

use api_client::ApiClient;
use common::job_queue::{InProcessJob, InProcessJobs, InProcessQueue};
use common::{Config, JobMessage, Store};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use pipeline::Outcome;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker closed the consumer")]
    ConsumerClosed,
}

/// What a worker checks of its configuration before it takes a job (`larder worker` and
/// `larder serve` refuse to start on an error): a `LARDER_REPOS_CA_FILE` that cannot be read or
/// is not PEM certificates would fail every request that hands back a repository, so it is
/// better found at deployment than by the first user. Requests read it again (a renewed CA
/// needs no restart) and fail with the same reason if it went bad since.
pub fn check_config(config: &Config) -> Result<(), pkg_managers::repos_ca::ReposCaError> {
    let Some(path) = config.repos_ca_file.as_deref() else {
        return Ok(());
    };
    let ca = pkg_managers::ReposCa::read(path)?;
    tracing::info!(
        file = %path.display(),
        certificates = ca.certificates(),
        "requests hand back the repositories' CA"
    );
    if !config.public_url.starts_with("https://") {
        tracing::warn!(
            public_url = %config.public_url,
            "LARDER_REPOS_CA_FILE is set but LARDER_PUBLIC_URL is not https: clients will not need it"
        );
    }
    Ok(())
}

/// Consume jobs forever, reconnecting to the broker whenever the connection drops. The
/// requests' logs go to the api through `request_logs` (from [`request_log::layer`]), if given.
/// The worker, until its process ends: jobs from RabbitMQ (`LARDER_AMQP_URL`) or, in `larder
/// serve` without it, from `in_process`.
pub async fn run(
    config: Config,
    request_logs: Option<request_log::RequestLogs>,
    in_process: Option<InProcessQueue>,
) {
    configure_libgit2();
    let config = Arc::new(config);
    let shared = match common::store::SharedStore::open(&config) {
        Ok(shared) => shared,
        Err(e) => {
            tracing::error!(error = %e, "LARDER_STORE_URL names no usable store; the worker stops");
            return;
        }
    };
    // on an object store, a cache of it in the work directory
    let store = shared.worker_directory(&config);
    let objects = shared
        .objects()
        .map(|tier| shared_objects::SharedObjects::new(tier.clone(), store.clone()));
    if objects.is_some() {
        // this process holds the work directory (`lock_work_dir`): bundles an earlier run left
        // there are nobody's now (the object store has every one that was named)
        match std::fs::remove_dir_all(store.root().join("bundles")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(error = %e, "cannot remove earlier bundles from the work directory")
            }
            _ => {}
        }
    }
    let cache = objects.as_ref().map(|_| {
        Arc::new(shared_objects::WorkCache::new(
            store.root(),
            config.work_cache_size,
        ))
    });
    // the api is served at the public URL, whose certificate that CA signs
    let repos_ca = match pkg_managers::repos_ca::ReposCa::from_config(&config) {
        Ok(ca) => ca,
        Err(e) => {
            tracing::error!(error = %e, "the api's CA is not usable; trusting the system's CAs only");
            None
        }
    };
    let api = ApiClient::new(
        config.api_url(),
        config.worker_token.clone(),
        repos_ca.as_ref().map(|ca| ca.pem()),
    );
    let api = match request_logs {
        Some(logs) => {
            // pid 1 in every container, and a restarted process counts its chunks from 0
            let writer = format!(
                "{}-{}",
                pipeline::worker_name(),
                &common::token::new_salt()[..12]
            );
            logs.ship(api.clone(), writer);
            api.with_request_logs(logs)
        }
        None => api,
    };
    pipeline::remove_stale_temp(&store, config.request_timeout + config.heartbeat_timeout);
    match common::store::download_lease::remove_dead_leases(&store) {
        Ok(0) => {}
        Ok(n) => tracing::info!(leases = n, "removed the download leases of dead workers"),
        Err(e) => {
            tracing::warn!(error = %e, "could not remove the download leases of dead workers")
        }
    }
    let cached = objects.clone().zip(cache.clone());
    let broker = match (config.broker_uri(), in_process) {
        (Ok(Some(broker)), _) => broker,
        (Ok(None), Some(queue)) => {
            let Some(jobs) = queue.take_jobs() else {
                tracing::error!("another worker took this process's queue; the worker stops");
                return;
            };
            return consume_in_process(config, store, cached, api, queue, jobs).await;
        }
        (Ok(None), None) => {
            tracing::error!("LARDER_AMQP_URL is not set: `larder worker` takes jobs from RabbitMQ (only `larder serve` has a queue of its own); the worker stops");
            return;
        }
        (Err(e), _) => {
            tracing::error!(error = %e, "LARDER_AMQP_URL is not a valid AMQP URI; the worker stops");
            return;
        }
    };
    let mut delay = Duration::from_millis(500);
    loop {
        match consume(
            config.clone(),
            store.clone(),
            cached.clone(),
            api.clone(),
            broker.clone(),
        )
        .await
        {
            Ok(()) => delay = Duration::from_millis(500),
            Err(e) => {
                tracing::warn!(error = %e, "lost the broker; reconnecting");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// What became of a job.
enum Disposition {
    /// Finished (or not this worker's to do): the job is done with.
    Done,
    /// To be tried again a little later.
    Retry,
}

/// Process one job.
async fn work_on(
    config: &Config,
    store: &Store,
    cached: Option<&(
        shared_objects::SharedObjects,
        Arc<shared_objects::WorkCache>,
    )>,
    api: &ApiClient,
    request_id: i64,
    redelivered: bool,
) -> Disposition {
    let span = tracing::info_span!("request", request_id);
    let disposition = async {
        let hold = match cached {
            Some((_, cache)) => Some(cache.hold().await),
            None => None,
        };
        let objects = cached.map(|(objects, _)| objects);
        let processed =
            pipeline::process(config, store, objects, api, request_id, redelivered).await;
        drop(hold);
        if let Some((_, cache)) = cached {
            cache.prune_when_over().await;
        }
        match processed {
            Ok(
                Outcome::Complete | Outcome::Failed | Outcome::Skipped | Outcome::Superseded,
            ) => Disposition::Done,
            Err(e) if e_is_permanent(&e) => {
                tracing::error!(error = %e, "the api refused this job; dropping it");
                Disposition::Done
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not finish the request; it goes back on the queue");
                tokio::time::sleep(RETRY_AFTER).await;
                Disposition::Retry
            }
        }
    }
    .instrument(span)
    .await;
    // what was logged after the final state, and by a skipped or superseded attempt
    api.flush_request_log(request_id).await;
    disposition
}

/// How long a job that could not be finished waits before it goes back on the queue.
const RETRY_AFTER: Duration = Duration::from_secs(5);

type Cached = Option<(
    shared_objects::SharedObjects,
    Arc<shared_objects::WorkCache>,
)>;

/// Jobs from `larder serve`'s own queue, `LARDER_WORKER_CONCURRENCY` at a time, until the api
/// of the process is gone.
async fn consume_in_process(
    config: Arc<Config>,
    store: Store,
    cached: Cached,
    api: ApiClient,
    queue: InProcessQueue,
    mut jobs: InProcessJobs,
) {
    let running = Arc::new(tokio::sync::Semaphore::new(
        usize::from(config.worker_concurrency).max(1),
    ));
    tracing::info!(
        concurrency = config.worker_concurrency,
        "worker taking jobs from this process's queue"
    );
    loop {
        let Ok(slot) = running.clone().acquire_owned().await else {
            return;
        };
        let Some(job) = jobs.recv().await else {
            return;
        };
        let (config, store, api, cached, queue) = (
            config.clone(),
            store.clone(),
            api.clone(),
            cached.clone(),
            queue.clone(),
        );
        tokio::spawn(async move {
            let done = work_on(
                &config,
                &store,
                cached.as_ref(),
                &api,
                job.request_id,
                job.redelivered,
            )
            .await;
            drop(slot);
            if let Disposition::Retry = done {
                let again = InProcessJob {
                    redelivered: true,
                    ..job
                };
                if queue.send(again).is_err() {
                    tracing::warn!(
                        request_id = job.request_id,
                        "the queue is gone; the job is sent again at the next start"
                    );
                }
            }
        });
    }
}

async fn consume(
    config: Arc<Config>,
    store: Store,
    cached: Cached,
    api: ApiClient,
    broker: lapin::uri::AMQPUri,
) -> Result<(), WorkerError> {
    let conn = Connection::connect_uri(broker, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .queue_declare(
            config.queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .basic_qos(config.worker_concurrency.max(1), BasicQosOptions::default())
        .await?;
    let tag = format!("larder-worker-{}", std::process::id());
    let mut consumer = channel
        .basic_consume(
            config.queue.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = %config.queue, concurrency = config.worker_concurrency, "worker consuming");
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        let (config, store, api) = (config.clone(), store.clone(), api.clone());
        let cached = cached.clone();
        tokio::spawn(async move {
            let Ok(job) = serde_json::from_slice::<JobMessage>(&delivery.data) else {
                tracing::error!("dropping a malformed job message");
                let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
                return;
            };
            let done = work_on(
                &config,
                &store,
                cached.as_ref(),
                &api,
                job.request_id,
                delivery.redelivered,
            )
            .await;
            let _ = match done {
                Disposition::Done => delivery.ack(BasicAckOptions::default()).await,
                Disposition::Retry => {
                    delivery
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        })
                        .await
                }
            };
        });
    }
    Err(WorkerError::ConsumerClosed)
}

/// libgit2's process-wide options; before any other use of git2 (a worker's start, a fetch
/// process's).
pub fn configure_libgit2() {
    set_git_timeouts();
    source::limit_libgit2_mappings();
}

/// libgit2's socket timeouts: a git server that stops sending is given up on, as the HTTP
/// client does (libgit2 has none by default, and its progress callback, which enforces the
/// download deadline, only runs while data arrives).
fn set_git_timeouts() {
    // SAFETY: libgit2 options are process globals written without synchronization; this runs
    // at worker start, before any job, so before any git operation of this process.
    let result = unsafe {
        git2::opts::set_server_connect_timeout_in_milliseconds(30_000)
            .and_then(|()| git2::opts::set_server_timeout_in_milliseconds(120_000))
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not set the git server timeouts");
    }
}

fn e_is_permanent(e: &pipeline::PipelineError) -> bool {
    match e {
        pipeline::PipelineError::Api(api) => api.is_permanent(),
    }
}
