//! The etcd registry: a `switchyard register`ed service instance or L4 pool member joins and
//! leaves with its lease (no failed requests), and a demo service registers itself.

use super::{push, register, register_user_extra, wait_status, world, TTL};
use crate::harness::{addr, bin, http, Node, TempDir};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_cluster::testing::Etcd;

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
    let pid = reg.id() as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0);
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
