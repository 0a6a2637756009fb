//! Integration tests: the DNS server over real UDP and TCP sockets on 127.0.0.1 (port 0).
#![allow(unreachable_pub)] // a test binary exports nothing: `pub` marks the harness's interface

mod alloc;
mod axfr;
mod correctness;
mod dnssec;
mod edns;
mod encrypted;
mod failover;
mod geo;
mod harness;
mod hostile;
mod knot;
mod notify;
mod policies;
mod reload;
mod rfc;
mod rrl;
mod spill;
