//! The deterministic integer Llama-3 / Qwen2.5 engine of Verinfer.
//!
//! - [`checkpoint`]: Hugging Face checkpoints (config.json, sharded safetensors, tokenizer.json).
//! - [`sku`]: quantization into a SKU file (int8 weights, tables, weight root, SKU id), loaded
//!   by memory map.
//! - [`engine`]: batched prefill + greedy decode with a KV cache, integer-only
//!   (`verinfer_primitives::arith`), every step's output committed into a
//!   [`verinfer_primitives::TraceState`]; any step reproducible with its Merkle proofs.
//! - [`program`]: the fixed step list of a shard and where each step's rows sit in its tensor's
//!   Merkle tree ([`RowAddresses`]).
//! - [`synth`]: synthetic HF-format checkpoints for tests and benchmarks.
//! - [`worker`]: the worker daemon (`verinfer worker`): sequencer session, redb state,
//!   data-availability server.
//! - [`section`]: typed names of SKU sections ([`SectionId`]).
//! - [`chat`]: chat templates and prompt tokenization ([`chat::PromptEncoder`]).
//!
//! See docs/ENGINE.md and docs/ARITHMETIC.md.

pub mod chat;
pub mod checkpoint;
pub mod config;
pub mod engine;
pub mod error;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod program;
pub mod section;
pub mod sku;
pub mod synth;
pub mod tensor;
pub mod worker;

pub use checkpoint::Checkpoint;
pub use config::{Arch, ModelConfig};
pub use engine::{Engine, RunOutput, RunStats, Shard, StepOpening, TensorOpening};
pub use error::{ProverError, Result};
pub use program::{LayerOp, Program, RowAddresses, RowLayout, StepInfo, StepKind};
pub use section::{Matrix, Proj, SectionId};
pub use sku::{BuildOptions, Sku, SkuConfig, SkuHeader};
pub use synth::{SynthDtype, SynthSpec};
pub use tensor::{Tensor, TensorView};
pub use verinfer_gpu::Backend;

/// Parses a GEMM backend name (`reference`, `portable`, `cpu`, `avx2`, `avx512-vnni`, and `tch`
/// when built with the `tch` feature).
pub fn backend_from_name(name: &str) -> Option<Backend> {
    let all = [
        Backend::Reference,
        Backend::Portable,
        Backend::Cpu,
        Backend::Avx2,
        Backend::Avx512Vnni,
        #[cfg(feature = "tch")]
        Backend::Tch,
    ];
    all.into_iter().find(|b| b.name() == name)
}
