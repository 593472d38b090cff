//! The licences a `.gem` declares: its `metadata.gz` (the gemspec as YAML) read, never
//! evaluated. A `.gem` is a plain tar of `metadata.gz`, `data.tar.gz` and `checksums.yaml.gz`;
//! only the small first member is decompressed, the others are skipped by seeking.

use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// Most entries of the outer tar looked at (a `.gem` has three or four).
const MAX_GEM_ENTRIES: usize = 16;
/// Most bytes of the decompressed gemspec read: a gem listing tens of thousands of files has a
/// gemspec of a few MiB.
const MAX_GEMSPEC_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum GemspecError {
    #[error("cannot read the gem: {0}")]
    Io(#[from] std::io::Error),
    #[error("the gem has no metadata.gz among its first {MAX_GEM_ENTRIES} entries")]
    NoMetadata,
    #[error("its gemspec is larger than {MAX_GEMSPEC_BYTES} bytes")]
    TooLarge,
    #[error("its gemspec is not YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// The licence `gem` declares (see [`licenses_expression`]), `Ok(None)` when it declares none.
pub fn gem_license(gem: &Path) -> Result<Option<String>, GemspecError> {
    let file = std::fs::File::open(gem)?;
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries_with_seek()?.take(MAX_GEM_ENTRIES) {
        let entry = entry?;
        if entry.header().entry_type().is_file() && entry.path()?.as_os_str() == "metadata.gz" {
            let mut yaml = Vec::new();
            GzDecoder::new(entry)
                .take(MAX_GEMSPEC_BYTES + 1)
                .read_to_end(&mut yaml)?;
            if yaml.len() as u64 > MAX_GEMSPEC_BYTES {
                return Err(GemspecError::TooLarge);
            }
            return gemspec_license(&yaml);
        }
    }
    Err(GemspecError::NoMetadata)
}

/// The licence of a gemspec's YAML (`--- !ruby/object:Gem::Specification` … `licenses:`).
pub fn gemspec_license(yaml: &[u8]) -> Result<Option<String>, GemspecError> {
    let mut spec: serde_yaml::Value = serde_yaml::from_slice(yaml)?;
    // the Ruby class tag is no part of the data
    if let serde_yaml::Value::Tagged(tagged) = spec {
        spec = tagged.value;
    }
    let licenses: Vec<&str> = spec
        .get("licenses")
        .and_then(serde_yaml::Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(serde_yaml::Value::as_str)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    Ok(licenses_expression(&licenses))
}

/// One declared licence of a gemspec's `licenses`. RubyGems documents the list as "the
/// license(s) for the library" without saying whether they combine as a choice or all at once;
/// like syft (which takes a package's licences "and assume[s] an AND expression"), Larder reads
/// them as all applying: the reading that never understates what a compliance team must honour.
/// Several SPDX expressions are joined with ` AND ` (compound ones parenthesised); if any is not
/// an expression the list is kept as text, `, `-separated (a licence name, not an expression).
pub fn licenses_expression(licenses: &[&str]) -> Option<String> {
    match licenses {
        [] => None,
        [one] => Some(one.to_string()),
        several if several.iter().all(|l| common::sbom::is_spdx_expression(l)) => Some(
            several
                .iter()
                .map(|l| {
                    if l.contains(' ') && !(l.starts_with('(') && l.ends_with(')')) {
                        format!("({l})")
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" AND "),
        ),
        several => Some(several.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A `.gem` as `gem build` lays it out: metadata.gz, data.tar.gz, checksums.yaml.gz.
    fn gem(dir: &Path, metadata: &[u8]) -> std::path::PathBuf {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [
            ("metadata.gz", gz(metadata)),
            ("data.tar.gz", gz(&[7u8; 100_000])),
            ("checksums.yaml.gz", gz(b"---\n")),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o444);
            h.set_cksum();
            b.append_data(&mut h, name, &data[..]).unwrap();
        }
        let path = dir.join("fixture-1.0.0.gem");
        std::fs::write(&path, b.into_inner().unwrap()).unwrap();
        path
    }

    const SPEC: &str = "--- !ruby/object:Gem::Specification
name: fixture
version: !ruby/object:Gem::Version
  version: 1.0.0
platform: ruby
authors:
- Larder Test
dependencies:
- !ruby/object:Gem::Dependency
  name: rack
  requirement: !ruby/object:Gem::Requirement
    requirements:
    - - \">=\"
      - !ruby/object:Gem::Version
        version: '2'
  type: :runtime
licenses:LICENSES
files:
- lib/fixture.rb
";

    fn spec(licenses: &str) -> String {
        SPEC.replace("LICENSES", licenses)
    }

    #[test]
    fn gem_licence_from_metadata_gz() {
        let dir = tempfile::tempdir().unwrap();
        let one = gem(dir.path(), spec("\n- MIT").as_bytes());
        assert_eq!(gem_license(&one).unwrap().as_deref(), Some("MIT"));
        let two = gem(dir.path(), spec("\n- \"Ruby\"\n- BSD-2-Clause").as_bytes());
        assert_eq!(
            gem_license(&two).unwrap().as_deref(),
            Some("Ruby AND BSD-2-Clause")
        );
        let none = gem(dir.path(), spec(" []").as_bytes());
        assert_eq!(gem_license(&none).unwrap(), None);
        let text = gem(dir.path(), spec("\n- MIT\n- Custom licence").as_bytes());
        assert_eq!(
            gem_license(&text).unwrap().as_deref(),
            Some("MIT, Custom licence")
        );
    }

    #[test]
    fn gem_licence_never_evaluates_and_fails_softly() {
        let dir = tempfile::tempdir().unwrap();
        // a Ruby-looking payload is only text
        let ruby = gem(dir.path(), spec("\n- \"#{`touch /tmp/x`}\"").as_bytes());
        assert_eq!(
            gem_license(&ruby).unwrap().as_deref(),
            Some("#{`touch /tmp/x`}")
        );
        let broken = gem(dir.path(), b"--- [unclosed");
        assert!(matches!(gem_license(&broken), Err(GemspecError::Yaml(_))));
        let not_a_gem = dir.path().join("x.gem");
        std::fs::write(&not_a_gem, b"not a tar at all").unwrap();
        assert!(gem_license(&not_a_gem).is_err());
        assert!(matches!(
            gem_license(&dir.path().join("missing.gem")),
            Err(GemspecError::Io(_))
        ));
    }

    #[test]
    fn several_licences_join_as_all_applying() {
        assert_eq!(licenses_expression(&[]), None);
        assert_eq!(
            licenses_expression(&["MIT OR Apache-2.0", "Ruby"]).as_deref(),
            Some("(MIT OR Apache-2.0) AND Ruby")
        );
    }
}
