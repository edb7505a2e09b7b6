//! A memory bound on what clients can make the server hold: a budget of request-body bytes
//! in flight over HTTP, all connections together. Each HTTP request reserves its declared
//! `Content-Length` (or the largest allowed body when it declares none) before its body is
//! read and keeps the reservation until it is answered; a request that does not fit is
//! answered at once with HTTP 503 and JSON-RPC error 5031 (`busy`), without reading its
//! body. Connections are capped by `limits.max_connections` in the server itself, so memory
//! is bounded by `max_inflight_bytes` for HTTP plus `max_connections × max_request_bytes` for
//! WebSocket messages.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use tokio::sync::Semaphore;
use verinfer_rpc::codes;

/// Tower layer enforcing the in-flight byte budget.
#[derive(Clone)]
pub struct InflightLayer {
    budget: Arc<Semaphore>,
    max_body: u32,
}

impl InflightLayer {
    /// `budget` bytes in flight at most; a request without `Content-Length` counts as
    /// `max_body`.
    pub fn new(budget: u64, max_body: u32) -> Self {
        let permits = usize::try_from(budget)
            .unwrap_or(Semaphore::MAX_PERMITS)
            .min(Semaphore::MAX_PERMITS);
        Self {
            budget: Arc::new(Semaphore::new(permits)),
            max_body,
        }
    }
}

impl<S> tower::Layer<S> for InflightLayer {
    type Service = InflightService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        InflightService {
            inner,
            budget: self.budget.clone(),
            max_body: self.max_body,
        }
    }
}

/// See [`InflightLayer`].
#[derive(Clone)]
pub struct InflightService<S> {
    inner: S,
    budget: Arc<Semaphore>,
    max_body: u32,
}

fn busy(what: String) -> HttpResponse {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": codes::BUSY, "message": what },
    });
    let mut resp = HttpResponse::new(HttpBody::from(body.to_string()));
    *resp.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Bytes a request reserves: its declared length (capped at the largest body, which the
/// server refuses anyway), or the largest body when it declares none. Bodiless requests
/// (GET, WebSocket upgrades) reserve nothing.
fn declared(req: &HttpRequest<impl Sized>, max_body: u32) -> u32 {
    if req.method() == http::Method::GET {
        return 0;
    }
    req.headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|n| n.min(u64::from(max_body)) as u32)
        .unwrap_or(max_body)
}

impl<S, B> tower::Service<HttpRequest<B>> for InflightService<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, S::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: HttpRequest<B>) -> Self::Future {
        let n = declared(&req, self.max_body);
        let permit = if n == 0 {
            None
        } else {
            match self.budget.clone().try_acquire_many_owned(n) {
                Ok(p) => Some(p),
                Err(_) => {
                    let msg = format!(
                        "server busy: {n} request bytes do not fit the in-flight budget now; retry later"
                    );
                    return Box::pin(async move { Ok(busy(msg)) });
                }
            }
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let out = fut.await;
            drop(permit);
            out
        })
    }
}
