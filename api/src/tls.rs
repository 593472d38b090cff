//! HTTPS for the api (`LARDER_TLS_CERT`, `LARDER_TLS_KEY`) and the client certificates it
//! verifies against `LARDER_TLS_CLIENT_CA`: a verified certificate's subject DN is the caller,
//! as `SSL_CLIENT_S_DN` was behind Cachito's httpd.

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use common::Config;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The subject DN (RFC 4514) of the verified client certificate of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientDn(pub String);

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {file}: {reason}")]
    Read { file: PathBuf, reason: String },
    #[error("{0} holds no PEM certificate")]
    NoCertificate(PathBuf),
    #[error("the TLS certificate and key are not usable: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("LARDER_TLS_CLIENT_CA is not usable: {0}")]
    ClientCa(String),
}

/// The server's TLS configuration, or `None` when the api speaks plain HTTP.
pub fn server_config(config: &Config) -> Result<Option<rustls::ServerConfig>, TlsSetupError> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsSetupError::Read {
        file: key.clone(),
        reason: e.to_string(),
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &config.tls_client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| TlsSetupError::ClientCa(format!("{}: {e}", ca.display())))?;
            }
            // asked for, not required: tokens and anonymous reads still work without one
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| TlsSetupError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // actix sets the ALPN protocols it speaks
    Ok(Some(builder.with_single_cert(chain, key)?))
}

fn certificates(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let read = |e: rustls::pki_types::pem::Error| TlsSetupError::Read {
        file: file.to_path_buf(),
        reason: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate(file.to_path_buf()));
    }
    Ok(certs)
}

/// `HttpServer::on_connect`: keep the subject of a verified client certificate with the
/// connection (rustls only hands back certificates it verified).
pub fn on_connect(conn: &dyn Any, data: &mut Extensions) {
    let Some(tls) = conn.downcast_ref::<TlsStream<TcpStream>>() else {
        return;
    };
    let (_, session) = tls.get_ref();
    if let Some(dn) = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| subject_dn(leaf))
    {
        data.insert(ClientDn(dn));
    }
}

/// A certificate's subject as RFC 4514 writes it (httpd's `SSL_CLIENT_S_DN`): the last RDN
/// first, `,` between RDNs, `+` within one.
pub fn subject_dn(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut rdns: Vec<String> = cert
        .subject()
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    let name = short_name(&oid);
                    match (name, attribute_text(atv)) {
                        (Some(name), Some(text)) => format!("{name}={}", escape(&text)),
                        _ => format!("{oid}=#{}", hex::encode(attribute_der(atv))),
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.reverse();
    Some(rdns.join(","))
}

/// RFC 4514 §3's names (and the ones OpenSSL prints the same way).
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "2.5.4.5" => "serialNumber",
        _ => return None,
    })
}

fn attribute_text(atv: &x509_parser::x509::AttributeTypeAndValue<'_>) -> Option<String> {
    use x509_parser::der_parser::asn1_rs::Tag;
    let value = atv.attr_value();
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::NumericString => {
            std::str::from_utf8(value.data).ok().map(str::to_string)
        }
        Tag::BmpString => {
            let units: Vec<u16> = value
                .data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        // TeletexString as OpenSSL shows it: one byte, one character
        Tag::T61String => Some(value.data.iter().map(|&b| char::from(b)).collect()),
        _ => None,
    }
}

fn attribute_der(atv: &x509_parser::x509::AttributeTypeAndValue<'_>) -> Vec<u8> {
    use x509_parser::der_parser::asn1_rs::ToDer;
    atv.attr_value().to_der_vec().unwrap_or_default()
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_rfc_4514_says() {
        assert_eq!(escape("osbs"), "osbs");
        assert_eq!(escape("Example, Inc."), "Example\\, Inc.");
        assert_eq!(escape("#1 "), "\\#1\\ ");
        assert_eq!(escape(" a+b;c<d>\"e\\"), "\\ a\\+b\\;c\\<d\\>\\\"e\\\\");
        assert_eq!(escape("a\u{0}b"), "a\\00b");
    }

    #[test]
    fn a_subject_reads_last_rdn_first() {
        use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "US");
        dn.push(DnType::OrganizationName, "Example, Inc.");
        dn.push(DnType::CommonName, "osbs");
        params.distinguished_name = dn;
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        assert_eq!(
            subject_dn(cert.der()).unwrap(),
            "CN=osbs,O=Example\\, Inc.,C=US"
        );
        assert_eq!(subject_dn(b"not a certificate"), None);
    }
}
