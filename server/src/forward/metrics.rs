//! Counters of the forwarder and its cache, as plain atomics bumped on the query path, described
//! at a scrape under the names CoreDNS's `cache` and `forward` plugins use, so existing
//! dashboards and alerts keep working.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::ops::metrics::Exposition;

/// Kinds of cached answers, as CoreDNS labels them: `success` (positive answers) and `denial`
/// (NXDOMAIN, NODATA and cached SERVFAIL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheType {
    /// A positive answer.
    Success = 0,
    /// NXDOMAIN, NODATA or SERVFAIL.
    Denial = 1,
}

impl CacheType {
    const ALL: [CacheType; 2] = [CacheType::Success, CacheType::Denial];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            CacheType::Success => "success",
            CacheType::Denial => "denial",
        }
    }
}

/// Cache counters.
#[derive(Debug, Default)]
pub struct CacheStats {
    entries: [AtomicI64; 2],
    hits: [AtomicU64; 2],
    misses: AtomicU64,
    prefetches: AtomicU64,
    served_stale: AtomicU64,
    evictions: [AtomicU64; 2],
}

impl CacheStats {
    /// An entry of `kind` came in (+1) or went (-1).
    pub fn entries_changed(&self, kind: CacheType, by: i64) {
        self.entries[kind as usize].fetch_add(by, Ordering::Relaxed);
    }

    /// Entries of `kind` now held.
    pub fn entries(&self, kind: CacheType) -> i64 {
        self.entries[kind as usize].load(Ordering::Relaxed)
    }

    /// A query answered from an entry of `kind`.
    pub fn hit(&self, kind: CacheType) {
        self.hits[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A query the cache could not answer.
    pub fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// A background refresh of an entry about to expire.
    pub fn prefetch(&self) {
        self.prefetches.fetch_add(1, Ordering::Relaxed);
    }

    /// An expired entry served because every upstream failed.
    pub fn served_stale(&self) {
        self.served_stale.fetch_add(1, Ordering::Relaxed);
    }

    /// An entry of `kind` evicted to make room.
    pub fn evicted(&self, kind: CacheType) {
        self.evictions[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Describes the `coredns_cache_*` families of the cache of the server block `server` that
    /// caches `zones` (CoreDNS's `zones` label: the cache's zones, comma-separated).
    pub fn describe(&self, server: &str, zones: &str, out: &mut Exposition) {
        let labels = [("server", server), ("zones", zones), ("view", "")];
        let typed = |kind: CacheType| {
            let [server, zones, view] = labels;
            [server, zones, view, ("type", kind.label())]
        };
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let entries = out.gauge(
            "coredns_cache_entries",
            "The number of elements in the cache.",
        );
        for kind in CacheType::ALL {
            entries.add(&typed(kind), self.entries(kind).max(0) as u64);
        }
        let hits = out.counter("coredns_cache_hits_total", "The count of cache hits.");
        for kind in CacheType::ALL {
            hits.add(&typed(kind), load(&self.hits[kind as usize]));
        }
        // Every query that reaches the cache is a hit or a miss.
        let requests = (self.hits.iter().map(load).sum::<u64>()) + load(&self.misses);
        // Answers that fail their checks are refused by the forwarder before they reach the
        // cache, so the cache itself never drops one: CoreDNS's `drops` stays 0 here.
        let single = [
            (
                "coredns_cache_requests_total",
                "The count of queries the cache saw, hit or missed.",
                requests,
            ),
            (
                "coredns_cache_misses_total",
                "The count of cache misses (deprecated in CoreDNS: requests minus hits).",
                load(&self.misses),
            ),
            (
                "coredns_cache_drops_total",
                "The count of responses not cached because they did not match their query.",
                0,
            ),
            (
                "coredns_cache_prefetch_total",
                "The number of times the cache has prefetched a cached item.",
                load(&self.prefetches),
            ),
            (
                "coredns_cache_served_stale_total",
                "The number of requests served from stale cache entries.",
                load(&self.served_stale),
            ),
        ];
        for (name, help, value) in single {
            out.counter(name, help).add(&labels, value);
        }
        let evictions = out.counter(
            "coredns_cache_evictions_total",
            "The count of cache evictions.",
        );
        for kind in CacheType::ALL {
            evictions.add(&typed(kind), load(&self.evictions[kind as usize]));
        }
    }
}

/// Upper bounds of the request duration buckets, in seconds: CoreDNS's
/// `ExponentialBuckets(0.00025, 2, 16)`.
const BUCKETS: [f64; 16] = [
    0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024,
    2.048, 4.096, 8.192,
];
/// Cells per (upstream, rcode): one per bucket, one past the last, the count and the sum in µs.
const CELLS: usize = BUCKETS.len() + 3;
/// Rcodes fit in the header's four bits; the OPT record's upper bits never reach here.
const RCODES: usize = 16;

/// The rcode mnemonics CoreDNS uses as labels.
const RCODE_LABELS: [&str; RCODES] = [
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "YXDOMAIN",
    "YXRRSET",
    "NXRRSET",
    "NOTAUTH",
    "NOTZONE",
    "DSOTYPENI",
    "RCODE12",
    "RCODE13",
    "RCODE14",
    "RCODE15",
];

/// Forwarding counters.
#[derive(Debug)]
pub struct ForwardStats {
    upstreams: Vec<SocketAddr>,
    durations: Box<[AtomicU64]>,
    max_concurrent_rejects: AtomicU64,
    healthcheck_failures: Box<[AtomicU64]>,
    healthcheck_broken: AtomicU64,
}

impl ForwardStats {
    /// Counters for these upstreams.
    pub fn new(upstreams: &[SocketAddr]) -> Self {
        let zeros = |n| (0..n).map(|_| AtomicU64::new(0)).collect();
        ForwardStats {
            upstreams: upstreams.to_vec(),
            durations: zeros(upstreams.len() * RCODES * CELLS),
            max_concurrent_rejects: AtomicU64::new(0),
            healthcheck_failures: zeros(upstreams.len()),
            healthcheck_broken: AtomicU64::new(0),
        }
    }

    /// Upstream `index` answered with `rcode` after `took`.
    pub fn observe(&self, index: usize, rcode: u8, took: Duration) {
        let base = (index * RCODES + usize::from(rcode & 0x0F)) * CELLS;
        let seconds = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(BUCKETS.len());
        let cells = &self.durations[base..base + CELLS];
        cells[bucket].fetch_add(1, Ordering::Relaxed);
        cells[CELLS - 2].fetch_add(1, Ordering::Relaxed);
        cells[CELLS - 1].fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// A query refused because `--max-concurrent` queries were already in flight.
    pub fn rejected(&self) {
        self.max_concurrent_rejects.fetch_add(1, Ordering::Relaxed);
    }

    /// Queries refused so far for `--max-concurrent`.
    pub fn rejects(&self) -> u64 {
        self.max_concurrent_rejects.load(Ordering::Relaxed)
    }

    /// A health check of upstream `index` failed.
    pub fn healthcheck_failed(&self, index: usize) {
        self.healthcheck_failures[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Every upstream was down when a query came.
    pub fn broken(&self) {
        self.healthcheck_broken.fetch_add(1, Ordering::Relaxed);
    }

    /// Describes the `coredns_proxy_request_duration_seconds` histogram, the
    /// `coredns_proxy_healthcheck_failures_total` counters (CoreDNS 1.13's name; its
    /// `coredns_forward_healthcheck_failures_total` is deprecated) and the `coredns_forward_*`
    /// counters, which several forwarders add up as CoreDNS's one counter does.
    pub fn describe(&self, out: &mut Exposition) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let durations = out.histogram(
            "coredns_proxy_request_duration_seconds",
            "Histogram of the time each request took.",
            &BUCKETS,
        );
        for (index, upstream) in self.upstreams.iter().enumerate() {
            let to = upstream.to_string();
            for (rcode, rcode_label) in RCODE_LABELS.iter().enumerate() {
                let base = (index * RCODES + rcode) * CELLS;
                let cells = &self.durations[base..base + CELLS];
                let count = load(&cells[CELLS - 2]);
                if count == 0 {
                    continue;
                }
                let buckets: Vec<u64> = cells[..BUCKETS.len()].iter().map(load).collect();
                let seconds = load(&cells[CELLS - 1]) as f64 / 1e6;
                let labels = [
                    ("proxy_name", "forward"),
                    ("to", &to),
                    ("rcode", rcode_label),
                ];
                durations.observed(&labels, &buckets, count, seconds);
            }
        }
        (out.counter(
            "coredns_forward_max_concurrent_rejects_total",
            "Counter of the number of queries rejected because the concurrent queries were at maximum.",
        ))
        .add(&[], self.rejects());
        let failures = out.counter(
            "coredns_proxy_healthcheck_failures_total",
            "Counter of the number of failed healthchecks.",
        );
        for (upstream, failed) in self.upstreams.iter().zip(self.healthcheck_failures.iter()) {
            let labels = [("proxy_name", "forward"), ("to", &upstream.to_string())];
            failures.add(&labels, load(failed));
        }
        (out.counter(
            "coredns_forward_healthcheck_broken_total",
            "Counter of the number of complete failures of the healthchecks.",
        ))
        .add(&[], load(&self.healthcheck_broken));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_families_with_server_label() {
        let stats = CacheStats::default();
        stats.entries_changed(CacheType::Success, 2);
        stats.entries_changed(CacheType::Denial, 1);
        stats.hit(CacheType::Success);
        stats.miss();
        stats.evicted(CacheType::Denial);
        let mut exposition = Exposition::default();
        stats.describe("dns://:53", ".,example.org.", &mut exposition);
        let out = exposition.render();
        let labels = "server=\"dns://:53\",zones=\".,example.org.\",view=\"\"";
        for line in [
            "# TYPE coredns_cache_entries gauge".to_string(),
            format!("coredns_cache_entries{{{labels},type=\"success\"}} 2"),
            format!("coredns_cache_entries{{{labels},type=\"denial\"}} 1"),
            format!("coredns_cache_hits_total{{{labels},type=\"success\"}} 1"),
            format!("coredns_cache_hits_total{{{labels},type=\"denial\"}} 0"),
            format!("coredns_cache_requests_total{{{labels}}} 2"),
            format!("coredns_cache_misses_total{{{labels}}} 1"),
            format!("coredns_cache_drops_total{{{labels}}} 0"),
            format!("coredns_cache_prefetch_total{{{labels}}} 0"),
            format!("coredns_cache_served_stale_total{{{labels}}} 0"),
            format!("coredns_cache_evictions_total{{{labels},type=\"denial\"}} 1"),
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
    }

    #[test]
    fn histogram_is_cumulative_and_only_for_seen_rcodes() {
        let upstream: SocketAddr = "10.0.0.10:53".parse().unwrap();
        let stats = ForwardStats::new(&[upstream]);
        stats.observe(0, 0, Duration::from_micros(300));
        stats.observe(0, 0, Duration::from_millis(3));
        stats.observe(0, 0, Duration::from_secs(20));
        stats.rejected();
        stats.healthcheck_failed(0);
        let mut exposition = Exposition::default();
        stats.describe(&mut exposition);
        let out = exposition.render();
        let labels = "proxy_name=\"forward\",to=\"10.0.0.10:53\",rcode=\"NOERROR\"";
        for line in [
            format!("coredns_proxy_request_duration_seconds_bucket{{{labels},le=\"0.00025\"}} 0"),
            format!("coredns_proxy_request_duration_seconds_bucket{{{labels},le=\"0.0005\"}} 1"),
            format!("coredns_proxy_request_duration_seconds_bucket{{{labels},le=\"0.004\"}} 2"),
            format!("coredns_proxy_request_duration_seconds_bucket{{{labels},le=\"8.192\"}} 2"),
            format!("coredns_proxy_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 3"),
            format!("coredns_proxy_request_duration_seconds_count{{{labels}}} 3"),
            "coredns_forward_max_concurrent_rejects_total 1".to_string(),
            "coredns_proxy_healthcheck_failures_total{proxy_name=\"forward\",to=\"10.0.0.10:53\"} 1"
                .to_string(),
            "coredns_forward_healthcheck_broken_total 0".to_string(),
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
        assert!(!out.contains("SERVFAIL"));
    }
}
