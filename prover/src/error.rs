//! Errors of the prover: every variant names the file, tensor or field at fault.

use std::path::PathBuf;

/// Everything that can go wrong while loading, quantizing or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ProverError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bad config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("unsupported architecture {0:?} (expected LlamaForCausalLM or Qwen2ForCausalLM)")]
    Architecture(String),
    #[error("bad safetensors file {path}: {reason}")]
    Safetensors { path: PathBuf, reason: String },
    #[error("tensor {name} is missing from the checkpoint")]
    MissingTensor { name: String },
    #[error("tensor {name} is not part of the architecture (the engine would ignore it)")]
    UnexpectedTensor { name: String },
    #[error("{path} is truncated: tensor {name} ends at data byte {end}, the file holds {len}")]
    Truncated {
        path: PathBuf,
        name: String,
        end: u64,
        len: u64,
    },
    #[error("tensor {name} has shape {got:?}, expected {want:?}")]
    TensorShape {
        name: String,
        got: Vec<usize>,
        want: Vec<usize>,
    },
    #[error("tensor {name} has dtype {dtype}, expected BF16, F16 or F32")]
    TensorDtype { name: String, dtype: String },
    #[error("tensor {name} holds a non-finite value at index {index}")]
    NonFinite { name: String, index: usize },
    #[error("tokenizer {path}: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    #[error("bad SKU file {path}: {reason}")]
    SkuFile { path: PathBuf, reason: String },
    #[error("shard rejected: {0}")]
    Shard(String),
    #[error("step {step} out of range for a program of {steps} steps")]
    StepOutOfRange { step: u64, steps: u64 },
    #[error("GEMM failed in {what}: {source}")]
    Gemm {
        what: String,
        #[source]
        source: verinfer_gpu::GemmError,
    },
    #[error("a tensor of {rows} rows was given {addresses} row addresses")]
    RowAddresses { rows: usize, addresses: usize },
    #[error("Merkle error: {0}")]
    Merkle(#[from] verinfer_primitives::MerkleError),
}

/// Result alias of the prover.
pub type Result<T, E = ProverError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ProverError {
    let path = path.into();
    move |source| ProverError::Io { path, source }
}
