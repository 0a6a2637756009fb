//! Integration tests against a real etcd (started per test by `switchyard_cluster::testing`).
#![allow(unreachable_pub)] // a test binary exports nothing: `pub` marks the harness's interface

use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_cluster::testing::{Etcd, Proxy};
use switchyard_cluster::watcher::watch;
use switchyard_cluster::{Client, EtcdUrl, Link, Publisher, Registration};
use tokio_util::sync::CancellationToken;

/// Polls `f` until it returns true, at most `within` (panics then).
async fn eventually<F, Fut>(within: Duration, what: &str, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    if switchyard_testkit::eventually(within, f).await.is_none() {
        panic!("{what}: not within {within:?}");
    }
}

#[tokio::test]
async fn kv_roundtrip_prefix_and_delete() {
    let etcd = Etcd::start("kv");
    let c = Client::new(&etcd.endpoint.to_string());
    assert_eq!(c.get("/sy/world").await.unwrap().0, None);
    let rev = c.put("/sy/world", b"a = 1", None).await.unwrap();
    c.put("/sy/registry/user/x", b"{}", None).await.unwrap();
    c.put("/sy0", b"outside", None).await.unwrap();
    let (kv, _) = c.get("/sy/world").await.unwrap();
    let kv = kv.unwrap();
    assert_eq!(kv.value, b"a = 1");
    assert_eq!(kv.mod_revision, rev);
    let (kvs, _) = c.range_prefix("/sy/").await.unwrap();
    let keys: Vec<_> = kvs.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(keys, ["/sy/registry/user/x", "/sy/world"]);
    assert_eq!(c.delete("/sy/world").await.unwrap(), 1);
    assert_eq!(c.get("/sy/world").await.unwrap().0, None);
}

#[tokio::test]
async fn unreachable_etcd_is_a_transient_error_naming_the_endpoint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = Client::new(&format!("127.0.0.1:{port}"));
    let e = c.get("/x").await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
}

#[tokio::test]
async fn a_lease_that_is_not_renewed_drops_its_keys() {
    let etcd = Etcd::start("lease");
    let c = Client::new(&etcd.endpoint.to_string());
    let id = c.grant(Duration::from_secs(2)).await.unwrap();
    c.put("/sy/k", b"v", Some(id)).await.unwrap();
    assert!(c.keep_alive(id).await.unwrap() >= Duration::from_secs(1));
    let start = Instant::now();
    eventually(Duration::from_secs(5), "key gone after the TTL", || async {
        c.get("/sy/k").await.unwrap().0.is_none()
    })
    .await;
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "gone too early: {took:?}"
    );
    assert!(matches!(
        c.keep_alive(id).await,
        Err(switchyard_cluster::Error::LeaseExpired(_))
    ));
}

#[tokio::test]
async fn publisher_keeps_keys_alive_and_revokes_on_shutdown() {
    let etcd = Etcd::start("pub");
    let c = Client::new(&etcd.endpoint.to_string());
    let stop = CancellationToken::new();
    let (p, task) = Publisher::start(
        c.clone(),
        Duration::from_secs(2),
        Arc::new(Link::default()),
        stop.clone(),
    );
    p.set("/sy/a".into(), b"1".to_vec());
    eventually(Duration::from_secs(3), "key published", || async {
        c.get("/sy/a").await.unwrap().0.is_some()
    })
    .await;
    // Still there after more than two TTLs: the lease is renewed.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(c.get("/sy/a").await.unwrap().0.unwrap().value, b"1");
    p.set("/sy/a".into(), b"2".to_vec());
    p.set("/sy/b".into(), b"3".to_vec());
    p.remove("/sy/a");
    eventually(Duration::from_secs(3), "changes published", || async {
        c.get("/sy/a").await.unwrap().0.is_none() && c.get("/sy/b").await.unwrap().0.is_some()
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    // Revoked: gone at once, not after the TTL.
    assert_eq!(c.get("/sy/b").await.unwrap().0, None);
}

#[tokio::test]
async fn watcher_follows_changes_and_reports_a_lost_link() {
    let mut etcd = Etcd::start("watch");
    let url = EtcdUrl::parse(&etcd.url("/sy/world")).unwrap();
    let c = Client::new(&url.endpoint);
    c.put("/sy/world", b"first", None).await.unwrap();
    let link = Arc::new(Link::default());
    let stop = CancellationToken::new();
    let mut rx = watch(c.clone(), url.clone(), link.clone(), stop.clone())
        .await
        .unwrap();
    assert_eq!(rx.borrow().world.as_ref().unwrap().text, "first");
    let rev = c.put("/sy/world", b"second", None).await.unwrap();
    let reg = Registration {
        service: "user".into(),
        pool: None,
        name: "u1".into(),
        addr: "127.0.5.1:7001".parse().unwrap(),
        region: "us-east".into(),
        az: "us-east-a".into(),
        weight: 1,
    };
    c.put(
        &reg.key(&url.registry_prefix()),
        &serde_json::to_vec(&reg).unwrap(),
        None,
    )
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            rx.changed().await.unwrap();
            let v = rx.borrow_and_update().clone();
            if v.registrations.len() == 1 {
                let w = v.world.as_ref().unwrap();
                assert_eq!((w.text.as_str(), w.revision), ("second", rev));
                assert_eq!(v.registrations[0], reg);
                break;
            }
        }
    })
    .await
    .expect("the watcher saw both changes");
    assert_eq!(link.describe(), "connected");
    etcd.kill();
    eventually(Duration::from_secs(4), "link reported down", || async {
        link.down_since().is_some()
    })
    .await;
    assert!(link.describe().starts_with("disconnected since "));
    // The last view stays.
    assert_eq!(rx.borrow().registrations.len(), 1);
    stop.cancel();
}

#[tokio::test]
async fn watcher_notices_a_partition_and_catches_up_after_it() {
    let etcd = Etcd::start("part");
    let proxy = Proxy::start(etcd.endpoint);
    let url = EtcdUrl::parse(&proxy.url("/sy/world")).unwrap();
    let direct = Client::new(&etcd.endpoint.to_string());
    direct.put("/sy/world", b"v1", None).await.unwrap();
    let link = Arc::new(Link::default());
    let stop = CancellationToken::new();
    let rx = watch(Client::new(&url.endpoint), url, link.clone(), stop.clone())
        .await
        .unwrap();
    proxy.cut();
    eventually(Duration::from_secs(3), "partition noticed", || async {
        link.down_since().is_some()
    })
    .await;
    direct.put("/sy/world", b"v2", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.borrow().world.as_ref().unwrap().text,
        "v1",
        "cut off: no news"
    );
    proxy.heal();
    eventually(
        Duration::from_secs(5),
        "caught up after healing",
        || async {
            rx.borrow().world.as_ref().unwrap().text == "v2" && link.down_since().is_none()
        },
    )
    .await;
    stop.cancel();
}
