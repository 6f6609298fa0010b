//! A latency histogram that records without allocating: log-linear buckets over nanoseconds
//! (32 per power of two, so a reported percentile is within about 3% of the true value), from
//! 1 ns to about 18 minutes.

/// Linear buckets below 2^SUB_BITS, then 2^SUB_BITS buckets per power of two.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Largest power of two tracked; larger values land in the last bucket.
const MAX_EXP: u32 = 40;
/// Number of buckets.
const BUCKETS: usize = (SUB + (MAX_EXP - SUB_BITS + 1) as u64 * SUB) as usize;

/// Counts of latencies by bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    sum_ns: u128,
    max_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            sum_ns: 0,
            max_ns: 0,
        }
    }
}

/// The bucket of a value.
fn bucket(ns: u64) -> usize {
    if ns < SUB {
        return ns as usize;
    }
    let exp = (63 - ns.leading_zeros()).min(MAX_EXP);
    let mantissa = (ns >> (exp - SUB_BITS)).min(2 * SUB - 1) - SUB;
    (SUB + u64::from(exp - SUB_BITS) * SUB + mantissa) as usize
}

/// The middle of a bucket's range, the value reported for it.
fn value(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB {
        return index;
    }
    let exp = (index - SUB) / SUB + u64::from(SUB_BITS);
    let mantissa = (index - SUB) % SUB;
    let width = 1u64 << (exp - u64::from(SUB_BITS));
    (SUB + mantissa) * width + width / 2
}

impl Histogram {
    /// Records one latency.
    pub fn record(&mut self, ns: u64) {
        self.counts[bucket(ns)] += 1;
        self.total += 1;
        self.sum_ns += u128::from(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// Number of recorded latencies.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The latency below which a fraction `q` (0-1) of the recorded ones lie, in nanoseconds
    /// (0 when nothing was recorded).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return value(index).min(self.max_ns);
            }
        }
        self.max_ns
    }

    /// Mean latency in nanoseconds (0 when nothing was recorded).
    pub fn mean(&self) -> u64 {
        match self.total {
            0 => 0,
            n => (self.sum_ns / u128::from(n)) as u64,
        }
    }

    /// Largest recorded latency in nanoseconds.
    pub fn max(&self) -> u64 {
        self.max_ns
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.sum_ns += other.sum_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_close() {
        let mut last = 0;
        for ns in (0..5_000_000u64).step_by(7).chain([u64::MAX / 2, u64::MAX]) {
            let index = bucket(ns);
            assert!(index >= last && index < BUCKETS, "{ns}");
            last = index;
            if ns > 0 && ns < 1 << MAX_EXP {
                let error = (value(index) as f64 - ns as f64).abs() / ns as f64;
                assert!(error <= 1.0 / 32.0, "{ns}: {}", value(index));
            }
        }
    }

    #[test]
    fn quantiles() {
        let mut histogram = Histogram::default();
        assert_eq!(histogram.quantile(0.5), 0);
        for us in 1..=1000u64 {
            histogram.record(us * 1000);
        }
        let near = |got: u64, want: u64| (got as f64 - want as f64).abs() / (want as f64) < 0.035;
        assert!(
            near(histogram.quantile(0.5), 500_000),
            "{}",
            histogram.quantile(0.5)
        );
        assert!(near(histogram.quantile(0.99), 990_000));
        assert_eq!(histogram.quantile(1.0), 1_000_000);
        assert_eq!(histogram.mean(), 500_500);
        let mut sum = Histogram::default();
        sum.merge(&histogram);
        sum.merge(&histogram);
        assert_eq!(sum.count(), 2000);
        assert_eq!(sum.quantile(0.5), histogram.quantile(0.5));
    }
}
