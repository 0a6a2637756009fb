//! Integration tests of the L4 balancer over real sockets on 127.x (one test binary).

mod access_log;
mod balance;
mod drain;
mod harness;
mod health;
mod limits;
mod proxy;
mod relay;
mod reload;
