//! pnpm's hand-back and offline lockfile.
//!
//! - **registry route** (configuration files): `app/<path>/.npmrc` with `registry=` the
//!   per-request registry and its token (npm's [`npmrc_file`]), the repository's own settings
//!   of that `.npmrc` kept after them (pnpm checks the lockfile's `settings` against them:
//!   dropping `auto-install-peers=false` would fail `--frozen-lockfile`), registry and auth
//!   lines left out. pnpm derives a registry entry's URL from `registry`, so those need nothing
//!   else; but it fetches a `tarball:` URL as written and clones a `{type: git}` repository, so
//!   when the lockfile has either, `app/<path>/pnpm-lock.yaml` is handed back with exactly
//!   those resolutions replaced by `{integrity, tarball: <registry URL>}` of the verified (for
//!   git: packed) tarball. Only then: a lockfile of registry entries is handed back as it is
//!   in the commit, so it is not copied.
//! - **offline route** (the bundle): every tarball in `deps/pnpm/…`, and
//!   `deps/app-overlay/<path>/pnpm-lock.yaml` with every fetched resolution replaced by
//!   `{integrity, tarball: file:<relative path to deps/pnpm/…>}` (a `file:` tarball of the
//!   repository kept), so `pnpm install --offline --frozen-lockfile` installs from the bundle
//!   with no registry (checked with pnpm 9.15.9).
//!
//! The rewrites change the `resolution:` lines of those `packages` entries only (every other
//! byte as it was) and are checked by reading the result back.

use super::lockfile::{self, Resolution, PNPM_LOCK};
use crate::bundle::overlay_path;
use crate::pkg_managers::npm::classify::Kind;
use crate::pkg_managers::npm::layout::{
    app_rel, create_in_bundle, npmrc_file, package_report, read_text, with_slash, LayoutContext,
    LayoutError, Tarballs,
};
use crate::pkg_managers::npm::lockfile::Project;
use crate::pkg_managers::npm::plan::{Plan, PlannedDep};
use common::{ConfigContent, ConfigFile, Failure, Package};
use std::collections::BTreeMap;
use std::io::Write;

pub const BUNDLE_DIR: &str = "deps/pnpm";

/// [`LayoutContext::bundle_rel`] of pnpm: `deps/pnpm/<the npm store key below deps/npm/>`.
pub fn bundle_rel(_: &PlannedDep, store_key: &str) -> Option<String> {
    store_key
        .strip_prefix("deps/npm/")
        .map(|rest| format!("{BUNDLE_DIR}/{rest}"))
}

/// A new `resolution` of a `packages` entry: always a tarball with its sha512.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewResolution {
    pub integrity: String,
    pub tarball: String,
}

impl NewResolution {
    /// As a YAML flow mapping, its values JSON-quoted (JSON strings are YAML).
    fn flow(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        format!(
            "{{integrity: {}, tarball: {}}}",
            q(&self.integrity),
            q(&self.tarball)
        )
    }
}

/// Whether pnpm would fetch this entry from somewhere other than `registry=`: a `tarball:`
/// URL or a git repository (a `file:` tarball it reads from the repository).
fn fetched_elsewhere(d: &PlannedDep) -> bool {
    match &d.kind {
        Kind::Git { .. } | Kind::HttpsTarball { .. } => true,
        // a tarball URL on some registry's path: still fetched from that URL
        Kind::Registry => d.entry.resolved.is_some(),
        _ => false,
    }
}

/// The hand-back and offline lockfile of one package directory; its package report.
pub fn layout(
    project: &Project,
    plan: &Plan,
    tarballs: &Tarballs<'_>,
    ctx: &LayoutContext,
) -> Result<(Package, Vec<ConfigFile>), Failure> {
    let repo_url = with_slash(&ctx.repo_url);
    let app_dir = app_rel(&project.path);
    let mut config_files = vec![npmrc_file(ctx, project, "")?];

    let mut registry: BTreeMap<&str, NewResolution> = BTreeMap::new();
    let mut offline: BTreeMap<&str, NewResolution> = BTreeMap::new();
    // the bundle's files relative to the package directory; an output directory's by its
    // absolute path
    let up = if ctx.hand_back == crate::pkg_managers::HandBack::OutputDir {
        format!("{}/", crate::pkg_managers::output_dir_mark())
    } else {
        "../".repeat(project.path.depth() + 1)
    };
    for d in &plan.deps {
        let Some(key) = d.store_key.as_deref() else {
            continue;
        };
        let t = tarballs.get(key).ok_or_else(|| LayoutError::Missing {
            label: d.entry.label(),
            store_key: key.to_string(),
        })?;
        if fetched_elsewhere(d) {
            registry.insert(
                &d.entry.location,
                NewResolution {
                    integrity: t.integrity().to_string(),
                    tarball: format!("{repo_url}{}/-/{}", d.entry.name, t.filename()),
                },
            );
        }
        if matches!(d.kind, Kind::FileTarball { .. }) {
            continue;
        }
        if let Some(rel) = (ctx.bundle_rel)(d, key) {
            offline.insert(
                &d.entry.location,
                NewResolution {
                    integrity: t.integrity().to_string(),
                    tarball: format!("file:{up}{rel}"),
                },
            );
        }
    }

    let display = format!("{app_dir}/{PNPM_LOCK}");
    let text = read_text(&project.dir.join(PNPM_LOCK), PNPM_LOCK)?;
    if !registry.is_empty() {
        let rewritten = rewrite_checked(&text, &registry, &display)?;
        let digest = ctx
            .store
            .put_by_sha256(common::store::config_file_key, |out| {
                out.write_all(&rewritten)
            })
            .map_err(|e| LayoutError::Io {
                file: display.clone(),
                reason: e.to_string(),
            })?;
        config_files.push(ConfigFile {
            path: display.clone(),
            content: ConfigContent::Stored(digest),
        });
    }
    let rewritten = rewrite_checked(&text, &offline, &display)?;
    drop(text);
    let overlay = overlay_path(&display);
    create_in_bundle(ctx.bundle_root(), &overlay)?
        .write_all(&rewritten)
        .map_err(|e| LayoutError::Io {
            file: overlay,
            reason: e.to_string(),
        })?;
    Ok((package_report(project, plan, ctx), config_files))
}

/// [`rewrite_resolutions`], then the result read back: every entry of `new` has exactly its new
/// resolution, or the layout fails (a lockfile written in a shape the line rewrite missed).
fn rewrite_checked(
    text: &str,
    new: &BTreeMap<&str, NewResolution>,
    display: &str,
) -> Result<Vec<u8>, Failure> {
    let not_rewritten = |reason: String| LayoutError::Rewrite {
        file: display.into(),
        reason,
    };
    let (out, replaced) = rewrite_resolutions(text, new);
    if replaced != new.len() {
        return Err(not_rewritten(format!(
            "{replaced} of the {} resolutions to replace were found",
            new.len()
        ))
        .into());
    }
    if new.is_empty() {
        return Ok(out.into_bytes());
    }
    let back = lockfile::parse(&out, display)?;
    let packages = back.packages.map(|p| p.0).unwrap_or_default();
    for (key, r) in new {
        let got = packages
            .get(*key)
            .map(|p| p.resolution.classify(display, key))
            .transpose()?;
        let want = Resolution::Tarball {
            integrity: Some(r.integrity.clone()),
            tarball: r.tarball.clone(),
        };
        if got.as_ref() != Some(&want) {
            return Err(
                not_rewritten(format!("the resolution of {key} reads back as {got:?}")).into(),
            );
        }
    }
    Ok(out.into_bytes())
}

/// `text` with the `resolution` of each `packages` entry named in `new` replaced (a block
/// `resolution:` with its indented lines, or a flow one on its line); every other byte as it
/// was. Returns the text and how many were replaced.
pub fn rewrite_resolutions(text: &str, new: &BTreeMap<&str, NewResolution>) -> (String, usize) {
    let mut out = String::with_capacity(text.len() + new.len() * 64);
    let mut in_packages = false;
    let mut current: Option<&NewResolution> = None;
    let mut skipping = false;
    let mut replaced = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let content = body.trim_start_matches(' ');
        let indent = body.len() - content.len();
        if skipping {
            if !content.is_empty() && indent > 4 {
                continue;
            }
            skipping = false;
        }
        if !content.is_empty() && !content.starts_with('#') && !new.is_empty() {
            if indent == 0 {
                in_packages = content.trim_end() == "packages:";
                current = None;
            } else if in_packages && indent == 2 {
                current = key_of(content).and_then(|k| new.get(k.as_str()));
            } else if in_packages && indent == 4 && content.starts_with("resolution:") {
                if let Some(r) = current.take() {
                    out.push_str("    resolution: ");
                    out.push_str(&r.flow());
                    out.push_str(&line[body.len()..]);
                    replaced += 1;
                    skipping = true;
                    continue;
                }
            }
        }
        out.push_str(line);
    }
    (out, replaced)
}

/// The key of a `  <key>:` line, unquoted as YAML reads it.
fn key_of(content: &str) -> Option<String> {
    let k = content.trim_end().strip_suffix(':')?;
    serde_yaml::from_str::<String>(k).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nr(i: &str, t: &str) -> NewResolution {
        NewResolution {
            integrity: i.into(),
            tarball: t.into(),
        }
    }

    const TEXT: &str = "lockfileVersion: '9.0'\n\nimporters:\n\n  .:\n    dependencies:\n      g:\n        specifier: x\n        version: x\n\npackages:\n\n  '@s/c@2.0.0':\n    resolution: {integrity: sha512-AA==}\n\n  g@git+https://h/u/g.git#0123456789abcdef0123456789abcdef01234567:\n    resolution:\n      commit: 0123456789abcdef0123456789abcdef01234567\n      repo: https://h/u/g.git\n      type: git\n    version: 0.3.0\n\n  t@https://cdn.example.com/t.tgz:\r\n    resolution: {tarball: https://cdn.example.com/t.tgz, integrity: sha1-x}\r\n    version: 1.0.0\r\n\nsnapshots:\n\n  '@s/c@2.0.0': {}\n";

    #[test]
    fn rewrites_only_the_named_resolutions() {
        let g = "g@git+https://h/u/g.git#0123456789abcdef0123456789abcdef01234567";
        let mut new = BTreeMap::new();
        new.insert(g, nr("sha512-GG==", "http://r/repos/1/npm/g/-/g.tgz"));
        new.insert(
            "t@https://cdn.example.com/t.tgz",
            nr("sha512-TT==", "http://r/repos/1/npm/t/-/t.tgz"),
        );
        let out = rewrite_checked(TEXT, &new, "pnpm-lock.yaml").unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            TEXT.replace(
                "    resolution:\n      commit: 0123456789abcdef0123456789abcdef01234567\n      repo: https://h/u/g.git\n      type: git\n",
                "    resolution: {integrity: \"sha512-GG==\", tarball: \"http://r/repos/1/npm/g/-/g.tgz\"}\n"
            )
            .replace(
                "{tarball: https://cdn.example.com/t.tgz, integrity: sha1-x}",
                "{integrity: \"sha512-TT==\", tarball: \"http://r/repos/1/npm/t/-/t.tgz\"}"
            )
        );
        // the scoped (quoted) key
        let mut new = BTreeMap::new();
        new.insert(
            "@s/c@2.0.0",
            nr("sha512-AA==", "file:../deps/pnpm/@s/c/-/c-2.0.0.tgz"),
        );
        let out = String::from_utf8(rewrite_checked(TEXT, &new, "x").unwrap()).unwrap();
        assert!(out.contains("  '@s/c@2.0.0':\n    resolution: {integrity: \"sha512-AA==\", tarball: \"file:../deps/pnpm/@s/c/-/c-2.0.0.tgz\"}\n\n"), "{out}");
        // nothing to replace: the text as it was
        assert_eq!(
            rewrite_checked(TEXT, &BTreeMap::new(), "x").unwrap(),
            TEXT.as_bytes()
        );
        // a key the text does not have
        let mut new = BTreeMap::new();
        new.insert("zz@1.0.0", nr("sha512-AA==", "file:x"));
        assert!(rewrite_checked(TEXT, &new, "x").is_err());
    }

    #[test]
    fn tarballs_go_to_deps_pnpm() {
        let d = PlannedDep {
            entry: Default::default(),
            kind: Kind::Registry,
            store_key: None,
        };
        assert_eq!(
            bundle_rel(&d, "deps/npm/@s/c/-/c-2.0.0.tgz").as_deref(),
            Some("deps/pnpm/@s/c/-/c-2.0.0.tgz")
        );
        assert_eq!(bundle_rel(&d, "elsewhere/x.tgz"), None);
    }
}
