//! The relay: moves bytes both ways between a client and a backend until both sides are done,
//! with TCP semantics kept: a FIN is forwarded as a half-close (`shutdown(WR)`), a reset on one
//! side becomes a reset on the other (`SO_LINGER 0`), and idle timeout, maximum lifetime, drain
//! deadline and shutdown (the `stop` future) end the connection. Ways to move bytes:
//! [`splice`] (zero-copy, Linux), [`copy`] (bounded userspace buffer), and `auto` (copy for
//! small messages, splice once a direction carries bulk data, like HAProxy's `splice-auto`).

pub mod copy;
pub mod pipes;
pub mod splice;

use pipes::PipePool;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How bytes are moved.
#[derive(Debug, Clone)]
pub enum Mode {
    /// splice(2) through pipes borrowed from the pool.
    Splice(std::sync::Arc<PipePool>),
    /// Userspace copy through a buffer of this many bytes per direction.
    Copy(usize),
    /// Copy while messages are small; a direction switches to splice once a read fills the
    /// whole buffer (bulk), like HAProxy's `splice-auto`.
    Auto(std::sync::Arc<PipePool>, usize),
}

/// Copy buffer of splice mode's fallback (and of its first read).
const FALLBACK_COPY: usize = 16 * 1024;

impl Mode {
    /// How many bytes a connection's first read (before its backend is chosen) takes.
    pub fn first_read_size(&self) -> usize {
        match self {
            Mode::Copy(n) | Mode::Auto(_, n) => *n,
            Mode::Splice(_) => FALLBACK_COPY,
        }
    }
}

/// Time limits of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Close when no byte moved either way for this long.
    pub idle: Duration,
    /// Close after this long regardless.
    pub max_lifetime: Option<Duration>,
}

/// How a relayed connection ended (for the access log and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides closed normally.
    Closed,
    /// The client reset (or failed); the backend was reset.
    ClientError,
    /// The backend reset (or failed); the client was reset.
    BackendError,
    /// A local failure (e.g. no pipe could be created).
    LocalError,
    /// Nothing moved in either direction for the idle timeout.
    Idle,
    /// The connection reached its maximum lifetime.
    Lifetime,
    /// Closed by a drain deadline or shutdown.
    Stopped,
}

impl End {
    /// The label used in metrics and the access log.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::ClientError => "client_error",
            End::BackendError => "backend_error",
            End::LocalError => "local_error",
            End::Idle => "idle_timeout",
            End::Lifetime => "max_lifetime",
            End::Stopped => "stopped",
        }
    }
}

/// Result of [`relay`].
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Client → backend bytes.
    pub up: u64,
    /// Backend → client bytes.
    pub down: u64,
    /// Why it ended.
    pub end: End,
}

/// Which side of a direction failed.
#[derive(Debug)]
pub enum DirError {
    /// Reading from the source failed.
    Src(io::Error),
    /// Writing to the destination failed.
    Dst(io::Error),
    /// A local resource (pipe) failed.
    Local(io::Error),
    /// splice is not supported for this pair of fds.
    Unsupported,
}

/// Last time a byte moved, as milliseconds since the relay started.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    /// Directions that reached EOF.
    eofs: std::sync::atomic::AtomicU8,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            eofs: std::sync::atomic::AtomicU8::new(0),
        }
    }
    #[inline]
    /// Records that a byte moved now.
    pub fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    /// A direction read EOF: forward it as a half-close of `dst`, unless the other direction
    /// already ended (then both sockets are closed right away, and `close` sends the FIN: one
    /// `shutdown` syscall saved per connection).
    pub fn eof(&self, dst: &TcpStream) {
        if self.eofs.fetch_add(1, Ordering::AcqRel) == 0 {
            half_close(dst);
        }
    }

    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

fn half_close(s: &TcpStream) {
    // ENOTCONN when the peer is already gone: the other direction will report it.
    let _ = socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write);
}

/// Sends what `s` takes at once, straight on the fd (no reactor turn: a fresh backend socket
/// is writable before the reactor has said so); `Ok(0)` when it takes nothing now.
pub fn send_now(s: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    match copy::sys_send(s.as_raw_fd(), buf) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        r => r,
    }
}

/// Waits until `s` is readable. Like `TcpStream::readable` but through the stream's single
/// reader slot (`poll_read_ready`) instead of tokio's intrusive waiter list: a relay direction
/// is the only reader of its source, and the slot costs less per wake-up (callgrind: the
/// waiter list was ~1,200 instructions per keep-alive request).
pub(crate) async fn read_ready(s: &TcpStream) -> io::Result<()> {
    std::future::poll_fn(|cx| s.poll_read_ready(cx)).await
}

/// Waits until `s` is writable (the single writer slot, see [`read_ready`]).
pub(crate) async fn write_ready(s: &TcpStream) -> io::Result<()> {
    std::future::poll_fn(|cx| s.poll_write_ready(cx)).await
}

/// Makes the next close of `s` send a RST.
pub fn set_reset_on_close(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

async fn forward(
    src: &TcpStream,
    dst: &TcpStream,
    mode: &Mode,
    copy_size: usize,
    bytes: &AtomicU64,
    act: &Activity,
) -> Result<(), DirError> {
    match mode {
        Mode::Splice(pool) => match splice::forward(src, dst, pool, bytes, act).await {
            Err(DirError::Unsupported) => {
                copy::forward(src, dst, copy_size, None, bytes, act).await
            }
            r => r,
        },
        Mode::Copy(size) => copy::forward(src, dst, *size, None, bytes, act).await,
        Mode::Auto(pool, size) => copy::forward(src, dst, *size, Some(pool), bytes, act).await,
    }
}

/// Relays until both directions finish or a limit/`stop` ends the connection. On an error the
/// other side is reset. The caller drops both streams afterwards.
pub async fn relay(
    client: &TcpStream,
    backend: &TcpStream,
    mode: &Mode,
    limits: Limits,
    stop: impl std::future::Future<Output = ()>,
) -> Outcome {
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let act = Activity::new();
    let end = run(client, backend, mode, limits, stop, &up, &down, &act).await;
    Outcome {
        up: up.load(Ordering::Relaxed),
        down: down.load(Ordering::Relaxed),
        end,
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    client: &TcpStream,
    backend: &TcpStream,
    mode: &Mode,
    limits: Limits,
    stop: impl std::future::Future<Output = ()>,
    up: &AtomicU64,
    down: &AtomicU64,
    act: &Activity,
) -> End {
    // (the client's first bytes went before the relay: `copy::First`)
    let fwd_up = forward(client, backend, mode, FALLBACK_COPY, up, act);
    let fwd_down = forward(backend, client, mode, FALLBACK_COPY, down, act);
    tokio::pin!(fwd_up, fwd_down);
    let lifetime = async {
        match limits.max_lifetime {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(lifetime);
    let idle = act.idle_for(limits.idle);
    tokio::pin!(idle);
    tokio::pin!(stop);
    let (mut up_done, mut down_done) = (false, false);
    let reset_both = || {
        set_reset_on_close(client);
        set_reset_on_close(backend);
    };
    // The idle timer, the lifetime and the stop signal fire rarely, but `select!` would poll
    // them (two cancellation tokens, each behind a lock, and a timer) on every wake-up of the
    // connection, i.e. twice per request on keep-alive. They get their own waker instead,
    // which marks them due and wakes the task: polled only when one of them fired.
    let rare = Arc::new(RareWake {
        due: AtomicBool::new(true),
        task: Mutex::new(None),
    });
    let rare_waker = Waker::from(rare.clone());
    std::future::poll_fn(|cx| {
        rare.track(cx.waker());
        if rare.due.swap(false, Ordering::AcqRel) {
            let mut rcx = Context::from_waker(&rare_waker);
            if idle.as_mut().poll(&mut rcx).is_ready() {
                return Poll::Ready(End::Idle);
            }
            if lifetime.as_mut().poll(&mut rcx).is_ready() {
                return Poll::Ready(End::Lifetime);
            }
            if stop.as_mut().poll(&mut rcx).is_ready() {
                return Poll::Ready(End::Stopped);
            }
        }
        if !up_done {
            if let Poll::Ready(r) = fwd_up.as_mut().poll(cx) {
                up_done = true;
                if let Err(e) = r {
                    reset_both();
                    return Poll::Ready(classify(e, true));
                }
            }
        }
        if !down_done {
            if let Poll::Ready(r) = fwd_down.as_mut().poll(cx) {
                down_done = true;
                if let Err(e) = r {
                    reset_both();
                    return Poll::Ready(classify(e, false));
                }
            }
        }
        if up_done && down_done {
            Poll::Ready(End::Closed)
        } else {
            Poll::Pending
        }
    })
    .await
}

/// The waker of a relay's rarely-firing futures: marks them due, then wakes the relay's task.
struct RareWake {
    due: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl RareWake {
    /// Keeps the task's current waker (a pointer comparison when it did not change).
    fn track(&self, w: &Waker) {
        let mut t = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if !t.as_ref().is_some_and(|old| old.will_wake(w)) {
            *t = Some(w.clone());
        }
    }
}

impl Wake for RareWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.due.store(true, Ordering::Release);
        let t = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = t.as_ref() {
            w.wake_by_ref();
        }
    }
}

/// Maps a direction's error to whose fault it was.
fn classify(e: DirError, client_to_backend: bool) -> End {
    match (e, client_to_backend) {
        (DirError::Src(_), true) | (DirError::Dst(_), false) => End::ClientError,
        (DirError::Src(_), false) | (DirError::Dst(_), true) => End::BackendError,
        (DirError::Local(_) | DirError::Unsupported, _) => End::LocalError,
    }
}
