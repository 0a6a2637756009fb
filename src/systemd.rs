//! The systemd notify protocol (`Type=notify`, see `packaging/systemd/switchyard.service`):
//! `READY=1` once every listener is bound, `RELOADING=1` (with `MONOTONIC_USEC`) when a reload
//! starts and `READY=1` again when it ends, `STOPPING=1` when shutdown begins.
//!
//! Each call is one datagram to `$NOTIFY_SOCKET` through the `sd-notify` crate, and a no-op when
//! the variable is unset (not started by systemd). A failure to notify is logged, never fatal.

use sd_notify::NotifyState;

/// Every listener is bound and serving (also: a reload finished, whatever its outcome).
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// A reload starts; systemd waits for the next [`ready`].
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutdown begins (the grace period for in-flight work starts).
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd ($NOTIFY_SOCKET)");
    }
}
