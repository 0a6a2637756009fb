//! A byte-stream gate in front of hyper that enforces HTTP/1.1 message framing rules.
//!
//! hyper is lenient in ways a gateway must not be (it quietly resolves `Content-Length` +
//! `Transfer-Encoding` and repeated equal `Content-Length`s, and closes slow heads without a
//! status). The gate tracks message boundaries itself (head, `Content-Length` body, chunked body)
//! and releases a request head to hyper only once it is complete and valid. On a violation it
//! stops feeding hyper (which sees a clean end of stream at a message boundary), and the status
//! (400, 408, 431) is written after hyper's last response, before the connection closes.
//!
//! Exactly one response per request: a violation inside a head (a request hyper never saw) is
//! answered by the gate; a violation inside a body (malformed chunking, a stalled body) belongs
//! to a request hyper already has, so hyper's handler answers it (the body read fails: a
//! timeout as `io::ErrorKind::TimedOut`, which the handler maps to 408) and the gate only closes.
//!
//! Line endings: every line of a head must end in CRLF. A bare LF is refused (400) wherever it
//! appears, in every message of the connection (RFC 9112 §2.2 lets a recipient either accept or
//! reject it; accepting it in the gate but not in a later parser is how a second, unjudged head
//! slips through).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Limits the gate enforces.
#[derive(Debug, Clone, Copy)]
pub struct GateLimits {
    /// Largest request head (request line + headers) in bytes (431 beyond).
    pub max_head: usize,
    /// A started head must be complete within this, and the first head must arrive within it (408).
    pub header_timeout: Duration,
    /// Between requests, a keep-alive connection is closed after this silence.
    pub idle_timeout: Duration,
    /// Longest silence inside a request body (the body read then fails with `TimedOut`).
    pub body_timeout: Duration,
}

/// A framing violation: the status written before closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// A malformed head or body framing (400).
    BadRequest,
    /// A head arrived too slowly (408).
    HeaderTimeout,
    /// A head exceeded `max_head` (431).
    HeadTooLarge,
    /// A body stalled (answered 408 by the handler that was reading it).
    BodyTimeout,
}

impl Violation {
    /// The complete HTTP/1.1 response written for this violation (`connection: close`).
    pub fn response(self) -> &'static [u8] {
        match self {
            Violation::BadRequest => b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 25\r\nconnection: close\r\n\r\n{\"error\":\"bad_request\"}\r\n",
            Violation::HeaderTimeout | Violation::BodyTimeout => b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: 29\r\nconnection: close\r\n\r\n{\"error\":\"request_timeout\"}\r\n",
            Violation::HeadTooLarge => b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\ncontent-length: 32\r\nconnection: close\r\n\r\n{\"error\":\"headers_too_large\"}\r\n",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size { value: u64, digits: u8, ext: u16 },
    SizeLf { value: u64 },
    Data(u64),
    DataCr,
    DataLf,
    Trailer(u16),
    TrailerLf(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body(u64),
    Chunked(Chunk),
}

/// The framing gate over one client connection: hyper reads and writes through it.
pub struct Gate<'a, S> {
    io: &'a mut S,
    limits: GateLimits,
    state: State,
    /// Bytes read from the socket, not yet judged (in `Head`, the partial head).
    raw: BytesMut,
    /// Judged bytes waiting for hyper.
    ready: BytesMut,
    /// Where to resume searching for the end of the head.
    scan: usize,
    head_started: Instant,
    /// Last bytes read (a body's silence is measured from here).
    last_read: Instant,
    first: bool,
    eof: bool,
    activity: bool,
    sleep: Option<Pin<Box<Sleep>>>,
    armed: Option<Instant>,
    /// Set once the gate refused the connection (it then only closes).
    pub violation: Option<Violation>,
    /// The violation is inside a head, so the gate answers it (see the module doc).
    answer: bool,
    written: usize,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Gate<'a, S> {
    /// `initial`: bytes already read (after a PROXY protocol header).
    pub fn new(io: &'a mut S, limits: GateLimits, initial: &[u8]) -> Self {
        let mut raw = BytesMut::with_capacity(2048.max(initial.len()));
        raw.extend_from_slice(initial);
        Gate {
            io,
            limits,
            state: State::Head,
            raw,
            ready: BytesMut::new(),
            scan: 0,
            head_started: Instant::now(),
            last_read: Instant::now(),
            first: true,
            eof: false,
            activity: false,
            sleep: None,
            armed: None,
            violation: None,
            answer: false,
            written: 0,
        }
    }

    /// Write the pending violation response (if hyper did not already get to it).
    pub async fn finish(&mut self) {
        use tokio::io::AsyncWriteExt;
        if let Some(v) = self.violation {
            if !self.answer {
                let _ = tokio::time::timeout(Duration::from_secs(1), self.io.shutdown()).await;
                return;
            }
            let bytes = &v.response()[self.written.min(v.response().len())..];
            if !bytes.is_empty() {
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), self.io.write_all(bytes)).await;
                self.written = v.response().len();
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), self.io.shutdown()).await;
        }
    }

    /// Gives the socket back, with what was read from it but not yet handed to hyper (a
    /// WebSocket takes the connection over after its handshake).
    pub fn into_buffered(self) -> BytesMut {
        let mut b = self.ready;
        b.extend_from_slice(&self.raw);
        b
    }

    fn fail(&mut self, v: Violation) {
        crate::metrics::framing_violation(v);
        self.answer = self.state == State::Head;
        self.violation = Some(v);
        self.raw.clear();
    }

    /// Judge buffered raw bytes according to the framing state.
    fn process(&mut self) {
        while !self.raw.is_empty() && self.violation.is_none() {
            match self.state {
                State::Head => {
                    if !self.head() {
                        return;
                    }
                }
                State::Body(n) => {
                    let k = (n as usize).min(self.raw.len());
                    self.release(k);
                    self.state = if n as usize == k {
                        self.next_head()
                    } else {
                        State::Body(n - k as u64)
                    };
                }
                State::Chunked(c) => self.chunked(c),
            }
        }
    }

    fn next_head(&mut self) -> State {
        self.scan = 0;
        self.first = false;
        State::Head
    }

    /// Move judged bytes to hyper's side. Copying (rather than splitting) keeps both buffers
    /// uniquely owned, so their capacity is reused instead of reallocated per request.
    fn release(&mut self, k: usize) {
        if k == self.raw.len() && self.ready.is_empty() {
            // the common case (one whole request in the buffer): hand it over without copying
            std::mem::swap(&mut self.ready, &mut self.raw);
            self.raw.clear();
            return;
        }
        self.ready.extend_from_slice(&self.raw[..k]);
        self.raw.advance(k);
    }

    /// Returns false when more bytes are needed.
    fn head(&mut self) -> bool {
        if self.scan == 0 {
            // skip empty lines before a request line (RFC 9112 §2.2)
            let skip = self
                .raw
                .iter()
                .take_while(|b| **b == b'\r' || **b == b'\n')
                .count();
            self.raw.advance(skip);
            if self.raw.is_empty() {
                return false;
            }
            if !self.first {
                self.head_started = Instant::now();
            }
        }
        // find the blank line that ends the head; every LF must follow a CR
        let mut i = self.scan;
        let end = loop {
            match self.raw[i..].iter().position(|b| *b == b'\n') {
                Some(off) => {
                    let p = i + off;
                    if p == 0 || self.raw[p - 1] != b'\r' {
                        self.fail(Violation::BadRequest);
                        return false;
                    }
                    if p >= 3 && &self.raw[p - 3..p] == b"\r\n\r" {
                        break p + 1;
                    }
                    i = p + 1;
                }
                None => {
                    self.scan = self.raw.len();
                    if self.raw.len() > self.limits.max_head {
                        self.fail(Violation::HeadTooLarge);
                    }
                    return false;
                }
            }
        };
        if end > self.limits.max_head {
            self.fail(Violation::HeadTooLarge);
            return false;
        }
        match judge_head(&self.raw[..end]) {
            Ok(next) => {
                self.release(end);
                self.scan = 0;
                self.state = match next {
                    State::Head => self.next_head(),
                    s => s,
                };
                true
            }
            Err(v) => {
                self.fail(v);
                false
            }
        }
    }

    fn chunked(&mut self, mut c: Chunk) {
        let mut i = 0;
        let n = self.raw.len();
        while i < n {
            let b = self.raw[i];
            c = match c {
                Chunk::Data(left) => {
                    let k = (left as usize).min(n - i);
                    i += k;
                    if left as usize == k {
                        Chunk::DataCr
                    } else {
                        Chunk::Data(left - k as u64)
                    }
                }
                Chunk::Size { value, digits, ext } => {
                    i += 1;
                    match (b, ext) {
                        (b'\r', _) if digits > 0 => Chunk::SizeLf { value },
                        (b';', _) if digits > 0 => Chunk::Size {
                            value,
                            digits,
                            ext: 1,
                        },
                        (_, 1..=4096) if b != b'\r' && b != b'\n' => Chunk::Size {
                            value,
                            digits,
                            ext: ext + 1,
                        },
                        (_, 0) if b.is_ascii_hexdigit() && digits < 15 => Chunk::Size {
                            value: value * 16 + (b as char).to_digit(16).unwrap_or(0) as u64,
                            digits: digits + 1,
                            ext,
                        },
                        _ => return self.fail(Violation::BadRequest),
                    }
                }
                Chunk::SizeLf { value } => {
                    i += 1;
                    match (b, value) {
                        (b'\n', 0) => Chunk::Trailer(0),
                        (b'\n', v) => Chunk::Data(v),
                        _ => return self.fail(Violation::BadRequest),
                    }
                }
                Chunk::DataCr => {
                    i += 1;
                    if b != b'\r' {
                        return self.fail(Violation::BadRequest);
                    }
                    Chunk::DataLf
                }
                Chunk::DataLf => {
                    i += 1;
                    if b != b'\n' {
                        return self.fail(Violation::BadRequest);
                    }
                    Chunk::Size {
                        value: 0,
                        digits: 0,
                        ext: 0,
                    }
                }
                Chunk::Trailer(len) => {
                    i += 1;
                    match b {
                        b'\r' => Chunk::TrailerLf(len),
                        // a bare LF would end the trailer line for some parsers, not for us
                        b'\n' => return self.fail(Violation::BadRequest),
                        _ if len < 8192 => Chunk::Trailer(len + 1),
                        _ => return self.fail(Violation::HeadTooLarge),
                    }
                }
                Chunk::TrailerLf(len) => {
                    i += 1;
                    if b != b'\n' {
                        return self.fail(Violation::BadRequest);
                    }
                    if len == 0 {
                        self.release(i);
                        self.state = self.next_head();
                        return;
                    }
                    Chunk::Trailer(0)
                }
            };
        }
        self.release(i);
        self.state = State::Chunked(c);
    }

    /// Arm the timer for the current wait; returns true when the wait is over (timed out).
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let partial = !self.raw.is_empty();
        let deadline = if self.state != State::Head {
            self.last_read + self.limits.body_timeout
        } else if partial || self.first {
            self.head_started + self.limits.header_timeout
        } else {
            match self.armed {
                Some(at) if !self.activity => at,
                _ => {
                    self.activity = false;
                    Instant::now() + self.limits.idle_timeout
                }
            }
        };
        if self.armed != Some(deadline) {
            self.armed = Some(deadline);
            let at = tokio::time::Instant::from_std(deadline);
            match &mut self.sleep {
                Some(s) => s.as_mut().reset(at),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
            }
        }
        let Some(sleep) = &mut self.sleep else {
            return false;
        };
        if sleep.as_mut().poll(cx).is_pending() {
            return false;
        }
        if self.state != State::Head {
            self.fail(Violation::BodyTimeout);
        } else if partial {
            self.fail(Violation::HeaderTimeout);
        } else {
            self.eof = true;
        }
        true
    }
}

use std::future::Future;

/// Validate a complete head; returns the framing of what follows it.
fn judge_head(head: &[u8]) -> Result<State, Violation> {
    // uninitialised slots: zeroing 128 headers (4 KiB) per request cost more than the parse
    let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; 128];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, &mut headers) {
        // the parser must agree with the gate on where the head ends
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Err(httparse::Error::TooManyHeaders) => return Err(Violation::HeadTooLarge),
        _ => return Err(Violation::BadRequest),
    }
    let mut cl: Option<u64> = None;
    let mut cl_count = 0;
    let mut te: Option<&[u8]> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            cl_count += 1;
            let s = std::str::from_utf8(h.value).map_err(|_| Violation::BadRequest)?;
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 18 {
                return Err(Violation::BadRequest);
            }
            cl = Some(s.parse().map_err(|_| Violation::BadRequest)?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if te.is_some() {
                return Err(Violation::BadRequest);
            }
            te = Some(h.value);
        }
    }
    if cl_count > 1 {
        return Err(Violation::BadRequest);
    }
    match (te, cl) {
        (Some(_), Some(_)) => Err(Violation::BadRequest),
        (Some(te), None) => {
            if req.version != Some(1) || !te.eq_ignore_ascii_case(b"chunked") {
                return Err(Violation::BadRequest);
            }
            Ok(State::Chunked(Chunk::Size {
                value: 0,
                digits: 0,
                ext: 0,
            }))
        }
        (None, Some(0)) | (None, None) => Ok(State::Head),
        (None, Some(n)) => Ok(State::Body(n)),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Gate<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let k = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..k]);
                this.ready.advance(k);
                return Poll::Ready(Ok(()));
            }
            if this.violation == Some(Violation::BodyTimeout) {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request body stalled",
                )));
            }
            if this.violation.is_some() || this.eof {
                return Poll::Ready(Ok(()));
            }
            let before = this.raw.len();
            if before > 0 && this.state != State::Head {
                this.process();
                continue;
            }
            if before > 0 && this.scan < before {
                this.process();
                if !this.ready.is_empty() || this.violation.is_some() {
                    continue;
                }
            }
            this.raw.reserve(2048);
            match tokio_util::io::poll_read_buf(Pin::new(&mut *this.io), cx, &mut this.raw) {
                Poll::Ready(Ok(0)) => {
                    this.eof = true;
                }
                Poll::Ready(Ok(_)) => {
                    this.activity = true;
                    this.last_read = Instant::now();
                    this.process();
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    if this.timed_out(cx) {
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Gate<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.activity = true;
        Pin::new(&mut *self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.activity = true;
        Pin::new(&mut *self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let (Some(v), true) = (this.violation, this.answer) {
            let resp = v.response();
            while this.written < resp.len() {
                match Pin::new(&mut *this.io).poll_write(cx, &resp[this.written..]) {
                    Poll::Ready(Ok(0)) => break,
                    Poll::Ready(Ok(n)) => this.written += n,
                    Poll::Ready(Err(_)) => {
                        this.written = resp.len();
                        break;
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
        Pin::new(&mut *this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
