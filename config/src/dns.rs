//! The authoritative DNS server: listeners, zones and GSLB names.
#![allow(missing_docs)] // fields and variants are the TOML keys and values of the same name, documented in docs/config.md

use crate::duration::{secs, HumanDuration};
use crate::error::Errors;
use crate::health::{HealthCheck, RawHealthCheck};
use crate::region::Names;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Raw `[dns]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<String>,
    /// UDP sockets (SO_REUSEPORT) and threads; default: one per CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
    /// Largest UDP response we send to EDNS clients.
    #[serde(default = "default_payload")]
    pub udp_payload: u16,
    #[serde(default = "default_tcp_idle")]
    pub tcp_idle_timeout: HumanDuration,
    #[serde(default = "default_tcp_max")]
    pub tcp_max_connections: u32,
    /// Networks allowed to transfer zones (AXFR); nobody by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub axfr_allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<RawZone>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gslb: Vec<RawGslb>,
    /// Response rate limiting on UDP; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrl: Option<RawRrl>,
    /// Secondaries (`ip:port`) sent a NOTIFY when a zone loads or its serial changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
    /// This node's name, the CH TXT answer to `id.server.` and `hostname.bind.`; off (REFUSED)
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The CH TXT answer to `version.bind.` and `version.server.`; off (REFUSED) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Name server identifier (RFC 5001) sent to queries that ask for it; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsid: Option<String>,
    /// DNSSEC: how long the signatures of signed zones are valid from when they are made.
    #[serde(default = "default_sig_validity")]
    pub dnssec_signature_validity: HumanDuration,
    /// DNSSEC: signatures are valid from this long before they are made (validator clocks).
    #[serde(default = "default_sig_inception")]
    pub dnssec_inception_offset: HumanDuration,
    /// DNS over TLS (RFC 7858): `{ listen = [...], certs = [...] }`; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RawDnsTls>,
    /// DNS over HTTPS (RFC 8484): `{ listen = [...], path = "/dns-query", certs = [...] }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<RawDnsTls>,
}

/// Raw `[dns] tls = {...}` / `https = {...}`: an encrypted transport for the same answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDnsTls {
    pub listen: Vec<String>,
    pub certs: Vec<crate::tls::RawCert>,
    /// DoH only: the URL path queries are served on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default = "default_handshake")]
    pub handshake_timeout: HumanDuration,
    /// A connection without a query (or stalled writing) this long is closed.
    #[serde(default = "default_tls_idle")]
    pub idle_timeout: HumanDuration,
    /// Open connections at most; over it a new connection is closed at once.
    #[serde(default = "default_tls_max")]
    pub max_connections: u32,
    /// Session-ticket keys shared with other appliances (as a gateway TLS table's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_keys: Option<String>,
}

fn default_handshake() -> HumanDuration {
    secs(5)
}
fn default_tls_idle() -> HumanDuration {
    secs(30)
}
fn default_tls_max() -> u32 {
    1024
}

/// A validated DoT or DoH listener.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsTls {
    pub listen: Vec<SocketAddr>,
    pub certs: Vec<crate::tls::CertFile>,
    /// DoH: the path (starts with `/`); DoT: empty.
    pub path: String,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: u32,
    pub ticket_keys: Option<std::path::PathBuf>,
}

impl RawDnsTls {
    /// Validates `dns.tls` (`doh` false) or `dns.https` (`doh` true).
    fn validate(&self, at: &str, doh: bool, errs: &mut Errors) -> DnsTls {
        let listen: Vec<SocketAddr> = errs.parse_list(
            &self.listen,
            &format!("{at}.listen"),
            "an address with a port",
        );
        if self.listen.is_empty() {
            errs.push(
                format!("{at}.listen"),
                "give at least one address with a port",
            );
        }
        let certs = crate::tls::validate_certs(&self.certs, &format!("{at}.certs"), errs);
        let path = match (&self.path, doh) {
            (None, true) => "/dns-query".to_string(),
            (Some(p), true) => {
                if !p.starts_with('/') || p.contains(['?', '#', ' ']) {
                    errs.push(
                        format!("{at}.path"),
                        format!("{p:?} is not a URL path (e.g. \"/dns-query\")"),
                    );
                }
                p.clone()
            }
            (Some(_), false) => {
                errs.push(
                    format!("{at}.path"),
                    "only DNS over HTTPS (dns.https) has a path",
                );
                String::new()
            }
            (None, false) => String::new(),
        };
        for (k, d) in [
            ("handshake_timeout", self.handshake_timeout.0),
            ("idle_timeout", self.idle_timeout.0),
        ] {
            if d.is_zero() {
                errs.push(format!("{at}.{k}"), "must be greater than 0");
            }
        }
        if self.max_connections == 0 {
            errs.push(format!("{at}.max_connections"), "must be greater than 0");
        }
        if self.ticket_keys.as_deref() == Some("") {
            errs.push(format!("{at}.ticket_keys"), "must name a key file");
        }
        DnsTls {
            listen,
            certs,
            path,
            handshake_timeout: self.handshake_timeout.0,
            idle_timeout: self.idle_timeout.0,
            max_connections: self.max_connections,
            ticket_keys: self.ticket_keys.as_ref().map(std::path::PathBuf::from),
        }
    }
}

fn default_sig_validity() -> HumanDuration {
    secs(7 * 86400)
}
fn default_sig_inception() -> HumanDuration {
    secs(3600)
}

/// Raw `[dns.rrl]` table: response rate limiting per client network, UDP only (TCP proves
/// the source address, so it is never limited).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRrl {
    /// Responses per second to one client network.
    pub responses_per_second: u32,
    /// Responses a quiet network may get at once; default: one second's worth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Every `slip`-th limited response is sent truncated (TC=1, question only) so a real
    /// client retries over TCP; the others are dropped. 0: drop them all.
    #[serde(default = "default_slip")]
    pub slip: u32,
    /// Client networks: IPv4 addresses are grouped by this prefix length...
    #[serde(default = "default_rrl_v4")]
    pub ipv4_prefix: u8,
    /// ...and IPv6 addresses by this one.
    #[serde(default = "default_rrl_v6")]
    pub ipv6_prefix: u8,
}

fn default_slip() -> u32 {
    2
}
fn default_rrl_v4() -> u8 {
    24
}
fn default_rrl_v6() -> u8 {
    56
}

/// Validated response rate limiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rrl {
    pub responses_per_second: u32,
    pub burst: u32,
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

impl RawRrl {
    fn validate(&self, errs: &mut Errors) -> Rrl {
        if self.responses_per_second == 0 {
            errs.push("dns.rrl.responses_per_second", "must be greater than 0");
        }
        if self.burst == Some(0) {
            errs.push("dns.rrl.burst", "must be greater than 0");
        }
        if self.ipv4_prefix > 32 {
            errs.push("dns.rrl.ipv4_prefix", "must be at most 32");
        }
        if self.ipv6_prefix > 128 {
            errs.push("dns.rrl.ipv6_prefix", "must be at most 128");
        }
        Rrl {
            responses_per_second: self.responses_per_second.max(1),
            burst: self.burst.unwrap_or(self.responses_per_second).max(1),
            slip: self.slip,
            ipv4_prefix: self.ipv4_prefix.min(32),
            ipv6_prefix: self.ipv6_prefix.min(128),
        }
    }
}

impl Default for RawDns {
    fn default() -> Self {
        RawDns {
            listen: Vec::new(),
            workers: None,
            udp_payload: default_payload(),
            tcp_idle_timeout: default_tcp_idle(),
            tcp_max_connections: default_tcp_max(),
            axfr_allow: Vec::new(),
            zones: Vec::new(),
            gslb: Vec::new(),
            rrl: None,
            notify: Vec::new(),
            identity: None,
            version: None,
            nsid: None,
            dnssec_signature_validity: default_sig_validity(),
            dnssec_inception_offset: default_sig_inception(),
            tls: None,
            https: None,
        }
    }
}

fn default_payload() -> u16 {
    1232
}
fn default_tcp_idle() -> HumanDuration {
    secs(10)
}
fn default_tcp_max() -> u32 {
    1024
}

/// Raw `[[dns.zones]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    /// Zone apex, fully qualified (`example.test.`).
    pub origin: String,
    /// Optional RFC 1035 zone file; records below are added to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Default TTL of records (seconds).
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soa: Option<RawSoa>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<RawRecord>,
    /// DNSSEC key files (`switchyard dnssec keygen`): the zone is signed online by the first;
    /// every one is published in the DNSKEY RRset (a second key is how a rollover starts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dnssec_keys: Vec<String>,
}

fn default_ttl() -> u32 {
    300
}

/// Raw SOA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSoa {
    pub mname: String,
    pub rname: String,
    #[serde(default = "default_serial")]
    pub serial: u32,
    #[serde(default = "default_refresh")]
    pub refresh: u32,
    #[serde(default = "default_retry")]
    pub retry: u32,
    #[serde(default = "default_expire")]
    pub expire: u32,
    /// Negative-caching TTL (RFC 2308).
    #[serde(default = "default_minimum")]
    pub minimum: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
}

fn default_serial() -> u32 {
    1
}
fn default_refresh() -> u32 {
    3600
}
fn default_retry() -> u32 {
    900
}
fn default_expire() -> u32 {
    604_800
}
fn default_minimum() -> u32 {
    300
}

/// Raw static record: `name` relative to the origin (`@` for the apex) or fully qualified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// Presentation-format RDATA (`192.0.2.1`, `10 mail.example.test.`, `"text"`).
    pub data: String,
}

/// Raw `[[dns.gslb]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGslb {
    /// Fully qualified name inside a served zone.
    pub name: String,
    /// `failover`, `geo`, `weighted`, `nearest` or `multivalue`.
    pub policy: String,
    /// Candidate regions; for `failover` their order is the preference.
    pub regions: Vec<String>,
    #[serde(default = "default_gslb_ttl")]
    pub ttl: HumanDuration,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, u32>,
    /// `multivalue`: at most this many addresses.
    #[serde(default = "default_max_answers")]
    pub max_answers: u32,
    /// When every region is down: `fail_open` (answer in configured order), `return_all` (every
    /// region's VIPs), `last_resort` (the `last_resort` addresses), `servfail`.
    #[serde(default = "default_all_down")]
    pub all_down: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_resort: Vec<String>,
    /// Probe of region VIPs for regions this node does not run (port of the VIP listener).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<RawHealthCheck>,
}

fn default_gslb_ttl() -> HumanDuration {
    secs(30)
}
fn default_max_answers() -> u32 {
    8
}
fn default_all_down() -> String {
    "fail_open".into()
}

/// Validated DNS section.
#[derive(Debug, Clone, PartialEq)]
pub struct Dns {
    pub listen: Vec<SocketAddr>,
    pub workers: Option<u32>,
    pub udp_payload: u16,
    pub tcp_idle_timeout: Duration,
    pub tcp_max_connections: u32,
    pub axfr_allow: Vec<IpNet>,
    pub zones: Vec<Zone>,
    pub gslb: Vec<Gslb>,
    pub rrl: Option<Rrl>,
    pub notify: Vec<SocketAddr>,
    /// CH TXT `id.server.` / `hostname.bind.` answer (off when `None`).
    pub identity: Option<String>,
    /// CH TXT `version.bind.` / `version.server.` answer (off when `None`).
    pub version: Option<String>,
    /// RFC 5001 NSID payload (off when `None`).
    pub nsid: Option<String>,
    /// Validity of online DNSSEC signatures.
    pub dnssec_signature_validity: Duration,
    /// How far back signatures' inception is put.
    pub dnssec_inception_offset: Duration,
    /// DNS over TLS (off when `None`).
    pub tls: Option<DnsTls>,
    /// DNS over HTTPS (off when `None`).
    pub https: Option<DnsTls>,
}

/// Validated zone (names are lower-case, fully qualified, with the trailing dot).
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub origin: String,
    pub file: Option<String>,
    pub ttl: u32,
    pub soa: Option<Soa>,
    pub ns: Vec<String>,
    pub records: Vec<Record>,
    /// DNSSEC key files; signed when not empty (the first key signs).
    pub dnssec_keys: Vec<String>,
}

/// Validated SOA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    pub mname: String,
    pub rname: String,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
    pub ttl: u32,
}

/// Validated static record (`name` fully qualified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub rtype: String,
    pub ttl: u32,
    pub data: String,
}

/// GSLB policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GslbPolicy {
    Failover,
    Geo,
    Weighted,
    Nearest,
    Multivalue,
}

/// What to answer when every candidate region is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllDown {
    FailOpen,
    ReturnAll,
    LastResort(Vec<std::net::IpAddr>),
    Servfail,
}

/// Validated GSLB name.
#[derive(Debug, Clone, PartialEq)]
pub struct Gslb {
    pub name: String,
    pub policy: GslbPolicy,
    pub regions: Vec<String>,
    pub ttl: Duration,
    pub weights: BTreeMap<String, u32>,
    pub max_answers: u32,
    pub all_down: AllDown,
    pub probe_port: Option<u16>,
    pub probe: HealthCheck,
}

const RTYPES: [&str; 9] = ["A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA", "NS", "PTR"];

/// Makes `name` fully qualified and lower-case, relative to `origin` unless it ends with a dot.
pub fn qualify(name: &str, origin: &str) -> String {
    let n = if name == "@" {
        origin.to_string()
    } else if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.{origin}")
    };
    n.to_ascii_lowercase()
}

fn valid_dns_name(n: &str) -> bool {
    n.ends_with('.')
        && n.len() <= 254
        && n.trim_end_matches('.')
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63)
        || n == "."
}

impl RawDns {
    /// Validates the DNS section.
    pub fn validate(&self, names: &Names, errs: &mut Errors) -> Dns {
        let listen = errs.parse_list(&self.listen, "dns.listen", "an address with a port");
        if self.udp_payload < 512 {
            errs.push("dns.udp_payload", "must be at least 512");
        }
        let axfr_allow = errs.networks(&self.axfr_allow, "dns.axfr_allow");
        let zones: Vec<Zone> = self
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| z.validate(i, errs))
            .collect();
        let gslb = self
            .gslb
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let p = format!("dns.gslb[{i}]");
                let name = g.name.to_ascii_lowercase();
                if !valid_dns_name(&name) {
                    errs.push(format!("{p}.name"), format!("{:?} is not a fully qualified name (end it with '.')", g.name));
                } else if !zones.iter().any(|z| name == z.origin || name.ends_with(&format!(".{}", z.origin))) {
                    errs.push(format!("{p}.name"), format!("{:?} is not inside any zone under [[dns.zones]]", g.name));
                }
                let policy = match g.policy.as_str() {
                    "failover" => GslbPolicy::Failover,
                    "geo" => GslbPolicy::Geo,
                    "weighted" => GslbPolicy::Weighted,
                    "nearest" => GslbPolicy::Nearest,
                    "multivalue" => GslbPolicy::Multivalue,
                    o => {
                        errs.push(format!("{p}.policy"), format!("unknown GSLB policy {o:?}; expected failover, geo, weighted, nearest or multivalue"));
                        GslbPolicy::Failover
                    }
                };
                if g.regions.is_empty() {
                    errs.push(format!("{p}.regions"), "a GSLB name needs at least one region");
                }
                for (j, r) in g.regions.iter().enumerate() {
                    names.check_region(r, format!("{p}.regions[{j}]"), errs);
                }
                for (r, w) in &g.weights {
                    if !g.regions.contains(r) {
                        errs.push(format!("{p}.weights.{r}"), format!("{r:?} is not one of this name's regions"));
                    }
                    if *w == 0 {
                        errs.push(format!("{p}.weights.{r}"), "weight must be greater than 0");
                    }
                }
                let all_down = match g.all_down.as_str() {
                    "fail_open" => AllDown::FailOpen,
                    "return_all" => AllDown::ReturnAll,
                    "servfail" => AllDown::Servfail,
                    "last_resort" => {
                        let ips = errs.parse_list(&g.last_resort, &format!("{p}.last_resort"), "an IP address");
                        if g.last_resort.is_empty() {
                            errs.push(format!("{p}.last_resort"), "all_down = \"last_resort\" needs last_resort addresses");
                        }
                        AllDown::LastResort(ips)
                    }
                    o => {
                        errs.push(format!("{p}.all_down"), format!("{o:?} is not one of fail_open, return_all, last_resort, servfail"));
                        AllDown::FailOpen
                    }
                };
                Gslb {
                    name,
                    policy,
                    regions: g.regions.clone(),
                    ttl: g.ttl.0,
                    weights: g.weights.clone(),
                    max_answers: g.max_answers.max(1),
                    all_down,
                    probe_port: g.probe_port,
                    probe: g.probe.clone().unwrap_or_default().validate(&format!("{p}.probe"), errs),
                }
            })
            .collect();
        if self.dnssec_signature_validity.0 < Duration::from_secs(3600) {
            errs.push("dns.dnssec_signature_validity", "must be at least 1h");
        }
        if self.dnssec_inception_offset.0 > self.dnssec_signature_validity.0 {
            errs.push(
                "dns.dnssec_inception_offset",
                "must not be longer than dnssec_signature_validity",
            );
        }
        for (key, v, max) in [
            ("dns.identity", &self.identity, 255),
            ("dns.version", &self.version, 255),
            ("dns.nsid", &self.nsid, 512),
        ] {
            if let Some(v) = v {
                if v.is_empty() || v.len() > max {
                    errs.push(
                        key,
                        format!("must be 1 to {max} bytes (leave it out to turn it off)"),
                    );
                }
            }
        }
        Dns {
            listen,
            workers: self.workers,
            udp_payload: self.udp_payload,
            tcp_idle_timeout: self.tcp_idle_timeout.0,
            tcp_max_connections: self.tcp_max_connections,
            axfr_allow,
            zones,
            gslb,
            rrl: self.rrl.as_ref().map(|r| r.validate(errs)),
            notify: errs.parse_list(&self.notify, "dns.notify", "an address with a port"),
            identity: self.identity.clone(),
            version: self.version.clone(),
            nsid: self.nsid.clone(),
            dnssec_signature_validity: self.dnssec_signature_validity.0,
            dnssec_inception_offset: self.dnssec_inception_offset.0,
            tls: self
                .tls
                .as_ref()
                .map(|t| t.validate("dns.tls", false, errs)),
            https: self
                .https
                .as_ref()
                .map(|t| t.validate("dns.https", true, errs)),
        }
    }
}

impl RawZone {
    fn validate(&self, i: usize, errs: &mut Errors) -> Zone {
        let p = format!("dns.zones[{i}]");
        let origin = self.origin.to_ascii_lowercase();
        if !valid_dns_name(&origin) {
            errs.push(
                format!("{p}.origin"),
                format!(
                    "{:?} is not a fully qualified name (end it with '.')",
                    self.origin
                ),
            );
        }
        if self.soa.is_none() && self.file.is_none() {
            errs.push(
                p.clone(),
                "a zone needs an `soa` table (or a zone `file` that has one)",
            );
        }
        let soa = self.soa.as_ref().map(|s| Soa {
            mname: qualify(&s.mname, &origin),
            rname: qualify(&s.rname, &origin),
            serial: s.serial,
            refresh: s.refresh,
            retry: s.retry,
            expire: s.expire,
            minimum: s.minimum,
            ttl: s.ttl.unwrap_or(self.ttl),
        });
        let records = self
            .records
            .iter()
            .enumerate()
            .map(|(j, r)| {
                let rp = format!("{p}.records[{j}]");
                let rtype = r.rtype.to_ascii_uppercase();
                let name = qualify(&r.name, &origin);
                if !RTYPES.contains(&rtype.as_str()) {
                    errs.push(
                        format!("{rp}.type"),
                        format!(
                            "unsupported record type {:?}; expected one of {RTYPES:?}",
                            r.rtype
                        ),
                    );
                }
                if !(name == origin || name.ends_with(&format!(".{origin}"))) {
                    errs.push(
                        format!("{rp}.name"),
                        format!("{name:?} is outside the zone {origin:?}"),
                    );
                }
                let ok = match rtype.as_str() {
                    "A" => r.data.parse::<Ipv4Addr>().is_ok(),
                    "AAAA" => r.data.parse::<Ipv6Addr>().is_ok(),
                    _ => !r.data.trim().is_empty(),
                };
                if !ok {
                    errs.push(
                        format!("{rp}.data"),
                        format!("{:?} is not valid {rtype} data", r.data),
                    );
                }
                Record {
                    name,
                    rtype,
                    ttl: r.ttl.unwrap_or(self.ttl),
                    data: r.data.clone(),
                }
            })
            .collect();
        Zone {
            origin: origin.clone(),
            file: self.file.clone(),
            ttl: self.ttl,
            soa,
            ns: self.ns.iter().map(|n| qualify(n, &origin)).collect(),
            records,
            dnssec_keys: self.dnssec_keys.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
