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
        super::udp_batch::want_destination(s.as_raw_fd(), addr.is_ipv6())?;
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
    #[error(
        "binding DNS UDP on {addr} (server.listen): {source}; is another resolver running there?"
    )]
    Udp {
        /// The listen address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The TCP listener.
    #[error("binding DNS TCP on {addr} (server.listen): {source}")]
    Tcp {
        /// The listen address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
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
