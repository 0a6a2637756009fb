//! A small etcd v3 client over etcd's JSON gateway (`/v3/kv/*`, `/v3/lease/*`, `/v3/watch`):
//! plain HTTP/1.1 with JSON bodies and base64 keys and values, so no protobuf compiler is needed.
//! Only what Switchyard uses: get, range a prefix, put (optionally under a lease), delete,
//! grant/keep alive/revoke a lease, and watch a prefix.

use crate::Error;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::time::Duration;

/// How long a unary call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// One key-value pair as etcd returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    /// The key.
    pub key: String,
    /// The value, raw bytes.
    pub value: Vec<u8>,
    /// Revision of the last change of this key.
    pub mod_revision: i64,
    /// The lease the key is attached to (0: none).
    pub lease: i64,
}

/// A cheap-to-clone etcd client for one endpoint.
#[derive(Clone)]
pub struct Client {
    endpoint: String,
    http: HttpClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

/// The smallest key greater than every key starting with `prefix` (etcd's `range_end`).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn kv_of(v: &Value) -> Kv {
    let dec = |f: &str| {
        v.get(f)
            .and_then(Value::as_str)
            .and_then(|s| B64.decode(s).ok())
            .unwrap_or_default()
    };
    Kv {
        key: String::from_utf8_lossy(&dec("key")).into_owned(),
        value: dec("value"),
        mod_revision: int(&v["mod_revision"]),
        lease: int(&v["lease"]),
    }
}

impl Client {
    /// A client for `host:port` (no I/O until the first call).
    pub fn new(endpoint: &str) -> Client {
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        connector.set_nodelay(true);
        Client {
            endpoint: endpoint.to_string(),
            http: HttpClient::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        }
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn send(&self, path: &str, body: Value) -> Result<hyper::Response<Incoming>, Error> {
        let req = hyper::Request::post(format!("http://{}{path}", self.endpoint))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| self.protocol("request", e.to_string()))?;
        self.http.request(req).await.map_err(|e| {
            let mut reason = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                reason = format!("{reason}: {s}");
                src = s.source();
            }
            Error::Unreachable {
                endpoint: self.endpoint.clone(),
                reason,
            }
        })
    }

    fn protocol(&self, call: &'static str, reason: String) -> Error {
        Error::Protocol {
            endpoint: self.endpoint.clone(),
            call,
            reason,
        }
    }

    /// One unary call: POST JSON, read the JSON answer, bounded by [`CALL_TIMEOUT`].
    async fn call(&self, call: &'static str, path: &str, body: Value) -> Result<Value, Error> {
        let fut = async {
            let resp = self.send(path, body).await?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| Error::Unreachable {
                    endpoint: self.endpoint.clone(),
                    reason: e.to_string(),
                })?
                .to_bytes();
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
                self.protocol(
                    call,
                    format!("{status}: {e}: {}", String::from_utf8_lossy(&bytes)),
                )
            })?;
            if !status.is_success() {
                let msg = v["message"].as_str().or(v["error"].as_str()).unwrap_or("");
                return Err(self.protocol(call, format!("{status}: {msg}")));
            }
            Ok(v)
        };
        tokio::time::timeout(CALL_TIMEOUT, fut)
            .await
            .map_err(|_| Error::Timeout {
                endpoint: self.endpoint.clone(),
                after: CALL_TIMEOUT,
            })?
    }

    /// Reads one key; `None` when it does not exist. Also returns the store's revision.
    pub async fn get(&self, key: &str) -> Result<(Option<Kv>, i64), Error> {
        let v = self
            .call("range", "/v3/kv/range", json!({"key": b64(key)}))
            .await?;
        let rev = int(&v["header"]["revision"]);
        Ok((v["kvs"].as_array().and_then(|a| a.first()).map(kv_of), rev))
    }

    /// Reads every key under `prefix`, sorted by key, and the store's revision.
    pub async fn range_prefix(&self, prefix: &str) -> Result<(Vec<Kv>, i64), Error> {
        let v = self
            .call(
                "range",
                "/v3/kv/range",
                json!({"key": b64(prefix), "range_end": B64.encode(prefix_end(prefix))}),
            )
            .await?;
        let rev = int(&v["header"]["revision"]);
        let kvs = v["kvs"]
            .as_array()
            .map(|a| a.iter().map(kv_of).collect())
            .unwrap_or_default();
        Ok((kvs, rev))
    }

    /// Writes `key`, attached to `lease` when given; returns the new revision.
    pub async fn put(&self, key: &str, value: &[u8], lease: Option<i64>) -> Result<i64, Error> {
        let mut body = json!({"key": b64(key), "value": B64.encode(value)});
        if let Some(id) = lease {
            body["lease"] = Value::String(id.to_string());
        }
        let v = self
            .call("put", "/v3/kv/put", body)
            .await
            .map_err(|e| match (&e, lease) {
                (Error::Protocol { reason, .. }, Some(id))
                    if reason.contains("lease not found") =>
                {
                    Error::LeaseExpired(id)
                }
                _ => e,
            })?;
        Ok(int(&v["header"]["revision"]))
    }

    /// Deletes `key`; returns how many keys went.
    pub async fn delete(&self, key: &str) -> Result<i64, Error> {
        let v = self
            .call(
                "deleterange",
                "/v3/kv/deleterange",
                json!({"key": b64(key)}),
            )
            .await?;
        Ok(int(&v["deleted"]))
    }

    /// Grants a lease of `ttl` (whole seconds, at least 1) and returns its id.
    pub async fn grant(&self, ttl: Duration) -> Result<i64, Error> {
        let v = self
            .call(
                "lease grant",
                "/v3/lease/grant",
                json!({"TTL": ttl.as_secs().max(1).to_string()}),
            )
            .await?;
        let id = int(&v["ID"]);
        if id == 0 {
            return Err(self.protocol("lease grant", format!("no lease id in {v}")));
        }
        Ok(id)
    }

    /// Renews a lease once; [`Error::LeaseExpired`] when it is gone.
    pub async fn keep_alive(&self, id: i64) -> Result<Duration, Error> {
        let v = self
            .call(
                "lease keepalive",
                "/v3/lease/keepalive",
                json!({"ID": id.to_string()}),
            )
            .await?;
        let ttl = int(&v["result"]["TTL"]);
        if ttl <= 0 {
            return Err(Error::LeaseExpired(id));
        }
        Ok(Duration::from_secs(ttl as u64))
    }

    /// Revokes a lease (its keys go at once).
    pub async fn revoke(&self, id: i64) -> Result<(), Error> {
        self.call(
            "lease revoke",
            "/v3/lease/revoke",
            json!({"ID": id.to_string()}),
        )
        .await
        .map(|_| ())
    }

    /// Watches every key under `prefix` from `start_revision` on.
    pub async fn watch_prefix(&self, prefix: &str, start_revision: i64) -> Result<Watch, Error> {
        let body = json!({"create_request": {
            "key": b64(prefix),
            "range_end": B64.encode(prefix_end(prefix)),
            "start_revision": start_revision.to_string(),
        }});
        let resp = tokio::time::timeout(CALL_TIMEOUT, self.send("/v3/watch", body))
            .await
            .map_err(|_| Error::Timeout {
                endpoint: self.endpoint.clone(),
                after: CALL_TIMEOUT,
            })??;
        if !resp.status().is_success() {
            return Err(self.protocol("watch", resp.status().to_string()));
        }
        Ok(Watch {
            endpoint: self.endpoint.clone(),
            body: resp.into_body(),
            buf: Vec::new(),
        })
    }
}

/// A streaming watch: each [`next`](Watch::next) returns the revision of the next batch of
/// changes (the caller re-reads what it needs; changes are few and small).
pub struct Watch {
    endpoint: String,
    body: Incoming,
    buf: Vec<u8>,
}

impl Watch {
    /// The next batch of changes (its revision), or an error when the stream ends or breaks
    /// (etcd gone, connection cut): the caller reconnects.
    pub async fn next(&mut self) -> Result<i64, Error> {
        loop {
            // Drain complete JSON messages from the buffer first.
            let mut stream = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
            let mut found = None;
            let mut consumed = 0;
            while let Some(item) = stream.next() {
                match item {
                    Ok(v) => {
                        consumed = stream.byte_offset();
                        let r = &v["result"];
                        if r.get("events").is_some() {
                            found = Some(int(&r["header"]["revision"]));
                            break;
                        }
                        if r["canceled"].as_bool() == Some(true) || v.get("error").is_some() {
                            return Err(Error::Protocol {
                                endpoint: self.endpoint.clone(),
                                call: "watch",
                                reason: format!("watch canceled: {v}"),
                            });
                        }
                    }
                    Err(e) if e.is_eof() => break,
                    Err(e) => {
                        return Err(Error::Protocol {
                            endpoint: self.endpoint.clone(),
                            call: "watch",
                            reason: e.to_string(),
                        })
                    }
                }
            }
            self.buf.drain(..consumed);
            if let Some(rev) = found {
                return Ok(rev);
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    return Err(Error::Unreachable {
                        endpoint: self.endpoint.clone(),
                        reason: e.to_string(),
                    })
                }
                None => {
                    return Err(Error::Unreachable {
                        endpoint: self.endpoint.clone(),
                        reason: "watch stream ended".into(),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end("ab"), b"ac".to_vec());
    }
}
