//! HTTPS through the demo world with real clients: curl over HTTP/1.1 and HTTP/2 through each
//! region VIP's port 8443 (TLS passed through by L4, terminated by the gateway), the admin
//! `/status` and `/metrics` certificate facts, `check` on broken certificate files, and the
//! `demo-ca` / `cert issue` commands.

use crate::harness::{addr, bin, http, poll_until, Node, TempDir};
use std::process::Command;
use std::time::Duration;

fn switchyard(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .output()
        .expect("run switchyard");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// curl `https://api.example.test:8443{path}` at `vip`; returns "VERSION STATUS".
fn curl(ca: &str, vip: &str, version: &str, path: &str, token: Option<&str>) -> String {
    let resolve = format!("api.example.test:8443:{vip}");
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut args = vec![
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        version,
        "--cacert",
        ca,
        "--resolve",
        &resolve,
        "--max-time",
        "5",
    ];
    if let Some(a) = &auth {
        args.extend(["-H", a.as_str()]);
    }
    let url = format!("https://api.example.test:8443{path}");
    args.push(&url);
    let out = Command::new("curl")
        .args(&args)
        .output()
        .expect("curl is needed on PATH (scripts/test installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn https_through_each_vip_http1_and_http2_with_status_and_metrics() {
    const NET: u8 = 97;
    let dir = TempDir::new("tls-demo");
    let cfg = dir.write("world.toml", &switchyard_config::demo_toml_https_on(NET));
    let (code, _, err) = switchyard(&["cert", "demo", "--dir", dir.0.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = switchyard(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("4 L4 listeners (8 pool members)"), "{out}");
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let (_, token, _) = switchyard(&["token", "--sub", "alice", "--roles", "customer"]);
    let token = token.trim().to_string();
    let ca = dir.0.join("tls/ca.pem");
    let ca = ca.to_str().unwrap();
    for vip in [format!("127.{NET}.1.1"), format!("127.{NET}.2.1")] {
        // the L4 pool's health checks see the TLS listeners within a few rounds
        poll_until(Duration::from_secs(10), || {
            curl(ca, &vip, "--http2", "/v1/home", Some(&token)) == "2 200"
        })
        .unwrap_or_else(|_| {
            panic!(
                "{vip}: {}",
                curl(ca, &vip, "--http2", "/v1/home", Some(&token))
            )
        });
        assert_eq!(
            curl(ca, &vip, "--http1.1", "/v1/home", Some(&token)),
            "1.1 200"
        );
        assert_eq!(curl(ca, &vip, "--http2", "/v1/home", None), "2 401");
    }
    let status = http(addr(NET, "0.1:9901"), "GET", "/status", &[], "").unwrap();
    let tls = &status.json()["tls"];
    assert_eq!(tls.as_array().map(Vec::len), Some(4), "{tls}");
    let cert = &tls[0]["certificates"][0];
    assert!(
        cert["names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "api.example.test"),
        "{cert}"
    );
    assert!(
        cert["expires_in_s"].as_i64().unwrap() > 300 * 86400,
        "{cert}"
    );
    let m = http(addr(NET, "0.1:9901"), "GET", "/metrics", &[], "")
        .unwrap()
        .body;
    for want in [
        "switchyard_tls_handshakes_total{listener=\"gw-us-east-",
        "kind=\"full\"",
        "alpn=\"h2\"",
        "alpn=\"http/1.1\"",
        "switchyard_tls_certificate_expiry_seconds{",
    ] {
        assert!(m.contains(want), "{want} missing from /metrics");
    }

    // `bench tls` aims at the first HTTPS VIP of the world (127.NET.1.1:8443, SNI
    // api.example.test): full handshakes, then resumed ones. The L4 listener spreads the
    // connections over both AZs' gateways, which share their ticket key: every handshake after the
    // first few (one per worker, before any ticket came back) resumes.
    let cfg = cfg.to_str().unwrap();
    for (resume, json) in [(false, "full.json"), (true, "resumed.json")] {
        let json = dir.0.join(json);
        let mut args = vec![
            "bench",
            "tls",
            "--config",
            cfg,
            "--cacert",
            ca,
            "--requests",
            "60",
            "-c",
            "2",
            "-q",
            "--json",
            json.to_str().unwrap(),
        ];
        if resume {
            args.push("--resume");
        }
        let (code, out, err) = switchyard(&args);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.contains(&format!(
                "https://api.example.test:8443/healthz at 127.{NET}.1.1:8443"
            )),
            "{out}"
        );
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(r["errors"], serde_json::json!({}), "{out}");
        assert_eq!(r["ok"], 60, "{out}");
        assert!(r["phases"]["tls"]["count"].as_u64() == Some(60), "{out}");
        let resumed = r["tls_resumed"].as_u64().unwrap();
        if resume {
            assert!(resumed >= 56, "{resumed} of 60 resumed: {out}");
        } else {
            assert_eq!(resumed, 0, "{out}");
        }
    }
}

#[test]
fn check_reports_broken_certificate_files_with_their_location() {
    let dir = TempDir::new("tls-check");
    let src = switchyard_config::demo_toml_https_on(98)
        .replacen("tls/api.pem", "tls/missing.pem", 1)
        .replacen(
            r#"127.98.1.12:8443", certs = [{ cert = "tls/api.pem", key = "tls/api.key""#,
            r#"127.98.1.12:8443", certs = [{ cert = "tls/api.pem", key = "tls/other.key""#,
            1,
        );
    let cfg = dir.write("world.toml", &src);
    let d = dir.0.to_str().unwrap();
    assert_eq!(switchyard(&["cert", "demo", "--dir", d]).0, 0);
    let other = dir.0.join("tls/other");
    let (code, _, err) = switchyard(&[
        "cert",
        "issue",
        "other.test",
        "--out",
        other.to_str().unwrap(),
        "--state-dir",
        d,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = switchyard(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].ends_with("2 errors in configuration"), "{err}");
    let at = |n: usize| format!("{}:", cfg.display()) + &n.to_string();
    // instance 0: its (missing) certificate; instance 1: a key that is not its certificate's
    assert!(
        lines[1].contains("gateway.instances[0].tls.certs[0]: "),
        "{err}"
    );
    assert!(lines[1].contains("missing.pem: cannot read"), "{err}");
    assert!(
        lines[2].contains("gateway.instances[1].tls.certs[0]: "),
        "{err}"
    );
    assert!(
        lines[2].contains("the key does not match the certificate"),
        "{err}"
    );
    let line_of = |needle: &str| src.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(
        lines[1]
            .trim_start()
            .starts_with(&at(line_of("gw-us-east-a\", listen"))),
        "{err}"
    );
    assert!(
        lines[2]
            .trim_start()
            .starts_with(&at(line_of("gw-us-east-b\", listen"))),
        "{err}"
    );
}

#[test]
fn check_reads_ticket_key_files() {
    let dir = TempDir::new("tls-ticket-check");
    let demo = switchyard_config::demo_toml_https_on(97);
    let src = demo.replacen(
        r#"", certs = [{ cert = "tls/api.pem""#,
        r#"", ticket_keys = "tickets.key", certs = [{ cert = "tls/api.pem""#,
        1,
    );
    assert_ne!(src, demo, "the demo's TLS table changed shape");
    let cfg = dir.write("world.toml", &src);
    let d = dir.0.to_str().unwrap();
    assert_eq!(switchyard(&["cert", "demo", "--dir", d]).0, 0);
    let keys = dir.write("tickets.key", "not a key\n");
    let (code, _, err) = switchyard(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("gateway.instances[0].tls.ticket_keys: ")
            && err.contains(&format!("{}: line 1: not base64", keys.display())),
        "{err}"
    );
    // 64 base64 characters: 48 bytes
    dir.write("tickets.key", &format!("# current\n{}\n", "A".repeat(64)));
    let (code, _, err) = switchyard(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn demo_ca_and_cert_issue() {
    let dir = TempDir::new("tls-ca");
    let d = dir.0.to_str().unwrap();
    let (code, ca, err) = switchyard(&["demo-ca", "--state-dir", d]);
    assert_eq!(code, 0, "{err}");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    let (_, again, _) = switchyard(&["demo-ca", "--state-dir", d]);
    assert_eq!(ca, again, "the CA is made once");
    let out = dir.0.join("www");
    let (code, _, err) = switchyard(&[
        "cert",
        "issue",
        "www.example.test",
        "127.0.0.7",
        "--out",
        out.to_str().unwrap(),
        "--key-type",
        "rsa",
        "--state-dir",
        d,
    ]);
    assert_eq!(code, 0, "{err}");
    let ca_file = dir.write("ca.pem", &ca);
    let v = Command::new("openssl")
        .args(["verify", "-CAfile", ca_file.to_str().unwrap()])
        .arg(dir.0.join("www.pem"))
        .output()
        .expect("openssl on PATH");
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let t = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(dir.0.join("www.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&t.stdout);
    assert!(
        text.contains("DNS:www.example.test, IP Address:127.0.0.7"),
        "{text}"
    );
}
