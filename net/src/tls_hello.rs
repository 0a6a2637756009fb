//! The TLS ClientHello as far as a pass-through router needs it: the server name (SNI,
//! RFC 6066) and the offered ALPN protocols (RFC 7301), read from bytes *peeked* on a socket
//! so the handshake reaches the backend untouched.
//!
//! Why hand-written: rustls parses a ClientHello only inside a server connection that would
//! consume the bytes and terminate TLS; the L4 balancer must leave them queued. What it needs
//! is small (record framing, the ClientHello's fixed fields, two extensions), and the input is
//! hostile, so [`parse`] is a bounded, allocation-free reader that never panics (every length
//! is checked before it is used; see the randomised tests) and looks at most [`MAX_PEEK`] bytes.
//!
//! What is accepted: handshake records (type 22, version 3.x, at most 2^14 bytes each) whose
//! first handshake message is a ClientHello, possibly split across several records; a
//! well-formed body (session id at most 32 bytes, a non-empty even cipher-suite list, at least
//! one compression method, extensions that exactly fill their block, no extension twice). The
//! server name must be one `host_name` of DNS characters; it is lowercased. Anything else is
//! [`Parse::Invalid`] (or [`Parse::NotTls`] when the first byte cannot start a handshake
//! record), and a valid prefix is [`Parse::Incomplete`]. The I/O side, [`peek_hello`], waits
//! for more bytes on socket readiness (no polling), bounded in bytes and time.

use std::io;
use std::time::Duration;
use tokio::net::TcpStream;

/// Most bytes looked at: the ClientHello's records must fit (browsers send 0.5-2 KiB).
pub const MAX_PEEK: usize = 16 * 1024;
/// Longest server name kept (a DNS name is at most 253 characters).
pub const MAX_NAME: usize = 253;
/// Longest ALPN extension kept verbatim; a longer one is parsed but not kept.
pub const MAX_ALPN: usize = 256;

const RECORD_HEADER: usize = 5;
const MAX_RECORD: usize = 1 << 14;
const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;

/// What a ClientHello says, copied out of the peeked bytes (no borrow, no allocation).
#[derive(Clone)]
pub struct Hello {
    name: [u8; MAX_NAME],
    name_len: u8,
    alpn: [u8; MAX_ALPN],
    alpn_len: u16,
    /// Bytes of TLS records up to the end of the ClientHello.
    pub len: usize,
}

impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello")
            .field("server_name", &self.server_name())
            .field("alpn", &self.alpn_protocols().collect::<Vec<_>>())
            .field("len", &self.len)
            .finish()
    }
}

impl Hello {
    /// A hello with no name and no ALPN (what [`parse`] fills in).
    pub fn empty() -> Hello {
        Hello {
            name: [0; MAX_NAME],
            name_len: 0,
            alpn: [0; MAX_ALPN],
            alpn_len: 0,
            len: 0,
        }
    }

    /// The requested server name, lowercased (`None` when the client sent no SNI).
    pub fn server_name(&self) -> Option<&str> {
        let n = &self.name[..self.name_len as usize];
        // only DNS characters were copied, so this is ASCII
        (!n.is_empty()).then(|| std::str::from_utf8(n).unwrap_or_default())
    }

    /// The ALPN extension's data verbatim (the length-prefixed `ProtocolNameList`), as the
    /// PROXY protocol's `PP2_TYPE_ALPN` carries it; `None` when absent or longer than
    /// [`MAX_ALPN`].
    pub fn alpn(&self) -> Option<&[u8]> {
        (self.alpn_len > 0).then(|| &self.alpn[..self.alpn_len as usize])
    }

    /// The offered ALPN protocols in the client's order.
    pub fn alpn_protocols(&self) -> impl Iterator<Item = &[u8]> {
        let list = self.alpn().map_or(&[][..], |a| &a[2..]);
        let mut rest = list;
        std::iter::from_fn(move || {
            let (&n, tail) = rest.split_first()?;
            let p = tail.get(..n as usize)?;
            rest = &tail[n as usize..];
            Some(p)
        })
    }
}

/// Result of [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// A whole ClientHello, written to the `out` argument of [`parse`].
    Complete,
    /// A valid prefix: more bytes are needed.
    Incomplete,
    /// The first byte cannot start a TLS handshake record.
    NotTls,
    /// A malformed record or ClientHello; the reason.
    Invalid(&'static str),
}

/// Reads the ClientHello at the start of `buf` (at most [`MAX_PEEK`] bytes are looked at)
/// into `out` (overwritten only by a [`Parse::Complete`]).
pub fn parse(buf: &[u8], out: &mut Hello) -> Parse {
    let buf = &buf[..buf.len().min(MAX_PEEK)];
    match parse_records(buf, out) {
        Parse::Incomplete if buf.len() >= MAX_PEEK => {
            Parse::Invalid("ClientHello longer than the limit")
        }
        p => p,
    }
}

fn parse_records(buf: &[u8], out: &mut Hello) -> Parse {
    match buf.first() {
        None => return Parse::Incomplete,
        Some(&HANDSHAKE) => {}
        Some(_) => return Parse::NotTls,
    }
    // Fast path: the whole handshake message in the first record (nearly every client).
    let first = match record(buf) {
        Ok(r) => r,
        Err(p) => return p,
    };
    if let Some(msg) = message(first.fragment) {
        return match msg {
            Ok(body) => finish(body, RECORD_HEADER + 4 + body.len(), out),
            Err(p) => p,
        };
    }
    // Split across records: gather the fragments (at most MAX_PEEK bytes in all).
    let mut joined = [0u8; MAX_PEEK];
    let mut have = 0;
    let mut at = 0;
    loop {
        let r = match record(&buf[at..]) {
            Ok(r) => r,
            Err(p) => return p,
        };
        if r.fragment.is_empty() {
            return Parse::Invalid("empty handshake record");
        }
        joined[have..have + r.fragment.len()].copy_from_slice(r.fragment);
        let before = have;
        have += r.fragment.len();
        at += RECORD_HEADER + r.fragment.len();
        if let Some(msg) = message(&joined[..have]) {
            return match msg {
                Ok(body) => {
                    // the records consumed up to the message's last byte
                    let used_in_last = 4 + body.len() - before;
                    finish(body, at - r.fragment.len() + used_in_last, out)
                }
                Err(p) => p,
            };
        }
    }
}

struct Record<'a> {
    fragment: &'a [u8],
}

/// The next complete handshake record of `buf`, or why there is none.
fn record(buf: &[u8]) -> Result<Record<'_>, Parse> {
    let Some(hdr) = buf.get(..RECORD_HEADER) else {
        return Err(prefix_check(buf));
    };
    if hdr[0] != HANDSHAKE {
        return Err(Parse::Invalid(
            "ClientHello interrupted by another record type",
        ));
    }
    if hdr[1] != 3 {
        return Err(Parse::Invalid("record version is not 3.x"));
    }
    let len = u16::from_be_bytes([hdr[3], hdr[4]]) as usize;
    if len > MAX_RECORD {
        return Err(Parse::Invalid("record longer than 2^14 bytes"));
    }
    if len == 0 {
        return Err(Parse::Invalid("empty handshake record"));
    }
    match buf.get(RECORD_HEADER..RECORD_HEADER + len) {
        Some(fragment) => Ok(Record { fragment }),
        None => Err(Parse::Incomplete),
    }
}

/// A record header cut short: still a valid prefix?
fn prefix_check(buf: &[u8]) -> Parse {
    match buf {
        [] | [HANDSHAKE] | [HANDSHAKE, 3, ..] => Parse::Incomplete,
        [HANDSHAKE, ..] => Parse::Invalid("record version is not 3.x"),
        _ => Parse::Invalid("ClientHello interrupted by another record type"),
    }
}

/// The ClientHello body if `hs` holds the whole first handshake message; `None` if more is
/// needed.
fn message(hs: &[u8]) -> Option<Result<&[u8], Parse>> {
    let &t = hs.first()?;
    if t != CLIENT_HELLO {
        return Some(Err(Parse::Invalid(
            "first handshake message is not a ClientHello",
        )));
    }
    let len = hs
        .get(1..4)
        .map(|l| u32::from_be_bytes([0, l[0], l[1], l[2]]) as usize)?;
    if len + 4 + RECORD_HEADER > MAX_PEEK {
        return Some(Err(Parse::Invalid("ClientHello longer than the limit")));
    }
    hs.get(4..4 + len).map(Ok)
}

/// A bounds-checked reader over an untrusted byte string.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (h, t) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = t;
        Some(h)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    /// A vector with a `width`-byte length prefix.
    fn vec(&mut self, width: usize) -> Option<&'a [u8]> {
        let n = match width {
            1 => self.u8()? as usize,
            _ => self.u16()? as usize,
        };
        self.take(n)
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Parses a whole ClientHello body; `len` is the record bytes it took.
fn finish(body: &[u8], len: usize, out: &mut Hello) -> Parse {
    let mut h = Hello::empty();
    match client_hello(body, &mut h) {
        Ok(()) => {
            h.len = len;
            *out = h;
            Parse::Complete
        }
        Err(why) => Parse::Invalid(why),
    }
}

fn client_hello(body: &[u8], hello: &mut Hello) -> Result<(), &'static str> {
    const SHORT: &str = "ClientHello cut short";
    let mut r = Reader(body);
    let version = r.u16().ok_or(SHORT)?;
    if version >> 8 != 3 {
        return Err("ClientHello version is not 3.x");
    }
    r.take(32).ok_or(SHORT)?; // random
    let session = r.vec(1).ok_or(SHORT)?;
    if session.len() > 32 {
        return Err("session id longer than 32 bytes");
    }
    let suites = r.vec(2).ok_or(SHORT)?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err("bad cipher suite list");
    }
    let compression = r.vec(1).ok_or(SHORT)?;
    if compression.is_empty() {
        return Err("no compression method");
    }
    if r.is_empty() {
        return Ok(()); // no extensions (TLS 1.2 and older may omit them)
    }
    let mut exts = Reader(r.vec(2).ok_or("extensions cut short")?);
    if !r.is_empty() {
        return Err("bytes after the extensions");
    }
    let (mut seen_name, mut seen_alpn) = (false, false);
    while !exts.is_empty() {
        let kind = exts.u16().ok_or("extension cut short")?;
        let data = exts.vec(2).ok_or("extension cut short")?;
        match kind {
            EXT_SERVER_NAME => {
                if std::mem::replace(&mut seen_name, true) {
                    return Err("server_name sent twice");
                }
                server_name(data, hello)?;
            }
            EXT_ALPN => {
                if std::mem::replace(&mut seen_alpn, true) {
                    return Err("ALPN sent twice");
                }
                alpn(data, hello)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn server_name(data: &[u8], hello: &mut Hello) -> Result<(), &'static str> {
    let mut r = Reader(data);
    let mut list = Reader(r.vec(2).ok_or("bad server_name extension")?);
    if !r.is_empty() || list.is_empty() {
        return Err("bad server_name extension");
    }
    while !list.is_empty() {
        let kind = list.u8().ok_or("bad server_name extension")?;
        let name = list.vec(2).ok_or("bad server_name extension")?;
        if kind != 0 {
            continue; // not host_name: no other type is defined
        }
        if hello.name_len != 0 {
            return Err("two host names in server_name");
        }
        if name.is_empty() || name.len() > MAX_NAME {
            return Err("server name empty or longer than 253 bytes");
        }
        if name
            .iter()
            .any(|&b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'))
            || name.starts_with(b".")
            || name.ends_with(b".")
        {
            return Err("server name is not a DNS host name");
        }
        for (d, s) in hello.name.iter_mut().zip(name) {
            *d = s.to_ascii_lowercase();
        }
        hello.name_len = name.len() as u8;
    }
    Ok(())
}

fn alpn(data: &[u8], hello: &mut Hello) -> Result<(), &'static str> {
    let mut r = Reader(data);
    let mut list = Reader(r.vec(2).ok_or("bad ALPN extension")?);
    if !r.is_empty() || list.is_empty() {
        return Err("bad ALPN extension");
    }
    while !list.is_empty() {
        match list.vec(1) {
            Some(p) if !p.is_empty() => {}
            _ => return Err("bad ALPN extension"),
        }
    }
    if data.len() <= MAX_ALPN {
        hello.alpn[..data.len()].copy_from_slice(data);
        hello.alpn_len = data.len() as u16;
    }
    Ok(())
}

/// Why [`peek_hello`] found no ClientHello.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    /// The first bytes cannot start a TLS handshake.
    #[error("not TLS")]
    NotTls,
    /// A malformed ClientHello (or longer than [`MAX_PEEK`]).
    #[error("bad ClientHello: {0}")]
    Invalid(&'static str),
    /// The whole ClientHello did not arrive in time.
    #[error("no complete ClientHello in time")]
    Timeout,
    /// The client closed before sending a whole ClientHello.
    #[error("closed before a whole ClientHello")]
    Eof,
    /// A socket error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Peeks at `s` until a whole ClientHello is queued, at most `timeout` (the bytes stay queued
/// for the backend). Waits on readiness: an incomplete ClientHello answers `WouldBlock` inside
/// `try_io`, which clears the readiness that peek saw, so the next wait sleeps until more bytes
/// (or the end of the stream) arrive instead of polling a stalled client.
pub async fn peek_hello(s: &TcpStream, timeout: Duration) -> Result<Hello, HelloError> {
    let mut hello = Hello::empty();
    let work = async {
        loop {
            let ready = s.ready(tokio::io::Interest::READABLE).await?;
            let closed = ready.is_read_closed();
            let peeked = s.try_io(tokio::io::Interest::READABLE, || {
                let mut buf = [0u8; MAX_PEEK];
                let n = peek(s, &mut buf)?;
                match parse(&buf[..n], &mut hello) {
                    Parse::Incomplete if n > 0 && !closed => Err(io::ErrorKind::WouldBlock.into()),
                    p => Ok((n, p)),
                }
            });
            let (n, parsed) = match peeked {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(HelloError::Io(e)),
            };
            return match parsed {
                Parse::Complete => Ok(()),
                Parse::NotTls => Err(HelloError::NotTls),
                Parse::Invalid(why) => Err(HelloError::Invalid(why)),
                Parse::Incomplete if n >= MAX_PEEK => {
                    Err(HelloError::Invalid("ClientHello longer than the limit"))
                }
                Parse::Incomplete => Err(HelloError::Eof),
            };
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| HelloError::Timeout)??;
    Ok(hello)
}

/// A non-blocking `recv(MSG_PEEK)` into `buf`: bytes stay queued on the socket.
#[allow(unsafe_code)] // recv(2); SAFETY comment on the block
fn peek(s: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: `buf` is a valid, writable, initialised buffer of `buf.len()` bytes for the
    // whole call; the fd is owned by `s`, borrowed for the call.
    let n = unsafe {
        libc::recv(
            s.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests;
