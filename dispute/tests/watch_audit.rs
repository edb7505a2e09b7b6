//! Audits against real engine traces: an honest worker's trace passes under many seeds and is
//! never disputed; each way of cheating or misbehaving is caught with the right typed outcome,
//! and a wrong entry is located at its (step, row, col).

mod common;

use std::sync::Arc;

use alloy::primitives::{Address, B256};
use common::{build_sku, prompts};
use verinfer_dispute::watch::source::{OpenedRow, StepRows, WholeTensor};
use verinfer_dispute::watch::{
    policy_seed, AuditInput, Auditor, EngineTrace, Evidence, GemmSelect, MemTrace, Policy,
    SourceError, TraceSource, Verdict,
};
use verinfer_primitives::Receipt;
use verinfer_prover::{
    Backend, Engine, LayerOp, Program, Shard, Sku, StepKind, SynthSpec, Tensor, TensorOpening,
};

struct Setup {
    sku: Arc<Sku>,
    shard: Shard,
    honest: EngineTrace,
    program: Program,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let spec = SynthSpec::tiny_llama();
    let dir = tempfile::tempdir().unwrap();
    let sku = build_sku(&spec, dir.path(), None);
    let shard = Shard {
        prompts: prompts(spec.tokenizer_vocab as u32),
        max_new_tokens: 2,
    };
    let engine = Engine::new(sku.clone(), Backend::Reference).unwrap();
    let program = engine.program(&shard);
    let honest = EngineTrace::new(engine, shard.clone()).unwrap();
    Setup {
        sku,
        shard,
        honest,
        program,
        _dir: dir,
    }
}

fn receipt(s: &Setup, trace_root: B256) -> Receipt {
    Receipt {
        jobId: B256::repeat_byte(1),
        shardIndex: 0,
        skuId: s.sku.id(),
        worker: Address::repeat_byte(2),
        inputRoot: s.shard.input_root(),
        outputRoot: B256::ZERO,
        traceRoot: trace_root,
        stepCount: s.program.step_count(),
        tokensProcessed: 0,
    }
}

fn step(p: &Program, round: usize, layer: usize, op: LayerOp) -> u64 {
    p.step_id(round, StepKind::Layer { layer, op })
}

/// Every step an MLP audit reads, held in memory (what a worker serves).
fn mem(s: &Setup) -> MemTrace {
    let mut steps = Vec::new();
    for r in 0..s.program.rounds {
        for l in 0..s.program.layers {
            for op in [
                LayerOp::AttnResidual,
                LayerOp::FfnNorm,
                LayerOp::Gate,
                LayerOp::Up,
                LayerOp::SiluMul,
                LayerOp::Down,
                LayerOp::FfnResidual,
            ] {
                steps.push(step(&s.program, r, l, op));
            }
        }
    }
    s.honest.materialize(&steps).unwrap()
}

fn policy(salt: u8, rows: usize) -> Policy {
    Policy {
        salt: B256::repeat_byte(salt),
        gemms: GemmSelect::Mlp,
        freivalds_rounds: 1,
        sampled_rows: rows,
    }
}

fn audit(s: &Setup, src: &dyn TraceSource, r: &Receipt, p: &Policy) -> Verdict {
    let auditor = Auditor::new(s.sku.clone());
    let seed = policy_seed(B256::repeat_byte(9), r.hash(), p.salt);
    let input = AuditInput {
        receipt: r,
        shard: &s.shard,
        seed,
    };
    auditor.audit(&input, src, p)
}

/// A cheating worker's tensor: `f` edits it, the trace is recommitted with its new root.
fn tamper(m: &mut MemTrace, step: u64, f: impl FnOnce(&mut Tensor, &mut Vec<u64>)) {
    let t = m.tensor_of(step).unwrap().clone();
    let (mut tensor, mut addrs) = (t.tensor, t.addresses);
    f(&mut tensor, &mut addrs);
    let tree = tensor.tree(&addrs).unwrap();
    m.replace(
        step,
        TensorOpening {
            step,
            tensor,
            addresses: addrs,
            tree,
        },
    )
    .unwrap();
}

#[test]
fn honest_trace_passes_under_many_seeds_and_is_never_disputed() {
    let s = setup();
    let r = receipt(&s, s.honest.trace().trace_root());
    let auditor = Auditor::new(s.sku.clone());
    for salt in 0..24u8 {
        let p = Policy {
            gemms: match salt % 3 {
                0 => GemmSelect::One,
                1 => GemmSelect::Mlp,
                _ => GemmSelect::All,
            },
            ..policy(salt, 3)
        };
        let input = AuditInput {
            receipt: &r,
            shard: &s.shard,
            seed: policy_seed(B256::repeat_byte(9), r.hash(), p.salt),
        };
        let v = auditor.audit(&input, &s.honest, &p);
        assert!(matches!(v, Verdict::Pass { .. }), "salt {salt}: {v:?}");
        assert!(!v.disputes());
    }
    // The in-memory copy a worker would serve passes too.
    let m = mem(&s);
    assert!(matches!(
        audit(&s, &m, &r, &policy(1, 2)),
        Verdict::Pass { .. }
    ));
}

#[test]
fn a_wrong_gemm_entry_is_located_by_freivalds_and_one_row_recompute() {
    let s = setup();
    let mut m = mem(&s);
    let gate = step(&s.program, 0, 1, LayerOp::Gate);
    let cols = s.sku.config().intermediate;
    let addr = m.tensor_of(gate).unwrap().addresses[1];
    tamper(&mut m, gate, |t, _| {
        if let Tensor::I32 { data, .. } = t {
            data[cols + 17] += 1;
        }
    });
    let r = receipt(&s, m.trace().trace_root());
    match audit(&s, &m, &r, &policy(3, 0)) {
        Verdict::Fraud(f) => {
            assert_eq!((f.step, f.row, f.col), (gate, addr, 17), "{f:?}");
            assert_eq!(f.method, "freivalds");
        }
        v => panic!("not caught: {v:?}"),
    }
}

#[test]
fn wrong_non_gemm_rows_are_caught_by_recomputation_at_the_first_wrong_step() {
    let s = setup();
    // silu_mul of round 0, layer 0: its row is also the down GEMM's input, so Freivalds of down
    // fails too; the earliest wrong step is the one reported.
    let silu = step(&s.program, 0, 0, LayerOp::SiluMul);
    let mut m = mem(&s);
    let addr = m.tensor_of(silu).unwrap().addresses[3];
    tamper(&mut m, silu, |t, _| {
        if let Tensor::Q { cols, values, .. } = t {
            let v = &mut values[3 * *cols + 5];
            *v = if *v == 127 { 126 } else { *v + 1 };
        }
    });
    let r = receipt(&s, m.trace().trace_root());
    match audit(&s, &m, &r, &policy(4, 64)) {
        Verdict::Fraud(f) => {
            assert_eq!((f.step, f.row, f.col), (silu, addr, 5), "{f:?}");
            assert_eq!(f.method, "recompute");
        }
        v => panic!("not caught: {v:?}"),
    }
    // An ffn_residual row (no GEMM reads it inside the layer): only recomputation sees it.
    let res = step(&s.program, 0, 1, LayerOp::FfnResidual);
    let mut m = mem(&s);
    let addr = m.tensor_of(res).unwrap().addresses[0];
    tamper(&mut m, res, |t, _| {
        if let Tensor::I32 { data, .. } = t {
            data[9] -= 3;
        }
    });
    let r = receipt(&s, m.trace().trace_root());
    match audit(&s, &m, &r, &policy(5, 64)) {
        Verdict::Fraud(f) => assert_eq!((f.step, f.row, f.col), (res, addr, 9), "{f:?}"),
        v => panic!("not caught: {v:?}"),
    }
}

#[test]
fn truncated_or_misshapen_committed_tensors_are_evidence() {
    let s = setup();
    let up = step(&s.program, 0, 1, LayerOp::Up);
    // A row dropped (committed consistently): the GEMM's rows are no longer the input's.
    let mut m = mem(&s);
    tamper(&mut m, up, |t, a| {
        if let Tensor::I32 { cols, data } = t {
            data.truncate(data.len() - *cols);
        }
        a.pop();
    });
    let r = receipt(&s, m.trace().trace_root());
    let v = audit(&s, &m, &r, &policy(6, 1));
    assert!(
        matches!(v, Verdict::Evidence(Evidence::WrongShape { step, .. }) if step == up),
        "{v:?}"
    );
    // Rows of the wrong width.
    let mut m = mem(&s);
    tamper(&mut m, up, |t, _| {
        if let Tensor::I32 { cols, data } = t {
            let rows = data.len() / *cols;
            *cols -= 1;
            data.truncate(rows * *cols);
        }
    });
    let r = receipt(&s, m.trace().trace_root());
    let v = audit(&s, &m, &r, &policy(6, 1));
    assert!(
        matches!(v, Verdict::Evidence(Evidence::WrongShape { step, .. }) if step == up),
        "{v:?}"
    );
    // A receipt whose step count is not the shard's program.
    let mut r = receipt(&s, s.honest.trace().trace_root());
    r.stepCount += 1;
    let v = audit(&s, &s.honest, &r, &policy(6, 1));
    assert!(
        matches!(v, Verdict::Evidence(Evidence::BadReceipt { .. })),
        "{v:?}"
    );
}

/// A source that lies in transit in one of several ways.
struct Liar<'a> {
    inner: &'a MemTrace,
    how: Lie,
}

#[derive(Clone, Copy)]
enum Lie {
    Silent,
    WrongTraceProof,
    DropRow,
    WrongRowProof,
    Garbage,
}

impl TraceSource for Liar<'_> {
    fn rows(&self, r: &Receipt, step: u64, a: &[u64]) -> Result<StepRows, SourceError> {
        let mut x = self.inner.rows(r, step, a)?;
        if let Lie::WrongRowProof = self.how {
            if let Some(OpenedRow { proof, .. }) = x.rows.first_mut() {
                proof[0] = B256::repeat_byte(7);
            }
        }
        Ok(x)
    }

    fn tensor(&self, r: &Receipt, step: u64) -> Result<WholeTensor, SourceError> {
        let mut t = self.inner.tensor(r, step)?;
        match self.how {
            Lie::Silent => return Err(SourceError::Timeout(30_000)),
            Lie::WrongTraceProof => t.output_root = B256::repeat_byte(3),
            Lie::DropRow => {
                t.rows.pop();
            }
            Lie::Garbage => {
                if let Some((_, b)) = t.rows.first_mut() {
                    b.truncate(3);
                }
            }
            Lie::WrongRowProof => {}
        }
        Ok(t)
    }
}

#[test]
fn lies_in_transit_and_silence_are_typed_evidence() {
    let s = setup();
    let m = mem(&s);
    let r = receipt(&s, m.trace().trace_root());
    let check = |how: Lie, want: &dyn Fn(&Evidence) -> bool| {
        let v = audit(&s, &Liar { inner: &m, how }, &r, &policy(8, 2));
        match &v {
            Verdict::Evidence(e) if want(e) => {}
            _ => panic!("unexpected {v:?}"),
        }
        assert!(!v.disputes(), "evidence is not a fraud proof");
    };
    check(Lie::Silent, &|e| matches!(e, Evidence::Unavailable { .. }));
    check(Lie::WrongTraceProof, &|e| {
        matches!(e, Evidence::BadTraceProof { .. })
    });
    check(Lie::DropRow, &|e| {
        matches!(e, Evidence::TensorRootMismatch { .. })
    });
    check(Lie::Garbage, &|e| {
        matches!(e, Evidence::TensorRootMismatch { .. })
    });
    check(Lie::WrongRowProof, &|e| {
        matches!(e, Evidence::BadRowProof { .. })
    });
}
