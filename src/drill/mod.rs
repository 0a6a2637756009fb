//! Failover drills: `switchyard drill SCENARIO`. Breaks something on purpose (a built-in scenario
//! or a TOML scenario file of timed steps), keeps steady load from real clients flowing through
//! DNS → L4 → gateway → services while it happens, watches the admin API and DNS, and reports
//! what the clients saw: a per-second timeline, time to detect, when DNS moved clients, errors by
//! kind, traffic shares, and each expectation with pass/fail (exit 0 when all hold, 1 otherwise).
//!
//! Layout: `scenario` (file format), `builtin` (the five built-ins), `client` + `dns` (the load),
//! `observe` (status and DNS watchers), `run` (one drill end to end), `target` (which world),
//! and the pure half: `model`, `analyze`, `report`, `svg`. See `docs/drills.md`.

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

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `switchyard drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Built-in scenario (instance-crash, az-outage, region-outage, planned-drain, flap) or a
    /// scenario TOML file.
    pub scenario: String,
    /// Admin API of the running node to drill. Without it, the node at the world's admin address
    /// is used if it answers; otherwise the drill starts the world itself and stops it afterwards.
    #[arg(long)]
    pub target: Option<String>,
    /// The world's config (names, addresses, health settings, signing key); default: the demo world.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// DNS server to query (default: the world's first DNS listener).
    #[arg(long)]
    pub dns: Option<std::net::SocketAddr>,
    /// Skip DNS: send every request straight to this address (a VIP, a gateway or a service
    /// instance). DNS expectations then fail: nothing was resolved.
    #[arg(long)]
    pub direct: Option<std::net::SocketAddr>,
    /// Run the load this long instead of the scenario's duration (must cover every step).
    #[arg(long, value_parser = humantime_duration)]
    pub duration: Option<Duration>,
    /// Total client requests per second instead of the scenario's rate.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Where to write `report.json`, `timeline.svg` (and `world.log` for a world the drill started).
    #[arg(long, default_value = "drill-report")]
    pub out: PathBuf,
    /// Bearer token the clients send (default: minted with the world's signing key).
    #[arg(long, env = "SWITCHYARD_DRILL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Admin API token (default: SWITCHYARD_ADMIN_TOKEN, else the world's configured token).
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (write e.g. \"8s\")"))
}

/// Runs a drill; returns the process exit code (0 when every expectation holds).
pub async fn run(args: DrillArgs) -> anyhow::Result<u8> {
    run::drill(args).await
}
