//! NOTIFY (RFC 1996): tells secondary servers that a zone changed, so they transfer it (AXFR)
//! now instead of at their next SOA refresh.
//!
//! Sent for every zone when the server starts and, on a reload, for each zone that is new or
//! whose SOA serial changed, to every `[dns] notify` address, over UDP from an ephemeral port.
//! A NOTIFY is repeated every `timeout` until the secondary answers (any answer with the same
//! id and the NOTIFY opcode ends it), at most `attempts` times. Each zone × secondary is its own
//! task, so a silent secondary delays nobody.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::zone::{rtype, Rr};

/// NOTIFY's opcode.
const OPCODE_NOTIFY: u8 = 4;

/// Where and how NOTIFY messages are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySpec {
    /// Secondaries (address and port); none: NOTIFY is off.
    pub targets: Vec<SocketAddr>,
    /// Wait for an answer this long before sending again.
    pub timeout: Duration,
    /// Sends per zone change and secondary, at most.
    pub attempts: u32,
}

impl Default for NotifySpec {
    fn default() -> Self {
        NotifySpec {
            targets: Vec::new(),
            timeout: Duration::from_secs(2),
            attempts: 5,
        }
    }
}

/// How one NOTIFY ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The secondary answered NOERROR.
    Acked,
    /// The secondary answered with an error code (it is not a secondary of this zone, say).
    Refused(u8),
    /// No answer after every attempt.
    Unanswered,
}

/// The serial of a stored SOA record (RDATA: MNAME, RNAME uncompressed, then SERIAL).
pub fn soa_serial(soa: &Rr) -> Option<u32> {
    if soa.rtype != rtype::SOA {
        return None;
    }
    let mut at = 0;
    for _ in 0..2 {
        loop {
            let len = *soa.rdata.get(at)? as usize;
            at += 1 + len;
            if len == 0 {
                break;
            }
        }
    }
    let b = soa.rdata.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The NOTIFY query for `origin` (lowercase wire name) with message id `id`.
pub fn message(origin: &[u8], id: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(12 + origin.len() + 4);
    m.extend_from_slice(&id.to_be_bytes());
    // QR=0, opcode NOTIFY, AA=1
    m.push((OPCODE_NOTIFY << 3) | 0x04);
    m.push(0);
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(origin);
    m.extend_from_slice(&rtype::SOA.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes()); // IN
    m
}

/// Sends one zone's NOTIFY to one secondary until it answers or the attempts run out.
pub async fn send(
    origin: Box<[u8]>,
    target: SocketAddr,
    spec: NotifySpec,
    stop: CancellationToken,
) -> Outcome {
    let zone = crate::names::to_text(&origin);
    let bind: SocketAddr = if target.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let outcome = match UdpSocket::bind(bind).await {
        Ok(sock) => exchange(&sock, &origin, target, &spec, &stop).await,
        Err(e) => {
            tracing::warn!(%zone, %target, error = %e, "notify: no socket");
            Outcome::Unanswered
        }
    };
    match outcome {
        Outcome::Acked => tracing::info!(%zone, %target, "notify acknowledged"),
        Outcome::Refused(rc) => {
            tracing::warn!(%zone, %target, rcode = rc, "notify refused by the secondary")
        }
        Outcome::Unanswered => {
            tracing::warn!(%zone, %target, attempts = spec.attempts, "notify unanswered")
        }
    }
    crate::metrics::notify(outcome);
    outcome
}

async fn exchange(
    sock: &UdpSocket,
    origin: &[u8],
    target: SocketAddr,
    spec: &NotifySpec,
    stop: &CancellationToken,
) -> Outcome {
    let id: u16 = rand::random();
    let msg = message(origin, id);
    let mut buf = [0u8; 512];
    for _ in 0..spec.attempts.max(1) {
        if sock.send_to(&msg, target).await.is_err() {
            // e.g. nothing routes there: the next attempt may fare better
            tokio::select! {
                _ = tokio::time::sleep(spec.timeout) => continue,
                _ = stop.cancelled() => return Outcome::Unanswered,
            }
        }
        let deadline = tokio::time::Instant::now() + spec.timeout;
        loop {
            let got = tokio::select! {
                r = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)) => r,
                _ = stop.cancelled() => return Outcome::Unanswered,
            };
            match got {
                Err(_) => break, // time to send again
                Ok(Err(_)) => continue,
                Ok(Ok((n, from))) => {
                    let answer = &buf[..n];
                    // only the secondary's answer to this NOTIFY counts
                    if from != target
                        || n < 12
                        || answer[..2] != id.to_be_bytes()
                        || answer[2] & 0x80 == 0
                        || (answer[2] >> 3) & 0x0F != OPCODE_NOTIFY
                    {
                        continue;
                    }
                    return match answer[3] & 0x0F {
                        0 => Outcome::Acked,
                        rc => Outcome::Refused(rc),
                    };
                }
            }
        }
    }
    Outcome::Unanswered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_a_notify_query_for_the_zone_soa() {
        let m = message(b"\x07example\x04test\x00", 0x1234);
        assert_eq!(&m[..12], &[0x12, 0x34, 0x24, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&m[12..], b"\x07example\x04test\x00\x00\x06\x00\x01");
    }

    #[test]
    fn the_serial_is_read_after_the_two_names() {
        let mut rdata = b"\x02ns\x00\x04host\x00".to_vec();
        rdata.extend_from_slice(&2024010101u32.to_be_bytes());
        rdata.extend_from_slice(&[0; 16]);
        let soa = Rr {
            owner: b"\x00".to_vec().into(),
            rtype: rtype::SOA,
            ttl: 60,
            rdata: rdata.into(),
            target: None,
        };
        assert_eq!(soa_serial(&soa), Some(2024010101));
        let short = Rr {
            rdata: b"\x02ns\x00".to_vec().into(),
            ..soa
        };
        assert_eq!(soa_serial(&short), None);
    }
}
