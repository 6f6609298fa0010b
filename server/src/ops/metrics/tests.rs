use super::*;

fn outcome(qtype: u16, rcode: u16) -> Outcome {
    Outcome {
        qtype,
        rcode,
        zone: 1,
        plugin: Plugin::Kubernetes,
    }
}

#[test]
fn counters_of_every_worker_are_summed_on_scrape() {
    let metrics = Metrics::new("dns://:53".into());
    assert_eq!(metrics.label_slot("dns://:53", "cluster.local."), 1);
    let udp = metrics.dns_counters(false);
    let tcp = metrics.dns_counters(true);
    for _ in 0..3 {
        udp.record(
            Proto::Udp,
            Family::V4,
            outcome(1, 0),
            Duration::from_micros(5),
        );
    }
    udp.record(
        Proto::Udp,
        Family::V6,
        outcome(999, 3),
        Duration::from_millis(3),
    );
    tcp.record(
        Proto::Tcp,
        Family::V4,
        outcome(1, 0),
        Duration::from_micros(5),
    );
    tcp.connection_accepted();
    let text = metrics.render();
    assert!(
        text.contains("clusterdns_tcp_connections_total{server=\"dns://:53\"} 1"),
        "{text}"
    );
    assert!(text.contains("coredns_dns_requests_total{server=\"dns://:53\",zone=\"cluster.local.\",view=\"\",proto=\"udp\",family=\"1\",type=\"A\"} 3"), "{text}");
    assert!(
        text.contains("proto=\"udp\",family=\"2\",type=\"other\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("proto=\"tcp\",family=\"1\",type=\"A\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("rcode=\"NOERROR\",plugin=\"kubernetes\"} 4"),
        "{text}"
    );
    assert!(
        text.contains("rcode=\"NXDOMAIN\",plugin=\"kubernetes\"} 1"),
        "{text}"
    );
    assert!(text.contains("coredns_dns_request_duration_seconds_bucket{server=\"dns://:53\",zone=\"cluster.local.\",view=\"\",type=\"A\",le=\"0.00025\"} 4"), "{text}");
    assert!(text.contains("type=\"other\",le=\"0.004\"} 1"), "{text}");
    assert!(text.contains("coredns_build_info{version="), "{text}");
    assert!(text.contains("process_resident_memory_bytes "), "{text}");
}

#[test]
fn programming_latency_lands_in_its_bucket() {
    let metrics = Metrics::new("dns://:53".into());
    metrics.source.programmed(
        ServiceKindLabel::HeadlessWithSelector,
        Duration::from_millis(12),
    );
    let text = metrics.render();
    assert!(text.contains("coredns_kubernetes_dns_programming_duration_seconds_bucket{service_kind=\"headless_with_selector\",le=\"0.008\"} 0"), "{text}");
    assert!(text.contains("coredns_kubernetes_dns_programming_duration_seconds_bucket{service_kind=\"headless_with_selector\",le=\"0.016\"} 1"), "{text}");
    assert!(text.contains("coredns_kubernetes_dns_programming_duration_seconds_count{service_kind=\"cluster_ip\"} 0"), "{text}");
}
