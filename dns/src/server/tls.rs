//! DNS over TLS (RFC 7858) and the TLS side DoH shares with it: certificates from
//! `switchyard-tls` (PEM chains chosen by SNI, reloadable), a connection cap checked before the
//! handshake (over it a connection is closed at once), a handshake timeout, then DoT's queries
//! through the very loop TCP uses ([`super::tcp::serve`]: the same framing, answering core,
//! metrics and RRL exemption; only the query counter differs).
//!
//! ## Why not hickory-server's listeners
//! hickory-server 0.26 hands a handler a parsed `Request` (its `MessageRequest`: names, queries
//! and EDNS decoded into owned values) and takes the answer back as hickory `Record`s through
//! its `MessageResponseBuilder`, which it encodes again. Our answering core reads the query's
//! wire bytes in place and writes the answer's wire bytes directly (2,551 instructions per query
//! in the harness mix, no allocation on the UDP path; CHANGELOG). Through hickory-server every
//! DoT/DoH query would also pay a request decode the core then ignores, a decode of our answer
//! into `Record`s and a second encode. Measured with hickory-proto 0.26.3 alone (release,
//! callgrind, the GB-by-ECS query of `dns/tests/it/encrypted.rs`: 57-byte query, 73-byte
//! answer): those three steps cost 15,835 instructions per query, 6.2 times our whole answer
//! (3.7 µs wall per query on this shared machine). And the bytes would be hickory's, not the
//! core's: name compression, EDNS and the ECS option rebuilt by other code than the UDP path
//! runs, where the tests here require DoT and DoH answers byte-identical to UDP's. The
//! transport framing hickory-server would save is small: tokio-rustls for TLS (what
//! hickory-server uses too), the TCP loop for DoT, hyper for DoH ([`super::doh`]). So
//! hickory-server is not used, and is no longer a workspace dependency.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use switchyard_config::dns::DnsTls;
use switchyard_tls::{CertSource, CertStore, ServerOptions};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Shared;
use crate::Error;

/// Which protocol runs inside the TLS connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// DNS over TLS: length-prefixed messages, ALPN `dot`.
    Dot,
    /// DNS over HTTPS: HTTP/2 or HTTP/1.1, ALPN `h2`, `http/1.1`.
    Doh,
}

impl Kind {
    /// Index into the per-transport metric arrays.
    pub(crate) fn index(self) -> usize {
        match self {
            Kind::Dot => 0,
            Kind::Doh => 1,
        }
    }

    /// The configuration key, for logs, errors and the TLS metrics' `listener` label.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Kind::Dot => "dns.tls",
            Kind::Doh => "dns.https",
        }
    }
}

/// One encrypted transport: its settings, certificates and acceptor.
pub(crate) struct Transport {
    pub(crate) kind: Kind,
    pub(crate) spec: DnsTls,
    pub(crate) store: Arc<CertStore>,
    acceptor: TlsAcceptor,
    limit: Arc<Semaphore>,
    label: Arc<str>,
}

impl Transport {
    /// Loads the certificates and builds the TLS configuration (TLS 1.2 and 1.3, the
    /// transport's ALPN).
    pub(crate) fn new(kind: Kind, spec: DnsTls) -> Result<Transport, Error> {
        let err = |msg: String| Error::Tls {
            listener: kind.key(),
            msg,
        };
        let sources = spec
            .certs
            .iter()
            .map(|c| CertSource {
                cert: c.cert.clone(),
                key: c.key.clone(),
            })
            .collect();
        let store = CertStore::load(sources).map_err(|e| err(e.to_string()))?;
        let alpn = match kind {
            Kind::Dot => vec![b"dot".to_vec()],
            Kind::Doh => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        };
        let opts = ServerOptions {
            alpn,
            ticket_keys: spec.ticket_keys.clone(),
            ..ServerOptions::default()
        };
        let (cfg, _) =
            switchyard_tls::server_config(store.clone(), &opts).map_err(|e| err(e.to_string()))?;
        Ok(Transport {
            kind,
            limit: Arc::new(Semaphore::new(spec.max_connections.max(1) as usize)),
            spec,
            store,
            acceptor: TlsAcceptor::from(cfg),
            label: kind.key().into(),
        })
    }

    /// Binds every listen address (a port-0 address gets its own port).
    pub(crate) fn bind(&self) -> Result<Vec<TcpListener>, Error> {
        self.spec
            .listen
            .iter()
            .map(|&addr| {
                super::tcp::bind(addr)
                    .and_then(TcpListener::from_std)
                    .map_err(|source| Error::Bind { addr, source })
            })
            .collect()
    }
}

/// Accepts until `shutdown`: cap, handshake (bounded), then DoT or DoH on the connection.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    t: Arc<Transport>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let mut backoff = Duration::from_millis(5);
    let k = t.kind.index();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(s) => {
                backoff = Duration::from_millis(5);
                s
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning
                tracing::warn!(error = %e, listener = t.kind.key(), "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = t.limit.clone().try_acquire_owned() else {
            shared.metrics.tls_rejected[k].increment(1);
            drop(stream);
            continue;
        };
        let (t, shared, shutdown) = (t.clone(), shared.clone(), shutdown.clone());
        tracker.spawn(async move {
            shared.metrics.tls_connections[k].increment(1.0);
            serve(stream, peer, &t, shared.clone(), shutdown).await;
            shared.metrics.tls_connections[k].decrement(1.0);
            drop(permit);
        });
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    t: &Transport,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let handshake = tokio::time::timeout(t.spec.handshake_timeout, t.acceptor.accept(stream));
    let mut tls = tokio::select! {
        _ = shutdown.cancelled() => return,
        r = handshake => match r {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                switchyard_tls::metrics::handshake_failed(&t.label, Some(&e));
                tracing::debug!(%peer, error = %e, listener = t.kind.key(), "TLS handshake failed");
                return;
            }
            Err(_) => {
                switchyard_tls::metrics::handshake_failed(&t.label, None);
                return;
            }
        },
    };
    switchyard_tls::metrics::handshake_done(&t.label, tls.get_ref().1);
    match t.kind {
        Kind::Dot => {
            let queries = shared.metrics.dot_queries.clone();
            let idle = t.spec.idle_timeout;
            if super::tcp::serve(&mut tls, peer, &shared, idle, shutdown, &queries)
                .await
                .is_ok()
            {
                // RFC 7858 §3.4: close with close_notify when done
                let _ =
                    tokio::time::timeout(idle, tokio::io::AsyncWriteExt::shutdown(&mut tls)).await;
            }
        }
        Kind::Doh => super::doh::serve(tls, peer, &t.spec, shared, shutdown).await,
    }
}

/// Re-reads every transport's certificates when their files changed (every 10 s), so a renewed
/// certificate is served without a restart; a broken file keeps the old one (logged).
pub(crate) async fn watch_certs(transports: Vec<Arc<Transport>>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for t in &transports {
            if let Some(Err(e)) = t.store.reload_if_changed() {
                tracing::warn!(listener = t.kind.key(), error = %e, "certificate reload failed; keeping the old one");
            }
            switchyard_tls::metrics::publish_expiry(&t.label, &t.store);
        }
    }
}
