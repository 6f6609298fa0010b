//! `dns64` in the chain: an AAAA query it intercepts ([`Dns64::intercepts`]) goes through the
//! rest of the block's chain as usual (rewrite, autopath, the plugins that answer, loadbalance);
//! when the response needs synthesis ([`Dns64::needs_synthesis`]), the A question for the same
//! name goes through the same chain, and the response is rebuilt from the A answer
//! ([`Dns64::synthesize`]) before `log` sees it. CoreDNS asks the A question of the whole
//! server; the name routes to the same block, so this asks the block.
//!
//! Only what the chain answers synchronously is synthesized here: names of the cluster zone,
//! `hosts`, `template`, and the cache. Two cases wait for a lookup through the forwarder that can
//! be awaited (marked `GAP(dns64...)`), and are sent unsynthesized until then:
//!
//! - an AAAA answer that itself needs upstreams (a [`Deferred`](super::Deferred), finished in
//!   `Deferred::resolve`). There, when `self.block.dns64_needs(&at, &out[..len])` holds for the
//!   forwarded answer: finish it with `Finish { wrapped: true, ..at }` (rewrite back and
//!   loadbalance, not logged), look up the A question ([`a_question`] builds it from the
//!   client's packet and query) through the block's chain with cache and forwarder, and send
//!   `self.block.dns64_synthesize(at, out, reply.len, &a_response)`, which logs it;
//! - an A question that needs upstreams after an AAAA answer made here ([`Block::dns64`]): the
//!   same `dns64_synthesize` call once the A response is in.
//!
//! This path allocates (the A query and its response, the synthesized records): only AAAA
//! queries that `dns64` intercepts take it, never a block without `dns64`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use clusterdns_zone::answer::{parse_query, respond_rcode, respond_records};
use clusterdns_zone::wire::{FLAG_TC, TYPE_A};
use clusterdns_zone::{Answered, Query, Rcode, Snapshot};

use super::{Block, Finish, Handled, Reply};
use crate::ops::metrics::Plugin;

/// What the A question for an intercepted AAAA query came to.
enum ALookup {
    /// The response, as the client would have got it.
    Response(Vec<u8>),
    /// It needs upstreams: not available synchronously.
    Forward,
    /// The chain sent nothing (a plugin dropped it).
    Failed,
}

impl Block {
    /// Answers a query `dns64` intercepts: through the rest of the chain, then synthesized from
    /// the A answer when the AAAA answer needs it, then logged.
    pub(super) fn dns64(
        self: &Arc<Self>,
        snapshot: &Snapshot,
        at: Finish,
        out: &mut [u8],
    ) -> Handled {
        let inner = Finish {
            wrapped: true,
            ..at
        };
        let reply = match self.run(snapshot, inner, out) {
            Handled::Reply(reply) => reply,
            // GAP(dns64, forwarded AAAA): see `Deferred::resolve`.
            other => return other,
        };
        if !self.dns64_needs(&at, &out[..reply.len]) {
            return Handled::Reply(self.record(at, out, reply));
        }
        let synthesized = match self.lookup_a(snapshot, at, out.len()) {
            ALookup::Response(a) => self.dns64_synthesize(at, out, reply.len, &a),
            // GAP(dns64, forwarded A): the A answer needs upstreams; the AAAA answer is sent as
            // it is until the lookup facility can be awaited here (then: dns64_synthesize).
            ALookup::Forward => Some(self.record(at, out, reply)),
            // CoreDNS answers SERVFAIL when its A lookup brings nothing back.
            ALookup::Failed => self.dns64_servfail(at, out),
        };
        synthesized.map_or(Handled::Drop, Handled::Reply)
    }

    /// Whether the response `aaaa` to the query of `at` is to be replaced by a synthesized one:
    /// the block has `dns64`, it intercepts the query, and the response needs it.
    pub(super) fn dns64_needs(&self, at: &Finish, aaaa: &[u8]) -> bool {
        let query = at.query;
        self.dns64.as_ref().is_some_and(|(dns64, _)| {
            dns64.intercepts(query.qtype, query.qclass, at.client.ip())
                && dns64.needs_synthesis(aaaa)
        })
    }

    /// Replaces the AAAA response of `aaaa_len` bytes in `out` (to the query of `at`, after
    /// rewrite and loadbalance) with the one synthesized from `a`, the response to the A
    /// question for the same name, and logs it: the reply to send. SERVFAIL when `a` is
    /// malformed. The synthesized response is cut to the client's size like any other (no
    /// records and TC when they do not fit).
    pub(super) fn dns64_synthesize(
        &self,
        at: Finish,
        out: &mut [u8],
        aaaa_len: usize,
        a: &[u8],
    ) -> Option<Reply> {
        let (dns64, translated) = self.dns64.as_ref()?;
        let Some(synthesized) = out
            .get(..aaaa_len)
            .and_then(|aaaa| dns64.synthesize(aaaa, a))
        else {
            return self.dns64_servfail(at, out);
        };
        let written = respond_records(
            at.query,
            at.packet,
            out,
            at.transport,
            (Rcode::NoError, false),
            &synthesized.records,
            synthesized.counts,
        );
        let Answered::Response { len, rcode } = written else {
            return None;
        };
        if synthesized.truncated {
            out[2] |= (FLAG_TC >> 8) as u8;
        }
        translated.fetch_add(1, Ordering::Relaxed);
        let reply = Reply::new(len, (at.query.qtype, rcode as u16), at.slot, Plugin::Dns64);
        Some(self.record(at, out, reply))
    }

    /// SERVFAIL to the query of `at`, logged.
    fn dns64_servfail(&self, at: Finish, out: &mut [u8]) -> Option<Reply> {
        let written = respond_rcode(at.query, at.packet, out, Rcode::ServFail, at.transport);
        let Answered::Response { len, rcode } = written else {
            return None;
        };
        let reply = Reply::new(len, (at.query.qtype, rcode as u16), at.slot, Plugin::Dns64);
        Some(self.record(at, out, reply))
    }

    /// The A question for the name of the query of `at`, through the rest of the chain as the
    /// client's query went (same ID, flags and EDNS), into a buffer of `size` bytes.
    fn lookup_a(self: &Arc<Self>, snapshot: &Snapshot, at: Finish, size: usize) -> ALookup {
        let Some((packet, query)) = a_question(at.packet, at.query) else {
            return ALookup::Failed;
        };
        let a_at = Finish {
            query: &query,
            packet: &packet,
            rewritten: false,
            wrapped: true,
            ..at
        };
        let mut response = vec![0u8; size];
        match self.run(snapshot, a_at, &mut response) {
            Handled::Reply(reply) => {
                response.truncate(reply.len);
                ALookup::Response(response)
            }
            Handled::Forward(_) => ALookup::Forward,
            Handled::Drop => ALookup::Failed,
        }
    }
}

/// The client's `packet` (parsed as `query`) asking for A instead of AAAA, parsed, with the
/// client's EDNS as the chain sees it (after `bufsize`).
pub(super) fn a_question(packet: &[u8], query: &Query) -> Option<(Vec<u8>, Query)> {
    let mut a = packet.to_vec();
    let qtype_at = query.question_end() - 4;
    a.get_mut(qtype_at..qtype_at + 2)?
        .copy_from_slice(&TYPE_A.to_be_bytes());
    let mut parsed = parse_query(&a).ok()?;
    parsed.edns = query.edns;
    Some((a, parsed))
}
