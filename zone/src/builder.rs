//! The single writer: applies [`Change`]s from a source to the tables and publishes
//! [`Snapshot`]s. The tables are the model: a Service's record holds its spec and the ready
//! endpoints of its slices, and the builder keeps beside them only what a change needs to find
//! its record (which Service a slice belongs to) and the counts that decide whether a namespace
//! exists.
//!
//! Changes to a Service and its slices wait in `pending` until the next publish (or until enough
//! endpoints wait), so a burst of slice events rebuilds each record once. Folding a Service's
//! changes copies its record and the table shards its names and addresses live in, so the cost
//! of one EndpointSlice event follows the size of its Service, not of the cluster.
//!
//! Client addresses ([`Change::PodAddressUpsert`]) go straight into the client index's tables
//! (`clients`), with the builder keeping only the interning of their namespace ids.
//!
//! With [`ZoneConfig::namespace_objects_only`] (CoreDNS `namespace_labels`), a namespace is
//! served only while its Namespace object is in the model; the source reports only the
//! Namespaces the selector matches, so a relabelled namespace comes and goes as a Namespace
//! upsert or delete. The Services of a namespace that is not served stay in the tables as
//! hidden records (`record::Shape::Hidden`: no name, no reverse name, no ExternalName node),
//! so that showing them again needs nothing from the source. Why here and not in the
//! server's publisher filter: a filter that dropped a namespace's objects would have to keep
//! them aside (a second copy of those Services) or re-list them from the API to bring them
//! back; a hidden record costs nothing more than a shown one (the mark is a variant of the
//! shape every lookup already reads), and the answer path does not change. A namespace whose
//! Namespace object comes or goes is re-folded at the next publish: one pass over the
//! Services table, then only that namespace's records are rebuilt. Namespace label changes
//! are rare; Service and EndpointSlice events cost what they always did.

use std::collections::BTreeMap;
// The builder's own maps use foldhash: SipHash was a tenth of a large load's CPU.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::clients::NamespaceIds;
use crate::model::{key_address, Change, Cluster, ObjectKey, ObjectKind, Pod, Service};
use crate::record::{record_key, ServiceRecord, Slice};
use crate::snapshot::{PodsMode, Snapshot, Tables, ZoneConfig, ZoneStats};

/// `(namespace, name)` of an object.
type Key = (Box<str>, Box<str>);

/// Endpoints that may wait in `pending` before they are folded into records, which bounds what
/// a large list holds beside the tables.
const FLUSH_AT: usize = 20_000;

/// A copy of `text` allocated by the builder's thread (see `Change::ServiceUpsert` in `apply`).
fn kept(text: &str) -> Box<str> {
    text.into()
}

/// Changes to one Service not yet folded into its record.
#[derive(Default)]
struct Pending {
    /// The new spec (`Some(None)`: deleted), when it changed.
    spec: Option<Option<Service>>,
    /// Slices upserted (`Some`) or deleted (`None`), by name.
    slices: BTreeMap<Box<str>, Option<Slice>>,
}

/// Builds and incrementally updates the zone (see the module docs).
pub struct ZoneBuilder {
    pub(crate) config: Arc<ZoneConfig>,
    pub(crate) tables: Tables,
    /// Slice `(namespace, name)` → the name of its Service.
    slice_owners: HashMap<Key, Box<str>>,
    pending: HashMap<Key, Pending>,
    pending_endpoints: usize,
    namespace_objects: HashSet<Box<str>>,
    services_per_namespace: HashMap<Box<str>, usize>,
    /// Namespaces that exist (have a Namespace object or a Service) as of the last publish.
    pub(crate) existing_namespaces: HashSet<Box<str>>,
    dirty_namespaces: HashSet<Box<str>>,
    /// Namespaces whose Namespace object came or went since the last publish, when that
    /// decides whether they are served (`namespace_objects_only`): their records are rebuilt.
    regated: HashSet<Box<str>>,
    pods: HashMap<Key, Pod>,
    pub(crate) pod_addresses: HashMap<(Box<str>, IpAddr), usize>,
    dirty_pods: HashSet<(Box<str>, IpAddr)>,
    /// The namespace ids of the client index.
    client_namespaces: NamespaceIds,
    /// Whether the client index changed since the last publish.
    clients_changed: bool,
    /// ExternalName Services: re-rendered on every publish when their target is in the zone.
    aliases: BTreeMap<Key, bool>,
    /// Whether a record changed since the last publish.
    changed: bool,
    services: usize,
    endpoints: usize,
    /// Names the Service records answer for, and distinct addresses with a reverse name.
    record_names: usize,
    reverse_names: usize,
    pub(crate) serial: u32,
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
            tables: Tables::new(seed),
            slice_owners: HashMap::new(),
            pending: HashMap::new(),
            pending_endpoints: 0,
            namespace_objects: HashSet::new(),
            services_per_namespace: HashMap::new(),
            existing_namespaces: HashSet::new(),
            dirty_namespaces: HashSet::new(),
            regated: HashSet::new(),
            pods: HashMap::new(),
            pod_addresses: HashMap::new(),
            dirty_pods: HashSet::new(),
            client_namespaces: NamespaceIds::default(),
            clients_changed: false,
            aliases: BTreeMap::new(),
            changed: false,
            services: 0,
            endpoints: 0,
            record_names: 0,
            reverse_names: 0,
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

    /// Applies one change; nothing is visible until [`ZoneBuilder::publish`].
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::NamespaceUpsert(name) => {
                if !self.namespace_objects.contains(&name) {
                    self.namespace_objects.insert(kept(&name));
                    self.namespace_changed(name);
                }
            }
            Change::NamespaceDelete(name) => {
                if self.namespace_objects.remove(&name) {
                    self.namespace_changed(name);
                }
            }
            Change::ServiceUpsert(service) => {
                let key = (service.namespace.clone(), service.name.clone());
                // A copy made here: the source's object came from a thread whose memory is
                // mostly transient (list pages), and a long-lived string left among it would
                // keep whole allocator pages of that thread from going back to the OS.
                self.pending.entry(key).or_default().spec = Some(Some(service.clone()));
            }
            Change::ServiceDelete(namespace, name) => {
                self.pending.entry((namespace, name)).or_default().spec = Some(None);
            }
            Change::SliceUpsert(slice) => {
                let namespace = slice.namespace.clone();
                let owner = slice.service.clone();
                let slice_key = (namespace.clone(), slice.name.clone());
                if let Some(before) = self.slice_owners.insert(slice_key, owner.clone()) {
                    if before != owner {
                        self.pend_slice((namespace.clone(), before), slice.name.clone(), None);
                    }
                }
                let compact = Slice::from_model(slice);
                self.pending_endpoints += compact.endpoints.len();
                self.pend_slice((namespace, owner), compact.name.clone(), Some(compact));
                if self.pending_endpoints >= FLUSH_AT {
                    self.flush();
                }
            }
            Change::SliceDelete(namespace, name) => {
                let slice_key = (namespace, name);
                if let Some(owner) = self.slice_owners.remove(&slice_key) {
                    let (namespace, name) = slice_key;
                    self.pend_slice((namespace, owner), name, None);
                }
            }
            Change::PodUpsert(pod) => self.upsert_pod(pod),
            Change::PodDelete(namespace, name) => {
                if let Some(old) = self.pods.remove(&(namespace, name)) {
                    self.count_pod(&old, false);
                }
            }
            Change::PodAddressUpsert(namespace, ip) => {
                let clients = &mut self.tables.clients;
                self.clients_changed |= clients.upsert(&mut self.client_namespaces, &namespace, ip);
            }
            Change::PodAddressDelete(namespace, ip) => {
                let clients = &mut self.tables.clients;
                self.clients_changed |= clients.delete(&mut self.client_namespaces, &namespace, ip);
            }
        }
    }

    /// A Namespace object came or went: its fixed names change, and with
    /// `namespace_objects_only` whether its Services are served.
    fn namespace_changed(&mut self, name: Box<str>) {
        if self.config.namespace_objects_only {
            self.regated.insert(name.clone());
        }
        self.dirty_namespaces.insert(name);
    }

    /// Whether the Services of `namespace` are hidden (see the module docs).
    pub(crate) fn namespace_hidden(&self, namespace: &str) -> bool {
        self.config.namespace_objects_only && !self.namespace_objects.contains(namespace)
    }

    /// Rebuilds the records (and verified pod names) of the namespaces whose Namespace object
    /// came or went, so they are hidden or shown as it now says.
    fn regate(&mut self) {
        if self.regated.is_empty() {
            return;
        }
        let regated = std::mem::take(&mut self.regated);
        let keys: Vec<Key> = (self.tables.services.iter())
            .filter_map(|record| record.spec.as_ref())
            .filter(|spec| regated.contains(&spec.namespace))
            .map(|spec| (spec.namespace.clone(), spec.name.clone()))
            .collect();
        for key in keys {
            self.fold(key, Pending::default());
        }
        let pods: Vec<(Box<str>, IpAddr)> = (self.pod_addresses.keys())
            .filter(|(namespace, _)| regated.contains(namespace))
            .cloned()
            .collect();
        self.dirty_pods.extend(pods);
    }

    fn pend_slice(&mut self, service: Key, name: Box<str>, slice: Option<Slice>) {
        self.pending
            .entry(service)
            .or_default()
            .slices
            .insert(name, slice);
    }

    /// Deletes every object of `kind` whose key is not in `listed`: the end of a re-list, which
    /// reported the objects that still exist. Returns how many were deleted.
    pub fn delete_unlisted(
        &mut self,
        kind: ObjectKind,
        listed: &std::collections::HashSet<ObjectKey>,
    ) -> usize {
        let deletions: Vec<Change> = self
            .keys(kind)
            .into_iter()
            .filter(|key| !listed.contains(key))
            .map(|(namespace, name)| match kind {
                ObjectKind::Namespace => Change::NamespaceDelete(name),
                ObjectKind::Service => Change::ServiceDelete(namespace, name),
                ObjectKind::EndpointSlice => Change::SliceDelete(namespace, name),
                ObjectKind::Pod => match key_address(&name) {
                    Some(ip) => Change::PodAddressDelete(namespace, ip),
                    None => Change::PodDelete(namespace, name),
                },
            })
            .collect();
        let count = deletions.len();
        for change in deletions {
            self.apply(change);
        }
        count
    }

    /// The keys of every object of `kind` the builder holds (after pending changes).
    fn keys(&mut self, kind: ObjectKind) -> Vec<ObjectKey> {
        match kind {
            ObjectKind::Namespace => (self.namespace_objects.iter())
                .map(|name| (Box::default(), name.clone()))
                .collect(),
            ObjectKind::Service => {
                self.flush();
                (self.tables.services.iter())
                    .filter_map(|r| r.spec.as_ref())
                    .map(|s| (s.namespace.clone(), s.name.clone()))
                    .collect()
            }
            ObjectKind::EndpointSlice => self.slice_owners.keys().cloned().collect(),
            ObjectKind::Pod => {
                let addresses = (self.tables.clients.iter())
                    .map(|(ip, namespace)| (namespace.into(), crate::model::address_key(ip)));
                self.pods.keys().cloned().chain(addresses).collect()
            }
        }
    }

    /// Whether anything changed since the last publish.
    pub fn has_changes(&self) -> bool {
        self.changed
            || !self.pending.is_empty()
            || !self.dirty_namespaces.is_empty()
            || !self.dirty_pods.is_empty()
            || self.clients_changed
    }

    /// Replaces the whole model with `cluster` (a full list or re-list), as the changes that turn
    /// the current model into it; unchanged objects cost no re-rendering. A `Cluster` holds no
    /// client addresses, so this empties the client index.
    pub fn replace_all(&mut self, cluster: Cluster) {
        let listed =
            |keys: Vec<ObjectKey>| keys.into_iter().collect::<std::collections::HashSet<_>>();
        let namespaces = listed(
            (cluster.namespaces.iter())
                .map(|n| (Box::default(), n.clone()))
                .collect(),
        );
        let services = listed(
            (cluster.services.iter())
                .map(|s| (s.namespace.clone(), s.name.clone()))
                .collect(),
        );
        let slices = listed(
            (cluster.slices.iter())
                .map(|s| (s.namespace.clone(), s.name.clone()))
                .collect(),
        );
        let pods = listed(
            (cluster.pods.iter())
                .map(|p| (p.namespace.clone(), p.name.clone()))
                .collect(),
        );
        self.delete_unlisted(ObjectKind::Namespace, &namespaces);
        self.delete_unlisted(ObjectKind::Service, &services);
        self.delete_unlisted(ObjectKind::EndpointSlice, &slices);
        self.delete_unlisted(ObjectKind::Pod, &pods);
        let changes = (cluster.namespaces.into_iter().map(Change::NamespaceUpsert))
            .chain(cluster.services.into_iter().map(Change::ServiceUpsert))
            .chain(cluster.slices.into_iter().map(Change::SliceUpsert))
            .chain(cluster.pods.into_iter().map(Change::PodUpsert));
        for change in changes {
            self.apply(change);
        }
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
            self.dirty_pods.insert(key);
        }
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
            self.dirty_namespaces.insert(namespace.into());
        }
        if *count == 0 {
            self.services_per_namespace.remove(namespace);
        }
    }

    /// Folds every pending change into the records.
    fn flush(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.pending_endpoints = 0;
        for (key, changes) in pending {
            self.fold(key, changes);
        }
    }

    /// Rebuilds one Service's record from its current record and its pending changes, and
    /// updates the reverse index and the counts by the difference.
    fn fold(&mut self, key: Key, changes: Pending) {
        let Some(record_key) = record_key(&key.0, &key.1) else {
            return;
        };
        let old = self.tables.services.get(&record_key[..]).cloned();
        let spec = match changes.spec {
            Some(spec) => spec,
            None => old.as_ref().and_then(|r| r.spec.clone()),
        };
        let mut slices: BTreeMap<Box<str>, Slice> = old
            .as_ref()
            .map(|r| {
                r.slices
                    .iter()
                    .map(|s| (s.name.clone(), s.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (name, slice) in changes.slices {
            match slice {
                Some(slice) => slices.insert(name, slice),
                None => slices.remove(&name),
            };
        }
        let owner = self.tables.services.hash(&record_key[..]);
        let hidden = self.namespace_hidden(&key.0);
        let new = (spec.is_some() || !slices.is_empty()).then(|| {
            ServiceRecord::new(
                record_key.clone(),
                owner,
                spec,
                slices.into_values().collect(),
                hidden,
            )
        });
        if let (Some(old), Some(new)) = (&old, &new) {
            if old.spec == new.spec && old.slices == new.slices && old.is_hidden() == hidden {
                return;
            }
        }
        self.changed = true;
        // A hidden Service counts nowhere: it makes no namespace exist and is not served.
        let (old_exists, new_exists) = (
            old.as_ref().is_some_and(|r| r.is_served()),
            new.as_ref().is_some_and(|r| r.is_served()),
        );
        if old_exists != new_exists {
            self.count_service(&key.0, new_exists);
            if new_exists {
                self.services += 1;
            } else {
                self.services -= 1;
            }
        }
        let totals = |r: &Option<Arc<ServiceRecord>>| {
            r.as_ref()
                .map_or((0, 0), |r| (r.total_endpoints(), r.names as usize))
        };
        let new = new.map(Arc::new);
        let (old_endpoints, old_names) = totals(&old);
        let (new_endpoints, new_names) = totals(&new);
        self.endpoints = self.endpoints + new_endpoints - old_endpoints;
        self.record_names = self.record_names + new_names - old_names;
        let old_claims = old
            .as_ref()
            .map(|r| r.claimed_addresses())
            .unwrap_or_default();
        let new_claims = new
            .as_ref()
            .map(|r| r.claimed_addresses())
            .unwrap_or_default();
        for &ip in old_claims
            .iter()
            .filter(|ip| new_claims.binary_search(ip).is_err())
        {
            self.unclaim(ip, owner);
        }
        for &ip in new_claims
            .iter()
            .filter(|ip| old_claims.binary_search(ip).is_err())
        {
            self.claim(ip, owner);
        }
        let external = |r: &Option<Arc<ServiceRecord>>| {
            r.as_ref().map(|r| r.external_ips()).unwrap_or_default()
        };
        let (old_external, new_external) = (external(&old), external(&new));
        if old_external != new_external {
            for &ip in &old_external {
                self.tables.external.remove(ip, owner);
            }
            for &ip in &new_external {
                self.tables.external.add(ip, owner);
            }
        }
        let alias = |r: &Option<Arc<ServiceRecord>>| r.as_ref().is_some_and(|r| r.is_alias());
        let (was_alias, is_alias) = (alias(&old), alias(&new));
        match new {
            Some(record) => self.tables.services.insert(record),
            None => {
                self.tables.services.remove(&record_key[..]);
            }
        }
        if is_alias {
            let in_zone = self.render_alias(&key);
            self.aliases.insert(key, in_zone);
        } else if was_alias {
            self.aliases.remove(&key);
            self.remove_service_node(&key);
        }
    }

    /// Records that the Service hashing to `owner` gives `ip` a reverse name.
    fn claim(&mut self, ip: IpAddr, owner: u64) {
        if self.tables.reverse.add(ip, owner) {
            self.reverse_names += 1;
        }
    }

    /// Records that the Service hashing to `owner` no longer names `ip`.
    fn unclaim(&mut self, ip: IpAddr, owner: u64) {
        if self.tables.reverse.remove(ip, owner) {
            self.reverse_names -= 1;
        }
    }

    /// Publishes everything applied since the last publish as a new snapshot.
    pub fn publish(&mut self) -> Snapshot {
        self.flush();
        self.regate();
        for namespace in std::mem::take(&mut self.dirty_namespaces) {
            self.render_namespace(&namespace);
        }
        let in_zone: Vec<Key> = (self.aliases.iter())
            .filter(|(_, &in_zone)| in_zone)
            .map(|(key, _)| key.clone())
            .collect();
        for key in in_zone {
            self.render_alias(&key);
        }
        for (namespace, ip) in std::mem::take(&mut self.dirty_pods) {
            self.render_pod(&namespace, ip);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0);
        self.serial = now.max(self.serial.wrapping_add(1));
        self.render_apex();
        self.changed = false;
        self.clients_changed = false;
        Snapshot {
            config: self.config.clone(),
            soa: self.soa_template().into(),
            serial: self.serial,
            synced: self.synced,
            tables: self.tables.clone(),
            stats: self.stats(),
        }
    }

    /// Counts describing the model as of the last fold.
    pub fn stats(&self) -> ZoneStats {
        ZoneStats {
            namespaces: self.existing_namespaces.len(),
            services: self.services,
            endpoints: self.endpoints,
            names: self.tables.nodes.len() + self.record_names + self.reverse_names,
        }
    }

    /// The record of a Service, for rendering what depends on it.
    pub(crate) fn record(&self, namespace: &str, name: &str) -> Option<&ServiceRecord> {
        let key = record_key(namespace, name)?;
        self.tables.services.get(&key[..]).map(|r| &**r)
    }

    /// Namespaces with a Namespace object or a Service; with `namespace_objects_only`, only
    /// those with a Namespace object.
    pub(crate) fn namespace_exists(&self, namespace: &str) -> bool {
        self.namespace_objects.contains(namespace)
            || (!self.config.namespace_objects_only
                && self.services_per_namespace.contains_key(namespace))
    }
}
