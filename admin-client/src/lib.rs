//! # switchyard-admin-client: one request to a running node's admin API
//!
//! The operator CLI (`switchyard status`, `drain`, ...) and the drill (`switchyard-drill`) both
//! talk to the admin API through [`AdminClient::call`]: a bearer token, a 30 s bound, the answer
//! as a status code and a JSON body (a non-JSON body becomes a JSON string). One file: the only
//! layout is this module.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::time::Duration;

/// How long one call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where a node's admin API is and the token to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminClient {
    /// Base URL, e.g. `http://127.0.0.1:9901` (a trailing `/` is ignored).
    pub url: String,
    /// Bearer token (needed for mutations; sent with every request).
    pub token: String,
}

/// Why a call got no answer. An answer with an error status is not an error here.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL (base + path) is not a valid request URI.
    #[error("bad admin URL {0:?}")]
    BadUrl(String, #[source] hyper::http::Error),
    /// No answer within 30 s.
    #[error("admin API at {0} did not answer within 30s")]
    Timeout(String),
    /// Connecting or sending failed.
    #[error("cannot reach the admin API at {0} (is `switchyard run` running?)")]
    Unreachable(String, #[source] hyper_util::client::legacy::Error),
    /// The body could not be read to its end.
    #[error("reading the admin API's answer")]
    Body(#[source] hyper::Error),
}

impl AdminClient {
    /// A client of the admin API at `url` sending `token`.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        AdminClient {
            url: url.into(),
            token: token.into(),
        }
    }

    /// Sends one request (empty body); returns (status, JSON body).
    pub async fn call(&self, method: &str, path: &str) -> Result<(u16, Value), Error> {
        self.request(method, path).await.map(|r| (r.status, r.body))
    }

    /// Like [`call`](Self::call), with the node that answered.
    pub async fn request(&self, method: &str, path: &str) -> Result<Reply, Error> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut req = hyper::Request::builder().method(method).uri(&url);
        if !self.token.is_empty() {
            req = req.header("authorization", format!("Bearer {}", self.token));
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| Error::BadUrl(url.clone(), e))?;
        let resp = tokio::time::timeout(TIMEOUT, client.request(req))
            .await
            .map_err(|_| Error::Timeout(self.url.clone()))?
            .map_err(|e| Error::Unreachable(self.url.clone(), e))?;
        let status = resp.status().as_u16();
        let node = resp
            .headers()
            .get(NODE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(Error::Body)?
            .to_bytes();
        let v = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        Ok(Reply {
            status,
            body: v,
            node,
        })
    }
}

/// The response header naming the node that answered (`NAME ADDR`).
pub const NODE_HEADER: &str = "x-switchyard-node";

/// One answer of the admin API.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The JSON body (a non-JSON body becomes a JSON string).
    pub body: Value,
    /// The node that answered, `NAME ADDR`, when it said so.
    pub node: Option<String>,
}

/// Turns what an operator typed for `--admin` into a base URL: `host:port` (as `--admin-listen`
/// takes it) gets `http://`; a URL is kept; a trailing `/` is dropped.
///
/// ```
/// use switchyard_admin_client::base_url;
/// assert_eq!(base_url("127.0.0.1:9901").unwrap(), "http://127.0.0.1:9901");
/// assert_eq!(base_url("http://[::1]:9901/").unwrap(), "http://[::1]:9901");
/// assert!(base_url("127.0.0.1:9901/status").is_err());
/// ```
pub fn base_url(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    let url = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    let uri: hyper::Uri = url.parse().map_err(|e| {
        format!("{s:?} is not an admin address ({e}); write HOST:PORT or http://HOST:PORT")
    })?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "{s:?}: the admin API speaks plain http; write HOST:PORT or http://HOST:PORT"
        ));
    }
    if uri.host().is_none() || !uri.path().trim_end_matches('/').is_empty() {
        return Err(format!(
            "{s:?} is not an admin address; write HOST:PORT or http://HOST:PORT (no path)"
        ));
    }
    Ok(url)
}
