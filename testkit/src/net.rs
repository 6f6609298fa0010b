//! Loopback addresses for servers under test.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The lowest port handed out.
const LOWEST: u16 = 10_000;

/// A loopback port free for both UDP and TCP (bound and released: another process may take it
/// before the caller binds it, which is good enough for tests). It is taken from below the
/// kernel's ephemeral range, so that no connection a test opens meanwhile (a scrape, a query over
/// TCP) can be given it as its own local port; ports are tried in an order that differs between
/// processes and calls.
pub fn free_port() -> u16 {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let end = ephemeral_start().max(LOWEST + 1000);
    let span = u32::from(end - LOWEST);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let seed = std::process::id().wrapping_mul(2_654_435_761) ^ nanos;
    for _ in 0..1000 {
        let call = CALLS.fetch_add(1, Ordering::Relaxed);
        let port = LOWEST + (seed.wrapping_add(call.wrapping_mul(7919)) % span) as u16;
        let udp = UdpSocket::bind(("127.0.0.1", port));
        let tcp = TcpListener::bind(("127.0.0.1", port));
        if udp.is_ok() && tcp.is_ok() {
            return port;
        }
    }
    panic!("no loopback port free for both UDP and TCP in 1000 tries");
}

/// The first port of the kernel's ephemeral range (`ip_local_port_range`; 32768 when unreadable).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_bindable() {
        let (a, b) = (free_port(), free_port());
        assert_ne!(a, b);
        for port in [a, b] {
            assert!((LOWEST..ephemeral_start().max(LOWEST + 1000)).contains(&port));
            UdpSocket::bind(("127.0.0.1", port)).expect("UDP");
            TcpListener::bind(("127.0.0.1", port)).expect("TCP");
        }
    }
}
