//! The timeline chart: successful requests per second per AZ (one line each, told apart by dash
//! pattern as well as colour), failed requests per second (red), and what happened as vertical
//! markers: the fault, when it was detected, when DNS moved each client group, when those clients
//! followed, the recovery, and the other steps. Buckets are aligned to the fault so no line falls
//! before the fault line; partial buckets at either end are scaled to a per-second rate and
//! shaded. The legend sits under the plot, the marker labels above it. Pure string building.

use super::model::{Sample, StepRun};
use std::collections::BTreeSet;
use std::fmt::Write as _;

const W: f64 = 960.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 24.0;
const TITLE: f64 = 34.0;
const ROW: f64 = 14.0;
const PH: f64 = 300.0;
const PALETTE: [&str; 8] = [
    "#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f",
];
/// Dash patterns, one per AZ line, so overlapping lines stay apart without colour.
const DASHES: [&str; 6] = ["", "9 4", "2 3", "12 3 3 3", "6 6", "1 5"];
const FAILED: &str = "#d62728";

/// Escapes text for XML content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// A round upper bound for the y axis and its tick step: 1, 2 or 5 × 10^k, split into 2 to 5
/// round steps (0/5/10/15/20, never 12/25/38).
fn nice_axis(v: f64) -> (u64, u64) {
    let v = (v.ceil() as u64).max(1);
    let mag = 10u64.pow(v.ilog10());
    // (top, step) candidates of this magnitude, smallest first; 2.5 only where it stays whole
    let mut options = vec![(mag, (mag / 5).max(1)), (2 * mag, (mag / 2).max(1))];
    if mag >= 10 {
        options.push((5 * mag / 2, mag / 2));
    }
    options.extend([(5 * mag, mag), (10 * mag, 2 * mag)]);
    options
        .into_iter()
        .find(|(top, _)| v <= *top)
        .unwrap_or((10 * mag, 2 * mag))
}

/// What a vertical marker stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Fault,
    Detected,
    DnsMoved,
    ClientsFollowed,
    Recovery,
    Step,
}

impl Kind {
    fn style(self) -> (&'static str, &'static str) {
        match self {
            Kind::Fault => ("#b00020", ""),
            Kind::Detected => ("#e6550d", "5 2"),
            Kind::DnsMoved => ("#6a3d9a", "2 2"),
            Kind::ClientsFollowed => ("#00838f", "8 2 2 2"),
            Kind::Recovery => ("#2e7d32", ""),
            Kind::Step => ("#666666", "4 3"),
        }
    }
}

/// One vertical marker on the chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub t_ms: u64,
    pub kind: Kind,
    pub label: String,
    /// A step that failed (drawn red).
    pub error: bool,
}

/// Step markers: bursts of steps within 200 ms share one marker, named after the step that
/// carries the role (`fault: stop gw-us-east-a and 9 more steps`, `recovery: start user-us-east-a`).
pub(crate) fn step_events(steps: &[StepRun]) -> Vec<Event> {
    let mut groups: Vec<Vec<&StepRun>> = Vec::new();
    for st in steps {
        match groups.last_mut() {
            Some(g) if st.t_ms < g[0].t_ms + 200 => g.push(st),
            _ => groups.push(vec![st]),
        }
    }
    groups
        .into_iter()
        .map(|g| {
            let (kind, role, lead) = if let Some(f) = g.iter().find(|s| s.fault) {
                (Kind::Fault, "fault: ", *f)
            } else if let Some(r) = g.iter().find(|s| s.recover) {
                (Kind::Recovery, "recovery: ", *r)
            } else {
                (Kind::Step, "", g[0])
            };
            let more = match g.len() {
                1 => String::new(),
                2 => " and 1 more step".into(),
                n => format!(" and {} more steps", n - 1),
            };
            Event {
                t_ms: lead.t_ms.min(g[0].t_ms),
                kind,
                label: format!("{role}{}{more}", lead.label),
                error: g.iter().any(|s| s.error.is_some()),
            }
        })
        .collect()
}

/// Bucket edges (ms) aligned to `anchor` (the fault), clipped to `[0, end]`.
fn edges(end: u64, anchor: u64) -> Vec<u64> {
    let mut v = vec![0];
    let mut t = anchor % 1000;
    if t == 0 {
        t = 1000;
    }
    while t < end {
        v.push(t);
        t += 1000;
    }
    v.push(end.max(1));
    v.dedup();
    // a sliver under half a second at either end joins its neighbour: scaled up on its own it
    // would draw noise (one request in 0.1 s is "10 per second")
    if v.len() > 2 && v[1] - v[0] < 500 {
        v.remove(1);
    }
    let k = v.len();
    if k > 2 && v[k - 1] - v[k - 2] < 500 {
        v.remove(k - 2);
    }
    v
}

/// Renders the chart of `samples` over `duration_ms`. `title` and labels are escaped.
pub(crate) fn render(
    title: &str,
    samples: &[Sample],
    duration_ms: u64,
    events: &[Event],
) -> String {
    let end = duration_ms.max(1);
    let anchor = events
        .iter()
        .find(|e| e.kind == Kind::Fault)
        .map_or(0, |e| e.t_ms);
    let edges = edges(end, anchor);
    let n = edges.len() - 1;
    let bucket = |t: u64| edges.partition_point(|e| *e <= t).clamp(1, n) - 1;
    let azs: Vec<String> = samples
        .iter()
        .filter(|s| s.ok())
        .map(|s| s.az.clone().unwrap_or_else(|| "?".into()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut ok = vec![vec![0u64; n]; azs.len()];
    let mut failed = vec![0u64; n];
    for s in samples.iter().filter(|s| s.t_ms < end) {
        let b = bucket(s.t_ms);
        if s.ok() {
            let az = s.az.as_deref().unwrap_or("?");
            if let Ok(i) = azs.binary_search_by(|a| a.as_str().cmp(az)) {
                ok[i][b] += 1;
            }
        } else {
            failed[b] += 1;
        }
    }
    // counts to per-second rates (partial buckets at the ends are scaled)
    let width = |b: usize| (edges[b + 1] - edges[b]) as f64 / 1000.0;
    let rate = |c: u64, b: usize| c as f64 / width(b).max(0.05);
    let peak = ok
        .iter()
        .chain(std::iter::once(&failed))
        .flat_map(|row| row.iter().enumerate().map(|(b, c)| rate(*c, b)))
        .fold(0.0, f64::max);
    let (ymax, ystep) = nice_axis(peak);

    // marker label rows above the plot: first row where the label fits
    let pw = W - LEFT - RIGHT;
    let x = |t_ms: f64| LEFT + t_ms / end as f64 * pw;
    let mut rows: Vec<f64> = Vec::new(); // right edge of the last label in each row
    let mut placed = Vec::new();
    let mut sorted: Vec<&Event> = events.iter().filter(|e| e.t_ms <= end).collect();
    sorted.sort_by_key(|e| e.t_ms);
    for e in &sorted {
        let xx = x(e.t_ms as f64);
        let wlabel = e.label.chars().count() as f64 * 5.6 + 8.0;
        // near the right edge the label ends at its line instead of starting there
        let (lx, anchor_end) = if xx + wlabel > W - RIGHT {
            (xx - wlabel, true)
        } else {
            (xx, false)
        };
        let row = rows.iter().position(|r| *r < lx).unwrap_or_else(|| {
            rows.push(f64::MIN);
            rows.len() - 1
        });
        rows[row] = lx + wlabel;
        placed.push((*e, xx, row, anchor_end));
    }
    let top = TITLE + ROW * rows.len().max(1) as f64 + 6.0;
    let legend_items = azs.len() + 1;
    // room for the longest label: "ok, served by " + the AZ name, a sample line and a gap
    let item_w =
        azs.iter().map(|a| a.chars().count()).max().unwrap_or(6) as f64 * 6.6 + 92.0 + 36.0;
    let per_line = ((pw / item_w) as usize).max(1);
    let legend_lines = legend_items.div_ceil(per_line);
    let h = top + PH + 44.0 + 18.0 * legend_lines as f64 + 8.0;
    let y = |v: f64| top + PH - v / ymax as f64 * PH;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{W}" height="{h}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    // partial buckets at the ends: shaded, their rate scaled up from a part of a second
    for b in BTreeSet::from([0, n - 1]) {
        if (width(b) - 1.0).abs() > 0.001 {
            let (x0, x1) = (x(edges[b] as f64), x(edges[b + 1] as f64));
            let _ = writeln!(
                s,
                r##"<rect class="partial" x="{x0:.1}" y="{top:.1}" width="{:.1}" height="{PH}" fill="#f0f0f0"><title>a bucket of {:.2}s, scaled to a per-second rate</title></rect>"##,
                x1 - x0,
                width(b)
            );
        }
    }
    // grid and round y ticks
    let mut v = 0;
    while v <= ymax {
        let yy = y(v as f64);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            yy + 4.0
        );
        v += ystep;
    }
    // x ticks every second (every 2, 5 or 10 s on long drills)
    let secs = end as f64 / 1000.0;
    let every = [1u64, 2, 5, 10, 20, 30, 60]
        .into_iter()
        .find(|e| secs / *e as f64 <= 20.0)
        .unwrap_or(60);
    let mut t = 0;
    while t as f64 <= secs {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{t}</text>"#,
            x(t as f64 * 1000.0),
            top + PH + 16.0
        );
        t += every;
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds since the load started (buckets aligned to the fault)</text>"#,
        LEFT + pw / 2.0,
        top + PH + 34.0
    );
    let _ = writeln!(
        s,
        r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">requests per second</text>"#,
        top + PH / 2.0,
        top + PH / 2.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{top:.1}" width="{pw}" height="{PH}" fill="none" stroke="#888888"/>"##
    );
    // the lines: a step chart, one level per bucket, so a drop starts where its bucket starts
    let steps_path = |row: &[u64], offset: f64| -> String {
        let mut pts = Vec::new();
        for (b, c) in row.iter().enumerate() {
            let yy = (y(rate(*c, b)) + offset).clamp(top, top + PH);
            pts.push(format!("{:.1},{yy:.1}", x(edges[b] as f64)));
            pts.push(format!("{:.1},{yy:.1}", x(edges[b + 1] as f64)));
        }
        pts.join(" ")
    };
    let mut legend: Vec<(String, &str, &str)> = Vec::new();
    for (i, az) in azs.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let dash = DASHES[i % DASHES.len()];
        // lines that overlap exactly are nudged apart by a pixel or two
        let offset = (i as f64 - (azs.len() as f64 - 1.0) / 2.0) * 1.5;
        let _ = writeln!(
            s,
            r#"<polyline class="ok" fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}" points="{}"><title>ok, served by {}</title></polyline>"#,
            steps_path(&ok[i], offset),
            escape(az)
        );
        legend.push((format!("ok, served by {az}"), color, dash));
    }
    let _ = writeln!(
        s,
        r#"<polyline class="failed" fill="none" stroke="{FAILED}" stroke-width="2.5" points="{}"><title>failed</title></polyline>"#,
        steps_path(&failed, 0.0)
    );
    legend.push(("failed".into(), FAILED, ""));
    // markers and their labels (above the plot)
    for (e, xx, row, anchor_end) in &placed {
        let (color, dash) = e.kind.style();
        let color = if e.error { FAILED } else { color };
        let ly = TITLE + ROW * (*row as f64 + 1.0);
        let (tx, anchor) = if *anchor_end {
            (xx - 3.0, "end")
        } else {
            (xx + 3.0, "start")
        };
        let _ = writeln!(
            s,
            r#"<g class="marker {}"><line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="{color}" stroke-width="1.5" stroke-dasharray="{dash}"/><text x="{tx:.1}" y="{ly:.1}" font-size="10" fill="{color}" text-anchor="{anchor}">{}</text></g>"#,
            kind_class(e.kind),
            ly + 3.0,
            top + PH,
            escape(&e.label)
        );
    }
    // the legend, under the plot
    for (i, (label, color, dash)) in legend.iter().enumerate() {
        let ly = top + PH + 56.0 + 18.0 * (i / per_line) as f64;
        let lx = LEFT + item_w * (i % per_line) as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3" stroke-dasharray="{dash}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0,
            escape(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn kind_class(k: Kind) -> &'static str {
    match k {
        Kind::Fault => "fault",
        Kind::Detected => "detected",
        Kind::DnsMoved => "dns-moved",
        Kind::ClientsFollowed => "clients-followed",
        Kind::Recovery => "recovery",
        Kind::Step => "step",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tiny XML well-formedness check: tags nest and close, attributes are quoted, entities
    /// are known. Returns the element names in document order.
    pub(crate) fn check_xml(doc: &str) -> Result<Vec<String>, String> {
        let body = doc
            .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
            .ok_or("no XML declaration")?;
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let mut rest = body;
        let mut seen_root = false;
        while let Some(i) = rest.find('<') {
            check_text(&rest[..i])?;
            let end = rest[i..].find('>').ok_or("unclosed tag")? + i;
            let tag = &rest[i + 1..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or(format!("stray </{name}>"))?;
                if open != name {
                    return Err(format!("</{name}> closes <{open}>"));
                }
                continue;
            }
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let name = tag
                .split_whitespace()
                .next()
                .ok_or("empty tag")?
                .to_string();
            if stack.is_empty() {
                if seen_root {
                    return Err("two root elements".into());
                }
                seen_root = true;
            }
            check_attrs(&tag[name.len()..])?;
            names.push(name.clone());
            if !self_closing {
                stack.push(name);
            }
        }
        check_text(rest)?;
        if !stack.is_empty() {
            return Err(format!("unclosed elements {stack:?}"));
        }
        if !rest.trim().is_empty() {
            return Err("text after the root".into());
        }
        Ok(names)
    }

    fn check_text(t: &str) -> Result<(), String> {
        let mut rest = t;
        while let Some(i) = rest.find('&') {
            let end = rest[i..].find(';').ok_or("bare &")? + i;
            let ent = &rest[i + 1..end];
            if !["amp", "lt", "gt", "quot", "apos"].contains(&ent) {
                return Err(format!("unknown entity &{ent};"));
            }
            rest = &rest[end + 1..];
        }
        if t.contains('>') {
            return Err("bare > in text".into());
        }
        Ok(())
    }

    fn check_attrs(mut a: &str) -> Result<(), String> {
        loop {
            a = a.trim_start();
            if a.is_empty() {
                return Ok(());
            }
            let eq = a.find('=').ok_or(format!("attribute without value: {a}"))?;
            let name = a[..eq].trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!("bad attribute name {name:?}"));
            }
            let v = &a[eq + 1..];
            let q = v.chars().next().ok_or("missing value")?;
            if q != '"' && q != '\'' {
                return Err(format!("unquoted attribute {name}"));
            }
            let close = v[1..].find(q).ok_or("unterminated attribute")? + 1;
            let value = &v[1..close];
            if value.contains('<') {
                return Err("< in attribute".into());
            }
            check_text(&value.replace('>', ""))?;
            a = &v[close + 1..];
        }
    }

    fn sample(t_ms: u64, az: Option<&str>) -> Sample {
        Sample {
            t_ms,
            latency_ms: 2,
            group: "us".into(),
            client: 0,
            dns_region: Some("us-east".into()),
            resolved_ms: None,
            vip: None,
            status: az.map(|_| 200),
            error: az.is_none().then(|| "connect_refused".to_string()),
            instance: None,
            region: None,
            az: az.map(str::to_string),
        }
    }

    /// 3.5 s at 20/s: both AZs serve until the fault at 1.3 s, then us-east-b alone, with a few
    /// failures; the load ends in the middle of a second.
    fn outage() -> (Vec<Sample>, Vec<Event>) {
        let mut v = Vec::new();
        for i in 0..70u64 {
            let t = i * 50;
            let az = match t {
                0..1300 => Some(if i % 2 == 0 { "us-east-a" } else { "us-east-b" }),
                1300..1600 if i % 2 == 0 => None,
                _ => Some("us-east-b"),
            };
            v.push(sample(t, az));
        }
        let stop = |t: u64, label: &str, fault: bool| StepRun {
            at_ms: t,
            t_ms: t,
            done_ms: t + 2,
            label: label.into(),
            instance: None,
            stop: true,
            start: false,
            fault,
            recover: false,
            error: None,
        };
        let mut events = step_events(&[
            stop(1300, "stop <user> & \"friends\"", true),
            stop(1310, "stop gw-us-east-a", false),
        ]);
        events.push(Event {
            t_ms: 1900,
            kind: Kind::Detected,
            label: "detected: gw-us-east-a down after 0.60s".into(),
            error: false,
        });
        events.push(Event {
            t_ms: 2000,
            kind: Kind::DnsMoved,
            label: "DNS moved us clients to eu-west (TTL 10s)".into(),
            error: false,
        });
        events.push(Event {
            t_ms: 3400,
            kind: Kind::ClientsFollowed,
            label: "us clients followed".into(),
            error: false,
        });
        (v, events)
    }

    #[test]
    fn chart_is_well_formed_and_tells_the_story() {
        let (samples, events) = outage();
        let svg = render("drill: az-outage <us-east-a>", &samples, 3500, &events);
        let names = check_xml(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert_eq!(names[0], "svg");
        assert_eq!(names.iter().filter(|n| *n == "polyline").count(), 3);
        assert!(svg.contains("drill: az-outage &lt;us-east-a&gt;"));
        // every marker, with its label
        for (class, label) in [
            (
                "fault",
                "fault: stop &lt;user&gt; &amp; &quot;friends&quot; and 1 more step",
            ),
            ("detected", "detected: gw-us-east-a down after 0.60s"),
            ("dns-moved", "DNS moved us clients to eu-west (TTL 10s)"),
            ("clients-followed", "us clients followed"),
        ] {
            assert!(
                svg.contains(&format!("<g class=\"marker {class}\">")),
                "{class}"
            );
            assert!(svg.contains(&format!(">{label}</text>")), "{label}\n{svg}");
        }
        // the legend is under the plot: below its bottom edge
        let legend_y = svg
            .split(">failed</text>")
            .next()
            .unwrap()
            .rsplit("y=\"")
            .next()
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse::<f64>()
            .unwrap();
        let plot_bottom = svg
            .split("<rect x=\"56\" y=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            + PH;
        assert!(legend_y > plot_bottom, "{legend_y} {plot_bottom}");
        // the two AZ lines differ in dash pattern, not only in colour
        assert!(svg.contains(r##"stroke="#1f77b4" stroke-width="2" stroke-dasharray="""##));
        assert!(svg.contains(r##"stroke="#2ca02c" stroke-width="2" stroke-dasharray="9 4""##));
        // buckets start at the fault; the slivers 0-0.3 s and 3.3-3.5 s join their neighbours,
        // which are then not a second long (shaded)
        assert_eq!(svg.matches("class=\"partial\"").count(), 2);
        assert_eq!(edges(3500, 1300), [0, 1300, 2300, 3500]);
        assert_eq!(edges(3900, 1001), [0, 1001, 2001, 3001, 3900]);
        assert_eq!(edges(2000, 0), [0, 1000, 2000]);
        // round y ticks
        assert!(
            svg.contains(">0</text>") && svg.contains(">5</text>") && svg.contains(">10</text>")
        );
    }

    #[test]
    fn no_line_falls_before_the_fault() {
        let (samples, events) = outage();
        let svg = render("t", &samples, 3500, &events);
        let pw = W - LEFT - RIGHT;
        let fault_x = LEFT + 1300.0 / 3500.0 * pw;
        // us-east-a's line: 10/s until the fault's bucket edge, 0 after; every point left of the
        // fault line sits at the same level
        let line = svg
            .lines()
            .find(|l| l.contains("ok, served by us-east-a"))
            .unwrap();
        let pts: Vec<(f64, f64)> = line
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .split(' ')
            .map(|p| {
                let (a, b) = p.split_once(',').unwrap();
                (a.parse().unwrap(), b.parse().unwrap())
            })
            .collect();
        let before: Vec<f64> = pts
            .iter()
            .filter(|(x, _)| *x < fault_x - 0.2)
            .map(|p| p.1)
            .collect();
        assert!(!before.is_empty());
        assert!(
            before.iter().all(|y| (*y - before[0]).abs() < 0.01),
            "{pts:?}"
        );
        // the level holds right up to the fault line, and drops there
        let at_fault: Vec<f64> = pts
            .iter()
            .filter(|(x, _)| (*x - fault_x).abs() < 0.2)
            .map(|p| p.1)
            .collect();
        assert_eq!(at_fault.len(), 2, "{pts:?}");
        assert!((at_fault[0] - before[0]).abs() < 0.01 && at_fault[1] > at_fault[0] + 10.0);
    }

    #[test]
    fn bursts_of_steps_share_one_marker_named_by_their_role() {
        let st = |t: u64, label: &str, fault: bool, recover: bool, error: bool| StepRun {
            at_ms: t,
            t_ms: t,
            done_ms: t,
            label: label.into(),
            instance: None,
            stop: false,
            start: false,
            fault,
            recover,
            error: error.then(|| "404".to_string()),
        };
        let m = step_events(&[
            st(1000, "fail a", true, false, false),
            st(1010, "stop b", false, false, true),
            st(1150, "stop c", false, false, false),
            st(4000, "stop d", false, false, false),
            st(4010, "start b", false, true, false),
            st(5500, "restore a", false, false, false),
        ]);
        let got: Vec<(u64, Kind, &str, bool)> = m
            .iter()
            .map(|e| (e.t_ms, e.kind, e.label.as_str(), e.error))
            .collect();
        assert_eq!(
            got,
            [
                (1000, Kind::Fault, "fault: fail a and 2 more steps", true),
                (
                    4000,
                    Kind::Recovery,
                    "recovery: start b and 1 more step",
                    false
                ),
                (5500, Kind::Step, "restore a", false),
            ]
        );
    }

    #[test]
    fn the_xml_checker_catches_breakage() {
        let ok = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg a=\"1\"><g/><text>x &amp; y</text></svg>\n";
        assert_eq!(check_xml(ok).unwrap(), ["svg", "g", "text"]);
        for bad in [
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><svg><g></svg>",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><svg><text>a & b</text></svg>",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><svg a=1></svg>",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><svg></svg><svg></svg>",
        ] {
            assert!(check_xml(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nice_axis_bounds() {
        assert_eq!(
            [0.0, 1.0, 3.0, 7.0, 12.0, 20.0, 21.0, 38.0, 99.0, 101.0].map(nice_axis),
            [
                (1, 1),
                (1, 1),
                (5, 1),
                (10, 2),
                (20, 5),
                (20, 5),
                (25, 5),
                (50, 10),
                (100, 20),
                (200, 50)
            ]
        );
    }
}
