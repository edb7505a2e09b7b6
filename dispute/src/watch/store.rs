//! The watcher's durable state in one redb file (`DIR/watch.redb`): the L1 cursor, the batches
//! seen (with the block that holds them, to notice reorgs), the jobs they carry, one audit per
//! posted receipt, and an append-only log of finished audits.
//!
//! Every change is one write transaction committed with `Durability::Immediate`: a scanned block
//! range with every batch in it and the new cursor; a reorg (batches dropped, cursor rewound);
//! an audit's result with its log entry. An audit is marked done in the same transaction that
//! appends its log entry, and only if it was not done yet, so a restart re-runs an unfinished
//! audit but never records one twice.

use std::path::Path;

use alloy_primitives::B256;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use verinfer_primitives::job::Prompt;
use verinfer_primitives::Receipt;

use super::audit::Verdict;

/// batch id → [`BatchRecord`].
const BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("batches");
/// job id → [`JobEntry`].
const JOBS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("jobs");
/// (batch id, receipt index) → [`AuditRecord`].
const AUDITS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("audits");
/// sequence → [`LogEntry`]: one entry per finished audit.
const AUDIT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_log");
/// Last block of each scanned range → its hash (a reorg changes the newest one first).
const TIPS: TableDefinition<u64, [u8; 32]> = TableDefinition::new("tips");
/// `cursor` (next L1 block to scan), `log_seq`.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Failures of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redb: {0}")]
    Db(#[from] redb::Error),
    #[error("stored record in {table} does not decode: {source}")]
    Decode {
        table: &'static str,
        source: serde_json::Error,
    },
    #[error("cannot encode a record: {0}")]
    Encode(serde_json::Error),
    #[error("redb durability: {0}")]
    Durability(String),
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

/// Whether a batch is on the chain the watcher follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchState {
    /// Seen in a block that is still canonical.
    Live,
    /// Its block was reorged away and it has not been seen again.
    Dropped,
}

/// One receipt of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptEntry {
    pub index: u64,
    pub hash: B256,
    pub receipt: Receipt,
}

/// A posted batch as the watcher saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    pub batch_id: u64,
    pub block_number: u64,
    pub block_hash: B256,
    pub tx_hash: B256,
    pub receipts_root: B256,
    pub state: BatchState,
    pub receipts: Vec<ReceiptEntry>,
}

/// A job's shard-relevant facts, from its first posting's calldata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEntry {
    pub job_id: B256,
    pub sku_id: B256,
    pub max_new_tokens: u64,
    pub prompts: Vec<Prompt>,
}

/// Where an audit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditState {
    Pending,
    Done,
    /// Not audited, and why (`reason` on the record): no SKU file, not sampled, job unknown.
    Skipped,
}

/// A dispute the watcher opened on L1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisputeRecord {
    pub game_id: Option<u64>,
    pub open_tx: Option<B256>,
    /// `opening`, `open`, `won`, `lost`, `failed: ...`.
    pub state: String,
    /// The moves the game player sent, in order (the last may still be pending).
    #[serde(default)]
    pub moves: Vec<crate::play::Pending>,
}

/// The audit of one posted receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub batch_id: u64,
    pub index: u64,
    pub receipt_hash: B256,
    pub batch_root: B256,
    pub state: AuditState,
    pub reason: Option<String>,
    pub verdict: Option<Verdict>,
    /// CPU (wall) milliseconds the audit took.
    pub millis: Option<u64>,
    pub dispute: Option<DisputeRecord>,
}

/// One finished audit in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    pub batch_id: u64,
    pub index: u64,
    pub receipt_hash: B256,
    pub disputes: bool,
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(StoreError::Encode)
}

fn dec<T: DeserializeOwned>(table: &'static str, b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|source| StoreError::Decode { table, source })
}

/// The watcher's store.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) `dir/watch.redb`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
        let db = Database::create(dir.join("watch.redb"))?;
        let tx = db.begin_write()?;
        {
            tx.open_table(BATCHES)?;
            tx.open_table(JOBS)?;
            tx.open_table(AUDITS)?;
            tx.open_table(AUDIT_LOG)?;
            tx.open_table(META)?;
            tx.open_table(TIPS)?;
        }
        tx.commit()?;
        Ok(Store { db })
    }

    fn write(&self) -> Result<WriteTransaction, StoreError> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::Immediate)
            .map_err(|e| StoreError::Durability(e.to_string()))?;
        Ok(tx)
    }

    fn meta(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(META)?;
        Ok(t.get(key)?.map(|g| g.value()))
    }

    /// The next L1 block to scan (`None` before the first scan).
    pub fn cursor(&self) -> Result<Option<u64>, StoreError> {
        self.meta("cursor")
    }

    /// Records the batches found in a scanned block range, their jobs and one pending audit per
    /// receipt, and moves the cursor to `next` (block `next - 1` has hash `tip`) — all in one
    /// transaction. A batch seen again after
    /// a reorg keeps the audits of receipts that did not change (same batch root and hash).
    pub fn apply_scan(
        &self,
        found: &[(BatchRecord, Vec<JobEntry>)],
        next: u64,
        tip: B256,
    ) -> Result<(), StoreError> {
        let tx = self.write()?;
        {
            let mut batches = tx.open_table(BATCHES)?;
            let mut jobs = tx.open_table(JOBS)?;
            let mut audits = tx.open_table(AUDITS)?;
            for (b, js) in found {
                for j in js {
                    if jobs.get(j.job_id.0)?.is_none() {
                        jobs.insert(j.job_id.0, enc(j)?.as_slice())?;
                    }
                }
                // Audits of another version of this batch (a reorg replaced it) start over.
                let stale: Vec<(u64, u64)> = audits
                    .range((b.batch_id, 0)..=(b.batch_id, u64::MAX))?
                    .filter_map(|e| e.ok())
                    .filter_map(|(k, v)| {
                        let a: AuditRecord = dec("audits", v.value()).ok()?;
                        let keep = a.batch_root == b.receipts_root
                            && b.receipts
                                .get(a.index as usize)
                                .is_some_and(|r| r.hash == a.receipt_hash);
                        (!keep).then(|| k.value())
                    })
                    .collect();
                for k in stale {
                    audits.remove(k)?;
                }
                for r in &b.receipts {
                    if audits.get((b.batch_id, r.index))?.is_none() {
                        let a = AuditRecord {
                            batch_id: b.batch_id,
                            index: r.index,
                            receipt_hash: r.hash,
                            batch_root: b.receipts_root,
                            state: AuditState::Pending,
                            reason: None,
                            verdict: None,
                            millis: None,
                            dispute: None,
                        };
                        audits.insert((b.batch_id, r.index), enc(&a)?.as_slice())?;
                    }
                }
                batches.insert(b.batch_id, enc(b)?.as_slice())?;
            }
            tx.open_table(META)?.insert("cursor", next)?;
            if let Some(last) = next.checked_sub(1) {
                let mut tips = tx.open_table(TIPS)?;
                tips.insert(last, tip.0)?;
                // Keep the newest 256 tips: deeper reorgs are not followed (docs/WATCHER.md).
                let old: Vec<u64> = tips
                    .iter()?
                    .rev()
                    .skip(256)
                    .filter_map(|e| e.ok().map(|(k, _)| k.value()))
                    .collect();
                for k in old {
                    tips.remove(k)?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// A reorg reached block `from`: every live batch at or above it is dropped and the cursor
    /// goes back to `from`, so the new chain is scanned again. One transaction.
    pub fn rewind(&self, from: u64) -> Result<Vec<u64>, StoreError> {
        let tx = self.write()?;
        let mut dropped = Vec::new();
        {
            let mut batches = tx.open_table(BATCHES)?;
            let mut changed = Vec::new();
            for e in batches.iter()? {
                let (k, v) = e?;
                let mut b: BatchRecord = dec("batches", v.value())?;
                if b.state == BatchState::Live && b.block_number >= from {
                    b.state = BatchState::Dropped;
                    changed.push((k.value(), b));
                }
            }
            for (k, b) in changed {
                batches.insert(k, enc(&b)?.as_slice())?;
                dropped.push(k);
            }
            let mut meta = tx.open_table(META)?;
            let cur = meta.get("cursor")?.map(|g| g.value());
            if cur.is_none_or(|c| c > from) {
                meta.insert("cursor", from)?;
            }
            let mut tips = tx.open_table(TIPS)?;
            let above: Vec<u64> = tips
                .range(from..)?
                .filter_map(|e| e.ok().map(|(k, _)| k.value()))
                .collect();
            for k in above {
                tips.remove(k)?;
            }
        }
        tx.commit()?;
        Ok(dropped)
    }

    /// The scanned-range tips, newest first.
    pub fn tips(&self) -> Result<Vec<(u64, B256)>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TIPS)?;
        let mut out = Vec::new();
        for e in t.iter()?.rev() {
            let (k, v) = e?;
            out.push((k.value(), B256::from(v.value())));
        }
        Ok(out)
    }

    /// Every batch, by id.
    pub fn batches(&self) -> Result<Vec<BatchRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(BATCHES)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            out.push(dec("batches", e?.1.value())?);
        }
        Ok(out)
    }

    /// One batch.
    pub fn batch(&self, id: u64) -> Result<Option<BatchRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(BATCHES)?;
        t.get(id)?.map(|g| dec("batches", g.value())).transpose()
    }

    /// One job.
    pub fn job(&self, id: B256) -> Result<Option<JobEntry>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(JOBS)?;
        t.get(id.0)?.map(|g| dec("jobs", g.value())).transpose()
    }

    /// Every audit, by (batch, index).
    pub fn audits(&self) -> Result<Vec<AuditRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(AUDITS)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            out.push(dec("audits", e?.1.value())?);
        }
        Ok(out)
    }

    /// The finished-audit log, in order.
    pub fn log(&self) -> Result<Vec<LogEntry>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(AUDIT_LOG)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            out.push(dec("audit_log", e?.1.value())?);
        }
        Ok(out)
    }

    /// Records an audit's end (`Done` with a verdict, or `Skipped` with a reason) and logs it,
    /// unless it is no longer pending or is for another receipt than `receipt_hash` (a reorg
    /// replaced it meanwhile). Returns whether it was recorded.
    pub fn finish_audit(
        &self,
        batch_id: u64,
        index: u64,
        receipt_hash: B256,
        outcome: Result<(Verdict, u64), String>,
    ) -> Result<bool, StoreError> {
        let tx = self.write()?;
        let recorded;
        {
            let mut audits = tx.open_table(AUDITS)?;
            let cur: Option<AuditRecord> = audits
                .get((batch_id, index))?
                .map(|g| dec("audits", g.value()))
                .transpose()?;
            let Some(mut a) =
                cur.filter(|a| a.state == AuditState::Pending && a.receipt_hash == receipt_hash)
            else {
                return Ok(false);
            };
            let disputes = match outcome {
                Ok((v, ms)) => {
                    let d = v.disputes();
                    a.state = AuditState::Done;
                    a.verdict = Some(v);
                    a.millis = Some(ms);
                    d
                }
                Err(reason) => {
                    a.state = AuditState::Skipped;
                    a.reason = Some(reason);
                    false
                }
            };
            audits.insert((batch_id, index), enc(&a)?.as_slice())?;
            let mut meta = tx.open_table(META)?;
            let seq = meta.get("log_seq")?.map(|g| g.value()).unwrap_or(0);
            meta.insert("log_seq", seq + 1)?;
            let entry = LogEntry {
                seq,
                batch_id,
                index,
                receipt_hash,
                disputes,
            };
            tx.open_table(AUDIT_LOG)?
                .insert(seq, enc(&entry)?.as_slice())?;
            recorded = true;
        }
        tx.commit()?;
        Ok(recorded)
    }

    /// The audit of receipt `index` of batch `batch_id`.
    pub fn audit(&self, batch_id: u64, index: u64) -> Result<Option<AuditRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(AUDITS)?;
        let v = t.get((batch_id, index))?;
        v.map(|g| dec("audits", g.value())).transpose()
    }

    /// Sets the dispute state of an audit.
    pub fn set_dispute(
        &self,
        batch_id: u64,
        index: u64,
        d: DisputeRecord,
    ) -> Result<(), StoreError> {
        let tx = self.write()?;
        {
            let mut audits = tx.open_table(AUDITS)?;
            let cur: Option<AuditRecord> = audits
                .get((batch_id, index))?
                .map(|g| dec("audits", g.value()))
                .transpose()?;
            if let Some(mut a) = cur {
                a.dispute = Some(d);
                audits.insert((batch_id, index), enc(&a)?.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
