//! One upstream resolver: a query exchange over UDP, retried over TCP when the answer comes back
//! truncated, and the in-band health state (failures in a row; down until a health check
//! answers). Each UDP exchange uses a fresh socket on a kernel-chosen port, so the source port
//! is as unpredictable as the 16-bit ID (RFC 5452 §4.5), and a reply is accepted only when it
//! passes [`parse_response`]; anything else on the socket is ignored until the deadline.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout_at, Instant};

use super::cache::Key;
use super::message::{parse_response, write_query, Response};

/// Largest UDP answer we read (the largest UDP payload over IPv4).
const UDP_RECEIVE: usize = 65_507;

/// Why an exchange with an upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// No valid answer before the deadline.
    #[error("no answer within the timeout")]
    Timeout,
    /// The network said no (e.g. ICMP port unreachable, a refused or reset connection).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The TCP answer was not an answer to our question.
    #[error("invalid answer over TCP")]
    Invalid,
}

/// A validated answer: the packet and what validation found in it.
#[derive(Debug)]
pub struct Exchanged {
    /// The answer as received.
    pub packet: Vec<u8>,
    /// Its validated layout.
    pub response: Response,
}

/// An upstream resolver and its health.
#[derive(Debug)]
pub struct Upstream {
    addr: SocketAddr,
    fails: AtomicU32,
    down: AtomicBool,
}

impl Upstream {
    /// A healthy upstream at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Upstream {
            addr,
            fails: AtomicU32::new(0),
            down: AtomicBool::new(false),
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it is marked down (skipped while another upstream is up).
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// It answered: clears the failure count and marks it up.
    pub fn succeeded(&self) {
        self.fails.store(0, Ordering::Relaxed);
        self.down.store(false, Ordering::Relaxed);
    }

    /// It failed; `true` when this failure marks it down (the caller starts health checks).
    pub fn failed(&self, max_fails: u32) -> bool {
        let fails = self.fails.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        fails >= max_fails && !self.down.swap(true, Ordering::Relaxed)
    }

    /// Asks `key` with message ID `id`: over UDP, then over TCP if the answer is truncated. Each
    /// transport gets `timeout`.
    pub async fn exchange(
        &self,
        key: &Key,
        id: u16,
        timeout: Duration,
    ) -> Result<Exchanged, ExchangeError> {
        let query = write_query(id, key.name(), key.qtype(), key.qclass(), key.dnssec_ok());
        let validate =
            |packet: &[u8]| parse_response(packet, id, key.name(), key.qtype(), key.qclass());
        let udp = self
            .udp(&query, &validate, Instant::now() + timeout)
            .await?;
        if !udp.response.truncated() {
            return Ok(udp);
        }
        self.tcp(&query, &validate, Instant::now() + timeout).await
    }

    async fn udp(
        &self,
        query: &[u8],
        validate: &impl Fn(&[u8]) -> Option<Response>,
        deadline: Instant,
    ) -> Result<Exchanged, ExchangeError> {
        let local: SocketAddr = if self.addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await?;
        // Connected: the kernel drops datagrams from other addresses and reports ICMP errors.
        socket.connect(self.addr).await?;
        socket.send(query).await?;
        let mut buf = vec![0u8; UDP_RECEIVE];
        loop {
            let len = timeout_at(deadline, socket.recv(&mut buf))
                .await
                .map_err(|_| ExchangeError::Timeout)??;
            if let Some(response) = validate(&buf[..len]) {
                buf.truncate(len);
                return Ok(Exchanged {
                    packet: buf,
                    response,
                });
            }
            // Not the answer to our question (late, spoofed or garbled): keep waiting.
        }
    }

    async fn tcp(
        &self,
        query: &[u8],
        validate: &impl Fn(&[u8]) -> Option<Response>,
        deadline: Instant,
    ) -> Result<Exchanged, ExchangeError> {
        let exchange = async {
            let mut stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            let mut framed = Vec::with_capacity(query.len() + 2);
            framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
            framed.extend_from_slice(query);
            stream.write_all(&framed).await?;
            let len = usize::from(stream.read_u16().await?);
            let mut packet = vec![0u8; len];
            stream.read_exact(&mut packet).await?;
            Ok::<_, io::Error>(packet)
        };
        let packet = timeout_at(deadline, exchange)
            .await
            .map_err(|_| ExchangeError::Timeout)??;
        let response = validate(&packet).ok_or(ExchangeError::Invalid)?;
        Ok(Exchanged { packet, response })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_down_once_after_max_fails_and_up_after_success() {
        let upstream = Upstream::new("192.0.2.1:53".parse().unwrap());
        assert!(!upstream.failed(2));
        assert!(upstream.failed(2), "second failure marks it down");
        assert!(upstream.is_down());
        assert!(
            !upstream.failed(2),
            "already down: no second health checker"
        );
        upstream.succeeded();
        assert!(!upstream.is_down());
        assert!(!upstream.failed(2));
    }
}
