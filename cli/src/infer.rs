//! `verinfer infer`: deterministic integer inference of a prompts file on a SKU.

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::sync::Arc;
use verinfer_prover::chat::{ChatMessage, PromptEncoder};
use verinfer_prover::{backend_from_name, Engine, Shard, Sku};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The SKU file.
    #[arg(long)]
    sku: PathBuf,
    /// Prompts, one per line: text (tokenized with the SKU's tokenizer) or a JSON array of
    /// token ids. Empty lines are skipped.
    #[arg(long)]
    prompts: PathBuf,
    /// Tokens to generate per prompt (greedy; a prompt stops early at an EOS id).
    #[arg(long, default_value_t = 32)]
    max_new_tokens: usize,
    /// GEMM backend: cpu, portable, reference, avx2, avx512-vnni (tch with the tch feature).
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Send each text line as one user message rendered with the model's chat template (as
    /// transformers' `apply_chat_template(..., add_generation_prompt=True)`).
    #[arg(long)]
    chat: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also write, for accuracy reports (ops/models/accuracy.py), a JSON file with each
    /// prompt's ids, the generated ids and the integer logits of the last prompt position
    /// dequantized to float (`y_j · Sw_j · S / 2^63`). The dequantization is a report of the
    /// committed integers, not part of the committed path.
    #[arg(long)]
    dump_logits: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let sku =
        Arc::new(Sku::load(&args.sku).with_context(|| format!("loading {}", args.sku.display()))?);
    let tokenizer = sku.tokenizer()?;
    let encoder = match tokenizer {
        Some(_) => Some(PromptEncoder::from_sku(&sku)?),
        None => None,
    };
    let text = std::fs::read_to_string(&args.prompts)
        .with_context(|| format!("reading {}", args.prompts.display()))?;
    let mut prompts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ids: Vec<u32> = if line.trim_start().starts_with('[') {
            serde_json::from_str(line)
                .with_context(|| format!("line {}: not a JSON array of token ids", i + 1))?
        } else {
            let Some(enc) = &encoder else {
                bail!("line {}: text prompt but the SKU has no tokenizer (give token ids as a JSON array)", i + 1)
            };
            let ids = if args.chat {
                enc.encode_chat(&[ChatMessage::new("user", line)])
            } else {
                enc.encode_text(line)
            };
            ids.with_context(|| format!("line {}: tokenizing", i + 1))?
        };
        prompts.push(ids);
    }
    let Some(backend) = backend_from_name(&args.backend) else {
        bail!("unknown backend {:?}", args.backend)
    };
    let mut engine = Engine::new(sku.clone(), backend)?;
    if let Some(t) = args.threads {
        engine = engine.with_threads(t);
    }
    let shard = Shard {
        prompts,
        max_new_tokens: args.max_new_tokens,
    };
    let out = engine.run(&shard)?;
    if let Some(path) = &args.dump_logits {
        let logits = engine.prefill_logits(&shard)?;
        let prompts: Vec<_> = shard
            .prompts
            .iter()
            .zip(&out.generated)
            .zip(&logits)
            .map(|((p, g), l)| {
                let last: Vec<f32> = l.iter().map(|&x| x as f32).collect();
                serde_json::json!({"prompt_ids": p, "ids": g, "last_logits": last})
            })
            .collect();
        let v = serde_json::json!({
            "sku_id": sku.id().to_string(),
            "valid_vocab": sku.config().valid_vocab,
            "prompts": prompts,
        });
        std::fs::write(path, serde_json::to_vec(&v)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let decode = |ids: &[u32]| tokenizer.as_ref().and_then(|t| t.decode(ids, false).ok());
    let total = out.stats.prefill_secs + out.stats.decode_secs;
    if args.json {
        let completions: Vec<_> = shard
            .prompts
            .iter()
            .zip(&out.generated)
            .map(|(p, g)| serde_json::json!({"prompt_ids": p, "ids": g, "text": decode(g)}))
            .collect();
        let v = serde_json::json!({
            "sku_id": sku.id().to_string(),
            "completions": completions,
            "input_root": out.input_root.to_string(),
            "output_root": out.output_root.to_string(),
            "trace_root": out.trace.trace_root().to_string(),
            "step_count": out.trace.step_count(),
            "tokens_processed": out.tokens_processed,
            "seconds": total,
            "hash_seconds": out.stats.hash_secs,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for (i, (p, g)) in shard.prompts.iter().zip(&out.generated).enumerate() {
        println!("--- prompt {i} ({} tokens)", p.len());
        if let Some(t) = decode(p) {
            println!("prompt:     {t:?}");
        }
        match decode(g) {
            Some(t) => println!("completion: {t:?}"),
            None => println!("completion: (no tokenizer)"),
        }
        println!("ids:        {g:?}");
    }
    println!("---");
    println!("sku id           {}", sku.id());
    println!("input root       {}", out.input_root);
    println!("output root      {}", out.output_root);
    println!("trace root       {}", out.trace.trace_root());
    println!("steps            {}", out.trace.step_count());
    println!("tokens processed {}", out.tokens_processed);
    println!(
        "time             {:.2}s (prefill {:.2}s, decode {:.2}s, hashing {:.1}%)",
        total,
        out.stats.prefill_secs,
        out.stats.decode_secs,
        100.0 * out.stats.hash_secs / total.max(1e-9)
    );
    Ok(())
}
