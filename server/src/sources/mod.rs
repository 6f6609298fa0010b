//! The one update path from every source to the listeners: changes go into the single-writer
//! [`ZoneBuilder`], and each publish stores the new snapshot in the `ArcSwap` the workers read.

pub mod kubernetes;
pub mod manifest;
pub mod objects;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use clusterdns_zone::{
    Change, Cluster, ObjectKey, ObjectKind, Snapshot, ZoneBuilder, ZoneConfig, ZoneStats,
};

/// Owns the builder and the published snapshot.
pub struct Publisher {
    builder: ZoneBuilder,
    store: Arc<ArcSwap<Snapshot>>,
    filter: Filter,
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
            | Change::PodDelete(ns, _) => ns,
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

    /// Deletes every object of `kind` not in `listed` (the end of a re-list); returns how many.
    pub fn delete_unlisted(&mut self, kind: ObjectKind, listed: &HashSet<ObjectKey>) -> usize {
        self.builder.delete_unlisted(kind, listed)
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
