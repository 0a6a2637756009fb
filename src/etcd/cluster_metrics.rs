//! The cluster's metrics: names and descriptions in one place.

/// etcd answers (1) or not (0).
pub const CONNECTED: &str = "switchyard_etcd_connected";
/// The world revision this node runs.
pub const REVISION: &str = "switchyard_etcd_world_revision";
/// World revisions from etcd that failed validation.
pub const REJECTED: &str = "switchyard_etcd_rejected_revisions_total";
/// Registered instances merged into the running world.
pub const REGISTERED: &str = "switchyard_cluster_registered_instances";
/// A region failed over by this DNS node's observer (1) or not (0), by region.
pub const FAILED_OVER: &str = "switchyard_cluster_region_failed_over";

/// Describes every metric (after the recorder is installed).
pub fn describe() {
    metrics::describe_gauge!(CONNECTED, "1 while etcd answers, 0 while disconnected");
    metrics::describe_gauge!(REVISION, "revision of the world key this node runs");
    metrics::describe_counter!(REJECTED, "world revisions from etcd rejected by validation");
    metrics::describe_gauge!(
        REGISTERED,
        "registered instances merged into the running world"
    );
    metrics::describe_gauge!(
        FAILED_OVER,
        "1 while this DNS node's cluster observer fails the region over"
    );
}
