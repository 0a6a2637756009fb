//! Limits: max connections (refused at once, counted), per-source rate, and accept back-off on
//! EMFILE (in a child process with a lowered RLIMIT_NOFILE, so other tests are not affected).
#![allow(unsafe_code)] // kill, getrusage, getrlimit/setrlimit; SAFETY comment on each block

use crate::harness::*;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use switchyard_config::lb::Forwarding;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// A refused connection is reset at once: the RST may even beat the client's own view of the
/// handshake (then `connect` itself fails).
async fn refused_conn(c: std::io::Result<TcpStream>) -> bool {
    match c {
        Err(_) => true,
        Ok(s) => refused(s).await,
    }
}

async fn refused(mut s: TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn max_connections_refuses_at_once_and_recovers() {
    let b = Backend::start(Behaviour::Named("b".into())).await;
    let mut l = listener();
    l.max_connections = 3;
    let mut p = pool(&[(b.addr, "z", 1)]);
    p.check = None; // health probes would count as backend connections
    let t = start_lb(p, l).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(t.addr).await.unwrap();
        assert_eq!(which_backend(&mut s).await.unwrap(), "b");
        open.push(s);
    }
    let t0 = Instant::now();
    for _ in 0..3 {
        assert!(
            refused_conn(TcpStream::connect(t.addr).await).await,
            "over the cap"
        );
    }
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(b.count(), 3);
    assert_eq!(t.lb.status().listeners[0].active_connections, 3);
    drop(open.pop());
    wait_until(Duration::from_secs(2), "a slot frees", || {
        t.lb.status().listeners[0].active_connections == 2
    })
    .await;
    assert_eq!(round_trip(t.addr).await.unwrap(), "b");
}

#[tokio::test]
async fn per_source_rate_limit_is_enforced_per_address() {
    let b = Backend::start(Behaviour::Named("b".into())).await;
    let mut l = listener();
    l.source_rate = Some((0.5, 3));
    let mut p = pool(&[(b.addr, "z", 1)]);
    p.check = None;
    // running out of fds here is not the backend's fault: it must not be ejected for it
    p.passive = switchyard_balance::health::PassiveSpec {
        consecutive_failures: 1,
        ejection: Duration::from_secs(60),
        max_ejected_percent: 100,
    };
    let t = start_lb(p, l).await;
    let ip5: IpAddr = "127.0.0.5".parse().unwrap();
    let ip6: IpAddr = "127.0.0.6".parse().unwrap();
    for _ in 0..3 {
        let mut s = connect_from(ip5, t.addr).await.unwrap();
        assert_eq!(which_backend(&mut s).await.unwrap(), "b");
    }
    assert!(
        refused_conn(connect_from(ip5, t.addr).await).await,
        "4th from the same source"
    );
    let mut s = connect_from(ip6, t.addr).await.unwrap();
    assert_eq!(
        which_backend(&mut s).await.unwrap(),
        "b",
        "another source is not affected"
    );
    assert_eq!(b.count(), 4);
}

const CHILD_ENV: &str = "SWITCHYARD_LB_EMFILE_CHILD";

/// An echo server on plain threads (at most `max` connections), for the EMFILE test's parent.
fn thread_echo(max: usize) -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().take(max) {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                let _ = std::io::copy(&mut s.try_clone().unwrap(), &mut s);
            });
        }
    });
    addr
}

/// Parent side: the child runs a balancer, then takes every fd it has left (as a busy host
/// would) while our connections wait in its backlog; we measure its CPU while accept keeps
/// failing, check an established connection is still served, give the fds back and check new
/// clients are served again.
///
/// The child holds the spare fds itself rather than letting the balancer's own connections use
/// them up: how many of a burst of clients get a backend before the fds run out depends on
/// scheduling, and a burst that ends with one spare fd never makes accept fail at all. The
/// echo backend lives here, in the parent, outside the child's fd limit.
#[test]
fn emfile_backs_off_instead_of_spinning() {
    let backend = thread_echo(200);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "limits::emfile_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, backend.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // watchdog: a stuck child must not hang the suite (killed unless the test finishes first)
    let pid = child.id() as libc::pid_t;
    let (finished, watch) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if watch.recv_timeout(Duration::from_secs(40)).is_err() {
            // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut value = |key: &str| -> String {
        loop {
            let line = lines.next().expect("child output").unwrap();
            // the test harness may print "test ... " on the same line
            if let Some(at) = line.find(key) {
                return line[at + key.len()..].trim().to_string();
            }
        }
    };
    let addr: std::net::SocketAddr = value("ADDR ").parse().unwrap();
    use std::io::Read;
    let echo = |s: &mut std::net::TcpStream, what: &[u8]| {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(what).unwrap();
        let mut b = vec![0u8; what.len()];
        s.read_exact(&mut b).unwrap();
        assert_eq!(b, what);
    };
    // one connection fully established first
    let mut first = std::net::TcpStream::connect(addr).unwrap();
    echo(&mut first, b"first");
    writeln!(stdin, "exhaust").unwrap();
    assert_eq!(
        value("EXHAUSTED "),
        "true",
        "the child really ran out of fds"
    );
    // these complete in the kernel's backlog; accepting any of them needs an fd
    let mut conns: Vec<std::net::TcpStream> = (0..40)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    writeln!(stdin, "measure").unwrap();
    assert_eq!(
        value("BACKED_OFF "),
        "true",
        "the balancer's accept failed and it said it backs off"
    );
    let cpu_ms: u64 = value("CPU_MS ").parse().unwrap();
    assert!(
        cpu_ms < 300,
        "child used {cpu_ms} ms CPU in 1 s while out of fds: spinning"
    );
    // 40 clients refused by EMFILE over more than a second: one warning line (at most one per
    // listener per RESOURCE_WARN_EVERY, counting the failures since the last)
    assert_eq!(value("WARNING_LINES "), "1");
    // an established connection is still served while accept fails
    echo(&mut first, b"hello");
    // fds come back: once the backlog of waiting clients (closed now) is worked off, new
    // connections are served again (bounded polling)
    conns.clear();
    writeln!(stdin, "release").unwrap();
    let t0 = std::time::Instant::now();
    loop {
        let ok = std::net::TcpStream::connect(addr)
            .ok()
            .is_some_and(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut b = [0u8; 5];
                s.write_all(b"again").is_ok() && s.read_exact(&mut b).is_ok() && &b == b"again"
            });
        if ok {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "never served again");
        std::thread::sleep(Duration::from_millis(100));
    }
    writeln!(stdin, "done").unwrap();
    let status = child.wait().unwrap();
    let _ = finished.send(());
    assert!(status.success());
}

fn cpu_ms() -> u64 {
    // SAFETY: `rusage` is plain integers, for which all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one `rusage` we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
    ms(ru.ru_utime) + ms(ru.ru_stime)
}

/// Warnings the child's balancer logged (the accept back-off is one); counted without any fd.
static WARNINGS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct CountWarnings;

impl Write for CountWarnings {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if String::from_utf8_lossy(b).contains("backing off") {
            WARNINGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Child side (does nothing unless started by the test above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emfile_child() {
    let Some(backend) = std::env::var(CHILD_ENV).ok().and_then(|a| a.parse().ok()) else {
        return;
    };
    let sub = tracing_subscriber::fmt()
        .with_writer(|| CountWarnings)
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _ = tracing::subscriber::set_global_default(sub);
    let mut l = listener();
    l.forwarding = Forwarding::Copy;
    l.workers = Some(1);
    let mut p = pool(&[(backend, "z", 1)]);
    p.check = None;
    // running out of fds here is not the backend's fault: it must not be ejected for it
    p.passive = switchyard_balance::health::PassiveSpec {
        consecutive_failures: 1,
        ejection: Duration::from_secs(60),
        max_ejected_percent: 100,
    };
    // a low limit keeps the fd-taking loop below short; set before the balancer starts, as a
    // real limit is (the io_uring engine's multishot accept takes the limit when it is armed),
    // and after the harness raised it once
    raise_nofile();
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    // SAFETY: getrlimit/setrlimit read and write one local `rlimit`.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = open + 64;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
    let t = start_lb(p, l).await;
    println!("\nADDR {}", t.addr);
    let stdin = tokio::io::stdin();
    let mut lines = tokio::io::BufReader::new(stdin);
    let mut line = String::new();
    use tokio::io::AsyncBufReadExt;
    lines.read_line(&mut line).await.unwrap(); // exhaust
    let mut held = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        held.push(f);
        if held.len() > 1000 {
            break; // the limit did not take: report it below instead of looping on
        }
    }
    println!("EXHAUSTED {}", std::fs::File::open("/dev/null").is_err());
    line.clear();
    lines.read_line(&mut line).await.unwrap(); // measure
    let t0 = std::time::Instant::now();
    while WARNINGS.load(std::sync::atomic::Ordering::Relaxed) == 0
        && t0.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "BACKED_OFF {}",
        WARNINGS.load(std::sync::atomic::Ordering::Relaxed) > 0
    );
    let c0 = cpu_ms();
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("CPU_MS {}", cpu_ms() - c0);
    println!(
        "WARNING_LINES {}",
        WARNINGS.load(std::sync::atomic::Ordering::Relaxed)
    );
    line.clear();
    lines.read_line(&mut line).await.unwrap(); // release
    drop(held);
    line.clear();
    lines.read_line(&mut line).await.unwrap(); // done
    drop(t);
}

const RESET_CHILD_ENV: &str = "SWITCHYARD_LB_RESET_CHILD";

/// Clients that connect and reset while they wait in the accept queue (a burst the balancer
/// cannot keep up with, then clients giving up) cost the backends nothing: the balancer
/// notices the reset before it connects. The balancer runs in a child process that is stopped
/// (SIGSTOP) while the clients connect and reset, so every reset is in the queue before any
/// accept: deterministic, where a race with a running balancer would not be.
#[test]
fn clients_that_reset_in_the_accept_queue_get_no_backend_connection() {
    // counting echo backend in this (parent) process
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = l.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let acc = accepted.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            acc.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                let _ = std::io::copy(&mut s.try_clone().unwrap(), &mut s);
            });
        }
    });
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "limits::reset_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(RESET_CHILD_ENV, backend.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let (finished, watch) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if watch.recv_timeout(Duration::from_secs(40)).is_err() {
            // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: std::net::SocketAddr = loop {
        let line = lines.next().expect("child output").unwrap();
        if let Some(at) = line.find("ADDR ") {
            break line[at + 5..].trim().parse().unwrap();
        }
    };
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    const RESETS: usize = 300;
    for _ in 0..RESETS {
        // the kernel completes the handshake while the balancer is stopped
        let c = std::net::TcpStream::connect(addr).unwrap();
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(c); // RST
    }
    // one client that stays, behind them in the same queue
    let mut live = std::net::TcpStream::connect(addr).unwrap();
    live.write_all(b"still here").unwrap();
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    live.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut back = [0u8; 10];
    use std::io::Read;
    live.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still here");
    // the resets were accepted before the live client (one FIFO queue): nothing is pending
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "backend connections for {RESETS} clients that reset in the queue, plus one live client"
    );
    writeln!(stdin, "done").unwrap();
    let status = child.wait().unwrap();
    let _ = finished.send(());
    assert!(status.success());
}

/// Child side of the reset test (does nothing unless started by it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_child() {
    let Some(backend) = std::env::var(RESET_CHILD_ENV)
        .ok()
        .and_then(|a| a.parse().ok())
    else {
        return;
    };
    let mut l = listener();
    l.workers = Some(1); // one accept queue, so the live client is accepted last
    let mut p = pool(&[(backend, "z", 1)]);
    p.check = None; // health probes would count as backend connections
    let t = start_lb(p, l).await;
    println!("\nADDR {}", t.addr);
    let mut line = String::new();
    use tokio::io::AsyncBufReadExt;
    tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await
        .unwrap();
    drop(t);
}
