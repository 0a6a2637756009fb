//! DNS over TLS and DNS over HTTPS in the demo world, with real clients: `kdig +tls`,
//! `kdig +https`, curl (GET `?dns=` and POST, HTTP/2 and HTTP/1.1) and a rustls client; the
//! answers are byte-identical to UDP's for the same query and ECS. Refusals: garbage on the DoT
//! port, bad framing inside TLS, and every malformed DoH request get protocol-correct answers
//! (a closed connection, an HTTP status), and the server keeps serving. Connection caps and idle
//! timeouts are bounded.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use switchyard_balance::{AdminState, HealthRegistry};
use switchyard_tls::demo::{DemoCa, IssueOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::harness::*;

/// A directory with the demo CA (`ca.pem`) and a server certificate for `dns.example.test`
/// and 127.0.0.1 (`cert.pem`, `key.pem`).
fn certs() -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("switchyard-dns-tls-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = DemoCa::create("switchyard test CA").unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    let names = vec!["dns.example.test".to_string(), "127.0.0.1".to_string()];
    ca.issue(&names, &IssueOptions::default())
        .unwrap()
        .write(&dir.join("cert.pem"), &dir.join("key.pem"))
        .unwrap();
    dir
}

struct Running {
    _dns: Option<switchyard_dns::Dns>,
    token: CancellationToken,
    udp: SocketAddr,
    dot: SocketAddr,
    doh: SocketAddr,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.token.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The demo world's DNS on port 0 with DoT and DoH (`extra` goes into both tables).
async fn demo(extra: &str) -> Running {
    let dir = certs();
    let certs = format!(
        "certs = [{{ cert = {:?}, key = {:?} }}]",
        dir.join("cert.pem"),
        dir.join("key.pem")
    );
    let toml = switchyard_config::demo_toml().replace(
        "listen = [\"127.0.0.1:8053\"]",
        &format!(
            "listen = [\"127.0.0.1:0\"]\ntls = {{ listen = [\"127.0.0.1:0\"], {certs}{extra} }}\nhttps = {{ listen = [\"127.0.0.1:0\"], {certs}{extra} }}"
        ),
    );
    assert!(
        toml.contains("https = {"),
        "the demo's [dns] listen line moved"
    );
    let toml = format!("[node]\nonly = [\"dns\"]\n{toml}");
    let world = switchyard_config::parse_str(&toml, "demo").expect("demo world");
    let token = CancellationToken::new();
    let registry = HealthRegistry::with_admin(AdminState::new());
    let dns = switchyard_dns::start(Arc::new(world), registry, token.clone())
        .await
        .unwrap();
    Running {
        udp: dns.local_addrs()[0],
        dot: dns.dot_addrs()[0],
        doh: dns.doh_addrs()[0],
        _dns: Some(dns),
        token,
        dir,
    }
}

/// A GB client by ECS, as the geo tests ask.
fn gb_query() -> Vec<u8> {
    let mut q = with_edns(
        query("api.example.test.", RecordType::A),
        1232,
        Some(("81.2.69.160", 27)),
    );
    q.metadata.id = 0x4242;
    q.to_vec().unwrap()
}

async fn tool(cmd: &str, args: &[&str]) -> (bool, Vec<u8>, String) {
    let out = tokio::process::Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), out)
        .await
        .unwrap_or_else(|_| panic!("{cmd} did not finish"))
        .unwrap_or_else(|e| panic!("{cmd} not on PATH ({e}); scripts/test installs it"));
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ca(dir: &Path) -> String {
    dir.join("ca.pem").to_string_lossy().into_owned()
}

/// A rustls client trusting the test CA.
fn connector(dir: &Path, alpn: &[u8]) -> tokio_rustls::TlsConnector {
    let cfg =
        switchyard_tls::server::client_config(&dir.join("ca.pem"), vec![alpn.to_vec()]).unwrap();
    tokio_rustls::TlsConnector::from(cfg)
}

async fn dot_connect(r: &Running) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(r.dot).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("dns.example.test").unwrap();
    connector(&r.dir, b"dot")
        .connect(name, tcp)
        .await
        .expect("DoT handshake")
}

#[tokio::test]
async fn dot_and_doh_answer_byte_identical_to_udp_for_the_same_ecs() {
    let r = demo("").await;
    let q = gb_query();
    let want = udp_raw(r.udp, &q).await.expect("UDP answer");
    let m = decode(&want, 0x4242);
    assert_eq!(
        addrs(&m.answers),
        vec![ip("127.0.2.1")],
        "GB goes to eu-west"
    );
    assert_eq!(ecs_of(&m), Some((27, 24, ip("81.2.69.160"))));

    // DoT (rustls client), two queries on one connection
    let mut s = dot_connect(&r).await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"dot"[..]));
    for _ in 0..2 {
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        s.write_all(&framed).await.unwrap();
        s.flush().await.unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.unwrap();
        let mut got = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, want, "DoT answer differs from UDP");
    }

    // DoH with curl: POST and GET, HTTP/2 and HTTP/1.1
    let qfile = r.dir.join("q.bin");
    std::fs::write(&qfile, &q).unwrap();
    let url = format!("https://dns.example.test:{}/dns-query", r.doh.port());
    let resolve = format!("dns.example.test:{}:127.0.0.1", r.doh.port());
    let b64 = data_encoding::BASE64URL_NOPAD.encode(&q);
    let get_url = format!("{url}?dns={b64}");
    let data = format!("@{}", qfile.display());
    let cafile = ca(&r.dir);
    for http in ["--http2", "--http1.1"] {
        let base = [
            "-sS",
            "--fail",
            "--cacert",
            &cafile,
            "--resolve",
            &resolve,
            http,
        ];
        let mut post = base.to_vec();
        post.extend([
            "-H",
            "content-type: application/dns-message",
            "--data-binary",
            &data,
            &url,
        ]);
        let (ok, body, err) = tool("curl", &post).await;
        assert!(ok, "curl POST {http}: {err}");
        assert_eq!(body, want, "DoH POST {http} differs from UDP");
        let mut get = base.to_vec();
        get.extend(["-H", "accept: application/dns-message", &get_url]);
        let (ok, body, err) = tool("curl", &get).await;
        assert!(ok, "curl GET {http}: {err}");
        assert_eq!(body, want, "DoH GET {http} differs from UDP");
    }
    // the content type of the answer
    let (ok, head, _) = tool(
        "curl",
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "--cacert",
            &cafile,
            "--resolve",
            &resolve,
            &get_url,
        ],
    )
    .await;
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(
        ok && head.contains("content-type: application/dns-message"),
        "{head}"
    );
    // fresh no longer than the answer's TTL (10 s for GSLB names in the demo)
    assert!(head.contains("cache-control: max-age=10\r\n"), "{head}");
}

#[tokio::test]
async fn kdig_over_tls_and_https() {
    let r = demo("").await;
    let cafile = format!("+tls-ca={}", ca(&r.dir));
    let common = [
        "+tls-hostname=dns.example.test",
        "+subnet=81.2.69.160/27",
        "+noall",
        "+answer",
        "+timeout=5",
        "+retry=0",
        "api.example.test",
        "A",
    ];
    let udp_port = r.udp.port().to_string();
    let (ok, udp_out, err) = tool(
        "kdig",
        &[
            "@127.0.0.1",
            "-p",
            &udp_port,
            "+subnet=81.2.69.160/27",
            "+noall",
            "+answer",
            "api.example.test",
            "A",
        ],
    )
    .await;
    assert!(ok, "kdig over UDP: {err}");
    let udp_out = String::from_utf8_lossy(&udp_out).into_owned();
    assert!(udp_out.contains("127.0.2.1"), "{udp_out}");
    for (port, mode) in [
        (r.dot.port(), "+tls"),
        (r.doh.port(), "+https=/dns-query"),
        (r.doh.port(), "+https-get"),
    ] {
        let p = port.to_string();
        let mut args = vec!["@127.0.0.1", "-p", &p, mode, &cafile];
        if mode == "+https-get" {
            args.push("+https=/dns-query");
        }
        args.extend(common);
        let (ok, out, err) = tool("kdig", &args).await;
        let out = String::from_utf8_lossy(&out).into_owned();
        assert!(ok, "kdig {mode}: {err}\n{out}");
        assert_eq!(
            out, udp_out,
            "kdig {mode}: the answer section differs from UDP's"
        );
    }
    // a client that does not trust the CA is refused by its own verification
    let p = r.dot.port().to_string();
    let (ok, out, _) = tool(
        "kdig",
        &[
            "@127.0.0.1",
            "-p",
            &p,
            "+tls-ca=/etc/ssl/certs/ca-certificates.crt",
            "+tls-hostname=dns.example.test",
            "+timeout=3",
            "+retry=0",
            "api.example.test",
        ],
    )
    .await;
    assert!(!ok || !String::from_utf8_lossy(&out).contains("127.0.2.1"));
}

/// Status and body of one curl request to the DoH listener.
async fn curl_status(r: &Running, extra: &[&str], path_and_query: &str) -> u16 {
    let url = format!("https://dns.example.test:{}{path_and_query}", r.doh.port());
    let resolve = format!("dns.example.test:{}:127.0.0.1", r.doh.port());
    let cafile = ca(&r.dir);
    let mut args = vec![
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--cacert",
        &cafile,
        "--resolve",
        &resolve,
    ];
    args.extend(extra);
    args.push(&url);
    let (_, out, err) = tool("curl", &args).await;
    String::from_utf8_lossy(&out)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl gave no status: {err}"))
}

#[tokio::test]
async fn malformed_requests_get_protocol_correct_refusals() {
    let r = demo("").await;
    let dns_ct = "content-type: application/dns-message";
    let garbage = r.dir.join("garbage.bin");
    std::fs::write(&garbage, b"\x00\x01garbage").unwrap();
    let big = r.dir.join("big.bin");
    std::fs::write(&big, vec![0u8; 20 * 1024]).unwrap();
    let (g, b) = (
        format!("@{}", garbage.display()),
        format!("@{}", big.display()),
    );
    let cases: Vec<(Vec<&str>, &str, u16)> = vec![
        (vec!["-H", dns_ct, "--data-binary", &g], "/dns-query", 400),
        (vec!["-H", dns_ct, "--data-binary", &b], "/dns-query", 413),
        (
            vec!["-H", "content-type: text/plain", "--data-binary", &g],
            "/dns-query",
            415,
        ),
        (vec![], "/dns-query?dns=!!!notbase64", 400),
        (vec![], "/dns-query?other=1", 400),
        (vec![], "/dns-query?dns=AAAA", 400), // 3 bytes: shorter than a header
        (vec![], "/elsewhere?dns=AAAA", 404),
        (vec!["-X", "PUT"], "/dns-query", 405),
    ];
    for http in ["--http2", "--http1.1"] {
        for (extra, path, want) in &cases {
            let mut e = extra.clone();
            e.push(http);
            assert_eq!(
                curl_status(&r, &e, path).await,
                *want,
                "{http} {extra:?} {path}"
            );
        }
    }
    // garbage on the DoT port: no TLS, closed; the listener keeps serving
    for junk in [
        &b"\x00\x1dnot tls at all, just bytes.."[..],
        b"GET / HTTP/1.1\r\n\r\n",
        &[0x16, 3, 1, 0xff, 0xff],
    ] {
        let mut s = TcpStream::connect(r.dot).await.unwrap();
        s.write_all(junk).await.unwrap();
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // a TLS alert
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "the DoT port kept a garbage connection open"
        );
    }
    // bad framing inside TLS (a 3-byte message): the connection is closed
    let mut s = dot_connect(&r).await;
    s.write_all(&[0, 3, 1, 2, 3]).await.unwrap();
    s.flush().await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    // and a good query still works
    let q = gb_query();
    let mut s = dot_connect(&r).await;
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    s.write_all(&framed).await.unwrap();
    s.flush().await.unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.unwrap();
    assert!(u16::from_be_bytes(len) > 12);
}

#[tokio::test]
async fn connection_caps_and_idle_timeouts_are_bounded() {
    let r = demo(", max_connections = 2, idle_timeout = \"400ms\", handshake_timeout = \"400ms\"")
        .await;
    // two DoT connections fill the cap; a third is closed at once
    let a = dot_connect(&r).await;
    let b = dot_connect(&r).await;
    let tcp = TcpStream::connect(r.dot).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("dns.example.test").unwrap();
    let third = connector(&r.dir, b"dot").connect(name, tcp).await;
    assert!(third.is_err(), "a third connection over the cap was served");
    drop((a, b));
    // idle: a handshaken connection that asks nothing is closed after idle_timeout
    for (addr, alpn) in [
        (r.dot, &b"dot"[..]),
        (r.doh, &b"h2"[..]),
        (r.doh, &b"http/1.1"[..]),
    ] {
        let mut s = eventually_connect(&r, addr, alpn).await;
        let t0 = Instant::now();
        let mut buf = [0u8; 256];
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // h2 SETTINGS, GOAWAY
                }
            }
        })
        .await;
        assert!(end.is_ok(), "{alpn:?}: an idle connection stayed open");
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(300),
            "{alpn:?}: closed after {waited:?}"
        );
    }
    // a client that never finishes its handshake is dropped after handshake_timeout
    let mut s = TcpStream::connect(r.dot).await.unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0) | Err(_))), "{n:?}");
    assert!(t0.elapsed() >= Duration::from_millis(300));
}

/// Connects with `alpn` once the cap has room again (connections closed a moment ago are
/// released by their tasks asynchronously).
async fn eventually_connect(
    r: &Running,
    addr: SocketAddr,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("dns.example.test").unwrap();
        match connector(&r.dir, alpn).connect(name, tcp).await {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot connect: {e}"),
        }
    }
}

/// DoT and DoH are exempt from response rate limiting, like TCP: a network whose UDP budget
/// is spent still gets every answer over them.
#[tokio::test]
async fn rate_limited_networks_are_answered_over_dot_and_doh() {
    use switchyard_config::dns::{DnsTls, Rrl};
    use switchyard_config::tls::CertFile;
    let dir = certs();
    let tls = |path: &str| DnsTls {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        certs: vec![CertFile {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }],
        path: path.to_string(),
        handshake_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        max_connections: 16,
        ticket_keys: None,
    };
    let mut s = spec(Vec::new());
    s.rrl = Some(Rrl {
        responses_per_second: 1,
        burst: 2,
        slip: 0,
        ipv4_prefix: 24,
        ipv6_prefix: 56,
    });
    s.dot = Some(tls(""));
    s.doh = Some(tls("/dns-query"));
    let server = serve(s).await;
    let h = server.handle.as_ref().unwrap();
    let (dot, doh) = (h.dot_addrs()[0], h.doh_addrs()[0]);
    let mut q = query("ns1.example.test.", RecordType::A);
    q.metadata.id = 7;
    let q = q.to_vec().unwrap();
    // spend the UDP budget: past the burst, nothing comes back (one socket: one worker)
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..8 {
        sock.send_to(&q, server.addr).await.unwrap();
    }
    let mut answered = 0;
    let mut buf = [0u8; 512];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await
    {
        answered += 1;
    }
    assert_eq!(answered, 2, "RRL: the burst, then nothing over UDP");
    // DoT: twenty answers on one connection
    let r = Running {
        _dns: None,
        token: CancellationToken::new(),
        udp: server.addr,
        dot,
        doh,
        dir: dir.clone(),
    };
    let mut s = dot_connect(&r).await;
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    for _ in 0..20 {
        s.write_all(&framed).await.unwrap();
        s.flush().await.unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.unwrap();
        let mut got = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(addrs(&decode(&got, 7).answers), [ip("192.0.2.53")]);
    }
    // DoH: ten POSTs in one curl run
    let qfile = dir.join("q.bin");
    std::fs::write(&qfile, &q).unwrap();
    let url = format!("https://dns.example.test:{}/dns-query", doh.port());
    let resolve = format!("dns.example.test:{}:127.0.0.1", doh.port());
    let (cafile, data) = (ca(&dir), format!("@{}", qfile.display()));
    let mut args = vec!["-sS", "--fail", "--cacert", &cafile, "--resolve", &resolve];
    args.extend([
        "-H",
        "content-type: application/dns-message",
        "--data-binary",
        &data,
    ]);
    for _ in 0..10 {
        args.push(&url);
    }
    let (ok, body, err) = tool("curl", &args).await;
    assert!(ok, "{err}");
    let one = body.len() / 10;
    assert_eq!(body.len(), one * 10);
    for chunk in body.chunks(one) {
        assert_eq!(addrs(&decode(chunk, 7).answers), [ip("192.0.2.53")]);
    }
}
