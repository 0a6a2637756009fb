//! The crate's error type.

use std::net::SocketAddr;

/// Everything that can go wrong building or running the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listen address could not be bound (UDP or TCP).
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address of `[dns] listen`.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A zone is invalid (bad records, DNSSEC keys, a GSLB name outside every zone).
    #[error("zone {zone}: {msg}")]
    Zone {
        /// The zone's origin (or the GSLB name that fits no zone).
        zone: String,
        /// What is wrong.
        msg: String,
    },
    /// A zone file could not be read or parsed.
    #[error("zone file: {0}")]
    ZoneFile(String),
    /// A GSLB name could not be built.
    #[error("GSLB: {0}")]
    Gslb(String),
    /// The geo database could not be opened or is unknown.
    #[error("geo database: {0}")]
    Geo(String),
    /// A DoT/DoH certificate could not be loaded, or the TLS configuration built.
    #[error("{listener}: {msg}")]
    Tls {
        /// `dns.tls` or `dns.https`.
        listener: &'static str,
        /// What is wrong (the file and the reason).
        msg: String,
    },
    /// `explain` was asked about a name that is not a GSLB name.
    #[error("{0:?} is not a GSLB name")]
    UnknownName(String),
}
