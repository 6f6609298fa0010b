//! The query handler: the zone's answer function, plus what the server does with names outside
//! the cluster zone (REFUSED until forwarding exists).

use clusterdns_zone::answer::{parse_query, respond_rcode};
use clusterdns_zone::{Answered, Rcode, Snapshot, Transport};

/// Answers one query packet into `out`.
pub fn handle(
    snapshot: &Snapshot,
    packet: &[u8],
    out: &mut [u8],
    transport: Transport,
) -> Answered {
    match clusterdns_zone::answer(snapshot, packet, out, transport) {
        Answered::Outside => match refuse(packet, out, transport) {
            Some(len) => Answered::Response {
                len,
                rcode: Rcode::Refused,
            },
            None => Answered::Drop,
        },
        answered => answered,
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
