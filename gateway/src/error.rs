//! The crate's error type (start, reload, keys). Request-time failures never use it: they become
//! HTTP statuses in `handler.rs`.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding gateway instance {name} on {addr}: {source}")]
    Bind {
        name: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("JWT key: {0}")]
    Key(String),
    #[error("gateway config: {0}")]
    Config(String),
}
