//! L4 pools (members across AZs, policy, health) and the listeners that bind region VIPs.
#![allow(missing_docs)] // fields and variants are the TOML keys and values of the same name, documented in docs/config.md

use crate::duration::{secs, HumanDuration};
use crate::error::Errors;
use crate::health::{HealthCheck, Passive, Policy, RawHealthCheck, RawPassive};
use crate::region::{name_rule, valid_name, Names};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Raw `[[regions.pools]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub name: String,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub health: RawHealthCheck,
    #[serde(default)]
    pub passive: RawPassive,
    /// When every member is down: `true` sends to all members anyway, `false` refuses promptly.
    #[serde(default)]
    pub fail_open: bool,
    /// PROXY protocol header sent to members: `"v1"` or `"v2"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<String>,
    /// Backends tried per client connection before giving up (1 = no retry).
    #[serde(default = "default_attempts")]
    pub connect_attempts: u32,
    /// How long drained members keep their established connections.
    #[serde(default = "default_drain")]
    pub drain_deadline: HumanDuration,
    /// Cap on concurrent connections per member (none by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_member: Option<u32>,
    // --- remote spill (issue 17) ---
    /// Regions whose spill ingress takes new connections when too few members are healthy,
    /// tried in order. Default: the region's `failover` order; `[]`: never spill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spill_to: Option<Vec<String>>,
    /// Spill new connections while fewer than this many members are healthy (default 1: only
    /// when none is).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub spill_below: u32,
    // --- end remote spill ---
    pub members: Vec<RawMember>,
}

fn default_attempts() -> u32 {
    3
}
fn default_drain() -> HumanDuration {
    secs(30)
}

/// Raw pool member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMember {
    /// Defaults to the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub addr: String,
    pub az: String,
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}
fn is_one(v: &u32) -> bool {
    *v == 1
}

/// PROXY protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyVersion {
    V1,
    V2,
}

/// A validated pool.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    pub policy: Policy,
    pub health: HealthCheck,
    pub passive: Passive,
    pub fail_open: bool,
    pub proxy_protocol: Option<ProxyVersion>,
    pub connect_attempts: u32,
    pub drain_deadline: Duration,
    pub max_connections_per_member: Option<u32>,
    /// Explicit spill regions (`None`: the region's failover order); see [`crate::region::spill_targets`].
    pub spill_to: Option<Vec<String>>,
    pub spill_below: u32,
    pub members: Vec<Member>,
}

/// A validated pool member (its AZ is declared in the pool's region).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    pub name: String,
    pub addr: SocketAddr,
    pub az: String,
    pub weight: u32,
}

impl RawPool {
    /// Validates a pool of `region`.
    pub fn validate(&self, p: &str, region: &str, names: &Names, errs: &mut Errors) -> Pool {
        if !valid_name(&self.name) {
            errs.push(format!("{p}.name"), name_rule(&self.name));
        }
        let proxy_protocol = match self.proxy_protocol.as_deref() {
            None => None,
            Some("v1") => Some(ProxyVersion::V1),
            Some("v2") => Some(ProxyVersion::V2),
            Some(o) => {
                errs.push(
                    format!("{p}.proxy_protocol"),
                    format!("{o:?} is not a PROXY protocol version; expected \"v1\" or \"v2\""),
                );
                None
            }
        };
        if self.connect_attempts == 0 {
            errs.push(format!("{p}.connect_attempts"), "must be at least 1");
        }
        self.validate_spill(p, region, names, errs);
        if self.members.is_empty() {
            errs.push(format!("{p}.members"), "a pool needs at least one member");
        }
        let mut seen = HashSet::new();
        let members = self
            .members
            .iter()
            .enumerate()
            .filter_map(|(j, m)| {
                let mp = format!("{p}.members[{j}]");
                names.check_az(Some(region), &m.az, format!("{mp}.az"), errs);
                if m.weight == 0 {
                    errs.push(format!("{mp}.weight"), "weight must be greater than 0");
                }
                let addr = match m.addr.parse::<SocketAddr>() {
                    Ok(a) => a,
                    Err(_) => {
                        errs.push(
                            format!("{mp}.addr"),
                            format!(
                                "{:?} is not an address with a port (e.g. \"127.0.0.1:8000\")",
                                m.addr
                            ),
                        );
                        return None;
                    }
                };
                if !seen.insert(addr) {
                    errs.push(
                        format!("{mp}.addr"),
                        format!("duplicate member {addr} in pool {:?}", self.name),
                    );
                }
                Some(Member {
                    name: m.name.clone().unwrap_or_else(|| addr.to_string()),
                    addr,
                    az: m.az.clone(),
                    weight: m.weight,
                })
            })
            .collect();
        Pool {
            name: self.name.clone(),
            policy: self.policy,
            health: self.health.validate(&format!("{p}.health"), errs),
            passive: self.passive.validate(&format!("{p}.passive"), errs),
            fail_open: self.fail_open,
            proxy_protocol,
            connect_attempts: self.connect_attempts.max(1),
            drain_deadline: self.drain_deadline.0,
            max_connections_per_member: self.max_connections_per_member,
            spill_to: self.spill_to.clone(),
            spill_below: self.spill_below,
            members,
        }
    }

    /// Remote spill: every named region exists, none twice, never the pool's own region
    /// (a spilled connection takes exactly one hop, so two regions spilling to each other
    /// cannot loop; see docs/config.md).
    fn validate_spill(&self, p: &str, region: &str, names: &Names, errs: &mut Errors) {
        if self.spill_below == 0 {
            errs.push(format!("{p}.spill_below"), "must be at least 1");
        }
        let Some(to) = &self.spill_to else { return };
        for (j, r) in to.iter().enumerate() {
            let path = format!("{p}.spill_to[{j}]");
            if r == region {
                errs.push(path, "a pool cannot spill to its own region");
            } else if to[..j].contains(r) {
                errs.push(path, format!("region {r:?} is listed twice"));
            } else {
                names.check_region(r, path, errs);
            }
        }
    }
}

/// Raw `[[regions.listeners]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub name: String,
    pub port: u16,
    /// The pool (of the same region) that receives the connections (not with `sni`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Routes by the TLS server name of the ClientHello (peeked, not terminated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sni: Vec<RawSniRoute>,
    /// With `sni`: the pool for names no route has, clients without SNI, and non-TLS or
    /// malformed first bytes (default: close those connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni_default: Option<String>,
    /// Longest wait for a whole ClientHello (with `sni` or `proxy_tlvs`).
    #[serde(default = "default_sni_timeout")]
    pub sni_timeout: HumanDuration,
    /// Send the client's SNI and ALPN to the pools as PROXY v2 TLVs (needs `proxy_protocol =
    /// "v2"` on every pool the listener feeds).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub proxy_tlvs: bool,
    /// Addresses to bind; default: every VIP of the region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<Vec<String>>,
    #[serde(default = "default_backlog")]
    pub backlog: u32,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime: Option<HumanDuration>,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// New connections per second allowed from one source address (token bucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_rate: Option<RawRate>,
    /// Expect a PROXY protocol (v1 or v2) header from the peer in front.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accept_proxy: bool,
    /// `"auto"` (copy small messages, splice bulk transfers; the default), `"splice"`
    /// (always zero-copy, Linux) or `"copy"` (userspace buffer).
    #[serde(default = "default_forwarding")]
    pub forwarding: String,
    /// `"io_uring"` (the default: one ring per worker socket; falls back to epoll, with a log
    /// line, where the kernel refuses it) or `"epoll"` (one tokio reactor per worker thread).
    #[serde(default = "default_io_engine")]
    pub io_engine: String,
    #[serde(default = "default_pipe_size")]
    pub pipe_size: u32,
    #[serde(default = "default_buffer_size")]
    pub buffer_size: u32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub access_log: bool,
    /// Accept loops (one SO_REUSEPORT socket each); default: one per CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
    /// Remote spill ingress (issue 17): also listen on this port of the same addresses for
    /// connections spilled here by other regions' balancers (PROXY v2 expected; never spilled
    /// again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spill_port: Option<u16>,
}

/// Raw `sni = [{ names = [...], pool = "..." }]` entry of a listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSniRoute {
    /// Exact names (`a.example`) or one-label wildcards (`*.b.example`).
    pub names: Vec<String>,
    pub pool: String,
}

/// Raw token-bucket rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRate {
    pub per_second: f64,
    pub burst: u32,
}

fn default_sni_timeout() -> HumanDuration {
    secs(5)
}
fn default_backlog() -> u32 {
    1024
}
fn default_connect_timeout() -> HumanDuration {
    secs(2)
}
fn default_idle_timeout() -> HumanDuration {
    secs(300)
}
fn default_max_connections() -> u32 {
    10_000
}
fn default_forwarding() -> String {
    "auto".into()
}
fn default_io_engine() -> String {
    "io_uring".into()
}
fn default_pipe_size() -> u32 {
    1 << 16
}
fn default_buffer_size() -> u32 {
    1 << 14
}

/// How bytes are moved between client and backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forwarding {
    /// Userspace copy for small messages; a direction switches to splice once it carries bulk.
    Auto,
    Splice,
    Copy,
}

/// How a listener waits for and moves bytes (see `docs/performance.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IoEngine {
    /// Readiness through epoll (a tokio reactor per worker thread): every feature, every kernel.
    Epoll,
    /// Completions through an io_uring per worker socket (Linux 6.0 or later), the default;
    /// what it does not carry itself (SNI routing, splice forwarding, remote spill, bulk flows)
    /// it hands to the epoll engine of the same worker.
    #[default]
    IoUring,
}

/// A validated token-bucket rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

/// A validated SNI route: lowercased names to a pool of the same region.
#[derive(Debug, Clone, PartialEq)]
pub struct SniRoute {
    /// Exact names and `*.suffix` wildcards (one label), lowercased, unique in the listener.
    pub names: Vec<String>,
    pub pool: String,
    pub pool_index: usize,
}

/// A listener's ClientHello routing (`sni`, `sni_default`, `sni_timeout`, `proxy_tlvs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sni {
    pub routes: Vec<SniRoute>,
    /// `(name, index)` of the pool for everything no route takes; `None`: close.
    pub default: Option<(String, usize)>,
    pub timeout: Duration,
    pub tlvs: bool,
}

/// A validated L4 listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub name: String,
    pub addrs: Vec<SocketAddr>,
    /// Name of the pool, resolved: it exists in the same region (index into `Region::pools`).
    /// For an SNI listener: its `sni_default`, or else its first route's pool (what explain
    /// shows; connections follow `sni`).
    pub pool: String,
    pub pool_index: usize,
    /// ClientHello routing; `None`: the first bytes are not looked at.
    pub sni: Option<Sni>,
    pub backlog: u32,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_lifetime: Option<Duration>,
    pub max_connections: u32,
    pub source_rate: Option<Rate>,
    pub accept_proxy: bool,
    pub forwarding: Forwarding,
    pub io_engine: IoEngine,
    pub pipe_size: u32,
    pub buffer_size: u32,
    pub access_log: bool,
    pub workers: Option<u32>,
    pub spill_port: Option<u16>,
}

impl RawListener {
    /// Validates a listener of a region with `vips` and `pools`.
    pub fn validate(
        &self,
        p: &str,
        vips: &[IpAddr],
        pools: &[Pool],
        errs: &mut Errors,
    ) -> Listener {
        if !valid_name(&self.name) {
            errs.push(format!("{p}.name"), name_rule(&self.name));
        }
        let ips: Vec<IpAddr> = match &self.bind {
            None => vips.to_vec(),
            Some(list) => errs.parse_list(list, &format!("{p}.bind"), "an IP address"),
        };
        let find = |name: &str, at: String, errs: &mut Errors| match pools
            .iter()
            .position(|x| x.name == name)
        {
            Some(i) => i,
            None => {
                errs.push(
                    at,
                    format!(
                        "unknown pool {name:?}; declare it under [[regions.pools]] of the same region"
                    ),
                );
                0
            }
        };
        let sni = self.validate_sni(p, pools, &find, errs);
        let (pool, pool_index) = match (&self.pool, &sni) {
            (Some(name), _) => (name.clone(), find(name, format!("{p}.pool"), errs)),
            (None, Some(s)) => s
                .default
                .clone()
                .or_else(|| s.routes.first().map(|r| (r.pool.clone(), r.pool_index)))
                .unwrap_or_default(),
            (None, None) => {
                errs.push(
                    format!("{p}.pool"),
                    "missing: name the pool that receives the connections (or route by `sni`)",
                );
                (String::new(), 0)
            }
        };
        let forwarding = match self.forwarding.as_str() {
            "auto" => Forwarding::Auto,
            "splice" => Forwarding::Splice,
            "copy" => Forwarding::Copy,
            o => {
                errs.push(
                    format!("{p}.forwarding"),
                    format!(
                        "{o:?} is not a forwarding mode; expected \"auto\", \"splice\" or \"copy\""
                    ),
                );
                Forwarding::Copy
            }
        };
        let io_engine = match self.io_engine.as_str() {
            "epoll" => IoEngine::Epoll,
            "io_uring" => IoEngine::IoUring,
            o => {
                errs.push(
                    format!("{p}.io_engine"),
                    format!("{o:?} is not an I/O engine; expected \"epoll\" or \"io_uring\""),
                );
                IoEngine::Epoll
            }
        };
        if self.max_connections == 0 {
            errs.push(format!("{p}.max_connections"), "must be greater than 0");
        }
        if self.spill_port == Some(self.port) {
            errs.push(
                format!("{p}.spill_port"),
                "the spill ingress needs a port of its own (not the listener's `port`)",
            );
        }
        if !(4096..=1 << 20).contains(&self.pipe_size) {
            errs.push(
                format!("{p}.pipe_size"),
                "must be between 4096 and 1048576 bytes",
            );
        }
        if !(1024..=1 << 20).contains(&self.buffer_size) {
            errs.push(
                format!("{p}.buffer_size"),
                "must be between 1024 and 1048576 bytes",
            );
        }
        let source_rate = self.source_rate.as_ref().map(|r| {
            if r.per_second <= 0.0 || !r.per_second.is_finite() || r.burst == 0 {
                errs.push(
                    format!("{p}.source_rate"),
                    "per_second and burst must be greater than 0",
                );
            }
            Rate {
                per_second: r.per_second,
                burst: r.burst,
            }
        });
        Listener {
            name: self.name.clone(),
            addrs: ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, self.port))
                .collect(),
            pool,
            pool_index,
            sni,
            backlog: self.backlog,
            connect_timeout: self.connect_timeout.0,
            idle_timeout: self.idle_timeout.0,
            max_lifetime: self.max_lifetime.map(|d| d.0),
            max_connections: self.max_connections,
            source_rate,
            accept_proxy: self.accept_proxy,
            forwarding,
            io_engine,
            pipe_size: self.pipe_size,
            buffer_size: self.buffer_size,
            access_log: self.access_log,
            workers: self.workers,
            spill_port: self.spill_port,
        }
    }
}

impl RawListener {
    /// Checks `sni`, `sni_default`, `sni_timeout` and `proxy_tlvs`; `find` resolves a pool name.
    fn validate_sni(
        &self,
        p: &str,
        pools: &[Pool],
        find: &dyn Fn(&str, String, &mut Errors) -> usize,
        errs: &mut Errors,
    ) -> Option<Sni> {
        if self.sni.is_empty() {
            if self.sni_default.is_some() {
                errs.push(
                    format!("{p}.sni_default"),
                    "only with `sni` routes (the listener's `pool` takes every connection)",
                );
            }
            if !self.proxy_tlvs {
                return None;
            }
        } else if self.pool.is_some() {
            errs.push(
                format!("{p}.pool"),
                "a listener routed by `sni` takes no `pool`; name the fallback with `sni_default`",
            );
        }
        let mut seen: Vec<(String, usize)> = Vec::new();
        let routes = self
            .sni
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let rp = format!("{p}.sni[{i}]");
                if r.names.is_empty() {
                    errs.push(format!("{rp}.names"), "a route needs at least one name");
                }
                let names = r
                    .names
                    .iter()
                    .enumerate()
                    .map(|(j, n)| {
                        let n = n.to_ascii_lowercase();
                        if let Err(why) = sni_pattern(&n) {
                            errs.push(format!("{rp}.names[{j}]"), format!("{n:?}: {why}"));
                        }
                        match seen.iter().find(|(m, _)| *m == n) {
                            Some((_, k)) => errs.push(
                                format!("{rp}.names[{j}]"),
                                format!("duplicate name {n:?} (also in sni[{k}])"),
                            ),
                            None => seen.push((n.clone(), i)),
                        }
                        n
                    })
                    .collect();
                SniRoute {
                    names,
                    pool: r.pool.clone(),
                    pool_index: find(&r.pool, format!("{rp}.pool"), errs),
                }
            })
            .collect::<Vec<_>>();
        let default = match (&self.sni_default, &self.pool) {
            (Some(d), _) => Some((d.clone(), find(d, format!("{p}.sni_default"), errs))),
            // proxy_tlvs alone: everything goes to the listener's pool
            (None, Some(pl)) if self.sni.is_empty() => pools
                .iter()
                .position(|x| &x.name == pl)
                .map(|i| (pl.clone(), i)),
            _ => None,
        };
        if self.sni_timeout.0.is_zero() {
            errs.push(format!("{p}.sni_timeout"), "must be greater than 0");
        }
        if self.proxy_tlvs {
            let fed = routes
                .iter()
                .map(|r| r.pool_index)
                .chain(default.as_ref().map(|d| d.1));
            for i in fed {
                if let Some(pool) = pools.get(i) {
                    if pool.proxy_protocol != Some(ProxyVersion::V2) {
                        errs.push(
                            format!("{p}.proxy_tlvs"),
                            format!(
                                "TLVs need PROXY v2: set proxy_protocol = \"v2\" on pool {:?}",
                                pool.name
                            ),
                        );
                        break;
                    }
                }
            }
        }
        Some(Sni {
            routes,
            default,
            timeout: self.sni_timeout.0,
            tlvs: self.proxy_tlvs,
        })
    }
}

/// Checks an SNI route name: a DNS name (labels of letters, digits, `-` and `_`, at most 63
/// characters each, 253 in all), or `*.` before one (a wildcard for exactly one label).
pub fn sni_pattern(name: &str) -> Result<(), &'static str> {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    if rest.contains('*') {
        return Err("a wildcard is `*.` before a name (e.g. \"*.example.com\"), nothing else");
    }
    if rest.is_empty() || rest.len() > 253 {
        return Err("not a DNS name (1 to 253 characters)");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !rest.split('.').all(label_ok) {
        return Err("not a DNS name (labels of letters, digits, '-' and '_', no empty label)");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
