//! Worker threads: one current-thread tokio runtime per worker, each driving the accept loops
//! of its `SO_REUSEPORT` sockets and every connection they accept, so a connection never
//! crosses threads (no work stealing, no cross-thread wake-ups), like HAProxy's and nginx's
//! workers. Health checks, drain timers and reloads stay on the caller's runtime.

use std::io;
use std::thread::JoinHandle;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// The balancer's worker threads.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    _threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `n` workers; each runs until `stop` fires, then drops (closes) what is left on it.
    pub fn start(n: usize, stop: CancellationToken) -> io::Result<Workers> {
        let mut handles = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("lb-worker-{i}"))
                    .spawn(move || rt.block_on(stop.cancelled()))?,
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
