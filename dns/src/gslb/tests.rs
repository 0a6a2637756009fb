//! The pure GSLB decision, without sockets.

use std::net::IpAddr;

use super::*;
use crate::geo::GeoInfo;
use crate::spec::{build_gslb, GslbSpec, RegionSpec};

fn region(name: &str, vip: &str) -> RegionSpec {
    RegionSpec {
        name: name.into(),
        vips: vec![vip.parse().unwrap()],
        weight: 1,
        ..Default::default()
    }
}

fn name(policy: Policy, regions: Vec<RegionSpec>, all_down: AllDown) -> GslbName {
    build_gslb(&GslbSpec {
        name: "api.example.test.".into(),
        policy,
        regions,
        ttl: 30,
        all_down,
        default_region: None,
    })
    .unwrap()
}

fn geo_regions() -> Vec<RegionSpec> {
    let mut us = region("us-east", "127.0.1.1");
    us.continents = vec!["NA".into()];
    us.countries = vec!["CA".into()];
    us.failover = vec!["ap".into(), "eu-west".into()];
    let mut eu = region("eu-west", "127.0.2.1");
    eu.continents = vec!["EU".into()];
    eu.networks = vec!["10.0.0.0/8".parse().unwrap()];
    eu.failover = vec!["us-east".into()];
    let mut ap = region("ap", "127.0.3.1");
    ap.countries = vec!["GB".into()];
    ap.networks = vec!["10.1.0.0/16".parse().unwrap()];
    vec![us, eu, ap]
}

fn at(
    net: &str,
    country: Option<&[u8; 2]>,
    continent: Option<&[u8; 2]>,
    prefix: u8,
) -> ClientLocation {
    ClientLocation {
        network: Some(net.parse().unwrap()),
        from_ecs: true,
        geo: Some(GeoInfo {
            country: country.copied(),
            continent: continent.copied(),
            coordinates: None,
            prefix,
        }),
    }
}

fn addrs(name: &GslbName, c: &Choice) -> Vec<IpAddr> {
    let mut v = Vec::new();
    c.records(name, false, &mut v);
    v.iter()
        .map(|rr| IpAddr::from(<[u8; 4]>::try_from(&rr.rdata[..]).unwrap()))
        .collect()
}

#[test]
fn failover_takes_first_healthy_and_explains_skips() {
    let n = name(
        Policy::Failover,
        vec![region("a", "10.0.0.1"), region("b", "10.0.0.2")],
        AllDown::FailOpen,
    );
    let health = StaticHealth::default().with("a", RegionState::Drained);
    let mut ex = Explanation::default();
    let c = choose(&n, &ClientLocation::default(), &health, 0, Some(&mut ex));
    assert_eq!((c.outcome, c.scope), (Outcome::Healthy, 0));
    assert_eq!(addrs(&n, &c), vec!["10.0.0.2".parse::<IpAddr>().unwrap()]);
    assert_eq!(
        ex.skipped,
        vec![Skipped {
            region: "a".into(),
            state: RegionState::Drained
        }]
    );
    assert_eq!(ex.chosen, vec!["b"]);
    assert_eq!(ex.order, vec!["a", "b"]);
    // and the hot path (no explanation) agrees
    assert_eq!(choose(&n, &ClientLocation::default(), &health, 0, None), c);
}

#[test]
fn geo_precedence_network_country_continent_default() {
    let n = name(Policy::Geo, geo_regions(), AllDown::FailOpen);
    let up = StaticHealth::default();
    let pick = |loc: &ClientLocation| {
        let mut ex = Explanation::default();
        let c = choose(&n, loc, &up, 0, Some(&mut ex));
        (ex.chosen[0].clone(), c.scope, ex.matched)
    };
    // most specific configured network wins over country and continent
    assert_eq!(
        pick(&at("10.1.2.0/24", Some(b"CA"), Some(b"NA"), 8)),
        ("ap".into(), 16, "network 10.1.0.0/16 -> ap".into())
    );
    // a network with a more specific one nested inside: only the client's /24 may be cached
    assert_eq!(pick(&at("10.9.2.0/24", None, None, 8)).1, 24);
    // country before continent
    assert_eq!(
        pick(&at("81.2.69.0/24", Some(b"GB"), Some(b"EU"), 24)).0,
        "ap"
    );
    assert_eq!(
        pick(&at("81.2.68.0/24", Some(b"FR"), Some(b"EU"), 16)),
        ("eu-west".into(), 16, "continent EU -> eu-west".into())
    );
    assert_eq!(pick(&at("1.2.3.0/24", Some(b"CA"), Some(b"NA"), 20)).1, 20);
    // nothing matches and no default region: configured order
    assert_eq!(
        pick(&at("1.2.3.0/24", Some(b"BR"), Some(b"SA"), 12)).0,
        "us-east"
    );
    // no location at all
    let (r, scope, why) = pick(&ClientLocation::default());
    assert_eq!((r.as_str(), scope), ("us-east", 0));
    assert!(why.contains("no client address"), "{why}");
}

#[test]
fn geo_fails_over_along_the_preferred_regions_order() {
    let n = name(Policy::Geo, geo_regions(), AllDown::FailOpen);
    let health = StaticHealth::default().with("us-east", RegionState::Down);
    let mut ex = Explanation::default();
    let c = choose(
        &n,
        &at("1.2.3.0/24", Some(b"US"), Some(b"NA"), 24),
        &health,
        0,
        Some(&mut ex),
    );
    // us-east's failover list says ap before eu-west
    assert_eq!(ex.order, vec!["us-east", "ap", "eu-west"]);
    assert_eq!(ex.chosen, vec!["ap"]);
    assert_eq!(c.scope, 24, "health does not change the scope");
}

#[test]
fn default_region_catches_unknown_clients() {
    let mut spec = GslbSpec {
        name: "x.".into(),
        policy: Policy::Geo,
        regions: geo_regions(),
        ttl: 30,
        all_down: AllDown::FailOpen,
        default_region: Some("eu-west".into()),
    };
    let n = build_gslb(&spec).unwrap();
    let mut ex = Explanation::default();
    choose(
        &n,
        &at("192.168.0.0/24", None, None, 16),
        &StaticHealth::default(),
        0,
        Some(&mut ex),
    );
    assert_eq!(ex.chosen, vec!["eu-west"]);
    spec.default_region = Some("nope".into());
    assert_eq!(build_gslb(&spec).unwrap().default_region, None);
}

#[test]
fn weighted_follows_entropy_and_skips_down_regions() {
    let mut rs = vec![
        region("a", "10.0.0.1"),
        region("b", "10.0.0.2"),
        region("c", "10.0.0.3"),
    ];
    rs[0].weight = 1;
    rs[1].weight = 2;
    rs[2].weight = 1;
    let n = name(Policy::Weighted, rs, AllDown::FailOpen);
    let up = StaticHealth::default();
    let picks: Vec<Vec<IpAddr>> = (0..4)
        .map(|e| addrs(&n, &choose(&n, &ClientLocation::default(), &up, e, None)))
        .collect();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        picks,
        vec![
            vec![ip("10.0.0.1")],
            vec![ip("10.0.0.2")],
            vec![ip("10.0.0.2")],
            vec![ip("10.0.0.3")]
        ]
    );
    let b_down = StaticHealth::default().with("b", RegionState::Down);
    for e in 0..100 {
        let a = addrs(
            &n,
            &choose(&n, &ClientLocation::default(), &b_down, e, None),
        );
        assert_ne!(a, vec![ip("10.0.0.2")]);
    }
}

#[test]
fn multivalue_caps_and_all_down_rules() {
    let rs = vec![
        region("a", "10.0.0.1"),
        region("b", "10.0.0.2"),
        region("c", "10.0.0.3"),
    ];
    let n = name(Policy::Multivalue { max: 2 }, rs.clone(), AllDown::FailOpen);
    let c = choose(
        &n,
        &ClientLocation::default(),
        &StaticHealth::default().with("a", RegionState::Down),
        0,
        None,
    );
    assert_eq!(addrs(&n, &c).len(), 2);
    assert_eq!(c.indices().collect::<Vec<_>>(), vec![1, 2]);
    let all_down = StaticHealth::default()
        .with("a", RegionState::Down)
        .with("b", RegionState::Down)
        .with("c", RegionState::ForcedDown);
    let fo = choose(&n, &ClientLocation::default(), &all_down, 0, None);
    assert_eq!(fo.outcome, Outcome::AllDownFailOpen);
    assert_eq!(
        fo.indices().count(),
        3,
        "fail open answers with every region, capped later"
    );
    let sf = name(Policy::Failover, rs.clone(), AllDown::Servfail);
    assert_eq!(
        choose(&sf, &ClientLocation::default(), &all_down, 0, None).outcome,
        Outcome::AllDownServfail
    );
    let lr = name(
        Policy::Failover,
        rs.clone(),
        AllDown::LastResort(vec!["192.0.2.1".parse().unwrap()]),
    );
    let c = choose(&lr, &ClientLocation::default(), &all_down, 0, None);
    assert_eq!(addrs(&lr, &c), vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
    let ra = name(Policy::Failover, rs, AllDown::ReturnAll);
    let mut ex = Explanation::default();
    let c = choose(&ra, &ClientLocation::default(), &all_down, 0, Some(&mut ex));
    assert_eq!(addrs(&ra, &c).len(), 3);
    assert_eq!(
        ex.all_down.as_deref(),
        Some("all regions down: returning every region")
    );
    assert_eq!(ex.skipped.len(), 3);
}

#[test]
fn nearest_orders_by_great_circle_distance() {
    let mut a = region("dublin", "10.0.0.1");
    a.coordinates = Some((53.35, -6.26));
    let mut b = region("virginia", "10.0.0.2");
    b.coordinates = Some((39.04, -77.49));
    let n = name(Policy::Nearest, vec![b, a], AllDown::FailOpen);
    let mut loc = at("81.2.69.0/24", None, None, 24);
    loc.geo.as_mut().unwrap().coordinates = Some((51.5, -0.1));
    let mut ex = Explanation::default();
    let c = choose(&n, &loc, &StaticHealth::default(), 0, Some(&mut ex));
    assert_eq!(ex.order, vec!["dublin", "virginia"]);
    assert_eq!(c.scope, 24);
    let d = choose::great_circle_km(51.5, -0.1, 53.35, -6.26);
    assert!((440.0..470.0).contains(&d), "{d}");
}
