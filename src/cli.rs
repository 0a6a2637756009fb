//! Command-line interface (clap): one subcommand per job.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Switchyard: authoritative geo DNS + L4 load balancer + L7 gateway, in one binary.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr (filter with RUST_LOG, default `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the world's parts in the foreground (the embedded demo world without --config).
    Run(RunArgs),
    /// Validate a config file: a one-line summary, or every error with its line and column.
    Check(CheckArgs),
    /// Print the embedded demo world as TOML (the documented example config).
    DemoConfig,
    /// Print a JWT signed with the config's signing key (the demo world's insecure demo key by default).
    Token(TokenArgs),
    /// Show the world as a running node sees it (admin API `GET /status`).
    Status(AdminArgs),
    /// Drain a region, AZ or instance: no new traffic, existing connections finish.
    Drain(TargetArgs),
    /// Undo a drain.
    Undrain(TargetArgs),
    /// Force a region, AZ or instance down, as if its health checks failed.
    Fail(TargetArgs),
    /// Hand a failed region, AZ or instance back to health-check control.
    Restore(TargetArgs),
    /// Ask a running node to reload its config file (same rules as SIGHUP).
    Reload(AdminArgs),
    /// Stop or start an in-process demo instance of a running node (for drills).
    Instance(InstanceArgs),
    /// Quick mode: one L4 listener over the given backends, no config file (like socat, but balanced).
    Lb(switchyard_lb::QuickArgs),
    /// Quick mode: serve one RFC 1035 zone file authoritatively, no config file.
    Dns(switchyard_dns::QuickArgs),
    /// Quick mode: a JWT-checking gateway over a few path-prefix routes, no config file.
    Gateway(switchyard_gateway::QuickArgs),
    /// Explain a decision of a running node: which region DNS would answer, and why.
    Explain(ExplainArgs),
    /// Rehearse an outage under steady client load and report what clients saw (exit 1 on a failed expectation).
    Drill(crate::drill::DrillArgs),
    /// Work with a world kept in etcd (`config push FILE --to etcd://...`).
    Config(crate::cluster::ConfigArgs),
    /// Register a service instance in etcd and keep its lease alive until Ctrl-C.
    Register(crate::cluster::RegisterArgs),
    /// Load test DNS, L4, HTTP or the whole client chain (closed or open loop, HDR histograms).
    Bench(switchyard_bench::BenchArgs),
}

/// How to reach a running node's admin API.
#[derive(Debug, Args, Clone)]
pub struct AdminArgs {
    /// Admin API base URL.
    #[arg(
        long,
        default_value = "http://127.0.0.1:9901",
        env = "SWITCHYARD_ADMIN"
    )]
    pub admin: String,
    /// Admin bearer token (mutations).
    #[arg(
        long,
        env = "SWITCHYARD_ADMIN_TOKEN",
        default_value = "demo-admin-token",
        hide_default_value = true
    )]
    pub token: String,
    /// Print the raw JSON answer.
    #[arg(long)]
    pub json: bool,
}

/// What kind of thing an admin action targets.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TargetKind {
    Region,
    Az,
    Instance,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    pub kind: TargetKind,
    pub name: String,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(subcommand)]
    pub what: ExplainWhat,
}

#[derive(Debug, Subcommand)]
pub enum ExplainWhat {
    /// Which region(s) the answer for NAME would contain for a client, and why.
    Dns {
        /// GSLB name, e.g. api.example.test
        name: String,
        /// The client's address (the query's source).
        #[arg(long, default_value = "127.0.0.1")]
        client: std::net::IpAddr,
        /// EDNS Client Subnet the query carries, e.g. 81.2.69.160/27.
        #[arg(long)]
        ecs: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Which AZ and member an L4 listener would choose for a client, and why.
    Lb {
        /// Listener name, e.g. us-east-http
        listener: String,
        #[arg(long, default_value = "127.0.0.1")]
        client: std::net::IpAddr,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// Demo instance action.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InstanceAction {
    Stop,
    Start,
}

#[derive(Debug, Args)]
pub struct InstanceArgs {
    pub action: InstanceAction,
    pub name: String,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// World config file, or etcd://HOST:PORT/KEY[?node=NAME&ttl=10s&quorum=1] to follow a world
    /// kept in etcd (see docs/cluster.md); without it, the embedded demo world runs on 127.0.x.y.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Serve the admin API here instead of the world's `[admin] listen` (several nodes on one host).
    #[arg(long)]
    pub admin_listen: Option<std::net::SocketAddr>,
    /// Serve DNS here instead of the world's `[dns] listen` (several DNS nodes on one host).
    #[arg(long, value_delimiter = ',')]
    pub dns_listen: Option<Vec<std::net::SocketAddr>>,
    /// Run only this region's L4 listeners, gateway instances and demo services.
    #[arg(long)]
    pub region: Option<String>,
    /// Run only these parts (comma separated): dns, lb, gateway, services, admin.
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    /// Print the config this would run (TOML) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// How long in-flight work may take to finish after SIGINT/SIGTERM.
    #[arg(long, default_value = "10s", value_parser = humantime_duration)]
    pub grace: Duration,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The config file to validate.
    #[arg(long, short)]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Subject (`sub` claim).
    #[arg(long)]
    pub sub: String,
    /// Roles (comma separated), put in the configured roles claim.
    #[arg(long, value_delimiter = ',', default_value = "")]
    pub roles: Vec<String>,
    /// Lifetime of the token.
    #[arg(long, default_value = "1h", value_parser = humantime_duration)]
    pub ttl: Duration,
    /// Config whose signing key to use (default: the demo world).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (write e.g. \"500ms\", \"10s\")"))
}
