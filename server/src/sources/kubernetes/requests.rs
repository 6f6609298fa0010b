//! Every request to the API server timed and counted, as client-go's REST client metrics that
//! CoreDNS exports: `coredns_kubernetes_rest_client_request_duration_seconds{verb,host}` (until
//! the response headers; for a watch, until the stream starts),
//! `coredns_kubernetes_rest_client_requests_total{code,method,host}`, and
//! `coredns_kubernetes_rest_client_rate_limiter_duration_seconds{verb,host}`, which observes 0 for
//! every request: kube's client has no client-side rate limiter to wait on.
//!
//! A tower layer on the `kube` client's service stack; the counters live in
//! [`SourceMetrics`](crate::ops::metrics::SourceMetrics).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use hyper::{Request, Response};
use tower::{Layer, Service};

use crate::ops::metrics::Metrics;

/// Wraps a client's service so each request is measured, labelled with `host` (the API server's
/// `host:port`, as client-go labels it).
#[derive(Clone)]
pub struct Measured {
    host: Arc<str>,
    metrics: Arc<Metrics>,
}

impl Measured {
    /// A layer measuring requests to `host` into `metrics`.
    pub fn new(host: &str, metrics: Arc<Metrics>) -> Self {
        Measured {
            host: host.into(),
            metrics,
        }
    }
}

impl<S> Layer<S> for Measured {
    type Service = MeasuredService<S>;

    fn layer(&self, inner: S) -> MeasuredService<S> {
        MeasuredService {
            inner,
            labels: self.clone(),
        }
    }
}

/// The service [`Measured`] makes.
#[derive(Clone)]
pub struct MeasuredService<S> {
    inner: S,
    labels: Measured,
}

impl<S, B, R> Service<Request<B>> for MeasuredService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = request.method().as_str().to_owned();
        let labels = self.labels.clone();
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            let code = match &response {
                Ok(answer) => answer.status().as_u16().to_string(),
                // client-go's label when no response came.
                Err(_) => "<error>".to_owned(),
            };
            let source = &labels.metrics.source;
            source.api_request(&method, &labels.host, &code, started.elapsed());
            response
        })
    }
}
