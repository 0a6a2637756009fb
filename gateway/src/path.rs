//! Request path normalisation, done once per request.
//!
//! The result is the only form used by the router, authorization, the rate limiter and the
//! upstream request, so no route can be reached around its policy by spelling. Rules:
//! percent-encoded unreserved characters are decoded (`%61` → `a`, `%2E` → `.`), other escapes are
//! kept with upper-case hex; `%2F`, `%5C`, `%00`, raw backslashes and semicolons, control bytes and malformed
//! escapes are rejected as ambiguous; repeated slashes collapse; `.` and `..` segments are
//! resolved, and a `..` that would climb above the root is rejected.

use std::borrow::Cow;

/// Why a path was refused (always 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Does not start with `/`.
    NotAbsolute,
    /// `%2F`, `%5C`, `%00` or a raw backslash.
    AmbiguousEncoding,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// A raw control byte (below 0x20, or DEL).
    ControlByte,
    /// A raw byte outside ASCII (it must be percent-encoded).
    NonAscii,
    /// A `..` above the root.
    EscapesRoot,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Normalise an origin-form path (no query). Borrowed when already normal (the common case).
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut needs_work = false;
    let mut prev = 0u8;
    for &b in bytes {
        match b {
            // `;` starts a path parameter on some upstreams (`/admin;x=1` = `/admin` there)
            b'\\' | b';' => return Err(PathError::AmbiguousEncoding),
            0..=0x1f | 0x7f => return Err(PathError::ControlByte),
            // not a URI character (RFC 3986 §2); some upstreams fold such characters into
            // ASCII look-alikes (U+2025 into "..") after our checks
            0x80.. => return Err(PathError::NonAscii),
            b'%' | b'.' => needs_work = true,
            b'/' if prev == b'/' => needs_work = true,
            _ => {}
        }
        prev = b;
    }
    if !needs_work {
        return Ok(Cow::Borrowed(raw));
    }
    let decoded = decode(bytes)?;
    Ok(Cow::Owned(resolve_segments(&decoded)?))
}

fn decode(bytes: &[u8]) -> Result<String, PathError> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            out.push(b as char);
            i += 1;
            continue;
        }
        let (h, l) = match (
            bytes.get(i + 1).and_then(|&x| hex(x)),
            bytes.get(i + 2).and_then(|&x| hex(x)),
        ) {
            (Some(h), Some(l)) => (h, l),
            _ => return Err(PathError::BadEscape),
        };
        let v = h * 16 + l;
        match v {
            b'/' | b'\\' | 0 => return Err(PathError::AmbiguousEncoding),
            v if is_unreserved(v) => out.push(v as char),
            v => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[(v >> 4) as usize] as char);
                out.push(HEX[(v & 15) as usize] as char);
            }
        }
        i += 3;
    }
    Ok(out)
}

fn resolve_segments(path: &str) -> Result<String, PathError> {
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing = false;
    for seg in path.split('/').skip(1) {
        trailing = false;
        match seg {
            "" => trailing = true,
            "." => trailing = true,
            ".." => {
                if stack.pop().is_none() {
                    return Err(PathError::EscapesRoot);
                }
                trailing = true;
            }
            s => stack.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &stack {
        out.push('/');
        out.push_str(s);
    }
    if trailing || stack.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, PathError> {
        normalize(p).map(|c| c.into_owned())
    }

    #[test]
    fn plain_paths_are_borrowed() {
        assert!(matches!(normalize("/v1/users/42"), Ok(Cow::Borrowed(_))));
        assert_eq!(n("/"), Ok("/".into()));
    }

    #[test]
    fn unreserved_escapes_are_decoded() {
        assert_eq!(n("/v1/%61dmin/"), Ok("/v1/admin/".into()));
        assert_eq!(n("/v1/a%7e%2D"), Ok("/v1/a~-".into()));
        assert_eq!(n("/v1/a%20b%c3%a9"), Ok("/v1/a%20b%C3%A9".into()));
    }

    #[test]
    fn dot_segments_resolve() {
        assert_eq!(n("/v1/admin/../users/x"), Ok("/v1/users/x".into()));
        assert_eq!(n("/v1/./users/"), Ok("/v1/users/".into()));
        assert_eq!(n("/v1/users/%2e%2e/admin"), Ok("/v1/admin".into()));
        assert_eq!(n("/v1/.."), Ok("/".into()));
        assert_eq!(n("//v1//admin"), Ok("/v1/admin".into()));
    }

    #[test]
    fn ambiguous_forms_are_rejected() {
        assert_eq!(n("/v1/admin%2Fx"), Err(PathError::AmbiguousEncoding));
        assert_eq!(
            n("/v1/users/..%2f..%2fadmin"),
            Err(PathError::AmbiguousEncoding)
        );
        assert_eq!(n("/v1/a%5cb"), Err(PathError::AmbiguousEncoding));
        assert_eq!(n("/v1/a%00"), Err(PathError::AmbiguousEncoding));
        assert_eq!(n("/v1\\admin"), Err(PathError::AmbiguousEncoding));
        assert_eq!(n("/v1/admin;x=1/stats"), Err(PathError::AmbiguousEncoding));
        assert_eq!(n("/../etc"), Err(PathError::EscapesRoot));
        assert_eq!(n("/v1/../../x"), Err(PathError::EscapesRoot));
        assert_eq!(n("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(n("/a%4"), Err(PathError::BadEscape));
        assert_eq!(n("v1"), Err(PathError::NotAbsolute));
    }
}
