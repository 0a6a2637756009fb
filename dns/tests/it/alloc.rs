//! The answering hot path allocates nothing: a counting global allocator (this test binary's)
//! counts this thread's allocations while `handle` answers a mix of queries, unsigned and, for
//! positive answers whose signature is cached, signed.
#![allow(unsafe_code)] // a GlobalAlloc impl forwarding to System; SAFETY comment on each block

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use hickory_proto::rr::RecordType;
use switchyard_dns::answer::{handle, Ctx, Handled};
use switchyard_dns::gslb::{AllDown, Policy, StaticHealth};
use switchyard_dns::metrics::Metrics;
use switchyard_dns::spec::{GslbSpec, RegionSpec};

use crate::harness::*;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

/// Counts allocations per thread, then hands them to the system allocator.
pub struct Counting;

fn count() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded unchanged to `System`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: our caller upholds GlobalAlloc::alloc's contract for `l`, which is System's.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: our caller upholds GlobalAlloc::alloc_zeroed's contract for `l`.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        // SAFETY: `p` came from this allocator, i.e. from System (every call is forwarded), and
        // our caller upholds realloc's contract for `l` and `n`.
        unsafe { System.realloc(p, l, n) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` was allocated by System with layout `l` (every allocation is forwarded).
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

fn gslb() -> GslbSpec {
    GslbSpec {
        name: "api.example.test.".into(),
        policy: Policy::Failover,
        regions: vec![RegionSpec {
            name: "r1".into(),
            vips: vec![ip("127.0.1.1"), ip("2001:db8::1")],
            weight: 1,
            ..Default::default()
        }],
        ttl: 30,
        all_down: AllDown::FailOpen,
        default_region: None,
    }
}

/// Answers each query `rounds` times after one warm-up; returns the allocations counted.
fn count_answers(spec: switchyard_dns::spec::DnsSpec, queries: &[Vec<u8>], rounds: usize) -> u64 {
    let snap = spec.build().unwrap();
    let health = StaticHealth::default();
    let metrics = Metrics::new();
    let sigs = Default::default();
    let ctx = Ctx {
        snap: &snap,
        health: &health,
        metrics: &metrics,
        client: ip("127.0.0.1"),
        tcp: false,
        sigs: &sigs,
    };
    let mut out = Vec::with_capacity(4096);
    for q in queries {
        assert!(matches!(handle(&ctx, q, &mut out), Handled::Reply { .. }));
    }
    let before = allocs();
    for _ in 0..rounds {
        for q in queries {
            handle(&ctx, q, &mut out);
        }
    }
    allocs() - before
}

fn wire(name: &str, t: RecordType, edns: bool, dnssec_ok: bool) -> Vec<u8> {
    let mut m = query(name, t);
    if edns {
        m = with_edns(m, 1232, Some(("81.2.69.160", 24)));
        m.edns.as_mut().unwrap().set_dnssec_ok(dnssec_ok);
    }
    m.to_vec().unwrap()
}

#[test]
fn unsigned_answers_allocate_nothing() {
    let mut queries = Vec::new();
    for edns in [false, true] {
        for (name, t) in [
            ("www.example.test.", RecordType::A),
            ("example.test.", RecordType::NS),
            ("example.test.", RecordType::MX),
            ("alias.example.test.", RecordType::A),
            ("foo.wild.example.test.", RecordType::A),
            ("nothere.example.test.", RecordType::A),
            ("www.example.test.", RecordType::MX),
            ("x.sub.example.test.", RecordType::A),
            ("big.example.test.", RecordType::TXT),
            ("api.example.test.", RecordType::A),
            ("api.example.test.", RecordType::AAAA),
            ("outside.test.", RecordType::A),
        ] {
            queries.push(wire(name, t, edns, false));
        }
    }
    assert_eq!(count_answers(spec(vec![gslb()]), &queries, 50), 0);
}

#[test]
fn signed_answers_from_the_signature_cache_allocate_nothing() {
    let dir = std::env::temp_dir().join(format!("switchyard-alloc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("k.key");
    std::fs::write(
        &key,
        switchyard_dns::dnssec::generate("example.test.", 13).unwrap(),
    )
    .unwrap();
    let mut s = spec(vec![gslb()]);
    s.zones[0].dnssec_keys = vec![key];
    let queries: Vec<Vec<u8>> = [
        ("www.example.test.", RecordType::A),
        ("alias.example.test.", RecordType::A),
        ("api.example.test.", RecordType::A),
        ("example.test.", RecordType::DNSKEY),
    ]
    .iter()
    .map(|(n, t)| wire(n, *t, true, true))
    .collect();
    assert_eq!(count_answers(s, &queries, 50), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every GSLB policy answers without allocating: two regions (networks, countries, continents
/// and coordinates all set, so geo and nearest take their real paths), A and AAAA, with and
/// without an ECS option.
#[test]
fn every_gslb_policy_answers_without_allocating() {
    let region =
        |name: &str, vip4: &str, vip6: &str, net: &str, country: &str, at: (f64, f64)| RegionSpec {
            name: name.into(),
            vips: vec![ip(vip4), ip(vip6)],
            weight: 1,
            continents: vec![if country == "GB" { "EU" } else { "NA" }.into()],
            countries: vec![country.into()],
            networks: vec![net.parse().unwrap()],
            failover: vec![],
            coordinates: Some(at),
        };
    let mut queries = Vec::new();
    for edns in [false, true] {
        for t in [RecordType::A, RecordType::AAAA] {
            queries.push(wire("api.example.test.", t, edns, false));
        }
    }
    for policy in [
        Policy::Failover,
        Policy::Geo,
        Policy::Weighted,
        Policy::Nearest,
        Policy::Multivalue { max: 4 },
    ] {
        let mut g = gslb();
        g.policy = policy;
        g.regions = vec![
            region(
                "eu",
                "127.0.1.1",
                "2001:db8::1",
                "81.2.69.0/24",
                "GB",
                (51.5, -0.1),
            ),
            region(
                "us",
                "127.0.2.1",
                "2001:db8::2",
                "127.0.0.0/8",
                "US",
                (40.7, -74.0),
            ),
        ];
        assert_eq!(
            count_answers(spec(vec![g]), &queries, 50),
            0,
            "{policy:?} allocates per answer"
        );
    }
}
