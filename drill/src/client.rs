//! Steady load from real clients: each client resolves the GSLB name through the real DNS port
//! (posing as its group's users through ECS, caching the answer for its TTL), connects to the VIP
//! it was given and sends one authenticated HTTP/1.1 request per tick on a fresh connection (so
//! every request is a new L4 decision). The rate is fixed (open loop): a slow answer does not slow
//! the next request down. Everything is bounded: the run time, the timeouts, the requests in flight.

use super::dns::{self, Cache};
use super::model::Sample;
use super::scenario::ClientGroup;
use hickory_proto::rr::Name;
use serde_json::Value;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);
const DNS_TIMEOUT: Duration = Duration::from_millis(500);
const MAX_RESPONSE: usize = 1 << 20;
const MAX_IN_FLIGHT: usize = 512;

/// What the clients do.
#[derive(Debug, Clone)]
pub(crate) struct LoadSpec {
    pub dns: SocketAddr,
    pub name: Name,
    /// The VIP listener port.
    pub port: u16,
    pub path: String,
    /// `Host` header (the GSLB name without the final dot).
    pub host: String,
    pub bearer: String,
    /// Requests per second, over all clients.
    pub rate: u32,
    pub duration: Duration,
    pub groups: Vec<ClientGroup>,
    /// Region of each VIP.
    pub vip_regions: HashMap<IpAddr, String>,
    /// Skip DNS and send every request here.
    pub direct: Option<SocketAddr>,
    /// Clients resolve through this caching resolver (RD=1) instead of asking `dns` directly.
    pub resolver: Option<SocketAddr>,
}

impl LoadSpec {
    pub(crate) fn clients(&self) -> u32 {
        self.groups.iter().map(|g| g.count).sum::<u32>().max(1)
    }

    /// Time between two requests of one client.
    pub(crate) fn client_interval(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.clients()) / f64::from(self.rate.max(1)))
    }
}

/// Live counters for the progress line.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub sent: AtomicU64,
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

/// Runs the load from `t0` for the spec's duration; returns every sample (unordered).
pub(crate) async fn run(spec: Arc<LoadSpec>, t0: Instant, counters: Arc<Counters>) -> Vec<Sample> {
    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let total = spec.clients();
    let interval = spec.client_interval();
    let mut clients = JoinSet::new();
    let mut index = 0u32;
    for g in &spec.groups {
        for c in 0..g.count {
            // Stagger the clients evenly over one interval.
            let offset = interval.mul_f64(f64::from(index) / f64::from(total));
            index += 1;
            clients.spawn(client(
                spec.clone(),
                g.clone(),
                c,
                t0 + offset,
                t0,
                limit.clone(),
                counters.clone(),
            ));
        }
    }
    let mut out = Vec::new();
    while let Some(r) = clients.join_next().await {
        if let Ok(samples) = r {
            out.extend(samples);
        }
    }
    out.sort_by_key(|s| s.t_ms);
    out
}

async fn client(
    spec: Arc<LoadSpec>,
    group: ClientGroup,
    index: u32,
    start: Instant,
    t0: Instant,
    limit: Arc<Semaphore>,
    counters: Arc<Counters>,
) -> Vec<Sample> {
    let mut tick = tokio::time::interval_at(start, spec.client_interval());
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let end = t0 + spec.duration;
    let mut cache = Cache::default();
    let mut requests = JoinSet::new();
    let mut out = Vec::new();
    let mut n = 0u64;
    loop {
        tokio::select! {
            at = tick.tick() => {
                if at >= end {
                    break;
                }
                // When the request really starts: on a loaded machine the tick fires late, and
                // its scheduled instant would place a request that was in flight when a fault
                // hit before that fault (t_ms + latency_ms is when it ended).
                let began = Instant::now();
                let t_ms = began.saturating_duration_since(t0).as_millis() as u64;
                let mut sample = Sample {
                    t_ms,
                    latency_ms: 0,
                    group: group.name.clone(),
                    client: index,
                    dns_region: None,
                    resolved_ms: None,
                    vip: None,
                    status: None,
                    error: None,
                    instance: None,
                    region: None,
                    az: None,
                };
                counters.sent.fetch_add(1, Ordering::Relaxed);
                let vip = match (spec.direct, cache.get(began)) {
                    (Some(d), _) => Ok((d.ip(), None)),
                    (None, Some((a, fetched))) => Ok((a.addrs[index as usize % a.addrs.len()], Some(fetched))),
                    (None, None) => match dns::resolve(spec.resolver.unwrap_or(spec.dns), &spec.name, group.ecs, DNS_TIMEOUT, spec.resolver.is_some()).await {
                        Ok(a) => {
                            let vip = a.addrs[index as usize % a.addrs.len()];
                            let now = Instant::now();
                            cache.put(a, now);
                            Ok((vip, Some(now)))
                        }
                        Err(kind) => Err(kind),
                    },
                };
                let (vip, fetched) = match vip {
                    Ok(v) => v,
                    Err(kind) => {
                        sample.error = Some(kind);
                        sample.latency_ms = began.elapsed().as_millis() as u64;
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        out.push(sample);
                        continue;
                    }
                };
                sample.resolved_ms = fetched.map(|f| f.saturating_duration_since(t0).as_millis() as u64);
                sample.vip = Some(vip);
                sample.dns_region = spec.vip_regions.get(&vip).cloned();
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    sample.error = Some("client_overloaded".into());
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    out.push(sample);
                    continue;
                };
                n += 1;
                let request_id = format!("drill-{}-{index}-{n}", group.name);
                let spec = spec.clone();
                let counters = counters.clone();
                requests.spawn(async move {
                    let port = spec.direct.map(|d| d.port()).unwrap_or(spec.port);
                    let r = request(&spec, SocketAddr::new(vip, port), &request_id).await;
                    drop(permit);
                    sample.latency_ms = began.elapsed().as_millis() as u64;
                    match r {
                        Ok(resp) => {
                            sample.status = Some(resp.status);
                            if resp.status >= 400 {
                                sample.error = Some(format!("http_{}", resp.status));
                            }
                            sample.instance = resp.field("instance");
                            sample.region = resp.field("region");
                            sample.az = resp.field("az");
                        }
                        Err(kind) => sample.error = Some(kind.into()),
                    }
                    if sample.ok() {
                        counters.ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    sample
                });
            }
            Some(done) = requests.join_next(), if !requests.is_empty() => {
                if let Ok(s) = done {
                    out.push(s);
                }
            }
        }
    }
    while let Some(done) = requests.join_next().await {
        if let Ok(s) = done {
            out.push(s);
        }
    }
    out
}

/// A parsed HTTP response.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Option<Value>,
}

impl Response {
    fn field(&self, key: &str) -> Option<String> {
        self.body.as_ref()?.get(key)?.as_str().map(str::to_string)
    }
}

/// One request on a fresh connection; Err is the error kind.
pub(crate) async fn request(
    spec: &LoadSpec,
    addr: SocketAddr,
    request_id: &str,
) -> Result<Response, &'static str> {
    let mut s = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Err(_) => return Err("connect_timeout"),
        Ok(Err(e)) => {
            return Err(match e.kind() {
                ErrorKind::ConnectionRefused => "connect_refused",
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => "connect_reset",
                ErrorKind::TimedOut => "connect_timeout",
                ErrorKind::AddrNotAvailable => "connect_no_local_address",
                _ => "connect_error",
            })
        }
        Ok(Ok(s)) => s,
    };
    let _ = s.set_nodelay(true);
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nX-Request-Id: {request_id}\r\nUser-Agent: switchyard-drill\r\nConnection: close\r\n\r\n",
        spec.path, spec.host, spec.bearer
    );
    let exchange = async {
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 || raw.len() + n > MAX_RESPONSE {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
            // Stop early once a complete Content-Length response is in.
            if complete(&raw) {
                break;
            }
        }
        Ok::<_, std::io::Error>(raw)
    };
    let raw = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Err(_) => return Err("timeout"),
        Ok(Err(e)) => {
            return Err(match e.kind() {
                ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe => "reset",
                _ => "io_error",
            })
        }
        Ok(Ok(raw)) => raw,
    };
    if raw.is_empty() {
        return Err("closed_without_response");
    }
    parse_response(&raw).ok_or("bad_response")
}

fn head_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n")
}

fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })
}

fn complete(raw: &[u8]) -> bool {
    let Some(h) = head_end(raw) else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..h]);
    content_length(&head).is_some_and(|len| raw.len() >= h + 4 + len)
}

/// Parses status, and the body as JSON when it is (chunked or not).
pub(crate) fn parse_response(raw: &[u8]) -> Option<Response> {
    let h = head_end(raw)?;
    let head = std::str::from_utf8(&raw[..h]).ok()?;
    let status: u16 = head
        .lines()
        .next()?
        .strip_prefix("HTTP/1.")?
        .get(2..5)?
        .parse()
        .ok()?;
    let mut body = raw[h + 4..].to_vec();
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")
        })
    });
    if chunked {
        body = dechunk(&body);
    } else if let Some(len) = content_length(head) {
        body.truncate(len);
    }
    Some(Response {
        status,
        body: serde_json::from_slice(&body).ok(),
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..i])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        let rest = &b[i + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        b = rest[size..].strip_prefix(b"\r\n").unwrap_or(&rest[size..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_plain_and_chunked() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 38\r\n\r\n{\"instance\":\"user-a\",\"az\":\"us-east-a\"}  extra",
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.field("instance").as_deref(), Some("user-a"));
        assert_eq!(r.field("az").as_deref(), Some("us-east-a"));
        let r = parse_response(
            b"HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n3\r\n\"b\"\r\n1\r\n}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status, 502);
        assert_eq!(r.body, Some(serde_json::json!({"a": "b"})));
        assert!(parse_response(b"garbage").is_none());
        assert!(complete(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"));
        assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{}"));
    }

    #[test]
    fn one_interval_per_client_keeps_the_total_rate() {
        let spec = LoadSpec {
            dns: "127.0.0.1:53".parse().unwrap(),
            name: Name::root(),
            port: 8080,
            path: "/".into(),
            host: "h".into(),
            bearer: "t".into(),
            rate: 40,
            duration: Duration::from_secs(1),
            groups: super::super::scenario::default_clients_groups(),
            vip_regions: HashMap::new(),
            direct: None,
            resolver: None,
        };
        assert_eq!(spec.clients(), 8);
        assert_eq!(spec.client_interval(), Duration::from_millis(200));
    }
}
