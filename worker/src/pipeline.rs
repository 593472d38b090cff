//! One request, start to finish: source, package managers, bundle, report.

use crate::api_client::{ApiClient, ApiClientError};
use crate::pkg_managers::{self, PmContext, PmOutput};
use crate::{bundle, sandbox, source};
use common::archive::UnpackLimits;
use common::{Config, Failure, Job, PackageManager, PackagesData, RequestState, Store};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The api could not be told; the job goes back on the queue.
    #[error(transparent)]
    Api(#[from] ApiClientError),
}

pub enum Outcome {
    Complete,
    Failed,
    /// The request was already final (a redelivered or duplicate job).
    Skipped,
}

/// Run `f` on the blocking pool, inside the current tracing span.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .unwrap_or_else(|e| {
            Err(Failure::server(
                "UnknownError",
                format!("An unknown error occurred: {e}"),
            ))
        })
}

pub async fn process(
    config: &Config,
    store: &Store,
    api: &ApiClient,
    request_id: i64,
) -> Result<Outcome, PipelineError> {
    let job = api.job(request_id).await?;
    if job.state != RequestState::InProgress {
        tracing::info!(state = %job.state, "request is already final; nothing to do");
        return Ok(Outcome::Skipped);
    }
    let work = match store.temp_dir(&format!("work-{request_id}-")) {
        Ok(dir) => dir,
        Err(e) => {
            return fail(
                api,
                request_id,
                Failure::server(
                    "FileAccessError",
                    format!("Cannot create a work directory: {e}"),
                ),
            )
            .await
        }
    };
    let result = run(config, store, api, &job, work.path()).await;
    match result {
        Ok(()) => {
            api.complete(request_id).await?;
            tracing::info!("request complete");
            Ok(Outcome::Complete)
        }
        Err(Step::Failed(failure)) => fail(api, request_id, failure).await,
        Err(Step::Api(e)) => Err(e.into()),
    }
}

async fn fail(
    api: &ApiClient,
    request_id: i64,
    failure: Failure,
) -> Result<Outcome, PipelineError> {
    tracing::warn!(reason = %failure.message, origin = failure.origin.as_str(), "request failed");
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
    api: &ApiClient,
    job: &Job,
    work: &Path,
) -> Result<(), Step> {
    if let Some(pm) = job.pkg_managers.iter().find(|pm| !pm.implemented()) {
        return Err(pkg_managers::not_implemented(*pm).into());
    }
    api.progress(job.id, "Fetching the application source")
        .await?;
    let submodules = job.pkg_managers.contains(&PackageManager::GitSubmodule);
    let key = source::source_key(&job.repo, &job.git_ref, submodules)?;
    let app = work.join("app");
    {
        let (store, key, app) = (store.clone(), key.clone(), app.clone());
        let (url, commit, allow_local) = (
            job.repo.clone(),
            job.git_ref.clone(),
            config.allow_local_repos,
        );
        let remove_links = job.flags.iter().any(|f| f == "remove-unsafe-symlinks");
        let needs_git_dir = job.flags.iter().any(|f| f == "include-git-dir")
            || job
                .pkg_managers
                .iter()
                .any(|pm| pkg_managers::reads_git_dir(*pm));
        blocking(move || {
            source::ensure_source(&store, &key, &url, &commit, submodules, allow_local)?;
            let archive = store
                .path(&key)
                .map_err(|e| Failure::server("FileAccessError", e.to_string()))?;
            let limits = UnpackLimits {
                keep_any_symlink: true,
                without_git_dirs: !needs_git_dir,
                ..Default::default()
            };
            let unpack_to = app.parent().expect("app has a parent");
            if let Err(e) = common::archive::unpack_tar_gz(&archive, unpack_to, limits) {
                // A damaged cache entry is dropped so the next attempt fetches it again.
                let _ = store.remove(&key);
                return Err(Failure::server(
                    "FileAccessError",
                    format!("The cached source archive is damaged and was removed: {e}"),
                ));
            }
            sandbox::check_symlinks(&app, remove_links)?;
            Ok(())
        })
        .await?;
    }
    let deps = work.join("deps");
    std::fs::create_dir_all(&deps)
        .map_err(|e| Failure::server("FileAccessError", e.to_string()))?;

    let fetcher = crate::fetch::Fetcher::new(store.clone());
    let ctx = PmContext {
        job,
        app_dir: &app,
        deps_dir: &deps,
        store,
        config,
        api,
        fetcher: &fetcher,
    };
    let mut output = PmOutput::default();
    for pm in pkg_managers::ORDER
        .iter()
        .filter(|pm| job.pkg_managers.contains(pm))
    {
        output.merge(pkg_managers::run(*pm, &ctx).await?);
    }
    check_duplicates(&output)?;

    api.progress(job.id, "Assembling the bundle archive")
        .await?;
    {
        let (store, id, work) = (store.clone(), job.id, work.to_path_buf());
        let include_git = job.flags.iter().any(|f| f == "include-git-dir");
        blocking(move || bundle::write_bundle(&store, id, &work, include_git).map(drop)).await?;
    }
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
        &data,
        &output.artifacts,
        &output.config_files,
    )
    .await?;
    Ok(())
}

fn check_duplicates(output: &PmOutput) -> Result<(), Failure> {
    let mut seen = std::collections::HashSet::new();
    for p in &output.packages {
        if !seen.insert((&p.name, &p.kind, &p.version)) {
            return Err(Failure::client(
                "InvalidRequestData",
                format!("Duplicate package: {} {} {}", p.kind, p.name, p.version),
            ));
        }
    }
    Ok(())
}
