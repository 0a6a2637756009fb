//! The load engine: runs one [`Worker`] per connection in a closed loop (each sends its next
//! request when the last one is answered: maximum throughput) or an open loop (requests are due
//! at a fixed rate and each one's latency is measured from when it was *due*, so a stalled
//! server shows as latency instead of as fewer requests: no coordinated omission).
//!
//! Every loop is bounded: by the duration, by an optional request count, and in the open loop by
//! a grace period after which requests still not sent count as `not sent in time`. Each worker
//! records into its own histograms (no shared lock on the request path); they are merged at
//! the end.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Closed or open loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Each connection sends its next request when the last one is answered.
    Closed,
    /// Requests are due at `rate` per second in total, spread over the connections.
    Open { rate: f64 },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    /// Concurrent workers (connections).
    pub connections: usize,
    pub duration: Duration,
    /// Stop after this many requests in total (also bounds the open loop's schedule).
    pub max_requests: Option<u64>,
    /// Open loop: how long after `duration` late requests may still be sent.
    pub grace: Duration,
}

/// What one request measured besides its total latency (phases of the chain).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    /// Name resolution, when this request had to resolve.
    pub dns: Option<Duration>,
    /// TCP connect, when this request opened a connection.
    pub connect: Option<Duration>,
    /// Request sent to response head received.
    pub ttfb: Option<Duration>,
    /// TLS handshake (after the TCP connect), when this request made one.
    pub tls: Option<Duration>,
    /// The TLS handshake resumed an earlier session.
    pub resumed: bool,
}

/// A short, fixed name for a kind of error (`timeout`, `refused`, `http 5xx`, ...).
pub type ErrorKind = &'static str;

/// One connection's request loop body.
pub trait Worker: Send + 'static {
    /// Sends one request and waits for its answer.
    fn call(&mut self) -> impl Future<Output = Result<Timing, ErrorKind>> + Send;
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    pub ok: AtomicU64,
    pub errors: AtomicU64,
}

/// Latencies are recorded in microseconds, 1 µs .. 1 h, 3 significant figures.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds")
}

/// Everything one run recorded.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Latency of successful requests (from the intended start in the open loop).
    pub latency: Histogram<u64>,
    pub dns: Histogram<u64>,
    pub connect: Histogram<u64>,
    pub ttfb: Histogram<u64>,
    pub tls: Histogram<u64>,
    /// Successful requests whose TLS handshake was resumed.
    pub resumed: u64,
    pub ok: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Per second of the run (by when requests were due): successes, errors, latency sum (µs)
    /// and max (µs).
    pub seconds: Vec<SecondStats>,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
}

/// One second of the run.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecondStats {
    pub ok: u64,
    pub errors: u64,
    pub latency_sum_us: u64,
    pub latency_max_us: u64,
}

impl Recorded {
    fn new() -> Self {
        Recorded {
            latency: histogram(),
            dns: histogram(),
            connect: histogram(),
            ttfb: histogram(),
            tls: histogram(),
            resumed: 0,
            ok: 0,
            errors: BTreeMap::new(),
            seconds: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    fn record(
        &mut self,
        start: Instant,
        due: Instant,
        took: Duration,
        r: Result<Timing, ErrorKind>,
    ) {
        let sec = due.saturating_duration_since(start).as_secs() as usize;
        if self.seconds.len() <= sec {
            self.seconds.resize(sec + 1, SecondStats::default());
        }
        let s = &mut self.seconds[sec];
        match r {
            Ok(t) => {
                let us = (took.as_micros() as u64).max(1);
                self.latency.saturating_record(us);
                for (h, d) in [
                    (&mut self.dns, t.dns),
                    (&mut self.connect, t.connect),
                    (&mut self.ttfb, t.ttfb),
                    (&mut self.tls, t.tls),
                ] {
                    if let Some(d) = d {
                        h.saturating_record((d.as_micros() as u64).max(1));
                    }
                }
                self.ok += 1;
                self.resumed += u64::from(t.resumed);
                s.ok += 1;
                s.latency_sum_us += us;
                s.latency_max_us = s.latency_max_us.max(us);
            }
            Err(kind) => {
                *self.errors.entry(kind).or_default() += 1;
                s.errors += 1;
            }
        }
    }

    fn merge(&mut self, other: Recorded) {
        let _ = self.latency.add(&other.latency);
        let _ = self.dns.add(&other.dns);
        let _ = self.connect.add(&other.connect);
        let _ = self.ttfb.add(&other.ttfb);
        let _ = self.tls.add(&other.tls);
        self.ok += other.ok;
        self.resumed += other.resumed;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        if self.seconds.len() < other.seconds.len() {
            self.seconds
                .resize(other.seconds.len(), SecondStats::default());
        }
        for (a, b) in self.seconds.iter_mut().zip(other.seconds) {
            a.ok += b.ok;
            a.errors += b.errors;
            a.latency_sum_us += b.latency_sum_us;
            a.latency_max_us = a.latency_max_us.max(b.latency_max_us);
        }
    }

    /// Requests answered or failed.
    pub fn requests(&self) -> u64 {
        self.ok + self.errors.values().sum::<u64>()
    }
}

/// Runs `plan` with workers made by `make(i)`; `progress` is updated as requests finish.
pub async fn run<W: Worker>(
    plan: &Plan,
    mut make: impl FnMut(usize) -> W,
    progress: Arc<Progress>,
) -> Recorded {
    let connections = plan.connections.max(1);
    // everyone starts together, a moment from now
    let start = Instant::now() + Duration::from_millis(5);
    let deadline = start + plan.duration;
    let next = Arc::new(AtomicU64::new(0));
    let budget = plan.max_requests.unwrap_or(u64::MAX);
    let (interval, scheduled) = match plan.mode {
        Mode::Closed => (Duration::ZERO, budget),
        Mode::Open { rate } => {
            let rate = rate.max(0.001);
            let n = (rate * plan.duration.as_secs_f64()).ceil() as u64;
            (Duration::from_secs_f64(1.0 / rate), n.min(budget))
        }
    };
    let cutoff = deadline + plan.grace;
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        let mut w = make(i);
        let next = next.clone();
        let progress = progress.clone();
        let mode = plan.mode;
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorded::new();
            tokio::time::sleep_until(start).await;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= scheduled {
                    break;
                }
                let due = match mode {
                    Mode::Closed => {
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        now
                    }
                    Mode::Open { .. } => {
                        let due = start + interval.mul_f64(n as f64);
                        if Instant::now() >= cutoff {
                            // far behind: this and every later request were never sent
                            let left = scheduled.saturating_sub(n);
                            *rec.errors.entry("not sent in time").or_default() += left;
                            next.fetch_add(left, Ordering::Relaxed);
                            progress.errors.fetch_add(left, Ordering::Relaxed);
                            break;
                        }
                        tokio::time::sleep_until(due).await;
                        due
                    }
                };
                let r = w.call().await;
                let took = Instant::now().saturating_duration_since(due);
                match r {
                    Ok(_) => progress.ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => progress.errors.fetch_add(1, Ordering::Relaxed),
                };
                rec.record(start, due, took, r);
            }
            rec
        }));
    }
    let mut all = Recorded::new();
    for t in tasks {
        if let Ok(r) = t.await {
            all.merge(r);
        }
    }
    all.elapsed = Instant::now().saturating_duration_since(start);
    all
}

/// Prints a one-line progress bar on stderr every 500 ms until `stop` resolves.
pub async fn show_progress(progress: Arc<Progress>, duration: Duration, label: String) {
    use std::io::Write;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut last = (0, started);
    loop {
        tick.tick().await;
        let ok = progress.ok.load(Ordering::Relaxed);
        let errs = progress.errors.load(Ordering::Relaxed);
        let now = Instant::now();
        let rate = (ok - last.0) as f64 / now.duration_since(last.1).as_secs_f64().max(1e-3);
        last = (ok, now);
        let frac = (started.elapsed().as_secs_f64() / duration.as_secs_f64().max(1e-3)).min(1.0);
        let filled = (frac * 30.0) as usize;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{label} [{}{}] {:>4.0}s  {ok} ok  {errs} errors  {rate:.0}/s   ",
            "#".repeat(filled),
            " ".repeat(30 - filled),
            started.elapsed().as_secs_f64()
        );
        let _ = err.flush();
    }
}
