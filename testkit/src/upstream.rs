//! [`Numbered`]: a scripted upstream on a loopback UDP port for cache tests. It answers the
//! n-th A query for a name with `192.0.2.n` (so a test sees which fetch an answer came from)
//! at a TTL of the test's choosing, counts the queries per name, and can stay silent or
//! answer late, as an upstream that is down or slow. Other query types get NOERROR with no
//! record.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the answering thread and the test share.
#[derive(Default)]
struct Script {
    /// Queries received per lowercase dotted name (`www.example.test.`), answered or not.
    asked: Mutex<HashMap<String, u32>>,
    ttl: AtomicU32,
    silent: AtomicBool,
    delay_ms: AtomicU64,
    stop: AtomicBool,
}

/// The scripted upstream; stopped when dropped.
pub struct Numbered {
    /// Its address.
    pub addr: SocketAddr,
    script: Arc<Script>,
    thread: Option<JoinHandle<()>>,
}

impl Numbered {
    /// Starts answering on a free loopback port, every record with TTL `ttl`.
    pub fn start(ttl: u32) -> Numbered {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the numbered upstream");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("a read timeout");
        let addr = socket.local_addr().expect("its address");
        let script = Arc::new(Script::default());
        script.ttl.store(ttl, Ordering::SeqCst);
        let thread = {
            let script = script.clone();
            std::thread::spawn(move || serve(&socket, &script))
        };
        Numbered {
            addr,
            script,
            thread: Some(thread),
        }
    }

    /// Queries received so far for `name` (dotted, without the trailing dot; any case).
    pub fn asked(&self, name: &str) -> u32 {
        let key = format!("{}.", name.trim_end_matches('.').to_ascii_lowercase());
        let asked = self.script.asked.lock().unwrap_or_else(|p| p.into_inner());
        asked.get(&key).copied().unwrap_or(0)
    }

    /// Stops answering (queries are still counted), or starts again.
    pub fn set_silent(&self, silent: bool) {
        self.script.silent.store(silent, Ordering::SeqCst);
    }

    /// Answers each query `delay` after it arrives.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.script.delay_ms.store(ms, Ordering::SeqCst);
    }
}

impl Drop for Numbered {
    fn drop(&mut self) {
        self.script.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(socket: &UdpSocket, script: &Arc<Script>) {
    let mut buf = [0u8; 4096];
    while !script.stop.load(Ordering::SeqCst) {
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some((name, question_end)) = question(&buf[..len]) else {
            continue;
        };
        let n = {
            let mut asked = script.asked.lock().unwrap_or_else(|p| p.into_inner());
            let n = asked.entry(name).or_insert(0);
            *n += 1;
            *n
        };
        if script.silent.load(Ordering::SeqCst) {
            continue;
        }
        let answer = answer(&buf[..question_end], n, script.ttl.load(Ordering::SeqCst));
        let delay = Duration::from_millis(script.delay_ms.load(Ordering::SeqCst));
        if delay.is_zero() {
            let _ = socket.send_to(&answer, from);
            continue;
        }
        let Ok(late) = socket.try_clone() else {
            continue;
        };
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let _ = late.send_to(&answer, from);
        });
    }
}

/// The question's name (lowercase, dotted, with the trailing dot) and where the question ends;
/// `None` for anything but one uncompressed question.
fn question(packet: &[u8]) -> Option<(String, usize)> {
    if packet.get(4..6)? != [0, 1] {
        return None;
    }
    let mut name = String::new();
    let mut at = 12;
    loop {
        let len = usize::from(*packet.get(at)?);
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = packet.get(at + 1..at + 1 + len)?;
        name.push_str(&String::from_utf8_lossy(label).to_ascii_lowercase());
        name.push('.');
        at += 1 + len;
    }
    if name.is_empty() {
        name.push('.');
    }
    let end = at + 5;
    (end <= packet.len()).then_some((name, end))
}

/// The response to the query whose header and question are `query`: its ID and question, and
/// for an A question one record, `192.0.2.n` with TTL `ttl`.
fn answer(query: &[u8], n: u32, ttl: u32) -> Vec<u8> {
    let mut response = query.to_vec();
    let rd = query[2] & 0x01;
    response[2] = 0x80 | rd;
    response[3] = 0x80;
    let qtype = &query[query.len() - 4..query.len() - 2];
    let a = qtype == [0, 1];
    response[6..12].copy_from_slice(&[0, u8::from(a), 0, 0, 0, 0]);
    if a {
        response.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        response.extend_from_slice(&ttl.to_be_bytes());
        response.extend_from_slice(&[0, 4, 192, 0, 2, (n % 256) as u8]);
    }
    response
}
