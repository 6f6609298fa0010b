//! DNS over TCP (RFC 7766): 2-byte length framing, an idle timeout, and a bound on open
//! connections (past it, new connections are closed at once). Pipelined queries the zone or the
//! cache answers are answered in order at once; one that must wait for an upstream is resolved
//! on its own task and answered when it can, out of order (RFC 7766 §6.2.1.1), so a slow upstream
//! never holds up the queries behind it: a node-local cache sends all its cluster queries over a
//! few such connections. At most [`MAX_FORWARDING`] wait per connection; past that, reading
//! pauses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use clusterdns_zone::{Snapshot, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Mutex, Semaphore};

use crate::chain::{Deferred, Handled, Router};
use crate::ops::metrics::{DnsCounters, Family, Proto};

/// Largest DNS message over TCP.
const MAX_MESSAGE: usize = u16::MAX as usize;
/// Queries of one connection waiting on upstreams at once.
pub const MAX_FORWARDING: usize = 64;

/// Accepts connections on `listener` until `stop` changes; each is served on its own task.
pub async fn serve(
    listener: TcpListener,
    store: Arc<ArcSwap<Snapshot>>,
    idle_timeout: Duration,
    connections: Arc<Semaphore>,
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
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        counters.connection_accepted();
        let store = store.clone();
        let stop = stop.clone();
        let counters = counters.clone();
        let router = router.clone();
        let family = if peer.is_ipv6() {
            Family::V6
        } else {
            Family::V4
        };
        tokio::spawn(async move {
            let client = Client { peer, family };
            connection(stream, store, idle_timeout, counters, client, router, stop).await;
            drop(permit);
        });
    }
}

/// The peer of a connection.
#[derive(Clone, Copy)]
struct Client {
    peer: SocketAddr,
    family: Family,
}

/// Serves one connection until the peer closes it, it idles out, sends a bad frame, or the
/// server stops; queries still waiting on upstreams then finish on their own tasks.
async fn connection(
    stream: TcpStream,
    store: Arc<ArcSwap<Snapshot>>,
    idle_timeout: Duration,
    counters: Arc<DnsCounters>,
    client: Client,
    router: Arc<ArcSwap<Router>>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let writer = Arc::new(Mutex::new(writer));
    let forwarding = Arc::new(Semaphore::new(MAX_FORWARDING));
    let mut reader = BufReader::new(reader);
    let mut query = vec![0u8; MAX_MESSAGE];
    let mut out = vec![0u8; MAX_MESSAGE + 2];
    loop {
        let read = async {
            let len = usize::from(reader.read_u16().await?);
            reader.read_exact(&mut query[..len]).await?;
            Ok::<usize, std::io::Error>(len)
        };
        let len = tokio::select! {
            read = tokio::time::timeout(idle_timeout, read) => match read {
                Ok(Ok(len)) => len,
                // Closed, reset, a length prefix larger than the data, or idle too long.
                _ => return,
            },
            _ = stop.changed() => return,
        };
        let received_at = Instant::now();
        let packet = &query[..len];
        let handled = router.load().handle(
            &store.load(),
            packet,
            &mut out[2..],
            Transport::Tcp,
            client.peer,
            received_at,
        );
        let reply = match handled {
            Handled::Reply(reply) => reply,
            Handled::Forward(deferred) => {
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
                    drop(permit);
                });
                continue;
            }
            Handled::Drop => return,
        };
        counters.record(
            Proto::Tcp,
            client.family,
            reply.outcome,
            received_at.elapsed(),
        );
        out[..2].copy_from_slice(&(reply.len as u16).to_be_bytes());
        if writer
            .lock()
            .await
            .write_all(&out[..reply.len + 2])
            .await
            .is_err()
        {
            return;
        }
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
        (self.counters).record(Proto::Tcp, self.client.family, reply.outcome, elapsed);
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
