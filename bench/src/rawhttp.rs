//! A minimal HTTP/1.1 keep-alive client for `bench http`: requests are rendered once, written as
//! bytes, and answers are read with `httparse` into one reused buffer (the body is skipped by
//! `Content-Length` or chunked framing, never copied). It measures the server, not itself: no
//! allocation, header map or task per request (hyper's client cost 1.4x wrk's CPU per request).

use crate::load::{ErrorKind, Timing};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How a body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    /// No length: the server closes the connection after it.
    Close,
}

/// What a complete head says: its length, status, framing, whether the server keeps the
/// connection open. `None`: more bytes are needed. `Err`: not HTTP.
fn head(buf: &[u8]) -> Result<Option<(usize, u16, Framing, bool)>, ErrorKind> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut headers);
    let n = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("http bad answer"),
    };
    let code = r.code.unwrap_or(0);
    let mut framing = Framing::Close;
    let mut keep = r.version == Some(1);
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or("http bad answer")?;
            if framing != Framing::Chunked {
                framing = Framing::Length(len);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if h.value.eq_ignore_ascii_case(b"chunked") {
                framing = Framing::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            keep = !h.value.eq_ignore_ascii_case(b"close");
        }
    }
    // no body at all for 1xx, 204 and 304
    if code == 204 || code == 304 || (100..200).contains(&code) {
        framing = Framing::Length(0);
    }
    Ok(Some((n, code, framing, keep)))
}

/// Where a chunked body that starts at `buf[0]` ends (just past its last CRLF), if it is all
/// there. Trailers are skipped.
fn chunked_end(buf: &[u8]) -> Result<Option<usize>, ErrorKind> {
    let mut pos = 0;
    loop {
        let Some(eol) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = &buf[pos..pos + eol];
        let hex = line.split(|b| *b == b';').next().unwrap_or(line);
        let size = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
            .ok_or("http bad answer")?;
        pos += eol + 2;
        if size == 0 {
            // trailers, then an empty line
            loop {
                let Some(eol) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some(pos));
                }
            }
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        pos += size + 2;
    }
}

/// One keep-alive connection (opened on demand, dropped after errors or `Connection: close`).
#[derive(Default)]
pub struct RawConn {
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl RawConn {
    /// Sends `req` (a complete request) to `addr`; the answer's status. Fills `connect` (when it
    /// connected) and `ttfb` of `t`.
    pub async fn exchange(
        &mut self,
        addr: SocketAddr,
        req: &[u8],
        t: &mut Timing,
    ) -> Result<u16, ErrorKind> {
        let r = self.exchange_inner(addr, req, t).await;
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    async fn exchange_inner(
        &mut self,
        addr: SocketAddr,
        req: &[u8],
        t: &mut Timing,
    ) -> Result<u16, ErrorKind> {
        if self.buf.len() < 16 * 1024 {
            self.buf.resize(16 * 1024, 0);
        }
        if self.stream.is_none() {
            let t0 = Instant::now();
            let s = TcpStream::connect(addr).await.map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connect refused",
                _ => "connect error",
            })?;
            let _ = s.set_nodelay(true);
            t.connect = Some(t0.elapsed());
            self.stream = Some(s);
        }
        let s = self.stream.as_mut().expect("set above");
        s.write_all(req).await.map_err(|_| "write error")?;
        let t1 = Instant::now();
        let mut filled = 0;
        let mut parsed: Option<(usize, u16, Framing, bool)> = None;
        loop {
            if let Some((n, code, framing, keep)) = parsed {
                let done = match framing {
                    Framing::Length(len) => (filled >= n + len).then_some(n + len),
                    Framing::Chunked => chunked_end(&self.buf[n..filled])?.map(|e| n + e),
                    Framing::Close => None,
                };
                if let Some(end) = done {
                    if end != filled {
                        return Err("http bad answer"); // bytes nobody asked for
                    }
                    if !keep {
                        self.stream = None;
                    }
                    return Ok(code);
                }
            }
            if filled == self.buf.len() {
                // a body larger than the buffer: only its end matters, keep the head's place
                match parsed {
                    Some((n, _, Framing::Length(len), _)) if len > 0 => {
                        let skip = (filled - n).min(len - 1);
                        self.buf.copy_within(n + skip..filled, n);
                        filled -= skip;
                        if let Some(p) = parsed.as_mut() {
                            p.2 = Framing::Length(len - skip);
                        }
                    }
                    _ => {
                        let l = self.buf.len();
                        self.buf.resize(l * 2, 0);
                    }
                }
            }
            let s = self.stream.as_mut().expect("connected");
            let n = s
                .read(&mut self.buf[filled..])
                .await
                .map_err(|_| "read error")?;
            if n == 0 {
                return match parsed {
                    Some((_, code, Framing::Close, _)) => {
                        self.stream = None;
                        Ok(code)
                    }
                    _ if filled == 0 => Err("closed without answer"),
                    _ => Err("connection closed"),
                };
            }
            if filled == 0 {
                t.ttfb = Some(t1.elapsed());
            }
            filled += n;
            if parsed.is_none() {
                parsed = head(&self.buf[..filled])?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_chunks() {
        let (n, code, f, keep) = head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!((n, code, f, keep), (38, 200, Framing::Length(5), true));
        let (_, code, f, keep) =
            head(b"HTTP/1.1 503 x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!((code, f, keep), (503, Framing::Chunked, false));
        assert_eq!(head(b"HTTP/1.1 200 OK\r\nContent-"), Ok(None));
        assert!(head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert_eq!(chunked_end(b"5\r\nhello\r\n0\r\n\r\n"), Ok(Some(15)));
        assert_eq!(
            chunked_end(b"5;x=1\r\nhello\r\n0\r\nT: v\r\n\r\n"),
            Ok(Some(25))
        );
        assert_eq!(chunked_end(b"5\r\nhel"), Ok(None));
        assert_eq!(chunked_end(b"5\r\nhello\r\n0\r\n"), Ok(None));
        assert!(chunked_end(b"zz\r\n").is_err());
    }
}
