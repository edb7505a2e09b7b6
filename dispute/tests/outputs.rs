//! Output challenges against the L1: the completions of a real run (one prompt stopped by an
//! EOS id, the others by the round limit) are consistent with the receipt's own trace at every
//! index; a changed token, a truncated completion, a token appended after the end and a
//! completion for a prompt that does not exist are each judged fraud by `StepProver.checkOutput`
//! in revm.

mod common;

use alloy::primitives::Bytes;
use common::{build_sku, prompts, Chain};
use verinfer_dispute::{Opener, OutputContext, OutputProof};
use verinfer_primitives::job::completion_leaf_bytes;
use verinfer_primitives::merkle::row_leaf;
use verinfer_primitives::SparseMerkleTree;
use verinfer_prover::{Backend, Engine, Shard, SynthSpec};

/// The proof and context as they would be for a receipt whose completions are `outputs`.
fn with_outputs(
    c: &OutputContext,
    p: &OutputProof,
    outputs: &[Vec<u32>],
) -> (OutputContext, OutputProof) {
    let tree = SparseMerkleTree::from_indexed_leaves(
        outputs
            .iter()
            .enumerate()
            // An empty completion is committed as no leaf (a hash of empty bytes could not be
            // opened on chain at all, which would only make the cheater time out).
            .filter(|(_, g)| !g.is_empty())
            .map(|(i, g)| (i as u64, row_leaf(&completion_leaf_bytes(g))))
            .collect(),
    )
    .unwrap();
    let at = c.prompt as u64;
    let mut c2 = c.clone();
    c2.outputRoot = tree.root();
    let mut p2 = p.clone();
    p2.completion = Bytes::from(
        outputs
            .get(at as usize)
            .map(|g| completion_leaf_bytes(g))
            .unwrap_or_default(),
    );
    p2.completionProof = if tree.depth() < 64 && at >> tree.depth() != 0 {
        let m = at & ((1 << tree.depth()) - 1);
        let mut v = vec![tree.leaf(m)];
        v.extend(tree.proof(m).unwrap().siblings);
        v
    } else {
        tree.proof(at).unwrap().siblings
    };
    (c2, p2)
}

/// The stop rule: 1 to `rounds` tokens, no EOS before the last, ending on EOS or the limit.
fn stops_right(o: &[u32], eos: u32, rounds: usize) -> bool {
    let g = o.len();
    (1..=rounds).contains(&g)
        && o[..g - 1].iter().all(|&t| t != eos)
        && (g == rounds || o[g - 1] == eos)
}

#[test]
fn completions_must_match_the_trace() {
    let spec = SynthSpec::tiny_qwen2();
    let rounds = 3;
    let shard = Shard {
        prompts: prompts(spec.tokenizer_vocab as u32),
        max_new_tokens: rounds,
    };
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let sku = build_sku(&spec, dir.path(), None);
        Engine::new(sku, Backend::Reference)
            .unwrap()
            .run(&shard)
            .unwrap()
            .generated[1][0]
    };
    let dir = tempfile::tempdir().unwrap();
    let sku = build_sku(&spec, dir.path(), Some(&[first]));
    let opener = Opener::new(
        Engine::new(sku.clone(), Backend::Reference).unwrap(),
        shard.clone(),
    )
    .unwrap();
    let mut chain = Chain::new(&sku);
    let generated = opener.generated().to_vec();
    assert_eq!(generated[1], vec![first], "prompt 1 stops on its EOS id");
    let mut honest = 0;
    let mut frauds = 0;
    for prompt in 0..=shard.prompts.len() as u32 {
        let g = generated.get(prompt as usize).map_or(0, Vec::len) as u32;
        for j in 0..=g + 1 {
            let c = opener.output_context(prompt, j);
            let p = opener.open_output(prompt, j).unwrap();
            let verdict = chain.check_output(&c, &p).unwrap();
            assert!(
                !verdict,
                "prompt {prompt} index {j}: honest completion judged fraud"
            );
            honest += 1;
        }
        let c = opener.output_context(prompt, 0);
        let mut bad: Vec<Vec<Vec<u32>>> = Vec::new();
        if let Some(real) = generated.get(prompt as usize) {
            // A changed token at every index.
            for j in 0..real.len() {
                let mut o = generated.clone();
                // Never an EOS id, so only index j itself changes.
                let mut t = (real[j] + 1) % spec.tokenizer_vocab as u32;
                if t == first {
                    t = (t + 1) % spec.tokenizer_vocab as u32;
                }
                o[prompt as usize][j] = t;
                bad.push(o);
            }
            // Truncated (the last token was an EOS id or the round limit; now neither).
            let mut o = generated.clone();
            o[prompt as usize].pop();
            bad.push(o);
            // A token appended past the end.
            let mut o = generated.clone();
            o[prompt as usize].push(1);
            bad.push(o);
        } else {
            // A completion for a prompt the shard does not have.
            let mut o = generated.clone();
            o.push(vec![1]);
            bad.push(o);
        }
        for outputs in &bad {
            // Challenge every index of the tampered completion: each must be found.
            let len = outputs.get(prompt as usize).map_or(0, Vec::len) as u32;
            for j in 0..=len {
                let p0 = opener.open_output(prompt, j).unwrap();
                let (c2, p2) = with_outputs(&OutputContext { j, ..c.clone() }, &p0, outputs);
                let verdict = chain.check_output(&c2, &p2).unwrap();
                // A broken stop rule shows at any index, a changed token at its own index.
                let want = match (outputs.get(prompt as usize), generated.get(prompt as usize)) {
                    (Some(o), Some(r)) => {
                        !stops_right(o, first, rounds) || o.get(j as usize) != r.get(j as usize)
                    }
                    _ => true,
                };
                let changed_here = want;
                assert_eq!(
                    verdict, changed_here,
                    "prompt {prompt} index {j}: tampered completion {outputs:?}"
                );
                frauds += usize::from(verdict);
            }
        }
    }
    eprintln!("{honest} honest completions proven, {frauds} frauds caught");
    assert!(honest >= 12 && frauds >= 10);
}
