//! The program of a shard: the fixed list of steps derived from the SKU and the shard shape
//! (docs/ARITHMETIC.md §6). Step `s` produces tensor `s`.

use crate::error::{ProverError, Result};
use crate::sku::SkuConfig;
use verinfer_primitives::arith::OpCode;

/// The 19 steps of one transformer layer, in program order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerOp {
    AttnNorm,
    Q,
    K,
    V,
    RopeQ,
    RopeK,
    Value,
    Scores,
    Softmax,
    Pv,
    AttnOut,
    O,
    AttnResidual,
    FfnNorm,
    Gate,
    Up,
    SiluMul,
    Down,
    FfnResidual,
}

/// All layer ops in order.
pub const LAYER_OPS: [LayerOp; 19] = [
    LayerOp::AttnNorm,
    LayerOp::Q,
    LayerOp::K,
    LayerOp::V,
    LayerOp::RopeQ,
    LayerOp::RopeK,
    LayerOp::Value,
    LayerOp::Scores,
    LayerOp::Softmax,
    LayerOp::Pv,
    LayerOp::AttnOut,
    LayerOp::O,
    LayerOp::AttnResidual,
    LayerOp::FfnNorm,
    LayerOp::Gate,
    LayerOp::Up,
    LayerOp::SiluMul,
    LayerOp::Down,
    LayerOp::FfnResidual,
];

impl LayerOp {
    /// The arithmetic op this step applies.
    pub fn opcode(self) -> OpCode {
        match self {
            LayerOp::AttnNorm | LayerOp::FfnNorm => OpCode::RmsNormQuant,
            LayerOp::Q
            | LayerOp::K
            | LayerOp::V
            | LayerOp::O
            | LayerOp::Gate
            | LayerOp::Up
            | LayerOp::Down => OpCode::Gemm,
            LayerOp::RopeQ => OpCode::RopeQ,
            LayerOp::RopeK => OpCode::RopeK,
            LayerOp::Value => OpCode::Value,
            LayerOp::Scores => OpCode::Scores,
            LayerOp::Softmax => OpCode::Softmax,
            LayerOp::Pv => OpCode::Pv,
            LayerOp::AttnOut => OpCode::AttnOut,
            LayerOp::AttnResidual | LayerOp::FfnResidual => OpCode::Residual,
            LayerOp::SiluMul => OpCode::SiluMul,
        }
    }

    fn index(self) -> u64 {
        LAYER_OPS.iter().position(|&o| o == self).unwrap_or(0) as u64
    }

    /// The weight matrix a GEMM step multiplies by (SKU section prefix suffix).
    pub fn matrix(self) -> Option<&'static str> {
        match self {
            LayerOp::Q => Some("q"),
            LayerOp::K => Some("k"),
            LayerOp::V => Some("v"),
            LayerOp::O => Some("o"),
            LayerOp::Gate => Some("gate"),
            LayerOp::Up => Some("up"),
            LayerOp::Down => Some("down"),
            _ => None,
        }
    }
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepKind {
    Embed,
    Layer { layer: usize, op: LayerOp },
    FinalNorm,
    LmHead,
    Argmax,
}

/// A step's place in the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepInfo {
    pub step: u64,
    pub round: usize,
    pub kind: StepKind,
}

impl StepInfo {
    /// The arithmetic op of the step.
    pub fn opcode(&self) -> OpCode {
        match self.kind {
            StepKind::Embed => OpCode::Embed,
            StepKind::Layer { op, .. } => op.opcode(),
            StepKind::FinalNorm => OpCode::RmsNormQuant,
            StepKind::LmHead => OpCode::Gemm,
            StepKind::Argmax => OpCode::Argmax,
        }
    }

    /// Human-readable label, e.g. `r0.l1.scores`.
    pub fn label(&self) -> String {
        match self.kind {
            StepKind::Embed => format!("r{}.embed", self.round),
            StepKind::Layer { layer, op } => format!("r{}.l{}.{:?}", self.round, layer, op),
            StepKind::FinalNorm => format!("r{}.final_norm", self.round),
            StepKind::LmHead => format!("r{}.lm_head", self.round),
            StepKind::Argmax => format!("r{}.argmax", self.round),
        }
    }
}

/// How the rows of a step's tensor are addressed in its Merkle tree (docs/ARITHMETIC.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowLayout {
    /// One row per token: leaf index = token address.
    Token,
    /// One row per (token, query head): `token address · Hq + h`.
    QueryHead,
    /// One row per (token, key/value head): `token address · Hkv + g`.
    KvHead,
}

impl LayerOp {
    /// How this op's output rows are addressed.
    pub fn layout(self) -> RowLayout {
        match self {
            LayerOp::RopeQ | LayerOp::Scores | LayerOp::Softmax | LayerOp::Pv => {
                RowLayout::QueryHead
            }
            LayerOp::RopeK | LayerOp::Value => RowLayout::KvHead,
            _ => RowLayout::Token,
        }
    }
}

impl StepKind {
    /// How this step's output rows are addressed. The final norm, lm_head and argmax rows sit
    /// at the address of the token whose logits they are.
    pub fn layout(self) -> RowLayout {
        match self {
            StepKind::Layer { op, .. } => op.layout(),
            _ => RowLayout::Token,
        }
    }
}

/// The row addresses of a SKU (spec v2): the token at position `pos` of prompt `p` (its index
/// in the shard) has address `p · max_seq + pos`, so the L1 reads (prompt, position) off a leaf
/// index alone. Per-head rows multiply the token address by the head count and add the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowAddresses {
    pub max_seq: u64,
    pub heads: u64,
    pub kv_heads: u64,
}

impl RowAddresses {
    /// The address scheme of a SKU.
    pub fn new(cfg: &SkuConfig) -> Self {
        RowAddresses {
            max_seq: cfg.max_seq as u64,
            heads: cfg.heads as u64,
            kv_heads: cfg.kv_heads as u64,
        }
    }

    /// Token address of position `pos` of prompt `prompt`.
    pub fn token(&self, prompt: usize, pos: usize) -> u64 {
        prompt as u64 * self.max_seq + pos as u64
    }

    /// Leaf index of query head `head` of that token (rope_q, scores, softmax, pv).
    pub fn query_head(&self, prompt: usize, pos: usize, head: usize) -> u64 {
        self.token(prompt, pos) * self.heads + head as u64
    }

    /// Leaf index of key/value head `head` of that token (rope_k, value).
    pub fn kv_head(&self, prompt: usize, pos: usize, head: usize) -> u64 {
        self.token(prompt, pos) * self.kv_heads + head as u64
    }

    /// Leaf index of a row of a step with `layout` (`head` is ignored for token rows).
    pub fn leaf(&self, layout: RowLayout, prompt: usize, pos: usize, head: usize) -> u64 {
        match layout {
            RowLayout::Token => self.token(prompt, pos),
            RowLayout::QueryHead => self.query_head(prompt, pos, head),
            RowLayout::KvHead => self.kv_head(prompt, pos, head),
        }
    }

    /// Inverse of [`Self::leaf`]: `(prompt, position, head)` of leaf index `index` (head 0 for
    /// token rows). `None` when the scheme is degenerate (a zero dimension).
    pub fn locate(&self, layout: RowLayout, index: u64) -> Option<(u64, u64, u64)> {
        let per_token = match layout {
            RowLayout::Token => 1,
            RowLayout::QueryHead => self.heads,
            RowLayout::KvHead => self.kv_heads,
        };
        let (a, head) = (index.checked_div(per_token)?, index.checked_rem(per_token)?);
        Some((a.checked_div(self.max_seq)?, a % self.max_seq, head))
    }

    /// Whether every address of `prompts` prompts fits in a `u64`.
    pub fn fits(&self, prompts: usize) -> bool {
        (prompts as u64)
            .checked_mul(self.max_seq)
            .and_then(|t| t.checked_mul(self.heads.max(self.kv_heads).max(1)))
            .is_some()
    }
}

/// The step layout of a shard: `rounds` rounds of `19·layers + 4` steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Program {
    pub layers: usize,
    pub rounds: usize,
}

impl Program {
    /// Steps of one round.
    pub fn steps_per_round(&self) -> u64 {
        19 * self.layers as u64 + 4
    }

    /// Total steps (known before running).
    pub fn step_count(&self) -> u64 {
        self.steps_per_round() * self.rounds as u64
    }

    /// Step id of `kind` in `round`.
    pub fn step_id(&self, round: usize, kind: StepKind) -> u64 {
        let base = round as u64 * self.steps_per_round();
        base + match kind {
            StepKind::Embed => 0,
            StepKind::Layer { layer, op } => 1 + 19 * layer as u64 + op.index(),
            StepKind::FinalNorm => 1 + 19 * self.layers as u64,
            StepKind::LmHead => 2 + 19 * self.layers as u64,
            StepKind::Argmax => 3 + 19 * self.layers as u64,
        }
    }

    /// What step `step` is.
    pub fn step(&self, step: u64) -> Result<StepInfo> {
        if step >= self.step_count() {
            return Err(ProverError::StepOutOfRange {
                step,
                steps: self.step_count(),
            });
        }
        let spr = self.steps_per_round();
        let round = (step / spr) as usize;
        let i = step % spr;
        let l19 = 19 * self.layers as u64;
        let kind = if i == 0 {
            StepKind::Embed
        } else if i <= l19 {
            let j = i - 1;
            StepKind::Layer {
                layer: (j / 19) as usize,
                op: LAYER_OPS[(j % 19) as usize],
            }
        } else if i == l19 + 1 {
            StepKind::FinalNorm
        } else if i == l19 + 2 {
            StepKind::LmHead
        } else {
            StepKind::Argmax
        };
        Ok(StepInfo { step, round, kind })
    }

    /// The residual-stream step feeding layer `layer` in `round` (embed for layer 0).
    fn residual_in(&self, round: usize, layer: usize) -> u64 {
        if layer == 0 {
            self.step_id(round, StepKind::Embed)
        } else {
            self.step_id(
                round,
                StepKind::Layer {
                    layer: layer - 1,
                    op: LayerOp::FfnResidual,
                },
            )
        }
    }

    /// The steps whose output tensors step `step` reads (the shard's prompts, read by round 0's
    /// embed, are not a step). Scores and pv read the key/value steps of every round up to
    /// their own.
    pub fn inputs(&self, step: u64) -> Result<Vec<u64>> {
        let info = self.step(step)?;
        let r = info.round;
        let id = |op: LayerOp, layer: usize| self.step_id(r, StepKind::Layer { layer, op });
        Ok(match info.kind {
            StepKind::Embed => {
                if r == 0 {
                    vec![]
                } else {
                    vec![self.step_id(r - 1, StepKind::Argmax)]
                }
            }
            StepKind::Layer { layer: l, op } => match op {
                LayerOp::AttnNorm => vec![self.residual_in(r, l)],
                LayerOp::Q | LayerOp::K | LayerOp::V => vec![id(LayerOp::AttnNorm, l)],
                LayerOp::RopeQ => vec![id(LayerOp::Q, l), id(LayerOp::AttnNorm, l)],
                LayerOp::RopeK => vec![id(LayerOp::K, l), id(LayerOp::AttnNorm, l)],
                LayerOp::Value => vec![id(LayerOp::V, l), id(LayerOp::AttnNorm, l)],
                LayerOp::Scores => {
                    let mut v = vec![id(LayerOp::RopeQ, l)];
                    v.extend((0..=r).map(|rr| {
                        self.step_id(
                            rr,
                            StepKind::Layer {
                                layer: l,
                                op: LayerOp::RopeK,
                            },
                        )
                    }));
                    v
                }
                LayerOp::Softmax => vec![id(LayerOp::Scores, l), id(LayerOp::RopeQ, l)],
                LayerOp::Pv => {
                    let mut v = vec![id(LayerOp::Softmax, l)];
                    v.extend((0..=r).map(|rr| {
                        self.step_id(
                            rr,
                            StepKind::Layer {
                                layer: l,
                                op: LayerOp::Value,
                            },
                        )
                    }));
                    v
                }
                LayerOp::AttnOut => vec![id(LayerOp::Pv, l)],
                LayerOp::O => vec![id(LayerOp::AttnOut, l)],
                LayerOp::AttnResidual => vec![
                    self.residual_in(r, l),
                    id(LayerOp::O, l),
                    id(LayerOp::AttnOut, l),
                ],
                LayerOp::FfnNorm => vec![id(LayerOp::AttnResidual, l)],
                LayerOp::Gate | LayerOp::Up => vec![id(LayerOp::FfnNorm, l)],
                LayerOp::SiluMul => vec![
                    id(LayerOp::Gate, l),
                    id(LayerOp::Up, l),
                    id(LayerOp::FfnNorm, l),
                ],
                LayerOp::Down => vec![id(LayerOp::SiluMul, l)],
                LayerOp::FfnResidual => vec![
                    id(LayerOp::AttnResidual, l),
                    id(LayerOp::Down, l),
                    id(LayerOp::SiluMul, l),
                ],
            },
            StepKind::FinalNorm => vec![self.residual_in(r, self.layers)],
            StepKind::LmHead => vec![self.step_id(r, StepKind::FinalNorm)],
            StepKind::Argmax => vec![self.step_id(r, StepKind::LmHead)],
        })
    }

    /// The SKU sections (weights and tables) step `step` reads.
    pub fn weights(&self, step: u64, qkv_bias: bool) -> Result<Vec<String>> {
        let info = self.step(step)?;
        Ok(match info.kind {
            StepKind::Embed => vec!["embed.w".into(), "embed.s".into()],
            StepKind::Layer { layer, op } => {
                let m = |x: &str| format!("layers.{layer}.{x}");
                match op {
                    LayerOp::RopeQ | LayerOp::RopeK | LayerOp::Value => {
                        let x = match op {
                            LayerOp::RopeQ => "q",
                            LayerOp::RopeK => "k",
                            _ => "v",
                        };
                        let mut v = vec![m(&format!("{x}.s"))];
                        if qkv_bias {
                            v.push(m(&format!("{x}.b")));
                        }
                        if op != LayerOp::Value {
                            v.push("rope".into());
                        }
                        v
                    }
                    LayerOp::Softmax => vec!["exp2".into()],
                    LayerOp::AttnResidual => vec![m("o.s")],
                    LayerOp::SiluMul => vec![m("gate.s"), m("up.s"), "sigmoid".into()],
                    LayerOp::FfnResidual => vec![m("down.s")],
                    _ => op
                        .matrix()
                        .map(|x| vec![m(&format!("{x}.w"))])
                        .unwrap_or_default(),
                }
            }
            StepKind::FinalNorm => vec![],
            StepKind::LmHead => vec!["lm_head.w".into()],
            StepKind::Argmax => vec!["lm_head.s".into()],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_ids_round_trip() {
        let p = Program {
            layers: 3,
            rounds: 4,
        };
        assert_eq!(p.step_count(), 4 * (19 * 3 + 4));
        for s in 0..p.step_count() {
            let info = p.step(s).unwrap();
            assert_eq!(p.step_id(info.round, info.kind), s);
            for i in p.inputs(s).unwrap() {
                assert!(i < s, "step {s} reads a later step {i}");
            }
        }
        assert!(p.step(p.step_count()).is_err());
    }

    #[test]
    fn row_addresses_round_trip() {
        let at = RowAddresses {
            max_seq: 128,
            heads: 6,
            kv_heads: 2,
        };
        assert_eq!(at.token(3, 5), 3 * 128 + 5);
        assert_eq!(at.query_head(3, 5, 4), (3 * 128 + 5) * 6 + 4);
        assert_eq!(at.kv_head(3, 5, 1), (3 * 128 + 5) * 2 + 1);
        for (layout, head) in [
            (RowLayout::Token, 0),
            (RowLayout::QueryHead, 5),
            (RowLayout::KvHead, 1),
        ] {
            let leaf = at.leaf(layout, 7, 127, head);
            assert_eq!(at.locate(layout, leaf), Some((7, 127, head as u64)));
        }
        assert_eq!(
            StepKind::Layer {
                layer: 0,
                op: LayerOp::Pv
            }
            .layout(),
            RowLayout::QueryHead
        );
        assert_eq!(StepKind::Argmax.layout(), RowLayout::Token);
        assert!(at.fits(1000));
        assert!(!at.fits(usize::MAX));
    }
}
