//! `autopath` in the chain: walking the search path for a query that is its first expansion
//! ([`crate::chain::plugins::autopath`] says which queries those are and which names follow).
//!
//! The asked name goes through the chain as usual; if it does not exist, each later expansion
//! does, in order, until one is not NXDOMAIN. Names in the cluster zone are answered from the
//! snapshot on the spot. The first expansion that needs an upstream (a cache miss) turns the
//! rest of the walk into a [`Deferred`] forward that goes on off the worker's batch. The answer
//! found is rebuilt for the client's question with a CNAME to the name that exists in front
//! ([`crate::chain::plugins::message::rebuild`]). When every expansion fails, the client gets
//! the asked name's own NXDOMAIN, as without autopath. A query a `rewrite` rule changed is not
//! walked.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use clusterdns_zone::answer::{respond_rcode, response_limit};
use clusterdns_zone::{Answered, Query, Rcode, Snapshot};

use super::chase::requery;
use super::{rcode_of, Block, Deferred, Finish, Handled, Reply, Step};
use crate::chain::plugins::autopath::{FirstExpansion, SearchPath};
use crate::chain::plugins::message::rebuild;
use crate::ops::metrics::Plugin;

/// The NXDOMAIN rcode, as a response header carries it.
const NXDOMAIN: u16 = Rcode::NxDomain as u16;

/// The rest of a search-path walk that waits on upstreams.
pub(super) struct SearchRest {
    /// The expansions still to try, as query packets with the client's ID and EDNS, parsed.
    expansions: Vec<(Vec<u8>, Query)>,
    /// The response to the asked name, sent when every expansion fails.
    first: Vec<u8>,
}

impl Block {
    /// Answers a query that is the `first` element of its search `path`: as asked, and when
    /// that does not exist, through the later expansions.
    pub(super) fn autopath(
        self: &Arc<Self>,
        snapshot: &Snapshot,
        path: &SearchPath,
        first: FirstExpansion,
        at: Finish,
        out: &mut [u8],
    ) -> Handled {
        let step = self.chain(snapshot, at.query, at.packet, &at, out);
        if !matches!(
            step,
            Step::Reply {
                rcode: NXDOMAIN,
                ..
            }
        ) {
            return self.conclude(step, None, at, out);
        }
        let names = path.expansions(first);
        for (i, name) in names.iter().enumerate() {
            let Some((packet, query)) = requery(at.packet, at.query, name) else {
                continue;
            };
            match self.chain(snapshot, &query, &packet, &at, out) {
                step if walks_on(&step) => {}
                Step::Reply { len, rcode, plugin } => {
                    return (self.autopath_answer(at, out, len, rcode, plugin))
                        .map_or(Handled::Drop, Handled::Reply);
                }
                Step::Forward(forwarder) => {
                    let expansions = (names[i..].iter())
                        .filter_map(|name| requery(at.packet, at.query, name))
                        .collect();
                    let first = match self.chain(snapshot, at.query, at.packet, &at, out) {
                        Step::Reply { len, .. } => out[..len].to_vec(),
                        _ => Vec::new(),
                    };
                    return Handled::Forward(Box::new(Deferred {
                        autopath: Some(SearchRest { expansions, first }),
                        ..self.defer(&at, forwarder)
                    }));
                }
                Step::Chase(chase, _) => {
                    // The expansion is an ExternalName out of the zone or a template's CNAME:
                    // its answer alone (one deferred lookup per query, and this one is the
                    // walk's).
                    let base = chase.base();
                    out[..base.len()].copy_from_slice(base);
                    let rcode = rcode_of(base);
                    return (self.autopath_answer(at, out, base.len(), rcode, chase.plugin()))
                        .map_or(Handled::Drop, Handled::Reply);
                }
                Step::Drop => {}
            }
        }
        let step = self.chain(snapshot, at.query, at.packet, &at, out);
        self.conclude(step, None, at, out)
    }

    /// Turns the response of `len` bytes in `out` to an expansion into the response to the
    /// client's question, a CNAME to the expansion first, and finishes it.
    fn autopath_answer(
        &self,
        at: Finish,
        out: &mut [u8],
        len: usize,
        rcode: u16,
        plugin: Plugin,
    ) -> Option<Reply> {
        let mut rebuilt = Vec::with_capacity(len + 64);
        let limit = response_limit(at.query, at.transport).min(out.len());
        let len = match rebuild(
            &out[..len],
            at.query,
            at.packet,
            &mut rebuilt,
            true,
            &|n, _| Some(n),
        ) {
            Some(()) if rebuilt.len() <= limit => {
                out[..rebuilt.len()].copy_from_slice(&rebuilt);
                rebuilt.len()
            }
            Some(()) => truncated(&rebuilt, at.query, out)?,
            None => match respond_rcode(at.query, at.packet, out, Rcode::ServFail, at.transport) {
                Answered::Response { len, .. } => len,
                _ => return None,
            },
        };
        if let Some((_, successes)) = &self.autopath {
            successes.fetch_add(1, Ordering::Relaxed);
        }
        self.finish(at, out, Step::Reply { len, rcode, plugin })
    }
}

impl Deferred {
    /// Goes on with a search-path walk through the block's forwarder: each expansion from the
    /// cache or the upstreams, until one is not NXDOMAIN; else the asked name's own answer.
    pub(super) async fn resolve_search(
        &self,
        rest: &SearchRest,
        at: Finish<'_>,
        out: &mut [u8],
    ) -> Option<Reply> {
        let transport = at.transport;
        let takes = |query: &Query| {
            (self.block.forward.as_ref()).is_some_and(|(plan, _)| plan.takes(query.qname()))
        };
        for (sent, query) in rest.expansions.iter().filter(|(_, q)| takes(q)) {
            let len = match self.forwarder.answer_cached(query, sent, out, transport) {
                Some(len) => len,
                None => self.forwarder.resolve(query, sent, out, transport).await?,
            };
            let rcode = rcode_of(out);
            // Past NXDOMAIN, and past a SERVFAIL the forwarder makes when no upstream answers,
            // which CoreDNS's forward returns without writing.
            if rcode != NXDOMAIN && rcode != Rcode::ServFail as u16 {
                return self
                    .block
                    .autopath_answer(at, out, len, rcode, Plugin::Forward);
            }
        }
        let first = out.get_mut(..rest.first.len())?;
        first.copy_from_slice(&rest.first);
        let step = Step::Reply {
            len: rest.first.len(),
            rcode: rcode_of(&rest.first),
            plugin: Plugin::Kubernetes,
        };
        self.block.finish(at, out, step)
    }
}

/// Whether the walk goes on past a step, as CoreDNS's `autopath` does: past NXDOMAIN, and past
/// a query nothing in the chain answered (the end of the chain's SERVFAIL or REFUSED).
fn walks_on(step: &Step) -> bool {
    match step {
        Step::Reply { rcode, plugin, .. } => *rcode == NXDOMAIN || *plugin == Plugin::Server,
        Step::Drop => true,
        Step::Forward(_) | Step::Chase(..) => false,
    }
}

/// A response too long for the client: its header and question with TC set and no records,
/// so that the client asks again over TCP.
fn truncated(response: &[u8], query: &Query, out: &mut [u8]) -> Option<usize> {
    let len = query.question_end();
    let header = out.get_mut(..len)?;
    header.copy_from_slice(response.get(..len)?);
    header[2] |= 0x02;
    header[6..12].fill(0);
    Some(len)
}
