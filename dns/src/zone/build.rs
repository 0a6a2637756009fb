//! Builds a [`Zone`] from hickory `Record`s (from config or a zone file) and checks it.

use hickory_proto::rr::{DNSClass, Name, RData, Record};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use std::collections::HashMap;

use super::{rtype, Node, Rr, RrSet, Zone};
use crate::names::{is_subdomain, parent, to_text, wire_lower};
use crate::Error;

/// Collects records for one zone; [`ZoneBuilder::build`] validates and freezes them.
pub struct ZoneBuilder {
    origin: Box<[u8]>,
    nodes: HashMap<Box<[u8]>, Node>,
}

impl ZoneBuilder {
    pub fn new(origin: &Name) -> Self {
        Self {
            origin: wire_lower(origin),
            nodes: HashMap::new(),
        }
    }

    fn err(&self, msg: String) -> Error {
        Error::Zone {
            zone: to_text(&self.origin),
            msg,
        }
    }

    /// Adds one record; it must be class IN and inside the zone.
    pub fn add(&mut self, record: &Record) -> Result<(), Error> {
        if record.dns_class != DNSClass::IN {
            return Err(self.err(format!("{}: only class IN is served", record.name)));
        }
        let owner = wire_lower(&record.name);
        if !is_subdomain(&owner, &self.origin) {
            return Err(self.err(format!("{} is outside the zone", record.name)));
        }
        let rr = encode_rr(owner.clone(), record).map_err(|e| self.err(e))?;
        let node = self.nodes.entry(owner).or_default();
        match node.sets.iter_mut().find(|s| s.rtype == rr.rtype) {
            Some(set) => {
                if !set.records.iter().any(|r| r.rdata == rr.rdata) {
                    set.records.push(rr);
                }
            }
            None => node.sets.push(RrSet {
                rtype: rr.rtype,
                records: vec![rr],
            }),
        }
        Ok(())
    }

    /// Validates (one SOA at the apex, NS at the apex, CNAME alone at its name) and adds empty
    /// non-terminals.
    pub fn build(mut self) -> Result<Zone, Error> {
        let apex = self.nodes.get(&self.origin);
        let soa = match apex.and_then(|n| n.get(rtype::SOA)) {
            Some(set) if set.records.len() == 1 => set.records[0].clone(),
            Some(_) => return Err(self.err("more than one SOA record at the apex".into())),
            None => return Err(self.err("no SOA record at the apex".into())),
        };
        if apex.and_then(|n| n.get(rtype::NS)).is_none() {
            return Err(self.err("no NS records at the apex".into()));
        }
        let mut problems = Vec::new();
        for (name, node) in &self.nodes {
            if node.get(rtype::SOA).is_some() && **name != *self.origin {
                problems.push(format!("SOA record at {} below the apex", to_text(name)));
            }
            if node.get(rtype::CNAME).is_some() && (node.sets.len() > 1 || node.gslb.is_some()) {
                problems.push(format!("{} has a CNAME and other data", to_text(name)));
            }
        }
        if let Some(p) = problems.into_iter().next() {
            return Err(self.err(p));
        }
        let minimum = soa_minimum(&soa.rdata);
        let neg_ttl = soa.ttl.min(minimum);
        // zone cuts and empty non-terminals
        let names: Vec<Box<[u8]>> = self.nodes.keys().cloned().collect();
        let mut has_cuts = false;
        let mut has_wildcards = false;
        for name in names {
            if name.starts_with(b"\x01*") {
                has_wildcards = true;
            }
            if *name != *self.origin {
                let node = self.nodes.get_mut(&name).expect("key exists");
                if node.get(rtype::NS).is_some() {
                    node.cut = true;
                    has_cuts = true;
                }
            }
            let mut cur: &[u8] = &name;
            while let Some(p) = parent(cur) {
                if p.len() < self.origin.len() {
                    break;
                }
                self.nodes.entry(p.into()).or_default();
                cur = p;
            }
        }
        Ok(Zone {
            origin: self.origin,
            nodes: self.nodes,
            soa,
            neg_ttl,
            has_wildcards,
            has_cuts,
        })
    }
}

/// MINIMUM is the last 4 bytes of SOA RDATA.
fn soa_minimum(rdata: &[u8]) -> u32 {
    let n = rdata.len();
    if n < 4 {
        return 0;
    }
    u32::from_be_bytes([rdata[n - 4], rdata[n - 3], rdata[n - 2], rdata[n - 1]])
}

/// Encodes RDATA once, uncompressed (compression inside RDATA is optional; RFC 3597 forbids it
/// for types that are not well known anyway).
fn encode_rr(owner: Box<[u8]>, record: &Record) -> Result<Rr, String> {
    let rtype: u16 = record.record_type().into();
    if matches!(rtype, rtype::OPT | rtype::AXFR | rtype::IXFR | rtype::ANY) {
        return Err(format!(
            "{}: type {} cannot be served",
            record.name,
            record.record_type()
        ));
    }
    let mut buf = Vec::with_capacity(32);
    {
        let mut enc = BinEncoder::new(&mut buf);
        enc.set_name_encoding(NameEncoding::Uncompressed);
        record
            .data
            .emit(&mut enc)
            .map_err(|e| format!("{}: {e}", record.name))?;
    }
    if buf.len() > u16::MAX as usize {
        return Err(format!("{}: RDATA too long", record.name));
    }
    let target = match &record.data {
        RData::CNAME(c) => Some(wire_lower(&c.0)),
        RData::NS(ns) => Some(wire_lower(&ns.0)),
        RData::MX(mx) => Some(wire_lower(&mx.exchange)),
        RData::SRV(srv) => Some(wire_lower(&srv.target)),
        _ => None,
    };
    Ok(Rr {
        owner,
        rtype,
        ttl: record.ttl,
        rdata: buf.into_boxed_slice(),
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::parse_zone_file;

    const ZONE: &str = "$ORIGIN example.test.\n$TTL 300\n\
        @ IN SOA ns1 hostmaster 1 3600 900 604800 60\n\
        @ IN NS ns1\nns1 IN A 192.0.2.53\n\
        a.b.c IN A 192.0.2.1\nsub IN NS ns.sub\nns.sub IN A 192.0.2.9\n*.wild IN A 192.0.2.99\n";

    #[test]
    fn builds_with_negative_ttl_cuts_and_empty_non_terminals() {
        let z = parse_zone_file(ZONE, Some("example.test.")).unwrap();
        assert_eq!(z.neg_ttl, 60);
        assert!(z.has_cuts && z.has_wildcards);
        let bc = wire_lower(&Name::from_ascii("b.c.example.test.").unwrap());
        assert!(z.nodes[&bc].sets.is_empty());
        let sub = wire_lower(&Name::from_ascii("sub.example.test.").unwrap());
        assert!(z.nodes[&sub].cut);
        assert!(!z.nodes[&z.origin].cut);
    }

    #[test]
    fn rejects_cname_with_other_data_and_missing_soa() {
        let bad = format!("{ZONE}x IN CNAME ns1\nx IN TXT \"hi\"\n");
        let e = parse_zone_file(&bad, Some("example.test."))
            .unwrap_err()
            .to_string();
        assert!(e.contains("CNAME and other data"), "{e}");
        let e = parse_zone_file("$ORIGIN example.test.\n@ 60 IN NS ns1\n", None).unwrap_err();
        assert!(e.to_string().contains("no SOA"), "{e}");
    }
}
