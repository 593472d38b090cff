//! yarn v1's hand-back and offline mirror.
//!
//! - **registry route** (configuration files): yarn v1 fetches each tarball from the lockfile's
//!   `resolved` URL whatever `.npmrc`/`.yarnrc` say, so `app/<path>/yarn.lock` is handed back
//!   with every fetched entry's `resolved` on the per-request registry
//!   (`<repo_url><name>/-/<file>#<sha1>`, the fragment kept: the bytes are the same), and
//!   `app/<path>/.npmrc` with the token and `always-auth=true` (yarn sends it to the registry's
//!   URLs only then). yarn clones a git source whatever its `resolved` says, so a git
//!   dependency is handed back as the registry's tarball of Larder's pack of it: its keys,
//!   every reference to them and the package.json's spec name that tarball (as Cachito did);
//! - **offline route** (the bundle): every registry and https tarball in `deps/yarn-classic/`
//!   under yarn's own offline-mirror name, a git source as the archive yarn's git fetcher
//!   reads there, and `deps/app-overlay/app/<path>/.yarnrc` naming that mirror, so
//!   `yarn install --offline --frozen-lockfile` installs from the bundle with the commit's own
//!   yarn.lock.

use super::lockfile::{keys_of, tokens_of, YARN_LOCK};
use crate::bundle::overlay_path;
use crate::pkg_managers::npm::classify::Kind;
use crate::pkg_managers::npm::layout::{
    app_rel, create_in_bundle, npmrc_file, package_report, read_json, read_text, rewrite_dep_specs,
    to_bytes, with_slash, LayoutContext, LayoutError, Tarballs,
};
use crate::pkg_managers::npm::lockfile::Project;
use crate::pkg_managers::npm::plan::{Plan, PlannedDep};
use common::{ConfigContent, ConfigFile, ErrorKind, Failure, Package};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

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

/// A dependency's file in yarn's offline mirror, by the form yarn reads it in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MirrorFile {
    /// a gzipped npm tarball (registry, https, GitHub's codeload): the stored file itself
    Tarball(String),
    /// `git-fetcher.js`'s `<basename of the URL>-<commit>`: a plain tar of the package's
    /// files at its root, as `git archive` writes it
    GitArchive(String),
}

/// Where yarn looks for `d` in its offline mirror.
pub fn mirror_file(d: &PlannedDep) -> Option<MirrorFile> {
    match &d.kind {
        Kind::Registry | Kind::HttpsTarball { .. } => d
            .entry
            .resolved
            .as_deref()
            .map(|r| MirrorFile::Tarball(mirror_name(r))),
        Kind::Git { original, .. } => {
            let (base, hash) = original.split_once('#')?;
            if base.starts_with("github:") {
                // `git_spec` of a codeload URL, whose last segment is the commit
                return Some(MirrorFile::Tarball(hash.to_string()));
            }
            let path = base.split_once("://").map_or(base, |(_, rest)| rest);
            let name = path
                .split_once('/')
                .map_or("", |(_, p)| p)
                .rsplit('/')
                .find(|s| !s.is_empty())?;
            let name = name.strip_prefix(':').unwrap_or(name);
            Some(MirrorFile::GitArchive(format!("{name}-{hash}")))
        }
        _ => None,
    }
}

impl MirrorFile {
    fn rel(&self) -> String {
        match self {
            MirrorFile::Tarball(n) | MirrorFile::GitArchive(n) => format!("{MIRROR_DIR}/{n}"),
        }
    }
}

/// [`LayoutContext::bundle_rel`] of yarn: the tarballs of the offline mirror (a git archive is
/// written by [`layout`]; a `file:` tarball yarn reads from the repository itself).
pub fn mirror_rel(d: &PlannedDep, _store_key: &str) -> Option<String> {
    match mirror_file(d)? {
        f @ MirrorFile::Tarball(_) => Some(f.rel()),
        MirrorFile::GitArchive(_) => None,
    }
}

/// Two different tarballs under one mirror name would make the offline install pick one.
pub fn check_mirror_names<'p>(plans: impl Iterator<Item = &'p Plan>) -> Result<(), Failure> {
    let mut names: BTreeMap<String, &str> = BTreeMap::new();
    for p in plans {
        for d in &p.deps {
            let (Some(key), Some(rel)) = (&d.store_key, mirror_file(d).map(|f| f.rel())) else {
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

/// How the hand-back's yarn.lock changes one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryRewrite {
    /// a tarball served as it is: `resolved` on the registry, its `#<sha1>` fragment kept
    Resolved(String),
    /// a git source served as Larder packed it: its keys and every reference to them name
    /// `url`, with the pack's sha1 fragment and integrity
    Packed {
        url: String,
        shasum: String,
        integrity: String,
    },
}

/// The hand-back and overlay of one package directory; its package report.
pub fn layout(
    project: &Project,
    plan: &Plan,
    tarballs: &Tarballs<'_>,
    ctx: &LayoutContext,
) -> Result<(Package, Vec<ConfigFile>), Failure> {
    let repo_url = with_slash(&ctx.repo_url);
    let app_dir = app_rel(&project.path);
    let mut config_files = vec![npmrc_file(ctx, project, "always-auth=true\n")?];

    // the registry route: entry i of the lockfile is plan.deps[i]
    let rewrites: Vec<Option<EntryRewrite>> = plan
        .deps
        .iter()
        .map(|d| {
            let (key, file) = (d.store_key.as_deref()?, d.filename()?);
            let url = format!("{repo_url}{}/-/{file}", d.entry.name);
            match &d.kind {
                Kind::Registry | Kind::HttpsTarball { .. } => Some(EntryRewrite::Resolved(url)),
                Kind::Git { .. } => tarballs.get(key).map(|t| EntryRewrite::Packed {
                    url,
                    shasum: t.shasum().to_string(),
                    integrity: t.integrity().to_string(),
                }),
                _ => None,
            }
        })
        .collect();
    let text = read_text(&project.dir.join(YARN_LOCK), YARN_LOCK)?;
    let specs = packed_specs(&text, &rewrites);
    let digest = ctx
        .store
        .put_by_sha256(common::store::config_file_key, |out| {
            rewrite_lock(&text, &rewrites, &specs, out)
        })
        .map_err(|e| LayoutError::Io {
            file: YARN_LOCK.into(),
            reason: e.to_string(),
        })?;
    drop(text);
    config_files.push(ConfigFile {
        path: format!("{app_dir}/{YARN_LOCK}"),
        content: ConfigContent::Stored(digest),
    });
    if !specs.is_empty() {
        let mut pj = read_json(&project.dir.join("package.json"), "package.json")?;
        if rewrite_package_json(&mut pj, &specs) {
            config_files.push(ConfigFile::inline(
                format!("{app_dir}/package.json"),
                to_bytes(&pj),
            ));
        }
    }

    // the offline route: the mirror, relative to the package directory yarn runs in
    for d in &plan.deps {
        if let (Some(MirrorFile::GitArchive(name)), Some(key)) = (mirror_file(d), &d.store_key) {
            let rel = MirrorFile::GitArchive(name).rel();
            if !ctx.bundle_root().join(&rel).exists() {
                let packed = ctx.store.path(key).map_err(|e| LayoutError::Io {
                    file: key.clone(),
                    reason: e.to_string(),
                })?;
                let out = create_in_bundle(ctx.bundle_root(), &rel)?;
                write_git_archive(&packed, out).map_err(|e| LayoutError::Io {
                    file: rel,
                    reason: e.to_string(),
                })?;
            }
        }
    }
    if ctx.hand_back == crate::pkg_managers::HandBack::OutputDir {
        // the mirror is named by variables (`YARN_YARN_OFFLINE_MIRROR`)
        return Ok((package_report(project, plan, ctx), config_files));
    }
    let up = "../".repeat(project.path.depth() + 1);
    let overlay = overlay_path(&format!("{app_dir}/.yarnrc"));
    let mut f = create_in_bundle(ctx.bundle_root(), &overlay)?;
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

/// The files of an npm pack (`package/…`, gzipped) as a plain tar with them at its root: what
/// yarn's git fetcher reads from the offline mirror (it strips `package/` only from a tar
/// yarn packed itself, which it marks in a pax header).
fn write_git_archive(packed: &Path, out: std::fs::File) -> std::io::Result<()> {
    let gz = flate2::read::GzDecoder::new(std::io::BufReader::new(std::fs::File::open(packed)?));
    let mut archive = tar::Archive::new(gz);
    let mut builder = tar::Builder::new(std::io::BufWriter::new(out));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let rel = path.strip_prefix("package").unwrap_or(&path).to_path_buf();
        if rel.as_os_str().is_empty() {
            continue;
        }
        let mut header = entry.header().clone();
        builder.append_data(&mut header, rel, &mut entry)?;
    }
    builder.into_inner()?.flush()
}

/// One line of a yarn.lock with the number of the entry it is in (headers counted as the
/// parser counts them) and its indentation.
struct Line<'t> {
    entry: Option<usize>,
    indent: usize,
    content: &'t str,
    /// the line without its line ending
    body: &'t str,
    line: &'t str,
}

fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    let mut entry: Option<usize> = None;
    text.split_inclusive('\n').map(move |line| {
        let body = line.trim_end_matches(['\n', '\r']);
        let content = body.trim_start_matches(' ');
        let indent = body.len() - content.len();
        if indent == 0 && !content.is_empty() && !content.starts_with('#') {
            entry = Some(entry.map_or(0, |i| i + 1));
        }
        Line {
            entry,
            indent,
            content,
            body,
            line,
        }
    })
}

/// `(name, range)` of every key of a packed entry → the URL it is handed back as.
pub fn packed_specs(
    text: &str,
    rewrites: &[Option<EntryRewrite>],
) -> BTreeMap<(String, String), String> {
    let mut specs = BTreeMap::new();
    for l in lines(text) {
        if l.indent != 0 || l.content.is_empty() || l.content.starts_with('#') {
            continue;
        }
        if let Some(Some(EntryRewrite::Packed { url, .. })) = l.entry.and_then(|i| rewrites.get(i))
        {
            for k in keys_of(l.content).unwrap_or_default() {
                specs.insert((k.name, k.range), url.clone());
            }
        }
    }
    specs
}

fn quoted(s: &str) -> std::io::Result<String> {
    serde_json::to_string(s).map_err(std::io::Error::other)
}

/// `text` with entry `i` (in the order the parser numbers them) changed as `rewrites[i]` says
/// and every reference to a key in `specs` naming its URL; every other byte as it was.
pub fn rewrite_lock(
    text: &str,
    rewrites: &[Option<EntryRewrite>],
    specs: &BTreeMap<(String, String), String>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    for l in lines(text) {
        let rewrite = l
            .entry
            .and_then(|i| rewrites.get(i))
            .and_then(Option::as_ref);
        let ending = &l.line.as_bytes()[l.body.len()..];
        let blank_or_comment = l.content.is_empty() || l.content.starts_with('#');
        match (l.indent, rewrite) {
            (0, Some(EntryRewrite::Packed { url, .. })) if !blank_or_comment => {
                let mut keys: Vec<String> = Vec::new();
                for k in keys_of(l.content).unwrap_or_default() {
                    let key = quoted(&format!("{}@{url}", k.name))?;
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
                out.write_all(format!("{}:", keys.join(", ")).as_bytes())?;
                out.write_all(ending)?;
                continue;
            }
            (2, Some(r)) if !blank_or_comment => match (tokens_of(l.content).as_deref(), r) {
                (Some([k, old]), EntryRewrite::Resolved(url)) if k == "resolved" => {
                    let fragment = old
                        .split_once('#')
                        .map(|(_, f)| format!("#{f}"))
                        .unwrap_or_default();
                    let value = quoted(&format!("{url}{fragment}"))?;
                    out.write_all(format!("  resolved {value}").as_bytes())?;
                    out.write_all(ending)?;
                    continue;
                }
                (
                    Some([k, _]),
                    EntryRewrite::Packed {
                        url,
                        shasum,
                        integrity,
                    },
                ) if k == "resolved" => {
                    let value = quoted(&format!("{url}#{shasum}"))?;
                    out.write_all(format!("  resolved {value}").as_bytes())?;
                    out.write_all(ending)?;
                    out.write_all(format!("  integrity {integrity}").as_bytes())?;
                    out.write_all(ending)?;
                    continue;
                }
                (Some([k, _]), EntryRewrite::Packed { .. }) if k == "integrity" => continue,
                _ => {}
            },
            (4, _) if !specs.is_empty() && !blank_or_comment => {
                if let Some([name, range]) = tokens_of(l.content).as_deref() {
                    if let Some(url) = specs.get(&(name.clone(), range.clone())) {
                        let line = format!("    {} {}", quoted(name)?, quoted(url)?);
                        out.write_all(line.as_bytes())?;
                        out.write_all(ending)?;
                        continue;
                    }
                }
            }
            _ => {}
        }
        out.write_all(l.line.as_bytes())?;
    }
    Ok(())
}

/// The package.json's specs of packed git dependencies on the URLs they are handed back as;
/// whether any changed.
fn rewrite_package_json(
    pj: &mut serde_json::Value,
    specs: &BTreeMap<(String, String), String>,
) -> bool {
    rewrite_dep_specs(pj, |name, range| {
        specs.get(&(name.to_string(), range.to_string())).cloned()
    })
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
        let rewrites = [
            Some(EntryRewrite::Resolved(
                "http://r/repos/1/npm/a/-/a-1.0.0.tgz".into(),
            )),
            None,
        ];
        rewrite_lock(text, &rewrites, &packed_specs(text, &rewrites), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            text.replace(
                "https://registry.yarnpkg.com/a/-/a-1.0.0.tgz#abc",
                "http://r/repos/1/npm/a/-/a-1.0.0.tgz#abc"
            )
        );
    }
    #[test]
    fn git_sources_are_packed_under_the_registry() {
        let c = "0123456789abcdef0123456789abcdef01234567";
        let text = format!(
            "# yarn lockfile v1\n\na@^1:\n  version \"1.0.0\"\n  resolved \"https://registry.yarnpkg.com/a/-/a-1.0.0.tgz#abc\"\n  dependencies:\n    gdep \"git+https://h/u/gdep.git#{c}\"\n    other \"^1\"\n\n\"gdep@git+https://h/u/gdep.git#{c}\", gdep@h/u/gdep#{c}:\n  version \"0.3.0\"\n  resolved \"git+https://h/u/gdep.git#{c}\"\n  integrity sha512-old\n"
        );
        let url = "http://r/npm/gdep/-/gdep-external-gitcommit-x.tgz";
        let rewrites = [
            None,
            Some(EntryRewrite::Packed {
                url: url.into(),
                shasum: "feed".into(),
                integrity: "sha512-new".into(),
            }),
        ];
        let specs = packed_specs(&text, &rewrites);
        assert_eq!(specs.len(), 2);
        let mut out = Vec::new();
        rewrite_lock(&text, &rewrites, &specs, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "# yarn lockfile v1\n\na@^1:\n  version \"1.0.0\"\n  resolved \"https://registry.yarnpkg.com/a/-/a-1.0.0.tgz#abc\"\n  dependencies:\n    \"gdep\" \"{url}\"\n    other \"^1\"\n\n\"gdep@{url}\":\n  version \"0.3.0\"\n  resolved \"{url}#feed\"\n  integrity sha512-new\n"
            )
        );
        let mut pj =
            serde_json::json!({"dependencies": {"gdep": format!("h/u/gdep#{c}"), "a": "^1"}});
        assert!(rewrite_package_json(&mut pj, &specs));
        assert_eq!(pj["dependencies"]["gdep"], url);
        assert_eq!(pj["dependencies"]["a"], "^1");
    }

    #[test]
    fn git_mirror_files() {
        use crate::pkg_managers::npm::lockfile::LockEntry;
        let c = "0123456789abcdef0123456789abcdef01234567";
        let dep = |original: &str| PlannedDep {
            entry: LockEntry::default(),
            kind: Kind::Git {
                url: String::new(),
                commit: common::commit::CommitId::parse_any_case(c).unwrap(),
                host: String::new(),
                repo_path: String::new(),
                original: original.into(),
            },
            store_key: None,
        };
        for (original, file) in [
            (
                format!("git+https://h/u/gdep.git#{c}"),
                MirrorFile::GitArchive(format!("gdep.git-{c}")),
            ),
            (
                format!("git+ssh://git@github.com:u/a.git#{c}"),
                MirrorFile::GitArchive(format!("a.git-{c}")),
            ),
            (
                format!("git+file:///srv/repos/x#{c}"),
                MirrorFile::GitArchive(format!("x-{c}")),
            ),
            (format!("github:u/a#{c}"), MirrorFile::Tarball(c.into())),
        ] {
            assert_eq!(mirror_file(&dep(&original)), Some(file), "{original}");
        }
    }
}
