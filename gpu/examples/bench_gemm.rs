//! The `verinfer bench gemm` command, built from this crate alone (no engine, no sequencer):
//! `cargo run --release -p verinfer-gpu --example bench_gemm [--features tch] -- --quick`.
//! The command's code lives in `cli/src/bench_gemm.rs` and is compiled here unchanged.

#[path = "../../cli/src/bench_gemm.rs"]
mod bench_gemm;

use clap::Parser;

#[derive(Parser)]
#[command(name = "bench_gemm", about = "int8 GEMM + Freivalds benchmark")]
struct Cli {
    #[command(flatten)]
    args: bench_gemm::Args,
}

fn main() -> anyhow::Result<()> {
    bench_gemm::run(Cli::parse().args)
}
