//! PROXY protocol v1 (text) and v2 (binary) header parsing, for connections from trusted peers.
//!
//! Sans-IO: [`parse`] looks at the first bytes of a connection and says whether a header is
//! there, how long it is, and which client address it carries.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a PROXY header: the bytes are the request itself.
    Absent,
    /// More bytes are needed to decide.
    Incomplete,
    /// A header of this many bytes; `None` for `UNKNOWN` / `LOCAL`.
    Header(usize, Option<SocketAddr>),
    Invalid,
}

pub fn parse(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::Incomplete;
    }
    if buf[0] == b'P' {
        let prefix = &b"PROXY "[..buf.len().min(6)];
        if buf[..prefix.len()] != *prefix {
            return Parsed::Absent;
        }
        return parse_v1(buf);
    }
    if buf[0] == b'\r' {
        let n = buf.len().min(12);
        if buf[..n] != V2_SIG[..n] {
            return Parsed::Absent;
        }
        return parse_v2(buf);
    }
    Parsed::Absent
}

fn parse_v1(buf: &[u8]) -> Parsed {
    let Some(end) = buf.windows(2).take(107).position(|w| w == b"\r\n") else {
        return if buf.len() >= 107 {
            Parsed::Invalid
        } else {
            Parsed::Incomplete
        };
    };
    let Ok(line) = std::str::from_utf8(&buf[..end]) else {
        return Parsed::Invalid;
    };
    let parts: Vec<&str> = line.split(' ').collect();
    match parts.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Parsed::Header(end + 2, None),
        ["PROXY", fam @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let (ip, dst_ok) = match *fam {
                "TCP4" => (
                    src.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
                    dst.parse::<Ipv4Addr>().is_ok(),
                ),
                _ => (
                    src.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
                    dst.parse::<Ipv6Addr>().is_ok(),
                ),
            };
            match (ip, dst_ok, port(sport), port(dport)) {
                (Some(ip), true, Some(p), Some(_)) => {
                    Parsed::Header(end + 2, Some(SocketAddr::new(ip, p)))
                }
                _ => Parsed::Invalid,
            }
        }
        _ => Parsed::Invalid,
    }
}

/// A v1 port: 1 to 5 decimal digits (no sign: `str::parse::<u16>` would take `+1234`).
fn port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_v2(buf: &[u8]) -> Parsed {
    if buf.len() < 16 {
        return Parsed::Incomplete;
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Parsed::Invalid;
    }
    let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    let total = 16 + len;
    if buf.len() < total {
        return Parsed::Incomplete;
    }
    match ver_cmd & 0x0f {
        0 => return Parsed::Header(total, None), // LOCAL
        1 => {}                                  // PROXY
        _ => return Parsed::Invalid,
    }
    let body = &buf[16..total];
    let addr = match buf[13] >> 4 {
        // an address family whose addresses do not fit the announced length is a lie
        1 if body.len() < 12 => return Parsed::Invalid,
        2 if body.len() < 36 => return Parsed::Invalid,
        1 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([body[8], body[9]]),
            ))
        }
        2 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&body[..16]);
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(o)),
                u16::from_be_bytes([body[32], body[33]]),
            ))
        }
        _ => None,
    };
    Parsed::Header(total, addr)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn v1() {
        let h = b"PROXY TCP4 203.0.113.7 127.0.1.11 5555 8000\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(h),
            Parsed::Header(45, Some("203.0.113.7:5555".parse().unwrap()))
        );
        assert_eq!(parse(b"PROXY TCP4 1.2"), Parsed::Incomplete);
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Parsed::Header(15, None));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parsed::Absent);
        assert_eq!(parse(b"PROXY TCP4 x y 1 2\r\n"), Parsed::Invalid);
    }

    #[test]
    fn v2() {
        let mut h = V2_SIG.to_vec();
        h.extend_from_slice(&[
            0x21, 0x11, 0, 12, 198, 51, 100, 9, 127, 0, 0, 1, 0x1f, 0x90, 0, 80,
        ]);
        h.extend_from_slice(b"GET");
        assert_eq!(
            parse(&h),
            Parsed::Header(28, Some("198.51.100.9:8080".parse().unwrap()))
        );
        assert_eq!(parse(&h[..20]), Parsed::Incomplete);
        // command 2 does not exist; INET with fewer than 12 address bytes
        let mut bad = h.clone();
        bad[12] = 0x22;
        assert_eq!(parse(&bad), Parsed::Invalid);
        let mut short = V2_SIG.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert_eq!(parse(&short), Parsed::Invalid);
    }

    #[test]
    fn v1_ports_are_plain_decimal() {
        for bad in [
            &b"PROXY TCP4 203.0.113.7 127.0.0.1 +1234 80\r\n"[..],
            b"PROXY TCP4 203.0.113.7 127.0.0.1 1234 -80\r\n",
            b"PROXY TCP4 203.0.113.7 127.0.0.1 65536 80\r\n",
            b"PROXY TCP4 203.0.113.7 127.0.0.1 001234 80\r\n",
            b"PROXY TCP4 203.0.113.7 nope 1234 80\r\n",
            b"PROXY TCP6 203.0.113.7 ::1 1234 80\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Parsed::Invalid,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// A small deterministic generator (xorshift64*): the property tests need no extra crate
    /// and fail the same way every run.
    pub(crate) struct Rng(pub u64);
    impl Rng {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Random bytes, truncations and mutations of valid headers (20,000 cases): no panic; a
    /// header's length never exceeds the input; every strict prefix of a valid header is
    /// `Incomplete` (never a shorter header or `Absent`).
    #[test]
    fn random_and_truncated_headers() {
        let mut v2 = V2_SIG.to_vec();
        v2.extend_from_slice(&[
            0x21, 0x11, 0, 12, 198, 51, 100, 9, 127, 0, 0, 1, 0x1f, 0x90, 0, 80,
        ]);
        let mut v2_6 = V2_SIG.to_vec();
        v2_6.extend_from_slice(&[0x21, 0x21, 0, 36]);
        v2_6.extend((0..36).map(|i| i as u8));
        let valid: [&[u8]; 4] = [
            b"PROXY TCP4 203.0.113.7 127.0.1.11 5555 8000\r\n",
            b"PROXY TCP6 2001:db8::1 ::1 65535 443\r\n",
            &v2,
            &v2_6,
        ];
        for h in valid {
            assert!(matches!(parse(h), Parsed::Header(n, Some(_)) if n == h.len()));
            for cut in 1..h.len() {
                assert_eq!(parse(&h[..cut]), Parsed::Incomplete, "{cut} of {h:?}");
            }
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..20_000 {
            let mut buf = valid[rng.below(4)].to_vec();
            match case % 3 {
                0 => buf = (0..rng.below(120)).map(|_| rng.next() as u8).collect(),
                1 => {
                    for _ in 0..=rng.below(4) {
                        let i = rng.below(buf.len());
                        buf[i] = rng.next() as u8;
                    }
                }
                _ => buf.truncate(rng.below(buf.len() + 1)),
            }
            if let Parsed::Header(n, _) = parse(&buf) {
                assert!(n <= buf.len(), "{buf:?}");
            }
        }
    }
}
