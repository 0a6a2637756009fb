//! Every case of the two parsers this one replaces (`lb/src/proxy_proto/tests.rs`,
//! `gateway/src/proxy_protocol.rs`), the cases they missed, and a bounded fuzz-style run over
//! random, mutated and truncated headers.

use super::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn enc(v: Version, s: &str, d: &str) -> Vec<u8> {
    let mut b = [0u8; MAX_ENCODED];
    let n = encode(v, sa(s), sa(d), &mut b);
    b[..n].to_vec()
}

#[test]
fn v1_matches_spec_examples() {
    // proxy-protocol.txt section 2.1 examples
    assert_eq!(
        enc(Version::V1, "192.168.0.1:56324", "192.168.0.11:443"),
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    );
    assert_eq!(
        enc(
            Version::V1,
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
    let got = enc(Version::V2, "192.168.0.1:56324", "192.168.0.11:443");
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
    let v6 = enc(Version::V2, "[2001:db8::1]:1000", "[2001:db8::2]:443");
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
        enc(Version::V1, "10.0.0.1:1", "[::1]:2"),
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
    let mut tlv = enc(Version::V2, "1.2.3.4:5", "6.7.8.9:10");
    tlv[15] = 12 + 4;
    tlv.extend_from_slice(&[0x04, 0x00, 0x01, 0xff]); // a NOOP TLV
    match parse(&tlv) {
        Parse::Complete(h) => assert_eq!((h.len, h.addrs.unwrap().0), (32, sa("1.2.3.4:5"))),
        o => panic!("{o:?}"),
    }
}

#[test]
fn incomplete_and_malformed() {
    let full = enc(Version::V2, "1.2.3.4:5", "6.7.8.9:10");
    for n in 0..full.len() {
        assert_eq!(parse(&full[..n]), Parse::Incomplete, "prefix {n}");
    }
    for n in 0..20 {
        let v1 = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
        assert_eq!(parse(&v1[..n]), Parse::Incomplete, "prefix {n}");
    }
    assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parse::Absent);
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
    assert_eq!(parse(&[b'P'; 200]), Parse::Absent);
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

// from gateway/src/proxy_protocol.rs
#[test]
fn gateway_v1() {
    let h = b"PROXY TCP4 203.0.113.7 127.0.1.11 5555 8000\r\nGET / HTTP/1.1\r\n";
    match parse(h) {
        Parse::Complete(h) => assert_eq!((h.len, h.source()), (45, Some(sa("203.0.113.7:5555")))),
        o => panic!("{o:?}"),
    }
    assert_eq!(parse(b"PROXY TCP4 1.2"), Parse::Incomplete);
    assert_eq!(
        parse(b"PROXY UNKNOWN\r\n"),
        Parse::Complete(Header {
            len: 15,
            addrs: None
        })
    );
    assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parse::Absent);
    assert!(matches!(
        parse(b"PROXY TCP4 x y 1 2\r\n"),
        Parse::Invalid(_)
    ));
}

// from gateway/src/proxy_protocol.rs
#[test]
fn gateway_v2() {
    let mut h = V2_SIG.to_vec();
    h.extend_from_slice(&[
        0x21, 0x11, 0, 12, 198, 51, 100, 9, 127, 0, 0, 1, 0x1f, 0x90, 0, 80,
    ]);
    h.extend_from_slice(b"GET");
    match parse(&h) {
        Parse::Complete(hd) => {
            assert_eq!((hd.len, hd.source()), (28, Some(sa("198.51.100.9:8080"))))
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(parse(&h[..20]), Parse::Incomplete);
}

#[test]
fn absent_is_told_apart_from_invalid() {
    assert_eq!(parse(b""), Parse::Incomplete);
    assert_eq!(parse(b"P"), Parse::Incomplete);
    assert_eq!(parse(b"\r\n\r"), Parse::Incomplete);
    assert_eq!(parse(b"PRO"), Parse::Incomplete);
    assert_eq!(parse(b"PUT / HTTP/1.1\r\n"), Parse::Absent);
    assert_eq!(parse(b"\r\nGET"), Parse::Absent);
    assert_eq!(parse(b"\x16\x03\x01"), Parse::Absent, "a TLS ClientHello");
    assert!(matches!(parse(b"PROXY \r\n"), Parse::Invalid(_)));
}

#[test]
fn v1_ports_are_plain_decimal() {
    for bad in [
        "+1234", "-1", "1_000", " 1", "0x10", "65536", "123456", "", "01", "1.0", "١٢",
    ] {
        let line = format!("PROXY TCP4 1.2.3.4 5.6.7.8 {bad} 80\r\n");
        assert!(
            matches!(parse(line.as_bytes()), Parse::Invalid(_)),
            "source port {bad:?} accepted"
        );
        let line = format!("PROXY TCP4 1.2.3.4 5.6.7.8 80 {bad}\r\n");
        assert!(
            matches!(parse(line.as_bytes()), Parse::Invalid(_)),
            "destination port {bad:?} accepted"
        );
    }
    for (good, n) in [("0", 0u16), ("1", 1), ("65535", 65535), ("8080", 8080)] {
        let line = format!("PROXY TCP4 1.2.3.4 5.6.7.8 {good} 80\r\n");
        match parse(line.as_bytes()) {
            Parse::Complete(h) => assert_eq!(h.source().map(|s| s.port()), Some(n)),
            o => panic!("{good}: {o:?}"),
        }
    }
}

#[test]
fn v1_needs_exactly_four_fields_of_the_right_family() {
    for bad in [
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
    ] {
        let r = parse(bad.as_bytes());
        assert!(
            matches!(r, Parse::Invalid(_) | Parse::Incomplete),
            "{bad:?} gave {r:?}"
        );
    }
    assert!(matches!(
        parse(b"PROXY TCP6 ::1 ::2 1 2\r\n"),
        Parse::Complete(Header {
            len: 24,
            addrs: Some(_)
        })
    ));
}

#[test]
fn v2_short_blocks_commands_and_families() {
    let base = enc(Version::V2, "1.2.3.4:5", "6.7.8.9:10");
    // an AF_INET block shorter than 12 bytes
    let mut short = base[..16].to_vec();
    short[15] = 8;
    short.extend_from_slice(&base[16..24]);
    assert_eq!(parse(&short), Parse::Invalid("v2 address block too short"));
    // command 2 does not exist
    let mut cmd = base.clone();
    cmd[12] = 0x22;
    assert_eq!(parse(&cmd), Parse::Invalid("v2 header with a bad command"));
    // UNIX stream, UDP over IPv4, UNSPEC: a header without addresses
    for fam in [0x31u8, 0x12, 0x00] {
        let mut f = base.clone();
        f[13] = fam;
        assert_eq!(
            parse(&f),
            Parse::Complete(Header {
                len: 28,
                addrs: None
            }),
            "family {fam:#x}"
        );
    }
    // the length bound
    let mut long = base[..16].to_vec();
    long[14..16].copy_from_slice(&((V2_MAX - 16 + 1) as u16).to_be_bytes());
    assert_eq!(parse(&long), Parse::Invalid("v2 header too long"));
}

use switchyard_testkit::Rng;

/// A random IPv4 or IPv6 socket address.
trait RandomAddr {
    fn addr(&mut self) -> SocketAddr;
}

impl RandomAddr for Rng {
    fn addr(&mut self) -> SocketAddr {
        let port = self.next() as u16;
        if self.coin() {
            SocketAddr::new(IpAddr::from((self.next() as u32).to_be_bytes()), port)
        } else {
            let mut o = [0u8; 16];
            for b in &mut o {
                *b = self.next() as u8;
            }
            SocketAddr::new(IpAddr::from(o), port)
        }
    }
}

/// What must hold for any input: no panic (the call returning is the check), a complete header
/// lies inside the input and within the bounds, and bytes after it do not change the answer.
fn check_invariants(buf: &[u8]) -> Parse {
    let r = parse(buf);
    if let Parse::Complete(h) = r {
        assert!(h.len <= buf.len(), "{h:?} longer than {} bytes", buf.len());
        assert!(h.len <= V2_MAX && h.len >= 15, "{h:?}");
        let mut more = buf.to_vec();
        more.extend_from_slice(b"\r\n\0trailing");
        assert_eq!(parse(&more), r, "trailing bytes changed the answer");
        assert_eq!(
            parse(&buf[..h.len]),
            r,
            "the header alone gives the same answer"
        );
    }
    r
}

#[test]
fn fuzz_random_mutated_and_truncated_headers() {
    let t0 = std::time::Instant::now();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut buf = Vec::with_capacity(1024);
    let mut complete = 0;
    for i in 0..20_000 {
        buf.clear();
        match i % 4 {
            // random bytes, half of them behind a real signature
            0 | 1 => {
                if i % 4 == 1 {
                    buf.extend_from_slice(if rng.coin() { &V2_SIG } else { V1_PREFIX });
                }
                let n = rng.below(V2_MAX + 40);
                for _ in 0..n {
                    buf.push(rng.next() as u8);
                }
            }
            // a valid header with a few bytes changed
            _ => {
                let v = if rng.coin() { Version::V1 } else { Version::V2 };
                let mut out = [0u8; MAX_ENCODED];
                let n = encode(v, rng.addr(), rng.addr(), &mut out);
                buf.extend_from_slice(&out[..n]);
                for _ in 0..rng.below(4) {
                    let at = rng.below(buf.len());
                    buf[at] = if rng.coin() {
                        rng.next() as u8
                    } else {
                        b"0123456789 .:+-\r\nPROXYTCP46UNKNOWN"[rng.below(33)]
                    };
                }
            }
        }
        if let Parse::Complete(_) = check_invariants(&buf) {
            complete += 1;
        }
        // every truncation: never a header longer than what is there
        let cut = rng.below(buf.len() + 1);
        check_invariants(&buf[..cut]);
    }
    assert!(
        complete > 1_000,
        "only {complete} inputs parsed: the mutations are too harsh"
    );
    assert!(t0.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn every_encoded_header_parses_back_and_every_prefix_is_incomplete() {
    let mut rng = Rng(42);
    for i in 0..2_000 {
        let v = if i % 2 == 0 { Version::V1 } else { Version::V2 };
        let (s, d) = (rng.addr(), rng.addr());
        let mut out = [0u8; MAX_ENCODED];
        let n = encode(v, s, d, &mut out);
        let (ws, wd) = same_family(s, d);
        assert_eq!(
            parse(&out[..n]),
            Parse::Complete(Header {
                len: n,
                addrs: Some((ws, wd))
            }),
            "{v:?} {s} {d}"
        );
        for k in 0..n {
            assert_eq!(
                parse(&out[..k]),
                Parse::Incomplete,
                "{v:?} prefix {k} of {n}"
            );
        }
    }
}

/// CPU time of the calling thread (a current-thread runtime runs every task on it).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the one we pass.
    #[allow(unsafe_code)]
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts)
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

async fn pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = tokio::net::TcpStream::connect(l.local_addr().unwrap())
        .await
        .unwrap();
    (c, l.accept().await.unwrap().0)
}

/// A header split over several writes is read whole, and exactly: what follows stays queued.
#[tokio::test]
async fn read_header_waits_for_the_rest_and_consumes_only_the_header() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut c, mut s) = pair().await;
    let reader = tokio::spawn(async move {
        let h = read_header(&s, Duration::from_secs(5)).await;
        let mut rest = [0u8; 3];
        s.read_exact(&mut rest).await.unwrap();
        (h, rest)
    });
    for part in [
        &b"PROXY TCP4 192.0.2"[..],
        b".1 198.51.100.2 4",
        b"0000 80\r\nGET",
    ] {
        c.write_all(part).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let (h, rest) = reader.await.unwrap();
    let h = h.unwrap();
    assert_eq!(h.source(), Some("192.0.2.1:40000".parse().unwrap()));
    assert_eq!(&rest, b"GET");
}

/// Clients stalled inside a header cost no CPU while they wait (the reader sleeps until more
/// bytes arrive instead of re-peeking), and each ends with a timeout.
#[tokio::test]
async fn stalled_partial_headers_cost_no_cpu() {
    use tokio::io::AsyncWriteExt;
    let mut held = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..100 {
        let (mut c, s) = pair().await;
        c.write_all(b"PROXY TCP4 192.0.2.1 ").await.unwrap();
        held.push(c);
        readers.push(tokio::spawn(async move {
            read_header(&s, Duration::from_millis(800)).await
        }));
    }
    let before = thread_cpu();
    for r in readers {
        let e = r.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    }
    let spent = thread_cpu() - before;
    // polling every millisecond cost about 100 x 800 wake-ups here (over 100 ms of CPU)
    assert!(
        spent < Duration::from_millis(60),
        "{spent:?} of CPU while stalled"
    );
}

#[test]
fn v2_with_tlvs_parses_back_and_carries_them() {
    let (s, d) = (sa("10.0.0.1:5000"), sa("10.0.0.2:443"));
    let mut out = [0u8; MAX_ENCODED_TLVS];
    let alpn = b"\x00\x03\x02h2";
    let n = encode_v2_tlvs(
        s,
        d,
        &[(PP2_TYPE_AUTHORITY, b"a.example"), (PP2_TYPE_ALPN, alpn)],
        &mut out,
    )
    .unwrap();
    assert_eq!(n, 28 + 3 + 9 + 3 + 5);
    assert_eq!(&out[14..16], &((n - 16) as u16).to_be_bytes());
    assert_eq!(&out[28..40], b"\x02\x00\x09a.example");
    assert_eq!(&out[40..n], b"\x01\x00\x05\x00\x03\x02h2");
    assert_eq!(
        parse(&out[..n]),
        Parse::Complete(Header {
            len: n,
            addrs: Some((s, d))
        })
    );
    // without TLVs it is the plain v2 header
    let n0 = encode_v2_tlvs(s, d, &[], &mut out).unwrap();
    assert_eq!(
        out[..n0],
        enc(Version::V2, "10.0.0.1:5000", "10.0.0.2:443")[..]
    );
    // the largest SNI and ALPN fit; a buffer too small is refused
    let big = [b'a'; 256];
    let mut out6 = [0u8; MAX_ENCODED_TLVS];
    let (s6, d6) = (sa("[::1]:1"), sa("[::2]:2"));
    assert!(encode_v2_tlvs(s6, d6, &[(2, &big), (1, &big)], &mut out6).is_some());
    assert!(encode_v2_tlvs(s6, d6, &[(2, &big), (1, &big), (1, b"x")], &mut out6).is_none());
}
