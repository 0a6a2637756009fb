//! Client location from MaxMind databases (`maxminddb`): country, continent, coordinates.
//!
//! Lookups take the client network *after* privacy truncation (/24 IPv4, /56 IPv6). When the
//! truncated address itself has no entry, the networks inside the truncated prefix are consulted
//! and the location covering most of it wins: the decision still depends only on the truncated
//! prefix, so it is the same for every client in it (and the ECS scope says so).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::IpNet;
use serde::Deserialize;

use crate::Error;

/// The most of an IPv4 client address that is looked at, bits (RFC 7871 §11.1 recommends /24).
pub const MAX_V4_PREFIX: u8 = 24;
/// The most of an IPv6 client address that is looked at, bits (RFC 7871 §11.1 recommends /56).
pub const MAX_V6_PREFIX: u8 = 56;

/// The result of one lookup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoInfo {
    /// ISO 3166-1 alpha-2 country code (`GB`).
    pub country: Option<[u8; 2]>,
    /// Continent code (`EU`).
    pub continent: Option<[u8; 2]>,
    /// (latitude, longitude), from a City database.
    pub coordinates: Option<(f64, f64)>,
    /// Prefix length of the database network that decided.
    pub prefix: u8,
}

/// An opened geo database (Country or City; City also gives coordinates).
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
    /// Unique per opened database: keys the per-thread lookup cache.
    id: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Entries per thread before the cache starts over.
const CACHE_ENTRIES: usize = 16 * 1024;

thread_local! {
    /// Decoding a MaxMind record costs microseconds; the answer depends only on the truncated
    /// network, so each worker thread remembers recent ones (no lock on the hot path).
    static CACHE: RefCell<HashMap<(u64, IpNet), Option<GeoInfo>>> = RefCell::new(HashMap::new());
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb")
            .field("type", &self.reader.metadata.database_type)
            .finish()
    }
}

#[derive(Deserialize)]
struct Rec<'a> {
    #[serde(borrow)]
    country: Option<Country<'a>>,
    #[serde(borrow)]
    registered_country: Option<Country<'a>>,
    #[serde(borrow)]
    continent: Option<Continent<'a>>,
    location: Option<Location>,
}

#[derive(Deserialize)]
struct Country<'a> {
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Continent<'a> {
    code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

fn code2(s: Option<&str>) -> Option<[u8; 2]> {
    let b = s?.as_bytes();
    (b.len() == 2).then(|| [b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()])
}

impl Rec<'_> {
    fn info(&self, prefix: u8) -> GeoInfo {
        let country = self
            .country
            .as_ref()
            .and_then(|c| code2(c.iso_code))
            .or_else(|| {
                self.registered_country
                    .as_ref()
                    .and_then(|c| code2(c.iso_code))
            });
        GeoInfo {
            country,
            continent: self.continent.as_ref().and_then(|c| code2(c.code)),
            coordinates: self
                .location
                .as_ref()
                .and_then(|l| Some((l.latitude?, l.longitude?))),
            prefix,
        }
    }
}

/// Truncates a client network to what we are willing to look at.
pub fn truncate(addr: IpAddr, prefix: u8) -> IpNet {
    let max = if addr.is_ipv4() {
        MAX_V4_PREFIX
    } else {
        MAX_V6_PREFIX
    };
    IpNet::new(addr, prefix.min(max))
        .expect("prefix within family bounds")
        .trunc()
}

impl GeoDb {
    /// Opens a MaxMind (`.mmdb`) database file.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let reader = maxminddb::Reader::open_readfile(path)
            .map_err(|e| Error::Geo(format!("{}: {e}", path.display())))?;
        Ok(Self {
            reader,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Reads a MaxMind database from memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, Error> {
        let reader =
            maxminddb::Reader::from_source(bytes).map_err(|e| Error::Geo(e.to_string()))?;
        Ok(Self {
            reader,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Location of an (already truncated) client network, cached per thread.
    pub fn lookup(&self, net: IpNet) -> Option<GeoInfo> {
        let key = (self.id, net);
        if let Some(hit) = CACHE.with(|c| c.borrow().get(&key).copied()) {
            return hit;
        }
        let info = self.lookup_uncached(net);
        CACHE.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() >= CACHE_ENTRIES {
                c.clear();
            }
            c.insert(key, info);
        });
        info
    }

    /// Location of an (already truncated) client network, straight from the database.
    pub fn lookup_uncached(&self, net: IpNet) -> Option<GeoInfo> {
        let addr = net.network();
        let (rec, db_prefix) = self.reader.lookup_prefix::<Rec<'_>>(addr).ok()?;
        // maxminddb reports IPv4 prefixes in the IPv4 space already
        let db_prefix = db_prefix as u8;
        if let Some(rec) = rec {
            return Some(rec.info(db_prefix.min(net.prefix_len())));
        }
        if db_prefix <= net.prefix_len() {
            // the database says: nothing for this whole (wider) network
            return None;
        }
        self.majority_within(net)
    }

    /// The location covering most addresses of `net`, from the database networks inside it.
    fn majority_within(&self, net: IpNet) -> Option<GeoInfo> {
        let cidr = ipnetwork::IpNetwork::new(net.network(), net.prefix_len()).ok()?;
        let iter = self.reader.within::<Rec<'_>>(cidr).ok()?;
        let mut best: Option<(u128, GeoInfo)> = None;
        let mut tally: Vec<(u128, GeoInfo)> = Vec::new();
        for item in iter.take(4096) {
            let Ok(item) = item else { continue };
            let bits = if item.ip_net.is_ipv4() { 32 } else { 128 };
            let size = 1u128 << (bits - item.ip_net.prefix() as u32).min(127);
            let info = item.info.info(net.prefix_len());
            match tally.iter_mut().find(|(_, i)| same_place(i, &info)) {
                Some((n, _)) => *n += size,
                None => tally.push((size, info)),
            }
        }
        for (n, info) in tally {
            if best.is_none_or(|(b, _)| n > b) {
                best = Some((n, info));
            }
        }
        best.map(|(_, i)| i)
    }
}

fn same_place(a: &GeoInfo, b: &GeoInfo) -> bool {
    a.country == b.country && a.continent == b.continent && a.coordinates == b.coordinates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(name: &str) -> GeoDb {
        GeoDb::open(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../testdata/geo")
                .join(name),
        )
        .unwrap()
    }

    fn net(s: &str) -> IpNet {
        let n: IpNet = s.parse().unwrap();
        truncate(n.addr(), n.prefix_len())
    }

    #[test]
    fn truncates_for_privacy() {
        assert_eq!(net("81.2.69.160/27").to_string(), "81.2.69.0/24");
        assert_eq!(net("2001:218:1:2:3::/80").to_string(), "2001:218:1::/56");
        assert_eq!(net("10.1.2.3/8").to_string(), "10.0.0.0/8");
    }

    #[test]
    fn country_db_locates_the_test_networks() {
        let d = db("GeoLite2-Country-Test.mmdb");
        let gb = d.lookup(net("81.2.69.160/27")).unwrap();
        assert_eq!(
            (gb.country, gb.continent, gb.prefix),
            (Some(*b"GB"), Some(*b"EU"), 24)
        );
        let us = d.lookup(net("216.160.83.56/29")).unwrap();
        assert_eq!((us.country, us.continent), (Some(*b"US"), Some(*b"NA")));
        let ph = d.lookup(net("202.196.224.0/24")).unwrap();
        assert_eq!((ph.country, ph.prefix), (Some(*b"PH"), 20));
        let jp = d.lookup(net("2001:218::/32")).unwrap();
        assert_eq!((jp.country, jp.prefix), (Some(*b"JP"), 32));
        assert_eq!(d.lookup(net("127.0.0.1/32")), None);
    }

    #[test]
    fn city_db_gives_coordinates() {
        let d = db("GeoLite2-City-Test.mmdb");
        let gb = d.lookup(net("81.2.69.160/27")).unwrap();
        let (lat, lon) = gb.coordinates.unwrap();
        assert!(
            (lat - 51.5142).abs() < 0.01 && (lon + 0.0931).abs() < 0.01,
            "{lat},{lon}"
        );
    }
}
