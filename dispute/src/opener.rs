//! Openings of any step of a shard's trace, route by route exactly as `StepProver.sol` reads
//! them (the doc of `StepProver.checkRow` lists the inputs per op).

use alloy_primitives::{keccak256, Bytes, B256, I256, U256};
use alloy_sol_types::{SolType, SolValue};
use verinfer_primitives::job::{completion_leaf_bytes, Prompt};
use verinfer_primitives::merkle::{hash_leaf, row_chunks, row_leaf, ROW_CHUNK};
use verinfer_primitives::{SparseMerkleTree, TraceState};
use verinfer_prover::{
    Engine, LayerOp, Program, RowAddresses, Shard, StepKind, StepOpening, TensorOpening,
};

use crate::weights::{matrix_roots, matrix_row, rope_row, vector_bytes, vector_chunk, WeightRoot};
use crate::{
    DisputeError, FoldStep, GemmProof, LeafOpening, Opening, OutputContext, OutputProof, RowProof,
    StepContext, VectorOpening,
};

/// The defender's calldata for one step: `proveGemm` or `proveRow`.
#[derive(Debug, Clone)]
pub enum StepProof {
    Gemm(Box<GemmProof>),
    Row(RowProof),
}

/// Opens steps of one shard's trace (the shard is run once, then each opening replays it up to
/// the step with the tensors it needs captured).
pub struct Opener {
    engine: Engine,
    shard: Shard,
    trace: TraceState,
    weights: WeightRoot,
    addrs: RowAddresses,
    program: Program,
    input_root: B256,
    prompts: SparseMerkleTree,
    generated: Vec<Vec<u32>>,
    output_root: B256,
    outputs: SparseMerkleTree,
}

type Result<T> = std::result::Result<T, DisputeError>;

/// How a tree's leaves are made from its rows: trace tensors, prompts and completions use
/// `row_leaf` (rows over 1 KB through their chunks), SKU rows and chunk trees hash rows plainly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeafKind {
    Row,
    Plain,
}

/// The bytes whose keccak256 is the leaf of `row` (`0x00 ‖ row`, or `0x02 ‖ chunk root`).
fn leaf_preimage(kind: LeafKind, row: &[u8]) -> Vec<u8> {
    if kind == LeafKind::Row && row.len() > ROW_CHUNK {
        let mut v = vec![0x02];
        v.extend_from_slice(row_chunks(row).root().as_slice());
        return v;
    }
    let mut v = Vec::with_capacity(row.len() + 1);
    v.push(0x00);
    v.extend_from_slice(row);
    v
}

/// A leaf of `tree` that shows its depth (`Openings._pastTree`): an absent index when the
/// tree has one (a zero leaf costs no preimage), else leaf 0 with its preimage.
fn depth_witness(
    tree: &SparseMerkleTree,
    row_at: &impl Fn(u64) -> Vec<u8>,
    kind: LeafKind,
) -> Result<(u64, Vec<u8>)> {
    let depth = tree.depth();
    let span = if depth < 64 { 1u64 << depth } else { u64::MAX };
    if (tree.present() as u64) < span {
        if !tree.contains(span - 1) {
            return Ok((span - 1, Vec::new()));
        }
        if let Some(i) = (0..span).find(|&i| !tree.contains(i)) {
            return Ok((i, Vec::new()));
        }
    }
    let pre = leaf_preimage(kind, &row_at(0));
    if keccak256(&pre) != tree.leaf(0) {
        return Err(DisputeError::LeafMismatch(0));
    }
    Ok((0, pre))
}

/// A row of a tree at `address` with its proof, as `Openings._rowIn` reads it: a row inside
/// the tree is its bytes (empty for no row) and its siblings; past the tree (2^depth ≤ address)
/// it is empty bytes and a header naming a witness leaf and its preimage's length, the
/// preimage in 32-byte words, and the witness's siblings. `row_at(i)` is row `i`'s bytes
/// (empty when absent).
fn row_in(
    tree: &SparseMerkleTree,
    row_at: impl Fn(u64) -> Vec<u8>,
    kind: LeafKind,
    address: u64,
) -> Result<(Bytes, Vec<B256>)> {
    let depth = tree.depth();
    if depth < 64 && address >> depth != 0 {
        let (at, pre) = depth_witness(tree, &row_at, kind)?;
        let header = U256::from(at) | (U256::from(pre.len() as u64) << 64);
        let mut proof = vec![B256::from(header)];
        for word in pre.chunks(32) {
            let mut w = [0u8; 32];
            w[..word.len()].copy_from_slice(word);
            proof.push(B256::from(w));
        }
        proof.extend(tree.proof(at)?.siblings);
        return Ok((Bytes::new(), proof));
    }
    Ok((Bytes::from(row_at(address)), tree.proof(address)?.siblings))
}

/// The same ABI struct as another contract's binding names it (each `sol!` module has its own
/// Rust type for a shared Solidity struct).
pub fn recast<A: SolValue, B: SolValue + From<<B::SolType as SolType>::RustType>>(
    a: &A,
) -> Result<B> {
    B::abi_decode(&a.abi_encode()).map_err(|e| DisputeError::Recast(e.to_string()))
}

/// An opening the route requires to be present but never reads (an entry it settles early).
fn empty_opening() -> Opening {
    Opening {
        step: 0,
        root: B256::ZERO,
        stepProof: Vec::new(),
        row: Bytes::new(),
        rowProof: Vec::new(),
    }
}

fn empty_leaf() -> LeafOpening {
    LeafOpening {
        root: B256::ZERO,
        rootProof: Vec::new(),
        data: Bytes::new(),
        proof: Vec::new(),
    }
}

/// The root of a long row's chunks, and chunk `at` with its proof in them (empty bytes past
/// the row's end, with the proof `row_in` gives for a row past a tree).
fn chunk_in(row: &[u8], at: u64) -> Result<(B256, Bytes, Vec<B256>)> {
    let leaves = row
        .chunks(ROW_CHUNK)
        .enumerate()
        .map(|(i, c)| (i as u64, hash_leaf(c)))
        .collect();
    let tree = SparseMerkleTree::from_indexed_leaves(leaves)?;
    let chunk = |i: u64| {
        row.chunks(ROW_CHUNK)
            .nth(i as usize)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    };
    let (bytes, proof) = row_in(&tree, chunk, LeafKind::Plain, at)?;
    Ok((tree.root(), bytes, proof))
}

fn tensor_row(t: &TensorOpening, address: u64) -> Result<(Bytes, Vec<B256>)> {
    row_in(&t.tree, |i| t.row_bytes(i), LeafKind::Row, address)
}

impl Opener {
    /// Runs `shard` once on `engine` to get its trace.
    pub fn new(engine: Engine, shard: Shard) -> Result<Self> {
        let run = engine.run(&shard)?;
        let sku = engine.sku().clone();
        let weights = WeightRoot::new(&sku)?;
        let prompt_leaves: Vec<(u64, B256)> = shard
            .prompts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let leaf =
                    verinfer_primitives::merkle::row_leaf(&Prompt::Tokens(p.clone()).leaf_bytes());
                (i as u64, leaf)
            })
            .collect();
        let prompts = SparseMerkleTree::from_indexed_leaves(prompt_leaves)?;
        let outputs = SparseMerkleTree::from_indexed_leaves(
            run.generated
                .iter()
                .enumerate()
                .map(|(i, g)| (i as u64, row_leaf(&completion_leaf_bytes(g))))
                .collect(),
        )?;
        Ok(Opener {
            generated: run.generated,
            output_root: run.output_root,
            outputs,
            addrs: RowAddresses::new(sku.config()),
            program: engine.program(&shard),
            input_root: shard.input_root(),
            trace: run.trace,
            engine,
            shard,
            weights,
            prompts,
        })
    }

    /// The shard's trace (its root is the receipt's `traceRoot`).
    pub fn trace(&self) -> &TraceState {
        &self.trace
    }

    /// The program of the shard.
    pub fn program(&self) -> Program {
        self.program
    }

    /// The row-address scheme of the SKU.
    pub fn addresses(&self) -> RowAddresses {
        self.addrs
    }

    /// The generated tokens per prompt (the completions under the receipt's `outputRoot`).
    pub fn generated(&self) -> &[Vec<u32>] {
        &self.generated
    }

    /// What the game holds for an output challenge of completion `prompt` at index `j`.
    pub fn output_context(&self, prompt: u32, j: u32) -> OutputContext {
        OutputContext {
            skuId: self.engine.sku().id(),
            inputRoot: self.input_root,
            outputRoot: self.output_root,
            traceRoot: self.trace.trace_root(),
            stepCount: self.trace.step_count(),
            prompt,
            j,
        }
    }

    /// The defender's answer to an output challenge: the completion and prompt leaves and, when
    /// `j` is inside the completion, the argmax row of round `j` for the prompt.
    pub fn open_output(&self, prompt: u32, j: u32) -> Result<OutputProof> {
        let pi = prompt as u64;
        let (completion, completion_proof) = row_in(
            &self.outputs,
            |i| {
                self.generated
                    .get(i as usize)
                    .map(|g| completion_leaf_bytes(g))
                    .unwrap_or_default()
            },
            LeafKind::Row,
            pi,
        )?;
        let ids = self.shard.prompts.get(prompt as usize);
        let (prompt_bytes, prompt_proof) = row_in(
            &self.prompts,
            |i| self.prompt_leaf_bytes(i),
            LeafKind::Row,
            pi,
        )?;
        let mut p = OutputProof {
            completion,
            completionProof: completion_proof,
            prompt: prompt_bytes,
            promptProof: prompt_proof,
            pos: 0,
            argmaxRoot: B256::ZERO,
            stepProof: Vec::new(),
            argmaxRow: Bytes::new(),
            argmaxRowProof: Vec::new(),
        };
        let generated = self.generated.get(prompt as usize).map_or(0, Vec::len);
        let (Some(ids), true) = (ids, (j as usize) < generated) else {
            return Ok(p);
        };
        let pos = ids.len() + j as usize - 1;
        let step = self.program.step_id(j as usize, StepKind::Argmax);
        let op = self.reproduce(step)?;
        let address = self.addrs.token(prompt as usize, pos);
        let (row, row_proof) = tensor_row(&op.output, address)?;
        p.pos = pos as u32;
        p.argmaxRoot = op.output.root();
        p.stepProof = self
            .trace
            .proof(step, Some(self.trace.step_count() - 1))?
            .siblings;
        p.argmaxRow = row;
        p.argmaxRowProof = row_proof;
        Ok(p)
    }

    /// The states of a fold of row `row` of the replayed step `op`: entry `i` is the state after
    /// the first `i` chunks, entry 0 the fixed start, the last one the final state. pv: the
    /// accumulator (D big-endian i64) over chunks of `chunk` positions; argmax: the running best
    /// over chunks of [`Self::ARGMAX_CHUNK`] ids; silu_mul: the running max |m_i| over chunks
    /// of [`Self::SILU_CHUNK`] elements. Empty when the row does not exist.
    pub fn fold_states(&self, op: &StepOpening, row: u32, chunk: u64) -> Result<Vec<Vec<u8>>> {
        match op.info.kind {
            StepKind::Argmax => return self.argmax_states(op, row as u64),
            StepKind::Layer {
                layer,
                op: LayerOp::SiluMul,
            } => return self.silu_states(op, layer, row as u64),
            _ => {}
        }
        let (probs, values) = self.pv_inputs(op, row as u64)?;
        let d = self.engine.sku().config().head_dim;
        let mut acc = vec![0i64; d];
        let enc = |acc: &[i64]| {
            acc.iter()
                .flat_map(|a| a.to_be_bytes())
                .collect::<Vec<u8>>()
        };
        let mut states = Vec::new();
        if probs.is_empty() {
            return Ok(states);
        }
        states.push(enc(&acc));
        for (c, ps) in probs.chunks(chunk.max(1) as usize).enumerate() {
            for (i, &p) in ps.iter().enumerate() {
                let v = &values[c * chunk as usize + i];
                for (a, &x) in acc.iter_mut().zip(v) {
                    *a += i64::from(p) * i64::from(x);
                }
            }
            states.push(enc(&acc));
        }
        Ok(states)
    }

    /// Ids per chunk of an argmax fold (one 1024-byte chunk of the lm_head scales vector).
    pub const ARGMAX_CHUNK: u64 = 256;

    /// The running best of an argmax fold after each chunk of [`Self::ARGMAX_CHUNK`] ids:
    /// `abi.encode(found, key, id)` with key = Y_j · Sw_j, a strictly larger key replacing the
    /// best (ties keep the lowest id).
    fn argmax_states(&self, op: &StepOpening, row: u64) -> Result<Vec<Vec<u8>>> {
        let y = self.input(op, op.info.step - 1, row)?.row;
        if y.is_empty() {
            return Ok(Vec::new());
        }
        let sw = self.engine.sku().vec_u32("lm_head.s")?;
        let valid = self.engine.sku().config().valid_vocab;
        let enc = |found: bool, key: i128, id: usize| -> Vec<u8> {
            (
                found,
                I256::try_from(key).unwrap_or_default(),
                U256::from(id),
            )
                .abi_encode()
        };
        let (mut found, mut best, mut id) = (false, 0i128, 0usize);
        let mut states = vec![enc(found, best, id)];
        for from in (0..valid).step_by(Self::ARGMAX_CHUNK as usize) {
            for j in from..(from + Self::ARGMAX_CHUNK as usize).min(valid) {
                let yj = i32::from_be_bytes([y[4 * j], y[4 * j + 1], y[4 * j + 2], y[4 * j + 3]]);
                let key = i128::from(yj) * i128::from(sw[j]);
                if !found || key > best {
                    (found, best, id) = (true, key, j);
                }
            }
            states.push(enc(found, best, id));
        }
        Ok(states)
    }

    /// Elements per chunk of a silu_mul fold (one 1024-byte chunk of each scales vector).
    pub const SILU_CHUNK: u64 = 256;

    /// The running max |m_i| of a silu_mul fold after each chunk of [`Self::SILU_CHUNK`]
    /// elements, `abi.encode(uint256)`.
    fn silu_states(&self, op: &StepOpening, layer: usize, row: u64) -> Result<Vec<Vec<u8>>> {
        let step = op.info.step;
        let be = |b: &[u8]| -> Vec<i32> {
            b.chunks(4)
                .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let gate = self.input(op, step - 2, row)?.row;
        if gate.is_empty() {
            return Ok(Vec::new());
        }
        let up = self.input(op, step - 1, row)?.row;
        let norm = self.input(op, step - 3, row)?.row;
        let sx = i64::from_be_bytes(norm[norm.len().saturating_sub(8)..].try_into().map_err(
            |_| DisputeError::RowOutOfRange {
                what: "normalized row",
                row,
            },
        )?);
        let sku = self.engine.sku();
        let m = verinfer_primitives::arith::silu_mul_values(
            &be(&gate),
            &be(&up),
            &sku.vec_u32(&format!("layers.{layer}.gate.s"))?,
            &sku.vec_u32(&format!("layers.{layer}.up.s"))?,
            sx,
            &sku.vec_u32("sigmoid")?,
        );
        let enc = |a: u64| U256::from(a).abi_encode();
        let mut amax = 0u64;
        let mut states = vec![enc(0)];
        for c in m.chunks(Self::SILU_CHUNK as usize) {
            amax = c.iter().fold(amax, |a, &v| a.max(v.unsigned_abs() as u64));
            states.push(enc(amax));
        }
        Ok(states)
    }

    /// The softmax probabilities and the value rows (by position) a pv row reads.
    fn pv_inputs(&self, op: &StepOpening, row: u64) -> Result<(Vec<i32>, Vec<Vec<i32>>)> {
        let StepKind::Layer {
            layer,
            op: LayerOp::Pv,
        } = op.info.kind
        else {
            return Err(DisputeError::NotAFold(op.info.step));
        };
        let sm = self.input(op, op.info.step - 1, row)?.row;
        if sm.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let be = |b: &[u8]| i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let probs: Vec<i32> = sm[..sm.len() - 8].chunks(4).map(be).collect();
        let (hq, hkv) = (self.addrs.heads, self.addrs.kv_heads);
        let (prompt, _) = self.locate_head(row);
        let g = (row % hq) / (hq / hkv);
        let values = (0..probs.len() as u64)
            .map(|u| {
                let o = self.kv(op, layer, LayerOp::Value, prompt, u, g)?;
                Ok(o.row.chunks(4).map(be).collect())
            })
            .collect::<Result<Vec<Vec<i32>>>>()?;
        Ok((probs, values))
    }

    /// The defender's `foldRow` arguments for pv row `row`: the output and softmax openings,
    /// and the final accumulator.
    pub fn open_fold(&self, op: &StepOpening, row: u32, chunk: u64) -> Result<(RowProof, Bytes)> {
        // silu_mul's fold starts from its gate row (s − 2); pv's and argmax's from s − 1.
        let silu = matches!(
            op.info.kind,
            StepKind::Layer {
                op: LayerOp::SiluMul,
                ..
            }
        );
        let back = if silu { 2 } else { 1 };
        let (out_row, out_proof) = tensor_row(&op.output, row as u64)?;
        let mut p = RowProof {
            outRoot: op.output.root(),
            stepProof: op.state_proof_post.siblings.clone(),
            outRow: out_row,
            outRowProof: out_proof,
            inputs: vec![self.input(op, op.info.step - back, row as u64)?],
            vectors: Vec::new(),
            leaves: Vec::new(),
        };
        // A long logits row is shown by its chunk root alone (the L1 never reads it whole).
        if matches!(op.info.kind, StepKind::Argmax) && p.inputs[0].row.len() > ROW_CHUNK {
            let (root, _, _) = chunk_in(&p.inputs[0].row, 0)?;
            p.inputs[0].row = Bytes::new();
            p.leaves.push(LeafOpening {
                root,
                ..empty_leaf()
            });
        }
        let last = self.fold_states(op, row, chunk)?.pop().unwrap_or_default();
        Ok((p, last.into()))
    }

    /// The defender's `proveFold` argument for chunk `lo` of pv row `row`.
    pub fn open_fold_chunk(
        &self,
        op: &StepOpening,
        row: u32,
        chunk: u64,
        lo: u64,
    ) -> Result<FoldStep> {
        let states = self.fold_states(op, row, chunk)?;
        let at =
            |i: u64| -> Result<Bytes> {
                states.get(i as usize).cloned().map(Bytes::from).ok_or(
                    DisputeError::RowOutOfRange {
                        what: "fold chunk",
                        row: i,
                    },
                )
            };
        let step = op.info.step;
        let mut inputs = Vec::new();
        let mut leaves = Vec::new();
        let mut final_state = Bytes::new();
        let mut output = empty_opening();
        match op.info.kind {
            StepKind::Argmax => {
                let mut logits = self.input(op, step - 1, row as u64)?;
                let sku = self.engine.sku();
                let (data, proof) = vector_chunk(sku, "lm_head.s", lo as usize)?;
                let leaf = LeafOpening {
                    root: matrix_roots(sku, "lm_head")?.scales,
                    rootProof: self.weights.half_proof(sku, "lm_head", 1)?,
                    data: data.into(),
                    proof,
                };
                leaves.push(recast(&leaf)?);
                // A long logits row: only chunk `lo` (ids lo·256 ..) is sent.
                if logits.row.len() > ROW_CHUNK {
                    let (root, data, proof) = chunk_in(&logits.row, lo)?;
                    logits.row = Bytes::new();
                    leaves.push(recast(&LeafOpening {
                        root,
                        rootProof: Vec::new(),
                        data,
                        proof,
                    })?);
                }
                inputs.push(recast(&logits)?);
            }
            StepKind::Layer {
                layer,
                op: LayerOp::SiluMul,
            } => {
                for back in [2, 1, 3] {
                    inputs.push(recast(&self.input(op, step - back, row as u64)?)?);
                }
                let sku = self.engine.sku();
                for m in ["gate", "up"] {
                    let name = format!("layers.{layer}.{m}");
                    let (data, proof) = vector_chunk(sku, &format!("{name}.s"), lo as usize)?;
                    let leaf = LeafOpening {
                        root: matrix_roots(sku, &name)?.scales,
                        rootProof: self.weights.half_proof(sku, &name, 1)?,
                        data: data.into(),
                        proof,
                    };
                    leaves.push(recast(&leaf)?);
                }
                let table = LeafOpening {
                    root: B256::ZERO,
                    rootProof: self.weights.proof("sigmoid")?,
                    data: vector_bytes(sku, "sigmoid")?.into(),
                    proof: Vec::new(),
                };
                leaves.push(recast(&table)?);
                final_state = states.last().cloned().unwrap_or_default().into();
                let (row_bytes, row_proof) = tensor_row(&op.output, row as u64)?;
                output = Opening {
                    step,
                    root: op.output.root(),
                    stepProof: op.state_proof_post.siblings.clone(),
                    row: row_bytes,
                    rowProof: row_proof,
                };
            }
            StepKind::Layer {
                layer,
                op: LayerOp::Pv,
            } => {
                inputs.push(recast(&self.input(op, step - 1, row as u64)?)?);
                // The row reads positions 0..=pos; only the chunk's value rows are opened.
                let (hq, hkv) = (self.addrs.heads, self.addrs.kv_heads);
                let (prompt, pos) = self.locate_head(row as u64);
                let g = (row as u64 % hq) / (hq / hkv);
                let from = lo * chunk;
                for u in from..(from + chunk).min(pos + 1) {
                    inputs.push(recast(&self.kv(
                        op,
                        layer,
                        LayerOp::Value,
                        prompt,
                        u,
                        g,
                    )?)?);
                }
            }
            _ => return Err(DisputeError::NotAFold(op.info.step)),
        }
        Ok(FoldStep {
            loState: at(lo)?,
            hiState: at(lo + 1)?,
            inputs,
            leaves,
            finalState: final_state,
            output: recast(&output)?,
        })
    }

    /// Replays the shard up to `step` and returns its opening (output and input tensors).
    pub fn reproduce(&self, step: u64) -> Result<StepOpening> {
        Ok(self.engine.reproduce_step(&self.shard, step)?)
    }

    /// What the game holds when step `step` is disputed at (`row`, `col`) and the trace is this
    /// one: the agreed state before the step and the state after it.
    pub fn context(&self, step: u64, row: u32, col: u32) -> Result<StepContext> {
        Ok(StepContext {
            skuId: self.engine.sku().id(),
            inputRoot: self.input_root,
            loRoot: self.trace.state_root(step.checked_sub(1))?,
            hiRoot: self.trace.state_root(Some(step))?,
            step,
            stepCount: self.trace.step_count(),
            row,
            col,
        })
    }

    /// The defender's opening of entry (`row`, `col`) of step `step` from a replay `op` of it.
    pub fn open(&self, op: &StepOpening, row: u32, col: u32) -> Result<StepProof> {
        let step = op.info.step;
        let (out_row, out_proof) = tensor_row(&op.output, row as u64)?;
        let out = (
            op.output.root(),
            op.state_proof_post.siblings.clone(),
            out_row,
            out_proof,
        );
        let is_gemm = matches!(op.info.kind, StepKind::LmHead)
            || matches!(op.info.kind, StepKind::Layer { op: lop, .. } if lop.matrix().is_some());
        if is_gemm {
            return self
                .open_gemm(op, out, row, col)
                .map(|g| StepProof::Gemm(Box::new(g)));
        }
        let mut p = RowProof {
            outRoot: out.0,
            stepProof: out.1,
            outRow: out.2,
            outRowProof: out.3,
            inputs: Vec::new(),
            vectors: Vec::new(),
            leaves: Vec::new(),
        };
        let row = row as u64;
        let (hq, hkv, s) = (self.addrs.heads, self.addrs.kv_heads, self.addrs.max_seq);
        let round = op.info.round;
        match op.info.kind {
            StepKind::Embed => self.open_embed(op, &mut p, row)?,
            StepKind::FinalNorm => {
                p.inputs.push(self.input(op, step - 1, row)?);
                if round == 0 && row % s != s - 1 {
                    p.inputs.push(self.input(op, step - 1, row + 1)?);
                }
            }
            StepKind::Argmax => {
                p.inputs.push(self.input(op, step - 1, row)?);
                p.vectors.push(self.scales("lm_head")?);
            }
            StepKind::LmHead => unreachable!("handled as a GEMM"),
            StepKind::Layer { layer: l, op: lop } => {
                let m = |x: &str| format!("layers.{l}.{x}");
                match lop {
                    LayerOp::AttnNorm | LayerOp::FfnNorm => {
                        p.inputs.push(self.input(op, step - 1, row)?)
                    }
                    LayerOp::RopeQ | LayerOp::RopeK => {
                        let (heads, x, norm) = if lop == LayerOp::RopeQ {
                            (hq, "q", 4)
                        } else {
                            (hkv, "k", 5)
                        };
                        let t = row / heads;
                        p.inputs.push(self.input(op, step - 3, t)?);
                        p.inputs.push(self.input(op, step - norm, t)?);
                        p.vectors.push(self.scales(&m(x))?);
                        if self.engine.sku().config().qkv_bias {
                            p.vectors.push(self.table(&m(&format!("{x}.b")))?);
                        }
                        let (data, proof) = rope_row(self.engine.sku(), (t % s) as usize)?;
                        p.leaves.push(LeafOpening {
                            root: self.engine.sku().section("rope")?.root,
                            rootProof: self.weights.proof("rope")?,
                            data: data.into(),
                            proof,
                        });
                    }
                    LayerOp::Value => {
                        let t = row / hkv;
                        p.inputs.push(self.input(op, step - 3, t)?);
                        p.inputs.push(self.input(op, step - 6, t)?);
                        p.vectors.push(self.scales(&m("v"))?);
                        if self.engine.sku().config().qkv_bias {
                            p.vectors.push(self.table(&m("v.b"))?);
                        }
                    }
                    LayerOp::Scores => {
                        let q = self.input(op, step - 3, row)?;
                        let (prompt, pos) = self.locate_head(row);
                        let u = col as u64;
                        let k = if q.row.is_empty() || u > pos {
                            empty_opening()
                        } else {
                            self.kv(op, l, LayerOp::RopeK, prompt, u, (row % hq) / (hq / hkv))?
                        };
                        p.inputs.push(q);
                        p.inputs.push(k);
                    }
                    LayerOp::Softmax => {
                        p.inputs.push(self.input(op, step - 1, row)?);
                        p.inputs.push(self.input(op, step - 4, row)?);
                        p.vectors.push(self.table("exp2")?);
                    }
                    LayerOp::Pv => {
                        let sm = self.input(op, step - 1, row)?;
                        let present = !sm.row.is_empty();
                        p.inputs.push(sm);
                        if present {
                            let (prompt, pos) = self.locate_head(row);
                            let g = (row % hq) / (hq / hkv);
                            for u in 0..=pos {
                                p.inputs.push(self.kv(op, l, LayerOp::Value, prompt, u, g)?);
                            }
                        }
                    }
                    LayerOp::AttnOut => {
                        for h in 0..hq {
                            p.inputs.push(self.input(op, step - 1, row * hq + h)?);
                        }
                    }
                    LayerOp::AttnResidual | LayerOp::FfnResidual => {
                        let (back, x) = if lop == LayerOp::AttnResidual {
                            (13, "o")
                        } else {
                            (6, "down")
                        };
                        p.inputs.push(self.input(op, step - back, row)?);
                        p.inputs.push(self.input(op, step - 1, row)?);
                        p.inputs.push(self.input(op, step - 2, row)?);
                        p.vectors.push(self.scales(&m(x))?);
                    }
                    LayerOp::SiluMul => {
                        p.inputs.push(self.input(op, step - 2, row)?);
                        p.inputs.push(self.input(op, step - 1, row)?);
                        p.inputs.push(self.input(op, step - 3, row)?);
                        p.vectors.push(self.scales(&m("gate"))?);
                        p.vectors.push(self.scales(&m("up"))?);
                        p.vectors.push(self.table("sigmoid")?);
                    }
                    _ => unreachable!("GEMM layer ops are handled above"),
                }
            }
        }
        Ok(StepProof::Row(p))
    }

    /// (prompt, position) of a per-query-head row.
    fn locate_head(&self, row: u64) -> (u64, u64) {
        let t = row / self.addrs.heads;
        (t / self.addrs.max_seq, t % self.addrs.max_seq)
    }

    /// The leaf bytes of prompt `i` of the shard (empty when there is none).
    fn prompt_leaf_bytes(&self, i: u64) -> Vec<u8> {
        self.shard
            .prompts
            .get(i as usize)
            .map(|ids| Prompt::Tokens(ids.clone()).leaf_bytes())
            .unwrap_or_default()
    }

    /// Row `address` of the output of `step` (an input of `op`), opened against the agreed
    /// state (the state before `op`'s step).
    fn input(&self, op: &StepOpening, step: u64, address: u64) -> Result<Opening> {
        let t = op
            .inputs
            .iter()
            .find(|t| t.step == step)
            .ok_or(DisputeError::MissingTensor(step))?;
        let (row, row_proof) = tensor_row(t, address)?;
        Ok(Opening {
            step,
            root: t.root(),
            stepProof: self
                .trace
                .proof(step, op.info.step.checked_sub(1))?
                .siblings,
            row,
            rowProof: row_proof,
        })
    }

    /// The key (`RopeK`) or value row of position `u` of `prompt`, kv head `g`, from the round
    /// that produced that position.
    fn kv(
        &self,
        op: &StepOpening,
        layer: usize,
        which: LayerOp,
        prompt: u64,
        u: u64,
        g: u64,
    ) -> Result<Opening> {
        let round = self
            .shard
            .round_of(prompt as usize, u as usize)
            .ok_or(DisputeError::NoSuchPosition { prompt, pos: u })?;
        let step = self
            .program
            .step_id(round, StepKind::Layer { layer, op: which });
        self.input(
            op,
            step,
            self.addrs.kv_head(prompt as usize, u as usize, g as usize),
        )
    }

    /// A matrix's scales vector beside its rows root.
    fn scales(&self, matrix: &str) -> Result<VectorOpening> {
        let sku = self.engine.sku();
        Ok(VectorOpening {
            data: vector_bytes(sku, &format!("{matrix}.s"))?.into(),
            rowsRoot: matrix_roots(sku, matrix)?.rows,
            weightProof: self.weights.proof(matrix)?,
        })
    }

    /// A table or bias vector (its own weight-root leaf).
    fn table(&self, name: &str) -> Result<VectorOpening> {
        Ok(VectorOpening {
            data: vector_bytes(self.engine.sku(), name)?.into(),
            rowsRoot: B256::ZERO,
            weightProof: self.weights.proof(name)?,
        })
    }

    fn open_embed(&self, op: &StepOpening, p: &mut RowProof, row: u64) -> Result<()> {
        let s = self.addrs.max_seq;
        let (prompt, pos) = (row / s, row % s);
        let cfg = self.engine.sku().config();
        if op.info.round == 0 {
            let (data, proof) = row_in(
                &self.prompts,
                |i| self.prompt_leaf_bytes(i),
                LeafKind::Row,
                prompt,
            )?;
            let leaf = LeafOpening {
                root: self.input_root,
                rootProof: Vec::new(),
                data,
                proof,
            };
            let id = self
                .shard
                .prompts
                .get(prompt as usize)
                .and_then(|ids| ids.get(pos as usize).copied());
            p.leaves.extend(self.embedding(id)?);
            p.leaves.push(leaf);
        } else {
            if pos == 0 {
                return Ok(());
            }
            let tok = self.input(op, op.info.step - 1, row - 1)?;
            let id = (tok.row.len() == 4)
                .then(|| u32::from_be_bytes([tok.row[0], tok.row[1], tok.row[2], tok.row[3]]))
                .filter(|id| !cfg.eos_ids.contains(id));
            p.inputs.push(tok);
            p.leaves.extend(self.embedding(id)?);
        }
        Ok(())
    }

    /// The embedding row of token `id` and its scale chunk (two empty openings without a token).
    fn embedding(&self, id: Option<u32>) -> Result<[LeafOpening; 2]> {
        let Some(id) = id else {
            return Ok([empty_leaf(), empty_leaf()]);
        };
        let sku = self.engine.sku();
        let roots = matrix_roots(sku, "embed")?;
        let (row, row_proof) = matrix_row(sku, "embed", id as usize)?;
        let (chunk, chunk_proof) = vector_chunk(sku, "embed.s", id as usize / 256)?;
        Ok([
            LeafOpening {
                root: roots.rows,
                rootProof: self.weights.half_proof(sku, "embed", 0)?,
                data: row.into(),
                proof: row_proof,
            },
            LeafOpening {
                root: roots.scales,
                rootProof: self.weights.half_proof(sku, "embed", 1)?,
                data: chunk.into(),
                proof: chunk_proof,
            },
        ])
    }

    fn open_gemm(
        &self,
        op: &StepOpening,
        out: (B256, Vec<B256>, Bytes, Vec<B256>),
        row: u32,
        col: u32,
    ) -> Result<GemmProof> {
        let step = op.info.step;
        let in_step = self
            .program
            .inputs(step)?
            .first()
            .copied()
            .ok_or(DisputeError::MissingTensor(step))?;
        let input = self.input(op, in_step, row as u64)?;
        let matrix = match op.info.kind {
            StepKind::Layer { layer, op: lop } => {
                format!("layers.{layer}.{}", lop.matrix().unwrap_or_default())
            }
            _ => "lm_head".to_string(),
        };
        let sku = self.engine.sku();
        let roots = matrix_roots(sku, &matrix)?;
        let n = sku.section(&format!("{matrix}.w"))?.rows as u64;
        let col64 = col as u64;
        // A column past the output channels is proven absent like any row past a tree's end.
        let (w_row, w_proof) = if col64 < n {
            let (b, p) = matrix_row(sku, &matrix, col as usize)?;
            (Bytes::from(b), p)
        } else {
            let data = sku.section_bytes(&format!("{matrix}.w"))?;
            let cols = sku.section(&format!("{matrix}.w"))?.cols.max(1);
            let leaves: Vec<(u64, B256)> = data
                .chunks(cols)
                .enumerate()
                .map(|(i, r)| (i as u64, verinfer_primitives::merkle::hash_leaf(r)))
                .collect();
            let tree = SparseMerkleTree::from_indexed_leaves(leaves)?;
            let row_at = |i: u64| {
                data.chunks(cols)
                    .nth(i as usize)
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default()
            };
            row_in(&tree, row_at, LeafKind::Plain, col64)?
        };
        // A long output row (a logits row) is opened by the chunk holding the column.
        let (out_row, out_chunk_root, out_chunk_proof) = if out.2.len() > ROW_CHUNK {
            let (root, chunk, proof) = chunk_in(&out.2, col as u64 / (ROW_CHUNK as u64 / 4))?;
            (chunk, root, proof)
        } else {
            (out.2, B256::ZERO, Vec::new())
        };
        Ok(GemmProof {
            outRoot: out.0,
            stepProof: out.1,
            outRow: out_row,
            outRowProof: out.3,
            inRoot: input.root,
            inStepProof: input.stepProof,
            inRow: input.row,
            inRowProof: input.rowProof,
            rowsRoot: roots.rows,
            scalesRoot: roots.scales,
            matrixProof: self.weights.proof(&matrix)?,
            wRow: w_row,
            wRowProof: w_proof,
            outChunkRoot: out_chunk_root,
            outChunkProof: out_chunk_proof,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verinfer_primitives::merkle::hash_node;

    /// What `Openings._pastTree` checks, in Rust: the header, the preimage's domain byte, and
    /// the witness leaf's path to the root at the depth the proof implies.
    fn past_tree_ok(root: B256, address: u64, proof: &[B256]) -> bool {
        let h = U256::from_be_bytes(proof[0].0);
        let w: u64 = (h & U256::from(u64::MAX)).to();
        let len: usize = (h >> 64usize).to();
        let words = len.div_ceil(32);
        let d = proof.len() - 1 - words;
        if address >> d == 0 || w >> d != 0 {
            return false;
        }
        let pre: Vec<u8> = proof[1..1 + words]
            .iter()
            .flat_map(|x| x.0)
            .take(len)
            .collect();
        let mut node = if len == 0 {
            B256::ZERO
        } else {
            if pre[0] != 0x00 && pre[0] != 0x02 {
                return false;
            }
            keccak256(&pre)
        };
        for (i, s) in proof[1 + words..].iter().enumerate() {
            node = if (w >> i) & 1 == 0 {
                hash_node(&node, s)
            } else {
                hash_node(s, &node)
            };
        }
        node == root
    }

    fn rows(n: usize, len: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i as u8 + 1; len]).collect()
    }

    #[test]
    fn past_the_tree_proofs_bind_a_genuine_leaf() {
        // Full trees (no hole: the witness carries a preimage), short and chunked rows, and a
        // sparse tree (a zero witness); plain (SKU) leaves too.
        for (n, len, kind) in [
            (4, 8, LeafKind::Row),
            (2, 3000, LeafKind::Row),
            (1, 5, LeafKind::Row),
            (3, 8, LeafKind::Row),
            (4, 2000, LeafKind::Plain),
        ] {
            let data = rows(n, len);
            let leaf = |r: &[u8]| match kind {
                LeafKind::Row => row_leaf(r),
                LeafKind::Plain => hash_leaf(r),
            };
            let tree = SparseMerkleTree::from_indexed_leaves(
                data.iter()
                    .enumerate()
                    .map(|(i, r)| (i as u64, leaf(r.as_slice())))
                    .collect(),
            )
            .unwrap();
            let row_at = |i: u64| data.get(i as usize).cloned().unwrap_or_default();
            for address in [1u64 << tree.depth(), 1 << 20] {
                let (bytes, proof) = row_in(&tree, row_at, kind, address).unwrap();
                assert!(bytes.is_empty());
                assert!(
                    past_tree_ok(tree.root(), address, &proof),
                    "{n} rows of {len} bytes, row {address}"
                );
            }
        }
    }

    #[test]
    fn a_wrong_row_for_the_witness_is_refused() {
        let tree =
            SparseMerkleTree::from_indexed_leaves(vec![(0, hash_leaf(b"a")), (1, hash_leaf(b"b"))])
                .unwrap();
        let err = row_in(&tree, |_| b"x".to_vec(), LeafKind::Plain, 2).unwrap_err();
        assert!(matches!(err, DisputeError::LeafMismatch(0)));
    }
}
