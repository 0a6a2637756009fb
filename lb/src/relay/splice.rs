//! Zero-copy forwarding of one direction with splice(2): socket → pipe → socket.
#![allow(unsafe_code)] // splice(2); every block has its SAFETY comment

use super::pipes::PipePool;
use super::{Activity, DirError};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::Interest;
use tokio::net::TcpStream;

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: both fds are open for the duration of the call; null offsets mean "current".
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Moves bytes from `src` to `dst` until EOF (then half-closes `dst`) or an error.
/// `Err(DirError::Unsupported)` means splice cannot be used (on these fds, or no pipe could be
/// created) and nothing is in flight: the caller falls back to copy.
pub async fn forward(
    src: &TcpStream,
    dst: &TcpStream,
    pool: &PipePool,
    bytes: &AtomicU64,
    act: &Activity,
) -> Result<(), DirError> {
    let (sfd, dfd) = (src.as_raw_fd(), dst.as_raw_fd());
    let size = pool.pipe_size();
    let mut moved_any = false;
    loop {
        super::read_ready(src).await.map_err(DirError::Src)?;
        // No pipe (e.g. EMFILE): nothing is in flight here, so copying from now on is safe.
        let Ok(pipe) = pool.get() else {
            return Err(DirError::Unsupported);
        };
        loop {
            let n = match src.try_io(Interest::READABLE, || splice(sfd, pipe.write_fd(), size)) {
                Ok(0) => {
                    pool.put(pipe);
                    act.eof(dst);
                    return Ok(());
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e)
                    if !moved_any
                        && matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) =>
                {
                    return Err(DirError::Unsupported)
                }
                Err(e) => return Err(DirError::Src(e)),
            };
            moved_any = true;
            let mut left = n;
            while left > 0 {
                match dst.try_io(Interest::WRITABLE, || splice(pipe.read_fd(), dfd, left)) {
                    Ok(k) => left -= k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        super::write_ready(dst).await.map_err(DirError::Dst)?
                    }
                    // the pipe may still hold bytes: dropped (closed), never reused
                    Err(e) => return Err(DirError::Dst(e)),
                }
            }
            bytes.fetch_add(n as u64, Ordering::Relaxed);
            act.touch();
        }
        pool.put(pipe);
    }
}
