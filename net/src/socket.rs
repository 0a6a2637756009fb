//! Listening sockets, bound with socket2 before any runtime sees them: TCP listeners and UDP
//! sockets with `SO_REUSEPORT`, so several accept loops (or UDP workers) each own a socket on
//! the same port and the kernel spreads connections (datagrams) across them.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{SocketAddr, UdpSocket};

/// How to bind a TCP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpOptions {
    /// `listen(2)` backlog.
    pub backlog: u32,
    /// `SO_REUSEPORT`: several sockets share the port (one per accept loop).
    pub reuse_port: bool,
    /// `TCP_NODELAY`, inherited by accepted sockets.
    pub nodelay: bool,
    /// `IPV6_V6ONLY` on IPv6 addresses (`[::]` then takes no IPv4 clients).
    pub only_v6: bool,
}

impl Default for TcpOptions {
    /// Backlog 1024, `SO_REUSEPORT`, `TCP_NODELAY`, `IPV6_V6ONLY`.
    fn default() -> Self {
        TcpOptions {
            backlog: 1024,
            reuse_port: true,
            nodelay: true,
            only_v6: true,
        }
    }
}

/// A non-blocking TCP listener on `addr` with `SO_REUSEADDR` and `opts` (not yet registered
/// with a runtime: hand it to `tokio::net::TcpListener::from_std` on the runtime that accepts).
pub fn tcp_listener(addr: SocketAddr, opts: TcpOptions) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if opts.reuse_port {
        s.set_reuse_port(true)?;
    }
    if addr.is_ipv6() && opts.only_v6 {
        s.set_only_v6(true)?;
    }
    if opts.nodelay {
        s.set_tcp_nodelay(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(opts.backlog.min(i32::MAX as u32) as i32)?;
    Ok(s.into())
}

/// How to bind a UDP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpOptions {
    /// `SO_REUSEPORT`: several sockets share the port (one per worker).
    pub reuse_port: bool,
    /// `IPV6_V6ONLY` on IPv6 addresses.
    pub only_v6: bool,
    /// `SO_RCVBUF` and `SO_SNDBUF` to ask for, in bytes (best effort: the kernel caps them).
    pub buffer: Option<usize>,
}

impl Default for UdpOptions {
    /// `SO_REUSEPORT`, `IPV6_V6ONLY`, the kernel's buffer sizes.
    fn default() -> Self {
        UdpOptions {
            reuse_port: true,
            only_v6: true,
            buffer: None,
        }
    }
}

/// A blocking UDP socket on `addr` with `opts` (blocking: a worker thread sits in `recvmmsg`).
pub fn udp_socket(addr: SocketAddr, opts: UdpOptions) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if opts.reuse_port {
        s.set_reuse_port(true)?;
    }
    if addr.is_ipv6() && opts.only_v6 {
        s.set_only_v6(true)?;
    }
    if let Some(n) = opts.buffer {
        let _ = s.set_recv_buffer_size(n);
        let _ = s.set_send_buffer_size(n);
    }
    s.bind(&SockAddr::from(addr))?;
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn two_tcp_listeners_share_a_port_and_accept() {
        let a = tcp_listener("127.0.0.1:0".parse().unwrap(), TcpOptions::default()).unwrap();
        let addr = a.local_addr().unwrap();
        let b = tcp_listener(addr, TcpOptions::default()).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
        // without SO_REUSEPORT the port is taken
        let exclusive = TcpOptions {
            reuse_port: false,
            ..TcpOptions::default()
        };
        assert!(tcp_listener(addr, exclusive).is_err());
        // a client reaches one of them
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"hi").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut got = None;
        while got.is_none() && std::time::Instant::now() < deadline {
            for l in [&a, &b] {
                if let Ok((mut s, _)) = l.accept() {
                    s.set_nonblocking(false).unwrap();
                    let mut buf = [0u8; 2];
                    s.read_exact(&mut buf).unwrap();
                    got = Some(buf);
                }
            }
            std::thread::yield_now();
        }
        assert_eq!(got, Some(*b"hi"));
    }

    #[test]
    fn two_udp_sockets_share_a_port() {
        let opts = UdpOptions {
            buffer: Some(1 << 20),
            ..UdpOptions::default()
        };
        let a = udp_socket("127.0.0.1:0".parse().unwrap(), opts).unwrap();
        let addr = a.local_addr().unwrap();
        let b = udp_socket(addr, opts).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
        let lone = UdpOptions {
            reuse_port: false,
            ..opts
        };
        assert!(udp_socket(addr, lone).is_err());
    }
}
