//! What a drill records: one [`Sample`] per client request, the health changes the admin API
//! showed, what DNS answered each client group over time, and when each step ran. All times are
//! milliseconds since the load started. Plain data: the analysis works on it without I/O.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// One client request, as the client saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Sample {
    /// When the request started (DNS lookup included when the cache had expired).
    pub t_ms: u64,
    pub latency_ms: u64,
    /// Client group (`us`, `eu`) and client index inside it.
    pub group: String,
    pub client: u32,
    /// The region whose VIP DNS gave this client (None: DNS failed or answered an unknown address).
    pub dns_region: Option<String>,
    /// When the client fetched the DNS answer it used (None: DNS skipped or failed).
    pub resolved_ms: Option<u64>,
    pub vip: Option<IpAddr>,
    pub status: Option<u16>,
    /// Error kind when the request failed (`connect_refused`, `reset`, `timeout`, `http_503`...).
    pub error: Option<String>,
    /// Who served it, from the answer's JSON.
    pub instance: Option<String>,
    pub region: Option<String>,
    pub az: Option<String>,
}

impl Sample {
    pub(crate) fn ok(&self) -> bool {
        self.error.is_none()
    }

    pub(crate) fn end_ms(&self) -> u64 {
        self.t_ms + self.latency_ms
    }
}

/// A health field of one instance changed in the admin API's `/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct HealthChange {
    pub t_ms: u64,
    pub name: String,
    /// `health` (overall) or `active_check`.
    pub field: String,
    pub from: String,
    pub to: String,
}

impl HealthChange {
    /// A real up/down transition (not the first result after `unchecked`).
    pub(crate) fn is_transition(&self) -> bool {
        matches!(
            (self.from.as_str(), self.to.as_str()),
            ("up", "down") | ("down", "up")
        )
    }
}

/// What DNS answered a client group (recorded at the first probe and on every change).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct DnsAnswer {
    pub t_ms: u64,
    pub group: String,
    pub answers: Vec<IpAddr>,
    /// Region of the first answer.
    pub region: Option<String>,
    pub ttl_s: u32,
    pub error: Option<String>,
}

/// A step as it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct StepRun {
    /// Planned offset.
    pub at_ms: u64,
    /// When the admin request was sent, and when it was answered.
    pub t_ms: u64,
    pub done_ms: u64,
    pub label: String,
    /// Instance stopped/started (for outage accounting), if a stop/start step.
    pub instance: Option<String>,
    pub stop: bool,
    pub start: bool,
    pub fault: bool,
    pub recover: bool,
    pub error: Option<String>,
}

/// Active health check parameters of one instance (for damping bounds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct CheckParams {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub jitter: f64,
    pub rise: u32,
    pub fall: u32,
}

/// Everything one drill observed.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Observations {
    pub duration_ms: u64,
    /// Interval between two requests of one client.
    pub client_interval_ms: u64,
    pub samples: Vec<Sample>,
    pub health: Vec<HealthChange>,
    pub dns: Vec<DnsAnswer>,
    pub steps: Vec<StepRun>,
    #[serde(skip)]
    pub checks: BTreeMap<String, CheckParams>,
    /// Instances the node actively health-checks (an `active_check` verdict other than
    /// `unchecked` appeared in `/status`).
    pub checked: BTreeSet<String>,
    /// Total requests per second the clients were asked to send.
    pub rate: u32,
    /// What the drill found after undoing its steps (None: no steps, or not checked).
    pub restore: Option<Restore>,
    /// Clients resolved through a caching resolver (its TTLs count down in whole seconds).
    pub resolver: bool,
}

/// The "left as found" check after a drill: the node's state before the drill against the
/// state after the undo steps (and the wait for the node to settle).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Restore {
    /// How long the drill waited for the node to look as before.
    pub waited_ms: u64,
    /// Passive ejections the drill lifted (`restore instance NAME`).
    pub lifted: Vec<String>,
    /// What still differs (`user-us-east-a: ejected (was up)`); empty when restored.
    pub differences: Vec<String>,
}

impl Observations {
    /// When the fault began (the fault step was sent); None without steps.
    pub(crate) fn fault_ms(&self) -> Option<u64> {
        self.steps.iter().find(|s| s.fault).map(|s| s.t_ms)
    }

    /// When the fault ended (the recovery step was sent), else the end of the drill.
    pub(crate) fn recover_ms(&self) -> u64 {
        self.steps
            .iter()
            .find(|s| s.recover)
            .map(|s| s.t_ms)
            .unwrap_or(self.duration_ms)
    }

    /// The first up/down health change at or after the fault. When steps stopped instances for
    /// real, only their changes count (a `fail` lever changes health at once: nothing to detect).
    pub(crate) fn detection(&self) -> Option<&HealthChange> {
        let fault = self.fault_ms()?;
        let stopped: BTreeSet<&str> = self
            .steps
            .iter()
            .filter(|s| s.stop)
            .filter_map(|s| s.instance.as_deref())
            .collect();
        self.health
            .iter()
            .filter(|h| h.field == "health" && h.is_transition() && h.t_ms >= fault)
            .filter(|h| stopped.is_empty() || stopped.contains(h.name.as_str()))
            .min_by_key(|h| h.t_ms)
    }
}
