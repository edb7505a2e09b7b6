//! `verinfer`: one binary, one subcommand per role. Each subcommand lives in its own module.

use clap::{Parser, Subcommand};

mod bench_gemm;
mod bench_infer;
mod bench_rpc;
mod bridge;
mod devnet;
mod econ;
mod infer;
mod job;
mod l1args;
mod sequencer;
mod sku;
mod verify;
mod watch;
mod worker;

#[derive(Parser)]
#[command(
    name = "verinfer",
    version,
    about = "Verifiable int8 LLM inference rollup"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmarks: int8 GEMM + Freivalds, integer inference, RPC intake.
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
    /// Build or inspect a SKU file (quantized model + tables).
    Sku {
        #[command(subcommand)]
        cmd: sku::Cmd,
    },
    /// Run deterministic integer inference on prompts.
    Infer(infer::Args),
    /// Run the sequencer (JSON-RPC server, batching, L1 posting).
    Sequencer(sequencer::Args),
    /// Run the worker daemon (shards, receipts, data availability).
    Worker(worker::Args),
    /// Submit and fetch buyer jobs.
    Job {
        #[command(subcommand)]
        cmd: job::Cmd,
    },
    /// Run the watcher (follow L1, audit receipts, dispute fraud), or show its status.
    Watch(watch::Args),
    /// The whole rollup on a local anvil: contracts, sequencer, workers, watcher, and every
    /// user's journey played on it.
    Devnet(devnet::Args),
    /// Stake on the L1 bridge: deposit, unbond, withdraw, serve or unserve a SKU.
    Stake {
        #[command(subcommand)]
        cmd: bridge::StakeCmd,
    },
    /// The buyer's escrow on the L1 bridge: deposit, unlock, withdraw.
    Escrow {
        #[command(subcommand)]
        cmd: bridge::EscrowCmd,
    },
    /// Worker rewards: claim finished epochs.
    Rewards {
        #[command(subcommand)]
        cmd: bridge::RewardsCmd,
    },
    /// Economics report: buyer price vs retail, worker income vs PoW, EV of cheating and
    /// griefing, from sourced assumptions (writes docs/ECONOMICS.md with `--out docs`).
    Econ(econ::Args),
}

#[derive(Subcommand)]
enum Bench {
    /// int8 GEMM throughput and Freivalds audit cost on Llama-3-8B / Qwen2.5-7B shapes.
    Gemm(bench_gemm::Args),
    /// Prefill/decode throughput and trace-hashing share on a real-dimension model.
    Infer(bench_infer::Args),
    /// Jobs accepted per second and submit latency over loopback JSON-RPC.
    Rpc(bench_rpc::Args),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Bench { which } => match which {
            Bench::Gemm(a) => bench_gemm::run(a),
            Bench::Infer(a) => bench_infer::run(a),
            Bench::Rpc(a) => bench_rpc::run(a),
        },
        Command::Sku { cmd } => sku::run(cmd),
        Command::Infer(a) => infer::run(a),
        Command::Sequencer(a) => sequencer::run(a),
        Command::Job { cmd } => job::run(cmd),
        Command::Worker(a) => worker::run(a),
        Command::Watch(a) => watch::run(a),
        Command::Devnet(a) => devnet::run(a),
        Command::Stake { cmd } => bridge::stake(cmd),
        Command::Escrow { cmd } => bridge::escrow(cmd),
        Command::Rewards { cmd } => bridge::rewards(cmd),
        Command::Econ(a) => econ::run(a),
    }
}
