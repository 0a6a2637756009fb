//! EDNS(0): OPT echo, payload clamp, BADVERS, truncation and TCP retry, Client Subnet echo.

use hickory_proto::rr::RecordType;

use crate::harness::*;

#[tokio::test]
async fn opt_is_echoed_with_clamped_payload() {
    let s = static_server().await;
    let r = udp(
        s.addr,
        &with_edns(query("www.example.test.", RecordType::A), 4096, None),
    )
    .await;
    let e = r.edns.as_ref().expect("OPT echoed");
    assert_eq!(e.max_payload(), 1232);
    assert_eq!(e.version(), 0);
    assert_eq!(rcode(&r), 0);
    // no OPT in, no OPT out
    let r = udp(s.addr, &query("www.example.test.", RecordType::A)).await;
    assert!(r.edns.is_none());
}

#[tokio::test]
async fn unknown_edns_version_is_badvers() {
    let s = static_server().await;
    let mut q = with_edns(query("www.example.test.", RecordType::A), 1232, None);
    q.edns.as_mut().unwrap().set_version(1);
    let r = udp(s.addr, &q).await;
    assert_eq!(rcode(&r), 16, "BADVERS");
    assert_eq!(
        r.edns.as_ref().unwrap().version(),
        0,
        "we answer with the version we speak"
    );
    assert!(r.answers.is_empty());
}

#[tokio::test]
async fn large_answer_is_truncated_without_edns_and_whole_over_tcp() {
    let s = static_server().await;
    let q = query("big.example.test.", RecordType::TXT);
    let bytes = q.to_vec().unwrap();
    let raw = udp_raw(s.addr, &bytes).await.unwrap();
    assert!(raw.len() <= 512, "{} bytes", raw.len());
    let r = decode(&raw, q.metadata.id);
    assert!(r.metadata.truncation, "TC set");
    assert!(r.answers.is_empty());
    assert_eq!(rcode(&r), 0);
    // the same query over TCP gets every record
    let r = tcp(s.addr, &q).await;
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 8);
    // with EDNS 1232 it fits over UDP
    let r = udp(
        s.addr,
        &with_edns(query("big.example.test.", RecordType::TXT), 1232, None),
    )
    .await;
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 8);
    // an EDNS payload below 512 counts as 512
    let r = udp(
        s.addr,
        &with_edns(query("big.example.test.", RecordType::TXT), 200, None),
    )
    .await;
    assert!(r.metadata.truncation);
    assert!(r.edns.is_some(), "OPT still present when truncated");
}

#[tokio::test]
async fn ecs_is_echoed_with_scope_zero_on_static_answers() {
    let s = static_server().await;
    let q = with_edns(
        query("www.example.test.", RecordType::A),
        1232,
        Some(("81.2.69.160", 27)),
    );
    let r = udp(s.addr, &q).await;
    assert_eq!(ecs_of(&r), Some((27, 0, ip("81.2.69.160"))));
    let q = with_edns(
        query("nope.example.test.", RecordType::A),
        1232,
        Some(("2001:218::", 48)),
    );
    let r = udp(s.addr, &q).await;
    assert_eq!(rcode(&r), 3);
    assert_eq!(ecs_of(&r), Some((48, 0, ip("2001:218::"))));
}

#[tokio::test]
async fn malformed_ecs_is_formerr() {
    let s = static_server().await;
    // source /20 with bits set past it: 81.2.69.0 has bit 21+ set (69 = 0b0100_0101)
    let mut raw = query("www.example.test.", RecordType::A).to_vec().unwrap();
    raw[11] = 1; // ARCOUNT
    raw.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 11]);
    raw.extend_from_slice(&[0, 8, 0, 7, 0, 1, 20, 0, 81, 2, 69]);
    let r = udp_raw(s.addr, &raw).await.unwrap();
    assert_eq!(r[3] & 0x0F, 1, "FORMERR");
    assert_eq!(
        u16::from_be_bytes([r[10], r[11]]),
        1,
        "OPT in the FORMERR reply"
    );
}
