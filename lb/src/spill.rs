//! Remote spill (issue 17): while too few members of a pool are healthy, new connections go to
//! another region's front door instead of being refused, so clients that still hold the old DNS
//! answer keep being served until the TTL runs out.
//!
//! The path stays explainable and cannot loop:
//! - a pool spills to the **spill ingress** of the regions in its `spill_to` list (default: the
//!   region's `failover` order), tried in order: a listener's `spill_port` on the same addresses;
//! - the spilled connection starts with a PROXY v2 header carrying the client's address and the
//!   address it dialled, so the target region's gateways see the real client;
//! - a spill ingress is a listener that requires that header and **never spills again**: the
//!   dedicated port is the marker, so two degraded regions refuse instead of bouncing a
//!   connection between them;
//! - connections already relayed are never moved (only new connections spill).
//!
//! Cost when not spilling: the connection path looks at one `Option` (and, with
//! `spill_below > 1`, counts healthy members); nothing else runs until the local choice failed.

use crate::conn::ConnCtx;
use crate::listener::{refuse, ListenerRt, Settings};
use crate::plan::{ListenerSpec, SpillSpec, SpillTarget};
use crate::pool::PoolSnap;
use crate::relay::{self, Limits};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use switchyard_balance::Selector;
use switchyard_config::World;
use switchyard_net::proxy;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Suffix of a spill ingress listener's name (`us-east-http.spill`); names cannot contain `.`.
pub const INGRESS_SUFFIX: &str = ".spill";

/// The spill spec of `pool` of `region` (`None`: no target region has a spill ingress, or the
/// pool is `fail_open`, which tries its own down members instead).
pub fn spec_from_world(
    world: &World,
    region: &switchyard_config::region::Region,
    pool: &switchyard_config::lb::Pool,
) -> Option<SpillSpec> {
    if pool.fail_open {
        return None;
    }
    let targets: Vec<SpillTarget> =
        switchyard_config::region::spill_targets(&world.regions, region, pool)
            .into_iter()
            .map(|(r, addrs)| SpillTarget {
                region: r.name.clone(),
                addrs,
            })
            .collect();
    (!targets.is_empty()).then_some(SpillSpec {
        below: pool.spill_below.max(1),
        targets,
    })
}

/// The spill ingress companion of listener `l`: same addresses on `port`, same pool and limits,
/// a PROXY header required, never spilling.
pub fn ingress(l: &ListenerSpec, port: u16) -> ListenerSpec {
    ListenerSpec {
        key: (l.key.0.clone(), format!("{}{INGRESS_SUFFIX}", l.key.1)),
        addrs: l
            .addrs
            .iter()
            .map(|a| SocketAddr::new(a.ip(), port))
            .collect(),
        accept_proxy: true,
        spill_ingress: true,
        source_rate: None, // every spilled connection comes from a few peer balancers
        ..l.clone()
    }
}

/// Why a connection spills (for logs and `explain lb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// No member is healthy.
    NoneHealthy,
    /// Fewer healthy members than `spill_below`.
    Below {
        /// Members up now.
        healthy: usize,
        /// The pool's `spill_below`.
        below: u32,
    },
    /// Members looked healthy but every connect attempt failed (health has not noticed yet).
    ConnectFailed,
}

impl Why {
    /// `no healthy member in us-east`, ...
    pub fn describe(self, region: &str) -> String {
        match self {
            Why::NoneHealthy => format!("no healthy member in {region}"),
            Why::Below { healthy, below } => {
                format!("{healthy} healthy member(s) in {region}, below spill_below = {below}")
            }
            Why::ConnectFailed => format!("every member of {region} refused the connection"),
        }
    }
}

/// Members up now (active check, passive ejection and admin state combined).
pub fn healthy(sel: &Selector) -> usize {
    sel.members().filter(|(_, h)| h.is_up()).count()
}

/// Whether a pool with `spec` and its members in `sel` spills every new connection now, and why.
/// Pure over the health snapshot: `explain lb`, status and the connection path agree.
pub fn decide(spec: &SpillSpec, sel: &Selector) -> Option<Why> {
    let healthy = healthy(sel);
    if healthy == 0 {
        Some(Why::NoneHealthy)
    } else if (healthy as u64) < u64::from(spec.below) {
        Some(Why::Below {
            healthy,
            below: spec.below,
        })
    } else {
        None
    }
}

/// The explanation `explain lb` gives: `spilled to eu-west: no healthy member in us-east`.
pub fn explain(region: &str, spec: &SpillSpec, why: Why) -> String {
    let to = spec
        .targets
        .first()
        .map(|t| t.region.as_str())
        .unwrap_or("?");
    format!("spilled to {to}: {}", why.describe(region))
}

/// Metric handles of one target region of one pool, resolved when the pool is built.
#[derive(Debug)]
pub struct TargetRt {
    /// The target as planned.
    pub spec: SpillTarget,
    spilled: metrics::Counter,
    failed: metrics::Counter,
}

/// A pool's spill state at run time (part of its snapshot).
#[derive(Debug)]
pub struct SpillRt {
    /// The spec it was built from.
    pub spec: SpillSpec,
    /// Target regions in order.
    pub targets: Vec<TargetRt>,
    /// 1 while the pool spills every new connection (refreshed with the status gauges).
    pub spilling: metrics::Gauge,
    /// Connections spilled by this pool (all targets).
    pub spilled: std::sync::atomic::AtomicU64,
}

impl SpillRt {
    /// Resolves the metric handles for pool `pool` of `region`.
    pub fn new(region: &str, pool: &str, spec: SpillSpec) -> Self {
        let targets = spec
            .targets
            .iter()
            .map(|t| TargetRt {
                spilled: metrics::counter!(crate::metrics::SPILLED, "from" => region.to_string(), "to" => t.region.clone()),
                failed: metrics::counter!(crate::metrics::SPILL_FAILED, "from" => region.to_string(), "to" => t.region.clone()),
                spec: t.clone(),
            })
            .collect();
        SpillRt {
            spilling: metrics::gauge!(crate::metrics::POOL_SPILLING, "region" => region.to_string(), "pool" => pool.to_string()),
            spilled: Default::default(),
            spec,
            targets,
        }
    }
}

/// Before choosing a local member: does this connection spill at once (`spill_below` > 1 and
/// too few healthy members)? One branch when spill is not configured or `spill_below` is 1.
pub fn early(pool: &PoolSnap, ingress: bool) -> Option<Why> {
    let sp = pool.spill.as_ref()?;
    if ingress || sp.spec.below <= 1 {
        return None;
    }
    match decide(&sp.spec, &pool.selector)? {
        Why::NoneHealthy => None, // the local choice finds nothing and spills then
        w => Some(w),
    }
}

/// No local member took the connection: spill it if this pool may (not on a spill ingress),
/// else refuse it with a RST as before.
#[allow(clippy::too_many_arguments)] // the connection's own state, handed over as it stands
pub async fn or_refuse(
    client: TcpStream,
    mut first: relay::copy::First,
    peer: SocketAddr,
    src: SocketAddr,
    dst: Option<SocketAddr>,
    l: &ListenerRt,
    cfg: &Settings,
    pool: &PoolSnap,
    ctx: &ConnCtx,
    why: Option<Why>,
) {
    let spill = match &pool.spill {
        Some(sp) if !cfg.spec.spill_ingress => sp,
        _ => {
            l.metrics.refused_no_backend.increment(1);
            return refuse(client);
        }
    };
    let why =
        why.unwrap_or_else(|| decide(&spill.spec, &pool.selector).unwrap_or(Why::ConnectFailed));
    let dst = dst.unwrap_or_else(|| client.local_addr().unwrap_or(peer));
    let started = Instant::now();
    let Some((t, mut backend, addr)) = connect_first(spill, cfg.spec.connect_timeout).await else {
        l.metrics.refused_no_backend.increment(1);
        return refuse(client);
    };
    t.spilled.increment(1);
    spill
        .spilled
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    pool.note_spill(&t.spec.region, why);
    let mut hdr = [0u8; proxy::MAX_ENCODED];
    let n = proxy::encode(proxy::Version::V2, src, dst, &mut hdr);
    if backend.write_all(&hdr[..n]).await.is_err() {
        relay::set_reset_on_close(&client);
        return;
    }
    // the client's first bytes, when the local attempts read them already
    let first_len = first.len();
    if first.send(&backend).await.is_err() {
        relay::set_reset_on_close(&client);
        return;
    }
    let limits = Limits {
        idle: cfg.spec.idle_timeout,
        max_lifetime: cfg.spec.max_lifetime,
    };
    let mut out = relay::relay(
        &client,
        &backend,
        &cfg.mode,
        limits,
        ctx.hard_stop.cancelled(),
    )
    .await;
    out.up += first_len;
    if cfg.spec.access_log {
        tracing::info!(
            target: "switchyard::access",
            client = %src,
            listener = %cfg.spec.key.1,
            backend = %addr,
            spilled_to = %t.spec.region,
            bytes_up = out.up,
            bytes_down = out.down,
            duration_ms = started.elapsed().as_millis() as u64,
            end = out.end.as_str(),
            "connection closed"
        );
    }
}

/// The first target ingress that accepts a connection, in order.
async fn connect_first(
    spill: &SpillRt,
    timeout: Duration,
) -> Option<(&TargetRt, TcpStream, SocketAddr)> {
    for t in &spill.targets {
        for &addr in &t.spec.addrs {
            match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Some((t, s, addr));
                }
                _ => {
                    t.failed.increment(1);
                    tracing::debug!(to = %t.spec.region, %addr, "spill connect failed");
                }
            }
        }
    }
    None
}
