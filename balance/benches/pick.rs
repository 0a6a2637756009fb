//! ns per pick per policy (4 members in 2 AZs, all up) and Maglev table build time.
#![allow(missing_docs)] // criterion's macros define undocumented pub fns

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use switchyard_balance::select::maglev::{Maglev, TABLE_SIZE};
use switchyard_balance::select::random_client;
use switchyard_balance::{BackendHealth, MemberSpec, Policy, Selector, SelectorOptions};

fn selector(policy: Policy) -> Selector {
    let members = (0..4)
        .map(|i| {
            let addr = format!("127.0.0.{}:80", i + 1).parse().unwrap();
            let az = if i % 2 == 0 { "a" } else { "b" };
            (
                MemberSpec::new(format!("m{i}"), addr, az, 1 + i as u32),
                BackendHealth::detached(addr),
            )
        })
        .collect();
    Selector::with_health(members, &[], policy, SelectorOptions::default())
}

fn picks(c: &mut Criterion) {
    let mut g = c.benchmark_group("pick");
    for p in [
        Policy::RoundRobin,
        Policy::LeastConnections,
        Policy::PowerOfTwo,
        Policy::Maglev,
        Policy::Random,
    ] {
        let sel = selector(p);
        let client = random_client();
        g.bench_function(p.as_str(), |b| {
            b.iter(|| black_box(sel.pick(black_box(client), &[])))
        });
    }
    g.finish();
}

fn maglev_build(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..16)
        .map(|i| format!("backend-{i}").into_bytes())
        .collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    let weights = vec![1u32; 16];
    c.bench_function("maglev_build_16x65537", |b| {
        b.iter(|| black_box(Maglev::build(&refs, &weights, TABLE_SIZE)))
    });
}

criterion_group!(benches, picks, maglev_build);
criterion_main!(benches);
