//! # switchyard-drill: failover drills (`switchyard drill SCENARIO`)
//!
//! Breaks something on purpose (a built-in scenario
//! or a TOML scenario file of timed steps), keeps steady load from real clients flowing through
//! DNS → L4 → gateway → services while it happens, watches the admin API and DNS, and reports
//! what the clients saw: a per-second timeline, time to detect, when DNS moved clients, errors by
//! kind, traffic shares, and each expectation with pass/fail (exit 0 when all hold, 1 otherwise).
//!
//! ## Layout
//! - `scenario` (the file format: `file`, `model`), `builtin` (the six built-in scenarios; `ttl`
//!   judges what DNS caching explains in `region-blackout`);
//! - the load: `client` (HTTP clients at a steady rate), `dns` (their resolver, with ECS);
//! - `observe` (the admin API's `/status` and DNS watchers), `target` (which world: a running
//!   node, or one the drill starts), `run` (one drill end to end: [`run`] with [`DrillOptions`]);
//! - the pure half: `model` (what was seen), `analyze` (expectations, time to detect, shares),
//!   `report` (table and JSON), `svg` (the timeline chart).
//!
//! The admin API is reached through `switchyard-admin-client`, like the CLI does; the binary
//! turns `switchyard drill`'s arguments into [`DrillOptions`]. See `docs/drills.md`.

mod analyze;
mod builtin;
mod client;
mod dns;
mod model;
mod observe;
mod report;
mod run;
mod scenario;
mod svg;
mod target;
mod ttl;

use std::path::PathBuf;
use std::time::Duration;

/// What to drill and how: the binary fills it from `switchyard drill`'s arguments (see
/// `docs/drills.md` for each option).
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// Built-in scenario (instance-crash, az-outage, region-outage, planned-drain, flap,
    /// region-blackout) or a
    /// scenario TOML file.
    pub scenario: String,
    /// Admin API of the running node to drill. Without it, the node at the world's admin address
    /// is used if it answers; otherwise the drill starts the world itself (`switchyard run`, this
    /// process's own executable) and stops it afterwards.
    pub target: Option<String>,
    /// The world's config (names, addresses, health settings, signing key); default: the demo world.
    pub config: Option<PathBuf>,
    /// DNS server to query (default: the world's first DNS listener).
    pub dns: Option<std::net::SocketAddr>,
    /// Clients resolve through this caching resolver (RD=1), as real clients do; "DNS moved" is
    /// still measured at the authoritative server (`dns`), and "clients followed" is allowed the
    /// record's TTL + 1 s of resolver rounding.
    pub resolver: Option<std::net::SocketAddr>,
    /// Skip DNS: send every request straight to this address (a VIP, a gateway or a service
    /// instance). DNS expectations then fail: nothing was resolved.
    pub direct: Option<std::net::SocketAddr>,
    /// Run the load this long instead of the scenario's duration (must cover every step).
    pub duration: Option<Duration>,
    /// Total client requests per second instead of the scenario's rate.
    pub rate: Option<u32>,
    /// Where to write `report.json`, `timeline.svg` (and `world.log` for a world the drill started).
    pub out: PathBuf,
    /// Bearer token the clients send (default: minted with the world's signing key).
    pub token: Option<String>,
    /// Admin API token (default: the world's configured token).
    pub admin_token: Option<String>,
    /// Start even when the node is not healthy (something down, ejected, drained or failed):
    /// the drill then measures on top of an outage it did not cause.
    pub force: bool,
}

/// Runs a drill; returns the process exit code (0 when every expectation holds).
pub async fn run(args: DrillOptions) -> anyhow::Result<u8> {
    run::drill(args).await
}
