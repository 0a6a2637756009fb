//! Response rate limiting (RRL) for UDP, so a server people delegate a public test domain to
//! cannot be used to reflect and amplify traffic at a spoofed victim.
//!
//! Each client network (`/24` for IPv4, `/56` for IPv6 by default) has a token bucket of
//! `burst` responses refilled at `responses_per_second`. Over the limit, every `slip`-th
//! response is sent truncated (TC=1, question only: a real client retries over TCP, which
//! cannot be spoofed) and the rest are dropped. This is the per-network half of BIND's and
//! Knot's RRL; responses are not further classified by name or type.
//!
//! Each UDP worker keeps its own table (no lock per packet; with `SO_REUSEPORT` the kernel
//! sends one client's datagrams to the same socket). A table holds at most [`MAX_NETWORKS`]
//! networks: when full, networks whose bucket has refilled are forgotten (a full bucket and
//! no entry mean the same), and if that is not enough the table starts over.

use std::collections::HashMap;
use std::net::IpAddr;

use switchyard_config::dns::Rrl;

/// Networks one worker tracks at most.
pub const MAX_NETWORKS: usize = 65_536;

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: send it.
    Send,
    /// Send it truncated (see [`truncate`]).
    Slip,
    /// Over the limit: send nothing.
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// In thousandths of a response.
    milli_tokens: u64,
    /// When the bucket was last refilled, in ms.
    at_ms: u64,
    /// Responses limited since the bucket last had a token (for `slip`).
    limited: u32,
}

/// One worker's buckets.
#[derive(Debug, Default)]
pub struct Limiter {
    buckets: HashMap<u128, Bucket>,
}

impl Limiter {
    /// The verdict for one response to `client` at `now_ms` (any monotonic clock in ms).
    pub fn check(&mut self, spec: &Rrl, client: IpAddr, now_ms: u64) -> Verdict {
        let cap = u64::from(spec.burst) * 1000;
        let rate = u64::from(spec.responses_per_second);
        if self.buckets.len() >= MAX_NETWORKS {
            self.forget_full(cap, rate, now_ms);
        }
        let b = self.buckets.entry(network(spec, client)).or_insert(Bucket {
            milli_tokens: cap,
            at_ms: now_ms,
            limited: 0,
        });
        // `rate` responses per second = `rate` thousandths per ms
        let refill = now_ms.saturating_sub(b.at_ms).saturating_mul(rate);
        b.milli_tokens = b.milli_tokens.saturating_add(refill).min(cap);
        b.at_ms = now_ms;
        if b.milli_tokens >= 1000 {
            b.milli_tokens -= 1000;
            b.limited = 0;
            return Verdict::Send;
        }
        b.limited = b.limited.saturating_add(1);
        if spec.slip > 0 && b.limited.is_multiple_of(spec.slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }

    fn forget_full(&mut self, cap: u64, rate: u64, now_ms: u64) {
        let refill_ms = cap / rate.max(1) + 1;
        self.buckets
            .retain(|_, b| now_ms.saturating_sub(b.at_ms) < refill_ms);
        if self.buckets.len() >= MAX_NETWORKS {
            self.buckets.clear();
        }
    }

    /// Networks tracked now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no network is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// The client's network as a table key (the address family is part of it).
fn network(spec: &Rrl, ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let masked = match spec.ipv4_prefix {
                0 => 0,
                p => bits & (u32::MAX << (32 - u32::from(p))),
            };
            // IPv4 keys live above every IPv6 /120 network key's range
            (1u128 << 127) | u128::from(masked)
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            match spec.ipv6_prefix {
                0 => 0,
                p => (bits & (u128::MAX << (128 - u32::from(p)))) >> 1,
            }
        }
    }
}

/// Cuts a response down to its header and question with TC=1 and no records, so the client
/// retries over TCP. A response too mangled to cut is cleared (then not sent).
pub fn truncate(resp: &mut Vec<u8>) {
    if resp.len() < 12 {
        resp.clear();
        return;
    }
    let qdcount = u16::from_be_bytes([resp[4], resp[5]]);
    let mut end = 12;
    for _ in 0..qdcount {
        let Some(after) = skip_name(resp, end).map(|e| e + 4) else {
            resp.clear();
            return;
        };
        if after > resp.len() {
            resp.clear();
            return;
        }
        end = after;
    }
    // keep the OPT record (always written last): a reply to an EDNS query has one (RFC 6891 §7)
    let opt = opt_record(resp, end);
    let mut arcount = 0u16;
    if let Some((at, len)) = opt {
        resp.copy_within(at..at + len, end);
        end += len;
        arcount = 1;
    }
    resp.truncate(end);
    resp[2] |= 0x02; // TC
    resp[6..10].fill(0); // ANCOUNT, NSCOUNT
    resp[10..12].copy_from_slice(&arcount.to_be_bytes());
}

/// Where the OPT record of a response is (offset, length), walking the records after `at`.
fn opt_record(msg: &[u8], mut at: usize) -> Option<(usize, usize)> {
    let c = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]) as usize;
    let records = c(6) + c(8) + c(10);
    for _ in 0..records {
        let start = at;
        let after_name = skip_name(msg, at)?;
        let fixed = msg.get(after_name..after_name + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        at = after_name + 10 + rdlen;
        if at > msg.len() {
            return None;
        }
        if rtype == crate::zone::rtype::OPT {
            return Some((start, at - start));
        }
    }
    None
}

/// The offset just past the name at `at` (labels, or a compression pointer).
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)? as usize;
        match len {
            0 => return Some(at + 1),
            l if l & 0xC0 == 0xC0 => return (at + 2 <= msg.len()).then_some(at + 2),
            l if l < 64 => at += 1 + l,
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rate: u32, burst: u32, slip: u32) -> Rrl {
        Rrl {
            responses_per_second: rate,
            burst,
            slip,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_network_gets_its_burst_then_its_rate_and_every_slip_th_is_truncated() {
        let s = spec(10, 3, 2);
        let mut l = Limiter::default();
        let got: Vec<_> = (0..7).map(|_| l.check(&s, ip("192.0.2.1"), 1000)).collect();
        use Verdict::*;
        assert_eq!(got, [Send, Send, Send, Drop, Slip, Drop, Slip]);
        // the same /24 shares the bucket; another /24 and IPv6 do not
        assert_eq!(l.check(&s, ip("192.0.2.200"), 1000), Drop);
        assert_eq!(l.check(&s, ip("192.0.3.1"), 1000), Send);
        assert_eq!(l.check(&s, ip("2001:db8::1"), 1000), Send);
        // 10/s: one token per 100 ms
        assert_eq!(l.check(&s, ip("192.0.2.1"), 1099), Slip);
        assert_eq!(l.check(&s, ip("192.0.2.1"), 1100), Send);
        assert_eq!(l.check(&s, ip("192.0.2.1"), 1100), Drop);
        // a long pause refills up to the burst only
        let after: Vec<_> = (0..4)
            .map(|_| l.check(&s, ip("192.0.2.9"), 60_000))
            .collect();
        assert_eq!(after, [Send, Send, Send, Drop]);
    }

    #[test]
    fn slip_zero_drops_everything_over_the_limit() {
        let s = spec(1, 1, 0);
        let mut l = Limiter::default();
        assert_eq!(l.check(&s, ip("10.0.0.1"), 0), Verdict::Send);
        assert!((0..10).all(|_| l.check(&s, ip("10.0.0.1"), 0) == Verdict::Drop));
    }

    #[test]
    fn ipv6_networks_are_grouped_by_their_prefix() {
        let s = spec(1, 1, 0);
        let mut l = Limiter::default();
        assert_eq!(l.check(&s, ip("2001:db8:0:ff::1"), 0), Verdict::Send);
        // same /56
        assert_eq!(l.check(&s, ip("2001:db8:0:1::2"), 0), Verdict::Drop);
        // another /56
        assert_eq!(l.check(&s, ip("2001:db8:0:100::1"), 0), Verdict::Send);
        // an IPv4 network never collides with an IPv6 one
        assert_eq!(l.check(&s, ip("0.0.0.0"), 0), Verdict::Send);
        assert_eq!(l.check(&s, ip("::"), 0), Verdict::Send);
    }

    #[test]
    fn the_table_is_bounded() {
        let s = spec(1000, 1, 0);
        let mut l = Limiter::default();
        for i in 0..(MAX_NETWORKS as u32 + 10) {
            l.check(&s, IpAddr::from((i << 8).to_be_bytes()), 0);
        }
        assert!(l.len() <= MAX_NETWORKS);
        // at a later time every bucket has refilled: all forgotten but the new one
        l.check(&s, ip("10.0.0.1"), 10_000);
        assert!(l.len() < 100, "{}", l.len());
    }

    #[test]
    fn truncate_keeps_header_and_question_only() {
        // id, flags (QR AA), 1 question, 1 answer, 0, 1 additional
        let mut m = vec![0x12, 0x34, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 1];
        m.extend_from_slice(b"\x03www\x07example\x04test\x00\x00\x01\x00\x01");
        let q_end = m.len();
        m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        m.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
        truncate(&mut m);
        assert_eq!(m.len(), q_end + 11, "the OPT stays (RFC 6891 §7)");
        assert_eq!(&m[..12], &[0x12, 0x34, 0x86, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&m[q_end..], &[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
        let mut bad = vec![0u8; 12];
        bad[5] = 1; // a question that is not there
        truncate(&mut bad);
        assert!(bad.is_empty());
    }
}
