//! Listeners: `SO_REUSEPORT` sockets bound with socket2 (one per worker, each with its own
//! accept loop), the connection cap checked *before* `accept` (and the permit taken right after,
//! so idle accept loops hold none), prompt refusal (RST) while at the cap, and accept-error
//! back-off so EMFILE/ENFILE never spin.

use crate::conn::{self, ConnCtx};
use crate::metrics::ListenerMetrics;
use crate::plan::ListenerSpec;
use crate::pool::PoolRt;
use crate::relay::{self, pipes::PipePool};
use crate::LbError;
use arc_swap::ArcSwap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_config::lb::{Forwarding, IoEngine};
use switchyard_net::limit::{KeyedLimiter, Rate};
use switchyard_net::socket::TcpOptions;
use switchyard_net::workers::Workers;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use tokio_util::sync::CancellationToken;

/// Idle pipes a listener keeps for reuse (2 fds each; busy pipes are not limited by this).
const IDLE_PIPES: usize = 256;

/// Settings a listener reads per connection; swapped in place on reload.
#[derive(Debug)]
pub struct Settings {
    /// The listener as configured.
    pub spec: ListenerSpec,
    /// The pool it feeds.
    pub pool: Arc<PoolRt>,
    /// The per-source rate limiter, if configured.
    pub limiter: Option<Arc<KeyedLimiter<IpAddr>>>,
    /// How bytes are relayed.
    pub mode: relay::Mode,
    /// Routing by TLS server name (`None`: every connection goes to `pool`).
    pub sni: Option<crate::sni::SniRt>,
}

impl Settings {
    /// Settings for `spec` over `pool`; the rate limiter is kept from `old` if its rate did not change.
    pub fn new(spec: ListenerSpec, pool: Arc<PoolRt>, old: Option<&Settings>) -> Self {
        // keep the buckets when the rate did not change
        let limiter = spec
            .source_rate
            .map(|(per_second, burst)| Rate { per_second, burst })
            .map(|rate| match old.and_then(|o| o.limiter.as_ref()) {
                Some(l) if l.same_rate(rate) => l.clone(),
                _ => Arc::new(KeyedLimiter::new(rate)),
            });
        // reuse the pipe pool when the pipe size did not change
        let old_pool = old.and_then(|o| match &o.mode {
            relay::Mode::Splice(p) | relay::Mode::Auto(p, _)
                if p.pipe_size() == spec.pipe_size as usize =>
            {
                Some(p.clone())
            }
            _ => None,
        });
        let pipes = || {
            old_pool
                .clone()
                .unwrap_or_else(|| Arc::new(PipePool::new(spec.pipe_size as usize, IDLE_PIPES)))
        };
        let mode = match spec.forwarding {
            Forwarding::Splice => relay::Mode::Splice(pipes()),
            Forwarding::Auto => relay::Mode::Auto(pipes(), spec.buffer_size as usize),
            Forwarding::Copy => relay::Mode::Copy(spec.buffer_size as usize),
        };
        Settings {
            limiter,
            spec,
            pool,
            mode,
            sni: None,
        }
    }

    /// The same settings with SNI routing (built by the balancer from `spec.sni`).
    pub fn with_sni(mut self, sni: Option<crate::sni::SniRt>) -> Self {
        self.sni = sni;
        self
    }
}

/// A running listener (all its sockets).
#[derive(Debug)]
pub struct ListenerRt {
    /// What each connection reads; swapped by reloads.
    pub settings: ArcSwap<Settings>,
    /// Metric handles, resolved once.
    pub metrics: ListenerMetrics,
    /// The actual bound addresses (port 0 resolved), one per configured address.
    pub bound: Vec<SocketAddr>,
    conns: Arc<Semaphore>,
    /// Woken whenever a connection of this listener ends (a slot may be free).
    freed: Arc<Notify>,
    max: AtomicUsize,
    /// Out-of-resources warnings (accept and backend connect), at most one line per interval.
    pub resource_warn: WarnEvery,
    /// Stops the accept loops (connections continue).
    stop: CancellationToken,
}

impl ListenerRt {
    /// Binds every socket (so "started" means bound) and starts the accept loops.
    /// With dedicated `threads`, socket `j` of each address is driven by worker thread `j`;
    /// without, every accept loop runs on the caller's runtime.
    pub fn start(
        settings: Settings,
        ctx: &Arc<ConnCtx>,
        threads: Option<&Workers>,
    ) -> Result<Arc<ListenerRt>, LbError> {
        let spec = &settings.spec;
        let default = threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |t| t.len(),
        );
        let workers = spec.workers.map_or(default, |w| w.max(1) as usize);
        let mut sockets = Vec::new();
        let mut bound = Vec::new();
        for &addr in &spec.addrs {
            let mut actual = addr;
            for _ in 0..workers {
                let s = bind(actual, spec.backlog).map_err(|source| LbError::Bind {
                    listener: spec.key.1.clone(),
                    addr,
                    source,
                })?;
                actual = s.local_addr().map_err(|source| LbError::Bind {
                    listener: spec.key.1.clone(),
                    addr,
                    source,
                })?;
                sockets.push(s);
            }
            bound.push(actual);
        }
        let max = spec.max_connections as usize;
        let uring = uring(spec);
        let rt = Arc::new(ListenerRt {
            metrics: ListenerMetrics::new(&spec.key.1),
            bound,
            conns: Arc::new(Semaphore::new(max)),
            freed: Arc::new(Notify::new()),
            max: AtomicUsize::new(max),
            resource_warn: WarnEvery::new(RESOURCE_WARN_EVERY),
            stop: ctx.shutdown.child_token(),
            settings: ArcSwap::from_pointee(settings),
        });
        for (j, s) in sockets.into_iter().enumerate() {
            let (rt2, ctx2) = (rt.clone(), ctx.clone());
            if uring {
                let handle =
                    threads.map_or_else(tokio::runtime::Handle::current, |t| t.handle(j).clone());
                crate::uring::spawn(rt2, ctx2, s, handle, j).map_err(|source| LbError::Bind {
                    listener: rt.name(),
                    addr: rt.bound[0],
                    source,
                })?;
                continue;
            }
            let accept = ctx.tracker.track_future(async move {
                // registered with the worker's own reactor
                match TcpListener::from_std(s) {
                    Ok(l) => accept_loop(rt2, l, ctx2).await,
                    Err(e) => tracing::error!(error = %e, "cannot register listener socket"),
                }
            });
            match threads {
                Some(t) => drop(t.handle(j).spawn(accept)),
                None => drop(tokio::spawn(accept)),
            }
        }
        let engine = if uring { "io_uring" } else { "epoll" };
        tracing::info!(listener = %rt.name(), addrs = ?rt.bound, workers, engine, "listening");
        Ok(rt)
    }

    /// `region/name`, for logs and metrics labels.
    pub fn name(&self) -> String {
        self.settings.load().spec.key.1.clone()
    }

    /// Applies new non-socket settings in place (timeouts, limits, pool, forwarding).
    pub fn update(&self, settings: Settings) {
        let new_max = settings.spec.max_connections as usize;
        let old_max = self.max.swap(new_max, Ordering::AcqRel);
        if new_max > old_max {
            self.conns.add_permits(new_max - old_max);
        } else if new_max < old_max {
            // permits in use come back later; forget what is free now, the rest as it frees up
            let mut left = old_max - new_max;
            left -= self.conns.forget_permits(left);
            if left > 0 {
                let sem = self.conns.clone();
                tokio::spawn(async move {
                    if let Ok(p) = sem.acquire_many_owned(left as u32).await {
                        p.forget();
                    }
                });
            }
        }
        self.settings.store(Arc::new(settings));
    }

    /// Stops accepting (established connections continue).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Whether [`ListenerRt::stop`] (or the balancer's shutdown) stopped accepting.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Cancelled when accepting stops.
    pub(crate) fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Connections open through this listener.
    pub fn active(&self) -> usize {
        self.max
            .load(Ordering::Relaxed)
            .saturating_sub(self.conns.available_permits())
    }
}

/// Whether `spec` runs on the io_uring engine (asked for and available; if asked for but not
/// available, one warning says why and it runs on epoll).
fn uring(spec: &ListenerSpec) -> bool {
    match spec.io_engine {
        IoEngine::Epoll => false,
        IoEngine::IoUring => match crate::uring::unavailable() {
            None => true,
            Some(why) => {
                tracing::warn!(listener = %spec.key.1, reason = why, "io_uring is not available here; this listener runs on epoll");
                false
            }
        },
    }
}

/// A non-blocking, SO_REUSEPORT, TCP_NODELAY listening socket (not yet registered with a
/// runtime).
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    let opts = TcpOptions {
        backlog,
        ..TcpOptions::default()
    };
    switchyard_net::socket::tcp_listener(addr, opts)
}

/// How often the "out of resources" warning may be logged per listener.
pub const RESOURCE_WARN_EVERY: Duration = Duration::from_secs(10);

/// A warning logged at most once per interval, carrying how many times its condition occurred
/// since the last line (out of fds a busy listener would otherwise log once per refused
/// connection). Lock-free: every accept loop and connection of a listener shares one. Time is
/// an argument (milliseconds since `epoch`), so the arithmetic is tested without waiting.
#[derive(Debug)]
pub struct WarnEvery {
    epoch: std::time::Instant,
    every_ms: u64,
    /// When the last line was logged (ms since `epoch`, plus one; 0 = never).
    last_ms: std::sync::atomic::AtomicU64,
    /// Occurrences not yet reported.
    count: std::sync::atomic::AtomicU64,
}

impl WarnEvery {
    /// At most one line per `every`.
    pub fn new(every: Duration) -> Self {
        WarnEvery {
            epoch: std::time::Instant::now(),
            every_ms: every.as_millis() as u64,
            last_ms: 0.into(),
            count: 0.into(),
        }
    }

    /// Records one occurrence at `now`; returns how many occurrences the line to log now
    /// reports (this one included), or `None` while the interval since the last line runs.
    pub fn note_at(&self, now: std::time::Instant) -> Option<u64> {
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64 + 1;
        self.count.fetch_add(1, Ordering::Relaxed);
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms < last.saturating_add(self.every_ms) {
            return None;
        }
        // one thread wins the right to log this interval's line
        self.last_ms
            .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        Some(self.count.swap(0, Ordering::AcqRel))
    }

    /// [`WarnEvery::note_at`] now.
    pub fn note(&self) -> Option<u64> {
        self.note_at(std::time::Instant::now())
    }
}

fn is_resource_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

async fn accept_loop(rt: Arc<ListenerRt>, sock: TcpListener, ctx: Arc<ConnCtx>) {
    let mut backoff = Duration::ZERO;
    loop {
        // registered before the check, so a slot freed in between is not missed
        let local_freed = rt.freed.notified();
        let global_freed = ctx.freed.notified();
        tokio::pin!(local_freed, global_freed);
        local_freed.as_mut().enable();
        global_freed.as_mut().enable();
        if rt.conns.available_permits() == 0 || ctx.global.available_permits() == 0 {
            // At the cap (checked before accept): wait for a slot, refusing (RST) whatever
            // arrives meanwhile so clients learn at once instead of waiting in the backlog.
            tokio::select! {
                _ = &mut local_freed => {}
                _ = &mut global_freed => {}
                r = sock.accept() => {
                    if let Ok((s, peer)) = r {
                        // a slot may have come free (or the cap grown) since the check: both
                        // branches can be ready at once, so look again before refusing
                        match take_permits(&rt, &ctx) {
                            Some(p) => spawn_conn(&rt, &ctx, s, peer, p),
                            None => {
                                rt.metrics.refused_max_conns.increment(1);
                                refuse(s);
                            }
                        }
                    }
                }
                _ = rt.stop.cancelled() => return,
            }
            continue;
        }
        let accepted = tokio::select! {
            r = sock.accept() => r,
            _ = rt.stop.cancelled() => {
                // hand over what is already queued on this socket before closing it
                while let Ok(Ok((s, peer))) = tokio::time::timeout(Duration::ZERO, sock.accept()).await {
                    match take_permits(&rt, &ctx) {
                        Some(p) => spawn_conn(&rt, &ctx, s, peer, p),
                        None => refuse(s),
                    }
                }
                return;
            }
        };
        match accepted {
            Ok((s, peer)) => {
                backoff = Duration::ZERO;
                match take_permits(&rt, &ctx) {
                    Some(p) => spawn_conn(&rt, &ctx, s, peer, p),
                    None => {
                        // another accept loop took the last slot meanwhile
                        rt.metrics.refused_max_conns.increment(1);
                        refuse(s);
                    }
                }
            }
            Err(e) if is_resource_error(&e) => {
                rt.metrics.accept_errors.increment(1);
                if let Some(n) = rt.resource_warn.note() {
                    tracing::warn!(listener = %rt.name(), error = %e, failures = n, every_s = RESOURCE_WARN_EVERY.as_secs(), "accept failed: out of resources, backing off (one line per interval, failures counted since the last)");
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = rt.stop.cancelled() => return,
                }
            }
            Err(e) => {
                rt.metrics.accept_errors.increment(1);
                tracing::debug!(listener = %rt.name(), error = %e, "accept error");
            }
        }
    }
}

/// A connection's slots (listener and global); freeing them wakes accept loops at the cap.
pub(crate) struct Permits {
    slots: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
    local_freed: Arc<Notify>,
    global_freed: Arc<Notify>,
}

impl Drop for Permits {
    fn drop(&mut self) {
        // Accept loops wait only when a semaphore is empty, so only then is a wake-up needed
        // (they register before checking, so a release seen as "not at the cap" misses no one).
        let Some((l, g)) = self.slots.take() else {
            return;
        };
        let (l_full, g_full) = (
            l.semaphore().available_permits() == 0,
            g.semaphore().available_permits() == 0,
        );
        drop((l, g)); // release first, then wake
        if l_full {
            self.local_freed.notify_waiters();
        }
        if g_full {
            self.global_freed.notify_waiters();
        }
    }
}

pub(crate) fn take_permits(rt: &ListenerRt, ctx: &ConnCtx) -> Option<Permits> {
    let local = rt.conns.clone().try_acquire_owned().ok()?;
    let global = ctx.global.clone().try_acquire_owned().ok()?;
    Some(Permits {
        slots: Some((local, global)),
        local_freed: rt.freed.clone(),
        global_freed: ctx.freed.clone(),
    })
}

pub(crate) fn spawn_conn(
    rt: &Arc<ListenerRt>,
    ctx: &Arc<ConnCtx>,
    s: TcpStream,
    peer: SocketAddr,
    permits: Permits,
) {
    rt.metrics.accepted.increment(1);
    let (rt, ctx2) = (rt.clone(), ctx.clone());
    ctx.tracker.spawn(async move {
        let _permits = permits;
        conn::handle(s, peer, &rt, &ctx2).await;
    });
}

/// Closes with a RST (refused connections cost the client no wait).
pub fn refuse(s: TcpStream) {
    relay::set_reset_on_close(&s);
    drop(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warn_every_logs_one_line_per_interval_with_the_count() {
        let w = WarnEvery::new(Duration::from_secs(10));
        let t0 = w.epoch;
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // the first occurrence is logged at once
        assert_eq!(w.note_at(at(5)), Some(1));
        // 4,999 more within the interval: silent
        for i in 0..4_999 {
            assert_eq!(w.note_at(at(6 + i)), None);
        }
        // the first one after the interval reports all of them and itself
        assert_eq!(w.note_at(at(10_005)), Some(5_000));
        assert_eq!(w.note_at(at(10_006)), None);
        // a quiet spell, then one occurrence: logged at once, counting only itself and the
        // one left over
        assert_eq!(w.note_at(at(60_000)), Some(2));
        // time before the epoch (a clock read before `new`) does not panic
        assert_eq!(
            w.note_at(t0.checked_sub(Duration::from_secs(1)).unwrap_or(t0)),
            None
        );
    }

    #[test]
    fn warn_every_is_shared_by_threads_without_losing_counts() {
        let w = Arc::new(WarnEvery::new(Duration::from_secs(3600)));
        let logged: u64 = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || (0..1000).filter_map(|_| w.note()).sum::<u64>())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        // one line in the hour, reporting the first occurrence; the rest wait for the next
        let left = w.count.load(Ordering::Relaxed);
        assert_eq!(logged, 1);
        assert_eq!(logged + left, 4000);
    }
}
