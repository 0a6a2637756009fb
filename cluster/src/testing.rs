//! Test support: a throwaway etcd (the real `etcd` binary on free loopback ports with a temporary
//! data dir, killed on drop) and a TCP proxy that can cut one node off from it. Plain threads,
//! usable from sync and async tests alike.
//!
//! When `etcd` is missing the start panics with how to install it: tests that need etcd never
//! skip silently.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running etcd, killed (and its data dir removed) on drop.
pub struct Etcd {
    child: Child,
    /// `127.0.0.1:PORT` of its client endpoint.
    pub endpoint: SocketAddr,
    dir: PathBuf,
    bin: PathBuf,
    peer: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The etcd binary: `$ETCD_BIN`, else `etcd` on the `PATH`, else `/usr/bin/etcd`.
pub fn etcd_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ETCD_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("etcd"))
        .chain([PathBuf::from("/usr/bin/etcd")])
        .find(|p| p.is_file())
}

impl Etcd {
    /// Starts etcd and waits (bounded) until it answers.
    pub fn start(tag: &str) -> Etcd {
        let bin = etcd_bin().unwrap_or_else(|| {
            panic!(
                "these tests need a real etcd and none was found (ETCD_BIN={:?}; else `etcd` on the PATH or /usr/bin/etcd). \
                 Install it with `sudo apt-get install -y etcd-server` (Debian/Ubuntu), or run `scripts/test`, \
                 which installs it when missing.",
                std::env::var_os("ETCD_BIN")
            )
        });
        for _ in 0..3 {
            let (client, peer) = (free_port(), free_port());
            let dir = std::env::temp_dir().join(format!(
                "switchyard-etcd-{tag}-{}-{client}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("etcd data dir");
            let endpoint = SocketAddr::from(([127, 0, 0, 1], client));
            let child = spawn(&bin, &dir, endpoint, peer);
            let mut etcd = Etcd {
                child,
                endpoint,
                dir,
                bin: bin.clone(),
                peer,
            };
            if etcd.wait_ready(Duration::from_secs(15)) {
                return etcd;
            }
            // Probably lost a port race: try other ports.
            let _ = etcd.child.kill();
        }
        panic!(
            "etcd did not become ready (see its log under {})",
            std::env::temp_dir().display()
        );
    }

    /// Starts a killed etcd again on the same ports and data (keys without leases survive).
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(&self.bin, &self.dir, self.endpoint, self.peer);
        assert!(
            self.wait_ready(Duration::from_secs(15)),
            "etcd did not come back (log: {})",
            self.dir.join("etcd.log").display()
        );
    }

    fn wait_ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut s) =
                TcpStream::connect_timeout(&self.endpoint, Duration::from_millis(200))
            {
                let body = "{\"key\":\"AA==\"}";
                let req = format!(
                    "POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let mut out = String::new();
                if s.write_all(req.as_bytes()).is_ok()
                    && s.read_to_string(&mut out).is_ok()
                    && out.starts_with("HTTP/1.1 200")
                {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `etcd://127.0.0.1:PORT` + `path` (e.g. `/switchyard/world?ttl=2s`).
    pub fn url(&self, path: &str) -> String {
        format!("etcd://{}{path}", self.endpoint)
    }

    /// Kills etcd now (as if its machine died).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(bin: &PathBuf, dir: &std::path::Path, endpoint: SocketAddr, peer: u16) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("etcd.log"))
        .expect("etcd log");
    let curl = format!("http://{endpoint}");
    let purl = format!("http://127.0.0.1:{peer}");
    Command::new(bin)
        .args(["--name", "test", "--data-dir"])
        .arg(dir.join("data"))
        .args([
            "--listen-client-urls",
            &curl,
            "--advertise-client-urls",
            &curl,
        ])
        .args([
            "--listen-peer-urls",
            &purl,
            "--initial-advertise-peer-urls",
            &purl,
        ])
        .args(["--initial-cluster", &format!("test={purl}")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()))
}

/// A TCP forwarder to `upstream` that can be cut (every connection closed, new ones refused)
/// and healed: a network partition between one node and etcd.
pub struct Proxy {
    /// Where nodes connect instead of etcd.
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts forwarding on a free loopback port.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (c, cs, st) = (cut.clone(), conns.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.load(Ordering::Acquire) {
                    break;
                }
                let Ok(client) = client else { continue };
                if c.load(Ordering::Acquire) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(1))
                else {
                    continue;
                };
                let mut list = cs.lock().unwrap();
                for s in [&client, &server] {
                    if let Ok(s2) = s.try_clone() {
                        list.push(s2);
                    }
                }
                drop(list);
                pipe(
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                pipe(server, client);
            }
        });
        Proxy {
            addr,
            cut,
            conns,
            stop,
        }
    }

    /// Partition: close every connection and refuse new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Heal the partition.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::Release);
    }

    /// `etcd://PROXY` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("etcd://{}{path}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.cut();
        let _ = TcpStream::connect(self.addr);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
