//! The cache of upstream answers (never of the cluster zone, ARCHITECTURE.md, "The zone"). An
//! answer is stored as the bytes after its question plus the span of each record, so serving it
//! copies one block and patches the header, the TTLs and the question's case, as the zone path
//! does.
//!
//! ```text
//!  key (lowercase qname, qtype, qclass, DO) ──hash──▶ shard (RwLock) ──▶ slot ──▶ Arc<CacheEntry>
//!                                                     read lock held only to clone the Arc
//! ```
//!
//! Each shard is a CLOCK ring of at most `capacity / shards` entries: a hit sets the entry's
//! reference bit; an insert into a full shard sweeps the hand, clearing bits, and replaces the
//! first entry found unreferenced. TTLs (RFC 1035 §3.2.1, RFC 2308 §5): positive answers live for
//! their smallest record TTL capped by `max_ttl`; NXDOMAIN and NODATA for min(SOA TTL, SOA
//! MINIMUM) capped by `max_denial_ttl` (not at all without an SOA); SERVFAIL for `servfail_ttl`
//! (RFC 2308 §7.1). Every record is served with the entry's remaining TTL. An expired entry is
//! kept until evicted and may be served with TTL 30 for `serve_stale` past expiry (RFC 8767
//! §4): in `verify` mode only when every upstream fails, in `immediate` mode (CoreDNS's
//! default) at once, as a hit that asks for a refresh in the background.
//!
//! Prefetch, as CoreDNS's `cache` counts it: an entry's hits count up while no two are more
//! than `prefetch_window` apart (a longer gap starts the count again at one), and a hit that
//! brings them to `prefetch_hits` or more when the remaining TTL is at most
//! `prefetch_percent` of the stored TTL, rounded up (so at least the last second), asks for a
//! refresh. At most one refresh per entry is asked for until it ends ([`CacheEntry::end_refresh`]);
//! its replacement inherits the hit count.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use clusterdns_zone::answer::{response_limit, ADVERTISED_PAYLOAD};
use clusterdns_zone::wire::HEADER_LEN;
use clusterdns_zone::{Query, Transport};
use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::clock::Clock;
use super::config::{CacheConfig, StaleRefresh};
use super::message::{RecordSpan, Response};
use super::metrics::{CacheStats, CacheType};
use clusterdns_zone::wire::{FLAG_AD, FLAG_CD, FLAG_QR, FLAG_RA, FLAG_RD, FLAG_TC};

/// The TTL of an answer served stale (RFC 8767 §4 recommends 30 seconds).
pub const STALE_TTL: u32 = 30;
/// Shards at most; fewer for small caches so that each holds at least [`MIN_PER_SHARD`].
const MAX_SHARDS: usize = 64;
const MIN_PER_SHARD: usize = 64;
/// Length of the OPT record we append for EDNS clients.
const OPT_LEN: usize = 11;

/// A cache key, owned: lowercase wire-format qname, qtype, qclass, the DO bit, and the EDNS0
/// options sent upstream with the question (none but those a `rewrite edns0` rule sets, whose
/// answers may depend on them, so they are cached apart).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    name: Box<[u8]>,
    qtype: u16,
    qclass: u16,
    dnssec_ok: bool,
    options: Box<[u8]>,
}

/// A cache key borrowed from a query: looking up allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKeyRef<'a> {
    name: &'a [u8],
    qtype: u16,
    qclass: u16,
    dnssec_ok: bool,
    options: &'a [u8],
}

impl<'a> CacheKeyRef<'a> {
    /// The key of a parsed query (whose qname is already lowercase), with no options.
    pub fn of(query: &'a Query) -> Self {
        CacheKeyRef {
            name: query.qname(),
            qtype: query.qtype,
            qclass: query.qclass,
            dnssec_ok: query.edns.is_some_and(|e| e.dnssec_ok),
            options: &[],
        }
    }

    /// This key with `options` (OPT RDATA) to send upstream.
    pub fn with_options(self, options: &'a [u8]) -> Self {
        CacheKeyRef { options, ..self }
    }

    /// An owned copy.
    pub fn to_key(self) -> CacheKey {
        CacheKey::new(self.name, self.qtype, self.qclass, self.dnssec_ok).with_options(self.options)
    }
}

impl CacheKey {
    /// The key of a question: `name` in lowercase wire format; no options.
    pub fn new(name: &[u8], qtype: u16, qclass: u16, dnssec_ok: bool) -> Self {
        CacheKey {
            name: name.into(),
            qtype,
            qclass,
            dnssec_ok,
            options: Box::default(),
        }
    }

    /// This key with `options` (OPT RDATA) to send upstream.
    pub fn with_options(self, options: &[u8]) -> Self {
        CacheKey {
            options: options.into(),
            ..self
        }
    }

    /// The borrowed form, which is what gets hashed.
    pub fn as_ref(&self) -> CacheKeyRef<'_> {
        CacheKeyRef {
            name: &self.name,
            qtype: self.qtype,
            qclass: self.qclass,
            dnssec_ok: self.dnssec_ok,
            options: &self.options,
        }
    }

    /// The EDNS0 options to send with the question (OPT RDATA; usually empty).
    pub fn options(&self) -> &[u8] {
        &self.options
    }

    /// The lowercase wire-format name.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The query type.
    pub fn qtype(&self) -> u16 {
        self.qtype
    }

    /// The query class.
    pub fn qclass(&self) -> u16 {
        self.qclass
    }

    /// Whether DNSSEC records were asked for.
    pub fn dnssec_ok(&self) -> bool {
        self.dnssec_ok
    }
}

/// An upstream answer ready to be served to any client asking the same question.
#[derive(Debug)]
pub struct Answer {
    flags: u16,
    counts: [u16; 3],
    body: Box<[u8]>,
    records: Box<[RecordSpan]>,
}

impl Answer {
    /// The answer in a validated upstream `packet`.
    pub fn new(packet: &[u8], response: &Response) -> Self {
        Answer {
            flags: response.flags,
            counts: response.counts,
            body: packet[response.body.clone()].into(),
            records: response.records.clone().into_boxed_slice(),
        }
    }

    /// The response code.
    pub fn rcode(&self) -> u8 {
        (self.flags & 0x0F) as u8
    }

    /// Writes the response to `query` (whose bytes are `packet`) into `out`: the client's ID,
    /// RD and CD bits and question (its case included), as many whole records as the transport
    /// allows, each with TTL `ttl` (or as the upstream sent them when `None`), and an OPT record
    /// when the client sent one. TC is set only when an answer or authority record had to be
    /// left out (RFC 2181 §9). `None` when not even the question fits.
    pub fn write(
        &self,
        query: &Query,
        packet: &[u8],
        out: &mut [u8],
        transport: Transport,
        ttl: Option<u32>,
    ) -> Option<usize> {
        let question = packet.get(HEADER_LEN..query.question_end())?;
        let limit = response_limit(query, transport).min(out.len());
        let opt_len = if query.edns.is_some() { OPT_LEN } else { 0 };
        let room = limit.checked_sub(HEADER_LEN + question.len() + opt_len)?;
        let kept = self.records.partition_point(|r| usize::from(r.end) <= room);
        let body_len = kept
            .checked_sub(1)
            .map_or(0, |last| usize::from(self.records[last].end));

        let body_at = HEADER_LEN + question.len();
        out[HEADER_LEN..body_at].copy_from_slice(question);
        out[body_at..body_at + body_len].copy_from_slice(&self.body[..body_len]);
        if let Some(ttl) = ttl {
            let ttl = ttl.to_be_bytes();
            for record in &self.records[..kept] {
                let at = body_at + usize::from(record.ttl_at);
                out[at..at + 4].copy_from_slice(&ttl);
            }
        }
        let mut counts = [0u16; 3];
        let mut left = kept;
        for (count, &stored) in counts.iter_mut().zip(&self.counts) {
            let take = left.min(usize::from(stored));
            *count = take as u16;
            left -= take;
        }
        let mut len = body_at + body_len;
        let client_do = query.edns.is_some_and(|e| e.dnssec_ok);
        if let Some(edns) = query.edns {
            let payload = ADVERTISED_PAYLOAD.to_be_bytes();
            let do_bit = if edns.dnssec_ok { 0x80 } else { 0 };
            out[len..len + OPT_LEN]
                .copy_from_slice(&[0, 0, 41, payload[0], payload[1], 0, 0, do_bit, 0, 0, 0]);
            len += OPT_LEN;
            counts[2] += 1;
        }

        let mut flags =
            FLAG_QR | FLAG_RA | (query.flags & (FLAG_RD | FLAG_CD)) | (self.flags & 0x0F);
        // RFC 6840 §5.8: AD only to a client that showed it understands it.
        if self.flags & FLAG_AD != 0 && (client_do || query.flags & FLAG_AD != 0) {
            flags |= FLAG_AD;
        }
        if counts[0] + counts[1] < self.counts[0] + self.counts[1] {
            flags |= FLAG_TC;
        }
        out[..2].copy_from_slice(&query.id.to_be_bytes());
        out[2..4].copy_from_slice(&flags.to_be_bytes());
        out[4..6].copy_from_slice(&1u16.to_be_bytes());
        for (i, count) in counts.iter().enumerate() {
            out[6 + 2 * i..8 + 2 * i].copy_from_slice(&count.to_be_bytes());
        }
        Some(len)
    }
}

/// What a validated upstream answer for `name` becomes in the cache: its kind and TTL, or `None`
/// when it is not to be cached (truncated, an rcode other than NOERROR/NXDOMAIN/SERVFAIL, a
/// negative answer without SOA, a TTL of zero, or a name the cache's scope leaves out).
pub fn cacheability(
    response: &Response,
    config: &CacheConfig,
    name: &[u8],
) -> Option<(CacheType, u32)> {
    if response.truncated() {
        return None;
    }
    let (kind, ttl) = match response.rcode() {
        0 if response.counts[0] > 0 => (
            CacheType::Success,
            response
                .min_ttl?
                .clamp(config.min_ttl.min(config.max_ttl), config.max_ttl),
        ),
        0 | 3 => (
            CacheType::Denial,
            (response.negative_ttl?).clamp(
                config.min_denial_ttl.min(config.max_denial_ttl),
                config.max_denial_ttl,
            ),
        ),
        2 => (CacheType::Denial, config.servfail_ttl),
        _ => return None,
    };
    let positive = kind == CacheType::Success;
    (ttl > 0 && config.scope.allows(name, positive)).then_some((kind, ttl))
}

/// A cached answer and its bookkeeping.
#[derive(Debug)]
pub struct CacheEntry {
    key: CacheKey,
    answer: Answer,
    kind: CacheType,
    ttl: u32,
    stored_at_ms: u64,
    /// Hits counted toward prefetch, while no two are more than the window apart.
    hits: AtomicU32,
    /// When the last of them came, plus one (0: none yet).
    last_hit_ms: AtomicU64,
    referenced: AtomicBool,
    /// A refresh (prefetch or stale refresh) was asked for and has not ended.
    prefetching: AtomicBool,
}

impl CacheEntry {
    /// The key.
    pub fn key(&self) -> &CacheKey {
        &self.key
    }

    /// The stored answer.
    pub fn answer(&self) -> &Answer {
        &self.answer
    }

    /// Seconds of TTL left at `now_ms`, counted down from the stored TTL; `None` once expired.
    pub fn remaining_ttl(&self, now_ms: u64) -> Option<u32> {
        let elapsed = now_ms.saturating_sub(self.stored_at_ms);
        let ttl_ms = u64::from(self.ttl) * 1000;
        (elapsed < ttl_ms).then(|| self.ttl - (elapsed / 1000) as u32)
    }

    fn expired_for_ms(&self, now_ms: u64) -> Option<u64> {
        let expiry = self.stored_at_ms + u64::from(self.ttl) * 1000;
        now_ms.checked_sub(expiry)
    }

    /// Ends the refresh a [`Hit`] asked for: a later hit may ask again (CoreDNS retries a
    /// failed refresh at the next hit). `replacement` is the entry the refresh stored, which
    /// keeps this one's hit count, as CoreDNS's prefetch carries its frequency over.
    pub fn end_refresh(&self, replacement: Option<&CacheEntry>) {
        if let Some(new) = replacement.filter(|new| !std::ptr::eq(*new, self)) {
            new.hits
                .store(self.hits.load(Ordering::Relaxed), Ordering::Relaxed);
            new.last_hit_ms
                .store(self.last_hit_ms.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.prefetching.store(false, Ordering::Relaxed);
    }

    /// Counts a hit at `now_ms` toward prefetch within `window_ms` of the one before; the
    /// count. Relaxed atomics: two hits at once may count as one, which only delays a prefetch.
    fn count_hit(&self, now_ms: u64, window_ms: u64) -> u32 {
        let last = self.last_hit_ms.swap(now_ms + 1, Ordering::Relaxed);
        if last == 0 || now_ms.saturating_sub(last - 1) > window_ms {
            self.hits.store(1, Ordering::Relaxed);
            return 1;
        }
        self.hits.fetch_add(1, Ordering::Relaxed).saturating_add(1)
    }

    /// Claims the entry's one refresh; false when one is under way.
    fn claim_refresh(&self) -> bool {
        // Read first, so a hot entry's cache line stays shared while its refresh runs.
        !self.prefetching.load(Ordering::Relaxed) && !self.prefetching.swap(true, Ordering::Relaxed)
    }
}

/// A query answered from the cache.
#[derive(Clone, Debug)]
pub struct Hit {
    /// Bytes written.
    pub len: usize,
    /// The entry had expired and was served stale (`serve_stale ... immediate`).
    pub stale: bool,
    /// The entry to refresh in the background, then [`CacheEntry::end_refresh`]: it is popular
    /// and about to expire (prefetch), or it was served stale.
    pub refresh: Option<Arc<CacheEntry>>,
}

struct Shard {
    /// Slot numbers, found by key hash.
    index: HashTable<u32>,
    /// The CLOCK ring; it only grows, up to `capacity`, and slots are replaced in place.
    slots: Vec<Arc<CacheEntry>>,
    hand: usize,
    capacity: usize,
}

/// The sharded answer cache.
pub struct Cache {
    shards: Box<[RwLock<Shard>]>,
    hasher: RandomState,
    config: CacheConfig,
    clock: Clock,
    stats: CacheStats,
}

impl Cache {
    /// An empty cache.
    pub fn new(config: CacheConfig, clock: Clock) -> Self {
        let capacity = config.capacity.max(1);
        let wanted = (capacity / MIN_PER_SHARD).clamp(1, MAX_SHARDS);
        // The largest power of two not above `wanted`, so the shard is picked with a mask.
        let shards = 1usize << (usize::BITS - 1 - wanted.leading_zeros());
        let per_shard = capacity / shards;
        Cache {
            shards: (0..shards)
                .map(|_| {
                    // Empty until answers come: a cache sized for a node's working set must not
                    // cost its room up front (500,000 answers would take 8.5 MiB at once).
                    RwLock::new(Shard {
                        index: HashTable::new(),
                        slots: Vec::new(),
                        hand: 0,
                        capacity: per_shard,
                    })
                })
                .collect(),
            hasher: RandomState::default(),
            config,
            clock,
            stats: CacheStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// The limits.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The clock TTLs are counted on.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Entries held now (fresh or expired).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| read(shard).slots.len())
            .sum()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn locate(&self, key: CacheKeyRef<'_>) -> (u64, &RwLock<Shard>) {
        let hash = self.hasher.hash_one(key);
        // The middle bits pick the shard: hashbrown uses the low bits for the slot and the top
        // seven for its tag, so a shard's entries still spread over both.
        let shard = ((hash >> 32) as usize) & (self.shards.len() - 1);
        (hash, &self.shards[shard])
    }

    /// The entry for `key`, fresh or expired.
    pub fn get(&self, key: CacheKeyRef<'_>) -> Option<Arc<CacheEntry>> {
        let (hash, shard) = self.locate(key);
        let shard = read(shard);
        let slot = *shard
            .index
            .find(hash, |&slot| shard.slots[slot as usize].key.as_ref() == key)?;
        Some(shard.slots[slot as usize].clone())
    }

    /// Answers `query` from a fresh entry into `out`, TTLs counted down, or from an expired one
    /// in `serve_stale ... immediate` mode; `None` on a miss. No allocation, and the shard's
    /// read lock is held only to clone the entry's `Arc`.
    pub fn answer(
        &self,
        query: &Query,
        packet: &[u8],
        out: &mut [u8],
        transport: Transport,
    ) -> Option<Hit> {
        self.answer_key(CacheKeyRef::of(query), query, packet, out, transport)
    }

    /// [`Cache::answer`] for the entry of `key` (`query`'s, with options).
    pub fn answer_key(
        &self,
        key: CacheKeyRef<'_>,
        query: &Query,
        packet: &[u8],
        out: &mut [u8],
        transport: Transport,
    ) -> Option<Hit> {
        let found = self.get(key).and_then(|entry| {
            let now = self.clock.now_ms();
            let left = entry.remaining_ttl(now);
            (left.is_some() || self.serves_stale_now(&entry, now)).then_some((entry, left, now))
        });
        let Some((entry, left, now)) = found else {
            self.stats.miss();
            return None;
        };
        let ttl = match left {
            Some(_) if self.config.keep_ttl => entry.ttl,
            Some(left) => left,
            None => STALE_TTL,
        };
        let len = entry
            .answer
            .write(query, packet, out, transport, Some(ttl))?;
        self.stats.hit(entry.kind);
        // Only write the shared bit when it changes, so a hot entry's cache line stays shared.
        if !entry.referenced.load(Ordering::Relaxed) {
            entry.referenced.store(true, Ordering::Relaxed);
        }
        let refresh = match left {
            None => {
                self.stats.served_stale();
                entry.claim_refresh()
            }
            Some(left) => self.prefetch_due(&entry, left, now) && entry.claim_refresh(),
        };
        Some(Hit {
            len,
            stale: left.is_none(),
            refresh: refresh.then_some(entry),
        })
    }

    /// Whether `entry`, expired at `now`, is served at once (`serve_stale ... immediate`).
    fn serves_stale_now(&self, entry: &CacheEntry, now: u64) -> bool {
        self.config.stale_refresh == StaleRefresh::Immediate && self.within_stale(entry, now)
    }

    /// Whether `entry` expired no longer than `serve_stale` before `now`.
    fn within_stale(&self, entry: &CacheEntry, now: u64) -> bool {
        !self.config.serve_stale.is_zero()
            && entry
                .expired_for_ms(now)
                .is_some_and(|ms| ms <= self.config.serve_stale.as_millis() as u64)
    }

    /// Counts a hit on the fresh `entry` with `left` seconds of TTL and says whether it is due
    /// for prefetch (see the module docs).
    fn prefetch_due(&self, entry: &CacheEntry, left: u32, now: u64) -> bool {
        let config = &self.config;
        if config.prefetch_hits == 0 {
            return false;
        }
        let window = config.prefetch_window.as_millis() as u64;
        let hits = entry.count_hit(now, window);
        // CoreDNS: ceil(percentage / 100 × stored TTL).
        let threshold = (u64::from(entry.ttl) * u64::from(config.prefetch_percent)).div_ceil(100);
        hits >= config.prefetch_hits && u64::from(left) <= threshold
    }

    /// An entry expired no longer than `serve_stale` ago, for when every upstream failed.
    pub fn stale(&self, key: CacheKeyRef<'_>) -> Option<Arc<CacheEntry>> {
        if self.config.serve_stale.is_zero() {
            return None;
        }
        let entry = self.get(key)?;
        self.within_stale(&entry, self.clock.now_ms())
            .then_some(entry)
    }

    /// Stores `answer` under `key` for `ttl` seconds from now, replacing any entry for the key,
    /// else filling the shard, else evicting by CLOCK; returns the stored entry.
    pub fn insert(
        &self,
        key: CacheKey,
        answer: Answer,
        kind: CacheType,
        ttl: u32,
    ) -> Arc<CacheEntry> {
        let entry = Arc::new(CacheEntry {
            key,
            answer,
            kind,
            ttl,
            stored_at_ms: self.clock.now_ms(),
            hits: AtomicU32::new(0),
            last_hit_ms: AtomicU64::new(0),
            referenced: AtomicBool::new(false),
            prefetching: AtomicBool::new(false),
        });
        let (hash, shard) = self.locate(entry.key.as_ref());
        self.stats.entries_changed(kind, 1);
        // The replaced entry is dropped after the lock is released.
        let replaced = {
            let mut guard = write(shard);
            let Shard {
                index,
                slots,
                hand,
                capacity,
            } = &mut *guard;
            let key = entry.key.as_ref();
            if let Some(&slot) = index.find(hash, |&slot| slots[slot as usize].key.as_ref() == key)
            {
                Some(std::mem::replace(&mut slots[slot as usize], entry.clone()))
            } else if slots.len() < *capacity {
                slots.push(entry.clone());
                let slot = (slots.len() - 1) as u32;
                index.insert_unique(hash, slot, |&s| {
                    self.hasher.hash_one(slots[s as usize].key.as_ref())
                });
                None
            } else {
                let victim = clock_victim(slots, hand);
                let victim_hash = self.hasher.hash_one(slots[victim].key.as_ref());
                if let Ok(found) = index.find_entry(victim_hash, |&s| s as usize == victim) {
                    found.remove();
                }
                let evicted = std::mem::replace(&mut slots[victim], entry.clone());
                self.stats.evicted(evicted.kind);
                index.insert_unique(hash, victim as u32, |&s| {
                    self.hasher.hash_one(slots[s as usize].key.as_ref())
                });
                Some(evicted)
            }
        };
        if let Some(old) = replaced {
            self.stats.entries_changed(old.kind, -1);
        }
        entry
    }
}

/// Sweeps the CLOCK hand to the first unreferenced slot, clearing reference bits on the way; at
/// most two turns (after one, every bit is clear).
fn clock_victim(slots: &[Arc<CacheEntry>], hand: &mut usize) -> usize {
    for _ in 0..2 * slots.len() {
        let at = *hand % slots.len();
        *hand = (at + 1) % slots.len();
        if !slots[at].referenced.swap(false, Ordering::Relaxed) {
            return at;
        }
    }
    *hand % slots.len()
}

/// A lock poisoned by a panic elsewhere still guards consistent data: slots are replaced whole.
fn read(lock: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write(lock: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
