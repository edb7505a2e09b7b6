//! The worker's durable state: one redb file `worker.redb` under the data dir.
//!
//! Per shard (keyed by shard id): `assigned → running → signed(receipt) → submitted`, or
//! `refused(reason)`. Every transition is one write transaction committed with
//! `Durability::Immediate` (fsync before `commit` returns). The signed receipt is written before
//! it is sent, and once a shard holds a receipt no later transition replaces it: after a crash
//! the same bytes are sent again, so the worker never signs two different receipts for a shard.

use std::path::Path;

use alloy_primitives::{Bytes, B256};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use verinfer_primitives::Receipt;
use verinfer_rpc::types::ShardAssignment;

/// shard id → [`ShardRecord`] (JSON).
const SHARDS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("shards");
/// signing sequence → shard id: the receipts in signing order (for listing).
const SIGNED: TableDefinition<u64, [u8; 32]> = TableDefinition::new("signed");
/// shard id → per-step output roots of the signed run (32 bytes each, concatenated).
const TRACES: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("traces");

/// Failures of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (I/O, corruption, transaction).
    #[error("redb: {0}")]
    Db(#[from] redb::Error),
    /// A stored record does not decode.
    #[error("stored shard record does not decode: {0}")]
    Decode(#[from] serde_json::Error),
    /// A transition that would break the state machine (e.g. replacing a signed receipt).
    #[error("refused transition for shard {shard}: {why}")]
    Transition { shard: B256, why: String },
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
    redb::CommitError,
    redb::SetDurabilityError
);

/// A receipt as signed, with what was sent beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedResult {
    pub receipt: Receipt,
    pub signature: Bytes,
    pub outputs: Vec<Vec<u32>>,
    pub signed_at_ms: u64,
}

/// Where a shard is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ShardState {
    /// Received from the sequencer, not started.
    Assigned,
    /// The engine is (or was, before a crash) running it.
    Running,
    /// Receipt signed and on disk, not yet acknowledged by the sequencer.
    Signed { result: SignedResult },
    /// The sequencer acknowledged the receipt (or already had it).
    Submitted {
        result: SignedResult,
        submitted_at_ms: u64,
    },
    /// The sequencer refused the signed result for good (e.g. re-assigned elsewhere). The
    /// receipt stays: it was signed, so its data is still served.
    Rejected { result: SignedResult, why: String },
    /// The worker refused the shard (bad input); never signed.
    Refused { reason: String },
}

impl ShardState {
    /// The signed result, in every state that has one.
    pub fn result(&self) -> Option<&SignedResult> {
        match self {
            ShardState::Signed { result }
            | ShardState::Submitted { result, .. }
            | ShardState::Rejected { result, .. } => Some(result),
            _ => None,
        }
    }

    /// Short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            ShardState::Assigned => "assigned",
            ShardState::Running => "running",
            ShardState::Signed { .. } => "signed",
            ShardState::Submitted { .. } => "submitted",
            ShardState::Rejected { .. } => "rejected",
            ShardState::Refused { .. } => "refused",
        }
    }
}

/// A stored shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardRecord {
    /// The latest assignment received for it (deadline, attempt).
    pub assignment: ShardAssignment,
    pub state: ShardState,
}

/// The worker's redb.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) `dir/worker.redb`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
        let db = Database::create(dir.join("worker.redb"))?;
        let tx = db.begin_write()?;
        {
            tx.open_table(SHARDS)?;
            tx.open_table(SIGNED)?;
            tx.open_table(TRACES)?;
        }
        tx.commit()?;
        Ok(Self { db })
    }

    fn write(&self) -> Result<WriteTransaction, StoreError> {
        // `Immediate` is redb's default; set it anyway: the no-double-signing rule depends on it.
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::Immediate)?;
        Ok(tx)
    }

    /// One shard.
    pub fn get(&self, shard: B256) -> Result<Option<ShardRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SHARDS)?;
        let r = t.get(shard.0)?;
        Ok(r.map(|g| serde_json::from_slice(g.value())).transpose()?)
    }

    /// Every shard (a worker holds few open shards; signed ones are listed for re-submission).
    pub fn all(&self) -> Result<Vec<ShardRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SHARDS)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (_, v) = e?;
            out.push(serde_json::from_slice(v.value())?);
        }
        Ok(out)
    }

    /// Records an assignment. A shard already known keeps its state (a re-assignment of a
    /// signed shard re-sends the same receipt); only the assignment (deadline) is refreshed.
    pub fn assign(&self, a: &ShardAssignment) -> Result<ShardRecord, StoreError> {
        let tx = self.write()?;
        let rec = {
            let mut t = tx.open_table(SHARDS)?;
            let old: Option<ShardRecord> = t
                .get(a.shard_id.0)?
                .map(|g| serde_json::from_slice(g.value()))
                .transpose()?;
            let rec = ShardRecord {
                assignment: a.clone(),
                state: old.map(|o| o.state).unwrap_or(ShardState::Assigned),
            };
            t.insert(a.shard_id.0, serde_json::to_vec(&rec)?.as_slice())?;
            rec
        };
        tx.commit()?;
        Ok(rec)
    }

    /// Moves a shard to `state`. Refuses to replace a signed receipt by anything but the same
    /// receipt's later states, and refuses to sign a shard twice.
    pub fn set_state(&self, shard: B256, state: ShardState) -> Result<ShardRecord, StoreError> {
        let tx = self.write()?;
        let rec = Self::transition(&tx, shard, state)?;
        tx.commit()?;
        Ok(rec)
    }

    /// Stores the signed result and the run's per-step output roots in one transaction.
    pub fn sign(
        &self,
        shard: B256,
        result: SignedResult,
        output_roots: &[B256],
    ) -> Result<ShardRecord, StoreError> {
        let tx = self.write()?;
        let rec = Self::transition(&tx, shard, ShardState::Signed { result })?;
        {
            let mut t = tx.open_table(TRACES)?;
            let bytes: Vec<u8> = output_roots.iter().flat_map(|r| r.0).collect();
            t.insert(shard.0, bytes.as_slice())?;
        }
        tx.commit()?;
        Ok(rec)
    }

    fn transition(
        tx: &WriteTransaction,
        shard: B256,
        state: ShardState,
    ) -> Result<ShardRecord, StoreError> {
        let mut t = tx.open_table(SHARDS)?;
        let mut rec: ShardRecord = match t.get(shard.0)? {
            Some(g) => serde_json::from_slice(g.value())?,
            None => {
                return Err(StoreError::Transition {
                    shard,
                    why: "unknown shard".into(),
                })
            }
        };
        let first_signature = match (rec.state.result(), state.result()) {
            (Some(old), new) if new != Some(old) => {
                return Err(StoreError::Transition {
                    shard,
                    why: format!(
                        "already signed; {} would drop or replace the receipt",
                        state.name()
                    ),
                });
            }
            // Signing again with the identical receipt is not a new signature.
            (Some(_), _) if matches!(state, ShardState::Signed { .. }) => {
                return Err(StoreError::Transition {
                    shard,
                    why: "already signed".into(),
                });
            }
            (None, Some(_)) => true,
            _ => false,
        };
        rec.state = state;
        t.insert(shard.0, serde_json::to_vec(&rec)?.as_slice())?;
        if first_signature {
            let mut s = tx.open_table(SIGNED)?;
            let next = s.last()?.map(|(k, _)| k.value() + 1).unwrap_or(0);
            s.insert(next, shard.0)?;
        }
        Ok(rec)
    }

    /// The per-step output roots of a signed shard.
    pub fn output_roots(&self, shard: B256) -> Result<Option<Vec<B256>>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TRACES)?;
        let r = t.get(shard.0)?;
        Ok(r.map(|g| g.value().chunks_exact(32).map(B256::from_slice).collect()))
    }

    /// Signed shards in signing order from `cursor`, at most `limit`, and the next cursor.
    pub fn signed_page(
        &self,
        cursor: u64,
        limit: usize,
    ) -> Result<(Vec<B256>, Option<u64>), StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SIGNED)?;
        let mut out = Vec::new();
        let mut next = None;
        for e in t.range(cursor..)? {
            let (k, v) = e?;
            if out.len() == limit {
                next = Some(k.value());
                break;
            }
            out.push(B256::from(v.value()));
        }
        Ok((out, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::Address;

    fn assignment(i: u32) -> ShardAssignment {
        ShardAssignment {
            shard_id: B256::with_last_byte(i as u8),
            job_id: B256::repeat_byte(1),
            shard_index: i,
            sku_id: B256::repeat_byte(2),
            prompts: vec![],
            input_root: B256::ZERO,
            max_new_tokens: 2,
            deadline_ms: 0,
            attempt: 0,
        }
    }

    fn result(trace: u8) -> SignedResult {
        SignedResult {
            receipt: Receipt {
                jobId: B256::repeat_byte(1),
                shardIndex: 0,
                skuId: B256::repeat_byte(2),
                worker: Address::repeat_byte(3),
                inputRoot: B256::ZERO,
                outputRoot: B256::ZERO,
                traceRoot: B256::repeat_byte(trace),
                stepCount: 1,
                tokensProcessed: 1,
            },
            signature: Bytes::from(vec![1u8; 65]),
            outputs: vec![vec![1]],
            signed_at_ms: 5,
        }
    }

    #[test]
    fn a_signed_receipt_is_never_replaced_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let a = assignment(0);
        {
            let s = Store::open(dir.path()).unwrap();
            s.assign(&a).unwrap();
            s.set_state(a.shard_id, ShardState::Running).unwrap();
            s.sign(a.shard_id, result(7), &[B256::repeat_byte(9)])
                .unwrap();
            // A second, different receipt for the same shard is refused.
            assert!(matches!(
                s.sign(a.shard_id, result(8), &[]),
                Err(StoreError::Transition { .. })
            ));
            assert!(s.set_state(a.shard_id, ShardState::Running).is_err());
            assert!(s
                .set_state(a.shard_id, ShardState::Refused { reason: "x".into() })
                .is_err());
        }
        let s = Store::open(dir.path()).unwrap();
        // A re-assignment keeps the signed state.
        let mut again = a.clone();
        again.attempt = 1;
        let rec = s.assign(&again).unwrap();
        assert_eq!(rec.state.result(), Some(&result(7)));
        assert_eq!(rec.assignment.attempt, 1);
        let done = s
            .set_state(
                a.shard_id,
                ShardState::Submitted {
                    result: result(7),
                    submitted_at_ms: 9,
                },
            )
            .unwrap();
        assert_eq!(done.state.name(), "submitted");
        assert_eq!(
            s.output_roots(a.shard_id).unwrap().unwrap(),
            vec![B256::repeat_byte(9)]
        );
        let (page, next) = s.signed_page(0, 10).unwrap();
        assert_eq!(page, vec![a.shard_id]);
        assert_eq!(next, None);
    }
}
