//! Step 3: what an admitted request becomes. The device profile, the headers the instance
//! sees (hop-by-hop and protected ones removed, identity and forwarding ones set), then a proxied
//! request to one instance of the service (or a split's pick) or a composition.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};

use super::admit::Admitted;
use super::headers::{
    forwarded_headers, strip_hop_by_hop, strip_protected, DEPRECATION, SUNSET, TRACEPARENT,
    X_FORWARDED_FOR, X_REQUEST_ID,
};
use super::route::Routed;
use super::{error, json_response, Body, ConnInfo, InstanceCtx, Log};
use crate::compose::{self, ComposeCtx};
use crate::device;
use crate::router;
use crate::runtime::Runtime;
use crate::spec::{Action, RouteSpec};
use crate::upstream::{self, Outbound, UpstreamError};

/// Send `routed` on (proxy or composition) and decorate the answer (deprecation headers).
pub(super) async fn forward(
    rt: &Runtime,
    inst: &InstanceCtx,
    conn: &ConnInfo,
    routed: Routed,
    admitted: Admitted,
    rid: &HeaderValue,
    log: &mut Log,
) -> Result<Response<Body>, Response<Body>> {
    let Admitted { identity, body } = admitted;
    let mut routed = routed;
    let mut headers = std::mem::take(&mut routed.parts.headers);
    let route = &rt.spec.routes[routed.idx];
    let (idx, params, host) = (routed.idx, &routed.params, routed.host.as_deref());
    let path = routed.path();
    let parts = &routed.parts;
    let profile = device::classify(&rt.spec.device_profiles, &headers);
    let over = route.profiles.iter().find(|p| p.profile == profile);
    let allow = rt.allow_lists[idx]
        .iter()
        .find(|(p, _)| p == profile)
        .map(|(_, a)| a);

    let composition = over
        .and_then(|o| o.composition.as_deref())
        .or(match &route.action {
            Action::Compose(c) => Some(c.as_str()),
            Action::Service(_) | Action::Split(_) => None,
        });
    // a composition answers with its own JSON: nothing to upgrade to
    let ws = conn.upgrades
        && composition.is_none()
        && crate::websocket::is_upgrade(&parts.method, parts.version, &headers);
    strip_hop_by_hop(&mut headers);
    if ws {
        crate::websocket::restore_headers(&mut headers);
    }
    strip_protected(&mut headers, rt);
    if let Some(a) = parts.uri.authority() {
        // the request target's authority won (absolute-form, h2 :authority): the upstream
        // sees the same host that routing saw
        if let Ok(v) = HeaderValue::from_str(a.as_str()) {
            headers.insert(header::HOST, v);
        }
    }
    if let Some(id) = &identity {
        headers.insert(rt.spec.identity.user_id.clone(), id.sub_header.clone());
        headers.insert(rt.spec.identity.roles.clone(), id.roles_header.clone());
    }
    forwarded_headers(&mut headers, conn, host, rid);

    let upstreams = rt.upstreams(&inst.region);
    let mut resp = if let Some(name) = composition {
        let comp = rt
            .compositions
            .get(name)
            .ok_or_else(|| error(StatusCode::INTERNAL_SERVER_ERROR, "internal"))?;
        let mut part_headers = HeaderMap::new();
        for n in [
            &rt.spec.identity.user_id,
            &rt.spec.identity.roles,
            &X_REQUEST_ID,
            &TRACEPARENT,
            &X_FORWARDED_FOR,
        ] {
            if let Some(v) = headers.get(n) {
                part_headers.insert(n.clone(), v.clone());
            }
        }
        let ctx = ComposeCtx {
            http: &inst.http,
            upstreams,
            client_ip: conn.client.ip(),
            identity: identity.as_deref(),
            params,
            headers: &part_headers,
            attempts: rt.spec.upstream.attempts,
        };
        let (status, mut value) = compose::run(&ctx, comp).await;
        if let (Some(a), true) = (allow, status.is_success()) {
            value = a.trim(value);
        }
        json_response(status, &value)
    } else {
        let service = match (over.and_then(|o| o.service.as_deref()), &route.action) {
            (Some(s), _) => s,
            (None, Action::Service(s)) => s.as_str(),
            (None, Action::Split(split)) => {
                let ip = match conn.client.ip() {
                    std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                    std::net::IpAddr::V6(v6) => v6.octets(),
                };
                let key = identity.as_ref().map_or(&ip[..], |id| id.sub.as_bytes());
                split.pick(key, rand::random())
            }
            (None, Action::Compose(_)) => unreachable!("compositions handled above"),
        };
        proxy(
            rt,
            inst,
            route,
            upstreams,
            service,
            conn,
            &parts.method,
            path,
            parts.uri.query(),
            params,
            &headers,
            body,
            allow,
            ws,
            log,
        )
        .await?
    };
    if route.deprecated {
        resp.headers_mut()
            .insert(DEPRECATION.clone(), HeaderValue::from_static("true"));
        if let Some(v) = route
            .sunset
            .as_deref()
            .and_then(|s| HeaderValue::from_str(s).ok())
        {
            resp.headers_mut().insert(SUNSET.clone(), v);
        }
    }
    Ok(resp)
}

#[allow(clippy::too_many_arguments)]
async fn proxy(
    rt: &Runtime,
    inst: &InstanceCtx,
    route: &RouteSpec,
    upstreams: &upstream::Upstreams,
    service: &str,
    conn: &ConnInfo,
    method: &http::Method,
    path: &str,
    query: Option<&str>,
    params: &router::Params,
    headers: &HeaderMap,
    body: Bytes,
    allow: Option<&crate::json::AllowList>,
    websocket: bool,
    log: &mut Log,
) -> Result<Response<Body>, Response<Body>> {
    let pool = upstreams
        .get(service)
        .ok_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "no_upstream"))?;
    let mut pq = router::upstream_path(route, path, params);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    let out = Outbound {
        method,
        path_and_query: &pq,
        headers,
        body,
    };
    let retry_5xx = route.retry_on_5xx && upstream::is_idempotent(method);
    let deadline = tokio::time::Instant::now() + rt.spec.upstream.timeout;
    let sent = upstream::send(
        &inst.http,
        pool,
        conn.client.ip(),
        &out,
        rt.spec.upstream.attempts,
        retry_5xx,
        deadline,
    )
    .await
    .map_err(|e| match e {
        UpstreamError::NoInstance => error(StatusCode::SERVICE_UNAVAILABLE, "no_upstream"),
        UpstreamError::Connect | UpstreamError::Protocol => {
            error(StatusCode::BAD_GATEWAY, "bad_gateway")
        }
        UpstreamError::Timeout => error(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
    })?;
    let member = pool.member(sent.pick);
    if log.enabled {
        log.upstream = Some((member.name.clone(), member.addr));
        log.az = Some(member.az.clone());
    }
    let mut response = sent.response;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        // only to the handshake it was asked for; anything else is the instance's mistake
        // and only to the protocol that was asked for (RFC 9110 §7.8)
        let mut offered = response.headers().get_all(header::UPGRADE).iter();
        let agreed = offered
            .next()
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
            && offered.next().is_none();
        if !websocket || !agreed {
            return Err(error(StatusCode::BAD_GATEWAY, "bad_gateway"));
        }
        let upgraded = hyper::upgrade::on(&mut response);
        let (mut parts, _) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        crate::websocket::restore_headers(&mut parts.headers);
        parts.extensions.insert(crate::websocket::Pending(upgraded));
        return Ok(Response::from_parts(parts, Either::Left(Full::default())));
    }
    let (mut parts, body) = response.into_parts();
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        // both framings from the instance: Transfer-Encoding wins and an intermediary must drop
        // the Content-Length before forwarding (RFC 9112 §6.3)
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    strip_hop_by_hop(&mut parts.headers);
    if let Some(allow) = allow {
        let bytes = tokio::time::timeout_at(deadline, Limited::new(body, 4 << 20).collect())
            .await
            .map_err(|_| error(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"))?
            .map_err(|_| error(StatusCode::BAD_GATEWAY, "bad_gateway"))?
            .to_bytes();
        let out = match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) => Bytes::from(serde_json::to_vec(&allow.trim(v)).unwrap_or_default()),
            Err(_) => bytes,
        };
        parts.headers.remove(header::CONTENT_LENGTH);
        return Ok(Response::from_parts(parts, Either::Left(Full::new(out))));
    }
    Ok(Response::from_parts(parts, Either::Right(body)))
}
