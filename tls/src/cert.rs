//! One certificate chain + private key loaded from PEM files (rustls-pki-types' PEM parser), with
//! the facts operators ask about: the names it covers, its subject and its expiry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::TlsError;

/// Where a certificate chain and its key are read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertSource {
    /// PEM file: the leaf certificate first, then its intermediates.
    pub cert: PathBuf,
    /// PEM file: the private key (PKCS#8, SEC1 or PKCS#1; ECDSA P-256/P-384, Ed25519 or RSA).
    pub key: PathBuf,
}

/// What a loaded certificate covers (what `/status`, metrics and `check` show).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The certificate file.
    pub file: PathBuf,
    /// DNS names (SAN, lower case; `*.example.test` for wildcards) and IP addresses it covers.
    pub names: Vec<String>,
    /// The subject distinguished name (RFC 4514 text).
    pub subject: String,
    /// Not valid before (Unix seconds).
    pub not_before: i64,
    /// Not valid after (Unix seconds).
    pub not_after: i64,
}

impl CertInfo {
    /// Seconds until expiry from `now` (Unix seconds); negative once expired.
    pub fn seconds_left(&self, now: i64) -> i64 {
        self.not_after - now
    }
}

/// A certificate chain with its signing key, ready for rustls.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    /// What the leaf covers.
    pub info: CertInfo,
    /// The chain and key.
    pub key: Arc<CertifiedKey>,
}

/// Reads all certificates of a PEM file (leaf first).
pub fn read_chain(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(file)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::invalid(file, format!("not valid PEM: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::invalid(
            file,
            "no CERTIFICATE block (expected a PEM certificate chain, leaf first)",
        ));
    }
    Ok(chain)
}

/// Reads the first private key of a PEM file.
pub fn read_key(file: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(file)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::invalid(
            file,
            "no PRIVATE KEY block (expected PKCS#8, EC or RSA private key in PEM)",
        ),
        e => TlsError::invalid(file, format!("not a valid PEM private key: {e}")),
    })
}

fn read(file: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(file).map_err(|source| TlsError::Read {
        file: file.to_path_buf(),
        source,
    })
}

/// Loads a chain and its key: both parsed, the key usable by the crypto provider and matching
/// the leaf certificate.
pub fn load(src: &CertSource) -> Result<LoadedCert, TlsError> {
    let chain = read_chain(&src.cert)?;
    let info = inspect(&src.cert, &chain[0])?;
    let key = read_key(&src.key)?;
    let signing = crate::provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::invalid(&src.key, format!("unsupported private key: {e}")))?;
    let ck = CertifiedKey::new(chain, signing);
    match ck.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::invalid(
                &src.key,
                format!(
                    "the key does not match the certificate in {}",
                    src.cert.display()
                ),
            ))
        }
        Err(e) => return Err(TlsError::invalid(&src.cert, e.to_string())),
    }
    Ok(LoadedCert {
        info,
        key: Arc::new(ck),
    })
}

/// Names, subject and validity of a DER certificate (`file` only names it in errors).
pub fn inspect(file: &Path, der: &CertificateDer<'_>) -> Result<CertInfo, TlsError> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| TlsError::invalid(file, format!("not an X.509 certificate: {e}")))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(b) => {
                    if let Some(ip) = ip_from(b) {
                        names.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    if names.is_empty() {
        // no SAN: the common name is all there is (clients ignore it, but show it)
        for cn in cert.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                names.push(s.to_ascii_lowercase());
            }
        }
    }
    let validity = cert.validity();
    Ok(CertInfo {
        file: file.to_path_buf(),
        names,
        subject: cert.subject().to_string(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

fn ip_from(b: &[u8]) -> Option<std::net::IpAddr> {
    match b.len() {
        4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}
