//! `verinfer sku build|info`: quantize a Hugging Face checkpoint into a SKU file, inspect one.

use anyhow::Context;
use std::path::PathBuf;
use verinfer_prover::{sku, BuildOptions, Sku};

/// Subcommands.
#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Quantize a Hugging Face checkpoint directory (config.json, *.safetensors,
    /// tokenizer.json) into a SKU file.
    Build {
        /// The checkpoint directory.
        #[arg(long)]
        model: PathBuf,
        /// The SKU file to write.
        #[arg(long)]
        out: PathBuf,
        /// Longest sequence the SKU supports (RoPE table rows; also capped by the model).
        #[arg(long, default_value_t = 4096)]
        max_seq: usize,
    },
    /// Register a SKU file's id, roots and shape on the L1 registry (the registry's owner).
    Register {
        /// The SKU file.
        file: PathBuf,
        /// Price per token: 1gwei, 1000 (wei), …
        #[arg(long)]
        price: String,
        #[command(flatten)]
        l1: crate::l1args::L1Args,
        #[command(flatten)]
        out: crate::bridge::Out,
    },
    /// Print a SKU file's header (id, roots, config, sections).
    Info {
        /// The SKU file.
        file: PathBuf,
        /// Recompute every root and the SKU id from the data and compare.
        #[arg(long)]
        verify: bool,
        /// Print the header as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Register {
            file,
            price,
            l1,
            out,
        } => crate::bridge::register_sku(&file, &price, &l1, out),
        Cmd::Build {
            model,
            out,
            max_seq,
        } => {
            let t0 = std::time::Instant::now();
            let s = sku::build_file(&model, &out, &BuildOptions { max_seq })
                .with_context(|| format!("building a SKU from {}", model.display()))?;
            println!(
                "wrote {} in {:.1}s",
                out.display(),
                t0.elapsed().as_secs_f64()
            );
            print_info(&s);
            Ok(())
        }
        Cmd::Info { file, verify, json } => {
            let s = Sku::load(&file).with_context(|| format!("loading {}", file.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(s.header())?);
            } else {
                print_info(&s);
            }
            if verify {
                s.verify()
                    .with_context(|| format!("verifying {}", file.display()))?;
                println!(
                    "verified: every section root, the weight root and the SKU id match the data"
                );
            }
            Ok(())
        }
    }
}

fn print_info(s: &Sku) {
    let h = s.header();
    let c = &h.config;
    println!("sku id          {}", h.sku_id);
    println!("weight root     {}", h.weight_root);
    println!("tokenizer hash  {}", h.tokenizer_hash);
    println!("config hash     {}", h.config_hash);
    println!(
        "arith spec      v{}   file format v{}",
        h.spec_version, h.format_version
    );
    println!(
        "architecture    {:?}{}",
        c.arch,
        if c.qkv_bias { " (q/k/v bias)" } else { "" }
    );
    println!(
        "shape           hidden {}  intermediate {}  layers {}  heads {}/{} (head dim {})",
        c.hidden, c.intermediate, c.layers, c.heads, c.kv_heads, c.head_dim
    );
    println!(
        "vocabulary      {} rows, {} valid tokens",
        c.vocab, c.valid_vocab
    );
    println!("max sequence    {}", c.max_seq);
    println!("eos ids         {:?}", c.eos_ids);
    let bytes: usize = h.sections.iter().map(|s| s.len).sum();
    println!(
        "data            {} sections, {:.1} MiB",
        h.sections.len(),
        bytes as f64 / 1048576.0
    );
    println!("source          {}", h.source);
}
