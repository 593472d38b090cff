//! Digests of files: the algorithms lockfiles name, one digest, every digest of a file computed
//! in one pass while it streams, and what a file to download must hash to.

use base64::Engine;
use sha1::Sha1;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use std::fmt;
use std::io::Read;

/// The algorithms lockfiles use, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HashAlgorithm {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    pub const ALL: [HashAlgorithm; 4] = [Self::Sha1, Self::Sha256, Self::Sha384, Self::Sha512];

    /// As lockfiles spell it: `sha256`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    /// `sha256`, `SHA256`, … (`None` for an algorithm Larder does not verify).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// Bytes of a digest.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One digest: an algorithm and its bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    pub algorithm: HashAlgorithm,
    bytes: Box<[u8]>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a {algorithm} digest")]
pub struct BadDigest {
    pub algorithm: HashAlgorithm,
    pub value: String,
}

impl Digest {
    pub fn new(algorithm: HashAlgorithm, bytes: &[u8]) -> Result<Self, BadDigest> {
        if bytes.len() != algorithm.digest_len() {
            return Err(BadDigest {
                algorithm,
                value: hex::encode(bytes),
            });
        }
        Ok(Self {
            algorithm,
            bytes: bytes.into(),
        })
    }

    /// From hex, either case (`Cargo.lock` checksums, pip `--hash`, go's `.ziphash` aside).
    pub fn from_hex(algorithm: HashAlgorithm, text: &str) -> Result<Self, BadDigest> {
        let bad = || BadDigest {
            algorithm,
            value: text.into(),
        };
        let bytes = hex::decode(text).map_err(|_| bad())?;
        Self::new(algorithm, &bytes).map_err(|_| bad())
    }

    /// From standard base64 (SRI values, PyPI's JSON `hashes` aside).
    pub fn from_base64(algorithm: HashAlgorithm, text: &str) -> Result<Self, BadDigest> {
        let bad = || BadDigest {
            algorithm,
            value: text.into(),
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| bad())?;
        Self::new(algorithm, &bytes).map_err(|_| bad())
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn hex(&self) -> String {
        hex::encode(&self.bytes)
    }

    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.bytes)
    }

    /// Subresource Integrity form: `sha512-<base64>`.
    pub fn sri(&self) -> String {
        format!("{}-{}", self.algorithm, self.base64())
    }
}

impl fmt::Display for Digest {
    /// `sha256:<hex>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// The digests of one file and its size, computed in one pass (kept as bytes). SHA-384 only
/// when it was asked for ([`Hasher::for_expected`]): it costs as much as SHA-512, and few
/// lockfiles name it.
#[derive(Clone, PartialEq, Eq)]
pub struct FileDigests {
    pub size: u64,
    sha1: [u8; 20],
    sha256: [u8; 32],
    sha384: Option<[u8; 48]>,
    sha512: [u8; 64],
}

impl FileDigests {
    /// The file's digest in `algorithm`; a digest that was not computed (SHA-384, when not
    /// asked for) is empty, and matches nothing.
    pub fn get(&self, algorithm: HashAlgorithm) -> Digest {
        let bytes: &[u8] = match algorithm {
            HashAlgorithm::Sha1 => &self.sha1,
            HashAlgorithm::Sha256 => &self.sha256,
            HashAlgorithm::Sha384 => self.sha384.as_ref().map_or(&[][..], |d| &d[..]),
            HashAlgorithm::Sha512 => &self.sha512,
        };
        Digest {
            algorithm,
            bytes: bytes.into(),
        }
    }

    /// Whether every digest `expected` names was computed.
    pub fn covers(&self, expected: &Expected) -> bool {
        self.sha384.is_some()
            || expected
                .0
                .iter()
                .all(|d| d.algorithm != HashAlgorithm::Sha384)
    }

    pub fn matches(&self, digest: &Digest) -> bool {
        self.get(digest.algorithm).bytes == digest.bytes
    }

    /// Read `reader` to its end.
    pub fn of_reader(reader: impl Read) -> std::io::Result<Self> {
        Self::of_reader_with(reader, Hasher::default())
    }

    /// The digests of the file at `path` that `expected` can be checked against (and SHA-1,
    /// SHA-256, SHA-512, which layouts read).
    pub fn of_file_for(path: &std::path::Path, expected: &Expected) -> std::io::Result<Self> {
        Self::of_reader_with(std::fs::File::open(path)?, Hasher::for_expected(expected))
    }

    fn of_reader_with(mut reader: impl Read, mut hasher: Hasher) -> std::io::Result<Self> {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                return Ok(hasher.finish());
            }
            hasher.update(&buf[..n]);
        }
    }

    pub fn of_file(path: &std::path::Path) -> std::io::Result<Self> {
        Self::of_reader(std::fs::File::open(path)?)
    }

    /// The sha256, the digest every stored file's record has.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    /// As bytes: size, SHA-1, SHA-256, SHA-512, then SHA-384 when it was computed.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 20 + 32 + 64 + 48);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.sha1);
        out.extend_from_slice(&self.sha256);
        out.extend_from_slice(&self.sha512);
        if let Some(sha384) = &self.sha384 {
            out.extend_from_slice(sha384);
        }
        out
    }

    /// [`to_bytes`](Self::to_bytes) read back; None for anything else.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        const BASE: usize = 8 + 20 + 32 + 64;
        if bytes.len() != BASE && bytes.len() != BASE + 48 {
            return None;
        }
        let (size, rest) = bytes.split_at(8);
        let (sha1, rest) = rest.split_at(20);
        let (sha256, rest) = rest.split_at(32);
        let (sha512, rest) = rest.split_at(64);
        Some(Self {
            size: u64::from_le_bytes(size.try_into().ok()?),
            sha1: sha1.try_into().ok()?,
            sha256: sha256.try_into().ok()?,
            sha512: sha512.try_into().ok()?,
            sha384: (!rest.is_empty()).then(|| rest.try_into()).transpose().ok()?,
        })
    }
}

impl fmt::Debug for FileDigests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FileDigests({} bytes, sha256:{})",
            self.size,
            hex::encode(self.sha256)
        )
    }
}

/// The digests of a stream, fed in chunks: all four by default.
#[derive(Clone)]
pub struct Hasher {
    size: u64,
    sha1: Sha1,
    sha256: Sha256,
    sha384: Option<Sha384>,
    sha512: Sha512,
}

impl Default for Hasher {
    fn default() -> Self {
        Self {
            size: 0,
            sha1: Sha1::default(),
            sha256: Sha256::default(),
            sha384: Some(Sha384::default()),
            sha512: Sha512::default(),
        }
    }
}

impl Hasher {
    /// SHA-384 only when `expected` names it.
    pub fn for_expected(expected: &Expected) -> Self {
        let wants_sha384 = expected
            .0
            .iter()
            .any(|d| d.algorithm == HashAlgorithm::Sha384);
        Self {
            sha384: wants_sha384.then(Sha384::default),
            ..Self::default()
        }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        self.sha1.update(chunk);
        self.sha256.update(chunk);
        if let Some(h) = &mut self.sha384 {
            h.update(chunk);
        }
        self.sha512.update(chunk);
    }

    pub fn finish(self) -> FileDigests {
        FileDigests {
            size: self.size,
            sha1: self.sha1.finalize().into(),
            sha256: self.sha256.finalize().into(),
            sha384: self.sha384.map(|h| h.finalize().into()),
            sha512: self.sha512.finalize().into(),
        }
    }
}

/// What a file must hash to: any one of these digests (an SRI string's values of its strongest
/// algorithm, pip's `--hash` options). Empty: the file's own format is checked instead (Go's
/// `h1:` of a module zip), by the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected(pub Vec<Digest>);

impl Expected {
    pub fn one(digest: Digest) -> Self {
        Self(vec![digest])
    }

    pub fn none() -> Self {
        Self(Vec::new())
    }

    pub fn is_none(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_met_by(&self, digests: &FileDigests) -> bool {
        self.0.is_empty() || self.0.iter().any(|d| digests.matches(d))
    }
}

impl fmt::Display for Expected {
    /// `sha256:<hex>` or `sha512:<hex> or sha512:<hex>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.0.iter().map(Digest::to_string).collect();
        f.write_str(&all.join(" or "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha384_is_computed_only_when_expected_names_it() {
        let all = FileDigests::of_reader(&b"hello"[..]).unwrap();
        let want = all.get(HashAlgorithm::Sha384);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"hello").unwrap();
        let sha512 = Expected::one(all.get(HashAlgorithm::Sha512));
        let without = FileDigests::of_file_for(&file, &sha512).unwrap();
        assert!(sha512.is_met_by(&without));
        assert!(without.get(HashAlgorithm::Sha384).bytes().is_empty());
        assert!(
            !without.matches(&want),
            "a digest not computed matches nothing"
        );
        let sha384 = Expected::one(want.clone());
        assert!(!without.covers(&sha384));
        let with = FileDigests::of_file_for(&file, &sha384).unwrap();
        assert!(with.covers(&sha384) && sha384.is_met_by(&with));
        assert_eq!(with, all);
    }

    #[test]
    fn one_pass_every_algorithm() {
        let d = FileDigests::of_reader(&b"hello"[..]).unwrap();
        assert_eq!(d.size, 5);
        assert_eq!(
            d.get(HashAlgorithm::Sha256).hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(
            d.get(HashAlgorithm::Sha1).hex(),
            "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
        );
        let upper = Digest::from_hex(
            HashAlgorithm::Sha256,
            "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
        )
        .unwrap();
        assert!(d.matches(&upper));
        let sha512 = d.get(HashAlgorithm::Sha512);
        assert_eq!(
            Digest::from_base64(HashAlgorithm::Sha512, &sha512.base64()).unwrap(),
            sha512
        );
        assert!(sha512.sri().starts_with("sha512-"));
        let wrong = Digest::from_hex(HashAlgorithm::Sha256, &"0".repeat(64)).unwrap();
        assert!(!Expected::one(wrong.clone()).is_met_by(&d));
        assert!(Expected(vec![wrong, upper]).is_met_by(&d));
        assert!(Expected::none().is_met_by(&d));
        assert!(Digest::from_hex(HashAlgorithm::Sha256, "abc").is_err());
        assert_eq!(
            HashAlgorithm::from_name("SHA384"),
            Some(HashAlgorithm::Sha384)
        );
        assert_eq!(HashAlgorithm::from_name("md5"), None);
    }
}
