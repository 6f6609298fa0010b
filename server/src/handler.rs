//! The query handler: the zone's answer function, plus what the server does with names outside
//! the cluster zone (REFUSED until forwarding exists), and what the metrics record of each reply.

use clusterdns_zone::answer::{parse_query, respond_rcode};
use clusterdns_zone::{Answered, Rcode, Snapshot, Transport};

use crate::metrics::{Outcome, Plugin, ZoneLabel};

/// A response written into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Its length in bytes.
    pub len: usize,
    /// What the metrics count it as.
    pub outcome: Outcome,
}

/// Answers one query packet into `out`; `None` means the packet is dropped unanswered.
pub fn handle(
    snapshot: &Snapshot,
    packet: &[u8],
    out: &mut [u8],
    transport: Transport,
) -> Option<Reply> {
    match clusterdns_zone::answer(snapshot, packet, out, transport) {
        Answered::Response { len, rcode } => {
            let (zone, plugin) = match rcode {
                Rcode::FormErr | Rcode::NotImp | Rcode::BadVers => {
                    (ZoneLabel::Root, Plugin::Server)
                }
                _ => (ZoneLabel::Cluster, Plugin::Kubernetes),
            };
            Some(reply(out, len, rcode, zone, plugin))
        }
        Answered::Outside => {
            let len = refuse(packet, out, transport)?;
            Some(reply(
                out,
                len,
                Rcode::Refused,
                ZoneLabel::Root,
                Plugin::Server,
            ))
        }
        Answered::Drop => None,
    }
}

/// A reply of `len` bytes in `out`.
fn reply(out: &[u8], len: usize, rcode: Rcode, zone: ZoneLabel, plugin: Plugin) -> Reply {
    Reply {
        len,
        outcome: Outcome {
            qtype: response_qtype(&out[..len]),
            rcode: rcode as u16,
            zone,
            plugin,
        },
    }
}

/// Writes REFUSED for a name outside our zones; returns the response length.
pub fn refuse(packet: &[u8], out: &mut [u8], transport: Transport) -> Option<usize> {
    let query = parse_query(packet).ok()?;
    match respond_rcode(&query, packet, out, Rcode::Refused, transport) {
        Answered::Response { len, .. } => Some(len),
        _ => None,
    }
}

/// The question type of a response we wrote (its question is never compressed); 0 when it has
/// no question.
pub fn response_qtype(response: &[u8]) -> u16 {
    if response.get(4..6) == Some(&[0, 0]) {
        return 0;
    }
    let mut at = 12;
    while let Some(&len) = response.get(at) {
        if len == 0 {
            at += 1;
            break;
        }
        at += 1 + usize::from(len);
    }
    match response.get(at..at + 2) {
        Some(&[high, low]) => u16::from_be_bytes([high, low]),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_qtype_reads_the_question() {
        let mut packet = vec![0, 1, 0x81, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        packet.extend_from_slice(b"\x03www\x07example\x00\x00\x21\x00\x01");
        assert_eq!(response_qtype(&packet), 33);
        packet[5] = 0;
        assert_eq!(response_qtype(&packet), 0);
        assert_eq!(response_qtype(&packet[..8]), 0);
        packet[5] = 1;
        assert_eq!(response_qtype(&packet[..20]), 0);
    }
}
