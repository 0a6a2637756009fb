//! The balancer's own view of its configuration: [`Plan`] = pools + listeners, built from the
//! validated [`World`] (or directly, by quick mode and tests). Comparing two plans is how
//! reload decides what changed.
#![allow(missing_docs)] // unlabelled fields are the `[[lb.pools]]`/`[[lb.listeners]]` keys of the same name (docs/config.md)

use std::net::SocketAddr;
use std::time::Duration;
use switchyard_balance::{CheckSpec, MemberSpec, PassiveSpec, Policy};
use switchyard_config::lb::{Forwarding, IoEngine, ProxyVersion};
use switchyard_config::World;

/// `(region, name)`: pools and listeners are named per region.
pub type Key = (String, String);

/// One pool: members across AZs and how to choose among them.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSpec {
    pub key: Key,
    pub policy: Policy,
    /// Active check for every member (`None`: passive health only).
    pub check: Option<CheckSpec>,
    pub passive: PassiveSpec,
    pub fail_open: bool,
    pub proxy_protocol: Option<ProxyVersion>,
    /// Backends tried per client connection (1 = no retry; at most 8).
    pub connect_attempts: u32,
    pub drain_deadline: Duration,
    pub max_conns_per_member: Option<u64>,
    pub members: Vec<MemberSpec>,
    pub az_weights: Vec<(String, u32)>,
    /// Remote spill (`None`: refuse when no member is healthy), see [`crate::spill`].
    pub spill: Option<SpillSpec>,
}

/// Where a pool sends new connections while too few of its members are healthy.
#[derive(Debug, Clone, PartialEq)]
pub struct SpillSpec {
    /// Spill while fewer than this many members are healthy (1: only when none is).
    pub below: u32,
    /// Target regions in order, each with its spill ingress addresses.
    pub targets: Vec<SpillTarget>,
}

/// One region a pool spills to.
#[derive(Debug, Clone, PartialEq)]
pub struct SpillTarget {
    pub region: String,
    /// Its spill ingress listeners (PROXY v2 in, never spilled again).
    pub addrs: Vec<SocketAddr>,
}

impl PoolSpec {
    /// A pool with defaults (round robin, TCP checks, 3 attempts, 30 s drain) over `members`.
    pub fn new(region: &str, name: &str, members: Vec<MemberSpec>) -> Self {
        PoolSpec {
            key: (region.into(), name.into()),
            policy: Policy::RoundRobin,
            check: Some(CheckSpec::tcp()),
            passive: PassiveSpec::default(),
            fail_open: false,
            proxy_protocol: None,
            connect_attempts: 3,
            drain_deadline: Duration::from_secs(30),
            max_conns_per_member: None,
            members,
            az_weights: Vec::new(),
            spill: None,
        }
    }
}

/// A listener's routing by TLS server name (see [`crate::sni`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SniSpec {
    /// Lowercased names or `*.suffix` patterns, and the pool (same region) they go to.
    pub routes: Vec<(Vec<String>, Key)>,
    /// Where everything else goes; `None`: closed.
    pub default: Option<Key>,
    /// Longest wait for a whole ClientHello.
    pub timeout: Duration,
    /// Send SNI and ALPN as PROXY v2 TLVs.
    pub tlvs: bool,
}

impl SniSpec {
    /// Every pool the routes and the default point at.
    pub fn pools(&self) -> impl Iterator<Item = &Key> {
        self.routes.iter().map(|r| &r.1).chain(&self.default)
    }
}

/// One listener: the sockets, the limits, and the pool it feeds.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerSpec {
    pub key: Key,
    pub addrs: Vec<SocketAddr>,
    /// Pool key (same region); unused for connections when `sni` is set.
    pub pool: Key,
    /// Route by the ClientHello's server name instead (`None`: the first bytes are not read).
    pub sni: Option<SniSpec>,
    pub backlog: u32,
    /// Accept loops (SO_REUSEPORT sockets) per address; default one per CPU.
    pub workers: Option<u32>,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_lifetime: Option<Duration>,
    pub max_connections: u32,
    /// Per-source token bucket: (per second, burst).
    pub source_rate: Option<(f64, u32)>,
    pub accept_proxy: bool,
    pub forwarding: Forwarding,
    /// epoll or io_uring (see [`crate::uring`]).
    pub io_engine: IoEngine,
    pub pipe_size: u32,
    pub buffer_size: u32,
    pub access_log: bool,
    /// A spill ingress: PROXY header required, and its connections never spill again (a
    /// region with nothing healthy refuses them).
    pub spill_ingress: bool,
}

impl ListenerSpec {
    /// A listener with defaults (auto forwarding, 64 KiB pipes, 16 KiB buffers, 10k
    /// connections, 300 s idle).
    pub fn new(region: &str, name: &str, addrs: Vec<SocketAddr>, pool: &str) -> Self {
        ListenerSpec {
            key: (region.into(), name.into()),
            addrs,
            pool: (region.into(), pool.into()),
            sni: None,
            backlog: 1024,
            workers: None,
            connect_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(300),
            max_lifetime: None,
            max_connections: 10_000,
            source_rate: None,
            accept_proxy: false,
            forwarding: Forwarding::Auto,
            io_engine: IoEngine::IoUring,
            pipe_size: 1 << 16,
            buffer_size: 1 << 14,
            access_log: false,
            spill_ingress: false,
        }
    }

    /// The part of a listener that needs new sockets when it changes.
    pub(crate) fn bind_key(&self) -> (&[SocketAddr], u32, Option<u32>, IoEngine) {
        (&self.addrs, self.backlog, self.workers, self.io_engine)
    }
}

/// Everything the balancer runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub pools: Vec<PoolSpec>,
    pub listeners: Vec<ListenerSpec>,
    /// Global connection cap across all listeners (`None`: keep the one the balancer started
    /// with, i.e. [`LbOptions::global_max_connections`](crate::LbOptions)).
    pub global_max_connections: Option<usize>,
}

impl Plan {
    /// The pools and listeners of every region this node serves (`node.region`, or all).
    pub fn from_world(world: &World) -> Plan {
        let mut plan = Plan {
            global_max_connections: Some(world.node.lb_max_connections as usize),
            ..Plan::default()
        };
        for region in world
            .regions
            .iter()
            .filter(|r| world.node.in_region(&r.name))
        {
            let az_weights = switchyard_balance::from_config::az_weights(region);
            for p in &region.pools {
                plan.pools.push(PoolSpec {
                    key: (region.name.clone(), p.name.clone()),
                    policy: p.policy.into(),
                    check: Some((&p.health).into()),
                    passive: (&p.passive).into(),
                    fail_open: p.fail_open,
                    proxy_protocol: p.proxy_protocol,
                    connect_attempts: p.connect_attempts,
                    drain_deadline: p.drain_deadline,
                    max_conns_per_member: p.max_connections_per_member.map(u64::from),
                    members: p.members.iter().map(MemberSpec::from).collect(),
                    az_weights: az_weights.clone(),
                    spill: crate::spill::spec_from_world(world, region, p),
                });
            }
            for l in &region.listeners {
                let spec = ListenerSpec {
                    key: (region.name.clone(), l.name.clone()),
                    addrs: l.addrs.clone(),
                    pool: (region.name.clone(), l.pool.clone()),
                    sni: l.sni.as_ref().map(|s| SniSpec {
                        routes: s
                            .routes
                            .iter()
                            .map(|r| (r.names.clone(), (region.name.clone(), r.pool.clone())))
                            .collect(),
                        default: s
                            .default
                            .as_ref()
                            .map(|d| (region.name.clone(), d.0.clone())),
                        timeout: s.timeout,
                        tlvs: s.tlvs,
                    }),
                    backlog: l.backlog,
                    workers: l.workers,
                    connect_timeout: l.connect_timeout,
                    idle_timeout: l.idle_timeout,
                    max_lifetime: l.max_lifetime,
                    max_connections: l.max_connections,
                    source_rate: l.source_rate.map(|r| (r.per_second, r.burst)),
                    accept_proxy: l.accept_proxy,
                    forwarding: l.forwarding,
                    io_engine: l.io_engine,
                    pipe_size: l.pipe_size,
                    buffer_size: l.buffer_size,
                    access_log: l.access_log,
                    spill_ingress: false,
                };
                if let Some(port) = l.spill_port {
                    plan.listeners.push(crate::spill::ingress(&spec, port));
                }
                plan.listeners.push(spec);
            }
        }
        plan
    }
}
