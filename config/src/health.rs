//! Health checks, passive ejection and balancing policies: shared by L4 pools and service
//! upstreams (the gateway's internal balancer), so both sides read the same settings.
#![allow(missing_docs)] // fields and variants are the TOML keys and values of the same name, documented in docs/config.md

use crate::duration::{millis, secs, HumanDuration};
use crate::error::Errors;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a pool or service chooses a member inside an AZ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Smooth weighted round robin.
    #[default]
    RoundRobin,
    /// Fewest active connections (weighted).
    LeastConnections,
    /// Two random choices, the one with fewer active connections wins.
    PowerOfTwo,
    /// Consistent hashing on the client address (Maglev table).
    Maglev,
    /// Weighted random.
    Random,
}

/// Raw `[...health]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    /// `tcp`, `http` or `send_expect`.
    #[serde(rename = "type", default = "default_check_type")]
    pub kind: String,
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// Random extra delay, as a fraction of the interval (0.0 to 1.0), so checks do not align.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Consecutive successes that bring a down backend up.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures that take an up backend down.
    #[serde(default = "default_fall")]
    pub fall: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Inclusive range of accepted HTTP statuses, default `[200, 399]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<[u16; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
}

impl Default for RawHealthCheck {
    fn default() -> Self {
        RawHealthCheck {
            kind: default_check_type(),
            interval: default_interval(),
            jitter: default_jitter(),
            timeout: default_timeout(),
            rise: default_rise(),
            fall: default_fall(),
            method: None,
            path: None,
            host: None,
            expect_status: None,
            body_contains: None,
            send: None,
            expect: None,
        }
    }
}

fn default_check_type() -> String {
    "tcp".into()
}
fn default_interval() -> HumanDuration {
    secs(2)
}
fn default_jitter() -> f64 {
    0.1
}
fn default_timeout() -> HumanDuration {
    secs(1)
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}

/// What an active check does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// A TCP connect succeeds.
    Tcp,
    /// An HTTP/1.1 request answers with a status in range (and the body contains a substring).
    Http {
        method: String,
        path: String,
        host: Option<String>,
        expect_status: (u16, u16),
        body_contains: Option<String>,
    },
    /// Bytes are sent and the reply starts with (contains) the expected bytes.
    SendExpect { send: Vec<u8>, expect: Vec<u8> },
}

/// A validated active health check.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub kind: CheckKind,
    pub interval: Duration,
    /// Fraction of `interval` added at random to each wait (0.0..=1.0).
    pub jitter: f64,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

impl RawHealthCheck {
    /// Validates into a [`HealthCheck`], recording problems under `path`.
    pub fn validate(&self, path: &str, errs: &mut Errors) -> HealthCheck {
        if self.interval.0.is_zero() {
            errs.push(format!("{path}.interval"), "must be greater than zero");
        }
        if self.timeout.0.is_zero() {
            errs.push(format!("{path}.timeout"), "must be greater than zero");
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            errs.push(
                format!("{path}.jitter"),
                "must be between 0.0 and 1.0 (a fraction of the interval)",
            );
        }
        if self.rise == 0 {
            errs.push(format!("{path}.rise"), "must be at least 1");
        }
        if self.fall == 0 {
            errs.push(format!("{path}.fall"), "must be at least 1");
        }
        let kind = match self.kind.as_str() {
            "tcp" => CheckKind::Tcp,
            "http" => {
                let (lo, hi) = match self.expect_status {
                    Some([lo, hi]) => (lo, hi),
                    None => (200, 399),
                };
                if lo > hi || !(100..=599).contains(&lo) || !(100..=599).contains(&hi) {
                    errs.push(
                        format!("{path}.expect_status"),
                        format!(
                            "[{lo}, {hi}] is not a range of HTTP statuses (100..=599, low first)"
                        ),
                    );
                }
                let p = self.path.clone().unwrap_or_else(|| "/".into());
                if !p.starts_with('/') {
                    errs.push(format!("{path}.path"), "must start with '/'");
                }
                CheckKind::Http {
                    method: self.method.clone().unwrap_or_else(|| "GET".into()),
                    path: p,
                    host: self.host.clone(),
                    expect_status: (lo, hi),
                    body_contains: self.body_contains.clone(),
                }
            }
            "send_expect" => {
                if self.expect.as_deref().unwrap_or("").is_empty() {
                    errs.push(
                        format!("{path}.expect"),
                        "a send_expect check needs non-empty `expect` bytes",
                    );
                }
                CheckKind::SendExpect {
                    send: self.send.clone().unwrap_or_default().into_bytes(),
                    expect: self.expect.clone().unwrap_or_default().into_bytes(),
                }
            }
            other => {
                errs.push(
                    format!("{path}.type"),
                    format!("unknown health check type {other:?}; expected \"tcp\", \"http\" or \"send_expect\""),
                );
                CheckKind::Tcp
            }
        };
        HealthCheck {
            kind,
            interval: self.interval.0,
            jitter: self.jitter,
            timeout: self.timeout.0,
            rise: self.rise.max(1),
            fall: self.fall.max(1),
        }
    }
}

/// Raw `[...passive]` table: outlier ejection from real traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPassive {
    /// Consecutive connect failures or resets that eject a backend (0 disables).
    #[serde(default = "default_consecutive")]
    pub consecutive_failures: u32,
    /// How long an ejected backend stays out (doubles on repeated ejections, capped at 8x).
    #[serde(default = "default_ejection")]
    pub ejection: HumanDuration,
    /// At most this share of a pool may be ejected at once (percent).
    #[serde(default = "default_max_ejected")]
    pub max_ejected_percent: u8,
}

impl Default for RawPassive {
    fn default() -> Self {
        RawPassive {
            consecutive_failures: default_consecutive(),
            ejection: default_ejection(),
            max_ejected_percent: default_max_ejected(),
        }
    }
}

fn default_consecutive() -> u32 {
    5
}
fn default_ejection() -> HumanDuration {
    millis(10_000)
}
fn default_max_ejected() -> u8 {
    50
}

/// Validated passive-check settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passive {
    pub consecutive_failures: u32,
    pub ejection: Duration,
    pub max_ejected_percent: u8,
}

impl RawPassive {
    /// Validates into [`Passive`].
    pub fn validate(&self, path: &str, errs: &mut Errors) -> Passive {
        if self.max_ejected_percent > 100 {
            errs.push(
                format!("{path}.max_ejected_percent"),
                "must be between 0 and 100",
            );
        }
        Passive {
            consecutive_failures: self.consecutive_failures,
            ejection: self.ejection.0,
            max_ejected_percent: self.max_ejected_percent.min(100),
        }
    }
}
