//! `rubygems` (Bundler): `Gemfile.lock` prefetch, the artifacts of the per-request gem server
//! (Compact Index + `/gems/`), `.bundle/config` pointing Bundler at it, and `deps/rubygems/`
//! laid out as Bundler's `vendor/cache` for `bundle install --local`.
//!
//! Plan: parse every requested path's `Gemfile.lock`; for each registry gem, the Compact Index
//! line Larder recorded when it first saw that gem version (store), else the upstream
//! `info/<name>` line; the `.gem` is verified against `CHECKSUMS` when the lockfile has an
//! entry (which must agree with the index), else against the index `checksum:`; a recorded
//! digest is never replaced: an upstream that later serves another fails the request. Git
//! sources at their full commit, PATH sources inside the repository → the shared fetch (all or
//! nothing) → layout: new index lines into the store, `deps/rubygems/`, config, packages,
//! artifacts. A warm request makes no upstream request. The worker never runs Ruby, bundler or
//! a gem's code.

pub mod config;
pub mod gemspec;
pub mod index;
pub mod layout;
pub mod lockfile;

use super::{Fetched, Fetches, GitFetch, LayoutContext, PackageManager, PmContext, PmOutput};
use crate::blocking::blocking;
use crate::fetch::no_check;
use common::artifact::rubygems::{
    full_name, gem_store_key, info_line_checksum, info_line_store_key, GemIntegrity,
};
use common::digest::{Digest, Expected, HashAlgorithm};
use common::{Descriptor, Download, ErrorKind, Failure};
use futures_util::{stream, StreamExt, TryStreamExt};
use lockfile::GemLock;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The flag that fetches the platform gems (`-<platform>.gem`) of the platforms `PLATFORMS`
/// lists, not only the `ruby` ones.
pub const PLATFORMS_FLAG: &str = "rubygems-platforms";

/// The `rubygems` package manager.
pub struct Rubygems;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{file}: the GIT source {remote} asks for its submodules, which are not supported")]
    Submodules { file: String, remote: String },
    #[error("The PATH source {remote:?} of {file}: {reason}")]
    PathUnusable {
        file: String,
        remote: String,
        reason: String,
    },
    #[error("The PATH source {remote:?} of {file} is not a directory of the repository")]
    PathNotDirectory { file: String, remote: String },
    #[error("{file}: the spec {name}: {reason}")]
    BadSpec {
        file: String,
        name: String,
        reason: String,
    },
    #[error("The gem {gem} is locked twice with different CHECKSUMS ({a} and {b})")]
    ConflictingChecksums { gem: String, a: String, b: String },
    #[error("{file}: the gem {name} is locked only as a platform gem ({gem}); the \"{PLATFORMS_FLAG}\" flag fetches the platform gems of the platforms PLATFORMS lists")]
    PlatformOnly {
        file: String,
        name: String,
        gem: String,
    },
    #[error("The upstream Compact Index ({url}) now gives the sha256 {now} for {gem}.gem, but Larder recorded {recorded} when it first fetched that gem: refusing it")]
    RecordedDigestChanged {
        url: String,
        gem: String,
        now: String,
        recorded: String,
    },
    #[error("The gem {gem} is not in the Compact Index of {upstreams}")]
    NotInIndex { gem: String, upstreams: String },
    #[error("The Compact Index line of {gem} has no sha256 checksum to verify the gem against")]
    NoIndexChecksum { gem: String },
    #[error("The Gemfile.lock CHECKSUMS entry of {gem} (sha256={lockfile}) does not match the Compact Index checksum {index} of its server")]
    ChecksumsDisagree {
        gem: String,
        lockfile: String,
        index: String,
    },
    #[error("Cannot read the recorded index line {key}: {reason}")]
    Store { key: String, reason: String },
}

impl common::Classify for PlanError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Submodules { .. } | Self::PlatformOnly { .. } => ErrorKind::UnsupportedFeature,
            Self::PathUnusable { .. } => ErrorKind::InvalidRequestData,
            Self::PathNotDirectory { .. } => ErrorKind::InvalidRepoStructure,
            Self::BadSpec { .. } => ErrorKind::InvalidFileFormat,
            Self::ConflictingChecksums { .. }
            | Self::RecordedDigestChanged { .. }
            | Self::NoIndexChecksum { .. }
            | Self::ChecksumsDisagree { .. } => ErrorKind::InvalidChecksum,
            Self::NotInIndex { .. } => ErrorKind::MissingUpstream,
            Self::Store { .. } => ErrorKind::FileAccessError,
        }
    }
}

/// One registry gem as the request fetches it.
#[derive(Clone, Debug)]
pub struct PlannedGem {
    pub name: String,
    pub version: String,
    pub platform: Option<String>,
    pub info_line: String,
    pub sha256: Digest,
    pub integrity: GemIntegrity,
    /// Read upstream now: recorded in the store once every file verified.
    pub new_line: bool,
    /// Where the `.gem` is fetched from: its upstream's `gems/<full name>.gem`.
    pub download_url: String,
}

impl PlannedGem {
    pub fn full_name(&self) -> String {
        full_name(&self.name, &self.version, self.platform.as_deref())
    }
    pub fn store_key(&self) -> String {
        gem_store_key(&self.name, &self.version, self.platform.as_deref())
    }
}

/// What the layout needs of the plan.
pub struct GemPlan {
    pub locks: Vec<GemLock>,
    /// Every registry gem fetched, by full name.
    pub gems: BTreeMap<String, PlannedGem>,
    pub platform_gems: bool,
    /// This request's gem server, credentials in it.
    pub server_url: String,
}

/// What a lockfile wants of one registry gem.
#[derive(Clone, Debug)]
struct Wanted {
    name: String,
    version: String,
    platform: Option<String>,
    checksum: Option<Digest>,
    upstreams: Vec<String>,
}

impl Wanted {
    fn full_name(&self) -> String {
        full_name(&self.name, &self.version, self.platform.as_deref())
    }
}

impl PackageManager for Rubygems {
    type Plan = GemPlan;

    const DESCRIPTOR: Descriptor = Descriptor::new("rubygems");

    const READS_DIGESTS: bool = false;

    const HANDS_BACK_OUTPUT_DIR: bool = true;

    async fn plan(&self, ctx: &PmContext<'_>) -> Result<(GemPlan, Fetches), Failure> {
        let (paths, what) = ctx.paths_and_what();
        ctx.progress(&what).await;
        let mut locks = Vec::new();
        for path in paths {
            let root = ctx.app_dir.to_path_buf();
            let lock = blocking(move || Ok::<_, Failure>(lockfile::read(&root, &path)?)).await?;
            check_paths(ctx.app_dir, &lock)?;
            locks.push(lock);
        }
        let platform_gems = ctx.has_flag(PLATFORMS_FLAG);
        let wanted = wanted_gems(&locks, platform_gems, &ctx.config.rubygems_url)?;

        let mut by_name: BTreeMap<String, Vec<Wanted>> = BTreeMap::new();
        for w in wanted.into_values() {
            by_name.entry(w.name.clone()).or_default().push(w);
        }
        // each gem's index read as a slot frees up, `LARDER_DOWNLOAD_CONCURRENCY` at a time
        let resolved: Vec<Vec<PlannedGem>> = stream::iter(by_name)
            .map(|(name, wanted)| async move { resolve(ctx, &name, wanted).await })
            .buffer_unordered(ctx.config.download_concurrency.max(1))
            .try_collect()
            .await?;
        let mut gems = BTreeMap::new();
        let mut downloads = Vec::new();
        for resolved in resolved {
            for gem in resolved {
                let download = Download {
                    url: gem.download_url.clone(),
                    store_key: gem.store_key(),
                    expected: Expected::one(gem.sha256.clone()),
                    label: format!("{}.gem", gem.full_name()),
                };
                let check = no_check(&download);
                downloads.push((Arc::new(download), check));
                gems.insert(gem.full_name(), gem);
            }
        }
        let mut git = Vec::new();
        for lock in &locks {
            for g in &lock.git {
                if g.submodules {
                    // the checkout would lack them: fail rather than hand back a partial gem
                    return Err(PlanError::Submodules {
                        file: lockfile::label(&lock.package_path),
                        remote: g.remote.clone(),
                    }
                    .into());
                }
                let fetch = GitFetch {
                    url: g.remote.clone(),
                    commit: g.revision.clone(),
                };
                if !git.contains(&fetch) {
                    git.push(fetch);
                }
            }
        }
        let fetches = Fetches {
            what,
            downloads,
            git,
            ..Fetches::default()
        };
        let plan = GemPlan {
            locks,
            gems,
            platform_gems,
            server_url: config::server_url(
                &ctx.repository_url_without_token("rubygems"),
                &ctx.job.repository_token,
            ),
        };
        Ok((plan, fetches))
    }

    fn layout(plan: GemPlan, fetched: Fetched, ctx: &LayoutContext) -> Result<PmOutput, Failure> {
        layout::layout(plan, fetched, ctx)
    }
}

/// Every PATH source must be a directory of the repository (the lockfile's parser already
/// refused one that climbs out; a symlink out of it is refused here).
fn check_paths(app_dir: &std::path::Path, lock: &GemLock) -> Result<(), PlanError> {
    for p in &lock.path {
        let dir = p
            .path
            .resolve(app_dir)
            .map_err(|e| PlanError::PathUnusable {
                file: lockfile::label(&lock.package_path),
                remote: p.remote.clone(),
                reason: e.to_string(),
            })?;
        if !dir.is_dir() {
            return Err(PlanError::PathNotDirectory {
                file: lockfile::label(&lock.package_path),
                remote: p.remote.clone(),
            });
        }
    }
    Ok(())
}

/// The registry gems of every lockfile, by full name: `ruby` platform ones, and with
/// `platform_gems` those of the platforms `PLATFORMS` lists.
fn wanted_gems(
    locks: &[GemLock],
    platform_gems: bool,
    rubygems_url: &str,
) -> Result<BTreeMap<String, Wanted>, PlanError> {
    let mut out: BTreeMap<String, Wanted> = BTreeMap::new();
    for lock in locks {
        let file = lockfile::label(&lock.package_path);
        for source in &lock.gem {
            let upstreams: Vec<String> = source
                .remotes
                .iter()
                .map(|r| index::upstream_for(r, rubygems_url))
                .collect();
            for spec in &source.specs {
                lockfile::check_spec(spec).map_err(|reason| PlanError::BadSpec {
                    file: file.clone(),
                    name: spec.name.clone(),
                    reason,
                })?;
                let take = match &spec.platform {
                    None => true,
                    Some(p) => {
                        platform_gems
                            && lock
                                .platforms
                                .iter()
                                .any(|l| p == l || p.starts_with(&format!("{l}-")))
                    }
                };
                if !take {
                    continue;
                }
                let full = spec.full_name();
                let checksum = lock.checksums.get(&full).cloned().flatten();
                if let Some(prev) = out.get(&full) {
                    if let (Some(a), Some(b)) = (&prev.checksum, &checksum) {
                        if a != b {
                            return Err(PlanError::ConflictingChecksums {
                                gem: full,
                                a: a.to_string(),
                                b: b.to_string(),
                            });
                        }
                    }
                    if prev.checksum.is_some() {
                        continue;
                    }
                }
                out.insert(
                    full,
                    Wanted {
                        name: spec.name.clone(),
                        version: spec.version.clone(),
                        platform: spec.platform.clone(),
                        checksum,
                        upstreams: upstreams.clone(),
                    },
                );
            }
        }
        // a gem locked only for other platforms would be missing from the install
        if !platform_gems {
            for source in &lock.gem {
                let ruby: std::collections::BTreeSet<(&str, &str)> = source
                    .specs
                    .iter()
                    .filter(|s| s.platform.is_none())
                    .map(|s| (s.name.as_str(), s.version.as_str()))
                    .collect();
                for spec in &source.specs {
                    let has_ruby = ruby.contains(&(spec.name.as_str(), spec.version.as_str()));
                    if spec.platform.is_some() && !has_ruby {
                        return Err(PlanError::PlatformOnly {
                            file,
                            name: spec.name.clone(),
                            gem: spec.full_name(),
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The index lines and downloads of one gem's wanted versions: recorded lines from the store;
/// the upstream `info/<name>` only when one is missing, and then every recorded digest must
/// still be what upstream serves.
async fn resolve(
    ctx: &PmContext<'_>,
    name: &str,
    wanted: Vec<Wanted>,
) -> Result<Vec<PlannedGem>, Failure> {
    let store_error = |key: &str, reason: String| PlanError::Store {
        key: key.to_string(),
        reason,
    };
    let mut recorded: BTreeMap<String, String> = BTreeMap::new();
    for w in &wanted {
        let key = info_line_store_key(&w.name, &w.version, w.platform.as_deref());
        // on an object store, the line another worker recorded first
        if ctx.fetcher.take_into_cache(&key).await? {
            let path = ctx
                .store
                .path(&key)
                .map_err(|e| store_error(&key, e.to_string()))?;
            let line = tokio::fs::read_to_string(&path)
                .await
                .map_err(|e| store_error(&key, e.to_string()))?;
            recorded.insert(w.full_name(), line.trim_end().to_string());
        }
    }
    let mut upstream_lines: BTreeMap<String, (String, String)> = BTreeMap::new();
    if recorded.len() < wanted.len() {
        let upstreams = wanted
            .first()
            .map(|w| w.upstreams.clone())
            .unwrap_or_default();
        for upstream in &upstreams {
            let url = format!("{upstream}/info/{name}");
            let Some((body, _)) = ctx.fetcher.get_bytes(&url, None).await? else {
                continue;
            };
            let body = String::from_utf8_lossy(&body);
            let lines = index::info_lines(&body);
            for w in &wanted {
                let key = w.full_name()[name.len() + 1..].to_string();
                let Some(line) = lines.get(key.as_str()) else {
                    continue;
                };
                if let Some(seen) = recorded.get(&w.full_name()) {
                    let (was, now) = (info_line_checksum(seen), info_line_checksum(line));
                    if was != now {
                        return Err(PlanError::RecordedDigestChanged {
                            url,
                            gem: w.full_name(),
                            now: now.unwrap_or("(none)").to_string(),
                            recorded: was.unwrap_or("(none)").to_string(),
                        }
                        .into());
                    }
                } else {
                    upstream_lines
                        .entry(w.full_name())
                        .or_insert_with(|| (line.to_string(), upstream.clone()));
                }
            }
            if wanted.iter().all(|w| {
                recorded.contains_key(&w.full_name()) || upstream_lines.contains_key(&w.full_name())
            }) {
                break;
            }
        }
    }
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        let full = w.full_name();
        if recorded.contains_key(&full) || upstream_lines.contains_key(&full) {
            // recorded, or recorded by the layout once every gem verified
            ctx.fetcher.share(info_line_store_key(
                &w.name,
                &w.version,
                w.platform.as_deref(),
            ));
        }
        let (line, upstream, new_line) =
            match (recorded.remove(&full), upstream_lines.remove(&full)) {
                (Some(line), _) => (
                    line,
                    w.upstreams.first().cloned().unwrap_or_default(),
                    false,
                ),
                (None, Some((line, upstream))) => (line, upstream, true),
                (None, None) => {
                    return Err(PlanError::NotInIndex {
                        gem: full,
                        upstreams: w.upstreams.join(", "),
                    }
                    .into())
                }
            };
        let index_sum = info_line_checksum(&line)
            .and_then(|h| Digest::from_hex(HashAlgorithm::Sha256, h).ok())
            .ok_or_else(|| PlanError::NoIndexChecksum { gem: full.clone() })?;
        let integrity = match &w.checksum {
            Some(lockfile_sum) if *lockfile_sum != index_sum => {
                return Err(PlanError::ChecksumsDisagree {
                    gem: full,
                    lockfile: lockfile_sum.hex(),
                    index: index_sum.hex(),
                }
                .into())
            }
            Some(_) => GemIntegrity::LockfileChecksum,
            None => GemIntegrity::UpstreamIndex,
        };
        out.push(PlannedGem {
            name: w.name,
            version: w.version,
            platform: w.platform,
            info_line: line,
            sha256: index_sum,
            integrity,
            new_line,
            download_url: format!("{upstream}/gems/{full}.gem"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::repo_path::RepoPath;
    use common::Classify;

    fn lock(text: &str) -> GemLock {
        lockfile::parse(text, "Gemfile.lock", &RepoPath::root()).unwrap()
    }

    const LOCK: &str = "GEM
  remote: https://rubygems.org/
  remote: https://gems.example.com/
  specs:
    native (1.0.0)
    native (1.0.0-x86_64-linux)
    native (1.0.0-java)
    rack (1.0.0)

PLATFORMS
  ruby
  x86_64-linux
";

    #[test]
    fn platforms_decide_which_gems_are_fetched() {
        let l = lock(LOCK);
        let ruby_only = wanted_gems(std::slice::from_ref(&l), false, "http://up/").unwrap();
        assert_eq!(
            ruby_only.keys().collect::<Vec<_>>(),
            ["native-1.0.0", "rack-1.0.0"]
        );
        assert_eq!(
            ruby_only["rack-1.0.0"].upstreams,
            ["http://up", "https://gems.example.com"]
        );
        let all = wanted_gems(&[l], true, "http://up").unwrap();
        // java is not in PLATFORMS
        assert_eq!(
            all.keys().collect::<Vec<_>>(),
            ["native-1.0.0", "native-1.0.0-x86_64-linux", "rack-1.0.0"]
        );
        let only = lock(&LOCK.replace("    native (1.0.0)\n", ""));
        let e = wanted_gems(&[only], false, "http://up").unwrap_err();
        assert!(matches!(e, PlanError::PlatformOnly { .. }), "{e}");
        assert_eq!(e.kind().error_type(), "UnsupportedFeature");
    }

    #[test]
    fn two_lockfiles_must_agree_on_checksums() {
        let with = |hex: &str| {
            lock(&format!(
                "GEM\n  remote: https://rubygems.org/\n  specs:\n    rack (1.0.0)\n\nCHECKSUMS\n  rack (1.0.0) sha256={}\n",
                hex.repeat(32)
            ))
        };
        assert_eq!(
            wanted_gems(&[with("aa"), with("aa")], false, "http://up")
                .unwrap()
                .len(),
            1
        );
        let e = wanted_gems(&[with("aa"), with("bb")], false, "http://up").unwrap_err();
        assert_eq!(e.kind().error_type(), "InvalidChecksum");
    }
}
