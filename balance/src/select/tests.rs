use super::*;
use crate::health::BackendHealth;
use std::collections::HashMap;
use std::time::Duration;

fn addr(i: usize) -> SocketAddr {
    format!("127.0.0.{}:80", i + 1).parse().unwrap()
}

/// Members `(az, weight)`; returns the selector and the health handles.
fn pool(
    spec: &[(&str, u32)],
    policy: Policy,
    opts: SelectorOptions,
) -> (Selector, Vec<Arc<BackendHealth>>) {
    let hs: Vec<_> = (0..spec.len())
        .map(|i| BackendHealth::detached(addr(i)))
        .collect();
    let members = spec
        .iter()
        .enumerate()
        .map(|(i, (az, w))| {
            (
                MemberSpec::new(format!("m{i}"), addr(i), *az, *w),
                hs[i].clone(),
            )
        })
        .collect();
    (Selector::with_health(members, &[], policy, opts), hs)
}

fn client(i: u32) -> IpAddr {
    IpAddr::V4((0x0a00_0000 + i).into())
}

fn counts(sel: &Selector, n: u32) -> Vec<usize> {
    let mut c = vec![0; sel.len()];
    for i in 0..n {
        c[sel.pick(client(i), &[]).expect("a member")] += 1;
    }
    c
}

const ALL: [Policy; 5] = [
    Policy::RoundRobin,
    Policy::LeastConnections,
    Policy::PowerOfTwo,
    Policy::Maglev,
    Policy::Random,
];

#[test]
fn round_robin_is_exact_per_cycle() {
    let (sel, _) = pool(
        &[("a", 3), ("a", 1)],
        Policy::RoundRobin,
        Default::default(),
    );
    assert_eq!(counts(&sel, 400), vec![300, 100]);
}

#[test]
fn every_policy_follows_weights_within_an_az() {
    for p in ALL {
        let (sel, hs) = pool(&[("a", 1), ("a", 2), ("a", 1)], p, Default::default());
        let n = 40_000;
        let c = if p == Policy::LeastConnections || p == Policy::PowerOfTwo {
            // connection-count policies need connections that stay open
            let mut guards = Vec::new();
            let mut c = vec![0; 3];
            for i in 0..n {
                let k = sel.pick(client(i), &[]).unwrap();
                c[k] += 1;
                guards.push(hs[k].conn_guard());
            }
            c
        } else {
            counts(&sel, n)
        };
        let share = |k: usize| c[k] as f64 / n as f64;
        assert!((share(1) - 0.5).abs() < 0.03, "{p:?} {c:?}");
        assert!((share(0) - 0.25).abs() < 0.03, "{p:?} {c:?}");
    }
}

#[test]
fn azs_split_equally_then_spill_when_empty() {
    for p in ALL {
        // AZ a has 1 member, AZ b has 3: each AZ still gets half
        let (sel, hs) = pool(
            &[("a", 1), ("b", 1), ("b", 1), ("b", 1)],
            p,
            Default::default(),
        );
        let c = counts(&sel, 20_000);
        let a = c[0] as f64 / 20_000.0;
        assert!((a - 0.5).abs() < 0.03, "{p:?} {c:?}");
        let sh = sel.shares();
        assert_eq!((sh[0].share, sh[1].share), (0.5, 0.5));
        hs[0].eject(Duration::from_secs(60), "test");
        let c = counts(&sel, 3000);
        assert_eq!(c[0], 0, "{p:?}");
        assert_eq!(c.iter().sum::<usize>(), 3000);
        let sh = sel.shares();
        assert_eq!((sh[0].share, sh[1].share, sh[0].up_members), (0.0, 1.0, 0));
    }
}

#[test]
fn az_weights_apply() {
    let hs: Vec<_> = (0..2).map(|i| BackendHealth::detached(addr(i))).collect();
    let members = vec![
        (MemberSpec::new("x", addr(0), "a", 1), hs[0].clone()),
        (MemberSpec::new("y", addr(1), "b", 1), hs[1].clone()),
    ];
    let sel = Selector::with_health(
        members,
        &[("a".into(), 3)],
        Policy::RoundRobin,
        Default::default(),
    );
    assert_eq!(counts(&sel, 400), vec![300, 100]);
    assert_eq!(sel.shares()[0].share, 0.75);
}

#[test]
fn retry_prefers_another_az() {
    for p in ALL {
        let (sel, _) = pool(&[("a", 1), ("a", 1), ("b", 1)], p, Default::default());
        for i in 0..200 {
            assert_eq!(sel.pick(client(i), &[0]), Some(2), "{p:?}");
            assert_eq!(sel.pick(client(i), &[0, 2]), Some(1), "{p:?}");
            assert_eq!(sel.pick(client(i), &[0, 1, 2]), None, "{p:?}");
        }
    }
}

#[test]
fn all_down_refuses_or_fails_open_and_counts() {
    for p in ALL {
        let (sel, hs) = pool(&[("a", 1), ("b", 1)], p, Default::default());
        hs.iter()
            .for_each(|h| h.eject(Duration::from_secs(60), "t"));
        assert_eq!(sel.choose(client(1), &[]), Choice::None);
        assert_eq!(sel.all_down_count(), 1);
        let opts = SelectorOptions {
            fail_open: true,
            ..Default::default()
        };
        let (sel, hs) = pool(&[("a", 1), ("b", 1)], p, opts);
        hs.iter()
            .for_each(|h| h.eject(Duration::from_secs(60), "t"));
        assert!(
            matches!(sel.choose(client(1), &[]), Choice::FailOpen(_)),
            "{p:?}"
        );
        assert!(
            matches!(sel.choose(client(1), &[0]), Choice::FailOpen(1)),
            "{p:?}"
        );
    }
}

#[test]
fn max_conns_per_member_skips_full_members() {
    let opts = SelectorOptions {
        max_conns_per_member: Some(2),
        ..Default::default()
    };
    let (sel, hs) = pool(&[("a", 1), ("a", 1)], Policy::RoundRobin, opts);
    let mut g = Vec::new();
    for _ in 0..4 {
        let k = sel.pick(client(0), &[]).unwrap();
        g.push(hs[k].conn_guard());
    }
    assert_eq!((hs[0].active_conns(), hs[1].active_conns()), (2, 2));
    assert_eq!(sel.choose(client(0), &[]), Choice::None);
    assert_eq!(sel.all_down_count(), 0, "saturated is not all-down");
    g.pop();
    assert!(sel.pick(client(0), &[]).is_some());
}

#[test]
fn least_connections_prefers_idle() {
    let (sel, hs) = pool(
        &[("a", 1), ("a", 1), ("a", 1)],
        Policy::LeastConnections,
        Default::default(),
    );
    let _g: Vec<_> = (0..5)
        .map(|_| hs[0].conn_guard())
        .chain((0..3).map(|_| hs[2].conn_guard()))
        .collect();
    for i in 0..10 {
        assert_eq!(sel.pick(client(i), &[]), Some(1));
    }
}

#[test]
fn maglev_is_sticky_and_moves_only_the_dead_members_clients() {
    let n = 5;
    let spec: Vec<(&str, u32)> = vec![("a", 1); n];
    let (sel, hs) = pool(&spec, Policy::Maglev, Default::default());
    let before: Vec<usize> = (0..10_000)
        .map(|i| sel.pick(client(i), &[]).unwrap())
        .collect();
    let again: Vec<usize> = (0..10_000)
        .map(|i| sel.pick(client(i), &[]).unwrap())
        .collect();
    assert_eq!(before, again);
    hs[3].eject(Duration::from_secs(60), "t");
    let mut moved = 0;
    for (i, &b) in before.iter().enumerate() {
        let a = sel.pick(client(i as u32), &[]).unwrap();
        assert_ne!(a, 3);
        if a != b {
            assert_eq!(b, 3, "only member 3's clients move");
            moved += 1;
        }
    }
    let frac = moved as f64 / 10_000.0;
    assert!((frac - 0.2).abs() < 0.03, "{frac}");
}

#[test]
fn passive_cap_limits_ejections() {
    let opts = SelectorOptions {
        passive: PassiveSpec {
            consecutive_failures: 2,
            ejection: Duration::from_secs(60),
            max_ejected_percent: 50,
        },
        ..Default::default()
    };
    let (sel, hs) = pool(&[("a", 1); 4], Policy::Random, opts);
    for k in 0..4 {
        sel.record_connect_failure(k);
        sel.record_connect_failure(k);
    }
    let ejected = hs.iter().filter(|h| h.is_ejected()).count();
    assert_eq!(ejected, 2);
    let mut seen = HashMap::new();
    for i in 0..100 {
        *seen.entry(sel.pick(client(i), &[]).unwrap()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2);
}
