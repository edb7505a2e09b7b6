//! A Hugging Face checkpoint directory: `config.json`, `*.safetensors` (single or sharded with
//! `model.safetensors.index.json`, memory-mapped), optional `tokenizer.json`.
//!
//! Tensors are read as `f32` (from BF16, F16 or F32); this is the float side of SKU building and
//! is outside the committed path.

use crate::config::{Arch, ModelConfig};
use crate::error::{io_err, ProverError, Result};
use crate::section::Proj;
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use std::collections::{HashMap, HashSet};
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

/// A file safetensors cannot parse. When the header is readable and a tensor's data lies past
/// the end of the file (a truncated download), the error names that tensor.
fn deserialize_err(path: &Path, bytes: &[u8], e: impl std::fmt::Display) -> ProverError {
    let truncated = || -> Option<ProverError> {
        let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
        let header: serde_json::Value =
            serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
        let data_len = bytes.len() - 8 - n;
        let mut past: Vec<(&String, u64)> = header
            .as_object()?
            .iter()
            .filter_map(|(name, t)| Some((name, t["data_offsets"][1].as_u64()?)))
            .filter(|(_, end)| *end as usize > data_len)
            .collect();
        past.sort_by_key(|(_, end)| *end);
        let (name, end) = past.first()?;
        Some(ProverError::Truncated {
            path: path.to_path_buf(),
            name: name.to_string(),
            end: *end,
            len: data_len as u64,
        })
    };
    truncated().unwrap_or_else(|| st_err(path, e))
}

/// The index's `weight_map` must say exactly where each stored tensor is.
fn check_weight_map(
    index_path: &Path,
    map: &HashMap<String, String>,
    index: &HashMap<String, usize>,
    file_names: &[String],
) -> Result<()> {
    let mut listed: Vec<(&String, &String)> = map.iter().collect();
    listed.sort();
    for (tensor, file) in listed {
        match index.get(tensor) {
            None => {
                return Err(st_err(
                    index_path,
                    format!("weight_map lists {tensor} in {file}, which does not hold it"),
                ))
            }
            Some(&fi) if file_names[fi] != *file => {
                return Err(st_err(
                    index_path,
                    format!(
                        "weight_map lists {tensor} in {file}, it is in {}",
                        file_names[fi]
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    let mut unlisted: Vec<&String> = index.keys().filter(|t| !map.contains_key(*t)).collect();
    unlisted.sort();
    match unlisted.first() {
        Some(t) => Err(st_err(
            index_path,
            format!("tensor {t} is stored but missing from weight_map"),
        )),
        None => Ok(()),
    }
}

impl Checkpoint {
    /// Opens `dir` and validates every tensor the architecture needs (names, shapes, dtypes).
    pub fn open(dir: &Path) -> Result<Self> {
        let config = ModelConfig::from_file(&dir.join("config.json"))?;
        let index_path = dir.join("model.safetensors.index.json");
        let weight_map: Option<HashMap<String, String>> = if index_path.exists() {
            let text = std::fs::read_to_string(&index_path).map_err(io_err(&index_path))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| st_err(&index_path, e))?;
            let map = v["weight_map"]
                .as_object()
                .ok_or_else(|| st_err(&index_path, "missing weight_map"))?;
            let map = map
                .iter()
                .map(|(t, f)| match f.as_str() {
                    Some(f) => Ok((t.clone(), f.to_string())),
                    None => Err(st_err(
                        &index_path,
                        format!("weight_map.{t} is not a file name"),
                    )),
                })
                .collect::<Result<HashMap<_, _>>>()?;
            Some(map)
        } else {
            None
        };
        let file_names: Vec<String> = match &weight_map {
            Some(map) => {
                let mut names: Vec<String> = map.values().cloned().collect();
                names.sort();
                names.dedup();
                names
            }
            None => vec!["model.safetensors".to_string()],
        };
        let mut files = Vec::new();
        let mut index = HashMap::new();
        for name in &file_names {
            if name.contains('/') || name.contains("..") {
                return Err(st_err(
                    &index_path,
                    format!("shard name {name:?} leaves the directory"),
                ));
            }
            let path = dir.join(name);
            let file = File::open(&path).map_err(io_err(&path))?;
            // SAFETY: the checkpoint files are treated as immutable for the lifetime of the map;
            // a concurrent writer could only corrupt the float input of quantization.
            let map = unsafe { Mmap::map(&file) }.map_err(io_err(&path))?;
            let st = SafeTensors::deserialize(&map).map_err(|e| deserialize_err(&path, &map, e))?;
            for n in st.names() {
                if index.insert(n.to_string(), files.len()).is_some() {
                    return Err(st_err(&path, format!("tensor {n} is stored twice")));
                }
            }
            files.push((path, map));
        }
        if let Some(map) = &weight_map {
            check_weight_map(&index_path, map, &index, &file_names)?;
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

    /// Whether the attention projections carry biases: always for Qwen2 (`Qwen2Attention`
    /// has q/k/v biases), never for Llama (`attention_bias: true` is refused by the config).
    /// A checkpoint that disagrees fails [`Checkpoint::open`] with the missing or extra tensor.
    pub fn has_qkv_bias(&self) -> bool {
        self.config.arch == Arch::Qwen2
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
            out.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
            for proj in Proj::ALL {
                let (n, k) = match proj {
                    Proj::Q => (q, h),
                    Proj::K | Proj::V => (kv, h),
                    Proj::O => (h, q),
                    Proj::Gate | Proj::Up => (i, h),
                    Proj::Down => (h, i),
                };
                out.push((format!("{p}.{}.weight", proj.hf_module()), vec![n, k]));
                if bias && Proj::BIASED.contains(&proj) {
                    out.push((format!("{p}.{}.bias", proj.hf_module()), vec![n]));
                }
            }
        }
        out.push(("model.norm.weight".to_string(), vec![h]));
        if !self.config.tie_word_embeddings {
            out.push(("lm_head.weight".to_string(), vec![c.vocab_size, h]));
        }
        out
    }

    /// Every expected tensor is present with a float dtype and its shape, and no other tensor
    /// is stored: a tensor the engine does not know (an o_proj bias, a different norm) would be
    /// silently ignored, and the SKU would not compute what the checkpoint does.
    fn validate(&self) -> Result<()> {
        let expected = self.expected_tensors();
        for (name, shape) in &expected {
            self.check(name, shape)?;
        }
        let known: HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
        let mut extra: Vec<&String> = self
            .index
            .keys()
            .filter(|n| !known.contains(n.as_str()))
            .collect();
        extra.sort();
        match extra.first() {
            Some(name) => Err(ProverError::UnexpectedTensor {
                name: name.to_string(),
            }),
            None => Ok(()),
        }
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
