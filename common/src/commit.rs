//! A full git commit id. Requests, lockfiles and Gemfile.locks name commits; only a full id pins
//! content, so anything shorter is refused where a commit is required.

use std::fmt;
use std::str::FromStr;

/// 40 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a full commit id (40 hex digits)")]
pub struct NotACommitId(pub String);

impl CommitId {
    /// Exactly 40 lowercase hex digits, as Cachito's API requires of `ref`.
    pub fn parse(text: &str) -> Result<Self, NotACommitId> {
        let ok = text.len() == 40
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(text.to_string()))
        } else {
            Err(NotACommitId(text.into()))
        }
    }

    /// 40 hex digits in either case (lockfiles write what their tools wrote), lowercased.
    pub fn parse_any_case(text: &str) -> Result<Self, NotACommitId> {
        Self::parse(&text.to_ascii_lowercase()).map_err(|_| NotACommitId(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first `n` digits (`git log --abbrev`).
    pub fn short(&self, n: usize) -> &str {
        &self.0[..n.min(40)]
    }
}

impl FromStr for CommitId {
    type Err = NotACommitId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommitId({})", self.0)
    }
}

impl serde::Serialize for CommitId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for CommitId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_ids_only() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(CommitId::parse(sha).unwrap().as_str(), sha);
        assert_eq!(CommitId::parse(sha).unwrap().short(7), "0123456");
        assert!(CommitId::parse(&sha.to_uppercase()).is_err());
        assert_eq!(
            CommitId::parse_any_case(&sha.to_uppercase())
                .unwrap()
                .as_str(),
            sha
        );
        for bad in [
            "",
            "main",
            &sha[..39],
            &format!("{sha}0"),
            "g123456789abcdef0123456789abcdef01234567",
        ] {
            assert!(CommitId::parse(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<CommitId>("\"abc\"").is_err());
    }
}
