//! Pins the weight root, SKU id and trace root of the two synthetic checkpoints, so that a
//! refactor of the SKU builder or the engine that changes one committed bit fails here.
//! The values were recorded from the engine before the layer refactor of issue #10
//! (commit 7e3a2f9 behaviour); change them only with a spec-version change.

mod common;

use verinfer_prover::{Backend, SynthSpec};

fn roots(spec: &SynthSpec) -> (String, String, String, Vec<Vec<u32>>) {
    let dir = tempfile::tempdir().unwrap();
    let sku = common::sku_of(spec, dir.path());
    let engine = common::engine(&sku, Backend::Cpu);
    let shard = common::shard(sku.config().valid_vocab as u32, 3);
    let out = engine.run(&shard).unwrap();
    (
        sku.header().weight_root.to_string(),
        sku.id().to_string(),
        out.trace.trace_root().to_string(),
        out.generated,
    )
}

#[test]
fn tiny_llama_roots_are_pinned() {
    let (weight_root, sku_id, trace_root, generated) = roots(&SynthSpec::tiny_llama());
    assert_eq!(
        weight_root,
        "0x2eb9414b3416fe5a96bd6ef38aff773e4ff966b260d9b19681beb031dd912e1b"
    );
    assert_eq!(
        sku_id,
        "0x9620da4a62eca3e4b2521d01b251273b32c3433017006b2a16c697ecd555fad8"
    );
    assert_eq!(
        trace_root,
        "0xa513799a1d854df0edfc1cb5e6b949001be8ea36b5eae91f0d15d2f4d67a3c54"
    );
    assert_eq!(
        generated,
        [[161, 215, 201], [91, 232, 109], [195, 208, 242]]
    );
}

#[test]
fn tiny_qwen2_roots_are_pinned() {
    let (weight_root, sku_id, trace_root, generated) = roots(&SynthSpec::tiny_qwen2());
    assert_eq!(
        weight_root,
        "0x05b52db24631580d167542ef78a5d607e037849aeb7ade557e32bdb6a67ab124"
    );
    assert_eq!(
        sku_id,
        "0x5ff012c3632c39a8b718dbc3ec0b3206c2bae3121a292a7a755c0970f3682226"
    );
    assert_eq!(
        trace_root,
        "0x48c5e695df7b11d521cff7c14a3a07c2f3ff3c0c8e5df3ad81737b9206624cb9"
    );
    assert_eq!(
        generated,
        [[238, 238, 238], [101, 101, 101], [145, 145, 145]]
    );
}
