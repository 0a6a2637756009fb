//! Upstreams: the internal load balancer in front of each service.
//!
//! Selection and health are the shared `switchyard-balance` machinery: one [`Selector`] per
//! service for the gateway's own region, and one per remote region in the region's `failover`
//! order (issue 17: "remote instances"), used only when nothing earlier has an instance up. A
//! region without a failover order falls back to every other region as one group. A service
//! with `remote_instances = false` has no remote groups. Inside a region the selector is
//! AZ-aware. Requests go over pooled keep-alive connections ([`crate::h1pool`]); a connect
//! failure is recorded as a passive failure (ejection works as a circuit breaker) and retried on
//! another instance. Identity headers, deadlines and retries are the same for local and remote
//! instances (they are the same request path).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use switchyard_balance::{HealthRegistry, MemberSpec, Selector, SelectorOptions};
use tokio::time::Instant;

use crate::spec::{ServiceSpec, UpstreamSpec};

/// One region's instances of a service: a selector and each member's URI authority.
struct Group {
    /// The instances' region (`None`: the local group, or every other region together).
    region: Option<String>,
    selector: Selector,
    /// Each member's URI authority (`ip:port`), built once instead of formatted per request.
    authority: Vec<Authority>,
    /// The same as a `Host` value, for requests that came without one (HTTP/1.0).
    host: Vec<HeaderValue>,
    /// Requests this remote group answered (`None` for the local group).
    spilled: Option<metrics::Counter>,
}

/// Instances of one service as seen from one gateway region.
pub struct ServicePool {
    /// Service name (metrics label, logs).
    pub name: String,
    /// `groups[0]` is the local region when it has instances (see `has_local`); then the remote
    /// regions in failover order.
    groups: Vec<Group>,
    has_local: bool,
    /// The service's own client when its instances speak TLS (`None`: the shared plain one).
    tls: Option<HttpClient>,
}

/// A chosen instance: which group (local region, or a remote one), which member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// From a remote region (spill-over), else the local one.
    pub remote: bool,
    /// Index of the group (local first, then remote regions in failover order).
    pub group: u8,
    /// Member index in that group's selector.
    pub idx: usize,
}

impl ServicePool {
    /// Split the service's instances into this region's and the remote regions' (in
    /// `failover` order; `None`: every other region as one group), each with its own selector
    /// on the shared registry (`region` `None`: every instance is local).
    pub fn build(
        spec: &ServiceSpec,
        region: Option<&str>,
        failover: Option<&[String]>,
        registry: &HealthRegistry,
        upstream: &UpstreamSpec,
    ) -> ServicePool {
        let member = |inst: &crate::spec::ServiceInstanceSpec| {
            MemberSpec::new(inst.name.clone(), inst.addr, inst.az.clone(), inst.weight)
        };
        let group = |members: Vec<MemberSpec>, to: Option<&str>| -> Option<Group> {
            if members.is_empty() {
                return None;
            }
            let opts = SelectorOptions {
                passive: spec.passive,
                region: region.map(str::to_string),
                ..Default::default()
            };
            let selector = Selector::new(members, &[], spec.policy, registry, opts);
            let authority: Vec<Authority> = selector
                .members()
                .map(|(m, _)| {
                    Authority::from_maybe_shared(Bytes::from(m.addr.to_string()))
                        .expect("a socket address is a valid URI authority")
                })
                .collect();
            let host = authority
                .iter()
                .map(|a| {
                    HeaderValue::from_str(a.as_str()).expect("an authority is a valid header value")
                })
                .collect();
            let remote = region.is_some() && to != region;
            Some(Group {
                region: to.map(str::to_string),
                selector,
                authority,
                host,
                spilled: remote.then(|| {
                    metrics::counter!(crate::metrics::UPSTREAM_SPILLED,
                        "service" => spec.name.clone(),
                        "from" => region.unwrap_or_default().to_string(),
                        "to" => to.unwrap_or("other").to_string())
                }),
            })
        };
        let local: Vec<MemberSpec> = spec
            .instances
            .iter()
            .filter(|i| region.is_none_or(|r| r == i.region))
            .map(member)
            .collect();
        let mut groups: Vec<Group> = group(local, region).into_iter().collect();
        let has_local = !groups.is_empty();
        if let (Some(region), true) = (region, spec.remote_instances) {
            let in_region = |r: &str| -> Vec<MemberSpec> {
                spec.instances
                    .iter()
                    .filter(|i| i.region == r)
                    .map(member)
                    .collect()
            };
            match failover.filter(|f| !f.is_empty()) {
                Some(order) => {
                    for r in order.iter().filter(|r| *r != region) {
                        groups.extend(group(in_region(r), Some(r)));
                    }
                }
                None => {
                    let others = spec
                        .instances
                        .iter()
                        .filter(|i| i.region != region)
                        .map(member)
                        .collect();
                    groups.extend(group(others, None));
                }
            }
        }
        groups.truncate(u8::MAX as usize);
        ServicePool {
            name: spec.name.clone(),
            groups,
            has_local,
            tls: spec.tls.as_ref().map(|t| tls_client(upstream, t)),
        }
    }

    fn group(&self, p: Pick) -> &Group {
        &self.groups[p.group as usize]
    }

    /// Next instance to try: local region first, then the remote regions in failover order.
    pub fn pick(&self, client: IpAddr, tried: &[Pick]) -> Option<Pick> {
        let mut excl: Vec<usize> = Vec::new();
        for (g, group) in self.groups.iter().enumerate() {
            excl.clear();
            excl.extend(
                tried
                    .iter()
                    .filter(|p| p.group as usize == g)
                    .map(|p| p.idx),
            );
            if let Some(idx) = group.selector.pick(client, &excl) {
                return Some(Pick {
                    remote: g > 0 || !self.has_local,
                    group: g as u8,
                    idx,
                });
            }
        }
        None
    }

    /// The picked member's spec (name, address, zone).
    pub fn member(&self, p: Pick) -> &MemberSpec {
        self.group(p).selector.member(p.idx)
    }

    /// The region of a picked remote member (`None`: local, or "every other region").
    pub fn region(&self, p: Pick) -> Option<&str> {
        self.group(p).region.as_deref()
    }

    /// The URI authority of a picked member.
    pub fn authority(&self, p: Pick) -> &Authority {
        &self.group(p).authority[p.idx]
    }

    /// Report the outcome of a request to a picked member: a failure counts toward passive
    /// ejection; a remote success is counted as a spilled request.
    pub fn record(&self, p: Pick, ok: bool) {
        let g = self.group(p);
        if ok {
            g.selector.record_success(p.idx);
            if let Some(c) = &g.spilled {
                c.increment(1);
            }
        } else if g.selector.record_connect_failure(p.idx) {
            tracing::warn!(service = %self.name, instance = %g.selector.member(p.idx).name, "instance ejected");
        }
    }
}

/// All service pools for one gateway region.
#[derive(Default)]
pub struct Upstreams {
    pools: HashMap<String, ServicePool>,
}

impl Upstreams {
    /// One pool per service, as seen from `region` (`None`: no region preference) with the
    /// region's `failover` order for remote instances.
    pub fn build(
        services: &[ServiceSpec],
        region: Option<&str>,
        failover: Option<&[String]>,
        registry: &HealthRegistry,
        upstream: &UpstreamSpec,
    ) -> Upstreams {
        Upstreams {
            pools: services
                .iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        ServicePool::build(s, region, failover, registry, upstream),
                    )
                })
                .collect(),
        }
    }

    /// The pool of a service (`None`: not configured).
    pub fn get(&self, service: &str) -> Option<&ServicePool> {
        self.pools.get(service)
    }
}

/// The client used for every plain-HTTP upstream request (pooled keep-alive).
pub type HttpClient = crate::h1pool::Client;

fn settings(spec: &UpstreamSpec) -> crate::h1pool::Settings {
    crate::h1pool::Settings {
        connect_timeout: spec.connect_timeout,
        idle_timeout: spec.pool_idle_timeout,
        max_idle: spec.pool_max_idle_per_host,
    }
}

/// The pooled keep-alive client of one gateway instance's worker (kept across reloads).
pub fn client(spec: &UpstreamSpec) -> HttpClient {
    crate::h1pool::Client::new(settings(spec), None)
}

/// A pooled client that calls instances over TLS, verifying them with the service's CA, with
/// its `server_name` as SNI (else the instance's IP address). Kept across reloads: a service
/// whose CA (by content), server name and pool settings did not change gets the client it had,
/// with its pooled connections (a reload costs no TLS handshakes); the cache holds clients
/// weakly, so a client no runtime uses closes its connections.
fn tls_client(spec: &UpstreamSpec, tls: &crate::spec::UpstreamTlsSpec) -> HttpClient {
    type Key = (u64, Option<String>, Duration, Duration, usize);
    static KEPT: std::sync::Mutex<Vec<(Key, crate::h1pool::WeakClient)>> =
        std::sync::Mutex::new(Vec::new());
    let key: Key = (
        tls.ca_digest,
        tls.server_name.as_ref().map(|n| n.to_str().into_owned()),
        spec.connect_timeout,
        spec.pool_idle_timeout,
        spec.pool_max_idle_per_host,
    );
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    kept.retain(|(_, w)| w.upgrade().is_some());
    if let Some(c) = kept
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, w)| w.upgrade())
    {
        return c;
    }
    let client = crate::h1pool::Client::new(
        settings(spec),
        Some(crate::h1pool::Tls::new(
            &tls.config,
            tls.server_name.clone(),
        )),
    );
    kept.push((key, client.downgrade()));
    client
}

/// Why an upstream call failed (maps to 502 / 503 / 504).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// No instance is up (503).
    NoInstance,
    /// Could not connect to any tried instance (502).
    Connect,
    /// The deadline passed (504).
    Timeout,
    /// The exchange failed after connecting (502).
    Protocol,
}

impl UpstreamError {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamError::NoInstance => "no_instance",
            UpstreamError::Connect => "connect",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Protocol => "protocol",
        }
    }
}

/// One outbound request (reusable across attempts).
pub struct Outbound<'a> {
    /// Request method (decides whether a failed exchange may be retried).
    pub method: &'a Method,
    /// Path and query as sent to the instance (after rewriting).
    pub path_and_query: &'a str,
    /// Headers as sent (hop-by-hop removed, identity and forwarding headers set).
    pub headers: &'a HeaderMap,
    /// The whole request body, buffered so that a retry can resend it.
    pub body: Bytes,
}

/// A response from an instance, with which instance answered.
pub struct Sent {
    /// The response; its body is still streaming.
    pub response: Response<Incoming>,
    /// The instance that answered.
    pub pick: Pick,
    /// Instances tried, this one included.
    pub attempts: u32,
}

/// Send with retries on other instances: connect failures always; 502/503 when `retry_5xx`.
pub async fn send(
    http: &HttpClient,
    pool: &ServicePool,
    client_ip: IpAddr,
    out: &Outbound<'_>,
    attempts: u32,
    retry_5xx: bool,
    deadline: Instant,
) -> Result<Sent, UpstreamError> {
    // validated once; cloning it per attempt only bumps a reference count
    let pq = PathAndQuery::from_maybe_shared(Bytes::copy_from_slice(out.path_and_query.as_bytes()))
        .map_err(|_| UpstreamError::Protocol)?;
    let mut tried: Vec<Pick> = Vec::new();
    let mut last = UpstreamError::NoInstance;
    // an idempotent request that met a stale pooled connection goes again to the same instance,
    // once, without counting as an attempt or a failure
    let mut stale_pick: Option<Pick> = None;
    let mut stale_retried = false;
    let mut attempt = 0;
    while attempt < attempts.max(1) {
        let pick = match stale_pick.take() {
            Some(p) => p,
            None => {
                let Some(pick) = pool.pick(client_ip, &tried) else {
                    break;
                };
                tried.push(pick);
                attempt += 1;
                pick
            }
        };
        // origin-form request target (RFC 9112 §3.2.1)
        let mut req = Request::new(Full::new(out.body.clone()));
        *req.method_mut() = out.method.clone();
        *req.uri_mut() = Uri::from(pq.clone());
        *req.headers_mut() = out.headers.clone();
        if !req.headers().contains_key(header::HOST) {
            // HTTP/1.1 requires one (an HTTP/1.0 client may have sent none)
            let g = pool.group(pick);
            req.headers_mut()
                .insert(header::HOST, g.host[pick.idx].clone());
        }
        let addr = pool.member(pick).addr;
        let call = pool.tls.as_ref().unwrap_or(http).request(addr, req);
        match tokio::time::timeout_at(deadline, call).await {
            Err(_) => return Err(UpstreamError::Timeout),
            Ok(Ok(resp)) => {
                pool.record(pick, true);
                let s = resp.status().as_u16();
                if retry_5xx && (s == 502 || s == 503) && attempt < attempts {
                    crate::metrics::upstream_error(&pool.name, "status_5xx");
                    last = UpstreamError::Protocol;
                    continue;
                }
                return Ok(Sent {
                    response: resp,
                    pick,
                    attempts: attempt,
                });
            }
            Ok(Err(e)) if e.is_stale() && is_idempotent(out.method) && !stale_retried => {
                stale_retried = true;
                stale_pick = Some(pick);
                continue;
            }
            Ok(Err(e)) if e.is_connect() => {
                pool.record(pick, false);
                crate::metrics::upstream_error(&pool.name, "connect");
                last = UpstreamError::Connect;
            }
            Ok(Err(_)) => {
                pool.record(pick, false);
                crate::metrics::upstream_error(&pool.name, "protocol");
                // the request may have reached the instance: only idempotent ones are retried
                if !is_idempotent(out.method) {
                    return Err(UpstreamError::Protocol);
                }
                last = UpstreamError::Protocol;
            }
        }
        if Instant::now() >= deadline {
            return Err(UpstreamError::Timeout);
        }
    }
    Err(last)
}

/// Whether a method may be retried after the request may have reached an instance
/// (RFC 9110 §9.2.2).
pub fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Start active health checks for every instance (one checker per address, shared registry).
/// Hold what it returns until the selectors are built: a checker whose backend nobody holds
/// stops.
#[must_use = "a checker whose backend nobody holds stops"]
pub fn ensure_checks(
    services: &[ServiceSpec],
    registry: &HealthRegistry,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Vec<std::sync::Arc<switchyard_balance::BackendHealth>> {
    let mut held = Vec::new();
    for s in services {
        if let Some(check) = &s.check {
            for i in &s.instances {
                held.push(registry.ensure_checked(i.addr, check, shutdown.clone()));
            }
        }
    }
    held
}

/// Default passive settings when a spec is built by hand.
pub fn default_passive() -> switchyard_balance::PassiveSpec {
    switchyard_balance::PassiveSpec {
        consecutive_failures: 3,
        ejection: Duration::from_secs(10),
        max_ejected_percent: 50,
    }
}
