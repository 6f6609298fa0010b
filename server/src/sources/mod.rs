//! The one update path from every source to the listeners: changes go into the single-writer
//! [`ZoneBuilder`], and each publish stores the new snapshot in the `ArcSwap` the workers read.
//!
//! What a source reads is chosen at its edge ([`Selection`]): the label selectors of CoreDNS's
//! `labels` and `namespace_labels` go to the API server with each list and watch (or filter
//! manifest objects as they are read), so objects that do not match never reach the
//! [`Publisher`]. An object relabelled out of a selector is a delete, as a watch reports it.
//! `namespace_labels` leaves the zone to hide the Services of namespaces whose Namespace it
//! does not report (`ZoneConfig::namespace_objects_only`; the zone's `builder` module docs say
//! why there rather than in the [`Filter`]).

pub mod kubernetes;
pub mod manifest;
pub mod objects;
pub mod selector;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use clusterdns_zone::{
    Change, Cluster, ObjectKey, ObjectKind, Snapshot, ZoneBuilder, ZoneConfig, ZoneStats,
};

use selector::LabelSelector;

/// The single writer: owns the builder, the published snapshot and the full lists in progress.
pub struct Publisher {
    builder: ZoneBuilder,
    store: Arc<ArcSwap<Snapshot>>,
    filter: Filter,
    /// Kinds being listed in full, with the keys listed so far.
    listing: HashMap<ObjectKind, HashSet<ObjectKey>>,
}

/// What a source makes of Pods; by default nothing, and Pods are not read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PodChanges {
    /// Whole Pods (`PodUpsert`/`PodDelete`), for `pods verified` names.
    pub verified: bool,
    /// Client addresses (`PodAddressUpsert`/`PodAddressDelete`), for the client index
    /// ([`crate::config::plan::KubernetesPlan::pod_addresses`]).
    pub addresses: bool,
}

impl PodChanges {
    /// Whether Pods are read at all.
    pub fn any(self) -> bool {
        self.verified || self.addresses
    }
}

/// Which objects a source reads, and how it names endpoints: the `kubernetes` options about
/// objects rather than the zone. The default reads every object and names endpoints by
/// hostname or address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only Services, EndpointSlices and Pods whose labels match (CoreDNS `labels`, which
    /// lists and watches those three with it).
    pub labels: Option<LabelSelector>,
    /// Only Namespaces whose labels match (CoreDNS `namespace_labels`).
    pub namespace_labels: Option<LabelSelector>,
    /// An endpoint without a hostname is named by its Pod (CoreDNS `endpoint_pod_names`).
    pub endpoint_pod_names: bool,
}

impl Selection {
    /// The selector objects of `kind` must match, if any.
    pub fn selector(&self, kind: ObjectKind) -> Option<&LabelSelector> {
        match kind {
            ObjectKind::Namespace => self.namespace_labels.as_ref(),
            ObjectKind::Service | ObjectKind::EndpointSlice | ObjectKind::Pod => {
                self.labels.as_ref()
            }
        }
    }

    /// Whether an object of `kind` whose `metadata.labels` are `labels` is read.
    pub fn admits(&self, kind: ObjectKind, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.selector(kind)
            .is_none_or(|selector| selector.matches_labels(labels))
    }
}

/// The objects a source's changes are limited to (CoreDNS `kubernetes { namespaces }` and
/// `noendpoints`); the default passes everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only objects of these namespaces; empty: all.
    pub namespaces: HashSet<Box<str>>,
    /// EndpointSlices are dropped: no endpoint records.
    pub no_endpoints: bool,
}

impl Filter {
    /// Whether `change` is let through.
    fn passes(&self, change: &Change) -> bool {
        let namespace = match change {
            Change::NamespaceUpsert(ns) | Change::NamespaceDelete(ns) => ns,
            Change::ServiceUpsert(service) => &service.namespace,
            Change::SliceUpsert(_) | Change::SliceDelete(..) if self.no_endpoints => return false,
            Change::SliceUpsert(slice) => &slice.namespace,
            Change::PodUpsert(pod) => &pod.namespace,
            Change::ServiceDelete(ns, _)
            | Change::SliceDelete(ns, _)
            | Change::PodDelete(ns, _)
            | Change::PodAddressUpsert(ns, _)
            | Change::PodAddressDelete(ns, _) => ns,
        };
        self.namespaces.is_empty() || self.namespaces.contains(namespace)
    }
}

impl Publisher {
    /// A publisher whose store answers SERVFAIL for the zone until the first synced publish.
    pub fn new(zone: ZoneConfig) -> Self {
        let store = Arc::new(ArcSwap::from_pointee(Snapshot::unsynced(zone.clone())));
        Publisher {
            builder: ZoneBuilder::new(zone),
            store,
            filter: Filter::default(),
            listing: HashMap::new(),
        }
    }

    /// This publisher, letting only the changes `filter` passes through.
    pub fn with_filter(self, filter: Filter) -> Self {
        Publisher { filter, ..self }
    }

    /// The store the listeners read.
    pub fn store(&self) -> Arc<ArcSwap<Snapshot>> {
        self.store.clone()
    }

    /// Applies one change (visible at the next publish), unless the filter drops it.
    pub fn apply(&mut self, change: Change) {
        if self.filter.passes(&change) {
            self.builder.apply(change);
        }
    }

    /// Replaces the whole cluster (a full list, as tests build one); only what differs changes.
    pub fn replace_all(&mut self, cluster: Cluster) {
        self.builder.replace_all(cluster);
    }

    /// Starts a full list of `kind` (a re-list after a broken watch, a re-read of the files):
    /// what [`Publisher::end_list`] does not see listed by then is deleted.
    pub fn begin_list(&mut self, kind: ObjectKind) {
        self.listing.insert(kind, HashSet::new());
    }

    /// Applies one change read as part of a list; outside a list of its kind, a plain apply.
    pub fn apply_listed(&mut self, change: Change) {
        let (kind, key) = change.object();
        if let Some(keys) = self.listing.get_mut(&kind) {
            keys.insert(key);
        }
        self.apply(change);
    }

    /// Ends the list of `kind` begun with [`Publisher::begin_list`]: deletes every object of
    /// that kind it did not list, and returns the keys listed and how many were deleted.
    pub fn end_list(&mut self, kind: ObjectKind) -> Option<(HashSet<ObjectKey>, usize)> {
        let listed = self.listing.remove(&kind)?;
        let deleted = self.builder.delete_unlisted(kind, &listed);
        Some((listed, deleted))
    }

    /// Whether anything was applied since the last publish.
    pub fn has_changes(&self) -> bool {
        self.builder.has_changes()
    }

    /// Marks the source as synced.
    pub fn set_synced(&mut self) {
        self.builder.set_synced();
    }

    /// Publishes what was applied; returns the zone's counts, how long the publish took and the
    /// new serial.
    pub fn publish(&mut self) -> (ZoneStats, Duration, u32) {
        let started = Instant::now();
        let snapshot = self.builder.publish();
        let stats = snapshot.stats();
        let serial = snapshot.serial();
        self.store.store(Arc::new(snapshot));
        let took = started.elapsed();
        crate::ops::memory::release_freed();
        (stats, took, serial)
    }
}
