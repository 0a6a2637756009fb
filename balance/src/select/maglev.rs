//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), weight-aware.
//!
//! The lookup table has a prime size (65537 by default); each member fills slots along its own
//! permutation, taking `weight` turns per round. When a member is merely *unavailable*, lookups
//! probe further slots (re-hashing), so only that member's clients move; when a member is
//! *removed* and the table rebuilt, Maglev's construction keeps most other clients in place.

use super::hash::{hash_bytes, mix64};

/// Default table size: a prime well above 100 × the member count of any sane pool.
pub const TABLE_SIZE: usize = 65537;
const EMPTY: u32 = u32::MAX;

/// A built lookup table of member positions.
#[derive(Debug, Clone)]
pub struct Maglev {
    table: Box<[u32]>,
}

impl Maglev {
    /// Builds a table of `size` (a prime) slots for members with these stable keys and weights.
    /// Members with weight 0 get no slot. Returns a table of `EMPTY`-free slots if any weight > 0.
    pub fn build(keys: &[&[u8]], weights: &[u32], size: usize) -> Maglev {
        assert_eq!(keys.len(), weights.len());
        let n = keys.len();
        let mut table = vec![EMPTY; size].into_boxed_slice();
        let g = weights.iter().copied().filter(|&w| w > 0).fold(0, gcd);
        if n == 0 || g == 0 || size < 2 {
            return Maglev { table };
        }
        let turns: Vec<u64> = weights.iter().map(|&w| (w / g) as u64).collect();
        let offset: Vec<u64> = keys
            .iter()
            .map(|k| hash_bytes(k, 0x6d61_676c) % size as u64)
            .collect();
        let skip: Vec<u64> = keys
            .iter()
            .map(|k| hash_bytes(k, 0x6576_6121) % (size as u64 - 1) + 1)
            .collect();
        let mut next = vec![0u64; n];
        let mut filled = 0usize;
        'outer: loop {
            for i in 0..n {
                for _ in 0..turns[i] {
                    let mut c = (offset[i] + next[i] * skip[i]) % size as u64;
                    while table[c as usize] != EMPTY {
                        next[i] += 1;
                        c = (offset[i] + next[i] * skip[i]) % size as u64;
                    }
                    table[c as usize] = i as u32;
                    next[i] += 1;
                    filled += 1;
                    if filled == size {
                        break 'outer;
                    }
                }
            }
        }
        Maglev { table }
    }

    /// Number of backends in the table.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when the table has no backends.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The member for `hash`, probing further while `avail` rejects it (up to `tries` probes).
    #[inline]
    pub fn lookup(&self, hash: u64, tries: u32, avail: impl Fn(usize) -> bool) -> Option<usize> {
        let size = self.table.len() as u64;
        if size == 0 {
            return None;
        }
        let mut h = hash;
        for _ in 0..tries.max(1) {
            let m = self.table[(h % size) as usize];
            if m != EMPTY && avail(m as usize) {
                return Some(m as usize);
            }
            h = mix64(h ^ 0x5bd1_e995);
        }
        None
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::hash::mix64;

    fn keys(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("backend-{i}").into_bytes())
            .collect()
    }

    fn build(k: &[Vec<u8>], w: &[u32]) -> Maglev {
        let refs: Vec<&[u8]> = k.iter().map(|k| k.as_slice()).collect();
        Maglev::build(&refs, w, TABLE_SIZE)
    }

    #[test]
    fn slots_follow_weights() {
        let k = keys(3);
        let m = build(&k, &[1, 2, 1]);
        let mut c = [0usize; 3];
        for &s in m.table.iter() {
            c[s as usize] += 1;
        }
        let total = TABLE_SIZE as f64;
        assert!((c[1] as f64 / total - 0.5).abs() < 0.01, "{c:?}");
        assert!((c[0] as f64 / total - 0.25).abs() < 0.01, "{c:?}");
    }

    #[test]
    fn removal_moves_about_one_nth() {
        let n = 10;
        let k = keys(n);
        let before = build(&k, &vec![1; n]);
        // member 3 leaves: rebuild with the remaining keys (indices shift above 3)
        let k2: Vec<Vec<u8>> = k
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 3)
            .map(|(_, k)| k.clone())
            .collect();
        let after = build(&k2, &vec![1; n - 1]);
        let map_after = |i: usize| if i >= 3 { i + 1 } else { i };
        let clients = 100_000u64;
        let mut moved = 0;
        for c in 0..clients {
            let h = mix64(c);
            let a = before.lookup(h, 1, |_| true).unwrap();
            let b = map_after(after.lookup(h, 1, |_| true).unwrap());
            if a != b {
                moved += 1;
            }
        }
        let frac = moved as f64 / clients as f64;
        assert!(frac < 1.0 / n as f64 * 1.3, "moved {frac}");
        assert!(frac > 1.0 / n as f64 * 0.8, "moved {frac}");
    }

    #[test]
    fn unavailable_member_moves_only_its_clients() {
        let k = keys(5);
        let m = build(&k, &[1; 5]);
        for c in 0..20_000u64 {
            let h = mix64(c);
            let a = m.lookup(h, 1, |_| true).unwrap();
            let b = m.lookup(h, 64, |i| i != 2).unwrap();
            assert!(a == b || a == 2);
            assert_ne!(b, 2);
        }
    }
}
