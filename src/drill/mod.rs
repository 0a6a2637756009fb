//! Failover drills: `switchyard drill SCENARIO` (being written).

use clap::Args;

/// Arguments of `switchyard drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Built-in scenario name or a scenario TOML file.
    pub scenario: String,
}

/// Runs a drill; returns the process exit code (0 when every expectation holds).
pub async fn run(args: DrillArgs) -> anyhow::Result<u8> {
    anyhow::bail!("drill {:?}: not implemented yet", args.scenario)
}
