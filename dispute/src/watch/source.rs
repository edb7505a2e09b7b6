//! Where an audit's data comes from: the [`TraceSource`] seam.
//!
//! An audit asks for the output tensor of some steps of a receipt's trace, either whole (the
//! inputs and outputs of a GEMM checked with Freivalds) or a few rows (the rows of a non-GEMM
//! step recomputed). Every answer carries the step's output root and its proof as leaf `step`
//! of the trace state tree under the receipt's `traceRoot`, and rows carry their proofs under
//! the output root, so the audit trusts nothing a source says: [`super::audit`] checks all of it.
//!
//! Implementations: [`EngineTrace`] re-runs the shard locally with the integer engine (the
//! watcher holds the SKU files); [`MemTrace`] serves tensors held in memory (what a worker
//! holds after a run; the tests tamper with one to play a cheating worker). A JSON-RPC client of
//! the worker's data API is the next implementation (see docs/WATCHER.md).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use alloy_primitives::B256;
use verinfer_primitives::{Receipt, TraceState};
use verinfer_prover::{Engine, Shard, TensorOpening};

/// One row of a step's output tensor with its proof under the step's output root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedRow {
    /// The row's address (its leaf index, docs/ARITHMETIC.md §5).
    pub address: u64,
    /// Row bytes (the leaf preimage); empty for an absent row.
    pub bytes: Vec<u8>,
    /// Siblings from the leaf up to the output root.
    pub proof: Vec<B256>,
}

/// Some rows of a step's output tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRows {
    pub step: u64,
    /// The step's output root.
    pub output_root: B256,
    /// Siblings of leaf `step` of the trace state tree under the receipt's trace root.
    pub trace_proof: Vec<B256>,
    pub rows: Vec<OpenedRow>,
}

/// A step's whole output tensor: every present row with its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WholeTensor {
    pub step: u64,
    pub output_root: B256,
    pub trace_proof: Vec<B256>,
    /// `(address, row bytes)`, addresses strictly increasing.
    pub rows: Vec<(u64, Vec<u8>)>,
}

/// Why a source gave no answer. Each is recorded as evidence against the worker (silence), never
/// as a crash of the watcher.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The source did not answer (connection refused, worker gone).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The source answered too late.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// The answer could not be decoded.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The source does not hold this receipt's trace (another shard, a step out of range).
    #[error("no such trace data: {0}")]
    NotFound(String),
}

/// Where an audit gets a receipt's trace data. Answers are untrusted.
pub trait TraceSource: Send + Sync {
    /// Rows `addresses` of step `step`'s output, each with its proof.
    fn rows(
        &self,
        receipt: &Receipt,
        step: u64,
        addresses: &[u64],
    ) -> Result<StepRows, SourceError>;

    /// The whole output tensor of step `step`.
    fn tensor(&self, receipt: &Receipt, step: u64) -> Result<WholeTensor, SourceError>;

    /// A hint: the audit is about to read these steps (a source that computes them can do it
    /// in one pass). Serving stays correct without it.
    fn prefetch(&self, _steps: &[u64]) {}
}

/// Tensors of one trace held in memory, served with proofs from their trees.
pub struct MemTrace {
    trace: TraceState,
    tensors: HashMap<u64, TensorOpening>,
}

impl MemTrace {
    /// A source over `trace` (all steps pushed) and the tensors it can serve.
    pub fn new(trace: TraceState, tensors: HashMap<u64, TensorOpening>) -> Self {
        MemTrace { trace, tensors }
    }

    /// The trace (its root is what a receipt over these tensors must carry).
    pub fn trace(&self) -> &TraceState {
        &self.trace
    }

    /// The tensor of `step`, if held.
    pub fn tensor_of(&self, step: u64) -> Option<&TensorOpening> {
        self.tensors.get(&step)
    }

    /// Replaces the tensor of `step` and recommits the trace with its new root (how a cheating
    /// worker commits a wrong tensor consistently).
    pub fn replace(
        &mut self,
        step: u64,
        t: TensorOpening,
    ) -> Result<(), verinfer_primitives::MerkleError> {
        let mut roots = self.trace.output_roots().to_vec();
        if let Some(r) = roots.get_mut(step as usize) {
            *r = t.root();
        }
        let mut trace = TraceState::new(self.trace.step_count());
        for r in roots {
            trace.push(r)?;
        }
        self.trace = trace;
        self.tensors.insert(step, t);
        Ok(())
    }

    fn held(&self, step: u64) -> Result<&TensorOpening, SourceError> {
        self.tensors
            .get(&step)
            .ok_or_else(|| SourceError::NotFound(format!("step {step} is not held")))
    }

    fn trace_proof(&self, step: u64) -> Result<Vec<B256>, SourceError> {
        let last = self.trace.step_count().checked_sub(1);
        self.trace
            .proof(step, last)
            .map(|p| p.siblings)
            .map_err(|e| SourceError::NotFound(e.to_string()))
    }
}

impl TraceSource for MemTrace {
    fn rows(
        &self,
        _receipt: &Receipt,
        step: u64,
        addresses: &[u64],
    ) -> Result<StepRows, SourceError> {
        let t = self.held(step)?;
        let rows = addresses
            .iter()
            .map(|&a| {
                let proof = t
                    .proof(a)
                    .map_err(|e| SourceError::NotFound(format!("row {a}: {e}")))?;
                Ok(OpenedRow {
                    address: a,
                    bytes: t.row_bytes(a),
                    proof: proof.siblings,
                })
            })
            .collect::<Result<Vec<_>, SourceError>>()?;
        Ok(StepRows {
            step,
            output_root: t.root(),
            trace_proof: self.trace_proof(step)?,
            rows,
        })
    }

    fn tensor(&self, _receipt: &Receipt, step: u64) -> Result<WholeTensor, SourceError> {
        let t = self.held(step)?;
        let rows = t
            .addresses
            .iter()
            .enumerate()
            .map(|(i, &a)| (a, t.tensor.row_bytes(i)))
            .collect();
        Ok(WholeTensor {
            step,
            output_root: t.root(),
            trace_proof: self.trace_proof(step)?,
            rows,
        })
    }
}

/// Re-runs the shard locally with the engine and serves its own (honest) trace. Each step asked
/// for is reproduced once (the engine replays the run up to it) and kept.
pub struct EngineTrace {
    engine: Engine,
    shard: Shard,
    trace: TraceState,
    cache: Mutex<HashMap<u64, TensorOpening>>,
}

impl EngineTrace {
    /// Runs `shard` once to get its trace.
    pub fn new(engine: Engine, shard: Shard) -> Result<Self, verinfer_prover::ProverError> {
        let trace = engine.run(&shard)?.trace;
        Ok(EngineTrace {
            engine,
            shard,
            trace,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The locally computed trace (the honest receipt's `traceRoot` is its root).
    pub fn trace(&self) -> &TraceState {
        &self.trace
    }

    /// The tensor of `step` (reproduced on first use).
    pub fn step_tensor(&self, step: u64) -> Result<TensorOpening, SourceError> {
        if let Some(t) = self.lock().get(&step) {
            return Ok(t.clone());
        }
        let op = self
            .engine
            .reproduce_step(&self.shard, step)
            .map_err(|e| SourceError::NotFound(e.to_string()))?;
        let mut c = self.lock();
        // The replay captured the step's inputs too: keep them, audits ask for them next.
        for t in op.inputs {
            c.entry(t.step).or_insert(t);
        }
        c.insert(step, op.output.clone());
        Ok(op.output)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, TensorOpening>> {
        // A panic while holding the lock leaves a valid map (inserts are atomic).
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A [`MemTrace`] holding steps `steps` of this run.
    pub fn materialize(&self, steps: &[u64]) -> Result<MemTrace, SourceError> {
        let mut tensors = HashMap::new();
        for &s in steps {
            tensors.insert(s, self.step_tensor(s)?);
        }
        Ok(MemTrace::new(self.trace.clone(), tensors))
    }
}

impl TraceSource for EngineTrace {
    fn prefetch(&self, steps: &[u64]) {
        let missing: BTreeSet<u64> = {
            let c = self.lock();
            steps
                .iter()
                .copied()
                .filter(|s| !c.contains_key(s))
                .collect()
        };
        if missing.len() < 2 {
            return;
        }
        // One run for all of them; a failure leaves the per-step replay to serve them.
        if let Ok((_, tensors)) = self.engine.run_capturing(&self.shard, &missing) {
            let mut c = self.lock();
            for (s, t) in tensors {
                c.entry(s).or_insert(t);
            }
        }
    }

    fn rows(
        &self,
        receipt: &Receipt,
        step: u64,
        addresses: &[u64],
    ) -> Result<StepRows, SourceError> {
        let t = self.step_tensor(step)?;
        let mut m = HashMap::new();
        m.insert(step, t);
        MemTrace::new(self.trace.clone(), m).rows(receipt, step, addresses)
    }

    fn tensor(&self, receipt: &Receipt, step: u64) -> Result<WholeTensor, SourceError> {
        let t = self.step_tensor(step)?;
        let mut m = HashMap::new();
        m.insert(step, t);
        MemTrace::new(self.trace.clone(), m).tensor(receipt, step)
    }
}
