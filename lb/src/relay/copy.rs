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

pub(crate) fn sys_send(fd: i32, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes; `fd` is open.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Reads once into the scratch buffer and writes as much as the destination takes at once.
/// The read goes through tokio's readiness, and a short read clears it without the extra
/// `read` that would return `EAGAIN`.
fn step(src: &TcpStream, dst: &TcpStream, buf_size: usize) -> Step {
    let fd = src.as_raw_fd();
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
            match dst.try_write(&buf[off..n]) {
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
/// over to splice(2).
pub async fn forward(
    src: &TcpStream,
    dst: &TcpStream,
    buf_size: usize,
    upgrade: Option<&PipePool>,
    bytes: &AtomicU64,
    act: &Activity,
) -> Result<(), DirError> {
    let mut upgrade = upgrade;
    loop {
        super::read_ready(src).await.map_err(DirError::Src)?;
        let st = step(src, dst, buf_size);
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
                    super::write_ready(dst).await.map_err(DirError::Dst)?;
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

/// A connection's first bytes, read before its backend is chosen: a client that reset while it
/// waited in the accept queue is told apart from one that sent its request, with the read the
/// relay would have made anyway (no extra syscall). The bytes stay in the thread's scratch
/// buffer as long as nothing awaits; whatever must wait (a connect that does not complete at
/// once) first moves them to the heap with [`First::spill`].
#[derive(Debug)]
pub enum First {
    /// Nothing to read yet (tokio's readiness is cleared: the relay waits for the reactor).
    Quiet,
    /// End of stream (a half-close before any byte): the relay reads it again and forwards it.
    Eof,
    /// The read failed (reset): nobody to relay for.
    Gone(io::Error),
    /// `n` bytes at the start of this thread's scratch buffer.
    InScratch(usize),
    /// Bytes moved to the heap; the first `.1` are sent.
    Held(Vec<u8>, usize),
}

impl First {
    /// One read of up to `size` bytes through tokio's readiness.
    pub fn read(src: &TcpStream, size: usize) -> First {
        let fd = src.as_raw_fd();
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            if scratch.len() < size {
                scratch.resize(size, 0);
            }
            let buf = &mut scratch[..size];
            let mut got = 0usize;
            let r = src.try_io(Interest::READABLE, || {
                let n = sys_read(fd, buf)?;
                got = n;
                if n > 0 && n < size {
                    Err(io::ErrorKind::WouldBlock.into()) // drained: clear readiness
                } else {
                    Ok(n)
                }
            });
            match r {
                Ok(0) => First::Eof,
                Ok(n) => First::InScratch(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => First::InScratch(got),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => First::Quiet,
                Err(e) => First::Gone(e),
            }
        })
    }

    /// Bytes read (sent or not).
    pub fn len(&self) -> u64 {
        match self {
            First::InScratch(n) => *n as u64,
            First::Held(v, _) => v.len() as u64,
            _ => 0,
        }
    }

    /// True when no byte was read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves bytes still in the scratch buffer to the heap (call before any await).
    pub fn spill(&mut self) {
        if let First::InScratch(n) = *self {
            let v = SCRATCH.with(|cell| cell.borrow()[..n].to_vec());
            *self = First::Held(v, 0);
        }
    }

    /// Sends the bytes to `dst`: straight on the fd (a fresh backend socket is writable before
    /// the reactor has said so), waiting only for what the socket cannot take at once. Take
    /// [`First::len`] before: afterwards nothing is held.
    pub async fn send(&mut self, dst: &TcpStream) -> io::Result<()> {
        if let First::InScratch(n) = *self {
            let sent = SCRATCH.with(|cell| {
                let scratch = cell.borrow();
                let mut off = 0;
                while off < n {
                    match sys_send(dst.as_raw_fd(), &scratch[off..n]) {
                        Ok(k) => off += k,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                Ok(off)
            })?;
            if sent == n {
                *self = First::Quiet; // all sent
                return Ok(());
            }
            self.spill();
            if let First::Held(_, off) = self {
                *off = sent;
            }
        }
        if let First::Held(v, off) = self {
            while *off < v.len() {
                // what the socket could not take at once: the reactor says when it can
                super::write_ready(dst).await?;
                match dst.try_write(&v[*off..]) {
                    Ok(k) => *off += k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}
