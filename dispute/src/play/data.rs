//! The defender's committed tensor at the disputed step, as the challenger gets it: from the
//! worker's data API (`worker_tensorChunk`, each chunk checked with `verify_chunk`) or from any
//! [`TraceSource`]. Nothing the defender sends is trusted: the rows must rebuild the output
//! root, and that root must be leaf `step` both under the receipt's trace root and in the
//! disputed state of the game (our agreed leaves, then this one).

use std::sync::Arc;

use alloy_primitives::B256;
use verinfer_primitives::merkle::row_leaf;
use verinfer_primitives::{MerkleProof, Receipt, SparseMerkleTree, TraceState};
use verinfer_rpc::client::HttpClient;
use verinfer_rpc::worker_api::{verify_chunk, TensorChunkRequest, WorkerDataApiClient};

use crate::watch::source::WholeTensor;
use crate::watch::{SourceError, TraceSource};

/// Rows per `worker_tensorChunk` request (the worker may send fewer).
const CHUNK_ROWS: u32 = 4096;

/// Where the challenger gets the defender's committed rows.
#[derive(Clone)]
pub enum Committed {
    /// The worker's data API (`verinfer worker --data-listen`).
    Api(HttpClient),
    /// Any trace source (tests; a watcher holding the worker's data).
    Source(Arc<dyn TraceSource>),
    /// No source known: the entry is named without the defender's rows (see `naming`).
    None,
}

/// Why the defender's rows were not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("no data source for the defender")]
    NoSource,
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the defender's rows do not check: {0}")]
    Invalid(String),
}

impl Committed {
    /// The defender's whole output tensor of `step`, checked against `receipt` and against the
    /// game's disputed state `hi_root` after `step` (our leaves `0..step` are the agreed ones).
    pub async fn fetch(
        &self,
        receipt: &Receipt,
        step: u64,
        own: &TraceState,
        hi_root: B256,
    ) -> Result<WholeTensor, DataError> {
        let t = match self {
            Committed::None => return Err(DataError::NoSource),
            Committed::Source(s) => {
                let (s, r) = (s.clone(), receipt.clone());
                tokio::task::spawn_blocking(move || s.tensor(&r, step))
                    .await
                    .map_err(|e| SourceError::Unavailable(e.to_string()))??
            }
            Committed::Api(c) => fetch_api(c, receipt, step).await?,
        };
        check(&t, receipt, own, hi_root)?;
        Ok(t)
    }
}

/// Pages through `worker_tensorChunk` for the whole tensor of `step`.
async fn fetch_api(c: &HttpClient, r: &Receipt, step: u64) -> Result<WholeTensor, DataError> {
    let mut rows = Vec::new();
    let mut start = 0u64;
    let mut head: Option<(B256, Vec<B256>)> = None;
    loop {
        let req = TensorChunkRequest {
            job_id: r.jobId,
            shard_index: r.shardIndex,
            step,
            start_row: start,
            max_rows: CHUNK_ROWS,
        };
        let chunk = c
            .tensor_chunk(req)
            .await
            .map_err(|e| SourceError::Unavailable(e.to_string()))?;
        verify_chunk(r.traceRoot, &chunk).map_err(|e| DataError::Invalid(e.to_string()))?;
        match &head {
            Some((root, _)) if *root != chunk.output_root => {
                return Err(DataError::Invalid("chunks of two output roots".into()))
            }
            Some(_) => {}
            None => head = Some((chunk.output_root, chunk.trace_proof.siblings.clone())),
        }
        rows.extend(
            chunk
                .addresses
                .iter()
                .zip(&chunk.rows)
                .map(|(&a, b)| (a, b.to_vec())),
        );
        match chunk.next_row {
            Some(n) if n > start => start = n,
            Some(_) => return Err(DataError::Invalid("chunk cursor did not advance".into())),
            None => break,
        }
    }
    let (output_root, trace_proof) = head.unwrap_or_default();
    Ok(WholeTensor {
        step,
        output_root,
        trace_proof,
        rows,
    })
}

/// The checks of [`Committed::fetch`].
fn check(t: &WholeTensor, r: &Receipt, own: &TraceState, hi_root: B256) -> Result<(), DataError> {
    let bad = |s: String| Err(DataError::Invalid(s));
    if !t.rows.windows(2).all(|w| w[0].0 < w[1].0) {
        return bad("row addresses are not strictly increasing".into());
    }
    let leaves = t.rows.iter().map(|(a, b)| (*a, row_leaf(b))).collect();
    let tree = SparseMerkleTree::from_indexed_leaves(leaves)
        .map_err(|e| DataError::Invalid(e.to_string()))?;
    if tree.root() != t.output_root {
        return bad(format!("rows do not rebuild output root {}", t.output_root));
    }
    let proof = MerkleProof {
        index: t.step,
        siblings: t.trace_proof.clone(),
    };
    if proof.compute_root(t.output_root) != r.traceRoot {
        return bad(format!(
            "step {} is not under the receipt's trace root",
            t.step
        ));
    }
    let agreed = own
        .output_roots()
        .get(..t.step as usize)
        .ok_or_else(|| DataError::Invalid(format!("step {} is past our trace", t.step)))?;
    let mut state = TraceState::new(own.step_count());
    for &leaf in agreed.iter().chain([&t.output_root]) {
        state
            .push(leaf)
            .map_err(|e| DataError::Invalid(e.to_string()))?;
    }
    let root = state
        .state_root(Some(t.step))
        .map_err(|e| DataError::Invalid(e.to_string()))?;
    if root != hi_root {
        return bad(format!(
            "step {}'s committed tensor is not the one of the disputed state",
            t.step
        ));
    }
    Ok(())
}
