//! Test harness: start a server on 127.0.0.1:0, send queries over UDP/TCP, decode answers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use switchyard_dns::gslb::{RegionHealth, StaticHealth};
use switchyard_dns::server::{start, Handle};
use switchyard_dns::spec::{DnsSpec, GslbSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

pub const ZONE: &str = include_str!("data/test.zone");

/// A running server plus its shutdown token (cancelled on drop).
pub struct Server {
    pub handle: Option<Handle>,
    pub addr: SocketAddr,
    pub token: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

pub fn spec(gslb: Vec<GslbSpec>) -> DnsSpec {
    let mut s = DnsSpec::single_zone("127.0.0.1:0".parse().unwrap(), ZONE.to_string(), None, 2);
    s.gslb = gslb;
    s.tcp_idle = Duration::from_millis(500);
    s.tcp_max_conns = 32;
    s.axfr_allow = vec!["127.0.0.2/32".parse().unwrap()];
    s
}

pub async fn serve(spec: DnsSpec) -> Server {
    serve_with(spec, Arc::new(StaticHealth::default())).await
}

pub async fn serve_with(spec: DnsSpec, health: Arc<dyn RegionHealth>) -> Server {
    let token = CancellationToken::new();
    let handle = start(spec, health, token.clone())
        .await
        .expect("server starts");
    let addr = handle.local_addrs()[0];
    Server {
        handle: Some(handle),
        addr,
        token,
    }
}

pub async fn static_server() -> Server {
    serve(spec(Vec::new())).await
}

/// Builds a query message.
pub fn query(name: &str, qtype: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.id = rand::random();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m
}

pub fn with_edns(mut m: Message, payload: u16, ecs: Option<(&str, u8)>) -> Message {
    let mut e = Edns::new();
    e.set_max_payload(payload);
    if let Some((addr, prefix)) = ecs {
        let ip: IpAddr = addr.parse().unwrap();
        e.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(ip, prefix, 0)));
    }
    m.set_edns(e);
    m
}

/// Sends raw bytes over UDP from `from` and waits up to `wait` for one reply.
pub async fn udp_raw_from(
    from: &str,
    server: SocketAddr,
    bytes: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(format!("{from}:0")).await.unwrap();
    sock.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

pub async fn udp_raw(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    udp_raw_from("127.0.0.1", server, bytes, Duration::from_secs(2)).await
}

/// Query over UDP; panics when there is no answer.
pub async fn udp(server: SocketAddr, m: &Message) -> Message {
    let bytes = m.to_vec().unwrap();
    let reply = udp_raw(server, &bytes).await.expect("an answer over UDP");
    decode(&reply, m.metadata.id)
}

pub async fn udp_from(from: &str, server: SocketAddr, m: &Message) -> Message {
    let bytes = m.to_vec().unwrap();
    let reply = udp_raw_from(from, server, &bytes, Duration::from_secs(2))
        .await
        .expect("an answer over UDP");
    decode(&reply, m.metadata.id)
}

pub fn decode(reply: &[u8], id: u16) -> Message {
    let r = Message::from_vec(reply).expect("a decodable reply");
    assert_eq!(r.metadata.id, id, "reply id");
    r
}

/// Writes one length-prefixed message on a TCP stream and reads one back.
pub async fn tcp_exchange(stream: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.unwrap();
    tcp_read(stream).await.expect("a TCP reply")
}

pub async fn tcp_read(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(buf)
}

pub async fn tcp(server: SocketAddr, m: &Message) -> Message {
    let mut s = TcpStream::connect(server).await.unwrap();
    let reply = tcp_exchange(&mut s, &m.to_vec().unwrap()).await;
    decode(&reply, m.metadata.id)
}

pub fn rcode(m: &Message) -> u16 {
    u16::from(m.metadata.response_code)
}

/// Answer addresses (A and AAAA), in order.
pub fn addrs(records: &[Record]) -> Vec<IpAddr> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// (source prefix, scope prefix, address) of the ECS option of a reply.
pub fn ecs_of(m: &Message) -> Option<(u8, u8, IpAddr)> {
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(cs) => Some((cs.source_prefix(), cs.scope_prefix(), cs.addr())),
        _ => None,
    }
}

pub use switchyard_testkit::eventually;
