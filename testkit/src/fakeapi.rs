//! An in-process fake of the Kubernetes API server: the list/watch protocol over HTTP/1.1 for
//! Namespaces, Services, Pods and EndpointSlices, driven from synchronous test code.
//!
//! ```text
//!  test code ── upsert/delete/expire/forbid/set_down ──> State (Mutex: objects, history, counters)
//!                                                           │ signals (tokio watch channels)
//!  kube client ── GET list  ──> hyper ── handle ─────────> page of the snapshot at one resourceVersion
//!              ── GET watch ──> hyper ── handle ── task ──> ndjson events, bookmarks, 410, timeout
//! ```
//!
//! What it owns: the resourceVersion counter (one for all kinds, as etcd has), the history of
//! every object (so paginated lists stay consistent at one version and watches replay from any
//! version after the compaction horizon), and the faults a real cluster shows clients: in-stream
//! `410 Expired`, `403 Forbidden`, dropped connections and outages. It runs on its own
//! single-threaded tokio runtime on a thread of its own, so tests can use it from sync code; it
//! answers malformed requests with a `Status` (400/404/405), never a panic.
//!
//! `labelSelector` (equality- and set-based, parsed by clusterdns's own
//! `sources::selector`) and `fieldSelector` (`metadata.name`, `metadata.namespace`) filter
//! lists and watches as the API server's watch cache does: a change that makes an object match
//! is sent as ADDED, one that makes it stop matching as DELETED (its previous state, at the
//! change's resourceVersion), and changes on either side of the selector as they are.
//!
//! Streaming lists are served as v1.36 serves them (the WatchList feature): a watch with
//! `sendInitialEvents=true` (which needs `resourceVersionMatch=NotOlderThan`) starts with the
//! current objects as ADDED events, then, when it allows bookmarks, a bookmark annotated
//! `k8s.io/initial-events-end`, then goes on as a watch. [`FakeApi::set_watch_list`] turns the
//! feature off, and such a watch is then refused with `422 Invalid` as by a server whose
//! feature gate is off.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use clusterdns::sources::selector::LabelSelector;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

/// How often open watches that asked for bookmarks get one, unless a test sets otherwise.
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_millis(150);

/// The resources the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `v1` Namespace (cluster-scoped).
    Namespace,
    /// `v1` Service.
    Service,
    /// `v1` Pod.
    Pod,
    /// `discovery.k8s.io/v1` EndpointSlice.
    EndpointSlice,
}

impl Kind {
    /// Every kind the fake serves.
    pub const ALL: [Kind; 4] = [
        Kind::Namespace,
        Kind::Service,
        Kind::Pod,
        Kind::EndpointSlice,
    ];

    /// The resource name in URLs (`services`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Service => "services",
            Kind::Pod => "pods",
            Kind::EndpointSlice => "endpointslices",
        }
    }

    /// The object kind (`Service`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Service => "Service",
            Kind::Pod => "Pod",
            Kind::EndpointSlice => "EndpointSlice",
        }
    }

    /// The group/version objects carry (`v1`, `discovery.k8s.io/v1`).
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            _ => "v1",
        }
    }

    fn group(self) -> &'static str {
        match self {
            Kind::EndpointSlice => "discovery.k8s.io",
            _ => "",
        }
    }

    fn namespaced(self) -> bool {
        self != Kind::Namespace
    }

    fn from_plural(api_version: &str, plural: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.api_version() == api_version && kind.plural() == plural)
    }
}

/// One request the fake received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// The HTTP method.
    pub method: String,
    /// The path and query, as sent.
    pub path: String,
}

/// An object's identity: kind, namespace (empty for cluster-scoped kinds), name.
type Key = (Kind, String, String);

/// One version of an object; `None` is a deletion.
struct Version {
    rv: u64,
    object: Option<Stored>,
}

/// A stored object and its text as a list item (without kind and apiVersion), serialized once
/// when it is written, as the API server's watch cache keeps objects serialized: a list of a
/// large cluster then costs the fake little more than copying bytes, so it does not set the
/// pace of what it measures.
struct Stored {
    value: Arc<Value>,
    item: String,
}

/// One entry of the watch history.
struct Change {
    rv: u64,
    kind: Kind,
    event: &'static str,
    object: Arc<Value>,
    /// The object before the change, so a filtered watch can tell an object that starts or
    /// stops matching its selectors.
    previous: Option<Arc<Value>>,
}

/// Everything the control methods change and the handlers read.
struct State {
    rv: u64,
    /// Every version of every object, so a list can be served at any retained version.
    objects: BTreeMap<Key, Vec<Version>>,
    /// Every change in resourceVersion order, for watches to replay.
    history: Vec<Change>,
    /// Watches and continue tokens older than this get 410 Expired.
    compacted: u64,
    forbidden: HashSet<Kind>,
    down: bool,
    bookmark_interval: Duration,
    /// Whether watches may ask for the initial state as events (`sendInitialEvents`).
    watch_list: bool,
    /// Whether such a watch ends after the objects, before the end bookmark.
    cut_streams: bool,
    requests: Vec<LoggedRequest>,
    lists: HashMap<Kind, usize>,
    /// Complete listings begun: first pages, and watches that send the initial state.
    listings: HashMap<Kind, usize>,
    watches: HashMap<Kind, usize>,
    open_watches: HashMap<Kind, usize>,
}

impl State {
    /// The objects of `kind` live at `rv`, in key order, from just after `after` (a namespace
    /// and name) when given. A seek, not a scan: each page of a list of a large cluster costs
    /// only what it returns.
    fn objects_from<'a>(
        &'a self,
        kind: Kind,
        rv: u64,
        after: Option<(&str, &str)>,
    ) -> impl Iterator<Item = (&'a Key, &'a Stored)> + 'a {
        let start = match after {
            Some((namespace, name)) => {
                Bound::Excluded((kind, namespace.to_string(), name.to_string()))
            }
            None => Bound::Included((kind, String::new(), String::new())),
        };
        self.objects
            .range((start, Bound::Unbounded))
            .take_while(move |((k, _, _), _)| *k == kind)
            .filter_map(move |(key, versions)| {
                let version = versions.iter().rev().find(|v| v.rv <= rv)?;
                Some((key, version.object.as_ref()?))
            })
    }

    fn current(&self, key: &Key) -> Option<&Arc<Value>> {
        self.objects
            .get(key)
            .and_then(|versions| versions.last())
            .and_then(|v| v.object.as_ref())
            .map(|stored| &stored.value)
    }

    fn record(&mut self, key: Key, event: &'static str, object: Value) -> u64 {
        let object = Arc::new(object);
        let rv = self.rv;
        let kind = key.0;
        let previous = self.current(&key).cloned();
        let stored = (event != "DELETED").then(|| {
            // A real API server leaves kind and apiVersion off the items of a typed list.
            let mut item = Value::clone(&object);
            if let Some(map) = item.as_object_mut() {
                map.remove("kind");
                map.remove("apiVersion");
            }
            Stored {
                value: object.clone(),
                item: item.to_string(),
            }
        });
        self.objects
            .entry(key)
            .or_default()
            .push(Version { rv, object: stored });
        self.history.push(Change {
            rv,
            kind,
            event,
            object,
            previous,
        });
        rv
    }
}

/// The state and the signals that wake the server's tasks.
struct Shared {
    state: Mutex<State>,
    /// The latest resourceVersion: open watches wake on it.
    changed: watch::Sender<u64>,
    /// Bumped by [`FakeApi::expire`]: every open watch gets an in-stream 410.
    expired: watch::Sender<u64>,
    /// Bumped by [`FakeApi::drop_connections`] and outages: every connection is cut.
    dropped: watch::Sender<u64>,
    /// Set when the [`FakeApi`] is dropped.
    shutdown: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take the server down with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running fake API server on a loopback port; stops when dropped.
pub struct FakeApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl FakeApi {
    /// Starts a fake API server holding the namespaces `default` and `kube-system` and the
    /// [`core_services`].
    pub fn with_core_services() -> FakeApi {
        let api = FakeApi::start();
        for name in ["default", "kube-system"] {
            api.upsert(Kind::Namespace, namespace(name));
        }
        for service in core_services() {
            api.upsert(Kind::Service, service);
        }
        api
    }

    /// Starts an empty fake API server on `127.0.0.1:0`.
    pub fn start() -> FakeApi {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake API");
        let addr = listener.local_addr().expect("fake API address");
        listener.set_nonblocking(true).expect("nonblocking");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rv: 1,
                objects: BTreeMap::new(),
                history: Vec::new(),
                compacted: 0,
                forbidden: HashSet::new(),
                down: false,
                bookmark_interval: DEFAULT_BOOKMARK_INTERVAL,
                watch_list: true,
                cut_streams: false,
                requests: Vec::new(),
                lists: HashMap::new(),
                listings: HashMap::new(),
                watches: HashMap::new(),
                open_watches: HashMap::new(),
            }),
            changed: watch::Sender::new(1),
            expired: watch::Sender::new(0),
            dropped: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("fake API runtime");
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("fake-api".into())
                .spawn(move || {
                    runtime.block_on(async move {
                        match tokio::net::TcpListener::from_std(listener) {
                            Ok(listener) => accept_loop(listener, shared).await,
                            Err(error) => eprintln!("fake API: cannot listen: {error}"),
                        }
                    });
                })
                .expect("fake API thread")
        };
        FakeApi {
            shared,
            addr,
            thread: Some(thread),
        }
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Creates or replaces an object (its `kind`, `apiVersion`, `uid` and `resourceVersion`
    /// are filled in), notifies open watches, and returns the new resourceVersion.
    pub fn upsert(&self, kind: Kind, mut object: Value) -> u64 {
        let key = key_of(kind, &object);
        let mut state = self.shared.lock();
        state.rv += 1;
        let rv = state.rv;
        let existing = state.current(&key).cloned();
        let uid = existing
            .as_ref()
            .and_then(|o| o.pointer("/metadata/uid").cloned())
            .unwrap_or_else(|| Value::String(format!("fake-uid-{rv}")));
        object["kind"] = kind.name().into();
        object["apiVersion"] = kind.api_version().into();
        object["metadata"]["uid"] = uid;
        object["metadata"]["resourceVersion"] = rv.to_string().into();
        let event = if existing.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        state.record(key, event, object);
        drop(state);
        self.shared.changed.send_replace(rv);
        rv
    }

    /// Deletes an object (namespace `""` for Namespaces); returns the deletion's
    /// resourceVersion, or `None` when there was no such object.
    pub fn delete(&self, kind: Kind, namespace: &str, name: &str) -> Option<u64> {
        let key = (kind, ns_key(kind, namespace), name.to_string());
        let mut state = self.shared.lock();
        let mut last = Value::clone(state.current(&key)?);
        state.rv += 1;
        let rv = state.rv;
        last["metadata"]["resourceVersion"] = rv.to_string().into();
        state.record(key, "DELETED", last);
        drop(state);
        self.shared.changed.send_replace(rv);
        Some(rv)
    }

    /// Compacts the history to now, and ends every open watch with an in-stream 410 Expired.
    pub fn expire(&self) {
        let mut state = self.shared.lock();
        state.compacted = state.rv;
        drop(state);
        self.shared.expired.send_modify(|epoch| *epoch += 1);
    }

    /// Cuts every open connection (watch streams included) without a proper end.
    pub fn drop_connections(&self) {
        self.shared.dropped.send_modify(|epoch| *epoch += 1);
    }

    /// Makes every request for `kind` answer 403 Forbidden (or stops doing so).
    pub fn forbid(&self, kind: Kind, forbidden: bool) {
        let mut state = self.shared.lock();
        if forbidden {
            state.forbidden.insert(kind);
        } else {
            state.forbidden.remove(&kind);
        }
    }

    /// Starts (`true`) or ends an outage: new connections are closed at once, open ones cut.
    pub fn set_down(&self, down: bool) {
        self.shared.lock().down = down;
        if down {
            self.drop_connections();
        }
    }

    /// Sets how often watches that allow bookmarks get one (for watches opened after this).
    pub fn set_bookmark_interval(&self, interval: Duration) {
        self.shared.lock().bookmark_interval = interval;
    }

    /// Serves streaming lists (`true`, the default, as v1.36 does) or refuses a watch that
    /// asks for them with `422 Invalid`, as a server with the WatchList feature gate off does.
    pub fn set_watch_list(&self, supported: bool) {
        self.shared.lock().watch_list = supported;
    }

    /// Ends every streaming list after its objects, before the end bookmark (`true`), as a
    /// proxy that does not pass them whole might; or serves them whole again.
    pub fn cut_streaming_lists(&self, cut: bool) {
        self.shared.lock().cut_streams = cut;
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.lock().requests.clone()
    }

    /// How many list requests (pages included) were answered for `kind`.
    pub fn lists(&self, kind: Kind) -> usize {
        self.shared.lock().lists.get(&kind).copied().unwrap_or(0)
    }

    /// How many complete listings of `kind` were begun: paged lists (counted once, at their
    /// first page) and streaming lists (watches that send the initial state).
    pub fn listings(&self, kind: Kind) -> usize {
        self.shared.lock().listings.get(&kind).copied().unwrap_or(0)
    }

    /// How many watch requests were answered for `kind`.
    pub fn watches(&self, kind: Kind) -> usize {
        self.shared.lock().watches.get(&kind).copied().unwrap_or(0)
    }

    /// How many watch streams of `kind` are open right now.
    pub fn open_watches(&self, kind: Kind) -> usize {
        self.shared
            .lock()
            .open_watches
            .get(&kind)
            .copied()
            .unwrap_or(0)
    }

    /// A kubeconfig for this server: plain HTTP, no credentials.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    \
             cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\n",
            self.url()
        )
    }

    /// Writes [`FakeApi::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn ns_key(kind: Kind, namespace: &str) -> String {
    if kind.namespaced() {
        namespace.to_string()
    } else {
        String::new()
    }
}

/// The key of a test-built object; a malformed one is a bug in the test.
fn key_of(kind: Kind, object: &Value) -> Key {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{} without metadata.name: {object}", kind.name()));
    let namespace = if kind.namespaced() {
        object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{} without metadata.namespace: {object}", kind.name()))
    } else {
        ""
    };
    (kind, namespace.to_string(), name.to_string())
}

type Body = BoxBody<Bytes, io::Error>;

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        // Subscribed before the outage check, so a cut that races this accept still reaches it.
        let mut dropped = shared.dropped.subscribe();
        if shared.lock().down {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { handle(&shared, request) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            // Dropping the connection future closes the socket mid-stream: an abrupt cut. The
            // cut is checked first, so nothing is written after `drop_connections` returns.
            tokio::select! {
                biased;
                _ = dropped.changed() => {}
                _ = connection => {}
            }
        });
    }
}

/// Answers one request; an `Err` closes the connection without an answer (an outage).
fn handle(shared: &Arc<Shared>, request: Request<Incoming>) -> Result<Response<Body>, io::Error> {
    let path = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_string(), |pq| pq.to_string());
    {
        let mut state = shared.lock();
        if state.down {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "outage"));
        }
        state.requests.push(LoggedRequest {
            method: request.method().to_string(),
            path: path.clone(),
        });
    }
    if request.method() != Method::GET {
        return Ok(status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!(
                "the fake API server serves only GET, not {}",
                request.method()
            ),
        ));
    }
    if request.uri().path() == "/version" {
        return Ok(json_response(StatusCode::OK, version_info().to_string()));
    }
    let Some(route) = Route::parse(request.uri().path()) else {
        return Ok(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("the server could not find the requested resource: {path}"),
        ));
    };
    let query = match Query::parse(request.uri().query().unwrap_or("")) {
        Ok(query) => query,
        Err(message) => return Ok(status(StatusCode::BAD_REQUEST, "BadRequest", &message)),
    };
    let mut state = shared.lock();
    if state.forbidden.contains(&route.kind) {
        return Ok(forbidden(&route, &query));
    }
    if let Err(causes) = query.validate(state.watch_list) {
        return Ok(invalid(&causes));
    }
    if let Some(name) = &route.name {
        let key = (
            route.kind,
            route.namespace.clone().unwrap_or_default(),
            name.clone(),
        );
        return Ok(match state.current(&key) {
            Some(object) => json_response(StatusCode::OK, object.to_string()),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("{} \"{name}\" not found", route.kind.plural()),
            ),
        });
    }
    let begins_listing = if query.watch {
        query.send_initial_events == Some(true)
    } else {
        query.continue_token.is_none()
    };
    if begins_listing {
        *state.listings.entry(route.kind).or_default() += 1;
    }
    if query.watch {
        *state.watches.entry(route.kind).or_default() += 1;
        Ok(start_watch(shared, &mut state, route, query))
    } else {
        *state.lists.entry(route.kind).or_default() += 1;
        Ok(list(&state, &route, &query))
    }
}

/// Which collection (or object) a path names.
struct Route {
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
}

impl Route {
    /// `/api/v1/{plural}`, `/api/v1/namespaces/{ns}/{plural}[/{name}]`, the same under
    /// `/apis/discovery.k8s.io/v1`, and `/api/v1/namespaces/{name}`.
    fn parse(path: &str) -> Option<Route> {
        let rest = path.trim_end_matches('/');
        let (api_version, rest) = if let Some(rest) = rest.strip_prefix("/api/v1/") {
            ("v1", rest)
        } else {
            (
                "discovery.k8s.io/v1",
                rest.strip_prefix("/apis/discovery.k8s.io/v1/")?,
            )
        };
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return None;
        }
        let route = |plural: &str, namespace: Option<&str>, name: Option<&str>| {
            let kind = Kind::from_plural(api_version, plural)?;
            if namespace.is_some() && !kind.namespaced() {
                return None;
            }
            Some(Route {
                kind,
                namespace: namespace.map(str::to_string),
                name: name.map(str::to_string),
            })
        };
        match segments.as_slice() {
            [plural] => route(plural, None, None),
            ["namespaces", name] => route("namespaces", None, Some(name)),
            ["namespaces", namespace, plural] => route(plural, Some(namespace), None),
            ["namespaces", namespace, plural, name] => route(plural, Some(namespace), Some(name)),
            _ => None,
        }
    }
}

/// The query parameters the fake honours.
#[derive(Default)]
struct Query {
    watch: bool,
    resource_version: Option<u64>,
    /// `resourceVersionMatch`, when given.
    version_match: Option<VersionMatch>,
    limit: Option<usize>,
    /// A continued list: the version it lists at, and the namespace and name of the last
    /// object the previous page returned.
    continue_token: Option<(u64, String, String)>,
    timeout: Option<Duration>,
    bookmarks: bool,
    send_initial_events: Option<bool>,
    labels: LabelSelector,
    fields: Vec<(String, String)>,
}

impl Query {
    fn parse(query: &str) -> Result<Query, String> {
        let mut parsed = Query::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).ok_or_else(|| format!("bad encoding in {pair}"))?;
            let number = |what: &str| {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{what}: not a number: {value:?}"))
            };
            match name {
                "watch" => parsed.watch = value == "true" || value == "1",
                "resourceVersion" if value.is_empty() => {}
                "resourceVersion" => parsed.resource_version = Some(number("resourceVersion")?),
                "resourceVersionMatch" => match value.as_str() {
                    "Exact" => parsed.version_match = Some(VersionMatch::Exact),
                    "NotOlderThan" => parsed.version_match = Some(VersionMatch::NotOlderThan),
                    "" => {}
                    other => return Err(format!("unknown resourceVersionMatch {other:?}")),
                },
                "limit" => parsed.limit = Some(number("limit")? as usize).filter(|&l| l > 0),
                "continue" if value.is_empty() => {}
                "continue" => {
                    // `{rv}/{namespace}/{name}`, as `list` writes it.
                    let token = value
                        .split_once('/')
                        .and_then(|(rv, key)| {
                            let (namespace, name) = key.split_once('/')?;
                            let rv = rv.parse().ok()?;
                            (!name.is_empty()).then(|| (rv, namespace.into(), name.into()))
                        })
                        .ok_or_else(|| format!("continue: malformed token {value:?}"))?;
                    parsed.continue_token = Some(token);
                }
                "timeoutSeconds" => {
                    parsed.timeout = Some(Duration::from_secs(number("timeoutSeconds")?))
                }
                "allowWatchBookmarks" => parsed.bookmarks = value == "true" || value == "1",
                "sendInitialEvents" => parsed.send_initial_events = Some(value == "true"),
                "labelSelector" => {
                    parsed.labels = LabelSelector::parse(&value)
                        .map_err(|e| format!("labelSelector {value:?}: {e}"))?
                }
                "fieldSelector" => parsed.fields = parse_fields(&value)?,
                // Harmless knobs a client may send.
                "pretty" | "timeout" => {}
                other => return Err(format!("unsupported query parameter {other:?}")),
            }
        }
        Ok(parsed)
    }

    /// The checks the API server makes of list and watch options before serving them (as v1.36
    /// validates them), with `watch_list` the WatchList feature gate: the causes of a refusal,
    /// as `(field, message)`.
    fn validate(&self, watch_list: bool) -> Result<(), Vec<(&'static str, &'static str)>> {
        let mut causes = Vec::new();
        if !self.watch {
            if self.send_initial_events.is_some() {
                causes.push((
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden for list",
                ));
            }
        } else if self.send_initial_events.is_some() {
            if self.version_match != Some(VersionMatch::NotOlderThan) {
                causes.push((
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if !watch_list {
                causes.push((
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden for watch unless the WatchList feature \
                     gate is enabled",
                ));
            }
        } else if self.version_match.is_some() {
            causes.push((
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
        if causes.is_empty() {
            Ok(())
        } else {
            Err(causes)
        }
    }

    fn matches(&self, route: &Route, object: &Value) -> bool {
        let metadata = &object["metadata"];
        let text = |field: &str| metadata[field].as_str().unwrap_or("");
        if let Some(namespace) = &route.namespace {
            if text("namespace") != namespace {
                return false;
            }
        }
        let fields_match = self
            .fields
            .iter()
            .all(|(field, value)| match field.as_str() {
                "metadata.name" => text("name") == value,
                _ => text("namespace") == value,
            });
        let labels = &metadata["labels"];
        fields_match
            && self
                .labels
                .matches(|key| labels.get(key).and_then(Value::as_str))
    }

    /// The event a watch with this query sends for `change` (of its kind), if any: as the API
    /// server's watch cache decides it from whether the object matched before and after.
    fn event(&self, route: &Route, change: &Change) -> Option<String> {
        let now = change.event != "DELETED" && self.matches(route, &change.object);
        let before = (change.previous.as_deref()).is_some_and(|p| self.matches(route, p));
        match (before, now) {
            (false, true) => Some(event_line("ADDED", &change.object)),
            (true, true) => Some(event_line(change.event, &change.object)),
            (true, false) if change.event == "DELETED" => {
                Some(event_line("DELETED", &change.object))
            }
            (true, false) => {
                // Relabelled out of the selector: a delete of what the watch last saw.
                let mut last = change.previous.as_deref().cloned().unwrap_or(Value::Null);
                last["metadata"]["resourceVersion"] = change.rv.to_string().into();
                Some(event_line("DELETED", &last))
            }
            (false, false) => None,
        }
    }
}

/// `resourceVersionMatch`: how a list's or watch's resourceVersion is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum VersionMatch {
    /// At exactly that version.
    Exact,
    /// At that version or any newer one.
    NotOlderThan,
}

/// `metadata.name=x,metadata.namespace=y`; other fields are refused, as for most kinds.
fn parse_fields(selector: &str) -> Result<Vec<(String, String)>, String> {
    selector
        .split(',')
        .filter(|term| !term.is_empty())
        .map(|term| {
            let (field, value) = term
                .split_once("==")
                .or_else(|| term.split_once('='))
                .ok_or_else(|| format!("fieldSelector: unsupported term {term:?}"))?;
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(format!("fieldSelector: field {field:?} is not supported"));
            }
            Ok((field.to_string(), value.to_string()))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` of a query value; `None` when malformed.
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// One page of the collection, at the version the query asks for. `remainingItemCount`
/// (optional in the API) is left out: counting it would walk the rest of the collection for
/// every page.
fn list(state: &State, route: &Route, query: &Query) -> Response<Body> {
    let exact = query.version_match == Some(VersionMatch::Exact);
    let (rv, after) = if let Some((rv, namespace, name)) = &query.continue_token {
        if *rv < state.compacted {
            return status(
                StatusCode::GONE,
                "Expired",
                "The provided continue parameter is too old to display a consistent list \
                 result. You can start a new list without the continue parameter.",
            );
        }
        (*rv, Some((namespace.as_str(), name.as_str())))
    } else {
        match query.resource_version {
            None | Some(0) => (state.rv, None),
            Some(rv) if rv > state.rv => {
                return status(
                    StatusCode::GATEWAY_TIMEOUT,
                    "Timeout",
                    &format!("Too large resource version: {rv}, current: {}", state.rv),
                )
            }
            Some(rv) if exact && rv < state.compacted => {
                return status(
                    StatusCode::GONE,
                    "Expired",
                    &format!("too old resource version: {rv} ({})", state.compacted),
                )
            }
            Some(rv) if exact => (rv, None),
            Some(_) => (state.rv, None),
        }
    };
    let mut matching = state
        .objects_from(route.kind, rv, after)
        .filter(|(_, object)| query.matches(route, &object.value));
    let mut items = String::new();
    let mut last = None;
    for (key, object) in matching.by_ref().take(query.limit.unwrap_or(usize::MAX)) {
        if !items.is_empty() {
            items.push(',');
        }
        items.push_str(&object.item);
        last = Some(key);
    }
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if let (Some((_, namespace, name)), Some(_)) = (last, matching.next()) {
        metadata["continue"] = format!("{rv}/{namespace}/{name}").into();
    }
    let body = format!(
        r#"{{"kind":{},"apiVersion":{},"metadata":{metadata},"items":[{items}]}}"#,
        Value::from(format!("{}List", route.kind.name())),
        Value::from(route.kind.api_version()),
    );
    json_response(StatusCode::OK, body)
}

/// What one watch stream sends, and from where.
struct WatchSpec {
    route: Route,
    query: Query,
    since: u64,
    expired: watch::Receiver<u64>,
    interval: Duration,
}

/// Opens a watch stream: a task writes newline-delimited events into the response body.
fn start_watch(
    shared: &Arc<Shared>,
    state: &mut State,
    route: Route,
    query: Query,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, io::Error>>(64);
    let mut first = Vec::new();
    let since = match query.resource_version {
        // A streaming list: the current state (never older than asked), then its end.
        _ if query.send_initial_events == Some(true) => {
            for (_, object) in state.objects_from(route.kind, state.rv, None) {
                if query.matches(&route, &object.value) {
                    first.push(added_line(route.kind, &object.item));
                }
            }
            if state.cut_streams {
                let _ = tx.try_send(Ok(Frame::data(Bytes::from(first.concat()))));
                return stream_response(rx);
            }
            if query.bookmarks {
                first.push(bookmark_line(route.kind, state.rv, true));
            }
            state.rv
        }
        Some(rv) if rv > 0 && rv < state.compacted => {
            // What a real API server does: 200, then an in-stream 410, then the end.
            let error = expired_event(rv, state.compacted);
            let _ = tx.try_send(Ok(Frame::data(Bytes::from(error))));
            return stream_response(rx);
        }
        Some(rv) if rv > 0 => rv,
        // No version, or 0: start with the current state as synthetic ADDED events.
        _ => {
            for (_, object) in state.objects_from(route.kind, state.rv, None) {
                if query.matches(&route, &object.value) {
                    first.push(added_line(route.kind, &object.item));
                }
            }
            state.rv
        }
    };
    *state.open_watches.entry(route.kind).or_default() += 1;
    let spec = WatchSpec {
        route,
        query,
        since,
        // Subscribed under the state lock, so an `expire` after this answer always reaches it.
        expired: shared.expired.subscribe(),
        interval: state.bookmark_interval,
    };
    tokio::spawn(run_watch(shared.clone(), spec, first, tx));
    stream_response(rx)
}

/// Decrements the open-watch count of a kind when a watch task ends, however it ends.
struct OpenWatch(Arc<Shared>, Kind);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        if let Some(open) = self.0.lock().open_watches.get_mut(&self.1) {
            *open -= 1;
        }
    }
}

async fn run_watch(
    shared: Arc<Shared>,
    mut spec: WatchSpec,
    first: Vec<String>,
    tx: mpsc::Sender<Result<Frame<Bytes>, io::Error>>,
) {
    let _open = OpenWatch(shared.clone(), spec.route.kind);
    let mut changed = shared.changed.subscribe();
    let deadline = spec.query.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut bookmarks = tokio::time::interval(spec.interval);
    bookmarks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    bookmarks.tick().await;
    let mut pending = first;
    let mut bookmark_due = false;
    loop {
        {
            let state = shared.lock();
            let start = state.history.partition_point(|c| c.rv <= spec.since);
            for change in &state.history[start..] {
                if change.kind == spec.route.kind {
                    pending.extend(spec.query.event(&spec.route, change));
                }
            }
            spec.since = state.rv;
            if bookmark_due {
                pending.push(bookmark_line(spec.route.kind, state.rv, false));
                bookmark_due = false;
            }
        }
        // Lines go out in chunks of about 64 KiB, as a server's buffered writer sends them: a
        // streaming list of a large cluster is then not one frame per object.
        let mut chunk = String::new();
        let mut lines = pending.drain(..).peekable();
        while let Some(line) = lines.next() {
            chunk.push_str(&line);
            if chunk.len() >= 64 * 1024 || lines.peek().is_none() {
                let frame = Frame::data(Bytes::from(std::mem::take(&mut chunk)));
                if tx.send(Ok(frame)).await.is_err() {
                    return;
                }
            }
        }
        tokio::select! {
            _ = changed.changed() => {}
            _ = bookmarks.tick(), if spec.query.bookmarks => bookmark_due = true,
            _ = spec.expired.changed() => {
                let compacted = shared.lock().compacted;
                let _ = tx.send(Ok(Frame::data(Bytes::from(expired_event(spec.since, compacted))))).await;
                return;
            }
            _ = sleep_until(deadline) => return,
            _ = tx.closed() => return,
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn event_line(event: &str, object: &Value) -> String {
    format!("{{\"type\":\"{event}\",\"object\":{object}}}\n")
}

/// An ADDED event for a stored object from its list item text (which lacks kind and
/// apiVersion, as list items do).
fn added_line(kind: Kind, item: &str) -> String {
    let rest = item.strip_prefix('{').unwrap_or(item);
    let separator = if rest.starts_with('}') { "" } else { "," };
    format!(
        "{{\"type\":\"ADDED\",\"object\":{{\"kind\":\"{}\",\"apiVersion\":\"{}\"{separator}{rest}}}\n",
        kind.name(),
        kind.api_version()
    )
}

fn bookmark_line(kind: Kind, rv: u64, initial_events_end: bool) -> String {
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if initial_events_end {
        metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    let object = json!({
        "kind": kind.name(),
        "apiVersion": kind.api_version(),
        "metadata": metadata,
    });
    event_line("BOOKMARK", &object)
}

fn expired_event(asked: u64, compacted: u64) -> String {
    let object = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("too old resource version: {asked} ({compacted})"),
        "reason": "Expired",
        "code": 410,
    });
    event_line("ERROR", &object)
}

/// `422 Invalid` for list or watch options the API server refuses, one cause per field.
fn invalid(causes: &[(&str, &str)]) -> Response<Body> {
    let message = causes
        .iter()
        .map(|(field, message)| format!("{field}: Forbidden: {message}"))
        .collect::<Vec<_>>()
        .join(", ");
    let causes: Vec<Value> = (causes.iter())
        .map(|(field, message)| {
            json!({ "reason": "FieldValueForbidden", "message": format!("Forbidden: {message}"), "field": field })
        })
        .collect();
    let details = json!({ "group": "meta.k8s.io", "kind": "ListOptions", "causes": causes });
    status_with_details(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        &format!("ListOptions.meta.k8s.io \"\" is invalid: {message}"),
        Some(details),
    )
}

fn forbidden(route: &Route, query: &Query) -> Response<Body> {
    let verb = if query.watch { "watch" } else { "list" };
    let scope = route.namespace.as_ref().map_or_else(
        || "at the cluster scope".to_string(),
        |ns| format!("in the namespace \"{ns}\""),
    );
    let message = format!(
        "{plural}{group} is forbidden: User \"system:anonymous\" cannot {verb} resource \
         \"{plural}\" in API group \"{group_name}\" {scope}",
        plural = route.kind.plural(),
        group = if route.kind.group().is_empty() {
            String::new()
        } else {
            format!(".{}", route.kind.group())
        },
        group_name = route.kind.group(),
    );
    let details = json!({ "group": route.kind.group(), "kind": route.kind.plural() });
    status_with_details(StatusCode::FORBIDDEN, "Forbidden", &message, Some(details))
}

fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "36",
        "gitVersion": "v1.36.0-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn full(body: String) -> Body {
    Full::new(Bytes::from(body))
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn json_response(code: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    status_with_details(code, reason, message, None)
}

/// A `Status` answer, as the API server sends for every failure.
fn status_with_details(
    code: StatusCode,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Response<Body> {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(details) = details {
        body["details"] = details;
    }
    json_response(code, body.to_string())
}

fn stream_response(rx: mpsc::Receiver<Result<Frame<Bytes>, io::Error>>) -> Response<Body> {
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    });
    let mut response = Response::new(StreamBody::new(frames).boxed());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A port of a Service or an EndpointSlice: `{"name", "port", "protocol"}`.
pub fn port(name: &str, port: u16, protocol: &str) -> Value {
    json!({ "name": name, "port": port, "protocol": protocol })
}

/// A Namespace.
pub fn namespace(name: &str) -> Value {
    json!({ "metadata": { "name": name }, "status": { "phase": "Active" } })
}

/// A ClusterIP Service with `cluster_ips` (one per family, the first also as `clusterIP`).
pub fn service(namespace: &str, name: &str, cluster_ips: &[&str], ports: &[Value]) -> Value {
    let families: Vec<&str> = cluster_ips
        .iter()
        .map(|ip| if ip.contains(':') { "IPv6" } else { "IPv4" })
        .collect();
    json!({
        "metadata": { "name": name, "namespace": namespace },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ips.first().copied().unwrap_or(""),
            "clusterIPs": cluster_ips,
            "ipFamilies": families,
            "ports": ports,
        },
    })
}

/// The Services every cluster of the tests has: `default/kubernetes` (10.96.0.1, `https`
/// 443/TCP), `default/web` (10.96.0.20, `http` 80/TCP) and `kube-system/kube-dns` (10.96.0.10,
/// `dns` 53/UDP and `dns-tcp` 53/TCP).
pub fn core_services() -> [Value; 3] {
    let tcp = |name: &str, number: u16| port(name, number, "TCP");
    [
        service(
            "default",
            "kubernetes",
            &["10.96.0.1"],
            &[tcp("https", 443)],
        ),
        service("default", "web", &["10.96.0.20"], &[tcp("http", 80)]),
        service(
            "kube-system",
            "kube-dns",
            &["10.96.0.10"],
            &[port("dns", 53, "UDP"), tcp("dns-tcp", 53)],
        ),
    ]
}

/// A headless Service (`clusterIP: None`).
pub fn headless_service(namespace: &str, name: &str, ports: &[Value]) -> Value {
    json!({
        "metadata": { "name": name, "namespace": namespace },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "None",
            "clusterIPs": ["None"],
            "ports": ports,
        },
    })
}

/// An ExternalName Service pointing at `target`.
pub fn external_name_service(namespace: &str, name: &str, target: &str) -> Value {
    json!({
        "metadata": { "name": name, "namespace": namespace },
        "spec": { "type": "ExternalName", "externalName": target },
    })
}

/// One endpoint of an EndpointSlice; `ready: None` leaves the condition unset.
pub fn endpoint(addresses: &[&str], hostname: Option<&str>, ready: Option<bool>) -> Value {
    let mut endpoint = json!({ "addresses": addresses, "conditions": {} });
    if let Some(hostname) = hostname {
        endpoint["hostname"] = hostname.into();
    }
    if let Some(ready) = ready {
        endpoint["conditions"]["ready"] = ready.into();
    }
    endpoint
}

/// An EndpointSlice of `service` (the `kubernetes.io/service-name` label), of `address_type`
/// (`IPv4` or `IPv6`).
pub fn endpoint_slice(
    namespace: &str,
    name: &str,
    service: &str,
    address_type: &str,
    ports: &[Value],
    endpoints: &[Value],
) -> Value {
    json!({
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
        },
        "addressType": address_type,
        "ports": ports,
        "endpoints": endpoints,
    })
}

/// `slice` with the `endpoints.kubernetes.io/last-change-trigger-time` annotation set to `time`.
pub fn with_trigger_time(mut slice: Value, time: &str) -> Value {
    slice["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"] =
        time.into();
    slice
}

/// The current time in RFC 3339, as the trigger-time annotation carries it.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// A running Pod with `ip`.
pub fn pod(namespace: &str, name: &str, ip: &str) -> Value {
    json!({
        "metadata": { "name": name, "namespace": namespace },
        "spec": { "containers": [{ "name": "main", "image": "registry.k8s.io/pause:3.10" }] },
        "status": { "phase": "Running", "podIP": ip, "podIPs": [{ "ip": ip }] },
    })
}
