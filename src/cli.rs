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
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// World config file; without it, the embedded demo world runs on 127.0.x.y.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
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
