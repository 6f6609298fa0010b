use super::*;

fn outcome(qtype: u16, rcode: u16) -> Outcome {
    Outcome {
        qtype,
        rcode,
        zone: 1,
        plugin: Plugin::Kubernetes,
        dnssec_ok: qtype == 999,
    }
}

fn sizes(request: usize, response: usize) -> Sizes {
    Sizes { request, response }
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
            sizes(40, 56),
            Duration::from_micros(5),
        );
    }
    udp.record(
        Proto::Udp,
        Family::V6,
        outcome(999, 3),
        sizes(300, 1200),
        Duration::from_millis(3),
    );
    tcp.record(
        Proto::Tcp,
        Family::V4,
        outcome(1, 0),
        sizes(40, 56),
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
    // Sizes: CoreDNS's buckets (its 8291 included), per zone and proto, summed over workers.
    // Whole lines: a sum is a float, spelled `420.0` by prometheus-client (Go writes `420`).
    let labels = "server=\"dns://:53\",zone=\"cluster.local.\",view=\"\",proto=\"udp\"";
    for line in [
        format!("coredns_dns_request_size_bytes_bucket{{{labels},le=\"0\"}} 0"),
        format!("coredns_dns_request_size_bytes_bucket{{{labels},le=\"100\"}} 3"),
        format!("coredns_dns_request_size_bytes_bucket{{{labels},le=\"300\"}} 4"),
        format!("coredns_dns_request_size_bytes_sum{{{labels}}} 420.0"),
        format!("coredns_dns_request_size_bytes_count{{{labels}}} 4"),
        format!("coredns_dns_response_size_bytes_bucket{{{labels},le=\"1023\"}} 3"),
        format!("coredns_dns_response_size_bytes_bucket{{{labels},le=\"2047\"}} 4"),
        format!("coredns_dns_response_size_bytes_bucket{{{labels},le=\"8291\"}} 4"),
        format!("coredns_dns_response_size_bytes_bucket{{{labels},le=\"64000\"}} 4"),
        format!("coredns_dns_response_size_bytes_bucket{{{labels},le=\"+Inf\"}} 4"),
        format!("coredns_dns_response_size_bytes_sum{{{labels}}} 1368.0"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert!(
        text.contains("coredns_dns_response_size_bytes_count{server=\"dns://:53\",zone=\"cluster.local.\",view=\"\",proto=\"tcp\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("coredns_dns_do_requests_total{server=\"dns://:53\",zone=\"cluster.local.\",view=\"\"} 1"),
        "{text}"
    );
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

#[test]
fn api_requests_render_as_client_go_metrics() {
    let metrics = Metrics::new("dns://:53".into());
    let host = "10.96.0.1:443";
    metrics
        .source
        .api_request("GET", host, "200", Duration::from_millis(7));
    metrics
        .source
        .api_request("GET", host, "200", Duration::from_millis(30));
    metrics
        .source
        .api_request("GET", host, "<error>", Duration::from_secs(3));
    let text = metrics.render();
    let labels = "verb=\"GET\",host=\"10.96.0.1:443\"";
    for line in [
        format!("coredns_kubernetes_rest_client_request_duration_seconds_bucket{{{labels},le=\"0.01\"}} 1"),
        format!("coredns_kubernetes_rest_client_request_duration_seconds_bucket{{{labels},le=\"0.05\"}} 2"),
        format!("coredns_kubernetes_rest_client_request_duration_seconds_count{{{labels}}} 3"),
        format!("coredns_kubernetes_rest_client_rate_limiter_duration_seconds_bucket{{{labels},le=\"0.005\"}} 3"),
        "coredns_kubernetes_rest_client_requests_total{code=\"200\",method=\"GET\",host=\"10.96.0.1:443\"} 2".to_string(),
        "coredns_kubernetes_rest_client_requests_total{code=\"<error>\",method=\"GET\",host=\"10.96.0.1:443\"} 1".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

#[test]
fn health_probes_and_the_reload_version_render() {
    let metrics = Metrics::new("dns://:53".into());
    metrics.health_probed(Duration::from_micros(900), true);
    metrics.health_probed(Duration::from_secs(3), false);
    metrics.set_reload_version("ab12".into());
    let text = metrics.render();
    for line in [
        "coredns_health_request_duration_seconds_bucket{le=\"0.00025\"} 0",
        "coredns_health_request_duration_seconds_bucket{le=\"0.0025\"} 1",
        "coredns_health_request_duration_seconds_bucket{le=\"2.5\"} 1",
        "coredns_health_request_duration_seconds_count 2",
        "coredns_health_request_failures_total 1",
        "coredns_reload_version_info{hash=\"sha512\",value=\"ab12\"} 1",
        "coredns_panics_total ",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}

#[test]
fn the_size_table_agrees_with_the_bounds() {
    for size in [
        0, 1, 99, 100, 101, 300, 400, 401, 511, 512, 513, 1023, 1024, 8291, 8292, 64000, 65535,
    ] {
        let searched = bucket_of(&SIZE_BUCKETS, size as f64);
        assert_eq!(size_bucket(size), searched, "{size}");
    }
    for size in 0..=SMALL_SIZES {
        assert_eq!(
            size_bucket(size),
            bucket_of(&SIZE_BUCKETS, size as f64),
            "{size}"
        );
    }
}

#[test]
fn a_part_that_is_gone_is_no_longer_described() {
    let metrics = Metrics::new("dns://:53".into());
    let describe = |part: &Arc<AtomicU64>| -> Describer {
        let part = Arc::downgrade(part);
        Box::new(move |out| {
            let Some(part) = part.upgrade() else {
                return false;
            };
            (out.counter("x_total", "A part's counter."))
                .add(&[("server", "dns://:53")], part.load(Ordering::Relaxed));
            true
        })
    };
    // A reload replaces the part: the old one is dropped, the new one counts on its own.
    let old = Arc::new(AtomicU64::new(5));
    let new = Arc::new(AtomicU64::new(2));
    metrics.add_describer(describe(&old));
    metrics.add_describer(describe(&new));
    assert!(metrics
        .render()
        .contains("x_total{server=\"dns://:53\"} 7\n"));
    drop(old);
    assert!(metrics
        .render()
        .contains("x_total{server=\"dns://:53\"} 2\n"));
    assert_eq!(metrics.describers.lock().map(|d| d.len()).ok(), Some(1));
    // Without a scrape, a part gone is settled when the next is added.
    let next = Arc::new(AtomicU64::new(1));
    drop(new);
    metrics.add_describer(describe(&next));
    assert_eq!(metrics.describers.lock().map(|d| d.len()).ok(), Some(1));
}

#[test]
fn counters_of_a_part_that_went_carry_on_in_its_successor() {
    let metrics = Metrics::new("dns://:53".into());
    // What a forwarder leaves when a reload drops it: counters, a histogram and a gauge.
    let mut last = Exposition::default();
    (out_counter(&mut last)).add(&[("server", "dns://:53")], 5);
    (last.gauge("g", "A gauge.")).add(&[("server", "dns://:53")], 9);
    (last.histogram("h_seconds", "A histogram.", &HEALTH_BUCKETS)).observed(
        &[],
        &[1, 0, 0, 0, 0, 0],
        1,
        0.0001,
    );
    metrics.retired().keep(last);
    // Its successor, counting from zero.
    let successor = Arc::new(AtomicU64::new(2));
    let part = Arc::downgrade(&successor);
    metrics.add_describer(Box::new(move |out| {
        let Some(part) = part.upgrade() else {
            return false;
        };
        out_counter(out).add(&[("server", "dns://:53")], part.load(Ordering::Relaxed));
        true
    }));
    let text = metrics.render();
    assert!(text.contains("x_total{server=\"dns://:53\"} 7\n"), "{text}");
    assert!(text.contains("h_seconds_count 1\n"), "{text}");
    assert!(
        !text.contains("\ng{"),
        "a gone part's gauge is gone: {text}"
    );
    assert_eq!(text.matches("# TYPE x_total counter").count(), 1, "{text}");
}

fn out_counter(out: &mut Exposition) -> &mut super::MetricFamily {
    out.counter("x_total", "A part's counter.")
}
