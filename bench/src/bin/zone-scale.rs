//! How the zone scales with the cluster: full build time, heap bytes per Service, per endpoint
//! and per name, and the latency of publishing one changed EndpointSlice, at 1k / 10k / 50k Services.
//!
//! `cargo run --profile dist -p clusterdns-bench --bin zone-scale [-- SIZES...]`
//!
//! Memory is the live heap held by the builder and its published snapshot, counted by a wrapping
//! global allocator. Bytes per endpoint come from two builds with the same Services and 10 vs 20
//! endpoints each (the difference over the added endpoints); bytes per Service are what remains of
//! the 10-endpoint build once its endpoints are paid for.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clusterdns_bench::heap::{bytes_per_object, ZoneBuild};
use clusterdns_testkit::alloc::Counting;
use clusterdns_zone::Change;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Median and 99th percentile of publishing one flipped endpoint, over `rounds` publishes.
fn publish_latency(build: &mut ZoneBuild, rounds: usize) -> (Duration, Duration) {
    let builder = &mut build.builder;
    let slice = build.sample.clone();
    let mut flipped = slice.clone();
    flipped.endpoints[0].ready = !flipped.endpoints[0].ready;
    let mut times = Vec::with_capacity(rounds);
    let mut current = Some(builder.publish());
    for i in 0..rounds {
        let change = if i % 2 == 0 { &flipped } else { &slice };
        let started = Instant::now();
        builder.apply(Change::SliceUpsert(change.clone()));
        let snapshot = builder.publish();
        times.push(started.elapsed());
        // The previous snapshot is released after the measurement, as readers move on.
        current = Some(snapshot);
    }
    drop(current);
    times.sort();
    (times[rounds / 2], times[rounds * 99 / 100])
}

fn main() -> ExitCode {
    let sizes: Vec<usize> = match std::env::args().skip(1).map(|a| a.parse()).collect() {
        Ok(sizes) => sizes,
        Err(e) => {
            eprintln!("zone-scale: sizes must be numbers of Services: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 50_000]
    } else {
        sizes
    };
    println!("| Services | endpoints | names | full build | zone heap | bytes/Service | bytes/endpoint | bytes/name | publish one slice p50 | p99 |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for services in sizes {
        let result = (|| -> Result<String, String> {
            let (per_service, per_endpoint, mut ten) = bytes_per_object(services)?;
            let (p50, p99) = publish_latency(&mut ten, 400);
            Ok(format!(
                "| {services} | {} | {} | {:.0} ms | {:.1} MiB | {per_service:.0} | {per_endpoint:.0} | {:.0} | {:.0} µs | {:.0} µs |",
                ten.endpoints,
                ten.names,
                ten.took.as_secs_f64() * 1e3,
                ten.bytes as f64 / (1 << 20) as f64,
                ten.bytes as f64 / ten.names.max(1) as f64,
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6,
            ))
        })();
        match result {
            Ok(row) => println!("{row}"),
            Err(e) => {
                eprintln!("zone-scale: {services} Services: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
