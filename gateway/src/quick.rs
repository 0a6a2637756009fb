//! Quick mode: `switchyard gateway --listen ADDR --route /users/=ADDR ... --jwt-alg HS256 ...`,
//! the benchmark contract (`/users/*`, `/orders/*`, bearer JWT with `exp`, 401 otherwise, 404 for
//! anything else).

use std::net::SocketAddr;
use std::path::PathBuf;

use jsonwebtoken::Algorithm;
use switchyard_balance::HealthRegistry;
use tokio_util::sync::CancellationToken;

use crate::spec::{
    GatewaySpec, InstanceSpec, IssuerSpec, KeyMaterial, KeySpec, Policy, RouteSpec,
    ServiceInstanceSpec, ServiceSpec,
};
use crate::Error;

/// Arguments of `switchyard gateway` (quick mode).
#[derive(Debug, Clone, clap::Args)]
pub struct QuickArgs {
    /// Address to listen on.
    #[arg(long)]
    pub listen: SocketAddr,
    /// `PREFIX=ADDR`: requests under PREFIX go to the upstream at ADDR (repeatable).
    #[arg(long = "route", value_name = "PREFIX=ADDR", required = true)]
    pub routes: Vec<String>,
    /// JWT algorithm: HS256 or RS256 (also ES256, EdDSA with --jwt-pubkey).
    #[arg(long, default_value = "HS256")]
    pub jwt_alg: String,
    /// HS256 shared secret (the literal string).
    #[arg(long)]
    pub jwt_secret: Option<String>,
    /// PEM public key file for RS256 / ES256 / EdDSA.
    #[arg(long)]
    pub jwt_pubkey: Option<PathBuf>,
    /// Also serve a composite route at this path: one part per `--route`, each fetching
    /// `PREFIX{sub}` and merged under the prefix's name (benchmark of composition).
    #[arg(long, value_name = "PATH")]
    pub compose: Option<String>,
    /// Log one line per request.
    #[arg(long)]
    pub access_log: bool,
    /// Serve HTTPS on `--listen` with this PEM certificate chain (and `--tls-key`); HTTP/2 by
    /// ALPN.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Session-ticket keys shared with other processes (one base64 48-byte key per line, the
    /// first issues): sessions resume across every gateway given the same file.
    #[arg(long, requires = "tls_cert")]
    pub tls_ticket_keys: Option<PathBuf>,
    /// Routes need no token (no JWT settings needed).
    #[arg(long)]
    pub public: bool,
}

/// Build the spec quick mode runs.
pub fn quick_spec(args: &QuickArgs) -> Result<GatewaySpec, Error> {
    let mut spec = GatewaySpec::empty();
    spec.access_log = args.access_log;
    let (listen, tls) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => (
            // the cleartext listener is not used: any free port
            SocketAddr::new(args.listen.ip(), 0),
            Some(quick_tls(
                args.listen,
                cert,
                key,
                args.tls_ticket_keys.as_deref(),
            )),
        ),
        _ => (args.listen, None),
    };
    spec.instances.push(InstanceSpec {
        name: "quick".into(),
        listen,
        region: String::new(),
        az: String::new(),
        tls,
    });
    if !args.public {
        add_jwt(args, &mut spec)?;
    }
    add_routes(args, &mut spec)?;
    Ok(spec)
}

fn quick_tls(
    listen: SocketAddr,
    cert: &std::path::Path,
    key: &std::path::Path,
    ticket_keys: Option<&std::path::Path>,
) -> switchyard_config::gateway::GatewayTls {
    switchyard_config::gateway::GatewayTls {
        listen,
        tls: switchyard_config::tls::Tls {
            certs: vec![switchyard_config::tls::CertFile {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            }],
            alpn: vec!["h2".into(), "http/1.1".into()],
            client_ca: None,
            handshake_timeout: std::time::Duration::from_secs(10),
            session_cache: 4096,
            ticket_keys: ticket_keys.map(std::path::Path::to_path_buf),
        },
        hsts: None,
        redirect_listen: None,
    }
}

fn add_jwt(args: &QuickArgs, spec: &mut GatewaySpec) -> Result<(), Error> {
    let alg: Algorithm = args
        .jwt_alg
        .parse()
        .map_err(|_| Error::Config(format!("unknown --jwt-alg {}", args.jwt_alg)))?;
    let material = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            let s = args
                .jwt_secret
                .as_ref()
                .ok_or_else(|| Error::Config("--jwt-secret is required for HS*".into()))?;
            KeyMaterial::Secret(s.as_bytes().to_vec())
        }
        _ => {
            let p = args
                .jwt_pubkey
                .as_ref()
                .ok_or_else(|| Error::Config("--jwt-pubkey is required".into()))?;
            KeyMaterial::PublicPem(
                std::fs::read(p).map_err(|e| Error::Config(format!("{}: {e}", p.display())))?,
            )
        }
    };
    spec.jwt.issuers.push(IssuerSpec {
        issuer: None,
        audiences: Vec::new(),
        keys: vec![KeySpec {
            kid: None,
            alg,
            material,
        }],
        jwks_files: Vec::new(),
        jwks_url: None,
        jwks_min_refresh: std::time::Duration::from_secs(10),
        signing: None,
    });
    Ok(())
}

fn add_routes(args: &QuickArgs, spec: &mut GatewaySpec) -> Result<(), Error> {
    for (i, r) in args.routes.iter().enumerate() {
        let (prefix, addr) = r
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("--route {r}: expected PREFIX=ADDR")))?;
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| Error::Config(format!("--route {r}: bad address")))?;
        let name = format!("route{i}");
        spec.services.push(ServiceSpec {
            name: name.clone(),
            policy: switchyard_balance::Policy::RoundRobin,
            check: None,
            passive: crate::upstream::default_passive(),
            remote_instances: true,
            tls: None,
            instances: vec![ServiceInstanceSpec {
                name: name.clone(),
                addr,
                region: String::new(),
                az: String::new(),
                weight: 1,
            }],
        });
        let mut route = RouteSpec::new(&name, prefix, true, &name);
        route.policy = if args.public {
            Policy::Public
        } else {
            Policy::Authenticated
        };
        spec.routes.push(route);
    }
    if let Some(path) = &args.compose {
        let parts = spec
            .routes
            .iter()
            .map(|r| {
                let key = r.path.trim_matches('/').replace('/', "_");
                crate::spec::PartSpec {
                    name: key.clone(),
                    service: r.name.clone(),
                    path: format!("{}/{{sub}}", r.path.trim_end_matches('/')),
                    key,
                    required: true,
                    timeout: std::time::Duration::from_secs(2),
                    depends_on: None,
                }
            })
            .collect();
        spec.compositions.push(crate::spec::CompositionSpec {
            name: "compose".into(),
            deadline: std::time::Duration::from_secs(3),
            parts,
        });
        let mut route = RouteSpec::new("compose", path, false, "compose");
        route.action = crate::spec::Action::Compose("compose".into());
        spec.routes.push(route);
    }
    Ok(())
}

/// Run quick mode until `shutdown` fires.
pub async fn run_quick(args: QuickArgs, shutdown: CancellationToken) -> Result<(), Error> {
    let spec = quick_spec(&args)?;
    let handle = crate::start_spec(spec, HealthRegistry::new(), shutdown).await?;
    handle.wait().await;
    Ok(())
}

/// Mints an HS256 token that a quick-mode gateway started with `--jwt-secret SECRET` accepts
/// (`switchyard token --secret SECRET`).
pub fn mint_with_secret(
    secret: &str,
    sub: &str,
    roles: &[String],
    ttl: std::time::Duration,
) -> Result<String, Error> {
    if secret.is_empty() {
        return Err(Error::Config("--secret must not be empty".into()));
    }
    let mut spec = GatewaySpec::empty();
    spec.jwt.issuers.push(IssuerSpec {
        issuer: None,
        audiences: Vec::new(),
        keys: vec![KeySpec {
            kid: None,
            alg: Algorithm::HS256,
            material: KeyMaterial::Secret(secret.as_bytes().to_vec()),
        }],
        jwks_files: Vec::new(),
        jwks_url: None,
        jwks_min_refresh: std::time::Duration::from_secs(10),
        signing: None,
    });
    crate::jwt::mint(&spec.jwt, sub, roles, ttl)
}
