//! The query path above the listeners: a [`Router`] per port, built once from the port's server
//! blocks ([`crate::config::plan::PortPlan`]), takes a query packet, parses it once, picks the block with
//! the longest matching zone and runs that block's plugin chain in CoreDNS's order:
//!
//! ```text
//!  packet ─parse─▶ malformed? FORMERR/NOTIMP/BADVERS │ class ≠ IN? REFUSED
//!         ─route─▶ block (longest zone; none: REFUSED)
//!   bufsize ─▶ dns64 ─▶ any ─▶ rewrite ─▶ template ─▶ hosts ─▶ kubernetes ─▶ file ─▶ forward (cache
//!   (EDNS size) │             (question)                       (snapshot)  (zones)  │  hit, else
//!               │                                      no plugin: whoami, else    │  deferred)
//!               │                                      fallback rcode             │
//!   response ◀─ log ◀─ dns64 (AAAA from A) ◀─ loadbalance ◀─ rewrite back ◀───────┘
//! ```
//!
//! Which plugins a block has is decided when the router is built: a block is plain fields, and
//! a plugin it does not have costs one test of an empty field. A cluster name under the
//! flag-configured block or kubeadm's Corefile takes the same path: parse, route, snapshot
//! answer, with no allocation and no lock.
//!
//! This file is the chain itself (route, run the steps in order, finish the response), kept in
//! one piece (about 640 lines) because those three share the router's and block's private
//! state. Each plugin's step is in `steps.rs` (`nsid`, `local`, `acl`, `header`, `minimal` and
//! `k8s_external` in `extra.rs`), the `autopath` walk in `search.rs`, the `dns64`
//! lookup in `dns64.rs`, what happens after the answer in [`loadbalance`] and [`querylog`], and
//! the plugins' sans-IO logic in [`plugins`]. What the chain does not own: the sockets
//! ([`crate::serving`]) and the forwarder ([`crate::forward`]).

mod chase;
mod dns64;
mod extra;
pub mod files;
pub mod loadbalance;
pub mod plugins;
pub mod querylog;
mod search;
mod steps;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use clusterdns_zone::answer::{
    answer_query, parse_query, respond_rcode, respond_records, reverse_nxdomain, Malformed,
};
use clusterdns_zone::name::is_subdomain;
use clusterdns_zone::wire::{CLASS_IN, TYPE_ANY, TYPE_HINFO};
use clusterdns_zone::{Answered, Query, Rcode, Snapshot, Transport};
use tokio::runtime::Handle;

use crate::chain::plugins::autopath::SearchPath;
use crate::chain::plugins::chaos::Chaos;
use crate::chain::plugins::dns64::Dns64;
use crate::chain::plugins::hosts::{HostsAnswer, HostsTable};
use crate::chain::plugins::records::{encode_all, Record};
use crate::chain::plugins::rewrite::answer::Lookup;
use crate::chain::plugins::rewrite::{rewrite_request, Applied, Request, RequestRewrite, Rule};
use crate::chain::plugins::template::{self, Template, TemplateResult};
use crate::config::corefile::hosts_table;
use crate::config::plan::{
    BlockPlan, ExtraPlugins, ForwardPlan, HostsPlan, KubernetesRoute, PortPlan,
};
use crate::forward::clock::Clock;
use crate::forward::Forwarder;
use crate::ops::metrics::{Metrics, Outcome, Plugin};
use crate::ops::panics;
use querylog::QueryLog;

use chase::{Chase, CnameLookup};
use dns64::Dns64Wait;
use files::Files;
use search::SearchRest;
pub use steps::Hosts;
use steps::{any_record, chaos_step, kubernetes_step, rcode_step, records_step, whoami_step};

/// TTL of the `any` plugin's HINFO record, as CoreDNS writes it.
const ANY_TTL: u32 = 8482;
/// The CHAOS class (RFC 1035 §3.2.4), which `chaos` answers in.
const CLASS_CH: u16 = 3;

/// A response written into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Its length in bytes.
    pub len: usize,
    /// What the metrics count it as.
    pub outcome: Outcome,
}

impl Reply {
    /// A reply of `len` bytes to a question of `qtype`, counted under label slot `slot`.
    fn new(len: usize, (qtype, rcode): (u16, u16), slot: u8, plugin: Plugin) -> Reply {
        Reply {
            len,
            outcome: Outcome {
                qtype,
                rcode,
                zone: slot,
                plugin,
                dnssec_ok: false,
            },
        }
    }
}

/// What a query arrived with: the zone snapshot, the packet, the transport, the client and
/// when it came.
type Arrival<'a> = (&'a Snapshot, &'a [u8], Transport, SocketAddr, Instant);

/// Whether `query` set the DNSSEC OK bit (`coredns_dns_do_requests_total`).
fn dnssec_ok(query: &Query) -> bool {
    query.edns.as_ref().is_some_and(|edns| edns.dnssec_ok)
}

/// What became of one query.
pub enum Handled {
    /// A response is in the caller's buffer.
    Reply(Reply),
    /// Nothing to send.
    Drop,
    /// A name to forward that the cache could not answer: the caller awaits
    /// [`Deferred::resolve`] off its batch (boxed: the miss path allocates anyway).
    Forward(Box<Deferred>),
}

/// A forwarded query waiting for upstreams, with what its block does to the answer.
pub struct Deferred {
    query: Query,
    /// The query as sent upstream when `rewrite` rules applied to it.
    rewritten: Option<Rewritten>,
    forwarder: Forwarder,
    block: Arc<Block>,
    slot: u8,
    /// The search-path expansions still to try, when `autopath` is walking them.
    autopath: Option<SearchRest>,
    /// An ExternalName's or a template's CNAME answer whose target this forward looks up.
    chase: Option<Box<Chase>>,
    /// What `dns64` does once this forward is answered.
    dns64: Option<Dns64Wait>,
    /// A response cut at a CNAME a `rewrite cname` rule changed: this forward looks its new
    /// target up.
    cname: Option<Box<CnameLookup>>,
    /// Whether the answer is for the chain's own use (not logged): a lookup `dns64` waits on.
    wrapped: bool,
}

/// A query `rewrite` rules applied to: as the rest of the chain sees it, and what the rules
/// do to its response.
struct Rewritten {
    packet: Vec<u8>,
    query: Query,
    applied: Applied,
}

impl Deferred {
    /// Resolves the query through the block's forwarder into `out`; `None` when there is
    /// nothing to send. `packet` is the client's query, `client` its address.
    pub async fn resolve(
        &self,
        packet: &[u8],
        out: &mut [u8],
        transport: Transport,
        client: SocketAddr,
        received_at: Instant,
    ) -> Option<Reply> {
        let resolved = self.resolve_routed(packet, out, transport, client, received_at);
        let mut reply = resolved.await?;
        reply.outcome.dnssec_ok = dnssec_ok(&self.query);
        Some(reply)
    }

    /// [`Deferred::resolve`] by what the chain left to do.
    async fn resolve_routed(
        &self,
        packet: &[u8],
        out: &mut [u8],
        transport: Transport,
        client: SocketAddr,
        received_at: Instant,
    ) -> Option<Reply> {
        let at = Finish {
            query: &self.query,
            packet,
            rewritten: self.rewritten.as_ref().map(|r| &r.applied),
            wrapped: self.wrapped,
            chased: false,
            client,
            transport,
            received_at,
            slot: self.slot,
        };
        if let Some(rest) = &self.autopath {
            return self.resolve_search(rest, at, out).await;
        }
        if let Some(chase) = &self.chase {
            return self.resolve_chase(chase, &self.forwarder, at, out).await;
        }
        if let Some(cname) = &self.cname {
            return self.resolve_cname(cname, at, out).await;
        }
        if let Some(Dns64Wait::A {
            aaaa,
            lookup,
            packet,
        }) = &self.dns64
        {
            return self.resolve_dns64_a(aaaa, lookup, packet, at, out).await;
        }
        let (query, sent, options) = match &self.rewritten {
            Some(r) => (&r.query, r.packet.as_slice(), r.applied.upstream_options()),
            None => (&self.query, packet, &[][..]),
        };
        let len = (self.forwarder)
            .resolve_with(query, options, sent, out, transport)
            .await?;
        let step = Step::Reply {
            len,
            rcode: rcode_of(out),
            plugin: Plugin::Forward,
        };
        if matches!(self.dns64, Some(Dns64Wait::Aaaa)) && self.rewritten.is_none() {
            return self.resolve_dns64_aaaa(at, out, step).await;
        }
        match self.block.finish_looking_up(at, out, step) {
            Ok(reply) => reply,
            Err(cname) => self.resolve_cname(&cname, at, out).await,
        }
    }
}

impl Deferred {
    /// Whether the block's forwarder admits one more query now ([`Forwarder::has_room`]).
    pub fn has_room(&self) -> bool {
        self.forwarder.has_room()
    }

    /// REFUSED to the query, written into `out` (`packet` is the client's query): for a query
    /// the server has no room to send upstream, as `max_concurrent` answers past its bound.
    pub fn refuse(&self, packet: &[u8], out: &mut [u8], transport: Transport) -> Option<Reply> {
        match respond_rcode(&self.query, packet, out, Rcode::Refused, transport) {
            Answered::Response { len, rcode } => Some(Reply::new(
                len,
                (self.query.qtype, rcode as u16),
                self.slot,
                Plugin::Forward,
            )),
            Answered::Drop | Answered::Outside => None,
        }
    }
}

/// What one plugin did with a query.
enum Step {
    /// A response of `len` bytes is in the output buffer.
    Reply {
        len: usize,
        rcode: u16,
        plugin: Plugin,
    },
    /// To be forwarded by this forwarder after a cache miss.
    Forward(Forwarder),
    /// An ExternalName's or a template's CNAME answer whose target this forwarder looks up
    /// after a cache miss.
    Chase(Box<Chase>, Forwarder),
    /// Nothing to send.
    Drop,
}

/// A zone of the router, with its block and metric label slot.
struct RouteZone {
    zone: Box<[u8]>,
    block: usize,
    slot: u8,
}

/// The server blocks of one port, chosen by zone.
pub struct Router {
    /// Longest zone first, so the first match is the longest.
    zones: Box<[RouteZone]>,
    blocks: Box<[Arc<Block>]>,
    /// The label slot of queries no block takes (malformed, or no zone matches).
    default_slot: u8,
}

/// One server block's chain, built.
pub struct Block {
    /// The `bufsize` ceiling on the EDNS payload size of queries.
    bufsize: Option<u16>,
    log: Option<QueryLog>,
    errors: bool,
    /// `dns64`, and the counter of the queries it translated.
    dns64: Option<(Dns64, Arc<AtomicU64>)>,
    any: bool,
    chaos: Option<Chaos>,
    loadbalance: bool,
    rewrite: Box<[Rule]>,
    /// The addresses the block listens on (the `{server_ip}` of `rewrite edns0`).
    listen: Box<[SocketAddr]>,
    /// The search path, and the counter of queries answered from later in it.
    autopath: Option<(SearchPath, Arc<AtomicU64>)>,
    templates: Box<[Template]>,
    hosts: Option<Hosts>,
    /// `nsid`, `local`, `acl`, `header`, `minimal`, `k8s_external` (`extra.rs`).
    extra: ExtraPlugins,
    /// The counters `acl` and `local` add to.
    counts: extra::Counts,
    kubernetes: Option<KubernetesRoute>,
    /// Zones read from master files (`file`).
    file: Option<Files>,
    forward: Option<(ForwardPlan, Forwarder)>,
    /// What reaches the end of the chain gets the client's address (`whoami`), not `fallback`.
    whoami: bool,
    fallback: Rcode,
}

/// Where a query's answer is finished: everything [`Block::finish`] needs to know.
#[derive(Clone, Copy)]
struct Finish<'a> {
    query: &'a Query,
    packet: &'a [u8],
    /// What `rewrite` rules did to the query, when some applied.
    rewritten: Option<&'a Applied>,
    /// `dns64` finishes the response: [`Block::finish`] leaves the log to it.
    wrapped: bool,
    /// The query is a CNAME target's lookup (chain/chase.rs): its own CNAME is not chased.
    chased: bool,
    client: SocketAddr,
    transport: Transport,
    received_at: Instant,
    slot: u8,
}

impl Router {
    /// Builds the chains of `port`'s blocks; their forwarders run on `runtime` and are counted
    /// in `metrics`. Hosts tables start as the plan read them ([`Router::hosts`] to refresh).
    pub fn new(port: &PortPlan, metrics: &Metrics, runtime: &Handle) -> Router {
        let mut zones = Vec::new();
        let mut blocks = Vec::new();
        for (index, plan) in port.blocks.iter().enumerate() {
            let server_label = plan.zones.first().map_or("", |z| z.server_label.as_str());
            for zone in &plan.zones {
                for plugin in plugin_names(plan) {
                    metrics.plugin_enabled(&zone.server_label, &zone.zone_label, plugin);
                }
                zones.push(RouteZone {
                    zone: zone.zone.as_bytes().into(),
                    block: index,
                    slot: metrics.label_slot(&zone.server_label, &zone.zone_label),
                });
            }
            let block = Block::new(plan, &port.listen, server_label, metrics, runtime);
            blocks.push(Arc::new(block));
        }
        zones.sort_by_key(|z| std::cmp::Reverse(z.zone.len()));
        let server = port.blocks.first().and_then(|b| b.zones.first());
        let default_slot = server.map_or(0, |z| metrics.label_slot(&z.server_label, "."));
        Router {
            zones: zones.into(),
            blocks: blocks.into(),
            default_slot,
        }
    }

    /// The forwarders of the blocks, with whether each sends the startup loop probe.
    pub fn forwarders(&self) -> impl Iterator<Item = (&Forwarder, bool)> {
        self.blocks.iter().filter_map(|b| {
            b.forward
                .as_ref()
                .map(|(plan, forwarder)| (forwarder, plan.loop_check))
        })
    }

    /// The hosts plugins of the blocks, for their file watchers.
    pub fn hosts(&self) -> impl Iterator<Item = &Hosts> {
        self.blocks.iter().filter_map(|b| b.hosts.as_ref())
    }

    /// The `file` plugins of the blocks, for their zone file watchers.
    pub fn files(&self) -> impl Iterator<Item = &Files> {
        self.blocks.iter().filter_map(|b| b.file.as_ref())
    }

    /// Answers one query packet from `client` into `out`. A panic on the way is recovered:
    /// the query gets SERVFAIL (`ops::panics`).
    pub fn handle(
        &self,
        snapshot: &Snapshot,
        packet: &[u8],
        out: &mut [u8],
        transport: Transport,
        client: SocketAddr,
        received_at: Instant,
    ) -> Handled {
        let answered = panics::recovering(|| {
            let query = match parse_query(packet) {
                Ok(query) => query,
                Err(Malformed::Drop) => return Handled::Drop,
                Err(Malformed::Reject(_)) => {
                    // The zone's answer function writes the header-only rejection.
                    return match clusterdns_zone::answer(snapshot, packet, out, transport) {
                        Answered::Response { len, rcode } => {
                            self.reply(len, rcode as u16, 0, self.default_slot, Plugin::Server)
                        }
                        _ => Handled::Drop,
                    };
                }
            };
            let at = (snapshot, packet, transport, client, received_at);
            let mut handled = self.answer(&query, at, out);
            if let Handled::Reply(reply) = &mut handled {
                reply.outcome.dnssec_ok = dnssec_ok(&query);
            }
            handled
        });
        // The SERVFAIL reads the query again: if that is what panicked, it panics again, and the
        // query is dropped rather than the process ended.
        answered
            .or_else(|| panics::recovering(|| self.servfail(packet, out, transport)))
            .unwrap_or(Handled::Drop)
    }

    /// The SERVFAIL of a query whose handling panicked.
    fn servfail(&self, packet: &[u8], out: &mut [u8], transport: Transport) -> Handled {
        let Ok(query) = parse_query(packet) else {
            return Handled::Drop;
        };
        self.server_rcode(&query, (packet, transport), out, Rcode::ServFail)
    }

    /// The server's own answer of `rcode` to `query` (no plugin wrote it).
    fn server_rcode(
        &self,
        query: &Query,
        (packet, transport): (&[u8], Transport),
        out: &mut [u8],
        rcode: Rcode,
    ) -> Handled {
        match respond_rcode(query, packet, out, rcode, transport) {
            Answered::Response { len, rcode } => self.reply(
                len,
                rcode as u16,
                query.qtype,
                self.default_slot,
                Plugin::Server,
            ),
            _ => Handled::Drop,
        }
    }

    /// [`Router::handle`] for a well-formed `query`, without the recovery.
    fn answer(
        &self,
        query: &Query,
        (snapshot, packet, transport, client, received_at): Arrival<'_>,
        out: &mut [u8],
    ) -> Handled {
        let route = self
            .zones
            .iter()
            .find(|z| is_subdomain(query.qname(), &z.zone));
        if query.qclass == CLASS_CH {
            // CH: a block's `chaos` answers first; the rest goes on as any other class.
            if let Some(chaos) = route.and_then(|r| self.blocks[r.block].chaos.as_ref()) {
                let slot = route.map_or(self.default_slot, |r| r.slot);
                if let Some(reply) = chaos_step(chaos, query, packet, out, transport, slot) {
                    return match (reply, route) {
                        (Handled::Reply(mut reply), Some(r)) => {
                            let at = (query, packet, transport);
                            reply.len = self.blocks[r.block].add_nsid_to(at, out, reply.len);
                            Handled::Reply(reply)
                        }
                        (reply, _) => reply,
                    };
                }
            }
        }
        // A block with `rewrite class` rules may make another class IN; it refuses the rest.
        let takes_class = |r: &&RouteZone| {
            query.qclass == CLASS_IN
                || self.blocks[r.block]
                    .rewrite
                    .iter()
                    .any(Rule::rewrites_class)
        };
        let Some(route) = route.filter(takes_class) else {
            return self.server_rcode(query, (packet, transport), out, Rcode::Refused);
        };
        let block = &self.blocks[route.block];
        let finish = Finish {
            query,
            packet,
            rewritten: None,
            wrapped: false,
            chased: false,
            client,
            transport,
            received_at,
            slot: route.slot,
        };
        block.handle(snapshot, finish, out)
    }

    fn reply(&self, len: usize, rcode: u16, qtype: u16, slot: u8, plugin: Plugin) -> Handled {
        Handled::Reply(Reply::new(len, (qtype, rcode), slot, plugin))
    }
}

impl Block {
    fn new(
        plan: &BlockPlan,
        listen: &[SocketAddr],
        server_label: &str,
        metrics: &Metrics,
        runtime: &Handle,
    ) -> Block {
        let forward = plan.forward.as_ref().map(|forward| {
            let forwarder = Forwarder::new(
                forward.config.clone(),
                Clock::system(),
                server_label,
                runtime.clone(),
            );
            // A reload's new chains replace this forwarder; its counters then carry on.
            metrics.add_describer(forwarder.describer(metrics.retired()));
            (forward.clone(), forwarder)
        });
        let hosts = plan.hosts.as_ref().map(Hosts::new);
        Block {
            bufsize: plan.bufsize,
            log: plan.log.clone().map(QueryLog::new),
            errors: plan.errors,
            dns64: (plan.dns64.clone()).map(|dns64| (dns64, metrics.dns64_translations())),
            any: plan.any,
            chaos: plan.chaos.clone(),
            loadbalance: plan.loadbalance,
            rewrite: plan.rewrite.clone().into(),
            listen: listen.into(),
            autopath: (plan.autopath.clone()).map(|path| (path, metrics.autopath_successes())),
            templates: plan.templates.clone().into(),
            hosts,
            extra: plan.extra.clone(),
            counts: extra::Counts::new(&plan.extra, server_label, metrics),
            kubernetes: plan.kubernetes.clone(),
            // Nothing after `file` in the chain: CoreDNS refuses what its zones do not hold.
            file: (plan.file.as_ref())
                .map(|f| Files::new(f, plan.forward.is_none() && !plan.whoami)),
            forward,
            whoami: plan.whoami,
            fallback: plan.fallback,
        }
    }

    /// Runs the chain for a routed query and finishes its response.
    fn handle(self: &Arc<Self>, snapshot: &Snapshot, at: Finish, out: &mut [u8]) -> Handled {
        let limited;
        let at = match self
            .bufsize
            .and_then(|size| plugins::bufsize::limit(at.query, size))
        {
            Some(query) => {
                limited = query;
                Finish {
                    query: &limited,
                    ..at
                }
            }
            None => at,
        };
        if self.extra.local.is_some() {
            if let Some(step) = self.local_step(&at, out) {
                return self.conclude(step, None, at, out);
            }
        }
        if let Some((dns64, _)) = &self.dns64 {
            let query = at.query;
            if dns64.intercepts(query.qtype, query.qclass, at.client.ip()) {
                return self.dns64(snapshot, at, out);
            }
        }
        self.run(snapshot, at, out)
    }

    /// The chain after `bufsize` and `dns64`: rewrite, autopath and the plugins that answer.
    fn run(self: &Arc<Self>, snapshot: &Snapshot, at: Finish, out: &mut [u8]) -> Handled {
        let query = at.query;
        // `any` comes before `rewrite` in CoreDNS's order: an ANY query it answers is not
        // rewritten.
        let answered_by_any = self.any && query.qtype == TYPE_ANY;
        let refused =
            |out: &mut [u8]| rcode_step(query, at.packet, out, at.transport, Rcode::Refused);
        if !self.rewrite.is_empty() && !answered_by_any {
            match self.rewrite_question(&at, out) {
                // Other classes than IN are refused, also when a `rewrite class` rule made them.
                Ok(Some(rewritten)) if rewritten.query.qclass != CLASS_IN => {
                    return self.conclude(refused(out), None, at, out)
                }
                Ok(Some(rewritten)) => {
                    let step = {
                        let at = Finish {
                            rewritten: Some(&rewritten.applied),
                            ..at
                        };
                        self.chain(snapshot, &rewritten.query, &rewritten.packet, &at, out)
                    };
                    return self.conclude(step, Some(rewritten), at, out);
                }
                Ok(None) => {}
                Err(step) => return self.conclude(step, None, at, out),
            }
        }
        if query.qclass != CLASS_IN {
            // Only a block with `rewrite class` rules gets here; none made the class IN.
            return self.conclude(refused(out), None, at, out);
        }
        if let Some((path, _)) = &self.autopath {
            let namespace = snapshot.client_namespace(at.client.ip()).map(str::as_bytes);
            if let Some(first) = path.first_expansion(query.qname(), namespace) {
                return self.autopath(snapshot, path, first, at, out);
            }
        }
        let step = self.chain(snapshot, query, at.packet, &at, out);
        self.conclude(step, None, at, out)
    }

    /// Turns a chain step into what the listener does: a finished reply, or a deferred forward.
    fn conclude(
        self: &Arc<Self>,
        step: Step,
        rewritten: Option<Rewritten>,
        at: Finish,
        out: &mut [u8],
    ) -> Handled {
        match step {
            Step::Forward(forwarder) => Handled::Forward(Box::new(Deferred {
                rewritten,
                ..self.defer(&at, forwarder)
            })),
            Step::Chase(chase, forwarder) => Handled::Forward(Box::new(Deferred {
                rewritten,
                chase: Some(chase),
                ..self.defer(&at, forwarder)
            })),
            step => {
                let at = Finish {
                    rewritten: rewritten.as_ref().map(|r| &r.applied),
                    ..at
                };
                match self.finish_looking_up(at, out, step) {
                    Ok(reply) => reply.map_or(Handled::Drop, Handled::Reply),
                    Err(cname) => {
                        let forwarder = cname.forwarder().clone();
                        Handled::Forward(Box::new(Deferred {
                            cname: Some(cname),
                            ..self.defer(&at, forwarder)
                        }))
                    }
                }
            }
        }
    }

    /// A deferred forward of the query of `at` through `forwarder`, with nothing to do after
    /// it yet (the callers set what follows).
    fn defer(self: &Arc<Self>, at: &Finish, forwarder: Forwarder) -> Deferred {
        Deferred {
            query: at.query.clone(),
            rewritten: None,
            forwarder,
            block: self.clone(),
            slot: at.slot,
            autopath: None,
            chase: None,
            dns64: None,
            cname: None,
            wrapped: at.wrapped,
        }
    }

    /// The plugins that answer, in CoreDNS's order; `query`/`packet` are after any rewrite.
    fn chain(
        &self,
        snapshot: &Snapshot,
        query: &Query,
        packet: &[u8],
        at: &Finish,
        out: &mut [u8],
    ) -> Step {
        let transport = at.transport;
        if self.any && query.qtype == TYPE_ANY {
            let records: Vec<Record> = any_record(query.qname()).into_iter().collect();
            return records_step(query, packet, out, transport, false, &records, Plugin::Any);
        }
        if !self.extra.acl.is_empty() {
            if let Some(step) = self.acl_step(query, packet, out, at) {
                return step;
            }
        }
        if !self.templates.is_empty() {
            if let Some(step) = self.template_step(query, packet, out, at) {
                return self.chase(snapshot, query, packet, at, out, step);
            }
        }
        if let Some(hosts) = &self.hosts {
            let bounds = self.cache_ttl_bounds(query.qname(), true);
            if let Some(step) = hosts.step(query, packet, out, transport, bounds) {
                return step;
            }
        }
        if self.extra.k8s_external.is_some() {
            if let Some(step) = self.k8s_external_step(snapshot, query, packet, out, transport) {
                return self.chase(snapshot, query, packet, at, out, step);
            }
        }
        if let Some(kubernetes) = &self.kubernetes {
            if let Some(step) = kubernetes_step(kubernetes, snapshot, query, packet, out, transport)
            {
                return self.chase(snapshot, query, packet, at, out, step);
            }
        }
        if let Some(files) = &self.file {
            if let Some(step) = files.step(query, packet, out, transport) {
                return self.chase(snapshot, query, packet, at, out, step);
            }
        }
        if let Some((plan, forwarder)) = &self.forward {
            if plan.takes(query.qname()) {
                if forwarder.is_loop_probe(query) {
                    return rcode_step(query, packet, out, transport, Rcode::Refused);
                }
                let options = at.rewritten.map_or(&[][..], Applied::upstream_options);
                return match forwarder.answer_cached_with(query, options, packet, out, transport) {
                    Some(len) => Step::Reply {
                        len,
                        rcode: rcode_of(out),
                        plugin: Plugin::Cache,
                    },
                    None => Step::Forward(forwarder.clone()),
                };
            }
        }
        if self.whoami {
            return whoami_step(query, packet, out, at);
        }
        rcode_step(query, packet, out, transport, self.fallback)
    }

    /// The query as the block's `rewrite` rules leave it, `None` when no rule applies; `Err`
    /// with a SERVFAIL step when a rule makes a name that is not one.
    fn rewrite_question(&self, at: &Finish, out: &mut [u8]) -> Result<Option<Rewritten>, Step> {
        let (query, packet, transport) = (at.query, at.packet, at.transport);
        let servfail = |out: &mut [u8]| rcode_step(query, packet, out, transport, Rcode::ServFail);
        let request = Request::of(query, packet, at.client, &self.listen, transport);
        let applied = match rewrite_request(&self.rewrite, &request) {
            RequestRewrite::Unchanged => return Ok(None),
            RequestRewrite::Invalid(_) => return Err(servfail(out)),
            RequestRewrite::Rewritten(applied) => applied,
        };
        let rewritten = applied.query_packet(query, packet);
        match parse_query(&rewritten) {
            Ok(mut parsed) => {
                // The client's EDNS as the chain sees it (after `bufsize`).
                parsed.edns = query.edns;
                Ok(Some(Rewritten {
                    packet: rewritten,
                    query: parsed,
                    applied,
                }))
            }
            Err(_) => Err(servfail(out)),
        }
    }

    /// Rewrites the answer back to the client's question, rotates addresses and logs: the reply
    /// now in `out`, or `None` to send nothing.
    ///
    /// A response a `rewrite cname` rule cut at its new target goes cut when the target's
    /// answer is not in the block's cache: the callers that can wait on the forwarder use
    /// [`Block::finish_looking_up`] instead.
    fn finish(&self, at: Finish, out: &mut [u8], step: Step) -> Option<Reply> {
        match self.finish_looking_up(at, out, step) {
            Ok(reply) => reply,
            Err(cname) => {
                let len = cname.place(out)?;
                let step = Step::Reply {
                    len,
                    rcode: rcode_of(out),
                    plugin: Plugin::Forward,
                };
                self.finish(
                    Finish {
                        rewritten: None,
                        ..at
                    },
                    out,
                    step,
                )
            }
        }
    }

    /// [`Block::finish`], or the lookup a `rewrite cname` rule's new target waits on (`Err`)
    /// when the block's cache does not have its answer.
    fn finish_looking_up(
        &self,
        at: Finish,
        out: &mut [u8],
        step: Step,
    ) -> Result<Option<Reply>, Box<CnameLookup>> {
        let Step::Reply {
            mut len,
            mut rcode,
            plugin,
        } = step
        else {
            return Ok(None);
        };
        if self.extra.minimal || self.extra.header.is_some() {
            len = self.shape(out, len, plugin);
        }
        if let Some(applied) = at.rewritten.filter(|a| a.rewrites_response()) {
            let Some((restored, lookup)) = self.restore(&at, applied, out, len) else {
                return Ok(None);
            };
            len = restored;
            if let Some(lookup) = lookup {
                len = self.follow_cname(&at, out, len, &lookup)?;
            }
            rcode = rcode_of(out);
        }
        if self.loadbalance {
            loadbalance::rotate(&mut out[..len]);
        }
        let reply = Reply::new(len, (at.query.qtype, rcode), at.slot, plugin);
        if at.wrapped {
            return Ok(Some(reply));
        }
        Ok(Some(self.record(at, out, reply)))
    }

    /// Logs the response `reply` in `out` (`log`, `errors`), adds `nsid`'s option, and
    /// returns it.
    fn record(&self, at: Finish, out: &mut [u8], mut reply: Reply) -> Reply {
        let Outcome { rcode, plugin, .. } = reply.outcome;
        if let Some(log) = &self.log {
            log.write(
                at.query,
                at.packet,
                &out[..reply.len],
                at.client,
                at.transport,
                at.received_at,
            );
        }
        if self.extra.nsid.is_some() {
            reply.len = self.add_nsid(&at, out, reply.len);
        }
        if self.errors && rcode == Rcode::ServFail as u16 && plugin == Plugin::Forward {
            tracing::error!(
                name = %clusterdns_zone::name::dotted(at.query.qname()),
                qtype = at.query.qtype,
                "upstreams failed; answered SERVFAIL"
            );
        }
        reply
    }
}

impl Block {
    /// Puts the client's question back into the response of `len` bytes in `out` and applies
    /// the response rules of the `rewrite` rules that applied; SERVFAIL when that cannot be
    /// done or does not fit. With the length, the new target a `cname` rule's CNAME now
    /// points to, whose answer records belong after it ([`Block::follow_cname`]).
    fn restore(
        &self,
        at: &Finish,
        applied: &Applied,
        out: &mut [u8],
        len: usize,
    ) -> Option<(usize, Option<Lookup>)> {
        let query = at.query;
        let mut restored = Vec::with_capacity(len + 64);
        let done =
            applied.restore_response(&self.rewrite, &out[..len], query, at.packet, &mut restored);
        let limit = clusterdns_zone::answer::response_limit(query, at.transport).min(out.len());
        match done {
            Some(done) if restored.len() <= limit => {
                out[..restored.len()].copy_from_slice(&restored);
                Some((restored.len(), done.lookup))
            }
            _ => match respond_rcode(query, at.packet, out, Rcode::ServFail, at.transport) {
                Answered::Response { len, .. } => Some((len, None)),
                _ => None,
            },
        }
    }

    /// The TTL bounds the block's cache puts on an answer for `qname` (`None`: not cached). In
    /// CoreDNS the cache sits before `hosts` and `template`, so their answers leave it with TTLs
    /// as a cached answer's; clusterdns does not store them (they cost less to make again) but
    /// writes the same TTLs.
    fn cache_ttl_bounds(&self, qname: &[u8], positive: bool) -> Option<(u32, u32)> {
        let cache = &self.forward.as_ref()?.0.config.cache;
        if !cache.scope.allows(qname, positive) {
            return None;
        }
        Some(match positive {
            true => (cache.min_ttl.min(cache.max_ttl), cache.max_ttl),
            false => (
                cache.min_denial_ttl.min(cache.max_denial_ttl),
                cache.max_denial_ttl,
            ),
        })
    }
}

/// The plugins of a block, by CoreDNS name (`coredns_plugin_enabled`).
fn plugin_names(plan: &BlockPlan) -> Vec<&'static str> {
    let present = [
        ("bufsize", plan.bufsize.is_some()),
        ("errors", plan.errors),
        ("log", plan.log.is_some()),
        ("dns64", plan.dns64.is_some()),
        ("any", plan.any),
        ("chaos", plan.chaos.is_some()),
        ("loadbalance", plan.loadbalance),
        ("rewrite", !plan.rewrite.is_empty()),
        ("autopath", plan.autopath.is_some()),
        ("template", !plan.templates.is_empty()),
        ("hosts", plan.hosts.is_some()),
        ("nsid", plan.extra.nsid.is_some()),
        ("local", plan.extra.local.is_some()),
        ("acl", !plan.extra.acl.is_empty()),
        ("header", plan.extra.header.is_some()),
        ("minimal", plan.extra.minimal),
        ("k8s_external", plan.extra.k8s_external.is_some()),
        ("kubernetes", plan.kubernetes.is_some()),
        ("file", plan.file.is_some()),
        (
            "cache",
            plan.forward
                .as_ref()
                .is_some_and(|f| !f.config.cache.scope.zones.is_empty()),
        ),
        ("loop", plan.forward.as_ref().is_some_and(|f| f.loop_check)),
        ("forward", plan.forward.is_some()),
        ("whoami", plan.whoami),
    ];
    present
        .iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect()
}

/// The rcode of a response in `out` (header bits only).
fn rcode_of(out: &[u8]) -> u16 {
    out.get(3).map_or(0, |b| u16::from(b & 0x0F))
}
