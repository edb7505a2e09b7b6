//! SKU files (build, write, memory-map, verify) and checkpoint validation errors.

mod common;

use std::sync::Arc;
use verinfer_prover::{
    sku, Backend, BuildOptions, Checkpoint, Engine, ProverError, Shard, Sku, SynthSpec,
};

#[test]
fn sku_file_round_trips_through_mmap_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let spec = SynthSpec::tiny_llama();
    let in_memory = common::sku_of(&spec, &model);
    let path = dir.path().join("tiny.sku");
    let loaded = sku::build_file(&model, &path, &BuildOptions { max_seq: 128 }).unwrap();
    assert_eq!(loaded.header(), in_memory.header());
    loaded.verify().unwrap();
    let again = Sku::load(&path).unwrap();
    assert_eq!(again.id(), in_memory.id());
    // Same engine results from the mapped file.
    let sh = common::shard(loaded.config().valid_vocab as u32, 3);
    let a = Engine::new(Arc::new(again), Backend::Cpu)
        .unwrap()
        .run(&sh)
        .unwrap();
    let b = Engine::new(in_memory.clone(), Backend::Cpu)
        .unwrap()
        .run(&sh)
        .unwrap();
    assert_eq!(a.trace.trace_root(), b.trace.trace_root());
    // Corrupting one weight byte is caught by verify.
    let mut bytes = std::fs::read(&path).unwrap();
    let off = bytes.len() - 100_000;
    bytes[off] ^= 0x01;
    let bad = Sku::from_bytes(bytes).unwrap();
    assert!(matches!(bad.verify(), Err(ProverError::SkuFile { .. })));
    // Not a SKU file at all.
    assert!(Sku::from_bytes(b"garbage garbage garbage".to_vec()).is_err());
}

fn rewrite_tensor(dir: &std::path::Path, name: &str, dtype: safetensors::Dtype, shape: Vec<usize>) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let elem = match dtype {
        safetensors::Dtype::I8 => 1,
        _ => 4,
    };
    let n: usize = shape.iter().product();
    let replacement = vec![0u8; n * elem];
    let mut views: Vec<(String, safetensors::tensor::TensorView)> = Vec::new();
    for (n_, v) in st.tensors() {
        if n_ == name {
            views.push((
                n_,
                safetensors::tensor::TensorView::new(dtype, shape.clone(), &replacement).unwrap(),
            ));
        } else {
            views.push((n_, v));
        }
    }
    let out = safetensors::serialize(views, None).unwrap();
    std::fs::write(&path, out).unwrap();
}

#[test]
fn checkpoint_errors_name_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = SynthSpec::tiny_qwen2();
    spec.shards = 1;
    spec.write(dir.path()).unwrap();
    Checkpoint::open(dir.path()).unwrap();
    let name = "model.layers.1.self_attn.k_proj.weight";
    rewrite_tensor(dir.path(), name, safetensors::Dtype::F32, vec![3, 96]);
    match Checkpoint::open(dir.path()).unwrap_err() {
        ProverError::TensorShape { name: n, got, .. } => {
            assert_eq!((n.as_str(), got), (name, vec![3, 96]))
        }
        e => panic!("unexpected {e}"),
    }
    spec.write(dir.path()).unwrap();
    rewrite_tensor(dir.path(), name, safetensors::Dtype::I8, vec![32, 96]);
    let e = Checkpoint::open(dir.path()).unwrap_err();
    assert!(
        matches!(&e, ProverError::TensorDtype { name: n, .. } if n == name),
        "{e}"
    );
    // A missing tensor: drop the q bias of layer 1 from the index-less single file.
    spec.write(dir.path()).unwrap();
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<_> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "model.layers.1.self_attn.q_proj.bias")
        .collect();
    std::fs::write(&path, safetensors::serialize(kept, None).unwrap()).unwrap();
    let e = Checkpoint::open(dir.path()).unwrap_err();
    assert!(
        matches!(&e, ProverError::MissingTensor { name } if name == "model.layers.1.self_attn.q_proj.bias"),
        "{e}"
    );
    assert!(e
        .to_string()
        .contains("model.layers.1.self_attn.q_proj.bias"));
    // A non-finite weight is refused when quantizing, naming the tensor.
    spec.write(dir.path()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let bad = "model.layers.0.mlp.up_proj.weight";
    let nan: Vec<u8> = (0..224 * 96).flat_map(|_| f32::NAN.to_le_bytes()).collect();
    let views: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            if n == bad {
                let t = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    vec![224, 96],
                    &nan,
                )
                .unwrap();
                (n, t)
            } else {
                (n, v)
            }
        })
        .collect();
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    let ck = Checkpoint::open(dir.path()).unwrap();
    let e = sku::build(&ck, &BuildOptions::default()).unwrap_err();
    assert!(
        matches!(&e, ProverError::NonFinite { name, index: 0 } if name == bad),
        "{e}"
    );
    // Missing config file.
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    assert!(matches!(
        Checkpoint::open(dir.path()).unwrap_err(),
        ProverError::Io { .. }
    ));
}

/// One layer with the real Llama-3-8B dimensions: loads, quantizes to a mapped SKU file and
/// decodes two tokens for two prompts (a reduced vocabulary keeps it cheap).
#[test]
fn real_llama3_8b_layer_shapes_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    SynthSpec::llama3_8b_one_layer(512).write(&model).unwrap();
    let path = dir.path().join("l8b.sku");
    let sku = Arc::new(sku::build_file(&model, &path, &BuildOptions { max_seq: 64 }).unwrap());
    let c = sku.config();
    assert_eq!(
        (c.hidden, c.intermediate, c.heads, c.kv_heads, c.head_dim),
        (4096, 14336, 32, 8, 128)
    );
    let eng = Engine::new(sku.clone(), Backend::Cpu).unwrap();
    let shard = Shard {
        prompts: vec![vec![3, 17, 250, 9, 44], vec![100, 7]],
        max_new_tokens: 2,
    };
    let run = eng.run(&shard).unwrap();
    assert_eq!(run.generated.iter().map(Vec::len).sum::<usize>(), 4);
    assert_eq!(run.trace.step_count(), 2 * (19 + 4));
}
