//! The Prometheus text exposition of [`Metrics`]: CoreDNS's metric names and labels, the
//! zone sources' metrics, and the process's own (`process_*`), written at each scrape. Nothing
//! here runs on the query path.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::UNIX_EPOCH;

use super::*;
use crate::ops::process::ProcessStats;

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_build_info(&mut out);
        self.render_dns(&mut out);
        self.render_source(&mut out);
        self.plugins.render(&mut out, header);
        if let Ok(renderers) = self.renderers.lock() {
            for render in renderers.iter() {
                render(&mut out);
            }
        }
        self.render_process(&mut out);
        out
    }

    fn render_build_info(&self, out: &mut String) {
        header(out, "coredns_build_info", "gauge", "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.");
        let _ = writeln!(
            out,
            "coredns_build_info{{version=\"{}\",revision=\"{}\",goversion=\"rust\"}} 1",
            env!("CARGO_PKG_VERSION"),
            option_env!("CLUSTERDNS_REVISION").unwrap_or("unknown"),
        );
        header(
            out,
            "coredns_panics_total",
            "counter",
            "Panics while answering a query, recovered (the query got SERVFAIL).",
        );
        let _ = writeln!(
            out,
            "coredns_panics_total {}",
            crate::ops::panics::recovered()
        );
        header(
            out,
            "coredns_reload_failed_total",
            "counter",
            "Counts the number of failed reload attempts.",
        );
        let failed = self.reloads[0].load(Ordering::Relaxed);
        let _ = writeln!(out, "coredns_reload_failed_total {failed}");
        header(
            out,
            "coredns_reload_version_info",
            "gauge",
            "A metric with a constant '1' value labeled by the hash of the Corefile applied.",
        );
        if let Some(Some(sha512)) = self.reload_version.lock().ok().as_deref() {
            let _ = writeln!(
                out,
                "coredns_reload_version_info{{hash=\"sha512\",value=\"{sha512}\"}} 1"
            );
        }
        header(
            out,
            "clusterdns_reloads_total",
            "counter",
            "Corefile changes applied while serving.",
        );
        let applied = self.reloads[1].load(Ordering::Relaxed);
        let _ = writeln!(out, "clusterdns_reloads_total {applied}");
        header(
            out,
            "coredns_autopath_success_total",
            "counter",
            "Counter of requests that did autopath.",
        );
        let autopath = self.autopath_successes.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "coredns_autopath_success_total{{server=\"{}\"}} {autopath}",
            self.server
        );
        header(
            out,
            "coredns_dns64_requests_translated_total",
            "counter",
            "Counter of DNS requests translated by dns64.",
        );
        let translated = self.dns64_translations.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "coredns_dns64_requests_translated_total{{server=\"{}\"}} {translated}",
            self.server
        );
        header(
            out,
            "coredns_health_request_duration_seconds",
            "histogram",
            "Time this process's own /health took to answer, asked once a second.",
        );
        let (buckets, count, seconds) = self.health.snapshot();
        histogram(
            out,
            "coredns_health_request_duration_seconds",
            "",
            &HEALTH_BUCKETS,
            &buckets,
            count,
            seconds,
        );
        header(
            out,
            "coredns_health_request_failures_total",
            "counter",
            "Self-probes of /health that failed or took over 3 s.",
        );
        let failures = self.health_failures.load(Ordering::Relaxed);
        let _ = writeln!(out, "coredns_health_request_failures_total {failures}");
        header(
            out,
            "clusterdns_file_reload_failed_total",
            "counter",
            "Reloads of a file plugin's zone that failed (the zone read before is still served).",
        );
        if let Ok(failures) = self.file_reload_failures.lock() {
            for (zone, count) in failures.iter() {
                let _ = writeln!(
                    out,
                    "clusterdns_file_reload_failed_total{{zone=\"{zone}\"}} {count}"
                );
            }
        }
        header(
            out,
            "coredns_plugin_enabled",
            "gauge",
            "A metric that indicates whether a plugin is enabled on per server and zone basis.",
        );
        if let Ok(enabled) = self.enabled.lock() {
            for (server, zone, plugin) in enabled.iter() {
                let _ = writeln!(
                    out,
                    "coredns_plugin_enabled{{server=\"{server}\",zone=\"{zone}\",view=\"\",name=\"{plugin}\"}} 1"
                );
            }
        }
    }

    /// The `(server, zone)` labels of slot `zone`.
    fn slot_labels(&self, zone: usize) -> Option<(String, String)> {
        self.labels.lock().ok()?.get(zone).cloned()
    }

    fn render_dns(&self, out: &mut String) {
        let Ok(all) = self.dns.lock() else {
            return;
        };
        let sum = |pick: &dyn Fn(&DnsCounters) -> &Vec<AtomicU64>, i: usize| -> u64 {
            all.iter().map(|c| pick(c)[i].load(Ordering::Relaxed)).sum()
        };
        header(
            out,
            "coredns_dns_requests_total",
            "counter",
            "Counter of DNS requests made per zone, protocol and family.",
        );
        for zone in 0..ZONES {
            let Some((server, zone_label)) = self.slot_labels(zone) else {
                continue;
            };
            for (p, proto) in PROTOS.iter().enumerate() {
                for (f, family) in FAMILIES.iter().enumerate() {
                    for slot in 0..TYPE_SLOTS {
                        let i =
                            ((zone * PROTOS.len() + p) * FAMILIES.len() + f) * TYPE_SLOTS + slot;
                        let n = sum(&|c| &c.requests, i);
                        if n > 0 {
                            let _ = writeln!(out, "coredns_dns_requests_total{{server=\"{server}\",zone=\"{zone_label}\",view=\"\",proto=\"{proto}\",family=\"{family}\",type=\"{}\"}} {n}", type_label(slot));
                        }
                    }
                }
            }
        }
        header(
            out,
            "coredns_dns_do_requests_total",
            "counter",
            "Counter of DNS requests with the DNSSEC OK bit set, per zone.",
        );
        for zone in 0..ZONES {
            let Some((server, zone_label)) = self.slot_labels(zone) else {
                continue;
            };
            let n = sum(&|c| &c.do_requests, zone);
            if n > 0 {
                let _ = writeln!(out, "coredns_dns_do_requests_total{{server=\"{server}\",zone=\"{zone_label}\",view=\"\"}} {n}");
            }
        }
        header(
            out,
            "coredns_dns_responses_total",
            "counter",
            "Counter of response status codes.",
        );
        for zone in 0..ZONES {
            let Some((server, zone_label)) = self.slot_labels(zone) else {
                continue;
            };
            for (p, plugin) in PLUGINS.iter().enumerate() {
                for rcode in 0..RCODE_SLOTS {
                    let n = sum(
                        &|c| &c.responses,
                        (zone * PLUGINS.len() + p) * RCODE_SLOTS + rcode,
                    );
                    if n > 0 {
                        let _ = writeln!(out, "coredns_dns_responses_total{{server=\"{server}\",zone=\"{zone_label}\",view=\"\",rcode=\"{}\",plugin=\"{plugin}\"}} {n}", rcode_label(rcode));
                    }
                }
            }
        }
        header(
            out,
            "coredns_dns_request_duration_seconds",
            "histogram",
            "Histogram of the time (in seconds) each request took per zone.",
        );
        for zone in 0..ZONES {
            let Some((server, zone_label)) = self.slot_labels(zone) else {
                continue;
            };
            for slot in 0..TYPE_SLOTS {
                let series = zone * TYPE_SLOTS + slot;
                let count = sum(&|c| &c.duration_count, series);
                if count == 0 {
                    continue;
                }
                let buckets: Vec<u64> = (0..=DURATION_BUCKETS.len())
                    .map(|b| {
                        sum(
                            &|c| &c.duration_buckets,
                            series * (DURATION_BUCKETS.len() + 1) + b,
                        )
                    })
                    .collect();
                let seconds = sum(&|c| &c.duration_sum_ns, series) as f64 / 1e9;
                let labels = format!(
                    "server=\"{server}\",zone=\"{zone_label}\",view=\"\",type=\"{}\"",
                    type_label(slot)
                );
                histogram(
                    out,
                    "coredns_dns_request_duration_seconds",
                    &labels,
                    &DURATION_BUCKETS,
                    &buckets,
                    count,
                    seconds,
                );
            }
        }
        for (direction, name, help) in [
            (
                0,
                "coredns_dns_request_size_bytes",
                "Size of each request in bytes, per zone and protocol.",
            ),
            (
                1,
                "coredns_dns_response_size_bytes",
                "Size of each response in bytes, per zone and protocol.",
            ),
        ] {
            header(out, name, "histogram", help);
            for zone in 0..ZONES {
                let Some((server, zone_label)) = self.slot_labels(zone) else {
                    continue;
                };
                for (p, proto) in PROTOS.iter().enumerate() {
                    let series = size_index(zone, p, direction);
                    let buckets: Vec<u64> = (0..=SIZE_BUCKETS.len())
                        .map(|b| sum(&|c| &c.size_buckets, series * (SIZE_BUCKETS.len() + 1) + b))
                        .collect();
                    let count = buckets.iter().sum();
                    if count == 0 {
                        continue;
                    }
                    let bytes = sum(&|c| &c.size_sum, series) as f64;
                    let labels = format!(
                        "server=\"{server}\",zone=\"{zone_label}\",view=\"\",proto=\"{proto}\""
                    );
                    histogram(out, name, &labels, &SIZE_BUCKETS, &buckets, count, bytes);
                }
            }
        }
        header(
            out,
            "clusterdns_tcp_connections_total",
            "counter",
            "TCP connections accepted from clients (kept ones carry many queries).",
        );
        let connections: u64 = (all.iter())
            .map(|c| c.connections.load(Ordering::Relaxed))
            .sum();
        let _ = writeln!(
            out,
            "clusterdns_tcp_connections_total{{server=\"{}\"}} {connections}",
            self.server
        );
    }

    fn render_source(&self, out: &mut String) {
        let source = &self.source;
        self.render_api_requests(out);
        header(
            out,
            "coredns_kubernetes_dns_programming_duration_seconds",
            "histogram",
            "Histogram of the time (in seconds) it took to program a dns instance.",
        );
        for (kind, label) in SERVICE_KINDS.iter().enumerate() {
            let (buckets, count, seconds) = source.programming[kind].snapshot();
            let labels = format!("service_kind=\"{label}\"");
            histogram(
                out,
                "coredns_kubernetes_dns_programming_duration_seconds",
                &labels,
                &PROGRAMMING_BUCKETS,
                &buckets,
                count,
                seconds,
            );
        }
        let watched: Vec<(usize, &str)> = (ObjectKind::ALL.into_iter())
            .filter(|r| source.watched[r.index()].load(Ordering::Relaxed))
            .map(|r| (r.index(), r.resource()))
            .collect();
        let per_resource: [Series; 4] = [
            (
                "clusterdns_kubernetes_synced",
                "gauge",
                "1 when the latest list of a watched resource has completed.",
                &|r| u64::from(source.synced[r].load(Ordering::Relaxed)),
            ),
            (
                "clusterdns_kubernetes_watch_events_total",
                "counter",
                "Watch events received, per resource.",
                &|r| source.events[r].load(Ordering::Relaxed),
            ),
            (
                "clusterdns_kubernetes_lists_total",
                "counter",
                "Completed full lists (the initial one and every re-list), per resource.",
                &|r| source.relists[r].load(Ordering::Relaxed),
            ),
            (
                "clusterdns_kubernetes_rejected_objects_total",
                "counter",
                "Objects left out because DNS cannot use one of their fields, per resource.",
                &|r| source.rejected[r].load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in per_resource {
            header(out, name, kind, help);
            for &(r, resource) in &watched {
                let _ = writeln!(out, "{name}{{resource=\"{resource}\"}} {}", value(r));
            }
        }
        header(
            out,
            "clusterdns_kubernetes_watch_errors_total",
            "counter",
            "Failed lists and watches, per resource and reason.",
        );
        if let Ok(errors) = source.errors.lock() {
            for (r, reason, n) in errors.iter() {
                let _ = writeln!(out, "clusterdns_kubernetes_watch_errors_total{{resource=\"{}\",reason=\"{reason}\"}} {n}", r.resource());
            }
        }
        let (buckets, count, seconds) = source.publish.snapshot();
        header(
            out,
            "clusterdns_zone_publish_duration_seconds",
            "histogram",
            "Time to build and publish a new zone snapshot.",
        );
        histogram(
            out,
            "clusterdns_zone_publish_duration_seconds",
            "",
            &PROGRAMMING_BUCKETS,
            &buckets,
            count,
            seconds,
        );
        if let Ok(zone) = source.zone.lock() {
            for (name, help, value) in [
                (
                    "clusterdns_zone_namespaces",
                    "Namespaces in the zone.",
                    zone.namespaces,
                ),
                (
                    "clusterdns_zone_services",
                    "Services in the zone.",
                    zone.services,
                ),
                (
                    "clusterdns_zone_endpoints",
                    "Endpoints over all EndpointSlices in the zone.",
                    zone.endpoints,
                ),
                (
                    "clusterdns_zone_names",
                    "Owner names in the zone.",
                    zone.names,
                ),
            ] {
                header(out, name, "gauge", help);
                let _ = writeln!(out, "{name} {value}");
            }
        }
        header(
            out,
            "clusterdns_zone_serial",
            "gauge",
            "SOA serial of the zone being served.",
        );
        let _ = writeln!(
            out,
            "clusterdns_zone_serial {}",
            source.serial.load(Ordering::Relaxed)
        );
    }

    fn render_process(&self, out: &mut String) {
        let started = self
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        header(
            out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
        );
        let _ = writeln!(out, "process_start_time_seconds {started:.3}");
        if let Some(process) = ProcessStats::of("self") {
            header(
                out,
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
            );
            let _ = writeln!(out, "process_cpu_seconds_total {:.3}", process.cpu_seconds);
            header(
                out,
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
            );
            let _ = writeln!(
                out,
                "process_resident_memory_bytes {}",
                process.resident_bytes
            );
            header(
                out,
                "process_virtual_memory_bytes",
                "gauge",
                "Virtual memory size in bytes.",
            );
            let _ = writeln!(
                out,
                "process_virtual_memory_bytes {}",
                process.virtual_bytes
            );
            header(
                out,
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
            );
            let _ = writeln!(out, "process_open_fds {}", process.open_fds);
        }
    }
}

/// One metric with a value per watched resource: name, type, help and the value of resource `r`.
type Series<'a> = (
    &'static str,
    &'static str,
    &'static str,
    &'a dyn Fn(usize) -> u64,
);

impl Metrics {
    /// client-go's REST client metrics, from what `sources/kubernetes/requests.rs` measured.
    fn render_api_requests(&self, out: &mut String) {
        let Ok(api) = self.source.api.lock() else {
            return;
        };
        if api.is_empty() {
            return;
        }
        let duration = "coredns_kubernetes_rest_client_request_duration_seconds";
        let help = "Request latency in seconds, by verb and host.";
        header(out, duration, "histogram", help);
        for requests in api.iter() {
            let (buckets, count, seconds) = requests.duration.snapshot();
            let labels = format!("verb=\"{}\",host=\"{}\"", requests.method, requests.host);
            histogram(
                out,
                duration,
                &labels,
                &API_BUCKETS,
                &buckets,
                count,
                seconds,
            );
        }
        // No client-side rate limiter: every request waited 0 s for it.
        let limiter = "coredns_kubernetes_rest_client_rate_limiter_duration_seconds";
        let help = "Client-side rate limiter latency in seconds, by verb and host (always 0 here).";
        header(out, limiter, "histogram", help);
        for requests in api.iter() {
            let (_, count, _) = requests.duration.snapshot();
            let mut buckets = vec![0; API_BUCKETS.len() + 1];
            buckets[0] = count;
            let labels = format!("verb=\"{}\",host=\"{}\"", requests.method, requests.host);
            histogram(out, limiter, &labels, &API_BUCKETS, &buckets, count, 0.0);
        }
        let total = "coredns_kubernetes_rest_client_requests_total";
        let help = "Number of HTTP requests, by status code, method and host.";
        header(out, total, "counter", help);
        for requests in api.iter() {
            for (code, n) in &requests.codes {
                let _ = writeln!(
                    out,
                    "{total}{{code=\"{code}\",method=\"{}\",host=\"{}\"}} {n}",
                    requests.method, requests.host
                );
            }
        }
    }
}

/// `# HELP` and `# TYPE` lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The lines of one histogram series; `buckets` holds per-bucket (not cumulative) counts with the
/// `+Inf` overflow last.
fn histogram(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[f64],
    buckets: &[u64],
    count: u64,
    sum: f64,
) {
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0;
    for (bound, n) in bounds.iter().zip(buckets) {
        cumulative += n;
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
    let braces = |s: &str| {
        if s.is_empty() {
            String::new()
        } else {
            format!("{{{s}}}")
        }
    };
    let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
    let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
}
