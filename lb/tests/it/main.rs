//! Integration tests of the L4 balancer over real sockets on 127.x (one test binary).
#![allow(unreachable_pub)] // a test binary exports nothing: `pub` marks the harness's interface

mod access_log;
mod balance;
mod drain;
mod harness;
mod health;
mod limits;
mod proxy;
mod relay;
mod reload;
mod sni;
mod spill;
mod uring;
