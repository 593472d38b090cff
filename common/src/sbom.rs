//! SBOMs of one or several requests: CycloneDX 1.6 and SPDX 2.3 JSON, built from what the
//! worker reported (packages, dependencies and their lockfile edges) and the artifacts it
//! recorded (the verified digests and how each was checked).
//!
//! The documents are typed serde structs of our own (the `cyclonedx-bom` and `spdx-rs` crates
//! are not in this build's offline registry, and both model far more than Larder emits).
//! Components are deduplicated by purl; the graph keeps the edges of every request.

use crate::artifact::gomod::GoMeta;
use crate::artifact::rubygems::GemIntegrity;
use crate::artifact::{pip::PipFileKind, Artifact, ArtifactMeta};
use crate::model::PackagesData;
use base64::Engine;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One request's contribution to an SBOM.
pub struct SbomInput<'a> {
    pub id: i64,
    pub repo: &'a str,
    pub git_ref: &'a str,
    pub data: &'a PackagesData,
    pub artifacts: &'a [Artifact],
}

/// When and by what the document is made.
pub struct SbomContext<'a> {
    /// RFC 3339, seconds precision, `Z`.
    pub timestamp: &'a str,
    /// A random UUID (the CycloneDX serial number, the SPDX namespace's last part).
    pub uuid: &'a str,
    pub tool_version: &'a str,
    /// The SPDX `documentNamespace` base (a URI with no `#`): the uuid is appended as a segment.
    pub url: &'a str,
}

/// A random (version 4) UUID.
pub fn new_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    // ordered so that the strongest need wins when merging
    Excluded,
    Optional,
    Required,
}

impl Scope {
    fn cyclonedx(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Optional => "optional",
            Self::Excluded => "excluded",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Application,
    Package,
    Library,
}

/// Algorithm (CycloneDX spelling) and lowercase hex value.
type Hash = (&'static str, String);

#[derive(Debug)]
struct Node {
    purl: String,
    name: String,
    version: Option<String>,
    kind: Kind,
    scope: Scope,
    hashes: BTreeSet<Hash>,
    verified: BTreeSet<String>,
    /// go.sum `h1:` hashes of the module's files (not a digest of one file: a property)
    go_h1: BTreeSet<String>,
    license: Option<String>,
    vcs: Option<String>,
    /// The upstream URLs its files were fetched from.
    distribution: BTreeSet<String>,
    /// Package path inside the repository (packages only).
    path: Option<String>,
    depends_on: BTreeSet<String>,
    dev_of: BTreeSet<String>,
}

impl Node {
    fn new(purl: &str, name: &str, version: Option<&str>, kind: Kind, scope: Scope) -> Self {
        Self {
            purl: purl.to_string(),
            name: name.to_string(),
            version: version.map(str::to_string),
            kind,
            scope,
            hashes: BTreeSet::new(),
            verified: BTreeSet::new(),
            go_h1: BTreeSet::new(),
            license: None,
            vcs: vcs_of(purl),
            distribution: BTreeSet::new(),
            path: None,
            depends_on: BTreeSet::new(),
            dev_of: BTreeSet::new(),
        }
    }
}

/// The git URL at its commit a purl's `vcs_url` qualifier names, or a `pkg:github`/
/// `pkg:bitbucket` purl's repository.
fn vcs_of(purl: &str) -> Option<String> {
    if let Some(q) = purl.split_once('?').map(|(_, q)| q) {
        for kv in q.split('#').next().unwrap_or_default().split('&') {
            if let Some(v) = kv.strip_prefix("vcs_url=") {
                return Some(crate::percent::decode(v).unwrap_or_else(|| v.to_string()));
            }
        }
    }
    for (prefix, host) in [
        ("pkg:github/", "github.com"),
        ("pkg:bitbucket/", "bitbucket.org"),
    ] {
        if let Some(rest) = purl.strip_prefix(prefix) {
            let rest = rest.split(['?', '#']).next().unwrap_or_default();
            let (path, commit) = rest.split_once('@')?;
            return Some(format!("git+https://{host}/{path}.git@{commit}"));
        }
    }
    None
}

/// The application component of a request: `pkg:generic/<name>?vcs_url=git+<repo>@<commit>`.
fn application_purl(repo: &str, git_ref: &str) -> (String, String) {
    let name = repo
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(repo)
        .trim_end_matches(".git");
    let name = if name.is_empty() { "application" } else { name };
    let vcs = format!("git+{repo}@{git_ref}");
    (
        format!(
            "pkg:generic/{}?vcs_url={}",
            crate::percent::encode_component(name),
            crate::percent::encode_component(&vcs)
        ),
        name.to_string(),
    )
}

/// What an artifact adds to its component: digests and how it was verified.
fn artifact_evidence(a: &Artifact) -> (Vec<Hash>, &'static str) {
    let mut hashes = Vec::new();
    let how = match &a.meta {
        ArtifactMeta::Npm(m) => {
            if let Some((alg, b64)) = m.dist.integrity.split_once('-') {
                let name = match alg {
                    "sha512" => Some(("SHA-512", 64)),
                    "sha384" => Some(("SHA-384", 48)),
                    "sha256" => Some(("SHA-256", 32)),
                    "sha1" => Some(("SHA-1", 20)),
                    _ => None,
                };
                if let (Some((name, len)), Ok(bytes)) = (
                    name,
                    base64::engine::general_purpose::STANDARD.decode(b64.trim()),
                ) {
                    if bytes.len() == len {
                        hashes.push((name, hex::encode(bytes)));
                    }
                }
            }
            if is_hex(&m.dist.shasum, 40) {
                hashes.push(("SHA-1", m.dist.shasum.to_ascii_lowercase()));
            }
            "lockfile integrity"
        }
        ArtifactMeta::Pip(m) => {
            if is_hex(&m.sha256, 64) {
                hashes.push(("SHA-256", m.sha256.to_ascii_lowercase()));
            }
            match m.kind {
                PipFileKind::Index => "registry digest",
                PipFileKind::Vcs => "git commit",
                PipFileKind::Url => "url hash",
            }
        }
        ArtifactMeta::Cargo(m) => {
            if is_hex(&m.cksum, 64) {
                hashes.push(("SHA-256", m.cksum.to_ascii_lowercase()));
            }
            "lockfile checksum"
        }
        ArtifactMeta::Gomod(GoMeta { .. }) => "go.sum h1",
        ArtifactMeta::Rubygems(m) => {
            if is_hex(&m.sha256, 64) {
                hashes.push(("SHA-256", m.sha256.to_ascii_lowercase()));
            }
            match m.integrity {
                GemIntegrity::LockfileChecksum => "lockfile CHECKSUMS",
                GemIntegrity::UpstreamIndex => "upstream index",
            }
        }
    };
    (hashes, how)
}

/// An SPDX `downloadLocation` for a VCS URL (`git+<scheme>://<host>...`) or a distribution URL
/// (`http(s)://<host>...`): kept when its host is a name as SPDX's validator reads one (dotted,
/// a 2-5 letter top-level domain), else `NOASSERTION` (file:// and bare-IP locations are not
/// download locations in SPDX's terms).
fn spdx_download_location(location: &str) -> Option<&str> {
    let (scheme, rest) = location.split_once("://")?;
    let allowed = match scheme.strip_prefix("git+") {
        Some(vcs_scheme) => matches!(vcs_scheme, "http" | "https" | "ssh" | "git"),
        None => matches!(scheme, "http" | "https"),
    };
    if !allowed {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = match host.rsplit_once(':') {
        Some((h, port))
            if !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            h
        }
        _ => host,
    };
    let labels: Vec<&str> = host.split('.').collect();
    let tld = labels.last()?;
    let ok = labels.len() >= 2
        && (2..=5).contains(&tld.len())
        && tld.bytes().all(|b| b.is_ascii_alphabetic())
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    ok.then_some(location)
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The licence a file's package declares (package.json, Cargo.toml, core metadata, gemspec);
/// an SPDX expression when it reads as one.
fn declared_license(a: &Artifact) -> Option<String> {
    let declared = match &a.meta {
        ArtifactMeta::Npm(m) => match m.manifest.license.as_ref()? {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(o) => o.get("type")?.as_str()?.to_string(),
            _ => return None,
        },
        ArtifactMeta::Cargo(m) => m.license.clone()?,
        ArtifactMeta::Pip(m) => m.license.clone()?,
        ArtifactMeta::Rubygems(m) => m.license.clone()?,
        ArtifactMeta::Gomod(_) => return None,
    };
    let declared = declared.trim();
    (!declared.is_empty()).then(|| declared.to_string())
}

/// Where a file came from, as a distribution reference: a Go module's `.info` and `.mod` are
/// not its distribution, its `.zip` is.
fn distribution_of(a: &Artifact) -> Option<&str> {
    if matches!(a.meta, ArtifactMeta::Gomod(_)) && !a.filename.ends_with(".zip") {
        return None;
    }
    a.source_url.as_deref()
}

/// Whether `s` reads as an SPDX licence expression (identifiers, `LicenseRef-`, AND/OR/WITH,
/// parentheses): what SPDX documents may carry in `licenseDeclared`.
pub fn is_spdx_expression(s: &str) -> bool {
    let spaced = s.replace('(', " ( ").replace(')', " ) ");
    let mut depth = 0i32;
    let mut expect_id = true;
    for tok in spaced.split_whitespace() {
        match tok {
            "(" if expect_id => depth += 1,
            ")" if !expect_id => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            "AND" | "OR" | "WITH" if !expect_id => expect_id = true,
            id if expect_id
                && id.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b':')
                })
                && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric()) =>
            {
                expect_id = false
            }
            _ => return false,
        }
    }
    depth == 0 && !expect_id
}

/// Whether `declared` is an SPDX expression of identifiers on the SPDX licence list (any of
/// its versions' deprecated ones too, as SPDX's validator takes them): what a document may carry
/// as an expression. Text that only looks like one (`BSD`, `GPLv3`) names a licence, and a
/// `LicenseRef-` would need its text declared in the document.
pub fn is_known_spdx_expression(declared: &str) -> bool {
    let mode = spdx::ParseMode {
        allow_deprecated: true,
        allow_postfix_plus_on_gpl: true,
        ..spdx::ParseMode::STRICT
    };
    spdx::Expression::parse_mode(declared, mode).is_ok_and(|expression| {
        expression.requirements().all(|r| {
            r.req.license.id().is_some() && r.req.addition.as_ref().is_none_or(|a| a.id().is_some())
        })
    })
}

/// Everything of the requests, deduplicated by purl.
struct Graph {
    nodes: BTreeMap<String, Node>,
    /// The application purl of each request, in the order asked.
    apps: Vec<String>,
}

fn graph(inputs: &[SbomInput<'_>]) -> Graph {
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let mut apps = Vec::new();
    for input in inputs {
        let (app, app_name) = application_purl(input.repo, input.git_ref);
        let app_node = nodes.entry(app.clone()).or_insert_with(|| {
            Node::new(
                &app,
                &app_name,
                Some(input.git_ref),
                Kind::Application,
                Scope::Required,
            )
        });
        app_node.vcs = Some(format!("git+{}@{}", input.repo, input.git_ref));
        if !apps.contains(&app) {
            apps.push(app.clone());
        }
        // artifacts by (name, version): a dependency's files
        let mut files: HashMap<(&str, &str), Vec<&Artifact>> = HashMap::new();
        for a in input.artifacts {
            files
                .entry((a.name.as_str(), a.version.as_str()))
                .or_default()
                .push(a);
        }
        for package in &input.data.packages {
            nodes
                .entry(app.clone())
                .or_insert_with(|| unreachable_node(&app))
                .depends_on
                .insert(package.purl.clone());
            let node = nodes.entry(package.purl.clone()).or_insert_with(|| {
                Node::new(
                    &package.purl,
                    &package.name,
                    Some(&package.version),
                    Kind::Package,
                    Scope::Required,
                )
            });
            node.kind = Kind::Package;
            node.scope = Scope::Required;
            node.path = Some(package.path.clone().unwrap_or_else(|| ".".into()));
            let dev: BTreeSet<&str> = package
                .dependencies
                .iter()
                .filter(|d| d.dev == Some(true))
                .map(|d| d.purl.as_str())
                .collect();
            let package_edges: Vec<String> = if package.depends_on.is_empty() {
                package
                    .dependencies
                    .iter()
                    .filter(|d| d.dev != Some(true))
                    .map(|d| d.purl.clone())
                    .collect()
            } else {
                // the package's own dev dependencies are DEV_DEPENDENCY_OF it (below)
                package
                    .depends_on
                    .iter()
                    .filter(|p| !dev.contains(p.as_str()))
                    .cloned()
                    .collect()
            };
            node.depends_on.extend(package_edges);
            let direct_dev: Vec<&String> = package
                .depends_on
                .iter()
                .filter(|p| dev.contains(p.as_str()))
                .collect();
            for dep in &package.dependencies {
                let scope = if dep.dev == Some(true) {
                    Scope::Excluded
                } else if dep.optional == Some(true) {
                    Scope::Optional
                } else {
                    Scope::Required
                };
                let node = nodes.entry(dep.purl.clone()).or_insert_with(|| {
                    Node::new(
                        &dep.purl,
                        &dep.name,
                        dep.version.as_deref(),
                        Kind::Library,
                        scope,
                    )
                });
                node.scope = node.scope.max(scope);
                node.depends_on.extend(dep.depends_on.iter().cloned());
                if dep.dev == Some(true)
                    && (package.depends_on.is_empty() || direct_dev.contains(&&dep.purl))
                {
                    node.dev_of.insert(package.purl.clone());
                }
                if let Some(version) = &dep.version {
                    let file_version = artifact_version(&dep.kind, version);
                    for a in files
                        .get(&(dep.name.as_str(), file_version.as_ref()))
                        .into_iter()
                        .flatten()
                    {
                        let (hashes, how) = artifact_evidence(a);
                        node.hashes.extend(hashes);
                        node.verified.insert(how.to_string());
                        if let ArtifactMeta::Gomod(GoMeta { h1: Some(h1) }) = &a.meta {
                            node.go_h1.insert(h1.clone());
                        }
                        if node.license.is_none() {
                            node.license = declared_license(a);
                        }
                        node.distribution
                            .extend(distribution_of(a).map(str::to_string));
                    }
                }
            }
        }
    }
    // edges only between components the document has
    let known: BTreeSet<String> = nodes.keys().cloned().collect();
    for node in nodes.values_mut() {
        node.depends_on
            .retain(|p| known.contains(p) && *p != node.purl);
        node.dev_of.retain(|p| known.contains(p));
    }
    Graph { nodes, apps }
}

/// The version a dependency's artifacts are recorded under: its own, but for pip's URL and git
/// dependencies, whose reported version is Cachito's (`<url>#cachito_hash=<alg>:<hex>`,
/// `git+<url>@<commit>`) and whose files are recorded as `external-<alg>-<hex>` and `<commit>`.
fn artifact_version<'v>(kind: &str, version: &'v str) -> std::borrow::Cow<'v, str> {
    if kind == "pip" {
        if let Some((_, hash)) = version.rsplit_once("#cachito_hash=") {
            if let Some((alg, hex)) = hash.split_once(':') {
                return format!("external-{alg}-{hex}").into();
            }
        }
        if let Some((_, commit)) = version
            .strip_prefix("git+")
            .and_then(|v| v.rsplit_once('@'))
        {
            return commit.into();
        }
    }
    version.into()
}

fn unreachable_node(purl: &str) -> Node {
    Node::new(purl, purl, None, Kind::Application, Scope::Required)
}

// CycloneDX 1.6

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bom<'a> {
    bom_format: &'static str,
    spec_version: &'static str,
    serial_number: String,
    version: u32,
    metadata: Metadata<'a>,
    components: Vec<Component<'a>>,
    dependencies: Vec<CdxDependency<'a>>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    timestamp: &'a str,
    tools: Tools<'a>,
    component: Component<'a>,
}

#[derive(Serialize)]
struct Tools<'a> {
    components: Vec<ToolComponent<'a>>,
}

#[derive(Serialize)]
struct ToolComponent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'static str,
    version: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Component<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "bom-ref")]
    bom_ref: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hashes: Vec<CdxHash<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    licenses: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_references: Vec<ExternalReference<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<Property<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    components: Vec<Component<'a>>,
}

#[derive(Serialize)]
struct CdxHash<'a> {
    alg: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ExternalReference<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
}

#[derive(Serialize)]
struct Property<'a> {
    name: &'static str,
    value: std::borrow::Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CdxDependency<'a> {
    #[serde(rename = "ref")]
    reference: &'a str,
    depends_on: Vec<&'a str>,
}

fn component<'a>(node: &'a Node) -> Component<'a> {
    let mut properties = Vec::new();
    for how in &node.verified {
        properties.push(Property {
            name: "larder:verified-by",
            value: how.as_str().into(),
        });
    }
    for h1 in &node.go_h1 {
        properties.push(Property {
            name: "larder:go.sum",
            value: h1.as_str().into(),
        });
    }
    if let Some(path) = &node.path {
        properties.push(Property {
            name: "larder:package-path",
            value: path.as_str().into(),
        });
    }
    let licenses = match &node.license {
        Some(l) if is_known_spdx_expression(l) => vec![serde_json::json!({"expression": l})],
        Some(l) => vec![serde_json::json!({"license": {"name": l}})],
        None => Vec::new(),
    };
    Component {
        kind: match node.kind {
            Kind::Application => "application",
            Kind::Package | Kind::Library => "library",
        },
        bom_ref: &node.purl,
        name: &node.name,
        version: node.version.as_deref(),
        scope: (node.kind == Kind::Library).then(|| node.scope.cyclonedx()),
        hashes: node
            .hashes
            .iter()
            .map(|(alg, content)| CdxHash {
                alg,
                content: content.as_str(),
            })
            .collect(),
        licenses,
        purl: Some(&node.purl),
        external_references: node
            .vcs
            .iter()
            .map(|url| ExternalReference { kind: "vcs", url })
            .chain(node.distribution.iter().map(|url| ExternalReference {
                kind: "distribution",
                url,
            }))
            .collect(),
        properties,
        components: Vec::new(),
    }
}

/// The merged document's own application: the requests' applications are its components.
const MERGED_REF: &str = "larder:merged";

/// CycloneDX 1.6 JSON of the requests.
pub fn cyclonedx(inputs: &[SbomInput<'_>], ctx: &SbomContext<'_>) -> Vec<u8> {
    let g = graph(inputs);
    let single = inputs.len() == 1;
    let root = if single {
        g.apps.first().and_then(|a| g.nodes.get(a)).map(component)
    } else {
        None
    };
    let root = root.unwrap_or_else(|| Component {
        kind: "application",
        bom_ref: MERGED_REF,
        name: "larder-merged",
        version: None,
        scope: None,
        hashes: Vec::new(),
        licenses: Vec::new(),
        purl: None,
        external_references: Vec::new(),
        properties: Vec::new(),
        components: Vec::new(),
    });
    let components: Vec<Component<'_>> = g
        .nodes
        .values()
        .filter(|n| !(single && g.apps.contains(&n.purl)))
        .map(component)
        .collect();
    let mut dependencies: Vec<CdxDependency<'_>> = Vec::new();
    if !single {
        dependencies.push(CdxDependency {
            reference: MERGED_REF,
            depends_on: g.apps.iter().map(String::as_str).collect(),
        });
    }
    // dev dependencies are in the graph too (their `scope` is `excluded`)
    let mut dev: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for node in g.nodes.values() {
        for package in &node.dev_of {
            dev.entry(package.as_str()).or_default().insert(&node.purl);
        }
    }
    for node in g.nodes.values() {
        let mut depends_on: BTreeSet<&str> = node.depends_on.iter().map(String::as_str).collect();
        depends_on.extend(dev.remove(node.purl.as_str()).unwrap_or_default());
        dependencies.push(CdxDependency {
            reference: &node.purl,
            depends_on: depends_on.into_iter().collect(),
        });
    }
    let bom = Bom {
        bom_format: "CycloneDX",
        spec_version: "1.6",
        serial_number: format!("urn:uuid:{}", ctx.uuid),
        version: 1,
        metadata: Metadata {
            timestamp: ctx.timestamp,
            tools: Tools {
                components: vec![ToolComponent {
                    kind: "application",
                    name: "larder",
                    version: ctx.tool_version,
                }],
            },
            component: root,
        },
        components,
        dependencies,
    };
    // straight to bytes: no second tree of the document in memory
    serde_json::to_vec(&bom).expect("an SBOM of strings and numbers serializes")
}

// SPDX 2.3

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpdxDocument<'a> {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdxid: &'static str,
    name: String,
    document_namespace: String,
    creation_info: CreationInfo,
    document_describes: Vec<String>,
    packages: Vec<SpdxPackage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    has_extracted_licensing_infos: Vec<ExtractedLicense<'a>>,
    relationships: Vec<Relationship>,
}

/// A licence declared by its text (SPDX `hasExtractedLicensingInfos`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExtractedLicense<'a> {
    license_id: &'a str,
    extracted_text: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct CreationInfo {
    created: String,
    creators: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpdxPackage<'a> {
    #[serde(rename = "SPDXID")]
    spdxid: String,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_info: Option<&'a str>,
    download_location: &'a str,
    files_analyzed: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checksums: Vec<Checksum<'a>>,
    license_declared: &'a str,
    primary_package_purpose: &'static str,
    external_refs: Vec<ExternalRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Checksum<'a> {
    algorithm: &'static str,
    checksum_value: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef<'a> {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    relationship_type: &'static str,
    related_spdx_element: String,
}

/// SPDX 2.3 JSON of the requests: the applications are the described packages.
pub fn spdx(inputs: &[SbomInput<'_>], ctx: &SbomContext<'_>) -> Vec<u8> {
    let g = graph(inputs);
    let ids: HashMap<&str, String> = g
        .nodes
        .keys()
        .enumerate()
        .map(|(i, purl)| (purl.as_str(), format!("SPDXRef-Package-{i}")))
        .collect();
    let id = |purl: &str| ids.get(purl).cloned().unwrap_or_default();
    // a declared licence that is no expression of the licence list is declared in the document
    // as extracted licensing info, its text kept, and referred to by its `LicenseRef-`
    let licence_refs: BTreeMap<&str, String> = g
        .nodes
        .values()
        .filter_map(|n| n.license.as_deref())
        .filter(|l| !is_known_spdx_expression(l))
        .collect::<BTreeSet<&str>>()
        .into_iter()
        .enumerate()
        .map(|(i, text)| (text, format!("LicenseRef-Larder-{}", i + 1)))
        .collect();
    let mut packages = Vec::new();
    let mut relationships = Vec::new();
    for node in g.nodes.values() {
        let me = id(&node.purl);
        let mut comment = Vec::new();
        if !node.verified.is_empty() {
            let how: Vec<&str> = node.verified.iter().map(String::as_str).collect();
            comment.push(format!("Verified by Larder: {}", how.join(", ")));
        }
        if let Some(path) = &node.path {
            comment.push(format!("Package path: {path}"));
        }
        packages.push(SpdxPackage {
            spdxid: me.clone(),
            name: &node.name,
            version_info: node.version.as_deref(),
            // one location: the git commit it was checked out at, else the first fetched URL
            // SPDX's validator accepts
            download_location: node
                .vcs
                .as_deref()
                .and_then(spdx_download_location)
                .or_else(|| {
                    node.distribution
                        .iter()
                        .find_map(|url| spdx_download_location(url))
                })
                .unwrap_or("NOASSERTION"),
            files_analyzed: false,
            checksums: node
                .hashes
                .iter()
                .filter_map(|(alg, value)| {
                    let algorithm = match *alg {
                        "SHA-1" => "SHA1",
                        "SHA-256" => "SHA256",
                        "SHA-384" => "SHA384",
                        "SHA-512" => "SHA512",
                        _ => return None,
                    };
                    Some(Checksum {
                        algorithm,
                        checksum_value: value,
                    })
                })
                .collect(),
            license_declared: match node.license.as_deref() {
                Some(l) => licence_refs.get(l).map_or(l, String::as_str),
                None => "NOASSERTION",
            },
            primary_package_purpose: match node.kind {
                Kind::Application => "APPLICATION",
                Kind::Package | Kind::Library => "LIBRARY",
            },
            external_refs: vec![ExternalRef {
                reference_category: "PACKAGE-MANAGER",
                reference_type: "purl",
                reference_locator: &node.purl,
            }],
            comment: (!comment.is_empty()).then(|| comment.join("\n")),
        });
        for target in &node.depends_on {
            relationships.push(Relationship {
                spdx_element_id: me.clone(),
                relationship_type: "DEPENDS_ON",
                related_spdx_element: id(target),
            });
        }
        for package in &node.dev_of {
            relationships.push(Relationship {
                spdx_element_id: me.clone(),
                relationship_type: "DEV_DEPENDENCY_OF",
                related_spdx_element: id(package),
            });
        }
    }
    let describes: Vec<String> = g.apps.iter().map(|a| id(a)).collect();
    for app in &describes {
        relationships.insert(
            0,
            Relationship {
                spdx_element_id: "SPDXRef-DOCUMENT".into(),
                relationship_type: "DESCRIBES",
                related_spdx_element: app.clone(),
            },
        );
    }
    let name = match inputs {
        [one] => format!("larder-request-{}", one.id),
        _ => "larder-merged".to_string(),
    };
    let doc = SpdxDocument {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdxid: "SPDXRef-DOCUMENT",
        name,
        document_namespace: format!("{}/{}", ctx.url.trim_end_matches('/'), ctx.uuid),
        creation_info: CreationInfo {
            created: ctx.timestamp.to_string(),
            creators: vec![format!("Tool: larder-{}", ctx.tool_version)],
        },
        document_describes: describes,
        packages,
        has_extracted_licensing_infos: licence_refs
            .iter()
            .map(|(text, license_id)| ExtractedLicense {
                license_id,
                extracted_text: text,
                name: text,
            })
            .collect(),
        relationships,
    };
    serde_json::to_vec(&doc).expect("an SBOM of strings and numbers serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{cargo::CargoMeta, npm::NpmMeta};
    use crate::model::{Dependency, Package};
    use crate::PmName;

    fn dep(name: &str, version: &str, dev: bool, depends_on: &[&str]) -> Dependency {
        Dependency {
            kind: "cargo".into(),
            name: name.into(),
            version: Some(version.into()),
            dev: dev.then_some(true),
            optional: None,
            replaces: None,
            purl: format!("pkg:cargo/{name}@{version}"),
            depends_on: depends_on.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn data() -> PackagesData {
        PackagesData {
            packages: vec![Package {
                kind: "cargo".into(),
                name: "app".into(),
                version: "1.0.0".into(),
                path: None,
                dependencies: vec![
                    dep("a", "1.0.0", false, &["pkg:cargo/b@2.0.0"]),
                    dep("b", "2.0.0", false, &[]),
                    dep("t", "0.1.0", true, &[]),
                ],
                purl: "pkg:cargo/app@1.0.0".into(),
                depends_on: vec!["pkg:cargo/a@1.0.0".into()],
            }],
        }
    }

    fn artifacts() -> Vec<Artifact> {
        vec![
            Artifact {
                pm: PmName::new("cargo"),
                name: "a".into(),
                version: "1.0.0".into(),
                filename: "a-1.0.0.crate".into(),
                store_key: "deps/cargo/a-1.0.0.crate".into(),
                meta: ArtifactMeta::Cargo(CargoMeta {
                    index_line: String::new(),
                    cksum: "AB".repeat(32),
                    license: Some("MIT".into()),
                }),
                source_url: Some("https://static.crates.io/crates/a/1.0.0/download".into()),
            },
            Artifact {
                pm: PmName::new("npm"),
                name: "b".into(),
                version: "2.0.0".into(),
                filename: "b-2.0.0.tgz".into(),
                store_key: "deps/npm/b-2.0.0.tgz".into(),
                meta: ArtifactMeta::Npm(Box::new(NpmMeta {
                    manifest: crate::artifact::npm::NpmManifest {
                        license: Some(serde_json::json!("(MIT OR Apache-2.0)")),
                        ..Default::default()
                    },
                    dist: crate::artifact::npm::NpmDist {
                        integrity: format!(
                            "sha512-{}",
                            base64::engine::general_purpose::STANDARD.encode([1u8; 64])
                        ),
                        shasum: "0".repeat(40),
                    },
                    ..Default::default()
                })),
                source_url: Some("http://127.0.0.1:4873/b/-/b-2.0.0.tgz".into()),
            },
        ]
    }

    fn ctx() -> SbomContext<'static> {
        SbomContext {
            timestamp: "2026-11-30T10:00:00Z",
            uuid: "3e671687-395b-41f5-a30f-a58921a69b79",
            tool_version: "0.1.0",
            url: "https://larder.example/api/v1/sbom/spdx",
        }
    }

    #[test]
    fn sbom_cyclonedx_has_metadata_hashes_scopes_and_the_lockfile_graph() {
        let data = data();
        let artifacts = artifacts();
        let input = SbomInput {
            id: 7,
            repo: "https://git.example/o/app.git",
            git_ref: "c0ffee",
            data: &data,
            artifacts: &artifacts,
        };
        let bom: serde_json::Value = serde_json::from_slice(&cyclonedx(&[input], &ctx())).unwrap();
        assert_eq!(bom["specVersion"], "1.6");
        assert_eq!(
            bom["serialNumber"],
            "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79"
        );
        let app = &bom["metadata"]["component"];
        assert_eq!(app["type"], "application");
        assert_eq!(
            app["purl"],
            "pkg:generic/app?vcs_url=git%2Bhttps%3A%2F%2Fgit.example%2Fo%2Fapp.git%40c0ffee"
        );
        assert_eq!(app["externalReferences"][0]["type"], "vcs");
        assert_eq!(bom["metadata"]["tools"]["components"][0]["name"], "larder");
        let comps = bom["components"].as_array().unwrap();
        let by = |purl: &str| comps.iter().find(|c| c["purl"] == purl).unwrap().clone();
        let a = by("pkg:cargo/a@1.0.0");
        assert_eq!(a["scope"], "required");
        assert_eq!(a["hashes"][0]["alg"], "SHA-256");
        assert_eq!(a["hashes"][0]["content"], "ab".repeat(32));
        assert_eq!(a["properties"][0]["value"], "lockfile checksum");
        assert_eq!(a["licenses"], serde_json::json!([{"expression": "MIT"}]));
        assert_eq!(
            a["externalReferences"],
            serde_json::json!([{"type": "distribution", "url": "https://static.crates.io/crates/a/1.0.0/download"}])
        );
        let b = by("pkg:cargo/b@2.0.0");
        assert_eq!(
            b["licenses"],
            serde_json::json!([{"expression": "(MIT OR Apache-2.0)"}])
        );
        assert_eq!(
            b["externalReferences"][0]["url"],
            "http://127.0.0.1:4873/b/-/b-2.0.0.tgz"
        );
        assert!(b["hashes"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"alg": "SHA-512", "content": "01".repeat(64)})));
        assert_eq!(by("pkg:cargo/t@0.1.0")["scope"], "excluded");
        let refs: BTreeSet<&str> = comps
            .iter()
            .map(|c| c["bom-ref"].as_str().unwrap())
            .collect();
        assert_eq!(refs.len(), comps.len());
        let deps = bom["dependencies"].as_array().unwrap();
        let edges = |r: &str| {
            deps.iter().find(|d| d["ref"] == r).unwrap()["dependsOn"]
                .as_array()
                .unwrap()
                .clone()
        };
        assert_eq!(edges("pkg:cargo/app@1.0.0"), vec!["pkg:cargo/a@1.0.0"]);
        assert_eq!(edges("pkg:cargo/a@1.0.0"), vec!["pkg:cargo/b@2.0.0"]);
        assert_eq!(
            edges(app["bom-ref"].as_str().unwrap()),
            vec!["pkg:cargo/app@1.0.0"]
        );
    }

    #[test]
    fn sbom_merged_dedupes_by_purl_and_keeps_each_requests_edges() {
        let one = data();
        let mut two = data();
        two.packages[0].dependencies[1].depends_on = vec!["pkg:cargo/t@0.1.0".into()];
        two.packages[0].dependencies[2].dev = None;
        let inputs = [
            SbomInput {
                id: 1,
                repo: "https://git.example/o/app",
                git_ref: "aa",
                data: &one,
                artifacts: &[],
            },
            SbomInput {
                id: 2,
                repo: "https://git.example/o/app",
                git_ref: "bb",
                data: &two,
                artifacts: &[],
            },
        ];
        let bom: serde_json::Value = serde_json::from_slice(&cyclonedx(&inputs, &ctx())).unwrap();
        let comps = bom["components"].as_array().unwrap();
        // two applications, one package, three dependencies
        assert_eq!(comps.len(), 6, "{bom}");
        let t = comps
            .iter()
            .find(|c| c["purl"] == "pkg:cargo/t@0.1.0")
            .unwrap();
        assert_eq!(t["scope"], "required");
        let deps = bom["dependencies"].as_array().unwrap();
        let b = deps
            .iter()
            .find(|d| d["ref"] == "pkg:cargo/b@2.0.0")
            .unwrap();
        assert_eq!(b["dependsOn"], serde_json::json!(["pkg:cargo/t@0.1.0"]));
        assert_eq!(bom["metadata"]["component"]["bom-ref"], MERGED_REF);

        let doc: serde_json::Value = serde_json::from_slice(&spdx(&inputs, &ctx())).unwrap();
        assert_eq!(doc["documentDescribes"].as_array().unwrap().len(), 2);
        assert!(!doc["documentNamespace"].as_str().unwrap().contains('#'));
    }

    #[test]
    fn sbom_spdx_has_checksums_licences_and_relationships() {
        let data = data();
        let artifacts = artifacts();
        let input = SbomInput {
            id: 7,
            repo: "https://git.example/o/app",
            git_ref: "c0ffee",
            data: &data,
            artifacts: &artifacts,
        };
        let doc: serde_json::Value = serde_json::from_slice(&spdx(&[input], &ctx())).unwrap();
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        let packages = doc["packages"].as_array().unwrap();
        let by = |purl: &str| {
            packages
                .iter()
                .find(|p| p["externalRefs"][0]["referenceLocator"] == purl)
                .unwrap()
                .clone()
        };
        let a = by("pkg:cargo/a@1.0.0");
        assert_eq!(
            a["checksums"],
            serde_json::json!([{"algorithm": "SHA256", "checksumValue": "ab".repeat(32)}])
        );
        assert_eq!(
            a["downloadLocation"],
            "https://static.crates.io/crates/a/1.0.0/download"
        );
        assert_eq!(a["licenseDeclared"], "MIT");
        let b = by("pkg:cargo/b@2.0.0");
        assert_eq!(b["licenseDeclared"], "(MIT OR Apache-2.0)");
        // a bare-IP URL is no download location to SPDX's validator
        assert_eq!(b["downloadLocation"], "NOASSERTION");
        let app = &doc["documentDescribes"][0];
        let rels = doc["relationships"].as_array().unwrap();
        let has = |x: &serde_json::Value, t: &str, y: &serde_json::Value| {
            rels.iter().any(|r| {
                r["spdxElementId"] == *x
                    && r["relationshipType"] == t
                    && r["relatedSpdxElement"] == *y
            })
        };
        let pkg = by("pkg:cargo/app@1.0.0")["SPDXID"].clone();
        assert!(has(&"SPDXRef-DOCUMENT".into(), "DESCRIBES", app));
        assert!(has(app, "DEPENDS_ON", &pkg));
        assert!(has(&pkg, "DEPENDS_ON", &a["SPDXID"]));
        assert!(has(&a["SPDXID"], "DEPENDS_ON", &b["SPDXID"]));
    }

    #[test]
    fn sbom_dev_dependencies_without_edges_are_dev_dependency_of() {
        let mut data = data();
        data.packages[0].depends_on.clear();
        let input = SbomInput {
            id: 1,
            repo: "r",
            git_ref: "c",
            data: &data,
            artifacts: &[],
        };
        let doc: serde_json::Value = serde_json::from_slice(&spdx(&[input], &ctx())).unwrap();
        assert!(doc["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["relationshipType"] == "DEV_DEPENDENCY_OF"));
    }

    #[test]
    fn sbom_licences_and_distributions_of_every_protocol() {
        use crate::artifact::gomod::GoMeta;
        use crate::artifact::pip::PipMeta;
        use crate::artifact::rubygems::GemMeta;
        let artifact = |name: &str, filename: &str, meta: ArtifactMeta, url: &str| Artifact {
            pm: PmName::new("x"),
            name: name.into(),
            version: "1.0.0".into(),
            filename: filename.into(),
            store_key: format!("deps/x/{filename}"),
            meta,
            source_url: Some(url.into()),
        };
        let artifacts = vec![
            artifact(
                "p",
                "p-1.0.0.tar.gz",
                ArtifactMeta::Pip(PipMeta {
                    sha256: "0".repeat(64),
                    requires_python: None,
                    size: 1,
                    kind: PipFileKind::Index,
                    path: "files/p/p-1.0.0.tar.gz".into(),
                    license: Some("BSD-3-Clause".into()),
                }),
                "https://files.example.org/p-1.0.0.tar.gz",
            ),
            artifact(
                "g",
                "g-1.0.0.gem",
                ArtifactMeta::Rubygems(GemMeta {
                    platform: None,
                    info_line: String::new(),
                    sha256: "0".repeat(64),
                    integrity: GemIntegrity::LockfileChecksum,
                    license: Some("Custom licence".into()),
                }),
                "https://rubygems.org/gems/g-1.0.0.gem",
            ),
            artifact(
                "t",
                "t-1.0.0.crate",
                ArtifactMeta::Cargo(CargoMeta {
                    index_line: String::new(),
                    cksum: "0".repeat(64),
                    license: Some("BSD".into()),
                }),
                "https://static.crates.io/crates/t/t-1.0.0.crate",
            ),
            artifact(
                "m",
                "v1.0.0.mod",
                ArtifactMeta::Gomod(GoMeta { h1: None }),
                "https://proxy.golang.org/m/@v/v1.0.0.mod",
            ),
            artifact(
                "m",
                "v1.0.0.zip",
                ArtifactMeta::Gomod(GoMeta { h1: None }),
                "https://proxy.golang.org/m/@v/v1.0.0.zip",
            ),
        ];
        let mut data = data();
        data.packages[0].dependencies = ["p", "g", "m", "t"]
            .iter()
            .map(|n| dep(n, "1.0.0", false, &[]))
            .collect();
        data.packages[0].depends_on.clear();
        let input = || SbomInput {
            id: 1,
            repo: "https://git.example/o/app",
            git_ref: "c0ffee",
            data: &data,
            artifacts: &artifacts,
        };
        let bom: serde_json::Value =
            serde_json::from_slice(&cyclonedx(&[input()], &ctx())).unwrap();
        let comps = bom["components"].as_array().unwrap();
        let by = |name: &str| comps.iter().find(|c| c["name"] == name).unwrap().clone();
        assert_eq!(
            by("p")["licenses"],
            serde_json::json!([{"expression": "BSD-3-Clause"}])
        );
        assert_eq!(
            by("g")["licenses"],
            serde_json::json!([{"license": {"name": "Custom licence"}}])
        );
        // looks like an expression, names no licence of the list
        assert_eq!(
            by("t")["licenses"],
            serde_json::json!([{"license": {"name": "BSD"}}])
        );
        assert_eq!(
            by("m")["externalReferences"],
            serde_json::json!([{"type": "distribution", "url": "https://proxy.golang.org/m/@v/v1.0.0.zip"}])
        );
        let doc: serde_json::Value = serde_json::from_slice(&spdx(&[input()], &ctx())).unwrap();
        let packages = doc["packages"].as_array().unwrap();
        let spdx_by = |name: &str| packages.iter().find(|p| p["name"] == name).unwrap().clone();
        assert_eq!(spdx_by("p")["licenseDeclared"], "BSD-3-Clause");
        assert_eq!(spdx_by("t")["licenseDeclared"], "LicenseRef-Larder-1");
        assert_eq!(spdx_by("g")["licenseDeclared"], "LicenseRef-Larder-2");
        assert_eq!(spdx_by("app")["licenseDeclared"], "NOASSERTION");
        assert_eq!(
            doc["hasExtractedLicensingInfos"],
            serde_json::json!([
                {"licenseId": "LicenseRef-Larder-1", "extractedText": "BSD", "name": "BSD"},
                {"licenseId": "LicenseRef-Larder-2", "extractedText": "Custom licence", "name": "Custom licence"},
            ])
        );
        assert_eq!(
            spdx_by("p")["downloadLocation"],
            "https://files.example.org/p-1.0.0.tar.gz"
        );
    }

    #[test]
    fn sbom_pip_url_and_git_dependencies_find_their_files() {
        assert_eq!(
            artifact_version(
                "pip",
                "https://h.example/u-1.0.tar.gz#cachito_hash=sha256:ab"
            ),
            "external-sha256-ab"
        );
        assert_eq!(
            artifact_version("pip", "git+https://git.example/o/r.git@c0ffee"),
            "c0ffee"
        );
        assert_eq!(artifact_version("pip", "1.0"), "1.0");
        assert_eq!(
            artifact_version("npm", "git+https://x@y"),
            "git+https://x@y"
        );
    }

    #[test]
    fn sbom_known_licence_expressions() {
        for ok in [
            "MIT",
            "MIT OR Apache-2.0",
            "(MIT OR Apache-2.0) AND Ruby",
            "Apache-2.0 WITH LLVM-exception",
            "GPL-2.0+",
            "GPL-2.0",
        ] {
            assert!(is_known_spdx_expression(ok), "{ok}");
        }
        for bad in [
            "BSD",
            "GPLv3",
            "mit",
            "MIT/Apache-2.0",
            "LicenseRef-Foo",
            "MIT WITH Nonsense-exception",
            "Custom licence",
            "",
        ] {
            assert!(!is_known_spdx_expression(bad), "{bad}");
        }
    }

    #[test]
    fn sbom_licence_expressions() {
        for ok in [
            "MIT",
            "(MIT OR Apache-2.0)",
            "GPL-2.0+ WITH Classpath-exception-2.0",
        ] {
            assert!(is_spdx_expression(ok), "{ok}");
        }
        for bad in ["", "SEE LICENSE IN x", "MIT OR", "(MIT", "MIT)", "a/b"] {
            assert!(!is_spdx_expression(bad), "{bad}");
        }
        assert_eq!(new_uuid().len(), 36);
        for (vcs, ok) in [
            ("git+https://github.com/o/r.git@abc", true),
            ("git+ssh://git@gitlab.example.com:2222/o/r@abc", true),
            ("git+file:///tmp/r@abc", false),
            ("git+http://127.0.0.1:8080/r@abc", false),
            ("git+https://git.example/o/r@abc", false),
            ("https://files.pythonhosted.org/p/a-1.0.tar.gz", true),
            ("http://127.0.0.1:8080/gems/a-1.0.gem", false),
            ("ftp://ftp.example.com/a.tgz", false),
        ] {
            assert_eq!(spdx_download_location(vcs).is_some(), ok, "{vcs}");
        }
    }
}
