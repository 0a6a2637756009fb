//! Userspace forwarding of one direction through a bounded buffer (the fallback when splice is
//! not wanted or not available). The buffer is allocated on the first byte, not per connection.

use super::{Activity, DirError};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpStream;

/// Moves bytes from `src` to `dst` until EOF (then half-closes `dst`) or an error.
pub async fn forward(
    src: &TcpStream,
    dst: &TcpStream,
    buf_size: usize,
    bytes: &AtomicU64,
    act: &Activity,
) -> Result<(), DirError> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        src.readable().await.map_err(DirError::Src)?;
        if buf.is_empty() {
            buf = vec![0u8; buf_size];
        }
        let n = match src.try_read(&mut buf) {
            Ok(0) => {
                super::half_close(dst);
                return Ok(());
            }
            Ok(n) => n,
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
    }
}
