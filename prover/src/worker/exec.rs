//! Turning an assignment into a signed receipt: checks (refusals), one engine run, signing.

use std::collections::HashMap;
use std::sync::Arc;

use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::B256;
use alloy_sol_types::Eip712Domain;
use verinfer_primitives::job::{prompts_root, shard_id, Prompt};
use verinfer_rpc::sign::sign_result;
use verinfer_rpc::types::ShardAssignment;

use super::store::SignedResult;
use crate::{Engine, Shard};

/// Why the worker will not run a shard. The sequencer has no method to receive a refusal, so
/// it is logged and stored; the worker never signs a refused shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No SKU file for this id was given to the worker.
    #[error("unknown SKU {0}: this worker was not started with it")]
    UnknownSku(B256),
    /// A text prompt: the signed job must carry token ids (the engine's input root is over ids).
    #[error("prompt {index} is text; workers run token-id prompts only (tokenize before signing)")]
    TextPrompt { index: usize },
    /// `shardId` is not `keccak256(abi.encode(jobId, shardIndex))`.
    #[error("shard id {got} does not match job/index (want {want})")]
    ShardId { got: B256, want: B256 },
    /// The assignment's `inputRoot` is not the root of its prompts.
    #[error("input root {got} is not the prompts' root {want}")]
    InputRoot { got: B256, want: B256 },
    /// `maxNewTokens` does not fit the platform.
    #[error("maxNewTokens {0} is out of range")]
    MaxNewTokens(u64),
    /// The engine's own checks (no prompts, empty prompt, token id ≥ vocabulary, prompt +
    /// maxNewTokens beyond the SKU's context).
    #[error("shard does not fit the SKU: {0}")]
    Shape(String),
}

/// A run that failed for another reason than the input (an engine or signer failure).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error("engine: {0}")]
    Engine(#[from] crate::ProverError),
    #[error("{0}")]
    Sign(#[from] verinfer_rpc::sign::SignError),
}

/// The engines of the SKUs this worker serves, by SKU id.
pub type Engines = HashMap<B256, Arc<Engine>>;

/// The engine shard of an assignment, or why it is refused. Nothing here trusts the sequencer:
/// ids and roots are recomputed.
pub fn check(engines: &Engines, a: &ShardAssignment) -> Result<(Arc<Engine>, Shard), Refusal> {
    let engine = engines
        .get(&a.sku_id)
        .cloned()
        .ok_or(Refusal::UnknownSku(a.sku_id))?;
    let want = shard_id(a.job_id, a.shard_index);
    if a.shard_id != want {
        return Err(Refusal::ShardId {
            got: a.shard_id,
            want,
        });
    }
    let shard = to_shard(a)?;
    let root = prompts_root(&a.prompts);
    if a.input_root != root {
        return Err(Refusal::InputRoot {
            got: a.input_root,
            want: root,
        });
    }
    engine
        .check_shard(&shard)
        .map_err(|e| Refusal::Shape(e.to_string()))?;
    Ok((engine, shard))
}

/// The token-id prompts of an assignment.
pub fn to_shard(a: &ShardAssignment) -> Result<Shard, Refusal> {
    let prompts = a
        .prompts
        .iter()
        .enumerate()
        .map(|(index, p)| match p {
            Prompt::Tokens(t) => Ok(t.clone()),
            Prompt::Text(_) => Err(Refusal::TextPrompt { index }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let max_new_tokens = usize::try_from(a.max_new_tokens)
        .ok()
        .filter(|&n| n <= u32::MAX as usize)
        .ok_or(Refusal::MaxNewTokens(a.max_new_tokens))?;
    Ok(Shard {
        prompts,
        max_new_tokens,
    })
}

/// Runs the shard and signs its receipt. Returns the signed result and the per-step output
/// roots (kept so trace proofs are served without a re-run).
pub fn run_and_sign(
    engine: &Engine,
    shard: &Shard,
    a: &ShardAssignment,
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    now_ms: u64,
) -> Result<(SignedResult, Vec<B256>), RunError> {
    let out = engine.run(shard)?;
    let receipt = out.receipt(a.job_id, a.shard_index, a.sku_id, signer.address());
    if receipt.inputRoot != a.input_root {
        return Err(Refusal::InputRoot {
            got: a.input_root,
            want: receipt.inputRoot,
        }
        .into());
    }
    let req = sign_result(signer, domain, receipt, out.generated.clone())?;
    Ok((
        SignedResult {
            receipt: req.receipt,
            signature: req.signature,
            outputs: req.outputs,
            signed_at_ms: now_ms,
        },
        out.trace.output_roots().to_vec(),
    ))
}
