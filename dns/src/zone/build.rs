//! Builds a [`Zone`] from the records of a zone file (ours: [`super::reader`]) and checks it.

use std::collections::HashMap;

use super::reader::Entry;
use super::{rtype, Node, Rr, RrSet, Zone};
use crate::names::{is_subdomain, parent, to_text};
use crate::Error;

/// Collects records for one zone; [`ZoneBuilder::build`] validates and freezes them.
pub struct ZoneBuilder {
    origin: Box<[u8]>,
    nodes: HashMap<Box<[u8]>, Node>,
    /// Where each RRset got its first record (for the one-TTL warning).
    ttl_warned: Vec<(Box<[u8]>, u16)>,
}

/// Lowercase copy of a wire name (the label length bytes are below 64: never letters).
pub(crate) fn lower(wire: &[u8]) -> Box<[u8]> {
    wire.iter().map(u8::to_ascii_lowercase).collect()
}

impl ZoneBuilder {
    /// A builder for the zone at `origin` (wire format, any case).
    pub fn new(origin: &[u8]) -> Self {
        Self {
            origin: lower(origin),
            nodes: HashMap::new(),
            ttl_warned: Vec::new(),
        }
    }

    fn err(&self, msg: String) -> Error {
        Error::Zone {
            zone: to_text(&self.origin),
            msg,
        }
    }

    /// Adds one record; it must be class IN and inside the zone. Records of one RRset with
    /// different TTLs get one TTL, the lowest (RFC 2181 §5.2), with a warning.
    pub fn add(&mut self, e: &Entry) -> Result<(), Error> {
        if e.class != 1 {
            return Err(self.err(format!("{}: only class IN is served", e.at)));
        }
        let owner = lower(&e.owner);
        if !is_subdomain(&owner, &self.origin) {
            return Err(self.err(format!("{}: {} is outside the zone", e.at, to_text(&owner))));
        }
        let rr = Rr {
            owner: owner.clone(),
            rtype: e.rtype,
            ttl: e.ttl,
            rdata: e.rdata.clone().into_boxed_slice(),
            target: e.target.as_deref().map(lower),
        };
        let node = self.nodes.entry(owner.clone()).or_default();
        match node.sets.iter_mut().find(|s| s.rtype == rr.rtype) {
            Some(set) => {
                let set_ttl = set.records[0].ttl;
                if set_ttl != rr.ttl {
                    let key = (owner, rr.rtype);
                    if !self.ttl_warned.contains(&key) {
                        tracing::warn!(
                            zone = %to_text(&self.origin),
                            at = %e.at,
                            owner = %to_text(&key.0),
                            rtype = rr.rtype,
                            "records of one RRset with different TTLs: the lowest applies to all (RFC 2181 §5.2)"
                        );
                        self.ttl_warned.push(key);
                    }
                    let ttl = set_ttl.min(rr.ttl);
                    for r in &mut set.records {
                        r.ttl = ttl;
                    }
                }
                let ttl = set.records[0].ttl;
                if !set.records.iter().any(|r| r.rdata == rr.rdata) {
                    set.records.push(Rr { ttl, ..rr });
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
        // RRsets of a node in type order: minimal ANY (RFC 8482) answers the first, the one
        // with the lowest type number, as Knot does
        for node in self.nodes.values_mut() {
            node.sets.sort_by_key(|s| s.rtype);
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
            signing: None,
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

#[cfg(test)]
mod tests {
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
        let bc: &[u8] = b"\x01b\x01c\x07example\x04test\x00";
        assert!(z.nodes[bc].sets.is_empty());
        let sub: &[u8] = b"\x03sub\x07example\x04test\x00";
        assert!(z.nodes[sub].cut);
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

    #[test]
    fn one_ttl_per_rrset_the_lowest() {
        let z = parse_zone_file(
            &format!("{ZONE}m 100 A 192.0.2.1\nm 50 A 192.0.2.2\nm 200 A 192.0.2.3\n"),
            None,
        )
        .unwrap();
        let m: &[u8] = b"\x01m\x07example\x04test\x00";
        let ttls: Vec<u32> = z.nodes[m].sets[0].records.iter().map(|r| r.ttl).collect();
        assert_eq!(ttls, [50, 50, 50]);
    }

    #[test]
    fn the_shipped_zone_files_load() {
        for text in [
            include_str!("../../benches/data/example.test.zone"),
            include_str!("../../tests/it/data/test.zone"),
            include_str!("../../../benches/harness/templates/example.test.zone"),
        ] {
            parse_zone_file(text, None).unwrap();
        }
    }
}
