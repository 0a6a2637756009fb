//! Metric names, descriptions and pre-resolved handles (the request path only increments).

use metrics::{counter, describe_counter, describe_gauge, gauge, Counter, Gauge};

use crate::wire::rcode;
use crate::zone::rtype;

pub const QUERIES: &str = "switchyard_dns_queries_total";
pub const GSLB_ANSWERS: &str = "switchyard_dns_gslb_answers_total";
pub const GSLB_ALL_DOWN: &str = "switchyard_dns_gslb_all_down_total";
pub const ECS: &str = "switchyard_dns_ecs_queries_total";
pub const TRUNCATED: &str = "switchyard_dns_truncated_total";
pub const TCP_QUERIES: &str = "switchyard_dns_tcp_queries_total";
pub const TCP_CONNECTIONS: &str = "switchyard_dns_tcp_connections";
pub const TCP_REJECTED: &str = "switchyard_dns_tcp_rejected_total";
pub const MALFORMED: &str = "switchyard_dns_malformed_dropped_total";
pub const RELOADS: &str = "switchyard_dns_reloads_total";
pub const RRL: &str = "switchyard_dns_rrl_limited_total";
pub const NOTIFY: &str = "switchyard_dns_notify_total";
pub const DO_QUERIES: &str = "switchyard_dns_dnssec_ok_queries_total";
pub const SIGNATURES: &str = "switchyard_dns_dnssec_signatures_total";
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

/// Handles resolved once at start.
#[derive(Debug, Clone)]
pub struct Metrics {
    queries: Vec<Counter>,
    pub ecs_yes: Counter,
    pub ecs_no: Counter,
    pub truncated: Counter,
    pub tcp_queries: Counter,
    pub tcp_connections: Gauge,
    pub tcp_rejected: Counter,
    pub malformed: Counter,
    pub rrl_dropped: Counter,
    pub rrl_slipped: Counter,
    pub do_queries: Counter,
    pub signatures: Counter,
    pub sig_cache_hits: Counter,
}

impl Metrics {
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

pub fn gslb_all_down(name: &str) -> Counter {
    counter!(GSLB_ALL_DOWN, "name" => name.to_string())
}

pub fn notify(outcome: crate::notify::Outcome) {
    use crate::notify::Outcome;
    let result = match outcome {
        Outcome::Acked => "acked",
        Outcome::Refused(_) => "refused",
        Outcome::Unanswered => "unanswered",
    };
    counter!(NOTIFY, "result" => result).increment(1);
}

pub fn reload(ok: bool) {
    counter!(RELOADS, "result" => if ok { "ok" } else { "error" }).increment(1);
}
