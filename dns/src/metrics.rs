//! Metric names, descriptions and pre-resolved handles (the request path only increments).

use metrics::{counter, describe_counter, describe_gauge, gauge, Counter, Gauge};

use crate::wire::rcode;
use crate::zone::rtype;

/// Counter: queries answered, by `qtype` and `rcode`.
pub const QUERIES: &str = "switchyard_dns_queries_total";
/// Counter: GSLB answers, by `name` and chosen `region`.
pub const GSLB_ANSWERS: &str = "switchyard_dns_gslb_answers_total";
/// Counter: GSLB answers given while every region of the `name` was down.
pub const GSLB_ALL_DOWN: &str = "switchyard_dns_gslb_all_down_total";
/// Counter: queries by presence of an EDNS Client Subnet option (`present`).
pub const ECS: &str = "switchyard_dns_ecs_queries_total";
/// Counter: UDP responses sent with TC=1.
pub const TRUNCATED: &str = "switchyard_dns_truncated_total";
/// Counter: queries received over TCP.
pub const TCP_QUERIES: &str = "switchyard_dns_tcp_queries_total";
/// Gauge: open TCP connections.
pub const TCP_CONNECTIONS: &str = "switchyard_dns_tcp_connections";
/// Counter: TCP connections closed at once because the cap was reached.
pub const TCP_REJECTED: &str = "switchyard_dns_tcp_rejected_total";
/// Counter: queries received over DNS over TLS (RFC 7858).
pub const DOT_QUERIES: &str = "switchyard_dns_dot_queries_total";
/// Counter: queries received over DNS over HTTPS (RFC 8484), by `method`.
pub const DOH_QUERIES: &str = "switchyard_dns_doh_queries_total";
/// Counter: DoH requests refused before the answering core, by HTTP `status`.
pub const DOH_REFUSED: &str = "switchyard_dns_doh_refused_total";
/// Gauge: open DoT and DoH connections, by `transport`.
pub const TLS_CONNECTIONS: &str = "switchyard_dns_tls_connections";
/// Counter: DoT and DoH connections closed at once because the cap was reached, by `transport`.
pub const TLS_REJECTED: &str = "switchyard_dns_tls_rejected_total";
/// Counter: messages dropped unanswered.
pub const MALFORMED: &str = "switchyard_dns_malformed_dropped_total";
/// Counter: reloads, by `result` (`ok`/`error`).
pub const RELOADS: &str = "switchyard_dns_reloads_total";
/// Counter: UDP responses over the rate limit, by `action` (`dropped`/`slipped`).
pub const RRL: &str = "switchyard_dns_rrl_limited_total";
/// Counter: NOTIFY messages sent, by `result` (`acked`/`refused`/`unanswered`).
pub const NOTIFY: &str = "switchyard_dns_notify_total";
/// Counter: queries with the DNSSEC OK bit set.
pub const DO_QUERIES: &str = "switchyard_dns_dnssec_ok_queries_total";
/// Counter: RRSIGs made by online signing.
pub const SIGNATURES: &str = "switchyard_dns_dnssec_signatures_total";
/// Counter: signed RRsets answered with a cached RRSIG.
pub const SIG_CACHE_HITS: &str = "switchyard_dns_dnssec_signature_cache_hits_total";

/// Registers descriptions with the installed recorder.
pub fn describe() {
    describe_counter!(
        QUERIES,
        "DNS queries answered, by query type and response code"
    );
    describe_counter!(GSLB_ANSWERS, "GSLB answers, by name and region chosen");
    describe_counter!(
        GSLB_ALL_DOWN,
        "GSLB answers given while every region of the name was down"
    );
    describe_counter!(
        ECS,
        "Queries by presence of an EDNS Client Subnet option (present=yes|no)"
    );
    describe_counter!(
        TRUNCATED,
        "UDP responses sent with TC=1 because the answer did not fit"
    );
    describe_counter!(TCP_QUERIES, "Queries received over TCP");
    describe_counter!(DOT_QUERIES, "Queries received over DNS over TLS");
    describe_counter!(
        DOH_QUERIES,
        "Queries received over DNS over HTTPS, by method"
    );
    describe_counter!(
        DOH_REFUSED,
        "DoH requests answered with an HTTP error before reaching the DNS core, by status"
    );
    describe_gauge!(
        TLS_CONNECTIONS,
        "Open DoT and DoH connections, by transport"
    );
    describe_counter!(
        TLS_REJECTED,
        "DoT and DoH connections closed at once at the connection cap, by transport"
    );
    describe_gauge!(TCP_CONNECTIONS, "Open TCP connections");
    describe_counter!(
        TCP_REJECTED,
        "TCP connections closed at once because the cap was reached"
    );
    describe_counter!(
        MALFORMED,
        "Messages dropped unanswered (too short to answer or QR=1)"
    );
    describe_counter!(RELOADS, "Zone/policy/geo reloads, by result (ok|error)");
    describe_counter!(
        NOTIFY,
        "NOTIFY messages to secondaries, by how they ended (acked|refused|unanswered)"
    );
    describe_counter!(DO_QUERIES, "Queries with the DNSSEC OK (DO) bit set");
    describe_counter!(SIGNATURES, "RRSIGs made by online signing");
    describe_counter!(SIG_CACHE_HITS, "Signed RRsets answered with a cached RRSIG");
    describe_counter!(
        RRL,
        "UDP responses over the rate limit, by action (dropped|slipped: sent truncated)"
    );
}

const QTYPES: [(u16, &str); 12] = [
    (rtype::A, "A"),
    (rtype::AAAA, "AAAA"),
    (rtype::CNAME, "CNAME"),
    (rtype::MX, "MX"),
    (rtype::TXT, "TXT"),
    (rtype::SRV, "SRV"),
    (rtype::NS, "NS"),
    (rtype::SOA, "SOA"),
    (257, "CAA"),
    (rtype::ANY, "ANY"),
    (rtype::AXFR, "AXFR"),
    (0, "other"),
];
const RCODES: [u16; 7] = [
    rcode::NOERROR,
    rcode::FORMERR,
    rcode::SERVFAIL,
    rcode::NXDOMAIN,
    rcode::NOTIMP,
    rcode::REFUSED,
    rcode::BADVERS,
];

/// The HTTP statuses of [`Metrics::doh_refused`], in order.
pub const DOH_STATUSES: [u16; 5] = [400, 404, 405, 413, 415];

/// Handles resolved once at start.
#[derive(Debug, Clone)]
pub struct Metrics {
    queries: Vec<Counter>,
    /// [`ECS`] with `present=yes`.
    pub ecs_yes: Counter,
    /// [`ECS`] with `present=no`.
    pub ecs_no: Counter,
    /// [`TRUNCATED`].
    pub truncated: Counter,
    /// [`TCP_QUERIES`].
    pub tcp_queries: Counter,
    /// [`TCP_CONNECTIONS`].
    pub tcp_connections: Gauge,
    /// [`TCP_REJECTED`].
    pub tcp_rejected: Counter,
    /// [`DOT_QUERIES`].
    pub dot_queries: Counter,
    /// [`DOH_QUERIES`] with `method=get` and `method=post`.
    pub doh_queries: [Counter; 2],
    /// [`DOH_REFUSED`] by status: 400, 404, 405, 413, 415.
    pub doh_refused: [Counter; 5],
    /// [`TLS_CONNECTIONS`] with `transport=dot` and `transport=doh`.
    pub tls_connections: [Gauge; 2],
    /// [`TLS_REJECTED`] with `transport=dot` and `transport=doh`.
    pub tls_rejected: [Counter; 2],
    /// [`MALFORMED`].
    pub malformed: Counter,
    /// [`RRL`] with `action=dropped`.
    pub rrl_dropped: Counter,
    /// [`RRL`] with `action=slipped`.
    pub rrl_slipped: Counter,
    /// [`DO_QUERIES`].
    pub do_queries: Counter,
    /// [`SIGNATURES`].
    pub signatures: Counter,
    /// [`SIG_CACHE_HITS`].
    pub sig_cache_hits: Counter,
}

impl Metrics {
    /// Registers the descriptions and resolves every handle (one per qtype x rcode for [`QUERIES`]).
    pub fn new() -> Self {
        describe();
        let mut queries = Vec::with_capacity(QTYPES.len() * (RCODES.len() + 1));
        for (_, t) in QTYPES {
            for r in RCODES.iter().copied().chain([999]) {
                queries.push(counter!(QUERIES, "qtype" => t, "rcode" => rcode::label(r)));
            }
        }
        Metrics {
            queries,
            ecs_yes: counter!(ECS, "present" => "yes"),
            ecs_no: counter!(ECS, "present" => "no"),
            truncated: counter!(TRUNCATED),
            tcp_queries: counter!(TCP_QUERIES),
            tcp_connections: gauge!(TCP_CONNECTIONS),
            tcp_rejected: counter!(TCP_REJECTED),
            dot_queries: counter!(DOT_QUERIES),
            doh_queries: ["get", "post"].map(|m| counter!(DOH_QUERIES, "method" => m)),
            doh_refused: DOH_STATUSES.map(|s| counter!(DOH_REFUSED, "status" => s.to_string())),
            tls_connections: ["dot", "doh"].map(|t| gauge!(TLS_CONNECTIONS, "transport" => t)),
            tls_rejected: ["dot", "doh"].map(|t| counter!(TLS_REJECTED, "transport" => t)),
            malformed: counter!(MALFORMED),
            rrl_dropped: counter!(RRL, "action" => "dropped"),
            rrl_slipped: counter!(RRL, "action" => "slipped"),
            do_queries: counter!(DO_QUERIES),
            signatures: counter!(SIGNATURES),
            sig_cache_hits: counter!(SIG_CACHE_HITS),
        }
    }

    /// Counts one answered query.
    pub fn query(&self, qtype: u16, rc: u16) {
        let t = QTYPES
            .iter()
            .position(|(c, _)| *c == qtype)
            .unwrap_or(QTYPES.len() - 1);
        let r = RCODES.iter().position(|c| *c == rc).unwrap_or(RCODES.len());
        self.queries[t * (RCODES.len() + 1) + r].increment(1);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Per GSLB name and region answer counter.
pub fn gslb_answer(name: &str, region: &str) -> Counter {
    counter!(GSLB_ANSWERS, "name" => name.to_string(), "region" => region.to_string())
}

/// The [`GSLB_ALL_DOWN`] counter of GSLB name `name`.
pub fn gslb_all_down(name: &str) -> Counter {
    counter!(GSLB_ALL_DOWN, "name" => name.to_string())
}

/// Counts one NOTIFY exchange by how it ended.
pub fn notify(outcome: crate::notify::Outcome) {
    use crate::notify::Outcome;
    let result = match outcome {
        Outcome::Acked => "acked",
        Outcome::Refused(_) => "refused",
        Outcome::Unanswered => "unanswered",
    };
    counter!(NOTIFY, "result" => result).increment(1);
}

/// Counts one reload by its result.
pub fn reload(ok: bool) {
    counter!(RELOADS, "result" => if ok { "ok" } else { "error" }).increment(1);
}
