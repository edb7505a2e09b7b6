//! `verinfer worker`: the worker daemon (see docs/WORKER.md). Registers with a sequencer, runs
//! its shards with the integer engine, signs and submits receipts, serves the data behind them.

use std::net::SocketAddr;
use std::path::PathBuf;

use alloy::signers::local::PrivateKeySigner;
use anyhow::{bail, Context};
use verinfer_dispute::play::worker::{DefendConfig, DefendTask};
use verinfer_dispute::play::FoldPolicy;
use verinfer_prover::backend_from_name;
use verinfer_prover::worker::da::DaLimits;
use verinfer_prover::worker::{run_with as run_worker, Sidecar, WorkerConfig};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Sequencer JSON-RPC address, ws://HOST:PORT or http://HOST:PORT (WebSocket is used for
    /// the shard subscription, HTTP for submissions; both on the same port).
    #[arg(long)]
    sequencer: String,
    /// L1 node (HTTP JSON-RPC). Its chain id must be the one the sequencer's signing domain
    /// names, otherwise the worker refuses to register.
    #[arg(long)]
    l1: Option<String>,
    /// Environment variable holding the worker's hex private key (its staking address).
    #[arg(long, conflicts_with = "key_file")]
    key_env: Option<String>,
    /// File holding the worker's hex private key (one line).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// SKU file to serve (repeat for several). Shards of other SKUs are refused.
    #[arg(long, required = true)]
    sku: Vec<PathBuf>,
    /// Directory of the worker's state (worker.redb). Create the file `hold-submissions` in it
    /// to hold signed receipts before they are submitted (they are already on disk).
    #[arg(long)]
    data_dir: PathBuf,
    /// Engine threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// GEMM backend: cpu, portable, reference, avx2, avx512-vnni (tch with the tch feature).
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Serve the data-availability JSON-RPC API (HTTP) on this address, e.g. 0.0.0.0:8700
    /// (port 0 picks one; the bound address is printed as `data api on ADDR`).
    #[arg(long)]
    data_listen: Option<SocketAddr>,
    /// Seconds after signing that a receipt's data is served (then: expired).
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    retention_secs: u64,
    /// Data API requests per second (over all clients).
    #[arg(long, default_value_t = 50)]
    requests_per_sec: u32,
    /// DisputeGame address: with --l1, the worker defends every game opened against its
    /// receipts (state in DATA_DIR/games.redb).
    #[arg(long, conflicts_with = "deployment")]
    game: Option<alloy::primitives::Address>,
    /// A deployment JSON file (`disputeGame`, camelCase or snake_case) instead of --game.
    #[arg(long)]
    deployment: Option<PathBuf>,
    /// When to answer a named pv / silu_mul / argmax row by folding it: auto (when proveRow
    /// would not fit a transaction), always, never.
    #[arg(long, default_value = "auto")]
    fold: String,
    /// How often the defender looks at L1 (ms).
    #[arg(long, default_value_t = 2000)]
    game_poll_ms: u64,
    /// Cheat deliberately (`gemm-entry`): only in the `verinfer-faulty` test binary.
    #[cfg(feature = "fault-injection")]
    #[arg(long)]
    pub fault: Option<String>,
}

/// The DisputeGame address from --game or --deployment.
fn game_address(args: &Args) -> anyhow::Result<Option<alloy::primitives::Address>> {
    if let Some(g) = args.game {
        return Ok(Some(g));
    }
    let Some(path) = &args.deployment else {
        return Ok(None);
    };
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    )?;
    let a = v
        .get("disputeGame")
        .or_else(|| v.get("dispute_game"))
        .and_then(|x| x.as_str())
        .with_context(|| format!("{}: no disputeGame", path.display()))?;
    Ok(Some(a.parse()?))
}

/// The defender task, when --l1 and a game address are given.
fn defender(args: &Args, signer: &PrivateKeySigner) -> anyhow::Result<Option<Sidecar>> {
    let (Some(l1), Some(game)) = (args.l1.clone(), game_address(args)?) else {
        return Ok(None);
    };
    let fold = match args.fold.as_str() {
        "auto" => FoldPolicy::Auto,
        "always" => FoldPolicy::Always,
        "never" => FoldPolicy::Never,
        f => bail!("--fold {f}: auto, always or never"),
    };
    let cfg = DefendConfig {
        l1_url: l1,
        game,
        signer: signer.clone(),
        poll: std::time::Duration::from_millis(args.game_poll_ms.max(10)),
        fold,
    };
    let dir = args.data_dir.clone();
    Ok(Some(Box::new(move |store, engines| {
        Box::pin(async move {
            match DefendTask::new(cfg, &dir, store, engines) {
                Ok(t) => {
                    tracing::info!(%game, "defending dispute games");
                    t.run(std::future::pending()).await
                }
                Err(e) => tracing::error!(error = %e, "the dispute defender did not start"),
            }
        })
    })))
}

fn read_key(args: &Args) -> anyhow::Result<PrivateKeySigner> {
    let hex = match (&args.key_env, &args.key_file) {
        (Some(var), None) => {
            std::env::var(var).with_context(|| format!("env var {var} not set"))?
        }
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("reading key file {}", f.display()))?,
        _ => bail!("give exactly one of --key-env VAR or --key-file FILE"),
    };
    hex.trim()
        .parse::<PrivateKeySigner>()
        .context("the worker key is not a hex private key")
}

/// Runs until SIGINT/SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    let signer = read_key(&args)?;
    let Some(backend) = backend_from_name(&args.backend) else {
        bail!("unknown backend {:?}", args.backend)
    };
    let side = defender(&args, &signer)?;
    let cfg = WorkerConfig {
        sequencer: args.sequencer,
        l1: args.l1,
        signer,
        skus: args.sku,
        data_dir: args.data_dir,
        threads: args.threads,
        backend,
        data_listen: args.data_listen,
        da_limits: DaLimits {
            retention_secs: args.retention_secs,
            requests_per_sec: args.requests_per_sec,
            ..DaLimits::default()
        },
        #[cfg(feature = "fault-injection")]
        fault: match &args.fault {
            None => None,
            Some(name) => Some(
                verinfer_prover::fault::Fault::from_name(name)
                    .with_context(|| format!("unknown fault {name:?}"))?,
            ),
        },
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(run_worker(cfg, shutdown(), side))?;
    Ok(())
}

async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
