//! GSLB policies over the wire: failover, weighted distribution, multivalue, nearest, all-down.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::RecordType;
use switchyard_dns::gslb::{AllDown, Policy, RegionState, StaticHealth};
use switchyard_dns::spec::{GeoSpec, GslbSpec, RegionSpec};

use crate::harness::*;

fn region(name: &str, vips: &[&str], weight: u32) -> RegionSpec {
    RegionSpec {
        name: name.into(),
        vips: vips.iter().map(|v| v.parse::<IpAddr>().unwrap()).collect(),
        weight,
        ..Default::default()
    }
}

fn gslb(name: &str, policy: Policy, regions: Vec<RegionSpec>, all_down: AllDown) -> GslbSpec {
    GslbSpec {
        name: name.into(),
        policy,
        regions,
        ttl: 30,
        all_down,
        default_region: None,
    }
}

fn three() -> Vec<RegionSpec> {
    vec![
        region("r1", &["127.0.1.1", "2001:db8::1"], 1),
        region("r2", &["127.0.2.1"], 3),
        region("r3", &["127.0.3.1", "127.0.3.2"], 0),
    ]
}

#[tokio::test]
async fn failover_takes_the_first_healthy_region_and_all_down_rules_apply() {
    let names = vec![
        gslb(
            "fo.example.test.",
            Policy::Failover,
            three(),
            AllDown::FailOpen,
        ),
        gslb(
            "sf.example.test.",
            Policy::Failover,
            three(),
            AllDown::Servfail,
        ),
        gslb(
            "lr.example.test.",
            Policy::Failover,
            three(),
            AllDown::LastResort(vec!["192.0.2.250".parse().unwrap()]),
        ),
    ];
    let up = StaticHealth::default();
    let r1_down = StaticHealth::default().with("r1", RegionState::Down);
    let all_down = StaticHealth::default()
        .with("r1", RegionState::Down)
        .with("r2", RegionState::Drained)
        .with("r3", RegionState::ForcedDown);
    let s = serve_with(spec(names.clone()), Arc::new(up)).await;
    let r = udp(s.addr, &query("fo.example.test.", RecordType::A)).await;
    assert_eq!(addrs(&r.answers), vec![ip("127.0.1.1")]);
    assert_eq!(r.answers[0].ttl, 30);
    let r = udp(s.addr, &query("fo.example.test.", RecordType::AAAA)).await;
    assert_eq!(addrs(&r.answers), vec![ip("2001:db8::1")]);
    let h = s.handle.as_ref().unwrap();
    h.reload(spec(names.clone()), Arc::new(r1_down)).unwrap();
    let r = udp(s.addr, &query("fo.example.test.", RecordType::A)).await;
    assert_eq!(addrs(&r.answers), vec![ip("127.0.2.1")]);
    h.reload(spec(names), Arc::new(all_down)).unwrap();
    let r = udp(s.addr, &query("fo.example.test.", RecordType::A)).await;
    assert_eq!(
        addrs(&r.answers),
        vec![ip("127.0.1.1")],
        "fail open: configured order"
    );
    let r = udp(s.addr, &query("sf.example.test.", RecordType::A)).await;
    assert_eq!(rcode(&r), 2, "SERVFAIL");
    assert!(r.answers.is_empty());
    let r = udp(s.addr, &query("lr.example.test.", RecordType::A)).await;
    assert_eq!(addrs(&r.answers), vec![ip("192.0.2.250")]);
}

#[tokio::test]
async fn weighted_distribution_matches_weights() {
    let names = vec![gslb(
        "w.example.test.",
        Policy::Weighted,
        three(),
        AllDown::FailOpen,
    )];
    let s = serve(spec(names)).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut counts = std::collections::HashMap::<IpAddr, usize>::new();
    let n = 4000;
    let mut buf = [0u8; 1500];
    for _ in 0..n {
        let q = query("w.example.test.", RecordType::A);
        sock.send_to(&q.to_vec().unwrap(), s.addr).await.unwrap();
        let (len, _) =
            tokio::time::timeout(std::time::Duration::from_secs(2), sock.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
        let r = decode(&buf[..len], q.metadata.id);
        let a = addrs(&r.answers);
        assert_eq!(a.len(), 1);
        *counts.entry(a[0]).or_default() += 1;
    }
    // weights 1:3:0 -> 25% / 75% / 0%, with a 4-sigma band (sigma = sqrt(n p q) ~ 27)
    let r1 = counts.get(&ip("127.0.1.1")).copied().unwrap_or(0);
    let r2 = counts.get(&ip("127.0.2.1")).copied().unwrap_or(0);
    assert_eq!(r1 + r2, n, "weight 0 never answers: {counts:?}");
    assert!((1000i64 - r1 as i64).abs() < 110, "{counts:?}");
}

#[tokio::test]
async fn multivalue_returns_only_healthy_vips_up_to_max() {
    let names = vec![
        gslb(
            "mv.example.test.",
            Policy::Multivalue { max: 8 },
            three(),
            AllDown::FailOpen,
        ),
        gslb(
            "mv2.example.test.",
            Policy::Multivalue { max: 2 },
            three(),
            AllDown::FailOpen,
        ),
    ];
    let health = StaticHealth::default().with("r2", RegionState::Down);
    let s = serve_with(spec(names), Arc::new(health)).await;
    let r = udp(s.addr, &query("mv.example.test.", RecordType::A)).await;
    assert_eq!(
        addrs(&r.answers),
        vec![ip("127.0.1.1"), ip("127.0.3.1"), ip("127.0.3.2")]
    );
    assert_eq!(ecs_of(&r), None);
    let r = udp(s.addr, &query("mv2.example.test.", RecordType::A)).await;
    assert_eq!(addrs(&r.answers), vec![ip("127.0.1.1"), ip("127.0.3.1")]);
    let q = with_edns(
        query("mv.example.test.", RecordType::A),
        1232,
        Some(("81.2.69.160", 27)),
    );
    let r = udp(s.addr, &q).await;
    assert_eq!(
        ecs_of(&r),
        Some((27, 0, ip("81.2.69.160"))),
        "scope 0: not location dependent"
    );
}

#[tokio::test]
async fn nearest_picks_the_closest_region_by_city_coordinates() {
    let mut london = region("london", &["127.0.2.1"], 1);
    london.coordinates = Some((51.5, -0.12));
    let mut seattle = region("seattle", &["127.0.1.1"], 1);
    seattle.coordinates = Some((47.6, -122.3));
    let mut tokyo = region("tokyo", &["127.0.3.1"], 1);
    tokyo.coordinates = Some((35.7, 139.7));
    let names = vec![gslb(
        "near.example.test.",
        Policy::Nearest,
        vec![seattle, london, tokyo],
        AllDown::FailOpen,
    )];
    let mut sp = spec(names.clone());
    let city = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/geo/GeoLite2-City-Test.mmdb");
    sp.geo = Some(GeoSpec::File(city));
    let s = serve_with(sp.clone(), Arc::new(StaticHealth::default())).await;
    for (client, prefix, want) in [
        ("81.2.69.160", 27, "127.0.2.1"),
        ("216.160.83.56", 29, "127.0.1.1"),
        ("2001:218::", 32, "127.0.3.1"),
    ] {
        let q = with_edns(
            query("near.example.test.", RecordType::A),
            1232,
            Some((client, prefix)),
        );
        let r = udp(s.addr, &q).await;
        assert_eq!(addrs(&r.answers), vec![ip(want)], "{client}");
        assert!(
            ecs_of(&r).unwrap().1 > 0,
            "location-dependent answer has a scope"
        );
    }
    // nearest healthy: London down -> a GB client goes to the next closest (Seattle)
    s.handle
        .as_ref()
        .unwrap()
        .reload(
            sp,
            Arc::new(StaticHealth::default().with("london", RegionState::Down)),
        )
        .unwrap();
    let q = with_edns(
        query("near.example.test.", RecordType::A),
        1232,
        Some(("81.2.69.160", 27)),
    );
    let r = udp(s.addr, &q).await;
    assert_eq!(addrs(&r.answers), vec![ip("127.0.1.1")]);
}
