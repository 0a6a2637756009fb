//! The io_uring engine (`io_engine = "io_uring"`): one thread and one ring per worker socket of
//! a listener, a connection living its whole life on that thread, driven by completions
//! instead of readiness.
//!
//! Why hand-written: the epoll engine spends ~22 syscalls per proxied connection and ~6 per
//! keep-alive request (tokio's reactor: `epoll_wait`, `read`, `send`, `epoll_ctl`, ...); a ring
//! takes the same work in batches. Measured before building it (a featureless prototype in the
//! shared harness, `docs/performance.md`): 8.1 syscalls per connection (3.7 with 8 clients) and
//! 2.1 per request, CPU per connection 0.81x HAProxy's. No crate gives that: tokio-uring and
//! monoio put a future per operation on top of the ring and own the whole runtime; this engine
//! shares the balancer's pools, health, limits and metrics with the epoll engine, so it is a
//! state machine per connection (`worker`) and nothing else.
//!
//! What it carries itself: multishot accept, the connection caps (refused with a RST), the
//! per-source rate limit, PROXY header in (v1/v2, with its timeout), the first client bytes read
//! before a backend is chosen (a client that reset while queued costs the backends nothing),
//! AZ-aware choice with connect retry and passive health, connect timeout, PROXY header out,
//! copy relay through a provided-buffer ring (`bufring`: idle connections hold no buffer), half
//! close both ways, reset propagation, idle timeout, maximum lifetime, drain deadlines,
//! shutdown, byte counts, per-member metrics and the access log. What it hands to the epoll
//! engine of the same worker index (the connection then lives there): connections of listeners
//! that route by SNI, and those a pool spills to another region. A kernel without what it
//! needs (Linux 6.0: multishot accept, provided-buffer rings, cancel by fd) runs the listener on
//! epoll, with one log line.

mod bufring;
mod worker;

use crate::conn::ConnCtx;
use crate::listener::ListenerRt;
use io_uring::{opcode, IoUring, Probe};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;

/// Why io_uring cannot be used here (`None`: it can). Probed once per process.
pub fn unavailable() -> Option<&'static str> {
    static PROBE: OnceLock<Option<String>> = OnceLock::new();
    PROBE.get_or_init(probe).as_deref()
}

fn probe() -> Option<String> {
    let ring = match IoUring::new(8) {
        Ok(r) => r,
        Err(e) => return Some(format!("io_uring_setup failed: {e}")),
    };
    let mut p = Probe::new();
    if let Err(e) = ring.submitter().register_probe(&mut p) {
        return Some(format!("io_uring probe failed: {e}"));
    }
    let needed = [
        ("accept", opcode::Accept::CODE),
        ("recv", opcode::Recv::CODE),
        ("send", opcode::Send::CODE),
        ("connect", opcode::Connect::CODE),
        ("async_cancel", opcode::AsyncCancel::CODE),
        ("close", opcode::Close::CODE),
        ("read", opcode::Read::CODE),
    ];
    for (name, code) in needed {
        if !p.is_supported(code) {
            return Some(format!("the kernel's io_uring lacks {name}"));
        }
    }
    // provided-buffer rings (5.19) and multishot accept (5.19) came together with cancel by fd
    // (5.19); a tiny ring tells
    match bufring::BufRing::new(&ring, 2, 2, 64, 0) {
        Ok(b) => {
            let _ = ring.submitter().unregister_buf_ring(0);
            drop(b);
        }
        Err(e) => return Some(format!("provided-buffer rings unavailable: {e}")),
    }
    None
}

/// Starts the ring thread for socket `index` of listener `rt` (with `handle` the epoll engine of
/// the same worker index, which takes the connections this engine hands over).
pub(crate) fn spawn(
    rt: Arc<ListenerRt>,
    ctx: Arc<ConnCtx>,
    sock: std::net::TcpListener,
    handle: tokio::runtime::Handle,
    index: usize,
) -> std::io::Result<()> {
    // SAFETY: eventfd(2) returns a new fd or -1.
    #[allow(unsafe_code)]
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if efd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd that nothing else owns.
    #[allow(unsafe_code)]
    let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(efd) });
    let exited = CancellationToken::new();
    // The stop signals are tokens: a small task on the epoll engine turns them into a write on
    // the ring's eventfd (drain deadlines and timeouts are seen by the ring's own tick).
    {
        let (stop, hard, exited, wake) = (
            rt.stop_token(),
            ctx.hard_stop.clone(),
            exited.clone(),
            wake.clone(),
        );
        handle.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = hard.cancelled() => {}
                _ = exited.cancelled() => return,
            }
            poke(&wake);
            tokio::select! {
                _ = hard.cancelled() => poke(&wake),
                _ = exited.cancelled() => {}
            }
        });
    }
    let token = ctx.tracker.token();
    // the thread logs under the subscriber of whoever started the listener
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    std::thread::Builder::new()
        .name(format!("lb-uring-{index}"))
        .spawn(move || {
            let _log = tracing::dispatcher::set_default(&dispatch);
            let _token = token; // the balancer's `wait` waits for this thread's connections
            let _exited = exited.drop_guard();
            let name = rt.name();
            if let Err(e) = worker::run(rt, ctx, sock, wake, handle) {
                tracing::error!(listener = %name, error = %e, "io_uring worker failed");
            }
        })?;
    Ok(())
}

/// Wakes the ring (a write on its eventfd).
fn poke(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a local to an open eventfd.
    #[allow(unsafe_code)]
    unsafe {
        libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8)
    };
}
