//! Audits of one receipt: what to check is drawn from a seed, every fetched byte is checked
//! against the receipt's trace root, GEMMs are checked with Freivalds over F_p
//! (`verinfer_gpu::freivalds`), sampled rows of non-GEMM steps are recomputed with the integer
//! arithmetic. The result is a typed [`Verdict`]: a pass, a fraud located at (step, row, col), or
//! evidence against the worker (bad proofs, wrong shapes, silence). Nothing a source sends can
//! make an audit panic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use alloy_primitives::{keccak256, B256};
use serde::{Deserialize, Serialize};
use verinfer_gpu::freivalds::{AuditError, WeightProjection};
use verinfer_gpu::PackedWeights;
use verinfer_primitives::arith;
use verinfer_primitives::merkle::row_leaf;
use verinfer_primitives::sparse::sparse_root;
use verinfer_primitives::{MerkleProof, Receipt};
use verinfer_prover::{LayerOp, Program, RowAddresses, Shard, Sku, StepKind};

use super::source::{SourceError, StepRows, TraceSource, WholeTensor};

/// Which GEMM steps an audit checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GemmSelect {
    /// One MLP GEMM (round, layer, gate/up/down drawn from the seed).
    One,
    /// Every MLP GEMM (gate, up, down) of every layer and round: the PRD's "always MLP".
    Mlp,
    /// Every GEMM of the program (q, k, v, o, gate, up, down, lm_head).
    All,
}

/// What the watcher audits and how (its own policy until the audit protocol's on-chain seed
/// lands, issue #14).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// The watcher's secret salt: the policy seed is keccak256(batch root ‖ receipt hash ‖ salt),
    /// so a worker cannot predict what is checked.
    pub salt: B256,
    pub gemms: GemmSelect,
    /// Freivalds rounds per GEMM (each lets a wrong row through with probability ≤ 1/p).
    pub freivalds_rounds: u32,
    /// Rows recomputed per audited non-GEMM step (silu_mul, ffn_norm, ffn_residual).
    pub sampled_rows: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            salt: B256::ZERO,
            gemms: GemmSelect::Mlp,
            freivalds_rounds: 1,
            sampled_rows: 2,
        }
    }
}

/// The policy seed of one receipt.
pub fn policy_seed(batch_root: B256, receipt_hash: B256, salt: B256) -> B256 {
    let mut m = Vec::with_capacity(96);
    m.extend_from_slice(batch_root.as_slice());
    m.extend_from_slice(receipt_hash.as_slice());
    m.extend_from_slice(salt.as_slice());
    keccak256(m)
}

/// A wrong entry found by an audit: what the L1 dispute names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fraud {
    pub step: u64,
    /// Human-readable step label (`r0.l1.Gate`).
    pub label: String,
    /// The row's address in the step's tensor.
    pub row: u64,
    /// The wrong element (for a quantized row, index `cols` is its scale).
    pub col: u64,
    /// How it was found: `freivalds` or `recompute`.
    pub method: String,
}

/// Evidence that a worker's data is unusable (never the watcher's crash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Evidence {
    /// The step's output root does not open against the receipt's trace root.
    BadTraceProof { step: u64 },
    /// A row does not open against the step's output root.
    BadRowProof { step: u64, row: u64 },
    /// The rows of a whole tensor do not rebuild its output root.
    TensorRootMismatch { step: u64 },
    /// Rows missing, extra, misplaced or of the wrong length.
    WrongShape { step: u64, detail: String },
    /// The source did not answer (silence, timeout, malformed).
    Unavailable { step: u64, reason: String },
    /// The receipt cannot be this shard's (step count, input root).
    BadReceipt { detail: String },
}

/// The result of one audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Every check passed.
    Pass { gemms: usize, rows: usize },
    /// A wrong entry, located.
    Fraud(Fraud),
    /// The worker's data could not be checked.
    Evidence(Evidence),
    /// A re-execution gave another trace root than the receipt's (located by bisection).
    TraceMismatch { local: B256, claimed: B256 },
}

impl Verdict {
    /// Whether this verdict calls for a dispute on L1.
    pub fn disputes(&self) -> bool {
        matches!(self, Verdict::Fraud(_) | Verdict::TraceMismatch { .. })
    }
}

/// Audits receipts of one SKU; keeps `Wᵀ` packed per matrix and `Wᵀ·r` per (matrix, seed).
pub struct Auditor {
    sku: Arc<Sku>,
    transposed: Mutex<HashMap<String, Arc<PackedWeights>>>,
    projections: Mutex<HashMap<(String, B256), Arc<WeightProjection>>>,
}

type Checked<T> = Result<T, Verdict>;

fn ev(e: Evidence) -> Verdict {
    Verdict::Evidence(e)
}

fn unavailable(step: u64, e: SourceError) -> Verdict {
    ev(Evidence::Unavailable {
        step,
        reason: e.to_string(),
    })
}

fn shape(step: u64, detail: impl Into<String>) -> Verdict {
    ev(Evidence::WrongShape {
        step,
        detail: detail.into(),
    })
}

/// Checks `root` as leaf `step` of the trace under `receipt.traceRoot`.
fn check_trace(receipt: &Receipt, step: u64, root: B256, proof: &[B256]) -> Checked<()> {
    let p = MerkleProof {
        index: step,
        siblings: proof.to_vec(),
    };
    p.verify(receipt.traceRoot, root, receipt.stepCount)
        .map_err(|_| ev(Evidence::BadTraceProof { step }))
}

/// A whole tensor checked: its rows rebuild its root, the root opens against the trace root.
fn check_tensor(receipt: &Receipt, t: &WholeTensor, step: u64) -> Checked<()> {
    if t.step != step {
        return Err(shape(step, format!("answer is for step {}", t.step)));
    }
    check_trace(receipt, step, t.output_root, &t.trace_proof)?;
    let leaves: Vec<(u64, B256)> = t.rows.iter().map(|(a, b)| (*a, row_leaf(b))).collect();
    match sparse_root(leaves) {
        Ok(r) if r == t.output_root => Ok(()),
        Ok(_) => Err(ev(Evidence::TensorRootMismatch { step })),
        Err(e) => Err(shape(step, e.to_string())),
    }
}

/// Rows checked: each opens against the output root, which opens against the trace root, and
/// they are exactly the rows asked for.
fn check_rows(receipt: &Receipt, r: &StepRows, step: u64, asked: &[u64]) -> Checked<()> {
    if r.step != step || r.rows.len() != asked.len() {
        return Err(shape(step, "not the rows asked for"));
    }
    check_trace(receipt, step, r.output_root, &r.trace_proof)?;
    for (row, &a) in r.rows.iter().zip(asked) {
        let depth = row.proof.len();
        let fits = depth >= 64 || a >> depth == 0;
        let leaf = if row.bytes.is_empty() {
            B256::ZERO
        } else {
            row_leaf(&row.bytes)
        };
        let p = MerkleProof {
            index: a,
            siblings: row.proof.clone(),
        };
        if row.address != a || !fits || p.compute_root(leaf) != r.output_root {
            return Err(ev(Evidence::BadRowProof { step, row: a }));
        }
    }
    Ok(())
}

/// A quantized row (int8 values then a big-endian i64 scale) of `cols` values.
fn q_row(b: &[u8], cols: usize) -> Option<(Vec<i8>, i64)> {
    if b.len() != cols + 8 {
        return None;
    }
    let scale = i64::from_be_bytes(b[cols..].try_into().ok()?);
    Some((b[..cols].iter().map(|&v| v as i8).collect(), scale))
}

/// An i32 row of `cols` elements.
fn i32_row(b: &[u8], cols: usize) -> Option<Vec<i32>> {
    if b.len() != 4 * cols {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// What one audit works on.
pub struct AuditInput<'a> {
    pub receipt: &'a Receipt,
    pub shard: &'a Shard,
    pub seed: B256,
}

/// The GEMM steps and matrices of a program selected by `policy` for `seed`.
pub fn select_gemms(program: &Program, policy: &Policy, seed: B256) -> Vec<(u64, String)> {
    let mlp = [LayerOp::Gate, LayerOp::Up, LayerOp::Down];
    let all = [
        LayerOp::Q,
        LayerOp::K,
        LayerOp::V,
        LayerOp::O,
        LayerOp::Gate,
        LayerOp::Up,
        LayerOp::Down,
    ];
    let mut out = Vec::new();
    let layer_step = |r: usize, l: usize, op: LayerOp| {
        let s = program.step_id(r, StepKind::Layer { layer: l, op });
        (s, format!("layers.{l}.{}", op.matrix().unwrap_or_default()))
    };
    match policy.gemms {
        GemmSelect::One => {
            let x = u64::from_be_bytes(seed[..8].try_into().unwrap_or_default());
            let n = (program.rounds * program.layers * 3) as u64;
            if n > 0 {
                let i = (x % n) as usize;
                out.push(layer_step(
                    i / (program.layers * 3),
                    (i / 3) % program.layers,
                    mlp[i % 3],
                ));
            }
        }
        GemmSelect::Mlp | GemmSelect::All => {
            let ops: &[LayerOp] = if policy.gemms == GemmSelect::Mlp {
                &mlp
            } else {
                &all
            };
            for r in 0..program.rounds {
                for l in 0..program.layers {
                    for &op in ops {
                        out.push(layer_step(r, l, op));
                    }
                }
                if policy.gemms == GemmSelect::All {
                    out.push((program.step_id(r, StepKind::LmHead), "lm_head".into()));
                }
            }
        }
    }
    out
}

impl Auditor {
    pub fn new(sku: Arc<Sku>) -> Self {
        Auditor {
            sku,
            transposed: Mutex::new(HashMap::new()),
            projections: Mutex::new(HashMap::new()),
        }
    }

    pub fn sku(&self) -> &Arc<Sku> {
        &self.sku
    }

    /// `(N, K)` of matrix `name`.
    fn dims(&self, name: &str) -> Result<(usize, usize), String> {
        let s = self
            .sku
            .section(&format!("{name}.w"))
            .map_err(|e| e.to_string())?;
        Ok((s.rows, s.cols))
    }

    /// `Wᵀ·r` for matrix `name` and the receipt's seed (one vector per round), cached.
    fn projection(
        &self,
        name: &str,
        seed: B256,
        rounds: u32,
    ) -> Result<Arc<WeightProjection>, String> {
        let key = (name.to_string(), seed);
        if let Some(p) = lock(&self.projections).get(&key) {
            return Ok(p.clone());
        }
        let wt = {
            let cached = lock(&self.transposed).get(name).cloned();
            match cached {
                Some(w) => w,
                None => {
                    let (n, k) = self.dims(name)?;
                    let w = self.sku.matrix(name).map_err(|e| e.to_string())?;
                    let packed = Arc::new(
                        PackedWeights::pack_transposed(w, n, k).map_err(|e| e.to_string())?,
                    );
                    lock(&self.transposed).insert(name.to_string(), packed.clone());
                    packed
                }
            }
        };
        // The matrix's own vectors: seed_m = keccak256(seed ‖ name), so two matrices of one
        // receipt never share r.
        let mut m = seed.to_vec();
        m.extend_from_slice(name.as_bytes());
        let seed_m = keccak256(m);
        let p = Arc::new(WeightProjection::new(&wt, &seed_m.0, rounds).map_err(|e| e.to_string())?);
        lock(&self.projections).insert(key, p.clone());
        Ok(p)
    }

    /// Drops the cached projections (call once a batch's audits are done).
    pub fn forget_projections(&self) {
        lock(&self.projections).clear();
    }

    /// Audits one receipt against `source` under `policy`.
    pub fn audit(
        &self,
        input: &AuditInput<'_>,
        source: &dyn TraceSource,
        policy: &Policy,
    ) -> Verdict {
        match self.audit_inner(input, source, policy) {
            Ok(v) | Err(v) => v,
        }
    }

    fn audit_inner(
        &self,
        input: &AuditInput<'_>,
        source: &dyn TraceSource,
        policy: &Policy,
    ) -> Checked<Verdict> {
        let cfg = self.sku.config();
        let program = input.shard.program(cfg.layers);
        let r = input.receipt;
        if r.stepCount != program.step_count() {
            return Err(ev(Evidence::BadReceipt {
                detail: format!(
                    "step count {} but the shard's program has {}",
                    r.stepCount,
                    program.step_count()
                ),
            }));
        }
        if r.inputRoot != input.shard.input_root() {
            return Err(ev(Evidence::BadReceipt {
                detail: "input root is not the shard's prompts".into(),
            }));
        }
        let mut fetched: HashMap<u64, WholeTensor> = HashMap::new();
        let gemms = select_gemms(&program, policy, input.seed);
        source.prefetch(&steps_read(&program, &gemms));
        let mut rows_checked = 0;
        // Every check runs; of the wrong entries found, the earliest step is the one to dispute
        // (a wrong silu_mul row also makes the down GEMM's Freivalds check fail).
        let mut frauds = Vec::new();
        let mut note = |r: Checked<usize>| -> Checked<usize> {
            match r {
                Err(Verdict::Fraud(f)) => {
                    frauds.push(f);
                    Ok(0)
                }
                other => other,
            }
        };
        for (step, matrix) in &gemms {
            note(
                self.check_gemm(input, source, policy, &program, *step, matrix, &mut fetched)
                    .map(|_| 0),
            )?;
        }
        // Non-GEMM rows of every (round, layer) whose MLP was fetched.
        let mut done = std::collections::BTreeSet::new();
        for (step, _) in &gemms {
            let info = program
                .step(*step)
                .map_err(|e| shape(*step, e.to_string()))?;
            if let StepKind::Layer { layer, .. } = info.kind {
                if done.insert((info.round, layer)) {
                    rows_checked += note(self.check_mlp_rows(
                        input,
                        source,
                        policy,
                        &program,
                        info.round,
                        layer,
                        &mut fetched,
                    ))?;
                }
            }
        }
        if let Some(f) = frauds.into_iter().min_by_key(|f| (f.step, f.row, f.col)) {
            return Ok(Verdict::Fraud(f));
        }
        Ok(Verdict::Pass {
            gemms: gemms.len(),
            rows: rows_checked,
        })
    }

    /// A whole tensor of `step`, fetched once per audit and checked.
    fn fetch<'f>(
        &self,
        input: &AuditInput<'_>,
        source: &dyn TraceSource,
        step: u64,
        fetched: &'f mut HashMap<u64, WholeTensor>,
    ) -> Checked<&'f WholeTensor> {
        match fetched.entry(step) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => {
                let t = source
                    .tensor(input.receipt, step)
                    .map_err(|err| unavailable(step, err))?;
                check_tensor(input.receipt, &t, step)?;
                Ok(e.insert(t))
            }
        }
    }

    /// The addresses a step of round `round` must have rows at: round 0 every prompt token
    /// (logits steps: each prompt's last token); later rounds a subset of one row per prompt.
    fn check_addresses(
        &self,
        input: &AuditInput<'_>,
        step: u64,
        round: usize,
        logits: bool,
        addrs: &[u64],
    ) -> Checked<()> {
        let at = RowAddresses::new(self.sku.config());
        let prompts = &input.shard.prompts;
        if round == 0 {
            let want: Vec<u64> = if logits {
                prompts
                    .iter()
                    .enumerate()
                    .map(|(p, ids)| at.token(p, ids.len().saturating_sub(1)))
                    .collect()
            } else {
                prompts
                    .iter()
                    .enumerate()
                    .flat_map(|(p, ids)| (0..ids.len()).map(move |pos| at.token(p, pos)))
                    .collect()
            };
            if want != addrs {
                return Err(shape(
                    step,
                    format!("{} rows where the prompts need {}", addrs.len(), want.len()),
                ));
            }
            return Ok(());
        }
        let allowed: Vec<u64> = prompts
            .iter()
            .enumerate()
            .map(|(p, ids)| at.token(p, ids.len() + round - 1))
            .collect();
        if let Some(a) = addrs.iter().find(|a| !allowed.contains(a)) {
            return Err(shape(step, format!("row {a} is no token of round {round}")));
        }
        Ok(())
    }

    /// Freivalds on one GEMM step: X (the input tensor's int8 values) times Wᵀ against the
    /// committed Y.
    #[allow(clippy::too_many_arguments)]
    fn check_gemm(
        &self,
        input: &AuditInput<'_>,
        source: &dyn TraceSource,
        policy: &Policy,
        program: &Program,
        step: u64,
        matrix: &str,
        fetched: &mut HashMap<u64, WholeTensor>,
    ) -> Checked<()> {
        let info = program.step(step).map_err(|e| shape(step, e.to_string()))?;
        let in_step = program
            .inputs(step)
            .ok()
            .and_then(|v| v.first().copied())
            .ok_or_else(|| shape(step, "no input step"))?;
        let (n, k) = self.dims(matrix).map_err(|e| shape(step, e))?;
        let logits = matches!(info.kind, StepKind::LmHead);
        let y_t = self.fetch(input, source, step, fetched)?.clone();
        let x_t = self.fetch(input, source, in_step, fetched)?;
        let addrs: Vec<u64> = y_t.rows.iter().map(|(a, _)| *a).collect();
        let x_addrs: Vec<u64> = x_t.rows.iter().map(|(a, _)| *a).collect();
        if addrs != x_addrs {
            return Err(shape(step, "output rows are not the input's rows"));
        }
        self.check_addresses(input, step, info.round, logits, &addrs)?;
        let t = addrs.len();
        if t == 0 {
            return Ok(());
        }
        let mut x = Vec::with_capacity(t * k);
        for (a, b) in &x_t.rows {
            let (v, _) = q_row(b, k)
                .ok_or_else(|| shape(in_step, format!("row {a} is not {k} int8 + scale")))?;
            x.extend(v);
        }
        let mut y = Vec::with_capacity(t * n);
        for (a, b) in &y_t.rows {
            y.extend(
                i32_row(b, n).ok_or_else(|| shape(step, format!("row {a} is not {n} int32")))?,
            );
        }
        let proj = self
            .projection(matrix, input.seed, policy.freivalds_rounds)
            .map_err(|e| shape(step, e))?;
        match proj.verify(&x, t, &y) {
            Ok(()) => Ok(()),
            Err(AuditError::Mismatch(m)) => {
                let i = m.rows.first().copied().unwrap_or(0);
                let col = self.wrong_column(matrix, &x[i * k..(i + 1) * k], &y[i * n..(i + 1) * n]);
                Err(Verdict::Fraud(Fraud {
                    step,
                    label: info.label(),
                    row: addrs[i],
                    col,
                    method: "freivalds".into(),
                }))
            }
            Err(e) => Err(shape(step, e.to_string())),
        }
    }

    /// One row recomputed exactly: the first wrong column.
    fn wrong_column(&self, matrix: &str, x: &[i8], y: &[i32]) -> u64 {
        let Ok(w) = self.sku.matrix(matrix) else {
            return 0;
        };
        let k = x.len().max(1);
        w.chunks(k)
            .zip(y)
            .position(|(wr, &yv)| arith::gemm_element(x, wr) != yv)
            .unwrap_or(0) as u64
    }

    /// Sampled rows of a layer's MLP non-GEMM steps recomputed: silu_mul from the gate/up
    /// outputs and the ffn_norm scale (already fetched whole), ffn_norm and ffn_residual from
    /// rows of the attention residual opened for them.
    #[allow(clippy::too_many_arguments)]
    fn check_mlp_rows(
        &self,
        input: &AuditInput<'_>,
        source: &dyn TraceSource,
        policy: &Policy,
        program: &Program,
        round: usize,
        layer: usize,
        fetched: &mut HashMap<u64, WholeTensor>,
    ) -> Checked<usize> {
        if policy.sampled_rows == 0 {
            return Ok(0);
        }
        let cfg = self.sku.config();
        let (h, i) = (cfg.hidden, cfg.intermediate);
        let id = |op| program.step_id(round, StepKind::Layer { layer, op });
        let (s_norm, s_gate, s_up, s_silu, s_down, s_res, s_attn) = (
            id(LayerOp::FfnNorm),
            id(LayerOp::Gate),
            id(LayerOp::Up),
            id(LayerOp::SiluMul),
            id(LayerOp::Down),
            id(LayerOp::FfnResidual),
            id(LayerOp::AttnResidual),
        );
        let norm = self.fetch(input, source, s_norm, fetched)?.clone();
        if norm.rows.is_empty() {
            return Ok(0);
        }
        // Rows sampled from the seed, per (round, layer).
        let n_rows = norm.rows.len();
        let mut pick: Vec<usize> = if policy.sampled_rows >= n_rows {
            (0..n_rows).collect()
        } else {
            Vec::new()
        };
        for j in 0..4 * policy.sampled_rows {
            if pick.len() >= policy.sampled_rows.min(n_rows) {
                break;
            }
            let mut m = input.seed.to_vec();
            m.extend_from_slice(&(round as u64).to_be_bytes());
            m.extend_from_slice(&(layer as u64).to_be_bytes());
            m.extend_from_slice(&(j as u64).to_be_bytes());
            let x = u64::from_be_bytes(keccak256(m)[..8].try_into().unwrap_or_default());
            let idx = (x % n_rows as u64) as usize;
            if !pick.contains(&idx) {
                pick.push(idx);
            }
        }
        pick.sort_unstable();
        let addrs: Vec<u64> = pick.iter().map(|&j| norm.rows[j].0).collect();
        let gate = self.fetch(input, source, s_gate, fetched)?.clone();
        let up = self.fetch(input, source, s_up, fetched)?.clone();
        let silu = self.fetch(input, source, s_silu, fetched)?.clone();
        let down = self.fetch(input, source, s_down, fetched)?.clone();
        let sku = &self.sku;
        let scales = |n: &str| sku.vec_u32(n).map_err(|e| shape(s_silu, e.to_string()));
        let (gs, us, sig, ds) = (
            scales(&format!("layers.{layer}.gate.s"))?,
            scales(&format!("layers.{layer}.up.s"))?,
            scales("sigmoid")?,
            scales(&format!("layers.{layer}.down.s"))?,
        );
        let attn = source
            .rows(input.receipt, s_attn, &addrs)
            .map_err(|e| unavailable(s_attn, e))?;
        check_rows(input.receipt, &attn, s_attn, &addrs)?;
        let res = source
            .rows(input.receipt, s_res, &addrs)
            .map_err(|e| unavailable(s_res, e))?;
        check_rows(input.receipt, &res, s_res, &addrs)?;
        let row_of = |t: &WholeTensor, a: u64| {
            t.rows
                .iter()
                .find(|(x, _)| *x == a)
                .map(|(_, b)| b.clone())
                .unwrap_or_default()
        };
        for (j, &a) in addrs.iter().enumerate() {
            let bad = |step: u64| move |_: ()| shape(step, format!("row {a} has the wrong length"));
            let resid_in = i32_row(&attn.rows[j].bytes, h)
                .ok_or(())
                .map_err(bad(s_attn))?;
            // ffn_norm = rmsnorm(attention residual)
            let want = arith::rmsnorm_quant_row(&resid_in, cfg.eps_q32);
            let got = q_row(&row_of(&norm, a), h).ok_or(()).map_err(bad(s_norm))?;
            self.compare_q(program, s_norm, a, &want, &got)?;
            // silu_mul = quantize(silu(gate) · up)
            let yg = i32_row(&row_of(&gate, a), i)
                .ok_or(())
                .map_err(bad(s_gate))?;
            let yu = i32_row(&row_of(&up, a), i).ok_or(()).map_err(bad(s_up))?;
            let want = arith::silu_mul_row(&yg, &yu, &gs, &us, got.1, &sig);
            let m = q_row(&row_of(&silu, a), i).ok_or(()).map_err(bad(s_silu))?;
            self.compare_q(program, s_silu, a, &want, &m)?;
            // ffn_residual = attention residual + dequant(down)
            let yd = i32_row(&row_of(&down, a), h)
                .ok_or(())
                .map_err(bad(s_down))?;
            let want = arith::residual_row(&resid_in, &yd, &ds, m.1);
            let got = i32_row(&res.rows[j].bytes, h)
                .ok_or(())
                .map_err(bad(s_res))?;
            if let Some(c) = want.iter().zip(&got).position(|(a, b)| a != b) {
                return Err(self.recompute_fraud(program, s_res, a, c as u64));
            }
        }
        Ok(addrs.len() * 3)
    }

    fn compare_q(
        &self,
        program: &Program,
        step: u64,
        row: u64,
        want: &(Vec<i8>, i64),
        got: &(Vec<i8>, i64),
    ) -> Checked<()> {
        if let Some(c) = want.0.iter().zip(&got.0).position(|(a, b)| a != b) {
            return Err(self.recompute_fraud(program, step, row, c as u64));
        }
        if want.1 != got.1 {
            return Err(self.recompute_fraud(program, step, row, want.0.len() as u64));
        }
        Ok(())
    }

    fn recompute_fraud(&self, program: &Program, step: u64, row: u64, col: u64) -> Verdict {
        Verdict::Fraud(Fraud {
            step,
            label: program.step(step).map(|i| i.label()).unwrap_or_default(),
            row,
            col,
            method: "recompute".into(),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The caches only ever hold complete entries, so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every step an audit of `gemms` may read: each selected GEMM with its inputs, and every step
/// (with its inputs) of each (round, layer) whose MLP rows are recomputed.
fn steps_read(program: &Program, gemms: &[(u64, String)]) -> Vec<u64> {
    let mut layers = std::collections::BTreeSet::new();
    let mut want = std::collections::BTreeSet::new();
    for (step, _) in gemms {
        want.insert(*step);
        if let Ok(info) = program.step(*step) {
            if let StepKind::Layer { layer, .. } = info.kind {
                layers.insert((info.round, layer));
            }
        }
    }
    for s in 0..program.step_count() {
        if let Ok(info) = program.step(s) {
            if let StepKind::Layer { layer, .. } = info.kind {
                if layers.contains(&(info.round, layer)) {
                    want.insert(s);
                }
            }
        }
    }
    let inputs: Vec<u64> = want
        .iter()
        .filter_map(|s| program.inputs(*s).ok())
        .flatten()
        .collect();
    want.extend(inputs);
    want.into_iter().collect()
}
