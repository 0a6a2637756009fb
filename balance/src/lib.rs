//! # switchyard-balance: the shared health view and backend selection
//!
//! One crate that the L4 balancer, the gateway and the DNS server read from, so that "is this
//! backend up?" has exactly one answer in the process.
//!
//! ## Pieces
//! - [`HealthRegistry`] (cheap `Clone`, `Arc` inside): exactly one [`BackendHealth`] per distinct
//!   backend [`SocketAddr`](std::net::SocketAddr), whichever pools or services use it.
//!   [`HealthRegistry::handle`] gets-or-creates the entry (no checker, for tests and for
//!   passive-only use); [`HealthRegistry::ensure_checked`] also starts one active checker task per
//!   address (the first spec wins; [`HealthRegistry::update_checker`] replaces a checker whose
//!   spec changed, e.g. on reload); [`HealthRegistry::snapshot`] lists every backend for a status
//!   page.
//! - [`BackendHealth`]: lock-free reads. [`BackendHealth::is_up`] combines the active check
//!   (rise/fall anti-flap), passive ejection (consecutive connect failures eject for a back-off
//!   period) and the administrative state (drain / forced down). [`BackendHealth::state`] returns
//!   a [`HealthState`] with a human reason ("http: status 503, 3 in a row"). The active connection
//!   counter is an atomic, incremented by holding a [`ConnGuard`].
//! - [`AdminState`] (cheap `Clone`): drain / undrain / fail (forced down) / restore for a region,
//!   an AZ or an instance by name ([`AdminTarget`]). Reads are lock-free (`ArcSwap`);
//!   [`AdminState::subscribe`] gives a `watch` of the version so consumers can react (e.g. close
//!   drained connections after a deadline). A backend learns its names through
//!   [`HealthRegistry::set_labels`] (done for you by [`Selector::new`]).
//! - [`Selector`]: built once per pool snapshot (keep it in an `ArcSwap`), then
//!   [`Selector::pick`]`(client_ip, exclude)` returns the index of the chosen member, with no lock
//!   and no allocation. It is AZ-aware: every AZ with at least one available member gets its
//!   share (AZ weights, equal by default); an AZ with none spills its share to the others; then
//!   the [`Policy`] picks inside the AZ. `exclude` lists member indices already tried (connect
//!   retry): AZs without excluded members are preferred ("another AZ first").
//!   [`Selector::shares`] reports the current per-AZ share for status and metrics. When every
//!   member is down, [`SelectorOptions::fail_open`] decides: `true` picks among all members
//!   anyway, `false` (default) returns `None`; both are counted ([`Selector::all_down_count`]).
//!   Passive health goes through [`Selector::record_connect_failure`] /
//!   [`Selector::record_success`], which apply the pool's [`PassiveSpec`] including the cap on
//!   the fraction of the pool that may be ejected at once.
//!
//! ## Layout
//! [`admin`] (drain/fail state), [`health`] (the registry, one entry per backend: `check` for
//! active probes, `flap` for rise/fall, `registry`), [`select`] (the AZ-aware selector and its
//! policies: `smooth` weighted round robin, `maglev`, `hash`), [`from_config`] (specs from the
//! validated world).
//!
//! The deciding code ([`select`], [`health::flap`]) does no I/O and is unit-tested and
//! benchmarked with criterion (`benches/pick.rs`). Where its clock and randomness come from:
//! - [`health::flap`] takes every probe result as an argument: no clock, no randomness.
//! - [`Selector::pick`] reads two things besides its arguments: each member's health
//!   ([`BackendHealth::is_up`]), whose passive ejection compares the monotonic clock (read once
//!   per member: nanoseconds since the registry's epoch) with the ejection deadline; and, to
//!   choose the AZ under the other policies and the member under `random` and `power_of_two`,
//!   a per-thread wyrand generator seeded once from the OS (`select::hash::fast_rand`). Round robin, least connections and
//!   Maglev use no randomness. Tests therefore assert distributions over many picks, or set
//!   health explicitly, rather than exact sequences.
//! - Active checks add a random jitter per wait (`rand`), outside the decision.
//!
//! ## Typical wiring
//! ```no_run
//! use switchyard_balance::*;
//! # async fn demo() {
//! let admin = AdminState::new();
//! let registry = HealthRegistry::with_admin(admin.clone());
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let members = vec![MemberSpec::new("gw-a", "127.0.1.11:8000".parse().unwrap(), "us-east-a", 1)];
//! for m in &members {
//!     registry.ensure_checked(m.addr, &CheckSpec::tcp(), shutdown.clone());
//! }
//! let sel = Selector::new(members, &[], Policy::RoundRobin, &registry, SelectorOptions::default());
//! let idx = sel.pick("10.0.0.1".parse().unwrap(), &[]);
//! # }
//! ```

pub mod admin;
pub mod from_config;
pub mod health;
pub mod metrics;
pub mod select;

pub use admin::{AdminMode, AdminState, AdminTarget, Labels};
pub use health::check::{CheckKind, CheckSpec};
pub use health::registry::{BackendSnapshot, HealthRegistry};
pub use health::{ActiveState, BackendHealth, ConnGuard, HealthState, PassiveSpec};
pub use select::{AzShare, Choice, MemberSpec, Policy, Selector, SelectorOptions};
