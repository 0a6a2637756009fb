//! Response writing into a reused buffer, with owner-name compression against the question and
//! earlier names.

use super::request::{Ecs, OPT_ECS, OPT_NSID};
use crate::names::MAX_NAME_LEN;
use crate::zone::{rtype, Rr};

/// Where the owner name of a record comes from.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// The query name as asked (a pointer to the question: keeps the client's case).
    Qname,
    /// Another name (lowercase wire format).
    Name(&'a [u8]),
}

/// Extended DNS Error option code (RFC 8914).
const OPT_EDE: u16 = 15;

/// Remembered literal names for compression: (offset in message, name bytes, literal length).
const MAX_REMEMBERED: usize = 16;

/// Writes one response message. Sections must be written in order: answer, authority,
/// additional; [`Writer::finish`] patches the counts.
pub struct Writer<'b, 'q> {
    buf: &'b mut Vec<u8>,
    qname_lower: &'q [u8],
    remembered: [(u16, u16, u16); MAX_REMEMBERED],
    /// Copies of the remembered names (inline: no allocation for ordinary answers).
    names: smallvec::SmallVec<[u8; 512]>,
    n_remembered: usize,
    counts: [u16; 3],
    section: usize,
    /// Class of the records written (IN, or CH for the server's own CH TXT answers).
    class: u16,
}

impl<'b, 'q> Writer<'b, 'q> {
    /// Starts a response: header (QR=1, opcode/RD/CD echoed, AA as given, RA=0) and the question
    /// copied as received. `question` is the raw question (name + type + class) or None.
    pub fn new(
        buf: &'b mut Vec<u8>,
        id: u16,
        req_flags: u16,
        aa: bool,
        rcode: u16,
        question: Option<&[u8]>,
        qname_lower: &'q [u8],
    ) -> Self {
        buf.clear();
        let flags = 0x8000
            | (req_flags & 0x7800)
            | (req_flags & 0x0100)
            | (req_flags & 0x0010)
            | if aa { 0x0400 } else { 0 }
            | (rcode & 0xF);
        buf.extend_from_slice(&id.to_be_bytes());
        buf.extend_from_slice(&flags.to_be_bytes());
        buf.extend_from_slice(&[0, question.is_some() as u8, 0, 0, 0, 0, 0, 0]);
        if let Some(q) = question {
            buf.extend_from_slice(q);
        }
        Writer {
            buf,
            qname_lower: if question.is_some() { qname_lower } else { &[] },
            remembered: [(0, 0, 0); MAX_REMEMBERED],
            names: smallvec::SmallVec::new(),
            n_remembered: 0,
            counts: [0; 3],
            section: 0,
            class: 1,
        }
    }

    /// Bytes written so far (header included).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written (never true after [`Writer::new`]).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Moves on to the next section (0 answer, 1 authority, 2 additional).
    pub fn section(&mut self, section: usize) {
        debug_assert!(section >= self.section);
        self.section = section.min(2);
    }

    /// Class of the records written from now on (IN by default).
    pub fn set_class(&mut self, class: u16) {
        self.class = class;
    }

    /// Sets the TC (truncated) header bit.
    pub fn set_tc(&mut self) {
        self.buf[2] |= 0x02;
    }

    /// Cuts the message back to `len` bytes and `counts` records (after an overflow).
    pub fn rollback(&mut self, len: usize, counts: [u16; 3]) {
        self.buf.truncate(len);
        self.counts = counts;
        // forget compression targets past the cut
        while self.n_remembered > 0 && self.remembered[self.n_remembered - 1].0 as usize >= len {
            self.n_remembered -= 1;
        }
    }

    /// Records written so far per section (answer, authority, additional), for [`Writer::rollback`].
    pub fn counts(&self) -> [u16; 3] {
        self.counts
    }

    /// Appends one record.
    pub fn record(&mut self, owner: Owner<'_>, rr: &Rr, ttl: u32) {
        match owner {
            Owner::Qname => self.buf.extend_from_slice(&[0xC0, 0x0C]),
            Owner::Name(n) => self.name(n),
        }
        self.buf.extend_from_slice(&rr.rtype.to_be_bytes());
        self.buf.extend_from_slice(&self.class.to_be_bytes());
        self.buf.extend_from_slice(&ttl.to_be_bytes());
        self.buf
            .extend_from_slice(&(rr.rdata.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(&rr.rdata);
        self.counts[self.section] += 1;
    }

    /// Writes a name, as a pointer to the longest known suffix when there is one.
    fn name(&mut self, name: &[u8]) {
        let mut off = 0usize;
        let start = self.buf.len();
        while off < name.len() {
            let suffix = &name[off..];
            if suffix == b"\x00" {
                self.buf.push(0);
                break;
            }
            if let Some(ptr) = self.find(suffix) {
                self.buf.extend_from_slice(&(0xC000 | ptr).to_be_bytes());
                break;
            }
            let len = name[off] as usize;
            self.buf.extend_from_slice(&name[off..off + 1 + len]);
            off += 1 + len;
        }
        if off > 0 && start < 0x3FFF && self.n_remembered < MAX_REMEMBERED {
            let at = self.names.len() as u16;
            self.names.extend_from_slice(name);
            self.remembered[self.n_remembered] = (start as u16, at, off as u16);
            self.n_remembered += 1;
        }
    }

    fn find(&self, suffix: &[u8]) -> Option<u16> {
        // the question name starts at offset 12
        if let Some(k) = suffix_offset(self.qname_lower, suffix, self.qname_lower.len()) {
            return Some(12 + k as u16);
        }
        for &(pos, at, lit) in &self.remembered[..self.n_remembered] {
            let stored = &self.names[at as usize..];
            let stored = &stored[..name_len(stored)];
            if let Some(k) = suffix_offset(stored, suffix, lit as usize) {
                return Some(pos + k as u16);
            }
        }
        None
    }

    /// Appends the OPT record: our payload size, DO echoed, the ECS option echoed with `scope`,
    /// our NSID when asked for and configured, and the extended rcode bits.
    pub fn opt(
        &mut self,
        payload: u16,
        dnssec_ok: bool,
        rcode: u16,
        ecs: Option<(Ecs, u8)>,
        nsid: Option<&[u8]>,
        ede: Option<u16>,
    ) {
        self.buf.push(0);
        self.buf.extend_from_slice(&rtype::OPT.to_be_bytes());
        self.buf.extend_from_slice(&payload.to_be_bytes());
        self.buf.push((rcode >> 4) as u8);
        self.buf.push(0); // version 0
        self.buf
            .extend_from_slice(&(if dnssec_ok { 0x8000u16 } else { 0 }).to_be_bytes());
        let rdlen = Self::opt_len(ecs.as_ref().map(|(e, _)| e), nsid, ede) - 11;
        self.buf.extend_from_slice(&(rdlen as u16).to_be_bytes());
        if let Some((e, scope)) = ecs {
            let n = (e.source_prefix as usize).div_ceil(8);
            self.buf.extend_from_slice(&OPT_ECS.to_be_bytes());
            self.buf.extend_from_slice(&((4 + n) as u16).to_be_bytes());
            self.buf.extend_from_slice(&e.family.to_be_bytes());
            self.buf.push(e.source_prefix);
            self.buf.push(scope);
            match e.addr {
                std::net::IpAddr::V4(a) => self.buf.extend_from_slice(&a.octets()[..n]),
                std::net::IpAddr::V6(a) => self.buf.extend_from_slice(&a.octets()[..n]),
            }
        }
        if let Some(id) = nsid {
            self.buf.extend_from_slice(&OPT_NSID.to_be_bytes());
            self.buf.extend_from_slice(&(id.len() as u16).to_be_bytes());
            self.buf.extend_from_slice(id);
        }
        if let Some(code) = ede {
            self.buf.extend_from_slice(&OPT_EDE.to_be_bytes());
            self.buf.extend_from_slice(&2u16.to_be_bytes());
            self.buf.extend_from_slice(&code.to_be_bytes());
        }
        self.counts[2] += 1;
    }

    /// Size of the OPT record [`Writer::opt`] would write.
    pub fn opt_len(ecs: Option<&Ecs>, nsid: Option<&[u8]>, ede: Option<u16>) -> usize {
        11 + ecs.map_or(0, |e| 8 + (e.source_prefix as usize).div_ceil(8))
            + nsid.map_or(0, |n| 4 + n.len())
            + ede.map_or(0, |_| 6)
    }

    /// Patches the section counts into the header.
    pub fn finish(self) {
        let c = self.counts;
        self.buf[6..8].copy_from_slice(&c[0].to_be_bytes());
        self.buf[8..10].copy_from_slice(&c[1].to_be_bytes());
        self.buf[10..12].copy_from_slice(&c[2].to_be_bytes());
    }
}

fn name_len(wire: &[u8]) -> usize {
    let mut i = 0usize;
    while i < wire.len() && wire[i] != 0 {
        i += wire[i] as usize + 1;
    }
    (i + 1).min(wire.len())
}

/// Offset `k < limit` at a label boundary of `name` where `name[k..] == suffix`.
fn suffix_offset(name: &[u8], suffix: &[u8], limit: usize) -> Option<usize> {
    if suffix.len() > name.len() || name.len() > MAX_NAME_LEN {
        return None;
    }
    let k = name.len() - suffix.len();
    if k >= limit || name[k..] != *suffix {
        return None;
    }
    // k must be a label boundary
    let mut i = 0usize;
    while i < k {
        i += name[i] as usize + 1;
    }
    (i == k).then_some(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rr(owner: &[u8], rtype: u16, rdata: &[u8]) -> Rr {
        Rr {
            owner: owner.into(),
            rtype,
            ttl: 60,
            rdata: rdata.into(),
            target: None,
        }
    }

    #[test]
    fn compresses_against_question_and_earlier_names() {
        let q = b"\x03WWW\x07example\x04test\x00\x00\x01\x00\x01";
        let lower = b"\x03www\x07example\x04test\x00";
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf, 7, 0x0100, true, 0, Some(q), lower);
        w.record(Owner::Qname, &rr(lower, 1, &[1, 2, 3, 4]), 60);
        w.section(1);
        w.record(
            Owner::Name(b"\x07example\x04test\x00"),
            &rr(b"", 16, &[1, b'x']),
            60,
        );
        w.section(2);
        w.record(
            Owner::Name(b"\x03ns1\x07example\x04test\x00"),
            &rr(b"", 1, &[9, 9, 9, 9]),
            5,
        );
        w.record(
            Owner::Name(b"\x03ns1\x07example\x04test\x00"),
            &rr(b"", 1, &[9, 9, 9, 8]),
            5,
        );
        w.finish();
        let m = hickory_proto::op::Message::from_vec(&buf).unwrap();
        let h = m.metadata;
        assert_eq!(h.id, 7);
        assert!(h.authoritative && h.recursion_desired && !h.recursion_available);
        assert_eq!(m.queries[0].name().to_string(), "WWW.example.test.");
        assert_eq!(m.answers[0].name.to_string(), "WWW.example.test.");
        assert_eq!(m.authorities[0].name.to_string(), "example.test.");
        assert_eq!(m.additionals[1].name.to_ascii(), "ns1.example.test.");
        // apex owner is a 2-byte pointer into the question
        assert_eq!(&buf[12 + q.len() + 16..12 + q.len() + 18], &[0xC0, 0x10]);
    }
}
