//! Compact denial of existence (RFC 9824): one NSEC at the query name, made on the fly, whose
//! next name is the name's immediate successor (`\000.name`). NODATA lists the types the name
//! has; a name that does not exist gets NOERROR with the NXNAME pseudo-type in the bitmap.
//! Nothing is precomputed and there is no chain to walk.

use crate::zone::{rtype, Rr};

/// The NXNAME pseudo-type (RFC 9824 §2).
pub const NXNAME: u16 = 128;

/// NSEC type bitmap (RFC 4034 §4.1.2) of `types` (any order, duplicates allowed).
pub fn bitmap(types: &[u16], out: &mut Vec<u8>) {
    let mut sorted: Vec<u16> = types.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut i = 0;
    while i < sorted.len() {
        let window = (sorted[i] >> 8) as u8;
        let mut bits = [0u8; 32];
        let mut len = 0usize;
        while i < sorted.len() && (sorted[i] >> 8) as u8 == window {
            let low = (sorted[i] & 0xFF) as usize;
            bits[low / 8] |= 0x80 >> (low % 8);
            len = len.max(low / 8 + 1);
            i += 1;
        }
        out.push(window);
        out.push(len as u8);
        out.extend_from_slice(&bits[..len]);
    }
}

/// The compact NSEC for `owner` (lowercase wire): next name `\000.owner`, the bitmap of
/// `types` plus RRSIG and NSEC. `None` when `owner` is too long to have a successor.
pub fn nsec(owner: &[u8], types: &[u16], ttl: u32) -> Option<Rr> {
    if owner.len() + 2 > crate::names::MAX_NAME_LEN {
        return None;
    }
    let mut rdata = Vec::with_capacity(owner.len() + 2 + 12);
    rdata.extend_from_slice(&[1, 0]);
    rdata.extend_from_slice(owner);
    let mut all: Vec<u16> = types.to_vec();
    all.extend_from_slice(&[rtype::RRSIG, rtype::NSEC]);
    bitmap(&all, &mut rdata);
    Some(Rr {
        owner: owner.into(),
        rtype: rtype::NSEC,
        ttl,
        rdata: rdata.into_boxed_slice(),
        target: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_follow_rfc4034() {
        // RFC 4034 §4.3 example: A MX RRSIG NSEC TYPE1234
        let mut b = Vec::new();
        bitmap(&[1, 15, 46, 47, 1234], &mut b);
        let mut want = vec![0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b];
        want.extend_from_slice(&[0; 26]);
        want.push(0x20);
        assert_eq!(b, want);
        let n = nsec(b"\x01x\x00", &[NXNAME], 60).unwrap();
        assert_eq!(&n.rdata[..5], b"\x01\x00\x01x\x00");
        // RRSIG (46) NSEC (47) in window 0, NXNAME (128) too
        assert_eq!(&n.rdata[5..7], &[0, 17]);
    }
}
