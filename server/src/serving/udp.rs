//! The UDP worker: a dedicated thread per socket that receives a batch of queries with
//! `recvmmsg`, answers each from the current snapshot into its own preallocated buffer and sends
//! the batch with `sendmmsg`. No allocation, no lock and no syscall per query beyond the batched
//! receive and send; the snapshot is read through an `arc_swap::Cache`, which costs one atomic
//! load when nothing changed. Each worker counts its queries in its own [`DnsCounters`], and reads
//! the clock twice per batch: every query of a batch is recorded with the batch's time in the
//! server, from the receive returning to the answers being ready.
//!
//! A name outside the zone that the forwarder's cache answers is served in the batch like any
//! other; on a miss the query is copied to a task on the forwarder's runtime, which sends the
//! upstream's answer from a clone of the worker's socket when it comes, without blocking the
//! batch.
//!
//! When told to stop, a worker on a specific address stops taking new queries
//! ([`handover::stop_receiving`]); every worker answers the ones already queued on its socket,
//! and returns.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Cache};
use clusterdns_zone::{Snapshot, Transport};
use tokio::runtime::Handle;

use super::handover;
use crate::chain::{Deferred, Handled, Router};
use crate::ops::metrics::{DnsCounters, Family, Outcome, Plugin, Proto, Sizes};
use crate::serving::pending::{Pending, PendingPlace};

/// Queries received (and answers sent) per system call at most.
const BATCH: usize = 32;
// The prefetch looks at a whole batch.
const _: () = assert!(BATCH <= clusterdns_zone::snapshot::PREFETCH_BATCH);
/// Receive buffer per query: larger queries are truncated by the kernel and answered FORMERR.
const QUERY_BUFFER: usize = 4096;
/// How often a blocked worker looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Preallocated buffers and message headers for one batch.
struct Batch {
    queries: Vec<u8>,
    answers: Vec<u8>,
    answer_size: usize,
    peers: Vec<libc::sockaddr_storage>,
    query_iov: Vec<libc::iovec>,
    answer_iov: Vec<libc::iovec>,
    query_headers: Vec<libc::mmsghdr>,
    answer_headers: Vec<libc::mmsghdr>,
    /// What each prepared answer is counted as, its client's address family, and the sizes.
    outcomes: Vec<(Outcome, Family, Sizes)>,
}

impl Batch {
    fn new(answer_size: usize) -> Box<Self> {
        let mut batch = Box::new(Batch {
            queries: vec![0; BATCH * QUERY_BUFFER],
            answers: vec![0; BATCH * answer_size],
            answer_size,
            // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs for which all-zero
            // is a valid value.
            peers: vec![unsafe { zeroed() }; BATCH],
            query_iov: vec![unsafe { zeroed() }; BATCH],
            answer_iov: vec![unsafe { zeroed() }; BATCH],
            query_headers: vec![unsafe { zeroed() }; BATCH],
            answer_headers: vec![unsafe { zeroed() }; BATCH],
            outcomes: vec![
                (
                    Outcome {
                        qtype: 0,
                        rcode: 0,
                        zone: 0,
                        plugin: Plugin::Server,
                        dnssec_ok: false,
                    },
                    Family::V4,
                    Sizes::default(),
                );
                BATCH
            ],
        });
        for i in 0..BATCH {
            batch.query_iov[i] = libc::iovec {
                iov_base: batch.queries[i * QUERY_BUFFER..].as_mut_ptr().cast(),
                iov_len: QUERY_BUFFER,
            };
            let iov: *mut libc::iovec = &mut batch.query_iov[i];
            let peer: *mut libc::sockaddr_storage = &mut batch.peers[i];
            let header = &mut batch.query_headers[i].msg_hdr;
            header.msg_iov = iov;
            header.msg_iovlen = 1;
            header.msg_name = peer.cast();
            header.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
        }
        batch
    }
}

/// The `i`th query the last receive filled into `queries`, as its `header` says.
fn query_at<'a>(queries: &'a [u8], header: &libc::mmsghdr, i: usize) -> &'a [u8] {
    let len = (header.msg_len as usize).min(QUERY_BUFFER);
    &queries[i * QUERY_BUFFER..i * QUERY_BUFFER + len]
}

/// What a UDP worker needs to forward names outside the zone.
#[derive(Clone)]
pub struct UdpForward {
    /// The runtime forwarded queries wait on.
    pub runtime: Handle,
    /// Counters of forwarded replies, written by many tasks (so `shared`).
    pub counters: Arc<DnsCounters>,
    /// The bound on queries waiting on upstreams.
    pub pending: Arc<Pending>,
}

/// A forwarded query's way back: a clone of the worker's socket and the client's address.
struct ReplyPath {
    socket: Arc<UdpSocket>,
    peer: libc::sockaddr_storage,
    peer_len: libc::socklen_t,
    family: Family,
    client: SocketAddr,
}

impl UdpForward {
    /// Forwards the query on the runtime and sends the answer back along `path`.
    /// `place` is its place among the queries waiting on upstreams.
    fn spawn(
        &self,
        (deferred, place): (Box<Deferred>, PendingPlace),
        packet: Vec<u8>,
        path: ReplyPath,
        transport: Transport,
        received_at: Instant,
    ) {
        let counters = self.counters.clone();
        self.runtime.spawn(async move {
            let _place = place;
            let mut out = vec![0u8; response_room(transport)];
            let resolved = deferred.resolve(&packet, &mut out, transport, path.client, received_at);
            let Some(reply) = resolved.await else {
                return;
            };
            let len = reply.len;
            // SAFETY: the address is the one recvmmsg filled in, with its length; the buffer
            // lives across the call. MSG_DONTWAIT: a full send buffer drops the answer (the
            // client retries) rather than blocking the runtime.
            let sent = unsafe {
                libc::sendto(
                    path.socket.as_raw_fd(),
                    out.as_ptr().cast(),
                    len,
                    libc::MSG_DONTWAIT,
                    (&path.peer as *const libc::sockaddr_storage).cast(),
                    path.peer_len,
                )
            };
            if sent >= 0 {
                let sizes = Sizes {
                    request: packet.len(),
                    response: len,
                };
                counters.record(
                    Proto::Udp,
                    path.family,
                    reply.outcome,
                    sizes,
                    received_at.elapsed(),
                );
            }
        });
    }
}

/// The largest UDP response for `transport`.
fn response_room(transport: Transport) -> usize {
    match transport {
        Transport::Udp { max_payload } => usize::from(max_payload).max(512),
        Transport::Tcp => usize::from(u16::MAX),
    }
}

/// What a UDP worker answers from: the zone and its port's server blocks.
pub struct Sources {
    /// The published zone.
    pub store: Arc<ArcSwap<Snapshot>>,
    /// The port's router (swapped by a Corefile reload).
    pub router: Arc<ArcSwap<Router>>,
}

/// Serves `socket` until `stop` is set; queries to forward are resolved on `forward`'s runtime.
pub fn serve(
    socket: UdpSocket,
    sources: Sources,
    max_udp_size: u16,
    counters: Arc<DnsCounters>,
    forward: UdpForward,
    stop: Arc<AtomicBool>,
) {
    if let Err(error) = socket.set_read_timeout(Some(STOP_POLL)) {
        tracing::error!(%error, "udp: cannot set the receive timeout; worker not started");
        return;
    }
    let reply_socket = match socket.try_clone() {
        Ok(clone) => Arc::new(clone),
        Err(error) => {
            tracing::error!(%error, "udp: cannot clone the socket; worker not started");
            return;
        }
    };
    let fd = socket.as_raw_fd();
    let mut cache = Cache::new(sources.store);
    let mut routers = Cache::new(sources.router);
    let mut batch = Batch::new(usize::from(max_udp_size));
    let transport = Transport::Udp {
        max_payload: max_udp_size,
    };
    let mut errors_logged = 0u32;
    let mut draining = false;
    loop {
        if !draining && stop.load(Ordering::Relaxed) {
            // Leave: no new queries for this socket (a successor's take them), then answer
            // what is already queued and close.
            draining = true;
            let stopped = socket
                .local_addr()
                .and_then(|local| handover::stop_receiving(&socket, local));
            if let Err(error) = stopped {
                tracing::warn!(%error, "udp: cannot stop receiving; queued queries may be lost");
            }
        }
        for header in batch.query_headers.iter_mut() {
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
        }
        let flags = if draining {
            libc::MSG_DONTWAIT
        } else {
            libc::MSG_WAITFORONE
        };
        // SAFETY: the headers point into `batch`, which outlives the call and is not moved.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                batch.query_headers.as_mut_ptr(),
                BATCH as u32,
                flags as _,
                std::ptr::null_mut(),
            )
        };
        if received <= 0 && draining {
            break;
        }
        if received < 0 {
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => {}
                _ if errors_logged < 10 => {
                    errors_logged += 1;
                    tracing::warn!(%error, "udp: receive failed");
                }
                _ => {}
            }
            continue;
        }
        let received_at = Instant::now();
        let snapshot = cache.load();
        let router = routers.load();
        let headers = batch.query_headers[..received as usize].iter().enumerate();
        snapshot.prefetch(headers.map(|(i, header)| query_at(&batch.queries, header, i)));
        let mut ready = 0usize;
        for i in 0..received as usize {
            let query = query_at(&batch.queries, &batch.query_headers[i], i);
            let len = query.len();
            let size = batch.answer_size;
            let out = &mut batch.answers[ready * size..(ready + 1) * size];
            let family = match batch.peers[i].ss_family as i32 {
                libc::AF_INET6 => Family::V6,
                _ => Family::V4,
            };
            let client = peer_addr(&batch.peers[i]);
            let reply = match router.handle(snapshot, query, out, transport, client, received_at) {
                Handled::Reply(reply) => reply,
                Handled::Drop => continue,
                Handled::Forward(deferred) => match forward.pending.admit(&deferred, 1) {
                    Some(place) => {
                        let path = ReplyPath {
                            socket: reply_socket.clone(),
                            peer: batch.peers[i],
                            peer_len: batch.query_headers[i].msg_hdr.msg_namelen,
                            family,
                            client,
                        };
                        let waiting = (deferred, place);
                        forward.spawn(waiting, query.to_vec(), path, transport, received_at);
                        continue;
                    }
                    // Too many queries wait on upstreams already: REFUSED at once.
                    None => match deferred.refuse(query, out, transport) {
                        Some(reply) => reply,
                        None => continue,
                    },
                },
            };
            batch.answer_iov[ready] = libc::iovec {
                iov_base: out.as_mut_ptr().cast(),
                iov_len: reply.len,
            };
            let sizes = Sizes {
                request: len,
                response: reply.len,
            };
            batch.outcomes[ready] = (reply.outcome, family, sizes);
            let iov: *mut libc::iovec = &mut batch.answer_iov[ready];
            let peer: *mut libc::sockaddr_storage = &mut batch.peers[i];
            let namelen = batch.query_headers[i].msg_hdr.msg_namelen;
            let header = &mut batch.answer_headers[ready].msg_hdr;
            header.msg_iov = iov;
            header.msg_iovlen = 1;
            header.msg_name = peer.cast();
            header.msg_namelen = namelen;
            ready += 1;
        }
        let elapsed = received_at.elapsed();
        for &(outcome, family, sizes) in &batch.outcomes[..ready] {
            counters.record(Proto::Udp, family, outcome, sizes, elapsed);
        }
        send_all(fd, &mut batch.answer_headers[..ready]);
    }
}

/// The client address recvmmsg filled in (the unspecified address for a family it cannot be).
fn peer_addr(peer: &libc::sockaddr_storage) -> SocketAddr {
    match i32::from(peer.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET, and sockaddr_storage is large
            // and aligned enough for it.
            let v4 =
                unsafe { &*(peer as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            SocketAddr::from((ip, u16::from_be(v4.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 =
                unsafe { &*(peer as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr);
            SocketAddr::from((ip, u16::from_be(v6.sin6_port)))
        }
        _ => SocketAddr::from(([0, 0, 0, 0], 0)),
    }
}

/// Sends every prepared answer, resuming after partial sends; a failed send drops that answer.
fn send_all(fd: i32, headers: &mut [libc::mmsghdr]) {
    let mut sent = 0usize;
    while sent < headers.len() {
        let rest = &mut headers[sent..];
        // SAFETY: each header points at a buffer and address inside the worker's batch.
        let n = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as u32, 0) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The first unsent answer cannot go (e.g. an unreachable peer); skip it.
            sent += 1;
        } else {
            sent += n as usize;
        }
    }
}
