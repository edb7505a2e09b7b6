//! The engine against the L1: every step of real traces (tiny Llama and Qwen2 SKUs, prompts of
//! different lengths, decode rounds, a prompt stopped by EOS) is opened by `Opener` and checked
//! by the Solidity `StepProver` in revm. Honest openings of every present row (and of absent
//! rows, in range and past the tree) must be proven; a tampered output row (or a row where none
//! should be) must be found fraudulent.

mod common;

use alloy::primitives::keccak256;
use alloy::primitives::{Bytes, B256};
use common::{build_sku, prompts, Chain, FOLD_CHUNK};
use verinfer_dispute::{recast, FoldContext};
use verinfer_dispute::{Opener, StepContext, StepProof};
use verinfer_primitives::merkle::{row_chunks, row_leaf, ROW_CHUNK};
use verinfer_primitives::{MerkleProof, SparseMerkleTree};
use verinfer_prover::{Backend, Engine, Shard, StepKind, StepOpening, SynthSpec};

/// Replaces the named output row of `p` by `row` (empty: no row) and returns the context of the
/// trace that would commit it.
fn tamper(op: &StepOpening, c: &StepContext, p: &mut StepProof, row: Vec<u8>) -> StepContext {
    let at = c.row as u64;
    let mut leaves: Vec<(u64, B256)> = op
        .output
        .addresses
        .iter()
        .filter(|&&a| a != at)
        .map(|&a| (a, op.output.leaf(a)))
        .collect();
    if !row.is_empty() {
        leaves.push((at, row_leaf(&row)));
        leaves.sort_by_key(|l| l.0);
    }
    let tree = SparseMerkleTree::from_indexed_leaves(leaves).unwrap();
    let (root, proof) = (tree.root(), tree.proof(at).unwrap().siblings);
    let step_proof = op.state_proof_post.clone();
    let mut c2 = c.clone();
    c2.hiRoot = MerkleProof {
        index: step_proof.index,
        siblings: step_proof.siblings,
    }
    .compute_root(root);
    let bytes = Bytes::from(row);
    match p {
        StepProof::Gemm(g) => {
            g.outRoot = root;
            g.outRowProof = proof;
            // A long row is opened by the chunk holding the named column (col 0 here).
            if bytes.len() > ROW_CHUNK {
                let chunks = row_chunks(&bytes);
                g.outChunkRoot = chunks.root();
                g.outChunkProof = chunks.proof(0).unwrap().siblings;
                g.outRow = Bytes::copy_from_slice(&bytes[..ROW_CHUNK]);
            } else {
                g.outChunkRoot = B256::ZERO;
                g.outChunkProof = Vec::new();
                g.outRow = bytes;
            }
        }
        StepProof::Row(r) => {
            r.outRoot = root;
            r.outRow = bytes;
            r.outRowProof = proof;
        }
    }
    c2
}

/// Flips one byte of the element the entry names (GEMM: 4-byte column, scores: 8-byte column)
/// or of the row's last byte.
fn corrupt(kind: StepKind, is_scores: bool, is_gemm: bool, mut row: Vec<u8>, col: u32) -> Vec<u8> {
    let at = if is_gemm {
        col as usize * 4 + 3
    } else if is_scores {
        col as usize * 8 + 7
    } else {
        row.len() - 1
    };
    let _ = kind;
    row[at] ^= 0x01;
    row
}

struct Tally {
    honest: usize,
    frauds: usize,
    folds: usize,
}

/// Every present row of a pv, silu_mul or argmax step, settled by folding instead: the final accumulator passes the
/// final link, every chunk transition is proven, a tampered accumulator after any chunk is fraud,
/// and a final accumulator off by one is caught by the final link or the last chunk.
fn check_folds(opener: &Opener, chain: &mut Chain, op: &StepOpening) -> usize {
    let mut checked = 0;
    let step = op.info.step;
    for &row in &op.output.addresses {
        let row = row as u32;
        let c = opener.context(step, row, 0).unwrap();
        let (p, last) = opener.open_fold(op, row, FOLD_CHUNK).unwrap();
        let states = opener.fold_states(op, row, FOLD_CHUNK).unwrap();
        let (fraud, chunks, init) = chain.fold_start(&c, &p, &last).unwrap();
        assert!(
            !fraud,
            "{} row {row}: honest final accumulator judged fraud",
            op.info.label()
        );
        assert_eq!(chunks as usize, states.len() - 1, "chunk count");
        assert_eq!(init, keccak256(&states[0]), "zero accumulator");
        for lo in 0..chunks {
            let mut f = FoldContext {
                step: recast(&c).unwrap(),
                lo,
                loHash: keccak256(&states[lo as usize]),
                hiHash: keccak256(&states[lo as usize + 1]),
                finalHash: keccak256(&last),
            };
            let mut s = opener.open_fold_chunk(op, row, FOLD_CHUNK, lo).unwrap();
            assert!(
                !chain.fold_step(&f, &s).unwrap(),
                "{} row {row} chunk {lo}: honest",
                op.info.label()
            );
            let mut bad = s.hiState.to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            s.hiState = bad.into();
            f.hiHash = keccak256(&s.hiState);
            assert!(
                chain.fold_step(&f, &s).unwrap(),
                "{} row {row} chunk {lo}: tampered",
                op.info.label()
            );
            checked += 2;
        }
        let mut off = last.to_vec();
        let end = off.len() - 1;
        off[end] ^= 1;
        let off = Bytes::from(off);
        let (final_fraud, _, _) = chain.fold_start(&c, &p, &off).unwrap();
        let lo = chunks - 1;
        let f = FoldContext {
            step: recast(&c).unwrap(),
            lo,
            loHash: keccak256(&states[lo as usize]),
            hiHash: keccak256(&off),
            finalHash: keccak256(&off),
        };
        let mut s = opener.open_fold_chunk(op, row, FOLD_CHUNK, lo).unwrap();
        s.hiState = off.clone();
        s.finalState = off;
        let last_fraud = chain.fold_step(&f, &s).unwrap();
        assert!(
            final_fraud || last_fraud,
            "{} row {row}: wrong final accumulator escaped",
            op.info.label()
        );
        checked += 1;
    }
    checked
}

fn check_every_step(spec: SynthSpec, eos: Option<Vec<u32>>, shard: Shard) -> Tally {
    let spec_name = format!("{:?}", spec.arch);
    let dir = tempfile::tempdir().unwrap();
    let sku = build_sku(&spec, dir.path(), eos.as_deref());
    let engine = Engine::new(sku.clone(), Backend::Reference).unwrap();
    let opener = Opener::new(engine, shard.clone()).unwrap();
    let mut chain = Chain::new(&sku);
    let addrs = opener.addresses();
    let mut tally = Tally {
        honest: 0,
        frauds: 0,
        folds: 0,
    };
    for step in 0..opener.program().step_count() {
        let op = opener.reproduce(step).unwrap();
        let kind = op.info.kind;
        let is_gemm = matches!(kind, StepKind::LmHead)
            || matches!(kind, StepKind::Layer { op: l, .. } if l.matrix().is_some());
        let is_pv = matches!(
            kind,
            StepKind::Layer {
                op: verinfer_prover::LayerOp::Pv,
                ..
            }
        );
        let is_scores = matches!(
            kind,
            StepKind::Layer {
                op: verinfer_prover::LayerOp::Scores,
                ..
            }
        );
        let present: Vec<u64> = op.output.addresses.clone();
        // Absent rows: the slot after a prompt's last token, and far past every tree.
        let per_token = match kind.layout() {
            verinfer_prover::RowLayout::Token => 1,
            verinfer_prover::RowLayout::QueryHead => addrs.heads,
            verinfer_prover::RowLayout::KvHead => addrs.kv_heads,
        };
        let after_first = addrs.token(0, shard.prompts[0].len() + shard.max_new_tokens) * per_token;
        let absent = [after_first, 1 << 30];
        for &row in present.iter().chain(absent.iter()) {
            let row32 = row as u32;
            let cols: Vec<u32> = if is_gemm {
                let n = present
                    .first()
                    .map_or(0, |&a| op.output.row_bytes(a).len() as u32 / 4);
                vec![0, n.saturating_sub(1), n]
            } else if is_scores {
                let pos = (row / addrs.heads) % addrs.max_seq;
                vec![0, pos as u32, pos as u32 + 1]
            } else {
                vec![0]
            };
            for &col in &cols {
                let c = opener.context(step, row32, col).unwrap();
                let p = opener.open(&op, row32, col).unwrap();
                let verdict = chain
                    .check(&c, &p)
                    .unwrap_or_else(|e| panic!("{} row {row} col {col}: {e}", op.info.label()));
                assert!(
                    !verdict,
                    "{} row {row} col {col}: honest opening judged fraud",
                    op.info.label()
                );
                tally.honest += 1;
            }
        }
        let is_silu = matches!(
            kind,
            StepKind::Layer {
                op: verinfer_prover::LayerOp::SiluMul,
                ..
            }
        );
        if is_pv || is_silu || matches!(kind, StepKind::Argmax) {
            tally.folds += check_folds(&opener, &mut chain, &op);
        }
        // One tampered present row per step (the first), and a row invented where none is.
        if let Some(&row) = present.first() {
            let col = 0;
            let c = opener.context(step, row as u32, col).unwrap();
            let mut p = opener.open(&op, row as u32, col).unwrap();
            let bad = corrupt(kind, is_scores, is_gemm, op.output.row_bytes(row), col);
            let c2 = tamper(&op, &c, &mut p, bad);
            let verdict = chain.check(&c2, &p).unwrap();
            assert!(
                verdict,
                "{} row {row}: tampered row not caught",
                op.info.label()
            );
            tally.frauds += 1;

            let c = opener.context(step, after_first as u32, 0).unwrap();
            let mut p = opener.open(&op, after_first as u32, 0).unwrap();
            let c2 = tamper(&op, &c, &mut p, op.output.row_bytes(row));
            let verdict = chain.check(&c2, &p).unwrap();
            assert!(
                verdict,
                "{} row {after_first}: invented row not caught",
                op.info.label()
            );
            tally.frauds += 1;
        }
    }
    eprintln!(
        "{}: {} honest openings proven, {} frauds caught, {} fold checks",
        spec_name, tally.honest, tally.frauds, tally.folds
    );
    tally
}

#[test]
fn every_step_of_a_llama_trace_settles() {
    let spec = SynthSpec::tiny_llama();
    let shard = Shard {
        prompts: prompts(spec.tokenizer_vocab as u32),
        max_new_tokens: 3,
    };
    let t = check_every_step(spec, None, shard);
    assert!(
        t.honest > 1000 && t.frauds > 100,
        "{} honest, {} frauds",
        t.honest,
        t.frauds
    );
}

#[test]
fn every_step_of_a_qwen2_trace_with_eos_settles() {
    let spec = SynthSpec::tiny_qwen2();
    let shard = Shard {
        prompts: prompts(spec.tokenizer_vocab as u32),
        max_new_tokens: 3,
    };
    // Make the first token prompt 1 generates an EOS id, so it stops after round 0.
    let dir = tempfile::tempdir().unwrap();
    let sku = build_sku(&spec, dir.path(), None);
    let first = Engine::new(sku, Backend::Reference)
        .unwrap()
        .run(&shard)
        .unwrap()
        .generated[1][0];
    let t = check_every_step(spec, Some(vec![first]), shard);
    assert!(
        t.honest > 1000 && t.frauds > 100,
        "{} honest, {} frauds",
        t.honest,
        t.frauds
    );
}
