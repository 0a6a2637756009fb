//! Domain names in lowercase wire format (`3www7example4test0`), the key type of the hot path.
//!
//! Zone data is indexed by these byte strings so a query name can be looked up without building
//! a `hickory_proto::rr::Name`: the suffix of a wire name at any label boundary is itself a wire
//! name, which makes "walk up to the zone apex" a loop over offsets.

use hickory_proto::rr::Name;

/// Maximum length of a domain name in wire format (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;

/// Lowercase wire-format bytes of an absolute `Name`.
pub fn wire_lower(name: &Name) -> Box<[u8]> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out.into_boxed_slice()
}

/// Offsets of each label start in a wire name (the last entry is the root label's zero byte).
/// Returns the number of offsets written.
pub fn label_offsets(wire: &[u8], out: &mut [u8; 128]) -> usize {
    let mut n = 0;
    let mut i = 0usize;
    while i < wire.len() && n < out.len() {
        out[n] = i as u8;
        n += 1;
        let len = wire[i] as usize;
        if len == 0 {
            break;
        }
        i += len + 1;
    }
    n
}

/// Number of labels (not counting the root) of a wire name.
pub fn label_count(wire: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0usize;
    while i < wire.len() && wire[i] != 0 {
        i += wire[i] as usize + 1;
        n += 1;
    }
    n
}

/// The wire name one label up (`www.example.test.` -> `example.test.`), or `None` at the root.
pub fn parent(wire: &[u8]) -> Option<&[u8]> {
    match wire.first() {
        Some(0) | None => None,
        Some(&len) => wire.get(len as usize + 1..),
    }
}

/// True when `name` equals `zone` or lies below it (both lowercase wire names).
pub fn is_subdomain(name: &[u8], zone: &[u8]) -> bool {
    let mut cur = name;
    loop {
        if cur.len() < zone.len() {
            return false;
        }
        if cur == zone {
            return true;
        }
        match parent(cur) {
            Some(p) => cur = p,
            None => return false,
        }
    }
}

/// Human-readable form (`www.example.test.`) for logs, errors and explanations.
pub fn to_text(wire: &[u8]) -> String {
    let mut s = String::new();
    let mut i = 0usize;
    while i < wire.len() && wire[i] != 0 {
        let len = wire[i] as usize;
        let end = (i + 1 + len).min(wire.len());
        for &b in &wire[i + 1..end] {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                s.push(b as char);
            } else {
                s.push_str(&format!("\\{b:03}"));
            }
        }
        s.push('.');
        i = end;
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Box<[u8]> {
        wire_lower(&Name::from_ascii(s).unwrap())
    }

    #[test]
    fn wire_is_lowercase_and_walks_up() {
        let n = w("WWW.Example.Test.");
        assert_eq!(&*n, b"\x03www\x07example\x04test\x00");
        assert_eq!(parent(&n), Some(&b"\x07example\x04test\x00"[..]));
        assert_eq!(label_count(&n), 3);
        assert!(is_subdomain(&n, &w("example.test.")));
        assert!(is_subdomain(&n, &w(".")));
        assert!(!is_subdomain(&w("example.test."), &n));
        assert!(!is_subdomain(&w("xexample.test."), &w("example.test.")));
        assert_eq!(to_text(&n), "www.example.test.");
        assert_eq!(to_text(b"\x00"), ".");
    }
}
