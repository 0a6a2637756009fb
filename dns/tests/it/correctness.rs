//! The authoritative behaviours, each with its exact rcode, flags, sections and TTLs.

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::{RData, RecordType};
use tokio::net::TcpStream;

use crate::harness::*;

fn assert_header(r: &Message, rc: u16, aa: bool) {
    assert_eq!(r.metadata.message_type, MessageType::Response);
    assert_eq!(rcode(r), rc, "rcode");
    assert_eq!(r.metadata.authoritative, aa, "AA");
    assert!(!r.metadata.recursion_available, "RA must be clear");
    assert!(r.metadata.recursion_desired, "RD is copied from the query");
    assert!(!r.metadata.truncation);
}

#[tokio::test]
async fn positive_answer_is_authoritative_without_recursion_udp_and_tcp() {
    let s = static_server().await;
    for over_tcp in [false, true] {
        let q = query("www.example.test.", RecordType::A);
        let r = if over_tcp {
            tcp(s.addr, &q).await
        } else {
            udp(s.addr, &q).await
        };
        assert_header(&r, 0, true);
        assert_eq!(addrs(&r.answers), vec![ip("192.0.2.10")]);
        assert_eq!(r.answers[0].ttl, 300);
        assert!(r.authorities.is_empty() && r.additionals.is_empty());
        assert_eq!(r.queries.len(), 1);
    }
}

#[tokio::test]
async fn nxdomain_carries_soa_with_negative_ttl() {
    let s = static_server().await;
    let r = udp(s.addr, &query("nope.example.test.", RecordType::A)).await;
    assert_header(&r, 3, true);
    assert!(r.answers.is_empty());
    assert_eq!(r.authorities.len(), 1);
    let soa = &r.authorities[0];
    assert_eq!(soa.name.to_ascii(), "example.test.");
    assert_eq!(soa.record_type(), RecordType::SOA);
    // RFC 2308 §3: min(SOA TTL 300, MINIMUM 60)
    assert_eq!(soa.ttl, 60);
    // below a name that does not exist either
    let r = udp(s.addr, &query("x.nope.example.test.", RecordType::AAAA)).await;
    assert_header(&r, 3, true);
}

#[tokio::test]
async fn nodata_carries_soa_with_negative_ttl() {
    let s = static_server().await;
    for (name, t) in [
        ("mail.example.test.", RecordType::AAAA),
        ("b.c.example.test.", RecordType::A),
    ] {
        let r = udp(s.addr, &query(name, t)).await;
        assert_header(&r, 0, true);
        assert!(r.answers.is_empty(), "{name}");
        assert_eq!(r.authorities.len(), 1);
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(r.authorities[0].ttl, 60);
    }
}

#[tokio::test]
async fn outside_every_zone_is_refused() {
    let s = static_server().await;
    for name in ["example.com.", "test.", "."] {
        let r = udp(s.addr, &query(name, RecordType::A)).await;
        assert_eq!(rcode(&r), 5, "{name}");
        assert!(!r.metadata.authoritative && !r.metadata.recursion_available);
        assert!(r.answers.is_empty() && r.authorities.is_empty());
    }
}

#[tokio::test]
async fn unknown_opcodes_are_notimp() {
    let s = static_server().await;
    for op in [
        OpCode::Status,
        OpCode::Notify,
        OpCode::Update,
        OpCode::from_u8(3),
    ] {
        let mut q = query("www.example.test.", RecordType::A);
        q.metadata.op_code = op;
        let r = udp(s.addr, &q).await;
        assert_eq!(rcode(&r), 4, "{op:?}");
        assert_eq!(r.metadata.op_code, op, "opcode echoed");
        assert!(r.answers.is_empty());
    }
}

#[tokio::test]
async fn undecodable_messages_get_formerr() {
    let s = static_server().await;
    // header says one question, the name runs past the end
    let bad = [
        0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x20, b'a', b'b',
    ];
    let r = udp_raw(s.addr, &bad).await.expect("a FORMERR reply");
    assert_eq!(&r[..2], &[0xAB, 0xCD]);
    assert_eq!(r[2] & 0x80, 0x80, "QR");
    assert_eq!(r[3] & 0x0F, 1, "FORMERR");
    // no question at all
    let none = [0x12, 0x34, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
    let r = udp_raw(s.addr, &none).await.expect("a FORMERR reply");
    assert_eq!(r[3] & 0x0F, 1);
}

#[tokio::test]
async fn responses_are_never_answered() {
    let s = static_server().await;
    let mut q = query("www.example.test.", RecordType::A);
    q.metadata.message_type = MessageType::Response;
    let bytes = q.to_vec().unwrap();
    let r = udp_raw_from(
        "127.0.0.1",
        s.addr,
        &bytes,
        std::time::Duration::from_millis(300),
    )
    .await;
    assert!(r.is_none(), "QR=1 must get no answer");
    // and the server is still fine
    let r = udp(s.addr, &query("www.example.test.", RecordType::A)).await;
    assert_eq!(addrs(&r.answers), vec![ip("192.0.2.10")]);
}

#[tokio::test]
async fn in_zone_cname_chains_are_followed() {
    let s = static_server().await;
    let r = udp(s.addr, &query("alias.example.test.", RecordType::A)).await;
    assert_header(&r, 0, true);
    let chain: Vec<(String, RecordType)> = r
        .answers
        .iter()
        .map(|a| (a.name.to_ascii(), a.record_type()))
        .collect();
    assert_eq!(
        chain,
        vec![
            ("alias.example.test.".into(), RecordType::CNAME),
            ("alias2.example.test.".into(), RecordType::CNAME),
            ("www.example.test.".into(), RecordType::A),
        ]
    );
    assert_eq!(addrs(&r.answers), vec![ip("192.0.2.10")]);
    // asking for the CNAME itself does not chase
    let r = udp(s.addr, &query("alias.example.test.", RecordType::CNAME)).await;
    assert_eq!(r.answers.len(), 1);
    // out of zone target: the CNAME only, the resolver goes on
    let r = udp(s.addr, &query("outside.example.test.", RecordType::A)).await;
    assert_header(&r, 0, true);
    assert_eq!(r.answers.len(), 1);
    assert!(r.authorities.is_empty());
    // dangling in-zone target: CNAME + NXDOMAIN for the target (RFC 6604) + SOA
    let r = udp(s.addr, &query("dangling.example.test.", RecordType::A)).await;
    assert_header(&r, 3, true);
    assert_eq!(r.answers.len(), 1);
    assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
    // a loop ends
    let r = udp(s.addr, &query("loop1.example.test.", RecordType::A)).await;
    assert_eq!(rcode(&r), 0);
    assert_eq!(r.answers.len(), 2);
}

#[tokio::test]
async fn delegations_get_a_referral_with_glue() {
    let s = static_server().await;
    for name in ["sub.example.test.", "deep.er.sub.example.test."] {
        let r = udp(s.addr, &query(name, RecordType::A)).await;
        assert_header(&r, 0, false);
        assert!(r.answers.is_empty(), "{name}");
        let ns: Vec<String> = r
            .authorities
            .iter()
            .map(|a| {
                assert_eq!(a.name.to_ascii(), "sub.example.test.");
                match &a.data {
                    RData::NS(n) => n.0.to_ascii(),
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        assert_eq!(ns, vec!["ns.sub.example.test.", "ns.elsewhere.example."]);
        assert_eq!(r.additionals.len(), 1, "glue for the in-zone server only");
        assert_eq!(r.additionals[0].name.to_ascii(), "ns.sub.example.test.");
        assert_eq!(addrs(&r.additionals), vec![ip("192.0.2.200")]);
    }
}

#[tokio::test]
async fn query_name_case_is_preserved() {
    let s = static_server().await;
    let q = query("WwW.ExAmPlE.tEsT.", RecordType::A);
    let bytes = q.to_vec().unwrap();
    let reply = udp_raw(s.addr, &bytes).await.unwrap();
    // the question section is byte-for-byte the one sent
    let qlen = "WwW.ExAmPlE.tEsT.".len() + 1 + 4;
    assert_eq!(&reply[12..12 + qlen], &bytes[12..12 + qlen]);
    let r = decode(&reply, q.metadata.id);
    assert_eq!(r.queries[0].name().to_ascii(), "WwW.ExAmPlE.tEsT.");
    assert_eq!(r.answers[0].name.to_ascii(), "WwW.ExAmPlE.tEsT.");
    assert_eq!(addrs(&r.answers), vec![ip("192.0.2.10")]);
}

#[tokio::test]
async fn wildcards_are_synthesized() {
    let s = static_server().await;
    let r = udp(s.addr, &query("foo.wild.example.test.", RecordType::A)).await;
    assert_header(&r, 0, true);
    assert_eq!(r.answers[0].name.to_ascii(), "foo.wild.example.test.");
    assert_eq!(addrs(&r.answers), vec![ip("192.0.2.99")]);
    let r = udp(s.addr, &query("a.b.wild.example.test.", RecordType::A)).await;
    assert_eq!(addrs(&r.answers), vec![ip("192.0.2.99")]);
    // wildcard owner exists but not with this type: NODATA
    let r = udp(s.addr, &query("foo.wild.example.test.", RecordType::AAAA)).await;
    assert_header(&r, 0, true);
    assert!(r.answers.is_empty());
    assert_eq!(r.authorities[0].ttl, 60);
    // the empty non-terminal itself: NODATA, not the wildcard
    let r = udp(s.addr, &query("wild.example.test.", RecordType::A)).await;
    assert_header(&r, 0, true);
    assert!(r.answers.is_empty());
}

#[tokio::test]
async fn any_is_answered_minimally() {
    let s = static_server().await;
    let r = udp(s.addr, &query("www.example.test.", RecordType::ANY)).await;
    assert_header(&r, 0, true);
    let types: std::collections::HashSet<RecordType> =
        r.answers.iter().map(|a| a.record_type()).collect();
    assert_eq!(types.len(), 1, "RFC 8482: one RRset, got {types:?}");
    assert!(r.answers.len() <= 2);
}

#[tokio::test]
async fn other_types_and_additional_data() {
    let s = static_server().await;
    let r = udp(s.addr, &query("example.test.", RecordType::MX)).await;
    assert_header(&r, 0, true);
    assert_eq!(r.answers.len(), 1);
    assert_eq!(r.additionals[0].name.to_ascii(), "mail.example.test.");
    assert_eq!(addrs(&r.additionals), vec![ip("192.0.2.25")]);
    let r = udp(s.addr, &query("_sip._tcp.example.test.", RecordType::SRV)).await;
    assert_eq!(r.answers[0].record_type(), RecordType::SRV);
    assert_eq!(
        addrs(&r.additionals).len(),
        2,
        "A and AAAA of the SRV target"
    );
    let r = udp(s.addr, &query("example.test.", RecordType::CAA)).await;
    assert_eq!(r.answers[0].record_type(), RecordType::CAA);
    let r = udp(s.addr, &query("example.test.", RecordType::SOA)).await;
    assert_eq!(r.answers[0].ttl, 300, "a SOA answer keeps its own TTL");
    let r = udp(s.addr, &query("example.test.", RecordType::NS)).await;
    assert_eq!(r.answers.len(), 2);
    assert_eq!(addrs(&r.additionals).len(), 2);
}

#[tokio::test]
async fn several_queries_per_tcp_connection() {
    let s = static_server().await;
    let mut conn = TcpStream::connect(s.addr).await.unwrap();
    for (i, name) in [
        "www.example.test.",
        "mail.example.test.",
        "nope.example.test.",
    ]
    .iter()
    .enumerate()
    {
        let q = query(name, RecordType::A);
        let r = decode(
            &tcp_exchange(&mut conn, &q.to_vec().unwrap()).await,
            q.metadata.id,
        );
        assert_eq!(rcode(&r), if i == 2 { 3 } else { 0 });
    }
}

#[tokio::test]
async fn tcp_gives_the_same_answers_as_udp() {
    let s = static_server().await;
    let mut msgs: Vec<Vec<u8>> = [
        ("www.example.test.", RecordType::A),
        ("nope.example.test.", RecordType::A),
        ("mail.example.test.", RecordType::AAAA),
        ("example.com.", RecordType::A),
        ("alias.example.test.", RecordType::A),
        ("x.sub.example.test.", RecordType::A),
        ("foo.wild.example.test.", RecordType::A),
        ("www.example.test.", RecordType::ANY),
        ("example.test.", RecordType::MX),
        ("WWW.EXAMPLE.TEST.", RecordType::AAAA),
    ]
    .iter()
    .map(|(n, t)| query(n, *t).to_vec().unwrap())
    .collect();
    msgs.push(
        with_edns(
            query("www.example.test.", RecordType::A),
            1232,
            Some(("81.2.69.160", 27)),
        )
        .to_vec()
        .unwrap(),
    );
    let mut badvers = with_edns(query("www.example.test.", RecordType::A), 1232, None);
    badvers.edns.as_mut().unwrap().set_version(3);
    msgs.push(badvers.to_vec().unwrap());
    let mut notimp = query("www.example.test.", RecordType::A);
    notimp.metadata.op_code = OpCode::Update;
    msgs.push(notimp.to_vec().unwrap());
    msgs.push(vec![
        0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x20, b'a',
    ]);
    let mut conn = TcpStream::connect(s.addr).await.unwrap();
    for m in &msgs {
        let over_udp = udp_raw(s.addr, m).await.expect("UDP reply");
        let over_tcp = tcp_exchange(&mut conn, m).await;
        assert_eq!(over_udp, over_tcp, "query {m:02x?}");
    }
}

#[tokio::test]
async fn serves_every_listen_address_including_ipv6() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here: skipping");
        return;
    }
    let mut sp = spec(Vec::new());
    sp.listen = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
    let s = serve(sp).await;
    let addrs_bound = s.handle.as_ref().unwrap().local_addrs().to_vec();
    assert_eq!(addrs_bound.len(), 2);
    assert!(addrs_bound[1].is_ipv6());
    for a in addrs_bound {
        let q = query("www.example.test.", RecordType::AAAA);
        let from = if a.is_ipv6() { "[::1]" } else { "127.0.0.1" };
        let raw = udp_raw_from(
            from,
            a,
            &q.to_vec().unwrap(),
            std::time::Duration::from_secs(2),
        )
        .await
        .unwrap();
        let r = decode(&raw, q.metadata.id);
        assert_eq!(addrs(&r.answers), vec![ip("2001:db8::10")], "{a}");
        let r = tcp(a, &q).await;
        assert_eq!(addrs(&r.answers), vec![ip("2001:db8::10")], "{a} over TCP");
    }
}
