//! dnsperf query files for a cluster: the "service mix" a busy cluster's pods send, and the
//! "ndots:5 search storm" that lookups of external names cause inside the cluster zone.
//!
//! A line is `name TYPE`, as dnsperf reads its data file. Every generated query also records
//! what it asks about ([`Category`]) and what a correct server answers ([`Expect`]), so tests
//! and benches can check the files against a snapshot.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::net::IpAddr;

use clusterdns_zone::{Cluster, EndpointSlice, Service, ServiceKind};

use crate::packet::reverse_dotted;
use crate::rng::SplitMix64;
use clusterdns_zone::name::dashed;

/// External names whose lookups walk the search path of a pod (`ndots:5`).
pub const EXTERNAL_NAMES: [&str; 16] = [
    "api.github.com",
    "github.com",
    "www.google.com",
    "oauth2.googleapis.com",
    "storage.googleapis.com",
    "s3.amazonaws.com",
    "sts.amazonaws.com",
    "registry-1.docker.io",
    "auth.docker.io",
    "ghcr.io",
    "quay.io",
    "pypi.org",
    "registry.npmjs.org",
    "login.microsoftonline.com",
    "hooks.slack.com",
    "api.stripe.com",
];

/// A query type used in the files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueryType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Service location.
    Srv,
    /// Reverse lookup.
    Ptr,
}

impl QueryType {
    /// The type's number on the wire.
    pub fn code(self) -> u16 {
        match self {
            QueryType::A => 1,
            QueryType::Aaaa => 28,
            QueryType::Srv => 33,
            QueryType::Ptr => 12,
        }
    }

    /// The type's mnemonic, as dnsperf reads it.
    pub fn mnemonic(self) -> &'static str {
        match self {
            QueryType::A => "A",
            QueryType::Aaaa => "AAAA",
            QueryType::Srv => "SRV",
            QueryType::Ptr => "PTR",
        }
    }
}

/// What a query asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    /// A of a ClusterIP Service.
    ServiceA,
    /// AAAA of a ClusterIP Service (answered for dual-stack ones, NODATA otherwise).
    ServiceAaaa,
    /// SRV `_http._tcp.<svc>.<ns>.svc.<zone>` of a ClusterIP Service.
    Srv,
    /// A of a headless Service with ready endpoints, or of one of its endpoints.
    HeadlessA,
    /// PTR of a ClusterIP.
    Ptr,
    /// A of a name that does not exist in an existing namespace.
    NxDomain,
    /// An external name with one of the cluster search suffixes appended.
    SearchStorm,
}

/// What a correct server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Expect {
    /// NOERROR with at least one answer record.
    Answer,
    /// NOERROR with no answer record.
    NoData,
    /// NXDOMAIN.
    NxDomain,
}

/// One query of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryLine {
    /// The name, dotted without trailing dot.
    pub name: String,
    /// The type.
    pub qtype: QueryType,
    /// What it asks about.
    pub category: Category,
    /// What a correct server answers.
    pub expect: Expect,
}

impl fmt::Display for QueryLine {
    /// `name TYPE`, a dnsperf data-file line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.qtype.mnemonic())
    }
}

/// The parts of a cluster queries are drawn from.
struct Pools<'a> {
    domain: String,
    namespaces: Vec<&'a str>,
    cluster_ip: Vec<(&'a Service, &'a [IpAddr])>,
    dual_stack: Vec<(&'a Service, &'a [IpAddr])>,
    /// Headless Services with at least one ready endpoint, with their ready endpoint labels.
    headless: Vec<(&'a Service, Vec<String>)>,
}

impl<'a> Pools<'a> {
    fn new(cluster: &'a Cluster, domain: &str) -> Self {
        let mut slices: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for slice in &cluster.slices {
            slices
                .entry((&slice.namespace, &slice.service))
                .or_default()
                .push(slice);
        }
        let mut namespaces: Vec<&str> = cluster.namespaces.iter().map(|n| &**n).collect();
        if namespaces.is_empty() {
            namespaces = cluster.services.iter().map(|s| &*s.namespace).collect();
            namespaces.sort_unstable();
            namespaces.dedup();
        }
        let mut pools = Pools {
            domain: domain.trim_end_matches('.').to_owned(),
            namespaces,
            cluster_ip: Vec::new(),
            dual_stack: Vec::new(),
            headless: Vec::new(),
        };
        for service in &cluster.services {
            match &service.kind {
                ServiceKind::ClusterIp(ips) if !ips.is_empty() => {
                    pools.cluster_ip.push((service, ips));
                    if ips.iter().any(IpAddr::is_ipv6) {
                        pools.dual_stack.push((service, ips));
                    }
                }
                ServiceKind::Headless => {
                    let key = (&*service.namespace, &*service.name);
                    let labels: Vec<String> = (slices.get(&key).into_iter().flatten())
                        .flat_map(|slice| &slice.endpoints)
                        .filter(|e| e.ready)
                        .filter_map(|e| match (&e.hostname, e.addresses.first()) {
                            (Some(hostname), _) => Some(hostname.to_string()),
                            (None, Some(ip)) => Some(dashed(*ip)),
                            (None, None) => None,
                        })
                        .collect();
                    if !labels.is_empty() {
                        pools.headless.push((service, labels));
                    }
                }
                _ => {}
            }
        }
        pools
    }

    fn service_name(&self, service: &Service) -> String {
        format!("{}.{}.svc.{}", service.name, service.namespace, self.domain)
    }

    fn line(name: String, qtype: QueryType, category: Category, expect: Expect) -> QueryLine {
        QueryLine {
            name,
            qtype,
            category,
            expect,
        }
    }

    /// A query of `category`, or a NXDOMAIN query when the cluster has nothing to ask about.
    fn query(&self, category: Category, n: usize, rng: &mut SplitMix64) -> QueryLine {
        let line = match category {
            Category::ServiceA => rng.pick(&self.cluster_ip).map(|(service, _)| {
                Self::line(
                    self.service_name(service),
                    QueryType::A,
                    category,
                    Expect::Answer,
                )
            }),
            Category::ServiceAaaa => {
                // Half ask dual-stack Services, half any ClusterIP Service (mostly NODATA),
                // as clients ask AAAA of every name.
                let pool = if n.is_multiple_of(2) && !self.dual_stack.is_empty() {
                    &self.dual_stack
                } else {
                    &self.cluster_ip
                };
                rng.pick(pool).map(|(service, ips)| {
                    let expect = if ips.iter().any(IpAddr::is_ipv6) {
                        Expect::Answer
                    } else {
                        Expect::NoData
                    };
                    Self::line(
                        self.service_name(service),
                        QueryType::Aaaa,
                        category,
                        expect,
                    )
                })
            }
            Category::Srv => self.cluster_ip_with_http(rng).map(|service| {
                Self::line(
                    format!("_http._tcp.{}", self.service_name(service)),
                    QueryType::Srv,
                    category,
                    Expect::Answer,
                )
            }),
            Category::HeadlessA => rng.pick(&self.headless).map(|(service, labels)| {
                let base = self.service_name(service);
                // Two in three ask the Service, one in three one of its endpoints.
                let name = if rng.chance(1, 3) {
                    let label = &labels[rng.below(labels.len())];
                    format!("{label}.{base}")
                } else {
                    base
                };
                Self::line(name, QueryType::A, category, Expect::Answer)
            }),
            Category::Ptr => rng.pick(&self.cluster_ip).map(|(_, ips)| {
                let ip = ips[rng.below(ips.len())];
                Self::line(reverse_dotted(ip), QueryType::Ptr, category, Expect::Answer)
            }),
            Category::NxDomain | Category::SearchStorm => None,
        };
        line.unwrap_or_else(|| self.nxdomain(rng.next_u64()))
    }

    /// A ClusterIP Service with an `http` TCP port (every generated one has it).
    fn cluster_ip_with_http(&self, rng: &mut SplitMix64) -> Option<&'a Service> {
        for _ in 0..64 {
            let (service, _) = rng.pick(&self.cluster_ip)?;
            if service.ports.iter().any(|p| &*p.name == "http") {
                return Some(service);
            }
        }
        None
    }

    /// `missing-<hex>.<ns>.svc.<zone>`: no generated Service is named `missing-...`.
    fn nxdomain(&self, random: u64) -> QueryLine {
        let namespace = match self.namespaces.len() {
            0 => "default",
            n => self.namespaces[(random % n as u64) as usize],
        };
        Self::line(
            format!(
                "missing-{:08x}.{namespace}.svc.{}",
                random >> 32,
                self.domain
            ),
            QueryType::A,
            Category::NxDomain,
            Expect::NxDomain,
        )
    }
}

/// The service mix: `count` queries, about 60% A of ClusterIP Services, 10% AAAA, 10% SRV
/// `_http._tcp`, 10% headless A, 5% PTR of ClusterIPs and 5% NXDOMAIN, shuffled by `seed`.
/// A category the cluster has nothing for (no headless Service...) becomes NXDOMAIN queries.
pub fn service_mix(cluster: &Cluster, domain: &str, count: usize, seed: u64) -> Vec<QueryLine> {
    let pools = Pools::new(cluster, domain);
    let mut rng = SplitMix64::stream(seed, 2);
    let shares = [
        (Category::ServiceAaaa, count * 10 / 100),
        (Category::Srv, count * 10 / 100),
        (Category::HeadlessA, count * 10 / 100),
        (Category::Ptr, count * 5 / 100),
        (Category::NxDomain, count * 5 / 100),
    ];
    let others: usize = shares.iter().map(|(_, n)| n).sum();
    let mut lines = Vec::with_capacity(count);
    for (category, n) in [(Category::ServiceA, count - others)]
        .into_iter()
        .chain(shares)
    {
        for i in 0..n {
            lines.push(pools.query(category, i, &mut rng));
        }
    }
    rng.shuffle(&mut lines);
    lines
}

/// The ndots:5 search storm: `count` queries of external names (see [`EXTERNAL_NAMES`]) with
/// each in-zone search suffix of a pod in a random namespace appended, in the order a stub
/// resolver tries them, A then AAAA: `<name>.<ns>.svc.<zone>`, `<name>.svc.<zone>`,
/// `<name>.<zone>`. All are NXDOMAIN.
pub fn search_storm(cluster: &Cluster, domain: &str, count: usize, seed: u64) -> Vec<QueryLine> {
    let pools = Pools::new(cluster, domain);
    let mut rng = SplitMix64::stream(seed, 3);
    let zone = &pools.domain;
    let mut lines = Vec::with_capacity(count + 6);
    while lines.len() < count {
        let external = EXTERNAL_NAMES[rng.below(EXTERNAL_NAMES.len())];
        let namespace = rng.pick(&pools.namespaces).copied().unwrap_or("default");
        for suffix in [
            format!("{namespace}.svc.{zone}"),
            format!("svc.{zone}"),
            zone.clone(),
        ] {
            for qtype in [QueryType::A, QueryType::Aaaa] {
                lines.push(Pools::line(
                    format!("{external}.{suffix}"),
                    qtype,
                    Category::SearchStorm,
                    Expect::NxDomain,
                ));
            }
        }
    }
    lines.truncate(count);
    lines
}

/// Writes `lines` as a dnsperf data file, one `name TYPE` a line.
pub fn write_queries<W: Write>(mut out: W, lines: &[QueryLine]) -> io::Result<()> {
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate, Spec};

    fn share(lines: &[QueryLine], category: Category) -> usize {
        lines.iter().filter(|l| l.category == category).count()
    }

    #[test]
    fn mix_proportions_and_determinism() {
        let cluster = generate(&Spec::new(1000)).expect("generate");
        let lines = service_mix(&cluster, "cluster.local", 10_000, 9);
        assert_eq!(lines.len(), 10_000);
        assert_eq!(share(&lines, Category::ServiceA), 6000);
        assert_eq!(share(&lines, Category::ServiceAaaa), 1000);
        assert_eq!(share(&lines, Category::Srv), 1000);
        assert_eq!(share(&lines, Category::HeadlessA), 1000);
        assert_eq!(share(&lines, Category::Ptr), 500);
        assert_eq!(share(&lines, Category::NxDomain), 500);
        assert_eq!(lines, service_mix(&cluster, "cluster.local", 10_000, 9));
        // Shuffled: the first tenth is not all one category.
        assert!(share(&lines[..1000], Category::ServiceA) < 1000);
        let srv = lines
            .iter()
            .find(|l| l.category == Category::Srv)
            .expect("an SRV query");
        assert!(srv.name.starts_with("_http._tcp."), "{}", srv.name);
        assert!(srv.name.ends_with(".svc.cluster.local"), "{}", srv.name);
        assert_eq!(srv.to_string(), format!("{} SRV", srv.name));
    }

    #[test]
    fn empty_cluster_gives_nxdomain() {
        let lines = service_mix(&Cluster::default(), "cluster.local", 100, 1);
        assert_eq!(lines.len(), 100);
        assert!(lines.iter().all(|l| l.expect == Expect::NxDomain));
        assert!(lines[0].name.ends_with(".default.svc.cluster.local"));
    }

    #[test]
    fn storm_walks_the_search_path() {
        let cluster = generate(&Spec::new(100)).expect("generate");
        let lines = search_storm(&cluster, "cluster.local.", 14, 1);
        assert_eq!(lines.len(), 14);
        let first: Vec<String> = lines[..6].iter().map(ToString::to_string).collect();
        let external = lines[0]
            .name
            .split_once(".svc.")
            .and_then(|(head, _)| head.rsplit_once('.'))
            .map(|(external, _)| external.to_owned())
            .expect("search name");
        assert!(EXTERNAL_NAMES.contains(&external.as_str()), "{external}");
        assert!(first[0].ends_with(".svc.cluster.local A"), "{}", first[0]);
        assert!(
            first[1].ends_with(".svc.cluster.local AAAA"),
            "{}",
            first[1]
        );
        assert_eq!(first[2], format!("{external}.svc.cluster.local A"));
        assert_eq!(first[3], format!("{external}.svc.cluster.local AAAA"));
        assert_eq!(first[4], format!("{external}.cluster.local A"));
        assert_eq!(first[5], format!("{external}.cluster.local AAAA"));
        assert!(lines.iter().all(|l| l.expect == Expect::NxDomain));
    }
}
