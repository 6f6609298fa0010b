//! What [`Metrics`] describes at a scrape: CoreDNS's metric names and labels, the zone sources'
//! metrics and the process's own (`process_*`). prometheus-client writes the text
//! ([`exposition`](super::exposition)). Nothing here runs on the query path.

use std::sync::atomic::Ordering;
use std::time::UNIX_EPOCH;

use super::exposition::Exposition;
use super::*;
use crate::ops::process::ProcessStats;

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Exposition::default();
        self.describe_build_info(&mut out);
        self.describe_dns(&mut out);
        self.describe_source(&mut out);
        self.plugins.describe(&mut out);
        let mut describers = (self.describers.lock()).unwrap_or_else(PoisonError::into_inner);
        // Read first, under the describers' lock (only a describer adds to it): a part found
        // gone below adds its last counters to this scrape itself, and to `retired` for the next.
        let retired = self.retired.snapshot();
        describers.retain(|describe| describe(&mut out));
        drop(describers);
        out.absorb(&retired);
        self.describe_process(&mut out);
        out.render()
    }

    fn describe_build_info(&self, out: &mut Exposition) {
        let revision = option_env!("CLUSTERDNS_REVISION").unwrap_or("unknown");
        out.gauge("coredns_build_info", "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.")
            .add(&[("version", env!("CARGO_PKG_VERSION")), ("revision", revision), ("goversion", "rust")], 1);
        (out.counter(
            "coredns_panics_total",
            "Panics while answering a query, recovered (the query got SERVFAIL).",
        ))
        .add(&[], crate::ops::panics::recovered());
        (out.counter(
            "coredns_reload_failed_total",
            "Counts the number of failed reload attempts.",
        ))
        .add(&[], self.reloads[0].load(Ordering::Relaxed));
        let version = out.gauge(
            "coredns_reload_version_info",
            "A metric with a constant '1' value labeled by the hash of the Corefile applied.",
        );
        if let Some(Some(sha512)) = self.reload_version.lock().ok().as_deref() {
            version.add(&[("hash", "sha512"), ("value", sha512)], 1);
        }
        (out.counter(
            "clusterdns_reloads_total",
            "Corefile changes applied while serving.",
        ))
        .add(&[], self.reloads[1].load(Ordering::Relaxed));
        (out.counter(
            "coredns_autopath_success_total",
            "Counter of requests that did autopath.",
        ))
        .add(
            &[("server", &self.server)],
            self.autopath_successes.load(Ordering::Relaxed),
        );
        (out.counter(
            "coredns_dns64_requests_translated_total",
            "Counter of DNS requests translated by dns64.",
        ))
        .add(
            &[("server", &self.server)],
            self.dns64_translations.load(Ordering::Relaxed),
        );
        let (buckets, count, seconds) = self.health.snapshot();
        (out.histogram(
            "coredns_health_request_duration_seconds",
            "Time this process's own /health took to answer, asked once a second.",
            &HEALTH_BUCKETS,
        ))
        .observed(&[], &buckets, count, seconds);
        (out.counter(
            "coredns_health_request_failures_total",
            "Self-probes of /health that failed or took over 3 s.",
        ))
        .add(&[], self.health_failures.load(Ordering::Relaxed));
        let reloads = out.counter(
            "clusterdns_file_reload_failed_total",
            "Reloads of a file plugin's zone that failed (the zone read before is still served).",
        );
        if let Ok(failures) = self.file_reload_failures.lock() {
            for (zone, count) in failures.iter() {
                reloads.add(&[("zone", zone)], *count);
            }
        }
        let enabled_family = out.gauge(
            "coredns_plugin_enabled",
            "A metric that indicates whether a plugin is enabled on per server and zone basis.",
        );
        if let Ok(enabled) = self.enabled.lock() {
            for (server, zone, plugin) in enabled.iter() {
                let labels = [
                    ("server", server.as_str()),
                    ("zone", zone),
                    ("view", ""),
                    ("name", plugin),
                ];
                enabled_family.add(&labels, 1);
            }
        }
    }

    /// The `(server, zone)` labels of slot `zone`.
    fn slot_labels(&self, zone: usize) -> Option<(String, String)> {
        self.labels.lock().ok()?.get(zone).cloned()
    }

    fn describe_dns(&self, out: &mut Exposition) {
        let Ok(all) = self.dns.lock() else {
            return;
        };
        let sum = |pick: &dyn Fn(&DnsCounters) -> &Vec<AtomicU64>, i: usize| -> u64 {
            all.iter().map(|c| pick(c)[i].load(Ordering::Relaxed)).sum()
        };
        let zones: Vec<(usize, String, String)> = (0..ZONES)
            .filter_map(|zone| {
                let (server, label) = self.slot_labels(zone)?;
                Some((zone, server, label))
            })
            .collect();
        let requests = out.counter(
            "coredns_dns_requests_total",
            "Counter of DNS requests made per zone, protocol and family.",
        );
        for (zone, server, zone_label) in &zones {
            for (p, proto) in PROTOS.iter().enumerate() {
                for (f, family) in FAMILIES.iter().enumerate() {
                    for slot in 0..TYPE_SLOTS {
                        let i =
                            ((zone * PROTOS.len() + p) * FAMILIES.len() + f) * TYPE_SLOTS + slot;
                        let n = sum(&|c| &c.requests, i);
                        if n > 0 {
                            let labels = [
                                ("server", server.as_str()),
                                ("zone", zone_label),
                                ("view", ""),
                                ("proto", proto),
                                ("family", family),
                                ("type", type_label(slot)),
                            ];
                            requests.add(&labels, n);
                        }
                    }
                }
            }
        }
        let dnssec = out.counter(
            "coredns_dns_do_requests_total",
            "Counter of DNS requests with the DNSSEC OK bit set, per zone.",
        );
        for (zone, server, zone_label) in &zones {
            let n = sum(&|c| &c.do_requests, *zone);
            if n > 0 {
                dnssec.add(&[("server", server), ("zone", zone_label), ("view", "")], n);
            }
        }
        let responses = out.counter(
            "coredns_dns_responses_total",
            "Counter of response status codes.",
        );
        for (zone, server, zone_label) in &zones {
            for (p, plugin) in PLUGINS.iter().enumerate() {
                for rcode in 0..RCODE_SLOTS {
                    let n = sum(
                        &|c| &c.responses,
                        (zone * PLUGINS.len() + p) * RCODE_SLOTS + rcode,
                    );
                    if n > 0 {
                        let labels = [
                            ("server", server.as_str()),
                            ("zone", zone_label),
                            ("view", ""),
                            ("rcode", &rcode_label(rcode)),
                            ("plugin", plugin),
                        ];
                        responses.add(&labels, n);
                    }
                }
            }
        }
        let durations = out.histogram(
            "coredns_dns_request_duration_seconds",
            "Histogram of the time (in seconds) each request took per zone.",
            &DURATION_BUCKETS,
        );
        for (zone, server, zone_label) in &zones {
            for slot in 0..TYPE_SLOTS {
                let series = zone * TYPE_SLOTS + slot;
                let count = sum(&|c| &c.duration_count, series);
                if count == 0 {
                    continue;
                }
                let buckets: Vec<u64> = (0..DURATION_BUCKETS.len())
                    .map(|b| {
                        sum(
                            &|c| &c.duration_buckets,
                            series * (DURATION_BUCKETS.len() + 1) + b,
                        )
                    })
                    .collect();
                let seconds = sum(&|c| &c.duration_sum_ns, series) as f64 / 1e9;
                let labels = [
                    ("server", server.as_str()),
                    ("zone", zone_label),
                    ("view", ""),
                    ("type", type_label(slot)),
                ];
                durations.observed(&labels, &buckets, count, seconds);
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
            let sizes = out.histogram(name, help, &SIZE_BUCKETS);
            for (zone, server, zone_label) in &zones {
                for (p, proto) in PROTOS.iter().enumerate() {
                    let series = size_index(*zone, p, direction);
                    let buckets: Vec<u64> = (0..=SIZE_BUCKETS.len())
                        .map(|b| sum(&|c| &c.size_buckets, series * (SIZE_BUCKETS.len() + 1) + b))
                        .collect();
                    let count = buckets.iter().sum();
                    if count == 0 {
                        continue;
                    }
                    let bytes = sum(&|c| &c.size_sum, series) as f64;
                    let labels = [
                        ("server", server.as_str()),
                        ("zone", zone_label),
                        ("view", ""),
                        ("proto", proto),
                    ];
                    sizes.observed(&labels, &buckets, count, bytes);
                }
            }
        }
        let connections: u64 = (all.iter())
            .map(|c| c.connections.load(Ordering::Relaxed))
            .sum();
        (out.counter(
            "clusterdns_tcp_connections_total",
            "TCP connections accepted from clients (kept ones carry many queries).",
        ))
        .add(&[("server", &self.server)], connections);
    }

    fn describe_source(&self, out: &mut Exposition) {
        let source = &self.source;
        self.describe_api_requests(out);
        let programming = out.histogram(
            "coredns_kubernetes_dns_programming_duration_seconds",
            "Histogram of the time (in seconds) it took to program a dns instance.",
            &PROGRAMMING_BUCKETS,
        );
        for (kind, label) in SERVICE_KINDS.iter().enumerate() {
            let (buckets, count, seconds) = source.programming[kind].snapshot();
            programming.observed(&[("service_kind", label)], &buckets, count, seconds);
        }
        let watched: Vec<(usize, &str)> = (ObjectKind::ALL.into_iter())
            .filter(|r| source.watched[r.index()].load(Ordering::Relaxed))
            .map(|r| (r.index(), r.resource()))
            .collect();
        let synced = out.gauge(
            "clusterdns_kubernetes_synced",
            "1 when the latest list of a watched resource has completed.",
        );
        for &(r, resource) in &watched {
            let value = u64::from(source.synced[r].load(Ordering::Relaxed));
            synced.add(&[("resource", resource)], value);
        }
        let per_resource: [(&'static str, &'static str, &[AtomicU64; 4]); 3] = [
            (
                "clusterdns_kubernetes_watch_events_total",
                "Watch events received, per resource.",
                &source.events,
            ),
            (
                "clusterdns_kubernetes_lists_total",
                "Completed full lists (the initial one and every re-list), per resource.",
                &source.relists,
            ),
            (
                "clusterdns_kubernetes_rejected_objects_total",
                "Objects left out because DNS cannot use one of their fields, per resource.",
                &source.rejected,
            ),
        ];
        for (name, help, counters) in per_resource {
            let family = out.counter(name, help);
            for &(r, resource) in &watched {
                family.add(
                    &[("resource", resource)],
                    counters[r].load(Ordering::Relaxed),
                );
            }
        }
        let errors = out.counter(
            "clusterdns_kubernetes_watch_errors_total",
            "Failed lists and watches, per resource and reason.",
        );
        if let Ok(all) = source.errors.lock() {
            for (r, reason, n) in all.iter() {
                errors.add(&[("resource", r.resource()), ("reason", reason)], *n);
            }
        }
        let (buckets, count, seconds) = source.publish.snapshot();
        (out.histogram(
            "clusterdns_zone_publish_duration_seconds",
            "Time to build and publish a new zone snapshot.",
            &PROGRAMMING_BUCKETS,
        ))
        .observed(&[], &buckets, count, seconds);
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
                out.gauge(name, help).add(&[], value as u64);
            }
        }
        (out.gauge(
            "clusterdns_zone_serial",
            "SOA serial of the zone being served.",
        ))
        .add(&[], source.serial.load(Ordering::Relaxed));
    }

    fn describe_process(&self, out: &mut Exposition) {
        let started = self
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        (out.gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
        ))
        .add_f64(&[], started);
        if let Some(process) = ProcessStats::of("self") {
            (out.counter(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
            ))
            .add_f64(&[], process.cpu_seconds);
            (out.gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            ))
            .add(&[], process.resident_bytes);
            (out.gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            ))
            .add(&[], process.virtual_bytes);
            (out.gauge("process_open_fds", "Number of open file descriptors."))
                .add(&[], process.open_fds as u64);
        }
    }

    /// client-go's REST client metrics, from what `sources/kubernetes/requests.rs` measured.
    fn describe_api_requests(&self, out: &mut Exposition) {
        let Ok(api) = self.source.api.lock() else {
            return;
        };
        if api.is_empty() {
            return;
        }
        let duration = out.histogram(
            "coredns_kubernetes_rest_client_request_duration_seconds",
            "Request latency in seconds, by verb and host.",
            &API_BUCKETS,
        );
        for requests in api.iter() {
            let (buckets, count, seconds) = requests.duration.snapshot();
            let labels = [("verb", requests.method.as_str()), ("host", &requests.host)];
            duration.observed(&labels, &buckets, count, seconds);
        }
        // No client-side rate limiter: every request waited 0 s for it.
        let limiter = out.histogram(
            "coredns_kubernetes_rest_client_rate_limiter_duration_seconds",
            "Client-side rate limiter latency in seconds, by verb and host (always 0 here).",
            &API_BUCKETS,
        );
        for requests in api.iter() {
            let (_, count, _) = requests.duration.snapshot();
            let labels = [("verb", requests.method.as_str()), ("host", &requests.host)];
            limiter.observed(&labels, &[count], count, 0.0);
        }
        let total = out.counter(
            "coredns_kubernetes_rest_client_requests_total",
            "Number of HTTP requests, by status code, method and host.",
        );
        for requests in api.iter() {
            for (code, n) in &requests.codes {
                let labels = [
                    ("code", code.as_str()),
                    ("method", &requests.method),
                    ("host", &requests.host),
                ];
                total.add(&labels, *n);
            }
        }
    }
}
