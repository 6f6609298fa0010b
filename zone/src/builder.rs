//! The single writer: applies [`Change`]s from a source to its model of the cluster and publishes
//! [`Snapshot`]s. A publish re-renders only what changed since the last one (the Services whose
//! objects changed, the reverse names whose owners changed, the namespaces whose existence
//! changed) and copies only the table shards those names live in, so the cost of one
//! EndpointSlice event follows the size of its Service, not of the cluster.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use smallvec::SmallVec;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::encode::{EntryWriter, Owner, RData, Section};
use crate::model::{
    Change, Cluster, EndpointSlice, ObjectKey, ObjectKind, Pod, Port, Service, ServiceKind,
};
use crate::name::{dashed, reverse_name, WireName};
use crate::node::{NodeBlob, NodeBuilder, ANY_TYPE_ENTRY, FLAG_REVERSE};
use crate::snapshot::{PodsMode, Snapshot, Tables, ZoneConfig, ZoneStats};
use crate::wire::{TYPE_A, TYPE_AAAA, TYPE_NS, TYPE_PTR, TYPE_SOA, TYPE_SRV, TYPE_TXT};

/// `(namespace, name)` of an object.
type Key = (Box<str>, Box<str>);

/// The schema version answered at `dns-version.<zone>` (specification §2.2).
const SCHEMA_VERSION: &str = "1.1.0";
/// TTL of the `dns-version` TXT record (specification §2.2).
const SCHEMA_VERSION_TTL: u32 = 28800;
/// SOA timers as CoreDNS sets them: refresh, retry, expire (the minimum is the record TTL).
const SOA_TIMERS: [u32; 3] = [7200, 1800, 86400];
/// How many CNAMEs an ExternalName answer follows inside the zone.
const MAX_CNAME_CHAIN: usize = 8;

/// Why an address has a reverse name.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Claim {
    /// A cluster IP of the Service.
    ClusterIp,
    /// A ready endpoint of the Service, named by its `hostname`, or by its dashed address when
    /// `None` (the common case, which then costs no string).
    Endpoint(Option<Box<str>>),
}

impl Claim {
    /// The endpoint label this claim names `ip` with.
    fn label(&self, ip: IpAddr) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            Claim::ClusterIp => None,
            Claim::Endpoint(Some(host)) => Some(std::borrow::Cow::Borrowed(host)),
            Claim::Endpoint(None) => Some(std::borrow::Cow::Owned(dashed(ip))),
        }
    }
}

/// A Service's shared key and the addresses it claims.
type HeldClaims = (Arc<Key>, Vec<(IpAddr, Claim)>);

/// The Services claiming one address; nearly always exactly one, kept inline.
type Owners = SmallVec<[(Arc<Key>, Claim); 1]>;

/// A ready endpoint address of a Service, with the ports of its slice.
struct ReadyAddress<'a> {
    ip: IpAddr,
    label: String,
    ports: &'a [Port],
}

/// What changed since the last publish.
#[derive(Default)]
struct Dirty {
    services: HashSet<Key>,
    namespaces: HashSet<Box<str>>,
    ips: HashSet<IpAddr>,
    pods: HashSet<(Box<str>, IpAddr)>,
}

/// Builds and incrementally updates the zone (see the module docs).
pub struct ZoneBuilder {
    config: Arc<ZoneConfig>,
    namespace_objects: HashSet<Box<str>>,
    services_per_namespace: HashMap<Box<str>, usize>,
    services: HashMap<Key, Service>,
    slices: HashMap<Key, EndpointSlice>,
    slices_of: HashMap<Key, BTreeSet<Box<str>>>,
    pods: HashMap<Key, Pod>,
    pod_addresses: HashMap<(Box<str>, IpAddr), usize>,
    /// ExternalName Services whose target is inside the zone: re-rendered on every publish.
    in_zone_aliases: BTreeSet<Key>,
    /// Names each Service currently has in the tables.
    rendered: HashMap<Key, Vec<NodeBlob>>,
    /// Reverse-name claims each Service currently holds, with the shared copy of its key the
    /// owners lists point at.
    claims: HashMap<Key, HeldClaims>,
    reverse_owners: HashMap<IpAddr, Owners>,
    dirty: Dirty,
    /// Namespaces that exist (have a Namespace object or a Service) as of the last publish.
    existing_namespaces: HashSet<Box<str>>,
    /// Endpoints over all slices.
    endpoint_count: usize,
    tables: Tables,
    serial: u32,
    synced: bool,
}

impl ZoneBuilder {
    /// An empty builder.
    pub fn new(config: ZoneConfig) -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed);
        ZoneBuilder {
            config: Arc::new(config),
            namespace_objects: HashSet::new(),
            services_per_namespace: HashMap::new(),
            services: HashMap::new(),
            slices: HashMap::new(),
            slices_of: HashMap::new(),
            pods: HashMap::new(),
            pod_addresses: HashMap::new(),
            in_zone_aliases: BTreeSet::new(),
            rendered: HashMap::new(),
            claims: HashMap::new(),
            reverse_owners: HashMap::new(),
            dirty: Dirty::default(),
            existing_namespaces: HashSet::new(),
            endpoint_count: 0,
            tables: Tables::new(seed),
            serial: 0,
            synced: false,
        }
    }

    /// The configuration the zone is built with.
    pub fn config(&self) -> &ZoneConfig {
        &self.config
    }

    /// Marks the source as synced: from the next publish, the zone answers instead of SERVFAIL.
    pub fn set_synced(&mut self) {
        self.synced = true;
    }

    /// Applies one change to the model; nothing is visible until [`ZoneBuilder::publish`].
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::NamespaceUpsert(name) => {
                if self.namespace_objects.insert(name.clone()) {
                    self.dirty.namespaces.insert(name);
                }
            }
            Change::NamespaceDelete(name) => {
                if self.namespace_objects.remove(&name) {
                    self.dirty.namespaces.insert(name);
                }
            }
            Change::ServiceUpsert(service) => self.upsert_service(service),
            Change::ServiceDelete(namespace, name) => {
                let key = (namespace, name);
                if let Some(old) = self.services.remove(&key) {
                    self.in_zone_aliases.remove(&key);
                    self.count_service(&old.namespace, false);
                    self.dirty.services.insert(key);
                }
            }
            Change::SliceUpsert(slice) => self.upsert_slice(slice),
            Change::SliceDelete(namespace, name) => {
                let key = (namespace, name);
                if let Some(old) = self.slices.remove(&key) {
                    self.endpoint_count -= old.endpoints.len();
                    self.unlink_slice(&old);
                }
            }
            Change::PodUpsert(pod) => self.upsert_pod(pod),
            Change::PodDelete(namespace, name) => {
                if let Some(old) = self.pods.remove(&(namespace, name)) {
                    self.count_pod(&old, false);
                }
            }
        }
    }

    /// Deletes every object of `kind` whose key is not in `listed`: the end of a re-list, which
    /// reported the objects that still exist. Returns how many were deleted.
    pub fn delete_unlisted(&mut self, kind: ObjectKind, listed: &HashSet<ObjectKey>) -> usize {
        let gone = |key: &Key| !listed.contains(key);
        let deletions: Vec<Change> = match kind {
            ObjectKind::Namespace => (self.namespace_objects.iter())
                .filter(|name| !listed.contains(&(Box::<str>::default(), (*name).clone())))
                .map(|name| Change::NamespaceDelete(name.clone()))
                .collect(),
            ObjectKind::Service => (self.services.keys().filter(|k| gone(k)))
                .map(|(ns, name)| Change::ServiceDelete(ns.clone(), name.clone()))
                .collect(),
            ObjectKind::EndpointSlice => (self.slices.keys().filter(|k| gone(k)))
                .map(|(ns, name)| Change::SliceDelete(ns.clone(), name.clone()))
                .collect(),
            ObjectKind::Pod => (self.pods.keys().filter(|k| gone(k)))
                .map(|(ns, name)| Change::PodDelete(ns.clone(), name.clone()))
                .collect(),
        };
        let count = deletions.len();
        for change in deletions {
            self.apply(change);
        }
        count
    }

    /// Whether anything changed since the last publish.
    pub fn has_changes(&self) -> bool {
        let dirty = &self.dirty;
        !(dirty.services.is_empty()
            && dirty.namespaces.is_empty()
            && dirty.ips.is_empty()
            && dirty.pods.is_empty())
    }

    /// Replaces the whole model with `cluster` (a full list or re-list), as the changes that turn
    /// the current model into it; unchanged objects cost no re-rendering.
    pub fn replace_all(&mut self, cluster: Cluster) {
        for change in self.diff(cluster) {
            self.apply(change);
        }
    }

    /// The changes that turn the current model into `cluster`.
    fn diff(&self, cluster: Cluster) -> Vec<Change> {
        let mut changes = Vec::new();
        let namespaces: HashSet<&str> = cluster.namespaces.iter().map(|n| &**n).collect();
        for name in &self.namespace_objects {
            if !namespaces.contains(&**name) {
                changes.push(Change::NamespaceDelete(name.clone()));
            }
        }
        let services: HashSet<(&str, &str)> = cluster
            .services
            .iter()
            .map(|s| (&*s.namespace, &*s.name))
            .collect();
        for (ns, name) in self.services.keys() {
            if !services.contains(&(&**ns, &**name)) {
                changes.push(Change::ServiceDelete(ns.clone(), name.clone()));
            }
        }
        let slices: HashSet<(&str, &str)> = cluster
            .slices
            .iter()
            .map(|s| (&*s.namespace, &*s.name))
            .collect();
        for (ns, name) in self.slices.keys() {
            if !slices.contains(&(&**ns, &**name)) {
                changes.push(Change::SliceDelete(ns.clone(), name.clone()));
            }
        }
        let pods: HashSet<(&str, &str)> = cluster
            .pods
            .iter()
            .map(|p| (&*p.namespace, &*p.name))
            .collect();
        for (ns, name) in self.pods.keys() {
            if !pods.contains(&(&**ns, &**name)) {
                changes.push(Change::PodDelete(ns.clone(), name.clone()));
            }
        }
        changes.extend(cluster.namespaces.into_iter().map(Change::NamespaceUpsert));
        changes.extend(cluster.services.into_iter().map(Change::ServiceUpsert));
        changes.extend(cluster.slices.into_iter().map(Change::SliceUpsert));
        changes.extend(cluster.pods.into_iter().map(Change::PodUpsert));
        changes
    }

    fn upsert_service(&mut self, service: Service) {
        let key: Key = (service.namespace.clone(), service.name.clone());
        if self.services.get(&key) == Some(&service) {
            return;
        }
        let alias_in_zone = match &service.kind {
            ServiceKind::ExternalName(target) => self.target_in_zone(target),
            _ => false,
        };
        if alias_in_zone {
            self.in_zone_aliases.insert(key.clone());
        } else {
            self.in_zone_aliases.remove(&key);
        }
        if self.services.insert(key.clone(), service).is_none() {
            self.count_service(&key.0, true);
        }
        self.dirty.services.insert(key);
    }

    fn count_service(&mut self, namespace: &str, added: bool) {
        let count = self
            .services_per_namespace
            .entry(namespace.into())
            .or_insert(0);
        let before = *count;
        if added {
            *count += 1;
        } else {
            *count = count.saturating_sub(1);
        }
        if (before == 0) != (*count == 0) {
            self.dirty.namespaces.insert(namespace.into());
        }
        if *count == 0 {
            self.services_per_namespace.remove(namespace);
        }
    }

    fn upsert_slice(&mut self, slice: EndpointSlice) {
        let key: Key = (slice.namespace.clone(), slice.name.clone());
        if self.slices.get(&key) == Some(&slice) {
            return;
        }
        let owner: Key = (slice.namespace.clone(), slice.service.clone());
        self.slices_of
            .entry(owner.clone())
            .or_default()
            .insert(slice.name.clone());
        self.dirty.services.insert(owner);
        let service = slice.service.clone();
        self.endpoint_count += slice.endpoints.len();
        if let Some(old) = self.slices.insert(key, slice) {
            self.endpoint_count -= old.endpoints.len();
            if old.service != service {
                self.unlink_slice(&old);
            }
        }
    }

    /// Forgets that `slice` belongs to its Service and marks the Service for re-rendering.
    fn unlink_slice(&mut self, slice: &EndpointSlice) {
        let owner: Key = (slice.namespace.clone(), slice.service.clone());
        if let Some(names) = self.slices_of.get_mut(&owner) {
            names.remove(&slice.name);
            if names.is_empty() {
                self.slices_of.remove(&owner);
            }
        }
        self.dirty.services.insert(owner);
    }

    fn upsert_pod(&mut self, pod: Pod) {
        if self.config.pods != PodsMode::Verified {
            return;
        }
        let key: Key = (pod.namespace.clone(), pod.name.clone());
        if self.pods.get(&key) == Some(&pod) {
            return;
        }
        self.count_pod(&pod, true);
        if let Some(old) = self.pods.insert(key, pod) {
            self.count_pod(&old, false);
        }
    }

    fn count_pod(&mut self, pod: &Pod, added: bool) {
        for ip in &pod.ips {
            let key = (pod.namespace.clone(), *ip);
            let count = self.pod_addresses.entry(key.clone()).or_insert(0);
            if added {
                *count += 1;
            } else {
                *count = count.saturating_sub(1);
            }
            if *count == 0 {
                self.pod_addresses.remove(&key);
            }
            self.dirty.pods.insert(key);
        }
    }

    fn target_in_zone(&self, target: &str) -> bool {
        WireName::from_dotted(target).is_some_and(|name| self.name_in_zone(name.as_bytes()))
    }

    fn name_in_zone(&self, name: &[u8]) -> bool {
        crate::name::is_subdomain(name, self.zone())
    }

    /// Publishes everything applied since the last publish as a new snapshot.
    pub fn publish(&mut self) -> Snapshot {
        let dirty = std::mem::take(&mut self.dirty);
        for namespace in &dirty.namespaces {
            self.render_namespace(namespace);
        }
        let mut services: BTreeSet<Key> = dirty.services.into_iter().collect();
        services.extend(self.in_zone_aliases.iter().cloned());
        let mut ips = dirty.ips;
        for key in &services {
            self.render_service(key, &mut ips);
        }
        for ip in ips {
            self.render_reverse(ip);
        }
        for (namespace, ip) in dirty.pods {
            self.render_pod(&namespace, ip);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0);
        self.serial = now.max(self.serial.wrapping_add(1));
        self.render_apex();
        Snapshot {
            config: self.config.clone(),
            soa: self.soa_template().into(),
            serial: self.serial,
            synced: self.synced,
            tables: self.tables.clone(),
            stats: self.stats(),
        }
    }

    /// Counts describing the current model.
    pub fn stats(&self) -> ZoneStats {
        ZoneStats {
            namespaces: self.existing_namespaces.len(),
            services: self.services.len(),
            endpoints: self.endpoint_count,
            names: self.tables.len(),
        }
    }

    fn zone(&self) -> &[u8] {
        self.config.domain.as_bytes()
    }

    /// `<label>.<zone>`.
    fn zone_child(&self, label: &str) -> WireName {
        self.config
            .domain
            .child(label)
            .unwrap_or_else(|| self.config.domain.clone())
    }

    /// `<namespace>.svc.<zone>`.
    fn namespace_name(&self, kind: &str, namespace: &str) -> Option<WireName> {
        self.zone_child(kind).child(namespace)
    }

    /// `<name>.<namespace>.svc.<zone>`.
    fn service_name(&self, namespace: &str, name: &str) -> Option<WireName> {
        self.namespace_name("svc", namespace)?.child(name)
    }

    fn render_namespace(&mut self, namespace: &str) {
        let exists = self.namespace_objects.contains(namespace)
            || self.services_per_namespace.contains_key(namespace);
        if exists {
            self.existing_namespaces.insert(namespace.into());
        } else {
            self.existing_namespaces.remove(namespace);
        }
        let mut kinds = vec!["svc"];
        if self.config.pods != PodsMode::Disabled {
            kinds.push("pod");
        }
        for kind in kinds {
            let Some(name) = self.namespace_name(kind, namespace) else {
                continue;
            };
            if exists {
                self.tables
                    .insert(NodeBuilder::new(name.as_bytes(), 0).finish());
            } else {
                self.tables.remove(name.as_bytes());
            }
        }
    }

    /// The ready endpoint addresses of a Service over all its slices, in slice-name order.
    fn ready_addresses(&self, key: &Key) -> Vec<ReadyAddress<'_>> {
        let mut out = Vec::new();
        let Some(names) = self.slices_of.get(key) else {
            return out;
        };
        for slice_name in names {
            let Some(slice) = self.slices.get(&(key.0.clone(), slice_name.clone())) else {
                continue;
            };
            for endpoint in slice.endpoints.iter().filter(|e| e.ready) {
                for &ip in &endpoint.addresses {
                    let label = match &endpoint.hostname {
                        Some(hostname) => hostname.to_string(),
                        None => dashed(ip),
                    };
                    out.push(ReadyAddress {
                        ip,
                        label,
                        ports: &slice.ports,
                    });
                }
            }
        }
        out
    }

    /// Re-renders one Service's names and reverse claims; changed addresses go into `ips`.
    fn render_service(&mut self, key: &Key, ips: &mut HashSet<IpAddr>) {
        let (blobs, claims) = match self.services.get(key) {
            Some(service) => self.service_nodes(service, key),
            None => (Vec::new(), Vec::new()),
        };
        let new_keys: HashSet<&[u8]> = blobs.iter().map(|b| crate::node::key_of(b)).collect();
        for old in self.rendered.remove(key).unwrap_or_default() {
            if !new_keys.contains(crate::node::key_of(&old)) {
                self.tables.remove(crate::node::key_of(&old));
            }
        }
        for blob in &blobs {
            self.tables.insert(blob.clone());
        }
        if !blobs.is_empty() {
            self.rendered.insert(key.clone(), blobs);
        }
        let (shared_key, old_claims) = match self.claims.remove(key) {
            Some(held) => held,
            None => (Arc::new(key.clone()), Vec::new()),
        };
        if old_claims != claims {
            for (ip, claim) in &old_claims {
                if let Some(owners) = self.reverse_owners.get_mut(ip) {
                    owners.retain(|(k, c)| !(**k == *key && c == claim));
                    if owners.is_empty() {
                        self.reverse_owners.remove(ip);
                    }
                }
                ips.insert(*ip);
            }
            for (ip, claim) in &claims {
                self.reverse_owners
                    .entry(*ip)
                    .or_default()
                    .push((shared_key.clone(), claim.clone()));
                ips.insert(*ip);
            }
        }
        if !claims.is_empty() {
            self.claims.insert(key.clone(), (shared_key, claims));
        }
    }

    /// The nodes and reverse claims of one Service.
    fn service_nodes(&self, service: &Service, key: &Key) -> (Vec<NodeBlob>, Vec<(IpAddr, Claim)>) {
        let mut blobs = Vec::new();
        let mut claims = Vec::new();
        let Some(base) = self.service_name(&service.namespace, &service.name) else {
            return (blobs, claims);
        };
        let ttl = self.config.ttl;
        let ready = self.ready_addresses(key);
        match &service.kind {
            ServiceKind::ExternalName(target) => {
                if let Some(blob) = self.alias_node(&base, target) {
                    blobs.push(blob);
                }
                return (blobs, claims);
            }
            ServiceKind::ClusterIp(ips) => {
                let mut node = NodeBuilder::new(base.as_bytes(), 0);
                address_entries(&mut node, self.zone(), ips.iter().copied(), ttl);
                // SRV at the bare name: one entry per (port, cluster IP), as CoreDNS counts them.
                let targets: Vec<SrvTarget> = service
                    .ports
                    .iter()
                    .flat_map(|p| {
                        ips.iter().map(|&ip| SrvTarget {
                            name: base.clone(),
                            port: Some(p.port),
                            ip,
                        })
                    })
                    .collect();
                srv_entry(&mut node, self.zone(), &targets, ttl);
                blobs.push(node.finish());
                let named: Vec<&Port> = service
                    .ports
                    .iter()
                    .filter(|p| !p.name.is_empty())
                    .collect();
                for port in &named {
                    let targets: Vec<SrvTarget> = ips
                        .iter()
                        .map(|&ip| SrvTarget {
                            name: base.clone(),
                            port: Some(port.port),
                            ip,
                        })
                        .collect();
                    self.port_node(&mut blobs, &base, port, &targets);
                }
                self.protocol_nodes(&mut blobs, &base, &named);
                claims.extend(ips.iter().map(|&ip| (ip, Claim::ClusterIp)));
            }
            ServiceKind::Headless => {
                if ready.is_empty() {
                    return (blobs, claims);
                }
                let mut node = NodeBuilder::new(base.as_bytes(), 0);
                address_entries(
                    &mut node,
                    self.config.domain.as_bytes(),
                    ready.iter().map(|r| r.ip),
                    ttl,
                );
                let mut targets = Vec::new();
                for address in &ready {
                    let Some(name) = base.child(&address.label) else {
                        continue;
                    };
                    if address.ports.is_empty() {
                        // CoreDNS counts a port-less endpoint in the weights but gives it no SRV.
                        targets.push(SrvTarget {
                            name,
                            port: None,
                            ip: address.ip,
                        });
                        continue;
                    }
                    for port in address.ports {
                        targets.push(SrvTarget {
                            name: name.clone(),
                            port: Some(port.port),
                            ip: address.ip,
                        });
                    }
                }
                srv_entry(&mut node, self.zone(), &targets, ttl);
                blobs.push(node.finish());
                let mut named: Vec<&Port> = Vec::new();
                for address in &ready {
                    for port in address.ports.iter().filter(|p| !p.name.is_empty()) {
                        if !named
                            .iter()
                            .any(|p| p.name == port.name && p.protocol == port.protocol)
                        {
                            named.push(port);
                        }
                    }
                }
                for port in &named {
                    let targets: Vec<SrvTarget> = ready
                        .iter()
                        .filter_map(|address| {
                            let matching = address
                                .ports
                                .iter()
                                .find(|p| p.name == port.name && p.protocol == port.protocol)?;
                            Some(SrvTarget {
                                name: base.child(&address.label)?,
                                port: Some(matching.port),
                                ip: address.ip,
                            })
                        })
                        .collect();
                    self.port_node(&mut blobs, &base, port, &targets);
                }
                self.protocol_nodes(&mut blobs, &base, &named);
            }
        }
        // Endpoint names, for every Service with ready endpoints (as CoreDNS answers them).
        let mut by_label: Vec<(&str, Vec<IpAddr>)> = Vec::new();
        let mut label_index: HashMap<&str, usize> = HashMap::new();
        for address in &ready {
            match label_index.get(address.label.as_str()) {
                Some(&i) => by_label[i].1.push(address.ip),
                None => {
                    label_index.insert(&address.label, by_label.len());
                    by_label.push((&address.label, vec![address.ip]));
                }
            }
            let host = (address.label != dashed(address.ip)).then(|| address.label.as_str().into());
            claims.push((address.ip, Claim::Endpoint(host)));
        }
        for (label, ips) in by_label {
            let Some(name) = base.child(label) else {
                continue;
            };
            let mut node = NodeBuilder::new(name.as_bytes(), 0);
            address_entries(&mut node, self.zone(), ips.into_iter(), ttl);
            blobs.push(node.finish());
        }
        (blobs, claims)
    }

    /// The `_<port>._<proto>.<service>` node.
    fn port_node(
        &self,
        blobs: &mut Vec<NodeBlob>,
        base: &WireName,
        port: &Port,
        targets: &[SrvTarget],
    ) {
        let name = base
            .child(&format!("_{}", port.protocol.label()))
            .and_then(|n| n.child(&format!("_{}", port.name.to_ascii_lowercase())));
        let Some(name) = name else {
            return;
        };
        let mut node = NodeBuilder::new(name.as_bytes(), 0);
        srv_entry(&mut node, self.zone(), targets, self.config.ttl);
        blobs.push(node.finish());
    }

    /// The empty non-terminals `_<proto>.<service>` above the port names.
    fn protocol_nodes(&self, blobs: &mut Vec<NodeBlob>, base: &WireName, named: &[&Port]) {
        let mut protocols: Vec<_> = named.iter().map(|p| p.protocol).collect();
        protocols.sort();
        protocols.dedup();
        for protocol in protocols {
            if let Some(name) = base.child(&format!("_{}", protocol.label())) {
                blobs.push(NodeBuilder::new(name.as_bytes(), 0).finish());
            }
        }
    }

    /// The node of an ExternalName Service: its CNAME for every type, followed by the target's
    /// addresses for A and AAAA when the target is in the zone.
    fn alias_node(&self, base: &WireName, target: &str) -> Option<NodeBlob> {
        let target = WireName::from_dotted(target)?;
        let ttl = self.config.ttl;
        let mut node = NodeBuilder::new(base.as_bytes(), 0);
        let mut alone = EntryWriter::lowercase(base.as_bytes());
        alone.record(
            Section::Answer,
            Owner::Question,
            ttl,
            RData::Cname(target.as_bytes()),
        );
        if self.name_in_zone(target.as_bytes()) {
            let (chain, addresses) = self.follow(&target);
            for family in [TYPE_A, TYPE_AAAA] {
                let mut entry = EntryWriter::lowercase(base.as_bytes());
                entry.record(
                    Section::Answer,
                    Owner::Question,
                    ttl,
                    RData::Cname(target.as_bytes()),
                );
                let mut owner = target.clone();
                for next in &chain {
                    entry.record(
                        Section::Answer,
                        Owner::Name(owner.as_bytes()),
                        ttl,
                        RData::Cname(next.as_bytes()),
                    );
                    owner = next.clone();
                }
                for ip in &addresses {
                    if let Some(rdata) = address_rdata(*ip, family) {
                        entry.record(Section::Answer, Owner::Name(owner.as_bytes()), ttl, rdata);
                    }
                }
                node.entry(family, entry.finish());
            }
        }
        node.entry(ANY_TYPE_ENTRY, alone.finish());
        Some(node.finish())
    }

    /// Follows an in-zone name through ExternalName Services: the further CNAME targets and the
    /// addresses at the end of the chain.
    fn follow(&self, target: &WireName) -> (Vec<WireName>, Vec<IpAddr>) {
        let mut chain = Vec::new();
        let mut current = target.clone();
        for _ in 0..MAX_CNAME_CHAIN {
            match self.resolve(&current) {
                Resolved::Addresses(ips) => return (chain, ips),
                Resolved::Alias(next) => {
                    if chain.contains(&next) || next == *target {
                        break;
                    }
                    chain.push(next.clone());
                    current = next;
                }
                Resolved::Nothing => break,
            }
        }
        (chain, Vec::new())
    }

    /// What an in-zone name is in the model: a Service or endpoint's addresses, or an alias.
    fn resolve(&self, name: &WireName) -> Resolved {
        let labels: Vec<String> = crate::name::labels(name.as_bytes())
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        let zone_labels = crate::name::labels(self.zone()).count();
        if labels.len() < zone_labels + 3 || labels[labels.len() - zone_labels - 1] != "svc" {
            return Resolved::Nothing;
        }
        let rest = &labels[..labels.len() - zone_labels - 1];
        let (endpoint, service, namespace) = match rest {
            [service, namespace] => (None, service, namespace),
            [endpoint, service, namespace] => (Some(endpoint), service, namespace),
            _ => return Resolved::Nothing,
        };
        let key: Key = (namespace.as_str().into(), service.as_str().into());
        let Some(svc) = self.services.get(&key) else {
            return Resolved::Nothing;
        };
        let ready = self.ready_addresses(&key);
        match (endpoint, &svc.kind) {
            (Some(label), ServiceKind::ClusterIp(_) | ServiceKind::Headless) => {
                Resolved::Addresses(
                    ready
                        .iter()
                        .filter(|r| r.label == *label)
                        .map(|r| r.ip)
                        .collect(),
                )
            }
            (None, ServiceKind::ClusterIp(ips)) => Resolved::Addresses(ips.clone()),
            (None, ServiceKind::Headless) => {
                Resolved::Addresses(ready.iter().map(|r| r.ip).collect())
            }
            (None, ServiceKind::ExternalName(next)) => match WireName::from_dotted(next) {
                Some(next) if self.name_in_zone(next.as_bytes()) => Resolved::Alias(next),
                _ => Resolved::Nothing,
            },
            (Some(_), ServiceKind::ExternalName(_)) => Resolved::Nothing,
        }
    }

    /// Renders the reverse name of one address from its current claims.
    fn render_reverse(&mut self, ip: IpAddr) {
        let name = reverse_name(ip);
        let Some(owners) = self.reverse_owners.get(&ip) else {
            self.tables.remove(name.as_bytes());
            return;
        };
        let mut targets: Vec<WireName> = Vec::new();
        // A cluster IP names its Service alone; otherwise every endpoint using the address.
        let mut cluster: Vec<&Key> = owners
            .iter()
            .filter(|(_, c)| *c == Claim::ClusterIp)
            .map(|(k, _)| &**k)
            .collect();
        cluster.sort();
        if let Some((ns, svc)) = cluster.first() {
            targets.extend(self.service_name(ns, svc));
        } else {
            let mut endpoints: Vec<(&Key, std::borrow::Cow<'_, str>)> = owners
                .iter()
                .filter_map(|(k, claim)| Some((&**k, claim.label(ip)?)))
                .collect();
            endpoints.sort();
            for ((ns, svc), label) in endpoints {
                if let Some(target) = self.service_name(ns, svc).and_then(|b| b.child(&label)) {
                    if !targets.contains(&target) {
                        targets.push(target);
                    }
                }
            }
        }
        let mut entry = EntryWriter::new(name.as_bytes(), self.zone());
        for target in &targets {
            entry.record(
                Section::Answer,
                Owner::Question,
                self.config.ttl,
                RData::Ptr(target.as_bytes()),
            );
        }
        let mut node = NodeBuilder::new(name.as_bytes(), FLAG_REVERSE);
        node.entry(TYPE_PTR, entry.finish());
        self.tables.insert(node.finish());
    }

    /// Renders the verified pod name of one address in one namespace.
    fn render_pod(&mut self, namespace: &str, ip: IpAddr) {
        let Some(name) = self
            .namespace_name("pod", namespace)
            .and_then(|n| n.child(&dashed(ip)))
        else {
            return;
        };
        if self.pod_addresses.contains_key(&(namespace.into(), ip)) {
            let mut node = NodeBuilder::new(name.as_bytes(), 0);
            address_entries(
                &mut node,
                self.config.domain.as_bytes(),
                std::iter::once(ip),
                self.config.ttl,
            );
            self.tables.insert(node.finish());
        } else {
            self.tables.remove(name.as_bytes());
        }
    }

    /// The name-server addresses: the cluster IPs of `kube-system/kube-dns`, when it exists.
    fn name_server_addresses(&self) -> Vec<IpAddr> {
        match self
            .services
            .get(&("kube-system".into(), "kube-dns".into()))
        {
            Some(Service {
                kind: ServiceKind::ClusterIp(ips),
                ..
            }) => ips.clone(),
            _ => Vec::new(),
        }
    }

    fn mname(&self) -> WireName {
        self.zone_child("dns")
            .child("ns")
            .unwrap_or_else(|| self.config.domain.clone())
    }

    fn soa_rdata(&self) -> (WireName, WireName, [u32; 4]) {
        let [refresh, retry, expire] = SOA_TIMERS;
        (
            self.mname(),
            self.zone_child("hostmaster"),
            [refresh, retry, expire, self.config.ttl],
        )
    }

    /// TTL of the SOA record itself: min(TTL, 300), as CoreDNS.
    fn soa_ttl(&self) -> u32 {
        self.config.ttl.min(300)
    }

    /// The SOA record of negative answers without its owner: mname and rname end in pointers to
    /// the zone, which the answer path aims at the zone part of each question (see
    /// [`Snapshot::write_soa`]).
    fn soa_template(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(52);
        out.extend_from_slice(&TYPE_SOA.to_be_bytes());
        out.extend_from_slice(&crate::wire::CLASS_IN.to_be_bytes());
        out.extend_from_slice(&self.soa_ttl().to_be_bytes());
        out.extend_from_slice(&42u16.to_be_bytes());
        out.extend_from_slice(b"\x02ns\x03dns\xC0\x00");
        out.extend_from_slice(b"\x0ahostmaster\xC0\x00");
        out.extend_from_slice(&self.serial.to_be_bytes());
        let [refresh, retry, expire] = SOA_TIMERS;
        for timer in [refresh, retry, expire, self.config.ttl] {
            out.extend_from_slice(&timer.to_be_bytes());
        }
        out
    }

    /// The apex (SOA, NS), `ns.dns`, `dns-version` and the fixed empty non-terminals.
    fn render_apex(&mut self) {
        let ttl = self.config.ttl;
        let zone = self.config.domain.clone();
        let (mname, rname, timers) = self.soa_rdata();
        let ns_addresses = self.name_server_addresses();
        let mut apex = NodeBuilder::new(zone.as_bytes(), 0);
        let mut soa = EntryWriter::new(zone.as_bytes(), zone.as_bytes());
        soa.record(
            Section::Answer,
            Owner::Question,
            self.soa_ttl(),
            RData::Soa {
                mname: mname.as_bytes(),
                rname: rname.as_bytes(),
                serial: self.serial,
                timers,
            },
        );
        apex.entry(TYPE_SOA, soa.finish());
        let mut ns = EntryWriter::new(zone.as_bytes(), zone.as_bytes());
        ns.record(
            Section::Answer,
            Owner::Question,
            ttl,
            RData::Ns(mname.as_bytes()),
        );
        for ip in &ns_addresses {
            let rdata = address_rdata(*ip, TYPE_A).or_else(|| address_rdata(*ip, TYPE_AAAA));
            if let Some(rdata) = rdata {
                ns.record(
                    Section::Additional,
                    Owner::Name(mname.as_bytes()),
                    ttl,
                    rdata,
                );
            }
        }
        apex.entry(TYPE_NS, ns.finish());
        self.tables.insert(apex.finish());

        let mut ns_node = NodeBuilder::new(mname.as_bytes(), 0);
        address_entries(
            &mut ns_node,
            self.config.domain.as_bytes(),
            ns_addresses.into_iter(),
            ttl,
        );
        self.tables.insert(ns_node.finish());

        let version = self.zone_child("dns-version");
        let mut txt = EntryWriter::new(version.as_bytes(), zone.as_bytes());
        txt.record(
            Section::Answer,
            Owner::Question,
            SCHEMA_VERSION_TTL,
            RData::Txt(SCHEMA_VERSION),
        );
        let mut version_node = NodeBuilder::new(version.as_bytes(), 0);
        version_node.entry(TYPE_TXT, txt.finish());
        self.tables.insert(version_node.finish());

        // Empty non-terminals: `pod.<zone>` is NODATA even with pods disabled, as in CoreDNS.
        for label in ["svc", "pod", "dns"] {
            let name = self.zone_child(label);
            self.tables
                .insert(NodeBuilder::new(name.as_bytes(), 0).finish());
        }
    }
}

/// What a name inside the zone resolves to, for following ExternalName targets.
enum Resolved {
    Addresses(Vec<IpAddr>),
    Alias(WireName),
    Nothing,
}

/// One SRV candidate before CoreDNS's weighting and de-duplication; `port: None` is an endpoint
/// without ports (counted in the weights, never answered).
struct SrvTarget {
    name: WireName,
    port: Option<u16>,
    ip: IpAddr,
}

/// The A or AAAA rdata of `ip` when it is of the family `qtype` asks for.
fn address_rdata(ip: IpAddr, qtype: u16) -> Option<RData<'static>> {
    match (ip, qtype) {
        (IpAddr::V4(v4), TYPE_A) => Some(RData::A(v4)),
        (IpAddr::V6(v6), TYPE_AAAA) => Some(RData::Aaaa(v6)),
        _ => None,
    }
}

/// Adds A and AAAA entries (owner = the question) for the distinct addresses given.
fn address_entries(
    node: &mut NodeBuilder<'_>,
    zone: &[u8],
    ips: impl Iterator<Item = IpAddr>,
    ttl: u32,
) {
    let mut seen = HashSet::new();
    let distinct: Vec<IpAddr> = ips.filter(|ip| seen.insert(*ip)).collect();
    for family in [TYPE_A, TYPE_AAAA] {
        let mut entry = EntryWriter::new(node.key(), zone);
        for ip in &distinct {
            if let Some(rdata) = address_rdata(*ip, family) {
                entry.record(Section::Answer, Owner::Question, ttl, rdata);
            }
        }
        if !entry.is_empty() {
            node.entry(family, entry.finish());
        }
    }
}

/// Adds the SRV entry for `targets`: priority 0, weight floor(100/N) over all N candidates
/// (computed in floating point exactly as CoreDNS does), duplicate (target, port) pairs once,
/// and A/AAAA glue for each distinct (target, address) in the additional section.
fn srv_entry(node: &mut NodeBuilder<'_>, zone: &[u8], targets: &[SrvTarget], ttl: u32) {
    if targets.iter().all(|t| t.port.is_none()) {
        return;
    }
    let total = 100.0 * targets.len() as f64;
    let weight = ((100.0 / total) * 100.0).floor() as u16;
    let mut entry = EntryWriter::new(node.key(), zone);
    let mut seen: HashSet<(&WireName, u16)> = HashSet::new();
    for target in targets {
        let Some(port) = target.port else { continue };
        if !seen.insert((&target.name, port)) {
            continue;
        }
        entry.record(
            Section::Answer,
            Owner::Question,
            ttl,
            RData::Srv {
                priority: 0,
                weight,
                port,
                target: target.name.as_bytes(),
            },
        );
    }
    let mut glued: HashSet<(&WireName, IpAddr)> = HashSet::new();
    for target in targets.iter().filter(|t| t.port.is_some()) {
        if !glued.insert((&target.name, target.ip)) {
            continue;
        }
        let rdata =
            address_rdata(target.ip, TYPE_A).or_else(|| address_rdata(target.ip, TYPE_AAAA));
        if let Some(rdata) = rdata {
            entry.record(
                Section::Additional,
                Owner::Name(target.name.as_bytes()),
                ttl,
                rdata,
            );
        }
    }
    node.entry(TYPE_SRV, entry.finish());
}
