//! Forwarding of names outside the cluster zone to upstream resolvers, behind a cache
//! (ARCHITECTURE.md, "Outside the zone"; CoreDNS's `forward`, `cache` and `loop` plugins).
//!
//! ```text
//!  listener ──Answered::Outside──▶ Forwarder::answer_cached ──hit──▶ response (sync, no alloc)
//!                                        │ miss          (a prefetch, or a stale answer in
//!                                        │                `immediate` mode, starts a fetch
//!                                        ▼                with no waiter in the background)
//!                                        ▼
//!                     Forwarder::resolve (tokio): admit (≤ max_concurrent, else REFUSED)
//!                                        │
//!                     in flight for this key?  yes: wait for that fetch   no: start one
//!                                        ▼
//!   fetch: upstreams in policy order, skipping those down ──UDP──▶ TC? ──TCP──▶ validated answer
//!          (a tls:// upstream: a query on one of its pooled TLS connections instead)
//!          ├─ answer  ──▶ cache (if cacheable) ──▶ every waiter writes it with its own ID/case
//!          └─ all failed (or neither NOERROR nor NXDOMAIN) ──▶ a stale entry else SERVFAIL
//! ```
//!
//! [`config`] holds the flags; [`resolv`] reads upstreams from resolv.conf; [`message`] builds
//! upstream queries and validates answers; [`upstream`] exchanges them and keeps health;
//! [`pool`] keeps the TCP connections of node-local mode to the cluster DNS and those of
//! `tls://` upstreams; [`tls`] builds the TLS client and makes the handshake (RFC 7858);
//! [`cache`] stores answers; [`clock`] is the cache's time; [`metrics`] keeps the counters and
//! describes them at a scrape.
//!
//! In node-local mode ([`config::ClusterRoute`]) the names of the cluster domain and the reverse
//! zones are fetched from the cluster DNS over the [`pool`] instead of from the upstreams; the
//! cache, coalescing and the bound on waiting clients are the same for both routes.
//!
//! Loop detection is done twice: at configuration time an upstream equal to one of our own
//! listen addresses is refused ([`config::check_no_loop`]); at startup
//! [`Forwarder::check_loop`] sends each upstream a `<random>.<random>.zone-loop-check.` HINFO
//! query, and the listeners report it with [`Forwarder::is_loop_probe`] if it comes back to
//! us through another resolver.

pub mod cache;
pub mod clock;
pub mod config;
pub mod message;
pub mod metrics;
pub mod pool;
pub mod resolv;
pub mod tls;
pub mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Instant;

use clusterdns_zone::answer::respond_rcode;
use clusterdns_zone::wire::{CLASS_IN, TYPE_HINFO, TYPE_NS};
use clusterdns_zone::{Answered, Query, Rcode, Transport};
use rand::seq::SliceRandom;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::ops::metrics::{Describer, Exposition, Retired};

use cache::{cacheability, Answer, Cache, CacheEntry, CacheKey, CacheKeyRef, STALE_TTL};
use clock::Clock;
use config::{ForwardConfig, Policy};
use metrics::ForwardStats;
use pool::TcpPool;
use upstream::{ConnCache, Upstream};

/// Upstreams tried for one query at most (each once, with its own timeout).
const MAX_ATTEMPTS: usize = 3;

/// What every client waiting on one upstream fetch gets.
#[derive(Clone, Debug)]
enum Resolution {
    /// A cached answer: served with its remaining TTL.
    Cached(Arc<CacheEntry>),
    /// An answer not to be cached: served with the upstream's TTLs.
    Uncached(Arc<Answer>),
    /// Every upstream failed (or answered other than NOERROR or NXDOMAIN); an expired entry
    /// stands in, with TTL 30 s.
    Stale(Arc<CacheEntry>),
    /// Every upstream failed and there is nothing stale: SERVFAIL.
    Failed,
}

/// A forwarding loop found at startup.
#[derive(Debug, thiserror::Error)]
#[error(
    "forwarding loop: our probe query {probe} HINFO sent to upstream {upstream} came back to \
     this server; point --upstream (or the nameservers of --resolv-conf) at a resolver that does \
     not forward to us"
)]
pub struct LoopDetected {
    /// The upstream that sent the probe back.
    pub upstream: SocketAddr,
    /// The probe name.
    pub probe: String,
}

/// State shared by the forwarder's handles and background tasks.
struct Shared {
    config: ForwardConfig,
    upstreams: Box<[Upstream]>,
    /// Connections to the cluster DNS, in node-local mode.
    cluster: Option<TcpPool>,
    cache: Cache,
    stats: ForwardStats,
    server_label: String,
    /// Keys being fetched, with the clients waiting for each.
    in_flight: Mutex<HashMap<CacheKey, Vec<oneshot::Sender<Resolution>>>>,
    /// Client queries waiting on upstreams now.
    waiting: AtomicUsize,
    /// Where round-robin starts next.
    rotation: AtomicUsize,
    loop_probe: Box<[u8]>,
    loop_probes_seen: AtomicU64,
    runtime: Handle,
    /// Where the metrics go when the last handle does ([`Forwarder::describer`]).
    last_metrics: OnceLock<LastMetrics>,
}

/// A forwarder's metrics as they were when its last handle went.
type LastMetrics = Arc<Mutex<Option<Exposition>>>;

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(slot) = self.last_metrics.take() {
            let mut last = Exposition::default();
            self.describe(&mut last);
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(last);
        }
    }
}

/// The forwarder and its cache; cheap to clone, one per server.
#[derive(Clone)]
pub struct Forwarder {
    shared: Arc<Shared>,
}

/// Holds one of the `max_concurrent` places while a client waits on upstreams.
struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Forwarder {
    /// A forwarder to `config.upstreams`, caching on `clock`, running its upstream exchanges and
    /// health checks on `runtime`. `server_label` is the `server` label of the cache metrics
    /// (CoreDNS spells it like `dns://:53`).
    pub fn new(config: ForwardConfig, clock: Clock, server_label: &str, runtime: Handle) -> Self {
        let upstreams = config
            .upstreams
            .iter()
            .copied()
            .map(|addr| match config.force_tcp {
                true => Upstream::new(addr).tcp_only(),
                false => Upstream::new(addr),
            })
            .map(|upstream| upstream.with_payload(config.edns_payload))
            .map(|upstream| upstream.expiring_after(config.expire))
            .map(|upstream| match &config.tls {
                // Kept at least one timeout idle, so a slow answer is not cut by `expire`.
                Some(tls) if tls.upstreams.contains(&upstream.addr()) => {
                    upstream.over_tls(tls, config.expire.max(config.timeout))
                }
                _ => upstream,
            })
            .collect();
        let cluster = (config.cluster.as_ref()).map(|r| TcpPool::new(r.server, r.connections));
        // The cluster DNS is counted as one more upstream, last.
        let mut counted = config.upstreams.clone();
        counted.extend(cluster.as_ref().map(TcpPool::addr));
        Forwarder {
            shared: Arc::new(Shared {
                stats: ForwardStats::new(&counted),
                cache: Cache::new(config.cache.clone(), clock),
                upstreams,
                cluster,
                config,
                server_label: server_label.to_owned(),
                in_flight: Mutex::new(HashMap::new()),
                waiting: AtomicUsize::new(0),
                rotation: AtomicUsize::new(0),
                loop_probe: loop_probe_name(),
                loop_probes_seen: AtomicU64::new(0),
                runtime,
                last_metrics: OnceLock::new(),
            }),
        }
    }

    /// The cache.
    pub fn cache(&self) -> &Cache {
        &self.shared.cache
    }

    /// Whether this is a node-local cache: every name is forwarded, the cluster domain's to the
    /// cluster DNS, and no zone is answered here.
    pub fn is_node_local(&self) -> bool {
        self.shared.cluster.is_some()
    }

    /// Answers `query` (whose bytes are `packet`) from the cache into `out`; `None` on a miss.
    /// Synchronous and allocation-free, for the UDP worker's batch; a hit that calls for a
    /// prefetch, or a stale answer served at once, starts a refresh in the background.
    pub fn answer_cached(
        &self,
        query: &Query,
        packet: &[u8],
        out: &mut [u8],
        transport: Transport,
    ) -> Option<usize> {
        self.answer_cached_with(query, &[], packet, out, transport)
    }

    /// [`Forwarder::answer_cached`] for `query` asked upstream with the EDNS0 `options` (OPT
    /// RDATA) a `rewrite edns0` rule set; the answers to it are cached apart.
    pub fn answer_cached_with(
        &self,
        query: &Query,
        options: &[u8],
        packet: &[u8],
        out: &mut [u8],
        transport: Transport,
    ) -> Option<usize> {
        let key = CacheKeyRef::of(query).with_options(options);
        let hit = self
            .shared
            .cache
            .answer_key(key, query, packet, out, transport)?;
        if let Some(entry) = hit.refresh {
            // CoreDNS counts a stale entry's refresh as a prefetch too.
            self.shared.cache.stats().prefetch();
            Shared::start_fetch(&self.shared, key.to_key(), None, Some(entry));
        }
        Some(hit.len)
    }

    /// Answers `query` from upstreams after a cache miss: coalesced with identical queries in
    /// flight, REFUSED past `max_concurrent`, SERVFAIL when every upstream fails and nothing
    /// stale may stand in. `None` when `out` cannot hold even the question.
    pub async fn resolve(
        &self,
        query: &Query,
        packet: &[u8],
        out: &mut [u8],
        transport: Transport,
    ) -> Option<usize> {
        self.resolve_with(query, &[], packet, out, transport).await
    }

    /// [`Forwarder::resolve`] with the EDNS0 `options` (OPT RDATA) a `rewrite edns0` rule set
    /// in the query sent upstream.
    pub async fn resolve_with(
        &self,
        query: &Query,
        options: &[u8],
        packet: &[u8],
        out: &mut [u8],
        transport: Transport,
    ) -> Option<usize> {
        let shared = &self.shared;
        let Some(_admitted) = shared.admit() else {
            shared.stats.rejected();
            return written(respond_rcode(query, packet, out, Rcode::Refused, transport));
        };
        let (sender, receiver) = oneshot::channel();
        let key = CacheKeyRef::of(query).with_options(options).to_key();
        Shared::start_fetch(shared, key, Some(sender), None);
        // The fetch always replies (its time is bounded); a dropped sender means the runtime is
        // shutting down.
        let reply = receiver.await.unwrap_or(Resolution::Failed);
        let now = shared.cache.clock().now_ms();
        match reply {
            Resolution::Cached(entry) => {
                let ttl = entry.remaining_ttl(now).unwrap_or(0);
                entry
                    .answer()
                    .write(query, packet, out, transport, Some(ttl))
            }
            Resolution::Uncached(answer) => answer.write(query, packet, out, transport, None),
            Resolution::Stale(entry) => {
                shared.cache.stats().served_stale();
                entry
                    .answer()
                    .write(query, packet, out, transport, Some(STALE_TTL))
            }
            Resolution::Failed => written(respond_rcode(
                query,
                packet,
                out,
                Rcode::ServFail,
                transport,
            )),
        }
    }

    /// [`Forwarder::answer_cached`], else [`Forwarder::resolve`]: for callers that can wait
    /// (TCP).
    pub async fn answer(
        &self,
        query: &Query,
        packet: &[u8],
        out: &mut [u8],
        transport: Transport,
    ) -> Option<usize> {
        if let Some(len) = self.answer_cached(query, packet, out, transport) {
            return Some(len);
        }
        self.resolve(query, packet, out, transport).await
    }

    /// Whether a query missing the cache now would be admitted (fewer than `max_concurrent`
    /// wait); one that would not is counted as refused. Lets a listener answer REFUSED where it
    /// is, without handing the query to the runtime only to be refused there.
    pub fn has_room(&self) -> bool {
        let shared = &self.shared;
        let room = shared.waiting.load(Ordering::Relaxed) < shared.config.max_concurrent;
        if !room {
            shared.stats.rejected();
        }
        room
    }

    /// Whether `query` is our own loop probe come back; counted for [`Forwarder::check_loop`].
    /// Cheap enough for every query outside the zone: one comparison of the type first. The
    /// listener should answer it (e.g. REFUSED) and not forward it.
    pub fn is_loop_probe(&self, query: &Query) -> bool {
        if query.qtype != TYPE_HINFO || query.qname() != &*self.shared.loop_probe {
            return false;
        }
        self.shared.loop_probes_seen.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Sends the loop probe to every upstream at once and fails if any of them passed it back to
    /// us. Call it once the listeners serve; it takes at most one timeout. An upstream that does
    /// not answer is not a loop (it is logged by the health checks instead).
    pub async fn check_loop(&self) -> Result<(), LoopDetected> {
        let shared = &self.shared;
        let key = CacheKey::new(&shared.loop_probe, TYPE_HINFO, CLASS_IN, false);
        for upstream in shared.upstreams.iter() {
            let seen_before = shared.loop_probes_seen.load(Ordering::Relaxed);
            let _ = upstream
                .exchange(&key, rand::random(), shared.config.timeout)
                .await;
            if shared.loop_probes_seen.load(Ordering::Relaxed) > seen_before {
                return Err(LoopDetected {
                    upstream: upstream.addr(),
                    probe: dotted(&shared.loop_probe),
                });
            }
        }
        Ok(())
    }

    /// Describes the cache and forwarding metrics.
    pub fn describe(&self, out: &mut Exposition) {
        self.shared.describe(out);
    }

    /// What describes this forwarder's metrics at each scrape while it lives. Once its last
    /// handle is gone (a reload replaced it), the describer adds its last counters to that
    /// scrape and hands them to `retired`, so they carry on in the successor's series, as
    /// CoreDNS's counters do across a reload; then it asks to be dropped. Call once.
    pub fn describer(&self, retired: Retired) -> Describer {
        let slot = LastMetrics::default();
        let _ = self.shared.last_metrics.set(slot.clone());
        let forwarder = Arc::downgrade(&self.shared);
        Box::new(move |out| {
            if let Some(shared) = forwarder.upgrade() {
                shared.describe(out);
                return true;
            }
            // Gone: its drop is writing or has written the last metrics; wait for them briefly.
            for _ in 0..50 {
                let last = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(last) = last {
                    out.absorb(&last);
                    retired.keep(last);
                    return false;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            // Not yet: the next scrape looks again.
            true
        })
    }
}

impl Shared {
    fn describe(&self, out: &mut Exposition) {
        let zones: Vec<String> = (self.config.cache.scope.zones.iter())
            .map(|zone| dotted(zone.as_bytes()))
            .collect();
        let cache = self.cache.stats();
        cache.describe(&self.server_label, &zones.join(","), out);
        self.stats.describe(out);
        let rows: Vec<ConnCache> = (self.upstreams.iter())
            .flat_map(Upstream::conn_cache)
            .collect();
        ConnCache::describe(&rows, out);
        if let Some(pool) = &self.cluster {
            pool.describe(out);
        }
    }

    fn admit(&self) -> Option<Admitted<'_>> {
        let waiting = self.waiting.fetch_add(1, Ordering::Relaxed);
        let admitted = Admitted(&self.waiting);
        (waiting < self.config.max_concurrent).then_some(admitted)
    }

    /// Adds `waiter` to the fetch of `key` in flight, or starts one. A refresh (prefetch or
    /// stale refresh) of the entry `refreshing` starts one with no waiter, and none if one is
    /// in flight; either way the refresh is ended when no fetch of its own is left to end it.
    fn start_fetch(
        shared: &Arc<Shared>,
        key: CacheKey,
        waiter: Option<oneshot::Sender<Resolution>>,
        refreshing: Option<Arc<CacheEntry>>,
    ) {
        let mut in_flight = shared.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(waiters) = in_flight.get_mut(&key) {
            waiters.extend(waiter);
            drop(in_flight);
            // The fetch in flight stands for the refresh: when it fails, a later hit asks again.
            if let Some(entry) = refreshing {
                entry.end_refresh(None);
            }
            return;
        }
        in_flight.insert(key.clone(), waiter.into_iter().collect());
        drop(in_flight);
        let shared = shared.clone();
        shared.runtime.clone().spawn(async move {
            let reply = shared.fetch(&key).await;
            if let Some(entry) = refreshing {
                let stored = match &reply {
                    Resolution::Cached(new) => Some(&**new),
                    _ => None,
                };
                entry.end_refresh(stored);
            }
            let waiters = shared
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key)
                .unwrap_or_default();
            for waiter in waiters {
                let _ = waiter.send(reply.clone());
            }
        });
    }

    /// Asks the upstreams for `key` and turns the outcome into what the waiters get, caching it
    /// on the way.
    async fn fetch(self: &Arc<Self>, key: &CacheKey) -> Resolution {
        let Some(exchanged) = self.forward(key).await else {
            return self.stale(key).unwrap_or(Resolution::Failed);
        };
        let response = &exchanged.response;
        // RFC 8767 §4: an answer other than NOERROR or NXDOMAIN (SERVFAIL, REFUSED, ...) is a
        // failure to resolve, like no answer at all, as CoreDNS's stale refresh counts it.
        if !matches!(response.rcode(), 0 | 3) {
            if let Some(stale) = self.stale(key) {
                return stale;
            }
        }
        let answer = Answer::new(&exchanged.packet, response);
        match cacheability(response, self.cache.config(), key.name()) {
            Some((kind, ttl)) => {
                Resolution::Cached(self.cache.insert(key.clone(), answer, kind, ttl))
            }
            None => Resolution::Uncached(Arc::new(answer)),
        }
    }

    fn stale(&self, key: &CacheKey) -> Option<Resolution> {
        self.cache.stale(key.as_ref()).map(Resolution::Stale)
    }

    /// Tries upstreams in policy order until one answers; `None` when none did. Names of the
    /// cluster route go to the cluster DNS instead.
    async fn forward(self: &Arc<Self>, key: &CacheKey) -> Option<upstream::Exchanged> {
        if let (Some(pool), Some(route)) = (&self.cluster, &self.config.cluster) {
            if route.covers(key.name()) {
                return self.forward_cluster(pool, key).await;
            }
        }
        for index in self.order().into_iter().take(MAX_ATTEMPTS) {
            let upstream = &self.upstreams[index];
            let started = Instant::now();
            match upstream
                .exchange(key, rand::random(), self.config.timeout)
                .await
            {
                Ok(exchanged) => {
                    self.stats
                        .observe(index, exchanged.response.rcode(), started.elapsed());
                    upstream.succeeded();
                    return Some(exchanged);
                }
                Err(error) => {
                    tracing::debug!(upstream = %upstream.addr(), %error, "forward: upstream failed");
                    if upstream.failed(self.config.max_fails) {
                        // The last error says why (a refused connection, a certificate not
                        // valid for `tls_servername`...), once per fall rather than per query.
                        tracing::warn!(upstream = %upstream.addr(), %error, "forward: upstream marked down");
                        self.start_health_check(index);
                    }
                }
            }
        }
        None
    }

    /// Asks the cluster DNS over its connection pool.
    async fn forward_cluster(&self, pool: &TcpPool, key: &CacheKey) -> Option<upstream::Exchanged> {
        let started = Instant::now();
        match pool.exchange(key, self.config.timeout).await {
            Ok(exchanged) => {
                let index = self.upstreams.len();
                let rcode = exchanged.response.rcode();
                self.stats.observe(index, rcode, started.elapsed());
                Some(exchanged)
            }
            Err(error) => {
                tracing::debug!(server = %pool.addr(), %error, "forward: cluster DNS failed");
                None
            }
        }
    }

    /// The upstreams to try, healthy ones only unless every one is down (then all, as CoreDNS
    /// does, counted as broken), in policy order.
    fn order(&self) -> Vec<usize> {
        let all = 0..self.upstreams.len();
        let mut order: Vec<usize> = all
            .clone()
            .filter(|&i| !self.upstreams[i].is_down())
            .collect();
        if order.is_empty() && !self.upstreams.is_empty() {
            self.stats.broken();
            order = all.collect();
        }
        match self.config.policy {
            Policy::Sequential => {}
            Policy::RoundRobin if !order.is_empty() => {
                let start = self.rotation.fetch_add(1, Ordering::Relaxed) % order.len();
                order.rotate_left(start);
            }
            Policy::RoundRobin => {}
            Policy::Random => order.shuffle(&mut rand::rng()),
        }
        order
    }

    /// Probes a down upstream with `. NS` every `health_check` until it answers (any rcode), or
    /// until the forwarder is dropped.
    fn start_health_check(self: &Arc<Self>, index: usize) {
        let shared: Weak<Shared> = Arc::downgrade(self);
        let interval = self.config.health_check;
        let timeout = self.config.timeout;
        let root = CacheKey::new(&[0], TYPE_NS, CLASS_IN, false);
        self.runtime.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let upstream = &shared.upstreams[index];
                if !upstream.is_down() {
                    return;
                }
                match upstream.exchange(&root, rand::random(), timeout).await {
                    Ok(_) => {
                        tracing::info!(upstream = %upstream.addr(), "forward: upstream is back up");
                        upstream.succeeded();
                        return;
                    }
                    Err(_) => shared.stats.healthcheck_failed(index),
                }
            }
        });
    }
}

/// The response length, if a response was written.
fn written(answered: Answered) -> Option<usize> {
    match answered {
        Answered::Response { len, .. } => Some(len),
        _ => None,
    }
}

/// `<random>.<random>.zone-loop-check.` in wire format.
fn loop_probe_name() -> Box<[u8]> {
    let mut name = Vec::with_capacity(64);
    let first = rand::random::<u64>().to_string();
    let second = rand::random::<u64>().to_string();
    for label in [first.as_str(), second.as_str(), "zone-loop-check"] {
        name.push(label.len() as u8);
        name.extend_from_slice(label.as_bytes());
    }
    name.push(0);
    name.into_boxed_slice()
}

/// A wire-format name with dots (`.` for the root), for messages and labels.
fn dotted(wire: &[u8]) -> String {
    let mut out = String::new();
    let mut at = 0;
    while let Some(&len) = wire.get(at) {
        if len == 0 {
            break;
        }
        let label = wire
            .get(at + 1..at + 1 + usize::from(len))
            .unwrap_or_default();
        out.push_str(&String::from_utf8_lossy(label));
        out.push('.');
        at += 1 + usize::from(len);
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_probe_name_is_random_and_well_formed() {
        let a = loop_probe_name();
        let b = loop_probe_name();
        assert_ne!(a, b);
        let text = dotted(&a);
        assert!(text.ends_with(".zone-loop-check."), "{text}");
        assert_eq!(text.split('.').count(), 4);
        assert_eq!(a.last(), Some(&0));
    }
}
