//! `verinfer bench infer`: prefill and decode throughput of the integer engine and the share of
//! time spent hashing the trace, on a model with the real Llama-3-8B layer dimensions.

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use verinfer_prover::{backend_from_name, sku, BuildOptions, Engine, Shard, Sku, SynthSpec};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// A SKU file to benchmark (default: a 1-layer model with Llama-3-8B dimensions, generated
    /// into a temporary directory).
    #[arg(long)]
    sku: Option<PathBuf>,
    /// A Hugging Face checkpoint directory to quantize and benchmark instead.
    #[arg(long, conflicts_with = "sku")]
    model: Option<PathBuf>,
    /// Vocabulary of the generated model.
    #[arg(long, default_value_t = 8192)]
    vocab: usize,
    /// Prompts of the prefill measurement.
    #[arg(long, default_value_t = 4)]
    prefill_prompts: usize,
    /// Tokens per prompt of the prefill measurement.
    #[arg(long, default_value_t = 128)]
    prompt_len: usize,
    /// Decode batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    batches: Vec<usize>,
    /// Prompt length of the decode measurement.
    #[arg(long, default_value_t = 16)]
    decode_context: usize,
    /// Decode rounds measured per batch size.
    #[arg(long, default_value_t = 4)]
    decode_tokens: usize,
    /// GEMM backend.
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

fn prompts(n: usize, len: usize, vocab: usize, salt: usize) -> Vec<Vec<u32>> {
    (0..n)
        .map(|p| {
            (0..len)
                .map(|i| ((i * 7919 + p * 104729 + salt * 31 + 2) % vocab) as u32)
                .collect()
        })
        .collect()
}

/// One table row; `hash` and `gemm` are the seconds of the same rounds as `secs`.
fn row(name: &str, tokens: usize, secs: f64, hash: f64, gemm: f64) {
    println!(
        "| {name:<16} | {tokens:>6} | {secs:>8.3} | {:>10.1} | {:>7.2}% | {:>6.1}% |",
        tokens as f64 / secs,
        100.0 * hash / secs,
        100.0 * gemm / secs
    );
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Some(backend) = backend_from_name(&args.backend) else {
        bail!("unknown backend {:?}", args.backend)
    };
    let tmp = tempfile::tempdir()?;
    let sku_path = match (&args.sku, &args.model) {
        (Some(p), _) => p.clone(),
        (None, model) => {
            let model_dir = match model {
                Some(m) => m.clone(),
                None => {
                    let d = tmp.path().join("llama3-8b-1layer");
                    let t0 = Instant::now();
                    SynthSpec::llama3_8b_one_layer(args.vocab).write(&d)?;
                    eprintln!(
                        "generated a 1-layer Llama-3-8B-dimension checkpoint in {:.1}s",
                        t0.elapsed().as_secs_f64()
                    );
                    d
                }
            };
            let out = tmp.path().join("bench.sku");
            let t0 = Instant::now();
            let max_seq =
                (args.prompt_len.max(args.decode_context) + args.decode_tokens + 2).max(256);
            sku::build_file(&model_dir, &out, &BuildOptions { max_seq })
                .context("building the SKU")?;
            eprintln!("quantized into a SKU in {:.1}s", t0.elapsed().as_secs_f64());
            out
        }
    };
    let sku = Arc::new(Sku::load(&sku_path)?);
    let c = sku.config().clone();
    let mut engine = Engine::new(sku.clone(), backend)?;
    if let Some(t) = args.threads {
        engine = engine.with_threads(t);
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!(
        "model: {:?}, hidden {}, intermediate {}, {} layer(s), {}/{} heads, vocab {}; GEMM backend {} ({}), {threads} thread(s)",
        c.arch,
        c.hidden,
        c.intermediate,
        c.layers,
        c.heads,
        c.kv_heads,
        c.vocab,
        backend.name(),
        verinfer_prover::Backend::cpu_path()
    );
    println!();
    println!("| phase            | tokens |  seconds |   tokens/s | hashing | GEMMs  |");
    println!("|------------------|--------|----------|------------|---------|--------|");
    // Prefill: one round over every prompt token, one generated token.
    let shard = Shard {
        prompts: prompts(args.prefill_prompts, args.prompt_len, c.valid_vocab, 0),
        max_new_tokens: 1,
    };
    let out = engine.run(&shard)?;
    row(
        &format!("prefill {}x{}", args.prefill_prompts, args.prompt_len),
        out.stats.prefill_tokens,
        out.stats.prefill_secs,
        out.stats.prefill_hash_secs,
        out.stats.prefill_gemm_secs,
    );
    for &b in &args.batches {
        let shard = Shard {
            prompts: prompts(b, args.decode_context, c.valid_vocab, b),
            max_new_tokens: args.decode_tokens + 1,
        };
        let out = engine.run(&shard)?;
        let s = out.stats;
        // Only the decode rounds count, with the hashing and GEMM time of those rounds.
        row(
            &format!("decode batch {b}"),
            s.decode_tokens,
            s.decode_secs,
            s.hash_secs - s.prefill_hash_secs,
            s.gemm_secs - s.prefill_gemm_secs,
        );
    }
    println!();
    println!(
        "hashing = keccak256 of every step's output rows (tensor roots); GEMMs = int8 products."
    );
    Ok(())
}
