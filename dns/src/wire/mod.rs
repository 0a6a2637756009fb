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
    pub const NOERROR: u16 = 0;
    pub const FORMERR: u16 = 1;
    pub const SERVFAIL: u16 = 2;
    pub const NXDOMAIN: u16 = 3;
    pub const NOTIMP: u16 = 4;
    pub const REFUSED: u16 = 5;
    pub const BADVERS: u16 = 16;

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
