//! The upstream connection pool: keep-alive connections to an instance are reused, a pooled
//! connection the instance closed costs no failed request, and a request that came without a
//! `Host` reaches the instance with one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::harness::*;

/// A raw HTTP/1.1 instance: counts connections, records each request head, answers `ok`
/// (keep-alive); with `close_after_reply` it closes each connection after its first answer
/// without saying so, as an instance whose idle timeout fired does.
struct Instance {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Connections the gateway closed.
    closed: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    KeepAlive,
    /// Close each connection after its first answer.
    CloseAfterReply,
    /// Answer `abcdef` in two halves, `Duration` apart.
    SlowBody(Duration),
}

async fn instance(b: Behaviour) -> Instance {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let (a, c, h) = (accepted.clone(), closed.clone(), heads.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let (c, h) = (c.clone(), h.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(head) = read_head(&mut s, &mut buf).await else {
                        c.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    h.lock().unwrap().push(head);
                    let ok = match b {
                        Behaviour::SlowBody(gap) => {
                            let head = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nabc";
                            let first = s.write_all(head).await;
                            tokio::time::sleep(gap).await;
                            first.is_ok() && s.write_all(b"def").await.is_ok()
                        }
                        _ => {
                            let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            s.write_all(reply).await.is_ok()
                        }
                    };
                    if !ok || b == Behaviour::CloseAfterReply {
                        return;
                    }
                }
            });
        }
    });
    Instance {
        addr,
        accepted,
        closed,
        heads,
    }
}

async fn gateway_to(inst: &Instance) -> (Gw, String) {
    gateway_idle(inst, Duration::from_secs(30)).await
}

async fn gateway_idle(inst: &Instance, idle: Duration) -> (Gw, String) {
    let mut spec = base_spec();
    spec.upstream.pool_idle_timeout = idle;
    spec.services.push(service("svc", &[(inst.addr, "a")]));
    spec.routes
        .push(route("api", "/api", true, "svc", roles_any(&["customer"])));
    (gateway(spec).await, token("alice", &["customer"]))
}

/// A keep-alive client connection to the gateway with a token.
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
    token: String,
}

impl Client {
    async fn open(gw: &Gw, token: String) -> Client {
        Client {
            s: TcpStream::connect(gw.addr).await.unwrap(),
            buf: Vec::new(),
            token,
        }
    }

    /// `GET /api/{i}` on the connection: the status and body.
    async fn get(&mut self, i: usize) -> (u16, String) {
        let req = format!(
            "GET /api/{i} HTTP/1.1\r\nHost: api.example.test\r\nAuthorization: Bearer {}\r\n\r\n",
            self.token
        );
        self.s.write_all(req.as_bytes()).await.unwrap();
        read_one(&mut self.s, &mut self.buf).await
    }
}

#[tokio::test]
async fn keep_alive_requests_reuse_one_instance_connection() {
    let inst = instance(Behaviour::KeepAlive).await;
    let (gw, t) = gateway_to(&inst).await;
    let mut c = Client::open(&gw, t).await;
    for i in 0..20 {
        assert_eq!(c.get(i).await, (200, "ok".to_string()));
    }
    // one client connection lives on one worker: its requests share one pooled connection
    assert_eq!(inst.accepted.load(Ordering::SeqCst), 1);
    let heads = inst.heads.lock().unwrap();
    assert_eq!(heads.len(), 20);
    assert!(
        heads[19].starts_with("GET /api/19 HTTP/1.1\r\n"),
        "{}",
        heads[19]
    );
}

#[tokio::test]
async fn a_pooled_connection_the_instance_closed_costs_no_failed_request() {
    let inst = instance(Behaviour::CloseAfterReply).await;
    let (gw, t) = gateway_to(&inst).await;
    let mut c = Client::open(&gw, t).await;
    for i in 0..10 {
        assert_eq!(c.get(i).await, (200, "ok".to_string()), "request {i}");
    }
    // a closed pooled connection is skipped, or (when the request raced the close) the request
    // goes again on a new connection: either way one connection per answer, no failure
    assert_eq!(inst.heads.lock().unwrap().len(), 10);
    assert_eq!(inst.accepted.load(Ordering::SeqCst), 10);
}

#[tokio::test]
async fn a_request_without_host_reaches_the_instance_with_its_address() {
    let inst = instance(Behaviour::KeepAlive).await;
    let (gw, t) = gateway_to(&inst).await;
    let mut c = TcpStream::connect(gw.addr).await.unwrap();
    let req = format!("GET /api/x HTTP/1.0\r\nAuthorization: Bearer {t}\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_one(&mut c, &mut buf).await, (200, "ok".to_string()));
    let heads = inst.heads.lock().unwrap();
    let host = heads[0]
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string);
    assert_eq!(host, Some(inst.addr.to_string()), "{}", heads[0]);
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let inst = instance(Behaviour::KeepAlive).await;
    let (gw, t) = gateway_idle(&inst, Duration::from_millis(150)).await;
    let r = get_auth(gw.addr, "/api/x", &t).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(inst.accepted.load(Ordering::SeqCst), 1);
    // nothing else is sent: the gateway's sweeper closes the connection by itself
    let closed = switchyard_testkit::eventually(Duration::from_secs(5), || async {
        inst.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    assert!(closed.is_some(), "the idle connection was not closed");
}

#[tokio::test]
async fn an_answer_streaming_longer_than_the_idle_timeout_is_not_cut() {
    let inst = instance(Behaviour::SlowBody(Duration::from_millis(600))).await;
    let (gw, t) = gateway_idle(&inst, Duration::from_millis(100)).await;
    let r = get_auth(gw.addr, "/api/x", &t).await;
    assert_eq!((r.status, r.body.as_str()), (200, "abcdef"), "{r:?}");
}
