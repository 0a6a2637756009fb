//! Authentication (bearer extraction, cached verification, JWKS refresh) and authorization.
//!
//! [`Authenticator::authenticate`] is the only way to obtain an [`Identity`]; the handler asks
//! [`authorize`] for the route's [`Policy`] and maps `Err(Unauthenticated)` to 401 and
//! `Err(Forbidden)` to 403. JWKS URLs are fetched at start and again when a token names an
//! unknown `kid`, at most once per `jwks_min_refresh`; a failed fetch keeps the last good keys.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::jwt::{unix_now, AuthError, Identity, KeySet, VerifyCache};
use crate::spec::{JwtSpec, Policy};
use crate::Error;

struct JwksSource {
    issuer: usize,
    url: http::Uri,
    min_refresh: Duration,
    last_fetch: Mutex<Option<Instant>>,
    /// Last document fetched successfully (served stale when a fetch fails).
    last_good: Mutex<Option<String>>,
}

/// Verifies bearer tokens against the configured keys, refreshing JWKS on an unknown `kid`,
/// with a verification cache in front.
pub struct Authenticator {
    spec: JwtSpec,
    keys: ArcSwap<KeySet>,
    cache: VerifyCache,
    jwks: Vec<JwksSource>,
    refresh: tokio::sync::Mutex<()>,
    client: Client<HttpConnector, Empty<Bytes>>,
}

/// Extract exactly one bearer token from the request headers.
pub fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut found: Option<&str> = None;
    for v in headers.get_all(AUTHORIZATION) {
        let s = v.to_str().map_err(|_| AuthError::Malformed)?;
        let (scheme, token) = s.split_once(' ').ok_or(AuthError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::NotBearer);
        }
        let token = token.trim();
        match found {
            Some(prev) if prev != token => return Err(AuthError::Multiple),
            _ => found = Some(token),
        }
    }
    found.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)
}

impl Authenticator {
    /// Build from the spec: static keys and JWKS files now; JWKS URLs on [`Self::prime`].
    pub fn new(spec: &JwtSpec) -> Result<Authenticator, Error> {
        let keys = KeySet::from_spec(spec)?;
        let mut jwks = Vec::new();
        for (i, issuer) in spec.issuers.iter().enumerate() {
            if let Some(url) = &issuer.jwks_url {
                let uri: http::Uri = url
                    .parse()
                    .map_err(|_| Error::Key(format!("bad JWKS URL {url}")))?;
                if uri.scheme_str() != Some("http") {
                    return Err(Error::Key(format!(
                        "JWKS URL {url}: only http:// is supported"
                    )));
                }
                jwks.push(JwksSource {
                    issuer: i,
                    url: uri,
                    min_refresh: issuer.jwks_min_refresh,
                    last_fetch: Mutex::new(None),
                    last_good: Mutex::new(None),
                });
            }
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        Ok(Authenticator {
            spec: spec.clone(),
            keys: ArcSwap::from_pointee(keys),
            cache: VerifyCache::new(spec.cache_entries),
            jwks,
            refresh: tokio::sync::Mutex::new(()),
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Fetch JWKS URLs once (at start). Failures are logged; keys stay as they are.
    pub async fn prime(&self) {
        if !self.jwks.is_empty() {
            self.refresh_jwks(true).await;
        }
    }

    /// Verify the request's bearer token (cached by exact bytes).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Identity>, AuthError> {
        let token = bearer(headers)?;
        let now = unix_now();
        if let Some(id) = self.cache.get(token, now) {
            return Ok(id);
        }
        let leeway = self.spec.leeway.as_secs();
        let result = self
            .keys
            .load()
            .verify(token, &self.spec.roles_claim, leeway);
        let id = match result {
            Err(AuthError::UnknownKid) if !self.jwks.is_empty() => {
                if self.refresh_jwks(false).await {
                    self.keys
                        .load()
                        .verify(token, &self.spec.roles_claim, leeway)?
                } else {
                    return Err(AuthError::UnknownKid);
                }
            }
            r => r?,
        };
        let id = Arc::new(id);
        self.cache.put(token, id.clone(), now);
        Ok(id)
    }

    /// Returns whether new keys were installed.
    async fn refresh_jwks(&self, force: bool) -> bool {
        let _guard = self.refresh.lock().await;
        let mut changed = false;
        for src in &self.jwks {
            {
                let mut last = src.last_fetch.lock().unwrap_or_else(|e| e.into_inner());
                let now = self.spec.clock.now();
                if !force
                    && last.is_some_and(|t| now.saturating_duration_since(t) < src.min_refresh)
                {
                    continue;
                }
                *last = Some(now);
            }
            match self.fetch(&src.url).await {
                Ok(text) => {
                    *src.last_good.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
                    changed = true;
                }
                Err(e) => {
                    tracing::warn!(url = %src.url, error = %e, "JWKS fetch failed; keeping cached keys");
                    crate::metrics::jwks_fetch_failed();
                }
            }
        }
        if changed {
            match self.rebuild() {
                Ok(set) => self.keys.store(Arc::new(set)),
                Err(e) => {
                    tracing::warn!(error = %e, "JWKS rejected; keeping cached keys");
                    return false;
                }
            }
        }
        changed
    }

    fn rebuild(&self) -> Result<KeySet, Error> {
        let mut set = KeySet::from_spec(&self.spec)?;
        for src in &self.jwks {
            if let Some(text) = src
                .last_good
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_deref()
            {
                set.add_jwks(&self.spec.issuers[src.issuer], self.spec.leeway, text)?;
            }
        }
        Ok(set)
    }

    async fn fetch(&self, url: &http::Uri) -> Result<String, Error> {
        let fut = async {
            let resp = self
                .client
                .get(url.clone())
                .await
                .map_err(|e| Error::Key(e.to_string()))?;
            if !resp.status().is_success() {
                return Err(Error::Key(format!("status {}", resp.status())));
            }
            let body = Limited::new(resp.into_body(), 1 << 20)
                .collect()
                .await
                .map_err(|e| Error::Key(e.to_string()))?
                .to_bytes();
            String::from_utf8(body.to_vec()).map_err(|_| Error::Key("JWKS is not UTF-8".into()))
        };
        tokio::time::timeout(Duration::from_secs(3), fut)
            .await
            .map_err(|_| Error::Key("JWKS fetch timed out".into()))?
    }
}

/// Outcome of a policy check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No valid token (401), and why.
    Unauthenticated(AuthError),
    /// A valid token without the route's roles (403).
    Forbidden,
}

/// Check a route policy against an authentication result.
pub fn authorize(
    policy: &Policy,
    id: Option<&Result<Arc<Identity>, AuthError>>,
) -> Result<(), Denied> {
    if *policy == Policy::Public {
        return Ok(());
    }
    let id = match id {
        Some(Ok(id)) => id,
        Some(Err(e)) => return Err(Denied::Unauthenticated(*e)),
        None => return Err(Denied::Unauthenticated(AuthError::Missing)),
    };
    let has = |r: &String| id.roles.iter().any(|x| x == r);
    let ok = match policy {
        Policy::Public | Policy::Authenticated => true,
        Policy::Roles { any, all } => {
            (any.is_empty() || any.iter().any(has)) && all.iter().all(has)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Denied::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_extraction() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), Err(AuthError::Missing));
        h.append(AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Ok("abc"));
        h.append(AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Ok("abc"));
        h.append(AUTHORIZATION, "Bearer def".parse().unwrap());
        assert_eq!(bearer(&h), Err(AuthError::Multiple));
        let mut h = HeaderMap::new();
        h.append(AUTHORIZATION, "Basic Zm9vOmJhcg==".parse().unwrap());
        assert_eq!(bearer(&h), Err(AuthError::NotBearer));
    }
}
