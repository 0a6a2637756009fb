//! `--svg FILE`: one self-contained SVG with the latency-by-percentile curve (log scale of
//! "nines", like HdrHistogram plots) and throughput and mean latency per second.

use crate::report::Report;
use std::fmt::Write;

const W: f64 = 760.0;
const PANEL_H: f64 = 220.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// x position of a percentile: 0 → 0, 90 → 1, 99 → 2, 99.9 → 3 ... (capped at 5 nines).
fn nines(p: f64) -> f64 {
    let rest = (100.0 - p).max(0.001) / 100.0;
    (-rest.log10()).min(5.0)
}

/// Renders the chart.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let h = PANEL_H * 2.0 + 130.0;
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="20" font-size="14" font-weight="bold">switchyard bench {} — {}</text>
<text x="{LEFT}" y="38" fill="#555">{} loop, {} connections, {:.0} ok/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms</text>
"##,
        esc(&r.kind),
        esc(&r.target),
        r.mode,
        r.connections,
        r.throughput,
        r.latency.p50_ms,
        r.latency.p99_ms,
        r.latency.max_ms
    );
    // panel 1: latency by percentile
    let top = 60.0;
    let pw = W - LEFT - RIGHT;
    let ymax = r
        .curve
        .iter()
        .map(|&(_, v)| v)
        .fold(0.0_f64, f64::max)
        .max(0.001)
        * 1.1;
    axes(&mut s, top, "latency (ms) by percentile", ymax);
    for (label, p) in [
        ("50%", 50.0),
        ("90%", 90.0),
        ("99%", 99.0),
        ("99.9%", 99.9),
        ("99.99%", 99.99),
        ("99.999%", 99.999),
    ] {
        let x = LEFT + nines(p) / 5.0 * pw;
        let _ = writeln!(
            s,
            r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#555">{label}</text>"##,
            top + PANEL_H + 14.0
        );
    }
    let pts: Vec<String> = r
        .curve
        .iter()
        .map(|&(p, v)| {
            format!(
                "{:.1},{:.1}",
                LEFT + nines(p) / 5.0 * pw,
                top + PANEL_H - v / ymax * PANEL_H
            )
        })
        .collect();
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#1f5fbf" stroke-width="2" points="{}"/>"##,
        pts.join(" ")
    );
    // panel 2: throughput per second (bars) and mean latency (line)
    let top2 = top + PANEL_H + 40.0;
    let rmax = r
        .timeline
        .iter()
        .map(|t| (t.ok + t.errors) as f64)
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.1;
    axes(
        &mut s,
        top2,
        "requests per second (bars: ok, red: errors)",
        rmax,
    );
    let n = r.timeline.len().max(1) as f64;
    let bw = pw / n;
    for (i, t) in r.timeline.iter().enumerate() {
        let x = LEFT + i as f64 * bw;
        let hok = t.ok as f64 / rmax * PANEL_H;
        let herr = t.errors as f64 / rmax * PANEL_H;
        let _ = writeln!(
            s,
            r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{hok:.1}" fill="#9cc3f5"/>"##,
            top2 + PANEL_H - hok,
            (bw - 1.0).max(0.5)
        );
        if t.errors > 0 {
            let _ = writeln!(
                s,
                r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{herr:.1}" fill="#c21d1d"/>"##,
                top2 + PANEL_H - hok - herr,
                (bw - 1.0).max(0.5)
            );
        }
    }
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{:.1}" fill="#555">seconds 0 … {}</text>"##,
        top2 + PANEL_H + 14.0,
        r.timeline.len()
    );
    s.push_str("</svg>\n");
    s
}

fn axes(s: &mut String, top: f64, title: &str, ymax: f64) {
    let bottom = top + PANEL_H;
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{:.1}" fill="#333">{}</text>
<line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}" stroke="#888"/>
<line x1="{LEFT}" y1="{bottom}" x2="{:.1}" y2="{bottom}" stroke="#888"/>"##,
        top - 6.0,
        esc(title),
        W - RIGHT
    );
    for i in 0..=4 {
        let v = ymax * i as f64 / 4.0;
        let y = bottom - PANEL_H * i as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">{}</text><line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/>"##,
            LEFT - 6.0,
            y + 4.0,
            if v >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            },
            W - RIGHT
        );
    }
}

#[cfg(test)]
mod tests {
    use super::nines;

    #[test]
    fn nines_scale() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0), 5.0);
    }
}
