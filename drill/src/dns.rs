//! A tiny stub resolver for drill clients: `A` queries over real UDP with EDNS Client Subnet (so a
//! loopback client can pose as a US or EU user), and a per-client cache that honours the TTL the
//! way a caching resolver would.

use super::scenario::Subnet;
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// An answer: the addresses and their TTL (the smallest of the A records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub addrs: Vec<IpAddr>,
    pub ttl_s: u32,
}

/// Builds the query message bytes; `rd`: recursion desired (a resolver refuses queries
/// without it; an authoritative server answers either).
pub(crate) fn query_bytes(id: u16, name: &Name, ecs: Subnet, rd: bool) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = rd;
    m.add_query(Query::query(name.clone(), RecordType::A));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(
            ecs.addr, ecs.prefix, 0,
        )));
    m.set_edns(edns);
    m.to_vec()
        .expect("a query with one question always encodes")
}

/// Parses a response to query `id`; Err is a short error kind.
pub(crate) fn parse_answer(id: u16, bytes: &[u8]) -> Result<Answer, String> {
    let m = Message::from_vec(bytes).map_err(|_| "dns_bad_response".to_string())?;
    if m.metadata.id != id {
        return Err("dns_wrong_id".into());
    }
    match m.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::ServFail => return Err("dns_servfail".into()),
        ResponseCode::NXDomain => return Err("dns_nxdomain".into()),
        ResponseCode::Refused => return Err("dns_refused".into()),
        other => return Err(format!("dns_rcode_{}", u16::from(other))),
    }
    let mut addrs = Vec::new();
    let mut ttl = u32::MAX;
    for r in &m.answers {
        if let RData::A(a) = &r.data {
            addrs.push(IpAddr::V4(a.0));
            ttl = ttl.min(r.ttl);
        }
    }
    if addrs.is_empty() {
        return Err("dns_no_answer".into());
    }
    Ok(Answer { addrs, ttl_s: ttl })
}

/// Query ids: every query has its own connected socket, so a counter is enough to match answers.
static NEXT_ID: AtomicU16 = AtomicU16::new(1);

/// One query over UDP with one retry; `timeout` per attempt; `rd` as in [`query_bytes`].
pub(crate) async fn resolve(
    server: SocketAddr,
    name: &Name,
    ecs: Subnet,
    timeout: Duration,
    rd: bool,
) -> Result<Answer, String> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("static")
    } else {
        "[::]:0".parse().expect("static")
    };
    let sock = UdpSocket::bind(bind)
        .await
        .map_err(|_| "dns_socket".to_string())?;
    sock.connect(server)
        .await
        .map_err(|_| "dns_socket".to_string())?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let q = query_bytes(id, name, ecs, rd);
    let mut buf = vec![0u8; 4096];
    for _ in 0..2 {
        if sock.send(&q).await.is_err() {
            return Err("dns_unreachable".into());
        }
        let deadline = Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(_)) => return Err("dns_unreachable".into()),
                Ok(Ok(n)) => match parse_answer(id, &buf[..n]) {
                    Err(e) if e == "dns_wrong_id" => continue,
                    other => return other,
                },
            }
        }
    }
    Err("dns_timeout".into())
}

/// A client's cache: one answer until its TTL runs out.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    /// The answer, when it was fetched, and until when it may be used.
    entry: Option<(Answer, Instant, Instant)>,
}

impl Cache {
    /// The cached answer and when it was fetched, if still fresh at `now`.
    pub(crate) fn get(&self, now: Instant) -> Option<(&Answer, Instant)> {
        self.entry
            .as_ref()
            .filter(|(_, _, until)| now < *until)
            .map(|(a, fetched, _)| (a, *fetched))
    }

    /// Stores an answer received at `now`.
    pub(crate) fn put(&mut self, answer: Answer, now: Instant) {
        let until = now + Duration::from_secs(u64::from(answer.ttl_s));
        self.entry = Some((answer, now, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::Record;
    use std::str::FromStr;

    fn us() -> Subnet {
        "216.160.83.56/29".parse().unwrap()
    }

    #[test]
    fn query_carries_the_client_subnet() {
        let name = Name::from_str("api.example.test.").unwrap();
        let bytes = query_bytes(7, &name, us(), false);
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.metadata.id, 7);
        assert_eq!(m.queries[0].name(), &name);
        assert_eq!(m.queries[0].query_type(), RecordType::A);
        let edns = m.edns.unwrap();
        let subnet = edns.options().as_ref().iter().find_map(|(_, o)| match o {
            EdnsOption::Subnet(s) => Some(*s),
            _ => None,
        });
        assert_eq!(
            subnet,
            Some(ClientSubnet::new("216.160.83.56".parse().unwrap(), 29, 0))
        );
    }

    #[test]
    fn answers_parse_with_the_smallest_ttl() {
        let name = Name::from_str("api.example.test.").unwrap();
        let mut m = Message::response(9, hickory_proto::op::OpCode::Query);
        m.add_answer(Record::from_rdata(
            name.clone(),
            10,
            RData::A(A::new(127, 0, 1, 1)),
        ));
        m.add_answer(Record::from_rdata(name, 4, RData::A(A::new(127, 0, 2, 1))));
        let bytes = m.to_vec().unwrap();
        assert_eq!(
            parse_answer(9, &bytes),
            Ok(Answer {
                addrs: vec!["127.0.1.1".parse().unwrap(), "127.0.2.1".parse().unwrap()],
                ttl_s: 4
            })
        );
        assert_eq!(parse_answer(8, &bytes), Err("dns_wrong_id".into()));
        let mut fail = Message::response(9, hickory_proto::op::OpCode::Query);
        fail.metadata.response_code = ResponseCode::ServFail;
        assert_eq!(
            parse_answer(9, &fail.to_vec().unwrap()),
            Err("dns_servfail".into())
        );
        let empty = Message::response(9, hickory_proto::op::OpCode::Query);
        assert_eq!(
            parse_answer(9, &empty.to_vec().unwrap()),
            Err("dns_no_answer".into())
        );
    }

    #[test]
    fn cache_expires_after_the_ttl() {
        let mut c = Cache::default();
        let t0 = Instant::now();
        assert!(c.get(t0).is_none());
        c.put(
            Answer {
                addrs: vec![],
                ttl_s: 2,
            },
            t0,
        );
        assert!(c.get(t0 + Duration::from_millis(1999)).is_some());
        assert!(c.get(t0 + Duration::from_secs(2)).is_none());
    }
}
