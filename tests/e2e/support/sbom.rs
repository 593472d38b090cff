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
