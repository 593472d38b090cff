//! `gomod`: Go modules from go.mod + go.sum, without running the `go` command.
//!
//! parse (`plan::plan`) → fetch every `.info`/`.mod`/`.zip` go.sum vouches for from
//! `LARDER_GOPROXY` into the store, each checked against its `h1:` before anything is kept
//! (all or nothing) → lay out `deps/gomod/pkg/mod/cache/download` (+ vendoring, rewritten
//! go.mod/go.sum) → packages, env vars and the artifacts the per-request GOPROXY serves.

pub mod dirhash;
/// Proxy-compatible module files with real `h1:` sums, for tests and benchmarks.
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod gomod_file;
pub mod gosum;
pub mod layout;
pub mod plan;
pub mod vendor;
pub mod version;

use super::{Fetched, Fetches, LayoutContext, PackageManager, PmContext, PmOutput};
use crate::blocking::blocking;
use crate::fetch::Check;
use common::repo_path::RepoPath;
use common::{Descriptor, Failure};
use plan::{ExpectedH1, Flags, GoDownload};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The `gomod` package manager.
pub struct Gomod;

/// What the layout needs of the plan.
pub struct GomodPlan {
    plan: plan::Plan,
    /// The version each requested module is reported at (from git: tag or pseudo-version).
    main_versions: BTreeMap<RepoPath, String>,
    /// The `h1:` computed while verifying modules that `dependency_replacements` introduced.
    recorded: Arc<Mutex<BTreeMap<String, String>>>,
    /// This request's GOPROXY (token in the path).
    proxy_url: String,
}

impl PackageManager for Gomod {
    type Plan = GomodPlan;

    const DESCRIPTOR: Descriptor = Descriptor {
        replacements: true,
        path_noun: "go module",
        reads_git_dir: true,
        ..Descriptor::new("gomod")
    };

    const HANDS_BACK_OUTPUT_DIR: bool = true;

    // go.sum vouched for every file: 75,000 digests of a 50,000-line go.sum nobody reads
    const READS_DIGESTS: bool = false;

    async fn plan(&self, ctx: &PmContext<'_>) -> Result<(GomodPlan, Fetches), Failure> {
        let (paths, what) = ctx.paths_and_what();
        ctx.progress(&what).await;

        let replacements: Vec<_> = ctx
            .job
            .dependency_replacements
            .iter()
            .filter(|r| r.kind == "gomod")
            .cloned()
            .collect();
        let flags = Flags {
            // `larder fetch-deps`: the source is the user's, never written (no vendor/ made)
            read_only_source: ctx.hand_back == super::HandBack::OutputDir,
            ..Flags::from_names(&ctx.job.flags, ctx.config.gomod_strict_vendor)
        };
        let (app, upstream) = (ctx.app_dir.to_path_buf(), ctx.config.goproxy.clone());
        let git_ref = ctx.job.git_ref.clone();
        let (plan, main_versions) = blocking(move || {
            let plan = plan::plan(&app, &paths, &replacements, flags, &upstream)?;
            let main_versions = plan
                .modules
                .iter()
                .map(|m| {
                    let sub = (!m.path.is_root()).then_some(m.path.as_str());
                    let v = version::main_version_or_fallback(&app, &git_ref, &m.gomod.module, sub);
                    (m.path.clone(), v)
                })
                .collect();
            Ok::<_, Failure>((plan, main_versions))
        })
        .await?;

        let recorded: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
        let downloads = plan
            .downloads
            .iter()
            .map(|d| (d.download.clone(), h1_check(d.clone(), recorded.clone())))
            .collect();
        let proxy_url = ctx
            .repository_url("gomod")
            .trim_end_matches('/')
            .to_string();
        let fetches = Fetches {
            what,
            downloads,
            ..Fetches::default()
        };
        let plan = GomodPlan {
            plan,
            main_versions,
            recorded,
            proxy_url,
        };
        Ok((plan, fetches))
    }

    fn layout(plan: GomodPlan, _: Fetched, ctx: &LayoutContext) -> Result<PmOutput, Failure> {
        let output_dir = ctx.hand_back == super::HandBack::OutputDir;
        // an output directory's app/ is the user's source itself: nothing may be written there
        // (the plan never asks for it; this keeps it so)
        if output_dir
            && plan
                .plan
                .modules
                .iter()
                .any(|m| m.vendor == plan::VendorMode::Generate || m.gomod_rewritten.is_some())
        {
            return Err(Failure::new(
                common::ErrorKind::UnsupportedFeature,
                "`larder fetch-deps` never writes the source: vendor/ is not generated and \
                 go.mod is not rewritten",
            ));
        }
        let recorded = plan.recorded.lock().expect("not poisoned").clone();
        let out = layout::write_layout(&layout::LayoutInput {
            bundle_root: ctx.bundle_root(),
            plan: &plan.plan,
            recorded: &recorded,
            store: ctx.store,
            bundle: ctx.bundle,
            main_versions: &plan.main_versions,
            repo_url: &plan.proxy_url,
            repos_ca: ctx.repos_ca,
        })?;
        let mut env = out.env_vars;
        if output_dir {
            // no GOPROXY to serve them: go reads the modules from GOMODCACHE (`path`
            // variables, below the output directory), as from an unpacked bundle
            env.insert("GOPROXY".into(), common::EnvVar::literal("off"));
        }
        Ok(PmOutput {
            packages: out.packages,
            env,
            artifacts: out.artifacts,
            ..PmOutput::default()
        })
    }
}

/// The go.sum check of one file (`.info`: its Version; `.mod`/`.zip`: `h1:` and zip rules).
fn h1_check(d: Arc<GoDownload>, recorded: Arc<Mutex<BTreeMap<String, String>>>) -> Check {
    Box::new(move |path: &Path| {
        let h1 = plan::verify_download(&d, path)?;
        if let (ExpectedH1::Record, Some(h1)) = (&d.h1, h1) {
            recorded
                .lock()
                .expect("not poisoned")
                .insert(d.download.store_key.clone(), h1);
        }
        Ok(())
    })
}
