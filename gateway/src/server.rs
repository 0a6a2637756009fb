//! Listeners, connections and the [`Handle`] the binary holds (reload, wait).
//!
//! Each gateway instance is one bound listener (plus, with `tls`, a second one terminating TLS)
//! with its own connection cap and request concurrency limit. A connection: optional PROXY
//! header (trusted peers only) → TLS handshake (TLS listener; bounded by `handshake_timeout`) →
//! HTTP/2 preface (h2c or ALPN `h2`) to hyper's HTTP/2 server, else framing gate → hyper
//! HTTP/1.1 with keep-alive → [`crate::handler::handle`] with the current runtime snapshot.
//! Every limit (per-client caps, header and body deadlines) applies to both listeners alike.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use switchyard_balance::HealthRegistry;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clients::ClientTable;
use crate::framing::{Gate, GateLimits};
use crate::handler::{self, ConnInfo, InstanceCtx, TlsConn};
use crate::runtime::Runtime;
use crate::spec::{GatewaySpec, InstanceSpec};
use crate::upstream;
use crate::websocket::{Pending, UpgradeSlot};
use crate::Error;
use switchyard_net::proxy::{self, Parse};
use switchyard_net::socket::{tcp_listener, TcpOptions};
use switchyard_tls::CertStore;

/// How often certificate files are checked for changes (and the expiry gauges refreshed).
const CERT_POLL: Duration = Duration::from_secs(1);

/// A TLS listener's handshake side, shared by its accept loops.
struct TlsCtx {
    acceptor: tokio_rustls::TlsAcceptor,
    /// Metrics label: the instance name.
    name: Arc<str>,
    handshake_timeout: Duration,
    client_check: Option<Arc<switchyard_tls::ClientCertCheck>>,
    hsts: Option<http::HeaderValue>,
}

/// The certificates one TLS listener serves (admin `/status`).
#[derive(Debug, Clone)]
pub struct TlsStatus {
    /// The gateway instance.
    pub instance: String,
    /// The TLS listener's bound address.
    pub listen: SocketAddr,
    /// The certificates in use, the default first.
    pub certs: Vec<switchyard_tls::CertInfo>,
}

/// Time given to open connections to finish after shutdown.
pub const GRACE: Duration = Duration::from_secs(5);

struct Listener {
    addr: SocketAddr,
    local: SocketAddr,
    /// The TLS listener: its spec (to tell a changed one on reload), bound address and
    /// certificates.
    tls: Option<(
        switchyard_config::gateway::GatewayTls,
        SocketAddr,
        Arc<CertStore>,
    )>,
    stop: CancellationToken,
    /// The accept loops (not the connections): done once every listening socket is closed.
    accepting: TaskTracker,
}

struct Inner {
    runtime: ArcSwap<Runtime>,
    registry: HealthRegistry,
    listeners: Mutex<HashMap<String, Listener>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    workers: usize,
}

/// A running gateway (all instances of the spec). Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

/// Worker threads per instance: one per CPU (each its own current-thread runtime, its own
/// `SO_REUSEPORT` listener and its own upstream connection pool, so a request never crosses
/// threads). `SWITCHYARD_GATEWAY_WORKERS` overrides.
fn worker_count() -> usize {
    std::env::var("SWITCHYARD_GATEWAY_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .min(64)
}

/// Bind every instance and start serving. Returns once all listeners are bound.
pub async fn start_spec(
    spec: GatewaySpec,
    registry: HealthRegistry,
    shutdown: CancellationToken,
) -> Result<Handle, Error> {
    crate::metrics::describe();
    let _held = upstream::ensure_checks(&spec.services, &registry, &shutdown);
    let runtime = Runtime::build(spec, &registry)?;
    runtime.auth.prime().await;
    let inner = Arc::new(Inner {
        runtime: ArcSwap::from_pointee(runtime),
        registry,
        listeners: Mutex::new(HashMap::new()),
        tracker: TaskTracker::new(),
        shutdown,
        workers: worker_count(),
    });
    let handle = Handle { inner };
    let instances = handle.inner.runtime.load().spec.instances.clone();
    for inst in &instances {
        handle.bind(inst)?;
    }
    Ok(handle)
}

impl Handle {
    fn bind(&self, inst: &InstanceSpec) -> Result<(), Error> {
        let bind_err = |source| Error::Bind {
            name: inst.name.clone(),
            addr: inst.listen,
            source,
        };
        if inst.listen.port() != 0 {
            // SO_REUSEPORT would let us silently share the port with a stale process (each
            // getting some of the connections): insist that nobody listens there first.
            drop(bind_exclusive(inst.listen).map_err(bind_err)?);
        }
        let tls = match &inst.tls {
            Some(t) => Some(tls_ctx(&inst.name, t)?),
            None => None,
        };
        if let Some(t) = inst.tls.as_ref().filter(|t| t.listen.port() != 0) {
            let addr = t.listen;
            drop(bind_exclusive(addr).map_err(|source| Error::Bind {
                name: inst.name.clone(),
                addr,
                source,
            })?);
        }
        let (sockets, local) = self.bind_all(inst.listen).map_err(bind_err)?;
        let mut tls_sockets = Vec::new();
        let mut tls_local = None;
        if let (Some(t), Some(_)) = (&inst.tls, &tls) {
            let (s, l) = self.bind_all(t.listen).map_err(|source| Error::Bind {
                name: inst.name.clone(),
                addr: t.listen,
                source,
            })?;
            tls_sockets = s.into_iter().map(Some).collect();
            tls_local = Some(l);
        }
        let stop = self.inner.shutdown.child_token();
        let accepting = TaskTracker::new();
        let rt = self.inner.runtime.load();
        let limits = rt.spec.limits.clone();
        let upstream_spec = rt.spec.upstream.clone();
        drop(rt);
        let concurrency = Arc::new(Semaphore::new(limits.max_concurrent_requests));
        let conns = Arc::new(Semaphore::new(limits.max_connections));
        let clients = ClientTable::new(limits.max_connections_per_client);
        // one worker (current-thread runtime) per socket; the workers stop once every accept
        // loop and connection on them has finished (the last task drops the guard)
        let done = CancellationToken::new();
        let workers = switchyard_net::workers::Workers::start(
            sockets.len(),
            &format!("gw-{}", inst.name),
            done.clone(),
        )
        .map_err(bind_err)?;
        let last_out = Arc::new(done.drop_guard());
        tls_sockets.resize_with(sockets.len(), || None);
        for (i, (sock, tls_sock)) in sockets.into_iter().zip(tls_sockets).enumerate() {
            let tls_ctx = tls.as_ref().map(|(c, _)| c.clone());
            let inner = self.inner.clone();
            let (stop, conns, concurrency) = (stop.clone(), conns.clone(), concurrency.clone());
            let clients = clients.clone();
            let (name, region, az) = (inst.name.clone(), inst.region.clone(), inst.az.clone());
            let upstream_spec = upstream_spec.clone();
            let last_out = last_out.clone();
            // counted from now, not from when the worker first polls
            let accepting_token = accepting.token();
            let work = self.inner.tracker.track_future(async move {
                let _last_out = last_out;
                let (listener, tls_listener) = match (
                    TcpListener::from_std(sock),
                    tls_sock.map(TcpListener::from_std).transpose(),
                ) {
                    (Ok(l), Ok(t)) => (l, t),
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::error!(instance = %name, error = %e, "listener setup failed");
                        return;
                    }
                };
                let ctx = Arc::new(InstanceCtx {
                    name,
                    http: upstream::client(&upstream_spec),
                    region: Some(region).filter(|r| !r.is_empty()),
                    az,
                    concurrency,
                    clients,
                });
                let conns_tracker = TaskTracker::new();
                let plain = accept_loop(
                    inner.clone(),
                    listener,
                    ctx.clone(),
                    conns.clone(),
                    stop.clone(),
                    &conns_tracker,
                    None,
                );
                match tls_listener.zip(tls_ctx) {
                    Some((tl, tc)) => {
                        let secure =
                            accept_loop(inner, tl, ctx, conns, stop, &conns_tracker, Some(tc));
                        tokio::join!(plain, secure);
                    }
                    None => plain.await,
                }
                drop(accepting_token); // every listening socket of this worker is closed now
                conns_tracker.close();
                conns_tracker.wait().await;
            });
            workers.handle(i).spawn(work);
        }
        tracing::info!(instance = %inst.name, %local, tls = ?tls_local, workers = self.inner.workers, "gateway listening");
        let tls_entry = match (&inst.tls, tls, tls_local) {
            (Some(spec), Some((_, store)), Some(l)) => {
                self.watch_certs(&inst.name, store.clone(), stop.clone());
                if let Some(r) = spec.redirect_listen {
                    let sock = bind_exclusive(r).map_err(|source| Error::Bind {
                        name: inst.name.clone(),
                        addr: r,
                        source,
                    })?;
                    self.serve_redirect(sock, l.port(), stop.clone())
                        .map_err(bind_err)?;
                }
                Some((spec.clone(), l, store))
            }
            _ => None,
        };
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                inst.name.clone(),
                Listener {
                    addr: inst.listen,
                    local,
                    tls: tls_entry,
                    stop,
                    accepting,
                },
            );
        Ok(())
    }

    /// One `SO_REUSEPORT` socket per worker on `addr`; returns them and the bound address.
    fn bind_all(
        &self,
        addr: SocketAddr,
    ) -> std::io::Result<(Vec<std::net::TcpListener>, SocketAddr)> {
        let first = bind_std(addr)?;
        let local = first.local_addr()?;
        let mut sockets = vec![first];
        for _ in 1..self.inner.workers {
            sockets.push(bind_std(local)?);
        }
        Ok((sockets, local))
    }

    /// A plain HTTP listener that answers every request with `308` to the same host and path on
    /// the TLS listener's port (its connections: header deadline, keep-alive off).
    fn serve_redirect(
        &self,
        sock: std::net::TcpListener,
        tls_port: u16,
        stop: CancellationToken,
    ) -> std::io::Result<()> {
        sock.set_nonblocking(true)?;
        let listener = TcpListener::from_std(sock)?;
        let conns = TaskTracker::new();
        self.inner.tracker.spawn(async move {
            loop {
                let stream = tokio::select! {
                    r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
                    _ = stop.cancelled() => break,
                };
                conns.spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let host = req
                            .headers()
                            .get(http::header::HOST)
                            .and_then(|h| h.to_str().ok())
                            .map(|h| h.rsplit_once(':').map_or(h, |(n, _)| n))
                            .filter(|h| crate::handler::valid_redirect_host(h))
                            .unwrap_or("localhost")
                            .to_string();
                        let path = req
                            .uri()
                            .path_and_query()
                            .map_or("/", |p| p.as_str())
                            .to_string();
                        async move {
                            let port = if tls_port == 443 {
                                String::new()
                            } else {
                                format!(":{tls_port}")
                            };
                            let to = format!("https://{host}{port}{path}");
                            let mut resp =
                                http::Response::new(http_body_util::Full::new(bytes::Bytes::new()));
                            *resp.status_mut() = http::StatusCode::PERMANENT_REDIRECT;
                            if let Ok(v) = http::HeaderValue::try_from(to) {
                                resp.headers_mut().insert(http::header::LOCATION, v);
                            }
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let mut b = http1::Builder::new();
                    b.keep_alive(false)
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10));
                    let _ = tokio::time::timeout(
                        Duration::from_secs(30),
                        b.serve_connection(TokioIo::new(stream), svc),
                    )
                    .await;
                });
            }
            conns.close();
            conns.wait().await;
        });
        Ok(())
    }

    /// Reloads a TLS listener's certificates when their files change (a `stat` per file every
    /// [`CERT_POLL`]) and refreshes the expiry gauges, until `stop`.
    fn watch_certs(&self, name: &str, store: Arc<CertStore>, stop: CancellationToken) {
        let label: Arc<str> = name.into();
        let name = name.to_string();
        self.inner.tracker.spawn(async move {
            let mut tick = tokio::time::interval(CERT_POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => return,
                }
                match store.reload_if_changed() {
                    None => {}
                    Some(Ok(certs)) => {
                        let names: Vec<&[String]> = certs.iter().map(|c| &c.names[..]).collect();
                        tracing::info!(instance = %name, ?names, "TLS certificates reloaded (files changed)");
                    }
                    Some(Err(e)) => {
                        crate::metrics::cert_reload_failed(&label);
                        tracing::error!(instance = %name, error = %e, "TLS certificates not reloaded; the previous ones stay");
                    }
                }
                switchyard_tls::metrics::publish_expiry(&label, &store);
            }
        });
    }

    /// Reads every TLS listener's certificate files again (SIGHUP, admin reload). A listener
    /// whose new files are broken keeps its certificates; the errors name the files and why.
    pub fn reload_certs(&self) -> Result<(), Error> {
        let stores: Vec<(String, Arc<CertStore>)> = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(n, l)| l.tls.as_ref().map(|t| (n.clone(), t.2.clone())))
            .collect();
        let mut first_err = None;
        for (name, store) in stores {
            if let Err(source) = store.reload() {
                crate::metrics::cert_reload_failed(&name);
                tracing::error!(instance = %name, error = %source, "TLS certificates not reloaded; the previous ones stay");
                first_err.get_or_insert(Error::Tls { name, source });
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The certificates every TLS listener serves, by instance name.
    pub fn tls_status(&self) -> Vec<TlsStatus> {
        let ls = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<TlsStatus> = ls
            .iter()
            .filter_map(|(n, l)| {
                l.tls.as_ref().map(|(_, addr, store)| TlsStatus {
                    instance: n.clone(),
                    listen: *addr,
                    certs: store.infos(),
                })
            })
            .collect();
        v.sort_by(|a, b| a.instance.cmp(&b.instance));
        v
    }

    /// The bound address of one instance's TLS listener.
    pub fn local_tls_addr(&self, instance: &str) -> Option<SocketAddr> {
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(instance)
            .and_then(|l| l.tls.as_ref().map(|t| t.1))
    }

    /// Apply a new spec: swap the runtime; bind new instances, stop removed or moved ones
    /// (their open connections finish on their own). On error the old spec stays.
    pub async fn reload_spec(&self, spec: GatewaySpec) -> Result<(), Error> {
        let _held =
            upstream::ensure_checks(&spec.services, &self.inner.registry, &self.inner.shutdown);
        let runtime = Runtime::build(spec, &self.inner.registry)?;
        runtime.auth.prime().await;
        // certificate files are read again first: a broken one fails the reload before
        // anything changed (that listener keeps its certificates)
        self.reload_certs()?;
        let instances = runtime.spec.instances.clone();
        self.inner.runtime.store(Arc::new(runtime));
        let mut stale = Vec::new();
        {
            let mut ls = self
                .inner
                .listeners
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            ls.retain(|name, l| {
                let keep = instances.iter().any(|i| {
                    &i.name == name
                        && (i.listen == l.addr || i.listen == l.local)
                        && i.tls.as_ref() == l.tls.as_ref().map(|t| &t.0)
                });
                if !keep {
                    stale.push((l.stop.clone(), l.accepting.clone()));
                }
                keep
            });
        }
        for (stop, accepting) in stale {
            stop.cancel();
            accepting.close();
            // the address may be bound again right away (instance stopped and started)
            let _ = tokio::time::timeout(Duration::from_secs(2), accepting.wait()).await;
        }
        for inst in &instances {
            let exists = self
                .inner
                .listeners
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&inst.name);
            if !exists {
                self.bind(inst)?;
            }
        }
        Ok(())
    }

    /// Bound addresses by instance name (useful with port 0).
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        let ls = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = ls.iter().map(|(n, l)| (n.clone(), l.local)).collect();
        v.sort();
        v
    }

    /// The bound address of one instance.
    pub fn local_addr(&self, instance: &str) -> Option<SocketAddr> {
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(instance)
            .map(|l| l.local)
    }

    /// Resolves once shutdown was requested and every connection finished (or the grace ran out).
    pub async fn wait(&self) {
        self.inner.shutdown.cancelled().await;
        self.inner.tracker.close();
        let _ =
            tokio::time::timeout(GRACE + Duration::from_secs(1), self.inner.tracker.wait()).await;
    }
}

fn bind_exclusive(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    tcp_listener(
        addr,
        TcpOptions {
            reuse_port: false,
            ..TcpOptions::default()
        },
    )
}

fn bind_std(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    tcp_listener(addr, TcpOptions::default())
}

async fn accept_loop(
    inner: Arc<Inner>,
    listener: TcpListener,
    ctx: Arc<InstanceCtx>,
    conns: Arc<Semaphore>,
    stop: CancellationToken,
    tracker: &TaskTracker,
    tls: Option<Arc<TlsCtx>>,
) {
    loop {
        let permit = tokio::select! {
            p = conns.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.cancelled() => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; backing off");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let inner2 = inner.clone();
        let ctx = ctx.clone();
        let tls = tls.clone();
        tracker.spawn(async move {
            serve_conn(inner2, ctx, stream, peer, tls).await;
            drop(permit);
        });
    }
}

async fn serve_conn(
    inner: Arc<Inner>,
    ctx: Arc<InstanceCtx>,
    mut stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<TlsCtx>>,
) {
    let _ = stream.set_nodelay(true);
    let rt = inner.runtime.load_full();
    let limits = GateLimits {
        max_head: rt.spec.limits.max_header_bytes,
        header_timeout: rt.spec.limits.header_timeout,
        idle_timeout: rt.spec.limits.idle_timeout,
        body_timeout: rt.spec.limits.body_timeout,
    };
    let mut client = peer;
    let mut initial = Vec::new();
    if rt.is_trusted(peer.ip()) {
        match read_proxy_header(&mut stream, limits.header_timeout).await {
            Some((bytes, addr)) => {
                initial = bytes;
                if let Some(a) = addr {
                    client = a;
                }
            }
            None => return,
        }
    }
    // whoever speaks HTTP to us: the PROXY header's client, else the TCP peer
    let xff_trusted = rt.forwards_trusted(client.ip());
    drop(rt);
    let Some(slot) = ctx.clients.open(client.ip()) else {
        crate::metrics::client_refused("connections");
        return;
    };
    let client_ip = http::HeaderValue::try_from(client.ip().to_string())
        .unwrap_or(http::HeaderValue::from_static("unknown"));
    let mut conn = ConnInfo {
        peer,
        client,
        client_ip,
        xff_trusted,
        upgrades: false,
        slot,
        tls: None,
    };
    let Some(t) = tls else {
        return serve_http(inner, ctx, conn, stream, initial, limits).await;
    };
    let handshake = tokio::time::timeout(
        t.handshake_timeout,
        t.acceptor
            .accept(crate::h2c::Prefixed::new(initial, stream)),
    );
    let secure = tokio::select! {
        r = handshake => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                switchyard_tls::metrics::handshake_failed(&t.name, Some(&e));
                tracing::debug!(instance = %t.name, %client, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                switchyard_tls::metrics::handshake_failed(&t.name, None);
                return;
            }
        },
        _ = inner.shutdown.cancelled() => return,
    };
    let (_, session) = secure.get_ref();
    switchyard_tls::metrics::handshake_done(&t.name, session);
    let client_cert = match &t.client_check {
        Some(c) => c.check(session.peer_certificates()),
        None => switchyard_tls::ClientCert::None,
    };
    let (identity, subject) = cert_identity(&client_cert, &inner.runtime.load().spec);
    conn.tls = Some(TlsConn {
        client_cert,
        hsts: t.hsts.clone(),
        identity,
        subject,
    });
    serve_http(inner, ctx, conn, secure, Vec::new(), limits).await
}

/// Serves HTTP on an established connection (cleartext or TLS): HTTP/2 when it starts with the
/// preface, else HTTP/1.1 through the framing gate (and WebSocket upgrades).
async fn serve_http<S>(
    inner: Arc<Inner>,
    ctx: Arc<InstanceCtx>,
    mut conn: ConnInfo,
    mut stream: S,
    mut initial: Vec<u8>,
    limits: GateLimits,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    if !crate::h2c::sniff(&mut stream, &mut initial, limits.header_timeout).await {
        return;
    }
    if crate::h2c::is_preface(&initial) {
        let max_head = inner.runtime.load().spec.limits.max_header_bytes;
        let conn = Arc::new(conn);
        let activity = crate::h2c::Activity::new();
        let inner2 = inner.clone();
        let act = activity.clone();
        let svc = service_fn(move |req| {
            let rt = inner2.runtime.load_full();
            let (ctx, conn, act) = (ctx.clone(), conn.clone(), act.clone());
            async move {
                let _busy = act.busy();
                let mut resp = handler::handle(rt, ctx, conn.clone(), req).await?;
                add_hsts(&conn, &mut resp);
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        crate::h2c::serve(
            stream,
            initial,
            svc,
            crate::h2c::Settings {
                max_head,
                first_request_timeout: limits.header_timeout,
                idle_timeout: limits.idle_timeout,
                grace: GRACE,
            },
            activity,
            inner.shutdown.clone(),
        )
        .await;
        return;
    }
    conn.upgrades = true;
    let conn = Arc::new(conn);
    let slot = Arc::new(UpgradeSlot::default());
    let mut gate = Gate::new(&mut stream, limits, &initial);
    {
        let inner2 = inner.clone();
        let slot = slot.clone();
        let svc = service_fn(move |req| {
            let rt = inner2.runtime.load_full();
            let (ctx, slot, conn) = (ctx.clone(), slot.clone(), conn.clone());
            async move {
                let mut resp = handler::handle(rt, ctx, conn.clone(), req).await?;
                add_hsts(&conn, &mut resp);
                if let Some(Pending(up)) = resp.extensions_mut().remove::<Pending>() {
                    slot.put(up);
                }
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        let mut builder = http1::Builder::new();
        builder
            .keep_alive(true)
            // the gate ends the stream at a message boundary on a violation: answer what came
            // before it, then close
            .half_close(true)
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_buf_size((limits.max_head + 4096).max(8192));
        let serving = builder.serve_connection(TokioIo::new(&mut gate), svc);
        tokio::pin!(serving);
        tokio::select! {
            _ = serving.as_mut() => {}
            _ = inner.shutdown.cancelled() => {
                serving.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(GRACE, serving.as_mut()).await;
            }
        }
    }
    if let Some(upstream) = slot.take() {
        // hyper has written the 101 and let go of the connection: it is a WebSocket now
        let early = gate.into_buffered();
        crate::websocket::relay(
            stream,
            early,
            upstream,
            limits.idle_timeout,
            inner.shutdown.clone(),
        )
        .await;
        return;
    }
    gate.finish().await;
}

/// The identity a client certificate gives (routes with `client_cert`) and its subject header.
fn cert_identity(
    cert: &switchyard_tls::ClientCert,
    spec: &crate::spec::GatewaySpec,
) -> (
    Result<Arc<crate::jwt::Identity>, crate::jwt::AuthError>,
    Option<http::HeaderValue>,
) {
    use crate::jwt::{AuthError, Identity};
    match cert {
        switchyard_tls::ClientCert::None => (Err(AuthError::NoClientCert), None),
        switchyard_tls::ClientCert::Invalid(_) => (Err(AuthError::BadClientCert), None),
        switchyard_tls::ClientCert::Valid {
            subject,
            common_name,
            sans,
        } => {
            let name = common_name
                .clone()
                .or_else(|| sans.first().cloned())
                .unwrap_or_default();
            match Identity::from_client_cert(&name, sans, subject, &spec.client_cert_roles) {
                Some(id) if !name.is_empty() => {
                    (Ok(Arc::new(id)), http::HeaderValue::from_str(subject).ok())
                }
                _ => (Err(AuthError::BadClientCert), None),
            }
        }
    }
}

/// `Strict-Transport-Security` on a TLS listener with `hsts`.
fn add_hsts<B>(conn: &ConnInfo, resp: &mut http::Response<B>) {
    if let Some(v) = conn.tls.as_ref().and_then(|t| t.hsts.as_ref()) {
        resp.headers_mut()
            .insert(http::header::STRICT_TRANSPORT_SECURITY, v.clone());
    }
}

/// Loads a TLS listener's certificates and builds its acceptor.
fn tls_ctx(
    name: &str,
    spec: &switchyard_config::gateway::GatewayTls,
) -> Result<(Arc<TlsCtx>, Arc<CertStore>), Error> {
    let err = |source| Error::Tls {
        name: name.to_string(),
        source,
    };
    switchyard_tls::metrics::describe();
    let sources = spec
        .tls
        .certs
        .iter()
        .map(|c| switchyard_tls::CertSource {
            cert: c.cert.clone(),
            key: c.key.clone(),
        })
        .collect();
    let store = CertStore::load(sources).map_err(err)?;
    let opts = switchyard_tls::ServerOptions {
        alpn: spec
            .tls
            .alpn
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect(),
        session_cache: spec.tls.session_cache,
        client_ca: spec.tls.client_ca.clone(),
        ticket_keys: spec.tls.ticket_keys.clone(),
    };
    let (cfg, client_check) = switchyard_tls::server_config(store.clone(), &opts).map_err(err)?;
    let hsts = spec
        .hsts
        .and_then(|d| http::HeaderValue::try_from(format!("max-age={}", d.as_secs())).ok());
    let ctx = TlsCtx {
        acceptor: tokio_rustls::TlsAcceptor::from(cfg),
        name: name.into(),
        handshake_timeout: spec.tls.handshake_timeout,
        client_check,
        hsts,
    };
    Ok((Arc::new(ctx), store))
}

/// Read an optional PROXY v1/v2 header; returns the bytes after it and the client address.
/// Bytes are read (not peeked) and handed on, so a client that stalls inside a header costs a
/// parked task until the header timeout, not a poll loop.
async fn read_proxy_header(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Option<(Vec<u8>, Option<SocketAddr>)> {
    let mut buf = Vec::with_capacity(512);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match proxy::parse(&buf) {
            Parse::Absent => return Some((buf, None)),
            Parse::Complete(h) => return Some((buf[h.len..].to_vec(), h.source())),
            Parse::Invalid(_) => return None,
            Parse::Incomplete if buf.len() >= proxy::V2_MAX => return None,
            Parse::Incomplete => {}
        }
        let mut chunk = [0u8; proxy::V2_MAX];
        let want = proxy::V2_MAX - buf.len();
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk[..want])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
    }
}
