//! `switchyard check`: validate a config file and say what is in it or everything wrong with it.
//! Beyond the file itself, what the servers would read is read the same way: zone files and
//! DNSSEC keys, and each TLS listener's certificates (parse, key matches, not expired, names
//! cover the route hosts and GSLB names), every problem located like a config error.

use crate::cli::CheckArgs;
use std::process::ExitCode;
use switchyard_config::{ConfigError, ConfigErrors, World};

/// Exit 0 with a summary for a valid file; exit 2 with every error for an invalid or missing one.
pub fn run(args: &CheckArgs) -> ExitCode {
    let path = args.path();
    match switchyard_config::load_file(path) {
        Ok(world) => {
            // zone files and DNSSEC keys are read and checked as the server would
            if let Err(e) =
                switchyard_dns::DnsSpec::from_world(&world).and_then(|spec| spec.build().map(drop))
            {
                eprintln!("{}: dns: {e}", path.display());
                return ExitCode::from(2);
            }
            let src = std::fs::read_to_string(path).unwrap_or_default();
            let errors = tls_problems(&world, &src, switchyard_tls::unix_now());
            if !errors.is_empty() {
                eprint!(
                    "{}",
                    ConfigErrors {
                        origin: path.display().to_string(),
                        errors
                    }
                );
                return ExitCode::from(2);
            }
            println!("ok: {}: {}", path.display(), world.summary());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{errors}");
            ExitCode::from(2)
        }
    }
}

/// Every problem with the certificate files of the world's TLS listeners, located at the TOML
/// path of the offending entry (`src` is the file's text, for line and column).
pub fn tls_problems(world: &World, src: &str, now: i64) -> Vec<ConfigError> {
    let mut sni: Vec<String> = world
        .gateway
        .routes
        .iter()
        .filter_map(|r| r.host.as_deref())
        .filter(|h| !h.contains('*') && !h.contains(':'))
        .chain(world.dns.gslb.iter().map(|g| g.name.trim_end_matches('.')))
        .map(str::to_ascii_lowercase)
        .collect();
    sni.sort();
    sni.dedup();
    let mut out = Vec::new();
    let mut push = |path: String, message: String| {
        let position = switchyard_config::locate::position_of(src, &path);
        out.push(ConfigError {
            path,
            position,
            message,
        });
    };
    for (i, g) in world.gateway.instances.iter().enumerate() {
        let Some(t) = &g.tls else { continue };
        let p = format!("gateway.instances[{i}].tls");
        let sources: Vec<switchyard_tls::CertSource> = t
            .tls
            .certs
            .iter()
            .map(|c| switchyard_tls::CertSource {
                cert: c.cert.clone(),
                key: c.key.clone(),
            })
            .collect();
        let (problems, _) = switchyard_tls::check::check(&sources, &sni, now);
        for (j, message) in problems {
            match j {
                Some(j) => push(format!("{p}.certs[{j}]"), message),
                None => push(format!("{p}.certs"), message),
            }
        }
        if let Some(ca) = &t.tls.client_ca {
            if let Err(e) = switchyard_tls::ClientCertCheck::load(ca) {
                push(format!("{p}.client_ca"), e.to_string());
            }
        }
        if let Some(keys) = &t.tls.ticket_keys {
            if let Err(e) = switchyard_tls::ticket::FileTicketer::load(keys, None) {
                push(format!("{p}.ticket_keys"), e.to_string());
            }
        }
    }
    for (p, t) in [("dns.tls", &world.dns.tls), ("dns.https", &world.dns.https)] {
        if let Some(keys) = t.as_ref().and_then(|t| t.ticket_keys.as_ref()) {
            if let Err(e) = switchyard_tls::ticket::FileTicketer::load(keys, None) {
                push(format!("{p}.ticket_keys"), e.to_string());
            }
        }
    }
    for (i, s) in world.services.iter().enumerate() {
        let Some(t) = &s.tls else { continue };
        if let Err(e) = switchyard_gateway::UpstreamTlsSpec::load(&t.ca, t.server_name.clone()) {
            push(format!("services[{i}].tls.ca"), e);
        }
    }
    out
}
