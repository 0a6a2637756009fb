//! Validation tests: the demo round-trips, and each kind of mistake is reported where it is.

use crate::{demo_toml, demo_toml_on, demo_world, parse_str, RawWorld};

#[test]
fn demo_world_round_trips_through_the_printer() {
    let raw = RawWorld::from_toml(demo_toml(), "<demo>").unwrap();
    let model = raw.validate(None, "<demo>").unwrap();
    let printed = toml::to_string(&raw).unwrap();
    let reparsed = parse_str(&printed, "<printed>").unwrap();
    assert_eq!(model, reparsed);
    assert_eq!(model, demo_world());
}

#[test]
fn demo_world_has_the_documented_shape() {
    let w = demo_world();
    assert_eq!(w.dns.listen, vec!["127.0.0.1:8053".parse().unwrap()]);
    assert_eq!(w.admin.listen, "127.0.0.1:9901".parse().unwrap());
    let names: Vec<_> = w.regions.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["us-east", "eu-west"]);
    assert_eq!(
        w.regions[0].listeners[0].addrs,
        vec!["127.0.1.1:8080".parse().unwrap()]
    );
    assert_eq!(
        w.regions[1].listeners[0].addrs,
        vec!["127.0.2.1:8080".parse().unwrap()]
    );
    assert_eq!(w.gateway.instances.len(), 4);
    let svcs: Vec<_> = w.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(svcs, ["user", "order", "payment", "cart"]);
    assert!(w
        .services
        .iter()
        .all(|s| s.instances.len() == 4 && s.instances.iter().all(|i| i.demo)));
    assert_eq!(w.dns.gslb[0].name, "api.example.test.");
    assert_eq!(
        w.summary(),
        "2 regions, 4 AZs, 2 L4 listeners (4 pool members), 4 gateway instances, 4 services (16 instances), 7 routes, 1 zones, 1 GSLB names"
    );
}

#[test]
fn demo_world_moves_to_another_net() {
    let w = parse_str(&demo_toml_on(42), "<demo42>").unwrap();
    assert_eq!(w.dns.listen, vec!["127.42.0.1:8053".parse().unwrap()]);
    assert_eq!(
        w.regions[1].vips,
        vec!["127.42.2.1".parse::<std::net::IpAddr>().unwrap()]
    );
}

/// Applies `edit` to the demo text and returns the single error it must produce.
fn single_error(edit: impl Fn(&str) -> String) -> (String, usize, String) {
    let src = edit(demo_toml());
    assert_ne!(src, demo_toml(), "the edit changed nothing");
    let errs = parse_str(&src, "t.toml")
        .expect_err("broken config accepted")
        .errors;
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    let e = &errs[0];
    let (line, _) = e.position.expect("error has a position");
    (e.path.clone(), line, e.message.clone())
}

fn line_of(src: &str, needle: &str) -> usize {
    src[..src.find(needle).expect("needle present")]
        .matches('\n')
        .count()
        + 1
}

#[test]
fn broken_configs_name_path_and_line() {
    struct Case {
        from: &'static str,
        to: &'static str,
        path: &'static str,
        says: &'static str,
    }
    let cases = [
        Case { from: "min_healthy = 1\n\n  [[regions.azs]]\n  name = \"us-east-a\"", to: "min_healthy = 1\nbogus_key = 3\n\n  [[regions.azs]]\n  name = \"us-east-a\"", path: "regions[0].bogus_key", says: "unknown field `bogus_key`" },
        Case { from: "drain_deadline = \"10s\"", to: "drain_deadline = \"10 parsecs\"", path: "regions[0].pools[0].drain_deadline", says: "invalid duration" },
        Case { from: "listen = \"127.0.2.12:8000\"", to: "listen = \"127.0.2.11:8000\"", path: "gateway.instances[3].listen", says: "already used by gateway.instances[2].listen" },
        Case { from: "prefix = \"/v1/cart\"\n  methods = [\"GET\"]\n  auth = \"roles\"\n  roles_any = [\"customer\"]\n  service = \"cart\"", to: "prefix = \"/v1/cart\"\n  methods = [\"GET\"]\n  auth = \"roles\"\n  roles_any = [\"customer\"]\n  service = \"basket\"", path: "gateway.routes[4].service", says: "unknown service \"basket\"" },
        Case { from: "addr = \"127.0.1.12:8000\", az = \"us-east-b\"", to: "addr = \"127.0.1.12:8000\", az = \"us-east-z\"", path: "regions[0].pools[0].members[1].az", says: "unknown AZ \"us-east-z\" of region \"us-east\"" },
        Case { from: "name = \"eu-west-b\"\n", to: "name = \"eu-west-b\"\n  weight = 0\n", path: "regions[1].azs[1].weight", says: "weight must be greater than 0" },
        Case { from: "continents = [\"NA\", \"SA\"]", to: "continents = [\"NA\", \"SA\"]\nnetworks = [\"10.0.0.0/33\"]", path: "regions[0].networks[0]", says: "is not a CIDR network" },
    ];
    for c in cases {
        let (path, line, msg) = single_error(|s| s.replacen(c.from, c.to, 1));
        assert_eq!(path, c.path, "{msg}");
        assert!(
            msg.contains(c.says),
            "{path}: {msg:?} does not say {:?}",
            c.says
        );
        let key = c
            .path
            .rsplit('.')
            .next()
            .unwrap()
            .split('[')
            .next()
            .unwrap();
        let expected_line = line_of(demo_toml(), c.from)
            + c.to[..c.to.find(key).unwrap_or(0)].matches('\n').count();
        assert_eq!(line, expected_line, "{path}: wrong line");
    }
}

#[test]
fn every_error_in_a_file_is_reported_in_order() {
    let src = demo_toml()
        .replacen("az = \"us-east-b\" }", "az = \"nowhere\" }", 1)
        .replacen("service = \"cart\"", "service = \"nope\"", 1)
        .replacen(
            "listen = [\"127.0.0.1:8053\"]",
            "listen = [\"not-an-address\"]",
            1,
        )
        .replacen("policy = \"geo\"", "policy = \"astrology\"", 1);
    let errs = parse_str(&src, "t.toml").unwrap_err();
    let paths: Vec<_> = errs.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "regions[0].pools[0].members[1].az",
            "gateway.routes[4].service",
            "dns.listen[0]",
            "dns.gslb[0].policy"
        ]
    );
    let lines: Vec<_> = errs.errors.iter().map(|e| e.position.unwrap().0).collect();
    assert!(lines.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
    let text = errs.to_string();
    assert!(
        text.starts_with("t.toml: 4 errors in configuration\n"),
        "{text}"
    );
}

#[test]
fn unknown_keys_and_wrong_types_are_reported_with_the_other_errors() {
    let src = demo_toml()
        // unknown key in an AZ, wrong type in a pool, unknown table at the end
        .replacen("min_healthy = 1\n", "min_healthy = 1\nbogus_key = 3\n", 1)
        .replacen("drain_deadline = \"10s\"", "drain_deadline = 10", 1)
        // two validation errors
        .replacen("az = \"us-east-b\" }", "az = \"nowhere\" }", 1)
        .replacen("service = \"cart\"", "service = \"nope\"", 1)
        + "\n[extras]\nx = 1\n";
    let errs = parse_str(&src, "t.toml").unwrap_err().errors;
    let got: Vec<_> = errs
        .iter()
        .map(|e| (e.path.as_str(), e.position.map(|p| p.0)))
        .collect();
    let line = |needle: &str| Some(line_of(&src, needle));
    assert_eq!(
        got,
        [
            ("regions[0].bogus_key", line("bogus_key = 3")),
            (
                "regions[0].pools[0].drain_deadline",
                line("drain_deadline = 10")
            ),
            (
                "regions[0].pools[0].members[1].az",
                line("az = \"nowhere\"")
            ),
            ("gateway.routes[4].service", line("service = \"nope\"")),
            ("extras", line("[extras]")),
        ],
        "{errs:#?}"
    );
    assert!(errs[0].message.contains("unknown field `bogus_key`"));
    assert!(errs[4].message.contains("unknown field `extras`"));
}

#[test]
fn a_required_key_of_the_wrong_type_is_reported_once() {
    let src = demo_toml().replacen("name = \"us-east-a\"", "name = 7", 1);
    let errs = parse_str(&src, "t.toml").unwrap_err().errors;
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].path, "regions[0].azs[0].name");
    assert!(errs[0].message.contains("invalid type"), "{errs:#?}");
}

#[test]
fn non_loopback_admin_needs_a_token() {
    let src = demo_toml().replace("listen = \"127.0.0.1:9901\"\n# Documented demo token (loopback only). Use your own secret in a real deployment.\ntoken = \"demo-admin-token\"", "listen = \"0.0.0.0:9901\"");
    let errs = parse_str(&src, "t").unwrap_err().errors;
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "admin.token");
}

#[test]
fn syntax_errors_have_a_position() {
    let errs = parse_str("[admin\nlisten = 1", "t").unwrap_err().errors;
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].position.map(|p| p.0), Some(1));
}

#[test]
fn node_lb_max_connections_defaults_and_must_be_positive() {
    assert_eq!(
        demo_world().node.lb_max_connections,
        crate::world::DEFAULT_LB_MAX_CONNECTIONS
    );
    let set = |n: u32| {
        demo_toml().replacen(
            "[admin]",
            &format!("[node]\nlb_max_connections = {n}\n\n[admin]"),
            1,
        )
    };
    let w = parse_str(&set(5000), "t.toml").expect("valid");
    assert_eq!(w.node.lb_max_connections, 5000);
    let (path, line, msg) = single_error(|_| set(0));
    assert_eq!(path, "node.lb_max_connections");
    assert!(msg.contains("greater than 0"), "{msg}");
    assert_eq!(line, line_of(demo_toml(), "[admin]") + 1);
}

#[test]
fn dns_rrl_is_optional_defaulted_and_checked() {
    assert_eq!(demo_world().dns.rrl, None);
    let w = parse_str(
        &format!("{}\n[dns.rrl]\nresponses_per_second = 20\n", demo_toml()),
        "t.toml",
    )
    .expect("valid");
    assert_eq!(
        w.dns.rrl,
        Some(crate::dns::Rrl {
            responses_per_second: 20,
            burst: 20,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
        })
    );
    let errs = parse_str(
        &format!(
            "{}\n[dns.rrl]\nresponses_per_second = 0\nipv4_prefix = 33\n",
            demo_toml()
        ),
        "t.toml",
    )
    .unwrap_err()
    .errors;
    let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["dns.rrl.responses_per_second", "dns.rrl.ipv4_prefix"]
    );
}

#[test]
fn gateway_cors_is_optional_defaulted_and_checked() {
    assert_eq!(demo_world().gateway.cors, None);
    let w = parse_str(
        &format!(
            "{}\n[gateway.cors]\nallow_origins = [\"https://App.example.test\"]\n",
            demo_toml()
        ),
        "t.toml",
    )
    .expect("valid");
    let c = w.gateway.cors.expect("cors");
    assert_eq!(
        c.allow_origins,
        Some(vec!["https://app.example.test".to_string()])
    );
    assert_eq!(
        c.allow_methods,
        ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    );
    assert_eq!(c.max_age, std::time::Duration::from_secs(600));
    let errs = parse_str(
        &format!(
            "{}\n[gateway.cors]\nallow_origins = [\"*\", \"app.example.test/x\"]\nallow_methods = [\"G ET\"]\nallow_credentials = true\n",
            demo_toml()
        ),
        "t.toml",
    )
    .unwrap_err()
    .errors;
    let mut paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "gateway.cors.allow_credentials",
            "gateway.cors.allow_methods[0]",
            "gateway.cors.allow_origins",
            "gateway.cors.allow_origins[1]",
        ]
    );
}

#[test]
fn a_route_split_names_services_with_positive_weights() {
    let ok = demo_toml().replacen(
        "service = \"cart\"",
        "split = [{ service = \"cart\", weight = 9 }, { service = \"order\", weight = 1 }]\n  sticky = false",
        1,
    );
    let w = parse_str(&ok, "t.toml").expect("valid");
    let r = &w.gateway.routes[4];
    let names: Vec<_> = r
        .split
        .iter()
        .map(|(i, wt)| (w.services[*i].name.as_str(), *wt))
        .collect();
    assert_eq!(names, [("cart", 9), ("order", 1)]);
    assert!(!r.sticky && r.service.is_none());
    let bad = demo_toml().replacen(
        "service = \"cart\"",
        "service = \"cart\"\n  split = [{ service = \"cart\", weight = 0 }, { service = \"nope\", weight = 1 }]",
        1,
    );
    let errs = parse_str(&bad, "t.toml").unwrap_err().errors;
    let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "gateway.routes[4]",
            "gateway.routes[4].split[0].weight",
            "gateway.routes[4].split[1].service"
        ],
        "{errs:#?}"
    );
}

#[test]
fn dns_notify_takes_addresses_with_ports() {
    let with = |v: &str| demo_toml().replacen("[dns]\n", &format!("[dns]\nnotify = [{v}]\n"), 1);
    let w = parse_str(&with("\"127.0.0.2:5353\""), "t.toml").expect("valid");
    assert_eq!(w.dns.notify, ["127.0.0.2:5353".parse().unwrap()]);
    let (path, _, msg) = single_error(|_| with("\"127.0.0.2\""));
    assert_eq!(path, "dns.notify[0]");
    assert!(msg.contains("an address with a port"), "{msg}");
}

#[test]
fn upstream_tls_names_its_ca_relative_to_the_config_and_refuses_a_bad_server_name() {
    let src = demo_toml().replacen(
        "name = \"order\"\n",
        "name = \"order\"\ntls = { ca = \"certs/ca.pem\", server_name = \"orders.internal\" }\n",
        1,
    );
    let w = parse_str(&src, "t.toml")
        .unwrap()
        .resolve_paths(std::path::Path::new("/etc/switchyard"));
    let order = w.services.iter().find(|s| s.name == "order").unwrap();
    let t = order.tls.as_ref().unwrap();
    assert_eq!(t.ca, std::path::Path::new("/etc/switchyard/certs/ca.pem"));
    assert_eq!(t.server_name.as_deref(), Some("orders.internal"));
    assert!(w
        .services
        .iter()
        .filter(|s| s.name != "order")
        .all(|s| s.tls.is_none()));

    let (path, line, msg) = single_error(|s| {
        s.replacen(
            "name = \"order\"\n",
            "name = \"order\"\ntls = { ca = \"ca.pem\", server_name = \"not a name\" }\n",
            1,
        )
    });
    assert_eq!(path, "services[1].tls.server_name");
    assert_eq!(line, line_of(demo_toml(), "name = \"order\"\n") + 1);
    assert!(msg.contains("is not a DNS name or an IP address"), "{msg}");
}
