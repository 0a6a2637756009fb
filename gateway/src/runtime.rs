//! The compiled, immutable snapshot the request path reads (swapped whole on reload).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};

use switchyard_balance::HealthRegistry;

use crate::auth::Authenticator;
use crate::json::AllowList;
use crate::ratelimit::Limiters;
use crate::router::Router;
use crate::spec::{CompositionSpec, GatewaySpec};
use crate::upstream::Upstreams;
use crate::Error;

/// One configuration, compiled: what a request needs, built off the request path.
pub struct Runtime {
    /// The spec it was built from.
    pub spec: GatewaySpec,
    /// Routes compiled for lookup.
    pub router: Router,
    /// Metric handles per route (labels interned, so reloads do not grow memory); the last
    /// entry counts requests that matched no route.
    pub route_metrics: Vec<crate::metrics::RouteMetrics>,
    /// Token verification with its keys, JWKS refresh and cache.
    pub auth: Authenticator,
    /// Compositions by name.
    pub compositions: HashMap<String, CompositionSpec>,
    /// Per route: (profile, allow-list) for profiles that trim fields.
    pub allow_lists: Vec<Vec<(String, AllowList)>>,
    /// Upstreams per gateway region (`None` key: no region, e.g. quick mode).
    pub upstreams: HashMap<Option<String>, Upstreams>,
    /// Per client address and per subject token buckets (`None`: no rate limit).
    pub limiter: Option<Limiters>,
}

/// Intern a label for metrics (bounded by the distinct names ever configured).
pub fn intern(s: &str) -> &'static str {
    static SET: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut set = SET
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(x) = set.get(s) {
        return x;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    set.insert(leaked);
    leaked
}

impl Runtime {
    /// Compile a spec; fails on unusable keys. The upstream selectors read instance health
    /// from `registry`.
    pub fn build(spec: GatewaySpec, registry: &HealthRegistry) -> Result<Runtime, Error> {
        let router = Router::new(&spec.routes);
        let route_metrics = spec
            .routes
            .iter()
            .map(|r| intern(&r.name))
            .chain(std::iter::once("-"))
            .map(crate::metrics::RouteMetrics::new)
            .collect();
        let auth = Authenticator::new(&spec.jwt)?;
        let compositions = spec
            .compositions
            .iter()
            .map(|c| (c.name.clone(), c.clone()))
            .collect();
        let allow_lists = spec
            .routes
            .iter()
            .map(|r| {
                r.profiles
                    .iter()
                    .filter_map(|p| {
                        p.fields
                            .as_ref()
                            .map(|f| (p.profile.clone(), AllowList::new(f)))
                    })
                    .collect()
            })
            .collect();
        let mut regions: Vec<Option<String>> = spec
            .instances
            .iter()
            .map(|i| Some(i.region.clone()))
            .collect();
        regions.push(None);
        regions.dedup();
        let upstreams = regions
            .into_iter()
            .map(|r| {
                let region = r.as_deref().filter(|r| !r.is_empty());
                let failover = region.and_then(|r| {
                    spec.region_failover
                        .iter()
                        .find(|(n, _)| n == r)
                        .map(|(_, f)| f.as_slice())
                });
                let u =
                    Upstreams::build(&spec.services, region, failover, registry, &spec.upstream);
                (r, u)
            })
            .collect();
        let limiter = spec.limits.rate.map(Limiters::new);
        Ok(Runtime {
            router,
            route_metrics,
            auth,
            compositions,
            allow_lists,
            upstreams,
            limiter,
            spec,
        })
    }

    /// The upstreams as seen from `region`, or the region-less set for an unknown one.
    pub fn upstreams(&self, region: &Option<String>) -> &Upstreams {
        self.upstreams
            .get(region)
            .or_else(|| self.upstreams.get(&None))
            .expect("None region always built")
    }

    /// Whether `ip` may send a PROXY protocol header.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.spec.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    /// Whether `ip`'s `X-Forwarded-For` is extended (else replaced).
    pub fn forwards_trusted(&self, ip: IpAddr) -> bool {
        self.spec.trusted_forwarders.iter().any(|n| n.contains(&ip))
    }
}

/// Shared across reloads.
pub type Shared = Arc<arc_swap::ArcSwap<Runtime>>;
