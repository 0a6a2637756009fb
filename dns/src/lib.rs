//! # switchyard-dns: the authoritative, geo- and health-aware DNS server (the global balancer)
//!
//! Serves zones (from config or RFC 1035 zone files) and GSLB names whose A/AAAA answers are the
//! VIPs of the best region for each client: by where the client is (EDNS Client Subnet or the
//! source address, MaxMind database, CIDR/country/continent maps or distance) and by which
//! regions are healthy (the shared `switchyard-balance` health view and admin overrides).
//!
//! ## Wiring (the binary)
//! ```no_run
//! # async fn demo(world: std::sync::Arc<switchyard_config::World>) -> Result<(), switchyard_dns::Error> {
//! let registry = switchyard_balance::HealthRegistry::with_admin(switchyard_balance::AdminState::new());
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! // binds UDP (one SO_REUSEPORT socket per worker) + TCP before returning
//! let dns = switchyard_dns::start(world.clone(), registry.clone(), shutdown.clone()).await?;
//! // on SIGHUP: a new validated world; zones, GSLB names, geo db swap atomically
//! dns.reload(world.clone())?;
//! // admin API: `explain dns`
//! let why = dns.explain("api.example.test.", "127.0.0.1".parse().unwrap(), None)?;
//! shutdown.cancel();
//! dns.wait().await;
//! # Ok(()) }
//! ```
//! Quick mode: [`QuickArgs`] + [`run_quick`].
//!
//! ## Layout
//! - [`wire`]: strict query parser and response writer (the hot path, hand-written: see there);
//! - [`zone`]: zone data with pre-encoded RDATA; [`answer`]: the RFC answering logic;
//! - [`gslb`]: policies and the pure [`gslb::choose`] function with its [`gslb::Explanation`];
//! - [`geo`]: MaxMind lookups with privacy truncation; [`health`]: the region health view;
//! - [`server`]: UDP workers (`recvmmsg`/`sendmmsg`), TCP, reload, shutdown;
//! - [`metrics`]: metric names and handles.

pub mod answer;
pub mod dnssec;
pub mod error;
pub mod geo;
pub mod gslb;
pub mod health;
pub mod metrics;
pub mod names;
pub mod notify;
pub mod quick;
pub mod rrl;
pub mod server;
pub mod snapshot;
pub mod spec;
pub mod wire;
pub mod zone;

pub use error::Error;
pub use gslb::{Explanation, RegionHealth, RegionState, StaticHealth};
pub use health::LiveHealth;
pub use quick::{run_quick, QuickArgs};
pub use server::explain;
pub use spec::DnsSpec;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use switchyard_balance::HealthRegistry;
use switchyard_config::World;
use tokio_util::sync::CancellationToken;

/// The running DNS server of a world.
pub struct Dns {
    inner: server::Handle,
    registry: HealthRegistry,
    shutdown: CancellationToken,
}

/// Starts the DNS server of `world`: builds zones and GSLB names, starts the region health
/// checks it needs in `registry` (pool members of regions this node runs, VIP probes of the
/// others), binds every `[dns] listen` address (UDP + TCP) and serves until `shutdown`.
pub async fn start(
    world: Arc<World>,
    registry: HealthRegistry,
    shutdown: CancellationToken,
) -> Result<Dns, Error> {
    let spec = DnsSpec::from_world(&world)?;
    let health = Arc::new(LiveHealth::from_world(&world, &registry, &shutdown));
    let inner = server::start(spec, health, shutdown.clone()).await?;
    Ok(Dns {
        inner,
        registry,
        shutdown,
    })
}

impl Dns {
    /// Bound addresses (same port for UDP and TCP), in `[dns] listen` order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.inner.local_addrs()
    }

    /// Bound DNS over TLS addresses (`[dns] tls`; empty when off).
    pub fn dot_addrs(&self) -> &[SocketAddr] {
        self.inner.dot_addrs()
    }

    /// Bound DNS over HTTPS addresses (`[dns] https`; empty when off).
    pub fn doh_addrs(&self) -> &[SocketAddr] {
        self.inner.doh_addrs()
    }

    /// Applies a new validated world (zones, GSLB names, policies, geo database, region health
    /// sources). Built aside and swapped atomically: no query is dropped; on error the running
    /// configuration stays. Listener changes need a restart. Call inside the tokio runtime.
    pub fn reload(&self, world: Arc<World>) -> Result<(), Error> {
        let spec = DnsSpec::from_world(&world)?;
        let health = Arc::new(LiveHealth::from_world(
            &world,
            &self.registry,
            &self.shutdown,
        ));
        self.inner.reload(spec, health)
    }

    /// Why GSLB `name` answers what it does right now for a client at `client` (or with an ECS
    /// network `ecs`).
    pub fn explain(
        &self,
        name: &str,
        client: IpAddr,
        ecs: Option<IpNet>,
    ) -> Result<Explanation, Error> {
        self.inner.explain(name, client, ecs)
    }

    /// Resolves once `shutdown` was cancelled and every worker and connection has finished
    /// (takes `&self`, so the handle can be shared in an `Arc` with the admin API).
    pub async fn wait(&self) {
        self.inner.wait().await
    }
}
