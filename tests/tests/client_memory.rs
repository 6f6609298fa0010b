//! Holds the client index (a Pod's address → its namespace) to a few bytes per Pod: the heap a
//! builder holds for 100,000 IPv4 Pods over 100 namespaces, counted by a counting allocator
//! (not RSS), over what the empty builder holds. One test in this binary, so no other test's
//! allocations are counted.

use std::net::{IpAddr, Ipv4Addr};

use clusterdns_testkit::alloc::{live_bytes, Counting};
use clusterdns_zone::{Change, ZoneBuilder, ZoneConfig};

#[global_allocator]
static GLOBAL: Counting = Counting;

const PODS: usize = 100_000;
const NAMESPACES: usize = 100;

/// Heap per IPv4 Pod: its 8-byte entry (address, namespace id) in a shard array of exactly
/// its length, and at this size 0.7 bytes of the 4096 shards' headers: 8.8 measured, with room
/// for fewer Pods per shard.
const MAX_BYTES_PER_POD: f64 = 12.0;

#[test]
fn client_index_heap_per_pod_stays_small() {
    let mut builder = ZoneBuilder::new(ZoneConfig::default());
    builder.set_synced();
    drop(builder.publish());
    let before = live_bytes();
    for i in 0..PODS {
        // A /24 per node, as kubeadm's default pod CIDR hands them out: 10.244.<node>.<n>.
        let ip = Ipv4Addr::new(
            10,
            244 + (i / 250 / 256) as u8,
            (i / 250 % 256) as u8,
            1 + (i % 250) as u8,
        );
        let namespace = format!("namespace-{}", i % NAMESPACES);
        builder.apply(Change::PodAddressUpsert(namespace.into(), IpAddr::V4(ip)));
    }
    let snapshot = builder.publish();
    assert_eq!(snapshot.client_addresses().count(), PODS);
    assert_eq!(
        snapshot.client_namespace(IpAddr::V4(Ipv4Addr::new(10, 244, 0, 1))),
        Some("namespace-0")
    );
    drop(snapshot);
    let bytes = live_bytes().saturating_sub(before);
    let per_pod = bytes as f64 / PODS as f64;
    println!(
        "{PODS} IPv4 Pods over {NAMESPACES} namespaces: {bytes} bytes, {per_pod:.1} bytes/Pod"
    );
    assert!(
        per_pod <= MAX_BYTES_PER_POD,
        "{per_pod:.1} bytes per Pod (bound {MAX_BYTES_PER_POD})"
    );
}
