//! A real ClientHello (captured from `openssl s_client`), hand-built ones for every rule, every
//! split into records and every truncation, and a bounded fuzz-style run over random, mutated
//! and truncated input: the parser must never panic and never claim bytes it was not given.

use super::*;
use switchyard_testkit::Rng;

/// `openssl s_client -servername WWW.Example.Test -alpn h2,http/1.1` (OpenSSL 3.0), one record.
const OPENSSL: &str = "160301014f0100014b03030b2089a55028ebdca0612dec412f21c8ed1c462d41dfd5274ed447408e560eb8205ba269c1\
7a162525afe23c9c9b94c9f4bbea5b8584cbfe7a85ae5e0b10fe9c65003e130213031301c02cc030009fcca9cca8ccaa\
c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000c4\
0000001500130000105757572e4578616d706c652e54657374000b000403000102000a00160014001d0017001e001900\
1801000101010201030104002300000010000e000c02683208687474702f312e310016000000170000000d002a002804\
0305030603080708080809080a080b080408050806040105010601030303010302040205020602002b00090803040303\
03020301002d00020101003300260024001d002030fa77f73a4c6c412cf1ffb71f65513ff4fce1858fd5f173466c2146\
406fde59";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn run(buf: &[u8]) -> (Parse, Hello) {
    let mut h = Hello::empty();
    let p = parse(buf, &mut h);
    (p, h)
}

fn names(h: &Hello) -> Vec<String> {
    h.alpn_protocols()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

/// Options for a hand-built ClientHello.
#[derive(Clone)]
struct Spec {
    names: Vec<Vec<u8>>,
    alpn: Option<Vec<Vec<u8>>>,
    session: usize,
    suites: usize,
    compression: usize,
    /// Extra extensions (type, data), e.g. padding or duplicates.
    extra: Vec<(u16, Vec<u8>)>,
    no_extensions: bool,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            names: vec![b"a.example".to_vec()],
            alpn: Some(vec![b"h2".to_vec(), b"http/1.1".to_vec()]),
            session: 32,
            suites: 2,
            compression: 1,
            extra: vec![],
            no_extensions: false,
        }
    }
}

fn u16b(n: usize) -> [u8; 2] {
    (n as u16).to_be_bytes()
}

/// The handshake message (type, 3-byte length, body).
fn message(s: &Spec) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend([7u8; 32]);
    b.push(s.session as u8);
    b.extend(vec![1u8; s.session]);
    b.extend(u16b(s.suites));
    b.extend(vec![0x13u8; s.suites]);
    b.push(s.compression as u8);
    b.extend(vec![0u8; s.compression]);
    if !s.no_extensions {
        let mut ext = Vec::new();
        if !s.names.is_empty() {
            let mut list = Vec::new();
            for n in &s.names {
                list.push(0);
                list.extend(u16b(n.len()));
                list.extend(n);
            }
            ext.extend(u16b(0));
            ext.extend(u16b(list.len() + 2));
            ext.extend(u16b(list.len()));
            ext.extend(list);
        }
        if let Some(protos) = &s.alpn {
            let mut list = Vec::new();
            for p in protos {
                list.push(p.len() as u8);
                list.extend(p);
            }
            ext.extend(u16b(16));
            ext.extend(u16b(list.len() + 2));
            ext.extend(u16b(list.len()));
            ext.extend(list);
        }
        for (t, d) in &s.extra {
            ext.extend(u16b(*t as usize));
            ext.extend(u16b(d.len()));
            ext.extend(d);
        }
        b.extend(u16b(ext.len()));
        b.extend(ext);
    }
    let mut m = vec![1, 0];
    m.extend(u16b(b.len()));
    m.extend(b);
    m
}

/// `msg` in handshake records of at most `chunk` bytes each.
fn records(msg: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in msg.chunks(chunk) {
        out.extend([22, 3, 1]);
        out.extend(u16b(c.len()));
        out.extend(c);
    }
    out
}

fn build(s: &Spec) -> Vec<u8> {
    records(&message(s), 1 << 14)
}

fn invalid(buf: &[u8]) -> &'static str {
    match run(buf).0 {
        Parse::Invalid(why) => why,
        p => panic!("expected Invalid, got {p:?}"),
    }
}

#[test]
fn openssl_client_hello_gives_name_and_alpn() {
    let b = unhex(OPENSSL);
    let (p, h) = run(&b);
    assert_eq!(p, Parse::Complete);
    assert_eq!(h.server_name(), Some("www.example.test"), "lowercased");
    assert_eq!(names(&h), ["h2", "http/1.1"]);
    assert_eq!(h.alpn().unwrap(), b"\x00\x0c\x02h2\x08http/1.1");
    assert_eq!(h.len, b.len());
    // every strict prefix is a valid prefix
    for n in 0..b.len() {
        assert_eq!(run(&b[..n]).0, Parse::Incomplete, "prefix of {n} bytes");
    }
    // what follows (the client's next flight) changes nothing
    let mut more = b.clone();
    more.extend([0x14, 3, 3, 0, 1, 1]);
    let (p, h2) = run(&more);
    assert_eq!((p, h2.len), (Parse::Complete, b.len()));
}

#[test]
fn split_into_records_of_any_size_parses_the_same() {
    let msg = message(&Spec::default());
    for chunk in [1, 2, 3, 5, 7, 40, msg.len() - 1, msg.len()] {
        let b = records(&msg, chunk);
        for n in 0..b.len() {
            assert_eq!(
                run(&b[..n]).0,
                Parse::Incomplete,
                "chunk {chunk}, {n} bytes"
            );
        }
        let (p, h) = run(&b);
        assert_eq!(p, Parse::Complete, "chunk {chunk}");
        assert_eq!(h.server_name(), Some("a.example"));
        assert_eq!(names(&h), ["h2", "http/1.1"]);
        assert_eq!(h.len, b.len(), "chunk {chunk}");
    }
    // the ClientHello ends inside a record that carries more handshake bytes
    let mut joined = msg.clone();
    joined.extend([0xee; 9]);
    let b = records(&joined, 50);
    let (p, h) = run(&b);
    assert_eq!(p, Parse::Complete);
    let k = (msg.len() - 1) / 50; // the record holding the ClientHello's last byte
    assert_eq!(h.len, k * 55 + 5 + msg.len() - k * 50);
}

#[test]
fn not_tls_is_told_by_the_first_byte() {
    for b in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"\x80\x2e\x01\x03\x01",
        b"SSH-2.0-x",
        b"\x00",
    ] {
        assert_eq!(run(b).0, Parse::NotTls, "{b:?}");
    }
    assert_eq!(run(b"").0, Parse::Incomplete);
    assert_eq!(run(b"\x16").0, Parse::Incomplete);
    assert_eq!(run(b"\x16\x03").0, Parse::Incomplete);
}

#[test]
fn malformed_records_are_invalid() {
    assert_eq!(invalid(b"\x16\x02\x00"), "record version is not 3.x");
    assert_eq!(
        invalid(b"\x16\x03\x01\x40\x01"),
        "record longer than 2^14 bytes"
    );
    assert_eq!(invalid(b"\x16\x03\x01\x00\x00"), "empty handshake record");
    let msg = message(&Spec::default());
    // an alert record between two halves of the ClientHello
    let mut b = records(&msg[..10], 10);
    b.extend([21, 3, 3, 0, 2, 2, 40]);
    assert_eq!(
        invalid(&b),
        "ClientHello interrupted by another record type"
    );
    // a ServerHello (type 2) where a ClientHello belongs
    let mut m = msg.clone();
    m[0] = 2;
    assert_eq!(
        invalid(&records(&m, 1 << 14)),
        "first handshake message is not a ClientHello"
    );
    // a declared length beyond the limit
    let huge = [22, 3, 1, 0, 4, 1, 0, 0x40, 0];
    assert_eq!(invalid(&huge), "ClientHello longer than the limit");
    // an empty record in the middle of a split ClientHello
    let mut b = records(&msg[..10], 10);
    b.extend([22, 3, 1, 0, 0]);
    assert_eq!(invalid(&b), "empty handshake record");
}

#[test]
fn malformed_bodies_are_invalid() {
    let bad = |s: Spec| invalid(&build(&s));
    assert_eq!(
        bad(Spec {
            session: 33,
            ..Spec::default()
        }),
        "session id longer than 32 bytes"
    );
    assert_eq!(
        bad(Spec {
            suites: 3,
            ..Spec::default()
        }),
        "bad cipher suite list"
    );
    assert_eq!(
        bad(Spec {
            suites: 0,
            ..Spec::default()
        }),
        "bad cipher suite list"
    );
    assert_eq!(
        bad(Spec {
            compression: 0,
            ..Spec::default()
        }),
        "no compression method"
    );
    let two = Spec {
        names: vec![b"a.example".to_vec(), b"b.example".to_vec()],
        ..Spec::default()
    };
    assert_eq!(bad(two), "two host names in server_name");
    for n in [
        &b"a b.example"[..],
        b"a\0",
        b".a.example",
        b"a.example.",
        b"",
        b"caf\xc3\xa9",
    ] {
        let s = Spec {
            names: vec![n.to_vec()],
            ..Spec::default()
        };
        assert!(
            bad(s).starts_with("server name"),
            "{:?}",
            String::from_utf8_lossy(n)
        );
    }
    let long = Spec {
        names: vec![vec![b'a'; 254]],
        ..Spec::default()
    };
    assert_eq!(bad(long), "server name empty or longer than 253 bytes");
    let dup = Spec {
        extra: vec![(0, vec![0, 4, 0, 0, 1, b'x'])],
        ..Spec::default()
    };
    assert_eq!(bad(dup), "server_name sent twice");
    let dup = Spec {
        extra: vec![(16, vec![0, 3, 2, b'h', b'2'])],
        ..Spec::default()
    };
    assert_eq!(bad(dup), "ALPN sent twice");
    let empty_proto = Spec {
        alpn: Some(vec![b"h2".to_vec(), vec![]]),
        ..Spec::default()
    };
    assert_eq!(bad(empty_proto), "bad ALPN extension");
    let empty_list = Spec {
        alpn: Some(vec![]),
        ..Spec::default()
    };
    assert_eq!(bad(empty_list), "bad ALPN extension");
    // bytes after the extension block
    let mut m = message(&Spec::default());
    m.push(0);
    let body = m.len() - 4;
    m[1..4].copy_from_slice(&(body as u32).to_be_bytes()[1..]);
    assert_eq!(invalid(&records(&m, 1 << 14)), "bytes after the extensions");
    // an extension whose length runs past the block
    let mut m = message(&Spec {
        alpn: None,
        ..Spec::default()
    });
    let n = m.len();
    m[n - 14] = 0xff; // the server name list's length, high byte
    assert!(matches!(run(&records(&m, 1 << 14)).0, Parse::Invalid(_)));
}

#[test]
fn optional_parts() {
    // no extensions at all (TLS 1.2 and older may omit them): no name, no ALPN
    let (p, h) = run(&build(&Spec {
        no_extensions: true,
        ..Spec::default()
    }));
    assert_eq!(
        (p, h.server_name(), h.alpn()),
        (Parse::Complete, None, None)
    );
    // extensions without SNI or ALPN, and unknown ones, are skipped
    let (p, h) = run(&build(&Spec {
        names: vec![],
        alpn: None,
        extra: vec![(21, vec![0; 300]), (0xfe0d, vec![1, 2, 3])],
        ..Spec::default()
    }));
    assert_eq!(
        (p, h.server_name(), h.alpn()),
        (Parse::Complete, None, None)
    );
    // an ALPN extension longer than MAX_ALPN is parsed but not kept
    let many: Vec<Vec<u8>> = (0..40)
        .map(|i| format!("proto-{i:02}").into_bytes())
        .collect();
    let (p, h) = run(&build(&Spec {
        alpn: Some(many),
        ..Spec::default()
    }));
    assert_eq!(
        (p, h.server_name(), h.alpn()),
        (Parse::Complete, Some("a.example"), None)
    );
    // the longest name, and underscores and digits
    let name = format!("{}.x", "a".repeat(251));
    for n in [name.as_str(), "_acme.9.Example"] {
        let (p, h) = run(&build(&Spec {
            names: vec![n.as_bytes().to_vec()],
            ..Spec::default()
        }));
        assert_eq!(p, Parse::Complete);
        assert_eq!(h.server_name().unwrap(), n.to_ascii_lowercase());
    }
    // a name of another type (not host_name) is skipped
    let mut s = Spec::default();
    s.names.clear();
    s.extra = vec![(0, vec![0, 4, 7, 0, 1, b'x'])];
    let (p, h) = run(&build(&s));
    assert_eq!((p, h.server_name()), (Parse::Complete, None));
}

#[test]
fn a_record_stream_longer_than_the_limit_is_invalid() {
    // a ClientHello declared just under the limit but sent in 1-byte records never fits
    let m = message(&Spec {
        extra: vec![(21, vec![0; 3000])],
        ..Spec::default()
    });
    let b = records(&m, 1);
    assert!(b.len() > MAX_PEEK);
    assert_eq!(invalid(&b), "ClientHello longer than the limit");
    assert_eq!(run(&b[..MAX_PEEK - 1]).0, Parse::Incomplete);
}

/// What must hold for any input: no panic (the call returning is the check), a complete hello
/// lies inside the input, and bytes after it do not change the answer.
fn check_invariants(buf: &[u8]) -> Parse {
    let (r, h) = run(buf);
    if r == Parse::Complete {
        assert!(
            h.len <= buf.len().min(MAX_PEEK),
            "{h:?} longer than {} bytes",
            buf.len()
        );
        let (again, h2) = run(&buf[..h.len]);
        assert_eq!(again, r, "the hello alone gives the same answer");
        assert_eq!(h2.server_name(), h.server_name());
        assert_eq!(h2.alpn(), h.alpn());
        if let Some(n) = h.server_name() {
            assert!(n.len() <= MAX_NAME && n.bytes().all(|b| !b.is_ascii_uppercase()));
        }
    }
    r
}

#[test]
fn fuzz_random_mutated_and_truncated_hellos() {
    let t0 = std::time::Instant::now();
    let real = unhex(OPENSSL);
    let mut rng = Rng(0x7115_0e11_0000_0001);
    let mut buf = Vec::with_capacity(4096);
    let (mut complete, mut invalid_n) = (0, 0);
    for i in 0..20_000 {
        buf.clear();
        match i % 4 {
            // random bytes, half of them behind a handshake record header
            0 | 1 => {
                if i % 4 == 1 {
                    buf.extend([22, 3, 1]);
                    buf.extend(u16b(rng.below(2000)));
                    buf.push(1);
                }
                for _ in 0..rng.below(2100) {
                    buf.push(rng.next() as u8);
                }
            }
            // a valid hello (real or built, split into random records) with a few bytes changed
            _ => {
                if rng.coin() {
                    buf.extend(&real);
                } else {
                    let s = Spec {
                        names: vec![format!("n{}.example", rng.below(1000)).into_bytes()],
                        session: rng.below(33),
                        ..Spec::default()
                    };
                    buf.extend(records(&message(&s), 1 + rng.below(200)));
                }
                for _ in 0..rng.below(4) {
                    let at = rng.below(buf.len());
                    buf[at] = match rng.below(3) {
                        0 => rng.next() as u8,
                        1 => 0,
                        _ => 0xff,
                    };
                }
            }
        }
        match check_invariants(&buf) {
            Parse::Complete => complete += 1,
            Parse::Invalid(_) => invalid_n += 1,
            _ => {}
        }
        let cut = rng.below(buf.len() + 1);
        check_invariants(&buf[..cut]);
    }
    assert!(
        complete > 1_000,
        "only {complete} inputs parsed: the mutations are too harsh"
    );
    assert!(
        invalid_n > 1_000,
        "only {invalid_n} rejected: the fuzzing is too gentle"
    );
    assert!(t0.elapsed() < Duration::from_secs(30));
}

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

/// A ClientHello written a few bytes at a time is found whole, and nothing is consumed.
#[tokio::test]
async fn peek_hello_waits_for_the_rest_and_consumes_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let real = unhex(OPENSSL);
    let (mut c, mut s) = pair().await;
    let want = real.clone();
    let reader = tokio::spawn(async move {
        let h = peek_hello(&s, Duration::from_secs(5)).await.unwrap();
        let mut all = vec![0u8; want.len()];
        s.read_exact(&mut all).await.unwrap();
        assert_eq!(all, want, "the bytes are still queued, untouched");
        h
    });
    for part in real.chunks(7) {
        c.write_all(part).await.unwrap();
        c.flush().await.unwrap();
        tokio::task::yield_now().await;
    }
    let h = reader.await.unwrap();
    assert_eq!(h.server_name(), Some("www.example.test"));
    assert_eq!(h.len, real.len());
}

#[tokio::test]
async fn peek_hello_refuses_promptly() {
    use tokio::io::AsyncWriteExt;
    // not TLS
    let (mut c, s) = pair().await;
    c.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let e = peek_hello(&s, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(e, HelloError::NotTls), "{e:?}");
    // malformed
    let (mut c, s) = pair().await;
    c.write_all(b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00")
        .await
        .unwrap();
    let e = peek_hello(&s, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(e, HelloError::Invalid(_)), "{e:?}");
    // half a ClientHello, then the client closes: told at once, not at the timeout
    let (mut c, s) = pair().await;
    c.write_all(&unhex(OPENSSL)[..100]).await.unwrap();
    c.shutdown().await.unwrap();
    let t0 = std::time::Instant::now();
    let e = peek_hello(&s, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(e, HelloError::Eof), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    // closed without a byte
    let (c, s) = pair().await;
    drop(c);
    let e = peek_hello(&s, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(e, HelloError::Eof), "{e:?}");
}

/// A hundred clients stalled in the middle of their ClientHello cost (almost) no CPU until the
/// timeout closes them: the wait is on readiness, not a poll loop.
#[tokio::test]
async fn stalled_partial_hellos_cost_no_cpu() {
    use tokio::io::AsyncWriteExt;
    let real = unhex(OPENSSL);
    let mut held = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..100 {
        let (mut c, s) = pair().await;
        c.write_all(&real[..200]).await.unwrap();
        held.push(c);
        readers.push(tokio::spawn(async move {
            peek_hello(&s, Duration::from_millis(800)).await
        }));
    }
    let before = thread_cpu();
    for r in readers {
        let e = r.await.unwrap().unwrap_err();
        assert!(matches!(e, HelloError::Timeout), "{e:?}");
    }
    let spent = thread_cpu() - before;
    assert!(
        spent < Duration::from_millis(60),
        "{spent:?} of CPU while stalled"
    );
}
