//! The applier: the one thread that takes the watchers' messages, drives the [`Publisher`]
//! (the single writer) with them, and publishes once per burst; it owns the re-list
//! bookkeeping and the programming-latency and sync metrics.

use super::*;

/// The single writer: applies the watchers' changes and publishes.
pub(super) struct Applier {
    pub(super) publisher: Publisher,
    pub(super) resources: Vec<ObjectKind>,
    /// Resources whose list has started at least once.
    pub(super) list_started: HashSet<ObjectKind>,
    /// Resources that have completed at least one list.
    pub(super) listed_once: HashSet<ObjectKind>,
    /// Whether the first complete zone has been published.
    pub(super) synced: bool,
    /// The `service_kind` label of each Service, for slices' programming latency.
    pub(super) service_kinds: HashMap<ObjectKey, ServiceKindLabel>,
    /// Slices applied since the last publish with a trigger time: (label, trigger time).
    pub(super) programmed: Vec<(ServiceKindLabel, SystemTime)>,
    pub(super) readiness: Arc<Readiness>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) synced_sender: Option<oneshot::Sender<()>>,
}

impl Applier {
    pub(super) fn run(mut self, mut receiver: mpsc::Receiver<Message>) {
        while let Some(first) = receiver.blocking_recv() {
            self.handle(first);
            let mut burst = 1;
            while burst < MAX_BURST {
                let Ok(message) = receiver.try_recv() else {
                    break;
                };
                self.handle(message);
                burst += 1;
            }
            self.publish();
        }
    }

    pub(super) fn handle(&mut self, message: Message) {
        match message {
            Message::ListStarted(resource) => {
                // Only a list after an earlier one can leave objects behind to delete; the first
                // list of a resource starts from nothing, so it does not hold every key it lists.
                if !self.list_started.insert(resource) {
                    self.publisher.begin_list(resource);
                }
            }
            Message::ListDone(resource) => {
                let kind = resource;
                if let Some((listed, deleted)) = self.publisher.end_list(kind) {
                    if kind == ObjectKind::Service {
                        self.service_kinds.retain(|key, _| listed.contains(key));
                    }
                    if self.listed_once.contains(&kind) {
                        tracing::info!(
                            resource = resource.resource(),
                            objects = listed.len(),
                            deleted,
                            "re-listed"
                        );
                    }
                }
                self.listed_once.insert(kind);
            }
            Message::Changed {
                change,
                listed,
                service_kind,
                triggered,
            } => {
                let (_, key) = change.object();
                match (&change, service_kind) {
                    (Change::ServiceUpsert(_), Some(label)) => {
                        self.service_kinds.insert(key, label);
                    }
                    (Change::ServiceDelete(..), _) => {
                        self.service_kinds.remove(&key);
                    }
                    (Change::SliceUpsert(slice), _) => {
                        if let (Some(time), false) = (triggered, listed) {
                            let owner = (slice.namespace.clone(), slice.service.clone());
                            let label = (self.service_kinds.get(&owner).copied())
                                .unwrap_or(ServiceKindLabel::ClusterIp);
                            self.programmed.push((label, time));
                        }
                    }
                    _ => {}
                }
                if listed {
                    self.publisher.apply_listed(change);
                } else {
                    self.publisher.apply(change);
                }
            }
        }
    }

    pub(super) fn publish(&mut self) {
        if !self.synced {
            let all_listed = (self.resources.iter()).all(|r| self.listed_once.contains(r));
            if !all_listed {
                return;
            }
            self.publisher.set_synced();
        } else if !self.publisher.has_changes() {
            return;
        }
        let (stats, took, serial) = self.publisher.publish();
        let now = SystemTime::now();
        for (label, time) in self.programmed.drain(..) {
            let latency = now.duration_since(time).unwrap_or_default();
            self.metrics.source.programmed(label, latency);
        }
        self.metrics.source.published(took, stats, serial);
        if !self.synced {
            self.synced = true;
            self.readiness.set_synced();
            tracing::info!(
                namespaces = stats.namespaces,
                services = stats.services,
                endpoints = stats.endpoints,
                names = stats.names,
                build_ms = format!("{:.1}", took.as_secs_f64() * 1e3),
                "zone synced with the Kubernetes API"
            );
            if let Some(sender) = self.synced_sender.take() {
                let _ = sender.send(());
            }
        }
    }
}
