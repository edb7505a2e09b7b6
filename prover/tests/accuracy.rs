//! Accuracy of the integer engine against a float32 reference forward of the same HF checkpoint.
//!
//! The reference (this file only, outside the committed path) is the textbook Llama / Qwen2
//! forward in f32: RMSNorm with gain, q/k/v (+ Qwen2 bias), rotate-half RoPE, causal GQA
//! attention with 1/sqrt(d) scaling, SiLU-gated MLP, final norm, lm_head (tied or not).

mod common;

use common::{engine, sku_of};
use verinfer_prover::{Backend, Checkpoint, Shard, SynthSpec};

struct FloatModel {
    cfg: verinfer_prover::ModelConfig,
    t: std::collections::HashMap<String, Vec<f32>>,
}

impl FloatModel {
    fn load(dir: &std::path::Path) -> Self {
        let ck = Checkpoint::open(dir).unwrap();
        let t = ck
            .expected_tensors()
            .into_iter()
            .map(|(n, s)| {
                let v = ck.tensor_f32(&n, &s).unwrap();
                (n, v)
            })
            .collect();
        FloatModel {
            cfg: ck.config().clone(),
            t,
        }
    }

    fn w(&self, n: &str) -> &[f32] {
        &self.t[n]
    }

    /// Logits of every position of `tokens`.
    fn forward(&self, tokens: &[u32]) -> Vec<Vec<f32>> {
        let c = &self.cfg;
        let (h, d, hq, hkv) = (
            c.hidden_size,
            c.head_dim,
            c.num_attention_heads,
            c.num_key_value_heads,
        );
        let inv = c.inv_freq();
        let eps = c.rms_norm_eps as f32;
        let norm = |x: &[f32], g: &[f32]| -> Vec<f32> {
            let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
            let r = 1.0 / (ms + eps).sqrt();
            x.iter().zip(g).map(|(v, g)| v * r * g).collect()
        };
        let lin = |x: &[f32], w: &[f32], n: usize| -> Vec<f32> {
            let k = x.len();
            (0..n)
                .map(|j| {
                    x.iter()
                        .zip(&w[j * k..(j + 1) * k])
                        .map(|(a, b)| a * b)
                        .sum()
                })
                .collect()
        };
        let emb = self.w("model.embed_tokens.weight");
        let mut xs: Vec<Vec<f32>> = tokens
            .iter()
            .map(|&t| emb[t as usize * h..(t as usize + 1) * h].to_vec())
            .collect();
        for l in 0..c.num_hidden_layers {
            let p = format!("model.layers.{l}");
            let g = |n: &str| self.w(&format!("{p}.{n}"));
            let bias = |n: &str| self.t.get(&format!("{p}.self_attn.{n}_proj.bias"));
            let mut qs = Vec::new();
            let mut ks = Vec::new();
            let mut vs = Vec::new();
            for (pos, x) in xs.iter().enumerate() {
                let xn = norm(x, g("input_layernorm.weight"));
                let mut q = lin(&xn, g("self_attn.q_proj.weight"), hq * d);
                let mut k = lin(&xn, g("self_attn.k_proj.weight"), hkv * d);
                let mut v = lin(&xn, g("self_attn.v_proj.weight"), hkv * d);
                for (vec, b) in [
                    (&mut q, bias("q")),
                    (&mut k, bias("k")),
                    (&mut v, bias("v")),
                ] {
                    if let Some(b) = b {
                        vec.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                    }
                }
                for vec in [&mut q, &mut k] {
                    for head in vec.chunks_mut(d) {
                        for i in 0..d / 2 {
                            let (s, co) = (
                                (pos as f64 * inv[i]).sin() as f32,
                                (pos as f64 * inv[i]).cos() as f32,
                            );
                            let (a, b) = (head[i], head[i + d / 2]);
                            head[i] = a * co - b * s;
                            head[i + d / 2] = b * co + a * s;
                        }
                    }
                }
                qs.push(q);
                ks.push(k);
                vs.push(v);
            }
            for pos in 0..xs.len() {
                let mut att = vec![0f32; hq * d];
                for head in 0..hq {
                    let kvh = head / (hq / hkv);
                    let q = &qs[pos][head * d..(head + 1) * d];
                    let sc: Vec<f32> = (0..=pos)
                        .map(|u| {
                            q.iter()
                                .zip(&ks[u][kvh * d..(kvh + 1) * d])
                                .map(|(a, b)| a * b)
                                .sum::<f32>()
                                / (d as f32).sqrt()
                        })
                        .collect();
                    let m = sc.iter().cloned().fold(f32::MIN, f32::max);
                    let e: Vec<f32> = sc.iter().map(|s| (s - m).exp()).collect();
                    let z: f32 = e.iter().sum();
                    for (u, eu) in e.iter().enumerate() {
                        for i in 0..d {
                            att[head * d + i] += eu / z * vs[u][kvh * d + i];
                        }
                    }
                }
                let o = lin(&att, g("self_attn.o_proj.weight"), h);
                xs[pos].iter_mut().zip(&o).for_each(|(a, b)| *a += b);
                let xn = norm(&xs[pos], g("post_attention_layernorm.weight"));
                let gate = lin(&xn, g("mlp.gate_proj.weight"), c.intermediate_size);
                let up = lin(&xn, g("mlp.up_proj.weight"), c.intermediate_size);
                let m: Vec<f32> = gate
                    .iter()
                    .zip(&up)
                    .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                    .collect();
                let dn = lin(&m, g("mlp.down_proj.weight"), h);
                xs[pos].iter_mut().zip(&dn).for_each(|(a, b)| *a += b);
            }
        }
        let head = if c.tie_word_embeddings {
            emb
        } else {
            self.w("lm_head.weight")
        };
        xs.iter()
            .map(|x| lin(&norm(x, self.w("model.norm.weight")), head, c.vocab_size))
            .collect()
    }
}

fn cosine(a: &[f64], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * *y as f64).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn argmax(v: &[f32], valid: usize) -> u32 {
    let mut best = 0;
    for j in 0..valid {
        if v[j] > v[best] {
            best = j;
        }
    }
    best as u32
}

fn check(spec: SynthSpec) {
    let dir = tempfile::tempdir().unwrap();
    let sku = sku_of(&spec, dir.path());
    let valid = sku.config().valid_vocab;
    let float = FloatModel::load(dir.path());
    let eng = engine(&sku, Backend::Cpu);
    let prompts: Vec<Vec<u32>> = (0..6u32)
        .map(|s| {
            (0..(4 + 3 * s))
                .map(|i| (i * 53 + s * 101 + 7) % valid as u32)
                .collect()
        })
        .collect();
    let shard = Shard {
        prompts: prompts.clone(),
        max_new_tokens: 8,
    };
    let ints = eng.prefill_logits(&shard).unwrap();
    let run = eng.run(&shard).unwrap();
    let mut min_cos = f64::MAX;
    let mut agree_first = 0;
    let (mut agree_forced, mut total_forced) = (0, 0);
    for (p, prompt) in prompts.iter().enumerate() {
        let fl = float.forward(prompt);
        let last = fl.last().unwrap();
        min_cos = min_cos.min(cosine(&ints[p][..valid], &last[..valid]));
        agree_first += (argmax(last, valid) == run.generated[p][0]) as usize;
        // Teacher-forced greedy agreement along the integer engine's own continuation.
        let mut seq = prompt.clone();
        for &tok in &run.generated[p] {
            let fl = float.forward(&seq);
            total_forced += 1;
            agree_forced += (argmax(fl.last().unwrap(), valid) == tok) as usize;
            seq.push(tok);
        }
    }
    let rate = agree_forced as f64 / total_forced as f64;
    eprintln!(
        "{:?}: min logit cosine {min_cos:.5}, first-token agreement {agree_first}/{}, teacher-forced greedy agreement {agree_forced}/{total_forced} ({:.1}%)",
        spec.arch,
        prompts.len(),
        rate * 100.0
    );
    assert!(min_cos >= 0.99, "logit cosine {min_cos} below 0.99");
    assert!(rate >= 0.75, "greedy agreement {rate} below 75%");
}

#[test]
fn llama_integer_engine_tracks_float_reference() {
    check(SynthSpec::tiny_llama());
}

#[test]
fn qwen2_integer_engine_tracks_float_reference() {
    check(SynthSpec::tiny_qwen2());
}
