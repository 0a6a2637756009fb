//! Drills started from the console (`POST /v1/drills/SCENARIO`, `GET /v1/drills`): each runs
//! as a child `switchyard drill SCENARIO --target <this admin API>` process, so a drill started
//! here is exactly the one the CLI runs; its `report.json` and `timeline.svg` land in a
//! per-run folder under the system temp dir and are listed and served from there.
//! One drill at a time; the list keeps the last [`KEEP`] runs of this process.

use super::events::Events;
use super::{full, Body};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// The built-in scenarios (`switchyard drill --help` lists the same five).
pub const BUILTIN: [&str; 5] = [
    "instance-crash",
    "az-outage",
    "region-outage",
    "planned-drain",
    "flap",
];
/// Runs kept in the list.
const KEEP: usize = 20;

#[derive(Debug, Clone)]
struct Run {
    id: u64,
    scenario: String,
    started_ms: u64,
    /// `running`, `passed`, `failed` or `error`.
    state: &'static str,
    out: PathBuf,
}

#[derive(Default)]
struct Inner {
    runs: Vec<Run>,
    next: u64,
    config: Option<PathBuf>,
}

/// Drills started through the admin API.
#[derive(Default, Clone)]
pub struct Drills {
    inner: Arc<Mutex<Inner>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Drills {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The world's config file, passed to the drill (default: the demo world).
    pub fn set_config(&self, path: PathBuf) {
        self.lock().config = Some(path);
    }

    /// Starts a built-in drill against this node; `Err` is (status, message).
    pub fn start(
        &self,
        scenario: &str,
        admin: SocketAddr,
        admin_token: Option<String>,
        events: &Arc<Events>,
    ) -> Result<Value, (StatusCode, String)> {
        if !BUILTIN.contains(&scenario) {
            return Err((
                StatusCode::NOT_FOUND,
                format!(
                    "no built-in drill {scenario:?}; use one of {}",
                    BUILTIN.join(", ")
                ),
            ));
        }
        let exe = std::env::current_exe()
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let mut inner = self.lock();
        if let Some(r) = inner.runs.iter().find(|r| r.state == "running") {
            return Err((
                StatusCode::CONFLICT,
                format!("drill {} ({}) is still running", r.id, r.scenario),
            ));
        }
        inner.next += 1;
        let id = inner.next;
        let out = std::env::temp_dir().join(format!(
            "switchyard-drills-{}/{id}-{scenario}",
            std::process::id()
        ));
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("drill")
            .arg(scenario)
            .arg("--target")
            .arg(format!("http://{admin}"))
            .arg("--out")
            .arg(&out)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(c) = &inner.config {
            cmd.arg("--config").arg(c);
        }
        if let Some(t) = admin_token {
            cmd.env("SWITCHYARD_ADMIN_TOKEN", t);
        }
        let mut child = cmd.spawn().map_err(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot start: {e}"),
            )
        })?;
        inner.runs.push(Run {
            id,
            scenario: scenario.to_string(),
            started_ms: now_ms(),
            state: "running",
            out: out.clone(),
        });
        if inner.runs.len() > KEEP {
            inner.runs.remove(0);
        }
        drop(inner);
        events.publish(
            "drill",
            format!("drill {id} {scenario}"),
            "started",
            "started from the admin API".into(),
        );
        let this = self.clone();
        let events = events.clone();
        let name = scenario.to_string();
        tokio::spawn(async move {
            let state = match child.wait().await {
                Ok(s) if s.success() => "passed",
                Ok(s) if s.code() == Some(1) && out.join("report.json").exists() => "failed",
                _ => "error",
            };
            if let Some(r) = this.lock().runs.iter_mut().find(|r| r.id == id) {
                r.state = state;
            }
            let detail = match state {
                "passed" => "every expectation held",
                "failed" => "an expectation failed; see the report",
                _ => "the drill could not run",
            };
            events.publish("drill", format!("drill {id} {name}"), state, detail.into());
        });
        Ok(json!({"drill": id, "scenario": scenario, "state": "running"}))
    }

    /// Every run with its verdict and report summary (newest first).
    pub fn list(&self) -> Value {
        let runs: Vec<Run> = self.lock().runs.clone();
        let list: Vec<Value> = runs
            .iter()
            .rev()
            .map(|r| {
                let report: Option<Value> = std::fs::read(r.out.join("report.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                let pick = |k: &str| report.as_ref().map(|v| v[k].clone()).unwrap_or(Value::Null);
                json!({
                    "id": r.id,
                    "scenario": r.scenario,
                    "started_ms": r.started_ms,
                    "state": r.state,
                    "pass": pick("pass"),
                    "requests": pick("requests"),
                    "failed": pick("failed"),
                    "time_to_detect_ms": pick("time_to_detect_ms"),
                    "expectations": pick("expectations"),
                    "timeline": r.out.join("timeline.svg").exists().then(|| format!("/v1/drills/{}/timeline.svg", r.id)),
                })
            })
            .collect();
        json!({"builtin": BUILTIN, "drills": list})
    }

    /// The SVG timeline of run `id`.
    pub fn timeline(&self, id: &str) -> Response<Body> {
        let path = id.parse::<u64>().ok().and_then(|id| {
            self.lock()
                .runs
                .iter()
                .find(|r| r.id == id)
                .map(|r| r.out.join("timeline.svg"))
        });
        match path.and_then(|p| std::fs::read(p).ok()) {
            Some(svg) => Response::builder()
                .header("content-type", "image/svg+xml")
                .header(
                    "content-security-policy",
                    "default-src 'none'; style-src 'unsafe-inline'",
                )
                .body(full(svg))
                .expect("static response parts are valid"),
            None => super::json(
                StatusCode::NOT_FOUND,
                json!({"error": format!("no timeline for drill {id:?}")}),
            ),
        }
    }
}
