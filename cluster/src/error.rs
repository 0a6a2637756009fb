//! The crate's one error type: where a failure came from, and whether retrying may help.
#![allow(missing_docs)] // each variant's `#[error]` message documents it and its fields

use std::time::Duration;

/// What went wrong talking to etcd or reading what it holds.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `etcd://` URL is malformed.
    #[error("bad etcd URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    /// No connection (refused, reset, unreachable): retry with back-off.
    #[error("etcd at {endpoint} is unreachable: {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// The request did not finish in time: retry with back-off.
    #[error("etcd at {endpoint} did not answer within {after:?}")]
    Timeout { endpoint: String, after: Duration },
    /// etcd answered with an error status or a body we cannot read.
    #[error("etcd at {endpoint} answered {call}: {reason}")]
    Protocol {
        endpoint: String,
        call: &'static str,
        reason: String,
    },
    /// A lease is gone (expired or revoked).
    #[error("lease {0:x} expired")]
    LeaseExpired(i64),
}

impl Error {
    /// True when the same request may succeed later (connection trouble, timeouts).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unreachable { .. } | Error::Timeout { .. })
    }
}
