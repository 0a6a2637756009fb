//! `switchyard`: the binary. Parses the command line and hands off to the subcommand; the work
//! lives in the library crates (`config`, `balance`, `lb`, `dns`, `gateway`, `cluster`, `drill`).
//!
//! ## Layout
//! - `cli` (the clap definitions, completions, man page), `check`, `token`, `logging`;
//! - `run`: wiring: load the world, start its parts, SIGHUP reload, graceful stop; `systemd`
//!   (the notify protocol);
//! - `admin`: the admin API a running node serves; `adminctl`: the operator CLI over it
//!   (through `switchyard-admin-client`, which the drill uses too);
//! - `etcd`: the glue to `switchyard-cluster` (the world from etcd, cluster tasks, `config push`,
//!   `register`);
//! - `demo_services`: the in-process demo instances of the demo world; `demo_tls`: its CA and
//!   certificates (`demo-ca`, `cert`).
#![allow(unreachable_pub)] // a binary exports nothing: `pub` marks a module's interface to its siblings

mod admin;
mod adminctl;
mod bench;
mod check;
mod cli;
mod demo_services;
mod demo_tls;
mod dnssec_cmd;
mod etcd;
mod logging;
mod run;
mod systemd;
mod token;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.log_format);
    let result = match cli.command {
        cli::Command::Check(args) => return check::run(&args),
        cli::Command::Completions { shell } => {
            cli::completions(shell, &mut std::io::stdout());
            Ok(())
        }
        cli::Command::Man => cli::man(&mut std::io::stdout()).map_err(anyhow::Error::from),
        cli::Command::DemoConfig => {
            print!("{}", switchyard_config::demo_toml());
            Ok(())
        }
        cli::Command::Token(args) => token::run(&args),
        cli::Command::DemoCa { state_dir } => demo_tls::print_ca(state_dir.as_deref()),
        cli::Command::Cert(args) => demo_tls::cert(&args),
        cli::Command::Dnssec(args) => dnssec_cmd::run(&args),
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
        cli::Command::Config(a) => return etcd::config(a),
        cli::Command::Register(a) => runtime().and_then(|rt| rt.block_on(etcd::register(a))),
        cli::Command::Bench(a) => runtime().and_then(|rt| rt.block_on(bench::run(a))),
        cli::Command::Drill(a) => {
            match runtime().and_then(|rt| rt.block_on(switchyard_drill::run(a.into()))) {
                Ok(code) => return ExitCode::from(code),
                Err(e) => Err(e),
            }
        }
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
