use super::{Forwarding, IoEngine};

/// The demo world with `extra` added to the first listener.
fn with_listener_line(extra: &str) -> String {
    crate::demo_toml().replacen(
        "  pool = \"us-east-gateways\"\n",
        &format!("  pool = \"us-east-gateways\"\n  {extra}\n"),
        1,
    )
}

#[test]
fn forwarding_defaults_to_auto_and_parses_each_mode() {
    let w = crate::parse_str(&with_listener_line(""), "demo").unwrap();
    assert_eq!(w.regions[0].listeners[0].forwarding, Forwarding::Auto);
    for (s, f) in [
        ("auto", Forwarding::Auto),
        ("splice", Forwarding::Splice),
        ("copy", Forwarding::Copy),
    ] {
        let w = crate::parse_str(
            &with_listener_line(&format!("forwarding = \"{s}\"")),
            "demo",
        )
        .unwrap();
        assert_eq!(w.regions[0].listeners[0].forwarding, f);
    }
    let e = crate::parse_str(&with_listener_line("forwarding = \"zero\""), "demo").unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("forwarding") && msg.contains("\"auto\", \"splice\" or \"copy\""),
        "{msg}"
    );
}

#[test]
fn io_engine_defaults_to_io_uring_and_parses_each_engine() {
    let w = crate::parse_str(&with_listener_line(""), "demo").unwrap();
    assert_eq!(w.regions[0].listeners[0].io_engine, IoEngine::IoUring);
    for (s, e) in [("epoll", IoEngine::Epoll), ("io_uring", IoEngine::IoUring)] {
        let w =
            crate::parse_str(&with_listener_line(&format!("io_engine = \"{s}\"")), "demo").unwrap();
        assert_eq!(w.regions[0].listeners[0].io_engine, e);
    }
    let e = crate::parse_str(&with_listener_line("io_engine = \"kqueue\""), "demo").unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("io_engine") && msg.contains("\"epoll\" or \"io_uring\""),
        "{msg}"
    );
}

#[test]
fn listener_limits_are_validated() {
    let e = crate::parse_str(&with_listener_line("pipe_size = 10"), "demo").unwrap_err();
    assert!(e.to_string().contains("pipe_size"), "{e}");
    let e = crate::parse_str(
        &with_listener_line("source_rate = { per_second = 0.0, burst = 1 }"),
        "demo",
    )
    .unwrap_err();
    assert!(e.to_string().contains("source_rate"), "{e}");
}

/// The demo world with a second pool `tls` (no PROXY protocol) in us-east and the first
/// listener's `pool = ...` line replaced by `lines`.
fn sni_world(lines: &str) -> String {
    crate::demo_toml()
            .replacen(
                "  [[regions.listeners]]\n",
                "  [[regions.pools]]\n  name = \"tls\"\n  members = [{ addr = \"127.0.1.21:443\", az = \"us-east-a\" }]\n\n  [[regions.listeners]]\n",
                1,
            )
            .replacen("  pool = \"us-east-gateways\"\n", &format!("{lines}\n"), 1)
}

#[test]
fn sni_routes_parse_lowercased_with_a_default() {
    let w = crate::parse_str(
            &sni_world(
                "  sni = [{ names = [\"A.Example\", \"*.b.example\"], pool = \"tls\" }, { names = [\"c.example\"], pool = \"us-east-gateways\" }]\n  sni_default = \"us-east-gateways\"\n  sni_timeout = \"300ms\"",
            ),
            "demo",
        )
        .unwrap();
    let l = &w.regions[0].listeners[0];
    let sni = l.sni.as_ref().unwrap();
    assert_eq!(sni.routes[0].names, ["a.example", "*.b.example"]);
    assert_eq!(
        (sni.routes[0].pool.as_str(), sni.routes[0].pool_index),
        ("tls", 1)
    );
    assert_eq!(sni.routes[1].pool_index, 0);
    assert_eq!(sni.default, Some(("us-east-gateways".into(), 0)));
    assert_eq!(sni.timeout, std::time::Duration::from_millis(300));
    assert!(!sni.tlvs);
    assert_eq!((l.pool.as_str(), l.pool_index), ("us-east-gateways", 0));
    // without sni_default, unmatched connections close; explain shows the first route's pool
    let w = crate::parse_str(
        &sni_world("  sni = [{ names = [\"a.example\"], pool = \"tls\" }]"),
        "demo",
    )
    .unwrap();
    let l = &w.regions[0].listeners[0];
    assert_eq!(l.sni.as_ref().unwrap().default, None);
    assert_eq!(l.pool, "tls");
    // a plain listener has no SNI table
    assert!(crate::parse_str(crate::demo_toml(), "demo")
        .unwrap()
        .regions[0]
        .listeners[0]
        .sni
        .is_none());
}

#[test]
fn sni_errors_are_located() {
    let cases: &[(&str, &[&str])] = &[
            (
                "  sni = [{ names = [\"a.example\"], pool = \"nope\" }]",
                &["listeners[0].sni[0].pool", "unknown pool \"nope\""],
            ),
            (
                "  sni = [{ names = [\"a.example\"], pool = \"tls\" }, { names = [\"A.example\"], pool = \"tls\" }]",
                &["listeners[0].sni[1].names[0]", "duplicate name \"a.example\" (also in sni[0])"],
            ),
            (
                "  sni = [{ names = [\"a*.example\", \"*\", \"x.*.example\", \"a..b\"], pool = \"tls\" }]",
                &["sni[0].names[0]", "sni[0].names[1]", "sni[0].names[2]", "sni[0].names[3]", "wildcard"],
            ),
            (
                "  sni = [{ names = [], pool = \"tls\" }]",
                &["sni[0].names", "at least one name"],
            ),
            (
                "  pool = \"tls\"\n  sni = [{ names = [\"a.example\"], pool = \"tls\" }]",
                &["listeners[0].pool", "takes no `pool`"],
            ),
            (
                "  pool = \"tls\"\n  sni_default = \"tls\"",
                &["listeners[0].sni_default", "only with `sni`"],
            ),
            (
                "  sni = [{ names = [\"a.example\"], pool = \"tls\" }]\n  sni_default = \"gone\"",
                &["listeners[0].sni_default", "unknown pool \"gone\""],
            ),
            (
                "  sni = [{ names = [\"a.example\"], pool = \"us-east-gateways\" }]\n  sni_default = \"tls\"\n  proxy_tlvs = true",
                &["listeners[0].proxy_tlvs", "pool \"tls\""],
            ),
            ("  backlog = 5", &["listeners[0].pool", "missing"]),
        ];
    for (lines, wants) in cases {
        let e = crate::parse_str(&sni_world(lines), "demo")
            .unwrap_err()
            .to_string();
        for w in *wants {
            assert!(e.contains(w), "{lines}: want {w:?} in\n{e}");
        }
    }
    // PROXY v2 everywhere: TLVs are fine, also on a listener without routes
    let w = crate::parse_str(
        &sni_world("  pool = \"us-east-gateways\"\n  proxy_tlvs = true"),
        "demo",
    )
    .unwrap();
    let sni = w.regions[0].listeners[0].sni.clone().unwrap();
    assert!(sni.tlvs && sni.routes.is_empty());
    assert_eq!(sni.default, Some(("us-east-gateways".into(), 0)));
}

#[test]
fn sni_patterns() {
    for ok in ["a.example", "*.example", "_x.a-b.c9", "localhost"] {
        assert_eq!(super::sni_pattern(ok), Ok(()), "{ok}");
    }
    for bad in [
        "", "*", "*.", "**.a", "a.*", "a.*.b", "a..b", ".a", "a.", "a b", "é.a",
    ] {
        assert!(super::sni_pattern(bad).is_err(), "{bad}");
    }
    assert!(super::sni_pattern(&"a".repeat(64)).is_err());
}

/// The demo world with `extra` added to the us-east pool (after its `drain_deadline`).
fn with_pool_line(extra: &str) -> String {
    crate::demo_toml().replacen(
        "  drain_deadline = \"10s\"\n",
        &format!("  drain_deadline = \"10s\"\n  {extra}\n"),
        1,
    )
}

fn errors(src: &str) -> Vec<(String, String, bool)> {
    crate::parse_str(src, "demo")
        .unwrap_err()
        .errors
        .into_iter()
        .map(|e| (e.path, e.message, e.position.is_some()))
        .collect()
}

#[test]
fn spill_defaults_to_the_failover_order_through_the_spill_ingress() {
    let w = crate::demo_world();
    let (us, eu) = (&w.regions[0], &w.regions[1]);
    assert_eq!(us.pools[0].spill_to, None);
    assert_eq!(us.pools[0].spill_below, 1);
    assert_eq!(eu.listeners[0].spill_port, Some(8081));
    let t = crate::region::spill_targets(&w.regions, us, &us.pools[0]);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].0.name, "eu-west");
    assert_eq!(t[0].1, vec!["127.0.2.1:8081".parse().unwrap()]);
    let w = crate::parse_str(&with_pool_line("spill_to = []"), "demo").unwrap();
    assert!(
        crate::region::spill_targets(&w.regions, &w.regions[0], &w.regions[0].pools[0]).is_empty()
    );
}

#[test]
fn spill_errors_carry_their_line() {
    let e = errors(&with_pool_line(
        "spill_to = [\"us-east\", \"mars\", \"eu-west\", \"eu-west\"]\n  spill_below = 0",
    ));
    let e: Vec<_> = e
        .iter()
        .map(|(p, m, pos)| (p.as_str(), m.as_str(), *pos))
        .collect();
    assert_eq!(
        e,
        [
            (
                "regions[0].pools[0].spill_to[0]",
                "a pool cannot spill to its own region",
                true
            ),
            (
                "regions[0].pools[0].spill_to[1]",
                "unknown region \"mars\"",
                true
            ),
            (
                "regions[0].pools[0].spill_to[3]",
                "region \"eu-west\" is listed twice",
                true
            ),
            (
                "regions[0].pools[0].spill_below",
                "must be at least 1",
                true
            ),
        ]
    );
    // a named region without a spill ingress
    let src = with_pool_line("spill_to = [\"eu-west\"]");
    let src = {
        // drop eu-west's spill_port (the second one)
        let i = src.rfind("  spill_port = 8081\n").unwrap();
        format!("{}{}", &src[..i], &src[i + "  spill_port = 8081\n".len()..])
    };
    assert_eq!(
        errors(&src),
        [(
            "regions[0].pools[0].spill_to[0]".to_string(),
            "region \"eu-west\" has no spill ingress; give one of its listeners a `spill_port`"
                .to_string(),
            true
        )]
    );
    let e = errors(&crate::demo_toml().replacen("spill_port = 8081", "spill_port = 8080", 1));
    assert_eq!(e[0].0, "regions[0].listeners[0].spill_port");
    assert!(e[0].2);
}
