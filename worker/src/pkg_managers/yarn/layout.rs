//! yarn v1's hand-back and offline mirror.
//!
//! - **registry route** (configuration files): yarn v1 fetches each tarball from the lockfile's
//!   `resolved` URL whatever `.npmrc`/`.yarnrc` say, so `app/<path>/yarn.lock` is handed back
//!   with every fetched entry's `resolved` on the per-request registry
//!   (`<repo_url><name>/-/<file>#<sha1>`, the fragment kept: the bytes are the same), and
//!   `app/<path>/.npmrc` with the token and `always-auth=true` (yarn sends it to the registry's
//!   URLs only then);
//! - **offline route** (the bundle): every registry and https tarball in `deps/yarn-classic/`
//!   under yarn's own offline-mirror name, and `deps/app-overlay/app/<path>/.yarnrc` naming that
//!   mirror, so `yarn install --offline --frozen-lockfile` installs from the bundle with the
//!   commit's own yarn.lock.

use super::lockfile::{tokens_of, YARN_LOCK};
use crate::bundle::overlay_path;
use crate::pkg_managers::npm::classify::Kind;
use crate::pkg_managers::npm::layout::{
    app_rel, create_in_bundle, npmrc_file, package_report, read_text, with_slash, LayoutContext,
    LayoutError,
};
use crate::pkg_managers::npm::lockfile::Project;
use crate::pkg_managers::npm::plan::{Plan, PlannedDep};
use common::{ConfigContent, ConfigFile, ErrorKind, Failure, Package};
use std::collections::BTreeMap;
use std::io::Write;

pub const MIRROR_DIR: &str = "deps/yarn-classic";

/// yarn's offline-mirror file name of a tarball URL (`tarball-fetcher.js`,
/// `getTarballMirrorPath`): a registry path `/@scope/name/-/name-1.0.0.tgz` gives
/// `@scope-name-1.0.0.tgz`, anything else its last path segment.
pub fn mirror_name(resolved: &str) -> String {
    let path = url::Url::parse(resolved)
        .map(|u| u.path().to_string())
        .unwrap_or_else(|_| resolved.to_string());
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let last = segments.last().copied().unwrap_or_default();
    if let [.., scope, _name, dash, _file] = segments.as_slice() {
        if scope.starts_with('@') && (*dash == "-" || *dash == "_attachments") {
            return format!("{scope}-{last}");
        }
    }
    last.to_string()
}

/// [`LayoutContext::bundle_rel`] of yarn: registry and https tarballs in the offline mirror; a
/// `file:` tarball yarn reads from the repository itself.
pub fn mirror_rel(d: &PlannedDep, _store_key: &str) -> Option<String> {
    match d.kind {
        Kind::Registry | Kind::HttpsTarball { .. } => d
            .entry
            .resolved
            .as_deref()
            .map(|r| format!("{MIRROR_DIR}/{}", mirror_name(r))),
        _ => None,
    }
}

/// Two different tarballs under one mirror name would make the offline install pick one.
pub fn check_mirror_names<'p>(plans: impl Iterator<Item = &'p Plan>) -> Result<(), Failure> {
    let mut names: BTreeMap<String, &str> = BTreeMap::new();
    for p in plans {
        for d in &p.deps {
            let (Some(key), Some(rel)) = (
                &d.store_key,
                d.store_key.as_deref().and_then(|k| mirror_rel(d, k)),
            ) else {
                continue;
            };
            match names.get(&rel) {
                Some(other) if *other != key.as_str() => {
                    return Err(Failure::new(
                        ErrorKind::UnsupportedFeature,
                        format!(
                            "Two different tarballs have the yarn offline mirror name {rel:?} (the second is {}); yarn could not tell them apart offline",
                            d.entry.label()
                        ),
                    ))
                }
                _ => {
                    names.insert(rel, key);
                }
            }
        }
    }
    Ok(())
}

/// The hand-back and overlay of one package directory; its package report.
pub fn layout(
    project: &Project,
    plan: &Plan,
    ctx: &LayoutContext,
) -> Result<(Package, Vec<ConfigFile>), Failure> {
    let repo_url = with_slash(&ctx.repo_url);
    let app_dir = app_rel(&project.path);
    let mut config_files = vec![npmrc_file(ctx, &project.path, "always-auth=true\n".into())];

    // the registry route: entry i of the lockfile is plan.deps[i]
    let urls: Vec<Option<String>> = plan
        .deps
        .iter()
        .map(|d| match (&d.kind, d.filename()) {
            (Kind::Registry | Kind::HttpsTarball { .. }, Some(file)) => {
                Some(format!("{repo_url}{}/-/{file}", d.entry.name))
            }
            _ => None,
        })
        .collect();
    let text = read_text(&project.dir.join(YARN_LOCK), YARN_LOCK)?;
    let digest = ctx
        .store
        .put_by_sha256(common::store::config_file_key, |out| {
            rewrite_resolved(&text, &urls, out)
        })
        .map_err(|e| LayoutError::Io {
            file: YARN_LOCK.into(),
            reason: e.to_string(),
        })?;
    config_files.push(ConfigFile {
        path: format!("{app_dir}/{YARN_LOCK}"),
        content: ConfigContent::Stored(digest),
    });

    // the offline route: the mirror, relative to the package directory yarn runs in
    let up = "../".repeat(project.path.depth() + 1);
    let overlay = overlay_path(&format!("{app_dir}/.yarnrc"));
    let mut f = create_in_bundle(&ctx.bundle_root, &overlay)?;
    write!(
        f,
        "yarn-offline-mirror \"{up}{MIRROR_DIR}\"\nyarn-offline-mirror-pruning false\n"
    )
    .map_err(|e| LayoutError::Io {
        file: overlay,
        reason: e.to_string(),
    })?;
    Ok((package_report(project, plan, ctx), config_files))
}

/// `text` with the `resolved` of entry `i` (in the order the parser numbers them) replaced by
/// `urls[i]` when it is Some, its `#<sha1>` fragment kept; every other byte as it was.
pub fn rewrite_resolved(
    text: &str,
    urls: &[Option<String>],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut entry: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let content = body.trim_start_matches(' ');
        let indent = body.len() - content.len();
        if !content.is_empty() && !content.starts_with('#') {
            if indent == 0 {
                entry = Some(entry.map_or(0, |i| i + 1));
            } else if indent == 2 {
                if let (Some(Some(url)), Some(toks)) =
                    (entry.and_then(|i| urls.get(i)), tokens_of(content))
                {
                    if let [k, old] = toks.as_slice() {
                        if k == "resolved" {
                            let fragment = old
                                .split_once('#')
                                .map(|(_, f)| format!("#{f}"))
                                .unwrap_or_default();
                            let value = serde_json::to_string(&format!("{url}{fragment}"))
                                .map_err(std::io::Error::other)?;
                            out.write_all(format!("  resolved {value}").as_bytes())?;
                            out.write_all(&line.as_bytes()[body.len()..])?;
                            continue;
                        }
                    }
                }
            }
        }
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_names() {
        for (url, name) in [
            (
                "https://registry.yarnpkg.com/a/-/a-1.0.0.tgz",
                "a-1.0.0.tgz",
            ),
            (
                "https://registry.yarnpkg.com/@s/b/-/b-2.0.0.tgz",
                "@s-b-2.0.0.tgz",
            ),
            ("https://cdn.example.com/x/t.tgz", "t.tgz"),
        ] {
            assert_eq!(mirror_name(url), name);
        }
    }

    #[test]
    fn rewrites_only_resolved_of_fetched_entries() {
        let text = "# yarn lockfile v1\n\n\"a@^1\", a@1:\r\n  version \"1.0.0\"\r\n  resolved \"https://registry.yarnpkg.com/a/-/a-1.0.0.tgz#abc\"\r\n\nl@1:\n  version \"1\"\n  resolved \"file:x.tgz#def\"\n  dependencies:\n    resolved \"x\"\n";
        let mut out = Vec::new();
        rewrite_resolved(
            text,
            &[Some("http://r/repos/1/npm/a/-/a-1.0.0.tgz".into()), None],
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            text.replace(
                "https://registry.yarnpkg.com/a/-/a-1.0.0.tgz#abc",
                "http://r/repos/1/npm/a/-/a-1.0.0.tgz#abc"
            )
        );
    }
}
