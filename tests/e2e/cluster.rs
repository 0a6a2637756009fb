//! Several real `switchyard` processes sharing one world through a real etcd (started by the
//! test on a free loopback port; see `switchyard_cluster::testing`). Without `etcd` installed
//! these tests fail and say how to install it (`scripts/test` does).
//!
//! Layout: the shared helpers live here (the cluster world, `config push`, `/status` polling,
//! DNS queries, region and DNS nodes, `switchyard register`); the tests are grouped by theme in
//! `config_push` (pushing worlds, etcd unreachable), `registry` (instances and pool members
//! joining and leaving with their leases), `region_health` (region failover through the shared
//! GSLB view) and `admin_actions` (admin levers obeyed cluster-wide).

mod admin_actions;
mod config_push;
mod region_health;
mod registry;

use crate::harness::{bin, http, poll_until, Node};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use switchyard_cluster::testing::Etcd;

const AUTH: &str = "Authorization: Bearer demo-admin-token";
const TTL: Duration = Duration::from_secs(2);
/// The GSLB probe the cluster worlds use: TCP every 300 ms, down after 2 failures.
const PROBE: &str = "probe_port = 8080\n  probe = { type = \"tcp\", interval = \"300ms\", timeout = \"200ms\", rise = 2, fall = 2 }";
const PROBE_FALL: Duration = Duration::from_millis(600);

/// The demo world on `127.{net}.x.y` with a quick GSLB probe.
fn world(net: u8) -> String {
    switchyard_config::demo_toml_on(net).replace("probe_port = 8080", PROBE)
}

/// `switchyard config push FILE --to URL`: the revision it reports.
fn push(file: &std::path::Path, url: &str) -> i64 {
    let out = Command::new(bin())
        .args(["config", "push"])
        .arg(file)
        .args(["--to", url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "push failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no revision in {stdout:?}"))
}

/// Writes `text` to `key` directly (no check): how a bad world could still reach etcd.
fn put_raw(etcd: &Etcd, key: &str, text: &str) -> i64 {
    let c = switchyard_cluster::Client::new(&etcd.endpoint.to_string());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(c.put(key, text.as_bytes(), None))
        .unwrap()
}

fn status(admin: SocketAddr) -> Value {
    let r = http(admin, "GET", "/status", &[], "").unwrap();
    assert_eq!(r.status, 200);
    r.json()
}

/// Polls `/status` until `f` holds; panics with the last document otherwise.
fn wait_status(admin: SocketAddr, within: Duration, what: &str, f: impl Fn(&Value) -> bool) {
    let mut last = Value::Null;
    if poll_until(within, || {
        last = http(admin, "GET", "/status", &[], "")
            .map(|r| r.json())
            .unwrap_or(Value::Null);
        f(&last)
    })
    .is_err()
    {
        panic!(
            "{admin}: {what}: not within {within:?}; etcd block: {}",
            last["etcd"]
        );
    }
}

fn dig_a(server: SocketAddr, ecs: &str) -> Vec<IpAddr> {
    let mut m = Message::query();
    m.metadata.id = 77;
    m.add_query(Query::query(
        Name::from_ascii("api.example.test.").unwrap(),
        RecordType::A,
    ));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
        ecs.parse().unwrap(),
        29,
        0,
    )));
    m.set_edns(e);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.send_to(&m.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).expect("DNS answer");
    Message::from_vec(&buf[..n])
        .unwrap()
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect()
}

/// A US client (MaxMind test data: 216.160.83.56 is in the US).
const US: &str = "216.160.83.56";

fn ip(s: &str) -> Vec<IpAddr> {
    vec![s.parse().unwrap()]
}

fn region_node(url: &str, region: &str, admin: SocketAddr) -> Node {
    Node::start(&[
        "--config",
        url,
        "--region",
        region,
        "--only",
        "lb,gateway,services,admin",
        "--admin-listen",
        &admin.to_string(),
    ])
}

fn dns_node(url: &str, admin: SocketAddr, dns: SocketAddr) -> Node {
    Node::start(&[
        "--config",
        url,
        "--only",
        "dns,admin",
        "--admin-listen",
        &admin.to_string(),
        "--dns-listen",
        &dns.to_string(),
    ])
}

/// Starts `switchyard register ...` and waits for its `registered` line.
fn register(args: &[&str]) -> Child {
    let mut child = Command::new(bin())
        .arg("register")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = BufReader::new(out).read_line(&mut first);
        let _ = tx.send(first);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("register said nothing");
    assert!(line.starts_with("registered user-extra"), "{line}");
    child
}

/// `switchyard register` for the instance `user-extra` of service `user` in us-east-a.
pub fn register_user_extra(addr: SocketAddr, etcd: &str) -> Child {
    register(&[
        "--service",
        "user",
        "--addr",
        &addr.to_string(),
        "--region",
        "us-east",
        "--az",
        "us-east-a",
        "--name",
        "user-extra",
        "--etcd",
        etcd,
    ])
}
