//! What the per-request npm registry knows of one of its tarballs: where it came from and its
//! version's packument entry (the fields npm reads, taken from the tarball's package.json).

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NpmMeta {
    /// Only registry tarballs are listed in packuments; the others are served by file name.
    #[serde(default)]
    pub source: NpmSource,
    #[serde(flatten)]
    pub manifest: NpmManifest,
    /// Empty when unknown: the packument then leaves it out and npm relies on the lockfile's.
    #[serde(default)]
    pub dist: NpmDist,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NpmSource {
    #[default]
    Registry,
    Git,
    Url,
    File,
}

/// The package.json fields a packument version carries, as the package wrote them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NpmManifest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional_dependencies: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_dependencies: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_dependencies_meta: Option<Value>,
    /// Also from `bundledDependencies`, the older spelling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_dependencies: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directories: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engines: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<Value>,
    /// A preinstall, install or postinstall script: npm asks the packument, not the tarball.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub has_install_script: bool,
    #[serde(
        default,
        rename = "_hasShrinkwrap",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub has_shrinkwrap: bool,
}

/// `dist` of a packument version, without `tarball` (the registry adds its own URL).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NpmDist {
    /// `sha512-<base64>` of the tarball.
    pub integrity: String,
    /// Hex sha1 of the tarball.
    pub shasum: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ArtifactMeta;

    #[test]
    fn round_trips_as_a_flat_object() {
        let meta = NpmMeta {
            source: NpmSource::Git,
            manifest: NpmManifest {
                dependencies: Some(serde_json::json!({"x": "^1"})),
                has_install_script: true,
                ..NpmManifest::default()
            },
            dist: NpmDist {
                integrity: "sha512-a".into(),
                shasum: "ab".into(),
            },
        };
        let tagged = ArtifactMeta::Npm(Box::new(meta));
        let v = serde_json::to_value(&tagged).unwrap();
        assert_eq!(v["protocol"], "npm");
        assert_eq!(v["source"], "git");
        assert_eq!(v["hasInstallScript"], true);
        assert_eq!(v["dependencies"]["x"], "^1");
        assert!(v.get("license").is_none() && v.get("_hasShrinkwrap").is_none());
        assert_eq!(serde_json::from_value::<ArtifactMeta>(v).unwrap(), tagged);
        // no source: a registry tarball
        let old = serde_json::json!({"protocol": "npm", "dist": {"integrity": "i", "shasum": "s"}});
        let ArtifactMeta::Npm(m) = serde_json::from_value(old).unwrap() else {
            panic!()
        };
        assert_eq!(m.source, NpmSource::Registry);
    }
}
