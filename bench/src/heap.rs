//! The zone's heap, measured: a synthetic cluster's zone built while the testkit's counting
//! allocator ([`clusterdns_testkit::alloc::Counting`]) counts the live bytes. A binary or test
//! that measures installs it as its `#[global_allocator]`; the figures are deterministic for a
//! given build, unlike RSS.

use std::time::{Duration, Instant};

use clusterdns_testkit::alloc::live_bytes;
use clusterdns_zone::{Change, EndpointSlice, ZoneBuilder};

use crate::{generate, Spec};

/// One measured build of a synthetic cluster's zone.
pub struct ZoneBuild {
    /// The builder, holding the zone (its published snapshot shares the tables).
    pub builder: ZoneBuilder,
    /// A slice with endpoints, to change.
    pub sample: EndpointSlice,
    /// Heap bytes the builder holds after the build.
    pub bytes: usize,
    /// How long applying every object and publishing took.
    pub took: Duration,
    /// Endpoints in the zone.
    pub endpoints: usize,
    /// Owner names the zone answers for (reverse names included).
    pub names: usize,
}

/// Builds the zone of a synthetic cluster of `services` Services with `per_service` endpoints
/// each, measuring the heap the builder holds afterwards.
pub fn build_zone(services: usize, per_service: usize) -> Result<ZoneBuild, String> {
    let spec = Spec::with_total_endpoints(services, services * per_service);
    // Counted from before the cluster exists: the builder takes its objects over, and what it
    // frees of them must not offset what it keeps.
    let before = live_bytes();
    let cluster = generate(&spec).map_err(|e| e.to_string())?;
    let config = spec.zone_config().map_err(|e| e.to_string())?;
    let sample = (cluster.slices.iter())
        .find(|slice| !slice.endpoints.is_empty())
        .cloned()
        .ok_or("the cluster has no endpoints to change")?;
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
    let (endpoints, names) = (snapshot.stats().endpoints, snapshot.stats().names);
    drop(snapshot);
    // What the builder holds (the records and tables a snapshot shares) and the one sample
    // slice: the change list was consumed into it.
    let bytes = live_bytes().saturating_sub(before);
    Ok(ZoneBuild {
        builder,
        sample,
        bytes,
        took,
        endpoints,
        names,
    })
}

/// Heap bytes per Service and per endpoint: two builds with the same Services and 10 vs 20
/// endpoints each (the difference over the added endpoints); bytes per Service are what remains
/// of the 10-endpoint build once its endpoints are paid for. Returns the 10-endpoint build too.
pub fn bytes_per_object(services: usize) -> Result<(f64, f64, ZoneBuild), String> {
    let twenty = build_zone(services, 20)?;
    let (twenty_bytes, twenty_endpoints) = (twenty.bytes, twenty.endpoints);
    drop(twenty);
    let ten = build_zone(services, 10)?;
    let per_endpoint = twenty_bytes.saturating_sub(ten.bytes) as f64
        / (twenty_endpoints - ten.endpoints).max(1) as f64;
    let per_service = (ten.bytes as f64 - per_endpoint * ten.endpoints as f64) / services as f64;
    Ok((per_service, per_endpoint, ten))
}
