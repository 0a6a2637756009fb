//! The health metrics every part shares (one registry per process): names and descriptions in
//! one place, described once at start so `/metrics` carries a `# HELP` for each.

/// Passive ejections per backend address.
pub const EJECTIONS: &str = "switchyard_backend_ejections_total";
/// The active check's verdict per backend address (1 up, 0 down).
pub const HEALTH_UP: &str = "switchyard_backend_health_up";

/// Registers the descriptions with the installed recorder (call once at start).
pub fn describe() {
    metrics::describe_counter!(
        EJECTIONS,
        "Passive ejections per backend: consecutive connect failures took it out for a back-off"
    );
    metrics::describe_gauge!(
        HEALTH_UP,
        "Active health check verdict per backend (1 up, 0 down), after rise/fall"
    );
}
