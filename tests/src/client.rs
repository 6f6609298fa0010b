//! Minimal DNS clients over real sockets, with timeouts, for the end-to-end tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

/// How long a test waits for one answer.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Sends `query` over UDP and returns the response.
pub fn udp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let socket = UdpSocket::bind(if server.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    })?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    socket.send_to(query, server)?;
    let mut buf = vec![0u8; 65535];
    let (len, _) = socket.recv_from(&mut buf)?;
    buf.truncate(len);
    Ok(buf)
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

/// A query for `name` (dotted) and `qtype`, RD set, optionally with an EDNS OPT of `payload`.
pub fn query(id: u16, name: &str, qtype: u16, payload: Option<u16>) -> Vec<u8> {
    let mut out = vec![
        (id >> 8) as u8,
        id as u8,
        0x01,
        0x00,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    if let Some(payload) = payload {
        out[11] = 1;
        out.extend_from_slice(&[0, 0, 41]);
        out.extend_from_slice(&payload.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    out
}

/// The rcode (low four bits) of a response.
pub fn rcode(response: &[u8]) -> u8 {
    response.get(3).map_or(0xFF, |b| b & 0x0F)
}

/// The answer count of a response.
pub fn answer_count(response: &[u8]) -> u16 {
    u16::from_be_bytes([response[6], response[7]])
}

/// Whether the TC bit is set.
pub fn truncated(response: &[u8]) -> bool {
    response[2] & 0x02 != 0
}
