//! The CLI as a user meets it: `check`, `demo-config`, `--version`, exit codes and messages.

use crate::harness::{bin, TempDir};
use std::process::Command;

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

#[test]
fn check_accepts_the_printed_demo_world() {
    let dir = TempDir::new("check-ok");
    let (code, demo, _) = switchyard(&["demo-config"]);
    assert_eq!(code, 0);
    let path = dir.write("demo.toml", &demo);
    let (code, out, err) = switchyard(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "ok: {}: 2 regions, 4 AZs, 2 L4 listeners (4 pool members), 4 gateway instances, 4 services (16 instances), 7 routes, 1 zones, 1 GSLB names\n",
            path.display()
        )
    );
}

#[test]
fn check_reports_every_error_with_line_and_column() {
    let dir = TempDir::new("check-bad");
    let src = switchyard_config::demo_toml()
        .replacen("az = \"us-east-b\" }", "az = \"us-east-q\" }", 1)
        .replacen("service = \"cart\"", "service = \"basket\"", 1)
        .replacen("policy = \"geo\"", "policy = \"vibes\"", 1);
    let path = dir.write("bad.toml", &src);
    let p = path.to_str().unwrap();
    let (code, out, err) = switchyard(&["check", "--config", p]);
    assert_eq!(code, 2);
    assert_eq!(out, "");
    let line = |needle: &str| src[..src.find(needle).unwrap()].matches('\n').count() + 1;
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[0], format!("{p}: 3 errors in configuration"));
    let az_line = line("az = \"us-east-q\"");
    assert!(
        lines[1].starts_with(&format!("  {p}:{az_line}:"))
            && lines[1].contains("regions[0].pools[0].members[1].az: unknown AZ \"us-east-q\""),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(&format!(":{}:", line("service = \"basket\"")))
            && lines[2].contains("gateway.routes[4].service: unknown service \"basket\""),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].contains(&format!(":{}:", line("policy = \"vibes\"")))
            && lines[3].contains("dns.gslb[0].policy: unknown GSLB policy \"vibes\""),
        "{}",
        lines[3]
    );
    assert!(!err.contains("panicked") && !err.contains("backtrace"));
}

#[test]
fn check_explains_syntax_errors_and_unknown_keys() {
    let dir = TempDir::new("check-syntax");
    let path = dir.write(
        "bad.toml",
        "[admin]\nlisten = \"127.0.0.1:9901\"\ntokn = \"x\"\n\n[dsn]\nlisten = []\n",
    );
    let (code, _, err) = switchyard(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    // both unknown keys, not only the first
    assert!(err.contains("2 errors in configuration"), "{err}");
    assert!(
        err.contains(":3:1: admin.tokn: unknown field `tokn`"),
        "{err}"
    );
    assert!(err.contains(":5:2: dsn: unknown field `dsn`"), "{err}");
}

#[test]
fn check_on_a_missing_file_is_a_clear_error() {
    let (code, _, err) = switchyard(&["check", "--config", "/nonexistent/world.toml"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read /nonexistent/world.toml: No such file or directory"),
        "{err}"
    );
}

#[test]
fn version_and_help() {
    let (code, out, _) = switchyard(&["--version"]);
    assert_eq!(code, 0);
    // `switchyard 0.1.0 (0123456789ab, built 2026-12-03)`; the revision is HEAD's when the
    // tree is a git checkout, `unknown` otherwise (a source tarball)
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let prefix = format!("switchyard {} ({rev}, built ", env!("CARGO_PKG_VERSION"));
    let out = out.trim();
    assert!(out.starts_with(&prefix), "{out:?} lacks {prefix:?}");
    let date = out[prefix.len()..]
        .strip_suffix(')')
        .expect("closing parenthesis");
    assert!(
        date.len() == 10
            && date.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }),
        "build date {date:?} is not YYYY-MM-DD"
    );
    let (code, out, _) = switchyard(&["help"]);
    assert_eq!(code, 0);
    for cmd in ["run", "check", "demo-config", "token"] {
        assert!(out.contains(cmd), "help lacks {cmd}: {out}");
    }
}

#[test]
fn check_takes_the_file_positionally() {
    let dir = TempDir::new("check-positional");
    let path = dir.write("world.toml", switchyard_config::demo_toml());
    let (code, out, err) = switchyard(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("ok: {}: 2 regions", path.display())),
        "{out}"
    );
    let (code, _, err) = switchyard(&["check"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("the following required arguments were not provided"),
        "{err}"
    );
}

#[test]
fn help_shows_no_benchmark_harness_variables() {
    for cmd in [
        vec!["gateway", "--help"],
        vec!["lb", "--help"],
        vec!["dns", "--help"],
        vec!["run", "--help"],
        vec!["bench", "http", "--help"],
    ] {
        let (code, out, _) = switchyard(&cmd);
        assert_eq!(code, 0);
        // the benchmark harness's own variables (BENCH_LISTEN, ...) are not the CLI's
        assert!(!out.contains("[env: BENCH_"), "{cmd:?}:\n{out}");
    }
}

#[test]
fn token_signs_for_a_quick_gateway_secret() {
    let (code, token, err) = switchyard(&["token", "--sub", "alice", "--secret", "s3cret"]);
    assert_eq!(code, 0, "{err}");
    let token = token.trim().to_string();
    // a quick gateway over an upstream that does not answer: a token it accepts gets past
    // authentication (502), a token signed with another secret does not (401)
    let gw = "127.171.0.9:18080";
    let mut child = Command::new(bin())
        .args([
            "gateway",
            "--listen",
            gw,
            "--route",
            "/users/=127.171.0.9:1",
        ])
        .args(["--jwt-secret", "s3cret"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = gw.parse().unwrap();
    let ask = |t: &str| {
        let h = format!("Authorization: Bearer {t}");
        crate::harness::http(addr, "GET", "/users/alice", &[h.as_str()], "").map(|r| r.status)
    };
    let ready =
        crate::harness::poll_until(std::time::Duration::from_secs(10), || ask(&token).is_ok());
    let good = ask(&token);
    let (_, other, _) = switchyard(&["token", "--sub", "alice", "--secret", "other"]);
    let bad = ask(other.trim());
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready.is_ok(), "the quick gateway never answered");
    assert_eq!((good.unwrap(), bad.unwrap()), (502, 401));
    // --secret and --config are two different keys: one at a time
    let (code, _, err) =
        switchyard(&["token", "--sub", "a", "--secret", "x", "--config", "w.toml"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn the_banner_comes_after_the_first_health_round_and_a_second_run_says_why_it_cannot() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new("banner");
    let cfg = crate::harness::demo_config(&dir, 171);
    let mut child = Command::new(bin())
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line == "ready";
        lines.push(line);
        if done || lines.len() > 200 {
            break;
        }
    }
    // the second node on the same admin address
    let (code, _, err) = switchyard(&["run", "--config", cfg.to_str().unwrap()]);
    let _ = child.kill();
    let _ = child.wait();
    let banner = lines.join("\n");
    assert!(
        // 4 gateway instances (also the pool members) and 16 service instances
        banner.contains("\n  health:  20 of 20 backends up\n"),
        "{banner}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("ready"), "{banner}");
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "the admin address 127.171.0.1:9901 is in use: another Switchyard seems to be running"
        ),
        "{err}"
    );
}

/// Every `switchyard ...` line in a code block of README.md and docs/*.md, with where it is.
fn documented_commands() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut in_code = false;
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
                continue;
            }
            let l = line.trim();
            if in_code && l.starts_with("switchyard ") && !l.ends_with('\\') {
                // the comment is prose; `&&` chains stay one command line
                let cmd = match l.find("  #") {
                    Some(c) => l[..c].trim(),
                    None => l,
                };
                out.push((
                    format!("{}:{}", f.file_name().unwrap().to_string_lossy(), i + 1),
                    cmd.to_string(),
                ));
            }
        }
    }
    out
}

/// Why a documented command is not run here (each has its own test elsewhere), or None: it is
/// run against a demo world and must exit 0.
fn not_run_here(cmd: &str) -> Option<&'static str> {
    let sub = cmd.split_whitespace().nth(1).unwrap_or("");
    Some(match sub {
        "run" => "runs in the foreground (tests/e2e/run.rs)",
        "bench" => "a load test (tests/e2e/bench.rs)",
        "drill" => "seconds of load (tests/e2e/drill.rs)",
        "register" | "config" => "needs etcd (tests/e2e/cluster.rs)",
        "lb" | "dns" | "gateway" => "a quick-mode server in the foreground",
        "check" if cmd.contains("/etc/") => "a packaged path (tests/e2e/packaging.rs)",
        "dnssec" if cmd.contains(" ds ") && cmd.contains("--config") => {
            "needs the world edited with the new key first, as the text says (tests/e2e/dnssec.rs)"
        }
        _ => return None,
    })
}

#[test]
fn every_documented_cli_example_runs() {
    let net = 172;
    let dir = TempDir::new("docs-examples");
    let cfg = crate::harness::demo_config(&dir, net);
    let _node = crate::harness::Node::start(&["--config", cfg.to_str().unwrap()]);
    let bin_dir = std::path::Path::new(bin()).parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let commands = documented_commands();
    assert!(commands.len() > 20, "{commands:?}");
    let mut ran = 0;
    let mut failures = Vec::new();
    for (place, cmd) in &commands {
        if not_run_here(cmd).is_some() {
            continue;
        }
        // the demo world of this test lives on 127.172.x.y
        let cmd = cmd.replace("127.0.", &format!("127.{net}."));
        let out = Command::new("sh")
            .args(["-c", &cmd])
            .current_dir(&dir.0)
            .env("PATH", &path)
            .env("SWITCHYARD_ADMIN", format!("127.{net}.0.1:9901"))
            .env_remove("SWITCHYARD_ADMIN_TOKEN")
            .output()
            .unwrap();
        ran += 1;
        if !out.status.success() {
            failures.push(format!(
                "{place}: `{cmd}` exited {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(ran >= 12, "only {ran} examples ran");
}
