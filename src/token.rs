//! `switchyard token`: mint a JWT with the config's signing key (for trying the gateway).

use crate::cli::TokenArgs;
use anyhow::bail;

/// Prints a signed token, or refuses clearly when the config has no signing key.
pub fn run(args: &TokenArgs) -> anyhow::Result<()> {
    if let Some(secret) = &args.secret {
        let token = switchyard_gateway::mint_with_secret(secret, &args.sub, &args.roles, args.ttl)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("{token}");
        return Ok(());
    }
    let world = match &args.config {
        Some(path) => switchyard_config::load_file(path).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => switchyard_config::demo_world(),
    };
    if !world.gateway.jwt.keys.iter().any(|k| k.sign) {
        bail!(
            "the config has no signing key: mark one [[gateway.jwt.keys]] entry with `sign = true`"
        );
    }
    let token = switchyard_gateway::mint_token(&world, &args.sub, &args.roles, args.ttl)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{token}");
    Ok(())
}
