//! Client certificates (mTLS) with curl: a route with `client_cert` answers 401 for no
//! certificate, one from another CA and an expired one, 403 for a valid one without the role,
//! 200 for a valid one mapped to it; the subject reaches the instance in a header the client
//! cannot forge.

use super::*;
use serde_json::Value;
use switchyard_tls::demo::IssueOptions;

fn client(ca: &DemoCa, dir: &Path, file: &str, cn: &str, opts: IssueOptions) -> (String, String) {
    let names = vec![format!("{cn}.clients.test")];
    let opts = IssueOptions {
        client: true,
        common_name: Some(cn.into()),
        ..opts
    };
    let (c, k) = (
        dir.join(format!("{file}.pem")),
        dir.join(format!("{file}.key")),
    );
    ca.issue(&names, &opts).unwrap().write(&c, &k).unwrap();
    (c.display().to_string(), k.display().to_string())
}

async fn curl(
    w: &TlsWorld,
    path: &str,
    cert: Option<&(String, String)>,
    extra: &[&str],
) -> (u16, String) {
    let port = w.tls_addr.port();
    let resolve = format!("api.example.test:{port}:127.0.0.1");
    let url = format!("https://api.example.test:{port}{path}");
    let mut args = vec![
        "-sS",
        "--http2",
        "--cacert",
        w.ca_file.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-w",
        "\n%{http_code}",
    ];
    if let Some((c, k)) = cert {
        args.extend(["--cert", c.as_str(), "--key", k.as_str()]);
    }
    for h in extra {
        args.extend(["-H", h]);
    }
    args.push(&url);
    let (ok, out, err) = run("curl", &args, b"").await;
    assert!(ok, "curl: {err}");
    let (body, code) = out.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

#[tokio::test]
async fn client_certificates_map_to_identity_and_roles() {
    let w = world("mtls", |spec, ca, dir| {
        let ca_file = dir.join("clients-ca.pem");
        std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        spec.instances[0].tls.as_mut().unwrap().tls.client_ca = Some(ca_file);
        let mut r = route("cert", "/cert", true, "svc", roles_any(&["admin"]));
        r.client_cert = true;
        spec.routes.push(r);
        spec.client_cert_roles
            .insert("alice".into(), vec!["admin".into()]);
        spec.client_cert_roles
            .insert("bob".into(), vec!["viewer".into()]);
    })
    .await;
    let other = DemoCa::create("someone else").unwrap();
    let alice = client(&w.ca, &w.dir, "alice", "alice", IssueOptions::default());
    let bob = client(&w.ca, &w.dir, "bob", "bob", IssueOptions::default());
    let mallory = client(&other, &w.dir, "mallory", "alice", IssueOptions::default());
    let old = IssueOptions {
        days: -1,
        days_before: 30,
        ..Default::default()
    };
    let expired = client(&w.ca, &w.dir, "old", "alice", old);

    assert_eq!(
        curl(&w, "/cert/x", None, &[]).await.0,
        401,
        "no certificate"
    );
    assert_eq!(
        curl(&w, "/cert/x", Some(&mallory), &[]).await.0,
        401,
        "another CA"
    );
    assert_eq!(
        curl(&w, "/cert/x", Some(&expired), &[]).await.0,
        401,
        "expired"
    );
    assert_eq!(
        curl(&w, "/cert/x", Some(&bob), &[]).await.0,
        403,
        "valid, no role"
    );
    let (code, body) = curl(
        &w,
        "/cert/x",
        Some(&alice),
        &["X-Client-Cert-Subject: CN=root"],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let b: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(b["user"], "alice");
    assert_eq!(b["roles"], "admin");
    assert_eq!(b["client_cert"], "CN=alice");
    // a bearer route on the same listener: the client's copy of the subject header is gone
    let admin = format!("Authorization: Bearer {}", token("carol", &["admin"]));
    let (code, body) = curl(
        &w,
        "/api/x",
        None,
        &[&admin, "X-Client-Cert-Subject: CN=root"],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let b: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(b["client_cert"], Value::Null);
    assert_eq!(b["user"], "carol");
}
