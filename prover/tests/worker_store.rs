//! The worker's storage and recompute cost per shard (docs/WORKER.md), on the tiny synthetic
//! Llama: one shard run and signed through `worker::exec`, stored in the worker's redb, then
//! steps replayed the way the data API serves them. Prints the figures (`--nocapture`) and
//! checks that replays reproduce the signed trace exactly.

use std::sync::Arc;
use std::time::Instant;

use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256};
use verinfer_primitives::job::{domain, prompts_root, shard_id, Prompt};
use verinfer_prover::worker::exec::{self, Engines, Refusal};
use verinfer_prover::worker::store::{ShardState, Store};
use verinfer_prover::{sku, Backend, BuildOptions, Engine, Sku, SynthSpec};
use verinfer_rpc::types::ShardAssignment;

fn assignment(sku: B256, prompts: Vec<Prompt>, n: u64) -> ShardAssignment {
    let job = B256::repeat_byte(0x11);
    ShardAssignment {
        shard_id: shard_id(job, 0),
        job_id: job,
        shard_index: 0,
        sku_id: sku,
        input_root: prompts_root(&prompts),
        prompts,
        max_new_tokens: n,
        deadline_ms: 0,
        attempt: 0,
    }
}

fn engines() -> (tempfile::TempDir, Engines) {
    let dir = tempfile::tempdir().unwrap();
    SynthSpec::tiny_llama().write(dir.path()).unwrap();
    let ck = verinfer_prover::Checkpoint::open(dir.path()).unwrap();
    let bytes = sku::build(&ck, &BuildOptions { max_seq: 64 }).unwrap();
    let sku = Arc::new(Sku::from_bytes(bytes).unwrap());
    let engine = Engine::new(sku, Backend::Cpu).unwrap().with_threads(1);
    let mut e = Engines::new();
    e.insert(engine.sku().id(), Arc::new(engine));
    (dir, e)
}

/// A bad assignment and the refusal it must get.
type Case = (ShardAssignment, fn(&Refusal) -> bool);

#[test]
fn refusals_are_typed() {
    let (_d, engines) = engines();
    let sku = *engines.keys().next().unwrap();
    let vocab = engines[&sku].sku().config().vocab as u32;
    let cases: Vec<Case> = vec![
        (
            assignment(B256::repeat_byte(7), vec![Prompt::Tokens(vec![1])], 2),
            |r| matches!(r, Refusal::UnknownSku(_)),
        ),
        (assignment(sku, vec![Prompt::Text("hi".into())], 2), |r| {
            matches!(r, Refusal::TextPrompt { index: 0 })
        }),
        (assignment(sku, vec![Prompt::Tokens(vec![vocab])], 2), |r| {
            matches!(r, Refusal::Shape(_))
        }),
        (assignment(sku, vec![Prompt::Tokens(vec![3; 60])], 8), |r| {
            matches!(r, Refusal::Shape(_))
        }),
        (assignment(sku, vec![Prompt::Tokens(vec![])], 2), |r| {
            matches!(r, Refusal::Shape(_))
        }),
        (assignment(sku, vec![Prompt::Tokens(vec![3])], 0), |r| {
            matches!(r, Refusal::Shape(_))
        }),
        (
            {
                let mut a = assignment(sku, vec![Prompt::Tokens(vec![3])], 2);
                a.input_root = B256::repeat_byte(1);
                a
            },
            |r| matches!(r, Refusal::InputRoot { .. }),
        ),
        (
            {
                let mut a = assignment(sku, vec![Prompt::Tokens(vec![3])], 2);
                a.shard_id = B256::repeat_byte(1);
                a
            },
            |r| matches!(r, Refusal::ShardId { .. }),
        ),
    ];
    for (a, want) in cases {
        match exec::check(&engines, &a) {
            Err(r) => assert!(want(&r), "unexpected refusal {r}"),
            Ok(_) => panic!("accepted a bad shard: {a:?}"),
        }
    }
}

#[test]
fn storage_and_recompute_cost_per_shard() {
    let (_d, engines) = engines();
    let sku = *engines.keys().next().unwrap();
    let engine = engines[&sku].clone();
    let signer = PrivateKeySigner::random();
    let dom = domain(31337, Address::repeat_byte(1));
    let prompts: Vec<Prompt> = (0..4)
        .map(|i| Prompt::Tokens((0..12).map(|j| 2 + (i * 17 + j * 5) % 250).collect()))
        .collect();
    let n = 8;
    let a = assignment(sku, prompts, n);
    let (e, shard) = exec::check(&engines, &a).unwrap();
    let t = Instant::now();
    let (result, roots) = exec::run_and_sign(&e, &shard, &a, &signer, &dom, 1).unwrap();
    let run_secs = t.elapsed().as_secs_f64();

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let before = std::fs::metadata(dir.path().join("worker.redb"))
        .unwrap()
        .len();
    store.assign(&a).unwrap();
    store.sign(a.shard_id, result.clone(), &roots).unwrap();
    let rec = store.get(a.shard_id).unwrap().unwrap();
    assert!(matches!(rec.state, ShardState::Signed { .. }));
    let record_bytes = serde_json::to_vec(&rec).unwrap().len();
    let trace_bytes = roots.len() * 32;
    let after = std::fs::metadata(dir.path().join("worker.redb"))
        .unwrap()
        .len();
    assert_eq!(store.output_roots(a.shard_id).unwrap().unwrap(), roots);

    // Replays: first, middle and last step, as the data API does for an uncached request.
    let steps = result.receipt.stepCount;
    let mut replay = Vec::new();
    for s in [0, steps / 2, steps - 1] {
        let t = Instant::now();
        let o = engine.reproduce_step(&shard, s).unwrap();
        replay.push((s, t.elapsed().as_secs_f64()));
        assert_eq!(o.output.root(), roots[s as usize], "replay of step {s}");
    }
    println!(
        "shard: 4 prompts x 12 tokens, {n} new, {steps} steps; run {run_secs:.3}s; \
         stored: record {record_bytes} B + trace {trace_bytes} B (32 B/step), redb file \
         {before} -> {after} B; replays (step, s): {replay:?}"
    );
    // What is kept is the record and 32 bytes a step, nothing proportional to the tensors.
    assert!(record_bytes < 8 * 1024);
    assert_eq!(trace_bytes as u64, steps * 32);
}
