//! What another zone answers from the cluster's Services (CoreDNS's `k8s_external`, which
//! serves `<svc>.<ns>.<zone>` from the same objects as the cluster zone): a read-only view of a
//! served Service ([`ServiceView`]) and its ready endpoints ([`EndpointView`]), and the index
//! from an external address to the Services that have it, for PTR ([`ExternalIndex`]).
//!
//! The external addresses themselves are part of the Service's spec
//! ([`crate::model::ExternalAddress`]), so a Service without any costs an empty vector and nothing
//! more. The index holds one entry per (address, Service) and is small: only
//! `externalIPs` and load balancer addresses are in it, which few Services have. It is one
//! sorted array behind an `Arc`: a publish shares it, and the builder copies it only when a
//! Service's external addresses change.

use std::net::IpAddr;
use std::sync::Arc;

use crate::model::{ExternalAddress, Port, ServiceKind};
use crate::record::{Endpoint, Label, ServiceRecord, Slice};
use crate::snapshot::Snapshot;

/// External IP address → the owner hashes of the Services that have it, sorted.
#[derive(Clone, Default)]
pub(crate) struct ExternalIndex(Arc<Vec<(IpAddr, u64)>>);

impl ExternalIndex {
    /// The owner hashes of `ip`.
    pub(crate) fn owners(&self, ip: IpAddr) -> impl Iterator<Item = u64> + '_ {
        let start = self.0.partition_point(|(a, _)| *a < ip);
        self.0[start..]
            .iter()
            .take_while(move |(a, _)| *a == ip)
            .map(|(_, owner)| *owner)
    }

    /// Records that the Service hashing to `owner` has `ip`.
    pub(crate) fn add(&mut self, ip: IpAddr, owner: u64) {
        let entries = Arc::make_mut(&mut self.0);
        if let Err(at) = entries.binary_search(&(ip, owner)) {
            entries.insert(at, (ip, owner));
        }
    }

    /// Records that the Service hashing to `owner` no longer has `ip`.
    pub(crate) fn remove(&mut self, ip: IpAddr, owner: u64) {
        if let Ok(at) = self.0.binary_search(&(ip, owner)) {
            Arc::make_mut(&mut self.0).remove(at);
        }
    }
}

/// A served ClusterIP or headless Service, as another zone answers from it.
#[derive(Clone, Copy, Debug)]
pub struct ServiceView<'a> {
    record: &'a ServiceRecord,
}

/// A ready endpoint of a Service, with the ports of its EndpointSlice.
#[derive(Clone, Copy, Debug)]
pub struct EndpointView<'a> {
    endpoint: &'a Endpoint,
    slice: &'a Slice,
}

impl<'a> ServiceView<'a> {
    fn new(record: &'a ServiceRecord) -> Option<Self> {
        record.spec.as_ref()?;
        Some(ServiceView { record })
    }

    /// `metadata.namespace` (lowercase).
    pub fn namespace(&self) -> &'a str {
        self.record.spec.as_ref().map_or("", |s| &s.namespace)
    }

    /// `metadata.name` (lowercase).
    pub fn name(&self) -> &'a str {
        self.record.spec.as_ref().map_or("", |s| &s.name)
    }

    /// Whether the Service is headless (`clusterIP: None`).
    pub fn is_headless(&self) -> bool {
        matches!(
            self.record.spec.as_ref().map(|s| &s.kind),
            Some(ServiceKind::Headless)
        )
    }

    /// `spec.ports`.
    pub fn ports(&self) -> &'a [Port] {
        self.record.spec.as_ref().map_or(&[], |s| &s.ports)
    }

    /// `spec.externalIPs`, then the load balancer's ingress addresses.
    pub fn external(&self) -> &'a [ExternalAddress] {
        self.record.spec.as_ref().map_or(&[], |s| &s.external)
    }

    /// The ready endpoints over all the Service's slices, in order, duplicates included.
    pub fn endpoints(&self) -> impl Iterator<Item = EndpointView<'a>> + 'a {
        self.record
            .endpoints()
            .map(|(endpoint, slice)| EndpointView { endpoint, slice })
    }
}

impl<'a> EndpointView<'a> {
    /// The address.
    pub fn ip(&self) -> IpAddr {
        self.endpoint.ip
    }

    /// Writes the endpoint's label (its hostname, else its dashed address) into `out`; returns
    /// its length.
    pub fn write_label(&self, out: &mut [u8; 63]) -> usize {
        self.endpoint.write_label(out)
    }

    /// Whether the endpoint's label is `label` (lowercase).
    pub fn has_label(&self, label: &[u8]) -> bool {
        self.endpoint.has_label(&Label::new(label))
    }

    /// The ports of the endpoint's EndpointSlice.
    pub fn ports(&self) -> &'a [Port] {
        &self.slice.ports
    }
}

impl Snapshot {
    /// The served ClusterIP or headless Service `<name>.<namespace>` (lowercase labels);
    /// `None` for one that does not exist, is not served, or is an ExternalName.
    pub fn service(&self, namespace: &[u8], name: &[u8]) -> Option<ServiceView<'_>> {
        let key = key(namespace, name)?;
        let record = self.tables.services.get(&key[..])?;
        if !record.answers_below() {
            return None;
        }
        ServiceView::new(record)
    }

    /// `kube-system/kube-dns`, served or not (the Service that fronts the cluster DNS, whose
    /// addresses name servers are given as; its cluster IPs are the cluster zone's glue).
    pub fn dns_service(&self) -> Option<ServiceView<'_>> {
        let key = key(b"kube-system", b"kube-dns")?;
        ServiceView::new(self.tables.services.get(&key[..])?)
    }

    /// The served Services that have `ip` among their external addresses.
    pub fn external_owners(&self, ip: IpAddr) -> impl Iterator<Item = ServiceView<'_>> {
        let tables = &self.tables;
        (tables.external.owners(ip))
            .filter_map(|owner| tables.owner(owner))
            .filter_map(ServiceView::new)
    }

    /// Whether the namespace `namespace` (a lowercase label) exists in the zone: it has a
    /// Namespace object or a Service, and is served.
    pub fn namespace_exists(&self, namespace: &[u8]) -> bool {
        // `<ns>.svc.<zone>` is a fixed name exactly when the namespace exists.
        let domain = self.config.domain.as_bytes();
        let mut name = [0u8; crate::name::MAX_NAME_LEN];
        let len = 1 + namespace.len() + 4 + domain.len();
        if namespace.is_empty() || namespace.len() > 63 || len > name.len() {
            return false;
        }
        name[0] = namespace.len() as u8;
        name[1..1 + namespace.len()].copy_from_slice(namespace);
        let at = 1 + namespace.len();
        name[at..at + 4].copy_from_slice(b"\x03svc");
        name[at + 4..len].copy_from_slice(domain);
        self.tables.nodes.get(&name[..len]).is_some()
    }
}

/// The services-table key of `<name>.<namespace>`.
fn key(namespace: &[u8], name: &[u8]) -> Option<crate::record::RecordKey> {
    let namespace = std::str::from_utf8(namespace).ok()?;
    let name = std::str::from_utf8(name).ok()?;
    crate::record::record_key(namespace, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Change, Endpoint, EndpointSlice, Protocol, Service};
    use crate::{ZoneBuilder, ZoneConfig};

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn service(namespace: &str, name: &str, kind: ServiceKind, external: &[&str]) -> Change {
        Change::ServiceUpsert(Service {
            namespace: namespace.into(),
            name: name.into(),
            kind,
            ports: vec![Port {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 80,
            }],
            external: (external.iter())
                .map(|a| match a.parse() {
                    Ok(ip) => ExternalAddress::Ip(ip),
                    Err(_) => ExternalAddress::Hostname((*a).into()),
                })
                .collect(),
        })
    }

    fn owners(snapshot: &Snapshot, address: &str) -> Vec<String> {
        (snapshot.external_owners(ip(address)))
            .map(|v| format!("{}.{}", v.name(), v.namespace()))
            .collect()
    }

    #[test]
    fn services_by_name_and_external_address() {
        let mut builder = ZoneBuilder::new(ZoneConfig {
            namespace_objects_only: true,
            ..ZoneConfig::default()
        });
        builder.apply(Change::NamespaceUpsert("shop".into()));
        let cluster = ServiceKind::ClusterIp(vec![ip("10.96.0.1")]);
        builder.apply(service(
            "shop",
            "web",
            cluster.clone(),
            &["192.0.2.1", "lb.example.com"],
        ));
        builder.apply(service("shop", "api", cluster.clone(), &["192.0.2.1"]));
        builder.apply(service("shop", "db", ServiceKind::Headless, &[]));
        builder.apply(service(
            "shop",
            "alias",
            ServiceKind::ExternalName("x.org".into()),
            &["192.0.2.9"],
        ));
        // A namespace without its Namespace object is not served.
        builder.apply(service("hidden", "web", cluster.clone(), &["192.0.2.2"]));
        builder.apply(Change::SliceUpsert(EndpointSlice {
            namespace: "shop".into(),
            name: "db-1".into(),
            service: "db".into(),
            ports: Vec::new(),
            endpoints: vec![Endpoint {
                addresses: vec![ip("10.1.0.5")],
                hostname: Some("db-0".into()),
                ready: true,
            }],
        }));
        builder.set_synced();
        let snapshot = builder.publish();
        let web = snapshot.service(b"shop", b"web").expect("web");
        assert_eq!((web.name(), web.namespace()), ("web", "shop"));
        assert_eq!(web.external().len(), 2);
        assert_eq!(web.ports()[0].port, 80);
        assert!(!web.is_headless());
        let db = snapshot.service(b"shop", b"db").expect("db");
        assert!(db.is_headless());
        let endpoints: Vec<EndpointView> = db.endpoints().collect();
        assert_eq!(endpoints.len(), 1);
        assert!(endpoints[0].has_label(b"db-0") && !endpoints[0].has_label(b"db-1"));
        let mut label = [0u8; 63];
        let len = endpoints[0].write_label(&mut label);
        assert_eq!(&label[..len], b"db-0");
        assert!(
            snapshot.service(b"shop", b"alias").is_none(),
            "ExternalName"
        );
        assert!(snapshot.service(b"hidden", b"web").is_none(), "not served");
        assert!(snapshot.service(b"shop", b"nothing").is_none());
        assert!(snapshot.namespace_exists(b"shop"));
        assert!(!snapshot.namespace_exists(b"hidden"));
        let mut both = owners(&snapshot, "192.0.2.1");
        both.sort();
        assert_eq!(both, ["api.shop", "web.shop"]);
        assert!(owners(&snapshot, "192.0.2.2").is_empty());
        assert!(owners(&snapshot, "192.0.2.9").is_empty());
        // Changing or deleting a Service updates the index.
        builder.apply(service("shop", "web", cluster, &["192.0.2.3"]));
        builder.apply(Change::ServiceDelete("shop".into(), "api".into()));
        let snapshot = builder.publish();
        assert!(owners(&snapshot, "192.0.2.1").is_empty());
        assert_eq!(owners(&snapshot, "192.0.2.3"), ["web.shop"]);
        assert!(snapshot.dns_service().is_none());
    }
}
