//! The real Llama-3 and Qwen2.5 tokenizers (npm @lenml packages) against llama.cpp's test
//! vectors in ../shared/golden, through the `tokenizers` crate exactly as the engine loads them.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn tokenizer_json(package: &str) -> PathBuf {
    let base = std::env::var_os("VERINFER_TOKENIZERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/npm/node_modules/@lenml"));
    let p = base.join(package).join("models/tokenizer.json");
    assert!(
        p.exists(),
        "{} missing: run ops/setup.sh (installs the npm tokenizer packages)",
        p.display()
    );
    p
}

fn check(package: &str, vectors: &str) {
    // The vectors are required: a missing directory fails the test instead of skipping it.
    let golden = std::env::var_os("VERINFER_GOLDEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/golden"));
    assert!(
        golden.join(format!("{vectors}.inp")).exists(),
        "golden vectors {vectors}.inp missing in {} (set VERINFER_GOLDEN to their directory)",
        golden.display()
    );
    let tok = tokenizers::Tokenizer::from_file(tokenizer_json(package)).unwrap();
    let inp = std::fs::read_to_string(golden.join(format!("{vectors}.inp"))).unwrap();
    let out = std::fs::read_to_string(golden.join(format!("{vectors}.out"))).unwrap();
    let mut inputs: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    if inputs.last() == Some(&"") {
        inputs.pop();
    }
    let expected: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        inputs.len(),
        expected.len(),
        "{vectors}: inputs and outputs do not pair up"
    );
    for (text, want) in inputs.iter().zip(&expected) {
        let got = tok.encode(*text, false).unwrap().get_ids().to_vec();
        assert_eq!(&got, want, "{vectors}: input {text:?}");
    }
    eprintln!("{package}: {} golden vectors pass", inputs.len());
}

#[test]
fn llama3_tokenizer_matches_golden_vectors() {
    check("tokenizer-llama3", "ggml-vocab-llama-bpe.gguf");
}

#[test]
fn qwen_tokenizer_matches_golden_vectors() {
    check("tokenizer-qwen3", "ggml-vocab-qwen2.gguf");
}
