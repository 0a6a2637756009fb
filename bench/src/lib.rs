//! `switchyard bench`: load for DNS, L4, HTTP and the whole client chain (resolve the GSLB name,
//! connect to the VIP it answered, request through the gateway), in a closed loop
//! (`--connections`, maximum throughput) or an open loop (`--rate`, latency from each request's
//! due time, so overload shows as latency rather than hiding as coordinated omission).
//! HDR histograms, errors by kind, a progress bar, a text table, `--json` and `--svg`, and
//! `bench compare A.json B.json`.
//!
//! Layout: `load` (the engine), `dns`, `http` (HTTP and raw L4) and `chain` (the workers),
//! `report` (figures, table, compare) and `svg`. The binary passes [`Defaults`] taken from the
//! world (its DNS address, GSLB name, VIP, routes and tokens signed with its key), so every mode
//! aims at the running demo world when no target is given.

pub mod chain;
pub mod dns;
pub mod http;
pub mod load;
mod rawhttp;
pub mod report;
pub mod svg;
pub mod tls;

use clap::{Args, Subcommand};
use load::{Mode, Plan, Progress, Worker};
use report::Report;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where each mode aims when no target is given (the binary fills this from the world).
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    /// The world's DNS server.
    pub dns: Option<SocketAddr>,
    /// The GSLB name a client resolves.
    pub gslb_name: Option<String>,
    /// Every name the world answers (for `bench dns`).
    pub names: Vec<String>,
    /// A VIP with its L4 listener port.
    pub vip: Option<SocketAddr>,
    /// A VIP and port whose connections end in TLS (the L4 listener passing TLS through to the
    /// gateways), with the name to send as SNI and the CA file that verifies it.
    pub tls_vip: Option<(SocketAddr, String, Option<PathBuf>)>,
    /// Gateway paths a client requests.
    pub paths: Vec<String>,
    /// Bearer tokens, used in turn.
    pub tokens: Vec<String>,
}

/// `switchyard bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The world whose DNS, VIPs, routes and signing key to aim at (default: the demo world).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Where the demo's CA lives, as given to `switchyard run --state-dir` (`bench tls`).
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub kind: Kind,
}

/// What to load.
#[derive(Debug, Subcommand)]
pub enum Kind {
    /// DNS queries over UDP (or TCP) from a query file or the world's names, with ECS.
    Dns(DnsArgs),
    /// L4: connect + request + close per connection (or keep-alive requests) to a VIP.
    L4(L4Args),
    /// HTTP requests with a bearer token to a gateway URL, paths from a list.
    Http(HttpArgs),
    /// The real client path: resolve the GSLB name (honouring TTL), connect to the VIP,
    /// request through the gateway; time split into DNS, connect and TTFB.
    Chain(ChainArgs),
    /// TLS handshakes: a new connection, a full (or `--resume`d) handshake and one request
    /// per connection; time split into connect, TLS and TTFB.
    Tls(TlsArgs),
    /// Compare two `--json` reports: B relative to A.
    Compare { a: PathBuf, b: PathBuf },
}

/// Flags every load mode takes.
#[derive(Debug, Args, Clone)]
pub struct LoadArgs {
    /// How long to send load.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub duration: Duration,
    /// Concurrent connections (workers). Closed loop: each sends its next request when the
    /// last is answered.
    #[arg(long, short = 'c', default_value_t = 16)]
    pub connections: usize,
    /// Open loop: requests per second in total, latency measured from when each was due.
    #[arg(long, short = 'r')]
    pub rate: Option<f64>,
    /// Stop after this many requests.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Give up on one request after this long (an error of kind `timeout`).
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub timeout: Duration,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a latency-percentile and throughput chart (SVG) here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct DnsArgs {
    /// DNS server (default: the world's).
    #[arg(long)]
    pub server: Option<SocketAddr>,
    /// Use TCP (one connection per worker) instead of UDP.
    #[arg(long)]
    pub tcp: bool,
    /// Query file: `NAME [TYPE]` per line (dnsperf's format).
    #[arg(long)]
    pub queries: Option<PathBuf>,
    /// Names to ask (default: the world's names).
    #[arg(long, value_delimiter = ',')]
    pub name: Vec<String>,
    /// ECS networks to send, in turn (e.g. 81.2.69.160/27,216.160.83.56/29).
    #[arg(long, value_delimiter = ',')]
    pub ecs: Vec<ipnet::IpNet>,
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Debug, Args)]
pub struct L4Args {
    /// Address to connect to (default: the world's first VIP and listener port).
    #[arg(long)]
    pub target: Option<SocketAddr>,
    /// Keep connections open and send HTTP keep-alive requests instead of one per connection.
    #[arg(long)]
    pub keepalive: bool,
    /// What to send on each connection (default: an HTTP GET /healthz with Connection: close).
    #[arg(long)]
    pub payload: Option<String>,
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Base URL, e.g. http://127.0.1.1:8080 (default: the world's first VIP).
    #[arg(long)]
    pub url: Option<String>,
    /// Paths to request in turn (default: the world's gateway routes).
    #[arg(long, value_delimiter = ',')]
    pub path: Vec<String>,
    /// Bearer token (default: tokens signed with the world's key).
    #[arg(long, env = "SWITCHYARD_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A new connection per request (`Connection: close`) instead of keep-alive.
    #[arg(long)]
    pub close: bool,
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Debug, Args)]
pub struct ChainArgs {
    /// DNS server (default: the world's).
    #[arg(long)]
    pub dns: Option<SocketAddr>,
    /// GSLB name to resolve (default: the world's).
    #[arg(long)]
    pub name: Option<String>,
    /// Port on the VIP (default: the world's listener port).
    #[arg(long)]
    pub port: Option<u16>,
    /// The client's location as an ECS network (e.g. 81.2.69.160/27 for a GB client).
    #[arg(long)]
    pub ecs: Option<ipnet::IpNet>,
    /// Paths to request in turn (default: the world's gateway routes).
    #[arg(long, value_delimiter = ',')]
    pub path: Vec<String>,
    /// Bearer token (default: tokens signed with the world's key).
    #[arg(long, env = "SWITCHYARD_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A new connection per request instead of keep-alive.
    #[arg(long)]
    pub close: bool,
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Debug, Args)]
pub struct TlsArgs {
    /// `https://host[:port]/path` (default: the world's first HTTPS VIP, `/healthz`).
    #[arg(long)]
    pub url: Option<String>,
    /// Connect here instead of resolving the URL's host (the host is still the SNI name).
    #[arg(long)]
    pub connect_to: Option<SocketAddr>,
    /// CA certificates (PEM) to verify the server with (default: the demo CA, for the demo
    /// world).
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Do not verify the server's certificate.
    #[arg(long, short = 'k', conflicts_with = "cacert")]
    pub insecure: bool,
    /// Resume sessions (TLS 1.3 tickets, TLS 1.2 session IDs or tickets) instead of a full
    /// handshake per connection; the report counts how many resumed.
    #[arg(long)]
    pub resume: bool,
    /// Bearer token to send (default: none).
    #[arg(long, env = "SWITCHYARD_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub load: LoadArgs,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (write e.g. \"10s\")"))
}

/// Runs `switchyard bench`; the error is for the user.
pub async fn run(args: BenchArgs, d: Defaults) -> Result<(), String> {
    match args.kind {
        Kind::Compare { a, b } => {
            let read = |p: &PathBuf| -> Result<Report, String> {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                serde_json::from_str(&text)
                    .map_err(|e| format!("{} is not a bench report: {e}", p.display()))
            };
            print!("{}", report::compare(&read(&a)?, &read(&b)?));
            Ok(())
        }
        Kind::Dns(a) => {
            let server = a.server.or(d.dns).ok_or("give --server")?;
            let mut qs = match &a.queries {
                Some(p) => dns::parse_queries(
                    &std::fs::read_to_string(p)
                        .map_err(|e| format!("cannot read {}: {e}", p.display()))?,
                )?,
                None => {
                    let names = if a.name.is_empty() {
                        d.names.clone()
                    } else {
                        a.name.clone()
                    };
                    if names.is_empty() {
                        return Err("give --name or --queries".into());
                    }
                    names
                        .into_iter()
                        .map(|name| dns::Question {
                            name,
                            qtype: hickory_proto::rr::RecordType::A,
                            ecs: None,
                        })
                        .collect()
                }
            };
            if !a.ecs.is_empty() {
                qs = qs
                    .iter()
                    .flat_map(|q| {
                        a.ecs.iter().map(move |n| dns::Question {
                            ecs: Some(*n),
                            ..q.clone()
                        })
                    })
                    .collect();
            }
            let encoded = Arc::new(qs.iter().map(dns::encode).collect::<Result<Vec<_>, _>>()?);
            let transport = if a.tcp {
                dns::Transport::Tcp
            } else {
                dns::Transport::Udp
            };
            let target = format!(
                "{} {server} ({} queries)",
                if a.tcp { "tcp" } else { "udp" },
                encoded.len()
            );
            let timeout = a.load.timeout;
            execute("dns", target, &a.load, |i| {
                dns::DnsWorker::new(server, transport, encoded.clone(), i, timeout)
            })
            .await
        }
        Kind::L4(a) => {
            let addr = a.target.or(d.vip).ok_or("give --target")?;
            if a.keepalive {
                let spec = Arc::new(http::HttpSpec::new(
                    &addr.to_string(),
                    &["/healthz".to_string()],
                    &[],
                    true,
                    a.load.timeout,
                )?);
                execute("l4", format!("{addr} keep-alive"), &a.load, |i| {
                    http::HttpWorker::new(addr, spec.clone(), i)
                })
                .await
            } else {
                let payload = a.payload.clone().unwrap_or_else(|| {
                    format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                });
                let payload = Arc::new(payload.replace("\\r\\n", "\r\n").into_bytes());
                let timeout = a.load.timeout;
                execute(
                    "l4",
                    format!("{addr} connect+request+close"),
                    &a.load,
                    |_| http::L4Worker::new(addr, payload.clone(), timeout),
                )
                .await
            }
        }
        Kind::Http(a) => {
            let (addr, host, base_path) = match &a.url {
                Some(u) => parse_url(u).await?,
                None => {
                    let v = d.vip.ok_or("give --url")?;
                    (v, v.to_string(), String::new())
                }
            };
            let paths = paths(&a.path, &d.paths, &base_path)?;
            let tokens = a.token.clone().map(|t| vec![t]).unwrap_or(d.tokens.clone());
            let spec = Arc::new(http::HttpSpec::new(
                &host,
                &paths,
                &tokens,
                !a.close,
                a.load.timeout,
            )?);
            let target = format!(
                "http://{host}{} ({})",
                paths[0],
                if a.close { "close" } else { "keep-alive" }
            );
            execute("http", target, &a.load, |i| {
                http::HttpWorker::new(addr, spec.clone(), i)
            })
            .await
        }
        Kind::Tls(a) => {
            let (addr, host, path, default_ca) = match &a.url {
                // with --connect-to the URL's host is only the SNI name: not resolved
                Some(u) => match a.connect_to {
                    Some(to) => {
                        let (_, _, host, path) = split_url(u, "https", 443)?;
                        (to, host, path, None)
                    }
                    None => {
                        let (addr, host, path) = parse_url_scheme(u, "https", 443).await?;
                        (addr, host, path, None)
                    }
                },
                None => {
                    let (v, name, ca) = d.tls_vip.clone().ok_or("give --url")?;
                    (v, format!("{name}:{}", v.port()), String::new(), ca)
                }
            };
            let addr = a.connect_to.unwrap_or(addr);
            let name = host
                .rsplit_once(':')
                .map_or(host.as_str(), |(h, _)| h)
                .trim_matches(['[', ']']);
            let sni = rustls::pki_types::ServerName::try_from(name.to_string())
                .map_err(|e| format!("{name:?} cannot be a TLS server name: {e}"))?;
            let ca = a.cacert.clone().or(default_ca);
            let verify = match (&ca, a.insecure) {
                (_, true) => tls::Verify::Insecure,
                (Some(p), false) => tls::Verify::Ca(p),
                (None, false) => return Err("give --cacert FILE or --insecure".into()),
            };
            // one session store per worker, as each browser profile has its own: a worker
            // resumes from the ticket its last connection got (a shared store runs dry when
            // more connections are open than tickets are kept per server)
            let configs = (0..a.load.connections)
                .map(|_| tls::client_config(verify.clone(), a.resume))
                .collect::<Result<Vec<_>, _>>()?;
            let path = if a.url.is_none() {
                "/healthz".to_string()
            } else {
                path
            };
            let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
            if let Some(t) = &a.token {
                req.push_str(&format!("Authorization: Bearer {t}\r\n"));
            }
            req.push_str("Connection: close\r\n\r\n");
            let req = Arc::new(req.into_bytes());
            let target = format!(
                "https://{host}{path} at {addr} ({}{})",
                if a.resume {
                    "resumed handshakes"
                } else {
                    "full handshakes"
                },
                match (&ca, a.insecure) {
                    (_, true) => ", not verified".to_string(),
                    (Some(p), false) => format!(", CA {}", p.display()),
                    (None, false) => String::new(),
                }
            );
            let timeout = a.load.timeout;
            execute("tls", target, &a.load, |i| {
                let config = configs[i % configs.len()].clone();
                tls::TlsWorker::new(addr, sni.clone(), config, req.clone(), timeout)
            })
            .await
        }
        Kind::Chain(a) => {
            let server = a.dns.or(d.dns).ok_or("give --dns")?;
            let name = a
                .name
                .clone()
                .or(d.gslb_name.clone())
                .ok_or("give --name")?;
            let port = a.port.or(d.vip.map(|v| v.port())).ok_or("give --port")?;
            let query = Arc::new(dns::encode(&dns::Question {
                name: name.clone(),
                qtype: hickory_proto::rr::RecordType::A,
                ecs: a.ecs,
            })?);
            let paths = paths(&a.path, &d.paths, "")?;
            let tokens = a.token.clone().map(|t| vec![t]).unwrap_or(d.tokens.clone());
            let host = format!("{}:{port}", name.trim_end_matches('.'));
            let spec = Arc::new(http::HttpSpec::new(
                &host,
                &paths,
                &tokens,
                !a.close,
                a.load.timeout,
            )?);
            let target = format!("{name} via {server} -> :{port}{}", paths[0]);
            execute("chain", target, &a.load, |i| {
                chain::ChainWorker::new(server, query.clone(), port, spec.clone(), i)
            })
            .await
        }
    }
}

fn paths(given: &[String], defaults: &[String], base: &str) -> Result<Vec<String>, String> {
    let p: Vec<String> = if !given.is_empty() {
        given.to_vec()
    } else if !base.is_empty() && base != "/" {
        vec![base.to_string()]
    } else {
        defaults.to_vec()
    };
    if p.is_empty() {
        return Err("give --path".into());
    }
    Ok(p)
}

/// `http://host:port/path` → the address to connect to, the Host header and the path.
async fn parse_url(u: &str) -> Result<(SocketAddr, String, String), String> {
    parse_url_scheme(u, "http", 80).await
}

/// `SCHEME://host:port/path` → the address to connect to, the Host header and the path.
async fn parse_url_scheme(
    u: &str,
    scheme: &str,
    default_port: u16,
) -> Result<(SocketAddr, String, String), String> {
    let (host, port, authority, path) = split_url(u, scheme, default_port)?;
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or(format!("{host} has no address"))?;
    Ok((addr, authority, path))
}

/// `SCHEME://host:port/path` → host (no brackets), port, the Host header and the path.
fn split_url(
    u: &str,
    scheme: &str,
    default_port: u16,
) -> Result<(String, u16, String, String), String> {
    let uri: hyper::Uri = u.parse().map_err(|e| format!("url {u:?}: {e}"))?;
    if uri.scheme_str() != Some(scheme) {
        return Err(format!("url {u:?}: only {scheme}:// is supported here"));
    }
    let auth = uri.authority().ok_or(format!("url {u:?} has no host"))?;
    let port = auth.port_u16().unwrap_or(default_port);
    Ok((
        auth.host().trim_matches(['[', ']']).to_string(),
        port,
        auth.to_string(),
        uri.path().to_string(),
    ))
}

/// Runs the load, prints the table, writes `--json` / `--svg`.
async fn execute<W: Worker>(
    kind: &str,
    target: String,
    a: &LoadArgs,
    make: impl FnMut(usize) -> W,
) -> Result<(), String> {
    let plan = plan(a)?;
    let r = measure(kind, target, &plan, make, !a.quiet).await;
    print!("{}", r.render());
    if let Some(p) = &a.json {
        let text = serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?;
        std::fs::write(p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        println!("  report: {}", p.display());
    }
    if let Some(p) = &a.svg {
        std::fs::write(p, svg::render(&r))
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        println!("  chart: {}", p.display());
    }
    Ok(())
}

/// The plan for `LoadArgs`.
pub fn plan(a: &LoadArgs) -> Result<Plan, String> {
    if a.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    if a.duration.is_zero() {
        return Err("--duration must be more than 0".into());
    }
    let mode = match a.rate {
        Some(r) if r > 0.0 && r.is_finite() => Mode::Open { rate: r },
        Some(_) => return Err("--rate must be more than 0".into()),
        None => Mode::Closed,
    };
    Ok(Plan {
        mode,
        connections: a.connections,
        duration: a.duration,
        max_requests: a.requests,
        grace: a.timeout.max(Duration::from_secs(1)),
    })
}

/// Runs `plan` and builds the report (the progress bar on stderr when it is a terminal).
pub async fn measure<W: Worker>(
    kind: &str,
    target: String,
    plan: &Plan,
    make: impl FnMut(usize) -> W,
    progress_bar: bool,
) -> Report {
    use std::io::IsTerminal;
    let progress = Arc::new(Progress::default());
    let bar = (progress_bar && std::io::stderr().is_terminal()).then(|| {
        tokio::spawn(load::show_progress(
            progress.clone(),
            plan.duration,
            format!("bench {kind}"),
        ))
    });
    let rec = load::run(plan, make, progress).await;
    if let Some(b) = bar {
        b.abort();
        eprintln!();
    }
    Report::build(kind, target, plan, &rec)
}
