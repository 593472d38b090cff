//! `merge-sboms` for SPDX, as Hermeto's: SPDX 2.3 documents merged into one (each package once
//! by its purls, SPDXIDs kept unique, every relationship kept between the packages the merge
//! holds), and the conversions between CycloneDX and SPDX that let one command merge a mix of
//! both into either format.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Why documents cannot be merged (a usage error: the input is wrong).
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{0} is neither a CycloneDX nor an SPDX 2 document")]
    UnknownFormat(String),
    #[error("{0}: SPDX files and snippets are not merged by Larder (only packages)")]
    FilesOrSnippets(String),
    #[error("{file}: a package has no SPDXID")]
    NoSpdxId { file: String },
}

/// The format of a parsed SBOM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    CycloneDx,
    Spdx,
}

/// Which format `doc` is in (`label` names it in the error).
pub fn format_of(doc: &Value, label: &str) -> Result<Format, MergeError> {
    if doc.get("bomFormat").and_then(Value::as_str) == Some("CycloneDX") {
        return Ok(Format::CycloneDx);
    }
    if doc
        .get("spdxVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("SPDX-2."))
    {
        if ["files", "snippets"].iter().any(|k| {
            doc.get(k)
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        }) {
            return Err(MergeError::FilesOrSnippets(label.to_string()));
        }
        return Ok(Format::Spdx);
    }
    Err(MergeError::UnknownFormat(label.to_string()))
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn array_of<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// An SPDXID's idstring: letters, digits, `.` and `-` (SPDX 2.3, 7.2).
fn sanitize_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `wanted`, or `wanted-2`, `wanted-3`, … : the first not in `used` (then recorded there).
fn unique_id(wanted: &str, used: &mut BTreeSet<String>) -> String {
    let mut id = wanted.to_string();
    let mut n = 2;
    while used.contains(&id) {
        id = format!("{wanted}-{n}");
        n += 1;
    }
    used.insert(id.clone());
    id
}

/// The purls of an SPDX package's external references.
fn purls_of(package: &Value) -> BTreeSet<String> {
    array_of(package, "externalRefs")
        .filter(|r| str_of(r, "referenceType") == Some("purl"))
        .filter_map(|r| str_of(r, "referenceLocator").map(str::to_string))
        .collect()
}

/// What makes two SPDX packages one (Hermeto's rule): the same purls; without any, the same
/// name and version.
fn package_key(package: &Value) -> String {
    let purls = purls_of(package);
    if purls.is_empty() {
        format!(
            "name:{}@{}",
            str_of(package, "name").unwrap_or_default(),
            str_of(package, "versionInfo").unwrap_or_default()
        )
    } else {
        format!("purls:{}", purls.into_iter().collect::<Vec<_>>().join(" "))
    }
}

/// Add the items of `other[key]` that `kept[key]` lacks.
fn union_array(kept: &mut Map<String, Value>, other: &Value, key: &str) {
    let more: Vec<Value> = array_of(other, key).cloned().collect();
    if more.is_empty() {
        return;
    }
    if let Value::Array(items) = kept.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
        for item in more {
            if !items.contains(&item) {
                items.push(item);
            }
        }
    }
}

/// Replace whole `LicenseRef-…` tokens of a licence expression by `renamed`.
fn rename_license_refs(expression: &str, renamed: &BTreeMap<String, String>) -> String {
    let is_id = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | ':');
    let mut out = String::with_capacity(expression.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        out.push_str(
            renamed
                .get(token.as_str())
                .map_or(token.as_str(), String::as_str),
        );
        token.clear();
    };
    for c in expression.chars() {
        if is_id(c) {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// One SPDX 2.3 document of every package of `docs` (`labels` name them in errors), each once
/// by [`package_key`] (the first copy's fields, the external references, annotations and
/// checksums of every copy), SPDXIDs made unique; every relationship, its ends renamed with
/// their packages, each once; what every document describes; the extracted licences of every
/// document, a `LicenseRef-` renamed where two documents gave one id different texts. The
/// first document's header with a new namespace, `name` if given, the creators of all.
pub fn merge_spdx(
    docs: &[Value],
    labels: &[String],
    name: Option<&str>,
) -> Result<Value, MergeError> {
    let mut packages: Vec<Value> = Vec::new();
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut used: BTreeSet<String> = ["SPDXRef-DOCUMENT".to_string()].into();
    let mut relationships: Vec<Value> = Vec::new();
    let mut describes: Vec<String> = Vec::new();
    let mut creators: Vec<Value> = Vec::new();
    // licence id → its text, across the documents
    let mut licenses: BTreeMap<String, Value> = BTreeMap::new();
    let mut external_docs: Vec<Value> = Vec::new();
    for (doc, label) in docs.iter().zip(labels) {
        // this document's licence ids that another document already gave another text
        let mut renamed_licenses: BTreeMap<String, String> = BTreeMap::new();
        for info in array_of(doc, "hasExtractedLicensingInfos") {
            let Some(id) = str_of(info, "licenseId") else {
                continue;
            };
            // (a licence without its text is the same as no other)
            let same_text = |kept: &Value| {
                str_of(info, "extractedText").is_some()
                    && str_of(kept, "extractedText") == str_of(info, "extractedText")
            };
            if let Some(existing) = licenses
                .iter()
                .find(|(_, kept)| same_text(kept))
                .map(|(kept_id, _)| kept_id.clone())
            {
                if existing != id {
                    renamed_licenses.insert(id.to_string(), existing);
                }
                continue;
            }
            let mut new_id = id.to_string();
            let mut n = 2;
            while licenses.contains_key(&new_id) {
                new_id = format!("{id}-{n}");
                n += 1;
            }
            if new_id != id {
                renamed_licenses.insert(id.to_string(), new_id.clone());
            }
            let mut info = info.clone();
            info["licenseId"] = Value::String(new_id.clone());
            licenses.insert(new_id, info);
        }
        // this document's SPDXIDs → the merge's
        let mut ids: BTreeMap<String, String> = BTreeMap::new();
        ids.insert("SPDXRef-DOCUMENT".into(), "SPDXRef-DOCUMENT".into());
        for package in array_of(doc, "packages") {
            let id = str_of(package, "SPDXID").ok_or_else(|| MergeError::NoSpdxId {
                file: label.clone(),
            })?;
            let key = package_key(package);
            if let Some(&at) = by_key.get(&key) {
                let kept = packages[at]
                    .as_object_mut()
                    .expect("a package is an object");
                for field in ["externalRefs", "annotations", "checksums"] {
                    union_array(kept, package, field);
                }
                ids.insert(
                    id.to_string(),
                    str_of(&packages[at], "SPDXID")
                        .unwrap_or_default()
                        .to_string(),
                );
                continue;
            }
            let new_id = unique_id(id, &mut used);
            let mut package = package.clone();
            package["SPDXID"] = Value::String(new_id.clone());
            for field in ["licenseDeclared", "licenseConcluded"] {
                if let Some(expression) = str_of(&package, field) {
                    let renamed = rename_license_refs(expression, &renamed_licenses);
                    package[field] = Value::String(renamed);
                }
            }
            if let Some(Value::Array(found)) = package.get_mut("licenseInfoFromFiles") {
                for expression in found.iter_mut() {
                    if let Some(text) = expression.as_str() {
                        *expression = Value::String(rename_license_refs(text, &renamed_licenses));
                    }
                }
            }
            ids.insert(id.to_string(), new_id);
            by_key.insert(key, packages.len());
            packages.push(package);
        }
        // an element of this document takes its id in the merge; NONE, NOASSERTION and another
        // document's elements (`DocumentRef-…:…`) stay as named; an id this document does not
        // have is dropped with what names it (kept, it could name another document's package)
        let rename = |id: &str| match ids.get(id) {
            Some(merged) => Some(merged.clone()),
            None if id == "NONE" || id == "NOASSERTION" || id.starts_with("DocumentRef-") => {
                Some(id.to_string())
            }
            None => None,
        };
        'relationships: for relationship in array_of(doc, "relationships") {
            let mut relationship = relationship.clone();
            for end in ["spdxElementId", "relatedSpdxElement"] {
                if let Some(id) = str_of(&relationship, end) {
                    let Some(merged) = rename(id) else {
                        tracing::warn!(file = %label, element = %id, "a relationship names an element its document does not have; left out of the merge");
                        continue 'relationships;
                    };
                    relationship[end] = Value::String(merged);
                }
            }
            if !relationships.contains(&relationship) {
                relationships.push(relationship);
            }
        }
        for described in array_of(doc, "documentDescribes").filter_map(Value::as_str) {
            let Some(id) = rename(described) else {
                tracing::warn!(file = %label, element = %described, "the document describes an element it does not have; left out of the merge");
                continue;
            };
            if !describes.contains(&id) {
                describes.push(id);
            }
        }
        for creator in array_of(doc.get("creationInfo").unwrap_or(&Value::Null), "creators") {
            if !creators.contains(creator) {
                creators.push(creator.clone());
            }
        }
        for external in array_of(doc, "externalDocumentRefs") {
            if !external_docs.contains(external) {
                external_docs.push(external.clone());
            }
        }
    }
    let first = &docs[0];
    let mut out = Map::new();
    out.insert("spdxVersion".into(), json!("SPDX-2.3"));
    out.insert("dataLicense".into(), json!("CC0-1.0"));
    out.insert("SPDXID".into(), json!("SPDXRef-DOCUMENT"));
    out.insert(
        "name".into(),
        Value::String(match name {
            Some(name) => name.to_string(),
            None => str_of(first, "name").unwrap_or("larder-merged").to_string(),
        }),
    );
    // a new document: a namespace of its own
    out.insert(
        "documentNamespace".into(),
        Value::String(format!(
            "https://spdx.org/spdxdocs/larder-merge-sboms/{}",
            common::sbom::new_uuid()
        )),
    );
    if !external_docs.is_empty() {
        out.insert("externalDocumentRefs".into(), Value::Array(external_docs));
    }
    let larder = json!(format!("Tool: larder-{}", env!("CARGO_PKG_VERSION")));
    if !creators.contains(&larder) {
        creators.push(larder);
    }
    out.insert(
        "creationInfo".into(),
        json!({"created": now(), "creators": creators}),
    );
    if !describes.is_empty() {
        out.insert("documentDescribes".into(), json!(describes));
    }
    out.insert("packages".into(), Value::Array(packages));
    if !licenses.is_empty() {
        out.insert(
            "hasExtractedLicensingInfos".into(),
            Value::Array(licenses.into_values().collect()),
        );
    }
    out.insert("relationships".into(), Value::Array(relationships));
    Ok(Value::Object(out))
}

/// CycloneDX's hash algorithm → SPDX's checksum algorithm.
const ALGORITHMS: &[(&str, &str)] = &[
    ("MD5", "MD5"),
    ("SHA-1", "SHA1"),
    ("SHA-256", "SHA256"),
    ("SHA-384", "SHA384"),
    ("SHA-512", "SHA512"),
    ("SHA3-256", "SHA3-256"),
    ("SHA3-384", "SHA3-384"),
    ("SHA3-512", "SHA3-512"),
    ("BLAKE2b-256", "BLAKE2b-256"),
    ("BLAKE2b-384", "BLAKE2b-384"),
    ("BLAKE2b-512", "BLAKE2b-512"),
    ("BLAKE3", "BLAKE3"),
];

/// A CycloneDX component's declared licence as an SPDX expression: its `expression`, or its
/// licence ids joined by `AND`, when every one is of the SPDX licence list; else
/// `NOASSERTION`.
fn cyclonedx_license(component: &Value) -> String {
    let mut parts = Vec::new();
    for choice in array_of(component, "licenses") {
        let part = str_of(choice, "expression")
            .or_else(|| choice.get("license").and_then(|l| str_of(l, "id")));
        match part {
            Some(p) if common::sbom::is_known_spdx_expression(p) => parts.push(p.to_string()),
            _ => return "NOASSERTION".into(),
        }
    }
    match parts.len() {
        0 => "NOASSERTION".into(),
        1 => parts.remove(0),
        _ => parts
            .iter()
            .map(|p| format!("({p})"))
            .collect::<Vec<_>>()
            .join(" AND "),
    }
}

/// A CycloneDX document as SPDX 2.3: each component (the root, `metadata.component`, too) a
/// package with its purl, hashes and licence; the dependency graph as `DEPENDS_ON`; the root
/// described (else every component nobody depends on).
pub fn spdx_of_cyclonedx(doc: &Value) -> Value {
    let root = doc.pointer("/metadata/component");
    let mut used: BTreeSet<String> = ["SPDXRef-DOCUMENT".to_string()].into();
    // a component's bom-ref (else purl) → its SPDXID
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    let mut packages = Vec::new();
    let mut root_id = None;
    for (is_root, component) in root
        .into_iter()
        .map(|c| (true, c))
        .chain(array_of(doc, "components").map(|c| (false, c)))
    {
        let name = str_of(component, "name").unwrap_or_default();
        let version = str_of(component, "version");
        let wanted = sanitize_id(&match version {
            Some(v) => format!("SPDXRef-Package-{name}-{v}"),
            None => format!("SPDXRef-Package-{name}"),
        });
        let id = unique_id(&wanted, &mut used);
        for reference in [str_of(component, "bom-ref"), str_of(component, "purl")]
            .into_iter()
            .flatten()
        {
            ids.entry(reference.to_string())
                .or_insert_with(|| id.clone());
        }
        if is_root {
            root_id = Some(id.clone());
        }
        let mut package = json!({
            "SPDXID": id,
            "name": name,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseDeclared": cyclonedx_license(component),
            "primaryPackagePurpose": if str_of(component, "type") == Some("application") { "APPLICATION" } else { "LIBRARY" },
        });
        if let Some(v) = version {
            package["versionInfo"] = json!(v);
        }
        let checksums: Vec<Value> = array_of(component, "hashes")
            .filter_map(|h| {
                let alg = str_of(h, "alg")?;
                let (_, spdx) = ALGORITHMS.iter().find(|(cdx, _)| *cdx == alg)?;
                Some(json!({"algorithm": spdx, "checksumValue": str_of(h, "content")?}))
            })
            .collect();
        if !checksums.is_empty() {
            package["checksums"] = Value::Array(checksums);
        }
        if let Some(purl) = str_of(component, "purl") {
            package["externalRefs"] = json!([{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl,
            }]);
        }
        packages.push(package);
    }
    let mut relationships = Vec::new();
    let mut depended_on = BTreeSet::new();
    for dependency in array_of(doc, "dependencies") {
        let Some(from) = str_of(dependency, "ref").and_then(|r| ids.get(r)) else {
            continue;
        };
        for to in array_of(dependency, "dependsOn").filter_map(Value::as_str) {
            if let Some(to) = ids.get(to) {
                depended_on.insert(to.clone());
                relationships.push(json!({
                    "spdxElementId": from,
                    "relationshipType": "DEPENDS_ON",
                    "relatedSpdxElement": to,
                }));
            }
        }
    }
    let described: Vec<String> = match root_id {
        Some(id) => vec![id],
        None => packages
            .iter()
            .filter_map(|p| str_of(p, "SPDXID"))
            .filter(|id| !depended_on.contains(*id))
            .map(str::to_string)
            .collect(),
    };
    for (at, id) in described.iter().enumerate() {
        relationships.insert(
            at,
            json!({
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": id,
            }),
        );
    }
    let tools: Vec<Value> = array_of(doc.get("metadata").unwrap_or(&Value::Null), "tools")
        .chain(
            doc.pointer("/metadata/tools/components")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .filter_map(|t| {
            let name = str_of(t, "name")?;
            Some(json!(match str_of(t, "version") {
                Some(v) => format!("Tool: {name}-{v}"),
                None => format!("Tool: {name}"),
            }))
        })
        .collect();
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": root.and_then(|r| str_of(r, "name")).unwrap_or("larder-converted"),
        "documentNamespace": format!("https://spdx.org/spdxdocs/larder-merge-sboms/{}", common::sbom::new_uuid()),
        "creationInfo": {
            "created": doc.pointer("/metadata/timestamp").and_then(Value::as_str).map_or_else(now, str::to_string),
            "creators": if tools.is_empty() { vec![json!("Tool: larder")] } else { tools },
        },
        "documentDescribes": described,
        "packages": packages,
        "relationships": relationships,
    })
}

/// An SPDX document as CycloneDX 1.6: each package a component (`bom-ref` its purl, else its
/// SPDXID), its checksums as hashes, its declared licence as an expression (one of the SPDX
/// licence list only); `DEPENDS_ON` (and `DEV_DEPENDENCY_OF`, reversed) as the dependency
/// graph.
pub fn cyclonedx_of_spdx(doc: &Value) -> Value {
    let mut refs: BTreeMap<String, String> = BTreeMap::new();
    let mut taken = BTreeSet::new();
    let mut components = Vec::new();
    for package in array_of(doc, "packages") {
        let Some(id) = str_of(package, "SPDXID") else {
            continue;
        };
        let purl = purls_of(package).into_iter().next();
        let bom_ref = match &purl {
            Some(p) if !taken.contains(p) => p.clone(),
            _ => id.to_string(),
        };
        taken.insert(bom_ref.clone());
        refs.insert(id.to_string(), bom_ref.clone());
        let mut component = json!({
            "bom-ref": bom_ref,
            "type": if str_of(package, "primaryPackagePurpose") == Some("APPLICATION") { "application" } else { "library" },
            "name": str_of(package, "name").unwrap_or_default(),
        });
        if let Some(v) = str_of(package, "versionInfo") {
            component["version"] = json!(v);
        }
        if let Some(p) = purl {
            component["purl"] = json!(p);
        }
        let hashes: Vec<Value> = array_of(package, "checksums")
            .filter_map(|c| {
                let alg = str_of(c, "algorithm")?;
                let (cdx, _) = ALGORITHMS.iter().find(|(_, spdx)| *spdx == alg)?;
                Some(json!({"alg": cdx, "content": str_of(c, "checksumValue")?}))
            })
            .collect();
        if !hashes.is_empty() {
            component["hashes"] = Value::Array(hashes);
        }
        if let Some(l) =
            str_of(package, "licenseDeclared").filter(|l| common::sbom::is_known_spdx_expression(l))
        {
            component["licenses"] = json!([{"expression": l}]);
        }
        components.push(component);
    }
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for relationship in array_of(doc, "relationships") {
        let (Some(a), Some(b)) = (
            str_of(relationship, "spdxElementId").and_then(|id| refs.get(id)),
            str_of(relationship, "relatedSpdxElement").and_then(|id| refs.get(id)),
        ) else {
            continue;
        };
        let (from, to) = match str_of(relationship, "relationshipType") {
            Some("DEPENDS_ON") => (a, b),
            Some("DEPENDENCY_OF" | "DEV_DEPENDENCY_OF") => (b, a),
            _ => continue,
        };
        let edges = graph.entry(from.clone()).or_default();
        if !edges.contains(to) {
            edges.push(to.clone());
        }
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", common::sbom::new_uuid()),
        "version": 1,
        "metadata": {
            "timestamp": str_of(doc.get("creationInfo").unwrap_or(&Value::Null), "created").map_or_else(now, str::to_string),
            "tools": {"components": [{"type": "application", "name": "larder", "version": env!("CARGO_PKG_VERSION")}]},
        },
        "components": components,
        "dependencies": graph.into_iter().map(|(from, to)| json!({"ref": from, "dependsOn": to})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spdx_doc(name: &str, packages: &[(&str, &str)], depends: &[(&str, &str)]) -> Value {
        json!({
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": name,
            "documentNamespace": format!("https://example.com/{name}"),
            "creationInfo": {"created": "2026-01-01T00:00:00Z", "creators": ["Tool: larder-0.1.0"]},
            "documentDescribes": ["SPDXRef-Package-0"],
            "packages": packages.iter().map(|(id, purl)| json!({
                "SPDXID": id,
                "name": purl,
                "downloadLocation": "NOASSERTION",
                "licenseDeclared": "LicenseRef-Larder-1",
                "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}],
            })).collect::<Vec<_>>(),
            "hasExtractedLicensingInfos": [{"licenseId": "LicenseRef-Larder-1", "extractedText": format!("text of {name}"), "name": "x"}],
            "relationships": std::iter::once(json!({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Package-0"}))
                .chain(depends.iter().map(|(a, b)| json!({"spdxElementId": a, "relationshipType": "DEPENDS_ON", "relatedSpdxElement": b})))
                .collect::<Vec<_>>(),
        })
    }

    /// A relationship by its ends' purls: (from, type, to).
    type Edge = (String, String, String);

    /// purl → SPDXID, and relationships as purl pairs (`DOCUMENT` for the document).
    fn by_purl(doc: &Value) -> (BTreeMap<String, String>, BTreeSet<Edge>) {
        let mut ids = BTreeMap::new();
        let mut purl_of = BTreeMap::new();
        for p in doc["packages"].as_array().unwrap() {
            let purl = p["externalRefs"][0]["referenceLocator"]
                .as_str()
                .unwrap()
                .to_string();
            let id = p["SPDXID"].as_str().unwrap().to_string();
            assert!(
                ids.insert(purl.clone(), id.clone()).is_none(),
                "{purl} twice"
            );
            purl_of.insert(id, purl);
        }
        purl_of.insert("SPDXRef-DOCUMENT".to_string(), "DOCUMENT".to_string());
        let rels = doc["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    purl_of[r["spdxElementId"].as_str().unwrap()].clone(),
                    r["relationshipType"].as_str().unwrap().to_string(),
                    purl_of[r["relatedSpdxElement"].as_str().unwrap()].clone(),
                )
            })
            .collect();
        (ids, rels)
    }

    #[test]
    fn spdx_documents_merge_by_purl_with_unique_ids_and_every_relationship() {
        let a = spdx_doc(
            "a",
            &[
                ("SPDXRef-Package-0", "pkg:npm/web@1"),
                ("SPDXRef-Package-1", "pkg:npm/left@1"),
                ("SPDXRef-Package-2", "pkg:npm/shared@1"),
            ],
            &[
                ("SPDXRef-Package-0", "SPDXRef-Package-1"),
                ("SPDXRef-Package-1", "SPDXRef-Package-2"),
            ],
        );
        let b = spdx_doc(
            "b",
            &[
                ("SPDXRef-Package-0", "pkg:pypi/py@1"),
                ("SPDXRef-Package-1", "pkg:npm/shared@1"),
                ("SPDXRef-Package-2", "pkg:pypi/right@1"),
            ],
            &[
                ("SPDXRef-Package-0", "SPDXRef-Package-1"),
                ("SPDXRef-Package-0", "SPDXRef-Package-2"),
            ],
        );
        let merged = merge_spdx(
            &[a.clone(), b.clone()],
            &["a".into(), "b".into()],
            Some("both"),
        )
        .unwrap();
        assert_eq!(merged["name"], "both");
        let (ids, rels) = by_purl(&merged);
        assert_eq!(
            ids.keys().cloned().collect::<Vec<_>>(),
            [
                "pkg:npm/left@1",
                "pkg:npm/shared@1",
                "pkg:npm/web@1",
                "pkg:pypi/py@1",
                "pkg:pypi/right@1"
            ]
        );
        let unique: BTreeSet<&String> = ids.values().collect();
        assert_eq!(unique.len(), 5, "{ids:?}");
        let (_, rels_a) = by_purl(&a);
        let (_, rels_b) = by_purl(&b);
        assert_eq!(rels, rels_a.union(&rels_b).cloned().collect());
        assert_eq!(merged["documentDescribes"].as_array().unwrap().len(), 2);
        // the two documents' LicenseRef-Larder-1 are two licences
        let licenses = merged["hasExtractedLicensingInfos"].as_array().unwrap();
        assert_eq!(licenses.len(), 2);
        let declared = |purl: &str| {
            merged["packages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["externalRefs"][0]["referenceLocator"] == purl)
                .unwrap()["licenseDeclared"]
                .clone()
        };
        assert_eq!(declared("pkg:npm/web@1"), "LicenseRef-Larder-1");
        assert_eq!(declared("pkg:pypi/py@1"), "LicenseRef-Larder-1-2");
        // merged with itself: nothing twice
        let again = merge_spdx(&[merged.clone(), a], &["m".into(), "a".into()], None).unwrap();
        assert_eq!(by_purl(&again).0.len(), 5);
        assert_eq!(
            again["relationships"].as_array().unwrap().len(),
            merged["relationships"].as_array().unwrap().len()
        );
    }

    /// A relationship naming an element its document lacks is left out (kept, it would name
    /// another document's package); two licences without their text stay two.
    #[test]
    fn a_dangling_relationship_is_left_out_and_licences_without_text_stay_apart() {
        let mut a = spdx_doc("a", &[("SPDXRef-Package-0", "pkg:npm/web@1")], &[]);
        let mut b = spdx_doc(
            "b",
            &[
                ("SPDXRef-Package-0", "pkg:pypi/py@1"),
                ("SPDXRef-Package-1", "pkg:pypi/dep@1"),
            ],
            &[
                ("SPDXRef-Package-0", "SPDXRef-Package-1"),
                ("SPDXRef-Package-0", "SPDXRef-Package-9"),
            ],
        );
        for doc in [&mut a, &mut b] {
            doc["hasExtractedLicensingInfos"][0]
                .as_object_mut()
                .unwrap()
                .remove("extractedText");
        }
        let merged = merge_spdx(&[a, b], &["a".into(), "b".into()], None).unwrap();
        let rels = merged["relationships"].as_array().unwrap();
        assert_eq!(rels.len(), 3, "{rels:?}");
        let ids: BTreeSet<&str> = merged["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["SPDXID"].as_str().unwrap())
            .chain(["SPDXRef-DOCUMENT"])
            .collect();
        for r in rels {
            for end in ["spdxElementId", "relatedSpdxElement"] {
                assert!(ids.contains(r[end].as_str().unwrap()), "{r}");
            }
        }
        assert_eq!(
            merged["hasExtractedLicensingInfos"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn conversions_keep_packages_and_edges() {
        let cdx = json!({
            "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
            "metadata": {"component": {"bom-ref": "pkg:npm/web@1", "type": "application", "name": "web", "version": "1", "purl": "pkg:npm/web@1"}},
            "components": [
                {"bom-ref": "pkg:npm/a@1", "type": "library", "name": "a", "version": "1", "purl": "pkg:npm/a@1",
                 "hashes": [{"alg": "SHA-512", "content": "00"}], "licenses": [{"license": {"id": "MIT"}}]},
            ],
            "dependencies": [{"ref": "pkg:npm/web@1", "dependsOn": ["pkg:npm/a@1"]}],
        });
        let spdx = spdx_of_cyclonedx(&cdx);
        let (ids, rels) = by_purl(&spdx);
        assert_eq!(ids.len(), 2);
        assert!(rels.contains(&(
            "pkg:npm/web@1".into(),
            "DEPENDS_ON".into(),
            "pkg:npm/a@1".into()
        )));
        assert!(rels.contains(&(
            "DOCUMENT".into(),
            "DESCRIBES".into(),
            "pkg:npm/web@1".into()
        )));
        let a = &spdx["packages"][1];
        assert_eq!(a["licenseDeclared"], "MIT");
        assert_eq!(a["checksums"][0]["algorithm"], "SHA512");
        let back = cyclonedx_of_spdx(&spdx);
        let purls: Vec<&str> = back["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["purl"].as_str().unwrap())
            .collect();
        assert_eq!(purls, ["pkg:npm/web@1", "pkg:npm/a@1"]);
        assert_eq!(
            back["dependencies"],
            json!([{"ref": "pkg:npm/web@1", "dependsOn": ["pkg:npm/a@1"]}])
        );
        assert_eq!(back["components"][1]["hashes"][0]["alg"], "SHA-512");
    }
}
