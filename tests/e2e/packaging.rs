//! Installing like a daemon: the systemd unit verifies, the notify protocol (READY, RELOADING,
//! STOPPING) reaches `$NOTIFY_SOCKET`, and the Debian package installs into a throwaway root
//! whose binary accepts its own example config.
//!
//! `systemd-analyze` and `dpkg-deb` come from Debian's `systemd` and `dpkg` (`scripts/test`
//! installs `systemd` when missing); without them these tests fail with that hint.

use crate::harness::{addr, bin, demo_config, Node, TempDir};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{name} is missing: scripts/test installs it (apt-get install systemd dpkg)"
    );
    Command::new(name)
}

/// `systemd-analyze verify` on the unit, with `/usr/bin/switchyard` pointed at the binary under
/// test (verify checks that every command exists). Warnings (an unknown key, a bad value) are
/// failures too: systemd only logs them and goes on.
fn verify_unit(unit: &str, dir: &TempDir) -> Result<(), String> {
    let path = dir.write(
        "switchyard.service",
        &unit.replace("/usr/bin/switchyard", bin()),
    );
    let out = tool("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .current_dir(&dir.0)
        .output()
        .expect("run systemd-analyze");
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && err.trim().is_empty() && stdout.trim().is_empty() {
        Ok(())
    } else {
        Err(format!(
            "systemd-analyze verify: {}\n{stdout}{err}",
            out.status
        ))
    }
}

#[test]
fn the_systemd_unit_verifies() {
    let dir = TempDir::new("unit-verify");
    let unit = std::fs::read_to_string(repo().join("packaging/systemd/switchyard.service"))
        .expect("read the unit");
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=switchyard",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "StateDirectory=switchyard",
        "LimitNOFILE=1048576",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line:?}");
    }
    verify_unit(&unit, &dir).unwrap_or_else(|e| panic!("{e}"));
    // the check can fail: a misspelt key is caught
    let bad = verify_unit(&unit.replace("PrivateTmp=yes", "PrivateTemp=yes"), &dir)
        .expect_err("a misspelt key passed systemd-analyze verify");
    assert!(bad.contains("Unknown key 'PrivateTemp'"), "{bad}");
}

/// Receives notify datagrams until one satisfies `want`, at most `within`; returns it.
fn recv_until(sock: &UnixDatagram, within: Duration, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no wanted notification; saw {seen:?}");
        sock.set_read_timeout(Some(left)).unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if want(&msg) {
                    return msg;
                }
                seen.push(msg);
            }
            Err(e) => panic!("no wanted notification ({e}); saw {seen:?}"),
        }
    }
}

#[test]
fn notify_ready_reloading_stopping() {
    let dir = TempDir::new("notify");
    let sock_path = dir.0.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind the notify socket");
    let cfg = demo_config(&dir, 91);
    let mut node = Node::start_env(
        &["--config", cfg.to_str().unwrap()],
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
    );
    let ready = recv_until(&sock, Duration::from_secs(20), |m| m.contains("READY=1"));
    assert_eq!(ready.trim(), "READY=1");
    // READY means bound: the admin API, a VIP and a gateway instance accept at once
    for a in [
        addr(91, "0.1:9901"),
        addr(91, "1.1:8080"),
        addr(91, "2.11:8000"),
    ] {
        std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("{a} not accepting after READY=1: {e}"));
    }

    node.signal(libc::SIGHUP);
    let reloading = recv_until(&sock, Duration::from_secs(10), |m| {
        m.contains("RELOADING=1")
    });
    let lines: Vec<&str> = reloading.lines().collect();
    assert_eq!(lines[0], "RELOADING=1", "{reloading:?}");
    let usec: u64 = lines
        .get(1)
        .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC after RELOADING=1: {reloading:?}"));
    assert!(usec > 0);
    let again = recv_until(&sock, Duration::from_secs(10), |_| true);
    assert_eq!(again.trim(), "READY=1", "after the reload");
    node.wait_stderr("configuration reloaded", Duration::from_secs(5));

    node.signal(libc::SIGTERM);
    let stopping = recv_until(&sock, Duration::from_secs(10), |_| true);
    assert_eq!(stopping.trim(), "STOPPING=1");
    let status = node.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}");
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_file(root: &Path, rel: &str) -> Vec<u8> {
    let p = root.join(rel);
    let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{} missing: {e}", p.display()));
    assert!(!data.is_empty(), "{} is empty", p.display());
    data
}

#[test]
fn the_deb_installs_and_checks_its_example_config() {
    tool("dpkg-deb");
    let dir = TempDir::new("deb");
    // package the binary under test (no second release build)
    let deb = run_ok(
        Command::new(repo().join("packaging/deb/build.sh"))
            .args(["--binary", bin(), "--compress", "none", "--out"])
            .arg(&dir.0),
    );
    let deb = PathBuf::from(deb.trim());
    let info = run_ok(Command::new("dpkg-deb").arg("--info").arg(&deb));
    assert!(info.contains("Package: switchyard"), "{info}");
    assert!(
        info.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))),
        "{info}"
    );
    let contents = run_ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    assert!(
        contents.lines().all(|l| l.contains(" root/root ")),
        "files not owned by root:\n{contents}"
    );

    let root = dir.0.join("root");
    run_ok(Command::new("dpkg").arg("-x").arg(&deb).arg(&root));

    assert_file(&root, "usr/lib/systemd/system/switchyard.service");
    assert_file(&root, "usr/lib/sysusers.d/switchyard.conf");
    assert_file(&root, "usr/share/man/man1/switchyard.1.gz");
    assert_file(&root, "usr/share/doc/switchyard/operations.md");
    assert_file(&root, "usr/share/doc/switchyard/copyright");
    let bash = assert_file(&root, "usr/share/bash-completion/completions/switchyard");
    assert!(String::from_utf8_lossy(&bash).contains("complete -F _switchyard"));
    let zsh = assert_file(&root, "usr/share/zsh/vendor-completions/_switchyard");
    assert!(String::from_utf8_lossy(&zsh).starts_with("#compdef switchyard"));
    let fish = assert_file(&root, "usr/share/fish/vendor_completions.d/switchyard.fish");
    assert!(String::from_utf8_lossy(&fish).contains("complete -c switchyard"));
    let man = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("gzip -dc \"$1\"")
            .arg("sh")
            .arg(root.join("usr/share/man/man1/switchyard.1.gz")),
    );
    assert!(man.contains(".TH switchyard 1"), "{man}");
    assert!(
        man.contains("completions"),
        "the man page lists the subcommands"
    );

    // the installed binary accepts the installed example config
    let installed = root.join("usr/bin/switchyard");
    let cfg = root.join("etc/switchyard/switchyard.toml");
    let out = run_ok(
        Command::new(&installed)
            .arg("check")
            .arg("--config")
            .arg(&cfg),
    );
    assert_eq!(
        out,
        format!(
            "ok: {}: 2 regions, 4 AZs, 2 L4 listeners (4 pool members), 4 gateway instances, 4 services (16 instances), 7 routes, 1 zones, 1 GSLB names\n",
            cfg.display()
        )
    );
    // the packaged unit is the one in the tree (verified above); the config is a conffile
    let unit =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/switchyard.service")).unwrap();
    assert_eq!(
        unit,
        std::fs::read_to_string(repo().join("packaging/systemd/switchyard.service")).unwrap()
    );
    let control = dir.0.join("control");
    run_ok(
        Command::new("dpkg-deb")
            .arg("--control")
            .arg(&deb)
            .arg(&control),
    );
    assert_eq!(
        std::fs::read_to_string(control.join("conffiles")).unwrap(),
        "/etc/switchyard/switchyard.toml\n"
    );
}
