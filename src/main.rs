//! `switchyard`: the binary. Parses the command line and hands off to the subcommand; the work
//! lives in the library crates (`config`, `balance`, `lb`, `dns`, `gateway`).

mod admin;
mod adminctl;
mod bench;
mod check;
mod cli;
mod cluster;
mod demo_services;
mod drill;
mod logging;
mod run;
mod token;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.log_format);
    let result = match cli.command {
        cli::Command::Check(args) => return check::run(&args),
        cli::Command::DemoConfig => {
            print!("{}", switchyard_config::demo_toml());
            Ok(())
        }
        cli::Command::Token(args) => token::run(&args),
        cli::Command::Run(args) => runtime().and_then(|rt| rt.block_on(run::run(args))),
        cli::Command::Status(a) => runtime().and_then(|rt| rt.block_on(adminctl::status(&a))),
        cli::Command::Drain(a) => {
            runtime().and_then(|rt| rt.block_on(adminctl::action("drain", &a)))
        }
        cli::Command::Undrain(a) => {
            runtime().and_then(|rt| rt.block_on(adminctl::action("undrain", &a)))
        }
        cli::Command::Fail(a) => runtime().and_then(|rt| rt.block_on(adminctl::action("fail", &a))),
        cli::Command::Restore(a) => {
            runtime().and_then(|rt| rt.block_on(adminctl::action("restore", &a)))
        }
        cli::Command::Reload(a) => runtime().and_then(|rt| rt.block_on(adminctl::reload(&a))),
        cli::Command::Instance(a) => runtime().and_then(|rt| rt.block_on(adminctl::instance(&a))),
        cli::Command::Lb(a) => quick(|t| async move {
            switchyard_lb::run_quick(a, t)
                .await
                .map_err(anyhow::Error::from)
        }),
        cli::Command::Dns(a) => quick(|t| async move {
            switchyard_dns::run_quick(a, t)
                .await
                .map_err(anyhow::Error::from)
        }),
        cli::Command::Gateway(a) => quick(|t| async move {
            switchyard_gateway::run_quick(a, t)
                .await
                .map_err(anyhow::Error::from)
        }),
        cli::Command::Explain(a) => runtime().and_then(|rt| rt.block_on(adminctl::explain(&a))),
        cli::Command::Config(a) => return cluster::config(a),
        cli::Command::Register(a) => runtime().and_then(|rt| rt.block_on(cluster::register(a))),
        cli::Command::Bench(a) => runtime().and_then(|rt| rt.block_on(bench::run(a))),
        cli::Command::Drill(a) => match runtime().and_then(|rt| rt.block_on(drill::run(a))) {
            Ok(code) => return ExitCode::from(code),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs a quick-mode server until SIGINT/SIGTERM.
fn quick<F, Fut>(f: F) -> anyhow::Result<()>
where
    F: FnOnce(tokio_util::sync::CancellationToken) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    runtime()?.block_on(async move {
        let token = tokio_util::sync::CancellationToken::new();
        let stop = token.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            if let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            stop.cancel();
        });
        f(token).await
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
