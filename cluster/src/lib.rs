//! Scale-out through etcd: several Switchyard appliances share one world, a service registry
//! and region health, using etcd's leases, watches and revisions (no gossip or consensus of
//! our own).
//!
//! - [`Client`]: a small etcd v3 client over etcd's JSON gateway (HTTP/1.1 + JSON, base64 keys):
//!   no protobuf compiler, no gRPC stack, and etcd 3.4+ serves it on the client port.
//! - [`EtcdUrl`]: `etcd://HOST:PORT/KEY?node=NAME&ttl=2s&quorum=2` and the key layout under the
//!   key's folder (see [`url`]).
//! - [`watcher::watch`]: a node's live [`View`] of that folder (world text + revision, registered
//!   instances, region reports, observer votes, cluster-wide admin actions); keeps the last view
//!   and reconnects with back-off when etcd goes away, reporting it through a [`Link`].
//! - [`Publisher`]: keeps keys alive under a lease (registrations, region reports, votes).
//! - [`testing`]: a throwaway real etcd and a cuttable proxy, for tests.
//! - [`registry::overlay`] and [`health::verdict`]/[`health::fail_over`]: the deciding code, pure
//!   functions of a world or of reports, probes and votes.
//!
//! The binary (`src/etcd.rs`) wires these to `switchyard run --config etcd://...`,
//! `switchyard config push` and `switchyard register`. Validation of the world is the config
//! crate's: what arrives from etcd goes through `switchyard_config::parse_str` like a file.

pub mod client;
pub mod error;
pub mod health;
pub mod lease;
pub mod link;
pub mod registry;
pub mod testing;
pub mod url;
pub mod watcher;

pub use client::{Client, Kv};
pub use error::Error;
pub use health::{RegionReport, Verdict};
pub use lease::Publisher;
pub use link::{Backoff, Link};
pub use registry::Registration;
pub use url::EtcdUrl;
pub use watcher::{AdminEntry, NodeRecord, View, WorldText};
