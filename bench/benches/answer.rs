//! The answer function on a 10,000-Service snapshot: one query of each common kind answered
//! into a preallocated 4096-byte buffer over UDP, and the query parser alone.
//!
//! `cargo bench -p clusterdns-bench --bench answer`

use std::hint::black_box;
use std::time::Duration;

use clusterdns_bench::packet::query_packet;
use clusterdns_bench::{build_snapshot, generate, service_mix, Category, Expect, QueryLine, Spec};
use clusterdns_zone::{answer, parse_query, Answered, Rcode, Snapshot, Transport};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Services in the benched snapshot.
const SERVICES: usize = 10_000;

/// The first query of the service mix matching `pick`.
fn pick(mix: &[QueryLine], what: &str, pick: impl Fn(&QueryLine) -> bool) -> QueryLine {
    mix.iter()
        .find(|line| pick(line))
        .cloned()
        .unwrap_or_else(|| panic!("the service mix has no {what} query"))
}

/// A query packet for `line`, as dnsperf sends it (RD set, no EDNS).
fn packet(line: &QueryLine) -> Vec<u8> {
    query_packet(0x4242, &line.name, line.qtype.code(), None).expect("generated names are valid")
}

/// Answers once, checking the rcode, so a bench never measures a wrong answer.
fn check(snapshot: &Snapshot, line: &QueryLine, query: &[u8], out: &mut [u8]) {
    let want = match line.expect {
        Expect::NxDomain => Rcode::NxDomain,
        Expect::Answer | Expect::NoData => Rcode::NoError,
    };
    match answer(snapshot, query, out, Transport::Udp { max_payload: 4096 }) {
        Answered::Response { rcode, .. } if rcode == want => {}
        other => panic!("{line}: expected {want:?}, got {other:?}"),
    }
}

fn benches(c: &mut Criterion) {
    let spec = Spec::new(SERVICES);
    let cluster = generate(&spec).expect("generate the cluster");
    let mix = service_mix(&cluster, &spec.domain, 10_000, spec.seed);
    let snapshot = build_snapshot(cluster, spec.zone_config().expect("zone config"));

    let cases = [
        (
            "a_cluster_ip",
            pick(&mix, "ClusterIP A", |l| l.category == Category::ServiceA),
        ),
        (
            "srv_http_tcp",
            pick(&mix, "SRV", |l| l.category == Category::Srv),
        ),
        (
            "nxdomain",
            pick(&mix, "NXDOMAIN", |l| l.category == Category::NxDomain),
        ),
        (
            "ptr_cluster_ip",
            pick(&mix, "IPv4 PTR", |l| {
                l.category == Category::Ptr && l.name.ends_with(".in-addr.arpa")
            }),
        ),
        (
            "a_headless",
            // The Service name (not one endpoint): every ready address in the answer.
            pick(&mix, "headless Service A", |l| {
                l.category == Category::HeadlessA && l.name.split('.').count() == 5
            }),
        ),
    ];

    let mut group = c.benchmark_group("answer");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut out = vec![0u8; 4096];
    for (name, line) in &cases {
        let query = packet(line);
        check(&snapshot, line, &query, &mut out);
        group.bench_function(*name, |b| {
            b.iter(|| {
                answer(
                    black_box(&snapshot),
                    black_box(&query),
                    black_box(&mut out[..]),
                    Transport::Udp { max_payload: 4096 },
                )
            })
        });
    }
    let (_, line) = &cases[0];
    let query = packet(line);
    group.bench_function("parse_query", |b| {
        b.iter(|| parse_query(black_box(&query)).is_ok())
    });
    group.finish();
}

criterion_group!(answer_benches, benches);
criterion_main!(answer_benches);
