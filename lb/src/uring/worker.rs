//! One ring thread: the accept stream of one listener socket and a state machine per connection.
//!
//! A connection is a slot: `Proxy` (reading a PROXY header) → `First` (one non-blocking read of
//! the client's first bytes) → `Connect` (one member after another, with the connect timeout) →
//! `Relay` → `Closing` (pending operations cancelled) → free. Direction `d` (0: client to
//! backend, 1: backend to client) receives from `fd[d]` into a ring buffer and sends to
//! `fd[1 - d]` with `MSG_DONTWAIT`; what the destination does not take at once is copied to the
//! slot's heap buffer and the ring buffer goes back, so a slow peer never holds ring memory (no
//! connection can starve the others). A slot is reused only when none of its operations is in
//! flight, and every completion carries the slot's generation besides.
#![allow(unsafe_code)] // ring submissions reference slot memory; SAFETY comments on each block

use super::bufring::BufRing;
use crate::conn::{self, ConnCtx, MAX_ATTEMPTS};
use crate::listener::{take_permits, ListenerRt, Permits, Settings, RESOURCE_WARN_EVERY};
use crate::pool::{ActiveGuard, MemberRt, PoolSnap};
use crate::relay::End;
use io_uring::types::{CancelBuilder, Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_balance::{Choice, ConnGuard, Policy};
use switchyard_config::lb::Forwarding;
use switchyard_net::proxy;
use tokio_util::sync::CancellationToken;

const OP_ACCEPT: u8 = 1;
const OP_WAKE: u8 = 2;
const OP_RECV: u8 = 3;
const OP_SEND: u8 = 4;
const OP_CONNECT: u8 = 5;
const OP_CANCEL: u8 = 6;
const OP_CLOSE: u8 = 7;
/// The slot number of completions that belong to no connection.
const NO_SLOT: u32 = u32::MAX;
const CLIENT: usize = 0;
const BACKEND: usize = 1;
/// How often timeouts, drain deadlines and stop signals are looked at while connections live.
const TICK: Duration = Duration::from_millis(50);
/// The same without connections.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Ring buffers per worker at most (a power of two): the bytes in flight at once, not per
/// connection. The first `RING_BUFFERS_FIRST` are given to the kernel at start, the rest one by
/// one when a receive finds none free (the ring is FIFO: every buffer given out gets touched,
/// so buffers a worker never needs cost no memory).
const RING_BUFFERS: u16 = 64;
const RING_BUFFERS_FIRST: u16 = 8;

#[inline]
fn ud(slot: u32, gen: u16, dir: usize, op: u8) -> u64 {
    ((slot as u64) << 32) | ((gen as u64) << 16) | ((dir as u64) << 8) | op as u64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Free,
    Proxy,
    First,
    Connect,
    Relay,
    /// Moving to the epoll engine (a bulk flow): pending operations cancelled first.
    Handover,
    Closing,
}

/// Bytes of one direction waiting to be sent: in ring buffer `bid`, or on the heap.
#[derive(Default)]
struct Pending {
    bid: Option<u16>,
    heap: Vec<u8>,
    off: usize,
    len: usize,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.off >= self.len
    }
}

struct Conn {
    gen: u16,
    phase: Phase,
    /// Client and backend fds (-1: none).
    fd: [RawFd; 2],
    inflight: u32,
    pend: [Pending; 2],
    /// The direction read EOF.
    eof: [bool; 2],
    /// The direction is finished (EOF forwarded).
    done: [bool; 2],
    bytes: [u64; 2],
    end: End,
    started: Instant,
    last_ms: u64,
    /// Deadline of the current phase (PROXY header, connect), ms.
    deadline_ms: u64,
    /// Maximum lifetime, ms.
    life_ms: u64,
    peer: SocketAddr,
    src: SocketAddr,
    dst: Option<SocketAddr>,
    cfg: Option<Arc<Settings>>,
    pool: Option<Arc<PoolSnap>>,
    tried: [usize; MAX_ATTEMPTS],
    attempts: usize,
    idx: usize,
    health: Option<ConnGuard>,
    member: Option<(Arc<MemberRt>, ActiveGuard, CancellationToken)>,
    permits: Option<Permits>,
    /// The backend address of the connect in flight.
    addr: Box<(libc::sockaddr_storage, libc::socklen_t)>,
    /// A PROXY header being read.
    hdr: Vec<u8>,
    /// A read filled a whole buffer: the flow moves to the epoll engine's splice (auto mode).
    bulk: bool,
    /// Why a handover failed (a peer failed while pending operations were cancelled).
    failed: Option<End>,
    /// Bytes of the PROXY header sent ahead of the client's (not counted as the client's).
    proxy_out: u64,
}

impl Conn {
    fn new() -> Conn {
        Conn {
            gen: 0,
            phase: Phase::Free,
            fd: [-1, -1],
            inflight: 0,
            pend: [Pending::default(), Pending::default()],
            eof: [false; 2],
            done: [false; 2],
            bytes: [0; 2],
            end: End::Closed,
            started: Instant::now(),
            last_ms: 0,
            deadline_ms: u64::MAX,
            life_ms: u64::MAX,
            peer: unspecified(),
            src: unspecified(),
            dst: None,
            cfg: None,
            pool: None,
            tried: [usize::MAX; MAX_ATTEMPTS],
            attempts: 0,
            idx: 0,
            health: None,
            member: None,
            permits: None,
            // SAFETY: all-zero is a valid sockaddr_storage.
            addr: Box::new((unsafe { std::mem::zeroed() }, 0)),
            hdr: Vec::new(),
            bulk: false,
            failed: None,
            proxy_out: 0,
        }
    }
}

fn unspecified() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
}

/// What a connection no member took carries to the epoll engine's spill: the client's first
/// bytes, its settings and pool, and its source and destination.
type Spilled = (
    Vec<u8>,
    Arc<Settings>,
    Arc<PoolSnap>,
    SocketAddr,
    Option<SocketAddr>,
);

struct Worker {
    // field order: the ring (and with it the buffer registration) goes before the buffers
    ring: IoUring,
    bufs: BufRing,
    rt: Arc<ListenerRt>,
    ctx: Arc<ConnCtx>,
    handle: tokio::runtime::Handle,
    listener: Option<std::net::TcpListener>,
    accept_armed: bool,
    accept_retry_ms: Option<u64>,
    backoff_ms: u64,
    wake: Arc<OwnedFd>,
    wake_buf: Box<u64>,
    conns: Vec<Conn>,
    free: Vec<u32>,
    live: usize,
    starved: VecDeque<(u32, u16, usize)>,
    epoch: Instant,
    now_ms: u64,
    next_scan_ms: u64,
    cqes: Vec<(u64, i32, u32)>,
}

fn build_ring() -> io::Result<IoUring> {
    let mut last = None;
    for flags in [0b111u8, 0b011, 0b101, 0b100, 0] {
        let mut b = IoUring::builder();
        b.setup_cqsize(4096);
        if flags & 1 != 0 {
            b.setup_single_issuer();
        }
        if flags & 2 != 0 {
            b.setup_defer_taskrun();
        }
        if flags & 4 != 0 {
            b.setup_coop_taskrun();
        }
        match b.build(512) {
            Ok(r) => return Ok(r),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no ring")))
}

/// Runs the ring until the listener has stopped and its last connection ended.
pub(super) fn run(
    rt: Arc<ListenerRt>,
    ctx: Arc<ConnCtx>,
    sock: std::net::TcpListener,
    wake: Arc<OwnedFd>,
    handle: tokio::runtime::Handle,
) -> io::Result<()> {
    let ring = build_ring()?;
    let size = rt.settings.load().spec.buffer_size.clamp(1024, 1 << 20);
    let bufs = BufRing::new(&ring, RING_BUFFERS, RING_BUFFERS_FIRST, size, 1)?;
    let mut w = Worker {
        ring,
        bufs,
        rt,
        ctx,
        handle,
        listener: Some(sock),
        accept_armed: false,
        accept_retry_ms: None,
        backoff_ms: 0,
        wake,
        wake_buf: Box::new(0),
        conns: Vec::new(),
        free: Vec::new(),
        live: 0,
        starved: VecDeque::new(),
        epoch: Instant::now(),
        now_ms: 0,
        next_scan_ms: 0,
        cqes: Vec::with_capacity(1024),
    };
    w.arm_accept();
    w.arm_wake();
    w.check_stop();
    loop {
        // with connections, the tick; without, a slow one (the stop signals also wake the
        // ring through its eventfd: this only bounds a wait whose waker went away)
        let ts = Timespec::from(if w.live > 0 || w.accept_retry_ms.is_some() {
            TICK
        } else {
            IDLE_TICK
        });
        let r = w
            .ring
            .submitter()
            .submit_with_args(1, &SubmitArgs::new().timespec(&ts));
        match r {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) => {}
            Err(e) => return Err(e),
        }
        w.now_ms = w.epoch.elapsed().as_millis() as u64;
        let mut batch = std::mem::take(&mut w.cqes);
        batch.clear();
        batch.extend(
            w.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(u, res, flags) in &batch {
            w.on_cqe(u, res, flags);
        }
        w.cqes = batch;
        w.rearm_starved();
        if w.now_ms >= w.next_scan_ms {
            w.next_scan_ms = w.now_ms + TICK.as_millis() as u64;
            w.check_stop();
            w.scan();
        }
        if w.listener.is_none() && w.live == 0 {
            // the Close operations of the last connections go in before the ring does
            let _ = w.ring.submit();
            return Ok(());
        }
    }
}

impl Worker {
    fn push(&mut self, e: squeue::Entry) {
        loop {
            // SAFETY: every buffer and address an entry points at lives in a slot (boxed or
            // in the ring's mapping) or in the worker, and stays until its completion.
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                return;
            }
            let _ = self.ring.submit();
        }
    }

    fn push_conn(&mut self, slot: u32, e: squeue::Entry) {
        self.conns[slot as usize].inflight += 1;
        self.push(e);
    }

    fn arm_accept(&mut self) {
        let Some(l) = &self.listener else { return };
        let e = opcode::AcceptMulti::new(Fd(l.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(ud(NO_SLOT, 0, 0, OP_ACCEPT));
        self.accept_armed = true;
        self.push(e);
    }

    fn arm_wake(&mut self) {
        let e = opcode::Read::new(
            Fd(self.wake.as_raw_fd()),
            (&mut *self.wake_buf as *mut u64).cast(),
            8,
        )
        .build()
        .user_data(ud(NO_SLOT, 0, 0, OP_WAKE));
        self.push(e);
    }

    /// Stops accepting when the listener stopped; closes everything at the hard stop.
    fn check_stop(&mut self) {
        let hard = self.ctx.hard_stop.is_cancelled();
        if (hard || self.rt.is_stopped()) && self.listener.is_some() {
            if let Some(l) = self.listener.take() {
                // hand over what is already queued on this socket before closing it
                if !hard {
                    while let Ok((s, _)) = l.accept() {
                        use std::os::fd::IntoRawFd;
                        let _ = s.set_nonblocking(false);
                        self.accepted(s.into_raw_fd());
                    }
                }
                if self.accept_armed {
                    let e = opcode::AsyncCancel::new(ud(NO_SLOT, 0, 0, OP_ACCEPT))
                        .build()
                        .user_data(ud(NO_SLOT, 0, 0, OP_CANCEL));
                    self.push(e);
                    let _ = self.ring.submit();
                }
                drop(l);
            }
        }
        if hard {
            for slot in 0..self.conns.len() as u32 {
                let p = self.conns[slot as usize].phase;
                if p != Phase::Free && p != Phase::Closing {
                    self.close(slot, End::Stopped, false);
                }
            }
        }
    }

    fn on_cqe(&mut self, u: u64, res: i32, flags: u32) {
        let op = (u & 0xff) as u8;
        let dir = ((u >> 8) & 0xff) as usize;
        let gen = ((u >> 16) & 0xffff) as u16;
        let slot = (u >> 32) as u32;
        if slot == NO_SLOT {
            match op {
                OP_ACCEPT => self.on_accept(res, cqueue::more(flags)),
                OP_WAKE => {
                    self.check_stop();
                    if !(self.listener.is_none() && self.ctx.hard_stop.is_cancelled()) {
                        self.arm_wake();
                    }
                }
                _ => {} // a failed close or a cancel of the accept
            }
            return;
        }
        let bid = cqueue::buffer_select(flags);
        if bid.is_some() {
            self.bufs.taken();
        }
        let Some(c) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if c.gen != gen || c.phase == Phase::Free {
            if let Some(b) = bid {
                self.bufs.give_back(b);
            }
            return;
        }
        c.inflight = c.inflight.saturating_sub(1);
        if c.phase == Phase::Closing {
            if let Some(b) = bid {
                self.bufs.give_back(b);
            }
            if c.inflight == 0 {
                self.finalize(slot);
            }
            return;
        }
        if c.phase == Phase::Handover {
            return self.on_handover_cqe(slot, dir, op, res, bid);
        }
        match (op, c.phase) {
            (OP_RECV, Phase::Proxy) => self.on_proxy(slot, res, bid),
            (OP_RECV, Phase::First) => self.on_first(slot, res, bid),
            (OP_RECV, Phase::Relay) => self.on_recv(slot, dir, res, bid),
            (OP_SEND, Phase::Relay) => self.on_send(slot, dir, res),
            (OP_CONNECT, Phase::Connect) => self.on_connect(slot, res),
            _ => {
                if let Some(b) = bid {
                    self.bufs.give_back(b);
                }
            }
        }
    }

    fn warn_accept(&self, e: &io::Error) {
        if let Some(n) = self.rt.resource_warn.note() {
            tracing::warn!(listener = %self.rt.name(), error = %e, failures = n, every_s = RESOURCE_WARN_EVERY.as_secs(), "accept failed: out of resources, backing off (one line per interval, failures counted since the last)");
        }
    }

    fn warn_connect(&self, backend: SocketAddr, e: &io::Error) {
        if let Some(n) = self.rt.resource_warn.note() {
            tracing::warn!(listener = %self.rt.name(), %backend, error = %e, failures = n, "backend connect failed: out of local resources (one line per interval, failures counted since the last)");
        }
    }

    fn on_accept(&mut self, res: i32, more: bool) {
        if !more {
            self.accept_armed = false;
        }
        if res < 0 {
            let e = io::Error::from_raw_os_error(-res);
            if res == -libc::ECANCELED {
                return;
            }
            self.rt.metrics.accept_errors.increment(1);
            if matches!(
                -res,
                libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
            ) {
                self.warn_accept(&e);
                self.backoff_ms = (self.backoff_ms * 2).clamp(5, 1000);
                if !self.accept_armed {
                    self.accept_retry_ms = Some(self.now_ms + self.backoff_ms);
                }
                return;
            }
            tracing::debug!(listener = %self.rt.name(), error = %e, "accept error");
            if !self.accept_armed {
                self.arm_accept();
            }
            return;
        }
        self.backoff_ms = 0;
        if !self.accept_armed {
            self.arm_accept();
        }
        self.accepted(res);
    }

    /// A new client connection `fd` (blocking, close-on-exec).
    fn accepted(&mut self, fd: RawFd) {
        let rt = self.rt.clone();
        let Some(permits) = take_permits(&rt, &self.ctx) else {
            rt.metrics.refused_max_conns.increment(1);
            return reset_close(fd);
        };
        rt.metrics.accepted.increment(1);
        let cfg = rt.settings.load_full();
        let pool = cfg.pool.snap.load_full();
        // what the epoll engine carries: SNI routing and a pool that spills now
        let over = &rt.metrics.handed_over;
        let hand = if cfg.sni.is_some() {
            Some(&over.sni)
        } else if cfg.spec.forwarding == Forwarding::Splice {
            Some(&over.splice)
        } else if crate::spill::early(&pool, cfg.spec.spill_ingress).is_some() {
            Some(&over.spill)
        } else {
            None
        };
        if let Some(counter) = hand {
            counter.increment(1);
            return self.hand_over(fd, permits, None);
        }
        let spec = &cfg.spec;
        let needs_peer = cfg.limiter.is_some()
            || spec.accept_proxy
            || spec.access_log
            || pool.spec.proxy_protocol.is_some()
            || pool.spec.policy == Policy::Maglev;
        let peer = if needs_peer {
            peer_of(fd).unwrap_or_else(unspecified)
        } else {
            unspecified()
        };
        if let Some(lim) = &cfg.limiter {
            if lim.check(&peer.ip(), Instant::now()).is_err() {
                rt.metrics.refused_rate.increment(1);
                return reset_close(fd);
            }
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.conns.push(Conn::new());
                (self.conns.len() - 1) as u32
            }
        };
        self.live += 1;
        let now = self.now_ms;
        let c = &mut self.conns[slot as usize];
        c.phase = if spec.accept_proxy {
            Phase::Proxy
        } else {
            Phase::First
        };
        c.fd = [fd, -1];
        c.inflight = 0;
        c.eof = [false; 2];
        c.done = [false; 2];
        c.bytes = [0; 2];
        c.end = End::Closed;
        c.started = Instant::now();
        c.last_ms = now;
        c.deadline_ms = now + spec.connect_timeout.as_millis() as u64;
        c.life_ms = spec
            .max_lifetime
            .map_or(u64::MAX, |d| now + d.as_millis() as u64);
        c.peer = peer;
        c.src = peer;
        c.dst = None;
        c.tried = [usize::MAX; MAX_ATTEMPTS];
        c.attempts = 0;
        c.bulk = false;
        c.failed = None;
        c.proxy_out = 0;
        c.permits = Some(permits);
        c.pool = Some(pool);
        c.cfg = Some(cfg);
        let first = c.phase == Phase::First;
        self.recv(slot, CLIENT, first);
    }

    /// Gives the connection to the epoll engine (same worker index): SNI routing, or a spill.
    fn hand_over(&mut self, fd: RawFd, permits: Permits, first: Option<Spilled>) {
        // SAFETY: `fd` is ours (accepted, no operation in flight on it).
        let s = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        let _ = s.set_nonblocking(true);
        let peer = s.peer_addr().unwrap_or_else(|_| unspecified());
        let (rt, ctx) = (self.rt.clone(), self.ctx.clone());
        let fut = async move {
            let _permits = permits;
            let Ok(s) = tokio::net::TcpStream::from_std(s) else {
                return;
            };
            match first {
                None => conn::handle(s, peer, &rt, &ctx).await,
                Some((bytes, cfg, pool, src, dst)) => {
                    let first = if bytes.is_empty() {
                        crate::relay::copy::First::Quiet
                    } else {
                        crate::relay::copy::First::Held(bytes, 0)
                    };
                    crate::spill::or_refuse(s, first, peer, src, dst, &rt, &cfg, &pool, &ctx, None)
                        .await
                }
            }
        };
        self.ctx.tracker.spawn_on(fut, &self.handle);
    }

    /// Receives on `fd[dir]` into a ring buffer (`now`: return at once if nothing is there).
    fn recv(&mut self, slot: u32, dir: usize, now: bool) {
        let c = &self.conns[slot as usize];
        let e = opcode::Recv::new(Fd(c.fd[dir]), std::ptr::null_mut(), self.bufs.size())
            .buf_group(self.bufs.group)
            .flags(if now { libc::MSG_DONTWAIT } else { 0 })
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
            .user_data(ud(slot, c.gen, dir, OP_RECV));
        self.push_conn(slot, e);
    }

    /// Sends direction `dir`'s pending bytes to `fd[1 - dir]`.
    fn send(&mut self, slot: u32, dir: usize) {
        let c = &self.conns[slot as usize];
        let p = &c.pend[dir];
        let (ptr, flags) = match p.bid {
            // from the ring: only what the socket takes at once (the rest goes to the heap)
            Some(b) => (
                self.bufs.ptr(b).wrapping_add(p.off) as *const u8,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            ),
            None => (p.heap[p.off..].as_ptr(), libc::MSG_NOSIGNAL),
        };
        let e = opcode::Send::new(Fd(c.fd[1 - dir]), ptr, (p.len - p.off) as u32)
            .flags(flags)
            .build()
            .user_data(ud(slot, c.gen, dir, OP_SEND));
        self.push_conn(slot, e);
    }

    /// Moves the unsent rest of a ring buffer to the heap and gives the buffer back.
    fn spill_to_heap(&mut self, slot: u32, dir: usize) {
        let c = &mut self.conns[slot as usize];
        let p = &mut c.pend[dir];
        if let Some(b) = p.bid.take() {
            let bytes = self.bufs.bytes(b, p.len);
            p.heap.clear();
            p.heap.extend_from_slice(&bytes[p.off..]);
            p.len -= p.off;
            p.off = 0;
            self.bufs.give_back(b);
        }
    }

    fn release(&mut self, slot: u32, dir: usize) {
        let p = &mut self.conns[slot as usize].pend[dir];
        if let Some(b) = p.bid.take() {
            self.bufs.give_back(b);
        }
        p.heap = Vec::new(); // idle connections hold no buffer
        p.off = 0;
        p.len = 0;
    }

    fn on_proxy(&mut self, slot: u32, res: i32, bid: Option<u16>) {
        if res == -libc::ENOBUFS {
            return self.starved_recv(slot, CLIENT);
        }
        if res <= 0 {
            if let Some(b) = bid {
                self.bufs.give_back(b);
            }
            return self.refuse_proxy(slot, "connection closed before the PROXY header ended");
        }
        let Some(b) = bid else {
            return self.refuse_proxy(slot, "no buffer");
        };
        let c = &mut self.conns[slot as usize];
        c.hdr.extend_from_slice(self.bufs.bytes(b, res as usize));
        self.bufs.give_back(b);
        match proxy::parse(&c.hdr) {
            proxy::Parse::Incomplete => self.recv(slot, CLIENT, false),
            proxy::Parse::Complete(h) => {
                if let Some((s, d)) = h.addrs {
                    c.src = s;
                    c.dst = Some(d);
                }
                let rest = c.hdr.split_off(h.len.min(c.hdr.len()));
                c.hdr = Vec::new();
                if rest.is_empty() {
                    c.phase = Phase::First;
                    self.recv(slot, CLIENT, true);
                } else {
                    c.pend[CLIENT] = Pending {
                        bid: None,
                        len: rest.len(),
                        heap: rest,
                        off: 0,
                    };
                    self.choose(slot);
                }
            }
            proxy::Parse::Invalid(why) => self.refuse_proxy(slot, why),
            proxy::Parse::Absent => self.refuse_proxy(slot, "no PROXY header"),
        }
    }

    fn refuse_proxy(&mut self, slot: u32, why: &str) {
        let c = &self.conns[slot as usize];
        tracing::debug!(listener = %self.rt.name(), peer = %c.peer, error = why, "bad PROXY header");
        self.rt.metrics.refused_proxy.increment(1);
        self.close(slot, End::ClientError, true);
    }

    fn on_first(&mut self, slot: u32, res: i32, bid: Option<u16>) {
        let c = &mut self.conns[slot as usize];
        let bid = match bid {
            Some(b) if res <= 0 => {
                self.bufs.give_back(b); // nothing in it
                None
            }
            b => b,
        };
        match (res, bid) {
            (n, Some(b)) if n > 0 => {
                c.pend[CLIENT] = Pending {
                    bid: Some(b),
                    heap: Vec::new(),
                    off: 0,
                    len: n as usize,
                };
                c.last_ms = self.now_ms;
            }
            (0, _) => c.eof[CLIENT] = true,
            (n, _) if n == -libc::EAGAIN => {}
            (n, _) if n == -libc::ENOBUFS => {
                // read in the relay; a buffer more for it if the ring has room
                self.bufs.grow();
            }
            (n, _) => {
                let e = io::Error::from_raw_os_error(-n.max(1));
                tracing::debug!(listener = %self.rt.name(), peer = %c.peer, error = %e, "client gone before a backend was chosen");
                self.rt.metrics.refused_client_gone.increment(1);
                return self.close(slot, End::ClientError, false);
            }
        }
        self.choose(slot);
    }

    /// Picks the next member and starts a connect to it; refuses (or spills) when none is left.
    fn choose(&mut self, slot: u32) {
        let c = &mut self.conns[slot as usize];
        c.phase = Phase::Connect;
        let (Some(pool), Some(cfg)) = (c.pool.clone(), c.cfg.clone()) else {
            return self.close(slot, End::LocalError, true);
        };
        let sel = &pool.selector;
        let attempts = (pool.spec.connect_attempts as usize).clamp(1, MAX_ATTEMPTS);
        while c.attempts < attempts {
            let n = c.attempts;
            let idx = match sel.choose(c.src.ip(), &c.tried[..n]) {
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
            c.tried[n] = idx;
            c.attempts += 1;
            let member = &pool.members[idx];
            let guard = member.health.conn_guard();
            match backend_socket(member.spec.addr, &mut c.addr) {
                Ok(bfd) => {
                    c.fd[BACKEND] = bfd;
                    c.idx = idx;
                    c.health = Some(guard);
                    c.deadline_ms = self.now_ms + cfg.spec.connect_timeout.as_millis() as u64;
                    let e = opcode::Connect::new(
                        Fd(bfd),
                        (&c.addr.0 as *const libc::sockaddr_storage).cast(),
                        c.addr.1,
                    )
                    .build()
                    .user_data(ud(slot, c.gen, BACKEND, OP_CONNECT));
                    self.push_conn(slot, e);
                    return;
                }
                Err(e) => {
                    drop(guard);
                    member.metrics.connect_errors.increment(1);
                    if conn::is_local_shortage(&e) {
                        let addr = member.spec.addr;
                        self.warn_connect(addr, &e);
                        break;
                    }
                    sel.record_connect_failure(idx);
                    tracing::debug!(backend = %member.spec.addr, error = %e, attempt = n + 1, "connect failed");
                }
            }
        }
        self.no_backend(slot);
    }

    /// No member took the connection: spill it (the epoll engine does) or refuse it.
    fn no_backend(&mut self, slot: u32) {
        let c = &mut self.conns[slot as usize];
        let (Some(pool), Some(cfg)) = (c.pool.clone(), c.cfg.clone()) else {
            return self.close(slot, End::LocalError, true);
        };
        if pool.spill.is_some() && !cfg.spec.spill_ingress && c.inflight == 0 {
            let p = &c.pend[CLIENT];
            let bytes = match p.bid {
                Some(b) => self.bufs.bytes(b, p.len)[p.off..].to_vec(),
                None => p.heap.get(p.off..p.len).unwrap_or_default().to_vec(),
            };
            let (src, dst, fd) = (c.src, c.dst, c.fd[CLIENT]);
            let permits = c.permits.take();
            c.fd[CLIENT] = -1;
            self.release(slot, CLIENT);
            if let Some(permits) = permits {
                self.rt.metrics.handed_over.spill.increment(1);
                self.hand_over(fd, permits, Some((bytes, cfg, pool, src, dst)));
            }
            return self.close(slot, End::Closed, false);
        }
        self.rt.metrics.refused_no_backend.increment(1);
        self.close(slot, End::BackendError, true);
    }

    fn on_connect(&mut self, slot: u32, res: i32) {
        let c = &mut self.conns[slot as usize];
        let Some(pool) = c.pool.clone() else { return };
        let idx = c.idx;
        let member = pool.members[idx].clone();
        if res < 0 {
            let e = if res == -libc::ECANCELED {
                io::Error::new(io::ErrorKind::TimedOut, "connect timeout")
            } else {
                io::Error::from_raw_os_error(-res)
            };
            c.health = None;
            // SAFETY: the backend fd is ours and has no operation in flight (its connect is back).
            unsafe { libc::close(c.fd[BACKEND]) };
            c.fd[BACKEND] = -1;
            member.metrics.connect_errors.increment(1);
            if conn::is_local_shortage(&e) {
                self.warn_connect(member.spec.addr, &e);
                return self.no_backend(slot);
            }
            pool.selector.record_connect_failure(idx);
            tracing::debug!(backend = %member.spec.addr, error = %e, attempt = c.attempts, "connect failed");
            return self.choose(slot);
        }
        pool.selector.record_success(idx);
        let active = member.open();
        member.metrics.conns.increment(1);
        let close = member.close_token();
        c.member = Some((member, active, close));
        c.phase = Phase::Relay;
        c.deadline_ms = u64::MAX;
        if let Some(v) = pool.spec.proxy_protocol {
            let src = c.src;
            let dst = c
                .dst
                .unwrap_or_else(|| local_of(c.fd[CLIENT]).unwrap_or(c.peer));
            let mut hdr = [0u8; proxy::MAX_ENCODED];
            let n = proxy::encode(conn::wire_version(v), src, dst, &mut hdr);
            let p = &c.pend[CLIENT];
            let mut out = Vec::with_capacity(n + p.len - p.off);
            out.extend_from_slice(&hdr[..n]);
            match p.bid {
                Some(b) => out.extend_from_slice(&self.bufs.bytes(b, p.len)[p.off..]),
                None => out.extend_from_slice(&p.heap[p.off..p.len]),
            }
            self.release(slot, CLIENT);
            let c = &mut self.conns[slot as usize];
            c.proxy_out = n as u64;
            c.pend[CLIENT] = Pending {
                bid: None,
                len: out.len(),
                heap: out,
                off: 0,
            };
        }
        self.recv(slot, BACKEND, false);
        self.resume(slot, CLIENT);
    }

    /// Direction `dir` has nothing in flight: send what is pending, forward an EOF, or receive.
    fn resume(&mut self, slot: u32, dir: usize) {
        let c = &self.conns[slot as usize];
        if !c.pend[dir].is_empty() {
            self.send(slot, dir);
        } else if c.eof[dir] {
            self.finish(slot, dir);
        } else {
            self.recv(slot, dir, false);
        }
    }

    /// Direction `dir` read EOF and sent everything: half-close its destination, or close both
    /// when the other direction is finished too (the close sends the FIN).
    fn finish(&mut self, slot: u32, dir: usize) {
        let c = &mut self.conns[slot as usize];
        c.done[dir] = true;
        if c.done[1 - dir] {
            return self.close(slot, End::Closed, false);
        }
        // SAFETY: shutdown(2) on an open fd of this slot.
        unsafe { libc::shutdown(c.fd[1 - dir], libc::SHUT_WR) };
    }

    fn on_recv(&mut self, slot: u32, dir: usize, res: i32, bid: Option<u16>) {
        let c = &mut self.conns[slot as usize];
        if res > 0 {
            let Some(b) = bid else {
                return self.close(slot, End::LocalError, true);
            };
            c.last_ms = self.now_ms;
            c.pend[dir] = Pending {
                bid: Some(b),
                heap: std::mem::take(&mut c.pend[dir].heap),
                off: 0,
                len: res as usize,
            };
            if res as u32 == self.bufs.size()
                && c.cfg
                    .as_ref()
                    .is_some_and(|cfg| cfg.spec.forwarding == Forwarding::Auto)
            {
                c.bulk = true;
            }
            return self.send(slot, dir);
        }
        if let Some(b) = bid {
            self.bufs.give_back(b);
        }
        match res {
            0 => {
                c.eof[dir] = true;
                self.finish(slot, dir);
            }
            n if n == -libc::ENOBUFS => self.starved_recv(slot, dir),
            n if n == -libc::EINTR || n == -libc::EAGAIN => self.recv(slot, dir, false),
            _ => {
                let end = read_failed(dir);
                self.close(slot, end, true);
            }
        }
    }

    fn on_send(&mut self, slot: u32, dir: usize, res: i32) {
        let c = &mut self.conns[slot as usize];
        if res > 0 {
            c.bytes[dir] += res as u64;
            c.last_ms = self.now_ms;
            let p = &mut c.pend[dir];
            p.off += res as usize;
            if p.is_empty() {
                self.release(slot, dir);
                let c = &self.conns[slot as usize];
                if c.bulk {
                    return self.start_handover(slot);
                }
                if c.eof[dir] {
                    return self.finish(slot, dir);
                }
                return self.recv(slot, dir, false);
            }
            // the destination took part: the rest waits on the heap, the ring buffer goes back
            self.spill_to_heap(slot, dir);
            return self.send(slot, dir);
        }
        match res {
            0 => self.send(slot, dir),
            n if n == -libc::EAGAIN || n == -libc::EINTR => {
                self.spill_to_heap(slot, dir);
                self.send(slot, dir);
            }
            _ => {
                // writing to the backend failed (dir 0), or to the client (dir 1)
                let end = write_failed(dir);
                self.close(slot, end, true);
            }
        }
    }

    /// A bulk flow moves to the epoll engine (its splice relay): what is in flight is
    /// cancelled first, so both sockets are quiet when they change hands.
    fn start_handover(&mut self, slot: u32) {
        let c = &mut self.conns[slot as usize];
        c.phase = Phase::Handover;
        if c.inflight == 0 {
            return self.complete_handover(slot);
        }
        for fd in c.fd {
            self.cancel_fd(slot, fd);
        }
    }

    /// Cancels every operation in flight on `fd` (one of the slot's; -1: none). Its
    /// completion and theirs are counted like any other.
    fn cancel_fd(&mut self, slot: u32, fd: RawFd) {
        if fd < 0 {
            return;
        }
        let gen = self.conns[slot as usize].gen;
        let e = opcode::AsyncCancel2::new(CancelBuilder::fd(Fd(fd)).all())
            .build()
            .user_data(ud(slot, gen, 0, OP_CANCEL));
        self.push_conn(slot, e);
    }

    /// A completion while a handover waits: bytes a receive got before its cancel are kept
    /// (sent by the epoll engine first); a failure ends the connection instead.
    fn on_handover_cqe(&mut self, slot: u32, dir: usize, op: u8, res: i32, bid: Option<u16>) {
        let c = &mut self.conns[slot as usize];
        match op {
            OP_RECV if res > 0 => match bid {
                Some(b) if c.pend[dir].is_empty() => {
                    c.pend[dir] = Pending {
                        bid: Some(b),
                        heap: std::mem::take(&mut c.pend[dir].heap),
                        off: 0,
                        len: res as usize,
                    }
                }
                Some(b) => {
                    self.bufs.give_back(b);
                    c.failed = Some(End::LocalError);
                }
                None => c.failed = Some(End::LocalError),
            },
            OP_RECV => {
                if let Some(b) = bid {
                    self.bufs.give_back(b);
                }
                match res {
                    0 => c.eof[dir] = true,
                    n if n == -libc::ECANCELED || n == -libc::ENOBUFS || n == -libc::EAGAIN => {}
                    _ => c.failed = Some(read_failed(dir)),
                }
            }
            OP_SEND if res > 0 => {
                c.bytes[dir] += res as u64;
                c.pend[dir].off += res as usize;
            }
            OP_SEND if res == -libc::ECANCELED || res == -libc::EAGAIN || res == 0 => {}
            OP_SEND => c.failed = Some(write_failed(dir)),
            _ => {}
        }
        let c = &self.conns[slot as usize];
        if c.inflight == 0 {
            match c.failed {
                Some(end) => {
                    self.conns[slot as usize].phase = Phase::Relay;
                    self.close(slot, end, true)
                }
                None => self.complete_handover(slot),
            }
        }
    }

    /// Both sockets are quiet: the epoll engine of this worker index sends what is pending and
    /// relays the rest (splicing the bulk), then counts and logs the connection as a whole.
    fn complete_handover(&mut self, slot: u32) {
        let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        for (dir, out) in pending.iter_mut().enumerate() {
            let p = &self.conns[slot as usize].pend[dir];
            if !p.is_empty() {
                *out = match p.bid {
                    Some(b) => self.bufs.bytes(b, p.len)[p.off..].to_vec(),
                    None => p.heap[p.off..p.len].to_vec(),
                };
            }
            self.release(slot, dir);
        }
        let c = &mut self.conns[slot as usize];
        let (Some(cfg), Some(pool), Some((member, active, _)), Some(health), Some(permits)) = (
            c.cfg.clone(),
            c.pool.clone(),
            c.member.take(),
            c.health.take(),
            c.permits.take(),
        ) else {
            c.phase = Phase::Relay;
            return self.close(slot, End::LocalError, true);
        };
        let fds = c.fd;
        c.fd = [-1, -1];
        let (idx, src, started) = (c.idx, c.src, c.started);
        let counted = [
            c.bytes[CLIENT].saturating_sub(c.proxy_out),
            c.bytes[BACKEND],
        ];
        // SAFETY: both fds are ours and quiet (no operation in flight); ownership moves to the
        // streams.
        let (client, backend) = unsafe {
            (
                std::net::TcpStream::from_raw_fd(fds[CLIENT]),
                std::net::TcpStream::from_raw_fd(fds[BACKEND]),
            )
        };
        let ctx = self.ctx.clone();
        let fut = async move {
            let _held = (permits, health, active);
            let _ = (client.set_nonblocking(true), backend.set_nonblocking(true));
            let (Ok(client), Ok(backend)) = (
                tokio::net::TcpStream::from_std(client),
                tokio::net::TcpStream::from_std(backend),
            ) else {
                return;
            };
            let (up, down) = tokio::join!(
                send_all(&backend, &pending[CLIENT]),
                send_all(&client, &pending[BACKEND])
            );
            if up.is_err() || down.is_err() {
                crate::relay::set_reset_on_close(&client);
                crate::relay::set_reset_on_close(&backend);
                return;
            }
            let relayed = conn::Relayed {
                member: &member,
                pool: &pool,
                idx,
                src,
                started,
                counted: [
                    counted[CLIENT] + pending[CLIENT].len() as u64,
                    counted[BACKEND] + pending[BACKEND].len() as u64,
                ],
            };
            conn::relay_and_log(&client, &backend, &cfg, relayed, &ctx).await;
        };
        self.ctx.tracker.spawn_on(fut, &self.handle);
        self.rt.metrics.handed_over.bulk.increment(1);
        let c = &mut self.conns[slot as usize];
        c.phase = Phase::Relay;
        self.close(slot, End::Closed, false);
    }

    /// Ends a connection: cancels what is in flight (with `reset`, the closes send RSTs).
    fn close(&mut self, slot: u32, end: End, reset: bool) {
        let c = &mut self.conns[slot as usize];
        if matches!(c.phase, Phase::Closing | Phase::Free) {
            return;
        }
        c.phase = Phase::Closing;
        c.end = end;
        if reset {
            for fd in c.fd {
                if fd >= 0 {
                    set_linger0(fd);
                }
            }
        }
        if c.inflight == 0 {
            return self.finalize(slot);
        }
        for fd in c.fd {
            self.cancel_fd(slot, fd);
        }
    }

    /// The last operation of a closing connection is back: close its fds, count, log, free.
    fn finalize(&mut self, slot: u32) {
        self.release(slot, CLIENT);
        self.release(slot, BACKEND);
        let c = &mut self.conns[slot as usize];
        for fd in c.fd {
            if fd >= 0 {
                let e = opcode::Close::new(Fd(fd))
                    .build()
                    .flags(squeue::Flags::SKIP_SUCCESS)
                    .user_data(ud(NO_SLOT, 0, 0, OP_CLOSE));
                // SAFETY: see `push`; a close references no memory.
                while unsafe { self.ring.submission().push(&e) }.is_err() {
                    let _ = self.ring.submit();
                }
            }
        }
        let c = &mut self.conns[slot as usize];
        c.bytes[CLIENT] = c.bytes[CLIENT].saturating_sub(c.proxy_out);
        if let Some((member, active, _)) = c.member.take() {
            member.metrics.bytes_up.increment(c.bytes[CLIENT]);
            member.metrics.bytes_down.increment(c.bytes[BACKEND]);
            if c.end == End::BackendError && c.bytes[BACKEND] == 0 {
                if let Some(pool) = &c.pool {
                    pool.selector.record_connect_failure(c.idx);
                }
            }
            if let Some(cfg) = c.cfg.as_ref().filter(|cfg| cfg.spec.access_log) {
                tracing::info!(
                    target: "switchyard::access",
                    client = %c.src,
                    listener = %cfg.spec.key.1,
                    backend = %member.spec.addr,
                    member = %member.spec.name,
                    az = %member.spec.az,
                    bytes_up = c.bytes[CLIENT],
                    bytes_down = c.bytes[BACKEND],
                    duration_ms = c.started.elapsed().as_millis() as u64,
                    end = c.end.as_str(),
                    "connection closed"
                );
            }
            drop(active);
        }
        c.health = None;
        c.cfg = None;
        c.pool = None;
        c.permits = None; // wakes nobody here: this engine refuses at the cap instead of waiting
        c.hdr = Vec::new();
        c.fd = [-1, -1];
        c.phase = Phase::Free;
        c.gen = c.gen.wrapping_add(1);
        self.free.push(slot);
        self.live -= 1;
    }

    /// A receive found the ring empty: one more buffer if the ring has room (and the receive
    /// goes again at once), else it waits for a buffer to come back.
    fn starved_recv(&mut self, slot: u32, dir: usize) {
        if self.bufs.grow() {
            return self.recv(slot, dir, false);
        }
        let gen = self.conns[slot as usize].gen;
        self.starved.push_back((slot, gen, dir));
    }

    /// Receives that found the ring empty try again once buffers came back.
    fn rearm_starved(&mut self) {
        while self.bufs.free() > 0 {
            let Some((slot, gen, dir)) = self.starved.pop_front() else {
                return;
            };
            let c = &self.conns[slot as usize];
            if c.gen != gen || !matches!(c.phase, Phase::Proxy | Phase::Relay) {
                continue;
            }
            self.recv(slot, dir, false);
        }
    }

    /// Timeouts, drain deadlines, the maximum lifetime and the accept back-off.
    fn scan(&mut self) {
        let now = self.now_ms;
        if let Some(at) = self.accept_retry_ms {
            if now >= at {
                self.accept_retry_ms = None;
                if !self.accept_armed {
                    self.arm_accept();
                }
            }
        }
        for slot in 0..self.conns.len() as u32 {
            let c = &mut self.conns[slot as usize];
            match c.phase {
                Phase::Proxy if now >= c.deadline_ms => {
                    self.refuse_proxy(slot, "timed out waiting for the PROXY header")
                }
                Phase::Connect if now >= c.deadline_ms => {
                    c.deadline_ms = u64::MAX;
                    let fd = c.fd[BACKEND];
                    self.cancel_fd(slot, fd);
                }
                Phase::Relay => {
                    let Some(cfg) = &c.cfg else { continue };
                    let idle = cfg.spec.idle_timeout.as_millis() as u64;
                    let stopped = c
                        .member
                        .as_ref()
                        .is_some_and(|(_, _, close)| close.is_cancelled());
                    if stopped {
                        self.close(slot, End::Stopped, false);
                    } else if now.saturating_sub(c.last_ms) >= idle {
                        self.close(slot, End::Idle, false);
                    } else if now >= c.life_ms {
                        self.close(slot, End::Lifetime, false);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Writes all of `buf` to `s` through the epoll engine's readiness.
async fn send_all(s: &tokio::net::TcpStream, buf: &[u8]) -> io::Result<()> {
    let mut off = 0;
    while off < buf.len() {
        s.writable().await?;
        match s.try_write(&buf[off..]) {
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whose fault a failed receive on direction `dir`'s source is.
fn read_failed(dir: usize) -> End {
    if dir == CLIENT {
        End::ClientError
    } else {
        End::BackendError
    }
}

/// Whose fault a failed send of direction `dir` (to the other side) is.
fn write_failed(dir: usize) -> End {
    read_failed(1 - dir)
}

/// A blocking, close-on-exec TCP socket with `TCP_NODELAY` for `addr`, its address in `out`.
fn backend_socket(
    addr: SocketAddr,
    out: &mut (libc::sockaddr_storage, libc::socklen_t),
) -> io::Result<RawFd> {
    let sa = socket2::SockAddr::from(addr);
    // SAFETY: socket(2) returns a new fd or -1.
    let fd = unsafe {
        libc::socket(
            sa.family() as i32,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            libc::IPPROTO_TCP,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let one: libc::c_int = 1;
    // SAFETY: an int option on a fresh socket.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    // SAFETY: `sa` holds `sa.len()` valid bytes, at most the size of sockaddr_storage.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sa.as_ptr().cast::<u8>(),
            (&mut out.0 as *mut libc::sockaddr_storage).cast::<u8>(),
            sa.len() as usize,
        )
    };
    out.1 = sa.len();
    Ok(fd)
}

fn peer_of(fd: RawFd) -> Option<SocketAddr> {
    let s = std::mem::ManuallyDrop::new(unsafe_socket(fd));
    s.peer_addr().ok()?.as_socket()
}

fn local_of(fd: RawFd) -> Option<SocketAddr> {
    let s = std::mem::ManuallyDrop::new(unsafe_socket(fd));
    s.local_addr().ok()?.as_socket()
}

fn unsafe_socket(fd: RawFd) -> socket2::Socket {
    // SAFETY: callers wrap it in ManuallyDrop: the fd is borrowed, never closed here.
    unsafe { socket2::Socket::from_raw_fd(fd) }
}

fn set_linger0(fd: RawFd) {
    let s = std::mem::ManuallyDrop::new(unsafe_socket(fd));
    let _ = s.set_linger(Some(Duration::ZERO));
}

/// Closes `fd` with a RST (a refused connection costs the client no wait).
fn reset_close(fd: RawFd) {
    set_linger0(fd);
    // SAFETY: `fd` is ours and has no operation in flight.
    unsafe { libc::close(fd) };
}
