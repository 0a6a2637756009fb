//! The DNS server's own input model ([`DnsSpec`]) and how it is built from the validated world
//! (`switchyard_config::World`) or from a single zone file (quick mode).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use switchyard_config::dns as cfg;
use switchyard_config::world::GeoSource;
use switchyard_config::World;

use crate::geo::GeoDb;
use crate::gslb::{AllDown, GslbName, Policy, RegionTarget};
use crate::names::wire_lower;
use crate::snapshot::Snapshot;
use crate::zone::{parse_zone_text, rtype, Rr};
use crate::Error;

/// The MaxMind test databases, compiled in for `builtin:` geo sources (demo world and tests).
const BUILTIN_COUNTRY: &[u8] = include_bytes!("../../testdata/geo/GeoLite2-Country-Test.mmdb");
const BUILTIN_CITY: &[u8] = include_bytes!("../../testdata/geo/GeoLite2-City-Test.mmdb");

/// Everything the DNS server is configured with.
#[derive(Debug, Clone)]
pub struct DnsSpec {
    /// Addresses served over both UDP and TCP.
    pub listen: Vec<SocketAddr>,
    /// UDP workers per address (0 = one per CPU).
    pub workers: usize,
    /// Largest UDP response to EDNS clients.
    pub udp_payload: u16,
    /// A TCP connection idle this long (waiting for a query, or on a stalled write) is closed.
    pub tcp_idle: Duration,
    /// Open TCP connections at most; over it a new connection is closed at once.
    pub tcp_max_conns: usize,
    /// Clients allowed to transfer zones (AXFR over TCP); others get REFUSED.
    pub axfr_allow: Vec<IpNet>,
    /// The zones served.
    pub zones: Vec<ZoneText>,
    /// The GSLB names, each inside one of `zones`.
    pub gslb: Vec<GslbSpec>,
    /// The geo database (needed by the `geo` and `nearest` policies).
    pub geo: Option<GeoSpec>,
    /// UDP response rate limiting (off when `None`).
    pub rrl: Option<cfg::Rrl>,
    /// Secondaries told about zone changes (off when it has no targets).
    pub notify: crate::notify::NotifySpec,
    /// CH TXT `id.server.`/`hostname.bind.` answer (REFUSED when `None`).
    pub identity: Option<String>,
    /// CH TXT `version.bind.`/`version.server.` answer (REFUSED when `None`).
    pub version: Option<String>,
    /// RFC 5001 NSID (not sent when `None`).
    pub nsid: Option<String>,
    /// DNSSEC signature validity: RRSIG expiration is signing time plus this.
    pub dnssec_validity: Duration,
    /// DNSSEC inception offset: RRSIG inception is signing time minus this (clock skew).
    pub dnssec_inception: Duration,
    /// DNS over TLS listeners (off when `None`).
    pub dot: Option<cfg::DnsTls>,
    /// DNS over HTTPS listeners (off when `None`).
    pub doh: Option<cfg::DnsTls>,
}

/// A zone as RFC 1035 text (config records are rendered into this form too).
#[derive(Debug, Clone)]
pub struct ZoneText {
    /// Used when the text has no `$ORIGIN`.
    pub origin: Option<String>,
    /// The zone-file text (RFC 1035 §5).
    pub text: String,
    /// Names the text in errors (`source:line:col: cause`): the zone file's path, or `config`
    /// (then records of `[[dns.zones]]` follow the file's lines).
    pub source: String,
    /// DNSSEC key files: signed online when not empty (the first key signs, all are published).
    pub dnssec_keys: Vec<PathBuf>,
}

/// Where the geo database comes from (a City database also gives coordinates).
#[derive(Debug, Clone)]
pub enum GeoSpec {
    /// A MaxMind database file.
    File(PathBuf),
    /// A MaxMind database in memory (the built-in test databases).
    Bytes(Arc<Vec<u8>>),
}

/// One GSLB name with its regions resolved.
#[derive(Debug, Clone)]
pub struct GslbSpec {
    /// Fully qualified name (`api.example.test.`).
    pub name: String,
    /// How a region is chosen.
    pub policy: Policy,
    /// Candidate regions, in configured order (the failover order).
    pub regions: Vec<RegionSpec>,
    /// TTL of the answers, seconds.
    pub ttl: u32,
    /// What to answer when no region is healthy.
    pub all_down: AllDown,
    /// Region for clients whose location matches nothing.
    pub default_region: Option<String>,
}

/// A region as DNS sees it.
#[derive(Debug, Clone, Default)]
pub struct RegionSpec {
    /// Region name.
    pub name: String,
    /// Addresses answered when this region is chosen.
    pub vips: Vec<IpAddr>,
    /// Weight under the `weighted` policy (default 1).
    pub weight: u32,
    /// Continent codes served by this region (`EU`, `NA`, ...).
    pub continents: Vec<String>,
    /// ISO 3166-1 country codes served by this region.
    pub countries: Vec<String>,
    /// Client networks served by this region (matched before the geo database).
    pub networks: Vec<IpNet>,
    /// Regions to try, in order, when this one is down.
    pub failover: Vec<String>,
    /// Latitude and longitude, degrees (for the `nearest` policy).
    pub coordinates: Option<(f64, f64)>,
}

impl DnsSpec {
    /// One zone file, no GSLB (the quick mode and the benchmark slot).
    pub fn single_zone(
        listen: SocketAddr,
        text: String,
        origin: Option<String>,
        workers: usize,
    ) -> Self {
        DnsSpec {
            listen: vec![listen],
            workers,
            udp_payload: 1232,
            tcp_idle: Duration::from_secs(10),
            tcp_max_conns: 1024,
            axfr_allow: Vec::new(),
            zones: vec![ZoneText {
                origin,
                text,
                source: "zone".into(),
                dnssec_keys: Vec::new(),
            }],
            gslb: Vec::new(),
            geo: None,
            rrl: None,
            notify: Default::default(),
            identity: None,
            version: None,
            nsid: None,
            dnssec_validity: Duration::from_secs(7 * 86400),
            dnssec_inception: Duration::from_secs(3600),
            dot: None,
            doh: None,
        }
    }

    /// The DNS part of a validated world. Reads zone files named by the config.
    pub fn from_world(world: &World) -> Result<Self, Error> {
        let d = &world.dns;
        let mut zones = Vec::new();
        for z in &d.zones {
            zones.push(zone_text(z)?);
        }
        let gslb = d.gslb.iter().map(|g| gslb_spec(g, world)).collect();
        let geo = match (&world.geo.city_db, &world.geo.country_db) {
            (Some(src), _) | (None, Some(src)) => Some(geo_spec(src)?),
            (None, None) => None,
        };
        Ok(DnsSpec {
            listen: d.listen.clone(),
            workers: d.workers.unwrap_or(0) as usize,
            udp_payload: d.udp_payload,
            tcp_idle: d.tcp_idle_timeout,
            tcp_max_conns: d.tcp_max_connections as usize,
            axfr_allow: d.axfr_allow.clone(),
            zones,
            gslb,
            geo,
            rrl: d.rrl.clone(),
            notify: crate::notify::NotifySpec {
                targets: d.notify.clone(),
                ..Default::default()
            },
            identity: d.identity.clone(),
            version: d.version.clone(),
            nsid: d.nsid.clone(),
            dnssec_validity: d.dnssec_signature_validity,
            dnssec_inception: d.dnssec_inception_offset,
            dot: d.tls.clone(),
            doh: d.https.clone(),
        })
    }

    /// Parses zones, builds GSLB names, opens the geo database: the snapshot workers answer from.
    pub fn build(&self) -> Result<Snapshot, Error> {
        let mut gslb = Vec::new();
        for g in &self.gslb {
            gslb.push(Arc::new(build_gslb(g)?));
        }
        let mut zones = Vec::new();
        for z in &self.zones {
            let mut zone = parse_zone_text(&z.text, z.origin.as_deref(), &z.source)?;
            if !z.dnssec_keys.is_empty() {
                let origin = zone.origin_text();
                let keys = crate::dnssec::load_keys(&origin, &z.dnssec_keys).map_err(|msg| {
                    Error::Zone {
                        zone: origin.clone(),
                        msg: format!("DNSSEC key: {msg}"),
                    }
                })?;
                zone.sign_with(crate::dnssec::ZoneSigning {
                    keys,
                    validity: self.dnssec_validity,
                    inception_offset: self.dnssec_inception,
                    apex: zone.origin.clone(),
                });
            }
            zones.push(zone);
        }
        // attach GSLB names to the most specific zone containing them
        for g in &gslb {
            let zone = zones
                .iter_mut()
                .filter(|z| crate::names::is_subdomain(&g.wire, &z.origin))
                .max_by_key(|z| z.origin.len())
                .ok_or_else(|| Error::Zone {
                    zone: g.name.clone(),
                    msg: "GSLB name outside every zone".into(),
                })?;
            let node = zone.nodes.entry(g.wire.clone()).or_default();
            if node.get(rtype::A).is_some()
                || node.get(rtype::AAAA).is_some()
                || node.get(rtype::CNAME).is_some()
            {
                return Err(Error::Zone {
                    zone: zone.origin_text(),
                    msg: format!("GSLB name {} also has static A/AAAA/CNAME records", g.name),
                });
            }
            node.gslb = Some(g.clone());
            // empty non-terminals above it
            let mut cur: &[u8] = &g.wire;
            while let Some(p) = crate::names::parent(cur) {
                if p.len() < zone.origin.len() {
                    break;
                }
                zone.nodes.entry(p.into()).or_default();
                cur = p;
            }
        }
        let geo = match &self.geo {
            None => None,
            Some(GeoSpec::File(p)) => Some(Arc::new(GeoDb::open(p)?)),
            Some(GeoSpec::Bytes(b)) => Some(Arc::new(GeoDb::from_bytes(b.to_vec())?)),
        };
        if gslb.iter().any(|g| g.policy.uses_location()) && geo.is_none() {
            tracing::warn!("geo/nearest GSLB names without a geo database: only CIDR maps apply");
        }
        let mut snapshot =
            Snapshot::new(zones, gslb, geo, self.udp_payload, self.axfr_allow.clone());
        snapshot.rrl = self.rrl.clone();
        snapshot.chaos =
            crate::snapshot::Chaos::new(self.identity.as_deref(), self.version.as_deref());
        snapshot.nsid = self.nsid.as_ref().map(|n| n.as_bytes().into());
        Ok(snapshot)
    }
}

fn geo_spec(src: &GeoSource) -> Result<GeoSpec, Error> {
    Ok(match src {
        GeoSource::File(p) => GeoSpec::File(p.clone()),
        GeoSource::Builtin(name) => GeoSpec::Bytes(Arc::new(
            match name.as_str() {
                "maxmind-test-country" => BUILTIN_COUNTRY,
                "maxmind-test-city" => BUILTIN_CITY,
                other => {
                    return Err(Error::Geo(format!(
                        "unknown builtin geo database {other:?}"
                    )))
                }
            }
            .to_vec(),
        )),
    })
}

/// Renders a config zone as zone-file text (after the zone file's own text, if any).
fn zone_text(z: &cfg::Zone) -> Result<ZoneText, Error> {
    let mut text = String::new();
    if let Some(f) = &z.file {
        text = std::fs::read_to_string(f).map_err(|e| Error::ZoneFile(format!("{f}: {e}")))?;
        text.push('\n');
    }
    let o = &z.origin;
    text.push_str(&format!("$ORIGIN {o}\n"));
    if let Some(s) = &z.soa {
        text.push_str(&format!(
            "{o} {} IN SOA {} {} {} {} {} {} {}\n",
            s.ttl, s.mname, s.rname, s.serial, s.refresh, s.retry, s.expire, s.minimum
        ));
    }
    for ns in &z.ns {
        text.push_str(&format!("{o} {} IN NS {ns}\n", z.ttl));
    }
    for r in &z.records {
        text.push_str(&format!("{} {} IN {} {}\n", r.name, r.ttl, r.rtype, r.data));
    }
    Ok(ZoneText {
        origin: Some(o.clone()),
        text,
        source: z.file.clone().unwrap_or_else(|| "config".into()),
        dnssec_keys: z.dnssec_keys.iter().map(PathBuf::from).collect(),
    })
}

fn gslb_spec(g: &cfg::Gslb, world: &World) -> GslbSpec {
    let regions = g
        .regions
        .iter()
        .filter_map(|name| world.region(name))
        .map(|r| RegionSpec {
            name: r.name.clone(),
            vips: r.vips.clone(),
            weight: g.weights.get(&r.name).copied().unwrap_or(1),
            continents: r.continents.clone(),
            countries: r.countries.clone(),
            networks: r.networks.clone(),
            failover: r.failover.clone(),
            coordinates: r.coordinates,
        })
        .collect();
    GslbSpec {
        name: g.name.clone(),
        policy: match g.policy {
            cfg::GslbPolicy::Failover => Policy::Failover,
            cfg::GslbPolicy::Geo => Policy::Geo,
            cfg::GslbPolicy::Weighted => Policy::Weighted,
            cfg::GslbPolicy::Nearest => Policy::Nearest,
            cfg::GslbPolicy::Multivalue => Policy::Multivalue {
                max: g.max_answers as usize,
            },
        },
        regions,
        ttl: g.ttl.as_secs().min(u32::MAX as u64) as u32,
        all_down: match &g.all_down {
            cfg::AllDown::FailOpen => AllDown::FailOpen,
            cfg::AllDown::ReturnAll => AllDown::ReturnAll,
            cfg::AllDown::LastResort(ips) => AllDown::LastResort(ips.clone()),
            cfg::AllDown::Servfail => AllDown::Servfail,
        },
        default_region: world
            .regions
            .iter()
            .find(|r| r.default && g.regions.contains(&r.name))
            .map(|r| r.name.clone()),
    }
}

fn code2(s: &str) -> Option<[u8; 2]> {
    let b = s.as_bytes();
    (b.len() == 2).then(|| [b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()])
}

fn addr_rr(owner: &[u8], ip: IpAddr, ttl: u32) -> Rr {
    let (rtype, rdata): (u16, Box<[u8]>) = match ip {
        IpAddr::V4(a) => (rtype::A, a.octets().into()),
        IpAddr::V6(a) => (rtype::AAAA, a.octets().into()),
    };
    Rr {
        owner: owner.into(),
        rtype,
        ttl,
        rdata,
        target: None,
    }
}

/// Builds a ready-to-answer GSLB name.
pub fn build_gslb(g: &GslbSpec) -> Result<GslbName, Error> {
    let name = Name::from_ascii(&g.name).map_err(|e| Error::Gslb(format!("{}: {e}", g.name)))?;
    let wire = wire_lower(&name);
    let mut text = g.name.to_ascii_lowercase();
    if !text.ends_with('.') {
        text.push('.');
    }
    if g.regions.is_empty() || g.regions.len() > 64 {
        return Err(Error::Gslb(format!("{text}: needs 1 to 64 regions")));
    }
    let index = |r: &str| g.regions.iter().position(|x| x.name == r);
    let mut regions = Vec::new();
    for r in &g.regions {
        let (a, aaaa) = r
            .vips
            .iter()
            .map(|ip| addr_rr(&wire, *ip, g.ttl))
            .partition(|rr| rr.rtype == rtype::A);
        regions.push(RegionTarget {
            name: r.name.clone(),
            a,
            aaaa,
            weight: r.weight,
            continents: r.continents.iter().filter_map(|c| code2(c)).collect(),
            countries: r.countries.iter().filter_map(|c| code2(c)).collect(),
            networks: r.networks.iter().map(|n| n.trunc()).collect(),
            failover: r.failover.iter().filter_map(|f| index(f)).collect(),
            coordinates: r.coordinates,
            answers: crate::metrics::gslb_answer(&text, &r.name),
        });
    }
    let (last_resort_a, last_resort_aaaa) = match &g.all_down {
        AllDown::LastResort(ips) => ips
            .iter()
            .map(|ip| addr_rr(&wire, *ip, g.ttl))
            .partition(|rr| rr.rtype == rtype::A),
        _ => (Vec::new(), Vec::new()),
    };
    Ok(GslbName {
        all_down_count: crate::metrics::gslb_all_down(&text),
        all_down_now: Default::default(),
        default_region: g.default_region.as_deref().and_then(index),
        name: text,
        wire,
        policy: g.policy,
        regions,
        ttl: g.ttl,
        all_down: g.all_down.clone(),
        last_resort_a,
        last_resort_aaaa,
    })
}
