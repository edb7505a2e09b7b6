//! `verinfer watch`: the watcher daemon (follows the L1 batch inbox, audits receipts, opens
//! disputes) and `verinfer watch status` (what it has seen and found). See docs/WATCHER.md.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256};
use anyhow::{anyhow, bail, Context};
use verinfer_dispute::watch::daemon::status_report;
use verinfer_dispute::watch::{GemmSelect, Policy, Store, WatchConfig, Watcher};
use verinfer_prover::Sku;

/// `verinfer watch [run flags] | verinfer watch status ...`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Benchmark: the CPU time of one audit (all MLP GEMMs by Freivalds, their tensors checked
    /// against the trace root, sampled rows recomputed) against the engine's time for the shard.
    Bench(BenchArgs),
    /// What the watcher has seen and found (its store, or its last snapshot while it runs).
    Status {
        #[arg(long)]
        data_dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// L1 JSON-RPC URL.
    #[arg(long)]
    l1: Option<String>,
    /// BatchInbox address.
    #[arg(long)]
    inbox: Option<Address>,
    /// DisputeGame address (disputes are opened only with it and a key).
    #[arg(long)]
    game: Option<Address>,
    /// A deployment JSON file (`batchInbox`, `disputeGame`, `audits`) instead of --inbox/--game;
    /// with `audits` and a key that joined the SKU as a verifier, the watcher plays the audit
    /// protocol (docs/AUDITS.md).
    #[arg(long)]
    deployment: Option<PathBuf>,
    /// Environment variable holding the watcher's hex private key (bonds disputes).
    #[arg(long)]
    key_env: Option<String>,
    /// File holding the watcher's hex private key.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// SKU files the watcher audits (receipts of other SKUs are recorded as skipped).
    #[arg(long, num_args = 1..)]
    sku: Vec<PathBuf>,
    /// The watcher's state directory (redb store, salt, status snapshot).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Blocks on top of a batch's block before it is audited.
    #[arg(long, default_value_t = 2)]
    confirmations: u64,
    /// First L1 block to scan on a fresh data dir.
    #[arg(long, default_value_t = 0)]
    start_block: u64,
    /// Poll interval.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// Which GEMMs each audit checks with Freivalds: one, mlp, all.
    #[arg(long, default_value = "mlp")]
    gemms: String,
    /// Share of receipts audited, basis points.
    #[arg(long, default_value_t = 10_000)]
    sample_bps: u32,
    /// Rows recomputed per audited non-GEMM step.
    #[arg(long, default_value_t = 2)]
    rows: usize,
    /// Freivalds rounds per GEMM.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// The policy salt (hex); default: a random one kept in DATA_DIR/salt.
    #[arg(long)]
    salt: Option<B256>,
    /// GEMM backend of the local re-execution.
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// A worker's data API, WORKER_ADDRESS=URL (repeat per worker): in a game against that
    /// worker the entry named at the last step is one its committed rows get wrong.
    #[arg(long)]
    worker_data: Vec<String>,
}

/// `ADDR=URL` pairs of `--worker-data`.
fn worker_data(
    pairs: &[String],
) -> anyhow::Result<std::collections::HashMap<Address, verinfer_dispute::play::Committed>> {
    pairs
        .iter()
        .map(|p| {
            let (a, u) = p
                .split_once('=')
                .ok_or_else(|| anyhow!("--worker-data {p}: want ADDRESS=URL"))?;
            let client =
                verinfer_rpc::client::http(u).with_context(|| format!("--worker-data {p}"))?;
            Ok((
                a.parse().with_context(|| format!("--worker-data {p}"))?,
                verinfer_dispute::play::Committed::Api(client),
            ))
        })
        .collect()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        Some(Cmd::Status { data_dir, json }) => status(&data_dir, json),
        Some(Cmd::Bench(b)) => bench(b),
        None => daemon(args.run),
    }
}

fn status(dir: &Path, json: bool) -> anyhow::Result<()> {
    let report = match Store::open(dir) {
        Ok(store) => status_report(&store)?,
        // The daemon holds the store: read the snapshot it writes after every round.
        Err(_) => {
            let path = dir.join("status.json");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("no store and no {}", path.display()))?;
            serde_json::from_str(&text)?
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let c = &report["counts"];
    println!("cursor          {}", report["cursor"]);
    println!(
        "batches         {}",
        report["batches"].as_array().map_or(0, Vec::len)
    );
    println!(
        "audits          {} pass, {} fraud, {} evidence, {} skipped, {} pending",
        c["pass"], c["fraud"], c["evidence"], c["skipped"], c["pending"]
    );
    for a in report["audits"].as_array().into_iter().flatten() {
        println!(
            "  batch {} #{}  {}  {}",
            a["batchId"],
            a["index"],
            a["state"].as_str().unwrap_or("?"),
            a["summary"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

fn read_key(run: &RunArgs) -> anyhow::Result<Option<PrivateKeySigner>> {
    let hex = match (&run.key_env, &run.key_file) {
        (Some(_), Some(_)) => bail!("give --key-env or --key-file, not both"),
        (Some(var), None) => std::env::var(var).with_context(|| format!("${var} is not set"))?,
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, None) => return Ok(None),
    };
    let key = PrivateKeySigner::from_str(hex.trim()).map_err(|_| anyhow!("invalid private key"))?;
    Ok(Some(key))
}

/// The inbox, game and audit protocol addresses of a deployment JSON file.
fn deployment(path: &Path) -> anyhow::Result<(Address, Option<Address>, Option<Address>)> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let get = |a: &str, b: &str| v.get(a).or_else(|| v.get(b)).and_then(|x| x.as_str());
    let inbox = get("batchInbox", "batch_inbox")
        .ok_or_else(|| anyhow!("{}: no batchInbox", path.display()))?
        .parse()?;
    let game = get("disputeGame", "dispute_game")
        .map(str::parse)
        .transpose()?;
    let audits = get("audits", "audits").map(str::parse).transpose()?;
    Ok((inbox, game, audits))
}

/// The salt kept in `dir/salt` (created on first start), so audits are the same after a restart.
fn salt(dir: &Path) -> anyhow::Result<B256> {
    let path = dir.join("salt");
    if let Ok(s) = std::fs::read_to_string(&path) {
        return Ok(s.trim().parse()?);
    }
    std::fs::create_dir_all(dir)?;
    // A fresh random key's bytes are 32 random bytes.
    let s = PrivateKeySigner::random().to_bytes();
    let tmp = dir.join("salt.tmp");
    std::fs::write(&tmp, s.to_string())?;
    std::fs::rename(&tmp, &path)?;
    Ok(s)
}

fn daemon(run: RunArgs) -> anyhow::Result<()> {
    let l1 = run.l1.clone().ok_or_else(|| anyhow!("--l1 is required"))?;
    let dir = run
        .data_dir
        .clone()
        .ok_or_else(|| anyhow!("--data-dir is required"))?;
    let (inbox, game, audits) = match (&run.deployment, run.inbox) {
        (Some(f), _) => deployment(f)?,
        (None, Some(i)) => (i, run.game, None),
        (None, None) => bail!("give --inbox or --deployment"),
    };
    let gemms = match run.gemms.as_str() {
        "one" => GemmSelect::One,
        "mlp" => GemmSelect::Mlp,
        "all" => GemmSelect::All,
        g => bail!("--gemms {g}: one, mlp or all"),
    };
    let skus = run
        .sku
        .iter()
        .map(|p| {
            Sku::load(p)
                .map(Arc::new)
                .with_context(|| format!("loading {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let backend = verinfer_prover::backend_from_name(&run.backend)
        .ok_or_else(|| anyhow!("unknown backend {}", run.backend))?;
    let policy = Policy {
        salt: match run.salt {
            Some(s) => s,
            None => salt(&dir)?,
        },
        gemms,
        freivalds_rounds: run.rounds.max(1),
        sampled_rows: run.rows,
    };
    let cfg = WatchConfig {
        l1_url: l1,
        inbox,
        game,
        audits,
        key: read_key(&run)?,
        skus,
        data_dir: dir,
        confirmations: run.confirmations,
        start_block: run.start_block,
        poll: Duration::from_millis(run.poll_ms.max(10)),
        policy,
        sample_bps: run.sample_bps.min(10_000),
        backend,
        worker_data: worker_data(&run.worker_data)?,
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let w = Watcher::new(cfg).await?;
        println!("watching {inbox}");
        w.run(shutdown()).await?;
        anyhow::Ok(())
    })
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

#[derive(clap::Args)]
struct BenchArgs {
    /// A SKU file (default: a generated 1-layer model with Llama-3-8B dimensions).
    #[arg(long)]
    sku: Option<PathBuf>,
    /// Vocabulary of the generated model.
    #[arg(long, default_value_t = 8192)]
    vocab: usize,
    #[arg(long, default_value_t = 4)]
    prompts: usize,
    #[arg(long, default_value_t = 128)]
    prompt_len: usize,
    /// Rounds of the shard (1 = prefill only).
    #[arg(long, default_value_t = 2)]
    new_tokens: usize,
    /// Threads for both the engine and the audit (1: wall time = CPU time).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value = "cpu")]
    backend: String,
}

fn bench(a: BenchArgs) -> anyhow::Result<()> {
    use std::time::Instant;
    use verinfer_dispute::watch::{policy_seed, AuditInput, Auditor, EngineTrace, Verdict};
    use verinfer_prover::{sku, BuildOptions, Engine, LayerOp, Shard, StepKind, SynthSpec};
    let tmp = tempfile::tempdir()?;
    let path = match &a.sku {
        Some(p) => p.clone(),
        None => {
            let d = tmp.path().join("model");
            SynthSpec::llama3_8b_one_layer(a.vocab).write(&d)?;
            let out = tmp.path().join("bench.sku");
            let max_seq = (a.prompt_len + a.new_tokens + 2).max(256);
            sku::build_file(&d, &out, &BuildOptions { max_seq })?;
            out
        }
    };
    let sku = Arc::new(Sku::load(&path)?);
    let c = sku.config().clone();
    let backend = verinfer_prover::backend_from_name(&a.backend)
        .ok_or_else(|| anyhow!("unknown backend {}", a.backend))?;
    let engine = Engine::new(sku.clone(), backend)?.with_threads(a.threads);
    let shard = Shard {
        prompts: (0..a.prompts)
            .map(|p| {
                (0..a.prompt_len)
                    .map(|i| ((i * 7919 + p * 104_729 + 2) % c.valid_vocab) as u32)
                    .collect()
            })
            .collect(),
        max_new_tokens: a.new_tokens,
    };
    let t0 = Instant::now();
    let run = engine.run(&shard)?;
    let engine_secs = t0.elapsed().as_secs_f64();
    // What the worker serves: every tensor an MLP audit reads (fetching is not timed).
    let program = engine.program(&shard);
    let mut steps = Vec::new();
    for r in 0..program.rounds {
        for l in 0..program.layers {
            for op in [
                LayerOp::AttnResidual,
                LayerOp::FfnNorm,
                LayerOp::Gate,
                LayerOp::Up,
                LayerOp::SiluMul,
                LayerOp::Down,
                LayerOp::FfnResidual,
            ] {
                steps.push(program.step_id(r, StepKind::Layer { layer: l, op }));
            }
        }
    }
    let local = EngineTrace::new(Engine::new(sku.clone(), backend)?, shard.clone())?;
    let served = local.materialize(&steps)?;
    let receipt = run.receipt(B256::ZERO, 0, sku.id(), Address::ZERO);
    let auditor = Auditor::new(sku.clone());
    let mut times = Vec::new();
    for i in 0..3u8 {
        let policy = Policy {
            salt: B256::repeat_byte(i),
            gemms: GemmSelect::Mlp,
            freivalds_rounds: 1,
            sampled_rows: 2,
        };
        let input = AuditInput {
            receipt: &receipt,
            shard: &shard,
            seed: policy_seed(B256::ZERO, receipt.hash(), policy.salt),
        };
        let t = Instant::now();
        let v = verinfer_gpu::with_threads(a.threads, || auditor.audit(&input, &served, &policy))?;
        let secs = t.elapsed().as_secs_f64();
        if !matches!(v, Verdict::Pass { .. }) {
            bail!("the honest trace did not pass: {v:?}");
        }
        times.push(secs);
    }
    let tokens = run.tokens_processed;
    println!(
        "model: hidden {}, intermediate {}, {} layer(s), vocab {}; shard {}x{} prompt tokens, {} round(s), {} tokens; {} thread(s), backend {}",
        c.hidden, c.intermediate, c.layers, c.vocab, a.prompts, a.prompt_len, a.new_tokens, tokens, a.threads, backend.name()
    );
    println!("engine run (whole shard, trace hashing included): {engine_secs:.3} s");
    println!(
        "audit, first receipt of the SKU (packs Wᵀ once):   {:.3} s = {:.2}% of the engine",
        times[0],
        100.0 * times[0] / engine_secs
    );
    for t in &times[1..] {
        println!(
            "audit, next receipt (new seed, Wᵀ·r recomputed):    {t:.3} s = {:.2}% of the engine",
            100.0 * t / engine_secs
        );
    }
    Ok(())
}
