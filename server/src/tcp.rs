//! DNS over TCP (RFC 7766): 2-byte length framing, pipelined queries answered in order, an idle
//! timeout, and a bound on open connections (past it, new connections are closed at once).
//! A name outside the zone that the cache cannot answer waits for the forwarder in place.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use clusterdns_zone::{Snapshot, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::forward::Forwarder;
use crate::handler::{handle, upstream_reply, Handled};
use crate::metrics::{DnsCounters, Family, Plugin, Proto};

/// Largest DNS message over TCP.
const MAX_MESSAGE: usize = u16::MAX as usize;

/// Accepts connections on `listener` until `stop` changes; each is served on its own task.
pub async fn serve(
    listener: TcpListener,
    store: Arc<ArcSwap<Snapshot>>,
    idle_timeout: Duration,
    connections: Arc<Semaphore>,
    counters: Arc<DnsCounters>,
    forwarder: Option<Forwarder>,
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
        let forwarder = forwarder.clone();
        let family = if peer.is_ipv6() {
            Family::V6
        } else {
            Family::V4
        };
        tokio::spawn(async move {
            let forwarder = forwarder.as_ref();
            connection(
                stream,
                store,
                idle_timeout,
                &counters,
                family,
                forwarder,
                stop,
            )
            .await;
            drop(permit);
        });
    }
}

/// Serves one connection until the peer closes it, it idles out, sends a bad frame, or the
/// server stops.
async fn connection(
    stream: TcpStream,
    store: Arc<ArcSwap<Snapshot>>,
    idle_timeout: Duration,
    counters: &DnsCounters,
    family: Family,
    forwarder: Option<&Forwarder>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.into_split();
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
        let handled = handle(
            &store.load(),
            packet,
            &mut out[2..],
            Transport::Tcp,
            forwarder,
        );
        let reply = match (handled, forwarder) {
            (Handled::Reply(reply), _) => reply,
            (Handled::Forward(parsed), Some(forwarder)) => {
                let answer = &mut out[2..];
                let Some(len) = forwarder
                    .resolve(&parsed, packet, answer, Transport::Tcp)
                    .await
                else {
                    return;
                };
                upstream_reply(answer, len, Plugin::Forward)
            }
            (Handled::Drop | Handled::Forward(_), _) => return,
        };
        counters.record(Proto::Tcp, family, reply.outcome, received_at.elapsed());
        out[..2].copy_from_slice(&(reply.len as u16).to_be_bytes());
        if writer.write_all(&out[..reply.len + 2]).await.is_err() {
            return;
        }
    }
}
