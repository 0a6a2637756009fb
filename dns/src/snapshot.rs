//! The immutable state one query is answered from: zones, GSLB names, geo database, settings.
//! Workers read it through an `ArcSwap`; a reload builds a new one and swaps it in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::geo::{truncate, GeoDb};
use crate::gslb::{ClientLocation, GslbName};
use crate::names::label_count;
use crate::wire::Ecs;
use crate::zone::{Rr, Zone};

/// Everything a worker needs to answer, frozen.
#[derive(Debug)]
pub struct Snapshot {
    zones: HashMap<Box<[u8]>, Zone>,
    /// Fewest / most labels of any zone apex (bounds the zone search).
    min_labels: usize,
    max_labels: usize,
    /// GSLB names by lowercase text (`api.example.test.`), for `explain`.
    pub gslb: HashMap<String, Arc<GslbName>>,
    /// The geo database, if configured.
    pub geo: Option<Arc<GeoDb>>,
    /// Largest UDP response we send to EDNS clients (default 1232).
    pub udp_payload: u16,
    /// Clients allowed to AXFR.
    pub axfr_allow: Vec<IpNet>,
    /// UDP response rate limiting, when on.
    pub rrl: Option<switchyard_config::dns::Rrl>,
    /// The server's own CH-class TXT answers (off unless configured).
    pub chaos: Chaos,
    /// RFC 5001 name server identifier, when configured.
    pub nsid: Option<Box<[u8]>>,
}

/// CH TXT answers about the server (`id.server.`, `hostname.bind.`, `version.bind.`,
/// `version.server.`), pre-encoded; `None` answers REFUSED like any other CH query.
#[derive(Debug, Default)]
pub struct Chaos {
    /// Answer to `id.server.` and `hostname.bind.`.
    pub identity: Option<Rr>,
    /// Answer to `version.bind.` and `version.server.`.
    pub version: Option<Rr>,
}

impl Chaos {
    /// From the configured strings (each up to 255 bytes: one TXT string).
    pub fn new(identity: Option<&str>, version: Option<&str>) -> Self {
        let txt = |s: &str| {
            let b = &s.as_bytes()[..s.len().min(255)];
            let mut rdata = Vec::with_capacity(b.len() + 1);
            rdata.push(b.len() as u8);
            rdata.extend_from_slice(b);
            Rr {
                owner: Box::new([0]),
                rtype: crate::zone::rtype::TXT,
                ttl: 0,
                rdata: rdata.into_boxed_slice(),
                target: None,
            }
        };
        Chaos {
            identity: identity.map(txt),
            version: version.map(txt),
        }
    }

    /// The record for a CH query name (lowercase wire), if it is one we answer.
    pub fn lookup(&self, qname: &[u8]) -> Option<&Rr> {
        match qname {
            b"\x02id\x06server\x00" | b"\x08hostname\x04bind\x00" => self.identity.as_ref(),
            b"\x07version\x04bind\x00" | b"\x07version\x06server\x00" => self.version.as_ref(),
            _ => None,
        }
    }
}

impl Snapshot {
    /// Indexes `zones` by apex and `gslb` by lowercase name; RRL, CH answers and NSID start off.
    pub fn new(
        zones: Vec<Zone>,
        gslb: Vec<Arc<GslbName>>,
        geo: Option<Arc<GeoDb>>,
        udp_payload: u16,
        axfr_allow: Vec<IpNet>,
    ) -> Self {
        let labels: Vec<usize> = zones.iter().map(|z| label_count(&z.origin)).collect();
        Snapshot {
            min_labels: labels.iter().copied().min().unwrap_or(0),
            max_labels: labels.iter().copied().max().unwrap_or(0),
            zones: zones.into_iter().map(|z| (z.origin.clone(), z)).collect(),
            gslb: gslb
                .into_iter()
                .map(|g| (g.name.to_ascii_lowercase(), g))
                .collect(),
            geo,
            udp_payload,
            axfr_allow,
            rrl: None,
            chaos: Chaos::default(),
            nsid: None,
        }
    }

    /// Every zone's apex (lowercase wire) with its SOA serial.
    pub fn serials(&self) -> HashMap<Box<[u8]>, u32> {
        self.zones
            .iter()
            .filter_map(|(o, z)| Some((o.clone(), crate::notify::soa_serial(&z.soa)?)))
            .collect()
    }

    /// The most specific served zone containing `qname` (lowercase wire).
    pub fn find_zone(&self, qname: &[u8]) -> Option<&Zone> {
        let mut labels = label_count(qname);
        let mut cur = qname;
        loop {
            if labels < self.min_labels {
                return None;
            }
            if labels <= self.max_labels {
                if let Some(z) = self.zones.get(cur) {
                    return Some(z);
                }
            }
            cur = crate::names::parent(cur)?;
            labels -= 1;
        }
    }

    /// Every served zone, in no particular order.
    pub fn zones(&self) -> impl Iterator<Item = &Zone> {
        self.zones.values()
    }

    /// Where the client is: from ECS when present (source prefix 0 = "do not use my address"),
    /// else from the source address; truncated for privacy, then looked up if `lookup`.
    pub fn locate(&self, source: IpAddr, ecs: Option<&Ecs>, lookup: bool) -> ClientLocation {
        let network = match ecs {
            Some(e) if e.source_prefix == 0 => None,
            Some(e) => Some(truncate(e.addr, e.source_prefix)),
            None => Some(truncate(source, if source.is_ipv4() { 32 } else { 128 })),
        };
        let geo = match (network, &self.geo, lookup) {
            (Some(n), Some(db), true) => db.lookup(n),
            _ => None,
        };
        ClientLocation {
            network,
            from_ecs: ecs.is_some(),
            geo,
        }
    }

    /// Whether `client` may transfer zones.
    pub fn axfr_allowed(&self, client: IpAddr) -> bool {
        self.axfr_allow.iter().any(|n| n.contains(&client))
    }
}
