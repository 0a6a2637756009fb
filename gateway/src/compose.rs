//! API composition: fan out to several services concurrently and merge the JSON bodies.
//!
//! Parts without `depends_on` run together; a part that depends on another runs once that one
//! has finished and may use its fields in its path (`{user.favorite_id}`). Every part has its own
//! timeout inside the overall deadline. Failed optional parts are listed in a `partial` block of
//! a 200; a failed required part gives 502 (504 if it timed out) with the same block.

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::jwt::Identity;
use crate::router::{interpolate, Params};
use crate::spec::{CompositionSpec, PartSpec};
use crate::upstream::{self, HttpClient, Outbound, UpstreamError, Upstreams};

const MAX_PART_BODY: usize = 1 << 20;

/// What a composition needs from the request.
pub struct ComposeCtx<'a> {
    /// The worker's upstream client.
    pub http: &'a HttpClient,
    /// The pools of the request's region.
    pub upstreams: &'a Upstreams,
    /// The client's address (balancing key for hash policies).
    pub client_ip: IpAddr,
    /// The verified caller, for `{sub}` and `{claim}` placeholders.
    pub identity: Option<&'a Identity>,
    /// The route's captured parameters, for `{param}` placeholders.
    pub params: &'a Params,
    /// Headers sent to every part (identity, request id, traceparent).
    pub headers: &'a HeaderMap,
    /// Instances tried per part.
    pub attempts: u32,
}

/// Percent-encode everything but unreserved characters (values interpolated into paths).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    if s.bytes().all(|b| b == b'.') {
        return s.bytes().map(|_| "%2E").collect();
    }
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn resolve(
    ctx: &ComposeCtx<'_>,
    done: &[(usize, Result<Value, String>)],
    parts: &[PartSpec],
    name: &str,
) -> Option<String> {
    let raw = if name == "sub" {
        ctx.identity.map(|i| i.sub.clone())
    } else if let Some(v) = ctx.params.get(name) {
        Some(v.to_string())
    } else if let Some((head, field)) = name.split_once('.') {
        if head == "claims" {
            ctx.identity
                .and_then(|i| i.claims.get(field))
                .and_then(scalar)
        } else {
            let idx = parts.iter().position(|p| p.name == head)?;
            let (_, res) = done.iter().find(|(i, _)| *i == idx)?;
            let mut v = res.as_ref().ok()?;
            for seg in field.split('.') {
                v = v.get(seg)?;
            }
            scalar(v)
        }
    } else {
        ctx.identity
            .and_then(|i| i.claims.get(name))
            .and_then(scalar)
    };
    raw.map(|s| encode_component(&s))
}

async fn call(
    ctx: &ComposeCtx<'_>,
    part: &PartSpec,
    path: String,
    deadline: Instant,
) -> Result<Value, String> {
    let deadline = deadline.min(Instant::now() + part.timeout);
    let pool = ctx.upstreams.get(&part.service).ok_or("unknown_service")?;
    let out = Outbound {
        method: &Method::GET,
        path_and_query: &path,
        headers: ctx.headers,
        body: Bytes::new(),
    };
    let sent = upstream::send(
        ctx.http,
        pool,
        ctx.client_ip,
        &out,
        ctx.attempts,
        true,
        deadline,
    )
    .await
    .map_err(|e| match e {
        UpstreamError::Timeout => "timeout".to_string(),
        UpstreamError::NoInstance => "unavailable".to_string(),
        UpstreamError::Connect => "connect_failed".to_string(),
        UpstreamError::Protocol => "upstream_error".to_string(),
    })?;
    let status = sent.response.status();
    let body = tokio::time::timeout_at(
        deadline,
        Limited::new(sent.response.into_body(), MAX_PART_BODY).collect(),
    )
    .await
    .map_err(|_| "timeout".to_string())?
    .map_err(|_| "upstream_error".to_string())?
    .to_bytes();
    if !status.is_success() {
        return Err(format!("status_{}", status.as_u16()));
    }
    serde_json::from_slice(&body).map_err(|_| "invalid_json".to_string())
}

/// Run a composition; returns the status and the JSON body.
pub async fn run(ctx: &ComposeCtx<'_>, comp: &CompositionSpec) -> (StatusCode, Value) {
    let deadline = Instant::now() + comp.deadline;
    let parts = &comp.parts;
    let mut done: Vec<(usize, Result<Value, String>)> = Vec::with_capacity(parts.len());
    loop {
        let mut batch = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            if done.iter().any(|(j, _)| *j == i) {
                continue;
            }
            let dep = p
                .depends_on
                .as_ref()
                .and_then(|d| parts.iter().position(|q| &q.name == d));
            match dep.map(|d| done.iter().find(|(j, _)| *j == d)) {
                None => batch.push(i),
                Some(Some((_, Ok(_)))) => batch.push(i),
                Some(Some((_, Err(_)))) => done.push((i, Err("dependency_failed".into()))),
                Some(None) => {}
            }
        }
        if batch.is_empty() {
            break;
        }
        let calls = batch.iter().map(|&i| {
            let p = &parts[i];
            let path = interpolate(&p.path, |name| resolve(ctx, &done, parts, name));
            call(ctx, p, path, deadline)
        });
        let results = futures_util::future::join_all(calls).await;
        done.extend(batch.into_iter().zip(results));
    }
    // parts whose dependency never resolved (unknown name or cycle)
    for i in 0..parts.len() {
        if !done.iter().any(|(j, _)| *j == i) {
            done.push((i, Err("dependency_failed".into())));
        }
    }
    done.sort_by_key(|(i, _)| *i);
    let mut merged = Vec::with_capacity(parts.len());
    let mut failed = Vec::new();
    let mut required_failed = None;
    for (i, res) in done {
        let p = &parts[i];
        match res {
            Ok(v) => merged.push((p.key.clone(), v)),
            Err(reason) => {
                crate::metrics::compose_part_failed(&p.name, &reason);
                if p.required && required_failed.is_none() {
                    required_failed = Some(reason == "timeout");
                }
                failed.push(
                    json!({"part": p.name, "key": p.key, "required": p.required, "reason": reason}),
                );
            }
        }
    }
    let partial = (!failed.is_empty()).then(|| json!({ "failed": failed }));
    if let Some(timed_out) = required_failed {
        let status = if timed_out {
            StatusCode::GATEWAY_TIMEOUT
        } else {
            StatusCode::BAD_GATEWAY
        };
        return (
            status,
            json!({"error": "composition_failed", "partial": partial}),
        );
    }
    let mut body = crate::json::merge(merged);
    if let (Some(p), Value::Object(map)) = (partial, &mut body) {
        map.insert("partial".into(), p);
    }
    (StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolated_values_are_encoded() {
        assert_eq!(encode_component("alice"), "alice");
        assert_eq!(encode_component("../admin?x=1"), "..%2Fadmin%3Fx%3D1");
    }
}
