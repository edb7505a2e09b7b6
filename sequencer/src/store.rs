//! Durable sequencer state in one redb file.
//!
//! Every state change is one redb write transaction committed with `Durability::Immediate`
//! (fsync before `commit` returns), and the RPC layer answers only after the commit, so whatever
//! a client was told survives a crash. Each transaction moves the state from one consistent
//! point to the next (a job with all its shards and its reservation; a shard's result with its
//! job's progress; a batch with every job it charges), so there is no half-written state to
//! repair after `kill -9`.
//!
//! Records are JSON values (the same serde shapes as the API), keyed by fixed-size ids.

use std::path::Path;

use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_sol_types::SolValue;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::HashMap;

use verinfer_primitives::job::{encode_inputs, shard_id, JobRequest, Prompt};
use verinfer_primitives::merkle::hash_leaf;
use verinfer_primitives::Receipt;
use verinfer_rpc::types::{
    AssignmentSeed, BatchState, DropReason, JobEvent, JobState, RequeueReason,
};

use crate::gas::GasModel;

/// job id → [`JobRecord`].
const JOBS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("jobs");
/// (buyer, nonce) → job id: a nonce is spent once per buyer.
const NONCES: TableDefinition<([u8; 20], u64), [u8; 32]> = TableDefinition::new("nonces");
/// job id → prompts (JSON list).
const PROMPTS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("prompts");
/// (buyer, acceptance sequence number) → job id: a buyer's jobs in order.
const BUYER_JOBS: TableDefinition<([u8; 20], u64), [u8; 32]> = TableDefinition::new("buyer_jobs");
/// shard id → [`ShardRecord`].
const SHARDS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("shards");
/// Shards without an accepted result (shard id → unit).
const OPEN_SHARDS: TableDefinition<[u8; 32], ()> = TableDefinition::new("open_shards");
/// Completed jobs not yet in a batch: acceptance sequence → job id (batched oldest first).
const READY_JOBS: TableDefinition<u64, [u8; 32]> = TableDefinition::new("ready_jobs");
/// buyer → amount reserved by its open jobs (32-byte big-endian U256).
const RESERVED: TableDefinition<[u8; 20], [u8; 32]> = TableDefinition::new("reserved");
/// batch index → [`BatchRecord`].
const BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("batches");
/// worker → [`WorkerRecord`].
const WORKERS: TableDefinition<[u8; 20], &[u8]> = TableDefinition::new("workers");
/// Counters: `next_seq`, `next_batch`.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Failures of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (I/O, corruption, transaction).
    #[error("redb: {0}")]
    Db(#[from] redb::Error),
    /// A stored record does not decode (written by an incompatible version?).
    #[error("stored record in table {table} does not decode: {source}")]
    Decode {
        table: &'static str,
        source: serde_json::Error,
    },
    /// A record refers to another that is missing.
    #[error("inconsistent store: {0}")]
    Inconsistent(String),
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
db_err!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    /// The job id (EIP-712 digest).
    pub id: B256,
    /// The signed job.
    pub job: JobRequest,
    /// The buyer's signature.
    pub signature: Bytes,
    /// Life-cycle state.
    pub state: JobState,
    /// Number of shards.
    pub shards_total: u32,
    /// Shards with an accepted result.
    pub shards_done: u32,
    /// Token price fixed at acceptance (wei).
    pub price_per_token: U256,
    /// Batch index, once batched.
    pub batch: Option<u64>,
    /// Amount charged, once batched.
    pub charged: Option<U256>,
    /// Acceptance time, unix ms.
    pub accepted_at_ms: u64,
    /// Global acceptance sequence number.
    pub seq: u64,
    /// L1 head read at acceptance (the assignment seed is the hash of the block after it).
    #[serde(default)]
    pub accept_head: Option<u64>,
    /// The assignment seed once known.
    #[serde(default)]
    pub seed: Option<AssignmentSeed>,
    /// Why it was dropped.
    #[serde(default)]
    pub drop_reason: Option<DropReason>,
    /// What happened to it besides state moves.
    #[serde(default)]
    pub events: Vec<JobEvent>,
}

/// Where a shard is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
// Shard states are decoded one at a time from the store, never held in bulk, so the size of
// the `Done` variant costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
pub enum ShardState {
    /// Waiting for a worker.
    Open,
    /// Sent to `worker`, result due by `deadlineMs`.
    #[serde(rename_all = "camelCase")]
    Assigned { worker: Address, deadline_ms: u64 },
    /// Result accepted.
    #[serde(rename_all = "camelCase")]
    Done {
        receipt: Receipt,
        signature: Bytes,
        outputs: Vec<Vec<u32>>,
    },
}

/// A stored shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardRecord {
    /// `shard_id(job_id, index)`.
    pub shard_id: B256,
    /// The job.
    pub job_id: B256,
    /// Position in the job.
    pub index: u32,
    /// First prompt of the job in this shard.
    pub first_prompt: u32,
    /// Number of prompts.
    pub prompt_count: u32,
    /// Merkle root of the shard's prompts.
    pub input_root: B256,
    /// SKU.
    pub sku_id: B256,
    /// Decode length.
    pub max_new_tokens: u64,
    /// Where it is.
    pub state: ShardState,
    /// Number of assignments so far.
    pub attempts: u32,
    /// Workers that missed this shard's deadline (not picked again while others exist).
    pub missed_by: Vec<Address>,
    /// Workers whose receipt for this shard was discarded because they stopped serving the
    /// SKU on L1 (not picked again while others exist).
    #[serde(default)]
    pub requeued_from: Vec<Address>,
}

/// A stored batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRecord {
    /// Dense index from 0; L1 accepts batch `n` only after `n - 1`, which makes posting
    /// idempotent.
    pub index: u64,
    /// The inbox's receipts root: Merkle root over `hash_leaf(abi.encode(receipt))`.
    pub receipts_root: B256,
    /// `keccak256(abi.encode(receipt))` in leaf order.
    pub receipt_hashes: Vec<B256>,
    /// `hash_leaf(abi.encode(receipt))` in leaf order (the tree's leaves).
    pub receipt_leaves: Vec<B256>,
    /// Jobs charged by this batch, with buyer and amount.
    pub charges: Vec<Charge>,
    /// L1 state.
    pub state: BatchState,
    /// Posting transaction.
    pub l1_tx: Option<B256>,
    /// Block of inclusion.
    pub l1_block: Option<u64>,
    /// Hash of that block (re-checked by the follower to detect reorgs).
    pub l1_block_hash: Option<B256>,
    /// Gas used by the posting.
    pub gas_used: Option<u64>,
    /// True once the buyers' reservations for these jobs were released.
    pub released: bool,
}

/// One job's charge inside a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Charge {
    /// Job.
    pub job_id: B256,
    /// Buyer.
    pub buyer: Address,
    /// Charged amount.
    pub amount: U256,
    /// What acceptance reserved (`maxPrice`), released when the batch lands.
    pub reserved: U256,
}

/// A stored worker registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRecord {
    /// Staking address.
    pub worker: Address,
    /// SKUs it serves.
    pub skus: Vec<B256>,
    /// Stake read from L1 at registration.
    pub stake: U256,
    /// Deadlines missed.
    pub missed: u64,
    /// Results accepted.
    pub completed: u64,
    /// `issuedAt` of the last accepted registration: a new one must be strictly newer, so a
    /// captured registration cannot be replayed (see `Store::put_worker`).
    #[serde(default)]
    pub issued_at: u64,
}

/// A validated job ready to store.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its id.
    pub id: B256,
    /// The job.
    pub job: JobRequest,
    /// Buyer's signature.
    pub signature: Bytes,
    /// Prompts.
    pub prompts: Vec<Prompt>,
    /// Shards (state `Open`).
    pub shards: Vec<ShardRecord>,
    /// Token price at acceptance.
    pub price_per_token: U256,
    /// L1 escrow balance read for the buyer.
    pub balance: U256,
    /// Unix ms.
    pub accepted_at_ms: u64,
    /// L1 head read at acceptance.
    pub accept_head: u64,
}

/// Why a job was refused at store time (decided inside the write transaction, so concurrent
/// submissions cannot both pass).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertRefusal {
    /// `(buyer, nonce)` already stored.
    Replayed,
    /// Balance less reserved is below `maxPrice`.
    BalanceTooLow { balance: U256, reserved: U256 },
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing our own plain structs to JSON cannot fail (no maps with non-string keys).
    serde_json::to_vec(v).unwrap_or_default()
}

fn dec<T: DeserializeOwned>(table: &'static str, b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|source| StoreError::Decode { table, source })
}

fn u256_bytes(v: U256) -> [u8; 32] {
    v.to_be_bytes()
}

/// The sequencer's database.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) `dir/sequencer.redb` and its tables.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
        let db = Database::create(dir.join("sequencer.redb"))?;
        let tx = db.begin_write()?;
        {
            tx.open_table(JOBS)?;
            tx.open_table(PROMPTS)?;
            tx.open_table(NONCES)?;
            tx.open_table(BUYER_JOBS)?;
            tx.open_table(SHARDS)?;
            tx.open_table(OPEN_SHARDS)?;
            tx.open_table(READY_JOBS)?;
            tx.open_table(RESERVED)?;
            tx.open_table(BATCHES)?;
            tx.open_table(WORKERS)?;
            tx.open_table(META)?;
        }
        tx.commit()?;
        Ok(Self { db })
    }

    fn write(&self) -> Result<WriteTransaction, StoreError> {
        // `Immediate` is redb's default; set it anyway: acknowledgements depend on it.
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::Immediate)
            .map_err(|e| StoreError::Inconsistent(e.to_string()))?;
        Ok(tx)
    }

    /// Stores jobs in ONE transaction (group commit: one fsync for many acknowledgements).
    /// Returns, per job and in order, `Ok(seq)` or why it was refused. Refused jobs leave no
    /// trace.
    pub fn insert_jobs(
        &self,
        jobs: &[NewJob],
    ) -> Result<Vec<Result<u64, InsertRefusal>>, StoreError> {
        let tx = self.write()?;
        let mut out = Vec::with_capacity(jobs.len());
        {
            let mut t_jobs = tx.open_table(JOBS)?;
            let mut t_prompts = tx.open_table(PROMPTS)?;
            let mut t_nonces = tx.open_table(NONCES)?;
            let mut t_buyer = tx.open_table(BUYER_JOBS)?;
            let mut t_shards = tx.open_table(SHARDS)?;
            let mut t_open = tx.open_table(OPEN_SHARDS)?;
            let mut t_res = tx.open_table(RESERVED)?;
            let mut t_meta = tx.open_table(META)?;
            let mut seq = t_meta.get("next_seq")?.map(|g| g.value()).unwrap_or(0);
            for nj in jobs {
                let id = nj.id;
                let buyer = nj.job.buyer.0 .0;
                if t_jobs.get(id.0)?.is_some() || t_nonces.get((buyer, nj.job.nonce))?.is_some() {
                    out.push(Err(InsertRefusal::Replayed));
                    continue;
                }
                let reserved = t_res
                    .get(buyer)?
                    .map(|g| U256::from_be_bytes(g.value()))
                    .unwrap_or(U256::ZERO);
                if nj.balance < reserved.saturating_add(nj.job.maxPrice) {
                    out.push(Err(InsertRefusal::BalanceTooLow {
                        balance: nj.balance,
                        reserved,
                    }));
                    continue;
                }
                let rec = JobRecord {
                    id,
                    job: nj.job.clone(),
                    signature: nj.signature.clone(),
                    state: JobState::Accepted,
                    shards_total: nj.shards.len() as u32,
                    shards_done: 0,
                    price_per_token: nj.price_per_token,
                    batch: None,
                    charged: None,
                    accepted_at_ms: nj.accepted_at_ms,
                    seq,
                    accept_head: Some(nj.accept_head),
                    seed: None,
                    drop_reason: None,
                    events: Vec::new(),
                };
                t_jobs.insert(id.0, enc(&rec).as_slice())?;
                t_prompts.insert(id.0, enc(&nj.prompts).as_slice())?;
                t_nonces.insert((buyer, nj.job.nonce), id.0)?;
                t_buyer.insert((buyer, seq), id.0)?;
                for s in &nj.shards {
                    t_shards.insert(s.shard_id.0, enc(s).as_slice())?;
                    t_open.insert(s.shard_id.0, ())?;
                }
                t_res.insert(buyer, u256_bytes(reserved + nj.job.maxPrice))?;
                out.push(Ok(seq));
                seq += 1;
            }
            t_meta.insert("next_seq", seq)?;
        }
        tx.commit()?;
        Ok(out)
    }

    /// One job.
    pub fn job(&self, id: B256) -> Result<Option<JobRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(JOBS)?;
        t.get(id.0)?.map(|g| dec("jobs", g.value())).transpose()
    }

    /// A job's prompts.
    pub fn prompts(&self, id: B256) -> Result<Option<Vec<Prompt>>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(PROMPTS)?;
        t.get(id.0)?.map(|g| dec("prompts", g.value())).transpose()
    }

    /// One shard.
    pub fn shard(&self, id: B256) -> Result<Option<ShardRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SHARDS)?;
        t.get(id.0)?.map(|g| dec("shards", g.value())).transpose()
    }

    /// All shards of a job, in order.
    pub fn shards_of(&self, job: &JobRecord) -> Result<Vec<ShardRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SHARDS)?;
        let id = job.id;
        (0..job.shards_total)
            .map(|i| {
                let sid = shard_id(id, i);
                let g = t
                    .get(sid.0)?
                    .ok_or_else(|| StoreError::Inconsistent(format!("job {id} lacks shard {i}")))?;
                dec("shards", g.value())
            })
            .collect()
    }

    /// Up to `limit` jobs of `buyer` with sequence number >= `from`, and the next cursor.
    pub fn jobs_of(
        &self,
        buyer: Address,
        from: u64,
        limit: usize,
    ) -> Result<(Vec<JobRecord>, Option<u64>), StoreError> {
        let tx = self.db.begin_read()?;
        let idx = tx.open_table(BUYER_JOBS)?;
        let jobs = tx.open_table(JOBS)?;
        let b = buyer.0 .0;
        let mut out = Vec::new();
        let mut next = None;
        for item in idx.range((b, from)..=(b, u64::MAX))? {
            let (k, v) = item?;
            if out.len() == limit {
                next = Some(k.value().1);
                break;
            }
            let g = jobs.get(v.value())?.ok_or_else(|| {
                StoreError::Inconsistent("buyer index names a missing job".into())
            })?;
            out.push(dec("jobs", g.value())?);
        }
        Ok((out, next))
    }

    /// Every shard without an accepted result.
    pub fn open_shards(&self) -> Result<Vec<ShardRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let open = tx.open_table(OPEN_SHARDS)?;
        let shards = tx.open_table(SHARDS)?;
        let mut out = Vec::new();
        for item in open.iter()? {
            let (k, _) = item?;
            let g = shards
                .get(k.value())?
                .ok_or_else(|| StoreError::Inconsistent("open shard missing".into()))?;
            out.push(dec("shards", g.value())?);
        }
        Ok(out)
    }

    /// Records that `shard` goes to `worker` until `deadline_ms`; when `missed` names the
    /// previous assignee, its miss is recorded on the shard and on the worker.
    pub fn assign(
        &self,
        shard: B256,
        worker: Address,
        deadline_ms: u64,
        missed: Option<Address>,
    ) -> Result<ShardRecord, StoreError> {
        let tx = self.write()?;
        let rec = {
            let mut t = tx.open_table(SHARDS)?;
            let mut rec: ShardRecord = {
                let g = t.get(shard.0)?.ok_or_else(|| {
                    StoreError::Inconsistent(format!("assigning unknown shard {shard}"))
                })?;
                dec("shards", g.value())?
            };
            if let Some(m) = missed {
                if !rec.missed_by.contains(&m) {
                    rec.missed_by.push(m);
                }
                let mut w = tx.open_table(WORKERS)?;
                let wr: Option<WorkerRecord> = w
                    .get(m.0 .0)?
                    .map(|g| dec("workers", g.value()))
                    .transpose()?;
                if let Some(mut wr) = wr {
                    wr.missed += 1;
                    w.insert(m.0 .0, enc(&wr).as_slice())?;
                }
            }
            rec.state = ShardState::Assigned {
                worker,
                deadline_ms,
            };
            rec.attempts += 1;
            t.insert(shard.0, enc(&rec).as_slice())?;
            rec
        };
        tx.commit()?;
        Ok(rec)
    }

    /// Accepts a shard's (already checked) result. Returns the updated job record. The shard
    /// must still be assigned to `receipt.worker`; otherwise nothing changes and `None` comes
    /// back.
    pub fn complete_shard(
        &self,
        shard: B256,
        receipt: Receipt,
        signature: Bytes,
        outputs: Vec<Vec<u32>>,
    ) -> Result<Option<JobRecord>, StoreError> {
        let tx = self.write()?;
        let job = {
            let mut t = tx.open_table(SHARDS)?;
            let mut rec: ShardRecord = match t.get(shard.0)? {
                Some(g) => dec("shards", g.value())?,
                None => return Ok(None),
            };
            match rec.state {
                ShardState::Assigned { worker, .. } if worker == receipt.worker => {}
                _ => return Ok(None),
            }
            let worker = receipt.worker;
            rec.state = ShardState::Done {
                receipt,
                signature,
                outputs,
            };
            t.insert(shard.0, enc(&rec).as_slice())?;
            tx.open_table(OPEN_SHARDS)?.remove(shard.0)?;
            let mut jobs = tx.open_table(JOBS)?;
            let mut job: JobRecord = {
                let g = jobs.get(rec.job_id.0)?.ok_or_else(|| {
                    StoreError::Inconsistent(format!("shard of unknown job {}", rec.job_id))
                })?;
                dec("jobs", g.value())?
            };
            if job.state != JobState::Accepted {
                // Cancelled or dropped meanwhile: the result is not taken (the transaction is
                // dropped, nothing changes).
                return Ok(None);
            }
            job.shards_done += 1;
            if job.shards_done == job.shards_total {
                job.state = JobState::Completed;
                tx.open_table(READY_JOBS)?.insert(job.seq, rec.job_id.0)?;
            }
            jobs.insert(rec.job_id.0, enc(&job).as_slice())?;
            let mut w = tx.open_table(WORKERS)?;
            let wr: Option<WorkerRecord> = w
                .get(worker.0 .0)?
                .map(|g| dec("workers", g.value()))
                .transpose()?;
            if let Some(mut wr) = wr {
                wr.completed += 1;
                w.insert(worker.0 .0, enc(&wr).as_slice())?;
            }
            job
        };
        tx.commit()?;
        Ok(Some(job))
    }

    /// Number of completed jobs waiting for a batch.
    pub fn ready_count(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(READY_JOBS)?.len()?)
    }

    /// Takes completed jobs (oldest first, at most `max_jobs` jobs, `max_receipts` receipts
    /// and `gas.budget` of estimated posting and finalization gas; always at least one job)
    /// into a new batch, charging each job `min(tokensProcessed × price, maxPrice)` at the
    /// SKU's current L1 price from `prices` (the inbox fixes the price when it first sees the
    /// job), taking only jobs in `checked`, in one transaction: a job is in exactly one batch and is charged exactly once.
    /// `None` when no job is ready.
    pub fn create_batch(
        &self,
        max_jobs: usize,
        max_receipts: usize,
        gas: &GasModel,
        prices: &HashMap<B256, U256>,
        checked: &std::collections::HashSet<B256>,
    ) -> Result<Option<BatchRecord>, StoreError> {
        let tx = self.write()?;
        let batch = {
            let mut ready = tx.open_table(READY_JOBS)?;
            let mut picked = Vec::new();
            for item in ready.iter()?.take(max_jobs) {
                let (k, v) = item?;
                let id = B256::from(v.value());
                // Only jobs re-checked against L1 just before (`batcher::precheck`); one that
                // became ready since waits for the next batch.
                if !checked.contains(&id) {
                    break;
                }
                picked.push((k.value(), id));
            }
            if picked.is_empty() {
                return Ok(None);
            }
            let mut meta = tx.open_table(META)?;
            let index = meta.get("next_batch")?.map(|g| g.value()).unwrap_or(0);
            let mut jobs = tx.open_table(JOBS)?;
            let shards = tx.open_table(SHARDS)?;
            let prompts_t = tx.open_table(PROMPTS)?;
            let mut hashes = Vec::new();
            let mut leaves = Vec::new();
            let mut charges = Vec::new();
            let mut sizes: Vec<(usize, u32)> = Vec::new();
            for (seq, id) in &picked {
                let mut job: JobRecord = {
                    let g = jobs.get(id.0)?.ok_or_else(|| {
                        StoreError::Inconsistent(format!("ready job {id} missing"))
                    })?;
                    dec("jobs", g.value())?
                };
                let inputs_len = match prompts_t.get(id.0)? {
                    Some(g) => encode_inputs(&dec::<Vec<Prompt>>("prompts", g.value())?).len(),
                    None => 0,
                };
                sizes.push((inputs_len, job.shards_total));
                if !charges.is_empty()
                    && (hashes.len() + job.shards_total as usize > max_receipts
                        || !gas.fits(&sizes))
                {
                    break;
                }
                ready.remove(*seq)?;
                let mut tokens = 0u64;
                for i in 0..job.shards_total {
                    let g = shards.get(shard_id(*id, i).0)?.ok_or_else(|| {
                        StoreError::Inconsistent(format!("job {id} lacks shard {i}"))
                    })?;
                    let s: ShardRecord = dec("shards", g.value())?;
                    let ShardState::Done { receipt, .. } = s.state else {
                        return Err(StoreError::Inconsistent(format!(
                            "ready job {id} has an unfinished shard {i}"
                        )));
                    };
                    tokens = tokens.saturating_add(receipt.tokensProcessed);
                    let enc = receipt.abi_encode();
                    hashes.push(alloy_primitives::keccak256(&enc));
                    leaves.push(hash_leaf(&enc));
                }
                if let Some(p) = prices.get(&job.job.skuId) {
                    if *p != job.price_per_token {
                        job.events.push(JobEvent::Repriced {
                            old: job.price_per_token,
                            new: *p,
                        });
                        job.price_per_token = *p;
                    }
                }
                let amount = job
                    .price_per_token
                    .saturating_mul(U256::from(tokens))
                    .min(job.job.maxPrice);
                job.state = JobState::Batched;
                job.batch = Some(index);
                job.charged = Some(amount);
                jobs.insert(id.0, enc(&job).as_slice())?;
                charges.push(Charge {
                    job_id: *id,
                    buyer: job.job.buyer,
                    amount,
                    reserved: job.job.maxPrice,
                });
            }
            let receipts_root =
                verinfer_primitives::MerkleTree::from_leaf_hashes(leaves.clone()).root();
            let batch = BatchRecord {
                index,
                receipts_root,
                receipt_hashes: hashes,
                receipt_leaves: leaves,
                charges,
                state: BatchState::Pending,
                l1_tx: None,
                l1_block: None,
                l1_block_hash: None,
                gas_used: None,
                released: false,
            };
            tx.open_table(BATCHES)?
                .insert(index, enc(&batch).as_slice())?;
            meta.insert("next_batch", index + 1)?;
            batch
        };
        tx.commit()?;
        Ok(Some(batch))
    }

    /// Completed jobs waiting for a batch, oldest first (at most `limit`).
    pub fn ready_jobs(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let ready = tx.open_table(READY_JOBS)?;
        let jobs = tx.open_table(JOBS)?;
        let mut out = Vec::new();
        for item in ready.iter()?.take(limit) {
            let (_, v) = item?;
            let g = jobs
                .get(v.value())?
                .ok_or_else(|| StoreError::Inconsistent("ready job missing".into()))?;
            out.push(dec("jobs", g.value())?);
        }
        Ok(out)
    }

    /// Ends a job that is not in a batch (state `accepted` or `completed`): it leaves the
    /// ready queue, its unfinished shards are closed, the buyer's reservation is released, and
    /// it takes `state` (`Dropped` with `reason`, or `Cancelled`). Returns the job and the ids
    /// of the shards that were still open, or `None` when the job is not in such a state.
    pub fn end_job(
        &self,
        id: B256,
        state: JobState,
        reason: Option<DropReason>,
    ) -> Result<Option<(JobRecord, Vec<B256>)>, StoreError> {
        let tx = self.write()?;
        let out = {
            let mut jobs = tx.open_table(JOBS)?;
            let mut job: JobRecord = match jobs.get(id.0)? {
                Some(g) => dec("jobs", g.value())?,
                None => return Ok(None),
            };
            if !matches!(job.state, JobState::Accepted | JobState::Completed) {
                return Ok(None);
            }
            tx.open_table(READY_JOBS)?.remove(job.seq)?;
            let mut open = tx.open_table(OPEN_SHARDS)?;
            let mut closed = Vec::new();
            for i in 0..job.shards_total {
                let sid = shard_id(id, i);
                if open.remove(sid.0)?.is_some() {
                    closed.push(sid);
                }
            }
            let mut res = tx.open_table(RESERVED)?;
            let b = job.job.buyer.0 .0;
            let cur = res
                .get(b)?
                .map(|g| U256::from_be_bytes(g.value()))
                .unwrap_or(U256::ZERO);
            res.insert(b, u256_bytes(cur.saturating_sub(job.job.maxPrice)))?;
            job.state = state;
            job.drop_reason = reason;
            jobs.insert(id.0, enc(&job).as_slice())?;
            (job, closed)
        };
        tx.commit()?;
        Ok(Some(out))
    }

    /// Takes back the accepted result of a shard whose job is not yet batched (its worker can
    /// no longer post it) and opens the shard again, excluding that worker. Returns the shard,
    /// or `None` when it is not in that situation.
    pub fn requeue_shard(
        &self,
        shard: B256,
        reason: RequeueReason,
    ) -> Result<Option<ShardRecord>, StoreError> {
        let tx = self.write()?;
        let out = {
            let mut t = tx.open_table(SHARDS)?;
            let mut rec: ShardRecord = match t.get(shard.0)? {
                Some(g) => dec("shards", g.value())?,
                None => return Ok(None),
            };
            let ShardState::Done { receipt, .. } = &rec.state else {
                return Ok(None);
            };
            let worker = receipt.worker;
            let mut jobs = tx.open_table(JOBS)?;
            let mut job: JobRecord = match jobs.get(rec.job_id.0)? {
                Some(g) => dec("jobs", g.value())?,
                None => return Ok(None),
            };
            if !matches!(job.state, JobState::Accepted | JobState::Completed) {
                return Ok(None);
            }
            tx.open_table(READY_JOBS)?.remove(job.seq)?;
            job.state = JobState::Accepted;
            job.shards_done = job.shards_done.saturating_sub(1);
            job.events.push(JobEvent::ShardRequeued {
                shard_index: rec.index,
                worker,
                reason,
            });
            jobs.insert(rec.job_id.0, enc(&job).as_slice())?;
            if !rec.requeued_from.contains(&worker) {
                rec.requeued_from.push(worker);
            }
            rec.state = ShardState::Open;
            t.insert(shard.0, enc(&rec).as_slice())?;
            tx.open_table(OPEN_SHARDS)?.insert(shard.0, ())?;
            rec
        };
        tx.commit()?;
        Ok(Some(out))
    }

    /// Takes apart batch `index` and every later one, which must all be unposted (`Pending`,
    /// never seen on L1, reservations held): their jobs go back to the ready queue in their
    /// order and the batch counter goes back to `index`, so the next batch reuses the index
    /// (the inbox numbers batches densely). Used when `postBatch` reverted. Returns the jobs.
    pub fn dissolve_batches_from(&self, index: u64) -> Result<Vec<B256>, StoreError> {
        let tx = self.write()?;
        let mut returned = Vec::new();
        {
            let mut meta = tx.open_table(META)?;
            let next = meta.get("next_batch")?.map(|g| g.value()).unwrap_or(0);
            let mut batches = tx.open_table(BATCHES)?;
            let mut jobs = tx.open_table(JOBS)?;
            let mut ready = tx.open_table(READY_JOBS)?;
            for i in index..next {
                let b: BatchRecord = match batches.get(i)? {
                    Some(g) => dec("batches", g.value())?,
                    None => return Err(StoreError::Inconsistent(format!("batch {i} missing"))),
                };
                if b.state != BatchState::Pending || b.l1_block.is_some() || b.released {
                    return Err(StoreError::Inconsistent(format!(
                        "batch {i} is not an unposted pending batch"
                    )));
                }
                for c in &b.charges {
                    let mut j: JobRecord = match jobs.get(c.job_id.0)? {
                        Some(g) => dec("jobs", g.value())?,
                        None => continue,
                    };
                    j.state = JobState::Completed;
                    j.batch = None;
                    j.charged = None;
                    j.events.push(JobEvent::BatchDissolved { batch: i });
                    ready.insert(j.seq, c.job_id.0)?;
                    jobs.insert(c.job_id.0, enc(&j).as_slice())?;
                    returned.push(c.job_id);
                }
                batches.remove(i)?;
            }
            if index < next {
                meta.insert("next_batch", index)?;
            }
        }
        tx.commit()?;
        Ok(returned)
    }

    /// Records a job's assignment seed.
    pub fn set_seed(&self, id: B256, seed: AssignmentSeed) -> Result<(), StoreError> {
        let tx = self.write()?;
        {
            let mut jobs = tx.open_table(JOBS)?;
            let mut j: JobRecord = match jobs.get(id.0)? {
                Some(g) => dec("jobs", g.value())?,
                None => return Ok(()),
            };
            if j.seed.is_none() {
                j.seed = Some(seed);
                jobs.insert(id.0, enc(&j).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// One batch.
    pub fn batch(&self, index: u64) -> Result<Option<BatchRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(BATCHES)?;
        t.get(index)?.map(|g| dec("batches", g.value())).transpose()
    }

    /// Batches not yet finalized, oldest first.
    pub fn unsettled_batches(&self) -> Result<Vec<BatchRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(BATCHES)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (_, v) = item?;
            let b: BatchRecord = dec("batches", v.value())?;
            if !matches!(b.state, BatchState::Finalized) {
                out.push(b);
            }
        }
        Ok(out)
    }

    /// Replaces a batch record; the first time a batch is seen on L1 (`l1_block` set) the
    /// buyers' reservations for its jobs are released (the escrow on L1 now holds the charge),
    /// and the jobs follow the batch's state.
    pub fn update_batch(&self, mut batch: BatchRecord) -> Result<(), StoreError> {
        let tx = self.write()?;
        {
            if batch.l1_block.is_some() && !batch.released {
                let mut res = tx.open_table(RESERVED)?;
                for c in &batch.charges {
                    let b = c.buyer.0 .0;
                    let cur = res
                        .get(b)?
                        .map(|g| U256::from_be_bytes(g.value()))
                        .unwrap_or(U256::ZERO);
                    res.insert(b, u256_bytes(cur.saturating_sub(c.reserved)))?;
                }
                batch.released = true;
            } else if batch.l1_block.is_none() && batch.released {
                // A reorg dropped the posting (and its escrow charge): hold the amounts again
                // until the batch is back on L1.
                let mut res = tx.open_table(RESERVED)?;
                for c in &batch.charges {
                    let b = c.buyer.0 .0;
                    let cur = res
                        .get(b)?
                        .map(|g| U256::from_be_bytes(g.value()))
                        .unwrap_or(U256::ZERO);
                    res.insert(b, u256_bytes(cur.saturating_add(c.reserved)))?;
                }
                batch.released = false;
            }
            let job_state = match batch.state {
                BatchState::Pending | BatchState::Posted => JobState::Batched,
                BatchState::Confirmed => JobState::Confirmed,
                BatchState::Finalized => JobState::Finalized,
                BatchState::Disputed => JobState::Disputed,
            };
            let mut jobs = tx.open_table(JOBS)?;
            for c in &batch.charges {
                let j: Option<JobRecord> = jobs
                    .get(c.job_id.0)?
                    .map(|g| dec("jobs", g.value()))
                    .transpose()?;
                let Some(mut j) = j else { continue };
                if j.state != job_state {
                    j.state = job_state;
                    jobs.insert(c.job_id.0, enc(&j).as_slice())?;
                }
            }
            tx.open_table(BATCHES)?
                .insert(batch.index, enc(&batch).as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Amount reserved by `buyer`'s open jobs.
    pub fn reserved(&self, buyer: Address) -> Result<U256, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(RESERVED)?;
        Ok(t.get(buyer.0 .0)?
            .map(|g| U256::from_be_bytes(g.value()))
            .unwrap_or(U256::ZERO))
    }

    /// Stores a worker registration (keeps its counters if it registered before). The
    /// registration's `issued_at` must be strictly newer than the last stored one, checked in
    /// the same transaction: a signed registration is usable once, and an old one cannot
    /// replace a newer session. `Err(last)` names the last accepted `issuedAt` otherwise.
    pub fn put_worker(
        &self,
        mut rec: WorkerRecord,
    ) -> Result<Result<WorkerRecord, u64>, StoreError> {
        let tx = self.write()?;
        {
            let mut t = tx.open_table(WORKERS)?;
            let old: Option<WorkerRecord> = t
                .get(rec.worker.0 .0)?
                .map(|g| dec("workers", g.value()))
                .transpose()?;
            if let Some(old) = old {
                if rec.issued_at <= old.issued_at {
                    return Ok(Err(old.issued_at));
                }
                rec.missed = old.missed;
                rec.completed = old.completed;
            }
            t.insert(rec.worker.0 .0, enc(&rec).as_slice())?;
        }
        tx.commit()?;
        Ok(Ok(rec))
    }

    /// Every registered worker.
    pub fn workers(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(WORKERS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (_, v) = item?;
            out.push(dec("workers", v.value())?);
        }
        Ok(out)
    }

    /// Counts of stored jobs, open shards and batches (for metrics).
    pub fn counts(&self) -> Result<(u64, u64, u64), StoreError> {
        let tx = self.db.begin_read()?;
        Ok((
            tx.open_table(JOBS)?.len()?,
            tx.open_table(OPEN_SHARDS)?.len()?,
            tx.open_table(BATCHES)?.len()?,
        ))
    }
}
