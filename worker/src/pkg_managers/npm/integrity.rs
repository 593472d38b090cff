//! W3C Subresource Integrity (`integrity` in npm lockfiles): parse, pick the strongest value,
//! verify bytes or precomputed digests, convert to the foundation's [`Expected`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::digest::{Expected, HashAlgorithm};
use common::{ErrorKind, ErrorOrigin, Failure};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::io::Read;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IntegrityError {
    #[error("The integrity value {value:?} of {label} is not a valid SRI string (expected e.g. \"sha512-<base64>\")")]
    Malformed { label: String, value: String },
    #[error("The integrity value of {label} uses no supported algorithm (sha512, sha384, sha256, sha1): {value:?}")]
    NoSupportedAlgorithm { label: String, value: String },
    // what was computed is never shown: it would hand out the digest of any content a URL serves
    #[error("The checksum of {label} does not match the lockfile's integrity {expected}")]
    Mismatch { label: String, expected: String },
    #[error("Could not read the file of {label} to verify its integrity: {reason}")]
    Read { label: String, reason: String },
}

impl IntegrityError {
    pub fn failure(&self) -> Failure {
        match self {
            IntegrityError::Mismatch { .. } => {
                Failure::new(ErrorKind::InvalidChecksum, self.to_string())
            }
            IntegrityError::Read { .. } => {
                Failure::new(ErrorKind::FileAccessError, self.to_string())
            }
            _ => Failure::new(ErrorKind::InvalidFileFormat, self.to_string()),
        }
    }
    pub fn origin(&self) -> ErrorOrigin {
        self.failure().origin()
    }
}

/// Supported algorithms, ordered weakest to strongest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algo {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Algo {
    pub fn name(self) -> &'static str {
        match self {
            Algo::Sha1 => "sha1",
            Algo::Sha256 => "sha256",
            Algo::Sha384 => "sha384",
            Algo::Sha512 => "sha512",
        }
    }
    fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sha1" => Some(Algo::Sha1),
            "sha256" => Some(Algo::Sha256),
            "sha384" => Some(Algo::Sha384),
            "sha512" => Some(Algo::Sha512),
            _ => None,
        }
    }
    fn len(self) -> usize {
        match self {
            Algo::Sha1 => 20,
            Algo::Sha256 => 32,
            Algo::Sha384 => 48,
            Algo::Sha512 => 64,
        }
    }
}

/// One `<algo>-<base64>` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hash {
    pub algo: Algo,
    pub digest: Vec<u8>,
}

impl Hash {
    pub fn hex(&self) -> String {
        hex::encode(&self.digest)
    }
    pub fn sri(&self) -> String {
        format!("{}-{}", self.algo.name(), STANDARD.encode(&self.digest))
    }
}

/// A parsed SRI string: all supported values (unknown algorithms are ignored, as browsers and
/// npm's ssri do), at least one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Integrity {
    pub hashes: Vec<Hash>,
}

impl Integrity {
    /// Whether both name the same digests (in any order).
    pub fn same_hashes(&self, other: &Integrity) -> bool {
        let set = |i: &Integrity| {
            i.hashes
                .iter()
                .map(|h| (h.algo, h.digest.clone()))
                .collect::<std::collections::BTreeSet<_>>()
        };
        set(self) == set(other)
    }

    /// Parse an SRI string; `label` names the package in error messages.
    pub fn parse(value: &str, label: &str) -> Result<Self, IntegrityError> {
        let mut hashes = Vec::new();
        let mut saw_any = false;
        for token in value.split_ascii_whitespace() {
            saw_any = true;
            let Some((alg, rest)) = token.split_once('-') else {
                return Err(IntegrityError::Malformed {
                    label: label.into(),
                    value: value.into(),
                });
            };
            // options after '?' are allowed by the SRI grammar
            let b64 = rest.split('?').next().unwrap_or("");
            let Some(algo) = Algo::from_name(alg) else {
                continue;
            };
            let digest = STANDARD
                .decode(b64)
                .map_err(|_| IntegrityError::Malformed {
                    label: label.into(),
                    value: value.into(),
                })?;
            if digest.len() != algo.len() {
                return Err(IntegrityError::Malformed {
                    label: label.into(),
                    value: value.into(),
                });
            }
            hashes.push(Hash { algo, digest });
        }
        if !saw_any {
            return Err(IntegrityError::Malformed {
                label: label.into(),
                value: value.into(),
            });
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
    pub fn strongest_algo(&self) -> Algo {
        self.hashes
            .iter()
            .map(|h| h.algo)
            .max()
            .unwrap_or(Algo::Sha1)
    }

    /// All values of the strongest algorithm (SRI: any of them may match).
    pub fn strongest(&self) -> Vec<&Hash> {
        let a = self.strongest_algo();
        self.hashes.iter().filter(|h| h.algo == a).collect()
    }

    /// The foundation's expected digest: the strongest value among sha512 > sha384 > sha256 >
    /// sha1. If there are several values of the strongest algorithm, the caller must also run
    /// [`Integrity::verify_digests`] or [`Integrity::verify_reader`];
    /// [`Integrity::needs_full_verify`] says so.
    pub fn expected(&self) -> Expected {
        let algorithm = |a: Algo| match a {
            Algo::Sha1 => HashAlgorithm::Sha1,
            Algo::Sha256 => HashAlgorithm::Sha256,
            Algo::Sha384 => HashAlgorithm::Sha384,
            Algo::Sha512 => HashAlgorithm::Sha512,
        };
        Expected(
            self.strongest()
                .into_iter()
                .filter_map(|h| common::digest::Digest::new(algorithm(h.algo), &h.digest).ok())
                .collect(),
        )
    }

    pub fn needs_full_verify(&self) -> bool {
        self.strongest().len() > 1
    }

    /// Verify against digests computed while streaming (raw bytes). Missing digests for the
    /// strongest algorithm are an error.
    pub fn verify_digests(
        &self,
        label: &str,
        sha1: Option<&[u8]>,
        sha256: Option<&[u8]>,
        sha384: Option<&[u8]>,
        sha512: Option<&[u8]>,
    ) -> Result<(), IntegrityError> {
        let algo = self.strongest_algo();
        let actual = match algo {
            Algo::Sha1 => sha1,
            Algo::Sha256 => sha256,
            Algo::Sha384 => sha384,
            Algo::Sha512 => sha512,
        };
        let Some(actual) = actual else {
            return Err(IntegrityError::Read {
                label: label.into(),
                reason: format!("no {} digest was computed", algo.name()),
            });
        };
        if self.strongest().iter().any(|h| h.digest == actual) {
            Ok(())
        } else {
            Err(IntegrityError::Mismatch {
                label: label.into(),
                expected: self
                    .strongest()
                    .iter()
                    .map(|h| h.sri())
                    .collect::<Vec<_>>()
                    .join(" "),
            })
        }
    }

    pub fn verify_bytes(&self, label: &str, data: &[u8]) -> Result<(), IntegrityError> {
        self.verify_reader(label, data)
    }

    pub fn verify_reader(&self, label: &str, mut r: impl Read) -> Result<(), IntegrityError> {
        let algo = self.strongest_algo();
        let mut d = Digests::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = r.read(&mut buf).map_err(|e| IntegrityError::Read {
                label: label.into(),
                reason: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            d.update(&buf[..n]);
        }
        let f = d.finish();
        let _ = algo;
        self.verify_digests(
            label,
            Some(&f.sha1),
            Some(&f.sha256),
            Some(&f.sha384),
            Some(&f.sha512),
        )
    }
}

/// All four digests of one byte stream.
pub struct Digests {
    s1: Sha1,
    s256: Sha256,
    s384: Sha384,
    s512: Sha512,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    pub sha1: Vec<u8>,
    pub sha256: Vec<u8>,
    pub sha384: Vec<u8>,
    pub sha512: Vec<u8>,
}

impl Default for Digests {
    fn default() -> Self {
        Self::new()
    }
}

impl Digests {
    pub fn new() -> Self {
        Digests {
            s1: Sha1::new(),
            s256: Sha256::new(),
            s384: Sha384::new(),
            s512: Sha512::new(),
        }
    }
    pub fn update(&mut self, b: &[u8]) {
        self.s1.update(b);
        self.s256.update(b);
        self.s384.update(b);
        self.s512.update(b);
    }
    pub fn finish(self) -> Finished {
        Finished {
            sha1: self.s1.finalize().to_vec(),
            sha256: self.s256.finalize().to_vec(),
            sha384: self.s384.finalize().to_vec(),
            sha512: self.s512.finalize().to_vec(),
        }
    }
}

/// `sha512-<base64>` of bytes.
pub fn sri_sha512(data: &[u8]) -> String {
    format!("sha512-{}", STANDARD.encode(Sha512::digest(data)))
}

/// Hex sha1 of bytes (npm's `dist.shasum`).
pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// Hex sha256 of bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// SRI `sha512-<base64>` from a hex sha512 digest (as the foundation reports it).
pub fn sri_from_sha512_hex(h: &str) -> Option<String> {
    let d = hex::decode(h).ok()?;
    (d.len() == 64).then(|| format!("sha512-{}", STANDARD.encode(d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_verify_sha512() {
        let data = b"hello";
        let sri = sri_sha512(data);
        let i = Integrity::parse(&sri, "x@1").unwrap();
        assert_eq!(i.strongest_algo(), Algo::Sha512);
        i.verify_bytes("x@1", data).unwrap();
        let e = i.verify_bytes("x@1", b"tampered").unwrap_err();
        assert!(e.to_string().contains("x@1"));
        assert!(
            !e.to_string().contains(&sri_sha512(b"tampered")),
            "the digest of what was served is not echoed: {e}"
        );
        assert_eq!(e.failure().error_type(), "InvalidChecksum");
        assert_eq!(
            i.expected().to_string(),
            format!("sha512:{}", hex::encode(Sha512::digest(data)))
        );
    }

    #[test]
    fn strongest_of_several() {
        let data = b"abc";
        let s1 = format!("sha1-{}", STANDARD.encode(Sha1::digest(data)));
        let s512 = format!("sha512-{}", STANDARD.encode(Sha512::digest(b"other")));
        // the sha1 matches, the sha512 does not: the strongest decides -> mismatch
        let i = Integrity::parse(&format!("{s1} {s512}"), "p").unwrap();
        assert!(i.verify_bytes("p", data).is_err());
        let i = Integrity::parse(&s1, "p").unwrap();
        i.verify_bytes("p", data).unwrap();
        let expected = i.expected();
        assert!(!expected.is_none());
        assert!(expected
            .0
            .iter()
            .all(|d| d.algorithm == HashAlgorithm::Sha1));
    }

    #[test]
    fn sha384_maps_onto_expected() {
        let data = b"q";
        let s = format!("sha384-{}", STANDARD.encode(Sha384::digest(data)));
        let i = Integrity::parse(&s, "p").unwrap();
        assert!(!i.needs_full_verify());
        assert_eq!(
            i.expected().to_string(),
            format!("sha384:{}", hex::encode(Sha384::digest(data)))
        );
        i.verify_bytes("p", data).unwrap();
    }

    #[test]
    fn malformed() {
        for bad in ["", "   ", "sha512", "sha512-!!!", "sha512-AAAA", "md5-AAAA"] {
            let e = Integrity::parse(bad, "pkg@1").unwrap_err();
            assert!(e.to_string().contains("pkg@1"), "{e}");
            assert_eq!(e.failure().origin(), ErrorOrigin::Client);
        }
        // unknown algorithm next to a known one is ignored
        let good = sri_sha512(b"z");
        assert!(Integrity::parse(&format!("md5-AAAA {good}"), "p").is_ok());
    }

    #[test]
    fn helpers() {
        let hx = hex::encode(Sha512::digest(b"a"));
        assert_eq!(sri_from_sha512_hex(&hx).unwrap(), sri_sha512(b"a"));
        assert!(sri_from_sha512_hex("zz").is_none());
        assert_eq!(sha1_hex(b"").len(), 40);
        let i = Integrity::parse(&sri_sha512(b"a"), "p").unwrap();
        let f = {
            let mut d = Digests::new();
            d.update(b"a");
            d.finish()
        };
        i.verify_digests("p", None, None, None, Some(&f.sha512))
            .unwrap();
        assert!(i
            .verify_digests("p", Some(&f.sha1), None, None, None)
            .is_err());
    }
}
