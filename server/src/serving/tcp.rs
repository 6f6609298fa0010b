//! DNS over TCP (RFC 7766): 2-byte length framing, an idle timeout, a read timeout for a message
//! begun and not finished (a client that drips a query byte by byte is closed after it), and a
//! bound on open connections. At the bound, a new connection is not refused: the connection idle
//! the longest is closed to make room for it (RFC 7766 §6.2.3 lets a server close idle
//! connections under pressure), so a client holding many idle connections cannot lock others out.
//!
//! An idle connection costs a few KiB: its read buffer is small, its query buffer grows to the
//! message being read and shrinks back after a large one, and answers are made in a 64 KiB
//! scratch buffer of the thread (no await while it is held) and copied out at their size.
//!
//! Pipelined queries the zone or the cache answers are answered in order at once, and their
//! answers leave in one write while the next query is already read whole (a pipelining client's
//! queries arrive several to a read), so a busy connection makes one write a batch, not one a
//! query; one that must
//! wait for an upstream is resolved on its own task and answered when it can, out of order
//! (RFC 7766 §6.2.1.1), so a slow upstream never holds up the queries behind it: a node-local
//! cache sends all its cluster queries over a few such connections. At most [`MAX_FORWARDING`]
//! wait per connection; past that, reading pauses.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use clusterdns_zone::{Snapshot, Transport};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Mutex, Notify, OwnedSemaphorePermit, Semaphore};

use crate::chain::{Deferred, Handled, Router};
use crate::ops::metrics::{DnsCounters, Family, Proto, Sizes};
use crate::serving::pending::{Pending, TCP_WEIGHT};

/// Largest DNS message over TCP.
const MAX_MESSAGE: usize = u16::MAX as usize;
/// Queries of one connection waiting on upstreams at once.
pub const MAX_FORWARDING: usize = 64;
/// Bytes a connection reads from its socket at a time (several pipelined queries).
const READ_BUFFER: usize = 1024;
/// What a connection's query and answer buffers shrink back to after a larger message.
const KEEP_BUFFER: usize = 512;
/// Answers held for one write at most (bytes): past it they go out before the next query.
const FLUSH_AT: usize = 16 * 1024;
/// What a connection's answer buffer keeps between writes: a batch of `FLUSH_AT` grows it to this
/// by doubling, so the batches of a pipelining client reuse it rather than allocate each time.
const ANSWERS_KEPT: usize = 2 * FLUSH_AT;
/// How long a new connection at the bound waits for the one closed to make room for it.
const ROOM_WAIT: Duration = Duration::from_secs(1);

/// The TCP settings of the server (flags `--tcp-*`) and the bound it shares with UDP.
#[derive(Clone, Debug)]
pub struct TcpLimits {
    /// How long a connection may wait for the next query.
    pub idle: Duration,
    /// How long a query may take to arrive once its first byte has.
    pub read: Duration,
    /// How long an answer may take to be taken by the peer.
    pub write: Duration,
    /// The bound on queries waiting on upstreams (`--max-forward-pending`).
    pub pending: Arc<Pending>,
}

/// The open connections of the server (all listeners): the bound on them, and when each last
/// finished a message, to find the one idle the longest.
pub struct Connections {
    permits: Arc<Semaphore>,
    open: SyncMutex<HashMap<u64, Arc<Open>>>,
    next_id: AtomicU64,
    epoch: Instant,
}

/// One open connection, as [`Connections`] sees it.
struct Open {
    /// Milliseconds since the epoch when it last finished a message (or was accepted).
    last: AtomicU64,
    /// Told when the connection is to close to make room.
    close: Notify,
}

impl Connections {
    /// At most `limit` connections open at once.
    pub fn new(limit: usize) -> Arc<Connections> {
        Arc::new(Connections {
            permits: Arc::new(Semaphore::new(limit)),
            open: SyncMutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A place for a new connection: at once below the bound; at the bound, after the
    /// connection idle the longest has been told to close (`None` if none went in time).
    async fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                self.close_longest_idle();
                let wait = self.permits.clone().acquire_owned();
                tokio::time::timeout(ROOM_WAIT, wait).await.ok()?.ok()?
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let open = Arc::new(Open {
            last: AtomicU64::new(self.now()),
            close: Notify::new(),
        });
        if let Ok(mut map) = self.open.lock() {
            map.insert(id, open.clone());
        }
        Some(Admitted {
            connections: self.clone(),
            id,
            open,
            _permit: permit,
        })
    }

    /// Tells the connection that finished a message the longest ago to close.
    fn close_longest_idle(&self) {
        let Ok(map) = self.open.lock() else {
            return;
        };
        let oldest = map
            .values()
            .min_by_key(|open| open.last.load(Ordering::Relaxed));
        if let Some(open) = oldest {
            // notify_one keeps the signal if the connection is not waiting on it right now.
            open.close.notify_one();
        }
    }
}

/// A connection's place among the open ones, given back when dropped.
struct Admitted {
    connections: Arc<Connections>,
    id: u64,
    open: Arc<Open>,
    _permit: OwnedSemaphorePermit,
}

impl Admitted {
    /// Notes that a message was just finished.
    fn touch(&self) {
        (self.open.last).store(self.connections.now(), Ordering::Relaxed);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut map) = self.connections.open.lock() {
            map.remove(&self.id);
        }
    }
}

thread_local! {
    /// Where a connection's answer is made before it is copied out at its size (never held
    /// across an await).
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; MAX_MESSAGE + 2]);
}

/// Accepts connections on `listener` until `stop` changes; each is served on its own task.
pub async fn serve(
    listener: TcpListener,
    store: Arc<ArcSwap<Snapshot>>,
    limits: TcpLimits,
    connections: Arc<Connections>,
    counters: Arc<DnsCounters>,
    router: Arc<ArcSwap<Router>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let Ok((stream, peer)) = accepted else {
            // Out of file descriptors or a connection reset before accept: try again shortly.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let store = store.clone();
        let stop = stop.clone();
        let counters = counters.clone();
        let router = router.clone();
        let connections = connections.clone();
        let limits = limits.clone();
        let family = if peer.is_ipv6() {
            Family::V6
        } else {
            Family::V4
        };
        tokio::spawn(async move {
            let Some(admitted) = connections.admit().await else {
                return;
            };
            counters.connection_accepted();
            let client = Client { peer, family };
            let served = Served {
                store,
                limits,
                counters,
                client,
                router,
                admitted,
            };
            connection(stream, served, stop).await;
        });
    }
}

/// The peer of a connection.
#[derive(Clone, Copy)]
struct Client {
    peer: SocketAddr,
    family: Family,
}

/// What a connection is served with.
struct Served {
    store: Arc<ArcSwap<Snapshot>>,
    limits: TcpLimits,
    counters: Arc<DnsCounters>,
    client: Client,
    router: Arc<ArcSwap<Router>>,
    admitted: Admitted,
}

/// Serves one connection until the peer closes it, it idles out, is too slow sending a query,
/// sends a bad frame, is closed to make room, or the server stops; queries still waiting on
/// upstreams then finish on their own tasks.
async fn connection(stream: TcpStream, served: Served, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let writer = Arc::new(Mutex::new(writer));
    let forwarding = Arc::new(Semaphore::new(MAX_FORWARDING));
    let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
    let mut query = Vec::new();
    let mut answer = Vec::new();
    let Served {
        store,
        limits,
        counters,
        client,
        router,
        admitted,
    } = served;
    loop {
        // Answers wait while the next query is already read whole (a pipelining client's), and
        // go out together in one write when it is not, or when they add up.
        let hold = answer.len() < FLUSH_AT && query_buffered(reader.buffer());
        if !hold && !flush(&writer, &mut answer, limits.write).await {
            return;
        }
        // Idle until the first byte of the next query, then `read` for the rest of it.
        let next = async {
            match tokio::time::timeout(limits.idle, reader.fill_buf()).await {
                Ok(Ok(bytes)) if !bytes.is_empty() => {}
                // Closed, reset or idle too long.
                _ => return None,
            }
            let read = async {
                let len = usize::from(reader.read_u16().await?);
                query.resize(len, 0);
                reader.read_exact(&mut query[..len]).await?;
                Ok::<usize, std::io::Error>(len)
            };
            // A length prefix larger than the data, or a query too slow to arrive.
            tokio::time::timeout(limits.read, read).await.ok()?.ok()
        };
        let len = tokio::select! {
            next = next => match next {
                Some(len) => len,
                None => return,
            },
            // Answers held for a pipelined query still go out.
            _ = admitted.open.close.notified() => {
                flush(&writer, &mut answer, limits.write).await;
                return;
            }
            _ = stop.changed() => {
                flush(&writer, &mut answer, limits.write).await;
                return;
            }
        };
        admitted.touch();
        let received_at = Instant::now();
        let packet = &query[..len];
        let handled = SCRATCH.with(|scratch| {
            let mut out = scratch.borrow_mut();
            let handled = router.load().handle(
                &store.load(),
                packet,
                &mut out[2..],
                Transport::Tcp,
                client.peer,
                received_at,
            );
            if let Handled::Reply(reply) = &handled {
                out[..2].copy_from_slice(&(reply.len as u16).to_be_bytes());
                answer.extend_from_slice(&out[..reply.len + 2]);
            }
            handled
        });
        let reply = match handled {
            Handled::Reply(reply) => reply,
            Handled::Forward(deferred) => {
                let Some(place) = limits.pending.admit(&deferred, TCP_WEIGHT) else {
                    // Too many queries wait on upstreams already: REFUSED at once.
                    let mut refused = [0u8; 2 + 600];
                    let Some(reply) = deferred.refuse(packet, &mut refused[2..], Transport::Tcp)
                    else {
                        return;
                    };
                    refused[..2].copy_from_slice(&(reply.len as u16).to_be_bytes());
                    answer.extend_from_slice(&refused[..reply.len + 2]);
                    let sizes = Sizes {
                        request: packet.len(),
                        response: reply.len,
                    };
                    let outcome = reply.outcome;
                    counters.record(Proto::Tcp, client.family, outcome, sizes, Duration::ZERO);
                    continue;
                };
                // Waiting for a forwarding place must not hold back answers already made.
                if !flush(&writer, &mut answer, limits.write).await {
                    return;
                }
                let Ok(permit) = forwarding.clone().acquire_owned().await else {
                    return;
                };
                let waiting = Forwarding {
                    deferred,
                    packet: packet.to_vec(),
                    writer: writer.clone(),
                    counters: counters.clone(),
                    client,
                    received_at,
                };
                tokio::spawn(async move {
                    waiting.answer().await;
                    drop((permit, place));
                });
                shrink(&mut query, KEEP_BUFFER * 8);
                continue;
            }
            Handled::Drop => {
                // The connection closes; what was answered before still goes out.
                flush(&writer, &mut answer, limits.write).await;
                return;
            }
        };
        let sizes = Sizes {
            request: packet.len(),
            response: reply.len,
        };
        counters.record(
            Proto::Tcp,
            client.family,
            reply.outcome,
            sizes,
            received_at.elapsed(),
        );
        shrink(&mut query, KEEP_BUFFER * 8);
    }
}

/// Whether `buffered` (what the connection's reader holds) starts with a whole framed query.
fn query_buffered(buffered: &[u8]) -> bool {
    match buffered {
        [high, low, rest @ ..] => rest.len() >= usize::from(u16::from_be_bytes([*high, *low])),
        _ => false,
    }
}

/// Writes a framed answer, waiting at most `limit` for the peer to take it (a peer that reads
/// no answers is closed after it); false when the connection is to close.
async fn send(writer: &Mutex<OwnedWriteHalf>, answer: &[u8], limit: Duration) -> bool {
    let write = async { writer.lock().await.write_all(answer).await };
    matches!(tokio::time::timeout(limit, write).await, Ok(Ok(())))
}

/// Sends the answers held in `answers`, if any, and empties it; false when the connection is to
/// close.
async fn flush(writer: &Mutex<OwnedWriteHalf>, answers: &mut Vec<u8>, limit: Duration) -> bool {
    if answers.is_empty() {
        return true;
    }
    let sent = send(writer, answers, limit).await;
    answers.clear();
    shrink(answers, ANSWERS_KEPT);
    sent
}

/// Gives back the memory of a buffer a large message grew past `most`, so an idle connection
/// stays small.
fn shrink(buffer: &mut Vec<u8>, most: usize) {
    if buffer.capacity() > most {
        buffer.clear();
        buffer.shrink_to(KEEP_BUFFER);
    }
}

/// A query of a connection that waits on upstreams, on its own task.
struct Forwarding {
    deferred: Box<Deferred>,
    packet: Vec<u8>,
    writer: Arc<Mutex<OwnedWriteHalf>>,
    counters: Arc<DnsCounters>,
    client: Client,
    received_at: Instant,
}

impl Forwarding {
    /// Resolves the query and writes the answer, whole, between the connection's other answers.
    async fn answer(self) {
        let mut out = vec![0u8; MAX_MESSAGE + 2];
        let answer = &mut out[2..];
        let resolved = self.deferred.resolve(
            &self.packet,
            answer,
            Transport::Tcp,
            self.client.peer,
            self.received_at,
        );
        let Some(reply) = resolved.await else {
            return;
        };
        let elapsed = self.received_at.elapsed();
        let sizes = Sizes {
            request: self.packet.len(),
            response: reply.len,
        };
        (self.counters).record(
            Proto::Tcp,
            self.client.family,
            reply.outcome,
            sizes,
            elapsed,
        );
        out[..2].copy_from_slice(&(reply.len as u16).to_be_bytes());
        // The peer may be gone by now: nothing to do about a failed write.
        let _ = self
            .writer
            .lock()
            .await
            .write_all(&out[..reply.len + 2])
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::query_buffered;

    #[test]
    fn a_whole_framed_query_is_seen_in_the_buffer() {
        assert!(!query_buffered(&[]));
        assert!(!query_buffered(&[0]));
        assert!(!query_buffered(&[0, 3, 1, 2]));
        assert!(query_buffered(&[0, 3, 1, 2, 3]));
        assert!(query_buffered(&[0, 0]));
        assert!(query_buffered(&[0, 2, 1, 2, 0, 9]));
    }
}
