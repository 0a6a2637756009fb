//! Stand-alone quick mode (same as `switchyard gateway ...`), for benchmarking the crate alone:
//! `cargo run --release -p switchyard-gateway --example gateway-quick -- --listen 127.0.0.1:18301 \
//!    --route /users/=127.0.0.1:18401 --route /orders/=127.0.0.1:18402 --jwt-alg HS256 --jwt-secret S`

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: switchyard_gateway::QuickArgs,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        s.cancel();
    });
    if let Err(e) = switchyard_gateway::run_quick(cli.args, stop).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
