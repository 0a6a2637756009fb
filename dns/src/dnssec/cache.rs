//! The signature cache: each distinct RRset (owner, type, TTL, RDATA set, key) is signed
//! once and its RRSIG reused until a quarter of its validity is left. GSLB answers are
//! RRsets like any other, so a hot answer is signed once per validity window.
//!
//! One cache per UDP worker (no sharing, so its mutex is never contended) and one shared by
//! TCP connections. Bounded: when full it is emptied (entries are cheap to remake).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use super::sign::rrsig;
use super::ZoneSigning;
use crate::zone::Rr;

/// Most signatures one cache holds.
pub const MAX_ENTRIES: usize = 100_000;

struct Entry {
    rrsig: Arc<Rr>,
    /// Unix time after which it is signed again.
    refresh_at: u32,
}

/// Cached RRSIGs by RRset hash.
#[derive(Default)]
pub struct SigCache {
    map: HashMap<u64, Entry>,
}

/// What [`SigCache::get`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Got {
    /// A cached RRSIG was returned.
    Hit,
    /// A new RRSIG was made (and cached).
    Signed,
}

fn h<T: Hash>(t: T) -> u64 {
    let mut s = DefaultHasher::new();
    t.hash(&mut s);
    s.finish()
}

impl SigCache {
    /// The RRSIG of the RRset `owner`/`rtype`/`ttl` with RDATA `rdatas` (any order), made
    /// now if not cached or near expiry.
    pub fn get<'r>(
        &mut self,
        z: &ZoneSigning,
        owner: &[u8],
        rtype: u16,
        ttl: u32,
        rdatas: impl Iterator<Item = &'r [u8]> + Clone,
        now: u32,
    ) -> Option<(Arc<Rr>, Got)> {
        // order-independent: the sum of the records' hashes
        let set = rdatas.clone().fold(0u64, |acc, r| acc.wrapping_add(h(r)));
        let key = h((owner, rtype, ttl, z.active().tag, set, &z.apex));
        if let Some(e) = self.map.get(&key) {
            if now < e.refresh_at {
                return Some((e.rrsig.clone(), Got::Hit));
            }
        }
        let list: Vec<&[u8]> = rdatas.collect();
        let validity = z.validity.as_secs() as u32;
        // up to a tenth of the validity more, so signatures made together expire apart
        let jitter = (key % (validity as u64 / 10).max(1)) as u32;
        let rr = match rrsig(z, owner, rtype, ttl, &list, now, jitter) {
            Ok(rr) => Arc::new(rr),
            Err(e) => {
                tracing::warn!(error = %e, "dnssec signing failed");
                return None;
            }
        };
        if self.map.len() >= MAX_ENTRIES {
            self.map.clear();
        }
        self.map.insert(
            key,
            Entry {
                rrsig: rr.clone(),
                refresh_at: now.saturating_add(validity - validity / 4),
            },
        );
        Some((rr, Got::Signed))
    }
}
