//! `GET /v1/events` over real HTTP: Server-Sent Events for each state change (admin actions,
//! a health change of a stopped instance, reloads with their revision, a refused reload), the
//! JSON view for polling clients, and a disconnected client dropped; the console's files; a
//! drill started through the API (`POST /v1/drills/...`) runs, reports and is announced.

use crate::harness::{addr, demo_config, http, poll_until, Node, TempDir};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const AUTH: &str = "Authorization: Bearer demo-admin-token";

/// One SSE client over a raw socket.
struct Sse {
    reader: BufReader<TcpStream>,
}

impl Sse {
    fn open(admin: std::net::SocketAddr) -> Sse {
        let mut s = TcpStream::connect(admin).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET /v1/events HTTP/1.1\r\nHost: {admin}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("headers");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/event-stream"),
            "{head}"
        );
        Sse { reader }
    }

    /// The next event (`event:` name and `data:` JSON) within `within`, skipping comments.
    fn next(&mut self, within: Duration) -> (String, serde_json::Value) {
        let deadline = Instant::now() + within;
        let (mut name, mut data) = (String::new(), String::new());
        while Instant::now() < deadline {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                panic!("event stream closed");
            }
            // chunked framing: size lines are hex digits only; skip them
            let l = line.trim_end_matches(['\r', '\n']);
            if let Some(v) = l.strip_prefix("event: ") {
                name = v.to_string();
            } else if let Some(v) = l.strip_prefix("data: ") {
                data = v.to_string();
            } else if l.is_empty() && !data.is_empty() {
                return (name, serde_json::from_str(&data).expect("event JSON"));
            }
        }
        panic!("no event within {within:?}");
    }

    /// Skips events until one matches (bounded by `within`).
    fn until(
        &mut self,
        within: Duration,
        f: impl Fn(&str, &serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no matching event within {within:?}");
            let (name, data) = self.next(left);
            if f(&name, &data) {
                return data;
            }
        }
    }
}

#[test]
fn every_state_change_is_an_event_and_a_closed_client_is_dropped() {
    let dir = TempDir::new("events");
    let cfg = demo_config(&dir, 160);
    let node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let admin = addr(160, "0.1:9901");
    poll_until(Duration::from_secs(10), || {
        http(admin, "GET", "/readyz", &[], "").is_ok_and(|r| r.status == 200)
    })
    .expect("never ready");
    let mut sse = Sse::open(admin);

    // an admin action, whoever sends it
    let r = http(admin, "POST", "/v1/azs/us-east-a/drain", &[AUTH], "").unwrap();
    assert_eq!(r.status, 200);
    let ev = sse.until(Duration::from_secs(5), |n, _| n == "admin");
    assert_eq!(
        (ev["target"].as_str(), ev["state"].as_str()),
        (Some("az us-east-a"), Some("drain"))
    );
    http(admin, "POST", "/v1/azs/us-east-a/undrain", &[AUTH], "").unwrap();
    let ev = sse.until(Duration::from_secs(5), |n, _| n == "admin");
    assert_eq!(
        (ev["target"].as_str(), ev["state"].as_str()),
        (Some("az us-east-a"), Some("none"))
    );

    // a real health change: the instance's process stops, its checks fail (fall = 2 x 500 ms)
    let r = http(
        admin,
        "POST",
        "/v1/demo/instances/user-us-east-a/stop",
        &[AUTH],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let t0 = Instant::now();
    let ev = sse.until(Duration::from_secs(6), |n, d| {
        n == "health" && d["target"] == "instance user-us-east-a"
    });
    assert_eq!(ev["state"], "down", "{ev}");
    assert!(
        ev["detail"].as_str().unwrap().contains("127.160.11.1:7001"),
        "{ev}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());

    // a reload bumps the revision
    let r = http(admin, "POST", "/v1/reload", &[AUTH], "").unwrap();
    assert_eq!(r.status, 200);
    let ev = sse.until(Duration::from_secs(5), |n, _| n == "reload");
    assert_eq!(
        (ev["state"].as_str(), ev["revision"].as_u64()),
        (Some("applied"), Some(2))
    );

    // a refused reload says why and keeps the revision
    std::fs::write(&cfg, "this is not toml = [").unwrap();
    let r = http(admin, "POST", "/v1/reload", &[AUTH], "").unwrap();
    assert_eq!(r.status, 422);
    let ev = sse.until(Duration::from_secs(5), |n, _| n == "config_error");
    assert_eq!(
        (ev["state"].as_str(), ev["revision"].as_u64()),
        (Some("rejected"), Some(2))
    );

    // the JSON view has the same events, for polling clients
    let j = http(admin, "GET", "/v1/events?since=0", &[], "")
        .unwrap()
        .json();
    assert_eq!(j["revision"], 2);
    assert_eq!(j["clients"], 1);
    let kinds: Vec<&str> = j["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in ["admin", "health", "reload", "config_error"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }

    // a client that goes away is dropped (at the latest when the next event is sent to it)
    drop(sse);
    http(admin, "POST", "/v1/regions/eu-west/drain", &[AUTH], "").unwrap();
    poll_until(Duration::from_secs(5), || {
        http(admin, "GET", "/v1/events", &[], "").unwrap().json()["clients"] == 0
    })
    .expect("the closed client was never dropped");
    drop(node);
}

#[test]
fn the_console_and_the_drill_endpoints_are_served() {
    let dir = TempDir::new("console-assets");
    let cfg = demo_config(&dir, 161);
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let admin = addr(161, "0.1:9901");
    let page = http(admin, "GET", "/", &[], "").unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("script-src 'self'"));
    assert!(page
        .body
        .contains("<script src=\"/console.js\" defer></script>"));
    for (path, kind) in [
        ("/console.js", "text/javascript; charset=utf-8"),
        ("/console.css", "text/css; charset=utf-8"),
    ] {
        let r = http(admin, "GET", path, &[], "").unwrap();
        assert_eq!((r.status, r.header("content-type")), (200, Some(kind)));
        assert!(r.body.len() > 1000);
    }
    let d = http(admin, "GET", "/v1/drills", &[], "").unwrap().json();
    assert_eq!(d["builtin"][0], "instance-crash");
    assert_eq!(d["drills"], serde_json::json!([]));
    let r = http(admin, "POST", "/v1/drills/instance-crash", &[], "").unwrap();
    assert_eq!(r.status, 401);
    let r = http(admin, "POST", "/v1/drills/meteor-strike", &[AUTH], "").unwrap();
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("no built-in drill \"meteor-strike\""));
    let r = http(admin, "GET", "/v1/drills/7/timeline.svg", &[], "").unwrap();
    assert_eq!(r.status, 404);
}

#[test]
fn a_drill_started_through_the_api_runs_and_reports() {
    let dir = TempDir::new("api-drill");
    let cfg = demo_config(&dir, 165);
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let admin = addr(165, "0.1:9901");
    poll_until(Duration::from_secs(10), || {
        http(admin, "GET", "/readyz", &[], "").is_ok_and(|r| r.status == 200)
    })
    .expect("never ready");
    let r = http(admin, "POST", "/v1/drills/instance-crash", &[AUTH], "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["drill"], 1);
    // one at a time
    let r = http(admin, "POST", "/v1/drills/az-outage", &[AUTH], "").unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    // the drill runs its scenario under load, then reports (bounded)
    let mut last = serde_json::Value::Null;
    poll_until(Duration::from_secs(120), || {
        last = http(admin, "GET", "/v1/drills", &[], "").unwrap().json();
        last["drills"][0]["state"] != "running"
    })
    .unwrap_or_else(|_| panic!("the drill never finished: {last}"));
    let d = &last["drills"][0];
    // a verdict came from a report (timing expectations may fail on a loaded machine)
    assert!(
        matches!(d["state"].as_str(), Some("passed" | "failed")),
        "{d}"
    );
    assert_eq!(d["pass"].as_bool(), Some(d["state"] == "passed"), "{d}");
    assert!(d["requests"].as_u64().unwrap() > 0, "{d}");
    let svg = http(admin, "GET", d["timeline"].as_str().unwrap(), &[], "").unwrap();
    assert_eq!(svg.status, 200);
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    assert!(svg.body.contains("<svg"));
    let events = http(admin, "GET", "/v1/events", &[], "").unwrap().json();
    let drill: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "drill")
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(drill, ["started", d["state"].as_str().unwrap()]);
}
