//! Database rows and their Cachito-compatible JSON.

use crate::schema::{artifacts, request_states, requests};
use common::{format_time, Dependency, EnvVar, PackagesData};
use diesel::prelude::*;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = requests)]
pub struct RequestRow {
    pub id: i64,
    pub repo: String,
    pub git_ref: String,
    pub pkg_managers: Vec<String>,
    pub packages: Value,
    pub flags: Vec<String>,
    pub dependency_replacements: Value,
    pub user_name: Option<String>,
    pub submitted_by: Option<String>,
    pub created: chrono::NaiveDateTime,
    pub state: String,
    pub state_reason: String,
    pub updated: chrono::NaiveDateTime,
    pub error_origin: Option<String>,
    pub error_type: Option<String>,
    pub packages_count: Option<i32>,
    pub dependencies_count: Option<i32>,
    pub environment_variables: Value,
    pub token_salt: String,
    pub dispatched_at: Option<chrono::NaiveDateTime>,
    pub attempts: i32,
    pub started_at: Option<chrono::NaiveDateTime>,
    pub heartbeat_at: Option<chrono::NaiveDateTime>,
    pub worker: Option<String>,
    /// The sha256 (hex) of the request's bundle, named when it completed.
    pub bundle_sha256: Option<String>,
    /// The instance this request was imported from (`larder import`), and its id there.
    pub imported_instance: Option<String>,
    pub imported_id: Option<i64>,
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = request_states)]
pub struct StateRow {
    pub state: String,
    pub state_reason: String,
    pub updated: chrono::NaiveDateTime,
}

/// An artifact as recorded, its metadata still JSON.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = artifacts)]
pub struct ArtifactRow {
    pub pm: String,
    pub name: String,
    pub version: String,
    pub filename: String,
    pub store_key: String,
    pub meta: Value,
    pub source_url: Option<String>,
}

impl ArtifactRow {
    /// The artifact, or (its store key, why) when its metadata no longer reads.
    pub fn into_artifact(self) -> Result<common::Artifact, (String, serde_json::Error)> {
        match serde_json::from_value(self.meta) {
            Ok(meta) => Ok(common::Artifact {
                pm: common::PmName::new(self.pm),
                name: self.name,
                version: self.version,
                filename: self.filename,
                store_key: self.store_key,
                meta,
                source_url: self.source_url,
            }),
            Err(e) => Err((self.store_key, e)),
        }
    }
}

impl RequestRow {
    pub fn env_vars(&self) -> BTreeMap<String, EnvVar> {
        serde_json::from_value(self.environment_variables.clone()).unwrap_or_default()
    }
}

/// A dependency in Cachito's shape (no purl; `dev` and `optional` only where the package manager
/// reports them), serialized straight from the stored one: a request of 50,000 dependencies is
/// rendered without a JSON tree of them. Keys in sorted order, as Cachito's.
#[derive(Serialize)]
pub struct CachitoDependency<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    dev: Option<bool>,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    optional: Option<bool>,
    replaces: Option<CachitoReplaced<'a>>,
    #[serde(rename = "type")]
    kind: &'a str,
    version: &'a Option<String>,
}

#[derive(Serialize)]
struct CachitoReplaced<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    version: &'a Option<String>,
}

impl<'a> From<&'a Dependency> for CachitoDependency<'a> {
    fn from(dep: &'a Dependency) -> Self {
        Self {
            dev: dep.dev,
            name: &dep.name,
            optional: dep.optional,
            replaces: dep.replaces.as_ref().map(|r| CachitoReplaced {
                name: &r.name,
                kind: &r.kind,
                version: &r.version,
            }),
            kind: &dep.kind,
            version: &dep.version,
        }
    }
}

/// Dependencies serialized one by one as [`CachitoDependency`].
pub struct CachitoDependencies<'a>(pub &'a [Dependency]);

impl Serialize for CachitoDependencies<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(CachitoDependency::from))
    }
}

#[derive(Serialize)]
struct CachitoPackage<'a> {
    dependencies: CachitoDependencies<'a>,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'a str,
    version: &'a str,
}

/// A request's packages in Cachito's shape.
pub struct CachitoPackages<'a>(pub &'a PackagesData);

impl Serialize for CachitoPackages<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.packages.iter().map(|p| CachitoPackage {
            dependencies: CachitoDependencies(&p.dependencies),
            name: &p.name,
            path: p.path.as_deref().filter(|p| *p != "."),
            kind: &p.kind,
            version: &p.version,
        }))
    }
}

/// A request's merged dependencies and packages, serialized from its packages data when the
/// response is written: the `dependencies` and `packages` entries of a map.
pub struct RequestContents {
    data: PackagesData,
    merged: Vec<Dependency>,
}

impl RequestContents {
    pub fn new(data: PackagesData) -> Self {
        let merged = data.merged_dependencies();
        Self { data, merged }
    }

    fn serialize_entry<M: SerializeMap>(&self, map: &mut M, key: &str) -> Result<(), M::Error> {
        match key {
            "dependencies" => map.serialize_entry(key, &CachitoDependencies(&self.merged)),
            _ => map.serialize_entry(key, &CachitoPackages(&self.data)),
        }
    }
}

/// `GET …/packages`: the two entries alone, in Cachito's (sorted) order.
impl Serialize for RequestContents {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        self.serialize_entry(&mut map, "dependencies")?;
        self.serialize_entry(&mut map, "packages")?;
        map.end()
    }
}

/// A rendered request: its fields, and for a verbose complete request its contents.
pub struct RenderedRequest {
    fields: Map<String, Value>,
    contents: Option<RequestContents>,
}

impl RenderedRequest {
    /// Whether it holds a request's contents (tens of MB for a large lockfile).
    pub fn has_contents(&self) -> bool {
        self.contents.is_some()
    }
}

impl Serialize for RenderedRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some(contents) = &self.contents else {
            return self.fields.serialize(s);
        };
        let mut map = s.serialize_map(Some(self.fields.len() + 2))?;
        // keys in sorted order, the two large ones in their places
        let mut pending = ["dependencies", "packages"].into_iter().peekable();
        for (k, v) in &self.fields {
            while let Some(key) = pending.next_if(|key| *key < k.as_str()) {
                contents.serialize_entry(&mut map, key)?;
            }
            map.serialize_entry(k, v)?;
        }
        for key in pending {
            contents.serialize_entry(&mut map, key)?;
        }
        map.end()
    }
}

pub const REDACTED: &str = "REDACTED";

/// What a caller may not see of a request: its repository token.
pub struct Hidden<'a>(pub &'a str);

/// A request in Cachito's shape; `data` is its packages data (verbose, complete requests).
/// Where the environment variables hold `hidden`'s token, it reads `REDACTED`.
pub fn render_request(
    row: &RequestRow,
    verbose: bool,
    history: Option<&[StateRow]>,
    data: Option<PackagesData>,
    public_url: &str,
    hidden: Option<Hidden<'_>>,
) -> RenderedRequest {
    let base = public_url.trim_end_matches('/');
    let mut flags = row.flags.clone();
    flags.sort();
    let env: Map<String, Value> = row
        .env_vars()
        .into_iter()
        .map(|(k, v)| match &hidden {
            Some(Hidden(token)) if !token.is_empty() => {
                (k, json!(v.value.replace(token, REDACTED)))
            }
            _ => (k, json!(v.value)),
        })
        .collect();
    let mut obj = Map::new();
    obj.insert("id".into(), json!(row.id));
    obj.insert("created".into(), json!(format_time(&row.created)));
    obj.insert("repo".into(), json!(row.repo));
    obj.insert("ref".into(), json!(row.git_ref));
    obj.insert("pkg_managers".into(), json!(row.pkg_managers));
    obj.insert("user".into(), json!(row.user_name));
    obj.insert("submitted_by".into(), json!(row.submitted_by));
    obj.insert("flags".into(), json!(flags));
    obj.insert("environment_variables".into(), Value::Object(env));
    obj.insert("state".into(), json!(row.state));
    obj.insert("state_reason".into(), json!(row.state_reason));
    obj.insert("updated".into(), json!(format_time(&row.updated)));
    if let (Some(instance), Some(id)) = (&row.imported_instance, row.imported_id) {
        obj.insert(
            "imported_from".into(),
            json!({"instance": instance, "id": id}),
        );
    }
    if let (Some(origin), Some(kind)) = (&row.error_origin, &row.error_type) {
        obj.insert("error_origin".into(), json!(origin));
        obj.insert("error_type".into(), json!(kind));
    }
    let mut contents = None;
    if verbose {
        match data {
            Some(d) => contents = Some(RequestContents::new(d)),
            None => {
                obj.insert("packages".into(), json!([]));
                obj.insert("dependencies".into(), json!([]));
            }
        }
        let history: Vec<Value> = history
            .unwrap_or_default()
            .iter()
            .map(|h| json!({"state": h.state, "state_reason": h.state_reason, "updated": format_time(&h.updated)}))
            .collect();
        obj.insert("state_history".into(), Value::Array(history));
        let url = |tail: &str| format!("{base}/api/v1/requests/{}/{tail}", row.id);
        obj.insert(
            "configuration_files".into(),
            json!(url("configuration-files")),
        );
        obj.insert("content_manifest".into(), json!(url("content-manifest")));
        obj.insert(
            "environment_variables_info".into(),
            json!(url("environment-variables")),
        );
        obj.insert("logs".into(), json!({"url": url("logs")}));
    } else {
        obj.insert("packages".into(), json!(row.packages_count));
        obj.insert("dependencies".into(), json!(row.dependencies_count));
    }
    RenderedRequest {
        fields: obj,
        contents,
    }
}
