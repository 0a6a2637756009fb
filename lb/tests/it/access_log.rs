//! The optional access log: one line per closed connection with client, listener, backend, AZ,
//! bytes each way, duration and how it ended.

use crate::harness::*;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// current-thread runtime and the balancer on it (not on worker threads): its tasks run on this
// thread, under this thread's subscriber (the binary installs a global one)
#[tokio::test]
async fn access_log_line_per_closed_connection() {
    let cap = Capture::default();
    let c2 = cap.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || c2.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(sub);
    let b = Backend::start(Behaviour::Echo).await;
    let mut p = pool(&[(b.addr, "az-x", 1)]);
    p.check = None;
    let mut l = listener();
    l.access_log = true;
    let t = start_lb_on(p, l, Runtime::Shared).await;
    let mut c = TcpStream::connect(t.addr).await.unwrap();
    let local = c.local_addr().unwrap();
    c.write_all(&[1u8; 1234]).await.unwrap();
    c.shutdown().await.unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).await.unwrap();
    assert_eq!(back.len(), 1234);
    drop(c);
    let want = format!("client={local}");
    wait_until(std::time::Duration::from_secs(2), "access log line", || {
        String::from_utf8_lossy(&cap.0.lock().unwrap()).contains(&want)
    })
    .await;
    let text = String::from_utf8_lossy(&cap.0.lock().unwrap()).into_owned();
    let line = text.lines().find(|l| l.contains(&want)).unwrap();
    for part in [
        "switchyard::access".to_string(),
        "listener=l".into(),
        format!("backend={}", b.addr),
        "member=m0".into(),
        "az=az-x".into(),
        "bytes_up=1234".into(),
        "bytes_down=1234".into(),
        "end=\"closed\"".into(),
        "duration_ms=".into(),
    ] {
        assert!(line.contains(&part), "{part} missing in {line}");
    }
}
