//! Where the plugins of issue 19 ("The plugins operators add to their Corefile") act in a
//! block's chain, in CoreDNS's order:
//!
//! ```text
//!  nsid ─ bufsize ─ log ─ local ─ dns64 ─ any ─ loadbalance ─ rewrite ─ autopath ─ acl ─ cache
//!    ─ header ─ minimal ─ template ─ hosts ─ k8s_external ─ kubernetes ─ forward ─ whoami
//! ```
//!
//! - `local` answers before `dns64` and `rewrite` see the query ([`Block::local_step`]);
//! - `acl` decides before the plugins that answer, on the name as `rewrite` left it
//!   ([`Block::acl_step`]);
//! - `k8s_external` answers just before the cluster zone ([`Block::k8s_external_step`]);
//! - `header` and `minimal` change the answers of the plugins after them, not the rcode a
//!   chain ends with, nor what `local`, `acl`, `any` or `chaos` write ([`Block::shape`]);
//! - `nsid` adds its option to whatever the block sends, `chaos` answers included
//!   ([`Block::add_nsid`]).
//!
//! Each is a field of the block's [`ExtraPlugins`]: a block without them pays a test of an
//! empty field each.

use std::sync::atomic::Ordering;

use clusterdns_zone::answer::response_limit;
use clusterdns_zone::WireName;

use super::*;
use crate::chain::plugins::acl::{self, Action, EDE_BLOCKED, EDE_FILTERED};
use crate::chain::plugins::edns::{add_option, OPTION_EDE};
use crate::chain::plugins::k8s_external::External;
use crate::ops::metrics::AclZone;

impl Block {
    /// `local`'s answer for a local name (see [`plugins::local`]), else `None`.
    pub(super) fn local_step(&self, at: &Finish, out: &mut [u8]) -> Option<Step> {
        let local = self.extra.local.as_ref()?;
        let query = at.query;
        let (rcode, body) = local.answer(query.qname(), query.qtype)?;
        if let Some(localhost) =
            (self.counts.localhost.as_ref()).filter(|_| local.counts(query.qname()))
        {
            localhost.fetch_add(1, Ordering::Relaxed);
        }
        let done = (rcode, false);
        let written = respond_records(
            query,
            at.packet,
            out,
            at.transport,
            done,
            &body.bytes,
            body.counts,
        );
        Some(reply_step(written, Plugin::Local))
    }

    /// What the block's `acl` rules make of the query: a refusal, an empty answer or nothing
    /// to send, or `None` to go on.
    pub(super) fn acl_step(
        &self,
        query: &Query,
        packet: &[u8],
        out: &mut [u8],
        at: &Finish,
    ) -> Option<Step> {
        let decided = acl::decide(&self.extra.acl, query.qname(), query.qtype, at.client.ip());
        let Some((action, zone)) = decided else {
            if let Some(allowed) = &self.counts.allowed {
                allowed.fetch_add(1, Ordering::Relaxed);
            }
            return None;
        };
        let counters = self.counts.acl.iter().find(|(z, _)| z == zone);
        let count = |field: fn(&AclZone) -> &AtomicU64| {
            if let Some((_, counters)) = counters {
                field(counters).fetch_add(1, Ordering::Relaxed);
            }
        };
        let (rcode, ede) = match action {
            Action::Drop => {
                count(|c| &c.dropped);
                return Some(Step::Drop);
            }
            Action::Block => {
                count(|c| &c.blocked);
                (Rcode::Refused, EDE_BLOCKED)
            }
            Action::Filter => {
                count(|c| &c.filtered);
                (Rcode::NoError, EDE_FILTERED)
            }
            Action::Allow => return None,
        };
        let written = respond_rcode(query, packet, out, rcode, at.transport);
        let step = reply_step(written, Plugin::Acl);
        let Step::Reply { len, rcode, plugin } = step else {
            return Some(step);
        };
        // RFC 8914 §2: INFO-CODE, and no EXTRA-TEXT.
        let limit = response_limit(query, at.transport);
        let len = add_option(out, len, limit, OPTION_EDE, &ede.to_be_bytes()).unwrap_or(len);
        Some(Step::Reply { len, rcode, plugin })
    }

    /// `k8s_external`'s answer for a name of its zones, else `None`. SERVFAIL until the zone
    /// has synced, as for the cluster zone.
    pub(super) fn k8s_external_step(
        &self,
        snapshot: &Snapshot,
        query: &Query,
        packet: &[u8],
        out: &mut [u8],
        transport: Transport,
    ) -> Option<Step> {
        let external = self.extra.k8s_external.as_ref()?;
        let External::Answer(rcode, body) = external.answer(snapshot, query.qname(), query.qtype)
        else {
            return None;
        };
        if !snapshot.is_synced() {
            return Some(rcode_step(query, packet, out, transport, Rcode::ServFail));
        }
        let done = (rcode, true);
        let written = respond_records(
            query,
            packet,
            out,
            transport,
            done,
            &body.bytes,
            body.counts,
        );
        Some(reply_step(written, Plugin::K8sExternal))
    }

    /// The answer of `len` bytes in `out` as `header` and `minimal` leave it, when `plugin`
    /// comes after them in CoreDNS's order; returns its length.
    pub(super) fn shape(&self, out: &mut [u8], len: usize, plugin: Plugin) -> usize {
        use Plugin::*;
        let after = matches!(
            plugin,
            Template | Hosts | K8sExternal | Kubernetes | Cache | Forward | Whoami
        );
        // `dns64` comes before both; its answer is built on the AAAA answer of the plugins
        // after them, whose flags it keeps.
        if let Some(header) = &self.extra.header {
            if after || plugin == Dns64 {
                header.apply(&mut out[..len]);
            }
        }
        match self.extra.minimal && after {
            true => plugins::minimal::minimize(out, len),
            false => len,
        }
    }

    /// The response of `len` bytes in `out` with `nsid`'s option when the client asked for it;
    /// returns its length.
    pub(super) fn add_nsid(&self, at: &Finish, out: &mut [u8], len: usize) -> usize {
        self.add_nsid_to((at.query, at.packet, at.transport), out, len)
    }

    /// [`Block::add_nsid`] for the response to `query` (`packet`) over `transport`: also for a
    /// `chaos` answer, which the router finishes itself.
    pub(super) fn add_nsid_to(
        &self,
        (query, packet, transport): (&Query, &[u8], Transport),
        out: &mut [u8],
        len: usize,
    ) -> usize {
        match &self.extra.nsid {
            Some(nsid) => {
                let limit = response_limit(query, transport).min(out.len());
                nsid.apply(packet, out, len, limit)
            }
            None => len,
        }
    }
}

/// The counters a block's `acl` and `local` add to (CoreDNS's; see `ops::metrics::plugins`).
#[derive(Default)]
pub(super) struct Counts {
    /// Per zone of the block's `acl` rules.
    acl: Vec<(WireName, Arc<AclZone>)>,
    /// Queries `acl` let on, when the block has `acl`.
    allowed: Option<Arc<AtomicU64>>,
    /// `local`'s answers below `localhost.` and to `localhost.<domain>`, when it has `local`.
    localhost: Option<Arc<AtomicU64>>,
}

impl Counts {
    /// The counters of the plugins of `extra` in the server labelled `server`.
    pub(super) fn new(extra: &ExtraPlugins, server: &str, metrics: &Metrics) -> Counts {
        let counters = &metrics.plugins;
        let mut acl: Vec<(WireName, Arc<AclZone>)> = Vec::new();
        for zone in extra.acl.iter().flat_map(|rule| rule.zones.iter()) {
            if !acl.iter().any(|(z, _)| z == zone) {
                let label = zone.to_dotted();
                acl.push((zone.clone(), counters.acl_zone(server, &label)));
            }
        }
        Counts {
            acl,
            allowed: (!extra.acl.is_empty()).then(|| counters.acl_allowed(server)),
            localhost: extra.local.map(|_| counters.localhost()),
        }
    }
}

/// The step of a response a plugin wrote.
fn reply_step(written: Answered, plugin: Plugin) -> Step {
    match written {
        Answered::Response { len, rcode } => Step::Reply {
            len,
            rcode: rcode as u16,
            plugin,
        },
        _ => Step::Drop,
    }
}
