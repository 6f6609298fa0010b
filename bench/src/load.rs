//! The load generator's engine: one thread drives S connected UDP sockets, each with a bounded
//! number of queries in flight, sending with `sendmmsg` and receiving with `recvmmsg` in
//! batches, matching replies to queries by socket and ID, and counting queries lost after a
//! timeout. Everything it needs is allocated before the clock starts: a query is sent from the
//! pre-encoded bytes of a [`QueryFile`] with its ID in a separate two-byte iovec, so nothing is
//! copied, encoded or allocated per query.
//!
//! [`respond`] is the other end: a trivial server that answers every query with its own bytes
//! (QR set), the fastest possible server, to measure the generator's own ceiling.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::latency::Histogram;
use crate::queryfile::QueryFile;

/// Largest reply kept (bigger ones are cut, which does not matter for ID and rcode).
const REPLY_BUFFER: usize = 4096;
/// How often in-flight queries are checked for their timeout.
const TIMEOUT_SCAN: Duration = Duration::from_millis(10);
/// Longest wait in `poll` when there is nothing to do.
const IDLE_WAIT_MS: i32 = 1;
/// Socket buffer size asked for (send and receive).
const SOCKET_BUFFER: libc::c_int = 4 << 20;
/// Names of the response codes, by value.
pub const RCODE_NAMES: [&str; 16] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE", "RCODE11", "RCODE12", "RCODE13", "RCODE14", "RCODE15",
];

/// How to load a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadConfig {
    /// The server.
    pub server: SocketAddr,
    /// UDP sockets (each its own source port).
    pub sockets: usize,
    /// Queries in flight per socket at most (rounded up to a power of two, at most 4096).
    pub outstanding: usize,
    /// Queries per `sendmmsg`/`recvmmsg` call at most.
    pub batch: usize,
    /// How long to send.
    pub duration: Duration,
    /// When a query without reply counts as lost.
    pub timeout: Duration,
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Queries sent.
    pub sent: u64,
    /// Replies matched to a query in flight.
    pub completed: u64,
    /// Queries without reply within the timeout.
    pub lost: u64,
    /// Replies that matched no query in flight (after their timeout, or never sent).
    pub unexpected: u64,
    /// Replies shorter than a DNS header.
    pub malformed: u64,
    /// Replies by response code.
    pub rcodes: [u64; 16],
    /// Latency of the completed queries.
    pub latency: Histogram,
    /// How long queries were sent.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Completed queries per second of sending.
    pub fn qps(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The report as one JSON object; latencies in microseconds.
    pub fn to_json(&self, label: &str) -> Value {
        let us = |ns: u64| ns as f64 / 1e3;
        let rcodes: serde_json::Map<String, Value> = RCODE_NAMES
            .iter()
            .zip(self.rcodes)
            .filter(|(_, count)| *count > 0)
            .map(|(name, count)| ((*name).to_owned(), json!(count)))
            .collect();
        json!({
            "label": label,
            "sent": self.sent,
            "completed": self.completed,
            "lost": self.lost,
            "unexpected": self.unexpected,
            "malformed": self.malformed,
            "seconds": self.elapsed.as_secs_f64(),
            "qps": self.qps().round(),
            "p50_us": us(self.latency.quantile(0.5)),
            "p99_us": us(self.latency.quantile(0.99)),
            "p999_us": us(self.latency.quantile(0.999)),
            "max_us": us(self.latency.max()),
            "mean_us": us(self.latency.mean()),
            "rcodes": rcodes,
        })
    }

    /// The report as a few lines of text.
    pub fn to_text(&self) -> String {
        let ms = |ns: u64| ns as f64 / 1e6;
        format!(
            "  sent {}, completed {}, lost {}, unexpected {}, malformed {}\n  \
             qps {:.0} over {:.2} s\n  \
             latency ms: p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}\n  \
             rcodes: {}\n",
            self.sent,
            self.completed,
            self.lost,
            self.unexpected,
            self.malformed,
            self.qps(),
            self.elapsed.as_secs_f64(),
            ms(self.latency.quantile(0.5)),
            ms(self.latency.quantile(0.99)),
            ms(self.latency.quantile(0.999)),
            ms(self.latency.max()),
            ms(self.latency.mean()),
            rcode_list(&self.rcodes)
        )
    }
}

/// How many messages a `sendmmsg` that returned `result` handed to the kernel: none when its
/// buffer was full or the server's port was closed (an ICMP error came back), which a load
/// generator rides out; any other error stops it.
pub(crate) fn taken(result: libc::c_int) -> io::Result<usize> {
    if result >= 0 {
        return Ok(result as usize);
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::ENOBUFS) | Some(libc::ECONNREFUSED) => Ok(0),
        _ => Err(error),
    }
}

/// The response codes seen, as `NOERROR 5, REFUSED 2`.
pub(crate) fn rcode_list(rcodes: &[u64; 16]) -> String {
    let seen: Vec<String> = RCODE_NAMES
        .iter()
        .zip(rcodes)
        .filter(|(_, count)| **count > 0)
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    seen.join(", ")
}

/// A query in flight.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    id: u16,
    live: bool,
    sent_ns: u64,
}

/// One socket's state and its preallocated batch buffers.
struct Flow {
    socket: UdpSocket,
    slots: Vec<Slot>,
    free: Vec<u16>,
    /// ID = generation << slot_bits | slot.
    slot_bits: u32,
    generation: u16,
    ids: Vec<[u8; 2]>,
    send_iov: Vec<[libc::iovec; 2]>,
    send_msgs: Vec<libc::mmsghdr>,
    send_slots: Vec<u16>,
    replies: Replies,
}

/// Room for a batch of replies of at most `size` bytes each (longer ones are cut), received
/// with one `recvmmsg`; allocated once.
pub(crate) struct Replies {
    bytes: Vec<u8>,
    /// One iovec per reply, into `bytes`: never read, only kept alive, as `msgs` point at them.
    _iov: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    size: usize,
}

impl Replies {
    /// Room for `batch` replies of `size` bytes.
    pub(crate) fn new(batch: usize, size: usize) -> Self {
        let mut bytes = vec![0u8; batch * size];
        let mut iov: Vec<libc::iovec> = bytes
            .chunks_mut(size)
            .map(|chunk| libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: size,
            })
            .collect();
        let mut msgs = vec![empty_mmsghdr(); batch];
        for (msg, iov) in msgs.iter_mut().zip(iov.iter_mut()) {
            msg.msg_hdr.msg_iov = iov;
            msg.msg_hdr.msg_iovlen = 1;
        }
        // Moving the vectors into the struct keeps their heap buffers where the pointers say.
        Replies {
            bytes,
            _iov: iov,
            msgs,
            size,
        }
    }

    /// Receives up to a batch on `fd` without waiting; how many arrived (none when nothing
    /// waits or the server's port is closed).
    pub(crate) fn receive(&mut self, fd: std::os::fd::RawFd) -> io::Result<usize> {
        for msg in &mut self.msgs {
            msg.msg_len = 0;
        }
        // SAFETY: each header points at its own `size` bytes of `bytes` (through `iov`), which
        // live as long as `self`; no address or control data is asked for.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                self.msgs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            let error = io::Error::last_os_error();
            return match error.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::ECONNREFUSED) => Ok(0),
                _ => Err(error),
            };
        }
        Ok(got as usize)
    }

    /// Reply `k` of the last receive.
    pub(crate) fn get(&self, k: usize) -> &[u8] {
        let len = (self.msgs[k].msg_len as usize).min(self.size);
        &self.bytes[k * self.size..k * self.size + len]
    }
}

/// The two iovecs of a query sent from a [`QueryFile`]: its ID (`id`), then the rest of its
/// pre-encoded bytes (`rest`), so nothing is copied.
pub(crate) fn query_iov(id: &mut [u8; 2], rest: &[u8]) -> [libc::iovec; 2] {
    [
        libc::iovec {
            iov_base: id.as_mut_ptr().cast(),
            iov_len: 2,
        },
        libc::iovec {
            iov_base: rest.as_ptr().cast_mut().cast(),
            iov_len: rest.len(),
        },
    ]
}

/// A zeroed `mmsghdr` (a plain C struct of integers and pointers).
pub(crate) fn empty_mmsghdr() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain old data; all-zero is a valid (empty) value.
    unsafe { std::mem::zeroed() }
}

/// Sets a socket buffer option, ignoring failure (the kernel caps it; the default still works).
fn set_buffer(socket: &UdpSocket, option: libc::c_int) {
    let size = SOCKET_BUFFER;
    // SAFETY: a valid fd, option and pointer to an int of the size given.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// A connected, non-blocking UDP socket towards `server` with large buffers.
pub(crate) fn connected_socket(server: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().map_err(io::Error::other)?
    } else {
        "[::]:0".parse().map_err(io::Error::other)?
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(server)?;
    socket.set_nonblocking(true)?;
    set_buffer(&socket, libc::SO_RCVBUF);
    set_buffer(&socket, libc::SO_SNDBUF);
    Ok(socket)
}

impl Flow {
    fn new(server: SocketAddr, outstanding: usize, batch: usize) -> io::Result<Self> {
        let slots = outstanding.clamp(1, 4096).next_power_of_two();
        Ok(Flow {
            socket: connected_socket(server)?,
            slots: vec![Slot::default(); slots],
            free: (0..slots as u16).rev().collect(),
            slot_bits: slots.trailing_zeros(),
            generation: 0,
            ids: vec![[0; 2]; batch],
            send_iov: vec![
                [libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                }; 2];
                batch
            ],
            send_msgs: vec![empty_mmsghdr(); batch],
            send_slots: vec![0; batch],
            replies: Replies::new(batch, REPLY_BUFFER),
        })
    }

    /// Queries in flight.
    fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Sends up to a batch of queries, from `next` on (wrapping around the file); returns how
    /// many were sent.
    fn send(&mut self, queries: &QueryFile, next: &mut usize, now_ns: u64) -> io::Result<usize> {
        let n = self.free.len().min(self.send_msgs.len());
        if n == 0 {
            return Ok(0);
        }
        let mask = (1u32 << self.slot_bits) - 1;
        for k in 0..n {
            let slot = self.free.pop().unwrap_or_default();
            self.generation = self.generation.wrapping_add(1);
            let id = ((u32::from(self.generation) << self.slot_bits) | u32::from(slot)) as u16;
            debug_assert_eq!(u32::from(id) & mask, u32::from(slot));
            self.send_slots[k] = slot;
            self.slots[usize::from(slot)] = Slot {
                id,
                live: true,
                sent_ns: now_ns,
            };
            self.ids[k] = id.to_be_bytes();
            let rest = queries.after_id(*next);
            *next += 1;
            if *next == queries.len() {
                *next = 0;
            }
            self.send_iov[k] = query_iov(&mut self.ids[k], rest);
            let msg = &mut self.send_msgs[k].msg_hdr;
            msg.msg_iov = self.send_iov[k].as_mut_ptr();
            msg.msg_iovlen = 2;
        }
        // SAFETY: the first n headers point at iovecs and bytes that live until the call
        // returns (`ids`, `send_iov`, the query file); the socket is connected, so no address.
        let sent = unsafe {
            libc::sendmmsg(
                self.socket.as_raw_fd(),
                self.send_msgs.as_mut_ptr(),
                n as libc::c_uint,
                0,
            )
        };
        let sent = taken(sent)?;
        // Queries the kernel did not take go back to the free list.
        for k in sent..n {
            let slot = self.send_slots[k];
            self.slots[usize::from(slot)].live = false;
            self.free.push(slot);
        }
        Ok(sent)
    }

    /// Receives up to a batch of replies and matches them; returns how many arrived.
    fn receive(&mut self, report: &mut LoadReport, now_ns: u64) -> io::Result<usize> {
        let got = self.replies.receive(self.socket.as_raw_fd())?;
        let mask = (1usize << self.slot_bits) - 1;
        for k in 0..got {
            let reply = self.replies.get(k);
            if reply.len() < 12 {
                report.malformed += 1;
                continue;
            }
            let id = u16::from_be_bytes([reply[0], reply[1]]);
            let index = usize::from(id) & mask;
            let slot = &mut self.slots[index];
            if !slot.live || slot.id != id {
                report.unexpected += 1;
                continue;
            }
            slot.live = false;
            self.free.push(index as u16);
            report.completed += 1;
            report.rcodes[usize::from(reply[3] & 0x0F)] += 1;
            report.latency.record(now_ns.saturating_sub(slot.sent_ns));
        }
        Ok(got)
    }

    /// Gives up on queries in flight for longer than `timeout_ns`.
    fn expire(&mut self, report: &mut LoadReport, now_ns: u64, timeout_ns: u64) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if slot.live && now_ns.saturating_sub(slot.sent_ns) >= timeout_ns {
                slot.live = false;
                self.free.push(index as u16);
                report.lost += 1;
            }
        }
    }
}

/// Sends `queries` (in file order, wrapping around) to the server for `config.duration`, then
/// waits for the replies still due (at most the timeout), and reports.
pub fn run(config: &LoadConfig, queries: &QueryFile) -> io::Result<LoadReport> {
    if queries.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the query file holds no query",
        ));
    }
    let batch = config.batch.clamp(1, 1024);
    let mut flows = (0..config.sockets.max(1))
        .map(|_| Flow::new(config.server, config.outstanding, batch))
        .collect::<io::Result<Vec<Flow>>>()?;
    let mut pollfds: Vec<libc::pollfd> = flows
        .iter()
        .map(|flow| libc::pollfd {
            fd: flow.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut report = LoadReport::default();
    let timeout_ns = config.timeout.as_nanos() as u64;
    let duration_ns = config.duration.as_nanos() as u64;
    let scan_ns = TIMEOUT_SCAN.as_nanos() as u64;
    let mut next = 0usize;
    let start = Instant::now();
    let mut last_scan = 0u64;
    let mut sending = true;
    loop {
        let now = start.elapsed().as_nanos() as u64;
        if sending && now >= duration_ns {
            sending = false;
            report.elapsed = start.elapsed();
        }
        let mut busy = false;
        for flow in &mut flows {
            let now = start.elapsed().as_nanos() as u64;
            busy |= flow.receive(&mut report, now)? > 0;
            if sending {
                let sent = flow.send(queries, &mut next, now)?;
                report.sent += sent as u64;
                busy |= sent > 0;
            }
        }
        if now.saturating_sub(last_scan) >= scan_ns {
            last_scan = now;
            for flow in &mut flows {
                flow.expire(&mut report, now, timeout_ns);
            }
        }
        if !sending && flows.iter().all(|flow| flow.in_flight() == 0) {
            break;
        }
        if !busy {
            // SAFETY: `pollfds` is a valid array of that many pollfd structs.
            unsafe {
                libc::poll(
                    pollfds.as_mut_ptr(),
                    pollfds.len() as libc::nfds_t,
                    IDLE_WAIT_MS,
                )
            };
        }
    }
    Ok(report)
}

/// Answers every query on `socket` with its own bytes, QR set, until `stop` is set: the
/// fastest possible server. Batches like the generator (`recvmmsg`, then `sendmmsg` back to
/// each sender).
pub fn respond(socket: &UdpSocket, batch: usize, stop: &AtomicBool) -> io::Result<u64> {
    let batch = batch.clamp(1, 1024);
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    set_buffer(socket, libc::SO_RCVBUF);
    set_buffer(socket, libc::SO_SNDBUF);
    let mut buffers = vec![0u8; batch * REPLY_BUFFER];
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut addresses: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; batch];
    let mut iov: Vec<libc::iovec> = buffers
        .chunks_mut(REPLY_BUFFER)
        .map(|chunk| libc::iovec {
            iov_base: chunk.as_mut_ptr().cast(),
            iov_len: REPLY_BUFFER,
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = vec![empty_mmsghdr(); batch];
    let mut answered = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for k in 0..batch {
            let msg = &mut msgs[k];
            msg.msg_len = 0;
            msg.msg_hdr.msg_iov = &mut iov[k];
            msg.msg_hdr.msg_iovlen = 1;
            msg.msg_hdr.msg_name = (&mut addresses[k] as *mut libc::sockaddr_storage).cast();
            msg.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            iov[k].iov_len = REPLY_BUFFER;
        }
        // SAFETY: every header points at its own buffer and address storage, both alive for
        // the call. The first call blocks (up to the read timeout), MSG_WAITFORONE returns as
        // soon as one datagram is in.
        let got = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                batch as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if got <= 0 {
            continue;
        }
        let got = got as usize;
        for k in 0..got {
            let len = msgs[k].msg_len as usize;
            iov[k].iov_len = len;
            if len > 2 {
                buffers[k * REPLY_BUFFER + 2] |= 0x80;
            }
        }
        // SAFETY: the same headers, now with each iovec cut to the datagram's length and each
        // address as received.
        let sent = unsafe { libc::sendmmsg(socket.as_raw_fd(), msgs.as_mut_ptr(), got as u32, 0) };
        answered += sent.max(0) as u64;
    }
    Ok(answered)
}

/// A [`respond`]er on a loopback port, for tests: its address, what stops it, and its thread
/// (which returns how many queries it answered).
#[cfg(test)]
pub(crate) fn test_responder() -> (
    SocketAddr,
    std::sync::Arc<AtomicBool>,
    std::thread::JoinHandle<io::Result<u64>>,
) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let server = socket.local_addr().expect("address");
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let responder = {
        let stop = stop.clone();
        std::thread::spawn(move || respond(&socket, 16, &stop))
    };
    (server, stop, responder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_responder_and_counts_every_reply() {
        let (server, stop, responder) = test_responder();
        let queries = QueryFile::parse("a.example A\nb.example AAAA\n").expect("parses");
        let config = LoadConfig {
            server,
            sockets: 2,
            outstanding: 8,
            batch: 4,
            duration: Duration::from_millis(200),
            timeout: Duration::from_millis(500),
        };
        let report = run(&config, &queries).expect("run");
        stop.store(true, Ordering::Relaxed);
        let answered = responder.join().expect("joins").expect("responds");
        assert!(report.sent > 100, "{report:?}");
        assert_eq!(report.completed + report.lost, report.sent);
        assert_eq!(report.lost, 0);
        assert_eq!(report.rcodes[0], report.completed);
        assert_eq!(answered, report.sent);
        assert_eq!(report.latency.count(), report.completed);
        let json = report.to_json("echo");
        assert_eq!(json["completed"], report.completed);
        assert_eq!(json["rcodes"]["NOERROR"], report.completed);
        assert!(report.to_text().contains("lost 0"));
    }

    #[test]
    fn queries_without_reply_are_lost() {
        // A bound socket that never answers.
        let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let queries = QueryFile::parse("a.example A\n").expect("parses");
        let config = LoadConfig {
            server: silent.local_addr().expect("address"),
            sockets: 1,
            outstanding: 4,
            batch: 4,
            duration: Duration::from_millis(50),
            timeout: Duration::from_millis(100),
        };
        let report = run(&config, &queries).expect("run");
        assert_eq!(report.sent, report.lost);
        assert!(report.sent >= 4);
        assert_eq!(report.completed, 0);
    }
}
