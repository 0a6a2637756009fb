//! Test harness: backends with simple behaviours on 127.0.0.1:0, a balancer over them, clients
//! that can pick their source address, and a fast word-wise PRNG/hash for byte-exact checks.
#![allow(unsafe_code)] // getrlimit/setrlimit; SAFETY comment on the block

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;
use switchyard_balance::{AdminState, CheckSpec, HealthRegistry, MemberSpec, PassiveSpec};
use switchyard_config::lb::IoEngine;
use switchyard_lb::{start_plan, Lb, LbOptions, ListenerSpec, Plan, PoolSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

/// Raises the soft fd limit to the hard limit once (2000-connection tests need it).
pub fn raise_nofile() {
    static ONCE: Once = Once::new();
    // SAFETY: getrlimit/setrlimit read and write one local `rlimit`.
    ONCE.call_once(|| unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    });
}

/// What a test backend does with each connection.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Echo everything; on EOF half-close back.
    Echo,
    /// Write `name\n` first, then echo.
    Named(String),
    /// Read to EOF, then write the 8-byte hash and the byte count (16 bytes) and close.
    HashSink,
    /// Read `n` bytes, then reset the connection.
    ResetAfter(usize),
}

/// A backend on a fixed address that can be stopped and restarted.
pub struct Backend {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    stop: CancellationToken,
    behaviour: Behaviour,
}

impl Backend {
    pub async fn start(b: Behaviour) -> Backend {
        Self::start_on("127.0.0.1:0".parse().unwrap(), b).await
    }

    pub async fn start_on(addr: SocketAddr, b: Behaviour) -> Backend {
        // a deep backlog: the 2000-connection test connects faster than a debug build accepts
        let sock = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .expect("socket");
        sock.set_reuseaddr(true).expect("reuseaddr");
        sock.bind(addr).expect("bind backend");
        let l = sock.listen(4096).expect("listen");
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        tokio::spawn(serve(l, b.clone(), accepted.clone(), stop.clone()));
        Backend {
            addr,
            accepted,
            stop,
            behaviour: b,
        }
    }

    /// Closes the listener and every open connection (connects are refused afterwards).
    pub fn kill(&self) {
        self.stop.cancel();
    }

    /// Starts again on the same address.
    pub async fn restart(&mut self) {
        *self = Backend::start_on(self.addr, self.behaviour.clone()).await;
    }

    pub fn count(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(l: TcpListener, b: Behaviour, accepted: Arc<AtomicUsize>, stop: CancellationToken) {
    loop {
        let (s, _) = tokio::select! {
            r = l.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    // e.g. EMFILE in the limits test: back off like the balancer does
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let (b, stop) = (b.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = handle(s, b) => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

async fn handle(mut s: TcpStream, b: Behaviour) {
    let mut buf = vec![0u8; 64 * 1024];
    match b {
        Behaviour::Echo | Behaviour::Named(_) => {
            if let Behaviour::Named(n) = &b {
                if s.write_all(format!("{n}\n").as_bytes()).await.is_err() {
                    return;
                }
            }
            loop {
                match s.read(&mut buf).await {
                    Ok(0) => {
                        let _ = s.shutdown().await;
                        return;
                    }
                    Ok(n) => {
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        }
        Behaviour::HashSink => {
            let mut h = StreamHash::new();
            loop {
                match s.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => h.update(&buf[..n]),
                    Err(_) => return,
                }
            }
            let mut out = [0u8; 16];
            out[..8].copy_from_slice(&h.finish().to_le_bytes());
            out[8..].copy_from_slice(&h.len.to_le_bytes());
            let _ = s.write_all(&out).await;
        }
        Behaviour::ResetAfter(n) => {
            let mut got = 0;
            while got < n {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(k) => got += k,
                }
            }
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
    }
}

/// A deterministic byte stream generated 8 bytes at a time (fast even unoptimised).
pub struct Gen(u64);

impl Gen {
    pub fn new(seed: u64) -> Self {
        Gen(seed | 1)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let b = self.0.to_le_bytes();
            c.copy_from_slice(&b[..c.len()]);
        }
    }
}

/// An order-sensitive hash over a byte stream, independent of how it was chunked.
pub struct StreamHash {
    h: u64,
    pending: [u8; 8],
    np: usize,
    pub len: u64,
}

impl StreamHash {
    pub fn new() -> Self {
        StreamHash {
            h: 0xcbf2_9ce4_8422_2325,
            pending: [0; 8],
            np: 0,
            len: 0,
        }
    }
    #[inline]
    fn word(&mut self, w: u64) {
        self.h = (self.h ^ w)
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(23);
    }
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        while self.np > 0 && !data.is_empty() {
            self.pending[self.np] = data[0];
            self.np += 1;
            data = &data[1..];
            if self.np == 8 {
                self.word(u64::from_le_bytes(self.pending));
                self.np = 0;
            }
        }
        let mut it = data.chunks_exact(8);
        for c in &mut it {
            self.word(u64::from_le_bytes(c.try_into().unwrap()));
        }
        for &b in it.remainder() {
            self.pending[self.np] = b;
            self.np += 1;
        }
    }
    pub fn finish(&self) -> u64 {
        let mut h = self.h;
        for &b in &self.pending[..self.np] {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^ self.len
    }
}

/// Hash of `len` bytes of `Gen::new(seed)`.
pub fn expected_hash(seed: u64, len: usize) -> u64 {
    let mut g = Gen::new(seed);
    let mut h = StreamHash::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        g.fill(&mut buf[..n]);
        h.update(&buf[..n]);
        left -= n;
    }
    h.finish()
}

/// Writes `len` generated bytes to `w`.
pub async fn send_generated(
    w: &mut (impl AsyncWriteExt + Unpin),
    seed: u64,
    len: usize,
) -> std::io::Result<()> {
    let mut g = Gen::new(seed);
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        g.fill(&mut buf[..n]);
        w.write_all(&buf[..n]).await?;
        left -= n;
    }
    Ok(())
}

/// Reads to EOF, hashing.
pub async fn hash_to_eof(r: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<(u64, u64)> {
    let mut h = StreamHash::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok((h.finish(), h.len));
        }
        h.update(&buf[..n]);
    }
}

/// A running balancer over one pool and one listener.
pub struct TestLb {
    pub lb: Lb,
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub admin: AdminState,
    pub registry: HealthRegistry,
}

impl Drop for TestLb {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Fast health checks for tests: 20 ms interval, no jitter, 100 ms timeout, rise 2, fall 2.
pub fn fast_check() -> CheckSpec {
    let mut c = CheckSpec::tcp()
        .with_timing(Duration::from_millis(20), Duration::from_millis(100))
        .with_thresholds(2, 2);
    c.jitter = 0.0;
    c
}

/// A pool over `(backend, az, weight)` with fast checks and passive ejection off.
pub fn pool(members: &[(SocketAddr, &str, u32)]) -> PoolSpec {
    let ms = members
        .iter()
        .enumerate()
        .map(|(i, (a, az, w))| MemberSpec::new(format!("m{i}"), *a, *az, *w))
        .collect();
    let mut p = PoolSpec::new("test", "pool", ms);
    p.check = Some(fast_check());
    p.passive = PassiveSpec {
        consecutive_failures: 0,
        ..PassiveSpec::default()
    };
    p
}

pub fn listener() -> ListenerSpec {
    let mut l = ListenerSpec::new("test", "l", vec!["127.0.0.1:0".parse().unwrap()], "pool");
    l.workers = Some(2);
    l.connect_timeout = Duration::from_millis(500);
    l.io_engine = engine();
    l
}

/// The I/O engine the suite runs on: `SWITCHYARD_TEST_IO_ENGINE=io_uring` runs every test of
/// this crate through the io_uring engine (`scripts/test` runs the suite once per engine);
/// epoll otherwise.
pub fn engine() -> IoEngine {
    match std::env::var("SWITCHYARD_TEST_IO_ENGINE").as_deref() {
        Ok("io_uring") => {
            assert!(
                switchyard_lb::uring::unavailable().is_none(),
                "SWITCHYARD_TEST_IO_ENGINE=io_uring but io_uring is unavailable: {:?}",
                switchyard_lb::uring::unavailable()
            );
            IoEngine::IoUring
        }
        _ => IoEngine::Epoll,
    }
}

/// Where the balancer's accept loops and connections run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// Two dedicated worker threads (one current-thread runtime each): what full and quick
    /// mode ship with (one per CPU).
    Workers,
    /// The test's own runtime (`LbOptions::worker_threads: None`).
    Shared,
}

/// A balancer as it ships (dedicated worker threads).
pub async fn start_lb(pool: PoolSpec, listener: ListenerSpec) -> TestLb {
    start_lb_on(pool, listener, Runtime::Workers).await
}

/// A balancer on the given runtime.
pub async fn start_lb_on(pool: PoolSpec, listener: ListenerSpec, rt: Runtime) -> TestLb {
    let opts = LbOptions {
        grace: Duration::from_millis(200),
        global_max_connections: 100_000,
        worker_threads: (rt == Runtime::Workers).then_some(2),
    };
    start_lb_with(pool, listener, opts).await
}

pub async fn start_lb_with(pool: PoolSpec, listener: ListenerSpec, opts: LbOptions) -> TestLb {
    raise_nofile();
    let admin = AdminState::new();
    let registry = HealthRegistry::with_admin(admin.clone());
    let shutdown = CancellationToken::new();
    let key = listener.key.clone();
    let plan = Plan {
        global_max_connections: None,
        pools: vec![pool],
        listeners: vec![listener],
    };
    let lb = start_plan(plan, registry.clone(), shutdown.clone(), opts)
        .await
        .expect("start lb");
    let addr = lb.listener_addrs(&key.0, &key.1).expect("listener")[0];
    TestLb {
        lb,
        addr,
        shutdown,
        admin,
        registry,
    }
}

/// Connects from a chosen source IP (any 127.x address works on Linux).
pub async fn connect_from(src: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(src, 0))?;
    s.connect(to).await
}

/// Connects, reads the backend's `name\n` greeting.
pub async fn which_backend(s: &mut TcpStream) -> std::io::Result<String> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no greeting"))??;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if b[0] == b'\n' {
            return Ok(String::from_utf8_lossy(&out).into_owned());
        }
        out.push(b[0]);
    }
}

/// One request/response through the balancer: connect, greeting, echo 1 KiB, close.
pub async fn round_trip(to: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect(to).await?;
    let name = which_backend(&mut s).await?;
    let data = [7u8; 1024];
    s.write_all(&data).await?;
    let mut back = [0u8; 1024];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no echo"))??;
    assert_eq!(back, data);
    Ok(name)
}

/// Polls `f` until it is true or `limit` passes (panics then); returns the time it took.
pub async fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    switchyard_testkit::eventually(limit, || std::future::ready(f()))
        .await
        .unwrap_or_else(|| panic!("timed out after {limit:?} waiting for {what}"))
}

/// Is the backend at `addr` up in the balancer's view?
pub fn is_up(t: &TestLb, addr: SocketAddr) -> bool {
    t.registry.get(&addr).is_some_and(|h| h.is_up())
}
