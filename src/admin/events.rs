//! Live events of the node (`GET /v1/events`): health changes, drains / fails / restores, reloads
//! (with the config revision), config errors and drills, as Server-Sent Events or, for clients
//! without SSE (the console's polling fallback), as JSON.
//!
//! Events go through a bounded `broadcast` channel: publishing never waits, and costs one
//! allocation per event however many clients listen. Each SSE client gets a small bounded queue
//! in front of its connection; a client that falls behind (its queue full, or the broadcast
//! lagged past it) or disconnects is dropped, so a slow or closed browser tab costs nothing.
//! The last [`RECENT`] events are kept for the JSON view and for `Last-Event-ID` replay.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchyard_balance::{ActiveState, AdminMode, AdminState, AdminTarget, HealthRegistry};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Events kept for the JSON view and reconnect replay.
pub const RECENT: usize = 200;
/// Broadcast capacity: a client further behind than this is dropped.
const BROADCAST: usize = 256;
/// Per-client queue between the broadcast and the connection.
const CLIENT_QUEUE: usize = 64;
/// At most this many SSE clients at once (more get a 503).
pub const MAX_CLIENTS: usize = 64;
/// A comment line this often, so a dead connection is noticed even when nothing happens.
const KEEPALIVE: Duration = Duration::from_secs(10);
/// How often the watcher compares health states.
const HEALTH_EVERY: Duration = Duration::from_millis(200);

/// One event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Increasing from 1 within this process (the SSE `id:`).
    pub id: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// `health`, `admin`, `reload`, `config_error` or `drill`.
    pub kind: &'static str,
    /// What changed, e.g. `instance gw-us-east-a`, `az us-east-b`, `config`.
    pub target: String,
    /// The new state: `up`/`down`/`ejected` (health), `drain`/`fail`/`none` (admin),
    /// `applied`/`rejected` (reload), `started`/`passed`/`failed` (drill).
    pub state: String,
    /// Why, in words (the health check's reason, the config errors, ...).
    pub detail: String,
    /// The config revision running after the event (reloads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

impl Event {
    fn sse(&self) -> Bytes {
        let data = serde_json::to_string(self).unwrap_or_else(|_| "{}".into());
        Bytes::from(format!(
            "id: {}\nevent: {}\ndata: {data}\n\n",
            self.id, self.kind
        ))
    }
}

/// The node's event hub (one per admin API).
pub struct Events {
    tx: broadcast::Sender<(u64, Bytes)>,
    recent: Mutex<VecDeque<Event>>,
    next_id: AtomicU64,
    /// The config revision: 1 at start, +1 per applied reload.
    revision: AtomicU64,
    clients: Arc<AtomicUsize>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    /// An empty hub at config revision 1.
    pub fn new() -> Self {
        Events {
            tx: broadcast::channel(BROADCAST).0,
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            next_id: AtomicU64::new(1),
            revision: AtomicU64::new(1),
            clients: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Publishes one event (never waits).
    pub fn publish(&self, kind: &'static str, target: String, state: &str, detail: String) {
        self.publish_with(kind, target, state, detail, None)
    }

    fn publish_with(
        &self,
        kind: &'static str,
        target: String,
        state: &str,
        detail: String,
        revision: Option<u64>,
    ) {
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        // ids are handed out under the lock so `recent` stays in order
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let ev = Event {
            id,
            time_ms,
            kind,
            target,
            state: state.to_string(),
            detail,
            revision,
        };
        // no receivers is fine: nobody is watching
        let _ = self.tx.send((id, ev.sse()));
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(ev);
    }

    /// A reload was applied: bumps the revision and says so.
    pub fn reloaded(&self, source: &str) {
        let rev = self.revision.fetch_add(1, Ordering::Relaxed) + 1;
        self.publish_with(
            "reload",
            "config".into(),
            "applied",
            format!("configuration reloaded ({source}); revision {rev}"),
            Some(rev),
        );
    }

    /// A reload was refused: the running revision stays.
    pub fn reload_rejected(&self, source: &str, errors: &str) {
        let rev = self.revision.load(Ordering::Relaxed);
        self.publish_with(
            "config_error",
            "config".into(),
            "rejected",
            format!("reload ({source}) rejected, revision {rev} keeps running: {errors}"),
            Some(rev),
        );
    }

    /// The config revision running now.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Relaxed)
    }

    /// Events with an id above `since`, oldest first.
    pub fn since(&self, since: u64) -> Vec<Event> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().filter(|e| e.id > since).cloned().collect()
    }

    /// SSE clients connected now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// An SSE body for one client, replaying events after `last_id` first; `None` when
    /// [`MAX_CLIENTS`] are connected already. The client is dropped when it disconnects, falls
    /// behind or `shutdown` fires.
    pub fn subscribe(
        &self,
        last_id: Option<u64>,
        shutdown: CancellationToken,
    ) -> Option<BoxBody<Bytes, Infallible>> {
        let guard = ClientGuard::take(self.clients.clone())?;
        // subscribe before reading the backlog, so nothing falls between the two
        let rx = self.tx.subscribe();
        let backlog: Vec<(u64, Bytes)> = match last_id {
            Some(id) => self.since(id).iter().map(|e| (e.id, e.sse())).collect(),
            None => Vec::new(),
        };
        let (tx, body_rx) = mpsc::channel(CLIENT_QUEUE);
        tokio::spawn(forward(rx, tx, backlog, shutdown, guard));
        Some(SseBody { rx: body_rx }.boxed())
    }
}

/// Counts one connected SSE client while alive.
struct ClientGuard(Arc<AtomicUsize>);

impl ClientGuard {
    fn take(n: Arc<AtomicUsize>) -> Option<ClientGuard> {
        n.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
            (c < MAX_CLIENTS).then_some(c + 1)
        })
        .ok()?;
        Some(ClientGuard(n))
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Moves events from the broadcast to one client's queue until the client is gone or behind.
async fn forward(
    mut rx: broadcast::Receiver<(u64, Bytes)>,
    tx: mpsc::Sender<Bytes>,
    backlog: Vec<(u64, Bytes)>,
    shutdown: CancellationToken,
    _guard: ClientGuard,
) {
    let mut last = 0;
    // a retry hint for EventSource, then the replay
    if tx.try_send(Bytes::from_static(b"retry: 2000\n\n")).is_err() {
        return;
    }
    for (id, frame) in backlog {
        last = id;
        if tx.try_send(frame).is_err() {
            return;
        }
    }
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tx.closed() => return,
            _ = keepalive.tick() => {
                if tx.try_send(Bytes::from_static(b": keepalive\n\n")).is_err() {
                    return;
                }
            }
            got = rx.recv() => match got {
                Ok((id, frame)) => {
                    if id <= last {
                        continue; // already sent in the replay
                    }
                    // full queue: the client does not read; drop it rather than buffer
                    if tx.try_send(frame).is_err() {
                        return;
                    }
                }
                // lagged past the broadcast, or the hub is gone
                Err(_) => return,
            },
        }
    }
}

/// The streaming body of one SSE response.
struct SseBody {
    rx: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// What the watcher remembers of one backend: the state it last published.
type Seen = &'static str;

/// The health state shown for a backend: the active check's verdict first, then a passive
/// ejection (admin modes are published as admin events).
fn shown(active: ActiveState, ejected: bool) -> Seen {
    match (active, ejected) {
        (ActiveState::Down, _) => "down",
        (_, true) => "ejected",
        (ActiveState::Up, false) => "up",
        (ActiveState::Unchecked, false) => "unchecked",
    }
}

/// Watches the shared health registry and administrative state and publishes every change
/// (whoever made it: this API, a drill, the cluster, a health check). Runs until `shutdown`.
pub fn spawn_watcher(
    events: Arc<Events>,
    registry: HealthRegistry,
    admin: AdminState,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut admin_rx = admin.subscribe();
        let mut modes: HashMap<AdminTarget, AdminMode> = admin.list().into_iter().collect();
        let mut seen: HashMap<SocketAddr, Seen> = HashMap::new();
        let mut tick = tokio::time::interval(HEALTH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = admin_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now: HashMap<AdminTarget, AdminMode> = admin.list().into_iter().collect();
                    admin_changes(&events, &modes, &now);
                    modes = now;
                }
                _ = tick.tick() => health_changes(&events, &registry, &mut seen),
            }
        }
    })
}

fn admin_changes(
    events: &Events,
    before: &HashMap<AdminTarget, AdminMode>,
    now: &HashMap<AdminTarget, AdminMode>,
) {
    for (t, m) in now {
        if before.get(t) != Some(m) {
            let what = match m {
                AdminMode::Drain => "drained: no new traffic, existing connections finish",
                AdminMode::Fail => "failed: forced down everywhere, DNS included",
            };
            events.publish("admin", t.to_string(), m.as_str(), what.into());
        }
    }
    for (t, m) in before {
        if !now.contains_key(t) {
            let what = match m {
                AdminMode::Drain => "undrained",
                AdminMode::Fail => "restored: back under health-check control",
            };
            events.publish("admin", t.to_string(), "none", what.into());
        }
    }
}

fn health_changes(
    events: &Events,
    registry: &HealthRegistry,
    seen: &mut HashMap<SocketAddr, Seen>,
) {
    let snap = registry.snapshot();
    for s in &snap {
        let now = shown(s.active, s.ejected_for.is_some());
        let before = seen.insert(s.addr, now);
        // the first sight and the first verdict (unchecked -> up) are not news
        match before {
            None => continue,
            Some(b) if b == now => continue,
            Some("unchecked") if now == "up" => continue,
            _ if now == "unchecked" => continue,
            _ => {}
        }
        let name = s
            .labels
            .instance
            .clone()
            .unwrap_or_else(|| s.addr.to_string());
        events.publish(
            "health",
            format!("instance {name}"),
            now,
            format!("{} ({})", s.reason, s.addr),
        );
    }
    if seen.len() > snap.len() {
        seen.retain(|a, _| snap.iter().any(|s| s.addr == *a));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn next(body: &mut BoxBody<Bytes, Infallible>) -> Option<String> {
        let f = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .ok()??;
        Some(String::from_utf8_lossy(&f.ok()?.into_data().ok()?).into_owned())
    }

    #[tokio::test]
    async fn each_event_reaches_a_subscriber_in_sse_form() {
        let ev = Events::new();
        let mut body = ev.subscribe(None, CancellationToken::new()).unwrap();
        assert_eq!(next(&mut body).await.unwrap(), "retry: 2000\n\n");
        ev.publish("admin", "az us-east-a".into(), "drain", "drained".into());
        ev.reloaded("admin API");
        let a = next(&mut body).await.unwrap();
        assert!(
            a.starts_with("id: 1\nevent: admin\ndata: {\"id\":1,"),
            "{a}"
        );
        assert!(a.contains("\"target\":\"az us-east-a\",\"state\":\"drain\""));
        assert!(a.ends_with("}\n\n"));
        let r = next(&mut body).await.unwrap();
        assert!(r.starts_with("id: 2\nevent: reload\n"), "{r}");
        assert!(r.contains("\"revision\":2"), "{r}");
        assert_eq!(ev.revision(), 2);
        assert_eq!(ev.since(1).len(), 1);
    }

    #[tokio::test]
    async fn replay_after_last_event_id() {
        let ev = Events::new();
        for i in 0..3 {
            ev.publish("admin", format!("az a{i}"), "drain", String::new());
        }
        let mut body = ev.subscribe(Some(1), CancellationToken::new()).unwrap();
        next(&mut body).await.unwrap(); // retry hint
        assert!(next(&mut body).await.unwrap().starts_with("id: 2\n"));
        assert!(next(&mut body).await.unwrap().starts_with("id: 3\n"));
        ev.publish("admin", "az a3".into(), "drain", String::new());
        assert!(next(&mut body).await.unwrap().starts_with("id: 4\n"));
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_is_dropped_and_a_closed_one_too() {
        let ev = Events::new();
        let stuck = ev.subscribe(None, CancellationToken::new()).unwrap();
        let closed = ev.subscribe(None, CancellationToken::new()).unwrap();
        assert_eq!(ev.clients(), 2);
        drop(closed);
        // the closed one goes at once (its queue's receiver is gone)
        wait_until(|| ev.clients() == 1).await;
        // the stuck one never reads: after its queue fills it is cut off
        for i in 0..(CLIENT_QUEUE + 10) {
            ev.publish("admin", format!("az a{i}"), "drain", String::new());
            tokio::task::yield_now().await;
        }
        wait_until(|| ev.clients() == 0).await;
        drop(stuck);
        assert_eq!(ev.since(0).len(), CLIENT_QUEUE + 10);
    }

    #[tokio::test]
    async fn clients_are_capped() {
        let ev = Events::new();
        let bodies: Vec<_> = (0..MAX_CLIENTS)
            .map(|_| ev.subscribe(None, CancellationToken::new()).unwrap())
            .collect();
        assert!(ev.subscribe(None, CancellationToken::new()).is_none());
        drop(bodies);
        wait_until(|| ev.clients() == 0).await;
        assert!(ev.subscribe(None, CancellationToken::new()).is_some());
    }

    #[tokio::test]
    async fn recent_is_bounded() {
        let ev = Events::new();
        for i in 0..(RECENT + 5) {
            ev.publish("admin", format!("az a{i}"), "drain", String::new());
        }
        let all = ev.since(0);
        assert_eq!(all.len(), RECENT);
        assert_eq!(all[0].id, 6);
    }

    #[test]
    fn admin_diffs_name_each_change() {
        let ev = Events::new();
        let mut before = HashMap::new();
        before.insert(AdminTarget::Az("a".into()), AdminMode::Drain);
        let mut now = HashMap::new();
        now.insert(AdminTarget::Instance("i".into()), AdminMode::Fail);
        admin_changes(&ev, &before, &now);
        let got: Vec<(String, String)> = ev
            .since(0)
            .into_iter()
            .map(|e| (e.target, e.state))
            .collect();
        assert_eq!(
            got,
            [
                ("instance i".to_string(), "fail".to_string()),
                ("az a".to_string(), "none".to_string())
            ]
        );
    }

    #[tokio::test]
    async fn a_passive_ejection_is_one_health_event() {
        let ev = Events::new();
        let reg = HealthRegistry::new();
        let h = reg.handle("127.0.0.1:9".parse().unwrap());
        let mut seen = HashMap::new();
        health_changes(&ev, &reg, &mut seen); // the first sight is not news
        assert!(ev.since(0).is_empty());
        h.eject(Duration::from_secs(30), "connect refused");
        health_changes(&ev, &reg, &mut seen);
        health_changes(&ev, &reg, &mut seen); // unchanged: nothing new
        let e = ev.since(0);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].kind, e[0].state.as_str()), ("health", "ejected"));
        assert!(e[0].detail.contains("(127.0.0.1:9)"), "{}", e[0].detail);
    }

    async fn wait_until(mut f: impl FnMut() -> bool) {
        for _ in 0..500 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition never held");
    }
}
