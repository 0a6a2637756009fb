//! SNI routing over real sockets: `openssl s_client -servername` to two names reaches two
//! pools and an unknown name the default; real ClientHellos (captured from `openssl s_client`
//! in-test) written a few bytes at a time are still routed and reach the backend
//! byte-identical; non-TLS bytes and a truncated ClientHello are closed (or go to the default);
//! PROXY in and PROXY v2 out with the SNI and ALPN as TLVs.

use crate::harness::*;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};
use switchyard_config::lb::ProxyVersion;
use switchyard_lb::{start_plan, LbOptions, Plan, PoolSpec, SniSpec};
use switchyard_net::proxy;
use switchyard_net::tls_hello::{self, Hello};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

fn openssl() -> tokio::process::Command {
    let mut c = tokio::process::Command::new("openssl");
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    c
}

/// Reads from `s` until a whole ClientHello is there; returns the bytes (exactly the hello).
async fn read_hello(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let mut h = Hello::empty();
        if tls_hello::parse(&buf, &mut h) == tls_hello::Parse::Complete {
            buf.truncate(h.len);
            return buf;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("ClientHello in time")
            .unwrap();
        assert!(n > 0, "EOF before a whole ClientHello");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A real ClientHello for `name`: what `openssl s_client -servername name -alpn h2,http/1.1`
/// sends first.
async fn captured_hello(name: &str) -> Vec<u8> {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let _client = openssl()
        .args(["s_client", "-connect", &addr, "-servername", name])
        .args(["-alpn", "h2,http/1.1"])
        .spawn()
        .expect("openssl on PATH (scripts/test installs it)");
    let (mut s, _) = l.accept().await.unwrap();
    read_hello(&mut s).await
}

/// A pool named `name` over one backend.
fn named_pool(name: &str, addr: SocketAddr) -> PoolSpec {
    let mut p = pool(&[(addr, "z", 1)]);
    p.key = ("test".into(), name.into());
    p.check = None;
    p
}

/// Routes `a.example` → pool `a`, `*.b.example` → pool `b`, everything else → `default`.
fn sni_spec(default: Option<&str>, timeout: Duration) -> SniSpec {
    let k = |n: &str| ("test".to_string(), n.to_string());
    SniSpec {
        routes: vec![
            (vec!["a.example".into()], k("a")),
            (vec!["*.b.example".into()], k("b")),
        ],
        default: default.map(k),
        timeout,
        tlvs: false,
    }
}

struct Running {
    lb: switchyard_lb::Lb,
    plan: Plan,
    addr: SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(pools: Vec<PoolSpec>, sni: SniSpec, accept_proxy: bool) -> Running {
    raise_nofile();
    let mut l = listener();
    l.pool = pools[0].key.clone();
    l.sni = Some(sni);
    l.accept_proxy = accept_proxy;
    let registry =
        switchyard_balance::HealthRegistry::with_admin(switchyard_balance::AdminState::new());
    let shutdown = CancellationToken::new();
    let plan = Plan {
        pools,
        listeners: vec![l],
        global_max_connections: None,
    };
    let opts = LbOptions {
        grace: Duration::from_millis(200),
        ..LbOptions::default()
    };
    let lb = start_plan(plan.clone(), registry, shutdown.clone(), opts)
        .await
        .expect("start lb");
    Running {
        addr: lb.listener_addrs("test", "l").unwrap()[0],
        lb,
        plan,
        shutdown,
    }
}

/// Three greeting, echoing backends (`a`, `b`, `default`) and their pools.
async fn three() -> (Vec<Backend>, Vec<PoolSpec>) {
    let mut bs = Vec::new();
    let mut ps = Vec::new();
    for n in ["a", "b", "default"] {
        let b = Backend::start(Behaviour::Named(n.into())).await;
        ps.push(named_pool(n, b.addr));
        bs.push(b);
    }
    (bs, ps)
}

/// Waits until the connection is closed by the other side; true if it was (EOF or reset).
async fn closed(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(within, s.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn openssl_names_reach_their_pools_and_unknown_names_the_default() {
    let (bs, ps) = three().await;
    let lb = start(ps, sni_spec(Some("default"), Duration::from_secs(5)), false).await;
    let addr = lb.addr.to_string();
    let cases = [
        ("a.example", 0),
        ("A.EXAMPLE", 0),
        ("x.b.example", 1),
        ("y.b.example", 1),
        ("b.example", 2),     // the wildcard is for one label below
        ("z.y.b.example", 2), // ... and only one
        ("other.test", 2),
    ];
    for (i, (name, want)) in cases.iter().enumerate() {
        let before: Vec<usize> = bs.iter().map(Backend::count).collect();
        // the backend greets in plain text, which ends the handshake; only the routing matters
        let st = openssl()
            .args(["s_client", "-connect", &addr, "-servername", name])
            .status();
        let st = tokio::time::timeout(Duration::from_secs(10), st)
            .await
            .expect("s_client ends")
            .unwrap();
        assert!(!st.success(), "a greeting is not a ServerHello");
        let after: Vec<usize> = bs.iter().map(Backend::count).collect();
        for (j, (b, a)) in before.iter().zip(&after).enumerate() {
            assert_eq!(
                a - b,
                usize::from(j == *want),
                "case {i}: {name} -> backend {j}"
            );
        }
    }
}

/// The ClientHello, written 1 to 7 bytes at a time, is routed by its name, and the backend gets
/// exactly what the client sent (the hello, then 64 KiB), echoed back intact.
#[tokio::test]
async fn split_client_hellos_are_routed_and_arrive_byte_identical() {
    let (_bs, ps) = three().await;
    let lb = start(ps, sni_spec(None, Duration::from_secs(5)), false).await;
    for (name, want) in [("a.example", "a"), ("q.b.example", "b")] {
        let hello = captured_hello(name).await;
        let mut sent = hello.clone();
        let mut payload = vec![0u8; 64 * 1024];
        Gen::new(name.len() as u64).fill(&mut payload);
        sent.extend_from_slice(&payload);
        let mut c = TcpStream::connect(lb.addr).await.unwrap();
        c.set_nodelay(true).unwrap();
        let mut at = 0;
        let mut k = 0;
        while at < hello.len() {
            let n = (1 + k % 7).min(hello.len() - at);
            c.write_all(&hello[at..at + n]).await.unwrap();
            at += n;
            k += 1;
            if k % 16 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        assert!(k > 40, "the hello went out in {k} writes");
        assert_eq!(which_backend(&mut c).await.unwrap(), want);
        let (mut r, mut w) = c.into_split();
        let writer = tokio::spawn(async move {
            w.write_all(&payload).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut echoed = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut echoed))
            .await
            .expect("echo in time")
            .unwrap();
        writer.await.unwrap();
        assert!(
            echoed == sent,
            "{name}: the backend got other bytes than sent"
        );
    }
}

#[tokio::test]
async fn non_tls_malformed_and_truncated_hellos_close_without_a_default() {
    let (bs, ps) = three().await;
    let timeout = Duration::from_millis(300);
    let lb = start(ps, sni_spec(None, timeout), false).await;
    let hello = captured_hello("a.example").await;
    let unknown = captured_hello("nobody.test").await;
    let mut malformed = hello.clone();
    malformed[5] = 2; // a ServerHello
    for (what, bytes) in [
        (
            "plain HTTP",
            &b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"[..],
        ),
        ("a malformed hello", &malformed[..]),
        ("an unknown name", &unknown[..]),
    ] {
        let mut c = TcpStream::connect(lb.addr).await.unwrap();
        c.write_all(bytes).await.unwrap();
        let t0 = Instant::now();
        assert!(closed(&mut c, Duration::from_secs(5)).await, "{what}");
        assert!(
            t0.elapsed() < timeout,
            "{what}: closed at once, not after the wait"
        );
    }
    // half a hello: closed after the bounded wait, not before
    let mut c = TcpStream::connect(lb.addr).await.unwrap();
    c.write_all(&hello[..hello.len() / 2]).await.unwrap();
    let t0 = Instant::now();
    assert!(closed(&mut c, Duration::from_secs(5)).await);
    let waited = t0.elapsed();
    assert!(
        waited >= timeout - Duration::from_millis(20) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert!(
        bs.iter().all(|b| b.count() == 0),
        "no backend saw any of them"
    );
}

#[tokio::test]
async fn the_default_pool_takes_what_no_route_takes() {
    let (bs, ps) = three().await;
    let lb = start(
        ps,
        sni_spec(Some("default"), Duration::from_millis(300)),
        false,
    )
    .await;
    let hello = captured_hello("a.example").await;
    for (what, bytes) in [
        ("plain HTTP", &b"GET / HTTP/1.1\r\n\r\n"[..]),
        ("a truncated hello", &hello[..100]),
    ] {
        let mut c = TcpStream::connect(lb.addr).await.unwrap();
        c.write_all(bytes).await.unwrap();
        assert_eq!(which_backend(&mut c).await.unwrap(), "default", "{what}");
        let mut echoed = vec![0u8; bytes.len()];
        c.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, bytes, "{what}: the bytes were not consumed");
    }
    assert_eq!(bs[0].count() + bs[1].count(), 0);
}

/// A backend that reads one PROXY header and the ClientHello after it and reports both.
async fn proxy_capture() -> (SocketAddr, tokio::sync::mpsc::Receiver<(Vec<u8>, Vec<u8>)>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut b = [0u8; 1];
                let n = loop {
                    if let proxy::Parse::Complete(h) = proxy::parse(&buf) {
                        break h.len;
                    }
                    if s.read_exact(&mut b).await.is_err() {
                        return;
                    }
                    buf.push(b[0]);
                };
                let hello = read_hello(&mut s).await;
                let _ = tx.send((buf[..n].to_vec(), hello)).await;
            });
        }
    });
    (addr, rx)
}

/// TLVs of a v2 header (after the 12-byte IPv4 address block).
fn tlvs(hdr: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut t = &hdr[28..];
    while t.len() >= 3 {
        let n = u16::from_be_bytes([t[1], t[2]]) as usize;
        out.push((t[0], t[3..3 + n].to_vec()));
        t = &t[3 + n..];
    }
    out
}

#[tokio::test]
async fn proxy_in_then_sni_then_proxy_v2_out_with_tlvs() {
    let (baddr, mut rx) = proxy_capture().await;
    let mut pa = named_pool("a", baddr);
    pa.proxy_protocol = Some(ProxyVersion::V2);
    let mut pb = named_pool("b", baddr);
    pb.proxy_protocol = Some(ProxyVersion::V2);
    let mut sni = sni_spec(None, Duration::from_secs(5));
    sni.tlvs = true;
    let lb = start(vec![pa, pb], sni, true).await;
    let hello = captured_hello("A.example").await;
    let mut c = TcpStream::connect(lb.addr).await.unwrap();
    c.write_all(b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 443\r\n")
        .await
        .unwrap();
    c.write_all(&hello).await.unwrap();
    let (hdr, got) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got, hello,
        "the ClientHello arrives untouched after the header"
    );
    let proxy::Parse::Complete(h) = proxy::parse(&hdr) else {
        panic!("not a PROXY header: {hdr:?}")
    };
    assert_eq!(
        h.addrs,
        Some((
            "192.0.2.7:40000".parse().unwrap(),
            "198.51.100.1:443".parse().unwrap()
        ))
    );
    assert_eq!(
        tlvs(&hdr),
        [
            (proxy::PP2_TYPE_AUTHORITY, b"a.example".to_vec()),
            (proxy::PP2_TYPE_ALPN, b"\x00\x0c\x02h2\x08http/1.1".to_vec()),
        ]
    );
}

/// A reload that moves a name to another pool, and one that removes SNI routing, apply to new
/// connections without rebinding; the status shows the routes.
#[tokio::test]
async fn reload_changes_routes_in_place_and_status_shows_them() {
    let (_bs, ps) = three().await;
    let lb = start(ps, sni_spec(Some("default"), Duration::from_secs(5)), false).await;
    let st = lb.lb.status();
    let l = &st.listeners[0];
    assert_eq!(l.sni.len(), 2);
    assert_eq!(
        (l.sni[1].names.as_slice(), l.sni[1].pool.as_str()),
        (&["*.b.example".to_string()][..], "b")
    );
    assert_eq!(l.sni_default.as_deref(), Some("default"));
    let hello = captured_hello("a.example").await;
    let via = |hello: Vec<u8>| async move {
        let mut c = TcpStream::connect(lb.addr).await.unwrap();
        c.write_all(&hello).await.unwrap();
        which_backend(&mut c).await.unwrap()
    };
    assert_eq!(via(hello.clone()).await, "a");
    // a.example now goes to pool b
    let mut plan = lb.plan.clone();
    let sni = plan.listeners[0].sni.as_mut().unwrap();
    sni.routes[0].1 = ("test".into(), "b".into());
    let sum = lb.lb.reload_plan(plan.clone()).await.unwrap();
    assert_eq!((sum.listeners_bound, sum.listeners_updated), (0, 1));
    assert_eq!(via(hello.clone()).await, "b");
    // no SNI routing at all: the listener's pool takes everything, bytes untouched
    plan.listeners[0].sni = None;
    plan.listeners[0].pool = ("test".into(), "default".into());
    lb.lb.reload_plan(plan).await.unwrap();
    assert_eq!(via(hello).await, "default");
    assert!(lb.lb.status().listeners[0].sni.is_empty());
}
