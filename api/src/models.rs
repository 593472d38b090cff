//! Database rows and their Cachito-compatible JSON.

use crate::schema::{request_states, requests};
use common::{format_time, Dependency, EnvVar, PackagesData};
use diesel::prelude::*;
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
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = request_states)]
pub struct StateRow {
    pub state: String,
    pub state_reason: String,
    pub updated: chrono::NaiveDateTime,
}

impl RequestRow {
    pub fn env_vars(&self) -> BTreeMap<String, EnvVar> {
        serde_json::from_value(self.environment_variables.clone()).unwrap_or_default()
    }
}

/// A dependency in Cachito's shape (no purl; `dev` only where the package manager reports it).
pub fn cachito_dependency(dep: &Dependency) -> Value {
    let mut obj = Map::new();
    obj.insert("name".into(), json!(dep.name));
    obj.insert("type".into(), json!(dep.kind));
    obj.insert("version".into(), json!(dep.version));
    if let Some(dev) = dep.dev {
        obj.insert("dev".into(), json!(dev));
    }
    obj.insert(
        "replaces".into(),
        serde_json::to_value(&dep.replaces).expect("serializable"),
    );
    Value::Object(obj)
}

pub fn cachito_packages(data: &PackagesData) -> Value {
    let packages: Vec<Value> = data
        .packages
        .iter()
        .map(|p| {
            let mut obj = Map::new();
            obj.insert("name".into(), json!(p.name));
            obj.insert("type".into(), json!(p.kind));
            obj.insert("version".into(), json!(p.version));
            if let Some(path) = p.path.as_deref().filter(|p| *p != ".") {
                obj.insert("path".into(), json!(path));
            }
            obj.insert(
                "dependencies".into(),
                Value::Array(p.dependencies.iter().map(cachito_dependency).collect()),
            );
            Value::Object(obj)
        })
        .collect();
    Value::Array(packages)
}

/// A request in Cachito's shape; `data` is its packages data (verbose, complete requests).
pub fn render_request(
    row: &RequestRow,
    verbose: bool,
    history: Option<&[StateRow]>,
    data: Option<&PackagesData>,
    public_url: &str,
) -> Value {
    let base = public_url.trim_end_matches('/');
    let mut flags = row.flags.clone();
    flags.sort();
    let env: Map<String, Value> = row
        .env_vars()
        .into_iter()
        .map(|(k, v)| (k, json!(v.value)))
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
    if let (Some(origin), Some(kind)) = (&row.error_origin, &row.error_type) {
        obj.insert("error_origin".into(), json!(origin));
        obj.insert("error_type".into(), json!(kind));
    }
    if verbose {
        let (packages, dependencies) = match data {
            Some(d) => (
                cachito_packages(d),
                Value::Array(
                    d.merged_dependencies()
                        .iter()
                        .map(cachito_dependency)
                        .collect(),
                ),
            ),
            None => (json!([]), json!([])),
        };
        obj.insert("packages".into(), packages);
        obj.insert("dependencies".into(), dependencies);
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
    Value::Object(obj)
}
