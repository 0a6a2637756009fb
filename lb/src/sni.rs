//! Routing TLS by server name without terminating it: a listener with `sni` routes peeks at the
//! ClientHello (`switchyard_net::tls_hello`, bytes left queued so the backend gets them
//! untouched and the relay stays zero-copy) and picks the pool of the route whose name matches:
//! exact names first, then one-label wildcards (`*.b.example` takes `x.b.example`, not
//! `b.example` nor `y.x.b.example`), then the listener's default pool. No SNI, no matching
//! route, first bytes that are not TLS, a malformed ClientHello, or one not whole within the
//! listener's `sni_timeout` (and [`MAX_PEEK`](switchyard_net::tls_hello::MAX_PEEK) bytes) go to
//! the default pool if there is one, else the connection is closed. With `proxy_tlvs` the name
//! and the ALPN extension travel to the backend as PROXY v2 TLVs.
//!
//! Listeners without SNI routing never reach this module (their `Settings::sni` is `None`).

use crate::metrics::SniMetrics;
use crate::pool::PoolRt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchyard_net::proxy;
use switchyard_net::tls_hello::{self, Hello, HelloError};
use tokio::net::TcpStream;

/// Names to routes: a pure lookup (exact, then wildcard), built once per reload.
#[derive(Debug, Default, Clone)]
pub struct Table {
    exact: HashMap<Box<str>, usize>,
    /// Keyed by what follows `*.`.
    wild: HashMap<Box<str>, usize>,
}

impl Table {
    /// A table of `routes` (each a list of lowercased names or `*.suffix` patterns); the value
    /// of a match is the route's index. A name listed twice keeps its first route.
    pub fn new<'a>(routes: impl IntoIterator<Item = &'a [String]>) -> Table {
        let mut t = Table::default();
        for (i, names) in routes.into_iter().enumerate() {
            for n in names {
                match n.strip_prefix("*.") {
                    Some(suffix) => t.wild.entry(suffix.into()).or_insert(i),
                    None => t.exact.entry(n.as_str().into()).or_insert(i),
                };
            }
        }
        t
    }

    /// The route for a lowercased server name.
    pub fn lookup(&self, name: &str) -> Option<usize> {
        if let Some(&i) = self.exact.get(name) {
            return Some(i);
        }
        let (_, parent) = name.split_once('.')?;
        self.wild.get(parent).copied()
    }
}

/// A listener's SNI routing as it runs: the table, the pools it points at, the fallback.
#[derive(Debug)]
pub struct SniRt {
    pub(crate) table: Table,
    /// Route index to pool.
    pub(crate) pools: Vec<Arc<PoolRt>>,
    pub(crate) default: Option<Arc<PoolRt>>,
    pub(crate) timeout: Duration,
    pub(crate) tlvs: bool,
    pub(crate) metrics: SniMetrics,
}

impl SniRt {
    /// True if `other` points at the same pools (a reload that changed no pool identity).
    pub(crate) fn same_pools(&self, other: &SniRt) -> bool {
        self.pools.len() == other.pools.len()
            && self
                .pools
                .iter()
                .zip(&other.pools)
                .all(|(a, b)| Arc::ptr_eq(a, b))
            && match (&self.default, &other.default) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }

    /// The pool for a ClientHello (or for no usable one: `None`).
    fn pool_for(&self, hello: Option<&Hello>) -> Option<&Arc<PoolRt>> {
        let routed = hello
            .and_then(Hello::server_name)
            .and_then(|n| self.table.lookup(n))
            .and_then(|i| self.pools.get(i));
        routed.or(self.default.as_ref())
    }
}

/// What routing decided for one connection.
pub struct Routed<'a> {
    /// The pool to connect to.
    pub pool: &'a Arc<PoolRt>,
    /// The ClientHello, kept only when its SNI and ALPN go out as PROXY TLVs.
    pub tlv_hello: Option<Box<Hello>>,
    /// The wait ran out with bytes queued: the last peek cleared tokio's readiness, and the
    /// edge-triggered registration will not report those bytes again. The caller re-registers
    /// the socket (rare path: only a ClientHello that timed out and goes to the default pool).
    pub stale_readiness: bool,
}

/// Peeks at the client's ClientHello and picks the pool; `None`: close the connection.
pub async fn route<'a>(client: &TcpStream, sni: &'a SniRt) -> Option<Routed<'a>> {
    let m = &sni.metrics;
    let mut stale_readiness = false;
    let hello = match tls_hello::peek_hello(client, sni.timeout).await {
        Ok(h) => Some(h),
        Err(HelloError::Eof | HelloError::Io(_)) => return None, // the client is gone
        Err(e) => {
            match e {
                HelloError::NotTls => m.not_tls.increment(1),
                HelloError::Timeout => {
                    stale_readiness = true;
                    m.timeout.increment(1)
                }
                _ => m.invalid.increment(1),
            }
            tracing::debug!(error = %e, "no usable ClientHello");
            None
        }
    };
    let pool = sni.pool_for(hello.as_ref());
    match (&hello, pool) {
        (Some(h), Some(_))
            if h.server_name()
                .is_some_and(|n| sni.table.lookup(n).is_some()) =>
        {
            m.matched.increment(1)
        }
        (Some(_), _) => m.unmatched.increment(1),
        _ => {}
    }
    Some(Routed {
        pool: pool?,
        tlv_hello: hello.filter(|_| sni.tlvs).map(Box::new),
        stale_readiness,
    })
}

/// Writes the PROXY header for `src` → `dst` into `out`: v2 with the SNI and ALPN of `hello` as
/// TLVs (v1 has no TLVs: the plain header). Returns its length.
pub fn proxy_header(
    version: proxy::Version,
    src: SocketAddr,
    dst: SocketAddr,
    h: &Hello,
    out: &mut [u8; proxy::MAX_ENCODED_TLVS],
) -> usize {
    if version == proxy::Version::V2 {
        let name = h
            .server_name()
            .map(|n| (proxy::PP2_TYPE_AUTHORITY, n.as_bytes()));
        let alpn = h.alpn().map(|a| (proxy::PP2_TYPE_ALPN, a));
        let tlvs = [name, alpn];
        let mut list = [(0u8, &[][..]); 2];
        let mut k = 0;
        for t in tlvs.into_iter().flatten() {
            list[k] = t;
            k += 1;
        }
        // SNI (253) and ALPN (256) always fit MAX_ENCODED_TLVS
        if let Some(n) = proxy::encode_v2_tlvs(src, dst, &list[..k], out) {
            return n;
        }
    }
    let mut plain = [0u8; proxy::MAX_ENCODED];
    let n = proxy::encode(version, src, dst, &mut plain);
    out[..n].copy_from_slice(&plain[..n]);
    n
}

#[cfg(test)]
mod tests {
    use super::Table;

    fn table() -> Table {
        let routes = [
            vec!["a.example".to_string(), "*.b.example".to_string()],
            vec!["x.b.example".to_string(), "*.example".to_string()],
            vec!["a.example".to_string()], // duplicate: the first route keeps it
        ];
        Table::new(routes.iter().map(|r| r.as_slice()))
    }

    #[test]
    fn exact_before_wildcard_and_one_label_only() {
        let t = table();
        for (name, want) in [
            ("a.example", Some(0)),
            ("y.b.example", Some(0)),
            ("x.b.example", Some(1)), // exact beats the wildcard of route 0
            ("b.example", Some(1)),   // *.example
            ("z.y.b.example", None),  // two labels under *.b.example
            ("example", None),
            ("c.example", Some(1)),
            ("", None),
            (".example", Some(1)), // never produced by the parser (names have no empty label)
            ("other.test", None),
        ] {
            assert_eq!(t.lookup(name), want, "{name}");
        }
        assert_eq!(Table::default().lookup("a.example"), None);
    }
}
