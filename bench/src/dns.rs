//! `bench dns`: queries over UDP (one socket per worker) or TCP (one connection per worker,
//! length-prefixed), from a list of (name, type, ECS network). Queries are encoded once; per
//! query only the ID changes, and answers are checked from the header (ID, RCODE, answer count)
//! without decoding, so the client does not allocate per query.

use crate::load::{ErrorKind, Timing, Worker};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// One question to ask.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub name: String,
    pub qtype: RecordType,
    pub ecs: Option<IpNet>,
}

/// Reads a query file: `NAME [TYPE]` per line (dnsperf's format), `#` comments.
pub fn parse_queries(text: &str) -> Result<Vec<Question>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut it = line.split_whitespace();
        let name = it.next().unwrap_or_default().to_string();
        let qtype = match it.next() {
            Some(t) => RecordType::from_str(&t.to_ascii_uppercase())
                .map_err(|_| format!("line {}: unknown record type {t:?}", i + 1))?,
            None => RecordType::A,
        };
        out.push(Question {
            name,
            qtype,
            ecs: None,
        });
    }
    if out.is_empty() {
        return Err("the query file has no queries".into());
    }
    Ok(out)
}

/// Encodes a query with ID 0 (the worker sets the ID per query).
pub fn encode(q: &Question) -> Result<Vec<u8>, String> {
    let name = Name::from_str(&q.name).map_err(|e| format!("{:?}: {e}", q.name))?;
    let mut m = Message::query();
    m.metadata.recursion_desired = false;
    m.add_query(Query::query(name, q.qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some(n) = q.ecs {
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(
                n.addr(),
                n.prefix_len(),
                0,
            )));
    }
    m.set_edns(edns);
    m.to_vec().map_err(|e| e.to_string())
}

/// Checks an answer's header against the query ID: NOERROR with at least one answer record.
pub fn check(id: u16, resp: &[u8]) -> Result<(), ErrorKind> {
    if resp.len() < 12 {
        return Err("dns short answer");
    }
    if u16::from_be_bytes([resp[0], resp[1]]) != id {
        return Err("dns wrong id");
    }
    if resp[2] & 0x02 != 0 {
        return Err("dns truncated");
    }
    match resp[3] & 0x0f {
        0 => {}
        2 => return Err("dns servfail"),
        3 => return Err("dns nxdomain"),
        5 => return Err("dns refused"),
        _ => return Err("dns other rcode"),
    }
    if u16::from_be_bytes([resp[6], resp[7]]) == 0 {
        return Err("dns no answer");
    }
    Ok(())
}

/// Transport of `bench dns`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// One DNS client (socket) cycling through the encoded queries.
pub struct DnsWorker {
    server: SocketAddr,
    transport: Transport,
    queries: std::sync::Arc<Vec<Vec<u8>>>,
    next: usize,
    id: u16,
    timeout: Duration,
    udp: Option<UdpSocket>,
    tcp: Option<TcpStream>,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl DnsWorker {
    /// A worker starting at query `offset` (so workers do not ask in lockstep).
    pub fn new(
        server: SocketAddr,
        transport: Transport,
        queries: std::sync::Arc<Vec<Vec<u8>>>,
        offset: usize,
        timeout: Duration,
    ) -> Self {
        DnsWorker {
            server,
            transport,
            next: offset,
            id: (offset as u16).wrapping_mul(7919),
            queries,
            timeout,
            udp: None,
            tcp: None,
            buf: vec![0; 65_535],
            out: Vec::with_capacity(600),
        }
    }

    async fn udp(&mut self) -> Result<(), ErrorKind> {
        if self.udp.is_none() {
            let bind: SocketAddr = if self.server.is_ipv4() {
                "0.0.0.0:0".parse().expect("literal")
            } else {
                "[::]:0".parse().expect("literal")
            };
            let s = UdpSocket::bind(bind).await.map_err(|_| "udp bind")?;
            s.connect(self.server).await.map_err(|_| "udp connect")?;
            self.udp = Some(s);
        }
        let s = self.udp.as_ref().expect("set above");
        s.send(&self.out).await.map_err(|_| "udp send")?;
        loop {
            let n = s.recv(&mut self.buf).await.map_err(|_| "udp recv")?;
            // a late answer to an earlier (timed out) query: keep waiting for ours
            if n >= 2 && self.buf[..2] != self.out[..2] {
                continue;
            }
            return check(self.id, &self.buf[..n]);
        }
    }

    async fn tcp(&mut self) -> Result<(), ErrorKind> {
        if self.tcp.is_none() {
            let s = TcpStream::connect(self.server)
                .await
                .map_err(|_| "tcp connect")?;
            let _ = s.set_nodelay(true);
            self.tcp = Some(s);
        }
        let s = self.tcp.as_mut().expect("set above");
        let len = (self.out.len() as u16).to_be_bytes();
        let r = async {
            s.write_all(&[len[0], len[1]]).await?;
            s.write_all(&self.out).await?;
            let n = s.read_u16().await? as usize;
            s.read_exact(&mut self.buf[..n]).await?;
            Ok::<usize, std::io::Error>(n)
        }
        .await;
        match r {
            Ok(n) => check(self.id, &self.buf[..n]),
            Err(_) => {
                self.tcp = None;
                Err("tcp io")
            }
        }
    }
}

impl Worker for DnsWorker {
    async fn call(&mut self) -> Result<Timing, ErrorKind> {
        let q = &self.queries[self.next % self.queries.len()];
        self.next = self.next.wrapping_add(1);
        self.id = self.id.wrapping_add(1);
        self.out.clear();
        self.out.extend_from_slice(q);
        self.out[..2].copy_from_slice(&self.id.to_be_bytes());
        let timeout = self.timeout;
        let r = match self.transport {
            Transport::Udp => tokio::time::timeout(timeout, self.udp()).await,
            Transport::Tcp => tokio::time::timeout(timeout, self.tcp()).await,
        };
        match r {
            Ok(r) => r.map(|_| Timing::default()),
            Err(_) => {
                // a timed-out TCP stream may deliver the old answer next: start afresh
                self.tcp = None;
                Err("timeout")
            }
        }
    }
}

/// Resolves `name` (A) once for the chain: the addresses and the TTL of the answer.
pub async fn resolve(
    sock: &UdpSocket,
    id: u16,
    query: &[u8],
    buf: &mut [u8],
) -> Result<(Vec<IpAddr>, u32), ErrorKind> {
    let mut q = query.to_vec();
    q[..2].copy_from_slice(&id.to_be_bytes());
    sock.send(&q).await.map_err(|_| "dns send")?;
    loop {
        let n = sock.recv(buf).await.map_err(|_| "dns recv")?;
        if n < 2 || buf[..2] != q[..2] {
            continue;
        }
        check(id, &buf[..n])?;
        let m = Message::from_vec(&buf[..n]).map_err(|_| "dns bad answer")?;
        let mut addrs = Vec::new();
        let mut ttl = u32::MAX;
        for r in &m.answers {
            match &r.data {
                RData::A(a) => addrs.push(IpAddr::V4(a.0)),
                RData::AAAA(a) => addrs.push(IpAddr::V6(a.0)),
                _ => continue,
            }
            ttl = ttl.min(r.ttl);
        }
        if addrs.is_empty() {
            return Err("dns no address");
        }
        return Ok((addrs, ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::ResponseCode;

    #[test]
    fn query_files_parse_like_dnsperf() {
        let q = parse_queries("# comment\napi.example.test A\nexample.test mx\nwww.example.test\n")
            .unwrap();
        assert_eq!(q.len(), 3);
        assert_eq!(q[1].qtype, RecordType::MX);
        assert_eq!(q[2].qtype, RecordType::A);
        assert!(parse_queries("x BOGUS").is_err());
        assert!(parse_queries("\n# only\n").is_err());
    }

    #[test]
    fn headers_are_checked_without_decoding() {
        let mut m = Message::response(42, hickory_proto::op::OpCode::Query);
        let bytes = m.to_vec().unwrap();
        assert_eq!(check(42, &bytes), Err("dns no answer"));
        assert_eq!(check(41, &bytes), Err("dns wrong id"));
        m.metadata.response_code = ResponseCode::NXDomain;
        assert_eq!(check(42, &m.to_vec().unwrap()), Err("dns nxdomain"));
        let q = encode(&Question {
            name: "api.example.test.".into(),
            qtype: RecordType::A,
            ecs: Some("81.2.69.160/27".parse().unwrap()),
        })
        .unwrap();
        let parsed = Message::from_vec(&q).unwrap();
        assert_eq!(parsed.queries.len(), 1);
        assert!(parsed.edns.is_some());
    }
}
