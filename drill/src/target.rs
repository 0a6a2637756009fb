//! Where the drill runs: a running node's admin API, or a world the drill starts itself as a child
//! process (`switchyard run [--config FILE]`, this same executable) and stops afterwards. A child
//! keeps the world's logs and CPU apart from the load generator and uses exactly the code path an
//! operator uses; its stderr goes to `world.log` in the report folder.
//!
//! Also: the client bearer token, minted with the world's signing key by the gateway's code.

use anyhow::{anyhow, bail, Context};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use switchyard_admin_client::AdminClient;
use switchyard_config::World;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// True when an admin API answers `GET /healthz` at `url`.
pub(crate) async fn answers(url: &str) -> bool {
    let admin = AdminClient::new(url, "");
    matches!(
        tokio::time::timeout(Duration::from_millis(800), admin.call("GET", "/healthz")).await,
        Ok(Ok((200, _)))
    )
}

/// A world started by the drill; stopped (killed) on [`OwnWorld::stop`] or drop.
pub(crate) struct OwnWorld {
    child: Child,
}

impl OwnWorld {
    /// Starts `switchyard run` (with `--config` when given) and waits for its `ready` line.
    pub(crate) async fn start(config: Option<&Path>, log: &Path) -> anyhow::Result<OwnWorld> {
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut cmd = Command::new(exe);
        cmd.arg("run");
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the world (`switchyard run`)")?;
        let out = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(out).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "ready" {
                    return true;
                }
            }
            false
        })
        .await;
        if ready != Ok(true) {
            let _ = child.start_kill();
            bail!(
                "the world did not start (no `ready` within 30s); see {}",
                log.display()
            );
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(OwnWorld { child })
    }

    /// Stops the world.
    pub(crate) async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// The DNS address to query: the world's first DNS listener (a wildcard listener is asked on
/// loopback).
pub(crate) fn dns_addr(world: &World) -> Option<SocketAddr> {
    let a = *world.dns.listen.first()?;
    Some(if a.ip().is_unspecified() {
        SocketAddr::new(
            if a.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            },
            a.port(),
        )
    } else {
        a
    })
}

/// A customer token signed with the world's signing key (`sub` = `drill`, role `customer`),
/// minted by the gateway's own code so it is exactly what the gateway accepts.
pub(crate) fn mint_token(world: &World) -> anyhow::Result<String> {
    if !world.gateway.jwt.keys.iter().any(|k| k.sign) {
        bail!("the config has no signing key (`sign = true`): pass --token");
    }
    switchyard_gateway::mint_token(
        world,
        "drill",
        &["customer".to_string()],
        Duration::from_secs(3600),
    )
    .map_err(|e| anyhow!("cannot mint a client token ({e}): pass --token"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes one base64url (unpadded) JWT segment as JSON.
    fn segment(b64: &str) -> serde_json::Value {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = Vec::new();
        for c in b64.bytes() {
            let v = ALPHABET.iter().position(|a| *a == c).expect("base64url") as u32;
            bits = (bits << 6) | v;
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
                bits &= (1 << n) - 1;
            }
        }
        serde_json::from_slice(&out).expect("JSON segment")
    }

    #[test]
    fn demo_token_is_a_customer_token_for_the_demo_key() {
        let world = switchyard_config::demo_world();
        let t = mint_token(&world).unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = segment(parts[0]);
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["kid"], "demo-hs256");
        let claims = segment(parts[1]);
        assert_eq!(claims["sub"], "drill");
        assert_eq!(claims["roles"], serde_json::json!(["customer"]));
        assert_eq!(claims["iss"], "switchyard-demo");
        assert_eq!(claims["aud"], "switchyard-demo-api");
        // HMAC-SHA256: 32 bytes, 43 base64url characters.
        assert_eq!(parts[2].len(), 43);
    }

    #[test]
    fn dns_address_of_the_demo() {
        let world = switchyard_config::demo_world();
        assert_eq!(dns_addr(&world), Some("127.0.0.1:8053".parse().unwrap()));
    }
}
