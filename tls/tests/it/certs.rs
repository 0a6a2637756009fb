//! Certificates on disk: load, SNI, reload, check, client certificates.

use std::path::{Path, PathBuf};

use switchyard_tls::demo::{DemoCa, IssueOptions, KeyKind};
use switchyard_tls::{CertSource, CertStore, ClientCert, ClientCertCheck};

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sy-tls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn issue(ca: &DemoCa, dir: &Path, name: &str, names: &[&str], opts: IssueOptions) -> CertSource {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let src = CertSource {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    ca.issue(&names, &opts)
        .unwrap()
        .write(&src.cert, &src.key)
        .unwrap();
    src
}

/// The first SAN of the certificate a store hands out for a server name.
fn served(store: &CertStore, sni: Option<&str>) -> Vec<String> {
    let k = store.pick(sni);
    switchyard_tls::cert::inspect(Path::new("-"), &k.cert[0])
        .unwrap()
        .names
}

#[test]
fn every_key_kind_loads_and_sni_picks_exact_then_wildcard_then_default() {
    let dir = tmpdir("sni");
    let ca = DemoCa::create("test CA").unwrap();
    let kinds = [KeyKind::EcdsaP256, KeyKind::Ed25519, KeyKind::Rsa2048];
    let a = issue(
        &ca,
        &dir,
        "a",
        &["api.example.test", "127.0.1.1"],
        IssueOptions {
            key: kinds[0],
            ..Default::default()
        },
    );
    let b = issue(
        &ca,
        &dir,
        "b",
        &["*.example.test"],
        IssueOptions {
            key: kinds[1],
            ..Default::default()
        },
    );
    let c = issue(
        &ca,
        &dir,
        "c",
        &["other.test"],
        IssueOptions {
            key: kinds[2],
            ..Default::default()
        },
    );
    let store = CertStore::load(vec![a, b, c]).unwrap();
    assert_eq!(
        served(&store, Some("API.example.test")),
        ["api.example.test", "127.0.1.1"]
    );
    assert_eq!(served(&store, Some("www.example.test")), ["*.example.test"]);
    // one label deep only
    assert_eq!(
        served(&store, Some("a.b.example.test")),
        ["api.example.test", "127.0.1.1"]
    );
    assert_eq!(served(&store, Some("other.test")), ["other.test"]);
    assert_eq!(
        served(&store, Some("unknown.test")),
        ["api.example.test", "127.0.1.1"]
    );
    assert_eq!(served(&store, None), ["api.example.test", "127.0.1.1"]);
    let infos = store.infos();
    assert_eq!(infos.len(), 3);
    assert!(infos[0].seconds_left(switchyard_tls::unix_now()) > 300 * 86400);
}

#[test]
fn a_broken_reload_keeps_the_old_certificate_and_names_the_file() {
    let dir = tmpdir("reload");
    let ca = DemoCa::create("test CA").unwrap();
    let src = issue(&ca, &dir, "a", &["one.test"], IssueOptions::default());
    let store = CertStore::load(vec![src.clone()]).unwrap();
    assert!(store.reload_if_changed().is_none());
    // garbage in the certificate file
    std::fs::write(
        &src.cert,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = store.reload().unwrap_err().to_string();
    assert!(err.starts_with(&src.cert.display().to_string()), "{err}");
    assert_eq!(served(&store, None), ["one.test"]);
    // a key of another certificate
    let other = issue(&ca, &dir, "b", &["two.test"], IssueOptions::default());
    issue(&ca, &dir, "a", &["one.test"], IssueOptions::default());
    std::fs::copy(&other.key, &src.key).unwrap();
    let err = store.reload().unwrap_err().to_string();
    assert!(
        err.contains("the key does not match the certificate"),
        "{err}"
    );
    assert!(err.starts_with(&src.key.display().to_string()), "{err}");
    // a good pair again, noticed by its modification time
    issue(&ca, &dir, "a", &["three.test"], IssueOptions::default());
    let infos = store.reload_if_changed().expect("changed").unwrap();
    assert_eq!(infos[0].names, ["three.test"]);
    assert_eq!(served(&store, None), ["three.test"]);
    // a missing file
    std::fs::remove_file(&src.key).unwrap();
    let err = store.reload().unwrap_err().to_string();
    assert!(err.contains("cannot read"), "{err}");
    assert_eq!(served(&store, None), ["three.test"]);
}

#[test]
fn check_reports_every_problem() {
    let dir = tmpdir("check");
    let ca = DemoCa::create("test CA").unwrap();
    let good = issue(
        &ca,
        &dir,
        "good",
        &["api.example.test"],
        IssueOptions::default(),
    );
    let expired = issue(
        &ca,
        &dir,
        "old",
        &["old.test"],
        IssueOptions {
            days: -1,
            days_before: 30,
            ..Default::default()
        },
    );
    let missing = CertSource {
        cert: dir.join("nope.pem"),
        key: dir.join("nope.key"),
    };
    let (problems, infos) = switchyard_tls::check::check(
        &[good.clone(), expired.clone(), missing],
        &["api.example.test".into(), "www.example.test".into()],
        switchyard_tls::unix_now(),
    );
    let text: Vec<String> = problems.iter().map(|(i, m)| format!("{i:?} {m}")).collect();
    assert_eq!(problems.len(), 2, "{text:#?}");
    assert_eq!(problems[0].0, Some(1));
    assert!(problems[0].1.contains("expired"), "{text:#?}");
    assert_eq!(problems[1].0, Some(2));
    assert!(problems[1].1.contains("cannot read"), "{text:#?}");
    assert_eq!(infos.len(), 2);
    // names are judged once every file loads
    let (problems, _) = switchyard_tls::check::check(
        &[good, expired],
        &["api.example.test".into(), "www.example.test".into()],
        switchyard_tls::unix_now(),
    );
    assert_eq!(problems.len(), 2);
    assert_eq!(
        problems[1],
        (
            None,
            "no certificate covers the name \"www.example.test\"".into()
        )
    );
}

#[test]
fn client_certificates_are_classified() {
    let dir = tmpdir("mtls");
    let ca = DemoCa::create("client CA").unwrap();
    let other = DemoCa::create("other CA").unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    let check = ClientCertCheck::load(&dir.join("ca.pem")).unwrap();
    let chain = |ca: &DemoCa, opts: IssueOptions| {
        let src = issue(ca, &dir, "c", &["alice.clients.test"], opts);
        switchyard_tls::cert::read_chain(&src.cert).unwrap()
    };
    assert_eq!(check.check(None), ClientCert::None);
    let client = || IssueOptions {
        client: true,
        common_name: Some("alice".into()),
        ..Default::default()
    };
    match check.check(Some(&chain(&ca, client()))) {
        ClientCert::Valid {
            common_name, sans, ..
        } => {
            assert_eq!(common_name.as_deref(), Some("alice"));
            assert_eq!(sans, ["alice.clients.test"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        check.check(Some(&chain(&other, client()))),
        ClientCert::Invalid(_)
    ));
    let expired = IssueOptions {
        days: -1,
        days_before: 10,
        ..client()
    };
    match check.check(Some(&chain(&ca, expired))) {
        ClientCert::Invalid(why) => assert!(why.contains("expired"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_demo_ca_persists() {
    let dir = tmpdir("ca");
    let a = DemoCa::load_or_create(&dir).unwrap();
    let b = DemoCa::load_or_create(&dir).unwrap();
    assert_eq!(a.cert_pem(), b.cert_pem());
    // a certificate issued by the reloaded CA verifies against the first one's certificate
    std::fs::write(dir.join("trust.pem"), a.cert_pem()).unwrap();
    let check = ClientCertCheck::load(&dir.join("trust.pem")).unwrap();
    let src = issue(
        &b,
        &dir,
        "x",
        &["x.test"],
        IssueOptions {
            client: true,
            ..Default::default()
        },
    );
    let chain = switchyard_tls::cert::read_chain(&src.cert).unwrap();
    assert!(matches!(
        check.check(Some(&chain)),
        ClientCert::Valid { .. }
    ));
}
