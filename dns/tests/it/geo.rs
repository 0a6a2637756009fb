//! Geo answers in the demo world: ECS or source address -> MaxMind test database -> region.

use std::sync::Arc;

use hickory_proto::rr::RecordType;
use switchyard_balance::{AdminState, HealthRegistry};
use tokio_util::sync::CancellationToken;

use crate::harness::*;

/// The embedded demo world, DNS only (regions are probed by VIP, not run here), on port 0.
async fn demo_dns() -> (switchyard_dns::Dns, CancellationToken, std::net::SocketAddr) {
    let toml = switchyard_config::demo_toml().replace("127.0.0.1:8053", "127.0.0.1:0");
    let toml = format!("[node]\nonly = [\"dns\"]\n{toml}");
    let world = switchyard_config::parse_str(&toml, "demo").expect("demo world");
    let token = CancellationToken::new();
    let registry = HealthRegistry::with_admin(AdminState::new());
    let dns = switchyard_dns::start(Arc::new(world), registry, token.clone())
        .await
        .unwrap();
    let addr = dns.local_addrs()[0];
    (dns, token, addr)
}

#[tokio::test]
async fn demo_world_answers_by_client_location() {
    let (dns, token, addr) = demo_dns().await;
    // GB client via ECS -> eu-west, scope = the /24 we looked at
    let q = with_edns(
        query("api.example.test.", RecordType::A),
        1232,
        Some(("81.2.69.160", 27)),
    );
    let r = udp(addr, &q).await;
    assert_eq!(rcode(&r), 0);
    assert!(r.metadata.authoritative);
    assert_eq!(addrs(&r.answers), vec![ip("127.0.2.1")]);
    assert_eq!(r.answers[0].ttl, 10);
    assert_eq!(ecs_of(&r), Some((27, 24, ip("81.2.69.160"))));
    // US client via ECS -> us-east
    let q = with_edns(
        query("api.example.test.", RecordType::A),
        1232,
        Some(("216.160.83.56", 29)),
    );
    let r = udp(addr, &q).await;
    assert_eq!(addrs(&r.answers), vec![ip("127.0.1.1")]);
    assert_eq!(ecs_of(&r), Some((29, 24, ip("216.160.83.56"))));
    // JP (IPv6 ECS, continent AS) -> eu-west; scope = the database's /32 network
    let q = with_edns(
        query("api.example.test.", RecordType::A),
        1232,
        Some(("2001:218::", 48)),
    );
    let r = udp(addr, &q).await;
    assert_eq!(addrs(&r.answers), vec![ip("127.0.2.1")]);
    assert_eq!(ecs_of(&r), Some((48, 32, ip("2001:218::"))));
    // no ECS, from 127.0.0.1 (not in the database) -> the default region us-east
    let r = udp(addr, &query("api.example.test.", RecordType::A)).await;
    assert_eq!(addrs(&r.answers), vec![ip("127.0.1.1")]);
    assert!(r.edns.is_none());
    // ECS source /0 = "do not use my address": default region, scope 0
    let q = with_edns(
        query("api.example.test.", RecordType::A),
        1232,
        Some(("0.0.0.0", 0)),
    );
    let r = udp(addr, &q).await;
    assert_eq!(addrs(&r.answers), vec![ip("127.0.1.1")]);
    assert_eq!(ecs_of(&r).map(|e| (e.0, e.1)), Some((0, 0)));
    // the rest of the demo zone
    let r = udp(addr, &query("nope.example.test.", RecordType::A)).await;
    assert_eq!(rcode(&r), 3);
    assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
    let r = udp(addr, &query("example.com.", RecordType::A)).await;
    assert_eq!(rcode(&r), 5);
    // www is a CNAME to the GSLB name: chased, and the geo choice applies
    let q = with_edns(
        query("www.example.test.", RecordType::A),
        1232,
        Some(("81.2.69.160", 27)),
    );
    let r = udp(addr, &q).await;
    assert_eq!(r.answers.len(), 2);
    assert_eq!(r.answers[1].name.to_ascii(), "api.example.test.");
    assert_eq!(addrs(&r.answers), vec![ip("127.0.2.1")]);
    // AAAA: the regions have no IPv6 VIP -> NODATA with the SOA
    let r = udp(addr, &query("api.example.test.", RecordType::AAAA)).await;
    assert_eq!(rcode(&r), 0);
    assert!(r.answers.is_empty());
    assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
    token.cancel();
    dns.wait().await;
}

#[tokio::test]
async fn explain_says_why() {
    let (dns, token, _) = demo_dns().await;
    let ex = dns
        .explain(
            "api.example.test",
            ip("10.9.9.9"),
            Some("81.2.69.160/27".parse().unwrap()),
        )
        .unwrap();
    assert_eq!(ex.policy, "geo");
    assert_eq!(ex.matched, "continent EU -> eu-west");
    assert_eq!(ex.chosen, vec!["eu-west"]);
    assert_eq!(ex.order, vec!["eu-west", "us-east"]);
    assert_eq!(ex.addresses, vec![ip("127.0.2.1")]);
    assert_eq!((ex.ttl, ex.ecs_scope), (10, 24));
    let client = ex.client.as_ref().unwrap();
    assert_eq!(
        (client.network.as_deref(), client.source.as_str()),
        (Some("81.2.69.0/24"), "ecs")
    );
    assert_eq!(client.country.as_deref(), Some("GB"));
    let json = serde_json::to_value(&ex).unwrap();
    assert_eq!(json["chosen"][0], "eu-west");
    assert_eq!(ex.dnssec, None, "the zone is not signed");
    let ex = dns
        .explain("api.example.test.", ip("127.0.0.1"), None)
        .unwrap();
    assert_eq!(
        ex.matched,
        "127.0.0.0/24 not in the geo database: default region us-east"
    );
    assert!(dns
        .explain("www.example.test.", ip("127.0.0.1"), None)
        .is_err());
    token.cancel();
    dns.wait().await;
}
