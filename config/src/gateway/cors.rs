//! `[gateway.cors]`: cross-origin resource sharing for browser clients (the Fetch standard's
//! CORS protocol): which origins may call the API, with which methods and headers.
#![allow(missing_docs)] // fields and variants are the TOML keys and values of the same name, documented in docs/config.md

use crate::duration::{secs, HumanDuration};
use crate::error::Errors;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Raw `[gateway.cors]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    /// `scheme://host[:port]` origins, or `["*"]` for any.
    pub allow_origins: Vec<String>,
    #[serde(default = "default_methods")]
    pub allow_methods: Vec<String>,
    #[serde(default = "default_headers")]
    pub allow_headers: Vec<String>,
    /// Response headers a browser script may read beyond the safelisted ones.
    #[serde(default = "default_expose")]
    pub expose_headers: Vec<String>,
    /// Lets browsers send cookies / credentials (never with `*`).
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer.
    #[serde(default = "default_max_age")]
    pub max_age: HumanDuration,
}

fn default_methods() -> Vec<String> {
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        .map(String::from)
        .to_vec()
}
fn default_headers() -> Vec<String> {
    ["authorization", "content-type", "x-request-id"]
        .map(String::from)
        .to_vec()
}
fn default_expose() -> Vec<String> {
    vec!["x-request-id".into()]
}
fn default_max_age() -> HumanDuration {
    secs(600)
}

/// Validated CORS settings (origins lower-case, methods upper-case, headers lower-case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// `None`: any origin (`*`).
    pub allow_origins: Option<Vec<String>>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age: Duration,
}

impl RawCors {
    pub fn validate(&self, errs: &mut Errors) -> Cors {
        let p = "gateway.cors";
        let any = self.allow_origins.iter().any(|o| o == "*");
        if self.allow_origins.is_empty() {
            errs.push(
                format!("{p}.allow_origins"),
                "list the origins (scheme://host[:port]) or [\"*\"]",
            );
        }
        if any && self.allow_origins.len() > 1 {
            errs.push(
                format!("{p}.allow_origins"),
                "\"*\" allows every origin: list nothing else",
            );
        }
        if any && self.allow_credentials {
            errs.push(
                format!("{p}.allow_credentials"),
                "browsers refuse credentials with allow_origins = [\"*\"]: list the origins",
            );
        }
        for (i, o) in self.allow_origins.iter().enumerate() {
            if o != "*" && !is_origin(o) {
                errs.push(
                    format!("{p}.allow_origins[{i}]"),
                    format!("{o:?} is not an origin (scheme://host[:port], no path)"),
                );
            }
        }
        for (i, m) in self.allow_methods.iter().enumerate() {
            if m.is_empty() || !m.bytes().all(is_token) {
                errs.push(
                    format!("{p}.allow_methods[{i}]"),
                    format!("{m:?} is not a method"),
                );
            }
        }
        for (key, list) in [
            ("allow_headers", &self.allow_headers),
            ("expose_headers", &self.expose_headers),
        ] {
            for (i, h) in list.iter().enumerate() {
                if h.is_empty() || !h.bytes().all(is_token) {
                    errs.push(
                        format!("{p}.{key}[{i}]"),
                        format!("{h:?} is not a header name"),
                    );
                }
            }
        }
        let lower = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect();
        Cors {
            allow_origins: (!any).then(|| lower(&self.allow_origins)),
            allow_methods: self
                .allow_methods
                .iter()
                .map(|m| m.to_ascii_uppercase())
                .collect(),
            allow_headers: lower(&self.allow_headers),
            expose_headers: lower(&self.expose_headers),
            allow_credentials: self.allow_credentials,
            max_age: self.max_age.0,
        }
    }
}

/// `scheme://host[:port]` with nothing after it.
fn is_origin(o: &str) -> bool {
    let Some((scheme, rest)) = o.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

/// An RFC 9110 token character.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
