//! Row addresses (spec v2): every row of every step's tensor sits at the leaf index that encodes
//! its (prompt, position[, head]), and opens there against the trace.

mod common;

use alloy_primitives::B256;
use common::{engine, shard, sku_of, sku_with_eos};
use verinfer_primitives::merkle::row_leaf;
use verinfer_primitives::MerkleTree;
use verinfer_prover::{
    Backend, LayerOp, RowAddresses, RowLayout, Shard, StepKind, SynthSpec, Tensor,
};

/// The positions a round processes for prompt `p`, or none when the prompt is not active.
/// `generated[p].len()` is the number of rounds prompt `p` took part in.
fn positions(sh: &Shard, generated: &[Vec<u32>], p: usize, round: usize) -> Vec<usize> {
    let len = sh.prompts[p].len();
    if generated[p].len() <= round {
        vec![]
    } else if round == 0 {
        (0..len).collect()
    } else {
        vec![len + round - 1]
    }
}

/// The addresses the rows of `kind` in `round` must have.
fn expected(
    at: &RowAddresses,
    sh: &Shard,
    generated: &[Vec<u32>],
    round: usize,
    kind: StepKind,
) -> Vec<u64> {
    let logits_only = matches!(
        kind,
        StepKind::FinalNorm | StepKind::LmHead | StepKind::Argmax
    );
    let heads = match kind.layout() {
        RowLayout::Token => 1,
        RowLayout::QueryHead => at.heads as usize,
        RowLayout::KvHead => at.kv_heads as usize,
    };
    let mut v = Vec::new();
    for p in 0..sh.prompts.len() {
        let mut pos = positions(sh, generated, p, round);
        if logits_only {
            pos = pos.last().copied().into_iter().collect();
        }
        for u in pos {
            for h in 0..heads {
                v.push(at.leaf(kind.layout(), p, u, h));
            }
        }
    }
    v
}

#[test]
fn every_step_places_its_rows_at_their_addresses() {
    let spec = SynthSpec::tiny_llama();
    let dir = tempfile::tempdir().unwrap();
    let base = sku_of(&spec, dir.path());
    let rounds = 4;
    let sh = shard(base.config().valid_vocab as u32, rounds);
    // Make prompt 0 stop early: its second generated token becomes an EOS id.
    let first = engine(&base, Backend::Cpu).run(&sh).unwrap();
    let eos = first.generated[0][1];
    let dir2 = tempfile::tempdir().unwrap();
    let sku = sku_with_eos(&spec, dir2.path(), &[eos]);
    let eng = engine(&sku, Backend::Cpu);
    let run = eng.run(&sh).unwrap();
    assert!(
        run.generated.iter().any(|g| g.len() < rounds),
        "some prompt stops on EOS: {:?}",
        run.generated
    );
    assert!(run.generated.iter().any(|g| g.len() == rounds));
    let at = eng.addresses();
    assert_eq!(
        (at.max_seq, at.heads, at.kv_heads),
        (128, spec.heads as u64, spec.kv_heads as u64)
    );
    let program = eng.program(&sh);
    let roots = run.trace.output_roots();
    let group = spec.heads / spec.kv_heads;
    for s in 0..program.step_count() {
        let info = program.step(s).unwrap();
        let o = eng.reproduce_step(&sh, s).unwrap();
        let out = &o.output;
        let want = expected(&at, &sh, &run.generated, info.round, info.kind);
        assert_eq!(out.addresses, want, "rows of step {}", info.label());
        assert_eq!(out.tensor.rows(), want.len());
        assert_eq!(
            out.root(),
            roots[s as usize],
            "root of step {}",
            info.label()
        );
        if want.is_empty() {
            assert_eq!(out.root(), B256::ZERO);
        }
        // Every present row opens at its address against the trace's output root.
        for (i, &a) in want.iter().enumerate() {
            let bytes = out.row_bytes(a);
            assert_eq!(bytes, out.tensor.row_bytes(i));
            let proof = out.proof(a).unwrap();
            assert_eq!(proof.index, a);
            proof
                .verify(roots[s as usize], row_leaf(&bytes), out.tree.len())
                .unwrap();
        }
        // An address without a row opens as the zero leaf (when the tree has room for one).
        let span = 1u64 << out.tree.depth();
        if let Some(gap) = (0..span).find(|a| !want.contains(a)) {
            assert!(out.row_bytes(gap).is_empty());
            assert_eq!(
                out.proof(gap).unwrap().compute_root(B256::ZERO),
                roots[s as usize]
            );
        }
        for inp in &o.inputs {
            assert_eq!(inp.root(), roots[inp.step as usize]);
        }
        // Scores/pv: every key/value row a row reads opens by address in the rope_k/value
        // input of the round that processed that position.
        if let StepKind::Layer {
            layer,
            op: op @ (LayerOp::Scores | LayerOp::Pv),
        } = info.kind
        {
            let kv_op = if op == LayerOp::Scores {
                LayerOp::RopeK
            } else {
                LayerOp::Value
            };
            for &a in &want {
                let (p, pos, h) = at.locate(RowLayout::QueryHead, a).unwrap();
                let (p, pos, h) = (p as usize, pos as usize, h as usize);
                for u in 0..=pos {
                    let r = sh.round_of(p, u).unwrap();
                    let kv_step = program.step_id(r, StepKind::Layer { layer, op: kv_op });
                    let inp = o.inputs.iter().find(|i| i.step == kv_step).unwrap();
                    let ka = at.kv_head(p, u, h / group);
                    let row = inp.row_bytes(ka);
                    assert_eq!(row.len(), 4 * spec.hidden / spec.heads, "{p} {u} {h}");
                    inp.proof(ka)
                        .unwrap()
                        .verify(inp.root(), row_leaf(&row), inp.tree.len())
                        .unwrap();
                }
            }
        }
    }
    // Spot checks of the rule itself.
    let s = |r: usize, k| program.step_id(r, k);
    let open = |step| eng.reproduce_step(&sh, step).unwrap().output;
    let embed0 = open(s(0, StepKind::Embed));
    let lens: Vec<usize> = sh.prompts.iter().map(Vec::len).collect();
    let mut want0 = Vec::new();
    for (p, &len) in lens.iter().enumerate() {
        want0.extend((0..len).map(|u| p as u64 * 128 + u as u64));
    }
    assert_eq!(embed0.addresses, want0);
    let argmax0 = open(s(0, StepKind::Argmax));
    let last: Vec<u64> = lens
        .iter()
        .enumerate()
        .map(|(p, &len)| p as u64 * 128 + len as u64 - 1)
        .collect();
    assert_eq!(argmax0.addresses, last);
    let Tensor::Tokens(t0) = &argmax0.tensor else {
        panic!("argmax rows are tokens")
    };
    let firsts: Vec<u32> = run.generated.iter().map(|g| g[0]).collect();
    assert_eq!(t0, &firsts);
    for r in 1..rounds {
        let active: Vec<u64> = (0..lens.len())
            .filter(|&p| run.generated[p].len() > r)
            .map(|p| p as u64 * 128 + (lens[p] + r - 1) as u64)
            .collect();
        assert_eq!(open(s(r, StepKind::Embed)).addresses, active);
    }
}

#[test]
fn input_root_is_the_sequencer_prompts_root() {
    let sh = shard(200, 2);
    let leaves: Vec<Vec<u8>> = sh
        .prompts
        .iter()
        .map(|p| {
            let mut v = vec![0x01u8];
            for id in p {
                v.extend_from_slice(&id.to_be_bytes());
            }
            v
        })
        .collect();
    let want = MerkleTree::from_rows(leaves.iter().map(Vec::as_slice)).root();
    assert_eq!(sh.input_root(), want);
    let prompts: Vec<_> = sh
        .prompts
        .iter()
        .cloned()
        .map(verinfer_primitives::job::Prompt::Tokens)
        .collect();
    assert_eq!(
        sh.input_root(),
        verinfer_primitives::job::prompts_root(&prompts)
    );
    assert_eq!(sh.round_of(1, 2), Some(0));
    assert_eq!(sh.round_of(1, 3), Some(1));
    assert_eq!(sh.round_of(1, 4), None);
    assert_eq!(sh.round_of(9, 0), None);
}
