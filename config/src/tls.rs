//! TLS settings shared by every listener that terminates TLS (gateway HTTPS, DoT, DoH):
//! the certificate list `certs = [{ cert = "chain.pem", key = "key.pem" }, ...]` (the first is
//! the default for an unknown SNI), an ALPN list and an optional client-certificate CA bundle.
//! Paths relative to the configuration file are resolved by `World::resolve_paths`; the files
//! themselves are read by the TLS crate (and checked by `switchyard check`), not here.
#![allow(missing_docs)] // fields are the TOML keys of the same name, documented in docs/config.md

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::duration::{secs, HumanDuration};
use crate::error::Errors;

/// Raw `{ cert = "...", key = "..." }` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCert {
    pub cert: String,
    pub key: String,
}

/// A certificate chain file and its key file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertFile {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Raw TLS table of a listener (`tls = { certs = [...], ... }`); the gateway adds its own keys
/// around it (see `gateway::raw::RawGatewayTls`), DNS listeners theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub certs: Vec<RawCert>,
    /// ALPN protocols offered, in preference order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn: Option<Vec<String>>,
    /// CA bundle (PEM) that client certificates are verified against; asking for one only
    /// when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<String>,
    /// A TLS handshake must complete within this.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: HumanDuration,
    /// Sessions remembered for resumption (besides tickets, which cost no memory).
    #[serde(default = "default_session_cache")]
    pub session_cache: usize,
    /// Session-ticket keys shared with other appliances (one base64 key per line); unset: this
    /// process's own rotating key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_keys: Option<String>,
}

fn default_handshake_timeout() -> HumanDuration {
    secs(10)
}
fn default_session_cache() -> usize {
    4096
}

/// Validated TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub certs: Vec<CertFile>,
    pub alpn: Vec<String>,
    pub client_ca: Option<PathBuf>,
    pub handshake_timeout: Duration,
    pub session_cache: usize,
    pub ticket_keys: Option<PathBuf>,
}

impl RawTls {
    /// Validates a TLS table at `path` (e.g. `gateway.instances[0].tls`); `default_alpn` is the
    /// listener's protocol list when none is given.
    pub fn validate(&self, path: &str, default_alpn: &[&str], errs: &mut Errors) -> Tls {
        let certs = validate_certs(&self.certs, &format!("{path}.certs"), errs);
        let alpn = match &self.alpn {
            None => default_alpn.iter().map(|s| s.to_string()).collect(),
            Some(list) => {
                for (i, p) in list.iter().enumerate() {
                    if p.is_empty() || p.len() > 255 || !p.is_ascii() {
                        errs.push(
                            format!("{path}.alpn[{i}]"),
                            format!("{p:?} is not an ALPN protocol id (1 to 255 ASCII bytes)"),
                        );
                    }
                }
                list.clone()
            }
        };
        let client_ca = self.client_ca.as_ref().map(|s| {
            if s.is_empty() {
                errs.push(format!("{path}.client_ca"), "must name a PEM file");
            }
            PathBuf::from(s)
        });
        let ticket_keys = self.ticket_keys.as_ref().map(|s| {
            if s.is_empty() {
                errs.push(
                    format!("{path}.ticket_keys"),
                    "must name a key file (`openssl rand -base64 48 > tickets.key`)",
                );
            }
            PathBuf::from(s)
        });
        if self.handshake_timeout.0.is_zero() {
            errs.push(
                format!("{path}.handshake_timeout"),
                "must be greater than 0",
            );
        }
        Tls {
            certs,
            alpn,
            client_ca,
            handshake_timeout: self.handshake_timeout.0,
            session_cache: self.session_cache.max(1),
            ticket_keys,
        }
    }
}

/// Validates a certificate list at `path` (`...certs`): at least one entry, no empty path.
pub fn validate_certs(raw: &[RawCert], path: &str, errs: &mut Errors) -> Vec<CertFile> {
    if raw.is_empty() {
        errs.push(
            path,
            "give at least one certificate: [{ cert = \"chain.pem\", key = \"key.pem\" }]",
        );
    }
    raw.iter()
        .enumerate()
        .map(|(i, c)| {
            for (k, v) in [("cert", &c.cert), ("key", &c.key)] {
                if v.is_empty() {
                    errs.push(format!("{path}[{i}].{k}"), "must name a PEM file");
                }
            }
            CertFile {
                cert: PathBuf::from(&c.cert),
                key: PathBuf::from(&c.key),
            }
        })
        .collect()
}

impl Tls {
    /// Makes relative paths relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for c in &mut self.certs {
            fix(&mut c.cert);
            fix(&mut c.key);
        }
        if let Some(p) = &mut self.client_ca {
            fix(p);
        }
        if let Some(p) = &mut self.ticket_keys {
            fix(p);
        }
    }
}
