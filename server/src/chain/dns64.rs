//! `dns64` in the chain: an AAAA query it intercepts ([`Dns64::intercepts`]) goes through the
//! rest of the block's chain as usual (rewrite, autopath, the plugins that answer, loadbalance);
//! when the response needs synthesis ([`Dns64::needs_synthesis`]), the A question for the same
//! name goes through the same chain, and the response is rebuilt from the A answer
//! ([`Dns64::synthesize`]) before `log` sees it. CoreDNS asks the A question of the whole
//! server; the name routes to the same block, so this asks the block.
//!
//! Either lookup may need upstreams. When the AAAA answer is forwarded, its [`Deferred`]
//! carries [`Dns64Wait::Aaaa`]: once it is answered, the A question goes to the block's cache
//! and forwarder, and the synthesized answer is sent. When the AAAA answer comes from the zone,
//! `hosts` or `template` but the A question needs upstreams, the A lookup's own deferred forward
//! is wrapped in one that waits on it ([`Dns64Wait::A`]). Not synthesized: a forwarded AAAA
//! answer to a query a `rewrite` rule changed or an `autopath` walk or ExternalName chase
//! answered (it goes as the upstream gave it).
//!
//! This path allocates (the A query and its response, the synthesized records): only AAAA
//! queries that `dns64` intercepts take it, never a block without `dns64`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use clusterdns_zone::answer::{parse_query, respond_rcode, respond_records};
use clusterdns_zone::wire::{FLAG_TC, TYPE_A};
use clusterdns_zone::{Answered, Query, Rcode, Snapshot};

use super::{Block, Deferred, Finish, Handled, Reply, Step};
use crate::ops::metrics::Plugin;

/// What the A question for an intercepted AAAA query came to.
enum ALookup {
    /// The response, as the client would have got it.
    Response(Vec<u8>),
    /// It needs upstreams: its deferred forward, and the A query packet it resolves.
    Forward(Box<Deferred>, Vec<u8>),
    /// The chain sent nothing (a plugin dropped it).
    Failed,
}

/// What a deferred forward of an intercepted AAAA query does for `dns64` once answered.
pub(super) enum Dns64Wait {
    /// The forward is the AAAA question: synthesize from the A question if its answer needs it.
    Aaaa,
    /// The AAAA answer `aaaa` is in; the forward `lookup` of the A question (its packet
    /// `packet`) is what is waited on.
    A {
        aaaa: Vec<u8>,
        lookup: Box<Deferred>,
        packet: Vec<u8>,
    },
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
            Handled::Forward(mut deferred) => {
                // The AAAA answer is forwarded: synthesized, if need be, when it is in.
                deferred.dns64 = Some(Dns64Wait::Aaaa);
                deferred.wrapped = false;
                return Handled::Forward(deferred);
            }
            Handled::Drop => return Handled::Drop,
        };
        if !self.dns64_needs(&at, &out[..reply.len]) {
            return Handled::Reply(self.record(at, out, reply));
        }
        let synthesized = match self.lookup_a(snapshot, at, out.len()) {
            ALookup::Response(a) => self.dns64_synthesize(at, out, reply.len, &a),
            ALookup::Forward(lookup, packet) => {
                let forwarder = lookup.forwarder.clone();
                let aaaa = out[..reply.len].to_vec();
                return Handled::Forward(Box::new(Deferred {
                    dns64: Some(Dns64Wait::A {
                        aaaa,
                        lookup,
                        packet,
                    }),
                    wrapped: false,
                    ..self.defer(&at, forwarder)
                }));
            }
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
            rewritten: None,
            wrapped: true,
            ..at
        };
        let mut response = vec![0u8; size];
        match self.run(snapshot, a_at, &mut response) {
            Handled::Reply(reply) => {
                response.truncate(reply.len);
                ALookup::Response(response)
            }
            Handled::Forward(lookup) => ALookup::Forward(lookup, packet),
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

impl Deferred {
    /// A forwarded AAAA answer, put back for the client and then synthesized from the A
    /// question (the block's cache, else its forwarder) when it needs it; logged either way.
    pub(super) async fn resolve_dns64_aaaa(
        &self,
        at: Finish<'_>,
        out: &mut [u8],
        step: Step,
    ) -> Option<Reply> {
        let reply = self.block.finish(
            Finish {
                wrapped: true,
                ..at
            },
            out,
            step,
        )?;
        if !self.block.dns64_needs(&at, &out[..reply.len]) {
            return Some(self.block.record(at, out, reply));
        }
        let Some((packet, query)) = a_question(at.packet, at.query) else {
            return self.block.dns64_servfail(at, out);
        };
        let mut a = vec![0u8; out.len()];
        let transport = at.transport;
        let len = match self
            .forwarder
            .answer_cached(&query, &packet, &mut a, transport)
        {
            Some(len) => Some(len),
            None => (self.forwarder.resolve(&query, &packet, &mut a, transport)).await,
        };
        match len {
            Some(len) => self.block.dns64_synthesize(at, out, reply.len, &a[..len]),
            // CoreDNS answers SERVFAIL when its A lookup brings nothing back.
            None => self.block.dns64_servfail(at, out),
        }
    }

    /// The AAAA answer `aaaa` made without upstreams, synthesized once `lookup`, the forward of
    /// the A question `packet`, is answered.
    pub(super) async fn resolve_dns64_a(
        &self,
        aaaa: &[u8],
        lookup: &Deferred,
        packet: &[u8],
        at: Finish<'_>,
        out: &mut [u8],
    ) -> Option<Reply> {
        let mut a = vec![0u8; out.len()];
        let found =
            Box::pin(lookup.resolve(packet, &mut a, at.transport, at.client, at.received_at)).await;
        let Some(found) = found else {
            return self.block.dns64_servfail(at, out);
        };
        out.get_mut(..aaaa.len())?.copy_from_slice(aaaa);
        self.block
            .dns64_synthesize(at, out, aaaa.len(), &a[..found.len])
    }
}
