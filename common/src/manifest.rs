//! Cachito's Image Content Manifest for one request.

use crate::model::PackagesData;
use serde_json::{json, Value};

pub const ICM_SPEC: &str = "https://raw.githubusercontent.com/containerbuildsystem/atomic-reactor/f4abcfdaf8247a6b074f94fa84f3846f82d781c6/atomic_reactor/schemas/content_manifest.json";

/// Every package is a top-level entry: `dependencies` are the purls of its runtime
/// dependencies, `sources` the purls of all of them (git submodules list none).
pub fn content_manifest(data: Option<&PackagesData>) -> Value {
    let mut contents = Vec::new();
    for package in data.map(|d| d.packages.as_slice()).unwrap_or_default() {
        let mut dependencies = Vec::new();
        let mut sources = Vec::new();
        if package.kind != "git-submodule" {
            for dep in &package.dependencies {
                let purl = json!({"purl": dep.purl});
                if dep.dev != Some(true) && !dependencies.contains(&purl) {
                    dependencies.push(purl.clone());
                }
                if !sources.contains(&purl) {
                    sources.push(purl);
                }
            }
        }
        contents
            .push(json!({"purl": package.purl, "dependencies": dependencies, "sources": sources}));
    }
    json!({
        "metadata": {"icm_version": 1, "icm_spec": ICM_SPEC, "image_layer_index": -1},
        "image_contents": contents,
    })
}

/// Merge the manifests of several requests: contents concatenated; with more than one request
/// the whole document is sorted by purl (recursively), as Cachito does.
pub fn merged_content_manifest(data: &[Option<PackagesData>]) -> Value {
    let mut contents = Vec::new();
    for d in data {
        if let Value::Array(items) = content_manifest(d.as_ref())["image_contents"].take() {
            contents.extend(items);
        }
    }
    if data.len() > 1 {
        sort_by_purl(&mut contents);
        for item in &mut contents {
            for key in ["dependencies", "sources"] {
                if let Some(Value::Array(list)) = item.get_mut(key) {
                    sort_by_purl(list);
                    list.dedup();
                }
            }
        }
        contents.dedup();
    }
    json!({
        "metadata": {"icm_version": 1, "icm_spec": ICM_SPEC, "image_layer_index": -1},
        "image_contents": contents,
    })
}

fn sort_by_purl(items: &mut [Value]) {
    items.sort_by(|a, b| a["purl"].as_str().cmp(&b["purl"].as_str()));
}
