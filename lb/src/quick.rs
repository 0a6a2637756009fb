//! Quick mode: `switchyard lb --listen ADDR --backend ADDR [--backend ADDR ...] [--policy P]`:
//! one listener over the given backends with TCP health checks and no config file.

use crate::plan::{ListenerSpec, Plan, PoolSpec};
use crate::{start_plan, LbError, LbOptions};
use std::net::SocketAddr;
use std::time::Duration;
use switchyard_balance::{CheckSpec, HealthRegistry, MemberSpec, Policy};
use switchyard_config::lb::{Forwarding, IoEngine, ProxyVersion};
use tokio_util::sync::CancellationToken;

/// Arguments of `switchyard lb`.
#[derive(Debug, Clone, clap::Args)]
pub struct QuickArgs {
    /// Address to listen on (e.g. 127.0.0.1:8080 or [::1]:8080).
    #[arg(long)]
    pub listen: SocketAddr,
    /// A backend address; repeat for more.
    #[arg(long = "backend")]
    pub backend: Vec<SocketAddr>,
    /// Backends as one comma-separated list (a,b,c).
    #[arg(long, value_delimiter = ',')]
    pub backends: Vec<SocketAddr>,
    /// round_robin, least_connections, power_of_two, maglev or random.
    #[arg(long, default_value = "round_robin")]
    pub policy: String,
    /// auto (copy small messages, splice bulk), splice (always zero-copy) or copy.
    #[arg(long, default_value = "auto")]
    pub forwarding: String,
    /// io_uring (a ring per worker socket; falls back to epoll with a log line where the
    /// kernel refuses it) or epoll (a tokio reactor per worker thread).
    #[arg(long, default_value = "io_uring")]
    pub io_engine: String,
    /// Accept loops (SO_REUSEPORT sockets); default one per CPU.
    #[arg(long)]
    pub workers: Option<u32>,
    /// Dedicated worker threads, one current-thread runtime each (default: one per CPU); 0
    /// runs accept loops and connections on the shared multi-threaded runtime instead.
    #[arg(long)]
    pub worker_threads: Option<usize>,
    /// Pipe size for splice, bytes (bigger pipes: fewer syscalls per bulk byte; a pipe is held
    /// only while a direction carries bulk data).
    #[arg(long, default_value_t = 1 << 18)]
    pub pipe_size: u32,
    /// Buffer size per direction for copy/auto, bytes.
    #[arg(long, default_value_t = 1 << 14)]
    pub buffer_size: u32,
    #[arg(long, default_value_t = 100_000)]
    /// Most client connections open at once.
    pub max_connections: u32,
    #[arg(long, default_value_t = 4096)]
    /// Listen backlog.
    pub backlog: u32,
    /// Health check interval (TCP connect), e.g. 2s; 0s disables active checks.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub health_interval: Duration,
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    /// Timeout of each connect to a backend, e.g. 2s.
    pub connect_timeout: Duration,
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    /// Close a connection idle this long in both directions, e.g. 300s.
    pub idle_timeout: Duration,
    /// Send a PROXY protocol header (v1 or v2) to backends.
    #[arg(long)]
    pub proxy_protocol: Option<String>,
    /// Log one line per closed connection.
    #[arg(long)]
    pub access_log: bool,
}

impl QuickArgs {
    /// The plan quick mode runs.
    pub fn plan(&self) -> Result<Plan, LbError> {
        let addrs: Vec<SocketAddr> = self.backend.iter().chain(&self.backends).copied().collect();
        if addrs.is_empty() {
            return Err(LbError::Args("give at least one --backend".into()));
        }
        let policy: Policy = self.policy.parse().map_err(LbError::Args)?;
        let forwarding = match self.forwarding.as_str() {
            "auto" => Forwarding::Auto,
            "splice" => Forwarding::Splice,
            "copy" => Forwarding::Copy,
            o => {
                return Err(LbError::Args(format!(
                    "unknown forwarding {o:?} (auto, splice or copy)"
                )))
            }
        };
        let io_engine = match self.io_engine.as_str() {
            "epoll" => IoEngine::Epoll,
            "io_uring" => IoEngine::IoUring,
            o => {
                return Err(LbError::Args(format!(
                    "unknown I/O engine {o:?} (epoll or io_uring)"
                )))
            }
        };
        let proxy = match self.proxy_protocol.as_deref() {
            None => None,
            Some("v1") => Some(ProxyVersion::V1),
            Some("v2") => Some(ProxyVersion::V2),
            Some(o) => {
                return Err(LbError::Args(format!(
                    "unknown PROXY version {o:?} (v1 or v2)"
                )))
            }
        };
        let members = addrs
            .iter()
            .map(|a| MemberSpec::new(a.to_string(), *a, "default", 1))
            .collect();
        let mut pool = PoolSpec::new("quick", "backends", members);
        pool.policy = policy;
        pool.proxy_protocol = proxy;
        pool.check = (!self.health_interval.is_zero()).then(|| {
            CheckSpec::tcp().with_timing(
                self.health_interval,
                self.connect_timeout.min(self.health_interval),
            )
        });
        let mut l = ListenerSpec::new("quick", "quick", vec![self.listen], "backends");
        l.forwarding = forwarding;
        l.io_engine = io_engine;
        l.workers = self.workers;
        l.pipe_size = self.pipe_size;
        l.buffer_size = self.buffer_size;
        l.max_connections = self.max_connections;
        l.backlog = self.backlog;
        l.connect_timeout = self.connect_timeout;
        l.idle_timeout = self.idle_timeout;
        l.access_log = self.access_log;
        Ok(Plan {
            pools: vec![pool],
            listeners: vec![l],
            global_max_connections: None, // LbOptions carries --max-connections
        })
    }
}

/// Runs quick mode until `shutdown` fires (then drains for up to 2 s).
pub async fn run_quick(args: QuickArgs, shutdown: CancellationToken) -> Result<(), LbError> {
    let plan = args.plan()?;
    let opts = LbOptions {
        grace: Duration::from_secs(2),
        global_max_connections: args.max_connections as usize,
        worker_threads: match args.worker_threads {
            None => Some(crate::default_worker_threads()),
            Some(0) => None,
            Some(n) => Some(n),
        },
    };
    let lb = start_plan(plan, HealthRegistry::new(), shutdown, opts).await?;
    lb.wait().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: QuickArgs,
    }

    fn plan(argv: &[&str]) -> Result<Plan, LbError> {
        let cli =
            Cli::try_parse_from(std::iter::once("lb").chain(argv.iter().copied())).expect("parse");
        cli.args.plan()
    }

    #[test]
    fn both_backend_forms_and_defaults() {
        let p = plan(&[
            "--listen",
            "127.0.0.1:8080",
            "--backend",
            "127.0.0.1:1",
            "--backends",
            "127.0.0.1:2,127.0.0.1:3",
        ])
        .unwrap();
        let addrs: Vec<String> = p.pools[0]
            .members
            .iter()
            .map(|m| m.addr.to_string())
            .collect();
        assert_eq!(addrs, ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]);
        assert_eq!(p.pools[0].policy, Policy::RoundRobin);
        assert_eq!(p.listeners[0].forwarding, Forwarding::Auto);
        assert_eq!(p.listeners[0].io_engine, IoEngine::IoUring);
        assert!(p.pools[0].check.is_some());
        let p = plan(&[
            "--listen",
            "127.0.0.1:8080",
            "--backend",
            "127.0.0.1:1",
            "--io-engine",
            "epoll",
        ])
        .unwrap();
        assert_eq!(p.listeners[0].io_engine, IoEngine::Epoll);
        let e = plan(&[
            "--listen",
            "127.0.0.1:8080",
            "--backend",
            "127.0.0.1:1",
            "--io-engine",
            "poll",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("epoll or io_uring"), "{e}");
        let p = plan(&[
            "--listen",
            "[::1]:1",
            "--backend",
            "[::1]:2",
            "--policy",
            "maglev",
            "--forwarding",
            "copy",
            "--health-interval",
            "0s",
            "--proxy-protocol",
            "v2",
        ])
        .unwrap();
        assert_eq!(p.pools[0].policy, Policy::Maglev);
        assert_eq!(p.listeners[0].forwarding, Forwarding::Copy);
        assert_eq!(p.pools[0].proxy_protocol, Some(ProxyVersion::V2));
        assert!(p.pools[0].check.is_none());
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(plan(&["--listen", "127.0.0.1:1"]).is_err(), "no backend");
        assert!(plan(&[
            "--listen",
            "127.0.0.1:1",
            "--backend",
            "127.0.0.1:2",
            "--policy",
            "fastest"
        ])
        .is_err());
        assert!(plan(&[
            "--listen",
            "127.0.0.1:1",
            "--backend",
            "127.0.0.1:2",
            "--forwarding",
            "zero"
        ])
        .is_err());
        assert!(plan(&[
            "--listen",
            "127.0.0.1:1",
            "--backend",
            "127.0.0.1:2",
            "--proxy-protocol",
            "v3"
        ])
        .is_err());
    }
}
