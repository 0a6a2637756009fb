//! `cargo run --release -p switchyard-lb --example lb-quick -- --listen A --backends B,C`: the
//! balancer's quick mode without building the whole `switchyard` binary (handy for profiling).

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: switchyard_lb::QuickArgs,
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let s2 = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            s2.cancel();
        });
        if let Err(e) = switchyard_lb::run_quick(cli.args, stop).await {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    });
}
