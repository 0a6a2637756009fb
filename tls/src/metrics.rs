//! TLS metrics shared by every listener (labels: `listener`), so the gateway, DoT and DoH show
//! the same series: handshakes by kind, version and ALPN, failures by reason, and seconds to
//! expiry per certificate.

use std::sync::Arc;

use rustls::ServerConnection;

use crate::CertStore;

/// Counter: completed handshakes (`listener`, `kind` = full|resumed, `version`, `alpn`).
pub const HANDSHAKES: &str = "switchyard_tls_handshakes_total";
/// Counter: failed handshakes (`listener`, `reason`).
pub const HANDSHAKE_FAILURES: &str = "switchyard_tls_handshake_failures_total";
/// Gauge: seconds until a certificate expires (`listener`, `cert` = file, `names`).
pub const CERT_EXPIRY: &str = "switchyard_tls_certificate_expiry_seconds";

/// Registers descriptions (idempotent).
pub fn describe() {
    metrics::describe_counter!(
        HANDSHAKES,
        "TLS handshakes completed, by kind, version and ALPN"
    );
    metrics::describe_counter!(HANDSHAKE_FAILURES, "TLS handshakes failed, by reason");
    metrics::describe_gauge!(CERT_EXPIRY, "Seconds until the certificate expires");
}

/// Counts a completed handshake.
pub fn handshake_done(listener: &Arc<str>, conn: &ServerConnection) {
    let kind = match conn.handshake_kind() {
        Some(rustls::HandshakeKind::Resumed) => "resumed",
        _ => "full",
    };
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        _ => "other",
    };
    let alpn = match conn.alpn_protocol() {
        Some(b"h2") => "h2",
        Some(b"http/1.1") => "http/1.1",
        Some(b"dot") => "dot",
        Some(_) => "other",
        None => "none",
    };
    metrics::counter!(HANDSHAKES, "listener" => listener.clone(), "kind" => kind, "version" => version, "alpn" => alpn)
        .increment(1);
}

/// Counts a failed handshake; `err` is what the TLS acceptor returned (`None`: timed out).
pub fn handshake_failed(listener: &Arc<str>, err: Option<&std::io::Error>) {
    metrics::counter!(HANDSHAKE_FAILURES, "listener" => listener.clone(), "reason" => failure_reason(err))
        .increment(1);
}

/// A short, bounded label for why a handshake failed.
pub fn failure_reason(err: Option<&std::io::Error>) -> &'static str {
    let Some(err) = err else { return "timeout" };
    let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return match err.kind() {
            std::io::ErrorKind::UnexpectedEof => "eof",
            std::io::ErrorKind::InvalidData => "not_tls",
            _ => "io",
        };
    };
    use rustls::{Error, PeerIncompatible, PeerMisbehaved};
    match tls {
        Error::PeerIncompatible(PeerIncompatible::ServerDoesNotSupportTls12Or13)
        | Error::PeerIncompatible(PeerIncompatible::Tls12NotOfferedOrEnabled)
        | Error::PeerIncompatible(PeerIncompatible::SupportedVersionsExtensionRequired) => {
            "protocol_version"
        }
        Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon) => "no_cipher",
        Error::PeerIncompatible(PeerIncompatible::NoKxGroupsInCommon) => "no_group",
        Error::NoApplicationProtocol => "no_alpn",
        Error::PeerIncompatible(_) => "incompatible",
        Error::PeerMisbehaved(PeerMisbehaved::MissingKeyShare) => "misbehaved",
        Error::PeerMisbehaved(_) => "misbehaved",
        Error::AlertReceived(_) => "alert_received",
        Error::InvalidCertificate(_) => "bad_certificate",
        Error::InvalidMessage(_) => "invalid_message",
        _ => "other",
    }
}

/// Sets the expiry gauges of a store's certificates (call every few seconds: the gauge is
/// seconds from now).
pub fn publish_expiry(listener: &Arc<str>, store: &CertStore) {
    let now = crate::unix_now();
    for c in store.infos() {
        metrics::gauge!(CERT_EXPIRY,
            "listener" => listener.clone(),
            "cert" => c.file.display().to_string(),
            "names" => c.names.join(","))
        .set(c.seconds_left(now) as f64);
    }
}
