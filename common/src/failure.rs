//! Why a request failed. Every failure has a kind, and the kind alone decides Cachito's
//! `error_type` and `error_origin`: this file is the one place that mapping lives.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorOrigin {
    Client,
    Server,
}

impl ErrorOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Server => "server",
        }
    }
}

impl std::str::FromStr for ErrorOrigin {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [Self::Client, Self::Server]
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or(())
    }
}

/// What went wrong, in Cachito's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    // the request's own input, repository or dependencies
    InvalidRequestData,
    InvalidRepoStructure,
    ValidationError,
    InvalidChecksum,
    InvalidFileFormat,
    UnsupportedFeature,
    RepositoryAccessError,
    GoModError,
    /// A dependency refused by a limit or the outbound policy.
    PackageRejected,
    /// An upstream answered that a dependency does not exist (404/410).
    MissingUpstream,
    // this deployment
    FileAccessError,
    NetworkError,
    /// The deployment's own configuration cannot serve the request.
    Misconfigured,
    RequestTimeout,
    TooManyAttempts,
    ReportRefused,
    UnknownError,
}

impl ErrorKind {
    /// Cachito's `error_type` (its exception class names).
    pub fn error_type(self) -> &'static str {
        match self {
            Self::InvalidRequestData => "InvalidRequestData",
            Self::InvalidRepoStructure => "InvalidRepoStructure",
            Self::ValidationError => "ValidationError",
            Self::InvalidChecksum => "InvalidChecksum",
            Self::InvalidFileFormat => "InvalidFileFormat",
            Self::UnsupportedFeature => "UnsupportedFeature",
            Self::RepositoryAccessError => "RepositoryAccessError",
            Self::GoModError => "GoModError",
            Self::PackageRejected => "PackageRejected",
            Self::MissingUpstream | Self::NetworkError => "NetworkError",
            Self::FileAccessError => "FileAccessError",
            Self::Misconfigured => "ConfigurationError",
            Self::RequestTimeout => "RequestTimeout",
            Self::TooManyAttempts => "TooManyAttempts",
            Self::ReportRefused => "ReportRefused",
            Self::UnknownError => "UnknownError",
        }
    }

    /// Whose doing it is: the request's (`client`) or this deployment's (`server`).
    pub fn origin(self) -> ErrorOrigin {
        match self {
            Self::InvalidRequestData
            | Self::InvalidRepoStructure
            | Self::ValidationError
            | Self::InvalidChecksum
            | Self::InvalidFileFormat
            | Self::UnsupportedFeature
            | Self::RepositoryAccessError
            | Self::GoModError
            | Self::PackageRejected
            | Self::MissingUpstream => ErrorOrigin::Client,
            Self::FileAccessError
            | Self::NetworkError
            | Self::Misconfigured
            | Self::RequestTimeout
            | Self::TooManyAttempts
            | Self::ReportRefused
            | Self::UnknownError => ErrorOrigin::Server,
        }
    }
}

/// Why a request failed: becomes its `state_reason`, `error_origin` and `error_type`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl Failure {
    /// Messages quote repositories and upstreams: they are cleaned and bounded here, once, so
    /// no failure can carry a NUL or megabytes into the database or a log.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: crate::text::clean(&message.into(), crate::text::MAX_REASON_BYTES),
        }
    }

    pub fn origin(&self) -> ErrorOrigin {
        self.kind.origin()
    }

    pub fn error_type(&self) -> &'static str {
        self.kind.error_type()
    }

    /// The request ran past `LARDER_REQUEST_TIMEOUT`.
    pub fn timed_out(timeout: std::time::Duration) -> Self {
        Self::new(
            ErrorKind::RequestTimeout,
            format!(
                "The request did not finish within {} (LARDER_REQUEST_TIMEOUT)",
                humantime::format_duration(timeout)
            ),
        )
    }
}

/// An error that can end a request: it says which kind it is, its `Display` is the message.
/// `?` turns it into a [`Failure`].
pub trait Classify: fmt::Display {
    fn kind(&self) -> ErrorKind;

    /// What the request's `state_reason` says (Display unless a fixed text is owed).
    fn message(&self) -> String {
        self.to_string()
    }
}

impl<E: Classify> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::new(e.kind(), e.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the lockfile names x twice")]
    struct Twice;

    impl Classify for Twice {
        fn kind(&self) -> ErrorKind {
            ErrorKind::InvalidFileFormat
        }
    }

    #[test]
    fn kinds_decide_type_and_origin() {
        let f: Failure = Twice.into();
        assert_eq!(f.error_type(), "InvalidFileFormat");
        assert_eq!(f.origin(), ErrorOrigin::Client);
        assert_eq!(f.message, "the lockfile names x twice");
        assert_eq!(ErrorKind::MissingUpstream.error_type(), "NetworkError");
        assert_eq!(ErrorKind::MissingUpstream.origin(), ErrorOrigin::Client);
        assert_eq!(ErrorKind::NetworkError.origin(), ErrorOrigin::Server);
    }
}
