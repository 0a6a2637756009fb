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
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Tells tokio that `s` has nothing to read yet (learnt from a `poll` the caller made), so the
/// relay's first read waits for the reactor instead of trying the socket in vain (tokio assumes
/// an accepted stream readable). No syscall; bytes that arrive later raise a reactor event.
pub fn not_readable_yet(s: &TcpStream) {
    let _ = s.try_io(tokio::io::Interest::READABLE, || {
        Err::<(), _>(io::ErrorKind::WouldBlock.into())
    });
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
    eager: bool,
    bytes: &AtomicU64,
    act: &Activity,
) -> Result<(), DirError> {
    match mode {
        Mode::Splice(pool) => match splice::forward(src, dst, pool, bytes, act).await {
            Err(DirError::Unsupported) => {
                copy::forward(src, dst, copy_size, None, false, bytes, act).await
            }
            r => r,
        },
        Mode::Copy(size) => copy::forward(src, dst, *size, None, eager, bytes, act).await,
        Mode::Auto(pool, size) => {
            copy::forward(src, dst, *size, Some(pool), eager, bytes, act).await
        }
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
    const FALLBACK_COPY: usize = 16 * 1024;
    // the client has usually sent its first bytes already: try them before waiting
    let fwd_up = forward(client, backend, mode, FALLBACK_COPY, true, up, act);
    let fwd_down = forward(backend, client, mode, FALLBACK_COPY, false, down, act);
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
    loop {
        let r = tokio::select! {
            r = &mut fwd_up, if !up_done => { up_done = true; r.map_err(|e| classify(e, true)) }
            r = &mut fwd_down, if !down_done => { down_done = true; r.map_err(|e| classify(e, false)) }
            _ = &mut idle => return End::Idle,
            _ = &mut lifetime => return End::Lifetime,
            _ = &mut stop => return End::Stopped,
        };
        if let Err(end) = r {
            reset_both();
            return end;
        }
        if up_done && down_done {
            return End::Closed;
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
