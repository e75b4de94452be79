//! Socket creation for the DNS listeners: UDP sockets (SO_REUSEPORT, one per worker)
//! and a TCP listener on each listen address, bound before anything else starts.

use std::net::SocketAddr;

use tokio::net::{TcpListener, UdpSocket};

fn udp_socket(addr: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if reuse_port {
        // One socket per worker on the same address; the kernel spreads clients
        // over them, so the receive loops run on every core.
        s.set_reuse_port(true)?;
    }
    s.set_recv_buffer_size(4 << 20).ok();
    s.set_send_buffer_size(4 << 20).ok();
    s.set_nonblocking(true)?;
    if addr.ip().is_unspecified() {
        // A wildcard listener learns each query's destination, to answer from it.
        use std::os::fd::AsRawFd;
        super::batch::want_destination(s.as_raw_fd(), addr.is_ipv6())?;
    }
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

/// A DNS listen address that cannot be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The UDP socket (or one of its SO_REUSEPORT siblings).
    #[error("binding DNS UDP on {addr} (server.listen): {source}{}", in_use_hint(*addr, source))]
    Udp {
        /// The listen address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The TCP listener.
    #[error("binding DNS TCP on {addr} (server.listen): {source}{}", in_use_hint(*addr, source))]
    Tcp {
        /// The listen address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A DNS over TLS listener.
    #[error("binding DNS over TLS on {addr} (server.listen_tls): {source}{}", in_use_hint(*addr, source))]
    Tls {
        /// The listen address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Bind a DNS over TLS listener.
pub fn bind_tls(addr: SocketAddr) -> Result<TcpListener, BindError> {
    let err = |source| BindError::Tls { addr, source };
    TcpListener::from_std(tcp_listener(addr).map_err(err)?).map_err(err)
}

/// What to do when the address is taken: another resolver runs there. On port 53
/// that is often systemd-resolved's stub listener (every Ubuntu), which holds
/// 127.0.0.53:53 and, with a wildcard listen, blocks 0.0.0.0:53 too.
fn in_use_hint(addr: SocketAddr, e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse if addr.port() == 53 => {
            "; another resolver runs there (`ss -lunp 'sport = 53'` shows which). If it is \
             systemd-resolved's stub listener, set DNSStubListener=no in \
             /etc/systemd/resolved.conf and run `systemctl restart systemd-resolved`"
        }
        std::io::ErrorKind::AddrInUse => {
            "; another program listens there (`ss -lunp` shows which): stop it or pick another port"
        }
        std::io::ErrorKind::PermissionDenied => {
            "; ports below 1024 need CAP_NET_BIND_SERVICE (the systemd unit grants it)"
        }
        _ => "",
    }
}

/// Bind `udp_count` UDP sockets (SO_REUSEPORT when more than one) and one TCP
/// listener on the same address; with port 0, find a port free for both.
pub fn bind_pair(
    addr: SocketAddr,
    udp_count: usize,
) -> Result<(Vec<UdpSocket>, TcpListener), BindError> {
    let reuse = udp_count > 1;
    let udp_err = |source| BindError::Udp { addr, source };
    let tcp_err = |source| BindError::Tcp { addr, source };
    let mut tries = 0;
    loop {
        let udp = udp_socket(addr, reuse).map_err(udp_err)?;
        let bound = udp.local_addr().map_err(udp_err)?;
        match tcp_listener(bound) {
            Ok(tcp) => {
                let mut socks = vec![UdpSocket::from_std(udp).map_err(udp_err)?];
                for _ in 1..udp_count {
                    let s = udp_socket(bound, true).and_then(UdpSocket::from_std);
                    socks.push(s.map_err(udp_err)?);
                }
                return Ok((socks, TcpListener::from_std(tcp).map_err(tcp_err)?));
            }
            // Port 0: the kernel's free UDP port may be taken for TCP; try another.
            Err(_) if addr.port() == 0 && tries < 20 => tries += 1,
            Err(e) => return Err(tcp_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_address_says_what_to_do() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = bind_pair(addr, 1).unwrap_err().to_string();
        assert!(
            err.contains("server.listen") && err.contains("ss -lunp"),
            "{err}"
        );
        // On port 53, the usual culprit on Ubuntu is named, with the fix.
        let in_use = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let err = BindError::Udp {
            addr: "0.0.0.0:53".parse().unwrap(),
            source: in_use,
        }
        .to_string();
        assert!(err.contains("DNSStubListener=no"), "{err}");
    }
}
