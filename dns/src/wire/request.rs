//! Query parsing: header, the single question, and the OPT record (with Client Subnet).

use std::net::IpAddr;

use crate::names::MAX_NAME_LEN;
use crate::zone::rtype;

/// EDNS Client Subnet option code (RFC 7871).
pub const OPT_ECS: u16 = 8;
/// Name server identifier option code (RFC 5001).
pub const OPT_NSID: u16 = 3;

/// A parsed Client Subnet option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ecs {
    /// 1 = IPv4, 2 = IPv6.
    pub family: u16,
    /// SOURCE PREFIX-LENGTH, bits.
    pub source_prefix: u8,
    /// The address as sent (bits past the source prefix are zero: checked).
    pub addr: IpAddr,
}

/// The query's OPT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// Requester's UDP payload size, bytes (values below 512 are treated as 512).
    pub payload: u16,
    /// EDNS version (only 0 is answered; others get BADVERS).
    pub version: u8,
    /// The DO bit (copied to the response, RFC 3225 §3).
    pub dnssec_ok: bool,
    /// The Client Subnet option, if present and valid.
    pub ecs: Option<Ecs>,
    /// The query asked for the name server identifier (an empty NSID option, RFC 5001).
    pub nsid: bool,
}

/// A well-formed query.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Message ID, echoed in the response.
    pub id: u16,
    /// Header flags word as received (opcode, RD, CD are echoed from it).
    pub flags: u16,
    /// The question name as received (wire format, original case, no compression).
    pub qname: &'a [u8],
    /// The question name lowercased.
    pub qname_lower: [u8; MAX_NAME_LEN],
    /// QTYPE ([`rtype`] codes).
    pub qtype: u16,
    /// QCLASS (1 = IN, 255 = ANY).
    pub qclass: u16,
    /// The OPT record, if the query had one.
    pub edns: Option<Edns>,
}

impl Request<'_> {
    /// The lowercased question name, trimmed to its length.
    pub fn qname_lower(&self) -> &[u8] {
        &self.qname_lower[..self.qname.len()]
    }
}

/// What to do with a datagram or TCP message.
#[derive(Debug)]
// a parsed query lives on the stack for one answer: moving 300 bytes beats a heap allocation
#[allow(clippy::large_enum_variant)]
pub enum Parsed<'a> {
    /// Not boxed: a box per query would be the hot path's only allocation.
    Query(Request<'a>),
    /// Answer with this rcode and no records (FORMERR, NOTIMP, BADVERS). `question` is echoed
    /// when it was readable; `edns` decides whether an OPT goes back.
    Error {
        /// Message ID, echoed.
        id: u16,
        /// Header flags word as received.
        flags: u16,
        /// Response code ([`super::rcode`]), possibly extended.
        rcode: u16,
        /// The question section bytes (name, type, class), when readable.
        question: Option<&'a [u8]>,
        /// The OPT record, when readable.
        edns: Option<Edns>,
    },
    /// Say nothing: too short to answer, or a response (QR=1).
    Drop,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.buf.get(self.pos..self.pos + 2)?;
        self.pos += 2;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.buf.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(b)
    }
    /// Skips a name in a record (labels, optionally ending in a pointer that is not followed).
    fn skip_name(&mut self) -> Option<()> {
        let mut total = 0usize;
        loop {
            let len = self.u8()?;
            match len & 0xC0 {
                0x00 if len == 0 => return Some(()),
                0x00 => {
                    total += len as usize + 1;
                    if total > MAX_NAME_LEN {
                        return None;
                    }
                    self.take(len as usize)?;
                }
                0xC0 => return self.u8().map(|_| ()),
                _ => return None,
            }
        }
    }
}

/// Parses one DNS message received by the server. Never panics on any input.
pub fn parse(buf: &[u8]) -> Parsed<'_> {
    if buf.len() < 12 {
        return Parsed::Drop;
    }
    let id = u16::from_be_bytes([buf[0], buf[1]]);
    let flags = u16::from_be_bytes([buf[2], buf[3]]);
    if flags & 0x8000 != 0 {
        return Parsed::Drop;
    }
    let err = |rcode, question, edns| Parsed::Error {
        id,
        flags,
        rcode,
        question,
        edns,
    };
    let opcode = (flags >> 11) & 0xF;
    let count = |i: usize| u16::from_be_bytes([buf[i], buf[i + 1]]);
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    // Read the whole message before judging it, so that every error reply to a query that
    // carried an OPT has one too (RFC 6891 §7), NOTIMP and FORMERR included.
    let mut c = Cursor { buf, pos: 12 };
    let mut lower = [0u8; MAX_NAME_LEN];
    let mut question = None;
    let mut q = (0u16, 0u16, 0usize);
    let mut malformed = false;
    if qd >= 1 {
        match read_question_name(&mut c, &mut lower) {
            Some(qlen) => match (c.u16(), c.u16()) {
                (Some(t), Some(k)) => {
                    q = (t, k, qlen);
                    question = Some(&buf[12..c.pos]);
                }
                _ => malformed = true,
            },
            None => malformed = true,
        }
    }
    for _ in 1..qd {
        if malformed || c.skip_name().and_then(|_| c.take(4)).is_none() {
            malformed = true;
            break;
        }
    }
    // answer and authority sections of a query are unusual but legal: skip them
    if !malformed {
        for _ in 0..(an as u32 + ns as u32) {
            if skip_record(&mut c).is_none() {
                malformed = true;
                break;
            }
        }
    }
    let mut edns = None;
    let mut bad_opt = false;
    let mut bad_option = false;
    for _ in 0..ar {
        if malformed {
            break;
        }
        let start = c.pos;
        let Some(()) = c.skip_name() else {
            malformed = true;
            break;
        };
        let owner_is_root = c.pos == start + 1 && buf[start] == 0;
        let Some(t) = c.u16() else {
            malformed = true;
            break;
        };
        if t != rtype::OPT {
            c.pos = start;
            if skip_record(&mut c).is_none() {
                malformed = true;
                break;
            }
            continue;
        }
        let (Some(payload), Some(ttl), Some(rdlen)) = (c.u16(), c.u32(), c.u16()) else {
            malformed = true;
            break;
        };
        let Some(rdata) = c.take(rdlen as usize) else {
            malformed = true;
            break;
        };
        if edns.is_some() || !owner_is_root {
            // RFC 6891 §6.1.1: more than one OPT, or an OPT not owned by the root: FORMERR
            bad_opt = true;
            if edns.is_some() {
                continue;
            }
        }
        let mut e = Edns {
            payload,
            version: (ttl >> 16) as u8,
            dnssec_ok: ttl & 0x8000 != 0,
            ecs: None,
            nsid: false,
        };
        match parse_options(rdata) {
            Ok((ecs, nsid)) => (e.ecs, e.nsid) = (ecs, nsid),
            Err(()) => bad_option = true,
        }
        edns = Some(e);
    }
    // bytes after the last record: not a well-formed message (Knot says FORMERR too)
    if !malformed && c.pos != buf.len() {
        malformed = true;
    }
    // an error reply echoes the OPT without options
    let bare = edns.map(|e| Edns { ecs: None, ..e });
    if opcode != 0 {
        return err(super::rcode::NOTIMP, question, bare);
    }
    if qd != 1 || malformed || bad_opt {
        return err(super::rcode::FORMERR, question, bare);
    }
    let (qtype, qclass, qlen) = q;
    let qname = &buf[12..12 + qlen];
    if let Some(e) = edns {
        if e.version > 0 {
            return err(super::rcode::BADVERS, question, bare);
        }
        if bad_option {
            return err(super::rcode::FORMERR, question, bare);
        }
    }
    Parsed::Query(Request {
        id,
        flags,
        qname,
        qname_lower: lower,
        qtype,
        qclass,
        edns,
    })
}

/// Reads the question name: plain labels only (a pointer in the only question of a query can
/// only point at itself or at the header), at most 255 bytes. Returns its length.
fn read_question_name(c: &mut Cursor<'_>, lower: &mut [u8; MAX_NAME_LEN]) -> Option<usize> {
    let start = c.pos;
    loop {
        let len = c.u8()? as usize;
        if len & 0xC0 != 0 {
            return None;
        }
        let at = c.pos - 1 - start;
        if at + 1 + len > MAX_NAME_LEN {
            return None;
        }
        lower[at] = len as u8;
        if len == 0 {
            return Some(at + 1);
        }
        let label = c.take(len)?;
        for (i, b) in label.iter().enumerate() {
            lower[at + 1 + i] = b.to_ascii_lowercase();
        }
    }
}

fn skip_record(c: &mut Cursor<'_>) -> Option<()> {
    c.skip_name()?;
    c.take(8)?;
    let rdlen = c.u16()?;
    c.take(rdlen as usize).map(|_| ())
}

/// Walks the OPT options; returns the (validated) Client Subnet option if present and whether
/// NSID was asked for.
fn parse_options(mut rdata: &[u8]) -> Result<(Option<Ecs>, bool), ()> {
    let mut ecs = None;
    let mut nsid = false;
    while !rdata.is_empty() {
        if rdata.len() < 4 {
            return Err(());
        }
        let code = u16::from_be_bytes([rdata[0], rdata[1]]);
        let len = u16::from_be_bytes([rdata[2], rdata[3]]) as usize;
        let data = rdata.get(4..4 + len).ok_or(())?;
        rdata = &rdata[4 + len..];
        if code == OPT_ECS {
            if ecs.is_some() {
                return Err(());
            }
            ecs = Some(parse_ecs(data)?);
        } else if code == OPT_NSID {
            // RFC 5001 §2.1: a query's NSID option is empty
            if !data.is_empty() {
                return Err(());
            }
            nsid = true;
        }
    }
    Ok((ecs, nsid))
}

/// RFC 7871 §6 and §7.1.2: known family, prefix within the family, SCOPE 0 in queries, exactly
/// ceil(SOURCE/8) address bytes, and no bits set past SOURCE. Anything else is FORMERR.
fn parse_ecs(data: &[u8]) -> Result<Ecs, ()> {
    if data.len() < 4 {
        return Err(());
    }
    let family = u16::from_be_bytes([data[0], data[1]]);
    let (source, scope) = (data[2], data[3]);
    let addr_bytes = &data[4..];
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return Err(()),
    };
    if source > max || scope != 0 || addr_bytes.len() != (source as usize).div_ceil(8) {
        return Err(());
    }
    if source % 8 != 0 {
        let last = addr_bytes[addr_bytes.len() - 1];
        if last & (0xFFu8 >> (source % 8)) != 0 {
            return Err(());
        }
    }
    let addr = if family == 1 {
        let mut a = [0u8; 4];
        a[..addr_bytes.len()].copy_from_slice(addr_bytes);
        IpAddr::from(a)
    } else {
        let mut a = [0u8; 16];
        a[..addr_bytes.len()].copy_from_slice(addr_bytes);
        IpAddr::from(a)
    };
    Ok(Ecs {
        family,
        source_prefix: source,
        addr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16, opt: Option<&[u8]>) -> Vec<u8> {
        let mut m = vec![
            0x12,
            0x34,
            0x01,
            0x00,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            opt.is_some() as u8,
        ];
        m.extend_from_slice(name);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        if let Some(o) = opt {
            m.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0]);
            m.extend_from_slice(&(o.len() as u16).to_be_bytes());
            m.extend_from_slice(o);
        }
        m
    }

    fn rcode_of(p: Parsed<'_>) -> u16 {
        match p {
            Parsed::Error { rcode, .. } => rcode,
            Parsed::Query(_) => 0,
            Parsed::Drop => 999,
        }
    }

    #[test]
    fn parses_question_and_lowercases() {
        let m = query(b"\x03WwW\x07example\x04test\x00", 1, None);
        let Parsed::Query(q) = parse(&m) else {
            panic!()
        };
        assert_eq!(q.qname, b"\x03WwW\x07example\x04test\x00");
        assert_eq!(q.qname_lower(), b"\x03www\x07example\x04test\x00");
        assert_eq!((q.id, q.qtype, q.qclass, q.edns), (0x1234, 1, 1, None));
    }

    #[test]
    fn validates_ecs() {
        let ok = [0, 8, 0, 8, 0, 1, 27, 0, 81, 2, 69, 160];
        let m = query(b"\x00", 1, Some(&ok));
        let Parsed::Query(q) = parse(&m) else {
            panic!()
        };
        let e = q.edns.unwrap();
        assert_eq!((e.payload, e.version), (1232, 0));
        assert_eq!(
            e.ecs.unwrap().addr,
            "81.2.69.160".parse::<IpAddr>().unwrap()
        );
        assert_eq!(e.ecs.unwrap().source_prefix, 27);
        // bits past the source prefix, non-zero scope, wrong length, unknown family
        for bad in [
            &[0u8, 8, 0, 7, 0, 1, 20, 0, 81, 2, 69][..],
            &[0, 8, 0, 7, 0, 1, 24, 5, 81, 2, 69],
            &[0, 8, 0, 8, 0, 1, 24, 0, 81, 2, 69, 0],
            &[0, 8, 0, 4, 0, 3, 0, 0],
            &[0, 8, 0, 7, 0, 1, 33, 0, 81, 2, 69],
            &[0, 8, 0, 9],
        ] {
            assert_eq!(rcode_of(parse(&query(b"\x00", 1, Some(bad)))), 1, "{bad:?}");
        }
    }

    #[test]
    fn hostile_headers_and_names() {
        assert!(matches!(parse(&[0; 11]), Parsed::Drop));
        let mut resp = query(b"\x00", 1, None);
        resp[2] |= 0x80;
        assert!(matches!(parse(&resp), Parsed::Drop));
        // pointer loop in the question
        assert_eq!(rcode_of(parse(&query(b"\xC0\x0C", 1, None))), 1);
        // label running past the end
        let m = query(b"\x3Fabc", 1, None);
        assert_eq!(rcode_of(parse(&m[..16])), 1);
        // unknown opcode
        let mut n = query(b"\x00", 1, None);
        n[2] = 0x10;
        assert_eq!(rcode_of(parse(&n)), 4);
        // two questions
        let mut two = query(b"\x00", 1, None);
        two[5] = 2;
        assert_eq!(rcode_of(parse(&two)), 1);
    }

    #[test]
    fn fuzz_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let base = query(
            b"\x03www\x07example\x04test\x00",
            1,
            Some(&[0, 8, 0, 7, 0, 1, 24, 0, 1, 2, 3]),
        );
        for _ in 0..20_000 {
            let mut m = base.clone();
            for _ in 0..rng.random_range(1..6) {
                let i = rng.random_range(0..m.len());
                m[i] = rng.random();
            }
            m.truncate(rng.random_range(0..=m.len()));
            let _ = parse(&m);
        }
    }
}
