//! The crate's error type: where a failure came from, with the address involved.
#![allow(missing_docs)] // each variant's `#[error]` message documents it and its fields

use std::io;
use std::net::SocketAddr;

/// Errors from starting or reloading the L4 balancer (per-connection failures are counted and
/// logged, never returned).
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    #[error("cannot bind listener {listener} on {addr}: {source}")]
    Bind {
        listener: String,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("listener {listener} refers to unknown pool {pool}")]
    UnknownPool { listener: String, pool: String },
    #[error("pool {pool} has no members")]
    EmptyPool { pool: String },
    #[error("invalid quick-mode arguments: {0}")]
    Args(String),
    #[error("cannot start worker threads: {0}")]
    Workers(#[source] io::Error),
    #[error("the balancer has shut down")]
    Stopped,
}
