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
mod tests {
    use super::Forwarding;

    /// The demo world with `extra` added to the first listener.
    fn with_listener_line(extra: &str) -> String {
        crate::demo_toml().replacen(
            "  pool = \"us-east-gateways\"\n",
            &format!("  pool = \"us-east-gateways\"\n  {extra}\n"),
            1,
        )
    }

    #[test]
    fn forwarding_defaults_to_auto_and_parses_each_mode() {
        let w = crate::parse_str(&with_listener_line(""), "demo").unwrap();
        assert_eq!(w.regions[0].listeners[0].forwarding, Forwarding::Auto);
        for (s, f) in [
            ("auto", Forwarding::Auto),
            ("splice", Forwarding::Splice),
            ("copy", Forwarding::Copy),
        ] {
            let w = crate::parse_str(
                &with_listener_line(&format!("forwarding = \"{s}\"")),
                "demo",
            )
            .unwrap();
            assert_eq!(w.regions[0].listeners[0].forwarding, f);
        }
        let e = crate::parse_str(&with_listener_line("forwarding = \"zero\""), "demo").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("forwarding") && msg.contains("\"auto\", \"splice\" or \"copy\""),
            "{msg}"
        );
    }

    #[test]
    fn listener_limits_are_validated() {
        let e = crate::parse_str(&with_listener_line("pipe_size = 10"), "demo").unwrap_err();
        assert!(e.to_string().contains("pipe_size"), "{e}");
        let e = crate::parse_str(
            &with_listener_line("source_rate = { per_second = 0.0, burst = 1 }"),
            "demo",
        )
        .unwrap_err();
        assert!(e.to_string().contains("source_rate"), "{e}");
    }

    /// The demo world with a second pool `tls` (no PROXY protocol) in us-east and the first
    /// listener's `pool = ...` line replaced by `lines`.
    fn sni_world(lines: &str) -> String {
        crate::demo_toml()
            .replacen(
                "  [[regions.listeners]]\n",
                "  [[regions.pools]]\n  name = \"tls\"\n  members = [{ addr = \"127.0.1.21:443\", az = \"us-east-a\" }]\n\n  [[regions.listeners]]\n",
                1,
            )
            .replacen("  pool = \"us-east-gateways\"\n", &format!("{lines}\n"), 1)
    }

    #[test]
    fn sni_routes_parse_lowercased_with_a_default() {
        let w = crate::parse_str(
            &sni_world(
                "  sni = [{ names = [\"A.Example\", \"*.b.example\"], pool = \"tls\" }, { names = [\"c.example\"], pool = \"us-east-gateways\" }]\n  sni_default = \"us-east-gateways\"\n  sni_timeout = \"300ms\"",
            ),
            "demo",
        )
        .unwrap();
        let l = &w.regions[0].listeners[0];
        let sni = l.sni.as_ref().unwrap();
        assert_eq!(sni.routes[0].names, ["a.example", "*.b.example"]);
        assert_eq!(
            (sni.routes[0].pool.as_str(), sni.routes[0].pool_index),
            ("tls", 1)
        );
        assert_eq!(sni.routes[1].pool_index, 0);
        assert_eq!(sni.default, Some(("us-east-gateways".into(), 0)));
        assert_eq!(sni.timeout, std::time::Duration::from_millis(300));
        assert!(!sni.tlvs);
        assert_eq!((l.pool.as_str(), l.pool_index), ("us-east-gateways", 0));
        // without sni_default, unmatched connections close; explain shows the first route's pool
        let w = crate::parse_str(
            &sni_world("  sni = [{ names = [\"a.example\"], pool = \"tls\" }]"),
            "demo",
        )
        .unwrap();
        let l = &w.regions[0].listeners[0];
        assert_eq!(l.sni.as_ref().unwrap().default, None);
        assert_eq!(l.pool, "tls");
        // a plain listener has no SNI table
        assert!(crate::parse_str(crate::demo_toml(), "demo")
            .unwrap()
            .regions[0]
            .listeners[0]
            .sni
            .is_none());
    }

    #[test]
    fn sni_errors_are_located() {
        let cases: &[(&str, &[&str])] = &[
            (
                "  sni = [{ names = [\"a.example\"], pool = \"nope\" }]",
                &["listeners[0].sni[0].pool", "unknown pool \"nope\""],
            ),
            (
                "  sni = [{ names = [\"a.example\"], pool = \"tls\" }, { names = [\"A.example\"], pool = \"tls\" }]",
                &["listeners[0].sni[1].names[0]", "duplicate name \"a.example\" (also in sni[0])"],
            ),
            (
                "  sni = [{ names = [\"a*.example\", \"*\", \"x.*.example\", \"a..b\"], pool = \"tls\" }]",
                &["sni[0].names[0]", "sni[0].names[1]", "sni[0].names[2]", "sni[0].names[3]", "wildcard"],
            ),
            (
                "  sni = [{ names = [], pool = \"tls\" }]",
                &["sni[0].names", "at least one name"],
            ),
            (
                "  pool = \"tls\"\n  sni = [{ names = [\"a.example\"], pool = \"tls\" }]",
                &["listeners[0].pool", "takes no `pool`"],
            ),
            (
                "  pool = \"tls\"\n  sni_default = \"tls\"",
                &["listeners[0].sni_default", "only with `sni`"],
            ),
            (
                "  sni = [{ names = [\"a.example\"], pool = \"tls\" }]\n  sni_default = \"gone\"",
                &["listeners[0].sni_default", "unknown pool \"gone\""],
            ),
            (
                "  sni = [{ names = [\"a.example\"], pool = \"us-east-gateways\" }]\n  sni_default = \"tls\"\n  proxy_tlvs = true",
                &["listeners[0].proxy_tlvs", "pool \"tls\""],
            ),
            ("  backlog = 5", &["listeners[0].pool", "missing"]),
        ];
        for (lines, wants) in cases {
            let e = crate::parse_str(&sni_world(lines), "demo")
                .unwrap_err()
                .to_string();
            for w in *wants {
                assert!(e.contains(w), "{lines}: want {w:?} in\n{e}");
            }
        }
        // PROXY v2 everywhere: TLVs are fine, also on a listener without routes
        let w = crate::parse_str(
            &sni_world("  pool = \"us-east-gateways\"\n  proxy_tlvs = true"),
            "demo",
        )
        .unwrap();
        let sni = w.regions[0].listeners[0].sni.clone().unwrap();
        assert!(sni.tlvs && sni.routes.is_empty());
        assert_eq!(sni.default, Some(("us-east-gateways".into(), 0)));
    }

    #[test]
    fn sni_patterns() {
        for ok in ["a.example", "*.example", "_x.a-b.c9", "localhost"] {
            assert_eq!(super::sni_pattern(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "*", "*.", "**.a", "a.*", "a.*.b", "a..b", ".a", "a.", "a b", "é.a",
        ] {
            assert!(super::sni_pattern(bad).is_err(), "{bad}");
        }
        assert!(super::sni_pattern(&"a".repeat(64)).is_err());
    }

    /// The demo world with `extra` added to the us-east pool (after its `drain_deadline`).
    fn with_pool_line(extra: &str) -> String {
        crate::demo_toml().replacen(
            "  drain_deadline = \"10s\"\n",
            &format!("  drain_deadline = \"10s\"\n  {extra}\n"),
            1,
        )
    }

    fn errors(src: &str) -> Vec<(String, String, bool)> {
        crate::parse_str(src, "demo")
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| (e.path, e.message, e.position.is_some()))
            .collect()
    }

    #[test]
    fn spill_defaults_to_the_failover_order_through_the_spill_ingress() {
        let w = crate::demo_world();
        let (us, eu) = (&w.regions[0], &w.regions[1]);
        assert_eq!(us.pools[0].spill_to, None);
        assert_eq!(us.pools[0].spill_below, 1);
        assert_eq!(eu.listeners[0].spill_port, Some(8081));
        let t = crate::region::spill_targets(&w.regions, us, &us.pools[0]);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].0.name, "eu-west");
        assert_eq!(t[0].1, vec!["127.0.2.1:8081".parse().unwrap()]);
        let w = crate::parse_str(&with_pool_line("spill_to = []"), "demo").unwrap();
        assert!(
            crate::region::spill_targets(&w.regions, &w.regions[0], &w.regions[0].pools[0])
                .is_empty()
        );
    }

    #[test]
    fn spill_errors_carry_their_line() {
        let e = errors(&with_pool_line(
            "spill_to = [\"us-east\", \"mars\", \"eu-west\", \"eu-west\"]\n  spill_below = 0",
        ));
        let e: Vec<_> = e
            .iter()
            .map(|(p, m, pos)| (p.as_str(), m.as_str(), *pos))
            .collect();
        assert_eq!(
            e,
            [
                (
                    "regions[0].pools[0].spill_to[0]",
                    "a pool cannot spill to its own region",
                    true
                ),
                (
                    "regions[0].pools[0].spill_to[1]",
                    "unknown region \"mars\"",
                    true
                ),
                (
                    "regions[0].pools[0].spill_to[3]",
                    "region \"eu-west\" is listed twice",
                    true
                ),
                (
                    "regions[0].pools[0].spill_below",
                    "must be at least 1",
                    true
                ),
            ]
        );
        // a named region without a spill ingress
        let src = with_pool_line("spill_to = [\"eu-west\"]");
        let src = {
            // drop eu-west's spill_port (the second one)
            let i = src.rfind("  spill_port = 8081\n").unwrap();
            format!("{}{}", &src[..i], &src[i + "  spill_port = 8081\n".len()..])
        };
        assert_eq!(
            errors(&src),
            [(
                "regions[0].pools[0].spill_to[0]".to_string(),
                "region \"eu-west\" has no spill ingress; give one of its listeners a `spill_port`"
                    .to_string(),
                true
            )]
        );
        let e = errors(&crate::demo_toml().replacen("spill_port = 8081", "spill_port = 8080", 1));
        assert_eq!(e[0].0, "regions[0].listeners[0].spill_port");
        assert!(e[0].2);
    }
}
