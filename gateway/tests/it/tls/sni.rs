//! `openssl s_client` against the TLS listener: SNI picks between two certificates (exact,
//! wildcard, unknown → the default), ALPN as configured, TLS 1.1 refused, TLS 1.2 and 1.3 taken.

use super::*;

/// `openssl s_client` with extra arguments; returns (handshake succeeded, all output).
async fn s_client(addr: SocketAddr, ca: &Path, extra: &[&str]) -> (bool, String) {
    let connect = addr.to_string();
    let mut args = vec![
        "s_client",
        "-connect",
        &connect,
        "-CAfile",
        ca.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (_, out, err) = run("openssl", &args, b"Q\n").await;
    let all = format!("{out}\n{err}");
    let ok = all.contains("Verify return code: 0 (ok)")
        && !all.contains("no peer certificate available");
    (ok, all)
}

/// The subject CN the server presented (`subject=CN = x` line).
fn subject(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .map(|s| {
            s.trim()
                .trim_start_matches("CN = ")
                .trim_start_matches("CN=")
                .to_string()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn sni_chooses_the_certificate_and_unknown_names_get_the_default() {
    let w = world("sni", |spec, ca, dir| {
        let other = issue(ca, dir, "other", &["*.other.test", "other.test"]);
        spec.instances[0]
            .tls
            .as_mut()
            .unwrap()
            .tls
            .certs
            .push(other);
    })
    .await;
    for (sni, want) in [
        ("api.example.test", "api.example.test"),
        ("www.other.test", "*.other.test"),
        ("other.test", "*.other.test"),
        ("unknown.test", "api.example.test"),
    ] {
        let (_, out) = s_client(w.tls_addr, &w.ca_file, &["-servername", sni]).await;
        assert_eq!(subject(&out), want, "SNI {sni}: {out}");
    }
    let (ok, out) = s_client(
        w.tls_addr,
        &w.ca_file,
        &[
            "-servername",
            "www.other.test",
            "-verify_hostname",
            "www.other.test",
        ],
    )
    .await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn alpn_protocol_versions_and_tls_1_1_refused() {
    let w = world("alpn", |_, _, _| {}).await;
    let sni = ["-servername", "api.example.test"];
    let (ok, out) = s_client(
        w.tls_addr,
        &w.ca_file,
        &[sni[0], sni[1], "-alpn", "h2,http/1.1"],
    )
    .await;
    assert!(ok && out.contains("ALPN protocol: h2"), "{out}");
    let (ok, out) = s_client(
        w.tls_addr,
        &w.ca_file,
        &[sni[0], sni[1], "-alpn", "http/1.1"],
    )
    .await;
    assert!(ok && out.contains("ALPN protocol: http/1.1"), "{out}");
    for (flag, proto) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (ok, out) = s_client(w.tls_addr, &w.ca_file, &[sni[0], sni[1], flag]).await;
        assert!(
            ok && out.contains(&format!("Protocol  : {proto}"))
                || out.contains(&format!("New, {proto}")),
            "{flag}: {out}"
        );
    }
    // the client offers TLS 1.1 only (security level 0 so that OpenSSL itself allows it)
    let (ok, out) = s_client(
        w.tls_addr,
        &w.ca_file,
        &[sni[0], sni[1], "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
    )
    .await;
    assert!(!ok, "TLS 1.1 must be refused: {out}");
    assert!(out.contains("Cipher is (NONE)"), "no session: {out}");
    // rustls answers a ClientHello without TLS 1.2/1.3 with a handshake_failure alert
    assert!(
        out.contains("alert handshake failure") || out.contains("alert protocol version"),
        "{out}"
    );

    // a listener offering http/1.1 only
    let w = world("alpn1", |spec, _, _| {
        spec.instances[0].tls.as_mut().unwrap().tls.alpn = vec!["http/1.1".into()];
    })
    .await;
    let (ok, out) = s_client(
        w.tls_addr,
        &w.ca_file,
        &[sni[0], sni[1], "-alpn", "h2,http/1.1"],
    )
    .await;
    assert!(ok && out.contains("ALPN protocol: http/1.1"), "{out}");
}
