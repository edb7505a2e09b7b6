//! The worker daemon (`verinfer worker`, docs/WORKER.md): registers with a sequencer, takes its
//! shard assignments over WebSocket, runs each with the integer engine, signs the receipt,
//! stores it (redb, fsync) and only then submits it; serves the data behind its receipts.
//!
//! - [`store`]: the per-shard state machine on disk;
//! - [`exec`]: refusals (typed) and one run + signature;
//! - [`da`]: the data-availability JSON-RPC server (`verinfer_rpc::worker_api`).
//!
//! Restart safety: on start every shard that is assigned or running is run again (the engine is
//! deterministic), every signed but unacknowledged receipt is sent again as stored. A shard that
//! holds a receipt is never signed again.

pub mod da;
pub mod exec;
pub mod store;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::B256;
use alloy_sol_types::Eip712Domain;
use tokio::sync::mpsc;
use verinfer_primitives::job::domain;
use verinfer_rpc::client::{self, ClientError, HttpClient};
use verinfer_rpc::sign::sign_registration;
use verinfer_rpc::types::{ShardAssignment, SubmitResultRequest};
use verinfer_rpc::{codes, error_code, VerinferApiClient};

use crate::{Backend, Engine, Sku};
use da::{DaLimits, DaState};
use exec::{Engines, RunError};
use store::{ShardState, SignedResult, Store};

/// A file in the data dir that holds signed receipts before submission while it exists (an
/// operator's brake, e.g. to inspect receipts before they count; tests use it to crash the
/// worker exactly between signing and submitting). The receipt is already on disk when the
/// hold starts, so nothing is lost if the process dies while holding.
pub const HOLD_MARKER: &str = "hold-submissions";

/// How the daemon is set up.
pub struct WorkerConfig {
    /// Sequencer address (`ws://`, `wss://`, `http://` or `https://`; both schemes are derived).
    pub sequencer: String,
    /// L1 node: its chain id must be the sequencer's signing domain's.
    pub l1: Option<String>,
    pub signer: PrivateKeySigner,
    pub skus: Vec<PathBuf>,
    pub data_dir: PathBuf,
    pub threads: Option<usize>,
    pub backend: Backend,
    /// Address of the data API (none: not served).
    pub data_listen: Option<SocketAddr>,
    pub da_limits: DaLimits,
    /// A deliberate fault every engine computes with (tests of the fraud path only).
    #[cfg(feature = "fault-injection")]
    pub fault: Option<crate::fault::Fault>,
}

/// Failures that stop the daemon (everything else is retried).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("SKU {path}: {source}")]
    Sku {
        path: PathBuf,
        source: crate::ProverError,
    },
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("data API: {0}")]
    Serve(std::io::Error),
    #[error("sequencer URL {0:?} is not ws://, wss://, http:// or https://")]
    Url(String),
    #[error("the sequencer signs for chain {sequencer} but the L1 node is chain {l1}")]
    ChainMismatch { sequencer: u64, l1: u64 },
}

/// `(ws url, http url)` of a sequencer address.
pub fn sequencer_urls(url: &str) -> Result<(String, String), WorkerError> {
    let swap = |from: &str, to: &str| url.strip_prefix(from).map(|r| format!("{to}{r}"));
    if let Some(http) = swap("ws://", "http://") {
        Ok((url.to_owned(), http))
    } else if let Some(http) = swap("wss://", "https://") {
        Ok((url.to_owned(), http))
    } else if let Some(ws) = swap("http://", "ws://") {
        Ok((ws, url.to_owned()))
    } else if let Some(ws) = swap("https://", "wss://") {
        Ok((ws, url.to_owned()))
    } else {
        Err(WorkerError::Url(url.to_owned()))
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Loads every SKU file and builds its engine.
pub fn load_engines(cfg: &WorkerConfig) -> Result<Engines, WorkerError> {
    let (paths, backend, threads) = (&cfg.skus, cfg.backend, cfg.threads);
    let mut engines = Engines::new();
    for path in paths {
        let err = |source| WorkerError::Sku {
            path: path.clone(),
            source,
        };
        let sku = Arc::new(Sku::load(path).map_err(err)?);
        let mut engine = Engine::new(sku, backend).map_err(err)?;
        if let Some(n) = threads {
            engine = engine.with_threads(n);
        }
        #[cfg(feature = "fault-injection")]
        if let Some(f) = cfg.fault {
            tracing::warn!(?f, "FAULT INJECTED: this worker cheats");
            engine = engine.with_fault(f);
        }
        tracing::info!(sku = %engine.sku().id(), path = %path.display(), "SKU loaded");
        engines.insert(engine.sku().id(), Arc::new(engine));
    }
    Ok(engines)
}

/// The shared parts of the running daemon.
struct Daemon {
    store: Arc<Store>,
    engines: Engines,
    signer: PrivateKeySigner,
    data_dir: PathBuf,
    http: HttpClient,
    /// Shards waiting in the queue (an assignment pushed twice is queued once).
    queued: Mutex<HashSet<B256>>,
    tx: mpsc::UnboundedSender<B256>,
}

impl Daemon {
    fn enqueue(&self, shard: B256) {
        let fresh = self
            .queued
            .lock()
            .map(|mut q| q.insert(shard))
            .unwrap_or(true);
        if fresh {
            // The receiver lives as long as the daemon; a send error means it is stopping.
            let _ = self.tx.send(shard);
        }
    }

    /// Stores a pushed assignment and queues it unless nothing is left to do for it.
    fn on_assignment(&self, a: ShardAssignment) -> Result<(), store::StoreError> {
        let rec = self.store.assign(&a)?;
        tracing::info!(shard = %a.shard_id, job = %a.job_id, index = a.shard_index,
            attempt = a.attempt, state = rec.state.name(), "shard assigned");
        match rec.state {
            ShardState::Submitted { .. } => {}
            ShardState::Refused { reason } => {
                tracing::warn!(shard = %a.shard_id, %reason, "shard refused again")
            }
            _ => self.enqueue(a.shard_id),
        }
        Ok(())
    }
}

/// A task run beside the daemon with its store and engines (the CLI's dispute defender, which
/// lives in a crate this one cannot depend on); stopped with the daemon.
pub type Sidecar = Box<
    dyn FnOnce(
            Arc<Store>,
            Engines,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send,
>;

/// Runs the daemon until `shutdown` resolves.
pub async fn run(
    cfg: WorkerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), WorkerError> {
    run_with(cfg, shutdown, None).await
}

/// [`run`], with `sidecar` spawned once the store and engines are open.
pub async fn run_with(
    cfg: WorkerConfig,
    shutdown: impl std::future::Future<Output = ()>,
    sidecar: Option<Sidecar>,
) -> Result<(), WorkerError> {
    let (ws_url, http_url) = sequencer_urls(&cfg.sequencer)?;
    let engines = load_engines(&cfg)?;
    let store = Arc::new(Store::open(&cfg.data_dir)?);
    let side = sidecar.map(|f| tokio::spawn(f(store.clone(), engines.clone())));
    let http = client::http(&http_url).map_err(|e| WorkerError::Url(e.to_string()))?;
    let _da = match cfg.data_listen {
        Some(addr) => {
            let st = DaState::new(
                store.clone(),
                engines.clone(),
                cfg.signer.address(),
                cfg.da_limits.clone(),
            );
            let (bound, handle) = da::serve(Arc::new(st), addr)
                .await
                .map_err(WorkerError::Serve)?;
            // Stdout carries only this line and the `worker ... registered` line: scripts read it.
            println!("data api on {bound}");
            Some(handle)
        }
        None => None,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let d = Arc::new(Daemon {
        store,
        engines,
        signer: cfg.signer,
        data_dir: cfg.data_dir,
        http,
        queued: Mutex::new(HashSet::new()),
        tx,
    });
    recover(&d)?;
    let l1 = cfg.l1;
    let (dom_tx, dom_rx) = tokio::sync::watch::channel(None::<Eip712Domain>);
    let processor = tokio::spawn(process(d.clone(), rx, dom_rx));
    let connection = connect_loop(d.clone(), ws_url, l1, dom_tx);
    tokio::select! {
        r = connection => r?,
        _ = shutdown => tracing::info!("stopping"),
    }
    processor.abort();
    if let Some(h) = side {
        h.abort();
    }
    Ok(())
}

/// Queues every shard the store says is unfinished: assigned or running shards run again,
/// signed ones are re-sent as stored.
fn recover(d: &Daemon) -> Result<(), WorkerError> {
    for rec in d.store.all()? {
        match &rec.state {
            ShardState::Assigned | ShardState::Running | ShardState::Signed { .. } => {
                tracing::info!(shard = %rec.assignment.shard_id, state = rec.state.name(),
                    "resuming shard after restart");
                d.enqueue(rec.assignment.shard_id);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Register, subscribe, take assignments; on any failure wait (growing to 5 s) and start over.
async fn connect_loop(
    d: Arc<Daemon>,
    ws_url: String,
    l1: Option<String>,
    dom_tx: tokio::sync::watch::Sender<Option<Eip712Domain>>,
) -> Result<(), WorkerError> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match session(&d, &ws_url, l1.as_deref(), &dom_tx).await {
            Ok(()) => {
                tracing::warn!("sequencer connection lost (subscription ended); reconnecting");
                backoff = Duration::from_millis(100);
            }
            Err(SessionError::Fatal(e)) => return Err(e),
            Err(SessionError::Retry(e)) => tracing::warn!(error = %e, ?backoff,
                "sequencer connection lost or refused; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

enum SessionError {
    Fatal(WorkerError),
    Retry(String),
}

impl From<ClientError> for SessionError {
    fn from(e: ClientError) -> Self {
        SessionError::Retry(e.to_string())
    }
}

/// One connection: domain check, registration, subscription until the socket ends.
async fn session(
    d: &Daemon,
    ws_url: &str,
    l1: Option<&str>,
    dom_tx: &tokio::sync::watch::Sender<Option<Eip712Domain>>,
) -> Result<(), SessionError> {
    let c = client::ws(ws_url).await?;
    let info = c.domain().await?;
    if let Some(url) = l1 {
        check_l1(url, info.chain_id).await?;
    }
    let dom = domain(info.chain_id, info.batch_inbox);
    let mut skus: Vec<B256> = d.engines.keys().copied().collect();
    skus.sort();
    let now = now_ms() / 1000;
    let req = sign_registration(&d.signer, &dom, skus, now)
        .map_err(|e| SessionError::Retry(e.to_string()))?;
    let reg = c.register_worker(req).await?;
    let mut sub = c.subscribe_shards(d.signer.address(), reg.session).await?;
    dom_tx.send_replace(Some(dom));
    println!(
        "worker {} registered, stake {}",
        d.signer.address(),
        reg.stake
    );
    tracing::info!(worker = %d.signer.address(), stake = %reg.stake, "registered and subscribed");
    while let Some(a) = sub.next().await {
        let a = a.map_err(|e| SessionError::Retry(e.to_string()))?;
        d.on_assignment(a)
            .map_err(|e| SessionError::Fatal(WorkerError::Store(e)))?;
    }
    Ok(())
}

/// The L1 node must be on the chain the sequencer's signatures are for: the worker refuses to
/// sign receipts for a domain it cannot check.
async fn check_l1(url: &str, chain_id: u64) -> Result<(), SessionError> {
    let p = ProviderBuilder::new()
        .connect(url)
        .await
        .map_err(|e| SessionError::Retry(format!("L1 {url}: {e}")))?;
    let l1 = p
        .get_chain_id()
        .await
        .map_err(|e| SessionError::Retry(format!("L1: {e}")))?;
    if l1 != chain_id {
        return Err(SessionError::Fatal(WorkerError::ChainMismatch {
            sequencer: chain_id,
            l1,
        }));
    }
    Ok(())
}

/// Takes queued shards one at a time (a run uses every engine thread).
async fn process(
    d: Arc<Daemon>,
    mut rx: mpsc::UnboundedReceiver<B256>,
    mut dom_rx: tokio::sync::watch::Receiver<Option<Eip712Domain>>,
) {
    while let Some(shard) = rx.recv().await {
        if let Ok(mut q) = d.queued.lock() {
            q.remove(&shard);
        }
        // Nothing is signed before the signing domain is known from a registered session.
        let dom = match dom_rx.wait_for(|x| x.is_some()).await {
            Ok(v) => v.clone(),
            Err(_) => return,
        };
        let Some(dom) = dom else { return };
        if let Err(e) = handle(&d, shard, &dom).await {
            tracing::error!(%shard, error = %e, "shard failed; it stays queued on disk");
            tokio::time::sleep(Duration::from_secs(1)).await;
            d.enqueue(shard);
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum HandleError {
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Run(RunError),
    #[error("task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Moves one shard as far as it goes: run and sign if unsigned, then submit.
async fn handle(d: &Arc<Daemon>, shard: B256, dom: &Eip712Domain) -> Result<(), HandleError> {
    let Some(rec) = d.store.get(shard)? else {
        return Ok(());
    };
    let result = match rec.state.result() {
        Some(r) => r.clone(),
        None => match rec.state {
            ShardState::Assigned | ShardState::Running => {
                match run_shard(d, &rec.assignment, dom).await? {
                    Some(r) => r,
                    None => return Ok(()),
                }
            }
            _ => return Ok(()),
        },
    };
    if matches!(rec.state, ShardState::Submitted { .. }) {
        return Ok(());
    }
    hold(&d.data_dir, shard).await;
    submit(d, shard, result).await
}

/// Checks, runs and signs; `None` when the shard is refused (stored as such).
async fn run_shard(
    d: &Arc<Daemon>,
    a: &ShardAssignment,
    dom: &Eip712Domain,
) -> Result<Option<SignedResult>, HandleError> {
    let sid = a.shard_id;
    let (engine, shard) = match exec::check(&d.engines, a) {
        Ok(x) => x,
        Err(refusal) => {
            tracing::warn!(shard = %sid, job = %a.job_id, index = a.shard_index,
                reason = %refusal, "shard refused");
            d.store.set_state(
                sid,
                ShardState::Refused {
                    reason: refusal.to_string(),
                },
            )?;
            return Ok(None);
        }
    };
    d.store.set_state(sid, ShardState::Running)?;
    tracing::info!(shard = %sid, prompts = shard.prompts.len(), "shard running");
    let (signer, dom2, a2) = (d.signer.clone(), dom.clone(), a.clone());
    let started = std::time::Instant::now();
    let run = tokio::task::spawn_blocking(move || {
        exec::run_and_sign(&engine, &shard, &a2, &signer, &dom2, now_ms())
    })
    .await?;
    let (result, roots) = match run {
        Ok(x) => x,
        Err(RunError::Refused(refusal)) => {
            tracing::warn!(shard = %sid, reason = %refusal, "shard refused after the run");
            d.store.set_state(
                sid,
                ShardState::Refused {
                    reason: refusal.to_string(),
                },
            )?;
            return Ok(None);
        }
        Err(e) => return Err(HandleError::Run(e)),
    };
    // INVARIANT: the receipt is on disk (fsync) before anyone sees it.
    d.store.sign(sid, result.clone(), &roots)?;
    tracing::info!(shard = %sid, receipt = %result.receipt.hash(),
        trace_root = %result.receipt.traceRoot, secs = started.elapsed().as_secs_f64(),
        "shard signed");
    Ok(Some(result))
}

/// Waits while the hold marker exists in the data dir.
async fn hold(data_dir: &Path, shard: B256) {
    let marker = data_dir.join(HOLD_MARKER);
    let mut logged = false;
    while marker.exists() {
        if !logged {
            tracing::info!(%shard, "holding signed receipt before submission (hold marker present)");
            logged = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends the stored result until the sequencer answers. A definite refusal (not ours any
/// more, mismatch) is stored as `rejected`; transport failures are retried with backoff.
async fn submit(d: &Arc<Daemon>, shard: B256, r: SignedResult) -> Result<(), HandleError> {
    let req = SubmitResultRequest {
        outputs: r.outputs.clone(),
        receipt: r.receipt.clone(),
        signature: r.signature.clone(),
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        match d.http.submit_result(req.clone()).await {
            Ok(resp) => {
                d.store.set_state(
                    shard,
                    ShardState::Submitted {
                        result: r,
                        submitted_at_ms: now_ms(),
                    },
                )?;
                tracing::info!(%shard, receipt = %resp.receipt_hash,
                    job_completed = resp.job_completed, "shard submitted");
                return Ok(());
            }
            Err(e) if is_definite(&e) => {
                tracing::warn!(%shard, error = %e, "sequencer refused the result");
                d.store.set_state(
                    shard,
                    ShardState::Rejected {
                        result: r,
                        why: e.to_string(),
                    },
                )?;
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(%shard, error = %e, ?backoff, "submission failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Answers that sending the same bytes again cannot change.
fn is_definite(e: &ClientError) -> bool {
    matches!(
        error_code(e),
        Some(codes::UNKNOWN_SHARD | codes::RECEIPT_MISMATCH | codes::BAD_SIGNATURE)
    )
}
