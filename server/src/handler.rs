//! The query handler: the zone's answer function, plus what the server does with names outside
//! the cluster zone (the forwarder's cache, else handed back to the listener to forward; REFUSED
//! when forwarding is off), and what the metrics record of each reply. A node-local forwarder
//! ([`Forwarder::is_node_local`]) takes every name: the zone is not consulted.

use clusterdns_zone::answer::{parse_query, respond_rcode};
use clusterdns_zone::wire::CLASS_IN;
use clusterdns_zone::{Answered, Query, Rcode, Snapshot, Transport};

use crate::forward::Forwarder;
use crate::metrics::{Outcome, Plugin, ZoneLabel};

/// A response written into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Its length in bytes.
    pub len: usize,
    /// What the metrics count it as.
    pub outcome: Outcome,
}

/// What became of one query.
#[derive(Clone, Debug)]
pub enum Handled {
    /// A response is in the caller's buffer.
    Reply(Reply),
    /// Nothing to send.
    Drop,
    /// A name outside the zone that the cache could not answer: the caller forwards it with
    /// [`Forwarder::resolve`] (boxed: the miss path allocates anyway, the hit path stays small).
    Forward(Box<Query>),
}

/// Answers one query packet into `out` from the zone, else from the forwarder's cache.
pub fn handle(
    snapshot: &Snapshot,
    packet: &[u8],
    out: &mut [u8],
    transport: Transport,
    forwarder: Option<&Forwarder>,
) -> Handled {
    if let Some(forwarder) = forwarder.filter(|f| f.is_node_local()) {
        if let Ok(query) = parse_query(packet) {
            if query.qclass == CLASS_IN {
                return cached_or_forward(query, packet, out, transport, forwarder);
            }
        }
        // Malformed, or not class IN: the zone's checks answer it (FORMERR, NOTIMP, BADVERS,
        // REFUSED) or drop it, before any lookup.
    }
    match clusterdns_zone::answer(snapshot, packet, out, transport) {
        Answered::Response { len, rcode } => {
            let (zone, plugin) = match rcode {
                Rcode::FormErr | Rcode::NotImp | Rcode::BadVers => {
                    (ZoneLabel::Root, Plugin::Server)
                }
                _ => (ZoneLabel::Cluster, Plugin::Kubernetes),
            };
            Handled::Reply(reply(out, len, rcode, zone, plugin))
        }
        Answered::Outside => outside(packet, out, transport, forwarder),
        Answered::Drop => Handled::Drop,
    }
}

/// A name outside the zone (reverse names included, as CoreDNS's `fallthrough`): REFUSED
/// without a forwarder or for our own loop probe, else the cache, else to be forwarded.
fn outside(
    packet: &[u8],
    out: &mut [u8],
    transport: Transport,
    forwarder: Option<&Forwarder>,
) -> Handled {
    // The zone parsed it already; parsing again costs less than carrying it out of the zone.
    let Ok(query) = parse_query(packet) else {
        return Handled::Drop;
    };
    match forwarder {
        Some(forwarder) => cached_or_forward(query, packet, out, transport, forwarder),
        None => refused(&query, packet, out, transport),
    }
}

/// The forwarder's cache, else to be forwarded; REFUSED for our own loop probe.
fn cached_or_forward(
    query: Query,
    packet: &[u8],
    out: &mut [u8],
    transport: Transport,
    forwarder: &Forwarder,
) -> Handled {
    if forwarder.is_loop_probe(&query) {
        return refused(&query, packet, out, transport);
    }
    match forwarder.answer_cached(&query, packet, out, transport) {
        Some(len) => Handled::Reply(upstream_reply(out, len, Plugin::Cache)),
        None => Handled::Forward(Box::new(query)),
    }
}

fn refused(query: &Query, packet: &[u8], out: &mut [u8], transport: Transport) -> Handled {
    match respond_rcode(query, packet, out, Rcode::Refused, transport) {
        Answered::Response { len, rcode } => {
            Handled::Reply(reply(out, len, rcode, ZoneLabel::Root, Plugin::Server))
        }
        _ => Handled::Drop,
    }
}

/// A reply of `len` bytes in `out` that came from upstreams (`plugin` cache or forward).
pub fn upstream_reply(out: &[u8], len: usize, plugin: Plugin) -> Reply {
    Reply {
        len,
        outcome: Outcome {
            qtype: response_qtype(&out[..len]),
            rcode: u16::from(out[3] & 0x0F),
            zone: ZoneLabel::Root,
            plugin,
        },
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
