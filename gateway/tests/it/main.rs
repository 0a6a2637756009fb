//! Integration tests: real HTTP over 127.0.0.1, real JWTs, tiny in-process upstreams.
#![allow(unreachable_pub)] // a test binary exports nothing: `pub` marks the harness's interface

mod access_log;
mod compose;
mod cors;
mod demo;
mod device;
mod failover;
mod forwarding;
mod harness;
mod head;
mod hostile;
mod jwt;
mod limits;
mod paths;
mod pool;
mod rbac;
mod recorder;
mod reload;
mod remote;
mod routing;
mod split;
mod tls;
mod websocket;
