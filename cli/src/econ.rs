//! `verinfer econ`: the economics report (price against retail, income against PoW, the EV of
//! cheating, griefing) from a config of sourced assumptions; see econ/ and docs/ECONOMICS.md.

use std::path::PathBuf;

use anyhow::Context;
use verinfer_econ::{Config, Report};

#[derive(clap::Args)]
pub struct Args {
    /// Assumptions (TOML, every number with a source); default: the built-in
    /// ops/econ/default.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write DIR/ECONOMICS.md and the plots in DIR/econ/*.svg (docs/ECONOMICS.md is
    /// `--out docs`). Without it the markdown goes to stdout and no plot is written.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = match &a.config {
        Some(path) => Config::load(path),
        None => Config::default_config(),
    }
    .context("reading the economics config")?;
    let report = Report::build(&cfg).context("computing the report")?;
    match &a.out {
        Some(dir) => {
            for path in report.write(dir)? {
                println!("{}", path.display());
            }
        }
        None => print!("{}", report.markdown),
    }
    Ok(())
}
