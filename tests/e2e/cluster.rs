//! Several real `switchyard` processes sharing one world through a real etcd (started by the
//! test on a free loopback port; see `switchyard_cluster::testing`). Without `etcd` installed
//! these tests fail and say how to install it (`scripts/test` does).

use crate::harness::{addr, bin, http, poll_until, Node, TempDir};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_cluster::testing::{Etcd, Proxy};

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

#[test]
fn a_pushed_world_reaches_every_node_and_a_bad_one_is_rejected_by_every_node() {
    let etcd = Etcd::start("e2e-push");
    let dir = TempDir::new("cluster-push");
    let file = dir.write("world.toml", &world(100));
    let url = etcd.url("/switchyard/world");
    let rev1 = push(&file, &url);
    let (a1, a2) = (addr(100, "0.1:9901"), addr(100, "0.2:9901"));
    let n1 = region_node(&format!("{url}?node=east&ttl=2s"), "us-east", a1);
    let n2 = region_node(&format!("{url}?node=west&ttl=2s"), "eu-west", a2);
    for a in [a1, a2] {
        let e = &status(a)["etcd"];
        assert_eq!(e["revision"], rev1, "{e}");
        assert_eq!(e["state"], "connected");
    }
    // A new world (an AZ weight changes): every node switches to its revision.
    let changed = world(100).replacen(
        "  [[regions.azs]]\n  name = \"us-east-a\"\n",
        "  [[regions.azs]]\n  name = \"us-east-a\"\n  weight = 3\n",
        1,
    );
    assert_ne!(changed, world(100));
    let file2 = dir.write("world2.toml", &changed);
    let t0 = Instant::now();
    let rev2 = push(&file2, &url);
    assert!(rev2 > rev1);
    for a in [a1, a2] {
        wait_status(
            a,
            Duration::from_secs(5),
            "switch to the new revision",
            |s| s["etcd"]["revision"] == rev2 && s["regions"][0]["azs"][0]["weight"] == 3,
        );
    }
    eprintln!(
        "both nodes run revision {rev2} {:?} after `config push` started",
        t0.elapsed()
    );
    // Any node's status says which revision every node runs.
    let every_node_runs = |rev: i64| {
        move |s: &Value| {
            let mut nodes: Vec<(String, i64)> = s["etcd"]["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| {
                    (
                        n["node"].as_str().unwrap_or("").to_string(),
                        n["revision"].as_i64().unwrap_or(0),
                    )
                })
                .collect();
            nodes.sort();
            nodes == [("east".to_string(), rev), ("west".to_string(), rev)]
        }
    };
    wait_status(
        a1,
        Duration::from_secs(3),
        "both nodes listed at rev2",
        every_node_runs(rev2),
    );
    // `config push` refuses an invalid file (exit 2, every error) and etcd keeps the world.
    let bad_text = changed.replace("failover = [\"eu-west\"]", "failover = [\"mars\"]");
    let bad = dir.write("bad.toml", &bad_text);
    let out = Command::new(bin())
        .args(["config", "push"])
        .arg(&bad)
        .args(["--to", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("regions[0].failover[0]") && err.contains("mars"),
        "{err}"
    );
    // Written past the check: every node rejects it, logs why, and keeps running rev2.
    let rev3 = put_raw(&etcd, "/switchyard/world", &bad_text);
    for (a, n) in [(a1, &n1), (a2, &n2)] {
        wait_status(a, Duration::from_secs(5), "bad revision rejected", |s| {
            s["etcd"]["rejected_revision"] == rev3
        });
        let e = &status(a)["etcd"];
        assert_eq!(e["revision"], rev2, "{e}");
        assert_eq!(e["latest_revision"], rev3, "{e}");
        n.wait_stderr(
            "reload rejected: the running configuration is unchanged",
            Duration::from_secs(2),
        );
        assert!(
            n.stderr().contains("mars"),
            "the error is logged:\n{}",
            n.stderr()
        );
    }
    wait_status(
        a2,
        Duration::from_secs(3),
        "both nodes still at rev2",
        every_node_runs(rev2),
    );
    // The registry keeps working on top of the last good world.
    let mut reg = register(&[
        "--service",
        "user",
        "--addr",
        "127.100.5.1:7001",
        "--region",
        "us-east",
        "--az",
        "us-east-a",
        "--name",
        "user-extra",
        "--etcd",
        &url,
    ]);
    wait_status(
        a1,
        Duration::from_secs(5),
        "registration applied on rev2",
        |s| {
            s["etcd"]["registered_instances"] == serde_json::json!(["user-extra"])
                && s["etcd"]["revision"] == rev2
                && s["regions"][0]["azs"][0]["weight"] == 3
        },
    );
    reg.kill().unwrap();
    let _ = reg.wait();
    // The nodes still serve (a demo service of each region answers).
    assert_eq!(
        http(addr(100, "11.1:7001"), "GET", "/v1/users/a", &[], "")
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        http(addr(100, "12.1:7001"), "GET", "/v1/users/a", &[], "")
            .unwrap()
            .status,
        200
    );
    // A good world after the bad one applies again.
    let rev4 = push(&file, &url);
    for a in [a1, a2] {
        wait_status(
            a,
            Duration::from_secs(5),
            "recover with a good revision",
            |s| s["etcd"]["revision"] == rev4 && s["regions"][0]["azs"][0]["weight"] == 1,
        );
    }
}

#[test]
fn etcd_unreachable_at_start_is_a_clear_error_and_later_the_node_keeps_serving() {
    // Nothing listens on this port.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("etcd://127.0.0.1:{port}/switchyard/world");
    let out = Command::new(bin())
        .args(["run", "--config", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot read the world from {url}")) && err.contains("unreachable"),
        "{err}"
    );

    let mut etcd = Etcd::start("e2e-down");
    let url = etcd.url("/switchyard/world");
    // An etcd without a world: also a clear error.
    let out = Command::new(bin())
        .args(["run", "--config", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("holds no world; publish one with `switchyard config push"));

    let dir = TempDir::new("cluster-down");
    let rev = push(&dir.write("world.toml", &world(101)), &url);
    let admin = addr(101, "0.1:9901");
    let node = Node::start(&["--config", &format!("{url}?node=solo&ttl=2s")]);
    assert_eq!(status(admin)["etcd"]["revision"], rev);
    etcd.kill();
    wait_status(admin, Duration::from_secs(4), "report the lost link", |s| {
        s["etcd"]["state"]
            .as_str()
            .is_some_and(|t| t.starts_with("disconnected since "))
            && s["etcd"]["connected"] == false
    });
    let metric = |line: &str| {
        poll_until(Duration::from_secs(2), || {
            http(admin, "GET", "/metrics", &[], "").is_ok_and(|r| r.body.lines().any(|l| l == line))
        })
        .is_ok()
    };
    assert!(
        metric("switchyard_etcd_connected 0"),
        "metrics say disconnected"
    );
    assert!(metric(&format!("switchyard_etcd_world_revision {rev}")));
    // Still serving the last good world: a demo service and DNS answer.
    assert_eq!(
        http(addr(101, "11.1:7001"), "GET", "/v1/users/a", &[], "")
            .unwrap()
            .status,
        200
    );
    assert_eq!(dig_a(addr(101, "0.1:8053"), US), ip("127.101.1.1"));
    assert_eq!(status(admin)["etcd"]["revision"], rev);
    // etcd back: reconnected (retrying with back-off), same revision.
    etcd.restart();
    wait_status(admin, Duration::from_secs(6), "reconnect", |s| {
        s["etcd"]["state"] == "connected" && s["etcd"]["revision"] == rev
    });
    node.wait_stderr("etcd: connected again", Duration::from_secs(5));
    assert!(
        metric("switchyard_etcd_connected 1"),
        "metrics say connected"
    );
}

/// A stand-in service instance: answers every request with its identity (JSON), `/healthz` too.
struct FakeInstance {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl FakeInstance {
    fn start(addr: SocketAddr, name: &str) -> FakeInstance {
        let l = TcpListener::bind(addr).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, body) = (
            stop.clone(),
            format!("{{\"service\":\"user\",\"instance\":\"{name}\",\"region\":\"us-east\",\"az\":\"us-east-a\"}}"),
        );
        std::thread::spawn(move || {
            for c in l.incoming() {
                if s.load(Ordering::Acquire) {
                    break;
                }
                let Ok(mut c) = c else { continue };
                let body = body.clone();
                std::thread::spawn(move || {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut r = BufReader::new(c.try_clone().unwrap());
                    loop {
                        // One request head (bodies are not expected: GETs only).
                        let mut line = String::new();
                        let mut first = true;
                        let mut close = false;
                        loop {
                            line.clear();
                            if r.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" && !first {
                                break;
                            }
                            first = false;
                            close |= line.to_ascii_lowercase().starts_with("connection: close");
                        }
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if c.write_all(resp.as_bytes()).is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        FakeInstance { stop, addr }
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

fn token() -> String {
    let out = Command::new(bin())
        .args(["token", "--sub", "alice", "--roles", "customer"])
        .output()
        .unwrap();
    assert!(out.status.success());
    format!(
        "Authorization: Bearer {}",
        String::from_utf8(out.stdout).unwrap().trim()
    )
}

/// Starts `switchyard register ...` and waits for its `registered` line.
/// Of 40 GETs of `path` through `vip` (each must answer 200), how many `instance` served.
fn served_by(vip: SocketAddr, path: &str, headers: &[&str], instance: &str) -> usize {
    (0..40)
        .filter(|_| {
            let r = http(vip, "GET", path, headers, "").unwrap();
            assert_eq!(r.status, 200, "{}", r.body);
            r.json()["instance"] == instance
        })
        .count()
}

/// `switchyard register` for the instance `user-extra` of service `user` in us-east-a.
fn register_user_extra(addr: SocketAddr, etcd: &str) -> Child {
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

/// The user service's instance `name` is in the status and healthy.
fn user_instance_up(s: &Value, name: &str) -> bool {
    s["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["name"] == "user")
        .flat_map(|x| x["instances"].as_array().cloned().unwrap_or_default())
        .any(|i| i["name"] == name && i["health"] == "up")
}

fn user_instances(s: &Value) -> Vec<String> {
    s["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["name"] == "user")
        .flat_map(|x| x["instances"].as_array().cloned().unwrap_or_default())
        .map(|i| i["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_registered_instance_joins_and_leaves_with_its_lease_without_failed_requests() {
    let etcd = Etcd::start("e2e-reg");
    let dir = TempDir::new("cluster-reg");
    let url = etcd.url("/switchyard/world");
    push(&dir.write("world.toml", &world(102)), &url);
    let admin = addr(102, "0.1:9901");
    let _node = Node::start(&["--config", &format!("{url}?node=solo&ttl=2s")]);
    let extra = addr(102, "5.1:7001");
    let inst = FakeInstance::start(extra, "user-extra");
    let mut reg = register_user_extra(extra, &format!("{url}?ttl=2s"));
    wait_status(
        admin,
        Duration::from_secs(5),
        "registered instance up",
        |s| {
            s["etcd"]["registered_instances"] == serde_json::json!(["user-extra"])
                && user_instance_up(s, "user-extra")
        },
    );
    // Through VIP -> L4 -> gateway: the new instance takes its share.
    let vip = addr(102, "1.1:8080");
    let auth = token();
    assert!(
        served_by(vip, "/v1/users/alice", &[&auth], "user-extra") > 0,
        "the registered instance never served"
    );
    // The instance dies with its registrar (SIGKILL: no goodbye, the lease must expire).
    reg.kill().unwrap();
    let _ = reg.wait();
    inst.stop();
    let t0 = Instant::now();
    wait_status(
        admin,
        TTL + Duration::from_secs(3),
        "instance removed",
        |s| !user_instances(s).contains(&"user-extra".to_string()),
    );
    let gone = t0.elapsed();
    eprintln!(
        "registered instance removed {gone:?} after its process was killed (lease TTL {TTL:?})"
    );
    assert!(
        gone <= TTL + Duration::from_millis(1500),
        "removed after {gone:?}"
    );
    // From then on no request fails and none reaches the dead instance.
    for _ in 0..40 {
        let r = http(vip, "GET", "/v1/users/alice", &[&auth], "").unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_ne!(r.json()["instance"], "user-extra");
    }
    // A clean stop (SIGTERM) revokes the lease: gone at once, not after the TTL, while requests
    // keep flowing (the instance is drained before it goes away).
    let inst = FakeInstance::start(extra, "user-extra");
    // a long lease: being gone well before it could expire proves the revoke, even on a
    // loaded machine
    let reg = register_user_extra(extra, &format!("{url}?ttl=10s"));
    wait_status(admin, Duration::from_secs(5), "registered again", |s| {
        user_instances(s).contains(&"user-extra".to_string())
    });
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(reg.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let t0 = Instant::now();
    wait_status(admin, Duration::from_secs(6), "withdrawn", |s| {
        !user_instances(s).contains(&"user-extra".to_string())
    });
    let gone = t0.elapsed();
    eprintln!("withdrawn {gone:?} after SIGTERM to register (lease TTL 10s)");
    // well under the 10 s lease TTL: SIGTERM revokes the lease instead of letting it expire
    assert!(gone < Duration::from_secs(6), "withdrawn after {gone:?}");
    inst.stop();
    for _ in 0..20 {
        let r = http(vip, "GET", "/v1/users/alice", &[&auth], "").unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_ne!(r.json()["instance"], "user-extra");
    }
    let mut reg = reg;
    let _ = reg.wait();
    // A registration for a service the world lacks is ignored (and said so by register).
    let mut bad = Command::new(bin())
        .args([
            "register",
            "--service",
            "nope",
            "--addr",
            "127.102.5.2:7001",
            "--region",
            "us-east",
            "--az",
            "us-east-a",
            "--etcd",
            &url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = bad.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let out = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    bad.kill().unwrap();
    let _ = bad.wait();
    assert!(out.contains("the world has no service \"nope\""), "{out}");
}

/// Names and health of an L4 pool's members in `/status`.
fn pool_members(s: &Value, pool: &str) -> Vec<(String, String)> {
    s["regions"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["pools"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["name"] == pool)
        .flat_map(|p| p["members"].as_array().cloned().unwrap_or_default())
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                m["health"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_registered_l4_pool_member_joins_and_leaves_with_its_lease() {
    let etcd = Etcd::start("e2e-pool");
    let dir = TempDir::new("cluster-pool");
    let url = etcd.url("/switchyard/world");
    // eu-west gets a raw TCP listener on :9000 over a pool with one static member.
    let text = format!(
        "{}\n[[regions.pools]]\nname = \"eu-west-raw\"\n\
         health = {{ type = \"tcp\", interval = \"200ms\", timeout = \"200ms\", rise = 1, fall = 1 }}\n\
         members = [{{ name = \"raw-static\", addr = \"127.107.5.9:7001\", az = \"eu-west-a\" }}]\n\
         [[regions.listeners]]\nname = \"eu-west-raw\"\nport = 9000\npool = \"eu-west-raw\"\n",
        world(107)
    );
    push(&dir.write("world.toml", &text), &url);
    let admin = addr(107, "0.1:9901");
    let _node = Node::start(&["--config", &format!("{url}?node=solo&ttl=2s")]);
    let _static = FakeInstance::start(addr(107, "5.9:7001"), "raw-static");
    let extra = addr(107, "5.1:7001");
    let inst = FakeInstance::start(extra, "raw-extra");
    let mut reg = Command::new(bin())
        .args([
            "register",
            "--pool",
            "eu-west-raw",
            "--addr",
            &extra.to_string(),
            "--region",
            "eu-west",
            "--az",
            "eu-west-b",
            "--name",
            "raw-extra",
            "--etcd",
            &format!("{url}?ttl=2s"),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_status(
        admin,
        Duration::from_secs(5),
        "pool member registered and up",
        |s| {
            pool_members(s, "eu-west-raw")
                == vec![
                    ("raw-static".to_string(), "up".to_string()),
                    ("raw-extra".to_string(), "up".to_string()),
                ]
        },
    );
    let vip = addr(107, "2.1:9000");
    assert!(
        served_by(vip, "/", &[], "raw-extra") > 0,
        "the registered member never served"
    );
    reg.kill().unwrap();
    let _ = reg.wait();
    inst.stop();
    let t0 = Instant::now();
    wait_status(admin, TTL + Duration::from_secs(3), "member removed", |s| {
        pool_members(s, "eu-west-raw") == vec![("raw-static".to_string(), "up".to_string())]
    });
    let gone = t0.elapsed();
    eprintln!(
        "registered pool member removed {gone:?} after its process was killed (lease TTL {TTL:?})"
    );
    assert!(
        gone <= TTL + Duration::from_millis(1500),
        "removed after {gone:?}"
    );
    for _ in 0..40 {
        let r = http(vip, "GET", "/", &[], "").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["instance"], "raw-static");
    }
}

#[test]
fn a_killed_region_node_moves_dns_clients_within_lease_ttl_plus_probe_fall() {
    let etcd = Etcd::start("e2e-region");
    let dir = TempDir::new("cluster-region");
    let url = etcd.url("/switchyard/world");
    push(&dir.write("world.toml", &world(103)), &url);
    let (ae, aw, ad) = (
        addr(103, "0.1:9901"),
        addr(103, "0.2:9901"),
        addr(103, "0.3:9901"),
    );
    let dns = addr(103, "0.1:8053");
    let mut east = region_node(&format!("{url}?node=east&ttl=2s"), "us-east", ae);
    let _west = region_node(&format!("{url}?node=west&ttl=2s"), "eu-west", aw);
    let d = dns_node(&format!("{url}?node=dns1&ttl=2s"), ad, dns);
    // The DNS node sees both publishers and answers US clients with us-east.
    wait_status(
        ad,
        Duration::from_secs(8),
        "both regions published and up",
        |s| {
            let o = s["etcd"]["observed"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            o.len() == 2
                && o.iter()
                    .all(|r| r["publishers"] == 1 && r["verdict"] == "up" && r["probe_up"] == true)
        },
    );
    assert_eq!(dig_a(dns, US), ip("127.103.1.1"));
    // The us-east node dies (SIGKILL: its lease must run out).
    east.child.kill().unwrap();
    let _ = east.child.wait();
    let t0 = Instant::now();
    poll_until(TTL + PROBE_FALL + Duration::from_secs(3), || {
        dig_a(dns, US) == ip("127.103.2.1")
    })
    .unwrap_or_else(|_| panic!("US clients never moved; {}", status(ad)["etcd"]));
    let moved = t0.elapsed();
    eprintln!("DNS moved us-east's clients {moved:?} after the region node was killed (lease TTL {TTL:?}, probe fall {PROBE_FALL:?})");
    assert!(
        moved <= TTL + PROBE_FALL + Duration::from_millis(1500),
        "moved after {moved:?}"
    );
    assert!(
        moved >= Duration::from_millis(900),
        "moved before the lease could expire: {moved:?}"
    );
    d.wait_stderr("region failed over", Duration::from_secs(5));
    let s = status(ad);
    assert_eq!(
        s["admin_overrides"][0]["name"], "us-east",
        "{}",
        s["admin_overrides"]
    );
    // The node comes back: its clients come back.
    let _east = region_node(&format!("{url}?node=east&ttl=2s"), "us-east", ae);
    poll_until(Duration::from_secs(8), || {
        dig_a(dns, US) == ip("127.103.1.1")
    })
    .unwrap_or_else(|_| panic!("US clients never came back; {}", status(ad)["etcd"]));
}

#[test]
fn a_publisher_cut_off_from_etcd_does_not_fail_its_region_while_its_vip_answers() {
    let etcd = Etcd::start("e2e-cut");
    let dir = TempDir::new("cluster-cut");
    let url = etcd.url("/switchyard/world");
    push(&dir.write("world.toml", &world(104)), &url);
    let proxy = Proxy::start(etcd.endpoint);
    let (ae, aw, ad) = (
        addr(104, "0.1:9901"),
        addr(104, "0.2:9901"),
        addr(104, "0.3:9901"),
    );
    let dns = addr(104, "0.1:8053");
    let _east = region_node(
        &proxy.url("/switchyard/world?node=east&ttl=2s"),
        "us-east",
        ae,
    );
    let _west = region_node(&format!("{url}?node=west&ttl=2s"), "eu-west", aw);
    let _d = dns_node(&format!("{url}?node=dns1&ttl=2s"), ad, dns);
    wait_status(ad, Duration::from_secs(8), "us-east published", |s| {
        s["etcd"]["observed"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["region"] == "us-east" && r["publishers"] == 1)
    });
    proxy.cut();
    // us-east's lease runs out: the DNS node sees no publisher, but the VIP still answers.
    wait_status(
        ad,
        TTL + Duration::from_secs(3),
        "us-east publisher gone",
        |s| {
            s["etcd"]["observed"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["region"] == "us-east" && r["publishers"] == 0 && r["probe_up"] == true)
        },
    );
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert_eq!(dig_a(dns, US), ip("127.104.1.1"));
        std::thread::sleep(Duration::from_millis(50));
    }
    // And the cut-off node says so in its own status.
    wait_status(ae, Duration::from_secs(3), "disconnected", |s| {
        s["etcd"]["connected"] == false
    });
    proxy.heal();
    wait_status(ad, Duration::from_secs(6), "us-east published again", |s| {
        s["etcd"]["observed"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["region"] == "us-east" && r["publishers"] == 1)
    });
}

#[test]
fn with_a_quorum_a_dns_node_cut_off_from_etcd_does_not_fail_over_on_its_own_view() {
    let etcd = Etcd::start("e2e-quorum");
    let dir = TempDir::new("cluster-quorum");
    let url = etcd.url("/switchyard/world");
    push(&dir.write("world.toml", &world(105)), &url);
    let proxy1 = Proxy::start(etcd.endpoint);
    let proxy4 = Proxy::start(etcd.endpoint);
    let a = |n: u8| addr(105, &format!("0.{n}:9901"));
    let d = |n: u8| addr(105, &format!("0.{n}:8053"));
    let mut east = region_node(&format!("{url}?node=east&ttl=2s"), "us-east", a(1));
    let _west = region_node(&format!("{url}?node=west&ttl=2s"), "eu-west", a(2));
    // d1: quorum 2, cut off. d2, d3: quorum 2, connected. d4: no quorum, cut off.
    let _d1 = dns_node(
        &proxy1.url("/switchyard/world?node=d1&ttl=2s&quorum=2"),
        a(3),
        d(3),
    );
    let _d2 = dns_node(&format!("{url}?node=d2&ttl=2s&quorum=2"), a(4), d(4));
    let _d3 = dns_node(&format!("{url}?node=d3&ttl=2s&quorum=2"), a(5), d(5));
    let _d4 = dns_node(&proxy4.url("/switchyard/world?node=d4&ttl=2s"), a(6), d(6));
    for n in 3..=6 {
        wait_status(a(n), Duration::from_secs(8), "us-east up", |s| {
            s["etcd"]["observed"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["region"] == "us-east" && r["publishers"] == 1 && r["probe_up"] == true)
        });
        assert_eq!(dig_a(d(n), US), ip("127.105.1.1"));
    }
    proxy1.cut();
    proxy4.cut();
    wait_status(a(3), Duration::from_secs(3), "d1 cut off", |s| {
        s["etcd"]["connected"] == false
    });
    wait_status(a(6), Duration::from_secs(3), "d4 cut off", |s| {
        s["etcd"]["connected"] == false
    });
    east.child.kill().unwrap();
    let _ = east.child.wait();
    let t0 = Instant::now();
    // d2 and d3 agree (two votes): they fail over. d4 acts alone on its own probe.
    let mut moved: Vec<Option<Duration>> = vec![None; 3];
    let nodes = [4u8, 5, 6];
    poll_until(TTL + PROBE_FALL + Duration::from_secs(3), || {
        for (i, n) in nodes.iter().enumerate() {
            if moved[i].is_none() && dig_a(d(*n), US) == ip("127.105.2.1") {
                moved[i] = Some(t0.elapsed());
            }
        }
        moved.iter().all(Option::is_some)
    })
    .unwrap_or_else(|_| panic!("not every connected or quorum-less DNS node moved: {moved:?}"));
    eprintln!(
        "US clients moved after: d2 (quorum 2) {:?}, d3 (quorum 2) {:?}, d4 (no quorum, cut off) {:?}",
        moved[0].unwrap(),
        moved[1].unwrap(),
        moved[2].unwrap()
    );
    // Without a quorum the cut-off node decides on its probe alone: before the lease ran out.
    assert!(moved[2].unwrap() < moved[0].unwrap(), "{moved:?}");
    // d1 has one vote (its own) and no way to learn the others': it keeps its answer.
    let s = status(a(3));
    let o: Vec<&Value> = s["etcd"]["observed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["region"] == "us-east")
        .collect();
    assert_eq!(
        o[0]["verdict"], "down",
        "d1 sees it down itself: {}",
        s["etcd"]
    );
    assert_eq!(o[0]["failed_over"], false, "{}", s["etcd"]);
    assert_eq!(dig_a(d(3), US), ip("127.105.1.1"));
    // Healed, d1 counts the others' votes and follows.
    proxy1.heal();
    poll_until(Duration::from_secs(6), || {
        dig_a(d(3), US) == ip("127.105.2.1")
    })
    .unwrap_or_else(|_| panic!("d1 never followed after healing; {}", status(a(3))["etcd"]));
}

#[test]
fn an_admin_action_on_one_node_is_obeyed_by_every_node_with_an_audit_line() {
    let etcd = Etcd::start("e2e-admin");
    let dir = TempDir::new("cluster-admin");
    let url = etcd.url("/switchyard/world");
    push(&dir.write("world.toml", &world(106)), &url);
    let (ae, aw) = (addr(106, "0.1:9901"), addr(106, "0.2:9901"));
    let east = region_node(&format!("{url}?node=east&ttl=2s"), "us-east", ae);
    let _west = region_node(&format!("{url}?node=west&ttl=2s"), "eu-west", aw);
    // Drain an AZ of us-east through the *eu-west* node's API.
    let r = http(aw, "POST", "/v1/azs/us-east-a/drain", &[AUTH], "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let drained = |s: &Value| {
        s["admin_overrides"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o["kind"] == "az" && o["name"] == "us-east-a" && o["mode"] == "drain")
    };
    wait_status(
        ae,
        Duration::from_secs(3),
        "us-east node drains us-east-a",
        drained,
    );
    east.wait_stderr("cluster admin action", Duration::from_secs(5));
    let line = east
        .stderr()
        .lines()
        .find(|l| l.contains("cluster admin action"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("node=west")
            && line.contains("action=drain")
            && line.contains("az us-east-a"),
        "{line}"
    );
    assert!(line.contains("who="), "{line}");
    // The L4 balancer of us-east obeys: no share for the drained AZ.
    wait_status(ae, Duration::from_secs(3), "share moves away", |s| {
        s["regions"][0]["azs"][0]["share"].as_f64() == Some(0.0)
    });
    // Undone on the us-east node itself: gone everywhere.
    let r = http(ae, "POST", "/v1/azs/us-east-a/undrain", &[AUTH], "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    wait_status(
        aw,
        Duration::from_secs(3),
        "undrained on eu-west too",
        |s| !drained(s),
    );
    wait_status(ae, Duration::from_secs(3), "undrained on us-east", |s| {
        !drained(s)
    });
}

#[test]
fn a_demo_service_registers_itself_and_leaves_when_its_process_dies() {
    let etcd = Etcd::start("e2e-demo-reg");
    let dir = TempDir::new("cluster-demo-reg");
    let url = etcd.url("/switchyard/world");
    push(&dir.write("world.toml", &world(108)), &url);
    let admin = addr(108, "0.1:9901");
    let _node = Node::start(&["--config", &format!("{url}?node=solo&ttl=2s")]);
    let extra = addr(108, "5.1:7001");
    let mut reg = register(&[
        "--service",
        "user",
        "--demo",
        "--addr",
        &extra.to_string(),
        "--region",
        "us-east",
        "--az",
        "us-east-a",
        "--name",
        "user-extra",
        "--etcd",
        &format!("{url}?ttl=2s"),
    ]);
    // The registrar serves the demo user service itself.
    let r = http(extra, "GET", "/v1/users/bob", &[], "").unwrap();
    assert_eq!(
        (r.status, r.json()["instance"].as_str()),
        (200, Some("user-extra"))
    );
    wait_status(
        admin,
        Duration::from_secs(5),
        "self-registered demo instance up",
        |s| user_instance_up(s, "user-extra"),
    );
    let vip = addr(108, "1.1:8080");
    let auth = token();
    assert!(
        served_by(vip, "/v1/users/alice", &[&auth], "user-extra") > 0,
        "the self-registered instance never served"
    );
    // SIGKILL: the service and its registration die together; the lease takes it out.
    reg.kill().unwrap();
    let _ = reg.wait();
    assert!(http(extra, "GET", "/healthz", &[], "").is_err());
    wait_status(
        admin,
        TTL + Duration::from_secs(3),
        "instance removed",
        |s| !user_instances(s).contains(&"user-extra".to_string()),
    );
    for _ in 0..40 {
        let r = http(vip, "GET", "/v1/users/alice", &[&auth], "").unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_ne!(r.json()["instance"], "user-extra");
    }
}
