//! `verinfer sequencer --config FILE`: the JSON-RPC server, intake, assignment, batching and L1
//! posting (see docs/SEQUENCER.md). The L1 poster key is read from the environment variable
//! the config names (`l1.key_env`, default `VERINFER_SEQUENCER_KEY`).

use std::path::PathBuf;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// TOML configuration file (see docs/SEQUENCER.md for every key).
    #[arg(long)]
    config: PathBuf,
}

/// Runs until SIGINT/SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(verinfer_sequencer::run_from_config(&args.config))?;
    Ok(())
}
