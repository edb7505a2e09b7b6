//! A Hugging Face checkpoint directory: `config.json`, `*.safetensors` (single or sharded with
//! `model.safetensors.index.json`, memory-mapped), optional `tokenizer.json`.
//!
//! Tensors are read as `f32` (from BF16, F16 or F32); this is the float side of SKU building and
//! is outside the committed path.

use crate::config::ModelConfig;
use crate::error::{io_err, ProverError, Result};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// An opened checkpoint. Files stay memory-mapped for its lifetime.
pub struct Checkpoint {
    dir: PathBuf,
    config: ModelConfig,
    files: Vec<(PathBuf, Mmap)>,
    /// tensor name → index into `files`.
    index: HashMap<String, usize>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("dir", &self.dir)
            .field("tensors", &self.index.len())
            .finish()
    }
}

fn st_err(path: &Path, e: impl std::fmt::Display) -> ProverError {
    ProverError::Safetensors {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

impl Checkpoint {
    /// Opens `dir` and validates every tensor the architecture needs (names, shapes, dtypes).
    pub fn open(dir: &Path) -> Result<Self> {
        let config = ModelConfig::from_file(&dir.join("config.json"))?;
        let index_path = dir.join("model.safetensors.index.json");
        let file_names: Vec<String> = if index_path.exists() {
            let text = std::fs::read_to_string(&index_path).map_err(io_err(&index_path))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| st_err(&index_path, e))?;
            let map = v["weight_map"]
                .as_object()
                .ok_or_else(|| st_err(&index_path, "missing weight_map"))?;
            let mut names: Vec<String> = map
                .values()
                .filter_map(|f| f.as_str().map(String::from))
                .collect();
            names.sort();
            names.dedup();
            names
        } else {
            vec!["model.safetensors".to_string()]
        };
        let mut files = Vec::new();
        let mut index = HashMap::new();
        for name in file_names {
            if name.contains('/') || name.contains("..") {
                return Err(st_err(
                    &index_path,
                    format!("shard name {name:?} leaves the directory"),
                ));
            }
            let path = dir.join(&name);
            let file = File::open(&path).map_err(io_err(&path))?;
            // SAFETY: the checkpoint files are treated as immutable for the lifetime of the map;
            // a concurrent writer could only corrupt the float input of quantization.
            let map = unsafe { Mmap::map(&file) }.map_err(io_err(&path))?;
            let st = SafeTensors::deserialize(&map).map_err(|e| st_err(&path, e))?;
            for n in st.names() {
                index.insert(n.to_string(), files.len());
            }
            files.push((path, map));
        }
        let ck = Checkpoint {
            dir: dir.to_path_buf(),
            config,
            files,
            index,
        };
        ck.validate()?;
        Ok(ck)
    }

    /// The parsed config.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a tensor exists.
    pub fn has(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Whether the attention projections carry biases (Qwen2), detected from the tensors.
    pub fn has_qkv_bias(&self) -> bool {
        self.has("model.layers.0.self_attn.q_proj.bias")
    }

    /// The expected tensors and shapes of this config (`lm_head.weight` only when untied).
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let c = &self.config;
        let (h, i, q, kv) = (c.hidden_size, c.intermediate_size, c.q_dim(), c.kv_dim());
        let mut out = vec![(
            "model.embed_tokens.weight".to_string(),
            vec![c.vocab_size, h],
        )];
        let bias = self.has_qkv_bias();
        for l in 0..c.num_hidden_layers {
            let p = format!("model.layers.{l}");
            out.push((format!("{p}.input_layernorm.weight"), vec![h]));
            out.push((format!("{p}.self_attn.q_proj.weight"), vec![q, h]));
            out.push((format!("{p}.self_attn.k_proj.weight"), vec![kv, h]));
            out.push((format!("{p}.self_attn.v_proj.weight"), vec![kv, h]));
            if bias {
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
        if !self.config.tie_word_embeddings {
            out.push(("lm_head.weight".to_string(), vec![c.vocab_size, h]));
        }
        out
    }

    fn validate(&self) -> Result<()> {
        for (name, shape) in self.expected_tensors() {
            self.check(&name, &shape)?;
        }
        Ok(())
    }

    fn view(&self, name: &str) -> Result<(Dtype, Vec<usize>, &[u8])> {
        let &fi = self
            .index
            .get(name)
            .ok_or_else(|| ProverError::MissingTensor {
                name: name.to_string(),
            })?;
        let (path, map) = &self.files[fi];
        let st = SafeTensors::deserialize(map).map_err(|e| st_err(path, e))?;
        let t = st.tensor(name).map_err(|e| st_err(path, e))?;
        Ok((t.dtype(), t.shape().to_vec(), t.data()))
    }

    fn check(&self, name: &str, want: &[usize]) -> Result<()> {
        let (dtype, shape, _) = self.view(name)?;
        if !matches!(dtype, Dtype::BF16 | Dtype::F16 | Dtype::F32) {
            return Err(ProverError::TensorDtype {
                name: name.to_string(),
                dtype: format!("{dtype:?}"),
            });
        }
        if shape != want {
            return Err(ProverError::TensorShape {
                name: name.to_string(),
                got: shape,
                want: want.to_vec(),
            });
        }
        Ok(())
    }

    /// A tensor as `f32` values (row-major), after checking its shape; non-finite values are
    /// rejected (they cannot be quantized).
    pub fn tensor_f32(&self, name: &str, want: &[usize]) -> Result<Vec<f32>> {
        self.check(name, want)?;
        let (dtype, _, data) = self.view(name)?;
        let out: Vec<f32> = match dtype {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(ProverError::TensorDtype {
                    name: name.to_string(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        if let Some(index) = out.iter().position(|v| !v.is_finite()) {
            return Err(ProverError::NonFinite {
                name: name.to_string(),
                index,
            });
        }
        Ok(out)
    }

    /// Path of `tokenizer.json` when the directory has one.
    pub fn tokenizer_path(&self) -> Option<PathBuf> {
        let p = self.dir.join("tokenizer.json");
        p.exists().then_some(p)
    }
}
