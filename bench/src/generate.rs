//! The synthetic cluster: a [`Spec`] names a cluster, [`generate`] builds it as a
//! [`clusterdns_zone::Cluster`], the same one for the same spec on every machine.
//!
//! Proportions (exact counts, rounded down, in a deterministically shuffled order):
//!
//! | share | kind | endpoints |
//! | --- | --- | --- |
//! | ~70% | ClusterIP, port `http` 80/TCP, ~30% also `grpc` 9090/TCP, ~10% dual-stack | `endpoints_per_cluster_ip` |
//! | 5% | ClusterIP scaled to zero (an EndpointSlice with no endpoint) | 0 |
//! | 10% | headless, StatefulSet-like: endpoints named `<svc>-<i>` | `endpoints_per_headless` |
//! | 10% | headless, endpoints without hostname (answered by dashed address) | `endpoints_per_headless` |
//! | 5% | ExternalName to `<svc>.example.{com,net,org}` | none |
//!
//! EndpointSlices hold at most 100 endpoints (the controller's default) and ~5% of endpoints
//! are not ready. Services spread at random over `ceil(services / 50)` namespaces.
//!
//! Addresses are unique: ClusterIPs from 10.96.0.0/12 (10.96.0.0, .0.1 and .0.10 left out, as
//! the network address, the `kubernetes` Service and kube-dns hold them), IPv6 ClusterIPs from
//! `fd00:10:96::/108`, pod addresses from per-node /24s of 10.0.0.0/8 outside 10.96.0.0/12
//! (hosts .2-.254). Endpoints are IPv4; dual-stack shows in the ClusterIPs (AAAA answers).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use clusterdns_zone::{
    Cluster, Endpoint, EndpointSlice, Port, Protocol, Service, ServiceKind, WireName, ZoneConfig,
};

use crate::rng::SplitMix64;

/// The cluster domain used unless a spec says otherwise.
pub const DEFAULT_DOMAIN: &str = "cluster.local";
/// The seed used unless a spec says otherwise.
pub const DEFAULT_SEED: u64 = 1;
/// Endpoints per EndpointSlice at most (the EndpointSlice controller's default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// The most Services a spec may ask for: ClusterIPs available in 10.96.0.0/12.
pub const MAX_SERVICES: usize = (1 << CLUSTER_IP_BITS) - RESERVED_OFFSETS.len();
/// The most endpoints a spec may ask for: one /24 per node outside the Service range, at most
/// 200 pods per node.
pub const MAX_ENDPOINTS: usize = NODE_BLOCKS * MAX_PODS_PER_NODE;

/// Bits of the ClusterIP range (10.96.0.0/12 and fd00:10:96::/108).
const CLUSTER_IP_BITS: u32 = 20;
/// ClusterIP offsets never handed out: network, `kubernetes`, kube-dns, broadcast.
const RESERVED_OFFSETS: [u32; 4] = [0, 1, 10, (1 << CLUSTER_IP_BITS) - 1];
/// /24 blocks of 10.0.0.0/8 outside 10.96.0.0/12, each one node's pod range.
const NODE_BLOCKS: usize = (1 << 16) - (1 << 12);
/// Usable pod hosts in a node's /24 (.2-.254).
const HOSTS_PER_NODE: usize = 253;
/// Pods placed on one node at most.
const MAX_PODS_PER_NODE: usize = 200;
/// Average pods per node the generator aims for (how many nodes a cluster gets).
const PODS_PER_NODE: usize = 100;
/// Services per namespace, on average.
const SERVICES_PER_NAMESPACE: usize = 50;
/// One endpoint in this many is not ready.
const NOT_READY_ONE_IN: usize = 20;

/// Name parts for namespaces, Services and ExternalName targets.
const TEAMS: [&str; 12] = [
    "payments",
    "search",
    "identity",
    "platform",
    "data",
    "ml",
    "web",
    "mobile",
    "infra",
    "observability",
    "growth",
    "ads",
];
const APPS: [&str; 20] = [
    "auth",
    "billing",
    "cart",
    "catalog",
    "checkout",
    "ledger",
    "profile",
    "users",
    "orders",
    "inventory",
    "shipping",
    "notify",
    "gateway",
    "pricing",
    "redis",
    "postgres",
    "kafka",
    "etcd",
    "mongo",
    "elastic",
];
const ROLES: [&str; 10] = [
    "api", "svc", "worker", "db", "cache", "web", "grpc", "frontend", "backend", "queue",
];
const EXTERNAL_DOMAINS: [&str; 3] = ["example.com", "example.net", "example.org"];
/// The characters Kubernetes uses for generated name suffixes.
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// What cluster to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Number of Services.
    pub services: usize,
    /// Endpoints of each headless Service.
    pub endpoints_per_headless: usize,
    /// Endpoints of each ClusterIP Service (those not scaled to zero).
    pub endpoints_per_cluster_ip: usize,
    /// One more endpoint for each of the first this-many Services with endpoints, so that a
    /// total can be hit exactly (see [`Spec::with_total_endpoints`]).
    pub extra_endpoints: usize,
    /// The seed: the same seed gives the same cluster.
    pub seed: u64,
    /// The cluster domain, without trailing dot.
    pub domain: String,
}

/// Why a spec cannot be generated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// The domain is not a valid domain name (or is the root).
    Domain(String),
    /// More Services than ClusterIPs in 10.96.0.0/12.
    TooManyServices(usize),
    /// More endpoints than pod addresses the generator hands out.
    TooManyEndpoints(usize),
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::Domain(domain) => write!(f, "{domain:?} is not a valid cluster domain"),
            SpecError::TooManyServices(n) => {
                write!(
                    f,
                    "{n} Services: at most {MAX_SERVICES} fit in 10.96.0.0/12"
                )
            }
            SpecError::TooManyEndpoints(n) => {
                write!(
                    f,
                    "{n} endpoints: at most {MAX_ENDPOINTS} pod addresses are handed out"
                )
            }
        }
    }
}

impl std::error::Error for SpecError {}

/// How many Services of each kind a cluster of `services` Services has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    cluster_ip: usize,
    idle: usize,
    stateful: usize,
    dashed: usize,
    external: usize,
}

impl Plan {
    fn new(services: usize) -> Self {
        let external = services * 5 / 100;
        let idle = services * 5 / 100;
        let headless = services * 20 / 100;
        let stateful = headless / 2;
        Plan {
            cluster_ip: services - external - idle - headless,
            idle,
            stateful,
            dashed: headless - stateful,
            external,
        }
    }

    /// Services that get endpoints.
    fn with_endpoints(&self) -> usize {
        self.cluster_ip + self.stateful + self.dashed
    }

    /// The kinds in a shuffled order.
    fn kinds(&self, rng: &mut SplitMix64) -> Vec<Kind> {
        let mut kinds = Vec::with_capacity(self.with_endpoints() + self.idle + self.external);
        kinds.extend(std::iter::repeat_n(Kind::ClusterIp, self.cluster_ip));
        kinds.extend(std::iter::repeat_n(Kind::Idle, self.idle));
        kinds.extend(std::iter::repeat_n(Kind::Stateful, self.stateful));
        kinds.extend(std::iter::repeat_n(Kind::Dashed, self.dashed));
        kinds.extend(std::iter::repeat_n(Kind::External, self.external));
        rng.shuffle(&mut kinds);
        kinds
    }
}

/// What a generated Service is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    ClusterIp,
    Idle,
    Stateful,
    Dashed,
    External,
}

impl Spec {
    /// `services` Services with 10 endpoints per ClusterIP and headless Service, seed 1,
    /// `cluster.local`.
    pub fn new(services: usize) -> Self {
        Spec {
            services,
            endpoints_per_headless: 10,
            endpoints_per_cluster_ip: 10,
            extra_endpoints: 0,
            seed: DEFAULT_SEED,
            domain: DEFAULT_DOMAIN.to_owned(),
        }
    }

    /// `services` Services holding exactly `total_endpoints` endpoints, spread evenly over the
    /// ClusterIP and headless Services (none when the cluster has no such Service).
    pub fn with_total_endpoints(services: usize, total_endpoints: usize) -> Self {
        let holders = Plan::new(services).with_endpoints();
        let (each, extra) = match holders {
            0 => (0, 0),
            n => (total_endpoints / n, total_endpoints % n),
        };
        Spec {
            endpoints_per_headless: each,
            endpoints_per_cluster_ip: each,
            extra_endpoints: extra,
            ..Spec::new(services)
        }
    }

    /// This spec with another seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// This spec with another cluster domain.
    pub fn domain(mut self, domain: &str) -> Self {
        self.domain = domain.trim_end_matches('.').to_owned();
        self
    }

    /// The number of endpoints the generated cluster will have.
    pub fn total_endpoints(&self) -> usize {
        let plan = Plan::new(self.services);
        let extra = self.extra_endpoints.min(plan.with_endpoints());
        plan.cluster_ip * self.endpoints_per_cluster_ip
            + (plan.stateful + plan.dashed) * self.endpoints_per_headless
            + extra
    }

    /// The number of namespaces the generated cluster will have.
    pub fn namespaces(&self) -> usize {
        self.services.div_ceil(SERVICES_PER_NAMESPACE).max(1)
    }

    /// Checks that the spec can be generated.
    pub fn check(&self) -> Result<(), SpecError> {
        match WireName::from_dotted(&self.domain) {
            Some(name) if name.as_bytes().len() > 1 => {}
            _ => return Err(SpecError::Domain(self.domain.clone())),
        }
        if self.services > MAX_SERVICES {
            return Err(SpecError::TooManyServices(self.services));
        }
        let endpoints = self.total_endpoints();
        if endpoints > MAX_ENDPOINTS {
            return Err(SpecError::TooManyEndpoints(endpoints));
        }
        Ok(())
    }

    /// The zone configuration for this spec's domain (TTL 5, pods `insecure`: the defaults).
    pub fn zone_config(&self) -> Result<ZoneConfig, SpecError> {
        self.check()?;
        let domain = WireName::from_dotted(&self.domain)
            .ok_or_else(|| SpecError::Domain(self.domain.clone()))?;
        Ok(ZoneConfig {
            domain,
            ..ZoneConfig::default()
        })
    }
}

/// Generates the cluster `spec` names.
pub fn generate(spec: &Spec) -> Result<Cluster, SpecError> {
    spec.check()?;
    let mut rng = SplitMix64::stream(spec.seed, 1);
    let plan = Plan::new(spec.services);
    let kinds = plan.kinds(&mut rng);
    let namespaces: Vec<Box<str>> = (0..spec.namespaces())
        .map(|i| format!("{}-{i}", TEAMS[i % TEAMS.len()]).into())
        .collect();
    let mut cluster_ips = ClusterIps::new(&mut rng);
    let mut pods = PodAddresses::new(spec.total_endpoints());
    let mut extra = spec.extra_endpoints;
    let mut cluster = Cluster {
        namespaces: namespaces.clone(),
        services: Vec::with_capacity(spec.services),
        slices: Vec::new(),
        pods: Vec::new(),
    };
    for (index, kind) in kinds.into_iter().enumerate() {
        let namespace = namespaces[rng.below(namespaces.len())].clone();
        let name: Box<str> = format!(
            "{}-{}-{index}",
            APPS[rng.below(APPS.len())],
            ROLES[rng.below(ROLES.len())]
        )
        .into();
        let mut endpoints = match kind {
            Kind::ClusterIp => spec.endpoints_per_cluster_ip,
            Kind::Stateful | Kind::Dashed => spec.endpoints_per_headless,
            Kind::Idle | Kind::External => 0,
        };
        if matches!(kind, Kind::ClusterIp | Kind::Stateful | Kind::Dashed) && extra > 0 {
            extra -= 1;
            endpoints += 1;
        }
        let http = Port {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
        };
        let (service_kind, ports) = match kind {
            Kind::ClusterIp | Kind::Idle => {
                let offset = cluster_ips.next();
                let mut ips = vec![IpAddr::V4(cluster_ip_v4(offset))];
                if rng.chance(1, 10) {
                    ips.push(IpAddr::V6(cluster_ip_v6(offset)));
                }
                let mut ports = vec![http];
                if rng.chance(3, 10) {
                    ports.push(Port {
                        name: "grpc".into(),
                        protocol: Protocol::Tcp,
                        port: 9090,
                    });
                }
                (ServiceKind::ClusterIp(ips), ports)
            }
            Kind::Stateful | Kind::Dashed => (ServiceKind::Headless, vec![http]),
            Kind::External => {
                let target = format!("{name}.{}", EXTERNAL_DOMAINS[index % 3]);
                (ServiceKind::ExternalName(target.into()), Vec::new())
            }
        };
        if kind != Kind::External {
            let slice_ports: Vec<Port> = ports
                .iter()
                .map(|p| Port {
                    port: target_port(p),
                    ..p.clone()
                })
                .collect();
            let all: Vec<Endpoint> = (0..endpoints)
                .map(|i| Endpoint {
                    addresses: vec![IpAddr::V4(pods.next(&mut rng))],
                    hostname: (kind == Kind::Stateful).then(|| format!("{name}-{i}").into()),
                    ready: !rng.chance(1, NOT_READY_ONE_IN),
                })
                .collect();
            let chunks: Vec<Vec<Endpoint>> = if all.is_empty() {
                vec![Vec::new()]
            } else {
                all.chunks(MAX_ENDPOINTS_PER_SLICE)
                    .map(<[Endpoint]>::to_vec)
                    .collect()
            };
            let mut suffixes: Vec<String> = Vec::with_capacity(chunks.len());
            for chunk in chunks {
                let suffix = loop {
                    let candidate = slice_suffix(&mut rng);
                    if !suffixes.contains(&candidate) {
                        break candidate;
                    }
                };
                cluster.slices.push(EndpointSlice {
                    namespace: namespace.clone(),
                    name: format!("{name}-{suffix}").into(),
                    service: name.clone(),
                    ports: slice_ports.clone(),
                    endpoints: chunk,
                });
                suffixes.push(suffix);
            }
        }
        cluster.services.push(Service {
            namespace,
            name,
            kind: service_kind,
            ports,
            external: Vec::new(),
        });
    }
    Ok(cluster)
}

/// The container port behind a Service port (`http` 80 → 8080; others unchanged).
fn target_port(port: &Port) -> u16 {
    if port.port == 80 {
        8080
    } else {
        port.port
    }
}

/// A five-character generated-name suffix, as the EndpointSlice controller makes them.
fn slice_suffix(rng: &mut SplitMix64) -> String {
    (0..5)
        .map(|_| char::from(SUFFIX_ALPHABET[rng.below(SUFFIX_ALPHABET.len())]))
        .collect()
}

/// ClusterIP offsets: an odd-multiplier permutation of the range, so addresses look scattered
/// but never repeat.
struct ClusterIps {
    next: u32,
    multiplier: u32,
    add: u32,
}

impl ClusterIps {
    fn new(rng: &mut SplitMix64) -> Self {
        ClusterIps {
            next: 0,
            multiplier: (rng.next_u64() as u32) | 1,
            add: rng.next_u64() as u32,
        }
    }

    /// The next unused offset into the ClusterIP range.
    fn next(&mut self) -> u32 {
        let mask = (1u32 << CLUSTER_IP_BITS) - 1;
        loop {
            let offset = self
                .next
                .wrapping_mul(self.multiplier)
                .wrapping_add(self.add)
                & mask;
            self.next += 1;
            if !RESERVED_OFFSETS.contains(&offset) {
                return offset;
            }
        }
    }
}

/// 10.96.0.0 + `offset`.
fn cluster_ip_v4(offset: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + offset)
}

/// fd00:10:96:: + `offset`.
fn cluster_ip_v6(offset: u32) -> Ipv6Addr {
    Ipv6Addr::new(
        0xfd00,
        0x10,
        0x96,
        0,
        0,
        0,
        (offset >> 16) as u16,
        offset as u16,
    )
}

/// Pod addresses: each pod lands on a random node and takes that node's next free host.
struct PodAddresses {
    used: Vec<u8>,
}

impl PodAddresses {
    fn new(total: usize) -> Self {
        let nodes = total.div_ceil(PODS_PER_NODE).clamp(1, NODE_BLOCKS);
        PodAddresses {
            used: vec![0; nodes],
        }
    }

    fn next(&mut self, rng: &mut SplitMix64) -> Ipv4Addr {
        let nodes = self.used.len();
        let mut node = rng.below(nodes);
        // A full node sends the pod to the next one with room; `check` keeps the total below
        // what the nodes hold, and the node count keeps them about half full.
        while usize::from(self.used[node]) >= MAX_PODS_PER_NODE.min(HOSTS_PER_NODE) {
            node = (node + 1) % nodes;
        }
        let host = 2 + self.used[node];
        self.used[node] += 1;
        node_block_address(node, host)
    }
}

/// Host `host` of node `node`'s /24: blocks run from 10.112.0.0/24 up to 10.255.255.0/24, then
/// from 10.0.0.0/24 up to 10.95.255.0/24, never touching 10.96.0.0/12.
fn node_block_address(node: usize, host: u8) -> Ipv4Addr {
    const ABOVE: usize = (0x100 - 0x70) << 8;
    let block = if node < ABOVE {
        0x7000 + node
    } else {
        node - ABOVE
    };
    Ipv4Addr::new(10, (block >> 8) as u8, block as u8, host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn count(cluster: &Cluster, f: impl Fn(&Service) -> bool) -> usize {
        cluster.services.iter().filter(|s| f(s)).count()
    }

    #[test]
    fn same_spec_same_cluster() {
        let a = generate(&Spec::new(500)).expect("generate");
        let b = generate(&Spec::new(500)).expect("generate");
        assert_eq!(a, b);
        let c = generate(&Spec::new(500).seed(2)).expect("generate");
        assert_ne!(a, c);
    }

    #[test]
    fn proportions() {
        let spec = Spec::new(1000);
        let cluster = generate(&spec).expect("generate");
        assert_eq!(cluster.services.len(), 1000);
        assert_eq!(cluster.namespaces.len(), 20);
        let cluster_ip = count(&cluster, |s| matches!(s.kind, ServiceKind::ClusterIp(_)));
        let headless = count(&cluster, |s| s.kind == ServiceKind::Headless);
        let external = count(&cluster, |s| matches!(s.kind, ServiceKind::ExternalName(_)));
        assert_eq!((cluster_ip, headless, external), (750, 200, 50));
        let dual = count(
            &cluster,
            |s| matches!(&s.kind, ServiceKind::ClusterIp(ips) if ips.len() == 2),
        );
        assert!((40..=110).contains(&dual), "dual-stack: {dual}");
        let grpc = count(&cluster, |s| s.ports.iter().any(|p| &*p.name == "grpc"));
        assert!((160..=290).contains(&grpc), "grpc: {grpc}");
        let endpoints: Vec<&Endpoint> = cluster.slices.iter().flat_map(|s| &s.endpoints).collect();
        assert_eq!(endpoints.len(), spec.total_endpoints());
        assert_eq!(endpoints.len(), 900 * 10);
        let not_ready = endpoints.iter().filter(|e| !e.ready).count();
        assert!((300..=600).contains(&not_ready), "not ready: {not_ready}");
        let named = endpoints.iter().filter(|e| e.hostname.is_some()).count();
        assert_eq!(named, 100 * 10);
    }

    #[test]
    fn addresses_are_unique_and_in_range() {
        let cluster = generate(&Spec::new(2000)).expect("generate");
        let mut seen = HashSet::new();
        let service_range = |ip: Ipv4Addr| ip.octets()[0] == 10 && (ip.octets()[1] & 0xF0) == 0x60;
        for service in &cluster.services {
            if let ServiceKind::ClusterIp(ips) = &service.kind {
                for ip in ips {
                    assert!(seen.insert(*ip), "duplicate {ip}");
                    match ip {
                        IpAddr::V4(v4) => {
                            assert!(service_range(*v4), "{v4}");
                            assert!(!["10.96.0.0", "10.96.0.1", "10.96.0.10"]
                                .contains(&v4.to_string().as_str()));
                        }
                        IpAddr::V6(v6) => assert_eq!(v6.segments()[0], 0xfd00),
                    }
                }
            }
        }
        for endpoint in cluster.slices.iter().flat_map(|s| &s.endpoints) {
            for ip in &endpoint.addresses {
                assert!(seen.insert(*ip), "duplicate {ip}");
                let IpAddr::V4(v4) = ip else {
                    panic!("IPv6 endpoint {ip}")
                };
                assert_eq!(v4.octets()[0], 10);
                assert!(!service_range(*v4), "{v4}");
                assert!((2..=254).contains(&v4.octets()[3]), "{v4}");
            }
        }
    }

    #[test]
    fn slices_hold_at_most_100_and_names_are_unique() {
        let mut spec = Spec::new(100);
        spec.endpoints_per_headless = 250;
        let cluster = generate(&spec).expect("generate");
        assert!(cluster
            .slices
            .iter()
            .all(|s| s.endpoints.len() <= MAX_ENDPOINTS_PER_SLICE));
        let headless: Vec<&Service> = cluster
            .services
            .iter()
            .filter(|s| s.kind == ServiceKind::Headless)
            .collect();
        for service in headless {
            let slices: Vec<&EndpointSlice> = cluster
                .slices
                .iter()
                .filter(|s| s.service == service.name && s.namespace == service.namespace)
                .collect();
            assert_eq!(slices.len(), 3);
            let total: usize = slices.iter().map(|s| s.endpoints.len()).sum();
            assert_eq!(total, 250);
        }
        let names: HashSet<(&str, &str)> = cluster
            .slices
            .iter()
            .map(|s| (&*s.namespace, &*s.name))
            .collect();
        assert_eq!(names.len(), cluster.slices.len());
        let services: HashSet<(&str, &str)> = cluster
            .services
            .iter()
            .map(|s| (&*s.namespace, &*s.name))
            .collect();
        assert_eq!(services.len(), cluster.services.len());
    }

    #[test]
    fn total_endpoints_is_exact() {
        for (services, total) in [(50_000, 500_000), (1000, 12_345), (7, 100), (1, 3)] {
            let spec = Spec::with_total_endpoints(services, total);
            assert_eq!(spec.total_endpoints(), total, "{services}/{total}");
        }
        let spec = Spec::with_total_endpoints(1000, 12_345);
        let cluster = generate(&spec).expect("generate");
        let endpoints: usize = cluster.slices.iter().map(|s| s.endpoints.len()).sum();
        assert_eq!(endpoints, 12_345);
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(matches!(
            generate(&Spec::new(10).domain("")),
            Err(SpecError::Domain(_))
        ));
        assert!(matches!(
            Spec::new(MAX_SERVICES + 1).check(),
            Err(SpecError::TooManyServices(_))
        ));
        assert!(matches!(
            Spec::with_total_endpoints(10, MAX_ENDPOINTS + 1).check(),
            Err(SpecError::TooManyEndpoints(_))
        ));
    }

    #[test]
    fn node_blocks_skip_the_service_range() {
        assert_eq!(node_block_address(0, 2), Ipv4Addr::new(10, 112, 0, 2));
        assert_eq!(
            node_block_address(((0x100 - 0x70) << 8) - 1, 254),
            Ipv4Addr::new(10, 255, 255, 254)
        );
        assert_eq!(
            node_block_address((0x100 - 0x70) << 8, 2),
            Ipv4Addr::new(10, 0, 0, 2)
        );
        assert_eq!(
            node_block_address(NODE_BLOCKS - 1, 2),
            Ipv4Addr::new(10, 95, 255, 2)
        );
    }
}
