//! Binding the per-worker sockets: every worker gets its own UDP socket and TCP listener on each
//! address, all bound with SO_REUSEPORT so the kernel spreads queries over the workers. An
//! ephemeral port (`:0`) is resolved by the first bind and reused for the rest.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// Sockets of one address: one UDP socket and one TCP listener per worker.
pub struct BoundAddress {
    /// The address actually bound (with the real port).
    pub addr: SocketAddr,
    /// One UDP socket per worker.
    pub udp: Vec<UdpSocket>,
    /// One TCP listener per worker.
    pub tcp: Vec<TcpListener>,
}

/// A socket that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind {proto} {addr}: {source}{hint}")]
pub struct BindError {
    /// "udp" or "tcp".
    pub proto: &'static str,
    /// The address.
    pub addr: SocketAddr,
    /// Why.
    #[source]
    pub source: io::Error,
    /// What to do about it, when that is known (empty otherwise).
    pub hint: String,
}

impl BindError {
    fn new(proto: &'static str, addr: SocketAddr, source: io::Error) -> BindError {
        let hint = match source.kind() {
            io::ErrorKind::PermissionDenied => privileged_port_hint(addr.port()),
            _ => String::new(),
        };
        BindError {
            proto,
            addr,
            source,
            hint,
        }
    }
}

/// Where the kernel keeps the first port a process without CAP_NET_BIND_SERVICE may bind; one
/// value per network namespace (Linux 4.11), which is what makes it a safe pod sysctl.
const UNPRIVILEGED_PORT_START: &str = "/proc/sys/net/ipv4/ip_unprivileged_port_start";

/// The kernel's default for net.ipv4.ip_unprivileged_port_start.
const DEFAULT_UNPRIVILEGED_PORT_START: u32 = 1024;

/// Why binding `port` was refused, when it is a privileged port of this network namespace: the
/// two ways to allow it.
fn privileged_port_hint(port: u16) -> String {
    let start = std::fs::read_to_string(UNPRIVILEGED_PORT_START)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok());
    let (start, known) = match start {
        Some(start) => (start, "here"),
        // No /proc to read it from (a chroot): the default, unless changed.
        None => (DEFAULT_UNPRIVILEGED_PORT_START, "unless changed"),
    };
    if u32::from(port) >= start {
        return String::new();
    }
    format!(
        " (port {port} is below net.ipv4.ip_unprivileged_port_start, {start} {known}: set the \
         pod sysctl net.ipv4.ip_unprivileged_port_start={port} as deploy/clusterdns.yaml does, \
         or give the process CAP_NET_BIND_SERVICE)"
    )
}

fn socket(addr: SocketAddr, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(protocol))?;
    socket.set_reuse_port(true)?;
    if ty == Type::STREAM {
        socket.set_reuse_address(true)?;
    }
    if addr.is_ipv6() {
        // So that `[::]:53` and `0.0.0.0:53` can both be bound.
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, BindError> {
    let err = |source| BindError::new("udp", addr, source);
    let socket = socket(addr, Type::DGRAM, Protocol::UDP).map_err(err)?;
    // Room for bursts between two batches.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    Ok(socket.into())
}

fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, BindError> {
    let err = |source| BindError::new("tcp", addr, source);
    let socket = socket(addr, Type::STREAM, Protocol::TCP).map_err(err)?;
    socket.listen(1024).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    Ok(socket.into())
}

/// Attempts at an ephemeral port before giving up: the port the first UDP bind gets may already
/// be taken for TCP.
const EPHEMERAL_ATTEMPTS: usize = 16;

/// Binds `workers` UDP sockets and TCP listeners on `addr`; with port 0, on one ephemeral port
/// free for both.
pub fn bind(addr: SocketAddr, workers: usize) -> Result<BoundAddress, BindError> {
    let mut attempt = 0;
    loop {
        match bind_once(addr, workers) {
            Err(error)
                if addr.port() == 0
                    && error.source.kind() == io::ErrorKind::AddrInUse
                    && attempt + 1 < EPHEMERAL_ATTEMPTS =>
            {
                attempt += 1;
            }
            result => return result,
        }
    }
}

fn bind_once(addr: SocketAddr, workers: usize) -> Result<BoundAddress, BindError> {
    let first = bind_udp(addr)?;
    let local = (first.local_addr()).map_err(|source| BindError::new("udp", addr, source))?;
    let mut udp = vec![first];
    let mut tcp = Vec::with_capacity(workers);
    for _ in 1..workers {
        udp.push(bind_udp(local)?);
    }
    for _ in 0..workers {
        tcp.push(bind_tcp(local)?);
    }
    Ok(BoundAddress {
        addr: local,
        udp,
        tcp,
    })
}
