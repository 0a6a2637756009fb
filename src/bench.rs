//! `switchyard bench`: wires the `switchyard-bench` crate to a world (the demo world, or
//! `--config`): its DNS address, GSLB name, first VIP and listener port, gateway routes, and
//! tokens signed with its key, so `switchyard bench chain` just works after `switchyard run`.

use std::time::Duration;
use switchyard_bench::{BenchArgs, Defaults};
use switchyard_config::gateway::Access;
use switchyard_config::World;

/// Subjects to sign tokens for: requests rotate over them, so per-subject rate limits of the
/// gateway do not cap the load.
const SUBJECTS: usize = 64;

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let world = match &args.config {
        Some(p) => switchyard_config::load_file(p).map_err(|e| anyhow::anyhow!("{e}"))?,
        // with its HTTPS listeners: `bench tls` aims at VIP:8443 with the demo CA
        None => switchyard_config::demo_world_https(),
    };
    let mut d = defaults(&world);
    if let Some((_, _, ca)) = d.tls_vip.as_mut() {
        let demo = crate::demo_tls::state_dir(args.state_dir.as_deref()).join("tls/ca.pem");
        *ca = demo.exists().then_some(demo);
    }
    switchyard_bench::run(args, d)
        .await
        .map_err(anyhow::Error::msg)
}

fn defaults(world: &World) -> Defaults {
    let loopback = |mut a: std::net::SocketAddr| {
        if a.ip().is_unspecified() {
            a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        a
    };
    let gslb: Vec<String> = world.dns.gslb.iter().map(|g| g.name.clone()).collect();
    // GET routes (not deprecated) an ordinary signed-in client may call; `{param}` filled in
    let mut roles: Vec<String> = Vec::new();
    let paths: Vec<String> = world
        .gateway
        .routes
        .iter()
        .filter(|r| !r.deprecated)
        .filter(|r| r.methods.is_empty() || r.methods.iter().any(|m| m == "GET"))
        .filter(|r| match &r.access {
            Access::Roles { all, .. } => all.is_empty(),
            _ => true,
        })
        .filter_map(|r| {
            if let Access::Roles { any, .. } = &r.access {
                for role in any {
                    if !roles.contains(role) {
                        roles.push(role.clone());
                    }
                }
            }
            let p = r.path.as_ref().or(r.prefix.as_ref())?;
            Some(
                p.split('/')
                    .map(|seg| if seg.starts_with('{') { "bench" } else { seg })
                    .collect::<Vec<_>>()
                    .join("/"),
            )
        })
        .take(4)
        .collect();
    let tokens = if world.gateway.jwt.keys.iter().any(|k| k.sign) {
        (0..SUBJECTS)
            .filter_map(|i| {
                switchyard_gateway::mint_token(
                    world,
                    &format!("bench-{i}"),
                    &roles,
                    Duration::from_secs(3600),
                )
                .ok()
            })
            .collect()
    } else {
        Vec::new()
    };
    Defaults {
        dns: world.dns.listen.first().copied().map(loopback),
        gslb_name: gslb.first().cloned(),
        names: gslb,
        vip: world
            .regions
            .iter()
            .flat_map(|r| &r.listeners)
            .flat_map(|l| &l.addrs)
            .next()
            .copied()
            .map(loopback),
        tls_vip: tls_vip(world),
        paths,
        tokens,
    }
}

/// The first L4 listener address whose pool's members are gateway TLS listeners, with the name
/// a client sends (the GSLB name); [`run`] adds the demo CA when it exists.
fn tls_vip(world: &World) -> Option<(std::net::SocketAddr, String, Option<std::path::PathBuf>)> {
    let tls_listens: Vec<std::net::SocketAddr> = world
        .gateway
        .instances
        .iter()
        .filter_map(|i| i.tls.as_ref().map(|t| t.listen))
        .collect();
    let addr = world.regions.iter().find_map(|r| {
        r.listeners.iter().find_map(|l| {
            let pool = r.pools.get(l.pool_index)?;
            pool.members
                .iter()
                .any(|m| tls_listens.contains(&m.addr))
                .then(|| l.addrs.first().copied())
                .flatten()
        })
    })?;
    let name = world
        .dns
        .gslb
        .first()
        .map(|g| g.name.trim_end_matches('.').to_string())
        .unwrap_or_else(|| addr.ip().to_string());
    Some((addr, name, None))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        crate::cli::Cli::command().debug_assert();
    }

    #[test]
    fn the_demo_world_gives_every_default() {
        let d = super::defaults(&switchyard_config::demo_world_https());
        assert_eq!(d.dns, Some("127.0.0.1:8053".parse().unwrap()));
        assert_eq!(d.gslb_name.as_deref(), Some("api.example.test."));
        assert_eq!(d.vip, Some("127.0.1.1:8080".parse().unwrap()));
        assert_eq!(
            d.paths,
            ["/v2/users/bench", "/v1/orders", "/v1/cart", "/v1/home"]
        );
        assert_eq!(d.tokens.len(), super::SUBJECTS);
        let (vip, name, _) = d.tls_vip.expect("the demo serves HTTPS");
        assert_eq!(vip, "127.0.1.1:8443".parse().unwrap());
        assert_eq!(name, "api.example.test");
        assert!(super::defaults(&switchyard_config::demo_world())
            .tls_vip
            .is_none());
    }
}
