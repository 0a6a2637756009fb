//! Quick mode: `switchyard dns --listen ADDR --zone-file FILE [--origin NAME] [--workers N]
//! [--dnssec-key KEY]`
//! serves one zone file with no config (handy for users; the benchmark slot).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::gslb::StaticHealth;
use crate::spec::DnsSpec;
use crate::Error;

/// Arguments of `switchyard dns`.
#[derive(Debug, Clone, clap::Args)]
pub struct QuickArgs {
    /// Address to serve on (UDP and TCP).
    #[arg(long, default_value = "127.0.0.1:8053")]
    pub listen: SocketAddr,
    /// RFC 1035 zone file.
    #[arg(long)]
    pub zone_file: PathBuf,
    /// Zone origin when the file has no $ORIGIN (e.g. `example.test.`).
    #[arg(long)]
    pub origin: Option<String>,
    /// UDP worker threads (0 = one per CPU).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Sign the zone online with this DNSSEC key file (`switchyard dnssec keygen`); repeat to
    /// publish more keys (the first signs).
    #[arg(long)]
    pub dnssec_key: Vec<PathBuf>,
}

/// Serves the zone until `shutdown` is cancelled.
pub async fn run_quick(args: QuickArgs, shutdown: CancellationToken) -> Result<(), Error> {
    let text = std::fs::read_to_string(&args.zone_file)
        .map_err(|e| Error::ZoneFile(format!("{}: {e}", args.zone_file.display())))?;
    let origin = args
        .origin
        .map(|o| if o.ends_with('.') { o } else { format!("{o}.") });
    let mut spec = DnsSpec::single_zone(args.listen, text, origin, args.workers);
    spec.zones[0].dnssec_keys = args.dnssec_key;
    spec.zones[0].source = args.zone_file.display().to_string();
    let handle = crate::server::start(spec, Arc::new(StaticHealth::default()), shutdown).await?;
    handle.wait().await;
    Ok(())
}
