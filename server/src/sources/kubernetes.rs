//! The Kubernetes API source: watches Namespaces, Services, EndpointSlices (and Pods, for
//! `pods verified` names or the client index: [`PodChanges`]) with `kube`'s watcher and feeds
//! their changes to the [`Publisher`].
//!
//! ```text
//!  watcher task per resource ──(strip to model, drop the API object)──▶ channel ──▶ applier thread
//!      streamed or paged lists, watch events,                                    │ apply changes,
//!      backoff on errors                                                          │ drain the burst,
//!                                                                                 ▼ publish once
//! ```
//!
//! Objects are converted at the edge, in the watcher task, so memory follows the DNS data. A
//! list is streamed where the API server can (`sendInitialEvents`, the WatchList feature: the
//! watch cache sends the objects one by one as ADDED events, then a bookmark annotated
//! `k8s.io/initial-events-end`), so no more than one object is decoded at a time; where the
//! server refuses that watch (400 or 422: the feature is off, or the server predates it), that
//! resource lists in pages of 500 from then on, each page dropped once converted. A re-list (after
//! 410 Gone or a broken watch) applies the listed objects as upserts, which cost nothing when
//! unchanged, and at its end deletes what was not listed; the builder never holds two copies of
//! the cluster. Until every watched resource has listed once, nothing is published and the zone
//! answers SERVFAIL. Errors keep the last snapshot serving; each resource logs a failure reason
//! once, when it starts, and once more when the watch recovers.
//!
//! The applier (the writer side) is in `kubernetes/applier.rs`; this file is the watch side: the
//! client, a watcher task per resource, and the conversion of each event.
//!
//! A [`Selection`]'s label selectors go with every list and watch request (`labelSelector`):
//! `labels` with Services, EndpointSlices and Pods, `namespace_labels` with Namespaces, as
//! CoreDNS asks. The API server then sends an object relabelled out of the selector as a
//! DELETED event and one relabelled into it as ADDED, so the zone follows without a restart.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clusterdns_zone::{Change, ObjectKey, ObjectKind, ServiceKind};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher::{self, watcher, Event};
use kube::{Api, Client};
use tokio::sync::{mpsc, oneshot};

use crate::ops::metrics::{Metrics, ServiceKindLabel, SourceMetrics};
use crate::ops::Readiness;
use crate::sources::objects::{self, ObjectError, Seen, DEFAULT_NAMESPACE};
use crate::sources::{PodChanges, Publisher, Selection};

mod applier;
mod requests;

use applier::Applier;

/// The annotation the EndpointSlice controller sets to when the change that produced a slice
/// happened; the DNS programming latency is measured from it.
const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Changes applied before a publish is forced, so a flood still publishes regularly.
const MAX_BURST: usize = 50_000;
/// Watch events buffered between the watcher tasks and the applier: enough to keep the applier
/// busy, small enough that a backlog of converted slices stays a few MiB during a large list.
const CHANNEL_DEPTH: usize = 512;

/// Why no Kubernetes API client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The `endpoint` is not a URL.
    #[error("kubernetes endpoint {url:?}: {source}")]
    Endpoint {
        /// The endpoint as given.
        url: String,
        /// Why it does not parse.
        source: hyper::http::uri::InvalidUri,
    },
    /// The kubeconfig file cannot be read or used.
    #[error("kubeconfig {}: {source}", path.display())]
    Kubeconfig {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        source: kube::config::KubeconfigError,
    },
    /// Neither a kubeconfig nor an in-cluster service account was found.
    #[error("no Kubernetes API configuration (not in a pod, no kubeconfig, no manifests): {0}")]
    Infer(#[source] kube::config::InferConfigError),
    /// The configuration was found but the client cannot be built from it.
    #[error("cannot create the Kubernetes client: {0}")]
    Build(#[source] kube::Error),
}

/// Builds a client from `kubeconfig` (with its `context`, else the current one), or else as
/// kubectl would: `$KUBECONFIG`, `~/.kube/config`, then the in-cluster service account. An
/// `endpoint` URL replaces the server the configuration names; alone, it is used without
/// credentials (CoreDNS `kubernetes { endpoint }`, e.g. through `kubectl proxy`). Every request
/// it makes is timed and counted into `metrics` (`kubernetes/requests.rs`).
pub async fn client(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    endpoint: Option<&str>,
    metrics: Arc<Metrics>,
) -> Result<Client, ClientError> {
    let url = endpoint
        .map(|url| {
            url.parse::<hyper::Uri>()
                .map_err(|source| ClientError::Endpoint {
                    url: url.to_owned(),
                    source,
                })
        })
        .transpose()?;
    let kubeconfig_error = |path: &Path| {
        let path = path.to_owned();
        move |source| ClientError::Kubeconfig { path, source }
    };
    let mut config = match (kubeconfig, &url) {
        (Some(path), _) => {
            let file = kube::config::Kubeconfig::read_from(path).map_err(kubeconfig_error(path))?;
            let options = kube::config::KubeConfigOptions {
                context: context.map(str::to_owned),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(kubeconfig_error(path))?
        }
        (None, Some(url)) => kube::Config::new(url.clone()),
        (None, None) => kube::Config::infer().await.map_err(ClientError::Infer)?,
    };
    if let Some(url) = url {
        config.cluster_url = url;
    }
    let host = (config.cluster_url.authority()).map_or_else(String::new, |a| a.to_string());
    let builder = kube::client::ClientBuilder::try_from(config).map_err(ClientError::Build)?;
    Ok(builder
        .with_layer(&requests::Measured::new(&host, metrics))
        .build())
}

/// One message from a watcher task to the applier.
enum Message {
    /// A list of the resource begins.
    ListStarted(ObjectKind),
    /// A change; `listed` when it is part of a list rather than a watch event.
    Changed {
        change: Change,
        listed: bool,
        /// For Services: the label their slices' programming latency is recorded under.
        service_kind: Option<ServiceKindLabel>,
        /// For EndpointSlices: the trigger-time annotation.
        triggered: Option<SystemTime>,
    },
    /// The list of the resource is complete.
    ListDone(ObjectKind),
}

/// Starts watching through `client` and applying to `publisher`; Pods are watched when `pods`
/// asks for any change of them, and only the objects `selection` selects are listed and
/// watched. The returned receiver fires once the first complete zone is published.
pub fn start(
    client: Client,
    pods: PodChanges,
    selection: &Selection,
    publisher: Publisher,
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
    runtime: &tokio::runtime::Handle,
) -> std::io::Result<oneshot::Receiver<()>> {
    let (sender, receiver) = mpsc::channel(CHANNEL_DEPTH);
    let mut resources = vec![
        ObjectKind::Namespace,
        ObjectKind::Service,
        ObjectKind::EndpointSlice,
    ];
    if pods.any() {
        resources.push(ObjectKind::Pod);
    }
    let pod_names = selection.endpoint_pod_names;
    for &resource in &resources {
        metrics.source.watching(resource);
        let sender = sender.clone();
        let metrics = metrics.clone();
        let client = client.clone();
        let mut config = watcher::Config::default();
        if let Some(selector) = selection.selector(resource).filter(|s| !s.is_empty()) {
            config = config.labels(&selector.to_string());
        }
        match resource {
            ObjectKind::Namespace => runtime.spawn(watch(
                Api::<core::Namespace>::all(client),
                resource,
                config,
                single(resource, namespace_change, metrics.clone()),
                sender,
                metrics,
            )),
            ObjectKind::Service => runtime.spawn(watch(
                Api::<core::Service>::all(client),
                resource,
                config,
                single(resource, service_change, metrics.clone()),
                sender,
                metrics,
            )),
            ObjectKind::EndpointSlice => runtime.spawn(watch(
                Api::<discovery::EndpointSlice>::all(client),
                resource,
                config,
                single(
                    resource,
                    move |object| slice_change(object, pod_names),
                    metrics.clone(),
                ),
                sender,
                metrics,
            )),
            ObjectKind::Pod => runtime.spawn(watch(
                Api::<core::Pod>::all(client),
                resource,
                config,
                pod_changes(pods, metrics.clone()),
                sender,
                metrics,
            )),
        };
    }
    let (synced_sender, synced) = oneshot::channel();
    let applier = Applier {
        publisher,
        resources,
        list_started: HashSet::new(),
        listed_once: HashSet::new(),
        synced: false,
        service_kinds: HashMap::new(),
        programmed: Vec::new(),
        readiness,
        metrics,
        synced_sender: Some(synced_sender),
    };
    std::thread::Builder::new()
        .name("clusterdns-zone".into())
        .spawn(move || applier.run(receiver))?;
    Ok(synced)
}

/// A converted object: its change, with what the metrics need to know about it.
struct Converted {
    change: Change,
    service_kind: Option<ServiceKindLabel>,
    triggered: Option<SystemTime>,
}

impl Converted {
    fn plain(change: Change) -> Self {
        Converted {
            change,
            service_kind: None,
            triggered: None,
        }
    }
}

/// What converting a listed or applied object of a kind whose object is one change gives:
/// its change, `None` for an object DNS does not answer from (as if it did not exist), or why
/// DNS cannot use it.
type Conversion = Result<Option<Converted>, ObjectError>;

/// Turns an object of the watched resource, as the watch saw it, into the changes it makes:
/// none, one, or (Pods' client addresses) one per address.
type Changes<K> = Box<dyn Fn(K, Seen) -> Vec<Converted> + Send>;

/// The changes of a kind whose object is one change: `convert` what is listed or applied, and
/// delete the key of what is deleted.
fn single<K, F>(resource: ObjectKind, convert: F, metrics: Arc<Metrics>) -> Changes<K>
where
    K: kube::Resource + 'static,
    F: Fn(K) -> Conversion + Send + 'static,
{
    Box::new(move |object, seen| {
        let converted = match seen {
            Seen::Listed | Seen::Applied => {
                convert_or_delete(resource, &convert, object, &metrics.source)
            }
            Seen::Deleted => deletion(resource, object.meta()).map(Converted::plain),
        };
        converted.into_iter().collect()
    })
}

/// The changes of a Pod: its client addresses when `pods.addresses`, the whole Pod when
/// `pods.verified`.
fn pod_changes(pods: PodChanges, metrics: Arc<Metrics>) -> Changes<core::Pod> {
    let whole = (pods.verified).then(|| single(ObjectKind::Pod, pod_change, metrics.clone()));
    Box::new(move |object, seen| {
        let mut out = Vec::new();
        if pods.addresses {
            // A Pod whose addresses do not parse is reported by the whole Pod's conversion
            // when there is one.
            let source = (!pods.verified).then_some(&metrics.source);
            let changes = client_changes(&object, seen, source);
            out.extend(changes.into_iter().map(Converted::plain));
        }
        if let Some(whole) = &whole {
            out.extend(whole(object, seen));
        }
        out
    })
}

/// The client index's changes of a Pod seen as `seen`; none for a Pod whose addresses do not
/// parse, which is counted and logged to `source` when given.
fn client_changes(object: &core::Pod, seen: Seen, source: Option<&SourceMetrics>) -> Vec<Change> {
    match objects::pod_addresses(object) {
        Ok(Some(addresses)) => addresses.changes(seen),
        Ok(None) => Vec::new(),
        Err(error) => {
            if let Some(source) = source {
                source.rejected(ObjectKind::Pod);
                let object = object_name(&object.metadata);
                tracing::warn!(resource = "pods", object, %error, "Pod left out of the client index");
            }
            Vec::new()
        }
    }
}

/// Watches one resource until the applier goes away.
async fn watch<K>(
    api: Api<K>,
    resource: ObjectKind,
    config: watcher::Config,
    changes: Changes<K>,
    sender: mpsc::Sender<Message>,
    metrics: Arc<Metrics>,
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut streaming = true;
    let mut events = watcher(api.clone(), config.clone().streaming_lists()).boxed();
    // A list begun (Init) and not yet complete (InitDone), and how many streamed lists in a row
    // ended without their end bookmark.
    let mut listing = false;
    let mut cut_short = 0u32;
    let mut retry = RetryDelay::default();
    let mut failing: Option<&'static str> = None;
    let source = &metrics.source;
    let index = resource;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) if streaming && refuses_streaming_lists(&error) => {
                tracing::info!(
                    resource = resource.resource(),
                    %error,
                    "the API server does not serve streaming lists; listing in pages"
                );
                streaming = false;
                events = watcher(api.clone(), config.clone()).boxed();
                continue;
            }
            Err(error) => {
                listing = false;
                let reason = failure_reason(&error);
                source.watch_error(index, reason);
                if failing != Some(reason) {
                    if reason == "expired" {
                        tracing::info!(
                            resource = resource.resource(),
                            "watch expired (410 Gone); re-listing"
                        );
                    } else {
                        tracing::warn!(resource = resource.resource(), reason, %error, "watch failed; the last zone keeps serving, retrying with backoff");
                    }
                    failing = Some(reason);
                }
                if let Some(delay) = retry.after(reason, Instant::now()) {
                    tokio::time::sleep(delay).await;
                }
                continue;
            }
        };
        // The watcher reports Init before every list attempt, failed ones included: only what
        // follows it shows that the API answers again.
        if !matches!(event, Event::Init) {
            retry.progress();
            if let Some(reason) = failing.take() {
                if reason != "expired" {
                    tracing::info!(
                        resource = resource.resource(),
                        after = reason,
                        "watch recovered"
                    );
                }
            }
        }
        let (object, seen) = match event {
            Event::Init if streaming && listing => {
                // The streamed list ended before its end bookmark, and the watcher began
                // another at once: a proxy or a server that does not finish streaming lists.
                // Wait as after a failure; the second time, list in pages instead.
                cut_short += 1;
                source.watch_error(index, "incomplete_list");
                if cut_short >= STREAMS_CUT_SHORT {
                    tracing::warn!(
                        resource = resource.resource(),
                        "streaming lists end before their end bookmark; listing in pages"
                    );
                    listing = false;
                    streaming = false;
                    events = watcher(api.clone(), config.clone()).boxed();
                    continue;
                }
                if let Some(delay) = retry.after("incomplete_list", Instant::now()) {
                    tokio::time::sleep(delay).await;
                }
                // The new list starts over: what the cut one listed does not count.
                if sender.send(Message::ListStarted(resource)).await.is_err() {
                    return;
                }
                continue;
            }
            Event::Init => {
                listing = true;
                source.set_synced(index, false);
                if sender.send(Message::ListStarted(resource)).await.is_err() {
                    return;
                }
                continue;
            }
            Event::InitDone => {
                listing = false;
                cut_short = 0;
                source.relist(index);
                source.set_synced(index, true);
                if sender.send(Message::ListDone(resource)).await.is_err() {
                    return;
                }
                continue;
            }
            Event::InitApply(object) => (object, Seen::Listed),
            Event::Apply(object) => {
                source.event(index);
                (object, Seen::Applied)
            }
            Event::Delete(object) => {
                source.event(index);
                (object, Seen::Deleted)
            }
        };
        for converted in changes(object, seen) {
            if sender
                .send(changed(converted, seen == Seen::Listed))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

fn changed(converted: Converted, listed: bool) -> Message {
    Message::Changed {
        change: converted.change,
        listed,
        service_kind: converted.service_kind,
        triggered: converted.triggered,
    }
}

/// Converts `object`. One DNS does not answer from, or cannot use, becomes a deletion of its
/// key, so an older version does not linger; an unusable one is also counted and logged.
fn convert_or_delete<K: kube::Resource>(
    resource: ObjectKind,
    convert: &dyn Fn(K) -> Conversion,
    object: K,
    source: &SourceMetrics,
) -> Option<Converted> {
    let meta = object.meta().clone();
    match convert(object) {
        Ok(Some(converted)) => Some(converted),
        Ok(None) => deletion(resource, &meta).map(Converted::plain),
        Err(error) => {
            source.rejected(resource);
            let object = object_name(&meta);
            tracing::warn!(resource = resource.resource(), object, %error, "object left out of the zone");
            deletion(resource, &meta).map(Converted::plain)
        }
    }
}

/// `namespace/name` of an object, for logs.
fn object_name(meta: &ObjectMeta) -> String {
    match &meta.namespace {
        Some(namespace) => format!("{namespace}/{}", meta.name.as_deref().unwrap_or_default()),
        None => meta.name.clone().unwrap_or_default(),
    }
}

/// The key of an object as the model spells it (lowercase; `default` when unset).
fn object_key(meta: &ObjectMeta) -> ObjectKey {
    let namespace = meta
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE);
    let name = meta.name.as_deref().unwrap_or_default();
    (
        namespace.to_ascii_lowercase().into(),
        name.to_ascii_lowercase().into(),
    )
}

/// The change that deletes an object of `resource`.
fn deletion(resource: ObjectKind, meta: &ObjectMeta) -> Option<Change> {
    let (namespace, name) = object_key(meta);
    if name.is_empty() {
        return None;
    }
    Some(match resource {
        ObjectKind::Namespace => Change::NamespaceDelete(name),
        ObjectKind::Service => Change::ServiceDelete(namespace, name),
        ObjectKind::EndpointSlice => Change::SliceDelete(namespace, name),
        ObjectKind::Pod => Change::PodDelete(namespace, name),
    })
}

fn namespace_change(object: core::Namespace) -> Conversion {
    let name = objects::namespace_name(&object.metadata)?;
    Ok(Some(Converted::plain(Change::NamespaceUpsert(name))))
}

fn service_change(object: core::Service) -> Conversion {
    let has_selector = (object.spec.as_ref())
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty());
    let service = objects::service(object)?;
    let kind = match service.kind {
        ServiceKind::Headless if has_selector => ServiceKindLabel::HeadlessWithSelector,
        ServiceKind::Headless => ServiceKindLabel::HeadlessWithoutSelector,
        _ => ServiceKindLabel::ClusterIp,
    };
    Ok(Some(Converted {
        change: Change::ServiceUpsert(service),
        service_kind: Some(kind),
        triggered: None,
    }))
}

/// An EndpointSlice; `pod_names`: CoreDNS `endpoint_pod_names`.
fn slice_change(object: discovery::EndpointSlice, pod_names: bool) -> Conversion {
    if objects::slice_skip_reason(&object).is_some() {
        // FQDN addresses, or no Service: DNS does not answer from it.
        return Ok(None);
    }
    let triggered = (object.metadata.annotations.as_ref())
        .and_then(|a| a.get(TRIGGER_TIME_ANNOTATION))
        .and_then(|time| time.parse::<jiff::Timestamp>().ok())
        .map(SystemTime::from);
    let slice = objects::endpoint_slice(object, pod_names)?;
    Ok(Some(Converted {
        change: Change::SliceUpsert(slice),
        service_kind: None,
        triggered,
    }))
}

fn pod_change(object: core::Pod) -> Conversion {
    let pod = objects::pod(object)?;
    Ok(Some(Converted::plain(Change::PodUpsert(pod))))
}

/// Streamed lists in a row that may end without their end bookmark before a resource lists in
/// pages instead.
const STREAMS_CUT_SHORT: u32 = 2;

/// Whether `error` is an API server refusing the watch that starts a streaming list: `400` or
/// `422 Invalid`, what servers answer whose WatchList feature is off or that predate it. The
/// paged list and watch then take its place for good.
fn refuses_streaming_lists(error: &watcher::Error) -> bool {
    matches!(
        error,
        watcher::Error::WatchStartFailed(kube::Error::Api(status))
            if status.code == 400 || status.code == 422
    )
}

/// A short label for why a list or watch failed (also the metric's `reason`).
fn failure_reason(error: &watcher::Error) -> &'static str {
    let client_error = match error {
        watcher::Error::WatchError(status) if status.code == 410 => return "expired",
        watcher::Error::WatchError(status) => return status_reason(status.code),
        watcher::Error::NoResourceVersion => return "no_resource_version",
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => e,
    };
    match client_error {
        kube::Error::Api(status) => status_reason(status.code),
        kube::Error::HyperError(_) | kube::Error::Service(_) => "unreachable",
        kube::Error::ReadEvents(_) => "connection_lost",
        kube::Error::SerdeError(_) => "bad_response",
        _ => "other",
    }
}

fn status_reason(code: u16) -> &'static str {
    match code {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        410 => "expired",
        429 => "throttled",
        500..=599 => "server_error",
        _ => "other",
    }
}

/// The first retry after a failed list or watch; each next one waits twice as long.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest wait between two attempts: how late a restarted API server may be seen.
const RETRY_CAP: Duration = Duration::from_secs(5);
/// A failure this long after the previous one starts the delays over: the watch between them
/// ran (a resumed watch that sees no change reports nothing, so time is the only sign).
const RESET_AFTER: Duration = Duration::from_secs(10);

/// Retry delays after a failed list or watch: 100 ms doubling to 5 s. Shorter than kube's
/// default (800 ms to 30 s) so a restarted API server is seen quickly; five seconds between
/// attempts is still gentle on an API server that is down.
///
/// They start over on progress: any event but the `Init` the watcher reports before every list
/// attempt, failed ones included (were it progress, a re-list that keeps failing would retry
/// every 100 ms, just when an API server that has restarted is busiest). A 410 Gone is
/// followed by the re-list at once: it is how a restarted API server, which no longer has the
/// watch history, answers a resumed watch, and waiting out the delay the outage left would
/// double the time to catch up. A second 410 without progress between waits like any failure.
#[derive(Debug, Default)]
struct RetryDelay {
    /// The next delay, once one was given.
    next: Option<Duration>,
    /// When the last failure came.
    last_failure: Option<Instant>,
    /// Whether the last 410 was re-listed at once, with no progress since.
    relisted_at_once: bool,
}

impl RetryDelay {
    /// How long to wait after a failure for `reason` (a [`failure_reason`]) at `now`; `None`
    /// to go on at once.
    fn after(&mut self, reason: &str, now: Instant) -> Option<Duration> {
        if (self.last_failure).is_some_and(|last| now.duration_since(last) >= RESET_AFTER) {
            *self = RetryDelay::default();
        }
        self.last_failure = Some(now);
        if reason == "expired" && !self.relisted_at_once {
            self.relisted_at_once = true;
            return None;
        }
        let delay = self.next.unwrap_or(FIRST_RETRY);
        self.next = Some((delay * 2).min(RETRY_CAP));
        Some(delay)
    }

    /// The API answered: the next failure starts the delays over.
    fn progress(&mut self) {
        *self = RetryDelay::default();
    }
}

#[cfg(test)]
mod tests;
