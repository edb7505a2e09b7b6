//! End-to-end engine tests on synthetic HF checkpoints: determinism, trace, openings, errors.

mod common;

use alloy_primitives::{Address, B256};
use common::{engine, shard, sku_of};
use verinfer_primitives::arith;
use verinfer_primitives::merkle::row_leaf;
use verinfer_prover::{Backend, LayerOp, ProverError, StepKind, SynthSpec, Tensor};

#[test]
fn llama_runs_deterministically_across_runs_threads_and_backends() {
    let dir = tempfile::tempdir().unwrap();
    let sku = sku_of(&SynthSpec::tiny_llama(), dir.path());
    let sh = shard(sku.config().valid_vocab as u32, 6);
    let cpu = engine(&sku, Backend::Cpu);
    let a = cpu.run(&sh).unwrap();
    let b = cpu.run(&sh).unwrap();
    let one = engine(&sku, Backend::Cpu).with_threads(1).run(&sh).unwrap();
    let two = engine(&sku, Backend::Portable)
        .with_threads(2)
        .run(&sh)
        .unwrap();
    let reference = engine(&sku, Backend::Reference).run(&sh).unwrap();
    for other in [&b, &one, &two, &reference] {
        assert_eq!(a.generated, other.generated);
        assert_eq!(a.trace.output_roots(), other.trace.output_roots());
        assert_eq!(a.trace.trace_root(), other.trace.trace_root());
    }
    assert_eq!(a.generated.len(), 3);
    for g in &a.generated {
        assert!(!g.is_empty() && g.len() <= 6);
        assert!(g.iter().all(|&t| (t as usize) < sku.config().valid_vocab));
    }
    // Every step was committed; the first steps of a round are non-empty.
    let program = cpu.program(&sh);
    assert_eq!(a.trace.output_roots().len() as u64, program.step_count());
    assert!(a.trace.output_roots()[..program.steps_per_round() as usize]
        .iter()
        .all(|r| *r != B256::ZERO));
    let tokens: u64 = sh.prompts.iter().map(|p| p.len() as u64).sum::<u64>()
        + a.generated.iter().map(|g| g.len() as u64).sum::<u64>();
    assert_eq!(a.tokens_processed, tokens);
    let r = a.receipt(B256::repeat_byte(9), 4, sku.id(), Address::repeat_byte(1));
    assert_eq!(
        (r.stepCount, r.tokensProcessed, r.traceRoot),
        (program.step_count(), tokens, a.trace.trace_root())
    );
    assert_eq!(r.inputRoot, sh.input_root());
    // A different prompt changes the trace.
    let mut sh2 = sh.clone();
    sh2.prompts[1][0] += 1;
    assert_ne!(
        cpu.run(&sh2).unwrap().trace.trace_root(),
        a.trace.trace_root()
    );
}

#[test]
fn reproduced_steps_open_against_the_trace_and_recompute() {
    let dir = tempfile::tempdir().unwrap();
    let sku = sku_of(&SynthSpec::tiny_llama(), dir.path());
    let cfg = sku.config().clone();
    let sh = shard(cfg.valid_vocab as u32, 3);
    let eng = engine(&sku, Backend::Cpu);
    let run = eng.run(&sh).unwrap();
    let p = eng.program(&sh);
    let state = run.trace.trace_root();
    // Decode-round steps (round 1) of layer 1: norm, GEMM, softmax, pv.
    let id = |op| p.step_id(1, StepKind::Layer { layer: 1, op });
    for s in [
        id(LayerOp::AttnNorm),
        id(LayerOp::Gate),
        id(LayerOp::Softmax),
        id(LayerOp::Pv),
        p.step_id(1, StepKind::Argmax),
    ] {
        let o = eng.reproduce_step(&sh, s).unwrap();
        assert_eq!(
            o.output.tree.root(),
            run.trace.output_roots()[s as usize],
            "step {s}"
        );
        o.state_proof_post
            .verify(o.post_state_root, o.output.tree.root(), p.step_count())
            .unwrap();
        o.state_proof_pre
            .verify(o.pre_state_root, B256::ZERO, p.step_count())
            .unwrap();
        assert_eq!(run.trace.state_root(Some(s)).unwrap(), o.post_state_root);
        // The output opens against the final trace root too.
        run.trace.proof(s, None).ok();
        run.trace
            .proof(s, Some(p.step_count() - 1))
            .unwrap()
            .verify(state, o.output.tree.root(), p.step_count())
            .unwrap();
        let last = *o.output.addresses.last().unwrap();
        o.output
            .proof(last)
            .unwrap()
            .verify(
                o.output.tree.root(),
                row_leaf(&o.output.row_bytes(last)),
                o.output.tree.len(),
            )
            .unwrap();
        for inp in &o.inputs {
            assert_eq!(inp.tree.root(), run.trace.output_roots()[inp.step as usize]);
        }
    }
    // One softmax row recomputed from its opened inputs (scores row + q scale) with the table.
    let s = id(LayerOp::Softmax);
    let o = eng.reproduce_step(&sh, s).unwrap();
    let (Tensor::Scores(scores), Tensor::Q { scales, .. }, Tensor::Probs(probs)) =
        (&o.inputs[0].tensor, &o.inputs[1].tensor, &o.output.tensor)
    else {
        panic!("unexpected tensor kinds");
    };
    let exp2 = sku.vec_u32("exp2").unwrap();
    for r in 0..probs.len() {
        assert_eq!(
            arith::softmax_row(&scores[r], scales[r], cfg.softmax_c, &exp2),
            probs[r]
        );
    }
    // One GEMM element recomputed from the activation row and the weight row.
    let g = eng.reproduce_step(&sh, id(LayerOp::Gate)).unwrap();
    let (Tensor::Q { cols, values, .. }, Tensor::I32 { cols: n, data }) =
        (&g.inputs[0].tensor, &g.output.tensor)
    else {
        panic!("unexpected tensor kinds");
    };
    let w = sku.matrix("layers.1.gate").unwrap();
    let (i, j) = (0, n - 1);
    assert_eq!(
        arith::gemm_element(
            &values[i * cols..(i + 1) * cols],
            &w[j * cols..(j + 1) * cols]
        ),
        data[i * n + j]
    );
    assert!(matches!(
        eng.reproduce_step(&sh, p.step_count()),
        Err(ProverError::StepOutOfRange { .. })
    ));
}

#[test]
fn qwen2_with_bias_and_tied_embeddings_runs() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec::tiny_qwen2();
    let sku = sku_of(&spec, dir.path());
    assert!(sku.config().qkv_bias);
    assert_eq!((sku.config().vocab, sku.config().valid_vocab), (320, 300));
    let sh = shard(300, 4);
    let a = engine(&sku, Backend::Cpu).run(&sh).unwrap();
    let b = engine(&sku, Backend::Reference)
        .with_threads(1)
        .run(&sh)
        .unwrap();
    assert_eq!(a.generated, b.generated);
    assert_eq!(a.trace.trace_root(), b.trace.trace_root());
    assert!(a.generated.iter().flatten().all(|&t| t < 300));
}

#[test]
fn eos_stops_a_prompt_and_keeps_the_step_count() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec::tiny_llama();
    let sku = sku_of(&spec, dir.path());
    let sh = shard(sku.config().valid_vocab as u32, 5);
    let first = engine(&sku, Backend::Cpu).run(&sh).unwrap();
    // Make the first token generated for prompt 0 the EOS id and rebuild.
    let eos = first.generated[0][0];
    let dir2 = tempfile::tempdir().unwrap();
    spec.write(dir2.path()).unwrap();
    let cfg_path = dir2.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["eos_token_id"] = serde_json::json!([eos, 9999]);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let ck = verinfer_prover::Checkpoint::open(dir2.path()).unwrap();
    let sku2 = std::sync::Arc::new(
        verinfer_prover::Sku::from_bytes(
            verinfer_prover::sku::build(&ck, &verinfer_prover::BuildOptions { max_seq: 128 })
                .unwrap(),
        )
        .unwrap(),
    );
    assert_ne!(sku2.id(), sku.id(), "the EOS ids are part of the SKU id");
    let run = engine(&sku2, Backend::Cpu).run(&sh).unwrap();
    assert_eq!(run.generated[0], vec![eos]);
    for (p, g) in run.generated.iter().enumerate() {
        let stop = g.iter().position(|t| *t == eos).map_or(g.len(), |i| i + 1);
        assert_eq!(g, &first.generated[p][..stop].to_vec());
    }
    assert_eq!(run.trace.step_count(), first.trace.step_count());
}

#[test]
fn bad_shards_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let sku = sku_of(&SynthSpec::tiny_llama(), dir.path());
    let eng = engine(&sku, Backend::Cpu);
    let bad = |prompts: Vec<Vec<u32>>, n: usize| {
        eng.run(&verinfer_prover::Shard {
            prompts,
            max_new_tokens: n,
        })
        .unwrap_err()
    };
    assert!(bad(vec![], 1).to_string().contains("no prompts"));
    assert!(bad(vec![vec![]], 1).to_string().contains("empty"));
    assert!(bad(vec![vec![5000]], 1).to_string().contains("5000"));
    assert!(bad(vec![vec![1; 120]], 20).to_string().contains("max_seq"));
    assert!(bad(vec![vec![1]], 0).to_string().contains("max_new_tokens"));
}
