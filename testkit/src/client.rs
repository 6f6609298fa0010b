//! DNS over real sockets, with timeouts: one exchange of bytes over UDP or TCP, TCP's length
//! framing, [`ask`] / [`ask_tcp`], which build the query and decode the reply, and
//! [`QueryLoop`], a steady stream of queries kept up while a test changes the server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::dns::{query, Reply};

/// How long a test waits for one answer.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// The ID of the next query [`ask`] or [`ask_tcp`] sends.
static NEXT_ID: AtomicU16 = AtomicU16::new(1);

/// Sends `query` over UDP and returns the first datagram back within [`TIMEOUT`].
pub fn udp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    udp_within(server, query, TIMEOUT)
}

/// Sends `query` over UDP from a new socket and returns the first datagram back within
/// `timeout`, whatever it holds.
pub fn udp_within(server: SocketAddr, query: &[u8], timeout: Duration) -> std::io::Result<Vec<u8>> {
    let socket = UdpSocket::bind(if server.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    })?;
    socket.set_read_timeout(Some(timeout))?;
    socket.send_to(query, server)?;
    let mut buf = vec![0u8; 65535];
    let (len, _) = socket.recv_from(&mut buf)?;
    buf.truncate(len);
    Ok(buf)
}

/// A UDP socket connected to `server`, its reads timing out after [`TIMEOUT`]: for a test that
/// sends many queries from one socket and one buffer.
pub fn connected_udp(server: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket on 127.0.0.1");
    socket
        .set_read_timeout(Some(TIMEOUT))
        .expect("a read timeout");
    socket.connect(server).expect("connect the UDP socket");
    socket
}

/// Sends `query` over a new TCP connection and returns the response.
pub fn tcp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&server, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    send_framed(&mut stream, query)?;
    read_framed(&mut stream)
}

/// Writes one length-prefixed message.
pub fn send_framed(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let mut framed = (message.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    stream.write_all(&framed)
}

/// Reads one length-prefixed message.
pub fn read_framed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

/// Asks `name qtype` over UDP as a stub resolver does (RD set, no EDNS) from a new socket; the
/// reply with the query's ID, or `None` when none came within `timeout`. Panics on a reply that
/// does not decode.
pub fn ask(server: SocketAddr, name: &str, qtype: RecordType, timeout: Duration) -> Option<Reply> {
    let local = if server.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    let socket = UdpSocket::bind(local).ok()?;
    socket.set_read_timeout(Some(timeout)).ok()?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    socket
        .send_to(&query(id, name, u16::from(qtype), None), server)
        .ok()?;
    let mut buf = vec![0u8; 65535];
    loop {
        let (len, _) = socket.recv_from(&mut buf).ok()?;
        if len >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            return Some(decode(&buf[..len], name, qtype));
        }
    }
}

/// Asks `name qtype` over a new TCP connection; `None` when the exchange failed. Panics on a
/// reply that does not decode.
pub fn ask_tcp(server: SocketAddr, name: &str, qtype: RecordType) -> Option<Reply> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let response = tcp(server, &query(id, name, u16::from(qtype), None)).ok()?;
    Some(decode(&response, name, qtype))
}

/// Asks `name qtype` once, as [`ask`] does: `Ok` when the reply satisfies `condition`, else what
/// came instead (for [`Process::wait_until`](crate::process::Process::wait_until)).
pub fn answer_is(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    timeout: Duration,
    condition: impl Fn(&Reply) -> bool,
) -> Result<(), Option<Reply>> {
    match ask(server, name, qtype, timeout) {
        Some(reply) if condition(&reply) => Ok(()),
        other => Err(other),
    }
}

fn decode(response: &[u8], name: &str, qtype: RecordType) -> Reply {
    Reply::parse(response).unwrap_or_else(|e| panic!("the reply to {name} {qtype}: {e}"))
}

/// One query after another on a thread of its own, each counted as answered (a reply that
/// satisfies the condition) or failed (none within the timeout, or another); stopped when
/// dropped.
pub struct QueryLoop {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl QueryLoop {
    /// Starts asking `name qtype` at `server` over UDP (`timeout` for each reply, `pause`
    /// between queries), counting replies that satisfy `ok` as answered.
    pub fn start(
        server: SocketAddr,
        name: &str,
        qtype: RecordType,
        timeout: Duration,
        pause: Duration,
        ok: impl Fn(&Reply) -> bool + Send + 'static,
    ) -> QueryLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, answered, failed) = (stop.clone(), answered.clone(), failed.clone());
            let name = name.to_owned();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match ask(server, &name, qtype, timeout) {
                        Some(reply) if ok(&reply) => answered.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    std::thread::sleep(pause);
                }
            })
        };
        QueryLoop {
            stop,
            answered,
            failed,
            thread: Some(thread),
        }
    }

    /// The queries answered and failed so far.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.answered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    /// Stops the loop after its current query; returns the final counts.
    pub fn stop(mut self) -> (usize, usize) {
        self.halt();
        self.counts()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the query loop's thread");
        }
    }
}

impl Drop for QueryLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
