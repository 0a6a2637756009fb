//! The crate's error type (start, reload, keys). Request-time failures never use it: they become
//! HTTP statuses in `handler.rs`.

use std::net::SocketAddr;

/// Why starting or reloading the gateway failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listener could not be bound.
    #[error("binding gateway instance {name} on {addr}: {source}")]
    Bind {
        /// The instance's name.
        name: String,
        /// The address it tried.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A JWT key or JWKS document could not be read or used.
    #[error("JWT key: {0}")]
    Key(String),
    /// A TLS listener's certificates, CA bundle or settings cannot be used.
    #[error("gateway instance {name}: TLS: {source}")]
    Tls {
        /// The instance's name.
        name: String,
        /// The file and reason.
        source: switchyard_tls::TlsError,
    },
    /// A configuration value the gateway cannot use.
    #[error("gateway config: {0}")]
    Config(String),
}
