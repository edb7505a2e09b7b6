//! The deterministic integer engine: batched prefill + greedy decode with a KV cache, every step
//! committed (docs/ENGINE.md). All arithmetic is `verinfer_primitives::arith`; GEMMs run on any
//! `verinfer_gpu::Backend` (all bit-identical).

use crate::error::{ProverError, Result};
use crate::program::{LayerOp, Program, RowAddresses, StepInfo, StepKind};
use crate::section::{Matrix, Proj, SectionId};
use crate::sku::{Sku, SkuConfig};
use crate::tensor::{Tensor, TensorView};
use alloy_primitives::{Address, B256};
use rayon::prelude::*;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;
use verinfer_gpu::{gemm_i8, Backend, PackedWeights};
use verinfer_primitives::arith;
use verinfer_primitives::job::{outputs_root, prompts_root, Prompt};
use verinfer_primitives::{MerkleProof, Receipt, SparseMerkleTree, TraceState};

/// A shard: prompts (token ids) and the number of tokens to generate per prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub prompts: Vec<Vec<u32>>,
    pub max_new_tokens: usize,
}

impl Shard {
    /// The program of this shard.
    pub fn program(&self, layers: usize) -> Program {
        Program {
            layers,
            rounds: self.max_new_tokens,
        }
    }

    /// The receipt's `inputRoot`: `job::prompts_root` over the prompts as token-id prompts
    /// (tagged leaves `0x01 ‖ ids as u32 BE`), the same root the sequencer expects for a shard
    /// of a job whose prompts are token ids.
    pub fn input_root(&self) -> B256 {
        let prompts: Vec<Prompt> = self.prompts.iter().cloned().map(Prompt::Tokens).collect();
        prompts_root(&prompts)
    }

    /// The round that processes position `pos` of prompt `prompt` (0 for prompt tokens, `r` for
    /// the token fed in decode round `r`); `None` past the program or for an unknown prompt.
    /// The row exists only if the prompt was still active in that round. Scores/pv read the key/value rows of earlier positions from the rope_k/value tensors of
    /// these rounds.
    pub fn round_of(&self, prompt: usize, pos: usize) -> Option<usize> {
        let len = self.prompts.get(prompt)?.len();
        let round = if pos < len { 0 } else { pos - len + 1 };
        (round < self.max_new_tokens).then_some(round)
    }
}

/// A quantized projection packed for the GEMM backend: int8 weights, one Q32 scale per output
/// channel, and Qwen2's Q16 bias where the model has one.
struct Linear {
    packed: PackedWeights,
    scales: Vec<u32>,
    bias: Option<Vec<i32>>,
}

impl Linear {
    /// The scales and bias of the `d` output channels from `start` (one attention head).
    fn head(&self, start: usize, d: usize) -> (&[u32], Option<&[i32]>) {
        (
            &self.scales[start..start + d],
            self.bias.as_ref().map(|b| &b[start..start + d]),
        )
    }
}

/// The weights of one decoder layer, named as in HF's `LlamaDecoderLayer` /
/// `Qwen2DecoderLayer`. The RMSNorm gains (`input_layernorm`, `post_attention_layernorm`) are
/// folded into q/k/v and gate/up when the SKU is built, so the integer norms have no weights.
struct DecoderLayer {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

/// Int8 rows with one Q31 scale per row (an RMSNorm or a quantization output).
struct QRows {
    values: Vec<i8>,
    scales: Vec<i64>,
}

impl QRows {
    fn from_rows(rows: Vec<(Vec<i8>, i64)>) -> Self {
        QRows {
            values: rows.iter().flat_map(|(v, _)| v.iter().copied()).collect(),
            scales: rows.iter().map(|(_, s)| *s).collect(),
        }
    }

    fn view(&self, cols: usize) -> TensorView<'_> {
        TensorView::Q {
            cols,
            values: &self.values,
            scales: &self.scales,
        }
    }
}

/// A projection's GEMM accumulators with the row scales of its int8 input: what a residual
/// add dequantizes (`o_proj` into the attention residual, `down_proj` into the MLP residual).
struct Projected<'w> {
    acc: Vec<i32>,
    x_scales: Vec<i64>,
    proj: &'w Linear,
}

/// Timing of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunStats {
    /// Wall time of round 0 (prefill), hashing included.
    pub prefill_secs: f64,
    /// Wall time of the later rounds, hashing included.
    pub decode_secs: f64,
    /// Time spent hashing step outputs into tensor roots (all rounds).
    pub hash_secs: f64,
    /// The part of `hash_secs` spent in round 0.
    pub prefill_hash_secs: f64,
    /// Time spent in GEMMs during round 0.
    pub prefill_gemm_secs: f64,
    /// Time spent in GEMMs.
    pub gemm_secs: f64,
    pub prefill_tokens: usize,
    pub decode_tokens: usize,
}

/// Everything a run produces.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Generated token ids per prompt (EOS included when produced).
    pub generated: Vec<Vec<u32>>,
    /// Per-step output roots and state roots.
    pub trace: TraceState,
    pub input_root: B256,
    pub output_root: B256,
    pub tokens_processed: u64,
    pub stats: RunStats,
}

impl RunOutput {
    /// The receipt of this run.
    pub fn receipt(
        &self,
        job_id: B256,
        shard_index: u32,
        sku_id: B256,
        worker: Address,
    ) -> Receipt {
        Receipt {
            jobId: job_id,
            shardIndex: shard_index,
            skuId: sku_id,
            worker,
            inputRoot: self.input_root,
            outputRoot: self.output_root,
            traceRoot: self.trace.trace_root(),
            stepCount: self.trace.step_count(),
            tokensProcessed: self.tokens_processed,
        }
    }
}

/// A tensor with its rows' addresses and its sparse Merkle tree, so any row's proof is a
/// lookup. Rows are looked up by address (docs/ARITHMETIC.md §5), not by position in `tensor`.
#[derive(Debug, Clone)]
pub struct TensorOpening {
    pub step: u64,
    pub tensor: Tensor,
    /// Leaf index of each row of `tensor`, strictly increasing.
    pub addresses: Vec<u64>,
    pub tree: SparseMerkleTree,
}

impl TensorOpening {
    fn new(step: u64, tensor: Tensor, addresses: Vec<u64>) -> Result<Self> {
        let tree = tensor.tree(&addresses)?;
        Ok(TensorOpening {
            step,
            tensor,
            addresses,
            tree,
        })
    }

    /// The tensor root (the trace's output root of `step`).
    pub fn root(&self) -> B256 {
        self.tree.root()
    }

    /// Index in `tensor` of the row at `address`, if there is one.
    pub fn row_index(&self, address: u64) -> Option<usize> {
        self.addresses.binary_search(&address).ok()
    }

    /// Bytes of the row at `address` (empty when no row sits there).
    pub fn row_bytes(&self, address: u64) -> Vec<u8> {
        self.row_index(address)
            .map(|i| self.tensor.row_bytes(i))
            .unwrap_or_default()
    }

    /// The leaf at `address` (`merkle::row_leaf(row bytes)`, or zero when no row sits there).
    pub fn leaf(&self, address: u64) -> B256 {
        self.tree.leaf(address)
    }

    /// Merkle proof of the leaf at `address` against this tensor's root; for an address without
    /// a row it proves the zero leaf. Fails only for addresses beyond the tree
    /// (`address >= 2^tree.depth()`).
    pub fn proof(&self, address: u64) -> Result<MerkleProof> {
        Ok(self.tree.proof(address)?)
    }
}

/// What a defender needs to open one step: its input and output tensors (with trees for
/// proofs), the SKU sections it reads, and the trace proofs of the step's transition.
#[derive(Debug, Clone)]
pub struct StepOpening {
    pub info: StepInfo,
    pub inputs: Vec<TensorOpening>,
    pub output: TensorOpening,
    /// SKU section names (weights, scales, biases, tables) the step reads.
    pub weights: Vec<String>,
    /// State root before the step (zero-leaf state for step 0).
    pub pre_state_root: B256,
    /// State root after the step.
    pub post_state_root: B256,
    /// Proof of leaf `step` (zero before, the output root after) against both state roots.
    pub state_proof_pre: MerkleProof,
    pub state_proof_post: MerkleProof,
}

/// The integer engine over one SKU.
pub struct Engine {
    sku: Arc<Sku>,
    cfg: SkuConfig,
    layers: Vec<DecoderLayer>,
    embed_scales: Vec<u32>,
    lm_head: Linear,
    exp2: Vec<u32>,
    sigmoid: Vec<u32>,
    rope: Vec<i32>,
    backend: Backend,
    threads: Option<usize>,
    #[cfg(feature = "fault-injection")]
    fault: Option<crate::fault::Fault>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("sku", &self.sku.id())
            .field("backend", &self.backend.name())
            .finish()
    }
}

fn gemm_err(what: &str) -> impl FnOnce(verinfer_gpu::GemmError) -> ProverError + '_ {
    move |source| ProverError::Gemm {
        what: what.to_string(),
        source,
    }
}

/// Per prompt, per layer: keys and values by position (`[pos][kv_dim]`, Q16).
struct KvCache {
    k: Vec<Vec<i32>>,
    v: Vec<Vec<i32>>,
}

/// One row of a round: which prompt, at which position, with which input token.
#[derive(Clone, Copy)]
struct RowRef {
    prompt: usize,
    pos: usize,
    token: u32,
}

/// A step's output kept for an opening: the tensor and its rows' addresses.
type Captured = HashMap<u64, (Tensor, Vec<u64>)>;

/// Collects step outputs: roots into the trace, chosen tensors kept for an opening.
struct Sink<'a> {
    trace: TraceState,
    capture: &'a BTreeSet<u64>,
    captured: Captured,
    stop_after: Option<u64>,
    hash_secs: f64,
}

impl Sink<'_> {
    /// Commits the next step's output, row `i` at leaf `addresses[i]`; the tensor is hashed
    /// where it lies and copied only when an opening keeps it. Returns true when the run
    /// should stop.
    fn commit(&mut self, step: u64, t: TensorView<'_>, addresses: &[u64]) -> Result<bool> {
        debug_assert_eq!(step, self.trace.output_roots().len() as u64);
        let t0 = Instant::now();
        let root = t.root(addresses)?;
        self.hash_secs += t0.elapsed().as_secs_f64();
        self.trace.push(root)?;
        if self.capture.contains(&step) {
            self.captured
                .insert(step, (t.to_tensor(), addresses.to_vec()));
        }
        Ok(self.stop_after == Some(step))
    }
}

/// Which address list a committed tensor's rows use (docs/ARITHMETIC.md §5).
#[derive(Clone, Copy)]
enum Rows {
    /// One row per token: `prompt · max_seq + pos`.
    Token,
    /// One row per (token, query head).
    QueryHead,
    /// One row per (token, kv head).
    KvHead,
    /// The tokens that produce logits (a subset of the token rows).
    Logits,
}

/// One round in progress: its rows, their addresses, and where committed outputs go.
struct RoundCtx<'r, 's> {
    round: usize,
    program: &'r Program,
    rows: &'r [RowRef],
    token_addr: Vec<u64>,
    query_addr: Vec<u64>,
    kv_addr: Vec<u64>,
    logit_addr: Vec<u64>,
    sink: &'r mut Sink<'s>,
    gemm_secs: &'r mut f64,
}

impl RoundCtx<'_, '_> {
    /// Commits the output of step `kind` of this round; true when the run should stop.
    fn commit(&mut self, kind: StepKind, t: TensorView<'_>, rows: Rows) -> Result<bool> {
        let addresses = match rows {
            Rows::Token => &self.token_addr,
            Rows::QueryHead => &self.query_addr,
            Rows::KvHead => &self.kv_addr,
            Rows::Logits => &self.logit_addr,
        };
        self.sink
            .commit(self.program.step_id(self.round, kind), t, addresses)
    }
}

/// Commits a step output through a [`RoundCtx`] and returns `Ok(None)` from the calling
/// function when the run stops at that step (`reproduce_step`).
macro_rules! commit {
    ($ctx:expr, $kind:expr, $view:expr, $rows:expr) => {
        if $ctx.commit($kind, $view, $rows)? {
            return Ok(None);
        }
    };
}

impl Engine {
    /// Prepares the engine: packs every matrix once for the GEMM backend and reads the tables.
    pub fn new(sku: Arc<Sku>, backend: Backend) -> Result<Self> {
        let cfg = sku.config().clone();
        let linear = |m: Matrix, n: usize, k: usize, bias: bool| -> Result<Linear> {
            let what = SectionId::Weights(m).to_string();
            let packed = PackedWeights::pack(sku.weights(m)?, n, k).map_err(gemm_err(&what))?;
            let bias = match m {
                Matrix::Layer { layer, proj } if bias => {
                    Some(sku.i32s(SectionId::Bias { layer, proj })?)
                }
                _ => None,
            };
            Ok(Linear {
                packed,
                scales: sku.scales(m)?,
                bias,
            })
        };
        let (h, i, q, kv) = (cfg.hidden, cfg.intermediate, cfg.q_dim(), cfg.kv_dim());
        let layers = (0..cfg.layers)
            .map(|l| {
                let proj = |p: Proj, n: usize, k: usize| {
                    linear(
                        Matrix::layer(l, p),
                        n,
                        k,
                        cfg.qkv_bias && Proj::BIASED.contains(&p),
                    )
                };
                Ok(DecoderLayer {
                    q_proj: proj(Proj::Q, q, h)?,
                    k_proj: proj(Proj::K, kv, h)?,
                    v_proj: proj(Proj::V, kv, h)?,
                    o_proj: proj(Proj::O, h, q)?,
                    gate_proj: proj(Proj::Gate, i, h)?,
                    up_proj: proj(Proj::Up, i, h)?,
                    down_proj: proj(Proj::Down, h, i)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Engine {
            embed_scales: sku.scales(Matrix::Embed)?,
            lm_head: linear(Matrix::LmHead, cfg.vocab, h, false)?,
            exp2: sku.u32s(SectionId::Exp2)?,
            sigmoid: sku.u32s(SectionId::Sigmoid)?,
            rope: sku.i32s(SectionId::Rope)?,
            layers,
            cfg,
            sku,
            backend,
            threads: None,
            #[cfg(feature = "fault-injection")]
            fault: None,
        })
    }

    /// A new engine computing exactly as this one does (same SKU, backend and threads, and in
    /// the fault-injection build the same fault): what a worker's dispute defender replays, so
    /// that its openings agree with the trace it committed to, wrong or not.
    pub fn replica(&self) -> Result<Self> {
        #[allow(unused_mut)]
        let mut e = Engine::new(self.sku.clone(), self.backend)?;
        e.threads = self.threads;
        #[cfg(feature = "fault-injection")]
        {
            e.fault = self.fault;
        }
        Ok(e)
    }

    /// Runs on a dedicated pool of `threads` threads (results do not depend on it).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    /// The same engine computing with `fault` (tests of the fraud path only).
    #[cfg(feature = "fault-injection")]
    pub fn with_fault(mut self, fault: crate::fault::Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    /// The SKU.
    pub fn sku(&self) -> &Arc<Sku> {
        &self.sku
    }

    /// The GEMM backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The program of a shard on this SKU.
    pub fn program(&self, shard: &Shard) -> Program {
        shard.program(self.cfg.layers)
    }

    /// Where rows sit in their tensors' Merkle trees on this SKU (docs/ARITHMETIC.md §5).
    pub fn addresses(&self) -> RowAddresses {
        RowAddresses::new(&self.cfg)
    }

    /// Token address of position `pos` of prompt `prompt`: `prompt · max_seq + pos`.
    pub fn token_address(&self, prompt: usize, pos: usize) -> u64 {
        self.addresses().token(prompt, pos)
    }

    /// Checks a shard against the SKU (token ids, lengths).
    pub fn check_shard(&self, shard: &Shard) -> Result<()> {
        if shard.prompts.is_empty() {
            return Err(ProverError::Shard("no prompts".into()));
        }
        if shard.max_new_tokens == 0 {
            return Err(ProverError::Shard(
                "max_new_tokens must be at least 1".into(),
            ));
        }
        if !self.addresses().fits(shard.prompts.len()) {
            return Err(ProverError::Shard(format!(
                "{} prompts overflow the 64-bit row addresses",
                shard.prompts.len()
            )));
        }
        for (i, p) in shard.prompts.iter().enumerate() {
            if p.is_empty() {
                return Err(ProverError::Shard(format!("prompt {i} is empty")));
            }
            if let Some(t) = p.iter().find(|&&t| t as usize >= self.cfg.vocab) {
                return Err(ProverError::Shard(format!(
                    "prompt {i} has token id {t} ≥ vocabulary {}",
                    self.cfg.vocab
                )));
            }
            if p.len() + shard.max_new_tokens > self.cfg.max_seq {
                return Err(ProverError::Shard(format!(
                    "prompt {i}: {} tokens + {} new exceed the SKU's max_seq {}",
                    p.len(),
                    shard.max_new_tokens,
                    self.cfg.max_seq
                )));
            }
        }
        Ok(())
    }

    /// Runs a shard: prefill, greedy decode, every step committed.
    pub fn run(&self, shard: &Shard) -> Result<RunOutput> {
        let none = BTreeSet::new();
        let (out, _) = self.execute(shard, &none, None)?;
        out.ok_or_else(|| ProverError::Shard("run stopped early".into()))
    }

    /// Recomputes step `step` of the shard by replaying the run up to it, returning its inputs,
    /// output, the SKU sections it reads and the trace proofs of its transition.
    pub fn reproduce_step(&self, shard: &Shard, step: u64) -> Result<StepOpening> {
        let program = self.program(shard);
        let info = program.step(step)?;
        let inputs = program.inputs(step)?;
        let mut capture: BTreeSet<u64> = inputs.iter().copied().collect();
        capture.insert(step);
        let (_, (trace, mut captured)) = self.execute(shard, &capture, Some(step))?;
        let mut take = |s: u64| -> Result<TensorOpening> {
            let (t, a) = captured
                .remove(&s)
                .unwrap_or_else(|| (Tensor::empty(), Vec::new()));
            TensorOpening::new(s, t, a)
        };
        let output = take(step)?;
        let inputs = inputs
            .into_iter()
            .map(&mut take)
            .collect::<Result<Vec<_>>>()?;
        let pre = step.checked_sub(1);
        Ok(StepOpening {
            info,
            inputs,
            output,
            weights: program.weights(step, self.cfg.qkv_bias)?,
            pre_state_root: trace.state_root(pre)?,
            post_state_root: trace.state_root(Some(step))?,
            state_proof_pre: trace.proof(step, pre)?,
            state_proof_post: trace.proof(step, Some(step))?,
        })
    }

    /// Runs the shard once and keeps the output tensors of `steps`: an auditor that reads many
    /// steps gets them from one run instead of one replay each.
    pub fn run_capturing(
        &self,
        shard: &Shard,
        steps: &BTreeSet<u64>,
    ) -> Result<(RunOutput, HashMap<u64, TensorOpening>)> {
        let (out, (_, captured)) = self.execute(shard, steps, None)?;
        let out = out.ok_or_else(|| ProverError::Shard("run stopped early".into()))?;
        let mut tensors = HashMap::with_capacity(captured.len());
        for (step, (t, addresses)) in captured {
            tensors.insert(step, TensorOpening::new(step, t, addresses)?);
        }
        Ok((out, tensors))
    }

    #[allow(clippy::type_complexity)]
    fn execute(
        &self,
        shard: &Shard,
        capture: &BTreeSet<u64>,
        stop_after: Option<u64>,
    ) -> Result<(Option<RunOutput>, (TraceState, Captured))> {
        match self.threads {
            Some(n) => {
                verinfer_gpu::with_threads(n, || self.execute_inner(shard, capture, stop_after))
                    .map_err(gemm_err("thread pool"))?
            }
            None => self.execute_inner(shard, capture, stop_after),
        }
    }

    #[allow(clippy::type_complexity)]
    fn execute_inner(
        &self,
        shard: &Shard,
        capture: &BTreeSet<u64>,
        stop_after: Option<u64>,
    ) -> Result<(Option<RunOutput>, (TraceState, Captured))> {
        self.check_shard(shard)?;
        let program = self.program(shard);
        let mut sink = Sink {
            trace: TraceState::new(program.step_count()),
            capture,
            captured: HashMap::new(),
            stop_after,
            hash_secs: 0.0,
        };
        let n = shard.prompts.len();
        let mut caches: Vec<Vec<KvCache>> = (0..n)
            .map(|_| {
                (0..self.cfg.layers)
                    .map(|_| KvCache {
                        k: Vec::new(),
                        v: Vec::new(),
                    })
                    .collect()
            })
            .collect();
        let mut generated: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut active = vec![true; n];
        let mut stats = RunStats::default();
        let mut gemm_secs = 0.0;
        for round in 0..program.rounds {
            let t_round = Instant::now();
            let mut rows = Vec::new();
            let mut logit_rows = Vec::new();
            for p in 0..n {
                if !active[p] {
                    continue;
                }
                if round == 0 {
                    for (pos, &token) in shard.prompts[p].iter().enumerate() {
                        rows.push(RowRef {
                            prompt: p,
                            pos,
                            token,
                        });
                    }
                } else {
                    let token = *generated[p].last().unwrap_or(&0);
                    rows.push(RowRef {
                        prompt: p,
                        pos: shard.prompts[p].len() + round - 1,
                        token,
                    });
                }
                logit_rows.push(rows.len() - 1);
            }
            let base = program.step_id(round, StepKind::Embed);
            if rows.is_empty() {
                // Every prompt has stopped: the remaining steps of the program have no rows.
                for s in base..base + program.steps_per_round() {
                    if sink.commit(s, TensorView::Tokens(&[]), &[])? {
                        return Ok((None, (sink.trace, sink.captured)));
                    }
                }
                continue;
            }
            let tokens = self.round(
                round,
                &program,
                &rows,
                &logit_rows,
                &mut caches,
                &mut sink,
                &mut gemm_secs,
            )?;
            let Some(tokens) = tokens else {
                return Ok((None, (sink.trace, sink.captured)));
            };
            for (&ri, &tok) in logit_rows.iter().zip(&tokens) {
                let p = rows[ri].prompt;
                generated[p].push(tok);
                if self.cfg.eos_ids.contains(&tok) || generated[p].len() >= shard.max_new_tokens {
                    active[p] = false;
                }
            }
            let secs = t_round.elapsed().as_secs_f64();
            if round == 0 {
                stats.prefill_hash_secs = sink.hash_secs;
                stats.prefill_gemm_secs = gemm_secs;
                stats.prefill_secs += secs;
                stats.prefill_tokens += rows.len();
            } else {
                stats.decode_secs += secs;
                stats.decode_tokens += rows.len();
            }
        }
        stats.hash_secs = sink.hash_secs;
        stats.gemm_secs = gemm_secs;
        let output_root = outputs_root(&generated);
        let tokens_processed = shard.prompts.iter().map(|p| p.len() as u64).sum::<u64>()
            + generated.iter().map(|g| g.len() as u64).sum::<u64>();
        let out = RunOutput {
            generated,
            trace: sink.trace.clone(),
            input_root: shard.input_root(),
            output_root,
            tokens_processed,
            stats,
        };
        Ok((Some(out), (sink.trace, sink.captured)))
    }

    fn gemm(&self, what: &str, x: &[i8], t: usize, w: &Linear, secs: &mut f64) -> Result<Vec<i32>> {
        let t0 = Instant::now();
        let y = gemm_i8(self.backend, x, t, &w.packed).map_err(gemm_err(what))?;
        *secs += t0.elapsed().as_secs_f64();
        Ok(y)
    }

    fn rope_row(&self, pos: usize) -> (&[i32], &[i32]) {
        let d = self.cfg.head_dim;
        let row = &self.rope[pos * d..(pos + 1) * d];
        row.split_at(d / 2)
    }

    /// One round: `embed_tokens`, the decoder layers, then the logits of the rows that produce
    /// a token. Returns the argmax tokens of the logits rows, or `None` when the sink asked to
    /// stop.
    #[allow(clippy::too_many_arguments)]
    fn round(
        &self,
        round: usize,
        program: &Program,
        rows: &[RowRef],
        logit_rows: &[usize],
        caches: &mut [Vec<KvCache>],
        sink: &mut Sink<'_>,
        gemm_secs: &mut f64,
    ) -> Result<Option<Vec<u32>>> {
        let (hq, hkv) = (self.cfg.heads, self.cfg.kv_heads);
        // Leaf indices of this round's rows (spec v2): rows are in shard order, then position
        // order, so each list is strictly increasing.
        let at = self.addresses();
        let token_addr: Vec<u64> = rows.iter().map(|r| at.token(r.prompt, r.pos)).collect();
        let query_addr: Vec<u64> = rows
            .iter()
            .flat_map(|r| (0..hq).map(move |hh| at.query_head(r.prompt, r.pos, hh)))
            .collect();
        let kv_addr: Vec<u64> = rows
            .iter()
            .flat_map(|r| (0..hkv).map(move |g| at.kv_head(r.prompt, r.pos, g)))
            .collect();
        let logit_addr: Vec<u64> = logit_rows.iter().map(|&i| token_addr[i]).collect();
        let mut ctx = RoundCtx {
            round,
            program,
            rows,
            token_addr,
            query_addr,
            kv_addr,
            logit_addr,
            sink,
            gemm_secs,
        };
        let Some(mut hidden_states) = self.embed(&mut ctx)? else {
            return Ok(None);
        };
        for (l, layer) in self.layers.iter().enumerate() {
            let Some(next) = self.decoder_layer(l, layer, hidden_states, caches, &mut ctx)? else {
                return Ok(None);
            };
            hidden_states = next;
        }
        self.logits(&hidden_states, logit_rows, &mut ctx)
    }

    /// `embed_tokens`: each row's int8 embedding dequantized into the residual stream (Q16).
    fn embed(&self, ctx: &mut RoundCtx<'_, '_>) -> Result<Option<Vec<i32>>> {
        let h = self.cfg.hidden;
        let embed_tokens = self.sku.weights(Matrix::Embed)?;
        let hidden_states: Vec<i32> = ctx
            .rows
            .par_iter()
            .flat_map_iter(|r| {
                let id = r.token as usize;
                arith::embed_row(&embed_tokens[id * h..(id + 1) * h], self.embed_scales[id])
            })
            .collect();
        let view = TensorView::I32 {
            cols: h,
            data: &hidden_states,
        };
        commit!(ctx, StepKind::Embed, view, Rows::Token);
        Ok(Some(hidden_states))
    }

    /// One decoder layer, as HF's `DecoderLayer::forward`: pre-norm attention with a residual
    /// add, then pre-norm MLP with a residual add. Every intermediate is committed in program
    /// order (`LayerOp`).
    fn decoder_layer(
        &self,
        l: usize,
        layer: &DecoderLayer,
        hidden_states: Vec<i32>,
        caches: &mut [Vec<KvCache>],
        ctx: &mut RoundCtx<'_, '_>,
    ) -> Result<Option<Vec<i32>>> {
        let (h, eps) = (self.cfg.hidden, self.cfg.eps_q32);
        let op = |op: LayerOp| StepKind::Layer { layer: l, op };

        let residual = hidden_states;
        let normed = rmsnorm_rows(&residual, h, eps);
        commit!(ctx, op(LayerOp::AttnNorm), normed.view(h), Rows::Token);
        let Some(attn_output) = self.attention(l, layer, &normed, caches, ctx)? else {
            return Ok(None);
        };
        let hidden_states = residual_add(&residual, &attn_output, h);
        let view = TensorView::I32 {
            cols: h,
            data: &hidden_states,
        };
        commit!(ctx, op(LayerOp::AttnResidual), view, Rows::Token);

        let residual = hidden_states;
        let normed = rmsnorm_rows(&residual, h, eps);
        commit!(ctx, op(LayerOp::FfnNorm), normed.view(h), Rows::Token);
        let Some(mlp_output) = self.mlp(l, layer, &normed, ctx)? else {
            return Ok(None);
        };
        let hidden_states = residual_add(&residual, &mlp_output, h);
        let view = TensorView::I32 {
            cols: h,
            data: &hidden_states,
        };
        commit!(ctx, op(LayerOp::FfnResidual), view, Rows::Token);
        Ok(Some(hidden_states))
    }

    /// Self-attention of layer `l` on the normalized rows `x`: q/k/v projections, RoPE, the
    /// KV cache, scores, softmax, the weighted values, and `o_proj`. Returns `o_proj`'s
    /// accumulators for the residual add.
    fn attention<'w>(
        &self,
        l: usize,
        layer: &'w DecoderLayer,
        x: &QRows,
        caches: &mut [Vec<KvCache>],
        ctx: &mut RoundCtx<'_, '_>,
    ) -> Result<Option<Projected<'w>>> {
        let c = &self.cfg;
        let (h, d, hq, hkv) = (c.hidden, c.head_dim, c.heads, c.kv_heads);
        let (q_dim, kv_dim) = (c.q_dim(), c.kv_dim());
        let group = hq / hkv;
        let rows = ctx.rows;
        let t = rows.len();
        let op = |op: LayerOp| StepKind::Layer { layer: l, op };

        let query_states = self.gemm("q_proj", &x.values, t, &layer.q_proj, ctx.gemm_secs)?;
        commit!(
            ctx,
            op(LayerOp::Q),
            i32_rows(q_dim, &query_states),
            Rows::Token
        );
        let key_states = self.gemm("k_proj", &x.values, t, &layer.k_proj, ctx.gemm_secs)?;
        commit!(
            ctx,
            op(LayerOp::K),
            i32_rows(kv_dim, &key_states),
            Rows::Token
        );
        let value_states = self.gemm("v_proj", &x.values, t, &layer.v_proj, ctx.gemm_secs)?;
        commit!(
            ctx,
            op(LayerOp::V),
            i32_rows(kv_dim, &value_states),
            Rows::Token
        );

        // apply_rotary_pos_emb, one row per (token, query head): int8 queries with a scale.
        let query_states = QRows::from_rows(
            (0..t * hq)
                .into_par_iter()
                .map(|rh| {
                    let (ti, hh) = (rh / hq, rh % hq);
                    let (cos, sin) = self.rope_row(rows[ti].pos);
                    let o = ti * q_dim + hh * d;
                    let (scales, bias) = layer.q_proj.head(hh * d, d);
                    arith::rope_q_row(
                        &query_states[o..o + d],
                        scales,
                        bias,
                        x.scales[ti],
                        cos,
                        sin,
                    )
                })
                .collect(),
        );
        commit!(
            ctx,
            op(LayerOp::RopeQ),
            query_states.view(d),
            Rows::QueryHead
        );
        // Keys get RoPE, values only dequantization; one row per (token, kv head), Q16.
        let key_states = self.kv_rows(&key_states, &layer.k_proj, &x.scales, rows, true);
        commit!(
            ctx,
            op(LayerOp::RopeK),
            i32_rows(d, &key_states),
            Rows::KvHead
        );
        let value_states = self.kv_rows(&value_states, &layer.v_proj, &x.scales, rows, false);
        commit!(
            ctx,
            op(LayerOp::Value),
            i32_rows(d, &value_states),
            Rows::KvHead
        );
        for (ti, r) in rows.iter().enumerate() {
            let cache = &mut caches[r.prompt][l];
            debug_assert_eq!(cache.k.len(), r.pos);
            let span = ti * kv_dim..(ti + 1) * kv_dim;
            cache.k.push(key_states[span.clone()].to_vec());
            cache.v.push(value_states[span].to_vec());
        }

        // Scores of each (token, query head) over positions 0..=pos of its own prompt, with
        // the key of its kv group (GQA).
        let caches: &[Vec<KvCache>] = caches;
        let attn_scores: Vec<Vec<i64>> = (0..t * hq)
            .into_par_iter()
            .map(|rh| {
                let (ti, hh) = (rh / hq, rh % hq);
                let r = rows[ti];
                let g = hh / group;
                let q = &query_states.values[rh * d..(rh + 1) * d];
                let cache = &caches[r.prompt][l];
                (0..=r.pos)
                    .map(|u| arith::score_element(q, &cache.k[u][g * d..(g + 1) * d]))
                    .collect()
            })
            .collect();
        commit!(
            ctx,
            op(LayerOp::Scores),
            TensorView::Scores(&attn_scores),
            Rows::QueryHead
        );
        let attn_weights: Vec<(Vec<i32>, i64)> = attn_scores
            .par_iter()
            .enumerate()
            .map(|(rh, s)| arith::softmax_row(s, query_states.scales[rh], c.softmax_c, &self.exp2))
            .collect();
        commit!(
            ctx,
            op(LayerOp::Softmax),
            TensorView::Probs(&attn_weights),
            Rows::QueryHead
        );
        let attn_output: Vec<i32> = attn_weights
            .par_iter()
            .enumerate()
            .flat_map_iter(|(rh, (p, ap))| {
                let (ti, hh) = (rh / hq, rh % hq);
                let r = rows[ti];
                let g = hh / group;
                let cache = &caches[r.prompt][l];
                let values: Vec<&[i32]> = (0..=r.pos)
                    .map(|u| &cache.v[u][g * d..(g + 1) * d])
                    .collect();
                arith::pv_row(p, *ap, &values)
            })
            .collect();
        commit!(
            ctx,
            op(LayerOp::Pv),
            i32_rows(d, &attn_output),
            Rows::QueryHead
        );

        // The heads of a token side by side (HF's reshape to q_dim), quantized for o_proj.
        let attn_output = quantize_rows(&attn_output, q_dim);
        commit!(
            ctx,
            op(LayerOp::AttnOut),
            attn_output.view(q_dim),
            Rows::Token
        );
        let o = self.gemm(
            "o_proj",
            &attn_output.values,
            t,
            &layer.o_proj,
            ctx.gemm_secs,
        )?;
        commit!(ctx, op(LayerOp::O), i32_rows(h, &o), Rows::Token);
        Ok(Some(Projected {
            acc: o,
            x_scales: attn_output.scales,
            proj: &layer.o_proj,
        }))
    }

    /// Key (`rope`) or value rows of one projection's accumulators: one row per (token, kv
    /// head), dequantized with the head's scales and bias.
    fn kv_rows(
        &self,
        acc: &[i32],
        w: &Linear,
        x_scales: &[i64],
        rows: &[RowRef],
        rope: bool,
    ) -> Vec<i32> {
        let (d, hkv, kv_dim) = (self.cfg.head_dim, self.cfg.kv_heads, self.cfg.kv_dim());
        (0..rows.len() * hkv)
            .into_par_iter()
            .flat_map_iter(|rg| {
                let (ti, g) = (rg / hkv, rg % hkv);
                let o = ti * kv_dim + g * d;
                let (scales, bias) = w.head(g * d, d);
                if rope {
                    let (cos, sin) = self.rope_row(rows[ti].pos);
                    arith::rope_k_row(&acc[o..o + d], scales, bias, x_scales[ti], cos, sin)
                } else {
                    arith::v_row(&acc[o..o + d], scales, bias, x_scales[ti])
                }
            })
            .collect()
    }

    /// The MLP of layer `l` on the normalized rows `x`: `down_proj(silu(gate_proj(x)) ·
    /// up_proj(x))`. Returns `down_proj`'s accumulators for the residual add.
    fn mlp<'w>(
        &self,
        l: usize,
        layer: &'w DecoderLayer,
        x: &QRows,
        ctx: &mut RoundCtx<'_, '_>,
    ) -> Result<Option<Projected<'w>>> {
        let (h, i) = (self.cfg.hidden, self.cfg.intermediate);
        let t = ctx.rows.len();
        let op = |op: LayerOp| StepKind::Layer { layer: l, op };

        #[allow(unused_mut)]
        let mut gate = self.gemm("gate_proj", &x.values, t, &layer.gate_proj, ctx.gemm_secs)?;
        #[cfg(feature = "fault-injection")]
        if let Some(f) = self.fault {
            f.on_gemm(l, "gate_proj", &mut gate);
        }
        commit!(ctx, op(LayerOp::Gate), i32_rows(i, &gate), Rows::Token);
        let up = self.gemm("up_proj", &x.values, t, &layer.up_proj, ctx.gemm_secs)?;
        commit!(ctx, op(LayerOp::Up), i32_rows(i, &up), Rows::Token);
        let act = QRows::from_rows(
            (0..t)
                .into_par_iter()
                .map(|ti| {
                    let r = ti * i..(ti + 1) * i;
                    arith::silu_mul_row(
                        &gate[r.clone()],
                        &up[r],
                        &layer.gate_proj.scales,
                        &layer.up_proj.scales,
                        x.scales[ti],
                        &self.sigmoid,
                    )
                })
                .collect(),
        );
        commit!(ctx, op(LayerOp::SiluMul), act.view(i), Rows::Token);
        let down = self.gemm("down_proj", &act.values, t, &layer.down_proj, ctx.gemm_secs)?;
        commit!(ctx, op(LayerOp::Down), i32_rows(h, &down), Rows::Token);
        Ok(Some(Projected {
            acc: down,
            x_scales: act.scales,
            proj: &layer.down_proj,
        }))
    }

    /// `norm`, `lm_head` and the greedy argmax on the rows that produce a token (only the last
    /// prompt position in round 0).
    fn logits(
        &self,
        hidden_states: &[i32],
        logit_rows: &[usize],
        ctx: &mut RoundCtx<'_, '_>,
    ) -> Result<Option<Vec<u32>>> {
        let c = &self.cfg;
        let (h, v) = (c.hidden, c.vocab);
        let last: Vec<i32> = logit_rows
            .iter()
            .flat_map(|&r| hidden_states[r * h..(r + 1) * h].iter().copied())
            .collect();
        let normed = rmsnorm_rows(&last, h, c.eps_q32);
        commit!(ctx, StepKind::FinalNorm, normed.view(h), Rows::Logits);
        let n = logit_rows.len();
        let logits = self.gemm("lm_head", &normed.values, n, &self.lm_head, ctx.gemm_secs)?;
        let tokens: Vec<u32> = (0..n)
            .into_par_iter()
            .map(|b| {
                arith::argmax_row(
                    &logits[b * v..(b + 1) * v],
                    &self.lm_head.scales,
                    c.valid_vocab,
                )
                .unwrap_or(0)
            })
            .collect();
        let view = TensorView::I32 {
            cols: v,
            data: &logits,
        };
        commit!(ctx, StepKind::LmHead, view, Rows::Logits);
        commit!(
            ctx,
            StepKind::Argmax,
            TensorView::Tokens(&tokens),
            Rows::Logits
        );
        Ok(Some(tokens))
    }

    /// The integer logits of the last prompt token of each prompt after the prefill, dequantized
    /// to `f64` for accuracy reports (not a committed value): `y_j · Sw_j · S / 2^63`.
    pub fn prefill_logits(&self, shard: &Shard) -> Result<Vec<Vec<f64>>> {
        let program = self.program(shard);
        let lm = program.step_id(0, StepKind::LmHead);
        let norm = program.step_id(0, StepKind::FinalNorm);
        let capture: BTreeSet<u64> = [lm, norm].into_iter().collect();
        let (_, (_, captured)) = self.execute(shard, &capture, Some(lm))?;
        let (Some((Tensor::I32 { cols, data }, _)), Some((Tensor::Q { scales, .. }, _))) =
            (captured.get(&lm), captured.get(&norm))
        else {
            return Err(ProverError::Shard("prefill produced no logits".into()));
        };
        Ok(data
            .chunks(*cols)
            .zip(scales)
            .map(|(row, &s)| {
                row.iter()
                    .zip(&self.lm_head.scales)
                    .map(|(&y, &w)| y as f64 * w as f64 * s as f64 / 2f64.powi(63))
                    .collect()
            })
            .collect())
    }
}

/// `i32` rows of `cols` elements, as committed.
fn i32_rows(cols: usize, data: &[i32]) -> TensorView<'_> {
    TensorView::I32 { cols, data }
}

fn rmsnorm_rows(x: &[i32], cols: usize, eps_q32: u64) -> QRows {
    QRows::from_rows(
        x.par_chunks(cols)
            .map(|r| arith::rmsnorm_quant_row(r, eps_q32))
            .collect(),
    )
}

fn quantize_rows(x: &[i32], cols: usize) -> QRows {
    QRows::from_rows(x.par_chunks(cols).map(arith::quantize_row).collect())
}

/// `residual + proj(x)`: each row's accumulators dequantized into the residual stream.
fn residual_add(residual: &[i32], p: &Projected<'_>, cols: usize) -> Vec<i32> {
    residual
        .par_chunks(cols)
        .zip(p.acc.par_chunks(cols))
        .zip(p.x_scales.par_iter())
        .flat_map_iter(|((hr, yr), &sx)| arith::residual_row(hr, yr, &p.proj.scales, sx))
        .collect()
}
