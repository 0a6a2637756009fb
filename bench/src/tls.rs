//! `bench tls`: TLS handshakes per second, the way a browser that opens a new connection pays
//! for them. Each request is a new TCP connection, a TLS handshake (full, or with `--resume` a
//! resumption of a session an earlier connection got: TLS 1.3 tickets or TLS 1.2 session IDs and
//! tickets, as the server offers), one HTTP/1.1 request with `Connection: close`, and the answer
//! read to its end. The report splits each request into TCP connect, TLS handshake and TTFB, and
//! counts full and resumed handshakes.
//!
//! With `--resume` each worker keeps its own client session store (rustls' in-memory cache), so
//! a worker's first handshake is full and every later one offers the session its last connection
//! got; one that the server declines is counted as full (the report shows how many), so a server
//! without resumption is visible instead of silently measured as "resumed".

use crate::load::{ErrorKind, Timing, Worker};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, SignatureScheme};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

/// How to verify the server.
#[derive(Debug, Clone)]
pub enum Verify<'a> {
    /// Against the CA certificates in this PEM file.
    Ca(&'a Path),
    /// Not at all (`--insecure`): for load against a server whose CA is not at hand.
    Insecure,
}

/// The client configuration every worker shares; `Err` is for the user.
pub fn client_config(verify: Verify<'_>, resume: bool) -> Result<Arc<ClientConfig>, String> {
    let mut cfg = match verify {
        // the same CA reading (and errors) as the gateway's upstream TLS
        Verify::Ca(path) => (*switchyard_tls::server::client_config(path, Vec::new())
            .map_err(|e| e.to_string())?)
        .clone(),
        Verify::Insecure => {
            let provider = switchyard_tls::provider();
            ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS client: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth()
        }
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.resumption = if resume {
        Resumption::in_memory_sessions(1024)
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(cfg))
}

/// `--insecure`: accepts any certificate, still checks the handshake signature (so the key
/// exchange costs what it costs with verification).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `bench tls`: one new TLS connection per request.
pub struct TlsWorker {
    addr: SocketAddr,
    name: ServerName<'static>,
    connector: TlsConnector,
    /// The request, rendered once (`Connection: close`).
    request: Arc<Vec<u8>>,
    timeout: Duration,
    buf: Vec<u8>,
}

impl TlsWorker {
    /// A worker connecting to `addr`, sending `name` as SNI.
    pub fn new(
        addr: SocketAddr,
        name: ServerName<'static>,
        config: Arc<ClientConfig>,
        request: Arc<Vec<u8>>,
        timeout: Duration,
    ) -> Self {
        TlsWorker {
            addr,
            name,
            connector: TlsConnector::from(config),
            request,
            timeout,
            buf: vec![0; 16 * 1024],
        }
    }

    async fn once(&mut self, t: &mut Timing) -> Result<u16, ErrorKind> {
        let t0 = Instant::now();
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connect refused",
                _ => "connect error",
            })?;
        let _ = tcp.set_nodelay(true);
        let t1 = Instant::now();
        t.connect = Some(t1 - t0);
        let mut s = self
            .connector
            .connect(self.name.clone(), tcp)
            .await
            .map_err(
                |e| match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(rustls::Error::InvalidCertificate(_)) => "tls bad certificate",
                    Some(rustls::Error::AlertReceived(_)) => "tls alert",
                    _ => "tls handshake",
                },
            )?;
        let t2 = Instant::now();
        t.tls = Some(t2 - t1);
        t.resumed = s.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        s.write_all(&self.request)
            .await
            .map_err(|_| "write error")?;
        crate::http::read_to_close(&mut s, &mut self.buf, t, t2).await
    }
}

impl Worker for TlsWorker {
    async fn call(&mut self) -> Result<Timing, ErrorKind> {
        let mut t = Timing::default();
        match tokio::time::timeout(self.timeout, self.once(&mut t)).await {
            Ok(Ok(code)) if (200..300).contains(&code) => Ok(t),
            Ok(Ok(0)) => Err("http bad answer"),
            Ok(Ok(code)) => Err(crate::http::status_error(code)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("timeout"),
        }
    }
}
