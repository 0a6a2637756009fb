//! Drill scenarios: a list of timed steps (admin actions, demo instance stop/start) and the
//! expectations the drill is judged by. Written as TOML (raw serde structs, unknown keys
//! rejected) and validated in one pass that reports every problem; the built-ins produce the same
//! [`Scenario`] type (see `builtin.rs`).
//!
//! Layout: `model` (the validated types and their labels), `file` (the TOML format, its defaults
//! and validation); `secs` formats durations for both and for the reports.

mod file;
mod model;

#[cfg(test)]
pub(crate) use file::parse;
pub(crate) use file::{default_clients_groups, default_path, parse_checked};
pub(crate) use model::{
    Action, AdminVerb, ClientGroup, Expectation, Scenario, Served, Step, Subnet, TargetKind, Window,
};

use std::time::Duration;

/// Seconds with millisecond precision, for humans.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests;
