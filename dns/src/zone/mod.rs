//! Immutable zone data: nodes keyed by lowercase wire name, each holding its RRsets with the RDATA
//! already encoded, so answering copies bytes instead of serializing records per query.

mod build;
mod file;
pub mod reader;

pub use build::ZoneBuilder;
pub use file::{parse_zone_file, parse_zone_text};

use std::collections::HashMap;
use std::sync::Arc;

use crate::gslb::GslbName;

/// Record type codes used by the answering logic.
pub mod rtype {
    /// IPv4 address (RFC 1035).
    pub const A: u16 = 1;
    /// Authoritative name server (RFC 1035).
    pub const NS: u16 = 2;
    /// Canonical name (RFC 1035).
    pub const CNAME: u16 = 5;
    /// Start of authority (RFC 1035).
    pub const SOA: u16 = 6;
    /// Domain name pointer (RFC 1035).
    pub const PTR: u16 = 12;
    /// Mail exchange (RFC 1035).
    pub const MX: u16 = 15;
    /// Text strings (RFC 1035).
    pub const TXT: u16 = 16;
    /// IPv6 address (RFC 3596).
    pub const AAAA: u16 = 28;
    /// Service location (RFC 2782).
    pub const SRV: u16 = 33;
    /// EDNS(0) pseudo-record (RFC 6891).
    pub const OPT: u16 = 41;
    /// Delegation signer (RFC 4034).
    pub const DS: u16 = 43;
    /// RRset signature (RFC 4034).
    pub const RRSIG: u16 = 46;
    /// Next secure record (RFC 4034).
    pub const NSEC: u16 = 47;
    /// Zone signing public key (RFC 4034).
    pub const DNSKEY: u16 = 48;
    /// Incremental zone transfer query type (RFC 1995); answered as AXFR.
    pub const IXFR: u16 = 251;
    /// Full zone transfer query type (RFC 5936).
    pub const AXFR: u16 = 252;
    /// Query type matching every type (RFC 1035, RFC 8482).
    pub const ANY: u16 = 255;
}

/// One resource record, ready to be written: RDATA is pre-encoded (names uncompressed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rr {
    /// Owner name, lowercase wire format.
    pub owner: Box<[u8]>,
    /// Record type code ([`rtype`]).
    pub rtype: u16,
    /// Time to live, seconds.
    pub ttl: u32,
    /// RDATA in wire format.
    pub rdata: Box<[u8]>,
    /// The domain name inside the RDATA that additional-section processing or CNAME chasing
    /// follows (CNAME/NS target, MX exchange, SRV target), lowercase wire format.
    pub target: Option<Box<[u8]>>,
}

/// All records of one type at one name.
#[derive(Debug, Clone)]
pub struct RrSet {
    /// Record type code ([`rtype`]).
    pub rtype: u16,
    /// The records of the set.
    pub records: Vec<Rr>,
}

/// A name in the zone. A node with no RRsets and no GSLB name is an empty non-terminal
/// (it exists because names below it exist: NODATA, not NXDOMAIN).
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// RRsets at this name, sorted by type, one per type.
    pub sets: Vec<RrSet>,
    /// A GSLB name answers A/AAAA from the balancer's choice instead of static data.
    pub gslb: Option<Arc<GslbName>>,
    /// NS records below the apex: a zone cut, answered with a referral.
    pub cut: bool,
}

impl Node {
    /// The RRset of type `rtype`, if the node has one.
    pub fn get(&self, rtype: u16) -> Option<&RrSet> {
        self.sets.iter().find(|s| s.rtype == rtype)
    }
}

/// One served zone.
#[derive(Debug)]
pub struct Zone {
    /// Apex, lowercase wire format.
    pub origin: Box<[u8]>,
    /// Every name of the zone (including empty non-terminals), keyed by lowercase wire name.
    pub nodes: HashMap<Box<[u8]>, Node>,
    /// The apex SOA record as stored.
    pub soa: Rr,
    /// TTL of the SOA in negative answers: min(SOA TTL, SOA MINIMUM) (RFC 2308 §3).
    pub neg_ttl: u32,
    /// Whether any wildcard owner exists (skips the wildcard probe when not).
    pub has_wildcards: bool,
    /// Whether any delegation exists (skips the cut walk when not).
    pub has_cuts: bool,
    /// Online DNSSEC signing, when the zone has keys.
    pub signing: Option<crate::dnssec::Signing>,
}

impl Zone {
    /// Signs the zone online with `signing`: publishes its DNSKEY RRset at the apex (TTL of
    /// the SOA) and keeps the keys for answering.
    pub fn sign_with(&mut self, signing: crate::dnssec::ZoneSigning) {
        let rrs = signing.dnskey_rrs(self.soa.ttl);
        let apex = self.nodes.entry(self.origin.clone()).or_default();
        apex.sets.retain(|s| s.rtype != rtype::DNSKEY);
        apex.sets.push(RrSet {
            rtype: rtype::DNSKEY,
            records: rrs,
        });
        apex.sets.sort_by_key(|s| s.rtype);
        self.signing = Some(std::sync::Arc::new(signing));
    }

    /// Text form of the apex (`example.test.`).
    pub fn origin_text(&self) -> String {
        crate::names::to_text(&self.origin)
    }

    /// Every record of the zone in transfer order (SOA first; the caller repeats it last).
    pub fn transfer_records(&self) -> Vec<&Rr> {
        let mut names: Vec<&Box<[u8]>> = self.nodes.keys().collect();
        names.sort_by_key(|n| (crate::names::label_count(n), n.to_vec()));
        let mut out = vec![&self.soa];
        for name in names {
            for set in &self.nodes[name].sets {
                out.extend(set.records.iter().filter(|r| r.rtype != rtype::SOA));
            }
        }
        out
    }
}
