//! Criterion benchmarks, no sockets: the GSLB decision per policy, geo lookups, and whole
//! queries through parse + answer + encode (the UDP worker's per-packet work minus syscalls).
#![allow(missing_docs)] // criterion's macros define undocumented pub fns

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use switchyard_dns::answer::{handle, Ctx};
use switchyard_dns::geo::{truncate, GeoDb};
use switchyard_dns::gslb::{choose, AllDown, ClientLocation, Policy, StaticHealth};
use switchyard_dns::metrics::Metrics;
use switchyard_dns::spec::{build_gslb, DnsSpec, GeoSpec, GslbSpec, RegionSpec};

const ZONE: &str = include_str!("data/example.test.zone");

fn regions() -> Vec<RegionSpec> {
    let mk = |name: &str, vip: &str, cont: &str, coords: (f64, f64)| RegionSpec {
        name: name.into(),
        vips: vec![vip.parse().unwrap()],
        weight: 1,
        continents: vec![cont.into()],
        coordinates: Some(coords),
        failover: vec![],
        ..Default::default()
    };
    vec![
        mk("us-east", "127.0.1.1", "NA", (39.0, -77.5)),
        mk("eu-west", "127.0.2.1", "EU", (53.3, -6.3)),
        mk("ap-northeast", "127.0.3.1", "AS", (35.7, 139.7)),
    ]
}

fn gslb(policy: Policy) -> GslbSpec {
    GslbSpec {
        name: "geo.example.test.".into(),
        policy,
        regions: regions(),
        ttl: 30,
        all_down: AllDown::FailOpen,
        default_region: None,
    }
}

fn city_db() -> GeoDb {
    GeoDb::open(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/geo/GeoLite2-City-Test.mmdb"),
    )
    .unwrap()
}

fn bench_choose(c: &mut Criterion) {
    let db = city_db();
    let net = truncate("81.2.69.160".parse().unwrap(), 27);
    let loc = ClientLocation {
        network: Some(net),
        from_ecs: true,
        geo: db.lookup(net),
    };
    let health = StaticHealth::default();
    let mut g = c.benchmark_group("choose");
    for (label, policy) in [
        ("failover", Policy::Failover),
        ("geo", Policy::Geo),
        ("weighted", Policy::Weighted),
        ("nearest", Policy::Nearest),
        ("multivalue", Policy::Multivalue { max: 8 }),
    ] {
        let name = build_gslb(&gslb(policy)).unwrap();
        let mut e = 0u64;
        g.bench_function(label, |b| {
            b.iter(|| {
                e = e.wrapping_add(0x9E37_79B9_7F4A_7C15);
                black_box(choose(&name, black_box(&loc), &health, e, None))
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("geo_lookup");
    let direct = truncate("202.196.224.1".parse().unwrap(), 32);
    g.bench_function("in_database", |b| {
        b.iter(|| black_box(db.lookup_uncached(black_box(direct))))
    });
    g.bench_function("majority_within_24", |b| {
        b.iter(|| black_box(db.lookup_uncached(black_box(net))))
    });
    g.bench_function("cached", |b| {
        b.iter(|| black_box(db.lookup(black_box(net))))
    });
    g.finish();
}

fn wire(name: &str, t: RecordType, ecs: Option<(&str, u8)>) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 4242;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    if let Some((a, p)) = ecs {
        e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
            a.parse::<IpAddr>().unwrap(),
            p,
            0,
        )));
    }
    m.set_edns(e);
    m.to_vec().unwrap()
}

fn bench_handle(c: &mut Criterion) {
    let mut spec = DnsSpec::single_zone("127.0.0.1:0".parse().unwrap(), ZONE.to_string(), None, 1);
    spec.gslb = vec![gslb(Policy::Geo)];
    spec.geo = Some(GeoSpec::File(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/geo/GeoLite2-Country-Test.mmdb"),
    ));
    let snap = spec.build().unwrap();
    let health = StaticHealth::default();
    let metrics = Metrics::new();
    let sigs = Default::default();
    let ctx = Ctx {
        snap: &snap,
        health: &health,
        metrics: &metrics,
        client: "127.0.0.1".parse().unwrap(),
        tcp: false,
        sigs: &sigs,
    };
    let mut out = Vec::with_capacity(1232);
    let mut g = c.benchmark_group("handle");
    for (label, msg) in [
        ("static_a", wire("www.example.test.", RecordType::A, None)),
        (
            "cname_chased",
            wire("alias.example.test.", RecordType::A, None),
        ),
        (
            "wildcard",
            wire("foo.wild.example.test.", RecordType::A, None),
        ),
        ("nxdomain", wire("nope.example.test.", RecordType::A, None)),
        ("nodata", wire("mail.example.test.", RecordType::AAAA, None)),
        (
            "static_a_ecs",
            wire(
                "www.example.test.",
                RecordType::A,
                Some(("81.2.69.160", 27)),
            ),
        ),
        (
            "gslb_geo_ecs_in_db",
            wire(
                "geo.example.test.",
                RecordType::A,
                Some(("202.196.224.1", 32)),
            ),
        ),
        (
            "gslb_geo_ecs_within_24",
            wire(
                "geo.example.test.",
                RecordType::A,
                Some(("81.2.69.160", 27)),
            ),
        ),
    ] {
        g.bench_function(label, |b| {
            b.iter(|| black_box(handle(&ctx, black_box(&msg), &mut out)))
        });
    }
    g.finish();
}

/// Signed vs unsigned answers from one server (the signature cache warm, as in steady state),
/// and GSLB answers for clients of many networks (ECS), each with and without DO.
fn bench_signed(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("switchyard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("bench.key");
    std::fs::write(
        &key,
        switchyard_dns::dnssec::generate("example.test.", 13).unwrap(),
    )
    .unwrap();
    let mut spec = DnsSpec::single_zone("127.0.0.1:0".parse().unwrap(), ZONE.to_string(), None, 1);
    spec.gslb = vec![gslb(Policy::Geo)];
    spec.geo = Some(GeoSpec::File(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/geo/GeoLite2-Country-Test.mmdb"),
    ));
    spec.zones[0].dnssec_keys = vec![key];
    let snap = spec.build().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let health = StaticHealth::default();
    let metrics = Metrics::new();
    let sigs = Default::default();
    let ctx = Ctx {
        snap: &snap,
        health: &health,
        metrics: &metrics,
        client: "127.0.0.1".parse().unwrap(),
        tcp: false,
        sigs: &sigs,
    };
    let with_do = |m: Vec<u8>, on: bool| {
        let mut m = Message::from_vec(&m).unwrap();
        m.edns.as_mut().unwrap().set_dnssec_ok(on);
        m.to_vec().unwrap()
    };
    // clients of many networks: GB, US, JP, SE, ... from the test database, and unknowns
    let nets = [
        "81.2.69.160",
        "216.160.83.56",
        "202.196.224.1",
        "89.160.20.112",
        "67.43.156.1",
        "175.16.199.1",
        "2.125.160.216",
        "10.1.2.3",
        "192.0.2.77",
        "198.51.100.9",
    ];
    let mut out = Vec::with_capacity(1232);
    let mut g = c.benchmark_group("signed");
    for dnssec in [false, true] {
        let tag = if dnssec { "do" } else { "no_do" };
        for (label, msg) in [
            ("static_a", wire("www.example.test.", RecordType::A, None)),
            ("nodata", wire("mail.example.test.", RecordType::AAAA, None)),
            ("nxdomain", wire("nope.example.test.", RecordType::A, None)),
        ] {
            let msg = with_do(msg, dnssec);
            g.bench_function(format!("{label}_{tag}"), |b| {
                b.iter(|| black_box(handle(&ctx, black_box(&msg), &mut out)))
            });
        }
        let mix: Vec<Vec<u8>> = nets
            .iter()
            .map(|n| {
                with_do(
                    wire("geo.example.test.", RecordType::A, Some((n, 24))),
                    dnssec,
                )
            })
            .collect();
        let mut i = 0;
        g.bench_function(format!("gslb_ecs_mix_{tag}"), |b| {
            b.iter(|| {
                i = (i + 1) % mix.len();
                black_box(handle(&ctx, black_box(&mix[i]), &mut out))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_choose, bench_handle, bench_signed);
criterion_main!(benches);
