//! NOTIFY to secondaries (RFC 1996): on start and when a reload changes a zone's serial, with
//! retries until the secondary answers, over real UDP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, OpCode};
use hickory_proto::rr::RecordType;
use switchyard_dns::gslb::StaticHealth;
use switchyard_dns::notify::NotifySpec;
use tokio::net::UdpSocket;

use crate::harness::*;

/// A secondary's socket; `answer` decides whether it acknowledges.
struct Secondary {
    sock: UdpSocket,
    addr: SocketAddr,
}

impl Secondary {
    async fn new() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        Secondary { sock, addr }
    }

    /// The NOTIFY messages that arrive within `window` (acknowledged when `ack`).
    async fn receive(&self, window: Duration, ack: bool) -> Vec<Message> {
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        let end = tokio::time::Instant::now() + window;
        while let Ok(Ok((n, from))) =
            tokio::time::timeout_at(end, self.sock.recv_from(&mut buf)).await
        {
            let m = Message::from_vec(&buf[..n]).expect("a decodable NOTIFY");
            if ack {
                let mut reply = buf[..n].to_vec();
                reply[2] |= 0x80; // QR: the response to it
                self.sock.send_to(&reply, from).await.unwrap();
            }
            got.push(m);
        }
        got
    }
}

fn notify_to(sec: &Secondary, timeout_ms: u64, attempts: u32) -> NotifySpec {
    NotifySpec {
        targets: vec![sec.addr],
        timeout: Duration::from_millis(timeout_ms),
        attempts,
    }
}

fn assert_is_notify_for_the_zone(m: &Message) {
    assert_eq!(m.metadata.op_code, OpCode::Notify);
    assert!(m.metadata.authoritative, "AA set");
    assert_eq!(m.queries.len(), 1);
    assert_eq!(m.queries[0].name().to_ascii(), "example.test.");
    assert_eq!(m.queries[0].query_type(), RecordType::SOA);
}

#[tokio::test]
async fn secondaries_hear_of_the_zone_on_start_and_when_its_serial_changes() {
    let sec = Secondary::new().await;
    let mut s = spec(Vec::new());
    s.notify = notify_to(&sec, 300, 3);
    let server = serve(s.clone()).await;
    // on start: one NOTIFY, acknowledged, so not repeated
    let got = sec.receive(Duration::from_millis(900), true).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_is_notify_for_the_zone(&got[0]);
    let handle = server.handle.as_ref().unwrap();
    // a reload that changes nothing: no NOTIFY
    handle
        .reload(s.clone(), Arc::new(StaticHealth::default()))
        .unwrap();
    assert!(sec
        .receive(Duration::from_millis(600), true)
        .await
        .is_empty());
    // a new serial: one NOTIFY
    let mut bumped = s.clone();
    bumped.zones[0].text = ZONE.replacen("2024010101", "2024010102", 1);
    handle
        .reload(bumped, Arc::new(StaticHealth::default()))
        .unwrap();
    let got = sec.receive(Duration::from_millis(900), true).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_is_notify_for_the_zone(&got[0]);
}

#[tokio::test]
async fn a_silent_secondary_gets_every_attempt_then_no_more() {
    let sec = Secondary::new().await;
    let mut s = spec(Vec::new());
    s.notify = notify_to(&sec, 100, 3);
    let _server = serve(s).await;
    let got = sec.receive(Duration::from_millis(1000), false).await;
    assert_eq!(got.len(), 3, "three attempts: {got:?}");
    // the same message each time
    assert!(got.iter().all(|m| m.metadata.id == got[0].metadata.id));
}
