//! Every metric the L4 balancer exports: names and descriptions in one place. Handles are
//! resolved when a listener or pool is built; the connection path only increments them.
#![allow(missing_docs)] // each constant is a metric name; its description is registered in `describe()` below

use metrics::{describe_counter, describe_gauge, Counter, Gauge, Unit};

pub const ACCEPTED: &str = "switchyard_lb_accepted_total";
pub const REFUSED: &str = "switchyard_lb_refused_total";
pub const ACCEPT_ERRORS: &str = "switchyard_lb_accept_errors_total";
pub const BACKEND_ACTIVE: &str = "switchyard_lb_backend_active_connections";
pub const BACKEND_CONNS: &str = "switchyard_lb_backend_connections_total";
pub const BACKEND_BYTES_UP: &str = "switchyard_lb_backend_bytes_sent_total";
pub const BACKEND_BYTES_DOWN: &str = "switchyard_lb_backend_bytes_received_total";
pub const BACKEND_CONNECT_ERRORS: &str = "switchyard_lb_backend_connect_errors_total";
pub const BACKEND_UP: &str = "switchyard_lb_backend_up";
pub const BACKEND_DRAINING: &str = "switchyard_lb_backend_draining";
pub const DRAIN_CLOSED: &str = "switchyard_lb_drain_closed_total";
pub const POOL_ALL_DOWN: &str = "switchyard_lb_pool_all_down_total";
pub const AZ_SHARE: &str = "switchyard_lb_az_share";
pub const SNI: &str = "switchyard_lb_sni_total";
pub const SPILLED: &str = "switchyard_lb_spilled_connections_total";
pub const SPILL_FAILED: &str = "switchyard_lb_spill_connect_errors_total";
pub const POOL_SPILLING: &str = "switchyard_lb_pool_spilling";
pub const HANDED_OVER: &str = "switchyard_lb_engine_handovers_total";

/// Registers the descriptions (call once; harmless to repeat).
pub fn describe() {
    describe_counter!(
        SPILLED,
        "New connections spilled to another region's spill ingress, per region pair (from, to)"
    );
    describe_counter!(
        SPILL_FAILED,
        "Failed connects to another region's spill ingress, per region pair (from, to)"
    );
    describe_gauge!(
        POOL_SPILLING,
        "1 while a pool spills every new connection to another region"
    );
    describe_counter!(ACCEPTED, "Connections accepted, per listener");
    describe_counter!(
        HANDED_OVER,
        "Connections the io_uring engine handed to the epoll engine, per listener and reason (sni, splice: forwarding = \"splice\", spill, bulk: a flow that filled a buffer, for the splice relay of forwarding = \"auto\")"
    );
    describe_counter!(
        REFUSED,
        "Connections refused at once, per listener and reason (max_connections, source_rate, no_backend, proxy_header, sni, client_gone: the client reset before a backend was chosen, so none was connected)"
    );
    describe_counter!(
        ACCEPT_ERRORS,
        "accept() errors per listener (EMFILE/ENFILE back off)"
    );
    describe_gauge!(BACKEND_ACTIVE, "Open relayed connections per backend");
    describe_counter!(BACKEND_CONNS, "Relayed connections per backend");
    describe_counter!(
        BACKEND_BYTES_UP,
        Unit::Bytes,
        "Bytes client -> backend, per backend"
    );
    describe_counter!(
        BACKEND_BYTES_DOWN,
        Unit::Bytes,
        "Bytes backend -> client, per backend"
    );
    describe_counter!(
        BACKEND_CONNECT_ERRORS,
        "Failed or timed-out connects per backend"
    );
    describe_gauge!(
        BACKEND_UP,
        "1 when the backend takes new connections (health, ejection, admin)"
    );
    describe_gauge!(
        BACKEND_DRAINING,
        "1 while the backend is drained or removed and still has connections"
    );
    describe_counter!(
        DRAIN_CLOSED,
        "Connections closed by a drain deadline, per backend"
    );
    describe_counter!(
        POOL_ALL_DOWN,
        "New connections that found every pool member down"
    );
    describe_counter!(
        SNI,
        "ClientHellos peeked by SNI listeners, per listener and result (matched, unmatched: no SNI or no route, not_tls, invalid, timeout); all but matched go to sni_default or are closed"
    );
    describe_gauge!(
        AZ_SHARE,
        "Current share of new connections per pool and AZ (0..1)"
    );
}

/// Per-listener handles.
#[derive(Debug, Clone)]
pub struct ListenerMetrics {
    pub accepted: Counter,
    pub refused_max_conns: Counter,
    pub refused_rate: Counter,
    pub refused_no_backend: Counter,
    pub refused_proxy: Counter,
    pub refused_sni: Counter,
    pub refused_client_gone: Counter,
    pub accept_errors: Counter,
    /// io_uring engine → epoll engine, by reason.
    pub handed_over: Handovers,
}

/// [`ListenerMetrics::handed_over`].
#[derive(Debug, Clone)]
pub struct Handovers {
    pub sni: Counter,
    pub splice: Counter,
    pub spill: Counter,
    pub bulk: Counter,
}

impl ListenerMetrics {
    pub fn new(listener: &str) -> Self {
        let l = listener.to_string();
        let refused = |reason: &'static str| metrics::counter!(REFUSED, "listener" => l.clone(), "reason" => reason);
        ListenerMetrics {
            accepted: metrics::counter!(ACCEPTED, "listener" => l.clone()),
            refused_max_conns: refused("max_connections"),
            refused_rate: refused("source_rate"),
            refused_no_backend: refused("no_backend"),
            refused_proxy: refused("proxy_header"),
            refused_sni: refused("sni"),
            refused_client_gone: refused("client_gone"),
            accept_errors: metrics::counter!(ACCEPT_ERRORS, "listener" => l.clone()),
            handed_over: {
                let h = |reason: &'static str| metrics::counter!(HANDED_OVER, "listener" => l.clone(), "reason" => reason);
                Handovers {
                    sni: h("sni"),
                    splice: h("splice"),
                    spill: h("spill"),
                    bulk: h("bulk"),
                }
            },
        }
    }
}

/// Per-listener handles of SNI routing (built only for listeners that route by SNI).
#[derive(Debug, Clone)]
pub struct SniMetrics {
    pub matched: Counter,
    pub unmatched: Counter,
    pub not_tls: Counter,
    pub invalid: Counter,
    pub timeout: Counter,
}

impl SniMetrics {
    pub fn new(listener: &str) -> Self {
        let c = |result: &'static str| metrics::counter!(SNI, "listener" => listener.to_string(), "result" => result);
        SniMetrics {
            matched: c("matched"),
            unmatched: c("unmatched"),
            not_tls: c("not_tls"),
            invalid: c("invalid"),
            timeout: c("timeout"),
        }
    }
}

/// Per-backend handles (per pool member).
#[derive(Debug, Clone)]
pub struct BackendMetrics {
    pub active: Gauge,
    pub conns: Counter,
    pub bytes_up: Counter,
    pub bytes_down: Counter,
    pub connect_errors: Counter,
    pub up: Gauge,
    pub draining: Gauge,
    pub drain_closed: Counter,
}

impl BackendMetrics {
    pub fn new(pool: &str, member: &str, addr: std::net::SocketAddr) -> Self {
        let (p, m, a) = (pool.to_string(), member.to_string(), addr.to_string());
        macro_rules! labels {
            () => {
                ["pool", "member", "backend"]
                    .into_iter()
                    .zip([p.clone(), m.clone(), a.clone()])
                    .map(|(k, v)| metrics::Label::new(k, v))
                    .collect::<Vec<_>>()
            };
        }
        BackendMetrics {
            active: metrics::gauge!(BACKEND_ACTIVE, labels!()),
            conns: metrics::counter!(BACKEND_CONNS, labels!()),
            bytes_up: metrics::counter!(BACKEND_BYTES_UP, labels!()),
            bytes_down: metrics::counter!(BACKEND_BYTES_DOWN, labels!()),
            connect_errors: metrics::counter!(BACKEND_CONNECT_ERRORS, labels!()),
            up: metrics::gauge!(BACKEND_UP, labels!()),
            draining: metrics::gauge!(BACKEND_DRAINING, labels!()),
            drain_closed: metrics::counter!(DRAIN_CLOSED, labels!()),
        }
    }
}
