//! After any sequence of changes, an incrementally updated zone answers exactly like a zone built
//! from scratch from the final state (a deterministic randomized property test).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use clusterdns_zone::{
    Change, Cluster, Endpoint, EndpointSlice, Lookup, Pod, PodsMode, Port, Protocol, Service,
    ServiceKind, Snapshot, ZoneBuilder, ZoneConfig,
};

/// A small xorshift generator, so the test needs no crate and is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const NAMESPACES: [&str; 3] = ["default", "apps", "kube-system"];
const SERVICES: [&str; 5] = ["web", "db", "kube-dns", "alias", "api"];

fn ip(rng: &mut Rng) -> IpAddr {
    if rng.below(5) == 0 {
        IpAddr::V6(Ipv6Addr::new(
            0xfd00,
            0,
            0,
            0,
            0,
            0,
            0,
            rng.below(8) as u16 + 1,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(
            10,
            0,
            rng.below(2) as u8,
            rng.below(12) as u8 + 1,
        ))
    }
}

fn port(rng: &mut Rng) -> Port {
    let names = ["http", "grpc", ""];
    Port {
        name: names[rng.below(3) as usize].into(),
        protocol: if rng.below(4) == 0 {
            Protocol::Udp
        } else {
            Protocol::Tcp
        },
        port: 80 + rng.below(3) as u16,
    }
}

fn random_change(rng: &mut Rng) -> Change {
    let ns: Box<str> = NAMESPACES[rng.below(3) as usize].into();
    let svc: Box<str> = SERVICES[rng.below(5) as usize].into();
    match rng.below(11) {
        0 => Change::NamespaceUpsert(ns),
        1 => Change::NamespaceDelete(ns),
        2 | 3 => {
            let kind = match rng.below(4) {
                0 => ServiceKind::Headless,
                1 => ServiceKind::ExternalName(
                    [
                        "web.apps.svc.cluster.local",
                        "www.example.com",
                        "alias.default.svc.cluster.local",
                    ][rng.below(3) as usize]
                        .into(),
                ),
                _ => ServiceKind::ClusterIp((0..rng.below(3)).map(|_| ip(rng)).collect()),
            };
            Change::ServiceUpsert(Service {
                namespace: ns,
                name: svc,
                kind,
                ports: (0..rng.below(3)).map(|_| port(rng)).collect(),
                external: Vec::new(),
            })
        }
        4 => Change::ServiceDelete(ns, svc),
        5 | 6 => {
            let endpoints = (0..rng.below(4))
                .map(|i| Endpoint {
                    addresses: vec![ip(rng)],
                    hostname: (rng.below(2) == 0).then(|| format!("h{i}").into()),
                    ready: rng.below(4) != 0,
                })
                .collect();
            Change::SliceUpsert(EndpointSlice {
                namespace: ns,
                name: format!("slice-{}", rng.below(4)).into(),
                service: svc,
                ports: (0..rng.below(2)).map(|_| port(rng)).collect(),
                endpoints,
            })
        }
        7 => Change::SliceDelete(ns, format!("slice-{}", rng.below(4)).into()),
        8 => Change::PodAddressUpsert(ns, ip(rng)),
        9 => Change::PodAddressDelete(ns, ip(rng)),
        _ => Change::PodUpsert(Pod {
            namespace: ns,
            name: format!("pod-{}", rng.below(3)).into(),
            ips: vec![ip(rng)],
        }),
    }
}

/// Every (name, type) answer of a snapshot, normalized (SOA serials differ between builds).
fn answers(snapshot: &Snapshot) -> Vec<(String, u16, String)> {
    let mut out = Vec::new();
    for name in snapshot.names() {
        for qtype in [1u16, 28, 33, 12, 5, 16, 2, 255, 15] {
            let result = match snapshot.lookup(name.as_bytes(), qtype) {
                Lookup::Answer(found) => {
                    let question = [name.as_bytes(), &qtype.to_be_bytes(), &[0, 1]].concat();
                    format!("answer {:?}", found.records(&question))
                }
                other => format!("{other:?}"),
            };
            out.push((name.to_dotted(), qtype, result));
        }
    }
    out
}

/// The client index of a snapshot, sorted.
fn clients(snapshot: &Snapshot) -> BTreeMap<IpAddr, String> {
    (snapshot.client_addresses())
        .map(|(ip, namespace)| (ip, namespace.to_owned()))
        .collect()
}

/// The model a sequence of changes leaves behind, kept independently of the builder.
#[derive(Default)]
struct Model {
    namespaces: Vec<Box<str>>,
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
    pods: Vec<Pod>,
    /// The client index: the latest upsert of an address, unless a delete of its namespace
    /// followed.
    clients: BTreeMap<IpAddr, Box<str>>,
}

impl Model {
    fn apply(&mut self, change: &Change) {
        match change.clone() {
            Change::NamespaceUpsert(n) => {
                self.namespaces.retain(|x| *x != n);
                self.namespaces.push(n);
            }
            Change::NamespaceDelete(n) => self.namespaces.retain(|x| *x != n),
            Change::ServiceUpsert(s) => {
                self.services
                    .retain(|x| (&x.namespace, &x.name) != (&s.namespace, &s.name));
                self.services.push(s);
            }
            Change::ServiceDelete(ns, n) => self
                .services
                .retain(|x| (&x.namespace, &x.name) != (&ns, &n)),
            Change::SliceUpsert(s) => {
                self.slices
                    .retain(|x| (&x.namespace, &x.name) != (&s.namespace, &s.name));
                self.slices.push(s);
            }
            Change::SliceDelete(ns, n) => {
                self.slices.retain(|x| (&x.namespace, &x.name) != (&ns, &n))
            }
            Change::PodUpsert(p) => {
                self.pods
                    .retain(|x| (&x.namespace, &x.name) != (&p.namespace, &p.name));
                self.pods.push(p);
            }
            Change::PodDelete(ns, n) => self.pods.retain(|x| (&x.namespace, &x.name) != (&ns, &n)),
            Change::PodAddressUpsert(ns, ip) => {
                self.clients.insert(ip, ns);
            }
            Change::PodAddressDelete(ns, ip) => {
                if self.clients.get(&ip) == Some(&ns) {
                    self.clients.remove(&ip);
                }
            }
        }
    }

    fn cluster(&self) -> Cluster {
        Cluster {
            namespaces: self.namespaces.clone(),
            services: self.services.clone(),
            slices: self.slices.clone(),
            pods: self.pods.clone(),
        }
    }
}

#[test]
fn incremental_updates_equal_a_fresh_build() {
    // The options `ignore empty_service` and `namespace_labels` set, alone and together.
    let options = [(false, false), (true, false), (false, true), (true, true)];
    for pods in [PodsMode::Insecure, PodsMode::Verified, PodsMode::Disabled] {
        for seed in 1..=60u64 {
            let (ignore_empty_service, namespace_objects_only) = options[seed as usize % 4];
            let config = ZoneConfig {
                pods,
                ignore_empty_service,
                namespace_objects_only,
                ..ZoneConfig::default()
            };
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut incremental = ZoneBuilder::new(config.clone());
            incremental.set_synced();
            let mut model = Model::default();
            for step in 0..rng.below(60) + 5 {
                let change = random_change(&mut rng);
                model.apply(&change);
                incremental.apply(change);
                // Publish now and then, so later changes land on already rendered state.
                if step % 3 == 0 {
                    incremental.publish();
                }
            }
            let last = incremental.publish();
            let mut fresh = ZoneBuilder::new(config);
            fresh.replace_all(model.cluster());
            for (ip, namespace) in &model.clients {
                fresh.apply(Change::PodAddressUpsert(namespace.clone(), *ip));
            }
            fresh.set_synced();
            let expected = fresh.publish();
            assert_eq!(
                answers(&last),
                answers(&expected),
                "seed {seed}, pods {pods:?}"
            );
            assert_eq!(
                clients(&last),
                clients(&expected),
                "client index, seed {seed}, pods {pods:?}"
            );

            // A full re-list of the same state through replace_all changes nothing either.
            incremental.replace_all(model.cluster());
            assert_eq!(
                answers(&incremental.publish()),
                answers(&expected),
                "re-list, seed {seed}"
            );
        }
    }
}
