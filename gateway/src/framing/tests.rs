//! The framing gate's unit tests: smuggling shapes, and a bounded property test of generated
//! request streams against a lenient next parser.

use super::*;

#[test]
fn smuggling_shapes_are_rejected() {
    let bad: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\n",
    ];
    for b in bad {
        assert_eq!(
            judge_head(b),
            Err(Violation::BadRequest),
            "{}",
            String::from_utf8_lossy(b)
        );
    }
    assert_eq!(
        judge_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Ok(State::Head)
    );
    assert_eq!(
        judge_head(b"POST / HTTP/1.1\r\nContent-Length: 7\r\n\r\n"),
        Ok(State::Body(7))
    );
}

use switchyard_testkit::Rng;

/// Run `input` through a gate (fed in random pieces); what it hands to hyper and whether it
/// found a violation.
async fn through_gate(input: Vec<u8>, rng: &mut Rng) -> (Vec<u8>, Option<Violation>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client, mut server) = tokio::io::duplex(1 << 16);
    let mut pieces = Vec::new();
    let mut rest = &input[..];
    while !rest.is_empty() {
        let k = (1 + rng.below(40)).min(rest.len());
        pieces.push(rest[..k].to_vec());
        rest = &rest[k..];
    }
    let writer = tokio::spawn(async move {
        for p in pieces {
            if client.write_all(&p).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
    });
    let limits = GateLimits {
        max_head: 4096,
        header_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        body_timeout: Duration::from_secs(30),
    };
    let mut gate = Gate::new(&mut server, limits, &[]);
    let mut out = Vec::new();
    let _ = gate.read_to_end(&mut out).await;
    let v = gate.violation;
    drop(gate);
    drop(server);
    let _ = writer.await;
    (out, v)
}

/// Split released bytes into messages the way a lenient next parser does (httparse takes a
/// bare LF as a line end; hyper and many upstreams do too) and check that every head it
/// finds is one the gate accepts, with the same framing.
fn next_parser_view(mut b: &[u8]) -> Result<(), String> {
    loop {
        while let [b'\r' | b'\n', rest @ ..] = b {
            b = rest;
        }
        if b.is_empty() {
            return Ok(());
        }
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        let n = match req.parse(b) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(()), // waits for more
            Err(e) => return Err(format!("released bytes the next parser refuses: {e}")),
        };
        let state = judge_head(&b[..n])
            .map_err(|v| format!("an unjudged head reached the next parser ({v:?})"))?;
        b = &b[n..];
        match state {
            State::Head => {}
            State::Body(k) => b = &b[(k as usize).min(b.len())..],
            State::Chunked(_) => match skip_chunked(b) {
                Some(rest) => b = rest,
                None => return Ok(()), // truncated or broken body: the connection ends
            },
        }
    }
}

/// The bytes after a complete, strictly framed chunked body.
fn skip_chunked(mut b: &[u8]) -> Option<&[u8]> {
    loop {
        let line = b.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&b[..line]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?, 16).ok()?;
        b = &b[line + 2..];
        if size == 0 {
            loop {
                let end = b.windows(2).position(|w| w == b"\r\n")?;
                b = &b[end + 2..];
                if end == 0 {
                    return Some(b);
                }
            }
        }
        if b.len() < size + 2 || &b[size..size + 2] != b"\r\n" {
            return None;
        }
        b = &b[size + 2..];
    }
}

/// Generated request streams (valid and broken messages, CRLF / bare LF / bare CR, smuggling
/// shapes, chunked bodies, random mutations; 3,000 cases fed in random pieces): every
/// message that a lenient next parser finds in what the gate hands to hyper is one the gate
/// judged and accepted, so no unjudged or differently-framed head slips through. Also: no
/// panic on any input.
#[tokio::test]
async fn released_bytes_are_always_clean() {
    const LINES: &[&str] = &[
        "GET /a HTTP/1.1",
        "POST /b HTTP/1.1",
        "GET /c HTTP/1.0",
        "GET http://x/ HTTP/1.1",
        "BAD",
    ];
    const HEADERS: &[&str] = &[
        "Host: a",
        "Content-Length: 5",
        "Content-Length: 0",
        "Content-Length: +5",
        "Content-Length: 5, 5",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: gzip",
        "X: y",
        " folded",
    ];
    const EOLS: &[&str] = &["\r\n", "\r\n", "\r\n", "\r\n", "\n", "\r"];
    const BODIES: &[&str] = &[
        "hello",
        "5\r\nhello\r\n0\r\n\r\n",
        "0\r\n\r\n",
        "zz\r\n",
        "",
    ];
    let mut rng = Rng(0x51_7cc1_b727_220a);
    let mut rejected = 0;
    for _ in 0..3_000 {
        let mut input = Vec::new();
        for _ in 0..=rng.below(3) {
            let mut m = String::from(LINES[rng.below(LINES.len())]);
            m.push_str(EOLS[rng.below(EOLS.len())]);
            for _ in 0..rng.below(4) {
                m.push_str(HEADERS[rng.below(HEADERS.len())]);
                m.push_str(EOLS[rng.below(EOLS.len())]);
            }
            m.push_str(EOLS[rng.below(EOLS.len())]);
            m.push_str(BODIES[rng.below(BODIES.len())]);
            input.extend_from_slice(m.as_bytes());
        }
        for _ in 0..rng.below(3) {
            let i = rng.below(input.len());
            match rng.below(3) {
                0 => input[i] = rng.next() as u8,
                1 => input.insert(i, rng.next() as u8),
                _ => {
                    input.remove(i);
                }
            }
        }
        let (out, v) = through_gate(input.clone(), &mut rng).await;
        rejected += v.is_some() as usize;
        if let Err(e) = next_parser_view(&out) {
            panic!(
                "{e}\ninput {:?}\nreleased {:?}",
                String::from_utf8_lossy(&input),
                String::from_utf8_lossy(&out)
            );
        }
    }
    // the generator reaches both outcomes
    assert!(rejected > 300 && rejected < 2_900, "{rejected} rejected");
}
