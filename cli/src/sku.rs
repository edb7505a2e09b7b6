//! TEMPORARY placeholder: replaced by the real command in this wave.

/// Subcommands.
#[derive(clap::Subcommand)]
pub enum Cmd {}

pub fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {}
}
