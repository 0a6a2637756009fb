//! One client connection: source rate limit, optional PROXY header in, backend choice with
//! connect retry (another AZ first), PROXY header out, relay, then metrics and access log.

use crate::listener::{refuse, ListenerRt};
use crate::relay::{self, End, Limits};
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
fn wire_version(v: ProxyVersion) -> proxy::Version {
    match v {
        ProxyVersion::V1 => proxy::Version::V1,
        ProxyVersion::V2 => proxy::Version::V2,
    }
}

/// Most backends tried for one client connection.
pub const MAX_ATTEMPTS: usize = 8;

/// Serves one accepted client connection to its end: PROXY header in, source rate limit, backend choice with retry, PROXY header out, relay, metrics and access log.
pub async fn handle(client: TcpStream, peer: SocketAddr, l: &Arc<ListenerRt>, ctx: &ConnCtx) {
    let started = Instant::now();
    let cfg = l.settings.load_full();
    let spec = &cfg.spec;
    if let Some(lim) = &cfg.limiter {
        if lim.check(&peer.ip(), std::time::Instant::now()).is_err() {
            l.metrics.refused_rate.increment(1);
            return refuse(client);
        }
    }
    // the local address is needed only for PROXY headers (saves a getsockname otherwise)
    let local = || client.local_addr().unwrap_or(peer);
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

    // A client that reset (or closed both ways) while it waited in the accept queue gets no
    // backend connection: a burst of clients that connect and give up costs no backend
    // anything. One poll(0); it also tells whether the first bytes are there, so the relay's
    // first read is not tried in vain when they are not.
    match client_state(&client) {
        ClientState::Gone => {
            l.metrics.refused_client_gone.increment(1);
            return;
        }
        ClientState::Quiet => relay::not_readable_yet(&client),
        ClientState::Readable => {}
    }

    let pool = cfg.pool.snap.load_full();
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
        match connect(member.spec.addr, spec.connect_timeout).await {
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
        l.metrics.refused_no_backend.increment(1);
        return refuse(client);
    };
    let member = pool.members[idx].clone();
    let _active = member.open();
    member.metrics.conns.increment(1);

    if let Some(v) = pool.spec.proxy_protocol {
        let mut hdr = [0u8; proxy::MAX_ENCODED];
        let n = proxy::encode(wire_version(v), src, dst.unwrap_or_else(local), &mut hdr);
        if backend.write_all(&hdr[..n]).await.is_err() {
            relay::set_reset_on_close(&client);
            return;
        }
    }

    let close = member.close_token();
    let limits = Limits {
        idle: spec.idle_timeout,
        max_lifetime: spec.max_lifetime,
    };
    let stop = async {
        tokio::select! {
            _ = close.cancelled() => {}
            _ = ctx.hard_stop.cancelled() => {}
        }
    };
    let out = relay::relay(&client, &backend, &cfg.mode, limits, stop).await;
    member.metrics.bytes_up.increment(out.up);
    member.metrics.bytes_down.increment(out.down);
    if out.end == End::BackendError && out.down == 0 {
        sel.record_connect_failure(idx);
    }
    if spec.access_log {
        tracing::info!(
            target: "switchyard::access",
            client = %src,
            listener = %spec.key.1,
            backend = %member.spec.addr,
            member = %member.spec.name,
            az = %member.spec.az,
            bytes_up = out.up,
            bytes_down = out.down,
            duration_ms = started.elapsed().as_millis() as u64,
            end = out.end.as_str(),
            "connection closed"
        );
    }
}

/// A connect error caused by this host running short (fds, memory, ephemeral ports), not by
/// the backend.
fn is_local_shortage(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}

/// Connects with `TCP_NODELAY`. A non-blocking connect usually completes inside the syscall on
/// a local network (the handshake runs in the same softirq), so readiness is checked at once
/// with `poll(0)` before waiting a reactor turn for it.
async fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
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
            Some(ev) if ev & (libc::POLLERR | libc::POLLHUP) == 0 => return Ok(s),
            Some(_) => {}
            None => {
                tokio::time::timeout(timeout, s.writable())
                    .await
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout")
                    })??;
            }
        }
    }
    if let Some(e) = s.take_error()? {
        return Err(e);
    }
    Ok(s)
}

/// What a zero-timeout `poll` says about a fresh client connection.
enum ClientState {
    /// Reset, or closed both ways: nobody to relay for.
    Gone,
    /// Bytes (or a FIN after bytes, or a half-close) are waiting.
    Readable,
    /// Nothing yet.
    Quiet,
}

#[allow(unsafe_code)] // poll(2); SAFETY comment on the block
fn client_state(s: &TcpStream) -> ClientState {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    if n != 1 {
        // nothing pending (or poll failed: let the relay find out)
        return if n == 0 {
            ClientState::Quiet
        } else {
            ClientState::Readable
        };
    }
    // POLLHUP: both directions shut (a reset, or the client's FIN after ours); POLLERR: a
    // pending error (ECONNRESET). A half-close alone (POLLRDHUP) is a client that sent its
    // request and shut its write side: it still gets its answer.
    if p.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
        ClientState::Gone
    } else if p.revents & (libc::POLLIN | libc::POLLRDHUP) != 0 {
        ClientState::Readable
    } else {
        ClientState::Quiet
    }
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
