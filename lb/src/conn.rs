//! One client connection: source rate limit, optional PROXY header in, the pool (the listener's,
//! or by the ClientHello's server name: [`crate::sni`]), backend choice with connect retry
//! (another AZ first), PROXY header out (v2 may carry the SNI and ALPN), relay, then metrics and
//! access log.

use crate::listener::{refuse, ListenerRt};
use crate::relay::{self, copy::First, End, Limits};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_balance::Choice;
use switchyard_config::lb::ProxyVersion;
use switchyard_net::proxy;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every connection shares: the global cap, the task tracker, and the stop signals.
#[derive(Debug)]
pub struct ConnCtx {
    /// Global connection cap (all listeners).
    pub global: Arc<tokio::sync::Semaphore>,
    /// The current size of `global` (changed by reloads, see [`ConnCtx::set_global_max`]).
    pub global_max: std::sync::atomic::AtomicUsize,
    /// Woken whenever any connection ends.
    pub freed: Arc<tokio::sync::Notify>,
    /// Tracks connection tasks so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Stops accepting (the balancer's shutdown token).
    pub shutdown: CancellationToken,
    /// Closes every connection (fired a grace period after shutdown).
    pub hard_stop: CancellationToken,
}

impl ConnCtx {
    /// Resizes the global cap. Growing adds slots at once (and wakes accept loops waiting at
    /// the old cap). Shrinking takes the free slots at once and the rest as connections end (a
    /// task waits for them), so open connections are never cut and new ones are refused until
    /// the process is under the new cap.
    pub fn set_global_max(&self, new: usize) {
        use std::sync::atomic::Ordering;
        let old = self.global_max.swap(new, Ordering::AcqRel);
        if new > old {
            self.global.add_permits(new - old);
            // accept loops waiting at the old cap refuse what arrives until woken
            self.freed.notify_waiters();
        } else if new < old {
            // free slots go at once (so the new cap holds from this call on); the rest as
            // connections end
            let taken = self.global.forget_permits(old - new);
            let debt = (old - new - taken).min(u32::MAX as usize) as u32;
            if debt == 0 {
                return;
            }
            let (global, stop) = (self.global.clone(), self.hard_stop.clone());
            tokio::spawn(async move {
                tokio::select! {
                    p = global.acquire_many_owned(debt) => {
                        if let Ok(p) = p {
                            p.forget();
                        }
                    }
                    _ = stop.cancelled() => {}
                }
            });
        }
    }
}

/// The configured PROXY protocol version as the wire format's.
pub(crate) fn wire_version(v: ProxyVersion) -> proxy::Version {
    match v {
        ProxyVersion::V1 => proxy::Version::V1,
        ProxyVersion::V2 => proxy::Version::V2,
    }
}

/// Most backends tried for one client connection.
pub const MAX_ATTEMPTS: usize = 8;

/// Serves one accepted client connection to its end: PROXY header in, source rate limit, backend choice with retry, PROXY header out, relay, metrics and access log.
pub async fn handle(mut client: TcpStream, peer: SocketAddr, l: &Arc<ListenerRt>, ctx: &ConnCtx) {
    let started = Instant::now();
    let cfg = l.settings.load_full();
    let spec = &cfg.spec;
    if let Some(lim) = &cfg.limiter {
        if lim.check(&peer.ip(), std::time::Instant::now()).is_err() {
            l.metrics.refused_rate.increment(1);
            return refuse(client);
        }
    }
    let (src, dst) = if spec.accept_proxy {
        match proxy::read_header(&client, spec.connect_timeout).await {
            Ok(h) => h.addrs.map_or((peer, None), |(s, d)| (s, Some(d))),
            Err(e) => {
                tracing::debug!(listener = %spec.key.1, %peer, error = %e, "bad PROXY header");
                l.metrics.refused_proxy.increment(1);
                return refuse(client);
            }
        }
    } else {
        (peer, None)
    };

    let (pool_rt, tlv_hello) = match &cfg.sni {
        None => (&cfg.pool, None),
        // the ClientHello is peeked, not consumed: the first read below takes it
        Some(sni) => {
            let routed = crate::sni::route(&client, sni).await;
            match routed {
                Some(r) => {
                    if r.stale_readiness {
                        client = match reregister(client) {
                            Ok(c) => c,
                            Err(_) => return,
                        };
                    }
                    (r.pool, r.tlv_hello)
                }
                None => {
                    l.metrics.refused_sni.increment(1);
                    return refuse(client);
                }
            }
        }
    };
    let pool = pool_rt.snap.load_full();
    if let Some(why) = crate::spill::early(&pool, spec.spill_ingress) {
        return crate::spill::or_refuse(
            client,
            relay::copy::First::Quiet,
            peer,
            src,
            dst,
            l,
            &cfg,
            &pool,
            ctx,
            Some(why),
        )
        .await;
    }

    // The client's first bytes are read before a backend is chosen, with the read the relay
    // would make anyway: a client that reset while it waited in the accept queue (a burst of
    // clients that connect and give up) costs the backends nothing. The bytes stay in the
    // thread's scratch buffer while nothing awaits; `first.spill()` before any await.
    let mut first = First::read(&client, cfg.mode.first_read_size());
    if let First::Gone(e) = &first {
        tracing::debug!(listener = %spec.key.1, %peer, error = %e, "client gone before a backend was chosen");
        l.metrics.refused_client_gone.increment(1);
        return;
    }
    let sel = &pool.selector;
    let mut tried = [usize::MAX; MAX_ATTEMPTS];
    let attempts = (pool.spec.connect_attempts as usize).clamp(1, MAX_ATTEMPTS);
    let mut chosen = None;
    for n in 0..attempts {
        let idx = match sel.choose(src.ip(), &tried[..n]) {
            Choice::Member(i) => i,
            Choice::FailOpen(i) => {
                pool.note_all_down(true);
                i
            }
            Choice::None => {
                if n == 0 && !sel.members().any(|(_, h)| h.is_up()) {
                    pool.note_all_down(false);
                }
                break;
            }
        };
        tried[n] = idx;
        let member = &pool.members[idx];
        let guard = member.health.conn_guard();
        let attempt = match connect_now(member.spec.addr) {
            Ok(Connect::Done(s)) => Ok(s),
            Ok(Connect::Pending(s)) => {
                first.spill(); // the scratch buffer is not ours across the wait
                finish_connect(s, spec.connect_timeout).await
            }
            Err(e) => Err(e),
        };
        match attempt {
            Ok(s) => {
                sel.record_success(idx);
                chosen = Some((idx, s, guard));
                break;
            }
            Err(e) if is_local_shortage(&e) => {
                // Out of fds, memory or ephemeral ports here: not the backend's fault, so no
                // passive-health penalty, and another member would fail the same way.
                drop(guard);
                member.metrics.connect_errors.increment(1);
                if let Some(n) = l.resource_warn.note() {
                    tracing::warn!(listener = %spec.key.1, backend = %member.spec.addr, error = %e, failures = n, "backend connect failed: out of local resources (one line per interval, failures counted since the last)");
                }
                break;
            }
            Err(e) => {
                drop(guard);
                member.metrics.connect_errors.increment(1);
                sel.record_connect_failure(idx);
                tracing::debug!(backend = %member.spec.addr, error = %e, attempt = n + 1, "connect failed");
            }
        }
    }
    let Some((idx, mut backend, _health_guard)) = chosen else {
        // remote spill (issue 17), or a RST when the pool has none or this is a spill ingress
        first.spill();
        return crate::spill::or_refuse(client, first, peer, src, dst, l, &cfg, &pool, ctx, None)
            .await;
    };
    let member = pool.members[idx].clone();
    let _active = member.open();
    member.metrics.conns.increment(1);

    if let Some(v) = pool.spec.proxy_protocol {
        // the local address is needed only here (saves a getsockname otherwise)
        let dst = dst.unwrap_or_else(|| client.local_addr().unwrap_or(peer));
        let (mut plain, mut with_tlvs) =
            ([0u8; proxy::MAX_ENCODED], [0u8; proxy::MAX_ENCODED_TLVS]);
        let hdr: &[u8] = match tlv_hello.as_deref() {
            None => {
                let n = proxy::encode(wire_version(v), src, dst, &mut plain);
                &plain[..n]
            }
            Some(hello) => {
                let n = crate::sni::proxy_header(wire_version(v), src, dst, hello, &mut with_tlvs);
                &with_tlvs[..n]
            }
        };
        let n = hdr.len();
        // straight on the fd: a fresh socket takes a header at once (no reactor turn)
        let sent = match relay::send_now(&backend, hdr) {
            Ok(k) => k,
            Err(_) => {
                relay::set_reset_on_close(&client);
                return;
            }
        };
        if sent < n {
            first.spill();
            if backend.write_all(&hdr[sent..n]).await.is_err() {
                relay::set_reset_on_close(&client);
                return;
            }
        }
    }
    // the client's first bytes, then the relay
    let first_len = first.len();
    if first.send(&backend).await.is_err() {
        relay::set_reset_on_close(&client);
        return;
    }

    let relayed = Relayed {
        member: &member,
        pool: &pool,
        idx,
        src,
        started,
        counted: [first_len, 0],
    };
    relay_and_log(&client, &backend, &cfg, relayed, ctx).await;
}

/// A connection whose backend is connected, on its way to the relay: what the end of the
/// relay reports (the epoll engine's own connections, and bulk flows the io_uring engine
/// hands over).
pub(crate) struct Relayed<'a> {
    pub(crate) member: &'a Arc<crate::pool::MemberRt>,
    pub(crate) pool: &'a crate::pool::PoolSnap,
    pub(crate) idx: usize,
    pub(crate) src: SocketAddr,
    pub(crate) started: Instant,
    /// Bytes already moved (client to backend, backend to client) before this relay.
    pub(crate) counted: [u64; 2],
}

/// Relays until the end (drain deadline and hard stop included), then counts the bytes,
/// reports a backend that failed before its first byte to passive health, and writes the
/// access log line.
pub(crate) async fn relay_and_log(
    client: &TcpStream,
    backend: &TcpStream,
    cfg: &crate::listener::Settings,
    r: Relayed<'_>,
    ctx: &ConnCtx,
) {
    let spec = &cfg.spec;
    let member = r.member;
    let close = member.close_token();
    let limits = Limits {
        idle: spec.idle_timeout,
        max_lifetime: spec
            .max_lifetime
            .map(|d| d.saturating_sub(r.started.elapsed())),
    };
    let stop = async {
        tokio::select! {
            _ = close.cancelled() => {}
            _ = ctx.hard_stop.cancelled() => {}
        }
    };
    let mut out = relay::relay(client, backend, &cfg.mode, limits, stop).await;
    out.up += r.counted[0];
    out.down += r.counted[1];
    member.metrics.bytes_up.increment(out.up);
    member.metrics.bytes_down.increment(out.down);
    if out.end == End::BackendError && out.down == 0 {
        r.pool.selector.record_connect_failure(r.idx);
    }
    if spec.access_log {
        tracing::info!(
            target: "switchyard::access",
            client = %r.src,
            listener = %spec.key.1,
            backend = %member.spec.addr,
            member = %member.spec.name,
            az = %member.spec.az,
            bytes_up = out.up,
            bytes_down = out.down,
            duration_ms = r.started.elapsed().as_millis() as u64,
            end = out.end.as_str(),
            "connection closed"
        );
    }
}

/// A connect error caused by this host running short (fds, memory, ephemeral ports), not by
/// the backend.
pub(crate) fn is_local_shortage(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}

/// A connect started by [`connect_now`].
enum Connect {
    /// Connected already.
    Done(TcpStream),
    /// Still in progress: [`finish_connect`] waits for it.
    Pending(TcpStream),
}

/// Starts a connect with `TCP_NODELAY`, without awaiting. A non-blocking connect usually
/// completes inside the syscall on a local network (the handshake runs in the same softirq),
/// so readiness is checked at once with `poll(0)` before anyone waits a reactor turn for it.
fn connect_now(addr: SocketAddr) -> std::io::Result<Connect> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    sock.set_tcp_nodelay(true)?;
    let pending = match sock.connect(&addr.into()) {
        Ok(()) => false,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
        Err(e) => return Err(e),
    };
    let s = TcpStream::from_std(std::net::TcpStream::from(sock))?;
    if pending {
        match poll_now(&s) {
            // connected: writable without an error condition
            Some(ev) if ev & (libc::POLLERR | libc::POLLHUP) == 0 => return Ok(Connect::Done(s)),
            Some(_) => {}
            None => return Ok(Connect::Pending(s)),
        }
    }
    if let Some(e) = s.take_error()? {
        return Err(e);
    }
    Ok(Connect::Done(s))
}

/// Waits (up to `timeout`) for a connect [`connect_now`] left pending.
async fn finish_connect(s: TcpStream, timeout: Duration) -> std::io::Result<TcpStream> {
    tokio::time::timeout(timeout, s.writable())
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout"))??;
    if let Some(e) = s.take_error()? {
        return Err(e);
    }
    Ok(s)
}

/// The socket's write-side events right now (`None` if not yet writable): one `poll` with a
/// zero timeout.
#[allow(unsafe_code)] // poll(2); SAFETY comment on the block
fn poll_now(s: &TcpStream) -> Option<libc::c_short> {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    (n == 1 && p.revents & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0)
        .then_some(p.revents)
}

/// Registers `client` with the reactor afresh: epoll reports bytes already queued on a new
/// registration, which an edge-triggered one whose readiness was cleared will not (two
/// `epoll_ctl`s; only after a ClientHello wait that timed out).
fn reregister(client: TcpStream) -> std::io::Result<TcpStream> {
    TcpStream::from_std(client.into_std()?)
}
