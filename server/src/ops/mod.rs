//! The operations endpoints: `/health` (liveness), `/ready` (readiness) and `/metrics`
//! (Prometheus), each on its own address as CoreDNS serves them (:8080, :8181, :9153). Addresses
//! given twice share one listener serving both paths. Listeners are bound with SO_REUSEPORT:
//! during an upgrade the successor binds them too, and this process closes its own once the
//! successor serves, so that probes reach the one that stays.

pub mod logging;
pub mod memory;
pub mod metrics;
pub mod panics;
pub mod process;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::ops::metrics::Metrics;

/// What `/ready` reports: ready once the zone has synced, until lameduck begins.
#[derive(Debug, Default)]
pub struct Readiness {
    synced: AtomicBool,
    lameduck: AtomicBool,
}

impl Readiness {
    /// Marks the zone as synced with its source.
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Relaxed);
    }

    /// Marks the start of lameduck: readiness fails from now on.
    pub fn set_lameduck(&self) {
        self.lameduck.store(true, Ordering::Relaxed);
    }

    /// Whether `/ready` answers 200.
    pub fn is_ready(&self) -> bool {
        self.synced.load(Ordering::Relaxed) && !self.lameduck.load(Ordering::Relaxed)
    }
}

/// An endpoint path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpsEndpoint {
    /// `/health`: 200 while the process runs, lameduck included.
    Health,
    /// `/ready`: 200 when [`Readiness::is_ready`], else 503.
    Ready,
    /// `/metrics`: the Prometheus text exposition.
    Metrics,
}

impl OpsEndpoint {
    /// The path it answers on.
    pub fn path(self) -> &'static str {
        match self {
            OpsEndpoint::Health => "/health",
            OpsEndpoint::Ready => "/ready",
            OpsEndpoint::Metrics => "/metrics",
        }
    }
}

/// A bound operations listener with the endpoints it serves.
pub struct OpsListener {
    listener: TcpListener,
    endpoints: Vec<OpsEndpoint>,
}

impl OpsListener {
    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The endpoints served here.
    pub fn endpoints(&self) -> &[OpsEndpoint] {
        &self.endpoints
    }
}

/// An operations endpoint whose address cannot be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind {path} {addr}: {source}")]
pub struct OpsBindError {
    /// The endpoint's path (`/health`).
    path: &'static str,
    /// Its address.
    addr: SocketAddr,
    /// The bind error.
    source: std::io::Error,
}

/// Binds one listener per distinct address (must run inside a tokio runtime).
pub async fn bind(
    endpoints: &[(OpsEndpoint, SocketAddr)],
) -> Result<Vec<OpsListener>, OpsBindError> {
    let mut listeners: Vec<(SocketAddr, OpsListener)> = Vec::new();
    for &(endpoint, addr) in endpoints {
        if let Some((_, existing)) = listeners.iter_mut().find(|(a, _)| *a == addr) {
            existing.endpoints.push(endpoint);
            continue;
        }
        let listener = bind_shared(addr).map_err(|source| OpsBindError {
            path: endpoint.path(),
            addr,
            source,
        })?;
        listeners.push((
            addr,
            OpsListener {
                listener,
                endpoints: vec![endpoint],
            },
        ));
    }
    Ok(listeners.into_iter().map(|(_, l)| l).collect())
}

/// A listener on `addr` with SO_REUSEPORT, so that a successor process can bind the same
/// endpoints while this one still runs (must run inside a tokio runtime).
fn bind_shared(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    TcpListener::from_std(socket.into())
}

/// How often [`probe_health`] asks.
const HEALTH_PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long one probe may take before it counts as failed.
const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Asks this process's own `/health` at `addr` once a second, as CoreDNS's `health` plugin does,
/// and records how long the answer took (`coredns_health_request_duration_seconds`) or that
/// none came within 3 s or it was not 200 (`coredns_health_request_failures_total`): a slow
/// answer shows the control runtime is starved. Runs until the task is aborted.
pub async fn probe_health(addr: SocketAddr, metrics: Arc<Metrics>) {
    let target = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        }
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    };
    let mut every = tokio::time::interval(HEALTH_PROBE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let started = Instant::now();
        let answered = tokio::time::timeout(HEALTH_PROBE_TIMEOUT, health_ok(target)).await;
        metrics.health_probed(started.elapsed(), matches!(answered, Ok(Ok(true))));
    }
}

/// One `GET /health` over a new connection: whether the answer was 200.
async fn health_ok(target: SocketAddr) -> std::io::Result<bool> {
    let mut stream = tokio::net::TcpStream::connect(target).await?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::with_capacity(256);
    stream.read_to_end(&mut answer).await?;
    Ok(answer.starts_with(b"HTTP/1.1 200"))
}

/// Serves `listener` for the life of the runtime, or until the task is aborted.
pub async fn serve(listener: OpsListener, readiness: Arc<Readiness>, metrics: Arc<Metrics>) {
    let endpoints: Arc<[OpsEndpoint]> = listener.endpoints.into();
    loop {
        let Ok((stream, _)) = listener.listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let endpoints = endpoints.clone();
        let readiness = readiness.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = respond(&request, &endpoints, &readiness, &metrics);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
        });
    }
}

fn respond(
    request: &Request<Incoming>,
    endpoints: &[OpsEndpoint],
    readiness: &Readiness,
    metrics: &Metrics,
) -> Response<Full<Bytes>> {
    let endpoint = endpoints.iter().find(|e| e.path() == request.uri().path());
    let (status, content_type, body) = match endpoint {
        _ if request.method() != Method::GET && request.method() != Method::HEAD => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n".to_owned(),
        ),
        None => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
        Some(OpsEndpoint::Health) => (StatusCode::OK, "text/plain", "OK".to_owned()),
        Some(OpsEndpoint::Ready) if readiness.is_ready() => {
            (StatusCode::OK, "text/plain", "OK".to_owned())
        }
        Some(OpsEndpoint::Ready) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".to_owned(),
        ),
        Some(OpsEndpoint::Metrics) => (
            StatusCode::OK,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            metrics.render(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
