//! The `cache` directive's table tests: the examples of CoreDNS's `plugin/cache/README.md` and
//! the `prefetch` and `serve_stale` lines of its `setup_test.go`, read into the block's
//! [`CacheConfig`].

use super::super::tests::{block_of, refused};
use super::*;
use crate::forward::config::StaleRefresh;

/// The cache configuration of a block forwarding to 192.0.2.1 with `cache` as given.
fn cache_of(cache: &str) -> CacheConfig {
    let block = block_of(&format!("forward . 192.0.2.1\n    {cache}"));
    block.forward.expect("forward planned").config.cache
}

fn zones(names: &[&str]) -> Vec<WireName> {
    names
        .iter()
        .map(|n| WireName::from_dotted(n).unwrap())
        .collect()
}

#[test]
fn readme_examples() {
    // "Enable caching for all zones, but cap everything to a TTL of 10 seconds."
    let capped = cache_of("cache 10");
    assert_eq!((capped.max_ttl, capped.max_denial_ttl), (10, 10));
    assert_eq!(capped.scope.zones, zones(&["."]));
    // "Only cache responses for example.org (or below)."
    let scoped = cache_of("cache example.org");
    assert_eq!(scoped.scope.zones, zones(&["example.org"]));
    assert_eq!((scoped.max_ttl, scoped.max_denial_ttl), (3600, 1800));
    // "A positive cache size of 5000 and a negative cache size of 2500."
    let sized = cache_of("cache {\n        success 5000\n        denial 2500\n    }");
    assert_eq!(sized.capacity, 7500);
    // "Do not cache denials in sub.example.org."
    let disabled = cache_of("cache {\n        disable denial sub.example.org\n    }");
    assert_eq!(disabled.scope.no_denial, zones(&["sub.example.org"]));
    assert!(disabled.scope.no_success.is_empty());
}

#[test]
fn prefetch_amount_duration_and_percentage() {
    // (line, AMOUNT, DURATION in seconds, PERCENTAGE)
    let table = [
        ("prefetch 10", 10, 60, 10),
        ("prefetch 0", 0, 60, 10),
        ("prefetch 2 5m", 2, 300, 10),
        ("prefetch 2 1m 10%", 2, 60, 10),
        ("prefetch 5 30s 50%", 5, 30, 50),
        ("prefetch 1 1h 90%", 1, 3600, 90),
    ];
    for (line, hits, window, percent) in table {
        let config = cache_of(&format!("cache {{\n        {line}\n    }}"));
        assert_eq!(
            (
                config.prefetch_hits,
                config.prefetch_window,
                config.prefetch_percent
            ),
            (hits, Duration::from_secs(window), percent),
            "{line}"
        );
    }
    let default = cache_of("cache");
    assert_eq!(
        (
            default.prefetch_hits,
            default.prefetch_window,
            default.prefetch_percent
        ),
        (0, Duration::from_secs(60), 10)
    );
}

#[test]
fn prefetch_refusals_name_the_token() {
    let wrap = |line: &str| format!("forward . 192.0.2.1\n    cache {{\n        {line}\n    }}");
    for (line, says) in [
        ("prefetch", "expected AMOUNT"),
        ("prefetch -1", "\"-1\" is not a number"),
        ("prefetch 0 blurp", "\"blurp\" is not a duration"),
        ("prefetch 2 10", "\"10\" needs a unit"),
        ("prefetch 2 1m 10", "\"10\" must end with %"),
        (
            "prefetch 2 1m 5%",
            "\"5%\" is not a percentage from 10% to 90%",
        ),
        ("prefetch 2 1m 91%", "\"91%\""),
        ("prefetch 2 1m 1.5%", "\"1.5%\""),
        ("prefetch 2 1m 10% more", "too many values"),
    ] {
        refused(&wrap(line), says);
    }
}

#[test]
fn serve_stale_duration_and_refresh_mode() {
    // (line, DURATION in seconds, mode): CoreDNS's TestServeStale cases we support.
    let table = [
        ("serve_stale", 3600, StaleRefresh::Immediate),
        ("serve_stale 20m", 1200, StaleRefresh::Immediate),
        ("serve_stale 1h20m", 4800, StaleRefresh::Immediate),
        ("serve_stale 0m", 0, StaleRefresh::Immediate),
        ("serve_stale 0", 0, StaleRefresh::Immediate),
        ("serve_stale 0 verify", 0, StaleRefresh::Verify),
        ("serve_stale 0 immediate", 0, StaleRefresh::Immediate),
        ("serve_stale 0 VERIFY", 0, StaleRefresh::Verify),
        ("serve_stale 1h verify", 3600, StaleRefresh::Verify),
        ("serve_stale 1h immediate", 3600, StaleRefresh::Immediate),
    ];
    for (line, limit, mode) in table {
        let config = cache_of(&format!("cache {{\n        {line}\n    }}"));
        assert_eq!(
            (config.serve_stale, config.stale_refresh),
            (Duration::from_secs(limit), mode),
            "{line}"
        );
    }
    assert_eq!(cache_of("cache").serve_stale, Duration::ZERO);
}

#[test]
fn serve_stale_refusals_name_the_token() {
    let wrap = |line: &str| format!("forward . 192.0.2.1\n    cache {{\n        {line}\n    }}");
    for (line, says) in [
        // CoreDNS's failing TestServeStale cases.
        ("serve_stale 20", "\"20\" needs a unit"),
        ("serve_stale -20m", "\"-20m\" is not a duration"),
        ("serve_stale aa", "\"aa\" is not a duration"),
        ("serve_stale 1m nono", "refresh mode \"nono\""),
        ("serve_stale 0 after nono", "refresh mode \"after\""),
        // What CoreDNS reads after the mode, which clusterdns does not.
        (
            "serve_stale 1h immediate 30s",
            "\"30s\": nothing after the refresh mode",
        ),
        (
            "serve_stale 1h verify 100ms",
            "\"100ms\": nothing after the refresh mode",
        ),
        ("serve_stale_policy prefer_positive", "serve_stale_policy"),
    ] {
        refused(&wrap(line), says);
    }
}
