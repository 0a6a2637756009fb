//! `switchyard config push FILE --to etcd://...` and `switchyard register ...`.

use anyhow::anyhow;
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use switchyard_cluster::{Client, EtcdUrl, Link, Publisher, Registration};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub what: ConfigWhat,
}

#[derive(Debug, Subcommand)]
pub enum ConfigWhat {
    /// Check a world file and publish it to etcd: every node watching the key switches to it.
    Push {
        /// The world file (checked first: exit 2 with every error when invalid).
        file: PathBuf,
        /// Where: etcd://HOST:PORT/KEY (default key /switchyard/world).
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The service this instance belongs to (a `[[services]]` name of the world).
    #[arg(long, required_unless_present = "pool", conflicts_with = "pool")]
    pub service: Option<String>,
    /// Or: the L4 pool of --region this member joins (a `[[regions.pools]]` name).
    #[arg(long)]
    pub pool: Option<String>,
    /// Where the instance listens.
    #[arg(long)]
    pub addr: SocketAddr,
    #[arg(long)]
    pub region: String,
    #[arg(long)]
    pub az: String,
    /// Instance name (default SERVICE-IP-PORT or POOL-IP-PORT).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, default_value_t = 1)]
    pub weight: u32,
    /// etcd://HOST:PORT[/KEY][?ttl=10s]: the lease TTL bounds how long a dead instance stays.
    #[arg(long)]
    pub etcd: String,
    /// Also serve Switchyard's built-in demo implementation of --service at --addr in this process:
    /// a demo service that registers itself (and dies with its registration).
    #[arg(long, requires = "service")]
    pub demo: bool,
}

/// `config push`: exit 0 (pushed), 1 (etcd trouble) or 2 (invalid file).
pub fn config(args: ConfigArgs) -> ExitCode {
    let ConfigWhat::Push { file, to } = args.what;
    if let Err(errors) = switchyard_config::load_file(&file) {
        eprint!("{errors}");
        eprintln!("switchyard: not pushed: {} is invalid", file.display());
        return ExitCode::from(2);
    }
    let r = crate::runtime().and_then(|rt| {
        rt.block_on(async {
            let url = EtcdUrl::parse(&to)?;
            let text = std::fs::read(&file)?;
            let rev = Client::new(&url.endpoint)
                .put(&url.key, &text, None)
                .await
                .map_err(|e| anyhow!("cannot push to {}: {e}", url.display()))?;
            println!(
                "pushed {} to {} at revision {rev}",
                file.display(),
                url.display()
            );
            Ok(())
        })
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `register`: keeps the registration alive until SIGINT/SIGTERM, then withdraws it.
pub async fn register(args: RegisterArgs) -> anyhow::Result<()> {
    let url = EtcdUrl::parse(&args.etcd)?;
    let group = args
        .pool
        .clone()
        .or(args.service.clone())
        .unwrap_or_default();
    let reg = Registration {
        name: args
            .name
            .clone()
            .unwrap_or_else(|| Registration::default_name(&group, args.addr)),
        service: args.service.unwrap_or_default(),
        pool: args.pool,
        addr: args.addr,
        region: args.region,
        az: args.az,
        weight: args.weight,
    };
    let client = Client::new(&url.endpoint);
    // Fail fast (and clearly) when etcd does not answer; say when the world cannot use it.
    let (world, _) = client
        .get(&url.key)
        .await
        .map_err(|e| anyhow!("cannot register at {}: {e}", url.display()))?;
    if let Some(w) = world {
        let text = String::from_utf8_lossy(&w.value);
        if let Ok(world) = switchyard_config::parse_str(&text, &url.display()) {
            let (_, skipped) =
                switchyard_cluster::registry::overlay(&world, std::slice::from_ref(&reg));
            for s in skipped {
                eprintln!("switchyard: warning: {s} (nodes will ignore it)");
            }
        }
    }
    // A demo service that registers itself: listen first, then announce.
    let demo = if args.demo {
        let fleet = crate::demo_services::DemoFleet::default();
        let spec = switchyard_config::services::ServiceInstance {
            name: reg.name.clone(),
            addr: reg.addr,
            region: reg.region.clone(),
            az: reg.az.clone(),
            weight: reg.weight,
            demo: true,
        };
        fleet.spawn_instance(reg.service.clone(), spec).await?;
        Some(fleet)
    } else {
        None
    };
    let stop = CancellationToken::new();
    let link = Arc::new(Link::default());
    let (publisher, task) = Publisher::start(client.clone(), url.ttl, link, stop.clone());
    let key = reg.key(&url.registry_prefix());
    publisher.set(key.clone(), serde_json::to_vec(&reg)?);
    // Wait (bounded) until the record is in etcd before saying so.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while client.get(&key).await.ok().and_then(|(kv, _)| kv).is_none() {
        if tokio::time::Instant::now() > deadline {
            return Err(anyhow!("registration did not reach {}", url.display()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    println!(
        "registered {} ({} {} {}/{}) at {key} with a {}s lease; Ctrl-C withdraws it",
        reg.name,
        reg.group(),
        reg.addr,
        reg.region,
        reg.az,
        url.ttl.as_secs()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = (
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
    );
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    stop.cancel();
    let _ = task.await;
    if let Some(fleet) = demo {
        fleet.shutdown().await;
    }
    // stdout may be gone by now (a supervisor that only read the first line): not an error.
    let _ = writeln!(std::io::stdout(), "withdrawn {}", reg.name);
    Ok(())
}
