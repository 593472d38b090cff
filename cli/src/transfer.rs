//! `larder export` and `larder import`: the store across an air gap (`common::transfer`), each
//! run recorded in the database (`api::transfers`, listed by `GET /api/v1/transfers`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use api::transfers::{self, Counts, ExportedRequest, ImportedRequests, Kind, TransferRecordError};
use chrono::{DateTime, SubsecRound, Utc};
use common::store::SharedStore;
use common::transfer::{self, Manifest, Progress, RequestRecords};
use common::Config;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// An empty (or new) directory to write the volumes and `manifest.json` into.
    #[arg(long)]
    pub out: PathBuf,
    /// Only what was stored after this time (RFC 3339, `2026-11-30T08:00:00Z`).
    #[arg(long, conflicts_with = "since_last")]
    pub since: Option<DateTime<Utc>>,
    /// Only what was stored since this instance's last complete export (everything if none).
    #[arg(long)]
    pub since_last: bool,
    /// The largest volume (`4G`, `700M`, bytes); an object larger than that goes alone in one.
    #[arg(long, default_value = "4G", value_parser = transfer::parse_size)]
    pub max_volume_size: u64,
    /// Also the records of this instance's finished requests updated in the same range (what
    /// was asked, how it ended, its history, packages and dependencies; not bundles).
    #[arg(long)]
    pub with_requests: bool,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// A directory an export wrote (its `manifest.json` and volumes).
    pub dir: PathBuf,
    #[command(flatten)]
    pub config: Config,
}

/// The store, the database (`existing`: an export's, which must have records to send; an
/// import may fill a new one) and this instance's name.
async fn open(config: &Config, existing: bool) -> Result<(SharedStore, api::db::DbPool, String)> {
    let shared = SharedStore::open(config).context("LARDER_STORE_URL")?;
    let mut database = api::db::Database::of(config)?;
    if existing {
        database = database.existing()?;
    }
    tracing::info!(database = %database.describe(), "database");
    let pool = api::db::setup(&database, 2).await?;
    let secret = api::secret::load_or_create(&pool, &config.data_dir).await?;
    Ok((shared, pool, transfers::instance_of(&secret)))
}

fn utc(t: chrono::NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

pub async fn export(args: ExportArgs) -> Result<i32> {
    let (shared, pool, instance) = open(&args.config, true).await?;
    let (since, held) = match (args.since, args.since_last) {
        (Some(since), _) => (Some(since.trunc_subsecs(6)), Default::default()),
        (None, true) => match transfers::since_last_export(&pool, &instance)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?
        {
            Some((since, held)) => (Some(utc(since)), held),
            None => (None, Default::default()),
        },
        (None, false) => (None, Default::default()),
    };
    let until = {
        let mut conn = pool.get().await?;
        utc(api::db::now(&mut conn).await?)
    };
    let range = transfer::ExportRange { since, until, held };
    let directory = args.out.display().to_string();
    let id = transfers::begin(
        &pool,
        Kind::Export,
        &instance,
        since.map(|t| t.naive_utc()),
        until.naive_utc(),
        &directory,
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.message))?;
    let requests = if args.with_requests {
        let mut records = RequestRecords::new(&args.out)?;
        let written = transfers::export_requests(
            &pool,
            since.map(|t| t.naive_utc()),
            until.naive_utc(),
            &mut records,
        )
        .await;
        if let Err(e) = written {
            transfers::end(&pool, id, Err(e.to_string()))
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            return Err(e).context("the requests' records");
        }
        Some(records)
    } else {
        None
    };
    let progress = Progress::on_terminal("export");
    let exported = transfer::export(
        &shared,
        &args.out,
        &instance,
        &range,
        args.max_volume_size,
        requests,
        &progress,
    )
    .await;
    if let Ok(done) = &exported {
        let keys: Vec<String> = done
            .manifest
            .objects
            .iter()
            .map(|o| o.key.clone())
            .collect();
        transfers::record_exported(&pool, id, &keys)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
    }
    let outcome = match &exported {
        Ok(done) => Ok(Counts {
            objects: done.manifest.objects.len() as i64,
            bytes: done.manifest.bytes() as i64,
            present: 0,
            refused: done.damaged.len() as i64,
            requests: done
                .manifest
                .requests
                .as_ref()
                .map_or(0, |r| r.count as i64),
        }),
        Err(e) => Err(e.to_string()),
    };
    transfers::end(&pool, id, outcome)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let done = exported.with_context(|| format!("export into {directory}"))?;
    for (key, why) in &done.damaged {
        eprintln!("WARNING: damaged in this store, the far side will not take it: {key}: {why}");
    }
    let requests = match &done.manifest.requests {
        Some(r) => format!(" and {} request(s)", r.count),
        None => String::new(),
    };
    println!(
        "exported {} object(s){requests}, {:.1} MB, in {} volume(s) to {directory} (instance {instance}, stored {} until {})",
        done.manifest.objects.len(),
        done.manifest.bytes() as f64 / 1e6,
        done.manifest.volumes.len(),
        since.map_or("from the start".to_string(), |t| format!("after {}", t.to_rfc3339())),
        until.to_rfc3339(),
    );
    Ok(0)
}

pub async fn import(args: ImportArgs) -> Result<i32> {
    let (shared, pool, own_instance) = open(&args.config, false).await?;
    let directory = args.dir.display().to_string();
    let manifest = Manifest::read(&args.dir)?;
    let id = transfers::begin(
        &pool,
        Kind::Import,
        &manifest.instance,
        manifest.since.map(|t| t.naive_utc()),
        manifest.until.naive_utc(),
        &directory,
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.message))?;
    // copies wait where they can be renamed into place: the store's own temporary directory
    let staging = match &shared {
        SharedStore::Directory(store) => store.root().join("tmp"),
        SharedStore::Objects(_) => args.config.work_dir().join("tmp"),
    };
    let progress = Progress::on_terminal("import");
    let imported = transfer::import(&shared, &args.dir, &staging, &progress).await;
    // requests after the objects: a record never names a dependency the store lacks
    let requests = match &imported {
        Ok((manifest, _)) => import_requests(&pool, &args.dir, manifest, &own_instance).await,
        Err(_) => Ok(ImportedRequests::default()),
    };
    let outcome = match (&imported, &requests) {
        (Ok((_, done)), Ok(requests)) => Ok(Counts {
            objects: done.written as i64,
            bytes: done.written_bytes as i64,
            present: (done.present + requests.present) as i64,
            // a record gone stale since is recorded anew
            requests: (requests.imported + requests.updated) as i64,
            refused: (done.refused.len() + requests.refused.len()) as i64,
        }),
        (Err(e), _) => Err(e.to_string()),
        (_, Err(e)) => Err(format!("the requests' records: {e}")),
    };
    transfers::end(&pool, id, outcome)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let (manifest, done) = imported.with_context(|| format!("import of {directory}"))?;
    let requests = requests.with_context(|| format!("import of {directory}"))?;
    for (key, why) in done.refused.iter().chain(&requests.refused) {
        eprintln!("REFUSED: {key}: {why}");
    }
    println!(
        "imported {} object(s) ({:.1} MB), {} already present, {} refused, from {directory} (instance {})",
        done.written,
        done.written_bytes as f64 / 1e6,
        done.present,
        done.refused.len(),
        manifest.instance,
    );
    if manifest.requests.is_some() {
        println!(
            "imported {} request(s), {} already present, {} gone stale since, {} refused",
            requests.imported,
            requests.present,
            requests.updated,
            requests.refused.len()
        );
    }
    Ok(if done.refused.is_empty() && requests.refused.is_empty() {
        0
    } else {
        2
    })
}

/// The transfer's requests' records into the database; a requests file that does not match
/// the manifest is refused whole (the objects stay imported).
async fn import_requests(
    pool: &api::db::DbPool,
    dir: &std::path::Path,
    manifest: &Manifest,
    own_instance: &str,
) -> Result<ImportedRequests, TransferRecordError> {
    if manifest.requests.is_some() && manifest.instance == own_instance {
        return Ok(ImportedRequests {
            refused: vec![(
                transfer::REQUESTS.to_string(),
                "these are this instance's own requests (an export imported where it was made)"
                    .into(),
            )],
            ..Default::default()
        });
    }
    let records = match transfer::request_records::<ExportedRequest>(dir, manifest) {
        Ok(Some(records)) => records,
        Ok(None) => return Ok(ImportedRequests::default()),
        Err(e @ transfer::TransferError::DamagedRequests(_)) => {
            return Ok(ImportedRequests {
                refused: vec![(transfer::REQUESTS.to_string(), e.to_string())],
                ..Default::default()
            })
        }
        Err(e) => return Err(e.into()),
    };
    let catalogue = worker::pkg_managers::catalogue();
    Ok(transfers::import_requests(pool, &manifest.instance, &catalogue, records).await?)
}
