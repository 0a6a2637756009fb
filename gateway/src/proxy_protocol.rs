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
        ["PROXY", fam @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: Option<IpAddr> = match *fam {
                "TCP4" => src.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
                _ => src.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
            };
            match (ip, sport.parse::<u16>()) {
                (Some(ip), Ok(port)) => Parsed::Header(end + 2, Some(SocketAddr::new(ip, port))),
                _ => Parsed::Invalid,
            }
        }
        _ => Parsed::Invalid,
    }
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
    if ver_cmd & 0x0f == 0 {
        return Parsed::Header(total, None); // LOCAL
    }
    let body = &buf[16..total];
    let addr = match buf[13] >> 4 {
        1 if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([body[8], body[9]]),
            ))
        }
        2 if body.len() >= 36 => {
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
mod tests {
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
    }
}
