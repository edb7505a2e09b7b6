//! Synthetic Hugging Face checkpoints for tests and benchmarks.
//!
//! Writes `config.json`, `*.safetensors` with the exact HF tensor names of `LlamaForCausalLM` /
//! `Qwen2ForCausalLM` (optionally sharded with `model.safetensors.index.json`) and a
//! `tokenizer.json` (a real one copied in, or a small word-level tokenizer whose vocabulary is
//! smaller than the model's, so vocabulary padding is exercised). Weights are random with the
//! scale of trained models: linear layers uniform with standard deviation `1/sqrt(fan_in)`,
//! norm gains around 1, Qwen2 biases around 0.

use crate::config::Arch;
use crate::error::{io_err, ProverError, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Storage dtype of a synthetic checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthDtype {
    F32,
    BF16,
    F16,
}

/// Shape and content of a synthetic checkpoint.
#[derive(Debug, Clone)]
pub struct SynthSpec {
    pub arch: Arch,
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub vocab: usize,
    /// Tokens of the generated word-level tokenizer (≤ `vocab`; the rest is padding).
    pub tokenizer_vocab: usize,
    pub tie_embeddings: bool,
    pub dtype: SynthDtype,
    /// Number of safetensors files (1 = `model.safetensors`, more = sharded with an index).
    pub shards: usize,
    pub rope_theta: f64,
    pub max_positions: usize,
    pub seed: u64,
    /// A real `tokenizer.json` to copy instead of generating a word-level one.
    pub tokenizer_json: Option<PathBuf>,
}

impl SynthSpec {
    /// A tiny Llama-3 style model (GQA 4/2, 2 layers, sharded in 2 files, bf16).
    pub fn tiny_llama() -> Self {
        SynthSpec {
            arch: Arch::Llama,
            hidden: 64,
            intermediate: 160,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            vocab: 272,
            tokenizer_vocab: 260,
            tie_embeddings: false,
            dtype: SynthDtype::BF16,
            shards: 2,
            rope_theta: 500000.0,
            max_positions: 256,
            seed: 1,
            tokenizer_json: None,
        }
    }

    /// A tiny Qwen2.5 style model (q/k/v biases, tied embeddings, f32, one file).
    pub fn tiny_qwen2() -> Self {
        SynthSpec {
            arch: Arch::Qwen2,
            hidden: 96,
            intermediate: 224,
            layers: 2,
            heads: 6,
            kv_heads: 2,
            vocab: 320,
            tokenizer_vocab: 300,
            tie_embeddings: true,
            dtype: SynthDtype::F32,
            shards: 1,
            rope_theta: 1000000.0,
            max_positions: 256,
            seed: 2,
            tokenizer_json: None,
        }
    }

    /// One layer with the real Llama-3-8B dimensions (hidden 4096, intermediate 14336, 32/8
    /// heads) and a reduced vocabulary.
    pub fn llama3_8b_one_layer(vocab: usize) -> Self {
        SynthSpec {
            arch: Arch::Llama,
            hidden: 4096,
            intermediate: 14336,
            layers: 1,
            heads: 32,
            kv_heads: 8,
            vocab,
            tokenizer_vocab: vocab,
            tie_embeddings: false,
            dtype: SynthDtype::BF16,
            shards: 2,
            rope_theta: 500000.0,
            max_positions: 8192,
            seed: 3,
            tokenizer_json: None,
        }
    }

    fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// The `config.json` this spec writes.
    pub fn config_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "architectures": [self.arch.hf_name()],
            "model_type": match self.arch { Arch::Llama => "llama", Arch::Qwen2 => "qwen2" },
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "vocab_size": self.vocab,
            "rope_theta": self.rope_theta,
            "rms_norm_eps": if self.arch == Arch::Llama { 1e-5 } else { 1e-6 },
            "tie_word_embeddings": self.tie_embeddings,
            "max_position_embeddings": self.max_positions,
            "hidden_act": "silu",
            "torch_dtype": match self.dtype { SynthDtype::F32 => "float32", SynthDtype::BF16 => "bfloat16", SynthDtype::F16 => "float16" },
            "bos_token_id": 0,
            "eos_token_id": 1,
        });
        if self.arch == Arch::Qwen2 {
            v["use_sliding_window"] = serde_json::Value::Bool(false);
        }
        v
    }

    /// Every tensor of the checkpoint with its shape, in a fixed order.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (h, i, q, kv) = (
            self.hidden,
            self.intermediate,
            self.heads * self.head_dim(),
            self.kv_heads * self.head_dim(),
        );
        let mut out = vec![("model.embed_tokens.weight".to_string(), vec![self.vocab, h])];
        for l in 0..self.layers {
            let p = format!("model.layers.{l}");
            out.push((format!("{p}.input_layernorm.weight"), vec![h]));
            out.push((format!("{p}.self_attn.q_proj.weight"), vec![q, h]));
            out.push((format!("{p}.self_attn.k_proj.weight"), vec![kv, h]));
            out.push((format!("{p}.self_attn.v_proj.weight"), vec![kv, h]));
            if self.arch == Arch::Qwen2 {
                out.push((format!("{p}.self_attn.q_proj.bias"), vec![q]));
                out.push((format!("{p}.self_attn.k_proj.bias"), vec![kv]));
                out.push((format!("{p}.self_attn.v_proj.bias"), vec![kv]));
            }
            out.push((format!("{p}.self_attn.o_proj.weight"), vec![h, q]));
            out.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
            out.push((format!("{p}.mlp.gate_proj.weight"), vec![i, h]));
            out.push((format!("{p}.mlp.up_proj.weight"), vec![i, h]));
            out.push((format!("{p}.mlp.down_proj.weight"), vec![h, i]));
        }
        out.push(("model.norm.weight".to_string(), vec![h]));
        if !self.tie_embeddings {
            out.push(("lm_head.weight".to_string(), vec![self.vocab, h]));
        }
        out
    }

    /// Writes the checkpoint into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let cfg_path = dir.join("config.json");
        let cfg =
            serde_json::to_string_pretty(&self.config_json()).map_err(|e| ProverError::Config {
                path: cfg_path.clone(),
                reason: e.to_string(),
            })?;
        std::fs::write(&cfg_path, cfg).map_err(io_err(&cfg_path))?;

        let shapes = self.tensor_shapes();
        let shards = self.shards.max(1);
        let per_shard = shapes.len().div_ceil(shards);
        let mut weight_map = BTreeMap::new();
        for (si, chunk) in shapes.chunks(per_shard).enumerate() {
            let file = if shards == 1 {
                "model.safetensors".to_string()
            } else {
                format!("model-{:05}-of-{:05}.safetensors", si + 1, shards)
            };
            let mut blobs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
            for (name, shape) in chunk {
                let values = self.values(name, shape);
                blobs.push((name.clone(), shape.clone(), encode(&values, self.dtype)));
                weight_map.insert(name.clone(), file.clone());
            }
            let dtype = match self.dtype {
                SynthDtype::F32 => Dtype::F32,
                SynthDtype::BF16 => Dtype::BF16,
                SynthDtype::F16 => Dtype::F16,
            };
            let path = dir.join(&file);
            let views = blobs
                .iter()
                .map(|(n, s, b)| {
                    TensorView::new(dtype, s.clone(), b)
                        .map(|v| (n.clone(), v))
                        .map_err(|e| ProverError::Safetensors {
                            path: path.clone(),
                            reason: e.to_string(),
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            safetensors::serialize_to_file(views, None, &path).map_err(|e| {
                ProverError::Safetensors {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?;
        }
        if shards > 1 {
            let idx = serde_json::json!({"metadata": {}, "weight_map": weight_map});
            let p = dir.join("model.safetensors.index.json");
            std::fs::write(&p, idx.to_string()).map_err(io_err(&p))?;
        }
        let tok_path = dir.join("tokenizer.json");
        match &self.tokenizer_json {
            Some(src) => {
                std::fs::copy(src, &tok_path).map_err(io_err(src))?;
            }
            None => {
                std::fs::write(
                    &tok_path,
                    word_level_tokenizer(self.tokenizer_vocab).to_string(),
                )
                .map_err(io_err(&tok_path))?;
            }
        }
        Ok(())
    }

    /// Deterministic random values of one tensor (seeded by the spec seed and the name).
    fn values(&self, name: &str, shape: &[usize]) -> Vec<f32> {
        let name_seed = alloy_primitives::keccak256(name.as_bytes());
        let mut seed = [0u8; 32];
        seed.copy_from_slice(name_seed.as_slice());
        seed[..8]
            .iter_mut()
            .zip(self.seed.to_le_bytes())
            .for_each(|(a, b)| *a ^= b);
        let mut rng = ChaCha8Rng::from_seed(seed);
        let n: usize = shape.iter().product();
        let (center, std) = if name.ends_with("layernorm.weight") || name == "model.norm.weight" {
            (1.0f32, 0.2f32)
        } else if name.ends_with(".bias") {
            (0.0, 0.3)
        } else if name == "model.embed_tokens.weight" {
            (0.0, 1.0)
        } else {
            (0.0, 1.0 / (shape[1] as f32).sqrt())
        };
        let a = std * 3f32.sqrt();
        (0..n).map(|_| center + rng.random_range(-a..a)).collect()
    }
}

fn encode(values: &[f32], dtype: SynthDtype) -> Vec<u8> {
    match dtype {
        SynthDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        SynthDtype::BF16 => values
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect(),
        SynthDtype::F16 => values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
    }
}

/// A word-level `tokenizer.json`: tokens `<s>` (0), `</s>` (1), `<unk>` (2), then `w3`, `w4`, …
/// up to `size` tokens, split on whitespace.
pub fn word_level_tokenizer(size: usize) -> serde_json::Value {
    let mut vocab = serde_json::Map::new();
    for (i, t) in ["<s>", "</s>", "<unk>"].iter().enumerate() {
        vocab.insert((*t).to_string(), serde_json::json!(i));
    }
    for i in 3..size {
        vocab.insert(format!("w{i}"), serde_json::json!(i));
    }
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [
            {"id": 0, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 1, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
        ],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    })
}
