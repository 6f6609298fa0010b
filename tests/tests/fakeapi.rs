//! The fake API server driven by the real `kube` client: paginated lists, watch events,
//! bookmarks and timeouts, in-stream 410 leading to a re-list, 403 as an error, resumption
//! after dropped connections and outages, bad requests answered with a `Status`, label
//! selectors on lists and watches (an object relabelled into or out of one is ADDED or
//! DELETED), streaming lists (`sendInitialEvents`) and their refusal, and a kubeconfig the
//! client loads.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::pin::pin;
use std::time::{Duration, Instant};

use clusterdns_testkit::fakeapi::{self, FakeApi, Kind};
use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;

/// How long any one step may take before the test fails.
const STEP: Duration = Duration::from_secs(5);

fn client(api: &FakeApi) -> Client {
    let url = api.url().parse().expect("url");
    Client::try_from(kube::Config::new(url)).expect("client")
}

fn svc(namespace: &str, name: &str, ip: &str) -> serde_json::Value {
    fakeapi::service(namespace, name, &[ip], &[fakeapi::port("http", 80, "TCP")])
}

/// The next item of `stream`, failing the test after [`STEP`].
async fn next<S: Stream + Unpin>(stream: &mut S, what: &str) -> S::Item {
    match tokio::time::timeout(STEP, stream.next()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("{what}: stream ended"),
        Err(_) => panic!("{what}: nothing within {STEP:?}"),
    }
}

/// Drives a Service watcher on its own task (it only makes requests while polled), forwarding
/// its events; the task ends when the receiver is dropped.
fn spawn_watcher(services: Api<Service>, backoff: bool) -> Events {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let stream = watcher::watcher(services, watcher::Config::default());
        let mut stream = if backoff {
            stream.default_backoff().boxed()
        } else {
            stream.boxed()
        };
        while let Some(event) = stream.next().await {
            if tx.send(event).is_err() {
                return;
            }
        }
    });
    tokio_stream_of(rx)
}

type Events = std::pin::Pin<Box<dyn Stream<Item = watcher::Result<Event<Service>>> + Send>>;

fn tokio_stream_of(
    rx: tokio::sync::mpsc::UnboundedReceiver<watcher::Result<Event<Service>>>,
) -> Events {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
        .boxed()
}

/// Reads a watcher up to `InitDone`; returns the names of the listed objects.
async fn initial<S>(stream: &mut S) -> Vec<String>
where
    S: Stream<Item = watcher::Result<Event<Service>>> + Unpin,
{
    let mut names = Vec::new();
    loop {
        match next(stream, "initial list").await {
            Ok(Event::Init) => names.clear(),
            Ok(Event::InitApply(service)) => names.push(service.metadata.name.unwrap_or_default()),
            Ok(Event::InitDone) => return names,
            other => panic!("unexpected during the initial list: {other:?}"),
        }
    }
}

/// Waits (polling, bounded) until `condition` holds.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {STEP:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn name_of(event: &watcher::Result<Event<Service>>) -> Option<&str> {
    match event {
        Ok(Event::Apply(s) | Event::Delete(s) | Event::InitApply(s)) => s.metadata.name.as_deref(),
        _ => None,
    }
}

#[tokio::test]
async fn watcher_lists_then_sees_added_modified_and_deleted() {
    let api = FakeApi::start();
    api.upsert(Kind::Service, svc("default", "a", "10.96.0.1"));
    api.upsert(Kind::Service, svc("kube-system", "b", "10.96.0.2"));
    api.upsert(Kind::Namespace, fakeapi::namespace("default"));
    let services: Api<Service> = Api::all(client(&api));
    let mut stream = spawn_watcher(services, false);
    let mut listed = initial(&mut stream).await;
    listed.sort();
    assert_eq!(listed, ["a", "b"]);

    let added = api.upsert(Kind::Service, svc("default", "c", "10.96.0.3"));
    match next(&mut stream, "added").await {
        Ok(Event::Apply(s)) => {
            assert_eq!(s.metadata.name.as_deref(), Some("c"));
            assert_eq!(s.metadata.resource_version, Some(added.to_string()));
            let spec = s.spec.expect("spec");
            assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.3"));
        }
        other => panic!("expected Apply(c), got {other:?}"),
    }
    api.upsert(Kind::Service, svc("default", "c", "10.96.0.33"));
    match next(&mut stream, "modified").await {
        Ok(Event::Apply(s)) => {
            assert_eq!(
                s.spec.and_then(|s| s.cluster_ip).as_deref(),
                Some("10.96.0.33")
            )
        }
        other => panic!("expected Apply(c) with the new IP, got {other:?}"),
    }
    let deleted = api
        .delete(Kind::Service, "default", "a")
        .expect("a existed");
    match next(&mut stream, "deleted").await {
        Ok(Event::Delete(s)) => {
            assert_eq!(s.metadata.name.as_deref(), Some("a"));
            assert_eq!(s.metadata.resource_version, Some(deleted.to_string()));
        }
        other => panic!("expected Delete(a), got {other:?}"),
    }
    assert_eq!(api.delete(Kind::Service, "default", "a"), None);
    assert_eq!(api.lists(Kind::Service), 1);
    assert_eq!(api.watches(Kind::Service), 1);
    assert_eq!(api.lists(Kind::Namespace), 0);
    let watch = api
        .requests()
        .into_iter()
        .find(|r| r.path.contains("watch=true"))
        .expect("a watch request");
    assert!(
        watch.path.starts_with("/api/v1/services?")
            && watch.path.contains("allowWatchBookmarks=true"),
        "{watch:?}"
    );
}

#[tokio::test]
async fn lists_come_in_pages_of_500_at_one_version() {
    let api = FakeApi::start();
    for i in 0..1203 {
        let ip = format!("10.96.{}.{}", i / 250, i % 250 + 1);
        api.upsert(Kind::Service, svc("default", &format!("s{i:04}"), &ip));
    }
    let services: Api<Service> = Api::all(client(&api));
    let mut stream = spawn_watcher(services, false);
    let listed = initial(&mut stream).await;
    assert_eq!(listed.len(), 1203);
    assert_eq!(api.lists(Kind::Service), 3, "three pages of at most 500");
    let continued = api
        .requests()
        .iter()
        .filter(|r| r.path.contains("continue="))
        .count();
    assert_eq!(continued, 2);

    // A page asked for at an older version still shows that version.
    let services: Api<Service> = Api::all(client(&api));
    let first = services
        .list(&ListParams::default().limit(2))
        .await
        .expect("page 1");
    api.delete(Kind::Service, "default", "s0002");
    api.upsert(Kind::Service, svc("default", "s0000a", "10.99.0.1"));
    let token = first.metadata.continue_.clone().expect("continue token");
    let second = services
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .expect("page 2");
    let names: Vec<_> = second
        .items
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    assert_eq!(names, ["s0002", "s0003"]);
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
}

#[tokio::test]
async fn expire_sends_410_and_the_watcher_relists_the_final_state() {
    let api = FakeApi::start();
    api.upsert(Kind::Service, svc("default", "a", "10.96.0.1"));
    api.upsert(Kind::Service, svc("default", "b", "10.96.0.2"));
    let services: Api<Service> = Api::all(client(&api));
    let mut stream = spawn_watcher(services, false);
    initial(&mut stream).await;
    until("watch open", || api.open_watches(Kind::Service) == 1).await;

    api.expire();
    match next(&mut stream, "410").await {
        Err(watcher::Error::WatchError(status)) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
            assert!(
                status.message.contains("too old resource version"),
                "{status:?}"
            );
        }
        other => panic!("expected the in-stream 410, got {other:?}"),
    }
    // Changes racing the re-list arrive in it or after it: the watcher converges either way.
    api.delete(Kind::Service, "default", "a");
    api.upsert(Kind::Service, svc("default", "c", "10.96.0.3"));
    let mut names = std::collections::BTreeSet::new();
    while names != ["b", "c"].map(String::from).into() {
        match next(&mut stream, "convergence").await {
            Ok(Event::Init) => names.clear(),
            Ok(Event::InitApply(s) | Event::Apply(s)) => {
                names.insert(s.metadata.name.unwrap_or_default());
            }
            Ok(Event::Delete(s)) => {
                names.remove(&s.metadata.name.unwrap_or_default());
            }
            Ok(Event::InitDone) => {}
            Err(e) => panic!("no other error expected: {e}"),
        }
    }
    assert_eq!(api.lists(Kind::Service), 2, "one re-list after the 410");
}

#[tokio::test]
async fn a_watch_from_before_the_compaction_gets_an_in_stream_410_then_ends() {
    let api = FakeApi::start();
    let old = api.upsert(Kind::Service, svc("default", "a", "10.96.0.1"));
    api.upsert(Kind::Service, svc("default", "b", "10.96.0.2"));
    api.expire();
    let services: Api<Service> = Api::all(client(&api));
    let mut stream = pin!(services
        .watch(&WatchParams::default(), &old.to_string())
        .await
        .expect("200 first, as a real API server"));
    match next(&mut stream, "410").await {
        Ok(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected an ERROR event, got {other:?}"),
    }
    let end = tokio::time::timeout(STEP, stream.next()).await;
    assert!(matches!(end, Ok(None)), "the stream ends after the 410");
}

#[tokio::test]
async fn bookmarks_arrive_and_timeout_seconds_ends_the_stream() {
    let api = FakeApi::start();
    api.set_bookmark_interval(Duration::from_millis(100));
    let at = api.upsert(Kind::Service, svc("default", "a", "10.96.0.1"));
    let services: Api<Service> = Api::all(client(&api));
    let started = Instant::now();
    let mut stream = pin!(services
        .watch(&WatchParams::default().timeout(1), &at.to_string())
        .await
        .expect("watch"));
    let mut bookmarks = 0;
    while let Some(event) = tokio::time::timeout(STEP, stream.next())
        .await
        .expect("the stream ends by itself")
    {
        match event {
            Ok(WatchEvent::Bookmark(bookmark)) => {
                assert_eq!(bookmark.metadata.resource_version, at.to_string());
                bookmarks += 1;
            }
            other => panic!("expected only bookmarks, got {other:?}"),
        }
    }
    let took = started.elapsed();
    assert!(bookmarks >= 5, "{bookmarks} bookmarks in a second");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "timeoutSeconds=1 ended the stream after {took:?}"
    );
}

#[tokio::test]
async fn forbidden_is_a_403_status_until_lifted() {
    let api = FakeApi::start();
    api.upsert(Kind::Service, svc("default", "a", "10.96.0.1"));
    api.forbid(Kind::EndpointSlice, true);
    let client = client(&api);
    let slices: Api<EndpointSlice> = Api::all(client.clone());
    match slices.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403);
            assert_eq!(status.reason, "Forbidden");
            assert!(
                status
                    .message
                    .contains("endpointslices.discovery.k8s.io is forbidden"),
                "{status:?}"
            );
        }
        other => panic!("expected 403, got {other:?}"),
    }
    let mut stream = pin!(watcher::watcher(slices.clone(), watcher::Config::default()));
    assert!(matches!(next(&mut stream, "Init").await, Ok(Event::Init)));
    assert!(matches!(
        next(&mut stream, "403").await,
        Err(watcher::Error::InitialListFailed(kube::Error::Api(ref s))) if s.code == 403
    ));
    // Other kinds are not affected.
    let services: Api<Service> = Api::all(client);
    assert_eq!(
        services
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );

    api.forbid(Kind::EndpointSlice, false);
    api.upsert(
        Kind::EndpointSlice,
        fakeapi::endpoint_slice(
            "default",
            "a-1",
            "a",
            "IPv4",
            &[fakeapi::port("http", 80, "TCP")],
            &[fakeapi::endpoint(&["10.1.0.1"], Some("a0"), Some(true))],
        ),
    );
    let listed = slices
        .list(&ListParams::default())
        .await
        .expect("allowed again");
    assert_eq!(listed.items.len(), 1);
    let slice = &listed.items[0];
    assert_eq!(
        slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name")),
        Some(&"a".to_string())
    );
    let endpoints = slice.endpoints.as_deref().unwrap_or_default();
    assert_eq!(endpoints[0].hostname.as_deref(), Some("a0"));
}

#[tokio::test]
async fn dropped_connections_resume_the_watch_without_a_relist() {
    let api = FakeApi::start();
    api.upsert(Kind::Service, svc("default", "a", "10.96.0.1"));
    let services: Api<Service> = Api::all(client(&api));
    let mut stream = spawn_watcher(services, false);
    initial(&mut stream).await;
    until("watch open", || api.open_watches(Kind::Service) == 1).await;

    api.drop_connections();
    // A change right after the cut (most likely before the client is back) is replayed by the
    // resumed watch, which asks from the last version it saw.
    api.upsert(Kind::Service, svc("default", "b", "10.96.0.2"));
    let event = next(&mut stream, "b after the cut").await;
    assert_eq!(name_of(&event), Some("b"), "{event:?}");
    until("watch reopened", || {
        api.watches(Kind::Service) >= 2 && api.open_watches(Kind::Service) == 1
    })
    .await;
    api.upsert(Kind::Service, svc("default", "c", "10.96.0.3"));
    let event = next(&mut stream, "c on the resumed watch").await;
    assert_eq!(name_of(&event), Some("c"), "{event:?}");
    assert_eq!(api.lists(Kind::Service), 1, "resumed, not re-listed");
    assert!(api.watches(Kind::Service) >= 2);
}

#[tokio::test]
async fn an_outage_fails_requests_and_watches_resume_after_it() {
    let api = FakeApi::start();
    api.upsert(Kind::Service, svc("default", "a", "10.96.0.1"));
    let services: Api<Service> = Api::all(client(&api));
    let mut stream = spawn_watcher(services.clone(), true);
    initial(&mut stream).await;

    api.set_down(true);
    until("watch cut", || api.open_watches(Kind::Service) == 0).await;
    let failed = tokio::time::timeout(STEP, services.list(&ListParams::default()))
        .await
        .expect("fails fast");
    assert!(
        matches!(failed, Err(ref e) if !matches!(e, kube::Error::Api(_))),
        "a transport error, not a Status: {failed:?}"
    );
    api.upsert(Kind::Service, svc("default", "during", "10.96.0.9"));
    // The watcher keeps failing (and backing off) while the API is down.
    let requests_down = api.requests().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(api.requests().len(), requests_down, "nothing got through");

    api.set_down(false);
    loop {
        match next(&mut stream, "recovery").await {
            Err(_) => continue,
            event => {
                assert_eq!(name_of(&event), Some("during"), "{event:?}");
                break;
            }
        }
    }
    assert_eq!(api.lists(Kind::Service), 1);
}

/// A Service watcher with the streaming-list strategy (`sendInitialEvents`), on its own task.
fn spawn_streaming_watcher(services: Api<Service>) -> Events {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let config = watcher::Config::default().streaming_lists();
        let mut stream = watcher::watcher(services, config).boxed();
        while let Some(event) = stream.next().await {
            if tx.send(event).is_err() {
                return;
            }
        }
    });
    tokio_stream_of(rx)
}

#[tokio::test]
async fn a_streaming_list_sends_the_objects_then_the_end_bookmark_then_changes() {
    let api = FakeApi::start();
    api.upsert(Kind::Service, svc("default", "a", "10.96.0.1"));
    api.upsert(Kind::Service, svc("kube-system", "b", "10.96.0.2"));
    api.upsert(Kind::Namespace, fakeapi::namespace("default"));
    let mut stream = spawn_streaming_watcher(Api::all(client(&api)));
    let mut listed = initial(&mut stream).await;
    listed.sort();
    assert_eq!(listed, ["a", "b"]);
    assert_eq!(api.lists(Kind::Service), 0, "no list request");
    assert_eq!(api.listings(Kind::Service), 1);
    // The same stream goes on as a watch.
    api.upsert(Kind::Service, svc("default", "c", "10.96.0.3"));
    let event = next(&mut stream, "added").await;
    assert_eq!(name_of(&event), Some("c"), "{event:?}");
    assert_eq!(api.watches(Kind::Service), 1, "{:?}", api.requests());
    // After a 410 the watcher streams the list again.
    api.expire();
    loop {
        match next(&mut stream, "the 410").await {
            Err(watcher::Error::WatchError(status)) if status.code == 410 => break,
            Ok(Event::Apply(_)) => {}
            other => panic!("expected the 410, got {other:?}"),
        }
    }
    let mut listed = initial(&mut stream).await;
    listed.sort();
    assert_eq!(listed, ["a", "b", "c"]);
    assert_eq!(api.listings(Kind::Service), 2);
    assert_eq!(api.lists(Kind::Service), 0);
}

#[tokio::test]
async fn the_end_bookmark_carries_the_annotation_and_the_version() {
    let api = FakeApi::start();
    let at = api.upsert(Kind::Service, svc("default", "a", "10.96.0.1"));
    let services: Api<Service> = Api::all(client(&api));
    let params = WatchParams::default().initial_events();
    let mut stream = pin!(services.watch(&params, "").await.expect("watch"));
    match next(&mut stream, "the object").await {
        Ok(WatchEvent::Added(s)) => assert_eq!(s.metadata.name.as_deref(), Some("a")),
        other => panic!("expected ADDED a, got {other:?}"),
    }
    match next(&mut stream, "the end bookmark").await {
        Ok(WatchEvent::Bookmark(bookmark)) => {
            assert_eq!(bookmark.metadata.resource_version, at.to_string());
            let end = bookmark
                .metadata
                .annotations
                .get("k8s.io/initial-events-end");
            assert_eq!(end.map(String::as_str), Some("true"));
        }
        other => panic!("expected the end bookmark, got {other:?}"),
    }
}

#[test]
fn streaming_lists_are_validated_and_refused_when_the_feature_is_off() {
    let api = FakeApi::start();
    let streaming = "/api/v1/services?watch=true&sendInitialEvents=true&allowWatchBookmarks=true\
                     &resourceVersionMatch=NotOlderThan&timeoutSeconds=1";
    for (path, field) in [
        (
            "/api/v1/services?watch=true&sendInitialEvents=true&allowWatchBookmarks=true",
            "resourceVersionMatch",
        ),
        (
            "/api/v1/services?watch=true&resourceVersionMatch=NotOlderThan",
            "resourceVersionMatch",
        ),
        (
            "/api/v1/services?sendInitialEvents=true",
            "sendInitialEvents",
        ),
    ] {
        let (code, body) = raw(&api, "GET", path);
        assert_eq!(code, 422, "{path}: {body}");
        let status: serde_json::Value = serde_json::from_str(&body).expect("a Status body");
        assert_eq!(status["reason"], "Invalid", "{body}");
        assert_eq!(status["details"]["causes"][0]["field"], field, "{body}");
    }
    let (code, body) = raw(&api, "GET", streaming);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("k8s.io/initial-events-end"), "{body}");
    // Without bookmarks the server takes the streaming list (kube's client refuses to ask for
    // one), but the end bookmark is not sent.
    let without = "/api/v1/services?watch=true&sendInitialEvents=true\
                   &resourceVersionMatch=NotOlderThan&timeoutSeconds=1";
    let (code, body) = raw(&api, "GET", without);
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("k8s.io/initial-events-end"), "{body}");

    api.set_watch_list(false);
    let (code, body) = raw(&api, "GET", streaming);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("WatchList feature gate"), "{body}");
    assert_eq!(api.listings(Kind::Service), 2, "refusals begin no listing");
}

/// Sends one raw HTTP/1.1 request; returns the status code and the body.
fn raw(api: &FakeApi, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&api.addr(), STEP).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: fake\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

#[test]
fn bad_requests_get_a_status_and_namespaced_paths_work() {
    let api = FakeApi::start();
    api.upsert(Kind::Service, svc("default", "a", "10.96.0.1"));
    api.upsert(Kind::Service, svc("other", "b", "10.96.0.2"));
    api.upsert(Kind::Namespace, fakeapi::namespace("default"));
    api.upsert(Kind::Pod, fakeapi::pod("default", "p", "10.1.0.5"));
    for (method, path, code) in [
        ("GET", "/api/v1/nonsense", 404),
        ("GET", "/apis/apps/v1/deployments", 404),
        ("GET", "/api/v1/namespaces/default/namespaces", 404),
        ("GET", "/api/v1/services?limit=many", 400),
        ("GET", "/api/v1/services?continue=garbage", 400),
        ("GET", "/api/v1/services?resourceVersion=%zz", 400),
        ("GET", "/api/v1/services?frobnicate=1", 400),
        ("GET", "/api/v1/services?labelSelector=app+in+(a", 400),
        ("GET", "/api/v1/services?labelSelector=app%3E1", 400),
        ("GET", "/api/v1/services?resourceVersion=99999", 504),
        ("POST", "/api/v1/services", 405),
        ("GET", "/api/v1/namespaces/default/services/missing", 404),
        ("GET", "/version", 200),
        ("GET", "/api/v1/namespaces/default", 200),
        ("GET", "/api/v1/namespaces/default/pods/p", 200),
    ] {
        let (got, body) = raw(&api, method, path);
        assert_eq!(got, code, "{method} {path}: {body}");
        if code != 200 {
            let status: serde_json::Value = serde_json::from_str(&body).expect("a Status body");
            assert_eq!(status["kind"], "Status", "{body}");
            assert_eq!(status["code"], code, "{body}");
        }
    }
    let (code, body) = raw(&api, "GET", "/api/v1/namespaces/default/services");
    assert_eq!(code, 200);
    let list: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(list["kind"], "ServiceList");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["items"][0]["metadata"]["name"], "a");
    assert!(list["items"][0]["metadata"]["resourceVersion"].is_string());
    let (_, body) = raw(
        &api,
        "GET",
        "/api/v1/services?fieldSelector=metadata.namespace%3Dother",
    );
    assert!(
        body.contains("\"name\":\"b\"") && !body.contains("\"name\":\"a\""),
        "{body}"
    );
    // The 504 (too large a version) was a list too.
    assert_eq!(api.lists(Kind::Service), 3);
    assert_eq!(api.requests().len(), 17);
}

#[tokio::test]
async fn the_kubeconfig_points_the_client_at_the_fake() {
    let api = FakeApi::start();
    api.upsert(Kind::Service, svc("default", "a", "10.96.0.1"));
    let dir = std::env::temp_dir().join(format!("fakeapi-kubeconfig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("kubeconfig");
    api.write_kubeconfig(&path).expect("write");
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("parses");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("usable");
    let services: Api<Service> = Api::all(Client::try_from(config).expect("client"));
    let listed = services.list(&ListParams::default()).await.expect("list");
    assert_eq!(listed.items.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The next event of a raw watch, checked to be `event` of `name`; returns its object.
async fn expect<S>(stream: &mut S, event: &str, name: &str) -> Service
where
    S: Stream<Item = kube::Result<WatchEvent<Service>>> + Unpin,
{
    let got = next(stream, event).await.expect("an event");
    let (kind, service) = match got {
        WatchEvent::Added(s) => ("ADDED", s),
        WatchEvent::Modified(s) => ("MODIFIED", s),
        WatchEvent::Deleted(s) => ("DELETED", s),
        other => panic!("expected {event} {name}, got {other:?}"),
    };
    assert_eq!(
        (kind, service.metadata.name.as_deref()),
        (event, Some(name))
    );
    service
}

/// `svc` with `labels`.
fn labelled(namespace: &str, name: &str, ip: &str, labels: serde_json::Value) -> serde_json::Value {
    let mut service = svc(namespace, name, ip);
    service["metadata"]["labels"] = labels;
    service
}

#[tokio::test]
async fn label_selectors_filter_lists_and_watches_as_the_api_server_does() {
    let api = FakeApi::start();
    let web = serde_json::json!({ "tier": "web" });
    api.upsert(
        Kind::Service,
        labelled("default", "a", "10.96.0.1", web.clone()),
    );
    api.upsert(
        Kind::Service,
        labelled(
            "default",
            "b",
            "10.96.0.2",
            serde_json::json!({ "tier": "db" }),
        ),
    );
    api.upsert(Kind::Service, svc("default", "c", "10.96.0.3"));
    let services: Api<Service> = Api::all(client(&api));

    // Set-based and equality-based selectors on a list.
    let names = |list: kube::core::ObjectList<Service>| {
        let mut names: Vec<String> = (list.items.into_iter())
            .filter_map(|s| s.metadata.name)
            .collect();
        names.sort();
        names
    };
    for (selector, expected) in [
        ("tier in (web, db)", &["a", "b"][..]),
        ("tier notin (web)", &["b", "c"]),
        ("tier=web", &["a"]),
        ("tier!=web", &["b", "c"]),
        ("tier", &["a", "b"]),
        ("!tier", &["c"]),
        ("tier,tier!=db", &["a"]),
    ] {
        let listed = services
            .list(&ListParams::default().labels(selector))
            .await
            .expect("list");
        assert_eq!(names(listed), expected, "{selector}");
    }

    // A watch with a selector: relabelling into it is ADDED, out of it DELETED (the last
    // state it saw, at the change's version), changes outside it nothing.
    let params = WatchParams::default().labels("tier=web");
    let mut stream = pin!(services.watch(&params, "0").await.expect("watch"));
    expect(&mut stream, "ADDED", "a").await;
    api.upsert(
        Kind::Service,
        labelled(
            "default",
            "c",
            "10.96.0.3",
            serde_json::json!({ "tier": "api" }),
        ),
    );
    let into = api.upsert(
        Kind::Service,
        labelled("default", "b", "10.96.0.2", web.clone()),
    );
    let added = expect(&mut stream, "ADDED", "b").await;
    assert_eq!(added.metadata.resource_version, Some(into.to_string()));
    api.upsert(
        Kind::Service,
        labelled("default", "b", "10.96.0.22", web.clone()),
    );
    expect(&mut stream, "MODIFIED", "b").await;
    let out = api.upsert(
        Kind::Service,
        labelled(
            "default",
            "a",
            "10.96.0.1",
            serde_json::json!({ "tier": "db" }),
        ),
    );
    let deleted = expect(&mut stream, "DELETED", "a").await;
    assert_eq!(deleted.metadata.resource_version, Some(out.to_string()));
    assert_eq!(
        deleted
            .metadata
            .labels
            .and_then(|l| l.get("tier").cloned())
            .as_deref(),
        Some("web"),
        "the delete carries the state the watch last saw"
    );
    // Deleting an object outside the selector sends nothing; one inside, its delete.
    api.delete(Kind::Service, "default", "a");
    api.delete(Kind::Service, "default", "b");
    expect(&mut stream, "DELETED", "b").await;
}
