//! Userspace forwarding of one direction through a bounded buffer (the fallback when splice is
//! not wanted or not available, and the start of `auto` mode). Reads go to a per-thread scratch
//! buffer and are written on at once; only bytes a slow destination cannot take yet are kept
//! (bounded by the buffer size), so idle connections hold no buffer. A short read means the
//! socket is drained, so readiness is cleared without the extra `read` that would return
//! `EAGAIN` (what tokio's own `poll_read` does).
#![allow(unsafe_code)] // read(2)/send(2) on the raw fds; every block has its SAFETY comment

use super::pipes::PipePool;
use super::{splice, Activity, DirError};
use std::cell::RefCell;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::Interest;
use tokio::net::TcpStream;

fn sys_read(fd: i32, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes; `fd` is open.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

thread_local! {
    /// Per-thread scratch buffer: a read and the write that follows happen without an await in
    /// between, so idle connections hold no buffer and the common case allocates nothing.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What one read-and-write step did.
enum Step {
    Eof,
    /// Readiness was stale: nothing to read.
    Empty,
    /// `n` bytes read; `rest` holds what the destination could not take yet.
    Moved {
        n: usize,
        rest: Option<Vec<u8>>,
    },
    Failed(DirError),
}

fn sys_send(fd: i32, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes; `fd` is open.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Reads once into the scratch buffer and writes as much as the destination takes at once.
/// The read goes through tokio's readiness (an accepted stream starts out assumed readable, so
/// a fresh connection's first bytes are read at once, and a short read clears the readiness
/// without the extra `read` that would return `EAGAIN`). With `raw_dst` the write goes straight
/// to the fd: a fresh backend socket is writable before the reactor has said so (its connect
/// was checked with `poll`), and waiting for the reactor's first event would cost a turn.
fn step(src: &TcpStream, dst: &TcpStream, buf_size: usize, raw_dst: bool) -> Step {
    let (fd, dfd) = (src.as_raw_fd(), dst.as_raw_fd());
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        if scratch.len() < buf_size {
            scratch.resize(buf_size, 0);
        }
        let buf = &mut scratch[..buf_size];
        let mut got = 0usize;
        let r = src.try_io(Interest::READABLE, || {
            let n = sys_read(fd, buf)?;
            got = n;
            if n > 0 && n < buf_size {
                Err(io::ErrorKind::WouldBlock.into()) // drained: clear readiness
            } else {
                Ok(n)
            }
        });
        let n = match r {
            Ok(0) => return Step::Eof,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => got,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Empty,
            Err(e) => return Step::Failed(DirError::Src(e)),
        };
        let mut off = 0;
        while off < n {
            let w = if raw_dst {
                sys_send(dfd, &buf[off..n])
            } else {
                dst.try_write(&buf[off..n])
            };
            match w {
                Ok(k) => off += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Step::Failed(DirError::Dst(e)),
            }
        }
        Step::Moved {
            n,
            rest: (off < n).then(|| buf[off..n].to_vec()),
        }
    })
}

/// Moves bytes from `src` to `dst` until EOF (then half-closes `dst`) or an error. With
/// `upgrade`, the first read that fills the whole buffer (bulk transfer) hands this direction
/// over to splice(2). With `eager`, the first read is tried before waiting for readiness.
pub async fn forward(
    src: &TcpStream,
    dst: &TcpStream,
    buf_size: usize,
    upgrade: Option<&PipePool>,
    eager: bool,
    bytes: &AtomicU64,
    act: &Activity,
) -> Result<(), DirError> {
    let mut upgrade = upgrade;
    let mut eager = eager;
    loop {
        let st = if std::mem::take(&mut eager) {
            step(src, dst, buf_size, true)
        } else {
            src.readable().await.map_err(DirError::Src)?;
            step(src, dst, buf_size, false)
        };
        let n = match st {
            Step::Eof => {
                act.eof(dst);
                return Ok(());
            }
            Step::Empty => continue,
            Step::Failed(e) => return Err(e),
            Step::Moved { n, rest: None } => n,
            Step::Moved {
                n,
                rest: Some(rest),
            } => {
                // the destination is slow: keep the remainder (bounded by buf_size) until it drains
                let mut off = 0;
                while off < rest.len() {
                    dst.writable().await.map_err(DirError::Dst)?;
                    match dst.try_write(&rest[off..]) {
                        Ok(k) => off += k,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(DirError::Dst(e)),
                    }
                }
                n
            }
        };
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        act.touch();
        if n == buf_size {
            if let Some(pool) = upgrade {
                match splice::forward(src, dst, pool, bytes, act).await {
                    Err(DirError::Unsupported) => upgrade = None,
                    r => return r,
                }
            }
        }
    }
}
