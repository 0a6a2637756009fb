//! The four classes of wrong answers a differential run against Knot DNS found (issue 14), each
//! over UDP and TCP: ANY at a CNAME owner, zone-file escapes, OPT in early error replies, one
//! TTL per RRset.

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RData, RecordType};

use crate::harness::*;

const ZONE: &str = r#"$ORIGIN example.test.
$TTL 300
@        SOA   ns1 hostmaster 1 3600 900 604800 60
@        NS    ns1
ns1      A     192.0.2.53
www      A     192.0.2.10
dangling CNAME nothere
todeleg  CNAME x.sub
sub      NS    ns.sub
ns.sub   A     192.0.2.200
esc      TXT   "a\059b" c\;d "\"q\"" x\255 "\\"
al\065   A     192.0.2.65
a\032b   A     192.0.2.32
dot\.ted A     192.0.2.46
mixed 100 A    192.0.2.1
mixed 50  A    192.0.2.2
mixed 200 A    192.0.2.3
"#;

async fn server() -> Server {
    let mut s = spec(Vec::new());
    s.zones[0].text = ZONE.into();
    serve(s).await
}

/// Sends `m` over UDP and over TCP; returns both replies.
async fn both(s: &Server, m: &Message) -> [Message; 2] {
    [udp(s.addr, m).await, tcp(s.addr, m).await]
}

fn name(labels: &[&[u8]]) -> Name {
    Name::from_labels(labels.iter().copied()).unwrap()
}

#[tokio::test]
async fn any_at_a_cname_owner_answers_the_cname_without_chasing_it() {
    let s = server().await;
    for (owner, target) in [
        ("dangling.example.test.", "nothere.example.test."),
        ("todeleg.example.test.", "x.sub.example.test."),
    ] {
        for r in both(&s, &query(owner, RecordType::ANY)).await {
            assert_eq!(rcode(&r), 0, "{owner}: NOERROR, the name exists");
            assert!(r.metadata.authoritative, "{owner}: AA");
            assert_eq!(r.answers.len(), 1, "{owner}: {r:?}");
            match &r.answers[0].data {
                RData::CNAME(c) => assert_eq!(c.0.to_ascii(), target),
                other => panic!("{owner}: {other:?}"),
            }
            assert!(
                r.authorities.is_empty() && r.additionals.is_empty(),
                "{r:?}"
            );
        }
    }
    // a CNAME query does not chase either; an A query does
    for r in both(&s, &query("dangling.example.test.", RecordType::A)).await {
        assert_eq!(rcode(&r), 3, "NXDOMAIN for the chased target");
        assert_eq!(r.answers.len(), 1);
    }
}

#[tokio::test]
async fn zone_file_escapes_are_decimal_bytes_and_any_byte_may_be_in_a_label() {
    let s = server().await;
    for r in both(&s, &query("esc.example.test.", RecordType::TXT)).await {
        let RData::TXT(txt) = &r.answers[0].data else {
            panic!("{r:?}")
        };
        let strings: Vec<&[u8]> = txt.txt_data.iter().map(|b| &b[..]).collect();
        assert_eq!(
            strings,
            [&b"a;b"[..], b"c;d", b"\"q\"", b"x\xff", b"\\"],
            "RFC 1035 §5.1"
        );
    }
    for (q, addr) in [
        (name(&[b"ala", b"example", b"test"]), "192.0.2.65"),
        (name(&[b"a b", b"example", b"test"]), "192.0.2.32"),
        (name(&[b"dot.ted", b"example", b"test"]), "192.0.2.46"),
    ] {
        let mut m = query("example.test.", RecordType::A);
        m.queries[0].set_name(q.clone());
        for r in both(&s, &m).await {
            assert_eq!(addrs(&r.answers), [ip(addr)], "{q:?}");
        }
    }
}

/// A query with an OPT record: header (opcode, QDCOUNT), question, OPT.
fn raw_query(opcode: u8, qdcount: u16, qclass: u16) -> Vec<u8> {
    let mut m = vec![
        0x42,
        0x42,
        opcode << 3,
        0,
        0,
        qdcount as u8,
        0,
        0,
        0,
        0,
        0,
        1,
    ];
    if qdcount > 0 {
        m.extend_from_slice(b"\x03www\x07example\x04test\x00\x00\x01");
        m.extend_from_slice(&qclass.to_be_bytes());
    }
    m.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0x80, 0, 0, 0]);
    m
}

#[tokio::test]
async fn every_error_reply_to_an_edns_query_has_an_opt() {
    let s = server().await;
    let cases = [
        ("NOTIMP (opcode UPDATE)", raw_query(5, 1, 1), 4),
        ("NOTIMP (opcode STATUS)", raw_query(2, 1, 1), 4),
        ("FORMERR (no question)", raw_query(0, 0, 1), 1),
        ("REFUSED (class CH)", raw_query(0, 1, 3), 5),
        ("REFUSED (class HS)", raw_query(0, 1, 4), 5),
    ];
    for (what, bytes, want) in cases {
        let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let replies = [
            udp_raw(s.addr, &bytes).await.expect("a UDP reply"),
            tcp_exchange(&mut stream, &bytes).await,
        ];
        for raw in replies {
            let r = decode(&raw, 0x4242);
            assert_eq!(rcode(&r), want, "{what}");
            let e = r.edns.as_ref().unwrap_or_else(|| panic!("{what}: no OPT"));
            assert!(e.flags().dnssec_ok, "{what}: DO echoed");
            assert_eq!(e.max_payload(), 1232, "{what}");
            // the question is echoed when there was one
            assert_eq!(r.queries.len(), bytes[5] as usize, "{what}");
        }
    }
}

#[tokio::test]
async fn one_rrset_has_one_ttl_the_lowest() {
    let s = server().await;
    for r in both(&s, &query("mixed.example.test.", RecordType::A)).await {
        let ttls: Vec<u32> = r.answers.iter().map(|r| r.ttl).collect();
        assert_eq!(ttls, [50, 50, 50], "RFC 2181 §5.2");
    }
}

/// A query with an OPT carrying an empty NSID option (RFC 5001).
fn with_nsid(mut m: Message) -> Message {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    let mut e = hickory_proto::op::Edns::new();
    e.set_max_payload(1232);
    e.options_mut()
        .insert(EdnsOption::Unknown(u16::from(EdnsCode::NSID), Vec::new()));
    m.set_edns(e);
    m
}

fn nsid_of(m: &Message) -> Option<Vec<u8>> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    match m.edns.as_ref()?.option(EdnsCode::NSID)? {
        EdnsOption::NSID(p) => Some(p.as_ref().to_vec()),
        EdnsOption::Unknown(_, v) => Some(v.clone()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn chaos_txt_and_nsid_are_off_by_default_and_answer_when_configured() {
    let ch = |name: &str, t: RecordType| {
        let mut m = with_nsid(query(name, t));
        m.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
        m
    };
    let s = server().await;
    for name in ["version.bind.", "id.server.", "hostname.bind."] {
        for r in both(&s, &ch(name, RecordType::TXT)).await {
            assert_eq!(rcode(&r), 5, "{name}: REFUSED by default");
            assert_eq!(nsid_of(&r), None);
        }
    }
    let mut sp = spec(Vec::new());
    sp.zones[0].text = ZONE.into();
    sp.identity = Some("ns1-fra".into());
    sp.version = Some("switchyard".into());
    sp.nsid = Some("fra-1".into());
    let s = serve(sp).await;
    for (name, want) in [
        ("version.bind.", "switchyard"),
        ("VERSION.server.", "switchyard"),
        ("id.server.", "ns1-fra"),
        ("hostname.bind.", "ns1-fra"),
    ] {
        for r in both(&s, &ch(name, RecordType::TXT)).await {
            assert_eq!(rcode(&r), 0, "{name}");
            assert!(!r.metadata.authoritative, "{name}: not zone data");
            assert_eq!(r.answers.len(), 1);
            let a = &r.answers[0];
            assert_eq!((a.ttl, a.dns_class), (0, hickory_proto::rr::DNSClass::CH));
            assert_eq!(a.name.to_ascii(), name, "the question's case");
            let RData::TXT(t) = &a.data else { panic!() };
            assert_eq!(&t.txt_data[0][..], want.as_bytes());
            assert_eq!(nsid_of(&r).as_deref(), Some(&b"fra-1"[..]));
        }
    }
    for r in both(&s, &ch("version.bind.", RecordType::A)).await {
        assert_eq!(rcode(&r), 5, "only TXT");
    }
    for r in both(&s, &ch("other.bind.", RecordType::TXT)).await {
        assert_eq!(rcode(&r), 5);
    }
    // NSID in IN answers, only when asked for
    for r in both(&s, &with_nsid(query("www.example.test.", RecordType::A))).await {
        assert_eq!(nsid_of(&r).as_deref(), Some(&b"fra-1"[..]));
        assert_eq!(addrs(&r.answers), [ip("192.0.2.10")]);
    }
    let r = udp(
        s.addr,
        &with_edns(query("www.example.test.", RecordType::A), 1232, None),
    )
    .await;
    assert_eq!(nsid_of(&r), None);
}
