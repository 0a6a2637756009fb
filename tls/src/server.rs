//! The rustls `ServerConfig` every Switchyard TLS listener uses: TLS 1.2 and 1.3 only with
//! rustls' safe defaults, certificates from a [`CertStore`] (SNI), an ALPN list, session
//! resumption by tickets (rotating key) and a bounded session cache, and optionally client
//! certificates checked against a CA bundle.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use crate::{CertStore, TlsError};

/// Options of one TLS listener.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// ALPN protocols offered, in preference order (e.g. `h2`, `http/1.1`); empty: no ALPN.
    pub alpn: Vec<Vec<u8>>,
    /// Sessions remembered for resumption by id (TLS 1.2) and stateful TLS 1.3 resumption.
    pub session_cache: usize,
    /// Client certificates: a CA bundle (PEM) to verify them against. See [`ClientCertCheck`].
    pub client_ca: Option<PathBuf>,
    /// Session-ticket keys shared with other processes (see [`crate::ticket`]); `None`: this
    /// process's own rotating key.
    pub ticket_keys: Option<PathBuf>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            session_cache: 4096,
            client_ca: None,
            ticket_keys: None,
        }
    }
}

/// Builds a server config over `store`. With `client_ca`, clients are asked for a certificate
/// but the handshake never fails for want of a good one: the listener checks it afterwards with
/// the returned [`ClientCertCheck`] and the application decides (a route answers 401 rather than
/// the client seeing a TLS alert). The handshake still proves the client holds the key.
pub fn server_config(
    store: Arc<CertStore>,
    opts: &ServerOptions,
) -> Result<(Arc<ServerConfig>, Option<Arc<ClientCertCheck>>), TlsError> {
    let builder = ServerConfig::builder_with_provider(crate::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let (builder, check) = match &opts.client_ca {
        None => (builder.with_no_client_auth(), None),
        Some(ca) => {
            let check = Arc::new(ClientCertCheck::load(ca)?);
            (
                builder.with_client_cert_verifier(check.clone()),
                Some(check),
            )
        }
    };
    let mut cfg = builder.with_cert_resolver(store);
    cfg.alpn_protocols = opts.alpn.clone();
    cfg.session_storage = ServerSessionMemoryCache::new(opts.session_cache.max(1));
    cfg.ticketer = match &opts.ticket_keys {
        Some(file) => crate::ticket::file_ticketer(file, opts.client_ca.as_deref())?,
        None => crate::provider_ticketer(opts.client_ca.as_deref())
            .map_err(|e| TlsError::Config(e.to_string()))?,
    };
    // TLS 1.3: two tickets per full handshake (a browser opens parallel connections)
    cfg.send_tls13_tickets = 2;
    Ok((Arc::new(cfg), check))
}

/// What a client presented, checked against the listener's CA bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCert {
    /// No certificate.
    None,
    /// A certificate that does not verify (other CA, expired, wrong usage): the reason.
    Invalid(String),
    /// A certificate that verifies: its subject and names.
    Valid {
        /// Subject distinguished name (RFC 4514 text).
        subject: String,
        /// The subject's common name, when it has one.
        common_name: Option<String>,
        /// SAN DNS names, IP addresses, e-mail addresses and URIs.
        sans: Vec<String>,
    },
}

/// Verifies client certificates against a CA bundle after the handshake (see [`server_config`]).
#[derive(Debug)]
pub struct ClientCertCheck {
    inner: Arc<dyn ClientCertVerifier>,
    file: PathBuf,
}

impl ClientCertCheck {
    /// Reads a CA bundle (PEM, one or more certificates).
    pub fn load(file: &Path) -> Result<ClientCertCheck, TlsError> {
        let mut roots = RootCertStore::empty();
        for c in crate::cert::read_chain(file)? {
            roots.add(c).map_err(|e| {
                TlsError::invalid(file, format!("not a usable CA certificate: {e}"))
            })?;
        }
        let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::invalid(file, e.to_string()))?;
        Ok(ClientCertCheck {
            inner,
            file: file.to_path_buf(),
        })
    }

    /// The CA bundle file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Checks the chain a client presented (as `peer_certificates()` gives it).
    pub fn check(&self, chain: Option<&[CertificateDer<'static>]>) -> ClientCert {
        let Some((leaf, rest)) = chain.and_then(|c| c.split_first()) else {
            return ClientCert::None;
        };
        if let Err(e) = self.inner.verify_client_cert(leaf, rest, UnixTime::now()) {
            return ClientCert::Invalid(e.to_string());
        }
        match describe(leaf) {
            Some((subject, common_name, sans)) => ClientCert::Valid {
                subject,
                common_name,
                sans,
            },
            None => ClientCert::Invalid("unparsable certificate".into()),
        }
    }
}

fn describe(der: &CertificateDer<'_>) -> Option<(String, Option<String>, Vec<String>)> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .map(str::to_string);
    let mut sans = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                    sans.push(s.to_string())
                }
                _ => {}
            }
        }
    }
    Some((cert.subject().to_string(), cn, sans))
}

impl ClientCertVerifier for ClientCertCheck {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // decided after the handshake by `check` (the route answers, not a TLS alert)
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A client config for upstream TLS: server certificates verified against the CA bundle `ca`.
pub fn client_config(ca: &Path, alpn: Vec<Vec<u8>>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in crate::cert::read_chain(ca)? {
        roots
            .add(c)
            .map_err(|e| TlsError::invalid(ca, format!("not a usable CA certificate: {e}")))?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(crate::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn;
    Ok(Arc::new(cfg))
}
