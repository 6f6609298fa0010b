//! After any random sequence of watch events (applies, deletes, and re-lists that follow
//! missed events), the zone answers exactly like one built from scratch from the final state,
//! and holds the same client index. And the delays between attempts while the API fails.

use super::*;
use clusterdns_testkit::rng::XorShift;
use clusterdns_zone::{Lookup, PodsMode, Snapshot, ZoneBuilder, ZoneConfig};
use serde_json::json;

const NAMESPACES: [&str; 3] = ["default", "apps", "kube-system"];
const SERVICES: [&str; 4] = ["web", "db", "kube-dns", "alias"];
/// Pod names: `agent` is a host-network Pod (on the node's address, as every such Pod is),
/// `web-1` is dual-stack.
const PODS: [&str; 4] = ["web-0", "web-1", "job-a", "agent"];

/// One API object of any watched kind.
#[derive(Clone)]
enum Object {
    Namespace(Box<core::Namespace>),
    Service(Box<core::Service>),
    Slice(Box<discovery::EndpointSlice>),
    Pod(Box<core::Pod>),
}

/// The conversions the watch tasks run, one per resource.
struct Conversions {
    namespace: Changes<core::Namespace>,
    service: Changes<core::Service>,
    slice: Changes<discovery::EndpointSlice>,
    pod: Changes<core::Pod>,
}

impl Conversions {
    fn new(pods: PodChanges, metrics: &Arc<Metrics>) -> Self {
        Conversions {
            namespace: single(ObjectKind::Namespace, namespace_change, metrics.clone()),
            service: single(ObjectKind::Service, service_change, metrics.clone()),
            slice: single(
                ObjectKind::EndpointSlice,
                |object| slice_change(object, false),
                metrics.clone(),
            ),
            pod: pod_changes(pods, metrics.clone()),
        }
    }
}

impl Object {
    fn resource(&self) -> ObjectKind {
        match self {
            Object::Namespace(_) => ObjectKind::Namespace,
            Object::Service(_) => ObjectKind::Service,
            Object::Slice(_) => ObjectKind::EndpointSlice,
            Object::Pod(_) => ObjectKind::Pod,
        }
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Object::Namespace(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::Slice(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
        }
    }

    fn key(&self) -> (ObjectKind, ObjectKey) {
        (self.resource(), object_key(self.meta()))
    }

    /// The messages a watch (or list) reports for it, seen as `seen`.
    fn messages(&self, conversions: &Conversions, seen: Seen) -> Vec<Message> {
        let converted = match self.clone() {
            Object::Namespace(o) => (conversions.namespace)(*o, seen),
            Object::Service(o) => (conversions.service)(*o, seen),
            Object::Slice(o) => (conversions.slice)(*o, seen),
            Object::Pod(o) => (conversions.pod)(*o, seen),
        };
        (converted.into_iter())
            .map(|c| changed(c, seen == Seen::Listed))
            .collect()
    }
}

fn random_object(rng: &mut XorShift) -> Object {
    let ns = NAMESPACES[rng.below(3) as usize];
    let svc = SERVICES[rng.below(4) as usize];
    let ip = |rng: &mut XorShift| format!("10.0.{}.{}", rng.below(2), rng.below(10) + 1);
    if rng.below(4) == 0 {
        return random_pod(rng, ns);
    }
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

/// A Pod of `ns`: its address is fixed by its name and namespace (an address moving between
/// Pods is the zone's tests' concern); its phase, deletion and the field its addresses are
/// spelled in are random.
fn random_pod(rng: &mut XorShift, ns: &str) -> Object {
    let which = rng.below(PODS.len() as u64) as usize;
    let name = PODS[which];
    let ns_index = NAMESPACES.iter().position(|n| *n == ns).unwrap_or(0);
    let host_network = name == "agent";
    let mut ips = vec![format!("10.1.{ns_index}.{}", which + 1)];
    if host_network {
        ips = vec!["192.168.0.1".to_owned()];
    } else if name == "web-1" {
        ips.push(format!("fd00::{ns_index}:{}", which + 1));
    }
    let phase = ["Pending", "Running", "Running", "Succeeded", "Failed"][rng.below(5) as usize];
    let mut status = json!({"phase": phase});
    if rng.below(2) == 0 && ips.len() == 1 {
        status["podIP"] = json!(ips[0]);
    } else {
        status["podIPs"] = ips.iter().map(|ip| json!({"ip": ip})).collect();
    }
    let mut metadata = json!({"name": name, "namespace": ns});
    if rng.below(5) == 0 {
        metadata["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
    }
    Object::Pod(
        serde_json::from_value(json!({
            "metadata": metadata,
            "spec": {"hostNetwork": host_network, "containers": []},
            "status": status,
        }))
        .expect("pod"),
    )
}

fn zone_config(pods: PodChanges) -> ZoneConfig {
    ZoneConfig {
        domain: clusterdns_zone::WireName::from_dotted("cluster.local").expect("domain"),
        ttl: 5,
        pods: if pods.verified {
            PodsMode::Verified
        } else {
            PodsMode::Insecure
        },
        ..ZoneConfig::default()
    }
}

fn applier(metrics: Arc<Metrics>, pods: PodChanges) -> Applier {
    Applier {
        publisher: Publisher::new(zone_config(pods)),
        resources: vec![
            ObjectKind::Namespace,
            ObjectKind::Service,
            ObjectKind::EndpointSlice,
            ObjectKind::Pod,
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
fn fresh(
    state: &HashMap<(ObjectKind, ObjectKey), Object>,
    conversions: &Conversions,
    pods: PodChanges,
) -> Snapshot {
    let mut builder = ZoneBuilder::new(zone_config(pods));
    for object in state.values() {
        for message in object.messages(conversions, Seen::Listed) {
            if let Message::Changed { change, .. } = message {
                builder.apply(change);
            }
        }
    }
    builder.set_synced();
    builder.publish()
}

fn assert_same_answers(incremental: &Snapshot, fresh: &Snapshot, round: u64) {
    let clients = |s: &Snapshot| {
        let mut all: Vec<(std::net::IpAddr, String)> = (s.client_addresses())
            .map(|(ip, ns)| (ip, ns.to_owned()))
            .collect();
        all.sort();
        all
    };
    assert_eq!(
        clients(incremental),
        clients(fresh),
        "round {round}: client index"
    );
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
        let mut rng = XorShift::new(round + 1);
        // Client addresses alone, and with `pods verified`.
        let pods = PodChanges {
            verified: round % 2 == 1,
            addresses: true,
        };
        let conversions = Conversions::new(pods, &metrics);
        let mut applier = applier(metrics.clone(), pods);
        let mut state: HashMap<(ObjectKind, ObjectKey), Object> = HashMap::new();
        // The initial list of each resource.
        for _ in 0..rng.below(12) {
            let object = random_object(&mut rng);
            state.insert(object.key(), object);
        }
        for resource in applier.resources.clone() {
            relist(&mut applier, resource, &state, &conversions);
        }
        applier.publish();
        assert!(applier.synced, "round {round}: not synced after every list");
        for _ in 0..rng.below(60) {
            match rng.below(10) {
                0..=4 => {
                    let object = random_object(&mut rng);
                    state.insert(object.key(), object.clone());
                    for message in object.messages(&conversions, Seen::Applied) {
                        applier.handle(message);
                    }
                }
                5 | 6 => {
                    let object = random_object(&mut rng);
                    if let Some(gone) = state.remove(&object.key()) {
                        for message in gone.messages(&conversions, Seen::Deleted) {
                            applier.handle(message);
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
                    let resources = applier.resources.len() as u64;
                    let resource = applier.resources[rng.below(resources) as usize];
                    relist(&mut applier, resource, &state, &conversions);
                    // Missed changes of other kinds arrive by their own re-lists.
                    for other in applier.resources.clone() {
                        if other != resource {
                            relist(&mut applier, other, &state, &conversions);
                        }
                    }
                }
                _ => applier.publish(),
            }
        }
        applier.publish();
        let incremental = applier.publisher.store().load_full();
        let fresh = fresh(&state, &conversions, pods);
        assert_same_answers(&incremental, &fresh, round);
        let node: std::net::IpAddr = [192, 168, 0, 1].into();
        assert_eq!(
            incremental.client_namespace(node),
            None,
            "round {round}: the node"
        );
    }
}

/// A complete (re-)list of `resource` as the watcher reports it.
fn relist(
    applier: &mut Applier,
    resource: ObjectKind,
    state: &HashMap<(ObjectKind, ObjectKey), Object>,
    conversions: &Conversions,
) {
    applier.handle(Message::ListStarted(resource));
    for object in state.values().filter(|o| o.resource() == resource) {
        for message in object.messages(conversions, Seen::Listed) {
            applier.handle(message);
        }
    }
    applier.handle(Message::ListDone(resource));
}

/// The delays while the API fails: doubling to the cap, a 410 re-listed at once (once), and
/// started over by progress or by a failure long after the last.
#[test]
fn retry_delays() {
    let start = Instant::now();
    let at = |ms: u64| start + Duration::from_millis(ms);
    let ms = |delay: Option<Duration>| delay.map(|d| d.as_millis() as u64);
    let mut retry = RetryDelay::default();
    let waits: Vec<Option<u64>> = (0..8)
        .map(|i| ms(retry.after("unreachable", at(i * 100))))
        .collect();
    let doubling = [100, 200, 400, 800, 1600, 3200, 5000, 5000].map(Some);
    assert_eq!(waits, doubling);

    // The API is back without the watch history: re-listed at once, not after 5 s.
    assert_eq!(ms(retry.after("expired", at(900))), None);
    // The re-list fails: the delays go on where they were (`Init` is not progress).
    assert_eq!(ms(retry.after("server_error", at(1_000))), Some(5_000));
    assert_eq!(ms(retry.after("expired", at(1_100))), Some(5_000));
    retry.progress();
    assert_eq!(ms(retry.after("expired", at(1_200))), None);
    assert_eq!(ms(retry.after("unreachable", at(1_300))), Some(100));

    // A quiet watch that ran for a while and then broke starts over.
    for i in 0..6 {
        retry.after("unreachable", at(1_400 + i));
    }
    assert_eq!(ms(retry.after("unreachable", at(1_500))), Some(5_000));
    let later = 1_500 + RESET_AFTER.as_millis() as u64;
    assert_eq!(ms(retry.after("unreachable", at(later))), Some(100));
}
