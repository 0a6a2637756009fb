//! What can go wrong with certificate material, always naming the file and the reason.

use std::path::PathBuf;

/// A certificate, key or CA file that cannot be used. The message names the file and says why,
/// in words an operator can act on (these end up in `switchyard check`, reload errors and logs).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is read but its content is not usable.
    #[error("{}: {reason}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Why, e.g. "no CERTIFICATE block in PEM", "the key does not match the certificate".
        reason: String,
    },
    /// A configuration that rustls refuses (no certificate at all, bad ALPN, ...).
    #[error("{0}")]
    Config(String),
}

impl TlsError {
    pub(crate) fn invalid(file: &std::path::Path, reason: impl Into<String>) -> TlsError {
        TlsError::Invalid {
            file: file.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// The file the problem is in, when there is one.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            TlsError::Read { file, .. } | TlsError::Invalid { file, .. } => Some(file),
            TlsError::Config(_) => None,
        }
    }
}
