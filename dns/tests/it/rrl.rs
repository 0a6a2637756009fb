//! Response rate limiting over real UDP: a network gets its burst, then only every `slip`-th
//! response (truncated, so a real resolver retries over TCP); TCP and other networks are not
//! limited.

use crate::harness::*;
use hickory_proto::rr::RecordType;
use std::collections::HashMap;
use std::time::Duration;
use switchyard_config::dns::Rrl;
use tokio::net::UdpSocket;

#[tokio::test]
async fn a_flooding_network_gets_its_burst_then_truncated_slips_and_nothing_else() {
    let mut s = spec(Vec::new());
    s.rrl = Some(Rrl {
        responses_per_second: 1,
        burst: 5,
        slip: 2,
        ipv4_prefix: 24,
        ipv6_prefix: 56,
    });
    let server = serve(s).await;
    // one socket: with SO_REUSEPORT every datagram of it reaches the same worker
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut sent = HashMap::new();
    for i in 0..30u16 {
        let mut q = query("ns1.example.test.", RecordType::A);
        q.metadata.id = 1000 + i;
        sock.send_to(&q.to_vec().unwrap(), server.addr)
            .await
            .unwrap();
        sent.insert(q.metadata.id, i);
    }
    let (mut full, mut truncated) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 4096];
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await
    {
        let m = hickory_proto::op::Message::from_vec(&buf[..n]).expect("decodable");
        let i = sent[&m.metadata.id];
        assert_eq!(m.queries.len(), 1, "the question is kept");
        if m.metadata.truncation {
            assert!(m.answers.is_empty() && m.authorities.is_empty());
            truncated.push(i);
        } else {
            assert_eq!(addrs(&m.answers), [ip("192.0.2.53")]);
            full.push(i);
        }
    }
    full.sort();
    truncated.sort();
    // the burst of 5, then every 2nd of the 25 limited ones (the 7th, 9th, ... query)
    assert_eq!(full, [0, 1, 2, 3, 4]);
    assert_eq!(truncated, (6..30).step_by(2).collect::<Vec<u16>>());
    // the truncated client retries over TCP: answered in full
    let q = query("ns1.example.test.", RecordType::A);
    let r = tcp(server.addr, &q).await;
    assert_eq!(addrs(&r.answers), [ip("192.0.2.53")]);
    // another /24 is not affected
    let r = udp_from("127.0.1.1", server.addr, &q).await;
    assert_eq!(addrs(&r.answers), [ip("192.0.2.53")]);
}
