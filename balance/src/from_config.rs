//! Conversions from the validated configuration model (`switchyard-config`) into this crate's
//! types, so every consumer (L4 pools, gateway upstreams, DNS) converts the same way.

use crate::health::check::{CheckKind, CheckSpec};
use crate::health::PassiveSpec;
use crate::select::{MemberSpec, Policy};
use switchyard_config::health as cfg;

impl From<cfg::Policy> for Policy {
    fn from(p: cfg::Policy) -> Self {
        match p {
            cfg::Policy::RoundRobin => Policy::RoundRobin,
            cfg::Policy::LeastConnections => Policy::LeastConnections,
            cfg::Policy::PowerOfTwo => Policy::PowerOfTwo,
            cfg::Policy::Maglev => Policy::Maglev,
            cfg::Policy::Random => Policy::Random,
        }
    }
}

impl From<&cfg::HealthCheck> for CheckSpec {
    fn from(h: &cfg::HealthCheck) -> Self {
        let kind = match &h.kind {
            cfg::CheckKind::Tcp => CheckKind::Tcp,
            cfg::CheckKind::Http {
                method,
                path,
                host,
                expect_status,
                body_contains,
            } => CheckKind::Http {
                method: method.clone(),
                path: path.clone(),
                host: host.clone(),
                expect_status: expect_status.0..=expect_status.1,
                body_contains: body_contains.clone(),
            },
            cfg::CheckKind::SendExpect { send, expect } => CheckKind::SendExpect {
                send: send.clone(),
                expect: expect.clone(),
            },
        };
        CheckSpec {
            kind,
            interval: h.interval,
            jitter: h.jitter,
            timeout: h.timeout,
            rise: h.rise,
            fall: h.fall,
        }
    }
}

impl From<&cfg::Passive> for PassiveSpec {
    fn from(p: &cfg::Passive) -> Self {
        PassiveSpec {
            consecutive_failures: p.consecutive_failures,
            ejection: p.ejection,
            max_ejected_percent: p.max_ejected_percent,
        }
    }
}

impl From<&switchyard_config::lb::Member> for MemberSpec {
    fn from(m: &switchyard_config::lb::Member) -> Self {
        MemberSpec::new(m.name.clone(), m.addr, m.az.clone(), m.weight)
    }
}

/// AZ weights of a region, in the form [`Selector::new`](crate::Selector::new) takes.
pub fn az_weights(region: &switchyard_config::region::Region) -> Vec<(String, u32)> {
    region
        .azs
        .iter()
        .map(|a| (a.name.clone(), a.weight))
        .collect()
}

impl From<&switchyard_config::services::ServiceInstance> for MemberSpec {
    fn from(i: &switchyard_config::services::ServiceInstance) -> Self {
        MemberSpec::new(i.name.clone(), i.addr, i.az.clone(), i.weight)
    }
}
