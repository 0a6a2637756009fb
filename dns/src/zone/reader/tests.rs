use super::*;

const O: &[u8] = b"\x07example\x04test\x00";

fn one(line: &str) -> Entry {
    let text = format!("$TTL 60\n{line}\n");
    let mut v = read(&text, Some(O), "t").unwrap();
    assert_eq!(v.len(), 1);
    v.remove(0)
}

fn err(text: &str) -> String {
    read(text, Some(O), "z.zone").unwrap_err().to_string()
}

/// The proof that hickory-proto's zone lexer is wrong (RFC 1035 §5.1: `\DDD` is a decimal
/// byte). Kept as a regression test: when it fails, hickory fixed its lexer.
#[test]
fn hickory_lexer_decodes_ddd_wrongly() {
    use hickory_proto::rr::rdata::TXT;
    let rd = RData::try_from_str(RecordType::TXT, "\"a\\059b\"").unwrap();
    let RData::TXT(txt) = rd else { panic!() };
    assert_ne!(
        txt,
        TXT::new(vec!["a;b".into()]),
        "hickory decodes \\059 right now"
    );
    // and an escaped special in an unquoted string keeps its backslash
    let rd = RData::try_from_str(RecordType::TXT, "c\\;d").unwrap();
    let RData::TXT(txt) = rd else { panic!() };
    assert_ne!(txt, TXT::new(vec!["c;d".into()]));
}

#[test]
fn decimal_escapes_in_txt_and_owner() {
    let e = one("al\\065 TXT \"a\\059b\" c\\;d \\\"q\\\" x\\255");
    assert_eq!(e.owner, b"\x03alA\x07example\x04test\x00");
    assert_eq!(e.rdata, b"\x03a;b\x03c;d\x03\"q\"\x02x\xff");
    // any byte in a label, an escaped dot inside a label
    let e = one("a\\032b.c\\.d A 192.0.2.1");
    assert_eq!(e.owner, b"\x03a b\x03c.d\x07example\x04test\x00");
    assert_eq!(one("\\000 A 192.0.2.1").owner[..2], [1, 0]);
}

#[test]
fn owners_ttls_classes_and_parentheses() {
    let v = read(
            "$ORIGIN example.test.\n$TTL 1h\n@ IN SOA ns1 host ( 1 ; serial\n 2h 15m 1w 60 )\n  NS ns1\nx 30 IN A 192.0.2.1\n  IN 40 A 192.0.2.2\ny A 192.0.2.3\n",
            None,
            "t",
        )
        .unwrap();
    assert_eq!(v.len(), 5);
    assert_eq!((v[0].rtype, v[0].ttl), (rtype::SOA, 3600));
    assert_eq!(
        &v[0].rdata[v[0].rdata.len() - 16..],
        &[0, 0, 0x1c, 0x20, 0, 0, 3, 0x84, 0, 9, 0x3a, 0x80, 0, 0, 0, 60]
    );
    assert_eq!((v[1].rtype, &v[1].owner[..]), (rtype::NS, O));
    assert_eq!((v[3].ttl, &v[3].owner[..2]), (40, &b"\x01x"[..]));
    assert_eq!(v[4].ttl, 3600);
    assert_eq!(one("x TYPE99 \\# 3 01 6162").rdata, b"\x01ab");
    assert_eq!(
        one("x CAA 0 issue \"ca.example\"").rdata,
        b"\x00\x05issueca.example"
    );
}

#[test]
fn errors_say_where_and_why() {
    assert_eq!(
        err("$TTL 60\nx BOGUS 1\n"),
        "z.zone:2:3: unknown record type \"BOGUS\""
    );
    assert_eq!(
        read("x 60 A 192.0.2.1\n", None, "z.zone")
            .unwrap_err()
            .to_string(),
        "z.zone:1:1: relative name \"x\" with no $ORIGIN"
    );
    assert_eq!(
        err("$TTL 60\n\nx A 192.0.2.300\n"),
        "z.zone:3:5: bad IPv4 address \"192.0.2.300\""
    );
    assert_eq!(
        err("$TTL 60\nx TXT \"a\\300\"\n"),
        "z.zone:2:7: \\300 is not a byte (at most \\255)"
    );
    assert_eq!(
        err("x A 192.0.2.1\n"),
        "z.zone:1:1: no TTL, and no $TTL before it"
    );
    assert_eq!(
        err("$TTL 60\nx MX 10\n"),
        "z.zone:2:3: missing RDATA field 2"
    );
    assert_eq!(
        err("$TTL 60\nx ( A 192.0.2.1\n"),
        "z.zone:2:3: '(' without ')'"
    );
    assert!(err("$INCLUDE other\n").contains("not supported"));
}
