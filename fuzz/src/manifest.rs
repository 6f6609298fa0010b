//! Target `manifest`: the manifest loader (`clusterdns::sources::manifest::read`). The input is written
//! to a scratch file named `.yaml` and to one named `.json` (in /dev/shm when there is one): the
//! loader reads files by path (YAML on a parser thread of its own, from the open file), so there
//! is no in-memory entry point to call instead. Errors are expected; panics are
//! not. For a load that succeeds, checked: every object was counted, names are the lowercase
//! DNS labels the zone relies on, and the cluster builds into a snapshot that answers each
//! Service's A, AAAA, SRV and ANY questions and its addresses' PTR questions under the `query`
//! target's checks.

use std::cell::RefCell;
use std::net::IpAddr;
use std::path::PathBuf;

use clusterdns::sources::manifest::read;
use clusterdns::sources::PodChanges;
use clusterdns_zone::name::reverse_name;
use clusterdns_zone::{Change, Cluster, PodsMode, ServiceKind, WireName, ZoneBuilder, ZoneConfig};

use super::query::answer_every_way;

/// A directory of this process's scratch files.
fn scratch_dir() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    base.join(format!("clusterdns-fuzz-{}", std::process::id()))
}

thread_local! {
    /// This thread's scratch file stem (tests replaying the corpus run on several threads).
    static STEM: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

fn scratch(extension: &str) -> PathBuf {
    STEM.with(|stem| {
        let mut stem = stem.borrow_mut();
        let stem = stem.get_or_insert_with(|| {
            let dir = scratch_dir();
            if let Err(error) = std::fs::create_dir_all(&dir) {
                panic!(
                    "cannot make the scratch directory {}: {error}",
                    dir.display()
                );
            }
            dir.join(format!("{:?}", std::thread::current().id()).replace(['(', ')'], ""))
        });
        stem.with_extension(extension)
    })
}

/// Loads `data` as a YAML and as a JSON manifest.
pub fn run(data: &[u8]) {
    for extension in ["yaml", "json"] {
        let path = scratch(extension);
        if let Err(error) = std::fs::write(&path, data) {
            panic!("cannot write {}: {error}", path.display());
        }
        let mut cluster = Cluster::default();
        let mut changes = 0usize;
        let pods = PodChanges {
            verified: true,
            addresses: true,
        };
        let result = read(std::slice::from_ref(&path), pods, &mut |change| {
            // A Pod is one object and, with an address, also its address changes.
            if !matches!(change, Change::PodAddressUpsert(..)) {
                changes += 1;
            }
            match change {
                Change::NamespaceUpsert(name) => cluster.namespaces.push(name),
                Change::ServiceUpsert(service) => cluster.services.push(service),
                Change::SliceUpsert(slice) => cluster.slices.push(slice),
                Change::PodUpsert(pod) => cluster.pods.push(pod),
                Change::PodAddressUpsert(namespace, _) => assert!(is_label(&namespace)),
                other => panic!("a manifest read reported a deletion: {other:?}"),
            }
        });
        match result {
            Ok(report) => {
                assert_eq!(report.objects, changes, "objects counted");
                assert_eq!(report.files, 1);
                check_cluster(&cluster);
            }
            Err(error) => {
                // Every error names the file.
                let message = error.to_string();
                assert!(
                    message.contains(&*path.to_string_lossy()),
                    "error without the path: {message}"
                );
            }
        }
    }
}

fn is_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A query packet for `name` (wire format) of `qtype`, with EDNS.
fn query(wire: &WireName, qtype: u16) -> Vec<u8> {
    let mut packet = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    packet.extend_from_slice(wire.as_bytes());
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&[0, 1, 0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
    packet
}

fn check_cluster(cluster: &Cluster) {
    for namespace in &cluster.namespaces {
        assert!(is_label(namespace), "namespace {namespace:?}");
    }
    let mut addresses: Vec<IpAddr> = Vec::new();
    for service in &cluster.services {
        assert!(is_label(&service.namespace), "{:?}", service.namespace);
        assert!(is_label(&service.name), "{:?}", service.name);
        if let ServiceKind::ClusterIp(ips) = &service.kind {
            addresses.extend(ips);
        }
    }
    for slice in &cluster.slices {
        assert!(is_label(&slice.namespace), "{:?}", slice.namespace);
        for endpoint in &slice.endpoints {
            if let Some(hostname) = &endpoint.hostname {
                assert!(is_label(hostname), "hostname {hostname:?}");
            }
            addresses.extend(&endpoint.addresses);
        }
    }
    let mut builder = ZoneBuilder::new(ZoneConfig {
        pods: PodsMode::Verified,
        ..ZoneConfig::default()
    });
    builder.replace_all(cluster.clone());
    builder.set_synced();
    let snapshot = builder.publish();
    for service in cluster.services.iter().take(16) {
        let name = format!("{}.{}.svc.cluster.local", service.name, service.namespace);
        let Some(wire) = WireName::from_dotted(&name) else {
            panic!("a loaded Service has no DNS name: {name:?}");
        };
        for qtype in [1, 28, 33, 255] {
            answer_every_way(&snapshot, &query(&wire, qtype));
        }
    }
    for ip in addresses.into_iter().take(16) {
        answer_every_way(&snapshot, &query(&reverse_name(ip), 12));
    }
}
