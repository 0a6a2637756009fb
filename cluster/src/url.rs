//! `etcd://HOST:PORT/KEY?node=NAME&ttl=2s&quorum=2`: where the world lives and how this node
//! takes part. Everything Switchyard keeps in etcd lives under the key's folder (the *base*):
//!
//! | key | what |
//! |---|---|
//! | `KEY` (default `/switchyard/world`) | the world's TOML |
//! | `BASE/registry/SERVICE/INSTANCE` | a registered service instance (JSON), under its lease |
//! | `BASE/health/REGION/NODE` | a region's health as its balancer node sees it (JSON), under its lease |
//! | `BASE/observers/REGION/NODE` | a DNS node's verdict on a region (`up`/`down`), under its lease |
//! | `BASE/admin/MODE/KIND/NAME` | a cluster-wide drain/fail (JSON: mode, node, who) |
//! | `BASE/nodes/NODE` | which world revision a node runs, and its part (JSON), under its lease |

use crate::Error;
use std::time::Duration;

/// Default key of the world when the URL names none.
pub const DEFAULT_KEY: &str = "/switchyard/world";

/// A parsed `etcd://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdUrl {
    /// `host:port` of etcd's client (JSON gateway) endpoint.
    pub endpoint: String,
    /// The world's key.
    pub key: String,
    /// This node's name in etcd (health publisher, observer, audit); default `HOSTNAME-PID`.
    pub node: Option<String>,
    /// Lease TTL for what this node publishes (default 10 s; etcd's minimum is 1 s).
    pub ttl: Duration,
    /// How many DNS observers must see a region down before it is failed over (default 1).
    pub quorum: u32,
}

impl EtcdUrl {
    /// Parses `etcd://host:port[/key][?node=..&ttl=..&quorum=..]`.
    pub fn parse(url: &str) -> Result<EtcdUrl, Error> {
        let bad = |reason: &str| Error::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("etcd://")
            .ok_or_else(|| bad("expected etcd://HOST:PORT/KEY"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (endpoint, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if endpoint.is_empty() || !endpoint.contains(':') {
            return Err(bad(
                "the endpoint needs a host and a port, e.g. 127.0.0.1:2379",
            ));
        }
        let key = match path.trim_end_matches('/') {
            "" => DEFAULT_KEY.to_string(),
            k => k.to_string(),
        };
        let mut out = EtcdUrl {
            endpoint: endpoint.to_string(),
            key,
            node: None,
            ttl: Duration::from_secs(10),
            quorum: 1,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "node" if !v.is_empty() => out.node = Some(v.to_string()),
                "ttl" => {
                    let d =
                        humantime::parse_duration(v).map_err(|e| bad(&format!("ttl={v}: {e}")))?;
                    if d < Duration::from_secs(1) || d.subsec_nanos() != 0 {
                        return Err(bad("ttl must be whole seconds, at least 1s"));
                    }
                    out.ttl = d;
                }
                "quorum" => {
                    out.quorum = v
                        .parse()
                        .ok()
                        .filter(|q| *q >= 1)
                        .ok_or_else(|| bad("quorum must be a number >= 1"))?;
                }
                _ => return Err(bad(&format!("unknown parameter {k:?} (node, ttl, quorum)"))),
            }
        }
        Ok(out)
    }

    /// The folder everything else lives in: the key's parent, ending in `/`.
    pub fn base(&self) -> String {
        match self.key.rfind('/') {
            Some(i) => self.key[..=i].to_string(),
            None => "/".to_string(),
        }
    }

    /// Prefix of registered instances.
    pub fn registry_prefix(&self) -> String {
        format!("{}registry/", self.base())
    }

    /// Prefix of published region health.
    pub fn health_prefix(&self) -> String {
        format!("{}health/", self.base())
    }

    /// Prefix of DNS observers' verdicts.
    pub fn observers_prefix(&self) -> String {
        format!("{}observers/", self.base())
    }

    /// Prefix of node records (which world revision each node runs).
    pub fn nodes_prefix(&self) -> String {
        format!("{}nodes/", self.base())
    }

    /// Prefix of cluster-wide admin actions.
    pub fn admin_prefix(&self) -> String {
        format!("{}admin/", self.base())
    }

    /// This node's name: the URL's `node`, else `HOSTNAME-PID`.
    pub fn node_name(&self) -> String {
        self.node.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "node".into());
            format!("{host}-{}", std::process::id())
        })
    }

    /// The URL without parameters, for messages.
    pub fn display(&self) -> String {
        format!("etcd://{}{}", self.endpoint, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_params_and_prefixes() {
        let u = EtcdUrl::parse("etcd://127.0.0.1:2379/switchyard/world?node=dns1&ttl=2s&quorum=2")
            .unwrap();
        assert_eq!(u.endpoint, "127.0.0.1:2379");
        assert_eq!(u.key, "/switchyard/world");
        assert_eq!(u.node.as_deref(), Some("dns1"));
        assert_eq!(u.ttl, Duration::from_secs(2));
        assert_eq!(u.quorum, 2);
        assert_eq!(u.base(), "/switchyard/");
        assert_eq!(u.registry_prefix(), "/switchyard/registry/");
        assert_eq!(u.display(), "etcd://127.0.0.1:2379/switchyard/world");
    }

    #[test]
    fn defaults_and_errors() {
        let u = EtcdUrl::parse("etcd://localhost:2379").unwrap();
        assert_eq!(u.key, DEFAULT_KEY);
        assert_eq!(u.ttl, Duration::from_secs(10));
        assert_eq!(u.quorum, 1);
        for bad in [
            "http://127.0.0.1:2379/x",
            "etcd:///x",
            "etcd://127.0.0.1/x",
            "etcd://127.0.0.1:2379/x?ttl=500ms",
            "etcd://127.0.0.1:2379/x?quorum=0",
            "etcd://127.0.0.1:2379/x?color=red",
        ] {
            assert!(EtcdUrl::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
