//! `switchyard bench` against servers whose answers and timing are known: an HTTP server that
//! answers after exactly 10 ms (percentiles and rates right within tolerance, closed and open
//! loop), one that stalls for 1 s once (the open loop reports the queueing the closed loop
//! hides), a DNS server answering after 5 ms (and NXDOMAIN for an unknown name), the chain
//! honouring the TTL, raw L4 connections, an open loop against a server that never answers
//! (bounded in time, what it never sent counted), errors by kind, and `compare`. Real sockets on
//! 127.0.0.1, port 0.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_bench::http::{HttpSpec, HttpWorker};
use switchyard_bench::load::{Mode, Plan};
use switchyard_bench::report::{compare, Report};
use switchyard_bench::{chain, dns, measure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::time::Instant;

/// How the test HTTP server behaves.
#[derive(Clone)]
struct Behaviour {
    delay: Duration,
    status: u16,
    /// Stall every answer until this long after request number `n` arrived (once).
    stall: Option<(u64, Duration)>,
}

/// An HTTP/1.1 server on 127.0.0.1:0: keep-alive, answers after `delay`.
async fn http_server(b: Behaviour) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let stall_until: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let (b, count, stall_until) = (b.clone(), count.clone(), stall_until.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut have = 0;
                loop {
                    let end = loop {
                        if let Some(p) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                        match s.read(&mut buf[have..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => have += n,
                        }
                    };
                    let close = String::from_utf8_lossy(&buf[..end])
                        .to_ascii_lowercase()
                        .contains("connection: close");
                    buf.copy_within(end..have, 0);
                    have -= end;
                    let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                    let until = {
                        let mut st = stall_until.lock().unwrap();
                        if let Some((at, d)) = b.stall {
                            if n == at {
                                *st = Some(Instant::now() + d);
                            }
                        }
                        *st
                    };
                    if let Some(u) = until {
                        tokio::time::sleep_until(u).await;
                    }
                    tokio::time::sleep(b.delay).await;
                    let resp = format!(
                        "HTTP/1.1 {} X\r\nContent-Length: 2\r\n{}\r\nok",
                        b.status,
                        if close { "Connection: close\r\n" } else { "" }
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A UDP DNS server on 127.0.0.1:0: `api.test.` A 127.0.0.1 (TTL `ttl`) after `delay`, NXDOMAIN
/// for anything else. Counts queries.
async fn dns_server(delay: Duration, ttl: u32) -> (SocketAddr, Arc<AtomicU64>) {
    let s = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = s.local_addr().unwrap();
    let queries = Arc::new(AtomicU64::new(0));
    let q2 = queries.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            q2.fetch_add(1, Ordering::Relaxed);
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let s = s.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let mut m = Message::response(q.metadata.id, OpCode::Query);
                m.metadata.message_type = MessageType::Response;
                let name = q.queries[0].name().clone();
                m.add_query(q.queries[0].clone());
                if name.to_ascii() == "api.test." {
                    m.add_answer(Record::from_rdata(
                        name,
                        ttl,
                        RData::A(A::new(127, 0, 0, 1)),
                    ));
                } else {
                    m.metadata.response_code = ResponseCode::NXDomain;
                }
                let _ = s.send_to(&m.to_vec().unwrap(), from).await;
            });
        }
    });
    (addr, queries)
}

fn plan(mode: Mode, connections: usize, secs: f64) -> Plan {
    Plan {
        mode,
        connections,
        duration: Duration::from_secs_f64(secs),
        max_requests: None,
        grace: Duration::from_secs(3),
    }
}

fn spec(addr: SocketAddr, keepalive: bool) -> Arc<HttpSpec> {
    Arc::new(
        HttpSpec::new(
            &addr.to_string(),
            &["/a".to_string(), "/b".to_string()],
            &["t0".to_string()],
            keepalive,
            Duration::from_secs(5),
        )
        .unwrap(),
    )
}

async fn http_run(addr: SocketAddr, p: &Plan, keepalive: bool) -> Report {
    let s = spec(addr, keepalive);
    measure(
        "http",
        addr.to_string(),
        p,
        |i| HttpWorker::new(addr, s.clone(), i),
        false,
    )
    .await
}

fn within(v: f64, lo: f64, hi: f64, what: &str) {
    assert!(lo <= v && v <= hi, "{what} = {v}, expected {lo}..={hi}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_measures_a_10ms_server() {
    let addr = http_server(Behaviour {
        delay: Duration::from_millis(10),
        status: 200,
        stall: None,
    })
    .await;
    let r = http_run(addr, &plan(Mode::Closed, 4, 1.5), true).await;
    assert_eq!(r.requests, r.ok, "{:?}", r.errors);
    // the median is robust even on a busy machine; the tail is not asserted (a shared CPU adds
    // scheduling delays there), only its order
    within(r.latency.p50_ms, 10.0, 20.0, "p50");
    assert!(r.latency.p90_ms >= r.latency.p50_ms);
    assert!(r.latency.max_ms >= r.latency.p99_ms);
    // at most 4 connections / 10 ms; and the rate agrees with the latency (Little's law:
    // 4 requests in flight / mean latency)
    let little = 4.0 / (r.latency.mean_ms / 1000.0);
    within(
        r.throughput,
        0.8 * little,
        (1.1 * little).min(4.0 / 0.010),
        "throughput",
    );
    // keep-alive: one connect per connection
    assert_eq!(r.phases["connect"].count, 4);
    assert_eq!(r.phases["ttfb"].count, r.ok);
    let sum: u64 = r.timeline.iter().map(|s| s.ok).sum();
    assert_eq!(sum, r.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_the_rate_and_counts_every_due_request() {
    let addr = http_server(Behaviour {
        delay: Duration::from_millis(10),
        status: 200,
        stall: None,
    })
    .await;
    let r = http_run(addr, &plan(Mode::Open { rate: 100.0 }, 8, 2.0), true).await;
    assert_eq!((r.requests, r.ok), (200, 200), "{:?}", r.errors);
    // the schedule itself: 100 requests due in each second (by due time, whatever the load)
    let per_second: Vec<u64> = r.timeline.iter().map(|s| s.ok + s.errors).collect();
    assert_eq!(per_second, [100, 100]);
    // and the rate achieved over the wall time (a busy machine stretches the tail a little)
    within(r.throughput, 60.0, 105.0, "throughput");
    // measured from when each was due: a late timer wake-up on a busy machine counts too
    within(r.latency.p50_ms, 10.0, 30.0, "p50");
    assert_eq!(r.mode, "open");
    assert_eq!(r.rate, Some(100.0));
    // a new connection per request: every request connected
    let r = http_run(addr, &plan(Mode::Open { rate: 50.0 }, 4, 1.0), false).await;
    assert_eq!((r.requests, r.ok), (50, 50), "{:?}", r.errors);
    assert_eq!(r.phases["connect"].count, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_reports_the_stall_that_closed_loop_hides() {
    let stall = |at| Behaviour {
        delay: Duration::from_millis(10),
        status: 200,
        stall: Some((at, Duration::from_secs(1))),
    };
    // closed loop: the stall holds 4 requests; every other one looks fast
    let addr = http_server(stall(100)).await;
    let closed = http_run(addr, &plan(Mode::Closed, 4, 2.5), true).await;
    // open loop: every request due during the stall waits for it
    let addr = http_server(stall(25)).await;
    let open = http_run(addr, &plan(Mode::Open { rate: 50.0 }, 4, 2.5), true).await;
    assert!(closed.errors.is_empty() && open.errors.is_empty());
    assert!(closed.latency.max_ms >= 950.0, "{:?}", closed.latency);
    assert!(open.latency.max_ms >= 950.0, "{:?}", open.latency);
    assert!(
        closed.latency.p90_ms < 400.0,
        "closed loop: {:?}",
        closed.latency
    );
    // ~50 of 125 requests were due during the stall: latencies spread up to 1 s
    // (the ones due in its first quarter waited 750 ms or more: p90 is among them)
    assert!(open.latency.p90_ms > 400.0, "open loop: {:?}", open.latency);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_latency_and_errors_by_kind() {
    let (server, _) = dns_server(Duration::from_millis(5), 60).await;
    let q = |name: &str| {
        dns::encode(&dns::Question {
            name: name.into(),
            qtype: hickory_proto::rr::RecordType::A,
            ecs: Some("81.2.69.160/27".parse().unwrap()),
        })
        .unwrap()
    };
    let queries = Arc::new(vec![q("api.test.")]);
    let p = plan(Mode::Closed, 2, 1.0);
    let r = measure(
        "dns",
        server.to_string(),
        &p,
        |i| {
            dns::DnsWorker::new(
                server,
                dns::Transport::Udp,
                queries.clone(),
                i,
                Duration::from_secs(2),
            )
        },
        false,
    )
    .await;
    assert_eq!(r.requests, r.ok, "{:?}", r.errors);
    within(r.latency.p50_ms, 5.0, 15.0, "p50");
    let little = 2.0 / (r.latency.mean_ms / 1000.0);
    within(
        r.throughput,
        0.8 * little,
        (1.1 * little).min(2.0 / 0.005),
        "throughput",
    );
    // half the queries ask for a name that does not exist
    let queries = Arc::new(vec![q("api.test."), q("missing.test.")]);
    let r = measure(
        "dns",
        server.to_string(),
        &Plan {
            max_requests: Some(40),
            ..plan(Mode::Closed, 1, 5.0)
        },
        |i| {
            dns::DnsWorker::new(
                server,
                dns::Transport::Udp,
                queries.clone(),
                i,
                Duration::from_secs(2),
            )
        },
        false,
    )
    .await;
    assert_eq!(r.requests, 40);
    assert_eq!(r.ok, 20);
    assert_eq!(r.errors.get("dns nxdomain"), Some(&20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_resolves_once_per_ttl_and_splits_the_time() {
    let (dns_addr, queries) = dns_server(Duration::from_millis(2), 1).await;
    let web = http_server(Behaviour {
        delay: Duration::from_millis(10),
        status: 200,
        stall: None,
    })
    .await;
    let query = Arc::new(
        dns::encode(&dns::Question {
            name: "api.test.".into(),
            qtype: hickory_proto::rr::RecordType::A,
            ecs: None,
        })
        .unwrap(),
    );
    let s = spec(web, true);
    let r = measure(
        "chain",
        "api.test.".into(),
        &plan(Mode::Closed, 2, 2.5),
        |i| chain::ChainWorker::new(dns_addr, query.clone(), web.port(), s.clone(), i),
        false,
    )
    .await;
    assert_eq!(r.requests, r.ok, "{:?}", r.errors);
    assert!(r.ok > 100, "{}", r.ok);
    // TTL 1 s over 2.5 s: each of 2 clients resolves 3 times (at 0, ~1 and ~2 s)
    let resolved = r.phases["dns"].count;
    within(resolved as f64, 4.0, 8.0, "resolutions");
    assert_eq!(queries.load(Ordering::Relaxed), resolved);
    // the address never changed: one connection per client
    assert_eq!(r.phases["connect"].count, 2);
    assert_eq!(r.phases["ttfb"].count, r.ok);
    within(r.phases["ttfb"].p50_ms, 10.0, 20.0, "ttfb p50");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_errors_are_counted_by_kind_and_reports_compare() {
    let bad = http_server(Behaviour {
        delay: Duration::from_millis(1),
        status: 503,
        stall: None,
    })
    .await;
    let p = Plan {
        max_requests: Some(30),
        ..plan(Mode::Closed, 3, 5.0)
    };
    let r = http_run(bad, &p, true).await;
    assert_eq!(r.requests, 30);
    assert_eq!(r.ok, 0);
    assert_eq!(r.errors.get("http 503"), Some(&30));
    let text = r.render();
    assert!(text.contains("http 503"), "{text}");
    // the same over a new connection per request (written raw, read until close)
    let r = http_run(bad, &p, false).await;
    assert_eq!(r.errors.get("http 503"), Some(&30), "{:?}", r.errors);
    // a connection refused is its own kind
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let r2 = http_run(gone, &p, true).await;
    assert_eq!(r2.errors.get("connect refused"), Some(&30));

    let good = http_server(Behaviour {
        delay: Duration::from_millis(10),
        status: 200,
        stall: None,
    })
    .await;
    let a = http_run(good, &plan(Mode::Open { rate: 40.0 }, 2, 0.5), true).await;
    let json = serde_json::to_string(&a).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back.ok, a.ok);
    let mut b = back.clone();
    b.throughput = a.throughput * 2.0;
    let c = compare(&a, &b);
    assert!(c.contains("throughput/s"), "{c}");
    assert!(
        c.lines()
            .any(|l| l.contains("throughput/s") && l.ends_with("2.00x")),
        "{c}"
    );
    let svg = switchyard_bench::svg::render(&a);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l4_connects_sends_and_reads_until_close() {
    let addr = http_server(Behaviour {
        delay: Duration::from_millis(2),
        status: 200,
        stall: None,
    })
    .await;
    let payload = Arc::new(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec());
    let p = Plan {
        max_requests: Some(60),
        ..plan(Mode::Closed, 3, 5.0)
    };
    let r = measure(
        "l4",
        addr.to_string(),
        &p,
        |_| switchyard_bench::http::L4Worker::new(addr, payload.clone(), Duration::from_secs(2)),
        false,
    )
    .await;
    assert_eq!((r.requests, r.ok), (60, 60), "{:?}", r.errors);
    assert_eq!(r.phases["connect"].count, 60);
    within(r.phases["ttfb"].p50_ms, 2.0, 15.0, "ttfb p50");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_against_a_dead_server_ends_on_time_and_counts_what_it_never_sent() {
    // accepts, never answers
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let s = Arc::new(
        HttpSpec::new(
            &addr.to_string(),
            &["/".to_string()],
            &[],
            true,
            Duration::from_millis(1500),
        )
        .unwrap(),
    );
    let p = Plan {
        grace: Duration::from_millis(500),
        ..plan(Mode::Open { rate: 20.0 }, 1, 1.0)
    };
    let t0 = Instant::now();
    let r = measure(
        "http",
        addr.to_string(),
        &p,
        |i| HttpWorker::new(addr, s.clone(), i),
        false,
    )
    .await;
    // the one request in flight times out at 1.5 s, past the cutoff (1 s + 0.5 s grace)
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(r.requests, 20);
    assert_eq!(r.ok, 0);
    assert_eq!(r.errors.get("timeout"), Some(&1), "{:?}", r.errors);
    assert_eq!(
        r.errors.get("not sent in time"),
        Some(&19),
        "{:?}",
        r.errors
    );
}

/// A TLS server on 127.0.0.1:0 (rustls, a self-signed certificate for `bench.test`, rustls'
/// default stateful resumption) answering every request with `200 ok` and a close; the PEM of its
/// certificate.
async fn tls_server() -> (SocketAddr, String) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ck = rcgen::generate_simple_self_signed(vec!["bench.test".to_string()]).unwrap();
    let pem = ck.cert.pem();
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(s).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let mut have = 0;
                while !buf[..have].windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf[have..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => have += n,
                    }
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_counts_full_and_resumed_handshakes_and_refuses_an_unknown_ca() {
    use switchyard_bench::tls::{client_config, TlsWorker, Verify};
    let (addr, pem) = tls_server().await;
    let ca = std::env::temp_dir().join(format!("bench-tls-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, &pem).unwrap();
    let name = rustls::pki_types::ServerName::try_from("bench.test").unwrap();
    let req = Arc::new(b"GET / HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n".to_vec());
    let run = |resume: bool, verify: Verify<'_>| {
        let cfg = client_config(verify, resume).unwrap();
        let (name, req) = (name.clone(), req.clone());
        let p = Plan {
            max_requests: Some(20),
            ..plan(Mode::Closed, 1, 10.0)
        };
        async move {
            measure(
                "tls",
                addr.to_string(),
                &p,
                |_| {
                    TlsWorker::new(
                        addr,
                        name.clone(),
                        cfg.clone(),
                        req.clone(),
                        Duration::from_secs(5),
                    )
                },
                false,
            )
            .await
        }
    };
    let full = run(false, Verify::Ca(&ca)).await;
    assert_eq!((full.ok, full.requests), (20, 20), "{:?}", full.errors);
    assert_eq!(full.tls_resumed, Some(0));
    for phase in ["connect", "tls", "ttfb"] {
        assert!(full.phases.contains_key(phase), "{phase} missing");
    }
    assert!(full.render().contains("TLS handshakes: 20 full, 0 resumed"));
    // one worker: the first handshake is full, every later one resumes
    let resumed = run(true, Verify::Ca(&ca)).await;
    assert_eq!(resumed.ok, 20, "{:?}", resumed.errors);
    assert_eq!(resumed.tls_resumed, Some(19));
    // a CA that did not sign the server's certificate: every request fails as such
    let other = rcgen::generate_simple_self_signed(vec!["bench.test".to_string()]).unwrap();
    let wrong = std::env::temp_dir().join(format!("bench-tls-wrong-{}.pem", std::process::id()));
    std::fs::write(&wrong, other.cert.pem()).unwrap();
    let refused = run(false, Verify::Ca(&wrong)).await;
    assert_eq!(refused.ok, 0);
    assert_eq!(refused.errors.get("tls bad certificate"), Some(&20));
    // --insecure accepts it
    let insecure = run(false, Verify::Insecure).await;
    assert_eq!(insecure.ok, 20, "{:?}", insecure.errors);
    let _ = std::fs::remove_file(&ca);
    let _ = std::fs::remove_file(&wrong);
}
