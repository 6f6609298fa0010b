use std::time::Duration;

use super::*;
use crate::forward::clock::ManualClock;
use crate::forward::config::StaleRefresh;
use crate::forward::message::{parse_response, write_query};

const NAME: &[u8] = b"\x03www\x07example\x03com\x00";

/// A client query for www.example.com A, spelled `spelling`, optionally with EDNS.
fn client_query(id: u16, spelling: &[u8], payload: Option<u16>) -> Vec<u8> {
    let mut packet = write_query(id, spelling, 1, 1, false);
    if let Some(payload) = payload {
        let at = packet.len() - 8;
        packet[at..at + 2].copy_from_slice(&payload.to_be_bytes());
    } else {
        packet.truncate(packet.len() - OPT_LEN);
        packet[11] = 0;
    }
    packet
}

/// An upstream answer with `n` A records of TTL `ttl` and rcode `rcode`.
fn upstream_answer(n: u8, ttl: u32, rcode: u16) -> (Vec<u8>, Response) {
    let mut packet = write_query(9, NAME, 1, 1, false);
    packet.truncate(HEADER_LEN + NAME.len() + 4);
    packet[2..4].copy_from_slice(&(0x8180 | rcode).to_be_bytes());
    packet[6..8].copy_from_slice(&u16::from(n).to_be_bytes());
    packet[11] = 0;
    for i in 0..n {
        packet.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        packet.extend_from_slice(&ttl.to_be_bytes());
        packet.extend_from_slice(&[0, 4, 10, 0, 0, i]);
    }
    let response = parse_response(&packet, 9, NAME, 1, 1).unwrap();
    (packet, response)
}

fn cache(capacity: usize) -> (Cache, ManualClock) {
    let (clock, hand) = Clock::manual();
    let config = CacheConfig {
        capacity,
        serve_stale: Duration::from_secs(3600),
        ..CacheConfig::default()
    };
    (Cache::new(config, clock), hand)
}

fn ttls(response: &[u8], records: usize) -> Vec<u32> {
    let body = HEADER_LEN + NAME.len() + 4;
    (0..records)
        .map(|i| {
            let at = body + i * 16 + 6;
            u32::from_be_bytes(response[at..at + 4].try_into().unwrap())
        })
        .collect()
}

fn insert(cache: &Cache, n: u8, ttl: u32) {
    let (packet, response) = upstream_answer(n, ttl, 0);
    let (kind, ttl) = cacheability(&response, cache.config(), b"\x00").unwrap();
    let query = client_query(1, NAME, None);
    let parsed = clusterdns_zone::parse_query(&query).unwrap();
    cache.insert(
        CacheKeyRef::of(&parsed).to_key(),
        Answer::new(&packet, &response),
        kind,
        ttl,
    );
}

#[test]
fn hit_patches_id_case_and_counts_ttl_down() {
    let (cache, hand) = cache(100);
    insert(&cache, 2, 300);
    let packet = client_query(0x4242, b"\x03WwW\x07Example\x03COM\x00", Some(1232));
    let query = clusterdns_zone::parse_query(&packet).unwrap();
    let mut out = [0u8; 512];
    let udp = Transport::Udp { max_payload: 1232 };
    let hit = cache.answer(&query, &packet, &mut out, udp).unwrap();
    assert_eq!(&out[..2], &[0x42, 0x42]);
    assert_eq!(
        &out[HEADER_LEN..HEADER_LEN + NAME.len()],
        b"\x03WwW\x07Example\x03COM\x00"
    );
    assert_eq!(&out[6..12], &[0, 2, 0, 0, 0, 1], "2 answers and our OPT");
    assert_eq!(ttls(&out, 2), vec![30, 30], "capped by max_ttl");
    assert_eq!(hit.len, packet.len() + 32);
    assert_eq!(out[2] & 0x80, 0x80, "QR");
    assert_eq!(out[2] & 0x04, 0, "not authoritative");

    hand.advance(Duration::from_millis(10_500));
    cache.answer(&query, &packet, &mut out, udp).unwrap();
    assert_eq!(ttls(&out, 2), vec![20, 20]);
    hand.advance(Duration::from_millis(19_499));
    cache.answer(&query, &packet, &mut out, udp).unwrap();
    assert_eq!(ttls(&out, 2), vec![1, 1]);
    hand.advance(Duration::from_millis(1));
    assert!(
        cache.answer(&query, &packet, &mut out, udp).is_none(),
        "expired"
    );
    assert!(cache.stale(CacheKeyRef::of(&query)).is_some());
    hand.advance(Duration::from_secs(3601));
    assert!(cache.stale(CacheKeyRef::of(&query)).is_none(), "too stale");
    assert_eq!(cache.stats().entries(CacheType::Success), 1);
}

#[test]
fn truncates_whole_records_over_udp() {
    let (cache, _) = cache(100);
    insert(&cache, 40, 60);
    let packet = client_query(7, NAME, None);
    let query = clusterdns_zone::parse_query(&packet).unwrap();
    let mut out = vec![0u8; 65535];
    let len = cache
        .answer(
            &query,
            &packet,
            &mut out,
            Transport::Udp { max_payload: 4096 },
        )
        .unwrap()
        .len;
    let fits = (512 - packet.len()) / 16;
    assert_eq!(len, packet.len() + fits * 16);
    assert_eq!(out[2] & 0x02, 0x02, "TC");
    assert_eq!(usize::from(u16::from_be_bytes([out[6], out[7]])), fits);

    let len = cache
        .answer(&query, &packet, &mut out, Transport::Tcp)
        .unwrap()
        .len;
    assert_eq!(len, packet.len() + 40 * 16);
    assert_eq!(out[2] & 0x02, 0, "no TC over TCP");
}

#[test]
fn negative_and_servfail_ttls() {
    let config = CacheConfig::default();
    let (_, servfail) = upstream_answer(0, 0, 2);
    assert_eq!(
        cacheability(&servfail, &config, b"\x00"),
        Some((CacheType::Denial, 2))
    );
    let (_, refused) = upstream_answer(0, 0, 5);
    assert_eq!(cacheability(&refused, &config, b"\x00"), None);
    let (_, no_soa) = upstream_answer(0, 0, 3);
    assert_eq!(
        cacheability(&no_soa, &config, b"\x00"),
        None,
        "RFC 2308 §5: no SOA, no caching"
    );
    let (_, zero) = upstream_answer(1, 0, 0);
    assert_eq!(cacheability(&zero, &config, b"\x00"), None);
    let (_, short) = upstream_answer(1, 7, 0);
    assert_eq!(
        cacheability(&short, &config, b"\x00"),
        Some((CacheType::Success, 7))
    );
}

#[test]
fn clock_eviction_keeps_the_bound_and_spares_hit_entries() {
    let (cache, _) = cache(4);
    let mut out = [0u8; 512];
    let names: Vec<Vec<u8>> = (0..8u8).map(|i| vec![1, b'a' + i, 0]).collect();
    let store = |name: &[u8]| {
        let (packet, response) = upstream_answer(1, 60, 0);
        let key = CacheKeyRef {
            name,
            qtype: 1,
            qclass: 1,
            dnssec_ok: false,
            options: &[],
        }
        .to_key();
        cache.insert(key, Answer::new(&packet, &response), CacheType::Success, 60);
    };
    for name in &names[..4] {
        store(name);
    }
    // Hit the first entry, so the next insert evicts the second.
    let packet = client_query(1, &names[0], None);
    let query = clusterdns_zone::parse_query(&packet).unwrap();
    assert!(cache
        .answer(&query, &packet, &mut out, Transport::Tcp)
        .is_some());
    store(&names[4]);
    assert_eq!(cache.len(), 4);
    let present = |name: &[u8]| {
        cache
            .get(CacheKeyRef {
                name,
                qtype: 1,
                qclass: 1,
                dnssec_ok: false,
                options: &[],
            })
            .is_some()
    };
    assert!(present(&names[0]), "hit entry survives");
    assert!(!present(&names[1]), "unreferenced entry evicted");
    for name in &names[5..] {
        store(name);
    }
    assert_eq!(cache.len(), 4);
    assert_eq!(cache.stats().entries(CacheType::Success), 4);
    let text = metrics_of(&cache);
    assert!(
        text.contains(
            "coredns_cache_evictions_total{server=\"dns://:53\",zones=\".\",view=\"\",type=\"success\"} 4"
        ),
        "{text}"
    );
}

#[test]
fn prefetch_after_enough_hits_near_expiry() {
    let (clock, hand) = Clock::manual();
    let config = CacheConfig {
        prefetch_hits: 3,
        ..CacheConfig::default()
    };
    let cache = Cache::new(config, clock);
    insert(&cache, 1, 30);
    let packet = client_query(1, NAME, None);
    let query = clusterdns_zone::parse_query(&packet).unwrap();
    let mut out = [0u8; 512];
    let mut ask = || {
        cache
            .answer(&query, &packet, &mut out, Transport::Tcp)
            .unwrap()
            .refresh
            .is_some()
    };
    assert!(!ask() && !ask() && !ask(), "fresh: no prefetch");
    hand.advance(Duration::from_millis(27_500));
    assert!(ask(), "hit 4 times with under 10% left");
    assert!(!ask(), "only once");
}

#[test]
fn answers_to_a_query_with_edns0_options_are_kept_apart() {
    // What a `rewrite edns0` rule sends upstream is part of the key: an answer fetched with an
    // option is not served to the same question without it, nor with another value.
    let (cache, _) = cache(100);
    let (packet, response) = upstream_answer(1, 300, 0);
    let query = client_query(1, NAME, None);
    let parsed = clusterdns_zone::parse_query(&query).unwrap();
    let tagged: &[u8] = &[0xff, 0xee, 0, 1, 7];
    let key = CacheKeyRef::of(&parsed).with_options(tagged).to_key();
    assert_eq!(key.options(), tagged);
    cache.insert(
        key,
        Answer::new(&packet, &response),
        CacheType::Success,
        300,
    );
    let mut out = [0u8; 512];
    let key = CacheKeyRef::of(&parsed);
    assert!(cache
        .answer_key(key, &parsed, &query, &mut out, Transport::Tcp)
        .is_none());
    let other: &[u8] = &[0xff, 0xee, 0, 1, 8];
    assert!(cache
        .answer_key(
            key.with_options(other),
            &parsed,
            &query,
            &mut out,
            Transport::Tcp
        )
        .is_none());
    assert!(cache
        .answer_key(
            key.with_options(tagged),
            &parsed,
            &query,
            &mut out,
            Transport::Tcp
        )
        .is_some());
}

/// A cache with `config`, on a manual clock, and a way to ask it www.example.com A: the TTL
/// served and the entry to refresh, if the hit asks for one.
fn asking(config: CacheConfig) -> (Cache, ManualClock) {
    let (clock, hand) = Clock::manual();
    (Cache::new(config, clock), hand)
}

fn ask(cache: &Cache) -> Option<(u32, Option<Arc<CacheEntry>>)> {
    let packet = client_query(1, NAME, None);
    let query = clusterdns_zone::parse_query(&packet).unwrap();
    let mut out = [0u8; 512];
    let hit = cache.answer(&query, &packet, &mut out, Transport::Tcp)?;
    Some((ttls(&out, 1)[0], hit.refresh))
}

/// Stores a fresh answer for www.example.com A as a refresh would, and ends the refresh of
/// `old` with it.
fn refresh(cache: &Cache, old: &CacheEntry, ttl: u32) {
    insert(cache, 1, ttl);
    let new = cache
        .get(CacheKey::new(NAME, 1, 1, false).as_ref())
        .unwrap();
    old.end_refresh(Some(&new));
}

#[test]
fn prefetch_as_coredns_times_it() {
    // CoreDNS's TestPrefetch (plugin/cache/prefetch_test.go): (stored TTL, AMOUNT, then at each
    // second: the TTL served and whether the hit prefetches). The prefetch is answered at once,
    // so the next hit sees the new entry.
    /// At a second: the TTL served and whether the hit prefetches.
    type Hits = &'static [(u64, u32, bool)];
    let table: [(u32, u32, Hits); 3] = [
        // 10% of 80 is 8: a hit with 7 left prefetches.
        (80, 1, &[(73, 7, true), (80, 73, false)]),
        // 10% of 5 rounds up to 1: the last second.
        (5, 1, &[(1, 4, false), (4, 1, true), (5, 4, false)]),
        // AMOUNT 0: never, and the entry expires.
        (30, 0, &[(15, 15, false), (29, 1, false)]),
    ];
    for (ttl, amount, hits) in table {
        let (cache, hand) = asking(CacheConfig {
            prefetch_hits: amount,
            max_ttl: 3600,
            ..CacheConfig::default()
        });
        insert(&cache, 1, ttl);
        let mut now = 0;
        for &(at, served, prefetches) in hits {
            hand.advance(Duration::from_secs(at - now));
            now = at;
            let (got, entry) = ask(&cache).unwrap_or_else(|| panic!("{ttl}s at {at}s: a hit"));
            assert_eq!(
                (got, entry.is_some()),
                (served, prefetches),
                "TTL {ttl}, AMOUNT {amount}, at {at}s"
            );
            if let Some(entry) = entry {
                refresh(&cache, &entry, ttl);
            }
        }
        if amount == 0 {
            hand.advance(Duration::from_secs(1));
            assert!(ask(&cache).is_none(), "expired at 30s");
        }
    }
}

#[test]
fn prefetch_percentage_sets_the_threshold() {
    // 50% of 100 s: due from 50 s left, not at 51.
    let (cache, hand) = asking(CacheConfig {
        prefetch_hits: 1,
        prefetch_percent: 50,
        max_ttl: 3600,
        ..CacheConfig::default()
    });
    insert(&cache, 1, 100);
    hand.advance(Duration::from_secs(49));
    assert!(ask(&cache).unwrap().1.is_none(), "51 s left");
    hand.advance(Duration::from_secs(1));
    assert!(ask(&cache).unwrap().1.is_some(), "50 s left");
}

#[test]
fn prefetch_counts_hits_with_no_gap_past_the_window() {
    let (cache, hand) = asking(CacheConfig {
        prefetch_hits: 3,
        prefetch_window: Duration::from_secs(60),
        prefetch_percent: 90,
        max_ttl: 3600,
        ..CacheConfig::default()
    });
    insert(&cache, 1, 3600);
    // Past 10% of the TTL, so only the hit count decides.
    hand.advance(Duration::from_secs(400));
    assert!(ask(&cache).unwrap().1.is_none(), "hit 1");
    hand.advance(Duration::from_secs(70));
    assert!(ask(&cache).unwrap().1.is_none(), "a 70 s gap: hit 1 again");
    hand.advance(Duration::from_secs(60));
    assert!(
        ask(&cache).unwrap().1.is_none(),
        "hit 2: 60 s is within the window"
    );
    hand.advance(Duration::from_secs(30));
    let (_, entry) = ask(&cache).unwrap();
    let entry = entry.expect("hit 3 prefetches");
    assert!(ask(&cache).unwrap().1.is_none(), "one refresh at a time");
    // A failed refresh ends: the next hit asks again.
    entry.end_refresh(None);
    let (_, again) = ask(&cache).unwrap();
    let again = again.expect("asked again after a failed refresh");
    // A refresh that stored a new entry gives it the hit count and time of the last hit.
    refresh(&cache, &again, 3600);
    let new = cache
        .get(CacheKey::new(NAME, 1, 1, false).as_ref())
        .unwrap();
    assert_eq!(new.hits.load(Ordering::Relaxed), 5);
    assert_eq!(
        new.last_hit_ms.load(Ordering::Relaxed),
        again.last_hit_ms.load(Ordering::Relaxed)
    );
    assert!(!again.prefetching.load(Ordering::Relaxed));
}

#[test]
fn immediate_serve_stale_answers_at_once_and_asks_for_one_refresh() {
    let (cache, hand) = asking(CacheConfig {
        serve_stale: Duration::from_secs(3600),
        stale_refresh: StaleRefresh::Immediate,
        ..CacheConfig::default()
    });
    insert(&cache, 1, 30);
    hand.advance(Duration::from_secs(31));
    let (ttl, entry) = ask(&cache).expect("served stale");
    assert_eq!(ttl, STALE_TTL, "RFC 8767 §4");
    let entry = entry.expect("a refresh asked for");
    assert_eq!(
        ask(&cache).unwrap().1.map(|_| ()),
        None,
        "one refresh at a time"
    );
    entry.end_refresh(None);
    assert!(
        ask(&cache).unwrap().1.is_some(),
        "after a failed refresh, again"
    );
    let text = metrics_of(&cache);
    assert!(
        text.contains(
            "coredns_cache_served_stale_total{server=\"dns://:53\",zones=\".\",view=\"\"} 3"
        ),
        "{text}"
    );
    hand.advance(Duration::from_secs(3600));
    assert!(ask(&cache).is_none(), "past serve_stale: a miss");

    // `verify`: an expired entry is a miss; the forwarder serves it only when upstreams fail.
    let (cache, hand) = asking(CacheConfig {
        serve_stale: Duration::from_secs(3600),
        stale_refresh: StaleRefresh::Verify,
        ..CacheConfig::default()
    });
    insert(&cache, 1, 30);
    hand.advance(Duration::from_secs(31));
    assert!(ask(&cache).is_none());
    assert!(cache
        .stale(CacheKey::new(NAME, 1, 1, false).as_ref())
        .is_some());
}

/// The `coredns_cache_*` text of `cache`, in the block `dns://:53` caching the root.
fn metrics_of(cache: &Cache) -> String {
    let mut out = crate::ops::metrics::Exposition::default();
    cache.stats().describe("dns://:53", ".", &mut out);
    out.render()
}
