//! Typed names of SKU sections. The on-disk names (`layers.3.gate.w`, `embed.s`, `rope`, ...)
//! are what the header's section table, the weight root order and the L1 openings use; they are
//! produced in one place, [`SectionId`]'s `Display`, and parsed back by its `FromStr`.

use std::fmt;
use std::str::FromStr;

/// The seven projections of a decoder layer, in weight-root order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proj {
    /// `self_attn.q_proj`.
    Q,
    /// `self_attn.k_proj`.
    K,
    /// `self_attn.v_proj`.
    V,
    /// `self_attn.o_proj`.
    O,
    /// `mlp.gate_proj`.
    Gate,
    /// `mlp.up_proj`.
    Up,
    /// `mlp.down_proj`.
    Down,
}

impl Proj {
    /// Every projection, in weight-root order.
    pub const ALL: [Proj; 7] = [
        Proj::Q,
        Proj::K,
        Proj::V,
        Proj::O,
        Proj::Gate,
        Proj::Up,
        Proj::Down,
    ];
    /// The projections that carry a bias in Qwen2, in weight-root order.
    pub const BIASED: [Proj; 3] = [Proj::Q, Proj::K, Proj::V];

    /// The short name used in section names (`q`, ..., `down`).
    pub fn short(self) -> &'static str {
        match self {
            Proj::Q => "q",
            Proj::K => "k",
            Proj::V => "v",
            Proj::O => "o",
            Proj::Gate => "gate",
            Proj::Up => "up",
            Proj::Down => "down",
        }
    }

    /// The Hugging Face module path inside a layer (`self_attn.q_proj`, `mlp.down_proj`, ...).
    pub fn hf_module(self) -> &'static str {
        match self {
            Proj::Q => "self_attn.q_proj",
            Proj::K => "self_attn.k_proj",
            Proj::V => "self_attn.v_proj",
            Proj::O => "self_attn.o_proj",
            Proj::Gate => "mlp.gate_proj",
            Proj::Up => "mlp.up_proj",
            Proj::Down => "mlp.down_proj",
        }
    }

    fn from_short(s: &str) -> Option<Self> {
        Proj::ALL.into_iter().find(|p| p.short() == s)
    }
}

/// A quantized matrix of the SKU: int8 weights (`.w`) with one scale per output row (`.s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Matrix {
    /// A projection of layer `layer`.
    Layer { layer: usize, proj: Proj },
    /// The token embedding.
    Embed,
    /// The output head (stored separately even when tied, because the final-norm gain is
    /// folded into it).
    LmHead,
}

impl Matrix {
    /// Projection `proj` of layer `layer`.
    pub fn layer(layer: usize, proj: Proj) -> Self {
        Matrix::Layer { layer, proj }
    }
}

impl fmt::Display for Matrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matrix::Layer { layer, proj } => write!(f, "layers.{layer}.{}", proj.short()),
            Matrix::Embed => f.write_str("embed"),
            Matrix::LmHead => f.write_str("lm_head"),
        }
    }
}

/// One section of a SKU file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SectionId {
    /// `{matrix}.w`: int8, one row per output channel.
    Weights(Matrix),
    /// `{matrix}.s`: `u32` Q32 scale per output channel.
    Scales(Matrix),
    /// `layers.{layer}.{proj}.b`: Qwen2's Q16 `i32` bias of q/k/v.
    Bias { layer: usize, proj: Proj },
    /// `exp2`: the softmax EXP2 table.
    Exp2,
    /// `sigmoid`: the SiLU SIGMOID table.
    Sigmoid,
    /// `rope`: the RoPE cos/sin table, one row per position.
    Rope,
    /// `tokenizer`: the embedded `tokenizer.json` (not in the weight root; hashed into the id).
    Tokenizer,
    /// `chat_template`: the model's chat template and special tokens (client-side prompt
    /// rendering only; neither in the weight root nor in the SKU id).
    ChatTemplate,
}

impl fmt::Display for SectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SectionId::Weights(m) => write!(f, "{m}.w"),
            SectionId::Scales(m) => write!(f, "{m}.s"),
            SectionId::Bias { layer, proj } => write!(f, "layers.{layer}.{}.b", proj.short()),
            SectionId::Exp2 => f.write_str("exp2"),
            SectionId::Sigmoid => f.write_str("sigmoid"),
            SectionId::Rope => f.write_str("rope"),
            SectionId::Tokenizer => f.write_str("tokenizer"),
            SectionId::ChatTemplate => f.write_str("chat_template"),
        }
    }
}

/// A string that is not a section name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SKU section name: {0:?}")]
pub struct BadSectionName(pub String);

impl FromStr for SectionId {
    type Err = BadSectionName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadSectionName(s.to_string());
        match s {
            "exp2" => return Ok(SectionId::Exp2),
            "sigmoid" => return Ok(SectionId::Sigmoid),
            "rope" => return Ok(SectionId::Rope),
            "tokenizer" => return Ok(SectionId::Tokenizer),
            "chat_template" => return Ok(SectionId::ChatTemplate),
            _ => {}
        }
        let (matrix, part) = s.rsplit_once('.').ok_or_else(bad)?;
        let matrix = match matrix {
            "embed" => Matrix::Embed,
            "lm_head" => Matrix::LmHead,
            _ => {
                let rest = matrix.strip_prefix("layers.").ok_or_else(bad)?;
                let (layer, proj) = rest.split_once('.').ok_or_else(bad)?;
                // Canonical decimal only, so that parse ∘ display is the identity.
                let layer_n: usize = layer.parse().map_err(|_| bad())?;
                if layer_n.to_string() != layer {
                    return Err(bad());
                }
                Matrix::layer(layer_n, Proj::from_short(proj).ok_or_else(bad)?)
            }
        };
        match (part, matrix) {
            ("w", m) => Ok(SectionId::Weights(m)),
            ("s", m) => Ok(SectionId::Scales(m)),
            ("b", Matrix::Layer { layer, proj }) if Proj::BIASED.contains(&proj) => {
                Ok(SectionId::Bias { layer, proj })
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_on_disk_names_and_parse_back() {
        let cases = [
            (
                SectionId::Weights(Matrix::layer(3, Proj::Gate)),
                "layers.3.gate.w",
            ),
            (SectionId::Scales(Matrix::layer(0, Proj::Q)), "layers.0.q.s"),
            (
                SectionId::Bias {
                    layer: 12,
                    proj: Proj::V,
                },
                "layers.12.v.b",
            ),
            (SectionId::Weights(Matrix::Embed), "embed.w"),
            (SectionId::Scales(Matrix::LmHead), "lm_head.s"),
            (SectionId::Exp2, "exp2"),
            (SectionId::Sigmoid, "sigmoid"),
            (SectionId::Rope, "rope"),
            (SectionId::Tokenizer, "tokenizer"),
            (SectionId::ChatTemplate, "chat_template"),
        ];
        for (id, name) in cases {
            assert_eq!(id.to_string(), name);
            assert_eq!(name.parse::<SectionId>(), Ok(id));
        }
        for bad in [
            "layers.1.o.b",
            "layers.01.q.w",
            "layers.x.q.w",
            "layers.1.qq.w",
            "embed.b",
            "embed",
            "",
        ] {
            assert!(bad.parse::<SectionId>().is_err(), "{bad}");
        }
    }
}
