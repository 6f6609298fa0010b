//! Prometheus metrics under CoreDNS's names, so existing dashboards and alerts keep working.
//!
//! Counting stays off the hot path's critical costs: each UDP worker owns a [`DnsCounters`] it
//! alone writes (plain loads and stores of relaxed atomics, no read-modify-write, no shared cache
//! line), TCP listeners own one each (shared by their connections, so those use `fetch_add`), and
//! a scrape sums them all. Time is read twice per received batch, not per query.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clusterdns_zone::ZoneStats;

/// Query types with their own label; everything else is counted as `other`, as CoreDNS does.
const TYPES: [(u16, &str); 12] = [
    (1, "A"),
    (28, "AAAA"),
    (5, "CNAME"),
    (15, "MX"),
    (2, "NS"),
    (12, "PTR"),
    (6, "SOA"),
    (33, "SRV"),
    (16, "TXT"),
    (65, "HTTPS"),
    (64, "SVCB"),
    (255, "ANY"),
];
/// Type label slots: [`TYPES`] plus `other`.
const TYPE_SLOTS: usize = TYPES.len() + 1;
/// Response codes counted by value; larger extended codes share the last slot.
const RCODE_SLOTS: usize = 24;
/// `coredns_dns_request_duration_seconds` bucket bounds: CoreDNS's (0.25 ms doubling 16 times).
const DURATION_BUCKETS: [f64; 16] = [
    0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024,
    2.048, 4.096, 8.192,
];
/// `coredns_kubernetes_dns_programming_duration_seconds` bucket bounds: 1 ms doubling 20 times.
const PROGRAMMING_BUCKETS: [f64; 20] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192, 16.384, 32.768, 65.536, 131.072, 262.144, 524.288,
];

/// The transport a query came over (the `proto` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// UDP.
    Udp = 0,
    /// TCP.
    Tcp = 1,
}

/// The address family of the client (the `family` label: `1` IPv4, `2` IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4.
    V4 = 0,
    /// IPv6.
    V6 = 1,
}

/// What wrote the response (the `plugin` label of `coredns_dns_responses_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plugin {
    /// The cluster zone (`kubernetes`).
    Kubernetes = 0,
    /// The cache of upstream answers (`cache`).
    Cache = 1,
    /// An upstream answer (`forward`).
    Forward = 2,
    /// The server itself: malformed queries, refusals (empty label, as CoreDNS).
    Server = 3,
    /// A hosts file or inline hosts entries (`hosts`).
    Hosts = 4,
    /// A `template` answer.
    Template = 5,
    /// The `any` plugin's refusal of ANY queries.
    Any = 6,
}

const PROTOS: [&str; 2] = ["udp", "tcp"];
const FAMILIES: [&str; 2] = ["1", "2"];
const PLUGINS: [&str; 7] = [
    "kubernetes",
    "cache",
    "forward",
    "",
    "hosts",
    "template",
    "any",
];
/// `(server, zone)` label pairs counted apart: one per zone of a server block. More share the
/// last slot.
pub const LABEL_SLOTS: usize = 32;
const ZONES: usize = LABEL_SLOTS;

/// The outcome of one query, as the metrics see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The question's type (0 when there was no readable question).
    pub qtype: u16,
    /// The response code (extended codes included).
    pub rcode: u16,
    /// The `(server, zone)` label slot of the server block zone that took the query
    /// ([`Metrics::label_slot`]).
    pub zone: u8,
    /// What answered.
    pub plugin: Plugin,
}

/// The type label slot of `qtype`.
fn type_slot(qtype: u16) -> usize {
    TYPES
        .iter()
        .position(|&(t, _)| t == qtype)
        .unwrap_or(TYPES.len())
}

/// The label of type slot `slot`.
fn type_label(slot: usize) -> &'static str {
    TYPES.get(slot).map_or("other", |&(_, label)| label)
}

/// The rcode label, as CoreDNS spells it.
fn rcode_label(rcode: usize) -> String {
    const NAMES: [&str; 11] = [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
        "NXRRSET", "NOTAUTH", "NOTZONE",
    ];
    match rcode {
        16 => "BADVERS".to_owned(),
        _ => NAMES
            .get(rcode)
            .map_or_else(|| format!("RCODE{rcode}"), |s| (*s).to_owned()),
    }
}

/// The counters of one worker (UDP) or one listener (TCP).
pub struct DnsCounters {
    /// Whether several tasks write these counters (TCP): then increments are atomic.
    shared: bool,
    requests: Vec<AtomicU64>,
    responses: Vec<AtomicU64>,
    duration_buckets: Vec<AtomicU64>,
    duration_count: Vec<AtomicU64>,
    duration_sum_ns: Vec<AtomicU64>,
    /// TCP connections accepted (TCP listeners only).
    connections: AtomicU64,
}

impl DnsCounters {
    fn new(shared: bool) -> Self {
        let zeros = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect();
        DnsCounters {
            shared,
            requests: zeros(ZONES * PROTOS.len() * FAMILIES.len() * TYPE_SLOTS),
            responses: zeros(ZONES * PLUGINS.len() * RCODE_SLOTS),
            duration_buckets: zeros(ZONES * TYPE_SLOTS * (DURATION_BUCKETS.len() + 1)),
            duration_count: zeros(ZONES * TYPE_SLOTS),
            duration_sum_ns: zeros(ZONES * TYPE_SLOTS),
            connections: AtomicU64::new(0),
        }
    }

    /// Counts one accepted TCP connection.
    pub fn connection_accepted(&self) {
        self.add(&self.connections, 1);
    }

    fn add(&self, counter: &AtomicU64, n: u64) {
        if self.shared {
            counter.fetch_add(n, Ordering::Relaxed);
        } else {
            counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
        }
    }

    /// Counts one answered query that spent `elapsed` in the server.
    pub fn record(&self, proto: Proto, family: Family, outcome: Outcome, elapsed: Duration) {
        let zone = usize::from(outcome.zone).min(ZONES - 1);
        let slot = type_slot(outcome.qtype);
        let request = ((zone * PROTOS.len() + proto as usize) * FAMILIES.len() + family as usize)
            * TYPE_SLOTS
            + slot;
        self.add(&self.requests[request], 1);
        let rcode = usize::from(outcome.rcode).min(RCODE_SLOTS - 1);
        let response = (zone * PLUGINS.len() + outcome.plugin as usize) * RCODE_SLOTS + rcode;
        self.add(&self.responses[response], 1);
        let seconds = elapsed.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(DURATION_BUCKETS.len());
        let series = zone * TYPE_SLOTS + slot;
        self.add(
            &self.duration_buckets[series * (DURATION_BUCKETS.len() + 1) + bucket],
            1,
        );
        self.add(&self.duration_count[series], 1);
        self.add(&self.duration_sum_ns[series], elapsed.as_nanos() as u64);
    }
}

/// A histogram several threads observe (not on the query path).
struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        let bucket = (self.bounds.iter())
            .position(|&bound| seconds <= bound)
            .unwrap_or(self.bounds.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(value.as_nanos() as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> (Vec<u64>, u64, f64) {
        let buckets = (self.buckets.iter())
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (buckets, self.count.load(Ordering::Relaxed), sum)
    }
}

/// The kind of Service an EndpointSlice change programmed (the `service_kind` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceKindLabel {
    /// A Service with a cluster IP.
    ClusterIp = 0,
    /// A headless Service with a selector.
    HeadlessWithSelector = 1,
    /// A headless Service without a selector.
    HeadlessWithoutSelector = 2,
}

const SERVICE_KINDS: [&str; 3] = [
    "cluster_ip",
    "headless_with_selector",
    "headless_without_selector",
];

/// The resources the Kubernetes source watches (the `resource` label).
pub const RESOURCES: [&str; 4] = ["namespaces", "services", "endpointslices", "pods"];

/// What the zone sources report: sync state, watch faults, publishes.
pub struct SourceMetrics {
    programming: [Histogram; 3],
    publish: Histogram,
    synced: [AtomicBool; 4],
    watched: [AtomicBool; 4],
    events: [AtomicU64; 4],
    relists: [AtomicU64; 4],
    rejected: [AtomicU64; 4],
    /// Watch errors by resource and reason.
    errors: Mutex<Vec<(usize, String, u64)>>,
    zone: Mutex<ZoneStats>,
    serial: AtomicU64,
}

impl SourceMetrics {
    fn new() -> Self {
        SourceMetrics {
            programming: std::array::from_fn(|_| Histogram::new(&PROGRAMMING_BUCKETS)),
            publish: Histogram::new(&PROGRAMMING_BUCKETS),
            synced: Default::default(),
            watched: Default::default(),
            events: Default::default(),
            relists: Default::default(),
            rejected: Default::default(),
            errors: Mutex::new(Vec::new()),
            zone: Mutex::new(ZoneStats::default()),
            serial: AtomicU64::new(0),
        }
    }

    /// Notes that `resource` (an index into [`RESOURCES`]) is watched.
    pub fn watching(&self, resource: usize) {
        self.watched[resource].store(true, Ordering::Relaxed);
    }

    /// Records whether `resource` has completed its latest list.
    pub fn set_synced(&self, resource: usize, synced: bool) {
        self.synced[resource].store(synced, Ordering::Relaxed);
    }

    /// Counts one watch event of `resource`.
    pub fn event(&self, resource: usize) {
        self.events[resource].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a (re-)list of `resource`.
    pub fn relist(&self, resource: usize) {
        self.relists[resource].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an object of `resource` left out because DNS cannot use one of its fields.
    pub fn rejected(&self, resource: usize) {
        self.rejected[resource].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a watch error of `resource` for `reason`.
    pub fn watch_error(&self, resource: usize, reason: &str) {
        let Ok(mut errors) = self.errors.lock() else {
            return;
        };
        match errors
            .iter_mut()
            .find(|(r, why, _)| *r == resource && why == reason)
        {
            Some(entry) => entry.2 += 1,
            None => errors.push((resource, reason.to_owned(), 1)),
        }
    }

    /// Records the time from an EndpointSlice change in the API to its publish.
    pub fn programmed(&self, kind: ServiceKindLabel, latency: Duration) {
        self.programming[kind as usize].observe(latency);
    }

    /// Records a publish: how long it took and what the zone holds now.
    pub fn published(&self, took: Duration, stats: ZoneStats, serial: u32) {
        self.publish.observe(took);
        if let Ok(mut zone) = self.zone.lock() {
            *zone = stats;
        }
        self.serial.store(u64::from(serial), Ordering::Relaxed);
    }
}

/// Writes the metrics of another part of the server (the forwarder, the cache) at a scrape.
pub type Renderer = Box<dyn Fn(&mut String) + Send + Sync>;

/// Every metric of the process; one per server, shared by the workers, the sources and the
/// `/metrics` endpoint.
pub struct Metrics {
    server: String,
    /// The `(server, zone)` pair of each label slot.
    labels: Mutex<Vec<(String, String)>>,
    /// `(server, zone, plugin)` of every plugin of every server block.
    enabled: Mutex<Vec<(String, String, &'static str)>>,
    started: SystemTime,
    dns: Mutex<Vec<Arc<DnsCounters>>>,
    renderers: Mutex<Vec<Renderer>>,
    /// Corefile reloads refused and applied.
    reloads: [AtomicU64; 2],
    /// The zone sources' metrics.
    pub source: SourceMetrics,
}

impl Metrics {
    /// Metrics for a server whose first listener is labelled `server` (`dns://:53`); slot 0 of
    /// the DNS labels is `(server, ".")`.
    pub fn new(server: String) -> Self {
        Metrics {
            labels: Mutex::new(vec![(server.clone(), ".".to_owned())]),
            enabled: Mutex::new(Vec::new()),
            server,
            started: SystemTime::now(),
            dns: Mutex::new(Vec::new()),
            renderers: Mutex::new(Vec::new()),
            reloads: [AtomicU64::new(0), AtomicU64::new(0)],
            source: SourceMetrics::new(),
        }
    }

    /// The `server` label of the first listener.
    pub fn server_label(&self) -> &str {
        &self.server
    }

    /// The slot of the `(server, zone)` label pair, registered on first use; past
    /// [`LABEL_SLOTS`] pairs the last slot is shared.
    pub fn label_slot(&self, server: &str, zone: &str) -> u8 {
        let Ok(mut labels) = self.labels.lock() else {
            return 0;
        };
        if let Some(at) = labels.iter().position(|(s, z)| s == server && z == zone) {
            return at as u8;
        }
        if labels.len() < LABEL_SLOTS {
            labels.push((server.to_owned(), zone.to_owned()));
        }
        (labels.len() - 1) as u8
    }

    /// Records that `plugin` runs in the server block of `(server, zone)`
    /// (`coredns_plugin_enabled`).
    pub fn plugin_enabled(&self, server: &str, zone: &str, plugin: &'static str) {
        if let Ok(mut enabled) = self.enabled.lock() {
            let entry = (server.to_owned(), zone.to_owned(), plugin);
            if !enabled.contains(&entry) {
                enabled.push(entry);
            }
        }
    }

    /// New counters for one UDP worker (`shared` false) or one TCP listener (`shared` true).
    pub fn dns_counters(&self, shared: bool) -> Arc<DnsCounters> {
        let counters = Arc::new(DnsCounters::new(shared));
        if let Ok(mut all) = self.dns.lock() {
            all.push(counters.clone());
        }
        counters
    }

    /// Counts a Corefile reload, applied or refused.
    pub fn reloaded(&self, applied: bool) {
        self.reloads[usize::from(applied)].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds metrics another part (the forwarder, the cache) renders itself at each scrape.
    pub fn add_renderer(&self, render: Renderer) {
        if let Ok(mut renderers) = self.renderers.lock() {
            renderers.push(render);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_build_info(&mut out);
        self.render_dns(&mut out);
        self.render_source(&mut out);
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
            "coredns_reload_failed_total",
            "counter",
            "Counts the number of failed reload attempts.",
        );
        let failed = self.reloads[0].load(Ordering::Relaxed);
        let _ = writeln!(out, "coredns_reload_failed_total {failed}");
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
            "coredns_plugin_enabled",
            "gauge",
            "A metric that indicates whether a plugin is enabled on per server and zone basis.",
        );
        if let Ok(enabled) = self.enabled.lock() {
            for (server, zone, plugin) in enabled.iter() {
                let _ = writeln!(
                    out,
                    "coredns_plugin_enabled{{server=\"{server}\",zone=\"{zone}\",name=\"{plugin}\"}} 1"
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
        let watched: Vec<usize> = (0..RESOURCES.len())
            .filter(|&r| source.watched[r].load(Ordering::Relaxed))
            .collect();
        header(
            out,
            "clusterdns_kubernetes_synced",
            "gauge",
            "1 when the latest list of a watched resource has completed.",
        );
        for &r in &watched {
            let _ = writeln!(
                out,
                "clusterdns_kubernetes_synced{{resource=\"{}\"}} {}",
                RESOURCES[r],
                u8::from(source.synced[r].load(Ordering::Relaxed))
            );
        }
        header(
            out,
            "clusterdns_kubernetes_watch_events_total",
            "counter",
            "Watch events received, per resource.",
        );
        for &r in &watched {
            let _ = writeln!(
                out,
                "clusterdns_kubernetes_watch_events_total{{resource=\"{}\"}} {}",
                RESOURCES[r],
                source.events[r].load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "clusterdns_kubernetes_lists_total",
            "counter",
            "Completed full lists (the initial one and every re-list), per resource.",
        );
        for &r in &watched {
            let _ = writeln!(
                out,
                "clusterdns_kubernetes_lists_total{{resource=\"{}\"}} {}",
                RESOURCES[r],
                source.relists[r].load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "clusterdns_kubernetes_rejected_objects_total",
            "counter",
            "Objects left out because DNS cannot use one of their fields, per resource.",
        );
        for &r in &watched {
            let _ = writeln!(
                out,
                "clusterdns_kubernetes_rejected_objects_total{{resource=\"{}\"}} {}",
                RESOURCES[r],
                source.rejected[r].load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "clusterdns_kubernetes_watch_errors_total",
            "counter",
            "Failed lists and watches, per resource and reason.",
        );
        if let Ok(errors) = source.errors.lock() {
            for (r, reason, n) in errors.iter() {
                let _ = writeln!(out, "clusterdns_kubernetes_watch_errors_total{{resource=\"{}\",reason=\"{reason}\"}} {n}", RESOURCES[*r]);
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
        if let Some(process) = ProcessStats::read() {
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

/// CPU time, memory and descriptors of this process, from /proc.
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    open_fds: usize,
}

impl ProcessStats {
    fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may contain spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
        Some(ProcessStats {
            cpu_seconds: (field(11)? + field(12)?) as f64 / ticks,
            virtual_bytes: field(20)?,
            resident_bytes: field(21)? * page,
            open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()),
        })
    }
}

#[cfg(test)]
mod tests {
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
}
