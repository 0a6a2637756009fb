//! Worker threads: one current-thread tokio runtime per worker, each driving the accept loops
//! of its `SO_REUSEPORT` sockets and every connection they accept, so a connection never
//! crosses threads (no work stealing, no cross-thread wake-ups), like HAProxy's and nginx's
//! workers. Health checks, timers and reloads stay on the caller's runtime: spawn only the
//! per-connection work on [`Workers::handle`].

use std::io;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// How often each worker's timer anchor fires (see [`Workers::start`]).
pub const TIMER_ANCHOR: Duration = Duration::from_secs(1);

/// Keeps a timer due within [`TIMER_ANCHOR`] on this runtime for ever. Tokio wakes its driver
/// (an `eventfd` write, then an extra `epoll_wait` return) whenever a new timer is due before
/// every other one, which on a worker whose connections all closed is every new connection's
/// idle timer: 2 syscalls per connection. With this timer pending, a new idle timeout (seconds
/// or minutes away) is never the earliest, and the worker wakes once per interval instead.
async fn timer_anchor() {
    loop {
        tokio::time::sleep(TIMER_ANCHOR).await;
    }
}

/// A set of worker threads, each running a current-thread tokio runtime.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    _threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `n` workers (at least one) named `{name}-{i}`; each runs until `stop` fires, then
    /// drops (closes) whatever is left on it. Each keeps a [`TIMER_ANCHOR`] timer pending so
    /// that arming a connection's idle timer never has to wake its driver.
    pub fn start(n: usize, name: &str, stop: CancellationToken) -> io::Result<Workers> {
        let mut handles = Vec::with_capacity(n.max(1));
        let mut threads = Vec::with_capacity(n.max(1));
        for i in 0..n.max(1) {
            // I/O and timers only: the signal/process driver would add an orphan-reaping check
            // to every park (signals are handled on the caller's runtime)
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()?;
            handles.push(rt.handle().clone());
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || {
                        rt.block_on(async {
                            tokio::select! {
                                _ = stop.cancelled() => {}
                                _ = timer_anchor() => {}
                            }
                        })
                    })?,
            );
        }
        Ok(Workers {
            handles,
            _threads: threads,
        })
    }

    /// The runtime of worker `i` (modulo the worker count).
    pub fn handle(&self, i: usize) -> &Handle {
        &self.handles[i % self.handles.len()]
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// True when there are no workers.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_runs_its_own_thread_until_stopped() {
        let stop = CancellationToken::new();
        let w = Workers::start(3, "test-worker", stop.clone()).unwrap();
        assert_eq!(w.len(), 3);
        let names: Vec<String> = (0..3)
            .map(|i| {
                let (tx, rx) = std::sync::mpsc::channel();
                w.handle(i).spawn(async move {
                    let _ = tx.send(std::thread::current().name().map(str::to_string));
                });
                rx.recv_timeout(std::time::Duration::from_secs(5))
                    .unwrap()
                    .unwrap()
            })
            .collect();
        assert_eq!(names, ["test-worker-0", "test-worker-1", "test-worker-2"]);
        // `handle` wraps around
        let (tx, rx) = std::sync::mpsc::channel();
        w.handle(4).spawn(async move {
            let _ = tx.send(std::thread::current().name().map(str::to_string));
        });
        let name = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        assert_eq!(name.as_deref(), Some("test-worker-1"));
        stop.cancel();
    }

    #[test]
    fn zero_means_one() {
        let stop = CancellationToken::new();
        let w = Workers::start(0, "one", stop.clone()).unwrap();
        assert_eq!(w.len(), 1);
        stop.cancel();
    }
}
