//! What only the io_uring engine has: its bounded buffer ring under slow readers, the handover
//! of bulk flows to the epoll engine's splice relay (auto forwarding), and the fallback to epoll
//! where the kernel refuses io_uring. (Everything else of the balancer runs through the whole
//! suite on both engines: `SWITCHYARD_TEST_IO_ENGINE=io_uring`.)
#![allow(unsafe_code)] // seccomp(2) in the fallback test's child; SAFETY comments on the blocks

use crate::harness::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use switchyard_config::lb::{Forwarding, IoEngine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The io_uring engine is what these tests are about; where the kernel refuses it they have
/// nothing to test (the fallback test below covers that case on every kernel).
fn uring_or_skip() -> bool {
    match switchyard_lb::uring::unavailable() {
        None => true,
        Some(why) => {
            eprintln!("io_uring unavailable here ({why}): skipped");
            false
        }
    }
}

/// The process's Prometheus text (a recorder installed on first use: listeners started after
/// that have live counters).
fn metrics_text() -> String {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .expect("one recorder per test process")
        })
        .render()
}

fn counter(text: &str, name: &str, labels: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A backend that greets every connection with up to 8 MiB (bounded) and echoes a client's
/// first line after a "ping" (for the fresh clients below).
async fn flood_backend() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut first = [0u8; 4];
                s.read_exact(&mut first).await.unwrap_or_default();
                if &first == b"ping" {
                    let _ = s.write_all(b"pong").await;
                    return;
                }
                let chunk = vec![9u8; 64 << 10];
                for _ in 0..128 {
                    if s.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// 100 connections (more than the ring's 64 buffers per worker) whose clients never read
/// while their backend floods them: the ring gives a buffer back as soon as a slow peer stops
/// taking bytes (the rest waits on the connection's own heap buffer), so a new client is still
/// served at once.
#[tokio::test]
async fn slow_readers_do_not_starve_other_connections() {
    if !uring_or_skip() {
        return;
    }
    raise_nofile();
    let backend = flood_backend().await;
    let mut l = listener();
    l.io_engine = IoEngine::IoUring;
    l.forwarding = Forwarding::Copy;
    l.workers = Some(1);
    let mut p = pool(&[(backend, "a", 1)]);
    p.check = None;
    let t = start_lb(p, l).await;
    let mut stuck = Vec::new();
    for _ in 0..100 {
        // a small receive window, never read: the balancer's sends to it stop at once
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let mut s = sock.connect(t.addr).await.unwrap();
        s.write_all(b"go!!").await.unwrap();
        stuck.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // the floods fill what they can
    for _ in 0..5 {
        let mut s = TcpStream::connect(t.addr).await.unwrap();
        s.write_all(b"ping").await.unwrap();
        let mut back = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut back))
            .await
            .expect("a new client is served while 100 others do not read")
            .unwrap();
        assert_eq!(&back, b"pong");
    }
    drop(stuck);
}

/// Auto forwarding on io_uring: request/response traffic stays on the ring, a flow that fills
/// a buffer moves to the epoll engine's splice relay, and the bytes are exact either way.
#[tokio::test]
async fn bulk_flows_move_to_the_splice_relay_byte_exact() {
    if !uring_or_skip() {
        return;
    }
    let before = metrics_text();
    let b = Backend::start(Behaviour::HashSink).await;
    let mut l = listener();
    l.key.1 = "uring-bulk".into();
    l.io_engine = IoEngine::IoUring;
    l.forwarding = Forwarding::Auto;
    l.buffer_size = 16 << 10;
    let mut p = pool(&[(b.addr, "a", 1)]);
    p.check = None;
    let t = start_lb(p, l).await;
    let bulk = |text: &str| {
        counter(
            text,
            "switchyard_lb_engine_handovers_total",
            "listener=\"uring-bulk\",reason=\"bulk\"",
        )
    };
    let base = bulk(&before);
    // small: a few hundred bytes each, no handover
    for (i, len) in [0usize, 1, 700].into_iter().enumerate() {
        crate::relay::sink_exact(t.addr, i as u64 + 1, len).await;
    }
    assert_eq!(
        bulk(&metrics_text()),
        base,
        "small exchanges stay on the ring"
    );
    // bulk: 32 MiB each, handed over mid-stream, still exact
    for seed in 0..3u64 {
        crate::relay::sink_exact(t.addr, 100 + seed, 32 << 20).await;
    }
    assert_eq!(bulk(&metrics_text()), base + 3, "each bulk flow moved once");
}

const REFUSED_CHILD_ENV: &str = "SWITCHYARD_LB_URING_REFUSED_CHILD";

/// A kernel that refuses io_uring (here: a seccomp filter that makes `io_uring_setup` fail with
/// EPERM, as container runtimes' default profiles do) runs an `io_uring` listener on epoll,
/// says so in one warning, and serves. Runs in a child process (the filter is for good).
#[test]
fn falls_back_to_epoll_where_the_kernel_refuses_io_uring() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "uring::refused_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(REFUSED_CHILD_ENV, "1")
        .env_remove("SWITCHYARD_TEST_IO_ENGINE") // the child asks for io_uring itself
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let lines: Vec<String> = BufReader::new(&out.stdout[..])
        .lines()
        .map_while(Result::ok)
        .collect();
    let value = |key: &str| {
        lines
            .iter()
            .find_map(|l| l.find(key).map(|at| l[at + key.len()..].trim().to_string()))
            .unwrap_or_else(|| panic!("child said no {key}: {lines:?}"))
    };
    assert_eq!(value("FILTERED "), "true", "the seccomp filter is in place");
    assert!(
        value("REASON ").contains("io_uring_setup failed"),
        "{}",
        value("REASON ")
    );
    assert_eq!(value("WARNED "), "1", "one warning line per listener");
    assert_eq!(value("SERVED "), "b");
}

/// Warning lines about the fallback, counted by the child's subscriber.
static FALLBACK_WARNINGS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct CountFallback;

impl Write for CountFallback {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if String::from_utf8_lossy(b).contains("io_uring is not available here") {
            FALLBACK_WARNINGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Makes `io_uring_setup` fail with EPERM in every thread of this process.
fn refuse_io_uring() -> bool {
    const IO_URING_SETUP: u32 = 425; // the same number on every architecture (since 5.1)
    let prog = [
        // A = seccomp_data.nr
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: IO_URING_SETUP,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with integer arguments; seccomp(2) reads `fprog`, which points at `prog`,
    // both alive for the call.
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_TSYNC,
                &fprog as *const libc::sock_fprog,
            ) == 0
    }
}

/// Child side (does nothing unless started by the test above).
#[test]
fn refused_child() {
    if std::env::var(REFUSED_CHILD_ENV).is_err() {
        return;
    }
    let filtered = refuse_io_uring();
    println!("\nFILTERED {filtered}");
    let sub = tracing_subscriber::fmt()
        .with_writer(|| CountFallback)
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _ = tracing::subscriber::set_global_default(sub);
    println!(
        "REASON {}",
        switchyard_lb::uring::unavailable().unwrap_or("available")
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = Backend::start(Behaviour::Named("b".into())).await;
        let mut l = listener();
        l.io_engine = IoEngine::IoUring;
        let mut p = pool(&[(b.addr, "z", 1)]);
        p.check = None;
        let t = start_lb(p, l).await;
        println!(
            "WARNED {}",
            FALLBACK_WARNINGS.load(std::sync::atomic::Ordering::Relaxed)
        );
        println!("SERVED {}", round_trip(t.addr).await.unwrap());
    });
}

/// Sends `what` and reads it back (5 s at most).
async fn echo(s: &mut TcpStream, what: &[u8]) {
    let fut = async {
        s.write_all(what).await.unwrap();
        let mut back = vec![0u8; what.len()];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(back, what);
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .expect("echo within 5 s");
}

/// Switching a listener's engine by reload rebinds it; connections of the old engine live on
/// (both ways), the new one serves, and back again.
#[tokio::test]
async fn a_reload_switches_the_engine_and_keeps_connections() {
    if !uring_or_skip() {
        return;
    }
    let b = Backend::start(Behaviour::Echo).await;
    let mut p = pool(&[(b.addr, "z", 1)]);
    p.check = None;
    let mut l = listener();
    l.io_engine = IoEngine::Epoll;
    let t = start_lb(p.clone(), l.clone()).await;
    let mut kept = vec![TcpStream::connect(t.addr).await.unwrap()];
    echo(&mut kept[0], b"epoll").await;
    for engine in [IoEngine::IoUring, IoEngine::Epoll, IoEngine::IoUring] {
        l.io_engine = engine;
        let s =
            t.lb.reload_plan(switchyard_lb::Plan {
                global_max_connections: None,
                pools: vec![p.clone()],
                listeners: vec![l.clone()],
            })
            .await
            .unwrap();
        assert_eq!(
            (s.listeners_bound, s.listeners_updated),
            (1, 0),
            "{engine:?}: rebound"
        );
        let addr = t.lb.listener_addrs("test", "l").unwrap()[0];
        let mut fresh = TcpStream::connect(addr).await.unwrap();
        echo(&mut fresh, b"fresh").await;
        for k in &mut kept {
            echo(k, b"still").await;
        }
        kept.push(fresh);
    }
}
