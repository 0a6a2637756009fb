//! TLS for every Switchyard listener (gateway HTTPS, DoT, DoH): certificates from PEM files,
//! chosen by SNI, reloadable without dropping a connection, served by one rustls configuration.
//!
//! ## Crypto provider: aws-lc-rs
//! Chosen by measurement (`rustls` in memory, client and server in one thread, full TLS 1.3
//! handshakes with an ECDSA P-256 certificate, X25519, release build, this machine):
//! server CPU per handshake (thread CPU time, 4 runs of 3,000 on a shared 2-core machine) was
//! 124-150 µs with aws-lc-rs against 140-172 µs with ring (aws-lc-rs about 10 % cheaper, the
//! gap mostly ECDSA signing and X25519). Both are far below the issue's bound of 0.5× HAProxy +
//! OpenSSL 3.0 (571 µs per handshake → 285 µs). aws-lc-rs also generates RSA keys (rcgen, the
//! demo CA and tests), which ring cannot.
//!
//! ## API for other listeners
//! ```text
//! let store = CertStore::load(vec![CertSource { cert, key }, ...])?;   // first = default
//! let (cfg, mtls) = server_config(store.clone(), &ServerOptions { alpn, ..Default::default() })?;
//! let acceptor = tokio_rustls::TlsAcceptor::from(cfg);                 // per listener, once
//! // per connection: timeout(acceptor.accept(tcp)); then metrics::handshake_done / _failed
//! // on SIGHUP / admin reload:  store.reload()  (Err: old certificates stay; the error names
//! //                             the file and the reason)
//! // every few seconds:         store.reload_if_changed(); metrics::publish_expiry(..)
//! // status:                    store.infos()  (names, subject, not_after per certificate)
//! ```
//! [`check::check`] validates files for `switchyard check`; [`demo::DemoCa`] issues test and
//! demo certificates; [`server::client_config`] is the upstream (client) side.
//!
//! ## Modules
//! [`cert`] (PEM → chain + key, names, expiry), [`resolver`] (SNI table), [`store`] (reload),
//! [`server`] (rustls `ServerConfig`, client certificates), [`metrics`], [`check`], [`demo`].

pub mod cert;
pub mod check;
pub mod demo;
pub mod error;
pub mod metrics;
pub mod resolver;
pub mod server;
pub mod store;
pub mod ticket;

use std::sync::Arc;

pub use cert::{CertInfo, CertSource, LoadedCert};
pub use error::TlsError;
pub use rustls;
pub use server::{server_config, ClientCert, ClientCertCheck, ServerOptions};
pub use store::CertStore;

/// The crypto provider every Switchyard TLS endpoint uses (see the header for why).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static P: std::sync::OnceLock<Arc<rustls::crypto::CryptoProvider>> = std::sync::OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// The session-ticket producer (the provider's, its key rotating every six hours) of every TLS
/// listener of this process with the same client-certificate CA (`None`: no client
/// certificates). Shared so that a ticket one gateway instance issued resumes on another behind
/// the same VIP (the L4 balancer spreads a client's connections over the AZs' gateways: with a
/// key per instance half the resumptions failed); kept apart per CA so a session whose client
/// certificate one listener verified never resumes on a listener that trusts another CA.
pub(crate) fn provider_ticketer(
    client_ca: Option<&std::path::Path>,
) -> Result<Arc<dyn rustls::server::ProducesTickets>, rustls::Error> {
    type Shared = std::collections::HashMap<
        Option<std::path::PathBuf>,
        Arc<dyn rustls::server::ProducesTickets>,
    >;
    static T: std::sync::Mutex<Option<Shared>> = std::sync::Mutex::new(None);
    let mut map = T.lock().unwrap_or_else(|p| p.into_inner());
    let map = map.get_or_insert_with(Default::default);
    let key = client_ca.map(|p| p.to_path_buf());
    if let Some(t) = map.get(&key) {
        return Ok(t.clone());
    }
    let t = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    map.insert(key, t.clone());
    Ok(t)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
