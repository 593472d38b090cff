//! One request, start to finish: source, package managers, bundle, report.

use crate::api_client::Claim;
use crate::api_client::{ApiClient, ApiClientError};
use crate::blocking::blocking;
use crate::pkg_managers::{PmContext, PmOutput, Registered, ReposCa, REGISTRY};
use crate::shared_objects::SharedObjects;
use crate::{bundle, sandbox, source};
use common::archive::UnpackLimits;
use common::{Config, ErrorKind, Failure, Job, PackagesData, Store};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The api could not be told; the job goes back on the queue.
    #[error(transparent)]
    Api(#[from] ApiClientError),
}

pub enum Outcome {
    Complete,
    Failed,
    /// The request was final or held by a live attempt (a redelivered or duplicate job).
    Skipped,
    /// Another attempt took the request over while this one ran; this one stopped.
    Superseded,
}

/// `host-pid`, as the api shows who holds a request.
pub fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "worker".into());
    format!("{host}-{}", std::process::id())
}

/// Claim the request, run it under its deadline while renewing the lease, and report. A
/// superseded attempt stops as soon as a heartbeat is refused; nothing it sends counts.
pub async fn process(
    config: &Config,
    store: &Store,
    objects: Option<&SharedObjects>,
    api: &ApiClient,
    request_id: i64,
    redelivered: bool,
) -> Result<Outcome, PipelineError> {
    let job = match api.claim(request_id, &worker_name(), redelivered).await? {
        Claim::Granted(job) => *job,
        Claim::Refused(reason) => {
            tracing::info!(%reason, "not taking the request");
            return Ok(Outcome::Skipped);
        }
    };
    tracing::info!(attempt = job.attempt, "request claimed");
    let api = &api.for_attempt(job.attempt);
    remove_earlier_attempts(store, request_id, job.attempt);
    let remaining = (job.deadline - chrono::Utc::now().naive_utc())
        .to_std()
        .unwrap_or_default();
    let deadline = tokio::time::Instant::now() + remaining;
    let work = tokio::time::timeout_at(deadline, attempt(config, store, objects, api, &job));
    let outcome = tokio::select! {
        outcome = work => match outcome {
            Ok(outcome) => outcome,
            Err(_) => fail(api, request_id, Failure::timed_out(config.request_timeout)).await,
        },
        () = keep_alive(api, &job) => {
            tracing::warn!("another attempt took the request over; this one stops");
            Ok(Outcome::Superseded)
        }
    };
    // a superseded attempt's bundle may be the new attempt's too
    if objects.is_some() && !matches!(outcome, Ok(Outcome::Superseded)) {
        // the object store keeps the bundle: the cache does not
        let store = store.clone();
        let released = blocking(move || {
            store
                .release_bundle(request_id)
                .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))
        })
        .await;
        if let Err(e) = released {
            tracing::warn!(error = %e.message, "cannot remove the bundle from the work directory");
        }
    }
    outcome
}

/// Renew the lease until the api refuses it (superseded, or the request is final).
async fn keep_alive(api: &ApiClient, job: &Job) {
    let every = Duration::from_secs(job.heartbeat_seconds.max(1));
    loop {
        tokio::time::sleep(every).await;
        match api.heartbeat(job.id, job.attempt).await {
            Ok(()) => {}
            Err(e) if e.is_conflict() => return,
            Err(e) => tracing::warn!(error = %e, "could not renew the lease"),
        }
    }
}

/// Temporary files and work directories older than any live attempt can be (left behind by
/// workers that died).
pub fn remove_stale_temp(store: &Store, older_than: Duration) {
    let Ok(entries) = std::fs::read_dir(store.root().join("tmp")) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > older_than);
        if stale {
            let path = entry.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match removed {
                Ok(()) => tracing::info!(path = %path.display(), "removed a stale temporary file"),
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "could not remove a stale temporary file")
                }
            }
        }
    }
}

/// Work directories of attempts a newer claim has fenced off (their workers died or stopped).
fn remove_earlier_attempts(store: &Store, request_id: i64, attempt: i32) {
    let prefix = format!("work-{request_id}-a");
    let Ok(entries) = std::fs::read_dir(store.root().join("tmp")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let earlier = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|rest| rest.split('-').next())
            .and_then(|n| n.parse::<i32>().ok())
            .is_some_and(|n| n < attempt);
        if earlier {
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(error = %e, path = %entry.path().display(), "could not remove an earlier attempt's work directory");
            }
        }
    }
}

async fn attempt(
    config: &Config,
    store: &Store,
    objects: Option<&SharedObjects>,
    api: &ApiClient,
    job: &Job,
) -> Result<Outcome, PipelineError> {
    let request_id = job.id;
    let work = match store.temp_dir(&format!("work-{request_id}-a{}-", job.attempt)) {
        Ok(dir) => dir,
        Err(e) => {
            return fail(
                api,
                request_id,
                Failure::new(
                    ErrorKind::FileAccessError,
                    format!("Cannot create a work directory: {e}"),
                ),
            )
            .await
        }
    };
    let result = run(config, store, objects, api, job, work.path()).await;
    // the bundle is in the store: the work directory goes before the request can end, so a
    // worker killed from here on leaves nothing behind
    drop(work);
    let (output, bundle) = match result {
        Ok(done) => done,
        Err(Step::Failed(failure)) => return fail(api, request_id, failure).await,
        Err(Step::Api(e)) => return Err(e.into()),
    };
    match report(api, job, output).await {
        Ok(()) => {}
        Err(ApiClientError::Spool(reason)) => {
            let failure = Failure::new(
                ErrorKind::FileAccessError,
                format!("Cannot read back the request's artifacts: {reason}"),
            );
            return fail(api, request_id, failure).await;
        }
        // the api will refuse the same report every time: say so rather than drop the job
        Err(e) if e.is_permanent() && !e.is_conflict() => {
            let failure = Failure::new(
                ErrorKind::ReportRefused,
                format!("The api refused the request's results: {e}"),
            );
            return fail(api, request_id, failure).await;
        }
        Err(e) => return Err(e.into()),
    }
    complete(objects, api, request_id, &bundle).await
}

/// Complete the request, naming its bundle. On an object store the api names it only once it
/// finds it there: a stale request's release may have taken the same bytes away since they
/// were put, and they are put again.
async fn complete(
    objects: Option<&SharedObjects>,
    api: &ApiClient,
    request_id: i64,
    bundle: &bundle::WrittenBundle,
) -> Result<Outcome, PipelineError> {
    let mut tries = 0;
    loop {
        match api.complete(request_id, &bundle.sha256_hex).await {
            Ok(()) => break,
            Err(e) if e.is_conflict() && objects.is_some() && tries < 3 => {
                tries += 1;
                tracing::warn!(error = %e, "the bundle left the object store before the request completed; putting it again");
                let key = common::store::bundle_blob_key(&bundle.sha256_hex);
                if let Some(objects) = objects {
                    if let Err(e) = objects.put_all([key], 1).await {
                        let failure = Failure::from(e);
                        return fail(api, request_id, failure).await;
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!("request complete");
    Ok(Outcome::Complete)
}

async fn report(api: &ApiClient, job: &Job, output: PmOutput) -> Result<(), ApiClientError> {
    api.progress(job.id, "Aggregating packages data").await?;
    let mut data = PackagesData {
        packages: output.packages,
    };
    for package in &mut data.packages {
        package.dependencies.sort();
    }
    api.report(
        job.id,
        &output.env,
        data,
        output.artifacts,
        output.config_files,
    )
    .await
}

async fn fail(
    api: &ApiClient,
    request_id: i64,
    failure: Failure,
) -> Result<Outcome, PipelineError> {
    tracing::warn!(reason = %failure.message, origin = failure.origin().as_str(), "request failed");
    api.fail(request_id, &failure).await?;
    Ok(Outcome::Failed)
}

enum Step {
    Failed(Failure),
    Api(ApiClientError),
}

impl From<Failure> for Step {
    fn from(f: Failure) -> Self {
        Step::Failed(f)
    }
}

impl From<ApiClientError> for Step {
    fn from(e: ApiClientError) -> Self {
        Step::Api(e)
    }
}

async fn run(
    config: &Config,
    store: &Store,
    objects: Option<&SharedObjects>,
    api: &ApiClient,
    job: &Job,
    work: &Path,
) -> Result<(PmOutput, bundle::WrittenBundle), Step> {
    if let Some(name) = job.pkg_managers.iter().find(|name| {
        !REGISTRY
            .iter()
            .any(|pm| pm.descriptor().name == name.as_str())
    }) {
        return Err(Failure::new(
            ErrorKind::UnsupportedFeature,
            format!("The {name} package manager is not supported by this Larder deployment"),
        )
        .into());
    }
    let running: Vec<&dyn Registered> = REGISTRY
        .iter()
        .copied()
        .filter(|pm| job.pkg_managers.iter().any(|n| n == pm.descriptor().name))
        .collect();
    // before anything is fetched: a deployment whose CA file went bad fails the request now
    let repos_ca = {
        let (config, running) = (config.clone(), running.clone());
        blocking(move || Ok(ReposCa::for_request(&config, &running)?)).await?
    };
    api.progress(job.id, "Fetching the application source")
        .await?;
    let submodules = running.iter().any(|pm| pm.descriptor().submodules);
    let key = source::source_key(&job.repo, &job.git_ref, submodules)?;
    let app = work.join("app");
    let outbound = crate::outbound::Outbound::for_request(config);
    if let Some(objects) = objects {
        // another worker's fetch of the same commit, if any
        objects.take_into_cache(&key).await.map_err(Failure::from)?;
    }
    {
        let (store, key, app) = (store.clone(), key.clone(), app.clone());
        let (url, commit, outbound) = (job.repo.clone(), job.git_ref.clone(), outbound.clone());
        let remove_links = job.flags.iter().any(|f| f == "remove-unsafe-symlinks");
        let needs_git_dir = job.flags.iter().any(|f| f == "include-git-dir")
            || running.iter().any(|pm| pm.descriptor().reads_git_dir);
        blocking(move || {
            source::ensure_source(&store, &key, &url, &commit, submodules, &outbound)?;
            let archive = store
                .path(&key)
                .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
            let limits = UnpackLimits {
                keep_any_symlink: true,
                without_git_dirs: !needs_git_dir,
                ..Default::default()
            };
            let unpack_to = app.parent().expect("app has a parent");
            if let Err(e) = common::archive::unpack_tar_gz(&archive, unpack_to, limits) {
                // A damaged cache entry is dropped so the next attempt fetches it again.
                let _ = store.remove(&key);
                return Err(Failure::new(
                    ErrorKind::FileAccessError,
                    format!("The cached source archive is damaged and was removed: {e}"),
                ));
            }
            sandbox::check_symlinks(&app, remove_links)?;
            Ok(())
        })
        .await?;
    }
    if repos_ca.is_some() && app.join(ReposCa::FILE_NAME).symlink_metadata().is_ok() {
        tracing::warn!(
            path = ReposCa::PATH,
            "the repository has a file where the repositories' CA is handed back; the hand-back replaces it"
        );
    }
    let deps = work.join("deps");
    std::fs::create_dir_all(&deps)
        .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;

    let tree = bundle::BundleTree::new(work);
    let fetcher =
        crate::fetch::Fetcher::new(store.clone(), outbound).with_objects(objects.cloned());
    let mut output = PmOutput::default();
    for pm in running {
        let ctx = PmContext {
            job,
            app_dir: &app,
            deps_dir: &deps,
            bundle: &tree,
            store,
            config,
            progress_to: crate::pkg_managers::ProgressTo::Api(api),
            hand_back: crate::pkg_managers::HandBack::Service,
            fetcher: &fetcher,
            descriptor: pm.descriptor(),
            repos_ca: repos_ca.as_ref(),
        };
        output.merge(pm.run(&ctx).await?)?;
    }
    // one copy for every package manager whose configuration names it
    if let Some(ca) = &repos_ca {
        output.config_files.push(ca.config_file());
    }
    check_duplicates(&output)?;

    api.progress(job.id, "Assembling the bundle archive")
        .await?;
    let written = {
        let (store, id) = (store.clone(), job.id);
        let include_git = job.flags.iter().any(|f| f == "include-git-dir");
        blocking(move || bundle::write_bundle(&store, id, &tree, include_git)).await?
    };
    if let Some(objects) = objects {
        api.progress(job.id, "Putting the files in the object store")
            .await?;
        // what the api serves (the bundle, repositories' files, stored configuration files)
        // and what another worker would fetch again (the source, every file committed)
        let keys = std::iter::once(key)
            .chain(fetcher.committed_keys())
            .chain(written.stored_keys.iter().cloned())
            .chain(output.artifacts.store_keys().cloned())
            .chain(output.config_files.iter().filter_map(|f| match &f.content {
                common::ConfigContent::Stored(sha256) => {
                    Some(common::store::config_file_key(sha256))
                }
                _ => None,
            }))
            .chain(std::iter::once(common::store::bundle_blob_key(
                &written.sha256_hex,
            )));
        let put = objects
            .put_all(keys, config.download_concurrency)
            .await
            .map_err(Failure::from)?;
        tracing::info!(put, "files put in the object store");
    }
    Ok((output, written))
}

pub(crate) fn check_duplicates(output: &PmOutput) -> Result<(), Failure> {
    let mut seen = std::collections::HashSet::new();
    for p in &output.packages {
        if !seen.insert((&p.name, &p.kind, &p.version)) {
            return Err(Failure::new(
                ErrorKind::InvalidRequestData,
                format!("Duplicate package: {} {} {}", p.kind, p.name, p.version),
            ));
        }
    }
    Ok(())
}
