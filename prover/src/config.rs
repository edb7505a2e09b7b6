//! Hugging Face `config.json` of the two supported architectures.

use crate::error::{ProverError, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// The model family (tensor names are the same; Qwen2 adds q/k/v biases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arch {
    /// `LlamaForCausalLM` (Llama-3, 3.1).
    Llama,
    /// `Qwen2ForCausalLM` (Qwen2, Qwen2.5).
    Qwen2,
}

impl Arch {
    /// The HF `architectures` entry.
    pub fn hf_name(self) -> &'static str {
        match self {
            Arch::Llama => "LlamaForCausalLM",
            Arch::Qwen2 => "Qwen2ForCausalLM",
        }
    }
}

/// Llama-3.1 style RoPE frequency scaling (`rope_scaling.rope_type = "llama3"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Llama3Scaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: f64,
}

/// The fields of `config.json` the engine uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    /// Rows of the embedding / lm_head (may be padded above the tokenizer's size).
    pub vocab_size: usize,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3Scaling>,
    pub rms_norm_eps: f64,
    pub tie_word_embeddings: bool,
    pub max_position_embeddings: usize,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

fn bad(path: &Path, reason: impl Into<String>) -> ProverError {
    ProverError::Config {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The RoPE settings of a config, from either layout.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rope {
    theta: f64,
    scaling: Option<Llama3Scaling>,
}

/// Keys of a `rope_parameters` / `rope_scaling` object this engine understands; any other key
/// could change the frequencies, so it is refused rather than ignored.
const ROPE_KEYS: [&str; 7] = [
    "rope_type",
    "type",
    "rope_theta",
    "factor",
    "low_freq_factor",
    "high_freq_factor",
    "original_max_position_embeddings",
];

/// Reads RoPE from the transformers ≤ 4 layout (top-level `rope_theta`, `rope_scaling`) or the
/// transformers 5 layout (`rope_parameters` holding `rope_theta`, `rope_type` and the scaling
/// keys). When both are present they must agree. A missing theta is refused: the engine must
/// never fall back to a default that gives different answers from the model's.
fn read_rope(v: &Value, path: &Path) -> Result<Rope> {
    let legacy = match (&v["rope_theta"], &v["rope_scaling"]) {
        (Value::Null, Value::Null) => None,
        (theta, scaling) => {
            let theta = theta
                .as_f64()
                .ok_or_else(|| bad(path, "rope_theta must be a number"))?;
            let scaling = match scaling {
                Value::Null => None,
                Value::Object(o) => rope_scaling_of(o, "rope_scaling", path)?,
                _ => return Err(bad(path, "rope_scaling must be an object or null")),
            };
            Some(Rope { theta, scaling })
        }
    };
    let v5 = match &v["rope_parameters"] {
        Value::Null => None,
        Value::Object(o) => {
            let theta = o
                .get("rope_theta")
                .and_then(Value::as_f64)
                .ok_or_else(|| bad(path, "rope_parameters.rope_theta missing or not a number"))?;
            Some(Rope {
                theta,
                scaling: rope_scaling_of(o, "rope_parameters", path)?,
            })
        }
        _ => return Err(bad(path, "rope_parameters must be an object")),
    };
    match (legacy, v5) {
        (Some(a), Some(b)) if a != b => Err(bad(
            path,
            "rope_theta/rope_scaling and rope_parameters disagree",
        )),
        (_, Some(r)) | (Some(r), None) => Ok(r),
        (None, None) => Err(bad(
            path,
            "missing rope_theta (neither rope_theta nor rope_parameters.rope_theta is set)",
        )),
    }
}

/// The scaling described by a `rope_scaling` or `rope_parameters` object (`what` names it in
/// errors): `default` (or no type) is none, `llama3` needs its four keys, anything else is
/// refused.
fn rope_scaling_of(
    o: &serde_json::Map<String, Value>,
    what: &str,
    path: &Path,
) -> Result<Option<Llama3Scaling>> {
    if let Some(k) = o.keys().find(|k| !ROPE_KEYS.contains(&k.as_str())) {
        return Err(bad(path, format!("unsupported key {what}.{k}")));
    }
    let kind = match o.get("rope_type").or_else(|| o.get("type")) {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(bad(path, format!("{what}.rope_type must be a string"))),
    };
    let num = |k: &str| {
        o.get(k)
            .and_then(Value::as_f64)
            .ok_or_else(|| bad(path, format!("{what}.{k} missing or not a number")))
    };
    match kind {
        Some("llama3") => {
            let s = Llama3Scaling {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_position_embeddings: num("original_max_position_embeddings")?,
            };
            if !(s.factor > 0.0
                && s.low_freq_factor > 0.0
                && s.high_freq_factor > s.low_freq_factor
                && s.original_max_position_embeddings > 0.0)
            {
                return Err(bad(path, format!("{what}: invalid llama3 scaling values")));
            }
            Ok(Some(s))
        }
        Some("default") | None => {
            // A factor without a type would be silently dropped: refuse it.
            match ROPE_KEYS[3..].iter().find(|k| o.contains_key(**k)) {
                Some(k) => Err(bad(
                    path,
                    format!("{what}.{k} given for the default rope type"),
                )),
                None => Ok(None),
            }
        }
        Some(other) => Err(bad(path, format!("unsupported {what}.rope_type {other:?}"))),
    }
}

/// Config switches that change the computation in ways this engine does not implement.
fn refuse_unsupported(v: &Value, arch: Arch, path: &Path) -> Result<()> {
    match &v["hidden_act"] {
        Value::Null => {}
        Value::String(s) if s == "silu" => {}
        other => return Err(bad(path, format!("unsupported hidden_act {other}"))),
    }
    let flag = |k: &str| v[k].as_bool().unwrap_or(false);
    for k in ["attention_bias", "mlp_bias"] {
        if arch == Arch::Llama && flag(k) {
            return Err(bad(path, format!("unsupported {k}: true")));
        }
    }
    if arch == Arch::Qwen2 && flag("use_sliding_window") {
        return Err(bad(path, "unsupported use_sliding_window: true"));
    }
    Ok(())
}

impl ModelConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(crate::error::io_err(path))?;
        Self::from_json(&text, path)
    }

    /// Parses and validates the JSON text of a config (`path` is only used in errors).
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(path, format!("not JSON: {e}")))?;
        let arch_name = v["architectures"][0]
            .as_str()
            .ok_or_else(|| bad(path, "missing architectures[0]"))?;
        let arch = match arch_name {
            "LlamaForCausalLM" => Arch::Llama,
            "Qwen2ForCausalLM" => Arch::Qwen2,
            other => return Err(ProverError::Architecture(other.to_string())),
        };
        let req = |k: &str| -> Result<usize> {
            v[k].as_u64()
                .map(|x| x as usize)
                .filter(|&x| x > 0)
                .ok_or_else(|| bad(path, format!("missing or invalid positive integer {k}")))
        };
        let hidden_size = req("hidden_size")?;
        let num_attention_heads = req("num_attention_heads")?;
        let num_key_value_heads = v["num_key_value_heads"]
            .as_u64()
            .map_or(num_attention_heads, |x| x as usize);
        let head_dim = v["head_dim"]
            .as_u64()
            .map_or(hidden_size / num_attention_heads, |x| x as usize);
        let eos_token_ids = match &v["eos_token_id"] {
            serde_json::Value::Number(n) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_u64())
                .map(|x| x as u32)
                .collect(),
            _ => Vec::new(),
        };
        let rope = read_rope(&v, path)?;
        refuse_unsupported(&v, arch, path)?;
        let cfg = ModelConfig {
            arch,
            hidden_size,
            intermediate_size: req("intermediate_size")?,
            num_hidden_layers: req("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            vocab_size: req("vocab_size")?,
            rope_theta: rope.theta,
            rope_scaling: rope.scaling,
            // Every published config states it, and a wrong epsilon changes every norm.
            rms_norm_eps: v["rms_norm_eps"]
                .as_f64()
                .ok_or_else(|| bad(path, "missing number rms_norm_eps"))?,
            tie_word_embeddings: v["tie_word_embeddings"].as_bool().unwrap_or(false),
            max_position_embeddings: v["max_position_embeddings"].as_u64().unwrap_or(2048) as usize,
            bos_token_id: v["bos_token_id"].as_u64().map(|x| x as u32),
            eos_token_ids,
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        if self.num_key_value_heads == 0
            || !self
                .num_attention_heads
                .is_multiple_of(self.num_key_value_heads)
        {
            return Err(bad(
                path,
                "num_attention_heads must be a multiple of num_key_value_heads",
            ));
        }
        if !self.head_dim.is_multiple_of(2) || self.head_dim > 256 {
            return Err(bad(
                path,
                format!("head_dim {} must be even and at most 256", self.head_dim),
            ));
        }
        if self.hidden_size > 1 << 14 || self.intermediate_size > 1 << 15 {
            return Err(bad(
                path,
                "hidden_size ≤ 16384 and intermediate_size ≤ 32768 required",
            ));
        }
        if !(self.rms_norm_eps > 0.0 && self.rope_theta > 0.0) {
            return Err(bad(path, "rms_norm_eps and rope_theta must be positive"));
        }
        Ok(())
    }

    /// Output width of q_proj.
    pub fn q_dim(&self) -> usize {
        self.num_attention_heads * self.head_dim
    }

    /// Output width of k_proj / v_proj.
    pub fn kv_dim(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    /// RoPE inverse frequencies (float; only used to generate the committed table).
    pub fn inv_freq(&self) -> Vec<f64> {
        let d = self.head_dim;
        let base: Vec<f64> = (0..d / 2)
            .map(|i| self.rope_theta.powf(-((2 * i) as f64) / d as f64))
            .collect();
        let Some(s) = self.rope_scaling else {
            return base;
        };
        // Llama-3.1's frequency-dependent scaling, as in HF `_compute_llama3_parameters`.
        let low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
        let high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
        base.iter()
            .map(|&f| {
                let wavelen = 2.0 * std::f64::consts::PI / f;
                if wavelen < high_wavelen {
                    f
                } else if wavelen > low_wavelen {
                    f / s.factor
                } else {
                    let smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor)
                        / (s.high_freq_factor - s.low_freq_factor);
                    (1.0 - smooth) * f / s.factor + smooth * f
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_8b_config_parses() {
        let text = r#"{"architectures":["LlamaForCausalLM"],"hidden_size":4096,"intermediate_size":14336,
            "num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":8,"vocab_size":128256,
            "rope_theta":500000.0,"rms_norm_eps":1e-05,"tie_word_embeddings":false,
            "max_position_embeddings":8192,"bos_token_id":128000,"eos_token_id":128001}"#;
        let c = ModelConfig::from_json(text, Path::new("c.json")).unwrap();
        assert_eq!(
            (c.head_dim, c.kv_dim(), c.eos_token_ids.clone()),
            (128, 1024, vec![128001])
        );
        assert_eq!(c.inv_freq().len(), 64);
    }

    /// meta-llama/Llama-3.1-8B's config.json as published (transformers 4.43), and the same
    /// config as transformers 5 saves it (RoPE settings moved into `rope_parameters`).
    #[test]
    fn llama31_config_reads_the_same_in_both_layouts() {
        let v4 = r#"{"architectures":["LlamaForCausalLM"],"attention_bias":false,"attention_dropout":0.0,
            "bos_token_id":128000,"eos_token_id":128001,"hidden_act":"silu","hidden_size":4096,
            "initializer_range":0.02,"intermediate_size":14336,"max_position_embeddings":131072,
            "mlp_bias":false,"model_type":"llama","num_attention_heads":32,"num_hidden_layers":32,
            "num_key_value_heads":8,"pretraining_tp":1,"rms_norm_eps":1e-05,
            "rope_scaling":{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
            "original_max_position_embeddings":8192,"rope_type":"llama3"},"rope_theta":500000.0,
            "tie_word_embeddings":false,"torch_dtype":"bfloat16","use_cache":true,"vocab_size":128256}"#;
        let mut v5: serde_json::Value = serde_json::from_str(v4).unwrap();
        let o = v5.as_object_mut().unwrap();
        let mut params = o.remove("rope_scaling").unwrap();
        params["rope_theta"] = o.remove("rope_theta").unwrap();
        o.insert("rope_parameters".into(), params);
        o.insert("dtype".into(), o["torch_dtype"].clone());
        o.remove("torch_dtype");
        let a = ModelConfig::from_json(v4, Path::new("v4")).unwrap();
        let b = ModelConfig::from_json(&v5.to_string(), Path::new("v5")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.rope_theta, 500000.0);
        assert_eq!(a.rope_scaling.map(|s| s.factor), Some(8.0));
    }

    #[test]
    fn bad_configs_are_named() {
        let e = ModelConfig::from_json(r#"{"architectures":["GPT2LMHeadModel"]}"#, Path::new("x"))
            .unwrap_err();
        assert!(e.to_string().contains("GPT2LMHeadModel"));
        let e = ModelConfig::from_json(
            r#"{"architectures":["Qwen2ForCausalLM"],"hidden_size":64}"#,
            Path::new("x"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("num_attention_heads"), "{e}");
    }
}
