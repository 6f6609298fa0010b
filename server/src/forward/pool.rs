//! A small pool of persistent TCP connections to one server, plain or TLS: how a node-local cache
//! reaches the cluster DNS (NodeLocal DNSCache's `force_tcp`), so that queries for cluster names
//! never create a conntrack entry per UDP query and are not lost to a dropped datagram; and how a
//! `tls://` upstream is asked (RFC 7858 §3.4: connections are reused and pipelined, not opened
//! per query, since the handshake costs round trips).
//!
//! ```text
//!  exchange ──round robin──▶ slot i ──(closed or empty: connect [+ TLS handshake])──▶ Connection
//!      │ id: random, unused on this connection                          │
//!      ├── waiter[id] = oneshot ──▶ write frame (writer lock) ──▶ server │
//!      └── await oneshot (deadline) ◀── reader task: frame by frame, by ID
//! ```
//!
//! Each connection carries many queries at once (RFC 7766 §6.2.1.1 pipelining); answers are
//! matched to queries by message ID, so the server may answer out of order. A connection is
//! closed when it fails, when the server closes it, or after its idle time without an answer
//! ([`IDLE`] to the cluster DNS, before the server's own idle timeout, CoreDNS's and ours being
//! 10 s; `expire` to a TLS upstream); the next query on that slot connects again. A query whose
//! reused connection turns out closed is tried once more on a new one. At most [`MAX_PENDING`]
//! queries wait on one connection. Connecting, the handshake, the write and the answer all fit in
//! the one timeout of the exchange, as a plain TCP exchange does.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{timeout, timeout_at, Instant};

use super::cache::CacheKey;
use crate::ops::metrics::Exposition;
use clusterdns_zone::answer::ADVERTISED_PAYLOAD;

use super::message::{parse_response, write_query_with_options};
use super::tls::TlsClient;
use super::upstream::{ExchangeError, Exchanged};

/// A connection with no query and no answer for this long is closed by us.
pub const IDLE: Duration = Duration::from_secs(5);
/// Queries waiting for an answer on one connection at most.
pub const MAX_PENDING: usize = 1024;

/// Persistent connections to one server.
#[derive(Debug)]
pub struct TcpPool {
    addr: SocketAddr,
    dial: Dial,
    /// A connection with nothing arriving for this long is closed.
    idle: Duration,
    /// The EDNS payload size our queries advertise.
    payload: u16,
    slots: Box<[tokio::sync::Mutex<Option<Arc<Connection>>>]>,
    next: AtomicUsize,
    opened: AtomicU64,
    reused: AtomicU64,
}

/// How a connection is opened.
#[derive(Debug)]
enum Dial {
    /// Plain TCP.
    Tcp,
    /// TCP, then a TLS handshake verifying the server's certificate for `name`.
    Tls {
        client: TlsClient,
        name: ServerName<'static>,
    },
}

/// The write half of a connection, plain or TLS.
type Writer = Box<dyn AsyncWrite + Send + Unpin>;
/// The read half of a connection, plain or TLS.
type Reader = Box<dyn AsyncRead + Send + Unpin>;

/// What waits for answers on one connection.
#[derive(Debug, Default)]
struct Pending {
    waiters: HashMap<u16, oneshot::Sender<Vec<u8>>>,
    closed: bool,
}

/// One open connection: the write half behind a lock, the read half owned by its reader task.
struct Connection {
    writer: tokio::sync::Mutex<Writer>,
    pending: Mutex<Pending>,
    payload: u16,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("pending", &self.pending)
            .finish()
    }
}

/// Why an exchange on one connection failed.
enum Failure {
    /// The connection was closed before the answer came: worth one more try on a new one.
    Closed,
    /// Anything else.
    Other(ExchangeError),
}

impl TcpPool {
    /// A pool of at most `connections` (at least one) plain TCP connections to `addr`, closed
    /// after [`IDLE`]; none is opened until the first query.
    pub fn new(addr: SocketAddr, connections: usize) -> Self {
        TcpPool {
            addr,
            dial: Dial::Tcp,
            idle: IDLE,
            payload: ADVERTISED_PAYLOAD,
            slots: (0..connections.max(1))
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
            opened: AtomicU64::new(0),
            reused: AtomicU64::new(0),
        }
    }

    /// A pool of at most `connections` TLS connections to `addr` made by `client`, verifying
    /// the server's certificate for `name`, closed after `idle` with nothing arriving; queries
    /// advertise an EDNS payload size of `payload`.
    pub fn tls(
        addr: SocketAddr,
        connections: usize,
        client: TlsClient,
        name: ServerName<'static>,
        idle: Duration,
        payload: u16,
    ) -> Self {
        TcpPool {
            dial: Dial::Tls { client, name },
            idle,
            payload,
            ..TcpPool::new(addr, connections)
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections opened so far (reconnections included).
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Queries sent on a connection already open.
    pub fn reused(&self) -> u64 {
        self.reused.load(Ordering::Relaxed)
    }

    /// Describes `clusterdns_forward_tcp_connections_total`: connections opened to the server,
    /// which stays at the pool size while connections are reused.
    pub fn describe(&self, out: &mut Exposition) {
        (out.counter(
            "clusterdns_forward_tcp_connections_total",
            "TCP connections opened to the cluster DNS (node-local mode).",
        ))
        .add(&[("to", &self.addr.to_string())], self.opened());
    }

    /// Asks `key` over a pooled connection within `timeout`, retrying once on a new connection
    /// when a reused one turns out closed.
    pub async fn exchange(
        &self,
        key: &CacheKey,
        timeout: Duration,
    ) -> Result<Exchanged, ExchangeError> {
        let deadline = Instant::now() + timeout;
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut retried = false;
        loop {
            let (connection, fresh) = self.connection(slot, deadline).await?;
            match connection.exchange(key, deadline).await {
                Ok(exchanged) => return Ok(exchanged),
                Err(Failure::Closed) if !fresh && !retried => retried = true,
                Err(Failure::Closed) => return Err(closed().into()),
                Err(Failure::Other(error)) => return Err(error),
            }
        }
    }

    /// The open connection of `slot`, or a new one; `true` when it is new.
    async fn connection(
        &self,
        slot: usize,
        deadline: Instant,
    ) -> Result<(Arc<Connection>, bool), ExchangeError> {
        let mut slot = timeout_at(deadline, self.slots[slot].lock())
            .await
            .map_err(|_| ExchangeError::Timeout)?;
        if let Some(connection) = slot.as_ref().filter(|c| !c.is_closed()) {
            self.reused.fetch_add(1, Ordering::Relaxed);
            return Ok((connection.clone(), false));
        }
        let (reader, writer) = timeout_at(deadline, self.dial())
            .await
            .map_err(|_| ExchangeError::Timeout)??;
        self.opened.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            writer: tokio::sync::Mutex::new(writer),
            pending: Mutex::new(Pending::default()),
            payload: self.payload,
        });
        tokio::spawn(read_answers(reader, connection.clone(), self.idle));
        *slot = Some(connection.clone());
        Ok((connection, true))
    }

    /// Opens a connection: TCP, and the TLS handshake for a TLS pool.
    async fn dial(&self) -> Result<(Reader, Writer), ExchangeError> {
        match &self.dial {
            Dial::Tcp => {
                let stream = TcpStream::connect(self.addr).await?;
                stream.set_nodelay(true)?;
                let (reader, writer) = stream.into_split();
                Ok((Box::new(reader), Box::new(writer)))
            }
            Dial::Tls { client, name } => {
                let stream = client
                    .connect(self.addr, name)
                    .await
                    .map_err(ExchangeError::Tls)?;
                let (reader, writer) = tokio::io::split(stream);
                Ok((Box::new(reader), Box::new(writer)))
            }
        }
    }
}

impl Connection {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_closed(&self) -> bool {
        self.pending().closed
    }

    /// Marks the connection closed and fails every waiter (their senders are dropped).
    fn close(&self) {
        let mut pending = self.pending();
        pending.closed = true;
        pending.waiters.clear();
    }

    /// Sends the query for `key` and waits for its answer until `deadline`.
    async fn exchange(&self, key: &CacheKey, deadline: Instant) -> Result<Exchanged, Failure> {
        let (sender, receiver) = oneshot::channel();
        let id = {
            let mut pending = self.pending();
            if pending.closed {
                return Err(Failure::Closed);
            }
            if pending.waiters.len() >= MAX_PENDING {
                return Err(Failure::Other(
                    io::Error::other("too many queries waiting on the connection").into(),
                ));
            }
            // Terminates: fewer than MAX_PENDING of the 65,536 IDs are taken.
            let id = std::iter::repeat_with(rand::random::<u16>)
                .find(|id| !pending.waiters.contains_key(id))
                .unwrap_or_default();
            pending.waiters.insert(id, sender);
            id
        };
        let query = write_query_with_options(
            id,
            key.name(),
            key.qtype(),
            key.qclass(),
            (key.dnssec_ok(), self.payload),
            key.options(),
        );
        let mut frame = Vec::with_capacity(2 + query.len());
        frame.extend_from_slice(&(query.len() as u16).to_be_bytes());
        frame.extend_from_slice(&query);
        let written = timeout_at(deadline, async {
            let mut writer = self.writer.lock().await;
            // The frame in one write (RFC 7766 §8); the flush pushes out what TLS buffered.
            writer.write_all(&frame).await?;
            writer.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            // A frame cut short (an error, or the deadline mid-write) leaves the stream unusable.
            Ok(Err(_)) => {
                self.close();
                return Err(Failure::Closed);
            }
            Err(_) => {
                self.close();
                return Err(Failure::Other(ExchangeError::Timeout));
            }
        }
        let packet = match timeout_at(deadline, receiver).await {
            Ok(Ok(packet)) => packet,
            Ok(Err(_)) => return Err(Failure::Closed),
            Err(_) => {
                self.pending().waiters.remove(&id);
                return Err(Failure::Other(ExchangeError::Timeout));
            }
        };
        let response = parse_response(&packet, id, key.name(), key.qtype(), key.qclass())
            .ok_or(Failure::Other(ExchangeError::Invalid))?;
        Ok(Exchanged { packet, response })
    }
}

/// Hands each answer on `reader` to the query with its ID until the connection fails, the
/// server closes it, or nothing arrives for `idle` (an idle connection, or a server that
/// stopped answering: the waiters then retry on a new connection); then closes it.
async fn read_answers(reader: Reader, connection: Arc<Connection>, idle: Duration) {
    let mut reader = BufReader::new(reader);
    loop {
        // Waiting for the first byte is cancel-safe (it stays buffered); a frame once begun is
        // read whole or the connection is given up.
        match timeout(idle, reader.fill_buf()).await {
            Ok(Ok(buffered)) if !buffered.is_empty() => {}
            _ => break,
        }
        let frame = async {
            let len = usize::from(reader.read_u16().await?);
            let mut packet = vec![0u8; len];
            reader.read_exact(&mut packet).await?;
            Ok::<_, io::Error>(packet)
        };
        let Ok(Ok(packet)) = timeout(idle, frame).await else {
            break;
        };
        let Some(id) = packet.get(..2).map(|id| u16::from_be_bytes([id[0], id[1]])) else {
            continue;
        };
        // An ID nobody waits for (a query that timed out) is dropped.
        if let Some(waiter) = connection.pending().waiters.remove(&id) {
            let _ = waiter.send(packet);
        }
    }
    connection.close();
    let mut writer = connection.writer.lock().await;
    let _ = writer.shutdown().await;
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the server closed the connection",
    )
}
