//! A flood at a fixed rate: the queries of a [`QueryFile`] sent in order, each once, at a
//! steady number per second whatever the server answers, with replies counted by response code
//! but not waited for. It stands in for a misbehaving client (names that all miss the cache)
//! while `load` measures what the others still get. It costs its core little: a batch per
//! millisecond through `sendmmsg`, and replies drained with `recvmmsg`, so on a machine whose
//! load generator shares a core with the flood, the flood takes almost nothing from it
//! (dnsperf at the same rate takes 10-40% of that core).
//!
//! It also times every reply against its query's send (by ID), so at a rate the server keeps
//! up with it measures the latency distribution a steady load sees, p999 included: between two
//! sends it waits in `poll` for replies, so a reply is read as soon as it comes, not at the next
//! send. IDs repeat every 65,536 queries (3.3 s at 20,000 a second): a reply later than that is
//! timed against the newer query with its ID, so only floods of slow upstream answers blur.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::latency::Histogram;
use crate::load::{connected_socket, empty_mmsghdr, query_iov, rcode_list, taken, Replies};
use crate::queryfile::QueryFile;

/// Queries per `sendmmsg` call at most.
const BATCH: usize = 64;
/// Largest reply read (only the header is looked at).
const REPLY_BUFFER: usize = 512;
/// How long the sender waits for replies at most before it looks at what is due.
const TICK: Duration = Duration::from_millis(1);
/// Query IDs: a reply is timed against the last query sent with its ID.
const IDS: usize = 1 << 16;

/// How to flood a server.
#[derive(Clone, Debug, PartialEq)]
pub struct FloodConfig {
    /// The server.
    pub server: SocketAddr,
    /// Queries per second.
    pub rate: f64,
    /// How long to send.
    pub duration: Duration,
    /// How long to keep counting replies after the last query (answers that wait on an
    /// upstream's timeout come late).
    pub linger: Duration,
}

/// What a flood sent and got back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FloodReport {
    /// Time from each query's send to its reply.
    pub latency: Histogram,
    /// Queries sent.
    pub sent: u64,
    /// Queries the kernel did not take (its send buffer was full).
    pub unsent: u64,
    /// Replies, by response code.
    pub rcodes: [u64; 16],
    /// How long queries were sent.
    pub elapsed: Duration,
}

impl FloodReport {
    /// Replies received.
    pub fn replies(&self) -> u64 {
        self.rcodes.iter().sum()
    }

    /// The report as one line of text.
    pub fn to_text(&self) -> String {
        format!(
            "  flood: sent {} ({:.0} qps over {:.2} s), not taken by the kernel {}, replies {} \
             ({:.1}%, {}), no reply {}\n",
            self.sent,
            self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.elapsed.as_secs_f64(),
            self.unsent,
            self.replies(),
            100.0 * self.replies() as f64 / self.sent.max(1) as f64,
            rcode_list(&self.rcodes),
            self.sent.saturating_sub(self.replies()),
        ) + &format!(
            "  flood latency: p50 {:.3} ms, p99 {:.3} ms, p999 {:.3} ms, max {:.3} ms ({} timed)\n",
            ms(self.latency.quantile(0.5)),
            ms(self.latency.quantile(0.99)),
            ms(self.latency.quantile(0.999)),
            ms(self.latency.max()),
            self.latency.count(),
        )
    }
}

/// Nanoseconds as milliseconds.
fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Sends the queries of `queries` in order (wrapping around) at `config.rate` a second for
/// `config.duration`, counting replies until `config.linger` after the last, and reports.
pub fn flood(config: &FloodConfig, queries: &QueryFile) -> io::Result<FloodReport> {
    if queries.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the query file holds no query",
        ));
    }
    if !(config.rate.is_finite() && config.rate > 0.0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("rate {}: must be positive", config.rate),
        ));
    }
    let socket = connected_socket(config.server)?;
    let fd = socket.as_raw_fd();
    let mut ids = [[0u8; 2]; BATCH];
    let mut send_iov = [[libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 2]; BATCH];
    let mut send_msgs = [empty_mmsghdr(); BATCH];
    let mut replies = Replies::new(BATCH, REPLY_BUFFER);
    let mut report = FloodReport::default();
    let mut next = 0usize;
    // When the query with each ID went out, in ns since `start` (0: none waiting).
    let mut sent_at = vec![0u64; IDS];
    let start = Instant::now();
    let since_start = || start.elapsed().as_nanos() as u64;
    let stop_sending = config.duration;
    let stop = config.duration + config.linger;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= stop {
            break;
        }
        // Replies first: they free room in the socket's buffers.
        // A failed receive ends the draining, as an empty one does: the flood goes on.
        while let Ok(got @ 1..) = replies.receive(fd) {
            let now = since_start();
            for k in 0..got {
                let reply = replies.get(k);
                if let Some(&flags) = reply.get(3) {
                    report.rcodes[usize::from(flags & 0x0F)] += 1;
                    let id = usize::from(u16::from_be_bytes([reply[0], reply[1]]));
                    let at = std::mem::take(&mut sent_at[id]);
                    if at > 0 {
                        report.latency.record(now.saturating_sub(at));
                    }
                }
            }
        }
        if elapsed < stop_sending {
            let due = (config.rate * elapsed.as_secs_f64()) as u64;
            while report.sent + report.unsent < due {
                let n = ((due - report.sent - report.unsent) as usize).min(BATCH);
                for k in 0..n {
                    let id = (report.sent + report.unsent + k as u64) as u16;
                    ids[k] = id.to_be_bytes();
                    let rest = queries.after_id(next);
                    next = (next + 1) % queries.len();
                    send_iov[k] = query_iov(&mut ids[k], rest);
                    send_msgs[k].msg_hdr.msg_iov = send_iov[k].as_mut_ptr();
                    send_msgs[k].msg_hdr.msg_iovlen = 2;
                }
                let now = since_start().max(1);
                // SAFETY: the first n headers point at iovecs and bytes that live until the
                // call returns (`ids`, `send_iov`, the query file); the socket is connected.
                let sent = unsafe { libc::sendmmsg(fd, send_msgs.as_mut_ptr(), n as u32, 0) };
                let sent = taken(sent)?;
                for id in &ids[..sent] {
                    sent_at[usize::from(u16::from_be_bytes(*id))] = now;
                }
                report.sent += sent as u64;
                // What the kernel did not take is not sent again: the rate is what was offered.
                report.unsent += (n - sent) as u64;
            }
            report.elapsed = elapsed;
        }
        // Until a reply comes, or a tick passes.
        let mut ready = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let wait = libc::timespec {
            tv_sec: 0,
            tv_nsec: TICK.as_nanos() as libc::c_long,
        };
        // SAFETY: one pollfd that lives across the call; no signal mask.
        unsafe { libc::ppoll(&mut ready, 1, &wait, std::ptr::null()) };
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::test_responder;
    use std::sync::atomic::Ordering;

    #[test]
    fn sends_at_the_rate_and_counts_the_replies() {
        let (server, stop, responder) = test_responder();
        let queries = QueryFile::parse("a.flood.example A\nb.flood.example AAAA\n").expect("file");
        let config = FloodConfig {
            server,
            rate: 2000.0,
            duration: Duration::from_millis(500),
            linger: Duration::from_millis(200),
        };
        let report = flood(&config, &queries).expect("flood");
        stop.store(true, Ordering::Relaxed);
        responder.join().expect("responder").expect("responds");
        // 2,000 a second for half a second: about 1,000, sent on the millisecond ticks.
        assert!((900..=1000).contains(&report.sent), "{report:?}");
        assert_eq!(report.unsent, 0);
        // The responder echoes each query with QR set and rcode 0.
        assert_eq!(report.rcodes[0], report.sent, "{report:?}");
        assert!(report.to_text().contains("NOERROR"));
        // Every reply was timed, and an echo on loopback takes well under a second.
        assert_eq!(report.latency.count(), report.sent);
        assert!(report.latency.max() < 1_000_000_000, "{report:?}");
        assert!(report.to_text().contains("p999"));
    }

    #[test]
    fn refuses_a_rate_that_is_not_positive() {
        let queries = QueryFile::parse("a.example A\n").expect("file");
        let config = FloodConfig {
            server: "127.0.0.1:9".parse().expect("address"),
            rate: 0.0,
            duration: Duration::from_millis(10),
            linger: Duration::ZERO,
        };
        assert!(flood(&config, &queries).is_err());
    }
}
