//! Loading refuses what the engine cannot run exactly, naming the key or tensor at fault
//! (issue #17), and reads RoPE from both config layouts (transformers ≤ 4 top-level
//! `rope_theta` / `rope_scaling`, transformers 5 `rope_parameters`).
//! Missing tensors, wrong dtypes and wrong shapes are in tests/sku_file.rs.

use serde_json::{json, Value};
use std::path::Path;
use verinfer_prover::{sku, BuildOptions, Checkpoint, ProverError, SynthSpec};

fn read_config(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

fn write_config(dir: &Path, v: &Value) {
    std::fs::write(dir.join("config.json"), v.to_string()).unwrap();
}

/// Writes `spec`, lets `edit` change its config, and opens it.
fn open_with(
    spec: &SynthSpec,
    edit: impl FnOnce(&mut Value),
) -> (tempfile::TempDir, Result<Checkpoint, ProverError>) {
    let dir = tempfile::tempdir().unwrap();
    spec.write(dir.path()).unwrap();
    let mut v = read_config(dir.path());
    edit(&mut v);
    write_config(dir.path(), &v);
    let r = Checkpoint::open(dir.path());
    (dir, r)
}

fn refused(spec: &SynthSpec, edit: impl FnOnce(&mut Value), needle: &str) {
    let (_d, r) = open_with(spec, edit);
    let e = r.expect_err(needle).to_string();
    assert!(e.contains(needle), "error {e:?} does not name {needle:?}");
}

fn ids(spec: &SynthSpec, edit: impl FnOnce(&mut Value)) -> (String, String) {
    let (_d, r) = open_with(spec, edit);
    let bytes = sku::build(&r.unwrap(), &BuildOptions { max_seq: 64 }).unwrap();
    let s = verinfer_prover::Sku::from_bytes(bytes).unwrap();
    (s.header().weight_root.to_string(), s.id().to_string())
}

const LLAMA31_SCALING: [(&str, f64); 4] = [
    ("factor", 8.0),
    ("low_freq_factor", 1.0),
    ("high_freq_factor", 4.0),
    ("original_max_position_embeddings", 32.0),
];

/// The Llama-3.1 scaling keys with `rope_type` (and `rope_theta` when given).
fn llama3_params(theta: Option<f64>) -> Value {
    let mut o = json!({"rope_type": "llama3"});
    for (k, v) in LLAMA31_SCALING {
        o[k] = json!(v);
    }
    if let Some(t) = theta {
        o["rope_theta"] = json!(t);
    }
    o
}

#[test]
fn transformers5_rope_parameters_build_the_same_sku_as_the_legacy_layout() {
    let spec = SynthSpec::tiny_llama();
    // Plain RoPE.
    let legacy = ids(&spec, |_| {});
    let v5 = ids(&spec, |v| {
        let theta = v["rope_theta"].take();
        v.as_object_mut().unwrap().remove("rope_theta");
        v["rope_parameters"] = json!({"rope_theta": theta, "rope_type": "default"});
    });
    assert_eq!(legacy, v5);
    // Llama-3.1 scaling (the RoPE table is in the weight root, so a dropped scaling shows).
    let legacy31 = ids(&spec, |v| v["rope_scaling"] = llama3_params(None));
    let v5_31 = ids(&spec, |v| {
        let theta = v["rope_theta"].as_f64();
        v.as_object_mut().unwrap().remove("rope_theta");
        v["rope_parameters"] = llama3_params(theta);
    });
    assert_eq!(legacy31, v5_31);
    assert_ne!(
        legacy31.0, legacy.0,
        "the scaling must change the RoPE table"
    );
    // Both layouts present and agreeing is accepted too.
    let both = ids(&spec, |v| {
        let theta = v["rope_theta"].as_f64();
        v["rope_scaling"] = llama3_params(None);
        v["rope_parameters"] = llama3_params(theta);
    });
    assert_eq!(both, legacy31);
}

#[test]
fn unknown_rope_settings_are_refused_in_both_layouts() {
    let spec = SynthSpec::tiny_llama();
    refused(
        &spec,
        |v| v["rope_scaling"] = json!({"rope_type": "yarn", "factor": 4.0}),
        "unsupported rope_scaling.rope_type \"yarn\"",
    );
    refused(
        &spec,
        |v| v["rope_scaling"] = json!({"type": "linear", "factor": 2.0}),
        "\"linear\"",
    );
    refused(
        &spec,
        |v| {
            v["rope_parameters"] =
                json!({"rope_type": "dynamic", "rope_theta": 500000.0, "factor": 2.0})
        },
        "unsupported rope_parameters.rope_type \"dynamic\"",
    );
    // A scaling key the engine does not implement, or a factor without a type.
    refused(
        &spec,
        |v| {
            v["rope_parameters"] = json!({"rope_type": "default", "rope_theta": 500000.0, "partial_rotary_factor": 0.5})
        },
        "rope_parameters.partial_rotary_factor",
    );
    refused(
        &spec,
        |v| v["rope_scaling"] = json!({"factor": 2.0}),
        "rope_scaling.factor given for the default rope type",
    );
    // llama3 scaling with a key missing.
    refused(
        &spec,
        |v| {
            let mut p = llama3_params(Some(500000.0));
            p.as_object_mut().unwrap().remove("low_freq_factor");
            v.as_object_mut().unwrap().remove("rope_theta");
            v["rope_parameters"] = p;
        },
        "rope_parameters.low_freq_factor",
    );
    // The layouts disagree.
    refused(
        &spec,
        |v| v["rope_parameters"] = json!({"rope_type": "default", "rope_theta": 10000.0}),
        "disagree",
    );
    // No theta anywhere: never default to 10000.
    refused(
        &spec,
        |v| {
            v.as_object_mut().unwrap().remove("rope_theta");
        },
        "missing rope_theta",
    );
    refused(
        &spec,
        |v| v["rope_parameters"] = json!({"rope_type": "default"}),
        "rope_parameters.rope_theta",
    );
}

#[test]
fn unsupported_config_switches_are_refused() {
    let llama = SynthSpec::tiny_llama();
    refused(
        &llama,
        |v| v["architectures"] = json!(["MistralForCausalLM"]),
        "MistralForCausalLM",
    );
    refused(&llama, |v| v["hidden_act"] = json!("gelu"), "hidden_act");
    refused(
        &llama,
        |v| v["attention_bias"] = json!(true),
        "attention_bias",
    );
    refused(&llama, |v| v["mlp_bias"] = json!(true), "mlp_bias");
    refused(
        &llama,
        |v| {
            v.as_object_mut().unwrap().remove("rms_norm_eps");
        },
        "rms_norm_eps",
    );
    refused(
        &SynthSpec::tiny_qwen2(),
        |v| v["use_sliding_window"] = json!(true),
        "use_sliding_window",
    );
}

fn rewrite_single_file(
    dir: &Path,
    f: impl FnOnce(Vec<(String, Vec<usize>, Vec<u8>)>) -> Vec<(String, Vec<usize>, Vec<u8>)>,
) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec()))
        .collect();
    let owned = f(owned);
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn extra_tensors_and_truncated_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec::tiny_qwen2(); // one f32 file
    spec.write(dir.path()).unwrap();
    // An o_proj bias (Qwen2 has none): the engine would ignore it.
    let extra = "model.layers.1.self_attn.o_proj.bias";
    rewrite_single_file(dir.path(), |mut t| {
        t.push((extra.to_string(), vec![96], vec![0u8; 96 * 4]));
        t
    });
    match Checkpoint::open(dir.path()).unwrap_err() {
        ProverError::UnexpectedTensor { name } => assert_eq!(name, extra),
        e => panic!("unexpected {e}"),
    }
    // A truncated download: the last tensor's data is cut.
    spec.write(dir.path()).unwrap();
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let e = Checkpoint::open(dir.path()).unwrap_err();
    assert!(
        matches!(&e, ProverError::Truncated { name, .. } if name.starts_with("model.")),
        "{e}"
    );
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn shard_index_must_match_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec::tiny_llama(); // two shards with an index
    spec.write(dir.path()).unwrap();
    Checkpoint::open(dir.path()).unwrap();
    let index_path = dir.path().join("model.safetensors.index.json");
    let original = std::fs::read_to_string(&index_path).unwrap();
    let mut v: Value = serde_json::from_str(&original).unwrap();
    let map = v["weight_map"].as_object_mut().unwrap();
    let files: Vec<String> = {
        let mut f: Vec<String> = map
            .values()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        f.sort();
        f.dedup();
        f
    };
    // The embedding listed in the other shard.
    let name = "model.embed_tokens.weight";
    let other = files.iter().find(|f| **f != map[name]).unwrap().clone();
    map.insert(name.into(), json!(other));
    std::fs::write(&index_path, v.to_string()).unwrap();
    let e = Checkpoint::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains(name), "{e}");
    // A stored tensor the index does not list.
    let mut v: Value = serde_json::from_str(&original).unwrap();
    v["weight_map"]
        .as_object_mut()
        .unwrap()
        .remove("model.norm.weight");
    std::fs::write(&index_path, v.to_string()).unwrap();
    let e = Checkpoint::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("model.norm.weight"), "{e}");
}
