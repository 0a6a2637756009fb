//! A recording upstream over raw TCP: it keeps every request exactly as it arrived (every header
//! line, duplicates and spellings included) and answers each with fixed raw bytes, so a test can
//! assert both what the client got and what reached the instance.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One request as the instance received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// Header lines in order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    /// Every value of a header (name compared case-insensitively, exactly as spelled).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Header names that normalise (`_` as `-`, any case) to `name`.
    pub fn spellings(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.replace('_', "-").eq_ignore_ascii_case(name))
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: CancellationToken,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The default answer: 200 with a small JSON body, keep-alive.
pub const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";

impl Recorder {
    pub async fn start(reply: &'static [u8]) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (seen2, stop2) = (seen.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (mut s, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                    _ = stop2.cancelled() => return,
                };
                let seen = seen2.clone();
                let stop = stop2.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        while let Some((req, used)) = parse(&buf) {
                            buf.drain(..used);
                            seen.lock().unwrap().push(req);
                            if s.write_all(reply).await.is_err() {
                                return;
                            }
                        }
                        let mut chunk = [0u8; 8192];
                        let n = tokio::select! {
                            r = s.read(&mut chunk) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
                            _ = stop.cancelled() => return,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                    }
                });
            }
        });
        Recorder { addr, seen, stop }
    }

    /// Requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// One complete request (Content-Length bodies only: the gateway forwards bodies with a length).
fn parse(buf: &[u8]) -> Option<(Seen, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).to_string(),
            )
        })
        .collect();
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    if buf.len() < n + len {
        return None;
    }
    Some((
        Seen {
            method: req.method.unwrap_or("").to_string(),
            target: req.path.unwrap_or("").to_string(),
            headers,
            body: buf[n..n + len].to_vec(),
        },
        n + len,
    ))
}
