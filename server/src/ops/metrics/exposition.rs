//! The text of `/metrics`, written by prometheus-client. Each part of the server (the DNS
//! counters, the zone sources, the plugins, every forwarder and its cache) describes its
//! families and series into one [`Exposition`] at a scrape. A family that several parts describe
//! (the `cache` and `forward` families of two server blocks) is written once with the series of
//! all of them, as a Prometheus parser requires, and the same series from two parts is summed.
//! prometheus-client then writes the Prometheus text format 0.0.4, the one CoreDNS serves: the
//! `_total` of counters, Go's spelling of `le` bounds, label values escaped (`ops/metrics.rs`
//! says what still differs from Go's output).
//!
//! The counters themselves stay the atomics the query path bumps; only the scrape reads them.

use std::fmt;
use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    prometheus_text, DescriptorEncoder, EncodeLabel, EncodeLabelSet, LabelSetEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use smallvec::SmallVec;

/// The labels of one series, as `(name, value)` pairs in the order they are written.
pub type Labels<'a> = &'a [(&'static str, &'a str)];

/// Every family of one scrape, in the order they were first described.
#[derive(Clone, Debug, Default)]
pub struct Exposition {
    families: Vec<MetricFamily>,
}

/// One metric family: its name, help, type and series.
#[derive(Clone, Debug)]
pub struct MetricFamily {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    /// A histogram's upper bounds (without `+Inf`); empty for counters and gauges.
    bounds: &'static [f64],
    /// The label values of every series, one after another (one allocation, not one a value).
    values: String,
    series: Vec<Series>,
    /// The hash of each series' labels, so that finding a series compares strings only once.
    hashes: Vec<u64>,
    hasher: FixedState,
}

/// One series: each label's name with the range of its value in the family's `values`.
#[derive(Clone, Debug)]
struct Series {
    labels: SmallVec<[(&'static str, u32, u32); 6]>,
    value: Value,
}

/// A histogram's counts, one a bucket (the largest table here has 20 bounds).
type Buckets = SmallVec<[u64; 20]>;

/// The value of one series.
#[derive(Clone, Debug)]
enum Value {
    Int(u64),
    Float(f64),
    /// Per-bucket (not cumulative) counts of the family's bounds, the observation count and sum.
    Histogram {
        buckets: Buckets,
        count: u64,
        sum: f64,
    },
}

impl Exposition {
    /// The counter family `name` (which ends in `_total`, as CoreDNS names counters).
    pub fn counter(&mut self, name: &'static str, help: &'static str) -> &mut MetricFamily {
        debug_assert!(
            name.ends_with("_total"),
            "counter {name} must end in _total"
        );
        self.family(name, help, MetricType::Counter, &[])
    }

    /// The gauge family `name`.
    pub fn gauge(&mut self, name: &'static str, help: &'static str) -> &mut MetricFamily {
        self.family(name, help, MetricType::Gauge, &[])
    }

    /// The histogram family `name`, whose buckets end at `bounds` (and `+Inf`).
    pub fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        bounds: &'static [f64],
    ) -> &mut MetricFamily {
        self.family(name, help, MetricType::Histogram, bounds)
    }

    /// The family `name`, declared on first use: its `# HELP` and `# TYPE` are written even while
    /// it has no series, as they always were here.
    fn family(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: MetricType,
        bounds: &'static [f64],
    ) -> &mut MetricFamily {
        let at = match self.families.iter().position(|f| f.name == name) {
            Some(at) => {
                let held = &self.families[at];
                debug_assert!(
                    held.kind == kind && held.bounds == bounds,
                    "{name} twice, unlike"
                );
                at
            }
            None => {
                self.families.push(MetricFamily {
                    name,
                    help,
                    kind,
                    bounds,
                    values: String::new(),
                    series: Vec::new(),
                    hashes: Vec::new(),
                    hasher: FixedState::default(),
                });
                self.families.len() - 1
            }
        };
        &mut self.families[at]
    }

    /// Adds the counters and histograms of `other` to this exposition's (summed where the
    /// labels are the same); its gauges, the state of something gone, are left out.
    pub fn absorb(&mut self, other: &Exposition) {
        for from in &other.families {
            if from.kind == MetricType::Gauge {
                continue;
            }
            let family = self.family(from.name, from.help, from.kind, from.bounds);
            for series in &from.series {
                let labels: SmallVec<[(&'static str, &str); 6]> = (series.labels.iter())
                    .map(|&(name, start, end)| (name, &from.values[start as usize..end as usize]))
                    .collect();
                family.merge(&labels, series.value.clone());
            }
        }
    }

    /// The Prometheus text format 0.0.4 of every family.
    pub fn render(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut text = String::with_capacity(64 * 1024);
        // Writing to a String cannot fail, and `encode` below returns no error of its own.
        let _ = prometheus_text::encode(&mut text, &registry);
        text
    }
}

impl MetricFamily {
    /// Adds `value` to the counter or gauge series `labels`.
    pub fn add(&mut self, labels: Labels<'_>, value: u64) -> &mut Self {
        debug_assert!(self.kind != MetricType::Histogram, "{} is one", self.name);
        self.merge(labels, Value::Int(value))
    }

    /// Adds `value` to the counter or gauge series `labels`, a fraction (seconds, say).
    pub fn add_f64(&mut self, labels: Labels<'_>, value: f64) -> &mut Self {
        debug_assert!(self.kind != MetricType::Histogram, "{} is one", self.name);
        self.merge(labels, Value::Float(value))
    }

    /// Adds observations to the histogram series `labels`: `buckets` holds the count of each of
    /// the family's buckets (not cumulative; an overflow past the last bound may follow), `count`
    /// and `sum` those of every observation.
    pub fn observed(
        &mut self,
        labels: Labels<'_>,
        buckets: &[u64],
        count: u64,
        sum: f64,
    ) -> &mut Self {
        debug_assert!(
            self.kind == MetricType::Histogram,
            "{} is not one",
            self.name
        );
        let bounds = self.bounds.len();
        let mut buckets: Buckets = buckets.iter().copied().take(bounds).collect();
        buckets.resize(bounds, 0);
        self.merge(
            labels,
            Value::Histogram {
                buckets,
                count,
                sum,
            },
        )
    }

    /// Adds `value` to the series `labels`, which is new or already held.
    fn merge(&mut self, labels: Labels<'_>, value: Value) -> &mut Self {
        let hash = self.hasher.hash_one(labels);
        let values = &self.values;
        let same = |held: &Series| {
            held.labels.len() == labels.len()
                && (held.labels.iter().zip(labels)).all(|(&(n, start, end), &(m, w))| {
                    n == m && values[start as usize..end as usize] == *w
                })
        };
        let found = (self.hashes.iter().enumerate())
            .filter(|&(_, &held)| held == hash)
            .map(|(at, _)| at)
            .find(|&at| same(&self.series[at]));
        match found {
            Some(at) => {
                let held = std::mem::replace(&mut self.series[at].value, Value::Int(0));
                self.series[at].value = held.plus(value);
            }
            None => {
                let mut ranges = SmallVec::new();
                for &(name, value) in labels {
                    let start = self.values.len() as u32;
                    self.values.push_str(value);
                    ranges.push((name, start, self.values.len() as u32));
                }
                self.hashes.push(hash);
                self.series.push(Series {
                    labels: ranges,
                    value,
                });
            }
        }
        self
    }
}

impl Value {
    /// The sum of two values of one series.
    fn plus(self, other: Value) -> Value {
        match (self, other) {
            (Value::Int(n), Value::Int(m)) => Value::Int(n + m),
            (Value::Int(n), Value::Float(x)) | (Value::Float(x), Value::Int(n)) => {
                Value::Float(n as f64 + x)
            }
            (Value::Float(x), Value::Float(y)) => Value::Float(x + y),
            (
                Value::Histogram {
                    mut buckets,
                    count,
                    sum,
                },
                Value::Histogram {
                    buckets: more,
                    count: n,
                    sum: s,
                },
            ) => {
                for (held, add) in buckets.iter_mut().zip(more) {
                    *held += add;
                }
                Value::Histogram {
                    buckets,
                    count: count + n,
                    sum: sum + s,
                }
            }
            (held, _) => {
                debug_assert!(false, "a histogram and a number in one series");
                held
            }
        }
    }
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        for family in &self.families {
            // prometheus-client adds `_total` to a counter's name itself.
            let name = match family.kind {
                MetricType::Counter => family.name.strip_suffix("_total").unwrap_or(family.name),
                _ => family.name,
            };
            let mut metric = encoder.encode_descriptor(name, family.help, None, family.kind)?;
            for Series { labels, value } in &family.series {
                let labels = SeriesLabels {
                    labels,
                    values: &family.values,
                };
                let mut series = metric.encode_family(&labels)?;
                match (value, family.kind) {
                    (Value::Int(n), MetricType::Counter) => {
                        series.encode_counter::<NoLabelSet, _, u64>(n, None)?
                    }
                    (Value::Float(x), MetricType::Counter) => {
                        series.encode_counter::<NoLabelSet, _, f64>(x, None)?
                    }
                    (Value::Int(n), _) => series.encode_gauge(n)?,
                    (Value::Float(x), _) => series.encode_gauge(x)?,
                    (
                        Value::Histogram {
                            buckets,
                            count,
                            sum,
                        },
                        _,
                    ) => {
                        let buckets: SmallVec<[(f64, u64); 20]> = (family.bounds.iter().copied())
                            .zip(buckets.iter().copied())
                            .collect();
                        series.encode_histogram::<NoLabelSet>(*sum, *count, &buckets, None)?
                    }
                }
            }
        }
        Ok(())
    }
}

/// The labels of one series, as prometheus-client reads them.
struct SeriesLabels<'a> {
    labels: &'a [(&'static str, u32, u32)],
    values: &'a str,
}

impl EncodeLabelSet for SeriesLabels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        for &(name, start, end) in self.labels {
            let value = &self.values[start as usize..end as usize];
            (name, value).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_written_once_with_the_series_of_every_part() {
        let mut out = Exposition::default();
        for server in ["dns://:53", "dns://:53", "dns://:1053"] {
            (out.counter("coredns_cache_hits_total", "The count of cache hits."))
                .add(&[("server", server), ("type", "success")], 2);
            out.counter("coredns_forward_max_concurrent_rejects_total", "Rejects.")
                .add(&[], 1);
        }
        out.gauge("coredns_build_info", "Built.").add(&[], 1);
        let text = out.render();
        assert_eq!(
            text,
            "# HELP coredns_cache_hits_total The count of cache hits.\n\
             # TYPE coredns_cache_hits_total counter\n\
             coredns_cache_hits_total{server=\"dns://:53\",type=\"success\"} 4\n\
             coredns_cache_hits_total{server=\"dns://:1053\",type=\"success\"} 2\n\
             # HELP coredns_forward_max_concurrent_rejects_total Rejects.\n\
             # TYPE coredns_forward_max_concurrent_rejects_total counter\n\
             coredns_forward_max_concurrent_rejects_total 3\n\
             # HELP coredns_build_info Built.\n\
             # TYPE coredns_build_info gauge\n\
             coredns_build_info 1\n"
        );
    }

    #[test]
    fn histograms_are_cumulative_with_go_spelled_bounds() {
        const BOUNDS: [f64; 3] = [0.00025, 1.0, 8291.0];
        let mut out = Exposition::default();
        let family = out.histogram("x_seconds", "Help.", &BOUNDS);
        family.observed(&[("zone", ".")], &[1, 0, 2, 1], 4, 9000.5);
        family.observed(&[("zone", ".")], &[1, 0, 0, 0], 1, 0.0001);
        let text = out.render();
        assert_eq!(
            text,
            "# HELP x_seconds Help.\n\
             # TYPE x_seconds histogram\n\
             x_seconds_bucket{zone=\".\",le=\"0.00025\"} 2\n\
             x_seconds_bucket{zone=\".\",le=\"1\"} 2\n\
             x_seconds_bucket{zone=\".\",le=\"8291\"} 4\n\
             x_seconds_bucket{zone=\".\",le=\"+Inf\"} 5\n\
             x_seconds_sum{zone=\".\"} 9000.5001\n\
             x_seconds_count{zone=\".\"} 5\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped_and_empty_families_keep_their_header() {
        let mut out = Exposition::default();
        (out.gauge("g", "Two\nlines \\ here."))
            .add_f64(&[("zone", "a\"b\\c\nd")], 1.5)
            .add(&[("zone", "a\"b\\c\nd")], 1);
        out.counter("none_total", "Nothing yet.");
        let text = out.render();
        assert_eq!(
            text,
            "# HELP g Two\\nlines \\\\ here.\n\
             # TYPE g gauge\n\
             g{zone=\"a\\\"b\\\\c\\nd\"} 2.5\n\
             # HELP none_total Nothing yet.\n\
             # TYPE none_total counter\n"
        );
    }
}
