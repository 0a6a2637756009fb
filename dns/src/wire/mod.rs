//! The DNS wire format as the hot path needs it: a strict, allocation-free query parser and a
//! response writer with name compression.
//!
//! Why hand-written instead of `hickory_proto::op::Message`: a query is one question plus maybe
//! an OPT record, and parsing it into a full `Message` (with its vectors and `Name`s) and encoding
//! the answer back through the generic encoder costs several times more CPU than the server's
//! whole budget per query (Knot/NSD/gdnsd spend 4-5 µs including syscalls). Owning the bytes also
//! gives exact RFC behaviour where generic code is lenient: FORMERR for malformed ECS (RFC 7871
//! §7.1.2), BADVERS (RFC 6891 §6.1.3), duplicate OPT, and compression pointers that point
//! anywhere in a question. hickory-proto is still used for everything that is not per packet:
//! zone file parsing and RDATA encoding when a zone is loaded, and by the tests as the client.

pub mod request;
pub mod response;

pub use request::{parse, Ecs, Edns, Parsed, Request};
pub use response::Writer;

/// Response codes (the low 4 bits go in the header, the rest in the OPT record).
pub mod rcode {
    /// No error (RFC 1035).
    pub const NOERROR: u16 = 0;
    /// Format error: the query could not be interpreted (RFC 1035).
    pub const FORMERR: u16 = 1;
    /// Server failure (RFC 1035).
    pub const SERVFAIL: u16 = 2;
    /// The name does not exist (RFC 1035).
    pub const NXDOMAIN: u16 = 3;
    /// Not implemented (RFC 1035).
    pub const NOTIMP: u16 = 4;
    /// Refused, e.g. a name outside our zones (RFC 1035).
    pub const REFUSED: u16 = 5;
    /// Unsupported EDNS version (RFC 6891 §6.1.3); extended, needs an OPT record.
    pub const BADVERS: u16 = 16;

    /// The mnemonic of `rcode` for metrics labels (`OTHER` for unknown codes).
    pub fn label(rcode: u16) -> &'static str {
        match rcode {
            NOERROR => "NOERROR",
            FORMERR => "FORMERR",
            SERVFAIL => "SERVFAIL",
            NXDOMAIN => "NXDOMAIN",
            NOTIMP => "NOTIMP",
            REFUSED => "REFUSED",
            BADVERS => "BADVERS",
            _ => "OTHER",
        }
    }
}

/// Smallest UDP payload every client accepts (RFC 1035 §4.2.1).
pub const MIN_UDP_PAYLOAD: u16 = 512;
