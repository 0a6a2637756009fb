use super::AllDown;
use crate::parse_str;

fn world(all_down: &str) -> String {
    format!(
        r#"
[[regions]]
name = "r1"
vips = ["127.0.1.1"]
  [[regions.azs]]
  name = "r1-a"
[dns]
listen = ["127.0.0.1:0"]
  [[dns.zones]]
  origin = "example.test."
  ns = ["ns1.example.test."]
  soa = {{ mname = "ns1", rname = "hostmaster" }}
  [[dns.gslb]]
  name = "api.example.test."
  policy = "failover"
  regions = ["r1"]
  all_down = "{all_down}"
"#
    )
}

#[test]
fn chaos_identity_version_and_nsid_are_off_unless_set() {
    let w = parse_str(&world("fail_open"), "t").unwrap();
    assert_eq!(
        (w.dns.identity, w.dns.version, w.dns.nsid),
        (None, None, None)
    );
    let set = world("fail_open").replacen(
        "[dns]\n",
        "[dns]\nidentity = \"ns1-fra\"\nversion = \"switchyard\"\nnsid = \"fra\"\n",
        1,
    );
    let w = parse_str(&set, "t").unwrap();
    assert_eq!(w.dns.identity.as_deref(), Some("ns1-fra"));
    assert_eq!(w.dns.version.as_deref(), Some("switchyard"));
    assert_eq!(w.dns.nsid.as_deref(), Some("fra"));
    let bad = world("fail_open").replacen("[dns]\n", "[dns]\nidentity = \"\"\n", 1);
    let e = parse_str(&bad, "t").unwrap_err().to_string();
    assert!(e.contains("dns.identity"), "{e}");
}

#[test]
fn all_down_choices() {
    let w = parse_str(&world("return_all"), "t").unwrap();
    assert_eq!(w.dns.gslb[0].all_down, AllDown::ReturnAll);
    assert_eq!(w.dns.gslb[0].ttl, std::time::Duration::from_secs(30));
    let w = parse_str(&world("servfail"), "t").unwrap();
    assert_eq!(w.dns.gslb[0].all_down, AllDown::Servfail);
    let e = parse_str(&world("shrug"), "t").unwrap_err().to_string();
    assert!(
        e.contains("dns.gslb[0].all_down") && e.contains("return_all"),
        "{e}"
    );
}

#[test]
fn dot_and_doh_parse_with_defaults_and_located_errors() {
    let cert = "certs = [{ cert = \"c.pem\", key = \"k.pem\" }]";
    let with =
        |lines: &str| world("fail_open").replacen("[dns]\n", &format!("[dns]\n{lines}\n"), 1);
    let w = parse_str(
            &with(&format!(
                "tls = {{ listen = [\"127.0.0.1:8853\"], {cert} }}\nhttps = {{ listen = [\"127.0.0.1:8443\"], {cert}, max_connections = 7 }}"
            )),
            "t",
        )
        .unwrap();
    let (dot, doh) = (w.dns.tls.unwrap(), w.dns.https.unwrap());
    assert_eq!(dot.listen, ["127.0.0.1:8853".parse().unwrap()]);
    assert_eq!((dot.path.as_str(), doh.path.as_str()), ("", "/dns-query"));
    assert_eq!(dot.certs[0].cert, std::path::PathBuf::from("c.pem"));
    assert_eq!((dot.max_connections, doh.max_connections), (1024, 7));
    assert_eq!(dot.idle_timeout, std::time::Duration::from_secs(30));
    let cases = [
            (format!("tls = {{ listen = [\"x\"], {cert} }}"), "dns.tls.listen[0]"),
            (format!("tls = {{ listen = [], {cert} }}"), "dns.tls.listen"),
            ("tls = { listen = [\"127.0.0.1:853\"], certs = [] }".to_string(), "dns.tls.certs"),
            (format!("tls = {{ listen = [\"127.0.0.1:853\"], {cert}, path = \"/q\" }}"), "dns.tls.path"),
            (format!("https = {{ listen = [\"127.0.0.1:443\"], {cert}, path = \"dns\" }}"), "dns.https.path"),
            (format!("https = {{ listen = [\"127.0.0.1:443\"], {cert}, idle_timeout = \"0s\" }}"), "dns.https.idle_timeout"),
            (format!("https = {{ listen = [\"127.0.0.1:443\"], {cert}, max_connections = 0 }}"), "dns.https.max_connections"),
            (format!("https = {{ listen = [\"127.0.0.1:0\"], {cert}, bogus = 1 }}"), "bogus"),
            // the same address as the DoT listener
            (format!("tls = {{ listen = [\"127.0.0.1:853\"], {cert} }}\nhttps = {{ listen = [\"127.0.0.1:853\"], {cert} }}"), "dns.https.listen[0]"),
        ];
    for (lines, want) in cases {
        let e = parse_str(&with(&lines), "t").unwrap_err().to_string();
        assert!(e.contains(want), "{lines}: want {want:?} in\n{e}");
    }
}

#[test]
fn the_demo_serves_dot_on_8853_and_doh_on_8443_and_the_plain_demo_neither() {
    let w = crate::demo::demo_world_https();
    let (dot, doh) = (w.dns.tls.unwrap(), w.dns.https.unwrap());
    assert_eq!(dot.listen, ["127.0.0.1:8853".parse().unwrap()]);
    assert_eq!(doh.listen, ["127.0.0.1:8443".parse().unwrap()]);
    assert_eq!(doh.path, "/dns-query");
    assert_eq!(dot.certs[0].cert, std::path::PathBuf::from("tls/api.pem"));
    let plain = crate::demo_toml();
    assert!(
        !plain.contains("8853") && !plain.contains("DNS over TLS"),
        "{plain}"
    );
    let w = crate::demo_world();
    assert!(w.dns.tls.is_none() && w.dns.https.is_none());
}
