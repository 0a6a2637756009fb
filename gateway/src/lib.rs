//! # switchyard-gateway: the L7 HTTP gateway
//!
//! The single entry point to the microservices behind each region's L4 balancer: it
//! authenticates (JWT), authorizes (roles), routes by host/path/method/version, balances over the
//! service's instances with the shared `switchyard-balance` machinery, and composes several
//! services into one response.
//!
//! ## Wiring (the binary)
//! ```no_run
//! # async fn demo(world: std::sync::Arc<switchyard_config::World>) -> Result<(), switchyard_gateway::Error> {
//! use switchyard_balance::{AdminState, HealthRegistry};
//! let admin = AdminState::new();
//! let registry = HealthRegistry::with_admin(admin.clone()); // the one shared registry
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let gw = switchyard_gateway::start(world.clone(), registry.clone(), shutdown.child_token()).await?;
//! // ... later, with a new validated world:
//! gw.reload(world.clone()).await?;
//! // on exit:
//! shutdown.cancel();
//! gw.wait().await;
//! # Ok(()) }
//! ```
//! - [`start`] binds every `[[gateway.instances]]` listener before returning and starts active
//!   health checks for every service instance through the shared [`HealthRegistry`]
//!   (`ensure_checked`, one checker per address). Drain/fail from the shared `AdminState` reach
//!   the gateway through the registry's health handles.
//! - [`Handle::reload`] swaps routes, keys, limits and upstreams atomically; listeners are
//!   rebound only for added/changed instances.
//! - [`Handle::wait`] resolves after shutdown once connections finished (grace 5 s).
//! - [`mint_token`] signs a token with the configured signing key (`switchyard token`).
//! - [`QuickArgs`] + [`run_quick`]: `switchyard gateway --listen .. --route /users/=ADDR ..`.
//!
//! ## Serving
//! Each instance runs one worker thread per CPU (`SWITCHYARD_GATEWAY_WORKERS` overrides), each
//! with its own current-thread runtime, `SO_REUSEPORT` listener and upstream connection pool, so
//! a request never crosses threads. Binding first checks that nobody else listens on the address.
//! HTTP/1.1 keep-alive, and h2c with prior knowledge. Peers in `trusted_proxies` may send a PROXY
//! v1/v2 header and have their `X-Forwarded-For` extended (others' is replaced). Every response
//! carries `X-Request-Id`; `traceparent` passes through. `GET /healthz` answers for the instance
//! itself unless a route claims it.
//!
//! ## Request path
//! framing gate (431/408/400 for smuggling shapes) → path normalisation ([`path`]) → [`router`]
//! → JWT ([`jwt`], [`auth`]) and policy (401/403) → rate limit (429) → body limit (413) → device
//! profile ([`device`]) → proxy ([`upstream`]) or composition ([`compose`]).
//!
//! ## Layout
//! - [`spec`]: the validated model; [`adapter`]: built from the `switchyard-config` world (keys
//!   read there); [`runtime`]: compiled from it, swapped whole on reload;
//! - [`server`]: listeners, workers, connections, [`Handle`]; [`framing`]: the HTTP/1.1 gate in
//!   front of hyper; `h2c`: HTTP/2 with prior knowledge; [`websocket`]: upgrades and relay;
//! - [`handler`]: the request pipeline, every failure mapped to a status in one place;
//! - [`path`], [`router`]: normalisation and route lookup; [`cors`]: preflights and headers;
//! - [`jwt`], [`auth`]: token verification, JWKS refresh, policy; [`clock`]: its testable clock;
//! - [`ratelimit`], [`clients`]: per-client token buckets and per-address caps;
//! - [`device`]: device profiles; [`compose`], [`json`]: composition and field trimming;
//! - [`upstream`]: service pools and the pooled client; [`metrics`]: metric names and handles;
//! - [`quick`]: quick mode (`switchyard gateway --listen .. --route ..`).

pub mod adapter;
pub mod auth;
pub mod clients;
pub mod clock;
pub mod compose;
pub mod cors;
pub mod device;
mod error;
pub mod framing;
pub mod h1pool;
mod h2c;
pub mod handler;
pub mod json;
pub mod jwt;
pub mod metrics;
pub mod path;
pub mod quick;
pub mod ratelimit;
pub mod router;
pub mod runtime;
pub mod server;
pub mod spec;
pub mod upstream;
pub mod websocket;

use std::sync::Arc;
use std::time::Duration;

pub use error::Error;
pub use quick::{mint_with_secret, run_quick, QuickArgs};
pub use server::{start_spec, Handle};
pub use spec::{GatewaySpec, UpstreamTlsSpec};
use switchyard_balance::HealthRegistry;
use switchyard_config::World;
use tokio_util::sync::CancellationToken;

/// Start every gateway instance of the world; returns once all listeners are bound.
pub async fn start(
    world: Arc<World>,
    registry: HealthRegistry,
    shutdown: CancellationToken,
) -> Result<Handle, Error> {
    start_spec(GatewaySpec::from_world(&world)?, registry, shutdown).await
}

impl Handle {
    /// Apply a new validated world (see [`Handle::reload_spec`]).
    pub async fn reload(&self, world: Arc<World>) -> Result<(), Error> {
        self.reload_spec(GatewaySpec::from_world(&world)?).await
    }
}

/// Sign a token for `sub` with `roles` valid for `ttl`, with the world's signing key
/// (a key with `sign = true`, else the first HS256 secret).
pub fn mint_token(
    world: &World,
    sub: &str,
    roles: &[String],
    ttl: Duration,
) -> Result<String, Error> {
    let spec = GatewaySpec::from_world(world)?;
    jwt::mint(&spec.jwt, sub, roles, ttl)
}

/// Helpers the unit tests of several modules share.
#[cfg(test)]
pub(crate) mod test_util {
    use http::header::{HeaderMap, HeaderName, HeaderValue};

    /// A header map from `(name, value)` pairs, repeated names appended.
    pub(crate) fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }
}
