//! After any random sequence of watch events (applies, deletes, and re-lists that follow
//! missed events), the zone answers exactly like one built from scratch from the final state.

use super::*;
use clusterdns_zone::{Lookup, PodsMode, Snapshot, ZoneBuilder, ZoneConfig};
use serde_json::json;

/// xorshift: reproducible without a crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const NAMESPACES: [&str; 3] = ["default", "apps", "kube-system"];
const SERVICES: [&str; 4] = ["web", "db", "kube-dns", "alias"];

/// One API object of any watched kind.
#[derive(Clone)]
enum Object {
    Namespace(Box<core::Namespace>),
    Service(Box<core::Service>),
    Slice(Box<discovery::EndpointSlice>),
}

impl Object {
    fn resource(&self) -> ObjectKind {
        match self {
            Object::Namespace(_) => ObjectKind::Namespace,
            Object::Service(_) => ObjectKind::Service,
            Object::Slice(_) => ObjectKind::EndpointSlice,
        }
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Object::Namespace(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::Slice(o) => &o.metadata,
        }
    }

    fn key(&self) -> (ObjectKind, ObjectKey) {
        (self.resource(), object_key(self.meta()))
    }

    /// The message a watch (or list) reports for it.
    fn applied(&self, metrics: &Metrics, listed: bool) -> Option<Message> {
        let source = &metrics.source;
        let converted = match self.clone() {
            Object::Namespace(o) => {
                convert_or_delete(ObjectKind::Namespace, namespace_change, *o, source)
            }
            Object::Service(o) => {
                convert_or_delete(ObjectKind::Service, service_change, *o, source)
            }
            Object::Slice(o) => {
                convert_or_delete(ObjectKind::EndpointSlice, slice_change, *o, source)
            }
        }?;
        Some(changed(converted, listed))
    }
}

fn random_object(rng: &mut Rng) -> Object {
    let ns = NAMESPACES[rng.below(3) as usize];
    let svc = SERVICES[rng.below(4) as usize];
    let ip = |rng: &mut Rng| format!("10.0.{}.{}", rng.below(2), rng.below(10) + 1);
    match rng.below(6) {
        0 => Object::Namespace(
            serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace"),
        ),
        1 | 2 => {
            let target = ["web.apps.svc.cluster.local", "example.com"][rng.below(2) as usize];
            let port_name = ["http", "dns"][rng.below(2) as usize];
            let spec = match rng.below(3) {
                0 => json!({"clusterIP": "None", "selector": {"app": svc},
                            "ports": [{"name": "http", "port": 80}]}),
                1 => json!({"type": "ExternalName",
                            "externalName": target}),
                _ => json!({"clusterIP": format!("10.96.0.{}", rng.below(6) + 1),
                            "ports": [{"name": port_name, "port": 53, "protocol": "UDP"}]}),
            };
            Object::Service(
                serde_json::from_value(
                    json!({"metadata": {"name": svc, "namespace": ns}, "spec": spec}),
                )
                .expect("service"),
            )
        }
        _ => {
            let endpoints: Vec<_> = (0..rng.below(4))
                .map(|i| {
                    let mut endpoint = json!({"addresses": [ip(rng)],
                                              "conditions": {"ready": rng.below(4) != 0}});
                    if rng.below(3) == 0 {
                        endpoint["hostname"] = json!(format!("host-{i}"));
                    }
                    endpoint
                })
                .collect();
            let slice = format!("{svc}-{}", rng.below(2));
            Object::Slice(
                serde_json::from_value(json!({
                    "metadata": {"name": slice, "namespace": ns,
                                 "labels": {"kubernetes.io/service-name": svc}},
                    "addressType": "IPv4",
                    "ports": [{"name": "http", "port": 8080}],
                    "endpoints": endpoints,
                }))
                .expect("slice"),
            )
        }
    }
}

fn zone_config() -> ZoneConfig {
    ZoneConfig {
        domain: clusterdns_zone::WireName::from_dotted("cluster.local").expect("domain"),
        ttl: 5,
        pods: PodsMode::Insecure,
    }
}

fn applier(metrics: Arc<Metrics>) -> Applier {
    Applier {
        publisher: Publisher::new(zone_config()),
        resources: vec![
            ObjectKind::Namespace,
            ObjectKind::Service,
            ObjectKind::EndpointSlice,
        ],
        list_started: HashSet::new(),
        listed_once: HashSet::new(),
        synced: false,
        service_kinds: HashMap::new(),
        programmed: Vec::new(),
        readiness: Arc::new(Readiness::default()),
        metrics,
        synced_sender: None,
    }
}

/// The snapshot built from scratch from `state`.
fn fresh(state: &HashMap<(ObjectKind, ObjectKey), Object>, metrics: &Metrics) -> Snapshot {
    let mut builder = ZoneBuilder::new(zone_config());
    for object in state.values() {
        if let Some(Message::Changed { change, .. }) = object.applied(metrics, true) {
            builder.apply(change);
        }
    }
    builder.set_synced();
    builder.publish()
}

fn assert_same_answers(incremental: &Snapshot, fresh: &Snapshot, round: u64) {
    let mut names = incremental.names();
    names.extend(fresh.names());
    for name in &names {
        // Not SOA: its serial counts publishes.
        for qtype in [1u16, 28, 33, 12, 5, 2, 16, 255] {
            let answer = |s: &Snapshot| match s.lookup(name.as_bytes(), qtype) {
                Lookup::Answer(found) => {
                    let question = [name.as_bytes(), &qtype.to_be_bytes(), &[0, 1]].concat();
                    format!("answer {:?}", found.records(&question))
                }
                other => format!("{:?}", std::mem::discriminant(&other)),
            };
            assert_eq!(
                answer(incremental),
                answer(fresh),
                "round {round}: {} type {qtype}",
                name.to_dotted()
            );
        }
    }
}

#[test]
fn any_watch_event_sequence_answers_like_a_fresh_build() {
    let metrics = Arc::new(Metrics::new("dns://:53".into()));
    for round in 0..120u64 {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (round + 1).wrapping_mul(0x2545_f491));
        let mut applier = applier(metrics.clone());
        let mut state: HashMap<(ObjectKind, ObjectKey), Object> = HashMap::new();
        // The initial list of each resource.
        for _ in 0..rng.below(12) {
            let object = random_object(&mut rng);
            state.insert(object.key(), object);
        }
        for resource in applier.resources.clone() {
            relist(&mut applier, resource, &state, &metrics);
        }
        applier.publish();
        assert!(applier.synced, "round {round}: not synced after every list");
        for _ in 0..rng.below(60) {
            match rng.below(10) {
                0..=4 => {
                    let object = random_object(&mut rng);
                    state.insert(object.key(), object.clone());
                    if let Some(message) = object.applied(&metrics, false) {
                        applier.handle(message);
                    }
                }
                5 | 6 => {
                    let object = random_object(&mut rng);
                    if let Some(gone) = state.remove(&object.key()) {
                        if let Some(change) = deletion(gone.resource(), gone.meta()) {
                            applier.handle(changed(Converted::plain(change), false));
                        }
                    }
                }
                7 => {
                    // Events missed while the watch was down, then 410 Gone and a re-list.
                    for _ in 0..rng.below(5) {
                        let object = random_object(&mut rng);
                        if rng.below(2) == 0 {
                            state.insert(object.key(), object);
                        } else {
                            state.remove(&object.key());
                        }
                    }
                    let resource = applier.resources[rng.below(3) as usize];
                    relist(&mut applier, resource, &state, &metrics);
                    // Missed changes of other kinds arrive by their own re-lists.
                    for other in applier.resources.clone() {
                        if other != resource {
                            relist(&mut applier, other, &state, &metrics);
                        }
                    }
                }
                _ => applier.publish(),
            }
        }
        applier.publish();
        let incremental = applier.publisher.store().load_full();
        assert_same_answers(&incremental, &fresh(&state, &metrics), round);
    }
}

/// A complete (re-)list of `resource` as the watcher reports it.
fn relist(
    applier: &mut Applier,
    resource: ObjectKind,
    state: &HashMap<(ObjectKind, ObjectKey), Object>,
    metrics: &Metrics,
) {
    applier.handle(Message::ListStarted(resource));
    for object in state.values().filter(|o| o.resource() == resource) {
        if let Some(message) = object.applied(metrics, true) {
            applier.handle(message);
        }
    }
    applier.handle(Message::ListDone(resource));
}
