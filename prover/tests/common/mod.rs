//! Shared helpers of the prover's integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use verinfer_prover::{sku, Backend, BuildOptions, Checkpoint, Engine, Shard, Sku, SynthSpec};

/// Writes `spec` into `dir` and builds its SKU in memory.
pub fn sku_of(spec: &SynthSpec, dir: &Path) -> Arc<Sku> {
    spec.write(dir).unwrap();
    let ck = Checkpoint::open(dir).unwrap();
    let bytes = sku::build(&ck, &BuildOptions { max_seq: 128 }).unwrap();
    Arc::new(Sku::from_bytes(bytes).unwrap())
}

pub fn engine(sku: &Arc<Sku>, backend: Backend) -> Engine {
    Engine::new(sku.clone(), backend).unwrap()
}

/// Three prompts of different lengths inside the tokenizer's vocabulary.
pub fn shard(valid_vocab: u32, max_new_tokens: usize) -> Shard {
    let p = |len: usize, salt: u32| -> Vec<u32> {
        (0..len as u32)
            .map(|i| (i * 37 + salt * 11 + 5) % valid_vocab)
            .collect()
    };
    Shard {
        prompts: vec![p(7, 1), p(3, 2), p(12, 3)],
        max_new_tokens,
    }
}
