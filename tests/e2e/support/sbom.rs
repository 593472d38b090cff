//! SBOM checks shared by the package managers' modules: the documents are valid by the formats'
//! own validators (`scripts/validate-sbom` in the venv `.ci/run` makes), and their graphs and
//! hashes read back as plain maps.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The venv's python (`LARDER_SBOM_VENV` overrides `.ci/tools/sbom-venv`).
fn python() -> PathBuf {
    let venv = std::env::var_os("LARDER_SBOM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/tools/sbom-venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "the SBOM validators' venv is not at {} (run .ci/run, or set LARDER_SBOM_VENV)",
        venv.display()
    );
    python
}

/// Assert `doc` is a valid `format` (`cyclonedx` or `spdx`) document.
pub fn assert_valid(format: &str, doc: &Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("sbom.{format}.json"));
    std::fs::write(&file, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/validate-sbom");
    let out = std::process::Command::new(python())
        .arg(script)
        .arg(format)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "invalid {format} SBOM: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        serde_json::to_string_pretty(doc).unwrap()
    );
}

/// Fetch a request's SBOM in both formats, assert both valid, and return the CycloneDX one.
pub async fn valid_sboms(larder: &super::Larder, id: i64) -> Value {
    let (status, bom) = larder.get(&format!("/api/v1/requests/{id}/sbom")).await;
    assert_eq!(status, 200, "{bom}");
    assert_valid("cyclonedx", &bom);
    let (status, spdx) = larder
        .get(&format!("/api/v1/requests/{id}/sbom?format=spdx"))
        .await;
    assert_eq!(status, 200, "{spdx}");
    assert_valid("spdx", &spdx);
    bom
}

/// The CycloneDX graph as `name@version -> {name@version}` (components named by name and
/// version, so a test can compare it with a lockfile without computing purls).
pub fn cyclonedx_edges(bom: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut names: BTreeMap<&str, String> = BTreeMap::new();
    let comps = bom["components"].as_array().unwrap();
    for c in comps
        .iter()
        .chain(std::iter::once(&bom["metadata"]["component"]))
    {
        names.insert(
            c["bom-ref"].as_str().unwrap(),
            format!(
                "{}@{}",
                c["name"].as_str().unwrap(),
                c["version"].as_str().unwrap_or_default()
            ),
        );
    }
    let mut out = BTreeMap::new();
    for d in bom["dependencies"].as_array().unwrap() {
        let from = names[d["ref"].as_str().unwrap()].clone();
        let to: BTreeSet<String> = d["dependsOn"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| names[r.as_str().unwrap()].clone())
            .collect();
        out.entry(from).or_insert_with(BTreeSet::new).extend(to);
    }
    out
}

/// Each component's hashes, `name@version -> {(alg, hex)}`.
pub fn cyclonedx_hashes(bom: &Value) -> BTreeMap<String, BTreeSet<(String, String)>> {
    let mut out = BTreeMap::new();
    for c in bom["components"].as_array().unwrap() {
        let set: BTreeSet<(String, String)> = c["hashes"]
            .as_array()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h["alg"].as_str().unwrap().to_string(),
                            h["content"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            format!(
                "{}@{}",
                c["name"].as_str().unwrap(),
                c["version"].as_str().unwrap_or_default()
            ),
            set,
        );
    }
    out
}

/// The CycloneDX graph of the package(s) and their dependencies: [`cyclonedx_edges`] without
/// the application's node (which depends on its packages).
pub fn package_edges(bom: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let app = &bom["metadata"]["component"];
    let app = format!(
        "{}@{}",
        app["name"].as_str().unwrap(),
        app["version"].as_str().unwrap_or_default()
    );
    let mut edges = cyclonedx_edges(bom);
    edges.remove(&app);
    edges
}

/// How a test names the component of a lockfile's package `name` at `version` as
/// [`cyclonedx_edges`] does: by its name when one component has it (a tarball's or a git
/// source's reported version is where it came from, not the lockfile's `version`), else by
/// both; None when the SBOM has no such component (a directory of the repository).
pub fn component_names(bom: &Value) -> impl Fn(&str, &str) -> Option<String> {
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in bom["components"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap().to_string();
        let version = c["version"].as_str().unwrap_or_default();
        by_name
            .entry(name.clone())
            .or_default()
            .push(format!("{name}@{version}"));
    }
    move |name: &str, version: &str| match by_name.get(name).map(Vec::as_slice) {
        Some([only]) => Some(only.clone()),
        Some(several) => several
            .iter()
            .find(|c| **c == format!("{name}@{version}"))
            .cloned(),
        None => None,
    }
}

/// One entry of a yarn lockfile (v1 or Berry) as the graph tests read it.
pub struct KeyedEntry {
    /// its keys (descriptors): `name@range`
    pub keys: Vec<String>,
    /// its component in the SBOM ([`component_names`]); None: part of the package (a
    /// workspace) or not reported
    pub component: Option<String>,
    /// its references, `name@range`
    pub references: Vec<String>,
    /// a workspace: its references are the package's
    pub workspace: bool,
}

/// The graph yarn's rule gives (a reference is the entry with that key), as
/// [`package_edges`] reads the SBOM's: `package` depends on `roots` and on every workspace's
/// references, each component on its entries' references; every component is a node.
pub fn graph_by_keys(
    package: &str,
    roots: &[String],
    entries: &[KeyedEntry],
) -> BTreeMap<String, BTreeSet<String>> {
    let by_key: BTreeMap<&str, &KeyedEntry> = entries
        .iter()
        .flat_map(|e| e.keys.iter().map(move |k| (k.as_str(), e)))
        .collect();
    let targets = |references: &mut dyn Iterator<Item = &String>| -> BTreeSet<String> {
        references
            .filter_map(|r| by_key.get(r.as_str())?.component.clone())
            .collect()
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let workspace_references = entries
        .iter()
        .filter(|e| e.workspace)
        .flat_map(|e| &e.references);
    graph.insert(
        package.to_string(),
        targets(&mut roots.iter().chain(workspace_references)),
    );
    for e in entries.iter().filter(|e| !e.workspace) {
        if let Some(c) = &e.component {
            let mut to = targets(&mut e.references.iter());
            to.remove(c);
            graph.entry(c.clone()).or_default().extend(to);
        }
    }
    graph
}

/// `name@version` of a CycloneDX component.
fn component_name(c: &Value) -> String {
    format!(
        "{}@{}",
        c["name"].as_str().unwrap(),
        c["version"].as_str().unwrap_or_default()
    )
}

/// Each component's declared licence, `name@version -> expression or name` (components
/// without one are absent).
pub fn cyclonedx_licenses(bom: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for c in bom["components"].as_array().unwrap() {
        let Some(first) = c["licenses"].as_array().and_then(|l| l.first()) else {
            continue;
        };
        let license = first["expression"]
            .as_str()
            .or_else(|| first["license"]["name"].as_str())
            .or_else(|| first["license"]["id"].as_str())
            .unwrap();
        out.insert(component_name(c), license.to_string());
    }
    out
}

/// Each component's `distribution` references, `name@version -> {url}` (components without
/// one are absent).
pub fn cyclonedx_distributions(bom: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in bom["components"].as_array().unwrap() {
        for r in c["externalReferences"].as_array().into_iter().flatten() {
            if r["type"] == "distribution" {
                out.entry(component_name(c))
                    .or_default()
                    .insert(r["url"].as_str().unwrap().to_string());
            }
        }
    }
    out
}
