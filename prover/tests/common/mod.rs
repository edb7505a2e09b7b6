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

/// Writes `spec` into `dir` with `eos` as the config's EOS ids and builds its SKU.
pub fn sku_with_eos(spec: &SynthSpec, dir: &Path, eos: &[u32]) -> Arc<Sku> {
    spec.write(dir).unwrap();
    let cfg_path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["eos_token_id"] = serde_json::json!(eos);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let ck = Checkpoint::open(dir).unwrap();
    let bytes = sku::build(&ck, &BuildOptions { max_seq: 128 }).unwrap();
    Arc::new(Sku::from_bytes(bytes).unwrap())
}
