//! UDP workers: one `SO_REUSEPORT` socket and one OS thread per worker, receiving and sending in
//! batches (`recvmmsg`/`sendmmsg`), answering from the current snapshot with no locks.
#![allow(unsafe_code)] // recvmmsg/sendmmsg/shutdown via libc: no safe wrapper batches datagrams

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use crate::answer::{handle, Ctx, Handled};
use crate::rrl::{Limiter, Verdict};

/// Datagrams handled per system call.
const BATCH: usize = 32;
/// Largest query accepted over UDP (longer datagrams are dropped).
const MAX_QUERY: usize = 4096;

/// Wakes a worker blocked in `recvmmsg` on `socket` for good: after `shutdown(SHUT_RD)` every
/// receive returns at once, so the worker sees `stop` (set before this call) and exits.
/// Workers block without a receive timeout, which spares a timer per sleep on the hot path.
pub(crate) fn wake(socket: &UdpSocket) {
    // SAFETY: the fd is owned by `socket`, which is alive for the call. On an unconnected UDP
    // socket this returns ENOTCONN but still marks the receive side shut and wakes the readers.
    unsafe {
        libc::shutdown(socket.as_raw_fd(), libc::SHUT_RD);
    }
}

/// Runs one worker until `stop` is set (and the socket woken by [`wake`]).
pub(crate) fn run(socket: Arc<UdpSocket>, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let mut batch = Batch::new();
    let mut rrl = Limiter::default();
    // this worker's own signature cache: never contended
    let sigs = std::sync::Mutex::new(crate::dnssec::cache::SigCache::default());
    let epoch = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let n = match batch.recv(&socket) {
            // after `wake` a receive returns at once (with an empty pseudo-datagram): leave
            Ok(_) if stop.load(Ordering::Relaxed) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::warn!(error = %e, "dns udp receive failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let state = shared.state.load();
        // one clock read per batch, only when rate limiting is on
        let now_ms = match state.snapshot.rrl {
            Some(_) => epoch.elapsed().as_millis() as u64,
            None => 0,
        };
        let mut replies = 0;
        for i in 0..n {
            let Some(client) = batch.peer(i) else {
                continue;
            };
            if batch.msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                shared.metrics.malformed.increment(1);
                continue;
            }
            let len = batch.msgs[i].msg_len as usize;
            let ctx = Ctx {
                snap: &state.snapshot,
                health: &*state.health,
                metrics: &shared.metrics,
                client: client.ip(),
                tcp: false,
                sigs: &sigs,
            };
            let mut out = std::mem::take(&mut batch.out[replies]);
            // A bug must cost one datagram, never the worker: answer nothing for it.
            let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                handle(&ctx, &batch.bufs[i][..len], &mut out)
            }))
            .unwrap_or(Handled::Drop);
            if let (Handled::Reply { .. }, Some(spec)) = (&handled, &state.snapshot.rrl) {
                match rrl.check(spec, client.ip(), now_ms) {
                    Verdict::Send => {}
                    Verdict::Slip => {
                        shared.metrics.rrl_slipped.increment(1);
                        crate::rrl::truncate(&mut out);
                    }
                    Verdict::Drop => {
                        shared.metrics.rrl_dropped.increment(1);
                        out.clear();
                    }
                }
            }
            let send = matches!(handled, Handled::Reply { .. }) && !out.is_empty();
            batch.out[replies] = out;
            if send {
                batch.reply_to[replies] = i;
                replies += 1;
            }
        }
        drop(state);
        if replies > 0 {
            batch.send(&socket, replies);
        }
    }
}

/// Buffers and headers for one `recvmmsg`/`sendmmsg` batch, allocated once per worker.
struct Batch {
    bufs: Vec<Box<[u8; MAX_QUERY]>>,
    addrs: Box<[libc::sockaddr_storage; BATCH]>,
    iov: Box<[libc::iovec; BATCH]>,
    msgs: Box<[libc::mmsghdr; BATCH]>,
    out: Vec<Vec<u8>>,
    reply_to: [usize; BATCH],
    out_iov: Box<[libc::iovec; BATCH]>,
    out_msgs: Box<[libc::mmsghdr; BATCH]>,
}

impl Batch {
    fn new() -> Self {
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs of integers and raw
        // pointers, for which all-zero (null pointers, zero lengths) is a valid value.
        unsafe {
            Batch {
                bufs: (0..BATCH).map(|_| Box::new([0u8; MAX_QUERY])).collect(),
                addrs: Box::new(zeroed()),
                iov: Box::new(zeroed()),
                msgs: Box::new(zeroed()),
                out: (0..BATCH).map(|_| Vec::with_capacity(1232)).collect(),
                reply_to: [0; BATCH],
                out_iov: Box::new(zeroed()),
                out_msgs: Box::new(zeroed()),
            }
        }
    }

    fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        for i in 0..BATCH {
            self.iov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: MAX_QUERY,
            };
            let h = &mut self.msgs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
        // SAFETY: the loop above pointed each of the BATCH headers in `msgs` at its own iovec
        // (a MAX_QUERY-byte buffer in `bufs`) and sockaddr_storage in `addrs`, with matching
        // lengths; all are heap allocations owned by `self`, borrowed mutably for the call.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn peer(&self, i: usize) -> Option<SocketAddr> {
        let a = &self.addrs[i];
        match a.ss_family as libc::c_int {
            libc::AF_INET => {
                // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr, and
                // ss_family AF_INET means the kernel wrote a sockaddr_in there.
                let s =
                    unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                let ip = IpAddr::from(u32::from_be(s.sin_addr.s_addr).to_be_bytes());
                Some(SocketAddr::new(ip, u16::from_be(s.sin_port)))
            }
            libc::AF_INET6 => {
                // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr, and
                // ss_family AF_INET6 means the kernel wrote a sockaddr_in6 there.
                let s =
                    unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                Some(SocketAddr::new(
                    IpAddr::from(s.sin6_addr.s6_addr),
                    u16::from_be(s.sin6_port),
                ))
            }
            _ => None,
        }
    }

    fn send(&mut self, socket: &UdpSocket, n: usize) {
        for j in 0..n {
            let i = self.reply_to[j];
            self.out_iov[j] = libc::iovec {
                iov_base: self.out[j].as_mut_ptr().cast(),
                iov_len: self.out[j].len(),
            };
            let h = &mut self.out_msgs[j].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = self.msgs[i].msg_hdr.msg_namelen;
            h.msg_iov = &mut self.out_iov[j];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        let mut sent = 0;
        while sent < n {
            // SAFETY: sent < n <= BATCH, so the pointer and count stay inside `out_msgs`; the
            // loop above pointed headers 0..n at their iovec (a reply in `out`, with its length)
            // and the client's address in `addrs`, all owned by `self` and unchanged since.
            let r = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    self.out_msgs.as_mut_ptr().add(sent),
                    (n - sent) as libc::c_uint,
                    0,
                )
            };
            if r <= 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // a send error affects one datagram: skip it and go on
                sent += 1;
                continue;
            }
            sent += r as usize;
        }
    }
}
