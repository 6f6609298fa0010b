//! Handing the listen addresses over to a successor without dropping a query. Every UDP socket
//! is bound with `SO_REUSEPORT`, so a new clusterdns process (the next version of a node-local
//! DaemonSet pod, started beside this one with `maxSurge`) can bind the same addresses while
//! this one still serves, and the kernel spreads queries over both.
//!
//! To leave, a worker connects its socket to an address no client uses ([`stop_receiving`],
//! for sockets bound to a specific address, as node-local mode's are):
//! from then on the kernel delivers new queries only to the unconnected sockets of the group
//! (the successor's), while the queries already queued on this socket stay there to be
//! answered. The worker drains its queue and closes the socket. Without a successor the same
//! steps apply, and new queries get an ICMP port unreachable at once instead of waiting in a
//! queue that will be dropped.
//!
//! Whether a successor is there comes from the kernel's socket tables (`/proc/net/udp`,
//! `/proc/net/udp6`): another socket bound to the same address and port, not one of ours.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How often [`wait_for_successor`] looks at the socket tables.
const POLL: Duration = Duration::from_millis(50);

/// The port connected sockets point at: the discard port, which no DNS client sends from.
const DISCARD_PORT: u16 = 9;

/// The inode of a socket, as the kernel's socket tables list it.
pub fn inode(socket: &UdpSocket) -> io::Result<u64> {
    // SAFETY: an all-zero `stat` is a valid value for fstat to fill in.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open for the life of `socket`; `stat` is writable.
    if unsafe { libc::fstat(socket.as_raw_fd(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat.st_ino)
}

/// Connects `socket` (bound to `local`) to the discard port of its own address, so that the
/// kernel stops handing it queries from clients; those already queued stay readable, and
/// answers still go out with an explicit destination. Returns whether it did: a socket bound to
/// a wildcard address is left as it is, because connecting it would also fix its source address
/// and the queued answers to other hosts could not be sent (it drains while still taking
/// queries; node-local mode binds specific addresses).
pub fn stop_receiving(socket: &UdpSocket, local: SocketAddr) -> io::Result<bool> {
    if local.ip().is_unspecified() {
        return Ok(false);
    }
    socket.connect(SocketAddr::new(local.ip(), DISCARD_PORT))?;
    Ok(true)
}

/// Whether every address in `addrs` has a UDP socket bound to it that is not one of `ours`
/// (by inode): a successor serving the same addresses.
pub fn others_bound(addrs: &[SocketAddr], ours: &[u64]) -> bool {
    let v4 = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let v6 = std::fs::read_to_string("/proc/net/udp6").unwrap_or_default();
    !addrs.is_empty()
        && addrs.iter().all(|addr| {
            let table = if addr.is_ipv4() { &v4 } else { &v6 };
            bound_inodes(table, *addr).any(|inode| !ours.contains(&inode))
        })
}

/// Waits until [`others_bound`] holds or `wait` has passed; returns whether it holds.
pub fn wait_for_successor(addrs: &[SocketAddr], ours: &[u64], wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if others_bound(addrs, ours) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// The inodes of the sockets in a `/proc/net/udp{,6}` table bound to exactly `addr`.
fn bound_inodes(table: &str, addr: SocketAddr) -> impl Iterator<Item = u64> + '_ {
    table.lines().skip(1).filter_map(move |line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = parse_local(fields.get(1)?)?;
        (local == addr).then(|| fields.get(9)?.parse().ok())?
    })
}

/// A `local_address` column: the address as the kernel's 32-bit words in host order, in hex,
/// a colon, and the port in hex.
fn parse_local(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = ip.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut octets = [0u8; 16];
            for i in 0..4 {
                octets[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_read_as_the_kernel_writes_them() {
        // As /proc/net/udp spells 127.0.0.1:53 and 169.254.20.10:53 on a little-endian host.
        if cfg!(target_endian = "little") {
            assert_eq!(
                parse_local("0100007F:0035"),
                Some("127.0.0.1:53".parse().unwrap())
            );
            assert_eq!(
                parse_local("0A14FEA9:0035"),
                Some("169.254.20.10:53".parse().unwrap())
            );
            assert_eq!(
                parse_local("00000000000000000000000001000000:1F90"),
                Some("[::1]:8080".parse().unwrap())
            );
        }
        assert_eq!(parse_local("nonsense"), None);
    }

    #[test]
    fn a_second_socket_on_the_address_is_a_successor() {
        let first = reuse_port_socket("127.0.0.1:0".parse().unwrap());
        let addr = first.local_addr().unwrap();
        let ours = [inode(&first).unwrap()];
        assert!(!others_bound(&[addr], &ours));
        let second = reuse_port_socket(addr);
        assert!(others_bound(&[addr], &ours));
        drop(second);
        assert!(!wait_for_successor(&[addr], &ours, Duration::ZERO));
    }

    #[test]
    fn a_connected_socket_keeps_its_queue_and_receives_nothing_new() {
        let old = reuse_port_socket("127.0.0.1:0".parse().unwrap());
        let addr = old.local_addr().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"queued", addr).unwrap();
        // Loopback delivers from a softirq that a busy machine may run late: wait until the
        // datagram is in the old socket's queue before a successor can take new ones.
        let mut buf = [0u8; 16];
        old.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        old.peek_from(&mut buf).unwrap();
        let new = reuse_port_socket(addr);
        assert!(stop_receiving(&old, addr).unwrap());
        for _ in 0..20 {
            UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .send_to(b"later", addr)
                .unwrap();
        }
        new.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        for _ in 0..20 {
            let (len, _) = new
                .recv_from(&mut buf)
                .expect("the successor gets every later one");
            assert_eq!(&buf[..len], b"later");
        }
        old.set_nonblocking(true).unwrap();
        let (len, from) = old.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"queued");
        old.send_to(b"answer", from).unwrap();
        assert!(old.recv_from(&mut buf).is_err(), "nothing after the queue");
        new.set_nonblocking(true).unwrap();
        assert!(new.recv_from(&mut buf).is_err(), "no more than the twenty");
        client.recv_from(&mut buf).unwrap();
    }

    fn reuse_port_socket(addr: SocketAddr) -> UdpSocket {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            None,
        )
        .unwrap();
        socket.set_reuse_port(true).unwrap();
        socket.bind(&addr.into()).unwrap();
        socket.into()
    }
}
