//! Command-line interface (clap): one subcommand per job.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// `--version`: the package version, the git revision and the build date (see `build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SWITCHYARD_GIT_REV"),
    ", built ",
    env!("SWITCHYARD_BUILD_DATE"),
    ")"
);

/// Switchyard: authoritative geo DNS + L4 load balancer + L7 gateway, in one binary.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version = VERSION, about, long_about = None, propagate_version = true)]
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
    Drill(DrillArgs),
    /// Work with a world kept in etcd (`config push FILE --to etcd://...`).
    Config(crate::etcd::ConfigArgs),
    /// Register a service instance in etcd and keep its lease alive until Ctrl-C.
    Register(crate::etcd::RegisterArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell) to stdout.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    Man,
    /// Load test DNS, L4, HTTP or the whole client chain (closed or open loop, HDR histograms).
    Bench(switchyard_bench::BenchArgs),
    /// DNSSEC: make a zone's signing key (`keygen`), print its DS record (`ds`).
    Dnssec(crate::dnssec_cmd::DnssecArgs),
    /// Print the demo CA certificate (PEM) that the demo world's HTTPS certificates chain to.
    DemoCa {
        /// Where the demo keeps its CA and certificates.
        #[arg(long, env = "SWITCHYARD_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Certificates from the demo CA: `issue NAME...`, `demo --dir DIR`.
    Cert(CertArgs),
}

/// `switchyard cert`.
#[derive(Debug, Args)]
pub struct CertArgs {
    #[command(subcommand)]
    pub command: CertCommand,
}

/// What `switchyard cert` does.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Issue a certificate from the demo CA for DNS names, `*.` wildcards and IP addresses;
    /// writes OUT.pem and OUT.key.
    Issue {
        /// The names the certificate covers (the first is its common name).
        #[arg(required = true)]
        names: Vec<String>,
        /// Output path without extension (default: the first name).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Key algorithm.
        #[arg(long, value_enum, default_value_t = KeyType::Ecdsa)]
        key_type: KeyType,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// A client certificate (for mTLS) instead of a server one.
        #[arg(long)]
        client: bool,
        /// Where the demo keeps its CA.
        #[arg(long, env = "SWITCHYARD_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Write the demo CA and the demo gateways' certificate to DIR/tls/ (for a printed demo
    /// config in DIR).
    Demo {
        /// The folder of the config file.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Key algorithm of an issued certificate.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyType {
    /// ECDSA P-256.
    Ecdsa,
    /// Ed25519.
    Ed25519,
    /// RSA 2048.
    Rsa,
}

/// Writes the completion script for `shell` (generated from these definitions) to `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "switchyard", out);
}

/// Writes the man page (generated from these definitions) to `out`.
pub fn man(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap::CommandFactory;
    clap_mangen::Man::new(Cli::command()).render(out)
}

/// How to reach a running node's admin API.
#[derive(Debug, Args, Clone)]
pub struct AdminArgs {
    /// Admin API of the node to talk to: HOST:PORT (as `run --admin-listen` takes it) or
    /// http://HOST:PORT. Every answer names the node that gave it.
    #[arg(
        long,
        default_value = "127.0.0.1:9901",
        env = "SWITCHYARD_ADMIN",
        value_parser = admin_url
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

impl AdminArgs {
    /// The admin API client these arguments describe.
    pub fn client(&self) -> switchyard_admin_client::AdminClient {
        switchyard_admin_client::AdminClient::new(self.admin.clone(), self.token.clone())
    }
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
    /// Where the demo world keeps its CA and certificates (default: $XDG_STATE_HOME/switchyard,
    /// else ~/.local/state/switchyard).
    #[arg(long, env = "SWITCHYARD_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// How long in-flight work may take to finish after SIGINT/SIGTERM.
    #[arg(long, default_value = "10s", value_parser = humantime_duration)]
    pub grace: Duration,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The config file to validate (`switchyard check FILE` or `--config FILE`).
    #[arg(required_unless_present = "config", conflicts_with = "config")]
    pub file: Option<PathBuf>,
    /// The config file to validate.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

impl CheckArgs {
    /// The file to validate, however it was given.
    pub fn path(&self) -> &std::path::Path {
        self.file
            .as_deref()
            .or(self.config.as_deref())
            .expect("clap requires FILE or --config")
    }
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
    #[arg(long, short, conflicts_with = "secret")]
    pub config: Option<PathBuf>,
    /// Sign with this HS256 secret instead, for a quick-mode gateway started with
    /// `switchyard gateway --jwt-secret SECRET`.
    #[arg(long)]
    pub secret: Option<String>,
}

/// Arguments of `switchyard drill` (turned into the drill crate's own options).
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Built-in scenario (instance-crash, az-outage, region-outage, planned-drain, flap,
    /// region-blackout) or a scenario TOML file.
    pub scenario: String,
    /// Admin API of the running node to drill. Without it, the node at the world's admin address
    /// is used if it answers; otherwise the drill starts the world itself and stops it afterwards.
    /// HOST:PORT or http://HOST:PORT.
    #[arg(long, value_parser = admin_url)]
    pub target: Option<String>,
    /// The world's config (names, addresses, health settings, signing key); default: the demo world.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// DNS server to query (default: the world's first DNS listener).
    #[arg(long)]
    pub dns: Option<std::net::SocketAddr>,
    /// Clients resolve through this caching resolver (RD=1), as real clients do; DNS moves are
    /// still measured at --dns (the authoritative server).
    #[arg(long)]
    pub resolver: Option<std::net::SocketAddr>,
    /// Skip DNS: send every request straight to this address (a VIP, a gateway or a service
    /// instance). DNS expectations then fail: nothing was resolved.
    #[arg(long)]
    pub direct: Option<std::net::SocketAddr>,
    /// Run the load this long instead of the scenario's duration (must cover every step).
    #[arg(long, value_parser = drill_duration)]
    pub duration: Option<Duration>,
    /// Total client requests per second instead of the scenario's rate.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Where to write `report.json`, `timeline.svg` (and `world.log` for a world the drill
    /// started). Default: a new directory per run under the state directory,
    /// `$XDG_STATE_HOME/switchyard/drills/SCENARIO-TIME` (`~/.local/state/...`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Bearer token the clients send (default: minted with the world's signing key).
    #[arg(long, env = "SWITCHYARD_DRILL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Admin API token (default: SWITCHYARD_ADMIN_TOKEN, else the world's configured token).
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Start even when the node is not healthy (something down, ejected, drained or failed).
    #[arg(long)]
    pub force: bool,
}

impl From<DrillArgs> for switchyard_drill::DrillOptions {
    fn from(a: DrillArgs) -> Self {
        let out = a.out.unwrap_or_else(|| drill_out_dir(&a.scenario));
        switchyard_drill::DrillOptions {
            scenario: a.scenario,
            target: a.target,
            config: a.config,
            dns: a.dns,
            direct: a.direct,
            resolver: a.resolver,
            duration: a.duration,
            rate: a.rate,
            out,
            token: a.token,
            admin_token: a.admin_token,
            force: a.force,
        }
    }
}

/// `$XDG_STATE_HOME/switchyard/drills/SCENARIO-2026-12-03T20-25-00Z` (else under
/// `~/.local/state`, else `./drill-report`).
fn drill_out_dir(scenario: &str) -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        });
    let Some(base) = base else {
        return PathBuf::from("drill-report");
    };
    let name = std::path::Path::new(scenario)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "drill".into());
    let when = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "-");
    base.join("switchyard/drills")
        .join(format!("{name}-{when}"))
}

fn admin_url(s: &str) -> Result<String, String> {
    switchyard_admin_client::base_url(s)
}

fn drill_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (write e.g. \"8s\")"))
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (write e.g. \"500ms\", \"10s\")"))
}
