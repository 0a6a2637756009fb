//! Userspace forwarding of one direction through a bounded buffer (the fallback when splice is
//! not wanted or not available, and the start of `auto` mode). The buffer is allocated on the
//! first byte, not per connection. A short read means the socket is drained, so readiness is
//! cleared without the extra `read` that would return `EAGAIN` (what tokio's own `poll_read`
//! does).

use super::pipes::PipePool;
use super::{splice, Activity, DirError};
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
    let fd = src.as_raw_fd();
    let mut buf: Vec<u8> = Vec::new();
    let mut upgrade = upgrade;
    loop {
        src.readable().await.map_err(DirError::Src)?;
        if buf.is_empty() {
            buf = vec![0u8; buf_size];
        }
        let mut got = 0usize;
        let r = src.try_io(Interest::READABLE, || {
            let n = sys_read(fd, &mut buf)?;
            got = n;
            if n > 0 && n < buf.len() {
                Err(io::ErrorKind::WouldBlock.into()) // drained: clear readiness
            } else {
                Ok(n)
            }
        });
        let n = match r {
            Ok(0) => {
                super::half_close(dst);
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => got,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(DirError::Src(e)),
        };
        let mut off = 0;
        while off < n {
            match dst.try_write(&buf[off..n]) {
                Ok(k) => off += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    dst.writable().await.map_err(DirError::Dst)?
                }
                Err(e) => return Err(DirError::Dst(e)),
            }
        }
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        act.touch();
        if n == buf.len() {
            if let Some(pool) = upgrade {
                match splice::forward(src, dst, pool, bytes, act).await {
                    Err(DirError::Unsupported) => upgrade = None,
                    r => return r,
                }
            }
        }
    }
}
