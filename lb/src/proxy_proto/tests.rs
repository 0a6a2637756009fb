use super::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn enc(v: ProxyVersion, s: &str, d: &str) -> Vec<u8> {
    let mut b = [0u8; MAX_ENCODED];
    let n = encode(v, sa(s), sa(d), &mut b);
    b[..n].to_vec()
}

#[test]
fn v1_matches_spec_examples() {
    // proxy-protocol.txt section 2.1 examples
    assert_eq!(
        enc(ProxyVersion::V1, "192.168.0.1:56324", "192.168.0.11:443"),
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    );
    assert_eq!(
        enc(
            ProxyVersion::V1,
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
        ),
        b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
    );
    let worst = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(worst.len(), V1_MAX, "the spec's worst case is 107 bytes");
    let h = parse(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /");
    assert_eq!(
        h,
        Parse::Complete(Header {
            len: 47,
            addrs: Some((sa("192.168.0.1:56324"), sa("192.168.0.11:443")))
        })
    );
    assert_eq!(
        parse(b"PROXY UNKNOWN\r\n"),
        Parse::Complete(Header {
            len: 15,
            addrs: None
        })
    );
    assert_eq!(
        parse(b"PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n"),
        Parse::Complete(Header {
            len: 39,
            addrs: None
        })
    );
}

#[test]
fn v2_bytes_are_exact() {
    let got = enc(ProxyVersion::V2, "192.168.0.1:56324", "192.168.0.11:443");
    let mut want = V2_SIG.to_vec();
    want.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c]);
    want.extend_from_slice(&[192, 168, 0, 1, 192, 168, 0, 11]);
    want.extend_from_slice(&[0xdc, 0x04, 0x01, 0xbb]); // 56324, 443
    assert_eq!(got, want);
    assert_eq!(
        &got[..12],
        b"\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"
    );
    assert_eq!(
        parse(&got),
        Parse::Complete(Header {
            len: 28,
            addrs: Some((sa("192.168.0.1:56324"), sa("192.168.0.11:443")))
        })
    );
    let v6 = enc(ProxyVersion::V2, "[2001:db8::1]:1000", "[2001:db8::2]:443");
    assert_eq!((v6.len(), v6[13], v6[15]), (52, 0x21, 36));
    assert_eq!(
        parse(&v6),
        Parse::Complete(Header {
            len: 52,
            addrs: Some((sa("[2001:db8::1]:1000"), sa("[2001:db8::2]:443")))
        })
    );
}

#[test]
fn mixed_families_become_v6() {
    assert_eq!(
        enc(ProxyVersion::V1, "10.0.0.1:1", "[::1]:2"),
        b"PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n"
    );
}

#[test]
fn v2_local_and_tlvs() {
    let mut local = V2_SIG.to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    assert_eq!(
        parse(&local),
        Parse::Complete(Header {
            len: 16,
            addrs: None
        })
    );
    let mut tlv = enc(ProxyVersion::V2, "1.2.3.4:5", "6.7.8.9:10");
    tlv[15] = 12 + 4;
    tlv.extend_from_slice(&[0x04, 0x00, 0x01, 0xff]); // a NOOP TLV
    match parse(&tlv) {
        Parse::Complete(h) => assert_eq!((h.len, h.addrs.unwrap().0), (32, sa("1.2.3.4:5"))),
        o => panic!("{o:?}"),
    }
}

#[test]
fn incomplete_and_malformed() {
    let full = enc(ProxyVersion::V2, "1.2.3.4:5", "6.7.8.9:10");
    for n in 0..full.len() {
        assert_eq!(parse(&full[..n]), Parse::Incomplete, "prefix {n}");
    }
    for n in 0..20 {
        let v1 = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
        assert_eq!(parse(&v1[..n]), Parse::Incomplete, "prefix {n}");
    }
    assert!(matches!(parse(b"GET / HTTP/1.1\r\n"), Parse::Invalid(_)));
    assert!(matches!(
        parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n"),
        Parse::Invalid(_)
    ));
    assert!(matches!(
        parse(b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n"),
        Parse::Invalid(_)
    ));
    assert!(matches!(
        parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"),
        Parse::Invalid(_)
    ));
    assert!(matches!(
        parse(b"PROXY SCTP 1 2 3 4\r\n"),
        Parse::Invalid(_)
    ));
    assert!(matches!(parse(&[b'P'; 200]), Parse::Invalid(_)));
    let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
    assert!(matches!(parse(&long), Parse::Invalid(_)));
    let mut badver = full.clone();
    badver[12] = 0x11;
    assert!(matches!(parse(&badver), Parse::Invalid(_)));
}

#[test]
fn v1_worst_case_unknown_parses() {
    let worst = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(
        parse(worst),
        Parse::Complete(Header {
            len: 107,
            addrs: None
        })
    );
}
