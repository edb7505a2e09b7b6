//! Prometheus metrics, written out by hand in the text exposition format (a handful of
//! counters and one histogram do not justify a metrics crate), and the `GET /metrics` HTTP
//! route in front of the JSON-RPC server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};

/// Upper bounds (seconds) of the RPC latency buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Hist {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum_s: f64,
}

/// Every metric of the sequencer.
#[derive(Default)]
pub struct Metrics {
    /// Jobs acknowledged.
    pub jobs_accepted: AtomicU64,
    /// Jobs refused, by error code.
    rejected: Mutex<BTreeMap<i32, u64>>,
    /// Jobs that reached `Completed`.
    pub jobs_completed: AtomicU64,
    /// Shard assignments sent (including re-assignments).
    pub shards_assigned: AtomicU64,
    /// Re-assignments after a missed deadline.
    pub shards_reassigned: AtomicU64,
    /// Shard results accepted.
    pub shards_completed: AtomicU64,
    /// Batches created.
    pub batches_created: AtomicU64,
    /// Batches seen included on L1.
    pub batches_posted: AtomicU64,
    /// Batches finalized.
    pub batches_finalized: AtomicU64,
    /// Reorgs that dropped a posted batch.
    pub l1_reorgs: AtomicU64,
    /// Gas used by batch postings.
    pub l1_gas_spent: AtomicU64,
    /// Latest L1 head seen.
    pub l1_head: AtomicU64,
    /// RPC latency per method (float sums, so outside any committed path).
    latency: Mutex<BTreeMap<&'static str, Hist>>,
}

/// Records a method's latency when dropped.
pub struct Timer<'a> {
    metrics: &'a Metrics,
    method: &'static str,
    start: Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        let s = self.start.elapsed().as_secs_f64();
        if let Ok(mut m) = self.metrics.latency.lock() {
            let h = m.entry(self.method).or_default();
            for (i, b) in BUCKETS.iter().enumerate() {
                if s <= *b {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum_s += s;
        }
    }
}

impl Metrics {
    /// Starts timing `method`.
    pub fn timer(&self, method: &'static str) -> Timer<'_> {
        Timer {
            metrics: self,
            method,
            start: Instant::now(),
        }
    }

    /// Counts a refused job.
    pub fn rejected(&self, code: i32) {
        if let Ok(mut m) = self.rejected.lock() {
            *m.entry(code).or_default() += 1;
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let c = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        };
        c(
            &mut out,
            "verinfer_jobs_accepted_total",
            "Jobs acknowledged to buyers.",
            &self.jobs_accepted,
        );
        let _ = writeln!(out, "# HELP verinfer_jobs_rejected_total Jobs refused, by JSON-RPC error code.\n# TYPE verinfer_jobs_rejected_total counter");
        if let Ok(m) = self.rejected.lock() {
            for (code, n) in m.iter() {
                let _ = writeln!(out, "verinfer_jobs_rejected_total{{code=\"{code}\"}} {n}");
            }
        }
        c(
            &mut out,
            "verinfer_jobs_completed_total",
            "Jobs whose every shard has a receipt.",
            &self.jobs_completed,
        );
        c(
            &mut out,
            "verinfer_shards_assigned_total",
            "Shard assignments sent to workers.",
            &self.shards_assigned,
        );
        c(
            &mut out,
            "verinfer_shards_reassigned_total",
            "Shards re-assigned after a missed deadline.",
            &self.shards_reassigned,
        );
        c(
            &mut out,
            "verinfer_shards_completed_total",
            "Shard results accepted.",
            &self.shards_completed,
        );
        c(
            &mut out,
            "verinfer_batches_created_total",
            "Batches cut.",
            &self.batches_created,
        );
        c(
            &mut out,
            "verinfer_batches_posted_total",
            "Batches seen included on L1.",
            &self.batches_posted,
        );
        c(
            &mut out,
            "verinfer_batches_finalized_total",
            "Batches finalized on L1.",
            &self.batches_finalized,
        );
        c(
            &mut out,
            "verinfer_l1_reorgs_total",
            "Posted batches dropped by an L1 reorg.",
            &self.l1_reorgs,
        );
        c(
            &mut out,
            "verinfer_l1_gas_spent_total",
            "Gas used by batch postings.",
            &self.l1_gas_spent,
        );
        let _ = writeln!(out, "# HELP verinfer_l1_head Latest L1 block seen.\n# TYPE verinfer_l1_head gauge\nverinfer_l1_head {}", self.l1_head.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP verinfer_rpc_latency_seconds JSON-RPC handler latency.\n# TYPE verinfer_rpc_latency_seconds histogram");
        if let Ok(m) = self.latency.lock() {
            for (method, h) in m.iter() {
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "verinfer_rpc_latency_seconds_bucket{{method=\"{method}\",le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "verinfer_rpc_latency_seconds_bucket{{method=\"{method}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "verinfer_rpc_latency_seconds_sum{{method=\"{method}\"}} {}",
                    h.sum_s
                );
                let _ = writeln!(
                    out,
                    "verinfer_rpc_latency_seconds_count{{method=\"{method}\"}} {}",
                    h.count
                );
            }
        }
        out
    }
}

/// Tower layer answering `GET /metrics` and passing everything else to the RPC server.
#[derive(Clone)]
pub struct MetricsLayer {
    metrics: Arc<Metrics>,
}

impl MetricsLayer {
    /// Serves `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// See [`MetricsLayer`].
#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> tower::Service<HttpRequest<B>> for MetricsService<S>
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
        if req.method() == http::Method::GET && req.uri().path() == "/metrics" {
            let mut resp = HttpResponse::new(HttpBody::from(self.metrics.render()));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            return Box::pin(async move { Ok(resp) });
        }
        Box::pin(self.inner.call(req))
    }
}
