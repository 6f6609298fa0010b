//! How the zone scales with the cluster: full build time, heap bytes per Service and per
//! endpoint, and the latency of publishing one changed EndpointSlice, at 1k / 10k / 50k Services.
//!
//! `cargo run --release -p clusterdns-bench --bin zone-scale [-- SIZES...]`
//!
//! Memory is the live heap held by the builder and its published snapshot, counted by a wrapping
//! global allocator. Bytes per endpoint come from two builds with the same Services and 10 vs 20
//! endpoints each (the difference over the added endpoints); bytes per Service are what remains of
//! the 10-endpoint build once its endpoints are paid for.

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clusterdns_bench::{generate, Spec};
use clusterdns_zone::{Change, EndpointSlice, ZoneBuilder};

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller upholds alloc's contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller upholds dealloc's contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller upholds realloc's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One measured build.
struct Build {
    builder: ZoneBuilder,
    /// A slice with endpoints, to change.
    sample: EndpointSlice,
    bytes: usize,
    took: Duration,
    endpoints: usize,
}

fn build(services: usize, per_service: usize) -> Result<Build, String> {
    let spec = Spec::with_total_endpoints(services, services * per_service);
    let cluster = generate(&spec).map_err(|e| e.to_string())?;
    let config = spec.zone_config().map_err(|e| e.to_string())?;
    let sample = (cluster.slices.iter())
        .find(|slice| !slice.endpoints.is_empty())
        .cloned()
        .ok_or("the cluster has no endpoints to change")?;
    let before = LIVE.load(Ordering::Relaxed);
    let changes: Vec<Change> = (cluster.namespaces.into_iter().map(Change::NamespaceUpsert))
        .chain(cluster.services.into_iter().map(Change::ServiceUpsert))
        .chain(cluster.slices.into_iter().map(Change::SliceUpsert))
        .collect();
    let started = Instant::now();
    let mut builder = ZoneBuilder::new(config);
    for change in changes {
        builder.apply(change);
    }
    builder.set_synced();
    let snapshot = builder.publish();
    let took = started.elapsed();
    let endpoints = snapshot.stats().endpoints;
    drop(snapshot);
    // What the builder holds: the model and the tables a snapshot shares (the change list was
    // consumed into it; the generated cluster's strings moved with it).
    let bytes = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    Ok(Build {
        builder,
        sample,
        bytes,
        took,
        endpoints,
    })
}

/// Median and 99th percentile of publishing one flipped endpoint, over `rounds` publishes.
fn publish_latency(build: &mut Build, rounds: usize) -> (Duration, Duration) {
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
    println!("| Services | endpoints | full build | zone heap | bytes/Service | bytes/endpoint | publish one slice p50 | p99 |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for services in sizes {
        let result = (|| -> Result<String, String> {
            let twenty = build(services, 20)?;
            let twenty_bytes = twenty.bytes;
            let twenty_endpoints = twenty.endpoints;
            drop(twenty);
            let mut ten = build(services, 10)?;
            let per_endpoint = twenty_bytes.saturating_sub(ten.bytes) as f64
                / (twenty_endpoints - ten.endpoints).max(1) as f64;
            let per_service =
                (ten.bytes as f64 - per_endpoint * ten.endpoints as f64) / services as f64;
            let (p50, p99) = publish_latency(&mut ten, 400);
            Ok(format!(
                "| {services} | {} | {:.0} ms | {:.1} MiB | {per_service:.0} | {per_endpoint:.0} | {:.0} µs | {:.0} µs |",
                ten.endpoints,
                ten.took.as_secs_f64() * 1e3,
                ten.bytes as f64 / (1 << 20) as f64,
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
