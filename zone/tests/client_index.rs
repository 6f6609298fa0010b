//! The client index (a Pod's address → its namespace): what upserts, deletes, moves between
//! namespaces, stale deletes and re-lists leave in it, and that published snapshots never change.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use clusterdns_testkit::rng::XorShift;
use clusterdns_zone::{Change, ObjectKind, Pod, PodsMode, Snapshot, ZoneBuilder, ZoneConfig};

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 244, 0, last))
}

fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x10, 0, 0, 0, 0, 0, last))
}

fn upsert(namespace: &str, ip: IpAddr) -> Change {
    Change::PodAddressUpsert(namespace.into(), ip)
}

fn delete(namespace: &str, ip: IpAddr) -> Change {
    Change::PodAddressDelete(namespace.into(), ip)
}

fn builder(pods: PodsMode) -> ZoneBuilder {
    let mut builder = ZoneBuilder::new(ZoneConfig {
        pods,
        ..ZoneConfig::default()
    });
    builder.set_synced();
    builder
}

fn build(changes: impl IntoIterator<Item = Change>) -> (ZoneBuilder, Snapshot) {
    let mut builder = builder(PodsMode::Insecure);
    for change in changes {
        builder.apply(change);
    }
    let snapshot = builder.publish();
    (builder, snapshot)
}

/// The index as a sorted map, to compare.
fn contents(snapshot: &Snapshot) -> BTreeMap<IpAddr, String> {
    (snapshot.client_addresses())
        .map(|(ip, namespace)| (ip, namespace.to_owned()))
        .collect()
}

#[test]
fn an_upserted_address_names_its_namespace() {
    let (_, snapshot) = build([upsert("apps", v4(1)), upsert("web", v4(2))]);
    assert_eq!(snapshot.client_namespace(v4(1)), Some("apps"));
    assert_eq!(snapshot.client_namespace(v4(2)), Some("web"));
    assert_eq!(snapshot.client_namespace(v4(3)), None);
}

#[test]
fn ipv6_and_ipv4_mapped_addresses() {
    let (_, snapshot) = build([upsert("apps", v6(1)), upsert("web", v4(7))]);
    assert_eq!(snapshot.client_namespace(v6(1)), Some("apps"));
    assert_eq!(snapshot.client_namespace(v6(2)), None);
    // A dual-stack socket reports an IPv4 client as `::ffff:a.b.c.d`.
    let mapped = IpAddr::V6(Ipv4Addr::new(10, 244, 0, 7).to_ipv6_mapped());
    assert_eq!(snapshot.client_namespace(mapped), Some("web"));
    // Stored as a mapped address, it is the IPv4 address too.
    let (_, snapshot) = build([upsert("apps", mapped)]);
    assert_eq!(snapshot.client_namespace(v4(7)), Some("apps"));
}

#[test]
fn a_delete_removes_the_address() {
    let (mut builder, before) = build([upsert("apps", v4(1)), upsert("apps", v6(1))]);
    builder.apply(delete("apps", v4(1)));
    builder.apply(delete("apps", v6(1)));
    assert!(builder.has_changes());
    let after = builder.publish();
    assert_eq!(after.client_namespace(v4(1)), None);
    assert_eq!(after.client_namespace(v6(1)), None);
    // The snapshot published before still answers as it did.
    assert_eq!(before.client_namespace(v4(1)), Some("apps"));
    assert_eq!(before.client_namespace(v6(1)), Some("apps"));
}

#[test]
fn an_address_follows_the_latest_upsert_into_another_namespace() {
    // The Pod in `old` released the address and a Pod in `new` got it before `old`'s delete
    // arrived: the late delete must leave the new entry alone.
    let (mut builder, _) = build([upsert("old", v4(1)), upsert("new", v4(1))]);
    builder.apply(delete("old", v4(1)));
    let snapshot = builder.publish();
    assert_eq!(snapshot.client_namespace(v4(1)), Some("new"));
    // The delete of the namespace that holds it does remove it.
    builder.apply(delete("new", v4(1)));
    assert_eq!(builder.publish().client_namespace(v4(1)), None);
}

#[test]
fn a_delete_of_an_unknown_namespace_or_address_changes_nothing() {
    let (mut builder, _) = build([upsert("apps", v4(1))]);
    builder.apply(delete("nowhere", v4(1)));
    builder.apply(delete("apps", v4(2)));
    builder.apply(upsert("apps", v4(1)));
    assert!(
        !builder.has_changes(),
        "nothing changed, nothing to publish"
    );
    assert_eq!(builder.publish().client_namespace(v4(1)), Some("apps"));
}

#[test]
fn namespace_ids_are_reused_without_changing_older_snapshots() {
    let (mut builder, first) = build([upsert("a", v4(1)), upsert("b", v4(2))]);
    // `a` loses its only address, so its id is free; `c` takes it.
    builder.apply(delete("a", v4(1)));
    builder.apply(upsert("c", v4(3)));
    let second = builder.publish();
    assert_eq!(first.client_namespace(v4(1)), Some("a"));
    assert_eq!(first.client_namespace(v4(3)), None);
    assert_eq!(second.client_namespace(v4(1)), None);
    assert_eq!(second.client_namespace(v4(2)), Some("b"));
    assert_eq!(second.client_namespace(v4(3)), Some("c"));
    // `a` comes back with another id; `b` moves wholly to `a`.
    builder.apply(upsert("a", v4(2)));
    let third = builder.publish();
    assert_eq!(third.client_namespace(v4(2)), Some("a"));
    assert_eq!(third.client_namespace(v4(3)), Some("c"));
    assert_eq!(second.client_namespace(v4(2)), Some("b"));
}

#[test]
fn a_relist_deletes_the_addresses_it_did_not_list() {
    let (mut builder, _) = build([
        upsert("apps", v4(1)),
        upsert("apps", v4(2)),
        upsert("web", v6(3)),
        upsert("web", v4(4)),
    ]);
    // The re-list sees 10.244.0.1 still in `apps`, 10.244.0.4 moved to `apps`, and a new one.
    let listed = [
        upsert("apps", v4(1)),
        upsert("apps", v4(4)),
        upsert("db", v4(5)),
    ];
    let keys: HashSet<_> = listed.iter().map(|c| c.object().1).collect();
    assert!(listed.iter().all(|c| c.object().0 == ObjectKind::Pod));
    for change in listed {
        builder.apply(change);
    }
    assert_eq!(builder.delete_unlisted(ObjectKind::Pod, &keys), 2);
    let snapshot = builder.publish();
    let expected: BTreeMap<IpAddr, String> = [(v4(1), "apps"), (v4(4), "apps"), (v4(5), "db")]
        .into_iter()
        .map(|(ip, ns)| (ip, ns.to_owned()))
        .collect();
    assert_eq!(contents(&snapshot), expected);
}

#[test]
fn verified_pods_and_client_addresses_are_listed_apart() {
    let mut builder = builder(PodsMode::Verified);
    // A Pod named like an address: its key must not stand for the address's, nor the other
    // way round.
    let pod = Pod {
        namespace: "apps".into(),
        name: "10.244.0.1".into(),
        ips: vec![v4(1)],
    };
    builder.apply(Change::PodUpsert(pod.clone()));
    builder.apply(upsert("apps", v4(1)));
    let pod_key = Change::PodUpsert(pod).object().1;
    let address_key = upsert("apps", v4(1)).object().1;
    assert_ne!(pod_key, address_key);
    // The re-list lists the Pod only: the address goes, the Pod stays.
    let listed: HashSet<_> = [pod_key].into_iter().collect();
    assert_eq!(builder.delete_unlisted(ObjectKind::Pod, &listed), 1);
    let snapshot = builder.publish();
    assert_eq!(snapshot.client_namespace(v4(1)), None);
    let pod_name = clusterdns_zone::WireName::from_dotted("10-244-0-1.apps.pod.cluster.local");
    let pod_name = pod_name.expect("pod name");
    assert!(
        snapshot.names().contains(&pod_name),
        "the verified Pod stays"
    );
}

#[test]
fn only_address_changes_fill_the_index() {
    // In `pods verified` mode a whole Pod (a host-network one included: its address is the
    // node's) makes a pod name, never a client entry: the source decides which Pods are
    // clients and says so with PodAddressUpsert.
    let mut builder = builder(PodsMode::Verified);
    builder.apply(Change::PodUpsert(Pod {
        namespace: "kube-system".into(),
        name: "kube-proxy-x".into(),
        ips: vec![IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10))],
    }));
    let snapshot = builder.publish();
    assert_eq!(
        snapshot.client_namespace(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10))),
        None
    );
    assert_eq!(snapshot.client_addresses().count(), 0);
}

#[test]
fn any_sequence_of_changes_leaves_what_the_rules_say() {
    const NAMESPACES: [&str; 4] = ["a", "b", "c", "d"];
    for seed in 1..=100u64 {
        let mut rng = XorShift::new(seed);
        let mut builder = builder(PodsMode::Insecure);
        let mut model: BTreeMap<IpAddr, &str> = BTreeMap::new();
        let mut published: Vec<(Snapshot, BTreeMap<IpAddr, String>)> = Vec::new();
        for _ in 0..rng.below(80) + 1 {
            let namespace = NAMESPACES[rng.below(4) as usize];
            let ip = match rng.below(3) {
                0 => v6(rng.below(4) as u16),
                _ => v4(rng.below(8) as u8),
            };
            if rng.below(3) == 0 {
                builder.apply(delete(namespace, ip));
                if model.get(&ip) == Some(&namespace) {
                    model.remove(&ip);
                }
            } else {
                builder.apply(upsert(namespace, ip));
                model.insert(ip, namespace);
            }
            if rng.below(4) == 0 {
                let snapshot = builder.publish();
                let now = contents(&snapshot);
                published.push((snapshot, now));
            }
        }
        let snapshot = builder.publish();
        let expected: BTreeMap<IpAddr, String> = (model.iter())
            .map(|(ip, ns)| (*ip, ns.to_string()))
            .collect();
        assert_eq!(contents(&snapshot), expected, "seed {seed}");
        for (ip, namespace) in &expected {
            assert_eq!(snapshot.client_namespace(*ip), Some(namespace.as_str()));
        }
        for (old, then) in &published {
            assert_eq!(
                &contents(old),
                then,
                "seed {seed}: a published snapshot changed"
            );
            for (ip, namespace) in then {
                assert_eq!(old.client_namespace(*ip), Some(namespace.as_str()));
            }
        }
    }
}
