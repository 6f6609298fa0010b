//! # clusterdns-bench
//!
//! What clusterdns is measured with (ARCHITECTURE.md, "Measuring"):
//!
//! - [`generate`](mod@generate): a deterministic synthetic cluster ([`Spec`] → [`clusterdns_zone::Cluster`]),
//!   from a few Services up to 50,000 Services / 500,000 endpoints;
//! - [`yaml`]: that cluster as Kubernetes manifests any manifest-reading server loads (one
//!   document per object, or one `kind: List`), and [`json`]: the same as a JSON `kind: List`;
//! - [`queries`]: dnsperf query files for it (the service mix, the ndots:5 search storm);
//! - [`zonefile`]: the same records as RFC 1035 zone files (cluster zone, reverse zones), for
//!   Knot DNS, NSD and Unbound;
//! - [`queryfile`]: query files read back into wire-format queries, for the load generator;
//! - [`load`] and [`latency`]: the load generator's engine (batched UDP, bounded in-flight
//!   queries, timeouts) and its latency histogram;
//! - [`flood`](mod@flood): a flood of queries at a fixed rate, whatever the server answers;
//! - [`check`]: responses reduced to comparable answer sets, to check two servers agree;
//! - [`packet`]: query packets and reverse names for the criterion benches.
//!
//! The `gen-cluster` binary writes the manifests, query files and zone files; `manifest-read`
//! times reading manifests and reports the peak RSS; `loadgen` is a
//! batching UDP load generator; `compare` runs clusterdns, Knot DNS, NSD and Unbound side by
//! side; `zone-scale` measures the zone's build time and heap, and `api-scale` the release binary
//! on the Kubernetes API path against the testkit's fake API server; `benches/` holds the
//! criterion benches and `scripts/dnsperf.sh` runs clusterdns under dnsperf. See the crate README.

#![warn(missing_docs)]

pub mod check;
pub mod flood;
pub mod generate;
pub mod heap;
pub mod json;
pub mod latency;
pub mod load;
pub mod packet;
pub mod queries;
pub mod queryfile;
pub mod rng;
pub mod yaml;
pub mod zonefile;

pub use generate::{generate, Spec, SpecError};
pub use json::write_json_list;
pub use queries::{search_storm, service_mix, write_queries, Category, Expect, QueryLine};
pub use yaml::{write_manifests, write_manifests_as, Layout};

use clusterdns_zone::{Cluster, Snapshot, ZoneBuilder, ZoneConfig};

/// Builds a synced snapshot of `cluster`, as the server does after its first full list.
pub fn build_snapshot(cluster: Cluster, config: ZoneConfig) -> Snapshot {
    let mut builder = ZoneBuilder::new(config);
    builder.replace_all(cluster);
    builder.set_synced();
    builder.publish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterdns_zone::{answer, Answered, Transport};

    /// Every generated query gets the answer it expects from a snapshot of its cluster.
    fn check_answers(lines: &[QueryLine], snapshot: &Snapshot) {
        let mut out = vec![0u8; 4096];
        for (i, line) in lines.iter().enumerate() {
            let packet = packet::query_packet(i as u16, &line.name, line.qtype.code(), Some(4096))
                .expect("generated names are valid");
            let response = match answer(
                snapshot,
                &packet,
                &mut out,
                Transport::Udp { max_payload: 4096 },
            ) {
                Answered::Response { len, .. } => &out[..len],
                other => panic!("{line}: {other:?}"),
            };
            let rcode = packet::response_rcode(response).expect("a header");
            let answers = packet::response_answers(response).expect("a header");
            let got = match (rcode, answers) {
                (3, _) => Expect::NxDomain,
                (0, 0) => Expect::NoData,
                (0, _) => Expect::Answer,
                (rcode, _) => panic!("{line}: rcode {rcode}"),
            };
            assert_eq!(got, line.expect, "{line} ({:?})", line.category);
        }
    }

    #[test]
    fn generated_queries_get_the_expected_answers() {
        let spec = Spec::new(1000).seed(5);
        let cluster = generate(&spec).expect("generate");
        let config = spec.zone_config().expect("zone config");
        let mix = service_mix(&cluster, &spec.domain, 5000, 5);
        let storm = search_storm(&cluster, &spec.domain, 600, 5);
        let snapshot = build_snapshot(cluster, config);
        assert_eq!(snapshot.stats().services, 1000);
        check_answers(&mix, &snapshot);
        check_answers(&storm, &snapshot);
        let aaaa = |expect| {
            mix.iter()
                .filter(|l| l.category == Category::ServiceAaaa && l.expect == expect)
                .count()
        };
        assert!(aaaa(Expect::Answer) > 0 && aaaa(Expect::NoData) > 0);
    }

    #[test]
    fn another_domain_answers_too() {
        let spec = Spec::new(100).domain("example.internal.");
        let cluster = generate(&spec).expect("generate");
        let mix = service_mix(&cluster, &spec.domain, 500, 1);
        assert!(mix[0].name.ends_with(".example.internal") || mix[0].qtype.code() == 12);
        let snapshot = build_snapshot(cluster, spec.zone_config().expect("zone config"));
        check_answers(&mix, &snapshot);
    }
}
