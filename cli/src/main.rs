//! `verinfer`: one binary, one subcommand per role.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "verinfer", version, about = "Verifiable int8 LLM inference rollup")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmarks (GEMM, inference, RPC).
    Bench,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench => anyhow::bail!("no benchmark yet"),
    }
}
