//! A private PKI for tests over real TLS: a CA, the api's certificate (localhost, 127.0.0.1)
//! and client certificates with chosen subject DNs.

use super::Larder;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use std::path::PathBuf;

pub struct TestPki {
    pub dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl TestPki {
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = dn(&[(DnType::CommonName, name)]);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Self { dir, ca }
    }

    /// The CA certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The api's certificate and key files.
    pub fn server(&self) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let (cert_file, key_file) = (
            self.dir.path().join("server.pem"),
            self.dir.path().join("server-key.pem"),
        );
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }

    /// A client certificate for `subject` (most significant first: `[(O, …), (CN, …)]`), as
    /// one PEM of certificate and key.
    pub fn client(&self, subject: &[(DnType, &str)]) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn(subject);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.ca).unwrap();
        format!("{}{}", cert.pem(), key.serialize_pem()).into_bytes()
    }

    /// An HTTP client that trusts this CA only and presents `identity` (a [`Self::client`]).
    pub fn http(&self, identity: Option<&[u8]>) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(self.ca()).unwrap()).unwrap();
        let mut builder = reqwest::Client::builder()
            .tls_certs_only([ca])
            .pool_idle_timeout(std::time::Duration::from_secs(2));
        if let Some(pem) = identity {
            builder = builder.identity(reqwest::Identity::from_pem(pem).unwrap());
        }
        builder.build().unwrap()
    }
}

fn dn(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (kind, value) in parts {
        dn.push(kind.clone(), *value);
    }
    dn
}

impl Larder {
    /// Serve HTTPS with `pki`'s certificate, verifying client certificates against its CA;
    /// the test's own client trusts that CA and presents no certificate.
    pub fn use_tls(&mut self, pki: &TestPki) {
        let (cert, key) = pki.server();
        let port = self.env["LARDER_LISTEN"]
            .rsplit(':')
            .next()
            .unwrap()
            .to_string();
        // 127.0.0.1, not localhost: the api listens on IPv4 only, and where /etc/hosts maps
        // localhost to ::1 too (stock Debian, containers) Debian's Node 18 tries ::1 alone
        self.url = format!("https://127.0.0.1:{port}");
        for (name, value) in [
            ("LARDER_TLS_CERT", cert.to_string_lossy().into_owned()),
            ("LARDER_TLS_KEY", key.to_string_lossy().into_owned()),
            (
                "LARDER_TLS_CLIENT_CA",
                pki.ca().to_string_lossy().into_owned(),
            ),
            (
                "LARDER_REPOS_CA_FILE",
                pki.ca().to_string_lossy().into_owned(),
            ),
            ("LARDER_PUBLIC_URL", self.url.clone()),
        ] {
            self.env.insert(name.into(), value);
        }
        self.http = pki.http(None);
    }
}
