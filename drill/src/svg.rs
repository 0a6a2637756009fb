//! The timeline chart: successful requests per second per AZ (one line each), failed requests per
//! second (red), and each step as a dashed vertical line. Pure string building, no I/O.

use super::analyze::Bucket;
use super::model::StepRun;
use std::collections::BTreeSet;
use std::fmt::Write as _;

const W: f64 = 900.0;
const H: f64 = 380.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 180.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 44.0;
const PALETTE: [&str; 8] = [
    "#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f",
];
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

/// A round upper bound for the y axis.
fn nice_max(v: u64) -> u64 {
    let v = v.max(1);
    let mag = 10u64.pow(v.ilog10());
    for m in [1, 2, 5, 10] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10 * mag
}

/// A step marker on the chart.
#[derive(Debug, PartialEq, Eq)]
struct Marker {
    t_ms: u64,
    label: String,
    error: bool,
}

/// Groups steps that ran within 200 ms of each other into one marker, e.g.
/// `fault: fail instance gw-us-east-a (+9 more)`.
fn markers(steps: &[StepRun]) -> Vec<Marker> {
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
            let role = if g.iter().any(|s| s.fault) {
                "fault: "
            } else if g.iter().any(|s| s.recover) {
                "recovery: "
            } else {
                ""
            };
            let more = if g.len() > 1 {
                format!(" (+{} more)", g.len() - 1)
            } else {
                String::new()
            };
            Marker {
                t_ms: g[0].t_ms,
                label: format!("{role}{}{more}", g[0].label),
                error: g.iter().any(|s| s.error.is_some()),
            }
        })
        .collect()
}

/// Renders the chart. `title` is escaped.
pub(crate) fn render(title: &str, buckets: &[Bucket], steps: &[StepRun]) -> String {
    let seconds = buckets.len().max(1) as f64;
    let azs: BTreeSet<&String> = buckets.iter().flat_map(|b| b.ok.keys()).collect();
    let failed: Vec<u64> = buckets.iter().map(|b| b.failed.values().sum()).collect();
    let peak = buckets
        .iter()
        .flat_map(|b| b.ok.values().copied())
        .chain(failed.iter().copied())
        .max()
        .unwrap_or(0);
    let ymax = nice_max(peak) as f64;
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |sec: f64| LEFT + sec / seconds * pw;
    let y = |v: f64| TOP + ph - v / ymax * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    // Grid and y labels.
    for i in 0..=4 {
        let v = ymax * f64::from(i) / 4.0;
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#dddddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v:.0}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            yy + 4.0
        );
    }
    // X labels: at most ~15 ticks.
    let every = (buckets.len() / 15).max(1);
    for (i, _) in buckets.iter().enumerate().step_by(every) {
        let xx = x(i as f64);
        let _ = writeln!(
            s,
            r#"<text x="{xx:.1}" y="{:.1}" text-anchor="middle">{i}</text>"#,
            TOP + ph + 16.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds since the load started</text>"#,
        LEFT + pw / 2.0,
        H - 8.0
    );
    let _ = writeln!(
        s,
        r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">requests per second</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888888"/>"##
    );
    // Steps: one marker per burst of steps (within 200 ms), labelled by its first step.
    for (i, m) in markers(steps).iter().enumerate() {
        let xx = x(m.t_ms as f64 / 1000.0);
        let color = if m.error { FAILED } else { "#444444" };
        let _ = writeln!(
            s,
            r#"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="{color}" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" font-size="10" fill="{color}">{}</text>"#,
            TOP + ph,
            xx + 3.0,
            TOP + 12.0 + 12.0 * (i % 4) as f64,
            escape(&m.label)
        );
    }
    // Series.
    let mut legend: Vec<(String, &str)> = Vec::new();
    for (i, az) in azs.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<String> = buckets
            .iter()
            .enumerate()
            .map(|(j, b)| {
                let v = b.ok.get(*az).copied().unwrap_or(0) as f64;
                format!("{:.1},{:.1}", x(j as f64 + 0.5), y(v))
            })
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"><title>ok served by {}</title></polyline>"#,
            pts.join(" "),
            escape(az)
        );
        legend.push((format!("ok {az}"), color));
    }
    let pts: Vec<String> = failed
        .iter()
        .enumerate()
        .map(|(j, v)| format!("{:.1},{:.1}", x(j as f64 + 0.5), y(*v as f64)))
        .collect();
    let _ = writeln!(
        s,
        r#"<polyline fill="none" stroke="{FAILED}" stroke-width="2" stroke-dasharray="6 2" points="{}"><title>failed</title></polyline>"#,
        pts.join(" ")
    );
    legend.push(("failed".into(), FAILED));
    for (i, (label, color)) in legend.iter().enumerate() {
        let ly = TOP + 10.0 + 18.0 * i as f64;
        let lx = LEFT + pw + 14.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            escape(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

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

    fn bucket(second: u64, ok: &[(&str, u64)], failed: u64) -> Bucket {
        Bucket {
            second,
            ok: ok.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            failed: if failed > 0 {
                BTreeMap::from([("us-east".to_string(), failed)])
            } else {
                BTreeMap::new()
            },
        }
    }

    #[test]
    fn chart_is_well_formed_and_has_every_series_and_step() {
        let buckets = vec![
            bucket(0, &[("us-east-a", 10), ("us-east-b", 10)], 0),
            bucket(1, &[("us-east-a", 4), ("us-east-b", 12)], 3),
            bucket(2, &[("us-east-b", 20)], 0),
        ];
        let steps = vec![StepRun {
            at_ms: 1000,
            t_ms: 1001,
            done_ms: 1003,
            label: "stop <user> & \"friends\"".into(),
            instance: None,
            stop: true,
            start: false,
            fault: true,
            recover: false,
            error: None,
        }];
        let svg = render("drill: az-outage <us-east-a>", &buckets, &steps);
        let names = check_xml(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert_eq!(names[0], "svg");
        assert_eq!(names.iter().filter(|n| *n == "polyline").count(), 3);
        assert!(svg.contains("drill: az-outage &lt;us-east-a&gt;"));
        assert!(svg.contains("fault: stop &lt;user&gt; &amp; &quot;friends&quot;"));
        assert!(svg.contains(">ok us-east-a</text>"));
        assert!(svg.contains(">failed</text>"));
        // y axis tops at 20 (the peak): the us-east-b line reaches the plot's top edge at 2.5 s.
        assert!(svg.contains(&format!(
            "{:.1},{:.1}",
            LEFT + 2.5 / 3.0 * (W - LEFT - RIGHT),
            TOP
        )));
    }

    #[test]
    fn bursts_of_steps_share_one_marker() {
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
        let m = markers(&[
            st(1000, "fail a", true, false, false),
            st(1010, "stop b", false, false, true),
            st(1150, "stop c", false, false, false),
            st(4000, "start b", false, true, false),
            st(5500, "restore a", false, false, false),
        ]);
        assert_eq!(
            m,
            [
                Marker {
                    t_ms: 1000,
                    label: "fault: fail a (+2 more)".into(),
                    error: true
                },
                Marker {
                    t_ms: 4000,
                    label: "recovery: start b".into(),
                    error: false
                },
                Marker {
                    t_ms: 5500,
                    label: "restore a".into(),
                    error: false
                },
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
            [0, 1, 3, 7, 12, 20, 21, 99, 101].map(nice_max),
            [1, 1, 5, 10, 20, 20, 50, 100, 200]
        );
    }
}
