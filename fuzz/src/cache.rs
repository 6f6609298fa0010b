//! Target `cache`: the forwarder's answer cache (`clusterdns::forward::cache`), driven by a
//! small op-code interpreter over a fixed set of sixteen keys (four names, A and AAAA, DO clear
//! and set) with a manual clock. The first three bytes pick the cache's configuration (capacity
//! 1 to 8, so CLOCK eviction runs; `keepttl`; prefetch's amount, window and percentage;
//! serve-stale and its refresh mode; TTL caps and floors); then each
//! op inserts an upstream answer (built record by record from the input, or a raw body, run
//! through `parse_response` and `cacheability` as the forwarder does, or forced in with an input
//! TTL), moves the clock, answers a client query, or reads an entry fresh or stale.
//!
//! A shadow model remembers the last answer inserted under each key and when. Checked: the
//! cache never holds more than its capacity; a hit is the last answer inserted under that key
//! (its bytes, the TTLs counted down from the stored TTL by whole elapsed seconds, or kept),
//! fits the client's limit, passes the forwarder's own response validation and echoes the
//! question's case; an expired entry is a hit only in `immediate` serve-stale mode within
//! `serve_stale` of expiry, with TTL 30; while no eviction can have happened every fresh entry
//! is a hit; stale entries come only within `serve_stale` of expiry; a refresh is asked for
//! exactly when the model says (the entry's hits counted within the prefetch window reach the
//! amount with at most the percentage of its TTL left, or it was served stale), once per entry
//! (the harness never ends a refresh).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use clusterdns::forward::cache::{cacheability, Answer, Cache, CacheKey, STALE_TTL};
use clusterdns::forward::clock::{Clock, ManualClock};
use clusterdns::forward::config::{CacheConfig, CacheScope, StaleRefresh};
use clusterdns::forward::message::{parse_response, Response};
use clusterdns::forward::metrics::CacheType;
use clusterdns_zone::answer::response_limit;
use clusterdns_zone::wire::{read_u32, HEADER_LEN};
use clusterdns_zone::{parse_query, Transport, WireName};

/// The names keys are made of.
const NAMES: [&[u8]; 4] = [
    b"\x03www\x07example\x03com\x00",
    b"\x01a\x07example\x03com\x00",
    b"\x0clonger-label\x01b\x07example\x03org\x00",
    b"\x00",
];
const TYPES: [u16; 2] = [1, 28];
/// Ops read at most, so a long input cannot make one run slow.
const MAX_OPS: usize = 256;

/// The fuzz input, read from the front; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&first, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        first
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Key number `k` (0..16): name, type and DO bit.
fn key_parts(k: usize) -> (&'static [u8], u16, bool) {
    (NAMES[k & 3], TYPES[(k >> 2) & 1], k & 8 != 0)
}

/// What the model knows of the last insert under a key.
#[derive(Clone)]
struct Stored {
    body: Vec<u8>,
    response: Response,
    ttl: u32,
    stored_at: u64,
    /// Hits counted toward prefetch, and when the last came.
    hits: u32,
    last_hit: Option<u64>,
    /// A refresh was asked for.
    prefetched: bool,
}

struct Harness {
    cache: Cache,
    hand: ManualClock,
    now: u64,
    config: CacheConfig,
    model: HashMap<usize, Stored>,
    inserted: HashSet<usize>,
    out: Vec<u8>,
}

fn config(input: &mut Input<'_>) -> CacheConfig {
    let a = input.u8();
    let b = input.u8();
    let c = input.u8();
    let pick = |table: &[u32], bits: u8| table[usize::from(bits) % table.len()];
    let scope = match b >> 6 {
        0 | 1 => CacheScope::everything(),
        2 => CacheScope {
            zones: vec![WireName::root()],
            no_success: vec![WireName::from_dotted("example.com").unwrap_or_else(WireName::root)],
            no_denial: Vec::new(),
        },
        _ => CacheScope {
            zones: vec![WireName::from_dotted("example.com").unwrap_or_else(WireName::root)],
            no_success: Vec::new(),
            no_denial: vec![WireName::from_dotted("a.example.com").unwrap_or_else(WireName::root)],
        },
    };
    CacheConfig {
        capacity: 1 + usize::from(a & 7),
        keep_ttl: a & 8 != 0,
        prefetch_hits: u32::from((a >> 4) & 3),
        prefetch_percent: [10, 50, 90, 10][usize::from(c & 3)],
        prefetch_window: Duration::from_millis(
            pick(&[60_000, 1_000, 10, 3_600_000], (c >> 3) & 3).into(),
        ),
        serve_stale: if a & 0x40 != 0 {
            Duration::from_secs(3600)
        } else {
            Duration::ZERO
        },
        stale_refresh: if c & 4 != 0 {
            StaleRefresh::Immediate
        } else {
            StaleRefresh::Verify
        },
        max_ttl: pick(&[30, 3600, 1, u32::MAX], b & 3),
        min_ttl: pick(&[0, 5, 600], (b >> 2) & 3),
        max_denial_ttl: pick(&[5, 1800, 0], (b >> 4) & 1),
        min_denial_ttl: pick(&[0, 60], (b >> 5) & 1),
        servfail_ttl: pick(&[2, 0], a >> 7),
        scope,
    }
}

/// An upstream packet answering key `k` (ID 9): header fields and `body` from the caller.
fn upstream(k: usize, flags: u16, counts: [u16; 3], body: &[u8]) -> Vec<u8> {
    let (name, qtype, _) = key_parts(k);
    let mut packet = Vec::with_capacity(HEADER_LEN + name.len() + 4 + body.len());
    packet.extend_from_slice(&9u16.to_be_bytes());
    packet.extend_from_slice(&(flags | 0x8000).to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    for count in counts {
        packet.extend_from_slice(&count.to_be_bytes());
    }
    packet.extend_from_slice(name);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    packet.extend_from_slice(body);
    packet
}

/// Records built from the input, each owned by the question name (a pointer to offset 12).
fn built_body(input: &mut Input<'_>) -> ([u16; 3], Vec<u8>) {
    let shape = input.u8();
    let counts = [
        u16::from(shape & 7),
        u16::from((shape >> 3) & 3),
        u16::from(shape >> 5),
    ];
    let mut body = Vec::new();
    for _ in 0..counts.iter().sum::<u16>() {
        let kind = input.u8();
        let ttl = input.u32();
        let rdata: Vec<u8> = match kind % 5 {
            0 => input.take(4).to_vec(),
            1 => input.take(16).to_vec(),
            // CNAME to the question name.
            2 => vec![0xC0, 12],
            // SOA: mname and rname the question name, then serial..minimum.
            3 => {
                let mut soa = vec![0xC0, 12, 0xC0, 12];
                for _ in 0..4 {
                    soa.extend_from_slice(&input.u32().to_be_bytes());
                }
                soa.extend_from_slice(&input.u32().to_be_bytes());
                soa
            }
            _ => {
                let len = usize::from(input.u8() % 32);
                let text = input.take(len).to_vec();
                let mut txt = vec![text.len() as u8];
                txt.extend(text);
                txt
            }
        };
        let rtype: u16 = [1, 28, 5, 6, 16][usize::from(kind % 5)];
        body.extend_from_slice(&[0xC0, 12]);
        body.extend_from_slice(&rtype.to_be_bytes());
        body.extend_from_slice(&1u16.to_be_bytes());
        body.extend_from_slice(&ttl.to_be_bytes());
        body.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        body.extend_from_slice(&rdata);
    }
    (counts, body)
}

impl Harness {
    fn new(input: &mut Input<'_>) -> Self {
        let config = config(input);
        let (clock, hand) = Clock::manual();
        Harness {
            cache: Cache::new(config.clone(), clock),
            hand,
            now: 0,
            config,
            model: HashMap::new(),
            inserted: HashSet::new(),
            out: vec![0; 65535],
        }
    }

    /// Whether every key inserted is still held: no insert ever found a full shard.
    fn no_eviction_yet(&self) -> bool {
        self.inserted.len() <= self.config.capacity
    }

    fn insert(&mut self, k: usize, packet: &[u8], response: Response, kind: CacheType, ttl: u32) {
        let (name, qtype, dnssec_ok) = key_parts(k);
        let answer = Answer::new(packet, &response);
        let entry = self
            .cache
            .insert(CacheKey::new(name, qtype, 1, dnssec_ok), answer, kind, ttl);
        assert_eq!(entry.key(), &CacheKey::new(name, qtype, 1, dnssec_ok));
        self.inserted.insert(k);
        self.model.insert(
            k,
            Stored {
                body: packet[response.body.clone()].to_vec(),
                response,
                ttl,
                stored_at: self.now,
                hits: 0,
                last_hit: None,
                prefetched: false,
            },
        );
    }

    fn step(&mut self, input: &mut Input<'_>) {
        let op = input.u8();
        let k = usize::from(op >> 3) & 15;
        let (name, qtype, dnssec_ok) = key_parts(k);
        match op & 7 {
            // An upstream answer built record by record, cached as the forwarder would.
            0 | 1 => {
                let flags = input.u16() & 0x87FF;
                let (counts, body) = built_body(input);
                let packet = upstream(k, flags, counts, &body);
                let Some(response) = parse_response(&packet, 9, name, qtype, 1) else {
                    panic!("a well-formed built answer is refused: {packet:02x?}");
                };
                if op & 1 == 0 {
                    if let Some((kind, ttl)) = cacheability(&response, &self.config, name) {
                        assert!(ttl > 0);
                        self.insert(k, &packet, response, kind, ttl);
                    }
                } else {
                    let ttl = u32::from(input.u16());
                    self.insert(k, &packet, response, CacheType::Denial, ttl);
                }
            }
            // A raw body: whatever parse_response lets through.
            2 => {
                let flags = input.u16() & 0x87FF;
                let counts = [
                    u16::from(input.u8() % 8),
                    u16::from(input.u8() % 4),
                    u16::from(input.u8() % 4),
                ];
                let len = usize::from(input.u8());
                let body = input.take(len).to_vec();
                let packet = upstream(k, flags, counts, &body);
                if let Some(response) = parse_response(&packet, 9, name, qtype, 1) {
                    let ttl = u32::from(input.u8());
                    self.insert(k, &packet, response, CacheType::Success, ttl);
                }
            }
            3 => {
                let by = u64::from(input.u16());
                let ms = match op >> 6 {
                    0 => by,
                    1 => by * 1000,
                    2 => by * 60_000,
                    _ => 999,
                };
                self.hand.advance(Duration::from_millis(ms));
                self.now += ms;
            }
            4 | 5 => self.answer(k, input),
            6 => {
                let Some(entry) = self
                    .cache
                    .stale(CacheKey::new(name, qtype, 1, dnssec_ok).as_ref())
                else {
                    if let Some(stored) = self.model.get(&k) {
                        let expiry = stored.stored_at + u64::from(stored.ttl) * 1000;
                        let stale_ms = self.config.serve_stale.as_millis() as u64;
                        assert!(
                            !(self.no_eviction_yet()
                                && self.now >= expiry
                                && self.now - expiry <= stale_ms
                                && stale_ms > 0),
                            "a stale entry within serve_stale not returned"
                        );
                    }
                    return;
                };
                assert_eq!(entry.key(), &CacheKey::new(name, qtype, 1, dnssec_ok));
                assert!(
                    !self.config.serve_stale.is_zero(),
                    "stale without serve_stale"
                );
                let Some(stored) = self.model.get(&k) else {
                    panic!("stale entry for a key never inserted");
                };
                let expiry = stored.stored_at + u64::from(stored.ttl) * 1000;
                assert!(self.now >= expiry, "fresh entry returned as stale");
                assert!(self.now - expiry <= self.config.serve_stale.as_millis() as u64);
                assert_eq!(entry.remaining_ttl(self.now), None);
            }
            _ => {
                let got = self
                    .cache
                    .get(CacheKey::new(name, qtype, 1, dnssec_ok).as_ref());
                match (got, self.model.get(&k)) {
                    (Some(_), None) => panic!("entry for a key never inserted"),
                    (Some(entry), Some(stored)) => {
                        assert_eq!(entry.key(), &CacheKey::new(name, qtype, 1, dnssec_ok));
                        assert_eq!(
                            entry.remaining_ttl(self.now),
                            expected_ttl(stored, self.now)
                        );
                    }
                    (None, Some(_)) => {
                        assert!(!self.no_eviction_yet(), "entry lost without eviction")
                    }
                    (None, None) => {}
                }
            }
        }
        assert!(self.cache.len() <= self.config.capacity, "over capacity");
    }

    /// A client query for key `k`, in a case and with EDNS the input picks, answered.
    fn answer(&mut self, k: usize, input: &mut Input<'_>) {
        let (name, qtype, dnssec_ok) = key_parts(k);
        let how = input.u8();
        let case = input.u32();
        let mut packet = vec![0x51, 0x5A, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        let mut spelled = name.to_vec();
        for (i, byte) in spelled.iter_mut().enumerate() {
            if byte.is_ascii_lowercase() && case & (1 << (i % 32)) != 0 {
                byte.make_ascii_uppercase();
            }
        }
        packet.extend_from_slice(&spelled);
        packet.extend_from_slice(&qtype.to_be_bytes());
        packet.extend_from_slice(&1u16.to_be_bytes());
        // EDNS is needed to ask with DO; without DO the input picks.
        if dnssec_ok || how & 1 != 0 {
            let payload = input.u16();
            packet[11] = 1;
            packet.extend_from_slice(&[0, 0, 41]);
            packet.extend_from_slice(&payload.to_be_bytes());
            packet.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
        }
        let Ok(query) = parse_query(&packet) else {
            panic!("client query does not parse: {packet:02x?}");
        };
        let transport = match (how >> 1) & 3 {
            0 => Transport::Udp { max_payload: 512 },
            1 => Transport::Udp { max_payload: 1232 },
            2 => Transport::Udp { max_payload: 4096 },
            _ => Transport::Tcp,
        };
        let limit = response_limit(&query, transport);
        let room = match transport {
            Transport::Udp { max_payload } => usize::from(max_payload).max(512),
            Transport::Tcp => 65535,
        };
        let hit = self
            .cache
            .answer(&query, &packet, &mut self.out[..room], transport);
        let no_eviction_yet = self.no_eviction_yet();
        let stale_at_once = self.stale_at_once(k);
        let stored = self.model.get_mut(&k);
        let Some(hit) = hit else {
            if let Some(stored) = stored {
                let served = expected_ttl(stored, self.now).is_some() || stale_at_once;
                assert!(
                    !(served && no_eviction_yet),
                    "fresh (or immediately served stale) entry not served without eviction"
                );
            }
            return;
        };
        let Some(stored) = stored else {
            panic!("hit for a key never inserted");
        };
        let remaining = expected_ttl(stored, self.now);
        assert!(
            remaining.is_some() || stale_at_once,
            "expired entry served as a hit"
        );
        assert_eq!(hit.stale, remaining.is_none());
        let ttl = match remaining {
            None => STALE_TTL,
            Some(_) if self.config.keep_ttl => stored.ttl,
            Some(remaining) => remaining,
        };
        assert!(
            hit.len <= limit,
            "hit of {} over the limit {limit}",
            hit.len
        );
        let out = &self.out[..hit.len];
        assert_eq!(out[..2], [0x51, 0x5A], "ID");
        let question_end = HEADER_LEN + name.len() + 4;
        assert_eq!(
            out[HEADER_LEN..question_end],
            packet[HEADER_LEN..question_end]
        );
        let Some(served) = parse_response(out, 0x515A, name, qtype, 1) else {
            panic!("served answer fails validation: {out:02x?}");
        };
        assert_eq!(served.rcode(), stored.response.rcode());
        // The served body is the stored one's prefix, with every TTL replaced.
        let kept = served.records.len();
        assert!(kept <= stored.response.records.len());
        assert_eq!(served.records[..], stored.response.records[..kept]);
        let mut expected = stored.body[..served.body.len()].to_vec();
        for record in &stored.response.records[..kept] {
            let at = usize::from(record.ttl_at);
            expected[at..at + 4].copy_from_slice(&ttl.to_be_bytes());
        }
        assert_eq!(out[served.body.clone()], expected[..], "served body");
        for record in &served.records {
            let at = served.body.start + usize::from(record.ttl_at);
            assert_eq!(read_u32(out, at), Some(ttl));
        }
        // The refresh the model expects: a stale answer asks for one; a fresh hit counts
        // toward prefetch, as CoreDNS's frequency does.
        let due = match remaining {
            None => true,
            Some(_) if self.config.prefetch_hits == 0 => false,
            Some(left) => {
                let window = self.config.prefetch_window.as_millis() as u64;
                stored.hits = match stored.last_hit {
                    Some(last) if self.now - last <= window => stored.hits.saturating_add(1),
                    _ => 1,
                };
                stored.last_hit = Some(self.now);
                let percent = u64::from(self.config.prefetch_percent);
                let threshold = (u64::from(stored.ttl) * percent).div_ceil(100);
                stored.hits >= self.config.prefetch_hits && u64::from(left) <= threshold
            }
        };
        let expected = due && !stored.prefetched;
        assert_eq!(
            hit.refresh.is_some(),
            expected,
            "refresh asked for: hits {}, TTL {} stored at {}, now {}, already asked {}",
            stored.hits,
            stored.ttl,
            stored.stored_at,
            self.now,
            stored.prefetched
        );
        stored.prefetched |= expected;
    }

    /// Whether key `k`'s last insert, expired now, is served at once (`immediate` mode).
    fn stale_at_once(&self, k: usize) -> bool {
        let Some(stored) = self.model.get(&k) else {
            return false;
        };
        let expiry = stored.stored_at + u64::from(stored.ttl) * 1000;
        let stale_ms = self.config.serve_stale.as_millis() as u64;
        self.config.stale_refresh == StaleRefresh::Immediate
            && stale_ms > 0
            && self.now >= expiry
            && self.now - expiry <= stale_ms
    }
}

/// The TTL the model expects left on `stored` at `now`, `None` once expired.
fn expected_ttl(stored: &Stored, now: u64) -> Option<u32> {
    let elapsed = now - stored.stored_at;
    (elapsed < u64::from(stored.ttl) * 1000).then(|| stored.ttl - (elapsed / 1000) as u32)
}

/// Runs the ops `data` spells.
pub fn run(data: &[u8]) {
    let mut input = Input(data);
    let mut harness = Harness::new(&mut input);
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        harness.step(&mut input);
    }
}
