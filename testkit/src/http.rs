//! A server's operations endpoints over HTTP/1.1 (`/health`, `/ready`, `/metrics`), and
//! Prometheus samples read from a `/metrics` page.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `GET path` over HTTP/1.1 with `Connection: close`; the status code and body, or `None` when
/// the request failed (refused, timed out, not HTTP).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((code, body.to_string()))
}

/// `GET path` once: `Ok` when the status is `code`, else the status that came instead, if any
/// (for [`Process::wait_until`](crate::process::Process::wait_until)).
pub fn status_is(addr: SocketAddr, path: &str, code: u16) -> Result<(), Option<u16>> {
    match http_get(addr, path) {
        Some((got, _)) if got == code => Ok(()),
        other => Err(other.map(|(got, _)| got)),
    }
}

/// The sum of the samples of `name` in a Prometheus text page whose labels contain every one
/// of `labels` (each as the page writes it, `proto="tcp"`); `None` when no sample matches.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(None, |sum, value| Some(sum.unwrap_or(0.0) + value))
}

#[cfg(test)]
mod tests {
    use super::metric;

    #[test]
    fn samples_are_summed_over_matching_labels() {
        let page = "# HELP x_total X.\n# TYPE x_total counter\n\
                    x_total{proto=\"udp\",zone=\".\"} 2\nx_total{proto=\"tcp\",zone=\".\"} 3\n\
                    x_total_created 9\nup 1\n";
        assert_eq!(metric(page, "x_total", &[]), Some(5.0));
        assert_eq!(metric(page, "x_total", &["proto=\"tcp\""]), Some(3.0));
        assert_eq!(metric(page, "x_total", &["proto=\"sctp\""]), None);
        assert_eq!(metric(page, "up", &[]), Some(1.0));
        assert_eq!(metric(page, "down", &[]), None);
    }
}
