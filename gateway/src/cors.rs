//! CORS for browser clients (the Fetch standard's CORS protocol).
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered by the
//! gateway itself, before authentication (browsers send no credentials on a preflight): `204`
//! with the allowed methods and headers when the origin is allowed and a route serves the path
//! with the requested method, `403` when the origin or method is not allowed, `404` when no route
//! serves the path. Any other response to an allowed origin, the gateway's own errors included
//! (so a script can read a `401`), carries `Access-Control-Allow-Origin`. Responses vary by
//! `Origin`. The header values are built once per configuration.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response};

/// CORS settings with their header values prebuilt.
#[derive(Debug, Clone)]
pub struct CorsSpec {
    /// Allowed origins, lower-case; `None` = any (answered with `*`).
    pub origins: Option<Vec<String>>,
    /// Methods a preflight may ask for.
    pub methods: Vec<Method>,
    /// Send `Access-Control-Allow-Credentials: true` (and echo the origin instead of `*`).
    pub credentials: bool,
    methods_value: HeaderValue,
    headers_value: HeaderValue,
    expose_value: Option<HeaderValue>,
    max_age_value: HeaderValue,
}

impl CorsSpec {
    /// From validated config values (`methods` upper-case, header names lower-case).
    pub fn new(
        origins: Option<Vec<String>>,
        methods: &[String],
        headers: &[String],
        expose: &[String],
        credentials: bool,
        max_age: std::time::Duration,
    ) -> Result<CorsSpec, String> {
        let value = |v: String| {
            HeaderValue::from_str(&v).map_err(|_| format!("bad CORS header value {v:?}"))
        };
        Ok(CorsSpec {
            origins,
            methods: methods
                .iter()
                .map(|m| Method::from_bytes(m.as_bytes()).map_err(|_| format!("bad method {m}")))
                .collect::<Result<_, _>>()?,
            credentials,
            methods_value: value(methods.join(", "))?,
            headers_value: value(headers.join(", "))?,
            expose_value: if expose.is_empty() {
                None
            } else {
                Some(value(expose.join(", "))?)
            },
            max_age_value: HeaderValue::from(max_age.as_secs()),
        })
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        match &self.origins {
            None => true,
            Some(list) => origin
                .to_str()
                .is_ok_and(|o| list.iter().any(|a| a.eq_ignore_ascii_case(o))),
        }
    }

    fn allow_origin(&self, origin: &HeaderValue, h: &mut HeaderMap) {
        let value = match self.origins {
            None if !self.credentials => HeaderValue::from_static("*"),
            _ => origin.clone(),
        };
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        if self.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
}

/// Is this request a CORS preflight?
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The method a preflight asks about (`None` when it is not a method).
pub fn requested_method(headers: &HeaderMap) -> Option<Method> {
    headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| Method::from_bytes(v.as_bytes()).ok())
}

/// Why a preflight is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Another origin, or a method not allowed (403).
    Forbidden,
    /// No route serves the path with that method (404).
    NotFound,
}

/// The headers of a `204` answer to a preflight whose path a route serves with the requested
/// method (`routed`), or why it is refused.
pub fn preflight(cors: &CorsSpec, headers: &HeaderMap, routed: bool) -> Result<HeaderMap, Refused> {
    let origin = headers.get(header::ORIGIN).ok_or(Refused::Forbidden)?;
    let method_ok = requested_method(headers).is_some_and(|m| cors.methods.contains(&m));
    if !cors.allows(origin) || !method_ok {
        return Err(Refused::Forbidden);
    }
    if !routed {
        return Err(Refused::NotFound);
    }
    let mut h = HeaderMap::new();
    cors.allow_origin(origin, &mut h);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        cors.methods_value.clone(),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        cors.headers_value.clone(),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, cors.max_age_value.clone());
    Ok(h)
}

/// Adds the CORS headers to a response (not a preflight's) for an allowed `origin`.
pub fn decorate<B>(cors: &CorsSpec, origin: &HeaderValue, r: &mut Response<B>) {
    let h = r.headers_mut();
    if !cors.allows(origin) {
        // the answer still depends on the origin
        h.append(header::VARY, HeaderValue::from_static("origin"));
        return;
    }
    cors.allow_origin(origin, h);
    if let Some(v) = &cors.expose_value {
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
    }
}
