//! `bench chain`: what a real client does. Resolve the GSLB name (and keep the answer for its
//! TTL, as a caching stub would), connect to the VIP it got (again only when the answer changes
//! or the connection broke), and send the request through the gateway. Each request's time is
//! split into DNS (when it resolved), connect (when it connected) and time to first byte.

use crate::dns;
use crate::http::{HttpConn, HttpSpec};
use crate::load::{ErrorKind, Timing, Worker};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// One chain client.
pub struct ChainWorker {
    dns: SocketAddr,
    query: Arc<Vec<u8>>,
    port: u16,
    spec: Arc<HttpSpec>,
    sock: Option<UdpSocket>,
    cached: Option<(IpAddr, Instant)>,
    conn: HttpConn,
    i: usize,
    id: u16,
    buf: Vec<u8>,
}

impl ChainWorker {
    /// A client resolving with `query` (encoded A query) at `dns`, then requesting `spec`
    /// at the answer's address and `port`.
    pub fn new(
        dns: SocketAddr,
        query: Arc<Vec<u8>>,
        port: u16,
        spec: Arc<HttpSpec>,
        offset: usize,
    ) -> Self {
        ChainWorker {
            dns,
            query,
            port,
            spec,
            sock: None,
            cached: None,
            conn: HttpConn::new(),
            i: offset,
            id: (offset as u16).wrapping_mul(7919),
            buf: vec![0; 4096],
        }
    }

    async fn once(&mut self, t: &mut Timing) -> Result<(), ErrorKind> {
        let now = Instant::now();
        let ip = match self.cached {
            Some((ip, until)) if now < until => ip,
            _ => {
                if self.sock.is_none() {
                    let s = UdpSocket::bind(if self.dns.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    })
                    .await
                    .map_err(|_| "dns bind")?;
                    s.connect(self.dns).await.map_err(|_| "dns connect")?;
                    self.sock = Some(s);
                }
                self.id = self.id.wrapping_add(1);
                let sock = self.sock.as_ref().expect("set above");
                let (addrs, ttl) = dns::resolve(sock, self.id, &self.query, &mut self.buf).await?;
                t.dns = Some(now.elapsed());
                let ip = addrs[self.i % addrs.len()];
                self.cached = Some((
                    ip,
                    Instant::now() + std::time::Duration::from_secs(ttl.into()),
                ));
                ip
            }
        };
        self.i = self.i.wrapping_add(1);
        let spec = self.spec.clone();
        let r = self
            .conn
            .request(SocketAddr::new(ip, self.port), &spec, self.i, t)
            .await;
        if matches!(r, Err("connect refused" | "connect error")) {
            // like a browser: a dead address is forgotten, the next request resolves again
            self.cached = None;
        }
        r
    }
}

impl Worker for ChainWorker {
    async fn call(&mut self) -> Result<Timing, ErrorKind> {
        let mut t = Timing::default();
        match tokio::time::timeout(self.spec.timeout, self.once(&mut t)).await {
            Ok(r) => r.map(|_| t),
            Err(_) => {
                self.conn.reset();
                Err("timeout")
            }
        }
    }
}
