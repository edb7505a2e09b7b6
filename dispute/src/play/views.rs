//! What each side needs from its own trace. [`Opener`] (an engine re-run of the shard)
//! implements both; a test wraps it to play a side whose trace was tampered with.

use alloy_primitives::Bytes;
use verinfer_primitives::TraceState;
use verinfer_prover::{Program, StepInfo, TensorOpening};

use crate::{DisputeError, FoldStep, Opener, OutputProof, RowProof, StepProof};

type Result<T> = std::result::Result<T, DisputeError>;

/// The challenger's own trace: its state roots, any step's output tensor, and the chunk states
/// of a fold of one of its rows.
pub trait ChallengerView: Send + Sync {
    fn trace(&self) -> &TraceState;
    fn program(&self) -> Program;
    /// The output tensor of `step`.
    fn tensor(&self, step: u64) -> Result<TensorOpening>;
    /// The fold states of row `row` of step `step` (entry `i`: after `i` chunks).
    fn fold_states(&self, step: u64, row: u32, chunk: u64) -> Result<Vec<Vec<u8>>>;
}

/// The defender's own trace: state roots and every opening the game can ask for.
pub trait DefenderView: Send + Sync {
    fn trace(&self) -> &TraceState;
    fn program(&self) -> Program;
    /// `proveGemm` / `proveRow` of entry (`row`, `col`) of `step`.
    fn open(&self, step: u64, row: u32, col: u32) -> Result<StepProof>;
    /// `foldRow` arguments for row `row` of `step`.
    fn open_fold(&self, step: u64, row: u32, chunk: u64) -> Result<(RowProof, Bytes)>;
    fn fold_states(&self, step: u64, row: u32, chunk: u64) -> Result<Vec<Vec<u8>>>;
    /// `proveFold` of chunk `lo`.
    fn open_fold_chunk(&self, step: u64, row: u32, chunk: u64, lo: u64) -> Result<FoldStep>;
    /// `proveOutput` of completion `prompt`, index `j`.
    fn open_output(&self, prompt: u32, j: u32) -> Result<OutputProof>;
}

/// Whether `info` is a step the game may fold (pv, silu_mul, argmax).
pub fn foldable(info: &StepInfo) -> bool {
    use verinfer_prover::{LayerOp, StepKind};
    matches!(
        info.kind,
        StepKind::Argmax
            | StepKind::Layer {
                op: LayerOp::Pv | LayerOp::SiluMul,
                ..
            }
    )
}

impl ChallengerView for Opener {
    fn trace(&self) -> &TraceState {
        Opener::trace(self)
    }
    fn program(&self) -> Program {
        Opener::program(self)
    }
    fn tensor(&self, step: u64) -> Result<TensorOpening> {
        Ok(self.reproduce(step)?.output)
    }
    fn fold_states(&self, step: u64, row: u32, chunk: u64) -> Result<Vec<Vec<u8>>> {
        Opener::fold_states(self, &self.reproduce(step)?, row, chunk)
    }
}

impl DefenderView for Opener {
    fn trace(&self) -> &TraceState {
        Opener::trace(self)
    }
    fn program(&self) -> Program {
        Opener::program(self)
    }
    fn open(&self, step: u64, row: u32, col: u32) -> Result<StepProof> {
        Opener::open(self, &self.reproduce(step)?, row, col)
    }
    fn open_fold(&self, step: u64, row: u32, chunk: u64) -> Result<(RowProof, Bytes)> {
        Opener::open_fold(self, &self.reproduce(step)?, row, chunk)
    }
    fn fold_states(&self, step: u64, row: u32, chunk: u64) -> Result<Vec<Vec<u8>>> {
        Opener::fold_states(self, &self.reproduce(step)?, row, chunk)
    }
    fn open_fold_chunk(&self, step: u64, row: u32, chunk: u64, lo: u64) -> Result<FoldStep> {
        Opener::open_fold_chunk(self, &self.reproduce(step)?, row, chunk, lo)
    }
    fn open_output(&self, prompt: u32, j: u32) -> Result<OutputProof> {
        Opener::open_output(self, prompt, j)
    }
}
