//! PROXY protocol v1 (text) and v2 (binary), as specified by HAProxy's `proxy-protocol.txt`.
//!
//! Sans-IO: [`encode`] writes a header into a stack buffer, [`parse`] decodes one from the bytes
//! seen so far. The header comes from the network, so [`parse`] never panics, never allocates,
//! and looks at most [`V1_MAX`] / [`V2_MAX`] bytes. The I/O side ([`read_header`]) only peeks
//! and consumes exactly the header.
//!
//! What is accepted: v1 `TCP4`/`TCP6` lines whose addresses match the family and whose ports are
//! plain decimal (no sign, no leading zero, at most 65535), and `UNKNOWN` with anything after it;
//! v2 `PROXY` with an `AF_INET`/`AF_INET6` `STREAM` address block of at least the family's size
//! (TLVs after it are skipped), `LOCAL`, and other families (`UNSPEC`, `UNIX`, `DGRAM`) without
//! addresses. Bytes that cannot begin a header are [`Parse::Absent`], so a server may take
//! PROXY headers optionally.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpStream;

/// The 12-byte v2 signature.
pub const V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 header, CRLF included.
pub const V1_MAX: usize = 107;
/// Room for any header we encode.
pub const MAX_ENCODED: usize = 108;
/// Upper bound on a v2 header we accept (addresses plus TLVs).
pub const V2_MAX: usize = 16 + 512;
/// The start of every v1 header.
const V1_PREFIX: &[u8] = b"PROXY ";

/// Which version of the protocol to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The text form (`PROXY TCP4 ...\r\n`).
    V1,
    /// The binary form.
    V2,
}

/// Writes the header for a connection from `src` to `dst` into `out`; returns its length.
/// Mixed families are written as IPv6 (IPv4-mapped).
pub fn encode(
    version: Version,
    src: SocketAddr,
    dst: SocketAddr,
    out: &mut [u8; MAX_ENCODED],
) -> usize {
    let (src, dst) = same_family(src, dst);
    match version {
        Version::V1 => {
            use std::io::Write;
            let mut cur = io::Cursor::new(&mut out[..]);
            let fam = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            let _ = write!(
                cur,
                "PROXY {fam} {} {} {} {}\r\n",
                src.ip(),
                dst.ip(),
                src.port(),
                dst.port()
            );
            cur.position() as usize
        }
        Version::V2 => {
            out[..12].copy_from_slice(&V2_SIG);
            out[12] = 0x21; // version 2, PROXY command
            let mut n = 16;
            match (src.ip(), dst.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out[13] = 0x11; // AF_INET, STREAM
                    out[14..16].copy_from_slice(&12u16.to_be_bytes());
                    out[16..20].copy_from_slice(&s.octets());
                    out[20..24].copy_from_slice(&d.octets());
                    n += 8;
                }
                (s, d) => {
                    out[13] = 0x21; // AF_INET6, STREAM
                    out[14..16].copy_from_slice(&36u16.to_be_bytes());
                    out[16..32].copy_from_slice(&v6(s).octets());
                    out[32..48].copy_from_slice(&v6(d).octets());
                    n += 32;
                }
            }
            out[n..n + 2].copy_from_slice(&src.port().to_be_bytes());
            out[n + 2..n + 4].copy_from_slice(&dst.port().to_be_bytes());
            n + 4
        }
    }
}

/// v2 TLV type of the server name the client asked for (the TLS SNI).
pub const PP2_TYPE_AUTHORITY: u8 = 0x02;
/// v2 TLV type of the application protocol (the TLS ALPN extension, verbatim).
pub const PP2_TYPE_ALPN: u8 = 0x01;
/// Room for a v2 header with addresses and two TLVs of up to 256 bytes each (SNI, ALPN).
pub const MAX_ENCODED_TLVS: usize = 52 + 2 * (3 + 256);

/// Writes a v2 header for `src` → `dst` followed by `tlvs` (type, value) into `out`; returns its
/// length, or `None` if `out` is too small (nothing useful is written then).
pub fn encode_v2_tlvs(
    src: SocketAddr,
    dst: SocketAddr,
    tlvs: &[(u8, &[u8])],
    out: &mut [u8],
) -> Option<usize> {
    let mut base = [0u8; MAX_ENCODED];
    let mut n = encode(Version::V2, src, dst, &mut base);
    out.get_mut(..n)?.copy_from_slice(&base[..n]);
    for &(kind, value) in tlvs {
        let len = u16::try_from(value.len()).ok()?;
        let t = out.get_mut(n..n + 3 + value.len())?;
        t[0] = kind;
        t[1..3].copy_from_slice(&len.to_be_bytes());
        t[3..].copy_from_slice(value);
        n += t.len();
    }
    let alen = u16::try_from(n - 16).ok()?;
    out[14..16].copy_from_slice(&alen.to_be_bytes());
    Some(n)
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    if src.is_ipv4() == dst.is_ipv4() {
        (src, dst)
    } else {
        (
            SocketAddr::new(IpAddr::V6(v6(src.ip())), src.port()),
            SocketAddr::new(IpAddr::V6(v6(dst.ip())), dst.port()),
        )
    }
}

/// A decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Bytes the header occupies.
    pub len: usize,
    /// Original client and destination (`None` for `UNKNOWN` / `LOCAL` / other families).
    pub addrs: Option<(SocketAddr, SocketAddr)>,
}

impl Header {
    /// The original client's address, if the header carries one.
    pub fn source(&self) -> Option<SocketAddr> {
        self.addrs.map(|(s, _)| s)
    }
}

/// Result of [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// A whole header.
    Complete(Header),
    /// A valid prefix; more bytes are needed.
    Incomplete,
    /// Not a PROXY header at all: the bytes are the protocol itself.
    Absent,
    /// A malformed PROXY header; the reason.
    Invalid(&'static str),
}

/// Decodes a v1 or v2 header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parse {
    if buf.len() >= V2_SIG.len() && buf[..V2_SIG.len()] == V2_SIG {
        return parse_v2(buf);
    }
    if buf.starts_with(V1_PREFIX) {
        return parse_v1(buf);
    }
    if V2_SIG.starts_with(buf) || V1_PREFIX.starts_with(buf) {
        return Parse::Incomplete;
    }
    Parse::Absent
}

fn parse_v1(buf: &[u8]) -> Parse {
    let Some(end) = buf.windows(2).take(V1_MAX - 1).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Parse::Invalid("v1 header longer than 107 bytes")
        } else {
            Parse::Incomplete
        };
    };
    let Ok(line) = std::str::from_utf8(&buf[V1_PREFIX.len()..end]) else {
        return Parse::Invalid("v1 header is not ASCII");
    };
    let len = end + 2;
    let mut parts = line.split(' ');
    match parts.next() {
        Some("UNKNOWN") => Parse::Complete(Header { len, addrs: None }),
        Some(fam @ ("TCP4" | "TCP6")) => {
            let ip = |s: Option<&str>| -> Option<IpAddr> {
                let ip: IpAddr = s?.parse().ok()?;
                (ip.is_ipv4() == (fam == "TCP4")).then_some(ip)
            };
            let (s, d) = (ip(parts.next()), ip(parts.next()));
            let (sp, dp) = (port(parts.next()), port(parts.next()));
            match (s, d, sp, dp, parts.next()) {
                (Some(s), Some(d), Some(sp), Some(dp), None) => Parse::Complete(Header {
                    len,
                    addrs: Some((SocketAddr::new(s, sp), SocketAddr::new(d, dp))),
                }),
                _ => Parse::Invalid("v1 header has a bad address or port"),
            }
        }
        _ => Parse::Invalid("v1 header has a bad protocol field"),
    }
}

/// A v1 port: 1 to 5 decimal digits, no sign, no leading zero (but `0` itself), at most 65535.
fn port(s: Option<&str>) -> Option<u16> {
    let s = s?;
    let plain = !s.is_empty()
        && s.len() <= 5
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if plain {
        s.parse().ok()
    } else {
        None
    }
}

fn parse_v2(buf: &[u8]) -> Parse {
    if buf.len() < 16 {
        return Parse::Incomplete;
    }
    if buf[12] >> 4 != 2 {
        return Parse::Invalid("v2 header with a bad version");
    }
    let cmd = buf[12] & 0x0f;
    let alen = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if 16 + alen > V2_MAX {
        return Parse::Invalid("v2 header too long");
    }
    if buf.len() < 16 + alen {
        return Parse::Incomplete;
    }
    let len = 16 + alen;
    let a = &buf[16..len];
    let addrs = match (cmd, buf[13]) {
        (0, _) => None, // LOCAL: health check of the proxy in front
        (1, 0x11) if alen >= 12 => {
            let s = IpAddr::from([a[0], a[1], a[2], a[3]]);
            let d = IpAddr::from([a[4], a[5], a[6], a[7]]);
            Some((
                SocketAddr::new(s, u16::from_be_bytes([a[8], a[9]])),
                SocketAddr::new(d, u16::from_be_bytes([a[10], a[11]])),
            ))
        }
        (1, 0x21) if alen >= 36 => {
            let s: [u8; 16] = a[0..16].try_into().unwrap_or_default();
            let d: [u8; 16] = a[16..32].try_into().unwrap_or_default();
            Some((
                SocketAddr::new(IpAddr::from(s), u16::from_be_bytes([a[32], a[33]])),
                SocketAddr::new(IpAddr::from(d), u16::from_be_bytes([a[34], a[35]])),
            ))
        }
        (1, 0x00) => None, // UNSPEC
        (1, 0x11 | 0x21) => return Parse::Invalid("v2 address block too short"),
        (1, _) => None, // UNIX or DGRAM: keep the socket addresses
        _ => return Parse::Invalid("v2 header with a bad command"),
    };
    Parse::Complete(Header { len, addrs })
}

/// Reads one PROXY header from `s` (peeking, then consuming exactly the header) within
/// `timeout`. A malformed or missing header is an `InvalidData` error: the caller closes only
/// this connection.
pub async fn read_header(s: &TcpStream, timeout: Duration) -> io::Result<Header> {
    tokio::time::timeout(timeout, async {
        let mut buf = [0u8; V2_MAX];
        loop {
            s.readable().await?;
            // Peek inside `try_io`: an incomplete header answers `WouldBlock`, which clears the
            // readiness this peek saw (and only that one), so the next `readable()` sleeps
            // until more bytes arrive instead of polling a stalled client.
            let peeked = s.try_io(tokio::io::Interest::READABLE, || {
                let n = peek(s, &mut buf)?;
                match parse(&buf[..n]) {
                    Parse::Incomplete if n > 0 && n < V2_MAX => {
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    p => Ok((n, p)),
                }
            });
            let (n, parsed) = match peeked {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "eof before PROXY header",
                ));
            }
            match parsed {
                Parse::Complete(h) => {
                    let mut left = h.len;
                    while left > 0 {
                        s.readable().await?;
                        match s.try_read(&mut buf[..left]) {
                            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                            Ok(k) => left -= k,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) => return Err(e),
                        }
                    }
                    return Ok(h);
                }
                Parse::Absent => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "not a PROXY protocol header",
                    ))
                }
                Parse::Invalid(why) => return Err(io::Error::new(io::ErrorKind::InvalidData, why)),
                Parse::Incomplete => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "PROXY header too long",
                    ))
                }
            }
        }
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no PROXY header in time"))?
}

/// A non-blocking `recv(MSG_PEEK)` into `buf`: bytes stay queued on the socket.
#[allow(unsafe_code)] // reading what the kernel wrote; SAFETY comment on the block
fn peek(s: &TcpStream, buf: &mut [u8; V2_MAX]) -> io::Result<usize> {
    let mut raw = [std::mem::MaybeUninit::<u8>::uninit(); V2_MAX];
    let n = socket2::SockRef::from(s).peek(&mut raw)?;
    for (dst, src) in buf.iter_mut().zip(&raw[..n]) {
        // SAFETY: recv(2) initialised the first `n` bytes of `raw`; only those are read.
        *dst = unsafe { src.assume_init() };
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
