//! The gateway's HTTP/1.1 client to instances: keep-alive connections pooled per worker thread
//! and instance address, each driven by a task on the worker that opened it, plain or TLS.
//!
//! Written here rather than taken from hyper-util's pooled `Client` (which it replaces) because
//! that client cost 13 % of the gateway's user-space instructions per proxied request
//! (callgrind, HS256 keep-alive through one route, 10,000 requests: 8.5k of 63k instructions):
//! its pool is keyed by (scheme, authority) hashed with SipHash byte by byte, looked up several
//! times per request, and it spawns a task per request to wait for the connection to be ready
//! again. Here a checkout is one uncontended lock, a hash of the address and a pop; a
//! connection goes back to its list as soon as the response head is in, and is taken again
//! only once hyper says it is ready (its previous response read to the end). The connection
//! I/O itself, framing and upgrades stay hyper's (`hyper::client::conn::http1`).
//!
//! Bounded: at most `max_idle` connections kept per (worker, address); an idle connection is
//! closed once older than `idle_timeout` (not reused past it, and swept by a task per worker
//! that wakes every `idle_timeout`); every connect has `connect_timeout`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

/// The request body type sent to instances (buffered, so a retry can resend it).
pub type Body = Full<Bytes>;

/// Why a call failed.
#[derive(Debug)]
pub enum Error {
    /// No connection could be made (refused, unreachable, timed out, TLS handshake failed):
    /// nothing reached the instance.
    Connect(std::io::Error),
    /// The exchange failed after connecting; the request may have reached the instance.
    Exchange {
        /// What hyper saw.
        error: hyper::Error,
        /// Over a pooled connection that had served requests before.
        reused: bool,
    },
}

impl Error {
    /// Whether nothing reached the instance (the call may be retried anywhere).
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect(_))
    }

    /// A reused connection closed before any answer: the instance most likely closed it as
    /// idle while the request was on its way (RFC 9112 §9.3.1 lets an idempotent request be
    /// retried on a new connection).
    pub fn is_stale(&self) -> bool {
        matches!(self, Error::Exchange { error, reused: true }
            if error.is_incomplete_message() || error.is_canceled())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect(e) => write!(f, "connect: {e}"),
            Error::Exchange { error, .. } => write!(f, "exchange: {error}"),
        }
    }
}

impl std::error::Error for Error {}

/// TLS to the instances: the verifying configuration and the name sent as SNI (`None`: the
/// instance's IP address).
#[derive(Clone)]
pub struct Tls {
    /// Verifies the instances' certificates.
    pub connector: TlsConnector,
    /// SNI and the name checked in the certificate.
    pub server_name: Option<ServerName<'static>>,
}

impl Tls {
    /// TLS with `config` (its ALPN is set to `http/1.1`) and `server_name`.
    pub fn new(config: &ClientConfig, server_name: Option<ServerName<'static>>) -> Tls {
        let mut config = config.clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Tls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        }
    }
}

/// Pool settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Bound on one TCP connect (and TLS handshake).
    pub connect_timeout: Duration,
    /// An idle connection older than this is not reused.
    pub idle_timeout: Duration,
    /// Idle connections kept per worker and address.
    pub max_idle: usize,
}

struct Idle {
    tx: SendRequest<Body>,
    since: Instant,
}

type Key = (ThreadId, SocketAddr);

#[derive(Default)]
struct Lists {
    by_key: HashMap<Key, VecDeque<Idle>, foldhash::fast::RandomState>,
    /// Workers that run a sweeper for this pool.
    swept: Vec<ThreadId>,
}

/// A pooled HTTP/1.1 client (cheap to clone: the pool is shared).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    tls: Option<Tls>,
    idle: Mutex<Lists>,
}

/// A client that does not keep its pool alive (see [`Client::downgrade`]).
#[derive(Clone)]
pub struct WeakClient(std::sync::Weak<Inner>);

impl WeakClient {
    /// The client, while anyone still holds it.
    pub fn upgrade(&self) -> Option<Client> {
        self.0.upgrade().map(|inner| Client { inner })
    }
}

impl Client {
    /// A plain-HTTP client (`tls` `None`) or one that speaks TLS to every instance.
    pub fn new(settings: Settings, tls: Option<Tls>) -> Client {
        Client {
            inner: Arc::new(Inner {
                settings,
                tls,
                idle: Mutex::default(),
            }),
        }
    }

    /// A handle that lets the pool close once every [`Client`] is gone (a cache of clients
    /// kept across reloads holds these).
    pub fn downgrade(&self) -> WeakClient {
        WeakClient(Arc::downgrade(&self.inner))
    }

    /// Whether this client speaks TLS to the instances.
    pub fn is_tls(&self) -> bool {
        self.inner.tls.is_some()
    }

    /// Send `req` to the instance at `addr` over a pooled connection (a new one when none is
    /// ready). A pooled connection found closed before the request was written is skipped, so
    /// an instance closing idle connections costs no failed request.
    pub async fn request(
        &self,
        addr: SocketAddr,
        mut req: Request<Body>,
    ) -> Result<Response<Incoming>, Error> {
        let key = (std::thread::current().id(), addr);
        while let Some(mut tx) = self.checkout(&key) {
            match tx.try_send_request(req).await {
                Ok(resp) => {
                    self.checkin(key, tx);
                    return Ok(resp);
                }
                Err(mut e) => match e.take_message() {
                    // not written: the connection was closing; try the next one
                    Some(r) => req = r,
                    None => {
                        return Err(Error::Exchange {
                            error: e.into_error(),
                            reused: true,
                        })
                    }
                },
            }
        }
        let mut tx = self.connect(addr).await?;
        let resp = tx
            .send_request(req)
            .await
            .map_err(|error| Error::Exchange {
                error,
                reused: false,
            })?;
        self.checkin(key, tx);
        Ok(resp)
    }

    /// The most recently used ready connection; closed and expired ones are dropped on the way.
    fn checkout(&self, key: &Key) -> Option<SendRequest<Body>> {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.by_key.get_mut(key)?;
        let now = Instant::now();
        list.retain(|c| usable(c, now, self.inner.settings.idle_timeout));
        // busy connections (response body still streaming) stay for later
        let i = list.iter().rposition(|c| c.tx.is_ready())?;
        list.remove(i).map(|c| c.tx)
    }

    /// Back to the list as soon as the response head is in; it is reused once ready.
    fn checkin(&self, key: Key, tx: SendRequest<Body>) {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
        if !idle.swept.contains(&key.0) {
            idle.swept.push(key.0);
            self.sweep(key.0);
        }
        let list = idle.by_key.entry(key).or_default();
        if list.len() >= self.inner.settings.max_idle {
            // over the bound: the connection closes once its response is read
            return;
        }
        list.push_back(Idle {
            tx,
            since: Instant::now(),
        });
    }

    /// On this worker, every `idle_timeout`: close this worker's idle connections that expired
    /// or that the instance closed. Ends with the pool.
    fn sweep(&self, me: ThreadId) {
        let pool = Arc::downgrade(&self.inner);
        let every = self.inner.settings.idle_timeout;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(pool) = pool.upgrade() else {
                    return;
                };
                let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                idle.by_key.retain(|(t, _), list| {
                    if *t == me {
                        list.retain(|c| usable(c, now, every));
                    }
                    !list.is_empty()
                });
            }
        });
    }

    async fn connect(&self, addr: SocketAddr) -> Result<SendRequest<Body>, Error> {
        let timeout = |e: tokio::time::error::Elapsed| {
            Error::Connect(std::io::Error::new(std::io::ErrorKind::TimedOut, e))
        };
        let deadline = Instant::now() + self.inner.settings.connect_timeout;
        let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
            .await
            .map_err(timeout)?
            .map_err(Error::Connect)?;
        tcp.set_nodelay(true).map_err(Error::Connect)?;
        match &self.inner.tls {
            None => handshake(tcp).await,
            Some(tls) => {
                let name = tls
                    .server_name
                    .clone()
                    .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
                let stream = tokio::time::timeout_at(deadline, tls.connector.connect(name, tcp))
                    .await
                    .map_err(timeout)?
                    .map_err(Error::Connect)?;
                handshake(stream).await
            }
        }
    }
}

/// Open and not idle past `timeout` (a busy connection's `since` is when its answer began).
fn usable(c: &Idle, now: Instant, timeout: Duration) -> bool {
    !c.tx.is_closed() && now.duration_since(c.since) < timeout
}

/// HTTP/1.1 over `io`, its connection driven by a task on this worker (upgrades allowed:
/// WebSockets go through the same connections).
async fn handshake<T>(io: T) -> Result<SendRequest<Body>, Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (tx, conn) = Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|error| Error::Exchange {
            error,
            reused: false,
        })?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
    });
    Ok(tx)
}
