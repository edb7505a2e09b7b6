//! The local devnet: anvil, the contracts, and every Verinfer daemon (sequencer, workers,
//! watcher) as a real process of the `verinfer` binary, with the buyer, bridge and operator
//! commands run as that binary too. `verinfer devnet` drives it for a person; the tests in
//! `e2e/tests` drive the same code to check that the system catches cheats and never harms an
//! honest party.

pub mod chain;
pub mod cheat;
pub mod devnet;
pub mod journey;
pub mod proc;

pub use devnet::{Devnet, Model, Options};
pub use journey::{demo, Summary};

/// What can go wrong bringing the devnet up or playing a journey on it.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    #[error("cannot start {0}: {1}")]
    Spawn(String, String),
    #[error("{0} exited {1}")]
    Died(String, String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("{0}: {1}")]
    Io(String, String),
    #[error("L1: {0}")]
    Chain(String),
    #[error("SKU: {0}")]
    Sku(String),
    #[error("`verinfer {0}` failed: {1}")]
    Command(String, String),
    #[error("sequencer API: {0}")]
    Api(String),
    #[error("journey check failed: {0}")]
    Check(String),
}

/// `DevnetError::Io` for `path`.
pub(crate) fn io_err<E: std::fmt::Display>(
    path: &std::path::Path,
) -> impl Fn(E) -> DevnetError + '_ {
    move |e| DevnetError::Io(path.display().to_string(), e.to_string())
}
