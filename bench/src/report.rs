//! The report of one run: what was measured (JSON, stable field names), the text table printed
//! at the end, and `bench compare A.json B.json` (ratios B/A).

use crate::load::{Mode, Plan, Recorded};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// One second of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Second {
    pub second: u64,
    pub ok: u64,
    pub errors: u64,
    pub mean_ms: f64,
    pub max_ms: f64,
}

/// The report of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `dns`, `l4`, `http` or `chain`.
    pub kind: String,
    /// What was loaded, in words (`udp 127.0.0.1:8053`, `http://127.0.1.1:8080/v1/home`).
    pub target: String,
    /// `closed` or `open`.
    pub mode: String,
    pub connections: usize,
    /// Open loop: the requested rate per second.
    pub rate: Option<f64>,
    pub duration_s: f64,
    pub requests: u64,
    pub ok: u64,
    /// Successful requests per second of wall time.
    pub throughput: f64,
    pub errors: BTreeMap<String, u64>,
    /// Total latency of successful requests (open loop: from when each was due).
    pub latency: Percentiles,
    /// Phases of the chain (`dns`, `connect`, `tls`, `ttfb`), when measured.
    pub phases: BTreeMap<String, Percentiles>,
    /// `bench tls`: how many of the successful requests' handshakes resumed a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_resumed: Option<u64>,
    /// The latency distribution: (percentile, ms) points for charts.
    pub curve: Vec<(f64, f64)>,
    pub timeline: Vec<Second>,
}

impl Report {
    /// Builds the report of a finished run.
    pub fn build(kind: &str, target: String, plan: &Plan, rec: &Recorded) -> Report {
        let mut phases = BTreeMap::new();
        for (name, h) in [
            ("dns", &rec.dns),
            ("connect", &rec.connect),
            ("ttfb", &rec.ttfb),
            ("tls", &rec.tls),
        ] {
            if !h.is_empty() {
                phases.insert(name.to_string(), Percentiles::of(h));
            }
        }
        let curve = if rec.latency.is_empty() {
            Vec::new()
        } else {
            [
                0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
            ]
            .iter()
            .map(|&p| (p, rec.latency.value_at_percentile(p) as f64 / 1000.0))
            .collect()
        };
        let secs = rec.elapsed.as_secs_f64().max(1e-6);
        Report {
            kind: kind.to_string(),
            target,
            mode: match plan.mode {
                Mode::Closed => "closed".into(),
                Mode::Open { .. } => "open".into(),
            },
            connections: plan.connections,
            rate: match plan.mode {
                Mode::Open { rate } => Some(rate),
                Mode::Closed => None,
            },
            duration_s: secs,
            requests: rec.requests(),
            ok: rec.ok,
            throughput: rec.ok as f64 / secs,
            errors: rec
                .errors
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            latency: Percentiles::of(&rec.latency),
            tls_resumed: (!rec.tls.is_empty()).then_some(rec.resumed),
            phases,
            curve,
            timeline: rec
                .seconds
                .iter()
                .enumerate()
                .map(|(i, s)| Second {
                    second: i as u64,
                    ok: s.ok,
                    errors: s.errors,
                    mean_ms: if s.ok == 0 {
                        0.0
                    } else {
                        s.latency_sum_us as f64 / s.ok as f64 / 1000.0
                    },
                    max_ms: s.latency_max_us as f64 / 1000.0,
                })
                .collect(),
        }
    }

    /// The table printed at the end of a run.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let mode = match self.rate {
            Some(r) => format!("open loop at {r}/s (latency from when each request was due)"),
            None => "closed loop".to_string(),
        };
        let _ = writeln!(o, "switchyard bench {}: {}", self.kind, self.target);
        let _ = writeln!(
            o,
            "  {mode}, {} connections, {:.1} s",
            self.connections, self.duration_s
        );
        let _ = writeln!(
            o,
            "  requests {}  ok {}  errors {}  throughput {:.1}/s",
            self.requests,
            self.ok,
            self.requests - self.ok,
            self.throughput
        );
        let _ = writeln!(
            o,
            "\n  {:<9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency", "mean", "p50", "p90", "p99", "p99.9", "max"
        );
        let mut row = |name: &str, p: &Percentiles| {
            let _ = writeln!(
                o,
                "  {:<9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                name,
                ms(p.mean_ms),
                ms(p.p50_ms),
                ms(p.p90_ms),
                ms(p.p99_ms),
                ms(p.p999_ms),
                ms(p.max_ms)
            );
        };
        row("total", &self.latency);
        for (k, p) in &self.phases {
            row(k, p);
        }
        if let Some(n) = self.tls_resumed {
            let _ = writeln!(
                o,
                "\n  TLS handshakes: {} full, {n} resumed",
                self.ok.saturating_sub(n)
            );
        }
        if !self.errors.is_empty() {
            let _ = writeln!(o, "\n  errors by kind:");
            for (k, v) in &self.errors {
                let _ = writeln!(o, "    {k:<24} {v}");
            }
        }
        o
    }
}

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2}s", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.1}ms")
    } else {
        format!("{v:.2}ms")
    }
}

/// `bench compare`: B relative to A, metric by metric (ratio > 1: B is higher).
pub fn compare(a: &Report, b: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "A: {} {} ({}, {} conns)",
        a.kind, a.target, a.mode, a.connections
    );
    let _ = writeln!(
        o,
        "B: {} {} ({}, {} conns)",
        b.kind, b.target, b.mode, b.connections
    );
    let _ = writeln!(
        o,
        "\n  {:<14} {:>12} {:>12} {:>8}",
        "metric", "A", "B", "B/A"
    );
    let err_rate = |r: &Report| {
        if r.requests == 0 {
            0.0
        } else {
            (r.requests - r.ok) as f64 / r.requests as f64 * 100.0
        }
    };
    let rows: [(&str, f64, f64, &str); 8] = [
        ("throughput/s", a.throughput, b.throughput, ""),
        ("mean", a.latency.mean_ms, b.latency.mean_ms, "ms"),
        ("p50", a.latency.p50_ms, b.latency.p50_ms, "ms"),
        ("p90", a.latency.p90_ms, b.latency.p90_ms, "ms"),
        ("p99", a.latency.p99_ms, b.latency.p99_ms, "ms"),
        ("p99.9", a.latency.p999_ms, b.latency.p999_ms, "ms"),
        ("max", a.latency.max_ms, b.latency.max_ms, "ms"),
        ("errors %", err_rate(a), err_rate(b), ""),
    ];
    for (name, x, y, unit) in rows {
        let ratio = if x == 0.0 {
            if y == 0.0 {
                "=".to_string()
            } else {
                "new".to_string()
            }
        } else {
            format!("{:.2}x", y / x)
        };
        let _ = writeln!(
            o,
            "  {name:<14} {:>12} {:>12} {ratio:>8}",
            format!("{x:.2}{unit}"),
            format!("{y:.2}{unit}")
        );
    }
    o
}
