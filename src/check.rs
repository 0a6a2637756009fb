//! `switchyard check`: validate a config file and say what is in it or everything wrong with it.

use crate::cli::CheckArgs;
use std::process::ExitCode;

/// Exit 0 with a summary for a valid file; exit 2 with every error for an invalid or missing one.
pub fn run(args: &CheckArgs) -> ExitCode {
    match switchyard_config::load_file(&args.config) {
        Ok(world) => {
            println!("ok: {}: {}", args.config.display(), world.summary());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{errors}");
            ExitCode::from(2)
        }
    }
}
