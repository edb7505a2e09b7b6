//! The deterministic integer engine: batched prefill + greedy decode with a KV cache, every step
//! committed (docs/ENGINE.md). All arithmetic is `verinfer_primitives::arith`; GEMMs run on any
//! `verinfer_gpu::Backend` (all bit-identical).

use crate::error::{ProverError, Result};
use crate::program::{LayerOp, Program, RowAddresses, StepInfo, StepKind};
use crate::sku::{Sku, SkuConfig};
use crate::tensor::Tensor;
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

struct Linear {
    packed: PackedWeights,
    scales: Vec<u32>,
    bias: Option<Vec<i32>>,
}

struct Layer {
    m: HashMap<&'static str, Linear>,
}

impl Layer {
    fn get(&self, name: &str) -> &Linear {
        // The constructor inserts every name of LAYER_MATRICES.
        &self.m[name]
    }
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
    layers: Vec<Layer>,
    embed_scales: Vec<u32>,
    lm_head: Linear,
    exp2: Vec<u32>,
    sigmoid: Vec<u32>,
    rope: Vec<i32>,
    backend: Backend,
    threads: Option<usize>,
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
    /// Commits the next step's output, row `i` at leaf `addresses[i]`. Returns true when the
    /// run should stop.
    fn commit(&mut self, step: u64, t: Tensor, addresses: &[u64]) -> Result<bool> {
        debug_assert_eq!(step, self.trace.output_roots().len() as u64);
        let t0 = Instant::now();
        let root = t.root(addresses)?;
        self.hash_secs += t0.elapsed().as_secs_f64();
        self.trace.push(root)?;
        if self.capture.contains(&step) {
            self.captured.insert(step, (t, addresses.to_vec()));
        }
        Ok(self.stop_after == Some(step))
    }
}

impl Engine {
    /// Prepares the engine: packs every matrix once for the GEMM backend and reads the tables.
    pub fn new(sku: Arc<Sku>, backend: Backend) -> Result<Self> {
        let cfg = sku.config().clone();
        let lin = |name: &str, n: usize, k: usize, bias: bool| -> Result<Linear> {
            let w = sku.matrix(name)?;
            let packed = PackedWeights::pack(w, n, k).map_err(gemm_err(name))?;
            let scales = sku.vec_u32(&format!("{name}.s"))?;
            let bias = if bias {
                Some(sku.vec_i32(&format!("{name}.b"))?)
            } else {
                None
            };
            Ok(Linear {
                packed,
                scales,
                bias,
            })
        };
        let (h, i, q, kv) = (cfg.hidden, cfg.intermediate, cfg.q_dim(), cfg.kv_dim());
        let mut layers = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let p = |m: &str| format!("layers.{l}.{m}");
            let mut m = HashMap::new();
            m.insert("q", lin(&p("q"), q, h, cfg.qkv_bias)?);
            m.insert("k", lin(&p("k"), kv, h, cfg.qkv_bias)?);
            m.insert("v", lin(&p("v"), kv, h, cfg.qkv_bias)?);
            m.insert("o", lin(&p("o"), h, q, false)?);
            m.insert("gate", lin(&p("gate"), i, h, false)?);
            m.insert("up", lin(&p("up"), i, h, false)?);
            m.insert("down", lin(&p("down"), h, i, false)?);
            layers.push(Layer { m });
        }
        Ok(Engine {
            embed_scales: sku.vec_u32("embed.s")?,
            lm_head: lin("lm_head", cfg.vocab, h, false)?,
            exp2: sku.vec_u32("exp2")?,
            sigmoid: sku.vec_u32("sigmoid")?,
            rope: sku.vec_i32("rope")?,
            layers,
            cfg,
            sku,
            backend,
            threads: None,
        })
    }

    /// Runs on a dedicated pool of `threads` threads (results do not depend on it).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
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
                    if sink.commit(s, Tensor::empty(), &[])? {
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

    /// One round. Returns the argmax tokens of the logits rows, or `None` when the sink asked
    /// to stop.
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
        let c = &self.cfg;
        let (h, d, hq, hkv) = (c.hidden, c.head_dim, c.heads, c.kv_heads);
        let group = hq / hkv;
        let t = rows.len();
        // Leaf indices of this round's rows (spec v2): rows are in shard order, then position
        // order, so each list is strictly increasing.
        let at = self.addresses();
        let tok_addr: Vec<u64> = rows.iter().map(|r| at.token(r.prompt, r.pos)).collect();
        let q_addr: Vec<u64> = rows
            .iter()
            .flat_map(|r| (0..hq).map(move |hh| at.query_head(r.prompt, r.pos, hh)))
            .collect();
        let kv_addr: Vec<u64> = rows
            .iter()
            .flat_map(|r| (0..hkv).map(move |g| at.kv_head(r.prompt, r.pos, g)))
            .collect();
        let logit_addr: Vec<u64> = logit_rows.iter().map(|&i| tok_addr[i]).collect();
        macro_rules! commit {
            ($kind:expr, $tensor:expr) => {
                commit!($kind, $tensor, &tok_addr)
            };
            ($kind:expr, $tensor:expr, $addr:expr) => {
                if sink.commit(program.step_id(round, $kind), $tensor, $addr)? {
                    return Ok(None);
                }
            };
        }
        // embed
        let embed_w = self.sku.matrix("embed")?;
        let mut resid: Vec<i32> = rows
            .par_iter()
            .flat_map_iter(|r| {
                let id = r.token as usize;
                arith::embed_row(&embed_w[id * h..(id + 1) * h], self.embed_scales[id])
            })
            .collect();
        commit!(
            StepKind::Embed,
            Tensor::I32 {
                cols: h,
                data: resid.clone()
            }
        );

        for (l, lw) in self.layers.iter().enumerate() {
            let step = |op: LayerOp| StepKind::Layer { layer: l, op };
            // attention norm
            let (xq, xs) = rmsnorm_rows(&resid, h, c.eps_q32);
            commit!(
                step(LayerOp::AttnNorm),
                Tensor::Q {
                    cols: h,
                    values: xq.clone(),
                    scales: xs.clone()
                }
            );
            let yq = self.gemm("q_proj", &xq, t, lw.get("q"), gemm_secs)?;
            commit!(
                step(LayerOp::Q),
                Tensor::I32 {
                    cols: c.q_dim(),
                    data: yq.clone()
                }
            );
            let yk = self.gemm("k_proj", &xq, t, lw.get("k"), gemm_secs)?;
            commit!(
                step(LayerOp::K),
                Tensor::I32 {
                    cols: c.kv_dim(),
                    data: yk.clone()
                }
            );
            let yv = self.gemm("v_proj", &xq, t, lw.get("v"), gemm_secs)?;
            commit!(
                step(LayerOp::V),
                Tensor::I32 {
                    cols: c.kv_dim(),
                    data: yv.clone()
                }
            );

            // rope_q: rows (t, head)
            let wq = lw.get("q");
            let qrows: Vec<(Vec<i8>, i64)> = (0..t * hq)
                .into_par_iter()
                .map(|rh| {
                    let (ti, hh) = (rh / hq, rh % hq);
                    let (cos, sin) = self.rope_row(rows[ti].pos);
                    let o = ti * c.q_dim() + hh * d;
                    let cs = hh * d;
                    arith::rope_q_row(
                        &yq[o..o + d],
                        &wq.scales[cs..cs + d],
                        wq.bias.as_ref().map(|b| &b[cs..cs + d]),
                        xs[ti],
                        cos,
                        sin,
                    )
                })
                .collect();
            let q_vals: Vec<i8> = qrows.iter().flat_map(|(v, _)| v.iter().copied()).collect();
            let q_scales: Vec<i64> = qrows.iter().map(|(_, s)| *s).collect();
            commit!(
                step(LayerOp::RopeQ),
                Tensor::Q {
                    cols: d,
                    values: q_vals.clone(),
                    scales: q_scales.clone()
                },
                &q_addr
            );

            // rope_k and value: rows (t, kv head)
            let (wk, wv) = (lw.get("k"), lw.get("v"));
            let kvrow = |y: &[i32], w: &Linear, rope: bool| -> Vec<i32> {
                (0..t * hkv)
                    .into_par_iter()
                    .flat_map_iter(|rg| {
                        let (ti, g) = (rg / hkv, rg % hkv);
                        let o = ti * c.kv_dim() + g * d;
                        let cs = g * d;
                        let bias = w.bias.as_ref().map(|b| &b[cs..cs + d]);
                        if rope {
                            let (cos, sin) = self.rope_row(rows[ti].pos);
                            arith::rope_k_row(
                                &y[o..o + d],
                                &w.scales[cs..cs + d],
                                bias,
                                xs[ti],
                                cos,
                                sin,
                            )
                        } else {
                            arith::v_row(&y[o..o + d], &w.scales[cs..cs + d], bias, xs[ti])
                        }
                    })
                    .collect()
            };
            let kr = kvrow(&yk, wk, true);
            commit!(
                step(LayerOp::RopeK),
                Tensor::I32 {
                    cols: d,
                    data: kr.clone()
                },
                &kv_addr
            );
            let vr = kvrow(&yv, wv, false);
            commit!(
                step(LayerOp::Value),
                Tensor::I32 {
                    cols: d,
                    data: vr.clone()
                },
                &kv_addr
            );
            for (ti, r) in rows.iter().enumerate() {
                let cache = &mut caches[r.prompt][l];
                debug_assert_eq!(cache.k.len(), r.pos);
                cache
                    .k
                    .push(kr[ti * c.kv_dim()..(ti + 1) * c.kv_dim()].to_vec());
                cache
                    .v
                    .push(vr[ti * c.kv_dim()..(ti + 1) * c.kv_dim()].to_vec());
            }

            // scores: rows (t, head), over positions 0..=pos of the row's prompt
            let caches_ro: &[Vec<KvCache>] = &*caches;
            let scores: Vec<Vec<i64>> = (0..t * hq)
                .into_par_iter()
                .map(|rh| {
                    let (ti, hh) = (rh / hq, rh % hq);
                    let r = rows[ti];
                    let g = hh / group;
                    let q = &q_vals[rh * d..(rh + 1) * d];
                    let cache = &caches_ro[r.prompt][l];
                    (0..=r.pos)
                        .map(|u| arith::score_element(q, &cache.k[u][g * d..(g + 1) * d]))
                        .collect()
                })
                .collect();
            let probs: Vec<(Vec<i32>, i64)> = scores
                .par_iter()
                .enumerate()
                .map(|(rh, s)| arith::softmax_row(s, q_scales[rh], c.softmax_c, &self.exp2))
                .collect();
            commit!(step(LayerOp::Scores), Tensor::Scores(scores), &q_addr);
            let pv: Vec<i32> = probs
                .par_iter()
                .enumerate()
                .flat_map_iter(|(rh, (p, ap))| {
                    let (ti, hh) = (rh / hq, rh % hq);
                    let r = rows[ti];
                    let g = hh / group;
                    let cache = &caches_ro[r.prompt][l];
                    let vrows: Vec<&[i32]> = (0..=r.pos)
                        .map(|u| &cache.v[u][g * d..(g + 1) * d])
                        .collect();
                    arith::pv_row(p, *ap, &vrows)
                })
                .collect();
            commit!(step(LayerOp::Softmax), Tensor::Probs(probs), &q_addr);
            commit!(
                step(LayerOp::Pv),
                Tensor::I32 {
                    cols: d,
                    data: pv.clone()
                },
                &q_addr
            );

            // attention output quantization, o_proj, residual
            let qd = c.q_dim();
            let (aq, as_) = quantize_rows(&pv, qd);
            commit!(
                step(LayerOp::AttnOut),
                Tensor::Q {
                    cols: qd,
                    values: aq.clone(),
                    scales: as_.clone()
                }
            );
            let yo = self.gemm("o_proj", &aq, t, lw.get("o"), gemm_secs)?;
            commit!(
                step(LayerOp::O),
                Tensor::I32 {
                    cols: h,
                    data: yo.clone()
                }
            );
            let wo = lw.get("o");
            resid = residual_rows(&resid, &yo, &wo.scales, &as_, h);
            commit!(
                step(LayerOp::AttnResidual),
                Tensor::I32 {
                    cols: h,
                    data: resid.clone()
                }
            );

            // MLP
            let (fq, fs) = rmsnorm_rows(&resid, h, c.eps_q32);
            commit!(
                step(LayerOp::FfnNorm),
                Tensor::Q {
                    cols: h,
                    values: fq.clone(),
                    scales: fs.clone()
                }
            );
            let yg = self.gemm("gate_proj", &fq, t, lw.get("gate"), gemm_secs)?;
            commit!(
                step(LayerOp::Gate),
                Tensor::I32 {
                    cols: c.intermediate,
                    data: yg.clone()
                }
            );
            let yu = self.gemm("up_proj", &fq, t, lw.get("up"), gemm_secs)?;
            commit!(
                step(LayerOp::Up),
                Tensor::I32 {
                    cols: c.intermediate,
                    data: yu.clone()
                }
            );
            let (wg, wu) = (lw.get("gate"), lw.get("up"));
            let i = c.intermediate;
            let silu: Vec<(Vec<i8>, i64)> = (0..t)
                .into_par_iter()
                .map(|ti| {
                    let r = ti * i..(ti + 1) * i;
                    arith::silu_mul_row(
                        &yg[r.clone()],
                        &yu[r],
                        &wg.scales,
                        &wu.scales,
                        fs[ti],
                        &self.sigmoid,
                    )
                })
                .collect();
            let mq: Vec<i8> = silu.iter().flat_map(|(v, _)| v.iter().copied()).collect();
            let ms: Vec<i64> = silu.iter().map(|(_, s)| *s).collect();
            commit!(
                step(LayerOp::SiluMul),
                Tensor::Q {
                    cols: i,
                    values: mq.clone(),
                    scales: ms.clone()
                }
            );
            let yd = self.gemm("down_proj", &mq, t, lw.get("down"), gemm_secs)?;
            commit!(
                step(LayerOp::Down),
                Tensor::I32 {
                    cols: h,
                    data: yd.clone()
                }
            );
            resid = residual_rows(&resid, &yd, &lw.get("down").scales, &ms, h);
            commit!(
                step(LayerOp::FfnResidual),
                Tensor::I32 {
                    cols: h,
                    data: resid.clone()
                }
            );
        }

        // final norm on the logits rows, lm_head, argmax
        let sel: Vec<i32> = logit_rows
            .iter()
            .flat_map(|&r| resid[r * h..(r + 1) * h].iter().copied())
            .collect();
        let (nq, ns) = rmsnorm_rows(&sel, h, c.eps_q32);
        commit!(
            StepKind::FinalNorm,
            Tensor::Q {
                cols: h,
                values: nq.clone(),
                scales: ns
            },
            &logit_addr
        );
        let logits = self.gemm("lm_head", &nq, logit_rows.len(), &self.lm_head, gemm_secs)?;
        let v = c.vocab;
        let tokens: Vec<u32> = (0..logit_rows.len())
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
        commit!(
            StepKind::LmHead,
            Tensor::I32 {
                cols: v,
                data: logits
            },
            &logit_addr
        );
        commit!(
            StepKind::Argmax,
            Tensor::Tokens(tokens.clone()),
            &logit_addr
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

fn rmsnorm_rows(x: &[i32], cols: usize, eps_q32: u64) -> (Vec<i8>, Vec<i64>) {
    let rows: Vec<(Vec<i8>, i64)> = x
        .par_chunks(cols)
        .map(|r| arith::rmsnorm_quant_row(r, eps_q32))
        .collect();
    (
        rows.iter().flat_map(|(v, _)| v.iter().copied()).collect(),
        rows.iter().map(|(_, s)| *s).collect(),
    )
}

fn quantize_rows(x: &[i32], cols: usize) -> (Vec<i8>, Vec<i64>) {
    let rows: Vec<(Vec<i8>, i64)> = x.par_chunks(cols).map(arith::quantize_row).collect();
    (
        rows.iter().flat_map(|(v, _)| v.iter().copied()).collect(),
        rows.iter().map(|(_, s)| *s).collect(),
    )
}

fn residual_rows(h: &[i32], y: &[i32], sw: &[u32], s: &[i64], cols: usize) -> Vec<i32> {
    h.par_chunks(cols)
        .zip(y.par_chunks(cols))
        .zip(s.par_iter())
        .flat_map_iter(|((hr, yr), &sx)| arith::residual_row(hr, yr, sw, sx))
        .collect()
}
