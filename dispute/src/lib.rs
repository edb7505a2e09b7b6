//! The dispute side of Verinfer: everything a defender (a worker whose receipt is challenged)
//! or a challenger needs to settle the last step of a bisection on L1.
//!
//! [`Opener`] replays a shard with the integer engine and turns any `(step, row, col)` of its
//! trace into the exact calldata the L1 `StepProver` checks ([`StepProof`]), together with the
//! [`StepContext`] the game holds at that point; it also states and opens folds of long rows
//! (`FoldProver`: pv, silu_mul, argmax) and answers output challenges. The watcher and the
//! defender daemon build on it; `tests/steps.rs` and `tests/outputs.rs` run every step, fold
//! chunk and completion of real traces through the Solidity in revm.

mod opener;
pub mod play;
pub mod registration;
pub mod watch;
pub mod weights;

pub use opener::{recast, Opener, StepProof};
pub use verinfer_l1::bindings::FoldProver::{FoldContext, FoldStep};
pub use verinfer_l1::bindings::StepProver::{
    GemmProof, LeafOpening, Opening, OutputContext, OutputProof, RowProof, StepContext,
    VectorOpening,
};

/// Errors of building an opening.
#[derive(Debug, thiserror::Error)]
pub enum DisputeError {
    /// The engine failed (loading, replaying).
    #[error(transparent)]
    Prover(#[from] verinfer_prover::ProverError),
    /// A Merkle query failed.
    #[error(transparent)]
    Merkle(#[from] verinfer_primitives::MerkleError),
    /// The SKU's section roots do not rebuild its weight root.
    #[error("the SKU's sections do not rebuild its weight root")]
    WeightRoot,
    /// No section of that name in the weight root's layout.
    #[error("no weight-root section named {0}")]
    UnknownSection(String),
    /// A row index past the end of a committed table or matrix.
    #[error("{what} {row} is out of range")]
    RowOutOfRange { what: &'static str, row: u64 },
    /// A tree's leaf does not hash from the row it was built from (the depth witness of a row
    /// past the tree's end would be refused on chain).
    #[error("leaf {0} does not hash from its row")]
    LeafMismatch(u64),
    /// The replay did not capture a tensor the route reads.
    #[error("step {0}'s tensor was not captured by the replay")]
    MissingTensor(u64),
    /// An ABI struct did not re-decode as another binding's type.
    #[error("cannot recast an ABI struct: {0}")]
    Recast(String),
    /// A fold was asked of a step that is not a pv, silu_mul or argmax step.
    #[error("step {0} is not a pv, silu_mul or argmax step; only those rows are folded")]
    NotAFold(u64),
    /// The row names a position the shard does not have (no round produced it).
    #[error("prompt {prompt} has no position {pos} in this shard")]
    NoSuchPosition { prompt: u64, pos: u64 },
}
