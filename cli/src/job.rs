//! `verinfer job ...`: the buyer side of the SDK on the command line.
//!
//! - `submit --file batch.jsonl [--sku-file FILE]...`: OpenAI Batch-API JSONL → signed jobs
//!   (EIP-712, key from the environment variable `--key-env`), a progress bar until every shard
//!   has a receipt, and the completions written to `--out` as JSONL keyed by `custom_id`. Chat
//!   and text prompts are tokenized here, with the tokenizer and chat template of the SKU file
//!   given for that SKU, so every signed prompt is token ids (the worker never tokenizes);
//! - `get ID [--results]`; `list [--buyer ADDR]`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256, U256};
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use verinfer_primitives::job::domain;
use verinfer_prover::chat::{ChatMessage, PromptEncoder};
use verinfer_prover::Sku;
use verinfer_rpc::openai::{self, group_jobs, parse_batch, Tokenize};
use verinfer_rpc::sign::{sign_job, sign_results_access, JobDraft};
use verinfer_rpc::types::{JobState, SkuInfo};
use verinfer_rpc::VerinferApiClient;

/// Where the sequencer is.
#[derive(clap::Args)]
pub struct Conn {
    /// Sequencer JSON-RPC URL.
    #[arg(long, env = "VERINFER_RPC", default_value = "http://127.0.0.1:8645")]
    pub(crate) url: String,
}

/// `job submit`.
#[derive(clap::Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    conn: Conn,
    /// OpenAI Batch-API JSONL file.
    #[arg(long)]
    file: PathBuf,
    /// Environment variable holding the buyer's hex private key.
    #[arg(long, default_value = "VERINFER_BUYER_KEY")]
    key_env: String,
    /// SKU id or name for every line (default: each line's `body.model`).
    #[arg(long)]
    sku: Option<String>,
    /// A SKU file whose tokenizer and chat template tokenize the prompts of its SKU (repeat for
    /// several SKUs). Needed for every SKU that has text or chat lines; only its header and
    /// tokenizer are read, and its id must be one the sequencer serves.
    #[arg(long = "sku-file")]
    sku_files: Vec<PathBuf>,
    /// Decode length for lines without `max_tokens`.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: u64,
    /// Price cap per job in wei (default: the most the job can cost at the SKU's price).
    #[arg(long)]
    max_price: Option<U256>,
    /// First nonce (default: the current unix time in ms); job i uses nonce + i.
    #[arg(long)]
    nonce: Option<u64>,
    /// Return after the jobs are acknowledged instead of waiting for results.
    #[arg(long)]
    no_wait: bool,
    /// Write completions here as JSONL (`custom_id`, `job_id`, `tokens`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
}

/// `job get`.
#[derive(clap::Args)]
pub struct GetArgs {
    #[command(flatten)]
    conn: Conn,
    /// Job id (0x…).
    id: B256,
    /// Also print completions, receipts and proofs (the sequencer serves them to the buyer
    /// only: signed with the key in `--key-env`).
    #[arg(long)]
    results: bool,
    /// Environment variable holding the buyer's hex private key (needed with `--results`).
    #[arg(long, default_value = "VERINFER_BUYER_KEY")]
    key_env: String,
}

/// `job list`.
#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    conn: Conn,
    /// Buyer address (default: the address of the key in `--key-env`).
    #[arg(long)]
    buyer: Option<Address>,
    /// Environment variable holding the buyer's hex private key.
    #[arg(long, default_value = "VERINFER_BUYER_KEY")]
    key_env: String,
}

/// Subcommands.
#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Submit an OpenAI Batch-API JSONL file and follow it to completion.
    Submit(SubmitArgs),
    /// Show one job.
    Get(GetArgs),
    /// List a buyer's jobs.
    List(ListArgs),
    /// Check every completion and receipt of a job against L1.
    Verify(crate::verify::Args),
}

/// Runs a `job` subcommand.
pub fn run(cmd: Cmd) -> anyhow::Result<()> {
    let cmd = match cmd {
        Cmd::Verify(a) => return crate::verify::run(a),
        other => other,
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        match cmd {
            Cmd::Submit(a) => submit(a).await,
            Cmd::Get(a) => get(a).await,
            Cmd::List(a) => list(a).await,
            Cmd::Verify(_) => unreachable!("handled before the runtime starts"),
        }
    })
}

fn key_from_env(var: &str) -> anyhow::Result<PrivateKeySigner> {
    let hex = std::env::var(var)
        .with_context(|| format!("environment variable {var} (the buyer key) is not set"))?;
    hex.trim()
        .parse()
        .with_context(|| format!("{var} does not hold a hex private key"))
}

/// A SKU's tokenizer as the batch reader's [`Tokenize`].
struct SkuTokenizer(PromptEncoder);

impl Tokenize for SkuTokenizer {
    fn text(&self, text: &str) -> Result<Vec<u32>, String> {
        self.0.encode_text(text).map_err(|e| e.to_string())
    }
    fn chat(&self, messages: &[openai::ChatMessage]) -> Result<Vec<u32>, String> {
        let m: Vec<ChatMessage> = messages
            .iter()
            .map(|m| ChatMessage::new(m.role.clone(), m.content.clone()))
            .collect();
        self.0.encode_chat(&m).map_err(|e| e.to_string())
    }
    fn check(&self, ids: &[u32]) -> Result<(), String> {
        self.0.check_ids(ids).map_err(|e| e.to_string())
    }
}

/// The tokenizers of the given SKU files by SKU id. The id is recomputed from the header's
/// weight root, config hash and the embedded tokenizer's hash, so a file whose tokenizer was
/// swapped does not pass for the SKU it names.
fn load_tokenizers(files: &[PathBuf]) -> anyhow::Result<HashMap<B256, SkuTokenizer>> {
    let mut out = HashMap::new();
    for f in files {
        let sku = Sku::load(f).with_context(|| format!("loading {}", f.display()))?;
        let h = sku.header();
        let tok_hash = sku
            .tokenizer_json()
            .map_or(B256::ZERO, alloy_primitives::keccak256);
        let id = verinfer_prover::sku::sku_id(h.weight_root, tok_hash, sku.config().hash());
        if id != sku.id() || tok_hash != h.tokenizer_hash {
            bail!(
                "{}: the tokenizer or config does not match the SKU id",
                f.display()
            );
        }
        let enc = PromptEncoder::from_sku(&sku).with_context(|| format!("{}", f.display()))?;
        out.insert(sku.id(), SkuTokenizer(enc));
    }
    Ok(out)
}

/// Each SKU file's tokenizer, by SKU id, for decoding completions.
fn load_decoders(files: &[PathBuf]) -> anyhow::Result<HashMap<B256, tokenizers::Tokenizer>> {
    let mut m = HashMap::new();
    for f in files {
        let sku = Sku::load(f).with_context(|| format!("cannot load SKU file {}", f.display()))?;
        if let Some(t) = sku.tokenizer()? {
            m.insert(sku.id(), t);
        }
    }
    Ok(m)
}

fn resolve_sku<'a>(skus: &'a [SkuInfo], model: &str) -> anyhow::Result<&'a SkuInfo> {
    skus.iter()
        .find(|s| s.name == model || s.id.to_string().eq_ignore_ascii_case(model))
        .with_context(|| {
            let names: Vec<&str> = skus.iter().map(|s| s.name.as_str()).collect();
            format!("model {model:?} is not a SKU of this sequencer (it serves {names:?})")
        })
}

async fn submit(a: SubmitArgs) -> anyhow::Result<()> {
    let signer = key_from_env(&a.key_env)?;
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let lines =
        parse_batch(&text, a.max_new_tokens).with_context(|| format!("{}", a.file.display()))?;
    let tokenizers = load_tokenizers(&a.sku_files)?;
    let c = verinfer_rpc::client::http(&a.conn.url)?;
    let info = c.domain().await.context("sequencer unreachable")?;
    let skus = c.skus().await?;
    let dom = domain(info.chain_id, info.batch_inbox);
    let groups = group_jobs(lines, info.max_prompts_per_job as usize);
    let base = match a.nonce {
        Some(n) => n,
        None => SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64,
    };
    // custom_id → (job, prompt index)
    let mut index: Vec<(String, B256, usize)> = Vec::new();
    let mut jobs: Vec<B256> = Vec::new();
    let mut job_sku: HashMap<B256, B256> = HashMap::new();
    let mut shards_total = 0u64;
    for (i, g) in groups.into_iter().enumerate() {
        let sku = resolve_sku(&skus, a.sku.as_deref().unwrap_or(&g.model))?;
        let tok = tokenizers.get(&sku.id).map(|t| t as &dyn Tokenize);
        let prompts = g
            .lines
            .iter()
            .map(|l| l.token_prompt(tok))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| {
                format!(
                    "{} (give the SKU file of {} with --sku-file)",
                    a.file.display(),
                    sku.id
                )
            })?;
        let bound: u64 = prompts.iter().map(|p| p.token_bound() + g.max_tokens).sum();
        let max_price = a
            .max_price
            .unwrap_or(sku.price_per_token * U256::from(bound));
        let req = sign_job(
            &signer,
            &dom,
            JobDraft {
                sku_id: sku.id,
                prompts,
                max_new_tokens: g.max_tokens,
                max_price,
                nonce: base + i as u64,
            },
        )?;
        let resp = c.submit_job(req).await.with_context(|| {
            format!(
                "job {} ({} prompts of model {}) refused",
                i,
                g.lines.len(),
                g.model
            )
        })?;
        eprintln!(
            "job {} accepted: {} prompts, {} shards, {} wei reserved",
            resp.job_id,
            g.lines.len(),
            resp.shards,
            resp.reserved
        );
        println!("{}", resp.job_id);
        shards_total += u64::from(resp.shards);
        for (k, l) in g.lines.iter().enumerate() {
            index.push((l.custom_id.clone(), resp.job_id, k));
        }
        jobs.push(resp.job_id);
        job_sku.insert(resp.job_id, sku.id);
    }
    if a.no_wait {
        return Ok(());
    }
    let bar = ProgressBar::new(shards_total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} shards {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    loop {
        let mut done = 0u64;
        let mut finished = 0usize;
        for id in &jobs {
            let j = c.get_job(*id).await?;
            done += u64::from(j.shards_done);
            if j.state != JobState::Accepted {
                finished += 1;
            }
        }
        bar.set_position(done);
        bar.set_message(format!("{finished}/{} jobs done", jobs.len()));
        if finished == jobs.len() {
            break;
        }
        if start.elapsed() > Duration::from_secs(a.timeout) {
            bar.abandon();
            bail!(
                "timed out after {} s; follow up with `verinfer job get ID`",
                a.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bar.finish();
    if let Some(out) = a.out {
        let decoders = load_decoders(&a.sku_files)?;
        let mut results = HashMap::new();
        for id in &jobs {
            let access = sign_results_access(&signer, &dom, *id)?;
            results.insert(*id, c.get_results(*id, Some(access)).await?);
        }
        let mut text = String::new();
        for (custom_id, job, k) in index {
            let tokens = results
                .get(&job)
                .and_then(|r| r.completions.iter().find(|c| c.prompt_index as usize == k))
                .map(|c| c.tokens.clone())
                .with_context(|| format!("no completion for {custom_id}"))?;
            let mut line = serde_json::json!({
                "custom_id": custom_id, "job_id": job, "prompt_index": k, "tokens": tokens
            });
            if let Some(t) = job_sku.get(&job).and_then(|sku| decoders.get(sku)) {
                // Decoding is display only: the signed, committed data are the token ids.
                if let Ok(s) = t.decode(&tokens, true) {
                    line["text"] = serde_json::Value::String(s);
                }
            }
            text.push_str(&serde_json::to_string(&line)?);
            text.push('\n');
        }
        std::fs::write(&out, text).with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!("completions written to {}", out.display());
    }
    Ok(())
}

async fn get(a: GetArgs) -> anyhow::Result<()> {
    let c = verinfer_rpc::client::http(&a.conn.url)?;
    if a.results {
        let signer = key_from_env(&a.key_env)?;
        let info = c.domain().await.context("sequencer unreachable")?;
        let dom = domain(info.chain_id, info.batch_inbox);
        let access = sign_results_access(&signer, &dom, a.id)?;
        println!(
            "{}",
            serde_json::to_string_pretty(&c.get_results(a.id, Some(access)).await?)?
        );
    } else {
        println!("{}", serde_json::to_string_pretty(&c.get_job(a.id).await?)?);
    }
    Ok(())
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let buyer = match a.buyer {
        Some(b) => b,
        None => key_from_env(&a.key_env)?.address(),
    };
    let c = verinfer_rpc::client::http(&a.conn.url)?;
    let mut cursor = None;
    loop {
        let page = c.list_jobs(buyer, cursor, Some(500)).await?;
        for j in &page.jobs {
            let batch = j.batch.map(|b| b.to_string()).unwrap_or_else(|| "-".into());
            println!(
                "{} {:?} shards {}/{} batch {batch}",
                j.job_id, j.state, j.shards_done, j.shards_total
            );
        }
        match page.next_cursor {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    Ok(())
}
