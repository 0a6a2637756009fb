//! The access log: health probes of the gateway's own `/healthz` are counted, not logged, unless
//! `access_log = "all"`; refusals carry their reason and the subject when it is known; values are
//! written in the config's words (no `Some(..)`/`None`).

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use crate::harness::*;

/// Everything logged by this test binary (one global subscriber; tests find their own lines by
/// request id).
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        struct W;
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                logs().lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let _ = tracing_subscriber::fmt()
            .with_writer(|| W)
            .with_ansi(false)
            .with_env_filter("switchyard::access=info")
            .try_init();
        Mutex::new(Vec::new())
    })
}

fn line_with(id: &str) -> Option<String> {
    let all = String::from_utf8_lossy(&logs().lock().unwrap()).to_string();
    all.lines().find(|l| l.contains(id)).map(str::to_string)
}

#[tokio::test]
async fn probes_are_counted_not_logged_and_refusals_say_why() {
    logs();
    for log_probes in [false, true] {
        let up = upstream("svc").await;
        let mut spec = base_spec();
        spec.access_log = true;
        spec.log_health_probes = log_probes;
        spec.services.push(service("svc", &[(up.addr, "a")]));
        spec.routes
            .push(route("api", "/api", true, "svc", roles_any(&["admin"])));
        let gw = gateway(spec).await;
        let probe = format!("probe-{log_probes}");
        let r = get(gw.addr, "/healthz", &[("X-Request-Id", &probe)]).await;
        assert_eq!(r.status, 200);
        let bad = format!("bad-{log_probes}");
        let tampered = format!("Bearer {}x", token("mallory", &["admin"]));
        let r = get(
            gw.addr,
            "/api/x",
            &[("X-Request-Id", &bad), ("Authorization", &tampered)],
        )
        .await;
        assert_eq!(r.status, 401);
        let denied = format!("denied-{log_probes}");
        let alice = format!("Bearer {}", token("alice", &["customer"]));
        let r = get(
            gw.addr,
            "/api/x",
            &[("X-Request-Id", &denied), ("Authorization", &alice)],
        )
        .await;
        assert_eq!(r.status, 403);
        let ok = format!("ok-{log_probes}");
        let admin = format!("Bearer {}", token("root", &["admin"]));
        let r = get(
            gw.addr,
            "/api/x",
            &[("X-Request-Id", &ok), ("Authorization", &admin)],
        )
        .await;
        assert_eq!(r.status, 200);

        assert_eq!(line_with(&probe).is_some(), log_probes, "probe line");
        let l = line_with(&bad).expect("401 logged");
        assert!(l.contains("status=401"), "{l}");
        assert!(l.contains("reason=\"bad_signature\""), "{l}");
        let l = line_with(&denied).expect("403 logged");
        assert!(l.contains("status=403"), "{l}");
        assert!(l.contains("sub=\"alice\""), "{l}");
        assert!(l.contains("reason=\"role_missing\""), "{l}");
        let l = line_with(&ok).expect("200 logged");
        assert!(!l.contains("Some(") && !l.contains("None"), "{l}");
        assert!(l.contains(&format!("upstream_addr=\"{}\"", up.addr)), "{l}");
        assert!(l.contains("sub=\"root\""), "{l}");
    }
}
