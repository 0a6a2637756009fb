//! End-to-end tests: the real `switchyard` binary, real sockets on 127.x addresses.
//!
//! Each test that runs a world moves the demo world to its own `127.N.x.y` network (same ports),
//! so tests run in parallel without clashing with each other or with a demo running on 127.0.x.y.
#![allow(unreachable_pub)] // a test binary exports nothing: `pub` marks the harness's interface

mod admin;
mod bench;
mod chain;
mod cli;
mod cluster;
mod console;
mod dnssec;
mod drill;
mod events;
mod harness;
mod packaging;
mod run;
mod sni;
mod tls;
