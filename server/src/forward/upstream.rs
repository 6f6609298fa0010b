//! One upstream resolver: a query exchange over UDP, retried over TCP when the answer comes back
//! truncated, and the in-band health state (failures in a row; down until a health check
//! answers). A UDP exchange takes a connected socket on a kernel-chosen port, one exchange at a
//! time: one left idle by an earlier exchange (for at most `expire`, as CoreDNS keeps its
//! upstream connections), else a new one. Making, registering and closing a socket was a third
//! of what forwarding a query cost. A socket goes back to the idle set only after its exchange
//! got a valid answer; a timeout or an error closes it, so nothing late is left on it. Ports
//! stay unpredictable: each socket's is picked by the kernel, and a reply is accepted only when
//! it passes [`parse_response`] (ID and question; RFC 5452 §9.1); anything else on the socket is
//! ignored until the deadline. A `tls://` upstream is asked over its pool of pipelined TLS
//! connections instead ([`TcpPool`], RFC 7858), and its health is kept the same way.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout_at, Instant};

use super::cache::CacheKey;
use super::config::DEFAULT_EXPIRE;
use clusterdns_zone::answer::ADVERTISED_PAYLOAD;

use super::message::{parse_response, write_query_with_options, Response};
use super::pool::TcpPool;
use super::tls::{TlsUpstreams, CONNECTIONS};
use crate::ops::metrics::Exposition;

/// Room for one UDP answer. We advertise 1,232 bytes (EDNS), so a larger answer comes from an
/// upstream that ignores it; one that fills this buffer may have been cut by the kernel, and is
/// asked again over TCP. One buffer per thread, not per query in flight.
const UDP_RECEIVE: usize = 4096;

thread_local! {
    /// Where a UDP answer is read before its bytes are kept (see [`Upstream::udp`]).
    static RECEIVE: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; UDP_RECEIVE]);
}

/// Idle UDP sockets kept per upstream at most: past it, a socket is closed after its exchange.
/// More exchanges than this at once each open their own socket.
const IDLE_SOCKETS: usize = 256;

/// Connected UDP sockets to one upstream with no exchange on them, the most recently used last.
#[derive(Debug)]
struct IdleSockets {
    sockets: Mutex<VecDeque<(UdpSocket, Instant)>>,
    /// How long one is kept unused; zero keeps none.
    expire: Duration,
}

impl IdleSockets {
    fn new(expire: Duration) -> Self {
        IdleSockets {
            sockets: Mutex::new(VecDeque::new()),
            expire,
        }
    }

    /// The most recently used socket, unless it has been idle for `expire` (then so have all).
    fn take(&self) -> Option<UdpSocket> {
        let mut sockets = self.sockets.lock().unwrap_or_else(PoisonError::into_inner);
        let (socket, since) = sockets.pop_back()?;
        if since.elapsed() >= self.expire {
            sockets.clear();
            return None;
        }
        Some(socket)
    }

    /// Keeps `socket` for the next exchange, closing those idle for `expire`.
    fn give(&self, socket: UdpSocket) {
        let now = Instant::now();
        let mut sockets = self.sockets.lock().unwrap_or_else(PoisonError::into_inner);
        while sockets
            .front()
            .is_some_and(|(_, since)| now.duration_since(*since) >= self.expire)
        {
            sockets.pop_front();
        }
        if sockets.len() < IDLE_SOCKETS && !self.expire.is_zero() {
            sockets.push_back((socket, now));
        }
    }

    /// How many are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

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
    /// The TLS handshake failed (e.g. a certificate not valid for the name, or from an
    /// issuer not trusted).
    #[error("TLS: {0}")]
    Tls(io::Error),
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
    /// Asked over TCP only.
    tcp_only: bool,
    /// The EDNS payload size our queries advertise.
    payload: u16,
    /// DNS over TLS: its pooled connections; `None`: plain DNS.
    tls: Option<TcpPool>,
    /// UDP sockets left by earlier exchanges.
    idle: IdleSockets,
    /// UDP exchanges on a socket reused, and on one opened for them; TCP connections opened.
    udp_reused: AtomicU64,
    udp_opened: AtomicU64,
    tcp_opened: AtomicU64,
}

/// One row of CoreDNS's connection cache counters: an upstream, a protocol (`udp`, `tcp`,
/// `tcp-tls`), exchanges on a connection reused (hits) and connections opened (misses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnCache {
    /// The upstream.
    pub to: SocketAddr,
    /// `udp`, `tcp` or `tcp-tls`, as CoreDNS labels them.
    pub proto: &'static str,
    /// Exchanges on a connection already open.
    pub hits: u64,
    /// Connections opened.
    pub misses: u64,
}

impl ConnCache {
    /// Describes `coredns_proxy_conn_cache_hits_total` and `coredns_proxy_conn_cache_misses_total`
    /// for `rows` (nothing when there are none).
    pub fn describe(rows: &[ConnCache], out: &mut Exposition) {
        if rows.is_empty() {
            return;
        }
        let hits: fn(&ConnCache) -> u64 = |row| row.hits;
        let families = [
            (
                "coredns_proxy_conn_cache_hits_total",
                "Counter of connection cache hits per upstream and protocol.",
                hits,
            ),
            (
                "coredns_proxy_conn_cache_misses_total",
                "Counter of connection cache misses per upstream and protocol.",
                |row| row.misses,
            ),
        ];
        for (name, help, value) in families {
            let family = out.counter(name, help);
            for row in rows {
                let to = row.to.to_string();
                let labels = [("proxy_name", "forward"), ("to", &to), ("proto", row.proto)];
                family.add(&labels, value(row));
            }
        }
    }
}

impl Upstream {
    /// A healthy upstream at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Upstream {
            addr,
            fails: AtomicU32::new(0),
            down: AtomicBool::new(false),
            tcp_only: false,
            payload: ADVERTISED_PAYLOAD,
            tls: None,
            idle: IdleSockets::new(DEFAULT_EXPIRE),
            udp_reused: AtomicU64::new(0),
            udp_opened: AtomicU64::new(0),
            tcp_opened: AtomicU64::new(0),
        }
    }

    /// Its connection cache counters, a row per protocol it has used (CoreDNS's
    /// `coredns_proxy_conn_cache_*`): a TLS upstream's pool, else UDP sockets and TCP
    /// connections (a TCP exchange always opens one).
    pub fn conn_cache(&self) -> Vec<ConnCache> {
        let row = |proto, hits, misses| ConnCache {
            to: self.addr,
            proto,
            hits,
            misses,
        };
        if let Some(pool) = &self.tls {
            return vec![row("tcp-tls", pool.reused(), pool.opened())];
        }
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        [
            row("udp", load(&self.udp_reused), load(&self.udp_opened)),
            row("tcp", 0, load(&self.tcp_opened)),
        ]
        .into_iter()
        .filter(|row| row.hits + row.misses > 0)
        .collect()
    }

    /// This upstream, its UDP sockets kept idle for `expire` between exchanges (CoreDNS
    /// `expire`; zero: a socket per exchange).
    pub fn expiring_after(self, expire: Duration) -> Self {
        Upstream {
            idle: IdleSockets::new(expire),
            ..self
        }
    }

    /// This upstream, asked over TLS as `tls` says (CoreDNS `tls://`), on connections closed
    /// after `idle` with nothing arriving, whose queries advertise the payload size set before.
    pub fn over_tls(self, tls: &TlsUpstreams, idle: Duration) -> Self {
        let pool = TcpPool::tls(
            self.addr,
            CONNECTIONS,
            tls.client.clone(),
            tls.name_for(self.addr),
            idle,
            self.payload,
        );
        Upstream {
            tls: Some(pool),
            ..self
        }
    }

    /// Its pool of TLS connections, for a `tls://` upstream.
    pub fn tls_pool(&self) -> Option<&TcpPool> {
        self.tls.as_ref()
    }

    /// This upstream, asked with an EDNS payload size of `payload` (a block's `bufsize`).
    pub fn with_payload(self, payload: u16) -> Self {
        Upstream { payload, ..self }
    }

    /// This upstream, asked over TCP only (CoreDNS `force_tcp`).
    pub fn tcp_only(self) -> Self {
        Upstream {
            tcp_only: true,
            ..self
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
    /// transport gets `timeout`. A TLS upstream is asked on a pooled connection within
    /// `timeout`, with an ID unused on that connection.
    pub async fn exchange(
        &self,
        key: &CacheKey,
        id: u16,
        timeout: Duration,
    ) -> Result<Exchanged, ExchangeError> {
        if let Some(pool) = &self.tls {
            return pool.exchange(key, timeout).await;
        }
        let query = write_query_with_options(
            id,
            key.name(),
            key.qtype(),
            key.qclass(),
            (key.dnssec_ok(), self.payload),
            key.options(),
        );
        let validate =
            |packet: &[u8]| parse_response(packet, id, key.name(), key.qtype(), key.qclass());
        if self.tcp_only {
            return self.tcp(&query, &validate, Instant::now() + timeout).await;
        }
        let udp = self
            .udp(&query, &validate, Instant::now() + timeout)
            .await?;
        match udp {
            Some(udp) if !udp.response.truncated() => Ok(udp),
            _ => self.tcp(&query, &validate, Instant::now() + timeout).await,
        }
    }

    /// The answer over UDP; `None` when it filled the buffer (possibly cut: ask over TCP).
    async fn udp(
        &self,
        query: &[u8],
        validate: &impl Fn(&[u8]) -> Option<Response>,
        deadline: Instant,
    ) -> Result<Option<Exchanged>, ExchangeError> {
        let socket = match self.idle.take() {
            Some(socket) => {
                self.udp_reused.fetch_add(1, Ordering::Relaxed);
                socket
            }
            None => {
                self.udp_opened.fetch_add(1, Ordering::Relaxed);
                self.new_socket().await?
            }
        };
        socket.send(query).await?;
        loop {
            // Waiting holds no buffer: under a flood thousands of queries wait on upstreams, and
            // a receive buffer each would be most of their memory. The datagram is read into
            // the thread's scratch buffer once it is there, and only its bytes are kept.
            let readable = timeout_at(deadline, socket.readable()).await;
            readable.map_err(|_| ExchangeError::Timeout)??;
            let received = RECEIVE.with_borrow_mut(|scratch| {
                let len = match socket.try_recv(scratch) {
                    Ok(len) => len,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
                    Err(e) => return Err(e),
                };
                if len == scratch.len() {
                    return Ok(Some(None));
                }
                Ok(validate(&scratch[..len]).map(|response| {
                    Some(Exchanged {
                        packet: scratch[..len].to_vec(),
                        response,
                    })
                }))
            })?;
            match received {
                // Filled the buffer: possibly cut, ask over TCP.
                Some(None) => return Ok(None),
                Some(Some(exchanged)) => {
                    self.idle.give(socket);
                    return Ok(Some(exchanged));
                }
                // Spurious readiness, or not the answer to our question (late, spoofed or
                // garbled): keep waiting.
                None => {}
            }
        }
    }

    /// A UDP socket on a port the kernel picks, connected to the upstream: the kernel drops
    /// datagrams from other addresses and reports ICMP errors.
    async fn new_socket(&self) -> io::Result<UdpSocket> {
        let local: SocketAddr = if self.addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(self.addr).await?;
        Ok(socket)
    }

    async fn tcp(
        &self,
        query: &[u8],
        validate: &impl Fn(&[u8]) -> Option<Response>,
        deadline: Instant,
    ) -> Result<Exchanged, ExchangeError> {
        let exchange = async {
            self.tcp_opened.fetch_add(1, Ordering::Relaxed);
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
    use clusterdns_zone::wire::HEADER_LEN;

    /// An upstream whose UDP answers overflow our buffer, and whose TCP answers are good: the
    /// exchange must end on TCP.
    #[tokio::test]
    async fn an_answer_filling_the_udp_buffer_is_asked_again_over_tcp() {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let key = CacheKey::new(b"\x03www\x07example\x03com\x00", 1, 1, false);
        let question_end = HEADER_LEN + key.name().len() + 4;
        let answer = move |query: &[u8]| {
            let mut answer = query[..question_end].to_vec();
            answer[2..4].copy_from_slice(&[0x81, 0x80]);
            answer[10..12].copy_from_slice(&[0, 0]);
            answer
        };
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (len, peer) = udp.recv_from(&mut buf).await.unwrap();
            let mut oversized = answer(&buf[..len]);
            oversized.resize(UDP_RECEIVE + 100, 0);
            udp.send_to(&oversized, peer).await.unwrap();
        });
        tokio::spawn(async move {
            let (mut stream, _) = tcp.accept().await.unwrap();
            let len = usize::from(stream.read_u16().await.unwrap());
            let mut query = vec![0u8; len];
            stream.read_exact(&mut query).await.unwrap();
            let reply = answer(&query);
            stream.write_u16(reply.len() as u16).await.unwrap();
            stream.write_all(&reply).await.unwrap();
        });
        let upstream = Upstream::new(addr);
        let exchanged = upstream
            .exchange(&key, 7, Duration::from_secs(2))
            .await
            .expect("answered over TCP");
        assert_eq!(exchanged.packet.len(), question_end);
        assert_eq!(exchanged.response.rcode(), 0);
    }

    /// An upstream on loopback that answers every query but those for `silent.example.` and
    /// reports the source port of each query it got.
    async fn recording_upstream() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<u16>) {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let (ports, seen) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((len, peer)) = udp.recv_from(&mut buf).await {
                let _ = ports.send(peer.port());
                if buf[..len].windows(6).any(|w| w == b"silent") {
                    continue;
                }
                let mut answer = buf[..len].to_vec();
                answer[2] |= 0x80;
                let _ = udp.send_to(&answer, peer).await;
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn udp_sockets_are_reused_after_an_answer_and_closed_after_a_timeout_or_expire() {
        let (addr, mut ports) = recording_upstream().await;
        let key = CacheKey::new(b"\x03www\x07example\x00", 1, 1, false);
        let silent = CacheKey::new(b"\x06silent\x07example\x00", 1, 1, false);
        let upstream = Upstream::new(addr).expiring_after(Duration::from_millis(300));
        let short = Duration::from_millis(200);
        let ask = |key| upstream.exchange(key, 7, short);
        ask(&key).await.expect("answered");
        let first = ports.recv().await.unwrap();
        ask(&key).await.expect("answered");
        assert_eq!(ports.recv().await, Some(first), "the idle socket is reused");
        assert_eq!(upstream.idle.len(), 1);
        // A timeout closes the socket: a late answer never reaches the next exchange.
        assert!(ask(&silent).await.is_err());
        assert_eq!(ports.recv().await, Some(first));
        assert_eq!(upstream.idle.len(), 0);
        ask(&key).await.expect("answered");
        let second = ports.recv().await.unwrap();
        assert_ne!(second, first, "a new socket after the timeout");
        // Idle past `expire`: closed, and the next exchange opens another.
        tokio::time::sleep(Duration::from_millis(350)).await;
        ask(&key).await.expect("answered");
        assert_ne!(ports.recv().await, Some(second));
        // Two exchanges reused a socket; three opened one (the first, after the timeout, after
        // expire), and the one that timed out reused the first socket.
        let rows = upstream.conn_cache();
        assert_eq!(
            rows,
            [ConnCache {
                to: addr,
                proto: "udp",
                hits: 2,
                misses: 3
            }]
        );
        let mut exposition = Exposition::default();
        ConnCache::describe(&rows, &mut exposition);
        let out = exposition.render();
        let to = format!("to=\"{addr}\",proto=\"udp\"");
        for line in [
            format!("coredns_proxy_conn_cache_hits_total{{proxy_name=\"forward\",{to}}} 2"),
            format!("coredns_proxy_conn_cache_misses_total{{proxy_name=\"forward\",{to}}} 3"),
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
    }

    #[tokio::test]
    async fn expire_zero_keeps_no_socket() {
        let (addr, mut ports) = recording_upstream().await;
        let key = CacheKey::new(b"\x03www\x07example\x00", 1, 1, false);
        let upstream = Upstream::new(addr).expiring_after(Duration::ZERO);
        upstream
            .exchange(&key, 1, Duration::from_secs(1))
            .await
            .unwrap();
        let first = ports.recv().await.unwrap();
        upstream
            .exchange(&key, 2, Duration::from_secs(1))
            .await
            .unwrap();
        assert_ne!(ports.recv().await, Some(first));
        assert_eq!(upstream.idle.len(), 0);
    }

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
