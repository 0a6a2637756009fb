//! testssl.sh (Debian's `testssl.sh`, installed by scripts/test) against the gateway's TLS
//! listener: protocols, cipher categories, server defaults and the vulnerability checks; no
//! finding may be rated HIGH or CRITICAL (its JSON output, parsed).

use super::*;
use serde_json::Value;
use switchyard_config::tls::CertFile;
use switchyard_tls::demo::IssueOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testssl_finds_nothing_high_or_critical() {
    let w = world("testssl", |spec, ca, dir| {
        // like a real certificate, this one says where its revocation list is
        let f = CertFile {
            cert: dir.join("scan.pem"),
            key: dir.join("scan.key"),
        };
        let opts = IssueOptions {
            crl_url: Some("http://crl.example.test/demo.crl".into()),
            ..Default::default()
        };
        ca.issue(&["api.example.test".into(), "127.0.0.1".into()], &opts)
            .unwrap()
            .write(&f.cert, &f.key)
            .unwrap();
        spec.instances[0].tls.as_mut().unwrap().tls.certs = vec![f];
    })
    .await;
    let json = w.dir.join("testssl.json");
    let target = format!("127.0.0.1:{}", w.tls_addr.port());
    let tool = if which("testssl") {
        "testssl"
    } else {
        "testssl.sh"
    };
    let t = std::time::Instant::now();
    // protocols, cipher categories, server defaults, vulnerabilities; no per-cipher listing
    let args = [
        "--quiet",
        "--color",
        "0",
        "--warnings",
        "off",
        "--ip",
        "one",
        "--sneaky",
        "--add-ca",
        w.ca_file.to_str().unwrap(),
        "--jsonfile",
        json.to_str().unwrap(),
        "-p",
        "-s",
        "-S",
        "-U",
        &target,
    ];
    let (_, out, err) = run_long(tool, &args).await;
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("no JSON from {tool} ({e}):\n{out}\n{err}"));
    let findings: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(findings.len() > 20, "too few findings: {text}");
    let bad: Vec<&Value> = findings
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("HIGH" | "CRITICAL")))
        .collect();
    assert!(bad.is_empty(), "HIGH/CRITICAL findings: {bad:#?}");
    // it did look: TLS 1.3 offered, TLS 1.0 and 1.1 not
    let finding = |id: &str| {
        findings
            .iter()
            .find(|f| f["id"] == id)
            .and_then(|f| f["finding"].as_str())
            .unwrap_or("")
            .to_string()
    };
    assert!(
        finding("TLS1_3").starts_with("offered"),
        "{}",
        finding("TLS1_3")
    );
    assert!(
        finding("TLS1_1").starts_with("not offered"),
        "{}",
        finding("TLS1_1")
    );
    assert!(
        finding("TLS1").starts_with("not offered"),
        "{}",
        finding("TLS1")
    );
    eprintln!("testssl took {:?}", t.elapsed());
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Like [`run`] with a longer bound (testssl takes a minute or two).
async fn run_long(tool: &str, args: &[&str]) -> (bool, String, String) {
    let child = tokio::process::Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{tool} (Debian package testssl.sh) is needed on PATH; scripts/test installs it: {e}"));
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        child.wait_with_output(),
    )
    .await
    .expect("testssl finished within 5 minutes")
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
