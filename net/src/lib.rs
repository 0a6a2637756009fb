//! # switchyard-net: the network plumbing the L4 balancer, the gateway and the DNS server share
//!
//! Each piece exists once here instead of once per server:
//!
//! ## Layout
//! - [`proxy`]: PROXY protocol v1 (text) and v2 (binary): a sans-IO [`proxy::parse`] of an
//!   untrusted header (never panics, never allocates, bounded length), [`proxy::encode`], and
//!   [`proxy::read_header`], which peeks and consumes exactly the header of a tokio stream.
//! - [`tls_hello`]: the server name and ALPN of a TLS ClientHello read from peeked bytes
//!   (sans-IO [`tls_hello::parse`], bounded, never panics) and [`tls_hello::peek_hello`],
//!   which waits on readiness for a whole one without consuming it (L4 SNI routing).
//! - [`limit`]: a token [`limit::Bucket`] (pure: the time is an argument) and a sharded,
//!   bounded [`limit::KeyedLimiter`] of buckets per key (client address, subject, ...).
//! - [`workers`]: thread-per-core workers, one current-thread tokio runtime each, so a
//!   connection never crosses threads.
//! - [`socket`]: listening sockets with `SO_REUSEPORT` (several accept loops or UDP workers on
//!   one port) and the options each server sets.

pub mod limit;
pub mod proxy;
pub mod socket;
pub mod tls_hello;
pub mod workers;
