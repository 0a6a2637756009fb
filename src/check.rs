//! `switchyard check`: validate a config file and say what is in it or everything wrong with it.

use crate::cli::CheckArgs;
use std::process::ExitCode;

/// Exit 0 with a summary for a valid file; exit 2 with every error for an invalid or missing one.
pub fn run(args: &CheckArgs) -> ExitCode {
    let path = args.path();
    match switchyard_config::load_file(path) {
        Ok(world) => {
            // zone files and DNSSEC keys are read and checked as the server would
            if let Err(e) =
                switchyard_dns::DnsSpec::from_world(&world).and_then(|spec| spec.build().map(drop))
            {
                eprintln!("{}: dns: {e}", path.display());
                return ExitCode::from(2);
            }
            println!("ok: {}: {}", path.display(), world.summary());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{errors}");
            ExitCode::from(2)
        }
    }
}
