//! The validated scenario model: clients, timed steps and their actions, expectations, and how
//! each is labelled for humans and serialized into the JSON report.

use super::secs;
use serde::Serialize;
use std::net::IpAddr;
use std::time::Duration;

/// A validated scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Scenario {
    pub name: String,
    pub description: String,
    /// How long the load runs (steps must fall inside).
    #[serde(with = "ms")]
    pub duration: Duration,
    /// Total requests per second over all clients.
    pub rate: u32,
    /// Request path sent through the gateway.
    pub path: String,
    pub clients: Vec<ClientGroup>,
    pub steps: Vec<Step>,
    pub expect: Vec<Expectation>,
}

/// A group of clients posing as users from one place (through EDNS Client Subnet).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ClientGroup {
    pub name: String,
    /// The ECS subnet sent with every DNS query, e.g. `216.160.83.56/29`.
    pub ecs: Subnet,
    /// Number of independent clients (each with its own DNS cache).
    pub count: u32,
}

/// An address prefix (`addr/len`) as sent in EDNS Client Subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subnet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl std::str::FromStr for Subnet {
    type Err = String;
    fn from_str(s: &str) -> Result<Subnet, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a subnet; write e.g. \"216.160.83.56/29\""))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("{p:?} is not a prefix length (0..={max})"))?;
        Ok(Subnet { addr, prefix })
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub(crate) enum Action {
    /// Stop a demo instance for real (listener closed, connections reset).
    Stop { instance: String },
    /// Start a stopped demo instance again.
    Start { instance: String },
    /// Admin API lever on a region, AZ or instance.
    Admin {
        verb: AdminVerb,
        kind: TargetKind,
        name: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AdminVerb {
    Drain,
    Undrain,
    Fail,
    Restore,
}

impl AdminVerb {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AdminVerb::Drain => "drain",
            AdminVerb::Undrain => "undrain",
            AdminVerb::Fail => "fail",
            AdminVerb::Restore => "restore",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TargetKind {
    Region,
    Az,
    Instance,
}

impl TargetKind {
    /// The admin API path segment.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            TargetKind::Region => "regions",
            TargetKind::Az => "azs",
            TargetKind::Instance => "instances",
        }
    }
}

impl Action {
    /// Human label, e.g. `stop user-us-east-a`, `drain az us-east-a`.
    pub(crate) fn label(&self) -> String {
        match self {
            Action::Stop { instance } => format!("stop {instance}"),
            Action::Start { instance } => format!("start {instance}"),
            Action::Admin { verb, kind, name } => {
                let k = match kind {
                    TargetKind::Region => "region",
                    TargetKind::Az => "az",
                    TargetKind::Instance => "instance",
                };
                format!("{} {k} {name}", verb.as_str())
            }
        }
    }

    /// The action that undoes this one (used to leave the world as it was found).
    pub(crate) fn undo(&self) -> Option<Action> {
        Some(match self {
            Action::Stop { instance } => Action::Start {
                instance: instance.clone(),
            },
            Action::Admin { verb, kind, name } => Action::Admin {
                verb: match verb {
                    AdminVerb::Drain => AdminVerb::Undrain,
                    AdminVerb::Fail => AdminVerb::Restore,
                    AdminVerb::Undrain | AdminVerb::Restore => return None,
                },
                kind: *kind,
                name: name.clone(),
            },
            Action::Start { .. } => return None,
        })
    }
}

/// One timed step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Step {
    /// Offset from the start of the load.
    #[serde(with = "ms")]
    pub at: Duration,
    #[serde(flatten)]
    pub action: Action,
    /// Marks the moment the fault begins (timing is measured from here).
    pub fault: bool,
    /// Marks the moment the fault ends.
    pub recover: bool,
}

/// What must hold. Times are measured from the fault step unless said otherwise.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Expectation {
    /// At most `max` client requests (started in `window`) fail.
    MaxFailed { max: u64, window: Window },
    /// The first health change after the fault is seen within `within`.
    DetectWithin {
        #[serde(with = "ms")]
        within: Duration,
    },
    /// Requests lost: at most those in flight when the fault began, and none started after detection.
    LostAtMostInFlight,
    /// From fault + `within` until recovery, every request succeeds and none is served by `target`.
    MovedAway {
        target: Served,
        #[serde(with = "ms")]
        within: Duration,
    },
    /// DNS stops answering `clients` with the region it gave before the fault within `within`.
    DnsMoves {
        clients: String,
        #[serde(with = "ms")]
        within: Duration,
    },
    /// After DNS moved, every `clients` request reaches the new region within `within`
    /// (None: the answer's TTL plus one request interval, what a caching resolver allows).
    ClientsFollow {
        clients: String,
        #[serde(with = "ms_opt")]
        within: Option<Duration>,
    },
    /// The instance's health changes at most `max` times (None: what rise/fall allow for the
    /// outages the steps actually caused).
    MaxHealthChanges { instance: String, max: Option<u32> },
    /// Every failure after the fault is one DNS caching explains: a `clients` request on the old
    /// region's answer, fetched before DNS moved and used within its TTL (see `ttl.rs`).
    FailuresWithinTtl { clients: String },
    /// Every request that failed during the fault is explained: it started within detection +
    /// what clients need to follow (one request interval, or the DNS TTL when DNS moved them) of
    /// a stop or fail step, and there are at most `max` of them (None: the request rate × the
    /// explained time). Added to every scenario with a fault.
    FailureBudget { max: Option<u64> },
    /// The "after" phase: from recovery + `within` to the end, every AZ and instance that served
    /// before the fault serves again and no request fails (None: filled in from the world's
    /// rise times and TTL). Added to every scenario with a recovery step.
    Recovers {
        #[serde(with = "ms_opt")]
        within: Option<Duration>,
    },
    /// After the drill undid its steps, the node's `/status` is back to what it was before the
    /// drill (health, admin state, no passive ejections, demo instances running). Added to every
    /// scenario with steps.
    RestoredAsFound,
}

/// Which served requests a `moved_away` expectation is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Served {
    Region(String),
    Az(String),
    Instance(String),
}

impl Served {
    pub(crate) fn label(&self) -> String {
        match self {
            Served::Region(n) => format!("region {n}"),
            Served::Az(n) => format!("az {n}"),
            Served::Instance(n) => format!("instance {n}"),
        }
    }
}

/// A window of the drill, by request start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Window {
    /// The whole drill.
    All,
    /// Before the fault step.
    BeforeFault,
    /// From the fault to the recovery step (or the end).
    Fault,
    /// From the first health change after the fault to the end.
    AfterDetect,
    /// From the recovery step to the end.
    AfterRecover,
    /// Outside the fault window: before the fault and after recovery.
    OutsideFault,
}

impl Window {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Window::All => "all",
            Window::BeforeFault => "before_fault",
            Window::Fault => "fault",
            Window::AfterDetect => "after_detect",
            Window::AfterRecover => "after_recover",
            Window::OutsideFault => "outside_fault",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Window> {
        Some(match s {
            "all" => Window::All,
            "before_fault" => Window::BeforeFault,
            "fault" => Window::Fault,
            "after_detect" => Window::AfterDetect,
            "after_recover" => Window::AfterRecover,
            "outside_fault" => Window::OutsideFault,
            _ => return None,
        })
    }
}

impl Expectation {
    /// One line saying what is expected.
    pub(crate) fn describe(&self) -> String {
        match self {
            Expectation::MaxFailed { max, window } => {
                format!("at most {max} failed requests (window {})", window.as_str())
            }
            Expectation::DetectWithin { within } => {
                format!("health change detected within {}", secs(*within))
            }
            Expectation::LostAtMostInFlight => {
                "lose at most the requests in flight at the fault, none after detection".into()
            }
            Expectation::MovedAway { target, within } => format!(
                "no request served by {} and none failed from fault + {} to recovery",
                target.label(),
                secs(*within)
            ),
            Expectation::DnsMoves { clients, within } => {
                format!("DNS moves {clients} clients within {}", secs(*within))
            }
            Expectation::ClientsFollow { clients, within } => match within {
                Some(w) => format!("{clients} clients follow DNS within {}", secs(*w)),
                None => format!("{clients} clients follow DNS within one TTL"),
            },
            Expectation::FailuresWithinTtl { clients } => format!(
                "every failure explained by DNS caching: {clients} clients on the old answer, within detection + TTL"
            ),
            Expectation::MaxHealthChanges { instance, max } => match max {
                Some(m) => format!("{instance} changes health at most {m} times"),
                None => format!("{instance} changes health no more than rise/fall allow"),
            },
            Expectation::FailureBudget { max } => match max {
                Some(m) => {
                    format!("failures during the fault explained by detection and DNS, at most {m}")
                }
                None => "failures during the fault explained by detection and DNS".into(),
            },
            Expectation::Recovers { within } => match within {
                Some(w) => format!(
                    "traffic back to the pre-fault shape from recovery + {}",
                    secs(*w)
                ),
                None => "traffic back to the pre-fault shape after recovery".into(),
            },
            Expectation::RestoredAsFound => "the node is left as the drill found it".into(),
        }
    }
}
/// Serde helpers: durations as integer milliseconds in the JSON report.
mod ms {
    use serde::Serializer;
    use std::time::Duration;
    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

mod ms_opt {
    use serde::Serializer;
    use std::time::Duration;
    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(d.as_millis() as u64),
            None => s.serialize_none(),
        }
    }
}
