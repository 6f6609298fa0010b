//! Following a CNAME through the block's own chain: an ExternalName answer whose chain leaves
//! the zone, a `k8s_external` CNAME to a load balancer's host name, a `file` zone's CNAME to a
//! name outside that zone (CoreDNS's `file` looks such a target up through the server), and a
//! template's CNAME answer to A or AAAA ([`Chase`]); and an answer a `rewrite cname` rule cut at
//! the CNAME target it changed ([`CnameLookup`]).
//!
//! Completing an ExternalName answer whose CNAME chain leaves the cluster zone: the target is
//! looked up through the block's own chain (template, hosts, and above all `forward` with its
//! cache) and its answer records are appended under the CNAME, as CoreDNS's `kubernetes` plugin
//! does with its upstream lookup. A Pod's resolver (glibc, musl) does not chase a CNAME itself,
//! so without this an ExternalName to a managed database gives it no address.
//!
//! Limits: the target is outside the zone that answered (which has already followed the chain
//! inside it, at most `MAX_CNAME_CHAIN` links, and stopped at the first name outside it); one
//! lookup per query, no more: an answer to that lookup is never completed in turn, so zones
//! whose CNAMEs point at each other cannot make it go round. When the target does
//! not resolve (NXDOMAIN, SERVFAIL, no upstream, a name the block does not forward), the
//! answer is the CNAME chain alone, NOERROR, as CoreDNS answers it. When the completed answer
//! does not fit the client's UDP limit, the CNAME chain goes alone with TC set.
//!
//! A template whose answer to an A or AAAA question holds a CNAME: CoreDNS's `template` looks
//! the CNAME's target up, with the question's type, through its own server (the `upstream`
//! every template has) and puts the answer records after it, copying the TC bit. Here the
//! target goes through the block's own chain, wherever it is (another template, hosts, the
//! cluster zone, the cache and forwarder). Only the first CNAME of the answer is chased (a name
//! has one CNAME, RFC 2181 §10.1), and the records found go at the end of the answer section.
//! The lookup of a target is not chased again (`Finish::chased`), so a template that answers
//! its own target with a CNAME costs one lookup, not a loop; CoreDNS's server would recurse.

use clusterdns_zone::answer::{parse_query, response_limit};
use clusterdns_zone::wire::{HEADER_LEN, TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_CNAME};
use clusterdns_zone::{Query, Rcode, Snapshot, Transport, WireName};

use super::{rcode_of, Block, Deferred, Finish, Reply, Step};
use crate::chain::plugins::message::{append_answers, cname_chain_end, first_cname_target};
use crate::chain::plugins::rewrite::answer::Lookup;
use crate::forward::Forwarder;
use crate::ops::metrics::Plugin;

/// A CNAME answer (ExternalName, `k8s_external`, `file` or template) waiting for its target's
/// lookup.
pub(super) struct Chase {
    /// The plugin's answer: the zone's CNAME chain, or the template's records.
    base: Vec<u8>,
    /// The lookup of the target, as a query packet with the client's ID, flags and EDNS.
    packet: Vec<u8>,
    query: Query,
    /// The plugin that answered.
    plugin: Plugin,
}

impl Chase {
    /// The plugin's answer alone, without the target's records.
    pub(super) fn base(&self) -> &[u8] {
        &self.base
    }

    /// The plugin that answered.
    pub(super) fn plugin(&self) -> Plugin {
        self.plugin
    }
}

/// Room for a lookup's answer (it is not sent to a client, so TCP's limit).
const LOOKUP_BUFFER: usize = u16::MAX as usize;

impl Block {
    /// The answer `step` of the zone, `k8s_external`, a `file` zone or a template for `query`,
    /// completed with the target's records when it is a CNAME chain that leaves the zone or a
    /// template's CNAME answer to A or AAAA (see the module docs).
    pub(super) fn chase(
        &self,
        snapshot: &Snapshot,
        query: &Query,
        packet: &[u8],
        at: &Finish,
        out: &mut [u8],
        step: Step,
    ) -> Step {
        let Step::Reply { len, rcode, plugin } = step else {
            return step;
        };
        let chain_end = || cname_chain_end(&out[..len], query.question_end());
        let target = match plugin {
            _ if at.chased => None,
            Plugin::Kubernetes | Plugin::K8sExternal | Plugin::File
                if rcode == 0 && !matches!(query.qtype, TYPE_CNAME | TYPE_ANY) =>
            {
                match plugin {
                    // The first answer record is the question's (a two-byte pointer to it): a
                    // CNAME chain, and the zone says whether it left the zone.
                    Plugin::File => {
                        let at = query.question_end() + 2;
                        let cname = out.get(at..at + 2) == Some(&TYPE_CNAME.to_be_bytes()[..]);
                        let leaves = self.file.as_ref().is_some_and(|f| f.leaves_zone(query));
                        if cname && leaves {
                            chain_end()
                        } else {
                            None
                        }
                    }
                    _ => chain_end(),
                }
            }
            Plugin::Template if matches!(query.qtype, TYPE_A | TYPE_AAAA) => {
                first_cname_target(&out[..len], query.question_end())
            }
            _ => None,
        };
        let Some(target) = target else {
            return step;
        };
        let Some(target) = WireName::from_wire(&target.to_ascii_lowercase()) else {
            return step;
        };
        // The zone followed its own chain as far as the zone goes; a CNAME to the name itself
        // is a loop (RFC 1034 §3.6.2), with nothing to look up.
        if (plugin == Plugin::Kubernetes && snapshot.in_zone(target.as_bytes()))
            || target.as_bytes() == query.qname()
        {
            return step;
        }
        let Some((lookup_packet, lookup)) = requery(packet, query, &target) else {
            return step;
        };
        let mut found = vec![0u8; LOOKUP_BUFFER];
        let lookup_at = Finish {
            transport: Transport::Tcp,
            chased: true,
            ..*at
        };
        let looked_up = self.chain(snapshot, &lookup, &lookup_packet, &lookup_at, &mut found);
        match looked_up {
            Step::Reply { len: found_len, .. } => {
                let base = out[..len].to_vec();
                let len = complete(&base, &found[..found_len], query, at, out);
                Step::Reply { len, rcode, plugin }
            }
            Step::Forward(forwarder) => Step::Chase(
                Box::new(Chase {
                    base: out[..len].to_vec(),
                    packet: lookup_packet,
                    query: lookup,
                    plugin,
                }),
                forwarder,
            ),
            Step::Drop | Step::Chase(..) => step,
        }
    }
}

impl Deferred {
    /// Looks the target of `chase` up through the block's forwarder and finishes the
    /// completed answer.
    pub(super) async fn resolve_chase(
        &self,
        chase: &Chase,
        forwarder: &Forwarder,
        at: Finish<'_>,
        out: &mut [u8],
    ) -> Option<Reply> {
        let mut found = vec![0u8; LOOKUP_BUFFER];
        let transport = Transport::Tcp;
        let found_len =
            (forwarder.resolve(&chase.query, &chase.packet, &mut found, transport)).await;
        let len = match found_len {
            Some(found_len) => complete(&chase.base, &found[..found_len], at.query, &at, out),
            None => place(&chase.base, out)?,
        };
        let step = Step::Reply {
            len,
            rcode: rcode_of(&out[..len]),
            plugin: chase.plugin,
        };
        self.block.finish(at, out, step)
    }
}

/// Writes into `out` the CNAME answer `base` completed with the answer records of `found`
/// (the target's lookup): `base` alone when the lookup found nothing, and `base` with TC set
/// when the whole does not fit the client's limit. Returns the length written.
fn complete(base: &[u8], found: &[u8], query: &Query, at: &Finish, out: &mut [u8]) -> usize {
    let limit = response_limit(query, at.transport).min(out.len());
    let mut whole = Vec::with_capacity(base.len() + found.len());
    let answered = rcode_of(found) == Rcode::NoError as u16 && found.get(6..8) != Some(&[0, 0]);
    if answered && append_answers(base, found, &mut whole).is_some() && whole.len() <= limit {
        out[..whole.len()].copy_from_slice(&whole);
        return whole.len();
    }
    let len = place(base, out).unwrap_or(0);
    if answered && len > 0 && whole.len() > limit {
        // RFC 2181 §9: the answer did not fit.
        out[2] |= 0x02;
    }
    len
}

/// Copies `response` to the start of `out`; its length.
fn place(response: &[u8], out: &mut [u8]) -> Option<usize> {
    out.get_mut(..response.len())?.copy_from_slice(response);
    Some(response.len())
}

/// The client's query with its name replaced by `name`: the same ID, flags, type, class and
/// EDNS (its payload size as `query` has it); `None` if that does not parse (a name too long).
pub(super) fn requery(packet: &[u8], query: &Query, name: &WireName) -> Option<(Vec<u8>, Query)> {
    let name_end = query.question_end() - 4;
    let mut asked = Vec::with_capacity(packet.len() + name.as_bytes().len());
    asked.extend_from_slice(packet.get(..HEADER_LEN)?);
    asked.extend_from_slice(name.as_bytes());
    asked.extend_from_slice(packet.get(name_end..)?);
    let mut parsed = parse_query(&asked).ok()?;
    // The client's EDNS as the chain sees it (after `bufsize`).
    parsed.edns = query.edns;
    Some((asked, parsed))
}

/// An answer a `rewrite cname` rule cut at the CNAME target it changed, waiting for the new
/// target's lookup through the block's forwarder (CoreDNS's rule looks it up through the
/// server and puts its answer records after the CNAME).
pub(super) struct CnameLookup {
    /// The answer as the client gets it, ending at the rewritten CNAME.
    cut: Vec<u8>,
    /// The lookup of the new target, with the client's ID, flags and EDNS.
    packet: Vec<u8>,
    query: Query,
    forwarder: Forwarder,
}

impl CnameLookup {
    /// The forwarder the lookup goes to.
    pub(super) fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }

    /// Writes the cut answer alone into `out`; its length.
    pub(super) fn place(&self, out: &mut [u8]) -> Option<usize> {
        place(&self.cut, out)
    }
}

impl Block {
    /// Completes the answer of `len` bytes in `out`, which a `rewrite cname` rule cut at the
    /// CNAME target `lookup` names, with that target's answer records from the block's cache:
    /// the new length. `Err` with the lookup to wait on when the cache does not have it. A
    /// target the block does not forward is not looked up (the answer stays cut), nor is a
    /// target in the cluster zone (the snapshot is not at hand here).
    pub(super) fn follow_cname(
        &self,
        at: &Finish,
        out: &mut [u8],
        len: usize,
        lookup: &Lookup,
    ) -> Result<usize, Box<CnameLookup>> {
        let Some((plan, forwarder)) = &self.forward else {
            return Ok(len);
        };
        if !plan.takes(lookup.name.as_bytes()) {
            return Ok(len);
        }
        let Some((packet, query)) = requery_as(at.packet, at.query, &lookup.name, lookup.qtype)
        else {
            return Ok(len);
        };
        let mut found = vec![0u8; LOOKUP_BUFFER];
        match forwarder.answer_cached(&query, &packet, &mut found, Transport::Tcp) {
            Some(found_len) => {
                let cut = out[..len].to_vec();
                Ok(complete(&cut, &found[..found_len], at.query, at, out))
            }
            None => Err(Box::new(CnameLookup {
                cut: out[..len].to_vec(),
                packet,
                query,
                forwarder: forwarder.clone(),
            })),
        }
    }
}

impl Deferred {
    /// Looks the new target of `cname` up through the block's forwarder and finishes the
    /// completed answer (already in the client's terms: no rewrite is reverted again).
    pub(super) async fn resolve_cname(
        &self,
        cname: &CnameLookup,
        at: Finish<'_>,
        out: &mut [u8],
    ) -> Option<Reply> {
        let mut found = vec![0u8; LOOKUP_BUFFER];
        let looked_up = (cname.forwarder)
            .resolve(&cname.query, &cname.packet, &mut found, Transport::Tcp)
            .await;
        let len = match looked_up {
            Some(found_len) => complete(&cname.cut, &found[..found_len], at.query, &at, out),
            None => place(&cname.cut, out)?,
        };
        let step = Step::Reply {
            len,
            rcode: rcode_of(&out[..len]),
            plugin: Plugin::Forward,
        };
        let at = Finish {
            rewritten: None,
            ..at
        };
        self.block.finish(at, out, step)
    }
}

/// [`requery`] asking for `qtype`.
fn requery_as(
    packet: &[u8],
    query: &Query,
    name: &WireName,
    qtype: u16,
) -> Option<(Vec<u8>, Query)> {
    let (mut asked, parsed) = requery(packet, query, name)?;
    let at = parsed.question_end() - 4;
    asked
        .get_mut(at..at + 2)?
        .copy_from_slice(&qtype.to_be_bytes());
    let mut reparsed = parse_query(&asked).ok()?;
    reparsed.edns = query.edns;
    Some((asked, reparsed))
}

#[cfg(test)]
mod tests;
