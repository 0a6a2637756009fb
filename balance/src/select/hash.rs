//! Small deterministic hashes and a per-thread fast RNG for selection (no allocation, no lock).

use std::cell::Cell;
use std::net::IpAddr;

/// splitmix64 finaliser: a good 64-bit mixer.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over bytes, then mixed; stable across runs and versions.
pub fn hash_bytes(b: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// Hash of a client address (what maglev keys on).
#[inline]
pub fn hash_ip(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => mix64(u32::from(v4) as u64),
        IpAddr::V6(v6) => {
            let x = u128::from(v6);
            mix64((x as u64) ^ mix64((x >> 64) as u64))
        }
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(rand::random::<u64>() | 1);
}

/// A fast per-thread random number (wyrand).
#[inline]
pub fn fast_rand() -> u64 {
    RNG.with(|s| {
        let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
        s.set(x);
        let t = (x as u128).wrapping_mul((x ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

/// Uniform in `0..n` (n > 0), without modulo bias worth caring about for small n.
#[inline]
pub fn rand_below(n: u64) -> u64 {
    ((fast_rand() as u128 * n as u128) >> 64) as u64
}
