//! The crate's error type.

use std::net::SocketAddr;

/// Everything that can go wrong building or running the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("zone {zone}: {msg}")]
    Zone { zone: String, msg: String },
    #[error("zone file: {0}")]
    ZoneFile(String),
    #[error("GSLB: {0}")]
    Gslb(String),
    #[error("geo database: {0}")]
    Geo(String),
    #[error("{0:?} is not a GSLB name")]
    UnknownName(String),
}
