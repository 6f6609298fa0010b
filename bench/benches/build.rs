//! Zone builds: a full snapshot build (replace_all + publish) at 1,000 and 10,000 Services, and the
//! publish of one changed EndpointSlice on a 10,000-Service builder, the cost every endpoint change
//! pays (ARCHITECTURE.md, "An EndpointSlice change": it must not grow with the cluster).
//!
//! `cargo bench -p clusterdns-bench --bench build`

use std::time::Duration;

use clusterdns_bench::{generate, Spec};
use clusterdns_zone::{Change, Cluster, EndpointSlice, ServiceKind, ZoneBuilder, ZoneConfig};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode};

fn full_build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build/full");
    // Flat sampling: every sample runs the same few iterations (a 10k build takes long).
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for services in [1_000, 10_000] {
        let spec = Spec::new(services);
        let cluster = generate(&spec).expect("generate the cluster");
        let config = spec.zone_config().expect("zone config");
        group.bench_with_input(
            BenchmarkId::from_parameter(services),
            &cluster,
            |b, cluster| {
                b.iter_batched(
                    || cluster.clone(),
                    |cluster| {
                        let mut builder = ZoneBuilder::new(config.clone());
                        builder.replace_all(cluster);
                        builder.set_synced();
                        let snapshot = builder.publish();
                        // Dropped outside the measurement.
                        (builder, snapshot)
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
    group.finish();
}

/// The first slice of the first Service of `kind` with a non-empty slice.
fn slice_of(cluster: &Cluster, headless: bool) -> EndpointSlice {
    let wanted = |kind: &ServiceKind| match kind {
        ServiceKind::Headless => headless,
        ServiceKind::ClusterIp(_) => !headless,
        ServiceKind::ExternalName(_) => false,
    };
    cluster
        .slices
        .iter()
        .find(|slice| {
            !slice.endpoints.is_empty()
                && cluster.services.iter().any(|s| {
                    s.name == slice.service && s.namespace == slice.namespace && wanted(&s.kind)
                })
        })
        .cloned()
        .expect("the cluster has a Service of that kind with endpoints")
}

fn publish_one_slice(c: &mut Criterion) {
    let spec = Spec::new(10_000);
    let cluster = generate(&spec).expect("generate the cluster");
    let config: ZoneConfig = spec.zone_config().expect("zone config");
    let mut group = c.benchmark_group("build/publish_one_slice_10k");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, headless) in [("cluster_ip", false), ("headless", true)] {
        let original = slice_of(&cluster, headless);
        let mut flipped = original.clone();
        flipped.endpoints[0].ready = !flipped.endpoints[0].ready;
        let variants = [flipped, original];
        let mut builder = ZoneBuilder::new(config.clone());
        builder.replace_all(cluster.clone());
        builder.set_synced();
        // The server keeps the published snapshot alive (in its ArcSwap), so the next publish
        // copies the table shards it touches: keep the last one alive here too.
        let mut current = builder.publish();
        let mut next = 0usize;
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    next += 1;
                    variants[next % 2].clone()
                },
                |slice| {
                    builder.apply(Change::SliceUpsert(slice));
                    std::mem::replace(&mut current, builder.publish())
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(builds, full_build, publish_one_slice);
criterion_main!(builds);
