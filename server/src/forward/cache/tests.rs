use std::time::Duration;

use super::*;
use crate::forward::clock::ManualClock;
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
    let mut text = String::new();
    cache.stats().write_prometheus("dns://:53", &mut text);
    assert!(
        text.contains("coredns_cache_evictions_total{server=\"dns://:53\",type=\"success\"} 4"),
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
            .prefetch
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
