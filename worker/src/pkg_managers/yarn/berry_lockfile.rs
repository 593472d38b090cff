//! Yarn Berry's `yarn.lock` (Yarn 2–4, `__metadata.version` 4–10): YAML, read natively.
//!
//! Each key is one or more comma-joined descriptors (`"a@npm:^1.0.0, a@npm:^1.2.0"`); each entry
//! has `version`, `resolution` (the locator: `a@npm:1.2.3`, `a@workspace:packages/a`,
//! `a@patch:a@npm%3A1.0.0#./x.patch::version=1.0.0&hash=…&locator=…`), `dependencies`,
//! `peerDependencies`, `dependenciesMeta`, `checksum` (`10c0/<sha512 hex>` in Yarn 4; a bare
//! hex in older ones, whose cache key is `__metadata.cacheKey`), `conditions`, `languageName`,
//! `linkType`.

use crate::pkg_managers::limits::MAX_LOCKFILE_ENTRIES;
use common::{Classify, ErrorKind};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// The lockfile versions of Yarn 2.0 (4) to Yarn 4.x (10 in 4.18).
pub const VERSIONS: std::ops::RangeInclusive<u32> = 4..=10;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BerryLockError {
    #[error("{file} is not a valid yarn Berry lockfile: {reason}")]
    Syntax { file: String, reason: String },
    #[error("{file} has the yarn lockfile version {version}; Larder reads versions 4 to 10 (Yarn 2 to 4)")]
    Version { file: String, version: u32 },
    #[error("{file} has more than {max} entries")]
    TooManyEntries { file: String, max: usize },
    #[error("{file}: the entry {key:?} has no valid resolution")]
    Resolution { file: String, key: String },
}

impl Classify for BerryLockError {
    fn kind(&self) -> ErrorKind {
        match self {
            BerryLockError::Version { .. } => ErrorKind::UnsupportedFeature,
            _ => ErrorKind::InvalidFileFormat,
        }
    }
}

/// Whether `text` is a Berry lockfile: a `__metadata:` entry at the top level.
pub fn is_berry(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("__metadata:") || l.starts_with("\"__metadata\":"))
}

#[derive(Debug, Default, Deserialize)]
struct RawMetadata {
    version: Option<serde_yaml::Value>,
    #[serde(rename = "cacheKey")]
    cache_key: Option<serde_yaml::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct RawEntry {
    version: Option<serde_yaml::Value>,
    resolution: Option<String>,
    #[serde(default)]
    dependencies: BTreeMap<String, serde_yaml::Value>,
    /// only read for the graph: a lockfile whose peers are not a map was accepted before
    #[serde(default, rename = "peerDependencies")]
    peer_dependencies: serde_yaml::Value,
    #[serde(default, rename = "dependenciesMeta")]
    dependencies_meta: BTreeMap<String, serde_yaml::Value>,
    checksum: Option<String>,
    conditions: Option<String>,
}

/// A locator `name@reference`, the reference split at its protocol.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Locator {
    pub name: String,
    /// `npm:1.2.3`, `workspace:.`, `patch:…`
    pub reference: String,
}

impl Locator {
    /// Split at the first `@` after the first character (a scope's `@` stays in the name).
    pub fn parse(text: &str) -> Option<Locator> {
        let at = text.char_indices().skip(1).find(|(_, c)| *c == '@')?.0;
        let (name, reference) = (&text[..at], &text[at + 1..]);
        (!name.is_empty() && !reference.is_empty()).then(|| Locator {
            name: name.to_string(),
            reference: reference.to_string(),
        })
    }

    pub fn protocol(&self) -> &str {
        self.reference.split_once(':').map_or("", |(p, _)| p)
    }

    pub fn text(&self) -> String {
        format!("{}@{}", self.name, self.reference)
    }
}

/// One entry of the lockfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// its descriptors (`a@npm:^1.0.0`)
    pub descriptors: Vec<String>,
    pub version: Option<String>,
    pub resolution: Locator,
    /// name → range, as the lockfile writes them (`npm:^1.0.0`)
    pub dependencies: BTreeMap<String, String>,
    /// name → range, as the package declares them (`^18.0.0`: not normalized to `npm:`)
    pub peer_dependencies: BTreeMap<String, String>,
    /// the dependencies `dependenciesMeta` marks `optional: true` (its optionalDependencies:
    /// Berry lists them among the others)
    pub optional: BTreeSet<String>,
    /// the hash of the checksum (sha512 hex) and its cache key (`10c0`, or the metadata's)
    pub checksum: Option<(String, String)>,
    /// `os=linux & cpu=x64`: Yarn fetches it only on such a system
    pub conditions: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BerryLock {
    pub version: u32,
    pub cache_key: Option<String>,
    pub entries: Vec<Entry>,
}

fn scalar(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Parse a Berry lockfile (`file` names it in errors).
pub fn parse(text: &str, file: &str) -> Result<BerryLock, BerryLockError> {
    let syntax = |reason: String| BerryLockError::Syntax {
        file: file.into(),
        reason,
    };
    let doc: serde_yaml::Mapping = serde_yaml::from_str(text).map_err(|e| syntax(e.to_string()))?;
    if doc.len() > MAX_LOCKFILE_ENTRIES {
        return Err(BerryLockError::TooManyEntries {
            file: file.into(),
            max: MAX_LOCKFILE_ENTRIES,
        });
    }
    let mut metadata = None;
    let mut entries = Vec::new();
    for (k, v) in doc {
        let key = scalar(&k).ok_or_else(|| syntax("a key that is not a string".into()))?;
        if key == "__metadata" {
            let m: RawMetadata =
                serde_yaml::from_value(v).map_err(|e| syntax(format!("__metadata: {e}")))?;
            metadata = Some(m);
            continue;
        }
        let raw: RawEntry =
            serde_yaml::from_value(v).map_err(|e| syntax(format!("{key:?}: {e}")))?;
        let resolution = raw
            .resolution
            .as_deref()
            .and_then(Locator::parse)
            .ok_or_else(|| BerryLockError::Resolution {
                file: file.into(),
                key: key.clone(),
            })?;
        let dependencies = raw
            .dependencies
            .iter()
            .filter_map(|(n, r)| scalar(r).map(|r| (n.clone(), r)))
            .collect();
        let peer_dependencies = raw
            .peer_dependencies
            .as_mapping()
            .into_iter()
            .flatten()
            .filter_map(|(n, r)| Some((scalar(n)?, scalar(r)?)))
            .collect();
        let checksum = raw.checksum.map(|c| match c.split_once('/') {
            Some((key, hash)) => (hash.to_string(), key.to_string()),
            None => (c, String::new()),
        });
        let optional = raw
            .dependencies_meta
            .iter()
            .filter(|(_, m)| m.get("optional").and_then(|o| o.as_bool()) == Some(true))
            // `name` or `name@version`
            .filter_map(|(n, _)| Locator::parse(n).map(|l| l.name).or(Some(n.clone())))
            .collect();
        entries.push(Entry {
            descriptors: key.split(", ").map(|d| d.trim().to_string()).collect(),
            optional,
            version: raw.version.as_ref().and_then(scalar),
            resolution,
            dependencies,
            peer_dependencies,
            checksum,
            conditions: raw.conditions,
        });
    }
    let metadata = metadata.ok_or_else(|| syntax("it has no __metadata entry".into()))?;
    let version = metadata
        .version
        .as_ref()
        .and_then(scalar)
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| syntax("__metadata.version is not a number".into()))?;
    if !VERSIONS.contains(&version) {
        return Err(BerryLockError::Version {
            file: file.into(),
            version,
        });
    }
    let cache_key = metadata.cache_key.as_ref().and_then(scalar);
    // a bare checksum's cache key is the metadata's
    for e in &mut entries {
        if let Some((_, key)) = &mut e.checksum {
            if key.is_empty() {
                *key = cache_key.clone().unwrap_or_default();
            }
        }
    }
    Ok(BerryLock {
        version,
        cache_key,
        entries,
    })
}

/// `%XX` decoded (Yarn url-encodes the base of a `patch:` reference).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `patch:` reference: `<base descriptor, url-encoded>#<source>::<params>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchRef {
    /// the patched package's descriptor (`a@npm:1.0.0`)
    pub base: String,
    /// the patch files (`./patches/a.patch`, `optional!builtin<compat/typescript>`), `&`-joined
    /// in Yarn's reference
    pub sources: Vec<String>,
    /// the `locator` parameter: the workspace a relative patch path is relative to
    pub locator: Option<String>,
}

impl PatchRef {
    pub fn parse(reference: &str) -> Option<PatchRef> {
        let rest = reference.strip_prefix("patch:")?;
        let (main, params) = rest.split_once("::").unwrap_or((rest, ""));
        let (base, source) = main.split_once('#')?;
        let locator = params
            .split('&')
            .find_map(|p| p.strip_prefix("locator="))
            .map(percent_decode);
        Some(PatchRef {
            base: percent_decode(base),
            sources: percent_decode(source)
                .split('&')
                .map(str::to_string)
                .collect(),
            locator,
        })
    }
}

/// Whether a patch source is one of Yarn's own (`builtin<compat/typescript>`, optional or not).
pub fn is_builtin_patch(source: &str) -> bool {
    source
        .strip_prefix("optional!")
        .unwrap_or(source)
        .starts_with("builtin<")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"# This file is generated by running "yarn install" inside your project.
# Manual changes might be lost - proceed with caution!

__metadata:
  version: 8
  cacheKey: 10c0

"@s/c@npm:^2.0.0, @s/c@npm:^2.0.1":
  version: 2.0.1
  resolution: "@s/c@npm:2.0.1"
  dependencies:
    b: "npm:^2.0.0"
    o: "npm:^1"
  peerDependencies:
    react: ^18
  dependenciesMeta:
    o:
      optional: true
    b@2.0.0:
      built: false
  checksum: 10c0/abcd
  languageName: node
  linkType: hard

"app@workspace:.":
  version: 0.0.0-use.local
  resolution: "app@workspace:."
  languageName: unknown
  linkType: soft

"old@npm:1":
  version: 1.0.0
  resolution: "old@npm:1.0.0"
  peerDependencies: [not, a, map]
  checksum: ef01
  conditions: os=darwin
  languageName: node
  linkType: hard

"a@patch:a@npm%3A1.0.0#./patches/a.patch::locator=app%40workspace%3A.":
  version: 1.0.0
  resolution: "a@patch:a@npm%3A1.0.0#./patches/a.patch::version=1.0.0&hash=abc&locator=app%40workspace%3A."
  languageName: node
  linkType: hard
"#;

    #[test]
    fn reads_entries() {
        assert!(is_berry(LOCK));
        assert!(!is_berry("# yarn lockfile v1\n"));
        let l = parse(LOCK, "yarn.lock").unwrap();
        assert_eq!((l.version, l.cache_key.as_deref()), (8, Some("10c0")));
        assert_eq!(l.entries.len(), 4);
        let c = &l.entries[0];
        assert_eq!(c.descriptors, ["@s/c@npm:^2.0.0", "@s/c@npm:^2.0.1"]);
        assert_eq!(c.resolution.name, "@s/c");
        assert_eq!(c.resolution.reference, "npm:2.0.1");
        assert_eq!(c.resolution.protocol(), "npm");
        assert_eq!(c.dependencies["b"], "npm:^2.0.0");
        // peers as the package declares them; read for the graph only, so leniently
        assert_eq!(c.peer_dependencies["react"], "^18");
        assert!(l.entries[2].peer_dependencies.is_empty());
        assert_eq!(c.optional.iter().collect::<Vec<_>>(), ["o"]);
        assert_eq!(c.checksum, Some(("abcd".into(), "10c0".into())));
        assert_eq!(l.entries[1].resolution.protocol(), "workspace");
        let old = &l.entries[2];
        assert_eq!(old.checksum, Some(("ef01".into(), "10c0".into())));
        assert_eq!(old.conditions.as_deref(), Some("os=darwin"));
        let p = PatchRef::parse(&l.entries[3].resolution.reference).unwrap();
        assert_eq!(p.base, "a@npm:1.0.0");
        assert_eq!(p.sources, ["./patches/a.patch"]);
        assert_eq!(p.locator.as_deref(), Some("app@workspace:."));
        let b = PatchRef::parse(
            "patch:typescript@npm%3A5.4.5#optional!builtin<compat/typescript>::version=5.4.5&hash=5adc0c",
        )
        .unwrap();
        assert!(is_builtin_patch(&b.sources[0]));
        assert_eq!(b.base, "typescript@npm:5.4.5");
    }

    #[test]
    fn bad_lockfiles_are_errors() {
        for (text, what) in [
            ("__metadata:\n  version: 3\n", "version 3"),
            ("__metadata:\n  version: 11\n", "version 11"),
            ("a: [\n", "not a valid"),
            (
                "\"a@npm:1\":\n  version: 1.0.0\n  resolution: \"a@npm:1.0.0\"\n",
                "no __metadata",
            ),
            (
                "__metadata:\n  version: 6\n\"a@npm:1\":\n  version: 1.0.0\n",
                "no valid resolution",
            ),
            (
                "__metadata:\n  version: 6\n\"a@npm:1\":\n  resolution: \"@\"\n",
                "no valid resolution",
            ),
            ("- 1\n- 2\n", "not a valid"),
            // an alias bomb and deep nesting: serde_yaml's limits, an error and no hang
            (
                "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n",
                "not a valid",
            ),
            (&"[".repeat(100_000), "not a valid"),
            ("\0", "not a valid"),
        ] {
            let e = parse(text, "yarn.lock").unwrap_err();
            assert!(e.to_string().contains(what), "{text:?}: {e}");
        }
    }
}
