//! Stand-alone DNS server for benchmarks before/without the `switchyard` binary:
//!
//!   dns-serve quick --listen 127.0.0.1:18505 --zone-file zone --origin example.test. --workers 2
//!   dns-serve config world.toml        # the [dns] part of a world (GSLB names included)
//!
//! Stops on SIGINT/SIGTERM.

use std::sync::Arc;

use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
enum Cmd {
    /// Serve one zone file.
    Quick(switchyard_dns::QuickArgs),
    /// Serve the DNS part of a world config.
    Config { path: std::path::PathBuf },
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let cmd = Cmd::parse();
    let token = CancellationToken::new();
    {
        let token = token.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            token.cancel();
        });
    }
    let result = match cmd {
        Cmd::Quick(args) => switchyard_dns::run_quick(args, token).await,
        Cmd::Config { path } => {
            let world = switchyard_config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
            let registry = switchyard_balance::HealthRegistry::with_admin(
                switchyard_balance::AdminState::new(),
            );
            match switchyard_dns::start(Arc::new(world), registry, token.clone()).await {
                Ok(dns) => {
                    eprintln!("dns listening on {:?}", dns.local_addrs());
                    dns.wait().await;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
    };
    if let Err(e) = result {
        eprintln!("dns-serve: {e}");
        std::process::exit(1);
    }
}
