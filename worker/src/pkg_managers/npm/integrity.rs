//! W3C Subresource Integrity (`integrity` in npm lockfiles): parse, pick the strongest values,
//! check a file's digests (computed as it was fetched) against them.

use common::digest::{Digest, Expected, FileDigests, HashAlgorithm, Hasher};
use common::{Classify, ErrorKind};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IntegrityError {
    #[error("The integrity value {value:?} of {label} is not a valid SRI string (expected e.g. \"sha512-<base64>\")")]
    Malformed { label: String, value: String },
    #[error("The integrity value of {label} uses no supported algorithm (sha512, sha384, sha256, sha1): {value:?}")]
    NoSupportedAlgorithm { label: String, value: String },
    // what was computed is never shown: it would hand out the digest of any content a URL serves
    #[error("The checksum of {label} does not match the lockfile's integrity {expected}")]
    Mismatch { label: String, expected: String },
}

impl Classify for IntegrityError {
    fn kind(&self) -> ErrorKind {
        match self {
            IntegrityError::Mismatch { .. } => ErrorKind::InvalidChecksum,
            IntegrityError::Malformed { .. } | IntegrityError::NoSupportedAlgorithm { .. } => {
                ErrorKind::InvalidFileFormat
            }
        }
    }
}

/// A parsed SRI string: all supported values (unknown algorithms are ignored, as browsers and
/// npm's ssri do), at least one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Integrity {
    pub hashes: Vec<Digest>,
}

impl Integrity {
    /// Whether both name the same digests (in any order).
    pub fn same_hashes(&self, other: &Integrity) -> bool {
        use std::collections::BTreeSet;
        let mine: BTreeSet<&Digest> = self.hashes.iter().collect();
        mine == other.hashes.iter().collect()
    }

    /// Parse an SRI string; `label` names the package in error messages.
    pub fn parse(value: &str, label: &str) -> Result<Self, IntegrityError> {
        let malformed = || IntegrityError::Malformed {
            label: label.into(),
            value: value.into(),
        };
        let mut hashes = Vec::new();
        let mut saw_any = false;
        for token in value.split_ascii_whitespace() {
            saw_any = true;
            let (alg, rest) = token.split_once('-').ok_or_else(malformed)?;
            // options after '?' are allowed by the SRI grammar
            let b64 = rest.split('?').next().unwrap_or("");
            let Some(algorithm) = HashAlgorithm::from_name(alg) else {
                continue;
            };
            hashes.push(Digest::from_base64(algorithm, b64).map_err(|_| malformed())?);
        }
        if !saw_any {
            return Err(malformed());
        }
        if hashes.is_empty() {
            return Err(IntegrityError::NoSupportedAlgorithm {
                label: label.into(),
                value: value.into(),
            });
        }
        Ok(Integrity { hashes })
    }

    /// The strongest algorithm present.
    pub fn strongest_algorithm(&self) -> HashAlgorithm {
        self.hashes
            .iter()
            .map(|h| h.algorithm)
            .max()
            .unwrap_or(HashAlgorithm::Sha1)
    }

    /// All values of the strongest algorithm (SRI: any of them may match).
    pub fn strongest(&self) -> Vec<&Digest> {
        let a = self.strongest_algorithm();
        self.hashes.iter().filter(|h| h.algorithm == a).collect()
    }

    /// What the fetched file must hash to: any value of the strongest algorithm among
    /// sha512 > sha384 > sha256 > sha1 (the whole SRI check).
    pub fn expected(&self) -> Expected {
        Expected(self.strongest().into_iter().cloned().collect())
    }

    /// Check a file's digests, computed while it was fetched.
    pub fn verify(&self, label: &str, digests: &FileDigests) -> Result<(), IntegrityError> {
        let strongest = self.strongest();
        if strongest.iter().any(|h| digests.matches(h)) {
            Ok(())
        } else {
            Err(IntegrityError::Mismatch {
                label: label.into(),
                expected: strongest
                    .iter()
                    .map(|h| h.sri())
                    .collect::<Vec<_>>()
                    .join(" "),
            })
        }
    }
}

/// The digests of bytes in memory (a packed git dependency, a registry's fixtures).
pub fn digests_of(data: &[u8]) -> FileDigests {
    let mut hasher = Hasher::default();
    hasher.update(data);
    hasher.finish()
}

/// `sha512-<base64>` of bytes.
pub fn sri_sha512(data: &[u8]) -> String {
    digests_of(data).get(HashAlgorithm::Sha512).sri()
}

/// Hex sha1 of bytes (npm's `dist.shasum`).
pub fn sha1_hex(data: &[u8]) -> String {
    digests_of(data).get(HashAlgorithm::Sha1).hex()
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::{ErrorOrigin, Failure};

    fn digests(data: &[u8]) -> FileDigests {
        digests_of(data)
    }

    fn sri(algorithm: HashAlgorithm, data: &[u8]) -> String {
        digests(data).get(algorithm).sri()
    }

    #[test]
    fn parse_and_verify_sha512() {
        let data = b"hello";
        let sri = sri(HashAlgorithm::Sha512, data);
        let i = Integrity::parse(&sri, "x@1").unwrap();
        assert_eq!(i.strongest_algorithm(), HashAlgorithm::Sha512);
        i.verify("x@1", &digests(data)).unwrap();
        let e = i.verify("x@1", &digests(b"tampered")).unwrap_err();
        assert!(e.to_string().contains("x@1"));
        assert!(
            !e.to_string()
                .contains(&digests(b"tampered").get(HashAlgorithm::Sha512).sri()),
            "the digest of what was served is not echoed: {e}"
        );
        assert_eq!(Failure::from(e).error_type(), "InvalidChecksum");
        assert_eq!(
            i.expected().to_string(),
            digests(data).get(HashAlgorithm::Sha512).to_string()
        );
    }

    #[test]
    fn strongest_of_several() {
        let data = b"abc";
        let s1 = sri(HashAlgorithm::Sha1, data);
        let s512 = sri(HashAlgorithm::Sha512, b"other");
        // the sha1 matches, the sha512 does not: the strongest decides -> mismatch
        let i = Integrity::parse(&format!("{s1} {s512}"), "p").unwrap();
        assert!(i.verify("p", &digests(data)).is_err());
        assert!(!i.expected().is_met_by(&digests(data)));
        let i = Integrity::parse(&s1, "p").unwrap();
        i.verify("p", &digests(data)).unwrap();
        let expected = i.expected();
        assert!(!expected.is_none());
        assert!(expected
            .0
            .iter()
            .all(|d| d.algorithm == HashAlgorithm::Sha1));
        // two values of the strongest algorithm: either may match
        let s512_ok = sri(HashAlgorithm::Sha512, data);
        let i = Integrity::parse(&format!("{s512} {s512_ok}"), "p").unwrap();
        i.verify("p", &digests(data)).unwrap();
        assert!(i.expected().is_met_by(&digests(data)));
    }

    #[test]
    fn sha384_maps_onto_expected() {
        let data = b"q";
        let i = Integrity::parse(&sri(HashAlgorithm::Sha384, data), "p").unwrap();
        assert_eq!(
            i.expected().to_string(),
            digests(data).get(HashAlgorithm::Sha384).to_string()
        );
        i.verify("p", &digests(data)).unwrap();
    }

    #[test]
    fn malformed() {
        for bad in ["", "   ", "sha512", "sha512-!!!", "sha512-AAAA", "md5-AAAA"] {
            let e = Integrity::parse(bad, "pkg@1").unwrap_err();
            assert!(e.to_string().contains("pkg@1"), "{e}");
            assert_eq!(Failure::from(e).origin(), ErrorOrigin::Client);
        }
        // unknown algorithm next to a known one is ignored
        let good = sri(HashAlgorithm::Sha512, b"z");
        assert!(Integrity::parse(&format!("md5-AAAA {good}"), "p").is_ok());
    }
}
