//! One scrape of `/metrics`: the text of a server with three zones, two UDP workers and a TCP
//! listener that have answered every counted type with several rcodes over both families. The
//! scrape runs off the query path; this keeps its cost in view.
//!
//! `cargo bench -p clusterdns-bench --bench scrape`

use std::time::Duration;

use clusterdns::ops::metrics::{Family, Metrics, Outcome, Plugin, Proto, Sizes};
use criterion::{criterion_group, criterion_main, Criterion};

/// Metrics with a realistic spread of series: 3 zones x 2 protos x 2 families x 13 types.
fn populated() -> Metrics {
    let metrics = Metrics::new("dns://:53".into());
    let zones = ["cluster.local.", "in-addr.arpa.", "."].map(|zone| {
        metrics.plugin_enabled("dns://:53", zone, "kubernetes");
        metrics.label_slot("dns://:53", zone)
    });
    let workers = [
        (metrics.dns_counters(false), Proto::Udp),
        (metrics.dns_counters(false), Proto::Udp),
        (metrics.dns_counters(true), Proto::Tcp),
    ];
    for (counters, proto) in &workers {
        for &zone in &zones {
            for family in [Family::V4, Family::V6] {
                for qtype in [1, 2, 5, 6, 12, 15, 16, 28, 33, 35, 64, 65, 255, 99] {
                    for rcode in [0, 2, 3] {
                        let outcome = Outcome {
                            qtype,
                            rcode,
                            zone,
                            plugin: Plugin::Kubernetes,
                            dnssec_ok: qtype == 28,
                        };
                        let sizes = Sizes {
                            request: 40 + usize::from(qtype % 7) * 10,
                            response: 60 + usize::from(qtype) * 3,
                        };
                        counters.record(*proto, family, outcome, sizes, Duration::from_micros(7));
                    }
                }
            }
        }
    }
    metrics
}

fn scrape(c: &mut Criterion) {
    let metrics = populated();
    let bytes = metrics.render().len();
    let mut group = c.benchmark_group("scrape");
    group.throughput(criterion::Throughput::Bytes(bytes as u64));
    group.bench_function("render", |b| b.iter(|| metrics.render()));
    group.finish();
}

criterion_group!(benches, scrape);
criterion_main!(benches);
