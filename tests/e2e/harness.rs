//! A small harness: temp files, the real binary as a child process, readiness from its banner;
//! plain HTTP/1.1 requests over real sockets and polling come from `switchyard-testkit`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_switchyard")
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("switchyard-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    /// Writes `name` with `contents` and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `switchyard run`, killed on drop.
pub struct Node {
    pub child: Child,
    pub stdout: mpsc::Receiver<String>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Node {
    /// Starts `switchyard run` with `args` and waits (bounded) for its `ready` line.
    pub fn start(args: &[&str]) -> Node {
        Node::start_env(args, &[])
    }

    /// [`Node::start`] with extra environment variables.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Node {
        let mut child = Command::new(bin())
            .arg("run")
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchyard");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let err = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let node = Node {
            child,
            stdout: rx,
            stderr,
        };
        node.wait_stdout_line("ready", Duration::from_secs(20));
        node
    }

    /// Waits for a stdout line equal to `want`.
    pub fn wait_stdout_line(&self, want: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) if line == want => return,
                Ok(_) => {}
                Err(_) => panic!(
                    "no {want:?} line within {within:?}; stderr:\n{}",
                    self.stderr()
                ),
            }
        }
    }

    /// Waits until stderr contains `needle`.
    pub fn wait_stderr(&self, needle: &str, within: Duration) {
        poll_until(within, || self.stderr().contains(needle))
            .unwrap_or_else(|_| panic!("stderr never said {needle:?}:\n{}", self.stderr()));
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends a signal to the process.
    #[allow(unsafe_code)] // kill(2)
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it is true or `within` passes (see `switchyard_testkit::eventually`).
pub fn poll_until(within: Duration, f: impl FnMut() -> bool) -> Result<(), ()> {
    switchyard_testkit::eventually_blocking(within, f)
        .map(|_| ())
        .ok_or(())
}

pub use switchyard_testkit::http::http;

/// Writes the demo world moved to `127.{net}.x.y` into `dir` and returns its path.
pub fn demo_config(dir: &TempDir, net: u8) -> PathBuf {
    dir.write("world.toml", &switchyard_config::demo_toml_on(net))
}

/// An address of the demo world on `127.{net}.x.y`.
pub fn addr(net: u8, rest: &str) -> SocketAddr {
    format!("127.{net}.{rest}").parse().expect("address")
}
