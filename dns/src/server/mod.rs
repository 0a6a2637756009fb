//! Binding, worker threads/tasks, reload and shutdown. Transports: [`udp`] (worker threads,
//! batched), [`tcp`], and the encrypted ones, [`tls`] (DNS over TLS, and the TLS side of DoH)
//! and [`doh`] (DNS over HTTPS), which all answer through the same core (`crate::answer`).

mod doh;
mod tcp;
mod tls;
mod udp;

pub use doh::DNS_MESSAGE;

pub use tcp::MAX_TCP_QUERY;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::geo::truncate;
use crate::gslb::{choose, ClientLocation, Explanation, RegionHealth};
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::spec::DnsSpec;
use crate::Error;

/// What workers read per batch: the zone snapshot and the health view, swapped together.
pub struct State {
    /// Zones, GSLB names and settings.
    pub snapshot: Snapshot,
    /// Region health for GSLB answers.
    pub health: Arc<dyn RegionHealth>,
}

/// Shared by every worker.
pub struct Shared {
    /// The current state; a reload swaps it.
    pub state: ArcSwap<State>,
    /// Metric handles.
    pub metrics: Metrics,
    /// RRSIGs made for TCP answers (each UDP worker has its own).
    pub tcp_sigs: std::sync::Mutex<crate::dnssec::cache::SigCache>,
}

/// A running DNS server. Dropping it does not stop it: cancel the token given to [`start`].
pub struct Handle {
    shared: Arc<Shared>,
    local_addrs: Vec<SocketAddr>,
    threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
    tracker: TaskTracker,
    stop: Arc<AtomicBool>,
    shutdown: CancellationToken,
    spec_listen: Vec<SocketAddr>,
    /// DoT then DoH, when configured.
    transports: Vec<Arc<tls::Transport>>,
    dot_addrs: Vec<SocketAddr>,
    doh_addrs: Vec<SocketAddr>,
}

/// Binds every listener (UDP: `workers` `SO_REUSEPORT` sockets per address, TCP: one listener
/// per address on the same port), then starts serving. Returns once everything is bound.
/// Must be called inside a tokio runtime (TCP runs on it; UDP workers are OS threads).
pub async fn start(
    spec: DnsSpec,
    health: Arc<dyn RegionHealth>,
    shutdown: CancellationToken,
) -> Result<Handle, Error> {
    let snapshot = spec.build()?;
    let shared = Arc::new(Shared {
        state: ArcSwap::from_pointee(State { snapshot, health }),
        metrics: Metrics::new(),
        tcp_sigs: Default::default(),
    });
    let workers = if spec.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        spec.workers
    };
    let stop = Arc::new(AtomicBool::new(false));
    let tracker = TaskTracker::new();
    let limit = Arc::new(Semaphore::new(spec.tcp_max_conns.max(1)));
    let mut local_addrs = Vec::new();
    let mut sockets = Vec::new();
    let mut listeners = Vec::new();
    for &addr in &spec.listen {
        let (udp, tcp, bound) = bind_all(addr, workers)?;
        sockets.extend(udp);
        listeners.push(
            tokio::net::TcpListener::from_std(tcp).map_err(|e| Error::Bind { addr, source: e })?,
        );
        local_addrs.push(bound);
    }
    // DoT and DoH: certificates loaded and sockets bound before any thread starts
    let mut transports = Vec::new();
    let mut tls_listeners = Vec::new();
    let (mut dot_addrs, mut doh_addrs) = (Vec::new(), Vec::new());
    for (kind, t) in [(tls::Kind::Dot, &spec.dot), (tls::Kind::Doh, &spec.doh)] {
        let Some(t) = t else { continue };
        let tr = Arc::new(tls::Transport::new(kind, t.clone())?);
        for l in tr.bind()? {
            if let Ok(a) = l.local_addr() {
                match kind {
                    tls::Kind::Dot => dot_addrs.push(a),
                    tls::Kind::Doh => doh_addrs.push(a),
                }
            }
            tls_listeners.push((l, tr.clone()));
        }
        transports.push(tr);
    }
    let sockets: Vec<Arc<std::net::UdpSocket>> = sockets.into_iter().map(Arc::new).collect();
    let mut threads = Vec::new();
    for (i, socket) in sockets.iter().cloned().enumerate() {
        let (shared, stop) = (shared.clone(), stop.clone());
        let t = std::thread::Builder::new()
            .name(format!("dns-udp-{i}"))
            .spawn(move || udp::run(socket, shared, stop))
            .map_err(|e| Error::Bind {
                addr: local_addrs[0],
                source: e,
            })?;
        threads.push(t);
    }
    for listener in listeners {
        tracker.spawn(tcp::accept_loop(
            listener,
            shared.clone(),
            limit.clone(),
            spec.tcp_idle,
            shutdown.clone(),
            tracker.clone(),
        ));
    }
    for (l, tr) in tls_listeners {
        tracker.spawn(tls::accept_loop(
            l,
            tr,
            shared.clone(),
            shutdown.clone(),
            tracker.clone(),
        ));
    }
    if !transports.is_empty() {
        tracker.spawn(tls::watch_certs(transports.clone(), shutdown.clone()));
        tracing::info!(dot = ?dot_addrs, doh = ?doh_addrs, "dns over tls/https listening");
    }
    // UDP threads block in recvmmsg with no timeout: on cancel, set the flag, then wake them.
    // The guard also does it when the runtime goes away first (it drops this task unpolled):
    // otherwise the threads would answer on their port for ever with the last snapshot.
    {
        let guard = StopUdp {
            stop: stop.clone(),
            sockets,
        };
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            shutdown.cancelled().await;
            drop(guard);
        });
    }
    tracing::info!(addrs = ?local_addrs, workers, "dns listening");
    notify_changes(
        &HashMap::new(),
        &shared.state.load().snapshot,
        &spec.notify,
        &tracker,
        &shutdown,
    );
    Ok(Handle {
        shared,
        local_addrs,
        threads: std::sync::Mutex::new(threads),
        tracker,
        stop,
        shutdown,
        spec_listen: spec.listen,
        transports,
        dot_addrs,
        doh_addrs,
    })
}

/// Stops the UDP worker threads when dropped.
struct StopUdp {
    stop: Arc<AtomicBool>,
    sockets: Vec<Arc<std::net::UdpSocket>>,
}

impl Drop for StopUdp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for socket in &self.sockets {
            udp::wake(socket);
        }
    }
}

/// Sends NOTIFY for each zone of `now` that `before` did not have with the same serial.
fn notify_changes(
    before: &HashMap<Box<[u8]>, u32>,
    now: &Snapshot,
    spec: &crate::notify::NotifySpec,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) {
    if spec.targets.is_empty() {
        return;
    }
    for (origin, serial) in now.serials() {
        if before.get(&origin) == Some(&serial) {
            continue;
        }
        for &target in &spec.targets {
            tracker.spawn(crate::notify::send(
                origin.clone(),
                target,
                spec.clone(),
                shutdown.clone(),
            ));
        }
    }
}

/// Binds one TCP listener and `workers` UDP sockets on the same port.
///
/// The TCP listener goes first: with port 0 the kernel picks a port that is unique for TCP,
/// whereas a UDP `SO_REUSEPORT` bind to port 0 may be handed a port that another reuse-port
/// group of the same user already holds (and the two servers would then share its queries).
/// Every server holds its TCP port while it holds the UDP one, so a fresh TCP port is free of
/// our own UDP groups. If the UDP side is taken anyway, another port is tried.
fn bind_all(
    addr: SocketAddr,
    workers: usize,
) -> Result<(Vec<std::net::UdpSocket>, std::net::TcpListener, SocketAddr), Error> {
    let attempts = if addr.port() == 0 { 32 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let attempt = (|| {
            let listener = tcp::bind(addr)?;
            let bound = listener.local_addr()?;
            let mut sockets = Vec::with_capacity(workers);
            for _ in 0..workers.max(1) {
                // one SO_REUSEPORT socket per worker
                let opts = switchyard_net::socket::UdpOptions {
                    buffer: Some(4 << 20),
                    ..Default::default()
                };
                sockets.push(switchyard_net::socket::udp_socket(bound, opts)?);
            }
            Ok::<_, std::io::Error>((sockets, listener, bound))
        })();
        match attempt {
            Ok(bound) => return Ok(bound),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(Error::Bind { addr, source: e }),
        }
    }
    Err(Error::Bind {
        addr,
        source: last.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()),
    })
}

impl Handle {
    /// The bound addresses (UDP and TCP share each), in the order of `listen`.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The bound DNS over TLS addresses (empty when off).
    pub fn dot_addrs(&self) -> &[SocketAddr] {
        &self.dot_addrs
    }

    /// The bound DNS over HTTPS addresses (empty when off).
    pub fn doh_addrs(&self) -> &[SocketAddr] {
        &self.doh_addrs
    }

    /// Applies new zones, GSLB names, geo database and settings. The new snapshot is built off
    /// to the side and swapped in atomically: queries in flight finish on the old one, none is
    /// dropped. On error the old configuration stays. Listener changes need a restart (logged).
    pub fn reload(&self, spec: DnsSpec, health: Arc<dyn RegionHealth>) -> Result<(), Error> {
        let snapshot = match spec.build() {
            Ok(s) => s,
            Err(e) => {
                crate::metrics::reload(false);
                tracing::warn!(error = %e, "dns reload rejected; keeping the running configuration");
                return Err(e);
            }
        };
        if spec.listen != self.spec_listen {
            tracing::warn!("dns listen addresses changed: takes effect on restart");
        }
        // a reload re-reads DoT/DoH certificates; a broken file keeps the old one
        for t in &self.transports {
            let now = match t.kind {
                tls::Kind::Dot => &spec.dot,
                tls::Kind::Doh => &spec.doh,
            };
            if now.as_ref() != Some(&t.spec) {
                tracing::warn!(
                    listener = t.kind.key(),
                    "dns tls/https settings changed: take effect on restart"
                );
            }
            if let Err(e) = t.store.reload() {
                tracing::warn!(listener = t.kind.key(), error = %e, "certificate reload failed; keeping the old one");
            }
        }
        let before = self.shared.state.load().snapshot.serials();
        self.shared
            .state
            .store(Arc::new(State { snapshot, health }));
        crate::metrics::reload(true);
        notify_changes(
            &before,
            &self.shared.state.load().snapshot,
            &spec.notify,
            &self.tracker,
            &self.shutdown,
        );
        Ok(())
    }

    /// Why `name` answers what it does for a client at `client` (or in `ecs`), right now.
    pub fn explain(
        &self,
        name: &str,
        client: IpAddr,
        ecs: Option<IpNet>,
    ) -> Result<Explanation, Error> {
        let state = self.shared.state.load();
        explain(&state.snapshot, &*state.health, name, client, ecs)
    }

    /// Resolves when the server has stopped (after the token given to [`start`] is cancelled):
    /// UDP workers joined, TCP connections finished.
    pub async fn wait(&self) {
        self.shutdown.cancelled().await;
        self.stop.store(true, Ordering::Relaxed);
        self.tracker.close();
        self.tracker.wait().await;
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

/// The explanation for one GSLB name, client address and optional ECS network, from a
/// snapshot and health view (pure; used by [`Handle::explain`]).
pub fn explain(
    snap: &Snapshot,
    health: &dyn RegionHealth,
    name: &str,
    client: IpAddr,
    ecs: Option<IpNet>,
) -> Result<Explanation, Error> {
    let mut key = name.to_ascii_lowercase();
    if !key.ends_with('.') {
        key.push('.');
    }
    let g = snap
        .gslb
        .get(&key)
        .ok_or_else(|| Error::UnknownName(name.to_string()))?;
    let loc = if g.policy.uses_location() {
        let network = match ecs {
            Some(n) if n.prefix_len() == 0 => None,
            Some(n) => Some(truncate(n.addr(), n.prefix_len())),
            None => Some(truncate(client, 128)),
        };
        let geo = network.and_then(|n| snap.geo.as_ref().and_then(|db| db.lookup(n)));
        ClientLocation {
            network,
            from_ecs: ecs.is_some(),
            geo,
        }
    } else {
        ClientLocation::default()
    };
    let mut ex = Explanation::default();
    choose(g, &loc, health, rand::random(), Some(&mut ex));
    ex.dnssec = snap
        .find_zone(&g.wire)
        .and_then(|z| Some((z.origin_text(), z.signing.as_ref()?.active())))
        .map(|(zone, k)| {
            format!(
                "signed by {zone} key {} (algorithm {}) for queries with the DO bit",
                k.tag, k.algorithm
            )
        });
    Ok(ex)
}
