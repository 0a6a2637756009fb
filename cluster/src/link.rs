//! Connection state to etcd, shared by the watcher and the publishers of one node, for `/status`
//! and logs: connected, or disconnected since when (and why).

use std::sync::Mutex;
use std::time::SystemTime;

/// Whether etcd answers, and since when it does not.
#[derive(Debug, Default)]
pub struct Link {
    inner: Mutex<LinkInner>,
}

#[derive(Debug, Default, Clone)]
struct LinkInner {
    down_since: Option<SystemTime>,
    reason: String,
}

impl Link {
    /// A call succeeded.
    pub fn up(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.down_since.take().is_some() {
            tracing::info!(target: "switchyard::cluster", "etcd: connected again");
        }
        g.reason.clear();
    }

    /// A call failed for a connection reason.
    pub fn down(&self, reason: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.down_since.is_none() {
            tracing::warn!(target: "switchyard::cluster", reason, "etcd: disconnected; keeping the last good world, retrying");
            g.down_since = Some(SystemTime::now());
        }
        g.reason = reason.to_string();
    }

    /// `None` while connected; else since when and why not.
    pub fn down_since(&self) -> Option<(SystemTime, String)> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.down_since.map(|t| (t, g.reason.clone()))
    }

    /// `connected` or `disconnected since RFC3339`.
    pub fn describe(&self) -> String {
        match self.down_since() {
            None => "connected".into(),
            Some((t, _)) => format!("disconnected since {}", humantime::format_rfc3339_millis(t)),
        }
    }
}

/// Exponential back-off between retries: 100 ms doubling up to 2 s.
#[derive(Debug, Clone, Copy)]
pub struct Backoff(std::time::Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(std::time::Duration::from_millis(100))
    }
}

impl Backoff {
    /// The next wait, growing the one after.
    pub fn next_wait(&mut self) -> std::time::Duration {
        let w = self.0;
        self.0 = (self.0 * 2).min(std::time::Duration::from_secs(2));
        w
    }

    /// Back to the shortest wait (after a success).
    pub fn reset(&mut self) {
        *self = Backoff::default();
    }
}
