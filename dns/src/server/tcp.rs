//! TCP: length-prefixed messages (RFC 1035 §4.2.2), several queries per connection, an idle
//! timeout, a cap on open connections (over the cap a connection is closed at once, so a flood
//! of idle connections cannot queue real clients behind it), and AXFR streaming.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics::Counter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Shared;
use crate::answer::{axfr_messages, handle, Ctx, Handled};

/// Largest query accepted over TCP; a longer length prefix closes the connection.
pub const MAX_TCP_QUERY: usize = 16 * 1024;

/// Binds a TCP listener with `SO_REUSEADDR`.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_tcp_nodelay(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Accepts until `shutdown`; connections are tracked by `tracker`.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    idle: Duration,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(s) => {
                backoff = Duration::from_millis(5);
                s
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning
                tracing::warn!(error = %e, "dns tcp accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            shared.metrics.tcp_rejected.increment(1);
            drop(stream);
            continue;
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            shared.metrics.tcp_connections.increment(1.0);
            let mut stream = stream;
            let _ = stream.set_nodelay(true);
            let queries = shared.metrics.tcp_queries.clone();
            let _ = serve(&mut stream, peer, &shared, idle, shutdown, &queries).await;
            shared.metrics.tcp_connections.decrement(1.0);
            drop(permit);
        });
    }
}

/// Answers length-prefixed queries on `stream` (TCP, or DoT's TLS stream: the same framing)
/// until the client closes, goes idle, or `shutdown`; `queries` counts them.
pub(crate) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
    shared: &Shared,
    idle: Duration,
    shutdown: CancellationToken,
    queries: &Counter,
) -> io::Result<()> {
    let mut msg = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(1024);
    loop {
        let mut len = [0u8; 2];
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = tokio::time::timeout(idle, stream.read_exact(&mut len)) => { r??; }
        }
        let len = u16::from_be_bytes(len) as usize;
        if !(12..=MAX_TCP_QUERY).contains(&len) {
            shared.metrics.malformed.increment(1);
            return Ok(());
        }
        msg.resize(len, 0);
        tokio::time::timeout(idle, stream.read_exact(&mut msg)).await??;
        queries.increment(1);
        let handled = {
            let state = shared.state.load();
            let ctx = Ctx {
                snap: &state.snapshot,
                health: &*state.health,
                metrics: &shared.metrics,
                client: peer.ip(),
                tcp: true,
                sigs: &shared.tcp_sigs,
            };
            match handle(&ctx, &msg, &mut out) {
                Handled::Axfr => Err(axfr_messages(&ctx, &msg)),
                h => Ok(h),
            }
        };
        match handled {
            Ok(Handled::Reply { .. }) => write_msg(stream, &out, idle).await?,
            Ok(_) => {}
            Err(messages) => {
                for m in messages {
                    write_msg(stream, &m, idle).await?;
                }
            }
        }
    }
}

async fn write_msg<S: AsyncWrite + Unpin>(
    stream: &mut S,
    msg: &[u8],
    idle: Duration,
) -> io::Result<()> {
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    framed.extend_from_slice(msg);
    // a TLS stream buffers what it encrypts: flush sends it (a no-op on plain TCP)
    tokio::time::timeout(idle, async {
        stream.write_all(&framed).await?;
        stream.flush().await
    })
    .await?
}
