//! The watcher's loop: follow L1, audit every pending receipt the policy samples (one at a
//! time, each recorded durably before the next), open a dispute on L1 for each audit that
//! found fraud. Restart-safe: all progress lives in the [`Store`]; on start the loop simply
//! carries on from it (an audit cut short by a crash runs again; a dispute whose `open` was
//! sent before a crash is found on L1 among the receipt's games (`gamesOf`, the one whose
//! challenger is us) instead of being sent twice). Open games are played to the end by
//! [`crate::play::Challenger`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_sol_types::SolValue;
use verinfer_l1::bindings::DisputeGame;
use verinfer_primitives::job::{prompts_root, Prompt};
use verinfer_primitives::merkle::{hash_leaf, MerkleTree};
use verinfer_prover::{Backend, Engine, Shard, Sku};

use super::audit::{policy_seed, select_gemms, AuditInput, Auditor, Policy, Verdict};
use super::chain::{follow_once, ChainError, L1Reader};
use super::protocol::{policy_for, Plan, Protocol};
use super::source::EngineTrace;
use super::store::{AuditRecord, AuditState, BatchState, DisputeRecord, JobEntry, Store};
use crate::play::{Challenger, Committed, MoveLog, Outcome, Pending, PlayError, Player, Role};
use crate::Opener;

/// Everything the watcher runs with.
pub struct WatchConfig {
    pub l1_url: String,
    pub inbox: Address,
    /// The dispute game (disputes are opened only when set, with `key`).
    pub game: Option<Address>,
    /// The audit protocol (`Audits.sol`): with `key`, the watcher plays the verifier there
    /// (fixes seeds, draws, audits what it is assigned with the chain's seed, reports).
    pub audits: Option<Address>,
    pub key: Option<PrivateKeySigner>,
    pub skus: Vec<Arc<Sku>>,
    pub data_dir: PathBuf,
    pub confirmations: u64,
    /// First L1 block to scan on a fresh data dir.
    pub start_block: u64,
    pub poll: Duration,
    pub policy: Policy,
    /// Share of receipts audited, basis points (10 000 = all).
    pub sample_bps: u32,
    pub backend: Backend,
    /// Where each worker's committed rows come from (its data API, `Committed::Api`): in a
    /// game against it the challenger names an entry its rows get wrong; without one it names
    /// blind (`play::naming`).
    pub worker_data: HashMap<Address, Committed>,
}

/// The watcher.
pub struct Watcher {
    cfg: WatchConfig,
    store: Store,
    l1: L1Reader,
    auditors: HashMap<B256, Arc<Auditor>>,
    signer: Option<DynProvider>,
    protocol: Option<Protocol>,
    /// Our trace of each disputed receipt, by (batch, index), built on first use.
    openers: std::sync::Mutex<HashMap<(u64, u64), Arc<Opener>>>,
}

/// Failures that stop the watcher (bad input from workers never does).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] super::store::StoreError),
    #[error("{0}")]
    Config(String),
}

/// The contiguous prompt run of each shard of `job` whose receipts are in `shards` (index →
/// input root): shards are consecutive runs in index order, each found by its input root.
fn shard_runs(job: &JobEntry, shards: &[(u32, B256)]) -> HashMap<u32, (usize, usize)> {
    let mut sorted = shards.to_vec();
    sorted.sort_unstable();
    let leaves: Vec<B256> = job
        .prompts
        .iter()
        .map(|p| verinfer_primitives::merkle::row_leaf(&p.leaf_bytes()))
        .collect();
    let mut out = HashMap::new();
    let mut start = 0usize;
    for (idx, root) in sorted {
        let end = (start + 1..=leaves.len())
            .find(|&e| MerkleTree::from_leaf_hashes(leaves[start..e].to_vec()).root() == root);
        let Some(end) = end else { break };
        out.insert(idx, (start, end));
        start = end;
    }
    out
}

/// A shard from token-id prompts (text prompts are not audited yet: docs/WATCHER.md).
fn token_shard(prompts: &[Prompt], max_new_tokens: u64) -> Result<Shard, String> {
    let ids = prompts
        .iter()
        .map(|p| match p {
            Prompt::Tokens(t) => Ok(t.clone()),
            Prompt::Text(_) => Err("text prompts are not audited yet".to_string()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Shard {
        prompts: ids,
        max_new_tokens: max_new_tokens as usize,
    })
}

impl Watcher {
    /// Opens the store and connects to L1.
    pub async fn new(cfg: WatchConfig) -> Result<Self, WatchError> {
        let store = Store::open(&cfg.data_dir)?;
        let l1 = L1Reader::connect(&cfg.l1_url, cfg.inbox).await?;
        let auditors = cfg
            .skus
            .iter()
            .map(|s| (s.id(), Arc::new(Auditor::new(s.clone()))))
            .collect();
        let signer = match (&cfg.key, &cfg.game) {
            (Some(k), Some(_)) => Some(verinfer_l1::provider::daemon_signer(
                cfg.l1_url
                    .parse()
                    .map_err(|e| WatchError::Config(format!("--l1: {e}")))?,
                k.clone(),
            )),
            _ => None,
        };
        let protocol = match (&signer, cfg.audits, &cfg.key) {
            (Some(p), Some(a), Some(k)) => Some(Protocol::new(a, p.clone(), k.address())),
            _ => None,
        };
        Ok(Watcher {
            cfg,
            store,
            l1,
            auditors,
            signer,
            protocol,
            openers: std::sync::Mutex::new(HashMap::new()),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs until `stop` resolves.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) -> Result<(), WatchError> {
        tokio::pin!(stop);
        loop {
            if let Err(e) = self.step().await {
                match e {
                    WatchError::Chain(e) => tracing::warn!("L1: {e}"),
                    e => return Err(e),
                }
            }
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(self.cfg.poll) => {}
            }
        }
    }

    /// One round: follow, audit what is pending, open disputes.
    pub async fn step(&self) -> Result<(), WatchError> {
        follow_once(
            &self.l1,
            &self.store,
            self.cfg.confirmations,
            self.cfg.start_block,
        )
        .await?;
        self.prepare_draws().await?;
        for a in self.store.audits()? {
            if a.state == AuditState::Pending {
                self.audit_one(&a).await?;
            }
        }
        self.open_disputes().await?;
        self.report_verifications().await?;
        self.advance_disputes().await?;
        self.write_snapshot()
    }

    /// Writes `DIR/status.json` (what `verinfer watch status` shows while the daemon holds the
    /// store), atomically.
    fn write_snapshot(&self) -> Result<(), WatchError> {
        let v = status_report(&self.store)?;
        let dir = &self.cfg.data_dir;
        let tmp = dir.join("status.json.tmp");
        let io =
            |e: std::io::Error| WatchError::Config(format!("writing the status snapshot: {e}"));
        std::fs::write(&tmp, v.to_string()).map_err(io)?;
        std::fs::rename(&tmp, dir.join("status.json")).map_err(io)?;
        Ok(())
    }

    /// Audits one pending receipt and records the outcome.
    async fn audit_one(&self, a: &AuditRecord) -> Result<(), WatchError> {
        let Some(batch) = self.store.batch(a.batch_id)? else {
            return Ok(());
        };
        if batch.state != BatchState::Live {
            return Ok(()); // dropped by a reorg: audited if it comes back
        }
        // The chain's seed and depth for an audit assigned to us; our own policy otherwise.
        let plan = self.plan(a).await;
        let (seed, policy, forced) = match plan {
            Plan::Wait => return Ok(()),
            Plan::Mine { seed, depth, .. } => (seed, policy_for(depth, &self.cfg.policy), true),
            Plan::NotMine => (
                policy_seed(a.batch_root, a.receipt_hash, self.cfg.policy.salt),
                self.cfg.policy.clone(),
                false,
            ),
        };
        let outcome = self.prepare(&batch, a, forced);
        let result = match outcome {
            Err(reason) => Err(reason),
            Ok((auditor, shard, receipt)) => {
                let backend = self.cfg.backend;
                let started = Instant::now();
                // The audit is CPU work: off the async threads.
                let v = tokio::task::spawn_blocking(move || {
                    audit_by_reexecution(&auditor, &shard, &receipt, seed, &policy, backend)
                })
                .await
                .map_err(|e| WatchError::Config(format!("audit task: {e}")))?;
                Ok((v, started.elapsed().as_millis() as u64))
            }
        };
        let recorded =
            self.store
                .finish_audit(a.batch_id, a.index, a.receipt_hash, result.clone())?;
        if recorded {
            tracing::info!(batch = a.batch_id, index = a.index, outcome = ?result.map(|r| r.0), "audit recorded");
        }
        Ok(())
    }

    /// Whether to audit, and with what: the SKU's auditor, the shard, the receipt.
    #[allow(clippy::type_complexity)]
    fn prepare(
        &self,
        batch: &super::store::BatchRecord,
        a: &AuditRecord,
        forced: bool,
    ) -> Result<(Arc<Auditor>, Shard, verinfer_primitives::Receipt), String> {
        let entry = batch
            .receipts
            .get(a.index as usize)
            .ok_or("receipt not in the batch")?;
        let r = &entry.receipt;
        let draw = keccak256(policy_seed(
            a.batch_root,
            a.receipt_hash,
            self.cfg.policy.salt,
        ));
        let x = u32::from_be_bytes([draw[0], draw[1], draw[2], draw[3]]) % 10_000;
        if !forced && x >= self.cfg.sample_bps {
            return Err("not sampled by the policy".into());
        }
        let auditor = self
            .auditors
            .get(&r.skuId)
            .ok_or("no SKU file for this SKU")?
            .clone();
        let job = self
            .store
            .job(r.jobId)
            .map_err(|e| e.to_string())?
            .ok_or("the job's inputs were not seen on L1")?;
        let shards: Vec<(u32, B256)> = batch
            .receipts
            .iter()
            .filter(|e| e.receipt.jobId == r.jobId)
            .map(|e| (e.receipt.shardIndex, e.receipt.inputRoot))
            .collect();
        let (s, e) = *shard_runs(&job, &shards)
            .get(&r.shardIndex)
            .ok_or("the input root is no run of the job's prompts")?;
        debug_assert_eq!(prompts_root(&job.prompts[s..e]), r.inputRoot);
        let shard = token_shard(&job.prompts[s..e], job.max_new_tokens)?;
        Ok((auditor, shard, r.clone()))
    }

    /// Our part in an audit under the protocol (`NotMine` without one, or when L1 cannot say).
    async fn plan(&self, a: &AuditRecord) -> Plan {
        let Some(pr) = &self.protocol else {
            return Plan::NotMine;
        };
        match pr.plan(a.batch_id, a.index).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(batch = a.batch_id, index = a.index, "audit protocol: {e}");
                Plan::Wait
            }
        }
    }

    /// Fixes the seed and draws every live batch that has audits pending, once due.
    async fn prepare_draws(&self) -> Result<(), WatchError> {
        let Some(pr) = &self.protocol else {
            return Ok(());
        };
        let head = self.l1.head().await?;
        let mut ids: Vec<u64> = self
            .store
            .audits()?
            .iter()
            .filter(|a| a.state == AuditState::Pending)
            .map(|a| a.batch_id)
            .collect();
        ids.dedup();
        for id in ids {
            let Some(b) = self.store.batch(id)? else {
                continue;
            };
            if b.state != BatchState::Live {
                continue;
            }
            if let Err(e) = pr.prepare(&b, head).await {
                tracing::warn!(batch = id, "seed or draw: {e}");
            }
        }
        Ok(())
    }

    /// Posts the verification receipt of every finished audit assigned to us: a pass, or a
    /// fail once our dispute on the receipt is open.
    async fn report_verifications(&self) -> Result<(), WatchError> {
        let Some(pr) = &self.protocol else {
            return Ok(());
        };
        for a in self.store.audits()? {
            if a.state != AuditState::Done {
                continue;
            }
            let Plan::Mine { seed, depth, .. } = self.plan(&a).await else {
                continue;
            };
            let fail_game = match &a.verdict {
                Some(Verdict::Pass { .. }) => None,
                Some(v) if v.disputes() => match a.dispute.as_ref().and_then(|d| d.game_id) {
                    Some(id) => Some(id),
                    None => continue, // not open yet
                },
                _ => continue, // evidence without a dispute: nothing we can stand behind
            };
            let Some(batch) = self.store.batch(a.batch_id)? else {
                continue;
            };
            let steps = match self.prepare(&batch, &a, true) {
                Ok((auditor, shard, _)) => {
                    let program = shard.program(auditor.sku().config().layers);
                    let policy = policy_for(depth, &self.cfg.policy);
                    select_gemms(&program, &policy, seed)
                        .into_iter()
                        .map(|(s, _)| s)
                        .collect()
                }
                Err(_) => Vec::new(),
            };
            match pr.report(a.batch_id, a.index, fail_game, steps).await {
                Ok(()) => tracing::info!(
                    batch = a.batch_id,
                    index = a.index,
                    pass = fail_game.is_none(),
                    "verification posted"
                ),
                Err(e) => tracing::warn!(batch = a.batch_id, index = a.index, "report: {e}"),
            }
        }
        Ok(())
    }

    /// Opens an L1 dispute for every audit that found fraud and has none yet.
    async fn open_disputes(&self) -> Result<(), WatchError> {
        let (Some(p), Some(game), Some(key)) = (&self.signer, self.cfg.game, &self.cfg.key) else {
            return Ok(());
        };
        for a in self.store.audits()? {
            let due = a.state == AuditState::Done
                && a.verdict.as_ref().is_some_and(Verdict::disputes)
                && a.dispute.as_ref().is_none_or(|d| d.game_id.is_none());
            if !due {
                continue;
            }
            let Some(batch) = self.store.batch(a.batch_id)? else {
                continue;
            };
            if batch.state != BatchState::Live {
                continue;
            }
            let d = open_dispute(p, game, key.address(), &batch, a.index).await;
            tracing::info!(batch = a.batch_id, index = a.index, state = %d.state, "dispute");
            self.store.set_dispute(a.batch_id, a.index, d)?;
        }
        Ok(())
    }
}

impl Watcher {
    /// Plays every open game one move on (`play::Challenger`): choices from our own trace, the
    /// named entry, the worker's timeout, the withdrawal once won; records the outcome.
    async fn advance_disputes(&self) -> Result<(), WatchError> {
        let (Some(_), Some(_), Some(_)) = (&self.signer, self.cfg.game, &self.cfg.key) else {
            return Ok(());
        };
        for a in self.store.audits()? {
            let Some(d) = &a.dispute else { continue };
            let (Some(id), "open") = (d.game_id, d.state.as_str()) else {
                continue;
            };
            match self.advance(&a, id).await {
                Ok(Outcome::Done {
                    challenger_won,
                    withdrawn,
                    reason,
                }) => {
                    let state = match challenger_won {
                        true => format!("won (reason {reason}): {withdrawn} wei withdrawn"),
                        false => format!("lost (reason {reason})"),
                    };
                    tracing::info!(game = id, %state, "dispute over");
                    let mut d = self
                        .store
                        .audit(a.batch_id, a.index)?
                        .and_then(|a| a.dispute)
                        .unwrap_or(d.clone());
                    d.state = state;
                    self.store.set_dispute(a.batch_id, a.index, d)?;
                }
                Ok(o) => tracing::debug!(game = id, outcome = ?o, "dispute"),
                Err(e) => tracing::warn!(game = id, "dispute move failed: {e}"),
            }
        }
        Ok(())
    }

    /// One move of game `id` (the dispute of audit `a`).
    async fn advance(&self, a: &AuditRecord, id: u64) -> Result<Outcome, PlayError> {
        let (Some(p), Some(game), Some(key)) = (&self.signer, self.cfg.game, &self.cfg.key) else {
            return Err(PlayError::Log("no key or game".into()));
        };
        let batch = self
            .store
            .batch(a.batch_id)
            .map_err(|e| PlayError::Log(e.to_string()))?
            .ok_or(PlayError::Log(format!(
                "batch {} not in the store",
                a.batch_id
            )))?;
        let (auditor, shard, receipt) = self
            .prepare(&batch, a, true)
            .map_err(|why| PlayError::Mismatch { game: id, why })?;
        let opener = self.opener(a, &auditor, shard).await?;
        let data = self
            .cfg
            .worker_data
            .get(&receipt.worker)
            .cloned()
            .unwrap_or(Committed::None);
        let hint = match &a.verdict {
            Some(Verdict::Fraud(f)) => Some((f.step, f.row as u32, f.col as u32)),
            _ => None,
        };
        let log = AuditLog {
            store: &self.store,
            batch: a.batch_id,
            index: a.index,
        };
        let c = Challenger {
            player: Player {
                provider: p.clone(),
                game,
                id,
                role: Role::Challenger,
                me: key.address(),
                log: &log,
            },
            receipt,
            own: opener.as_ref(),
            data,
            hint,
        };
        c.step().await
    }

    /// Our trace of the audited shard (the engine re-runs it once per process).
    async fn opener(
        &self,
        a: &AuditRecord,
        auditor: &Auditor,
        shard: Shard,
    ) -> Result<Arc<Opener>, PlayError> {
        let k = (a.batch_id, a.index);
        if let Some(o) = self.openers.lock().ok().and_then(|m| m.get(&k).cloned()) {
            return Ok(o);
        }
        let (sku, backend) = (auditor.sku().clone(), self.cfg.backend);
        let o = tokio::task::spawn_blocking(move || Opener::new(Engine::new(sku, backend)?, shard))
            .await
            .map_err(|e| PlayError::Log(format!("opener task: {e}")))??;
        let o = Arc::new(o);
        if let Ok(mut m) = self.openers.lock() {
            m.insert(k, o.clone());
        }
        Ok(o)
    }
}

/// The watcher store as the player's move log: the moves are kept on the audit's dispute.
struct AuditLog<'a> {
    store: &'a Store,
    batch: u64,
    index: u64,
}

impl MoveLog for AuditLog<'_> {
    fn last(&self, _game: u64) -> Result<Option<Pending>, PlayError> {
        let a = self
            .store
            .audit(self.batch, self.index)
            .map_err(|e| PlayError::Log(e.to_string()))?;
        Ok(a.and_then(|a| a.dispute)
            .and_then(|d| d.moves.last().cloned()))
    }

    fn sent(&self, _game: u64, p: Pending) -> Result<(), PlayError> {
        let err = |e: super::store::StoreError| PlayError::Log(e.to_string());
        let a = self.store.audit(self.batch, self.index).map_err(err)?;
        let Some(mut d) = a.and_then(|a| a.dispute) else {
            return Err(PlayError::Log("the audit has no dispute".into()));
        };
        d.moves.push(p);
        self.store
            .set_dispute(self.batch, self.index, d)
            .map_err(err)
    }
}

/// The audit of a receipt when the watcher re-executes the shard itself: a different trace root
/// is a mismatch (located by bisection on L1); the same root is audited like any worker's data.
pub fn audit_by_reexecution(
    auditor: &Auditor,
    shard: &Shard,
    receipt: &verinfer_primitives::Receipt,
    seed: B256,
    policy: &Policy,
    backend: Backend,
) -> Verdict {
    let engine = match Engine::new(auditor.sku().clone(), backend) {
        Ok(e) => e,
        Err(e) => return skip_verdict(format!("engine: {e}")),
    };
    let local = match EngineTrace::new(engine, shard.clone()) {
        Ok(l) => l,
        Err(e) => return skip_verdict(format!("the shard does not run: {e}")),
    };
    let root = local.trace().trace_root();
    if root != receipt.traceRoot {
        return Verdict::TraceMismatch {
            local: root,
            claimed: receipt.traceRoot,
        };
    }
    let input = AuditInput {
        receipt,
        shard,
        seed,
    };
    auditor.audit(&input, &local, policy)
}

fn skip_verdict(detail: String) -> Verdict {
    Verdict::Evidence(super::audit::Evidence::BadReceipt { detail })
}

/// Opens the trace dispute of receipt `index` of `batch` (or finds the one already open).
async fn open_dispute(
    p: &DynProvider,
    game: Address,
    me: Address,
    batch: &super::store::BatchRecord,
    index: u64,
) -> DisputeRecord {
    match try_open(p, game, me, batch, index).await {
        Ok(d) => d,
        Err(e) => DisputeRecord {
            game_id: None,
            open_tx: None,
            state: format!("failed: {e}"),
            moves: Vec::new(),
        },
    }
}

async fn try_open(
    p: &DynProvider,
    game: Address,
    me: Address,
    batch: &super::store::BatchRecord,
    index: u64,
) -> Result<DisputeRecord, String> {
    let g = DisputeGame::new(game, p.clone());
    let entry = batch
        .receipts
        .get(index as usize)
        .ok_or("no such receipt")?;
    let bid = U256::from(batch.batch_id);
    if let Some(id) = our_game(&g, bid, entry.hash, me).await? {
        return Ok(DisputeRecord {
            game_id: Some(id),
            open_tx: None,
            state: "open".into(),
            moves: Vec::new(),
        });
    }
    let leaves: Vec<B256> = batch
        .receipts
        .iter()
        .map(|e| hash_leaf(&e.receipt.abi_encode()))
        .collect();
    let proof = MerkleTree::from_leaf_hashes(leaves)
        .proof(index)
        .map_err(|e| e.to_string())?
        .siblings;
    let bond = g.minBond().call().await.map_err(|e| e.to_string())?;
    let receipt: DisputeGame::Receipt = entry.receipt.clone().into();
    let rc = g
        .open(bid, receipt, U256::from(index), proof)
        .value(bond)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .with_timeout(Some(Duration::from_secs(60)))
        .get_receipt()
        .await
        .map_err(|e| e.to_string())?;
    if !rc.status() {
        return Err("open reverted".into());
    }
    Ok(DisputeRecord {
        game_id: our_game(&g, bid, entry.hash, me).await?,
        open_tx: Some(rc.transaction_hash),
        state: "open".into(),
        moves: Vec::new(),
    })
}

/// Our own trace dispute of a receipt: of every game `gamesOf` lists (others may have
/// challenged it too, a worker's puppet among them), the first whose challenger is `me`.
async fn our_game(
    g: &DisputeGame::DisputeGameInstance<DynProvider>,
    batch: U256,
    receipt: B256,
    me: Address,
) -> Result<Option<u64>, String> {
    let ids = g
        .gamesOf(batch, receipt, false)
        .call()
        .await
        .map_err(|e| e.to_string())?;
    for id in ids {
        let game = g.getGame(id).call().await.map_err(|e| e.to_string())?;
        if game.challenger == me {
            return Ok(Some(id.to::<u64>()));
        }
    }
    Ok(None)
}

/// One line describing an audit's outcome.
fn summary(a: &AuditRecord) -> String {
    let v = match (&a.verdict, &a.reason) {
        (Some(Verdict::Pass { gemms, rows }), _) => format!("pass ({gemms} GEMMs, {rows} rows)"),
        (Some(Verdict::Fraud(f)), _) => format!(
            "FRAUD at step {} ({}) row {} col {} [{}]",
            f.step, f.label, f.row, f.col, f.method
        ),
        (Some(Verdict::TraceMismatch { local, .. }), _) => {
            format!("FRAUD: re-executed trace root {local} differs")
        }
        (Some(Verdict::Evidence(e)), _) => format!("evidence: {e:?}"),
        (None, Some(r)) => format!("skipped: {r}"),
        (None, None) => "pending".into(),
    };
    match &a.dispute {
        Some(d) => format!("{v}; dispute {} game {:?}", d.state, d.game_id),
        None => v,
    }
}

/// The status the CLI shows: cursor, batches, audits with a summary, counts.
pub fn status_report(store: &Store) -> Result<serde_json::Value, super::store::StoreError> {
    let audits = store.audits()?;
    let count = |f: &dyn Fn(&AuditRecord) -> bool| audits.iter().filter(|a| f(a)).count();
    let counts = serde_json::json!({
        "pass": count(&|a| matches!(a.verdict, Some(Verdict::Pass { .. }))),
        "fraud": count(&|a| a.verdict.as_ref().is_some_and(Verdict::disputes)),
        "evidence": count(&|a| matches!(a.verdict, Some(Verdict::Evidence(_)))),
        "skipped": count(&|a| a.state == AuditState::Skipped),
        "pending": count(&|a| a.state == AuditState::Pending),
    });
    let batches: Vec<serde_json::Value> = store
        .batches()?
        .iter()
        .map(|b| {
            serde_json::json!({
                "batchId": b.batch_id,
                "block": b.block_number,
                "blockHash": b.block_hash,
                "state": b.state,
                "receiptsRoot": b.receipts_root,
                "receipts": b.receipts.len(),
            })
        })
        .collect();
    let list: Vec<serde_json::Value> = audits
        .iter()
        .map(|a| {
            serde_json::json!({
                "batchId": a.batch_id,
                "index": a.index,
                "receiptHash": a.receipt_hash,
                "state": a.state,
                "verdict": a.verdict,
                "reason": a.reason,
                "millis": a.millis,
                "dispute": a.dispute,
                "summary": summary(a),
            })
        })
        .collect();
    Ok(serde_json::json!({
        "cursor": store.cursor()?,
        "counts": counts,
        "batches": batches,
        "audits": list,
        "logLength": store.log()?.len(),
    }))
}
