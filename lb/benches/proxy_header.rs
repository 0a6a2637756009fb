//! PROXY header encode/parse cost (per connection when enabled).
#![allow(missing_docs)] // criterion's macros define undocumented pub fns

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use switchyard_net::proxy::{encode, parse, Version, MAX_ENCODED};

fn bench(c: &mut Criterion) {
    let src = "203.0.113.7:4242".parse().unwrap();
    let dst = "127.0.1.1:8080".parse().unwrap();
    for (name, v) in [("v1", Version::V1), ("v2", Version::V2)] {
        let mut buf = [0u8; MAX_ENCODED];
        c.bench_function(&format!("proxy_encode_{name}"), |b| {
            b.iter(|| black_box(encode(v, black_box(src), black_box(dst), &mut buf)))
        });
        let n = encode(v, src, dst, &mut buf);
        let hdr = buf[..n].to_vec();
        c.bench_function(&format!("proxy_parse_{name}"), |b| {
            b.iter(|| black_box(parse(black_box(&hdr))))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
