//! `LARDER_REPOS_CA_FILE`: the CA the per-request repositories' HTTPS certificate chains to,
//! handed back once per request as `app/registry-ca.pem` (Cachito's name for its registry CA)
//! for every package manager's client configuration to point at.
//!
//! Only certificates are handed back, each re-encoded from the DER that was checked: a file
//! with a key in it, or anything else than `CERTIFICATE` blocks, is refused rather than copied
//! to every client.

use common::repo_path::RepoPath;
use common::{Classify, Config, ConfigFile, EnvVar, ErrorKind};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A CA bundle is a few certificates; a whole public root store is about 220 KB.
pub const MAX_BYTES: u64 = 1024 * 1024;

/// The CA bundle of the request's repositories, checked, as it is handed back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReposCa {
    /// The certificates, PEM, one after another.
    pem: String,
    certificates: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReposCaError {
    #[error("LARDER_REPOS_CA_FILE {}: cannot read it: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("LARDER_REPOS_CA_FILE {}: larger than {MAX_BYTES} bytes, not a CA bundle", path.display())]
    TooLarge { path: PathBuf },
    #[error("LARDER_REPOS_CA_FILE {}: holds no PEM certificate (`-----BEGIN CERTIFICATE-----`); a DER file converts with `openssl x509 -inform der`", path.display())]
    NoCertificate { path: PathBuf },
    #[error("LARDER_REPOS_CA_FILE {}: holds a {label} block; it is handed to every client, so it may hold CERTIFICATE blocks only", path.display())]
    NotCertificate { path: PathBuf, label: String },
    #[error("LARDER_REPOS_CA_FILE {}: not valid PEM: {reason}", path.display())]
    BadPem { path: PathBuf, reason: String },
    #[error("LARDER_REPOS_CA_FILE {}: certificate {index} is not a valid X.509 certificate ({reason})", path.display())]
    BadCertificate {
        path: PathBuf,
        index: usize,
        reason: String,
    },
}

impl Classify for ReposCaError {
    fn kind(&self) -> ErrorKind {
        // the deployment's configuration, never the request's doing
        ErrorKind::Misconfigured
    }
}

impl ReposCa {
    /// Where it is handed back, relative to the bundle root: `app/`, once for every package
    /// manager of the request.
    pub const PATH: &'static str = "app/registry-ca.pem";
    /// Its name in `app/`.
    pub const FILE_NAME: &'static str = "registry-ca.pem";

    /// `LARDER_REPOS_CA_FILE`, read and checked; `None` when it is not set.
    pub fn from_config(config: &Config) -> Result<Option<ReposCa>, ReposCaError> {
        config.repos_ca_file.as_deref().map(Self::read).transpose()
    }

    /// The CA a request hands back: `LARDER_REPOS_CA_FILE`, read again for each request (a
    /// renewed CA is handed back without a restart), when one of the package managers it runs
    /// hands back a repository; `None` when it is not set or none does.
    pub fn for_request(
        config: &Config,
        running: &[&dyn super::Registered],
    ) -> Result<Option<ReposCa>, ReposCaError> {
        if running.iter().any(|pm| pm.hands_back_repository()) {
            Self::from_config(config)
        } else {
            Ok(None)
        }
    }

    /// Read and check a CA bundle (at most [`MAX_BYTES`]).
    pub fn read(path: &Path) -> Result<ReposCa, ReposCaError> {
        let unreadable = |e: std::io::Error| ReposCaError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let mut bytes = Vec::new();
        file.take(MAX_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.len() as u64 > MAX_BYTES {
            return Err(ReposCaError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        Self::parse(&bytes, path)
    }

    /// Check `bytes` (named `path` in messages): PEM, `CERTIFICATE` blocks only, at least one,
    /// each a certificate a client can take as a trust anchor.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<ReposCa, ReposCaError> {
        let path = || path.to_path_buf();
        // the PEM reader skips blocks it has no use for: look at every label first
        for line in bytes.split(|b| *b == b'\n') {
            let line = line.trim_ascii();
            if let Some(rest) = line.strip_prefix(b"-----BEGIN ") {
                let label = rest.strip_suffix(b"-----").unwrap_or(rest);
                if label != b"CERTIFICATE" {
                    return Err(ReposCaError::NotCertificate {
                        path: path(),
                        label: String::from_utf8_lossy(label).chars().take(64).collect(),
                    });
                }
            }
        }
        let mut pem = String::new();
        let mut certificates = 0;
        for der in CertificateDer::pem_slice_iter(bytes) {
            let der = der.map_err(|e| ReposCaError::BadPem {
                path: path(),
                reason: e.to_string(),
            })?;
            certificates += 1;
            webpki::anchor_from_trusted_cert(&der).map_err(|e| ReposCaError::BadCertificate {
                path: path(),
                index: certificates,
                reason: e.to_string(),
            })?;
            pem.push_str(&pem_certificate(&der));
        }
        if certificates == 0 {
            return Err(ReposCaError::NoCertificate { path: path() });
        }
        Ok(ReposCa { pem, certificates })
    }

    pub fn certificates(&self) -> usize {
        self.certificates
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The configuration file that carries it (the pipeline adds it once per request).
    pub fn config_file(&self) -> ConfigFile {
        ConfigFile::inline(Self::PATH, self.pem.as_bytes())
    }

    /// The environment variable value naming it: kind `path`, relative to the bundle root
    /// (`PIP_CERT`, `SSL_CERT_FILE`).
    pub fn env_var(&self) -> EnvVar {
        EnvVar::path(Self::PATH)
    }

    /// Its path from the package directory `app/<package_path>/`: `registry-ca.pem`,
    /// `../../registry-ca.pem`. For clients that resolve a relative path against the directory
    /// they run in (npm's `cafile`) or the one holding `.cargo/` (cargo's `http.cainfo`).
    pub fn relative_to(&self, package_path: &RepoPath) -> String {
        format!("{}{}", "../".repeat(package_path.depth()), Self::FILE_NAME)
    }
}

/// One certificate as PEM: 64 base64 characters a line.
fn pem_certificate(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed CA (P-256), for tests.
    pub const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBsjCCAVmgAwIBAgIUKXmATDIO7hKMwQsH8unsh14RCjEwCgYIKoZIzj0EAwIw
JjEkMCIGA1UEAwwbTGFyZGVyIHRlc3QgcmVwb3NpdG9yaWVzIENBMCAXDTI2MTEz
MDA1MzgwOVoYDzIxMjYxMTA2MDUzODA5WjAmMSQwIgYDVQQDDBtMYXJkZXIgdGVz
dCByZXBvc2l0b3JpZXMgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAST+lO5
9mkbGXCD9S+5hCJAGNJVqFGgwXPFgo4iXac17d4uLLU8WC+riuG+ULEgXLzND+yQ
45X0jZ2mFHlRQ58yo2MwYTAdBgNVHQ4EFgQUC0M6p81/wEn98XfhhkFgUHCBAF0w
HwYDVR0jBBgwFoAUC0M6p81/wEn98XfhhkFgUHCBAF0wDwYDVR0TAQH/BAUwAwEB
/zAOBgNVHQ8BAf8EBAMCAQYwCgYIKoZIzj0EAwIDRwAwRAIgb6XiK04p8+/lW8Zl
ot3kWAwUaRfQNKY7g3AGpNCBxMUCIEPXlnDGZsFfpioXZvkt7ps73KQqyP36hcJO
MJITy9IM
-----END CERTIFICATE-----
";

    /// The test CA, checked.
    pub fn test_ca() -> ReposCa {
        ReposCa::parse(TEST_CA.as_bytes(), Path::new("test-ca.pem")).unwrap()
    }

    fn parse(text: &str) -> Result<ReposCa, ReposCaError> {
        ReposCa::parse(text.as_bytes(), Path::new("/etc/larder/ca.pem"))
    }

    #[test]
    fn certificates_are_handed_back_as_checked() {
        let ca = test_ca();
        assert_eq!(ca.certificates(), 1);
        assert_eq!(ca.pem(), TEST_CA, "re-encoded the same");
        let file = ca.config_file();
        assert_eq!(file.path, "app/registry-ca.pem");
        assert_eq!(ReposCa::PATH, format!("app/{}", ReposCa::FILE_NAME));
        assert_eq!(file.inline_content(), Some(TEST_CA.as_bytes()));
        let env = ca.env_var();
        assert_eq!(
            (env.value.as_str(), env.kind.as_str()),
            (ReposCa::PATH, "path")
        );

        // CRLF, comments and text around the blocks (as `openssl x509 -text` writes it) are
        // not handed back
        let noisy = format!(
            "# corporate CA\r\nsubject=CN = x\r\n{}\n\n{TEST_CA}",
            TEST_CA.replace('\n', "\r\n")
        );
        let two = parse(&noisy).unwrap();
        assert_eq!(two.certificates(), 2);
        assert_eq!(two.pem(), format!("{TEST_CA}{TEST_CA}"));
    }

    #[test]
    fn relative_to_the_package_directory() {
        let ca = test_ca();
        let at = |p: &str| RepoPath::parse(p).unwrap();
        assert_eq!(ca.relative_to(&RepoPath::root()), "registry-ca.pem");
        assert_eq!(ca.relative_to(&at("web")), "../registry-ca.pem");
        assert_eq!(ca.relative_to(&at("a/b")), "../../registry-ca.pem");
    }

    #[test]
    fn refuses_what_is_not_pem_certificates() {
        let reason = |text: &str| parse(text).unwrap_err().to_string();
        assert!(
            reason("").contains("holds no PEM certificate"),
            "{}",
            reason("")
        );
        assert!(reason("\u{30}\u{82}\u{01}binary DER").contains("holds no PEM certificate"));
        let key =
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        let with_key = format!("{TEST_CA}{key}");
        let r = reason(&with_key);
        assert!(
            r.contains("holds a PRIVATE KEY block") && r.contains("/etc/larder/ca.pem"),
            "{r}"
        );
        assert!(reason(&format!(
            "-----BEGIN TRUSTED CERTIFICATE-----\nAAAA\n-----END TRUSTED CERTIFICATE-----\n{TEST_CA}"
        ))
        .contains("holds a TRUSTED CERTIFICATE block"));
        let truncated = &TEST_CA[..TEST_CA.len() - 30];
        assert!(
            reason(truncated).contains("not valid PEM"),
            "{}",
            reason(truncated)
        );
        let bad_base64 = TEST_CA.replace("MIIB", "M!IB");
        assert!(reason(&bad_base64).contains("not valid PEM"));
        let not_x509 = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        let r = reason(&format!("{TEST_CA}{not_x509}"));
        assert!(
            r.contains("certificate 2 is not a valid X.509 certificate"),
            "{r}"
        );
        let e = parse("nothing").unwrap_err();
        assert_eq!(Classify::kind(&e), ErrorKind::Misconfigured);
        assert_eq!(
            common::Failure::from(e).origin(),
            common::ErrorOrigin::Server
        );
    }

    #[test]
    fn reads_the_file_or_says_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let r = ReposCa::read(&missing).unwrap_err().to_string();
        assert!(
            r.contains("cannot read it") && r.contains("missing.pem"),
            "{r}"
        );
        // a directory
        let r = ReposCa::read(dir.path()).unwrap_err().to_string();
        assert!(r.contains("cannot read it"), "{r}");
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'#'; MAX_BYTES as usize + 1]).unwrap();
        assert!(matches!(
            ReposCa::read(&big),
            Err(ReposCaError::TooLarge { .. })
        ));
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, TEST_CA).unwrap();
        assert_eq!(ReposCa::read(&good).unwrap(), test_ca());

        let mut config = Config::from_env();
        config.repos_ca_file = None;
        assert_eq!(ReposCa::from_config(&config).unwrap(), None);
        config.repos_ca_file = Some(good);
        assert_eq!(ReposCa::from_config(&config).unwrap(), Some(test_ca()));
        config.repos_ca_file = Some(missing);
        assert!(ReposCa::from_config(&config).is_err());
        // read only for a request that hands back a repository
        use crate::pkg_managers::{git_submodule::GitSubmodule, npm::Npm, Registered};
        let submodules: &[&dyn Registered] = &[&GitSubmodule];
        assert_eq!(ReposCa::for_request(&config, submodules).unwrap(), None);
        let both: &[&dyn Registered] = &[&Npm, &GitSubmodule];
        assert!(ReposCa::for_request(&config, both).is_err());
    }
}
