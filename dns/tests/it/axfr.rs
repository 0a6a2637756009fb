//! Zone transfers: only for the allow-list, only over TCP.

use hickory_proto::rr::RecordType;
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::*;

async fn connect_from(src: &str, to: std::net::SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
    sock.connect(to).await.unwrap()
}

#[tokio::test]
async fn axfr_is_refused_unless_allowed() {
    let s = static_server().await;
    let q = query("example.test.", RecordType::AXFR);
    let mut c = connect_from("127.0.0.1", s.addr).await;
    let r = decode(
        &tcp_exchange(&mut c, &q.to_vec().unwrap()).await,
        q.metadata.id,
    );
    assert_eq!(rcode(&r), 5, "REFUSED for a client not on the list");
    assert!(r.answers.is_empty());
    // allowed client over UDP: not over UDP
    let r = udp_from("127.0.0.2", s.addr, &q).await;
    assert_eq!(rcode(&r), 4);
}

#[tokio::test]
async fn axfr_streams_the_zone_to_allowed_clients() {
    let s = static_server().await;
    let q = query("example.test.", RecordType::AXFR);
    let mut c = connect_from("127.0.0.2", s.addr).await;
    let first = decode(
        &tcp_exchange(&mut c, &q.to_vec().unwrap()).await,
        q.metadata.id,
    );
    assert_eq!(rcode(&first), 0);
    assert!(first.metadata.authoritative);
    let mut records = first.answers.clone();
    while records.len() < 2 || records.last().unwrap().record_type() != RecordType::SOA {
        let more = tcp_read(&mut c).await.expect("more AXFR messages");
        records.extend(decode(&more, q.metadata.id).answers);
    }
    assert_eq!(records[0].record_type(), RecordType::SOA);
    assert_eq!(
        records
            .iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .count(),
        2
    );
    let zone_records = crate::harness::ZONE
        .lines()
        .filter(|l| l.contains(" IN "))
        .count();
    assert_eq!(
        records.len(),
        zone_records + 1,
        "every record once, SOA twice"
    );
}
