//! The dispute-game player: given our wallet's provider, the `DisputeGame` address, a game id,
//! our role and our own trace of the shard, [`Player::step`] reads the game and makes the one
//! move that is ours now, if any (a bisection, a choice, a named entry, a proof, a fold, a
//! timeout, a withdrawal). It keeps no state between calls: every call re-reads the game first,
//! so calling it again after a crash, or from a fresh instance, continues the game. A move sent
//! but not yet mined is remembered through a [`MoveLog`] (the caller's durable store) so that a
//! restarted player waits for it instead of sending a second one.
//!
//! - [`game`]: the game as read from L1 (phase, turn, clocks), and the move bookkeeping;
//! - [`challenger`]: the watcher's side (choose from its own trace, name a wrong entry);
//! - [`defender`]: the worker's side (bisection roots, proofs, folds, output answers);
//! - [`naming`]: which entry of the defender's committed tensor is wrong;
//! - [`data`]: the defender's committed rows (worker data API or any [`TraceSource`]), checked;
//! - [`views`]: what each side needs from its own trace ([`Opener`] implements both);
//! - [`journal`] and [`worker`]: the worker's defender task and its durable record.
//!
//! [`TraceSource`]: crate::watch::TraceSource
//! [`Opener`]: crate::Opener

pub mod challenger;
pub mod data;
pub mod defender;
pub mod game;
pub mod journal;
pub mod naming;
pub mod views;
pub mod worker;

pub use challenger::Challenger;
pub use data::Committed;
pub use defender::{Defender, FoldPolicy};
pub use game::{GameState, MemLog, MoveLog, Outcome, Pending, Phase, Player, Role};
pub use views::{ChallengerView, DefenderView};

use alloy_primitives::B256;

/// Why a move could not be made. Nothing here panics: bad L1 data and a peer's bad rows are
/// typed errors, and the game state on chain is never changed by a failed call.
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    /// The L1 node failed or refused a read (transport, decoding).
    #[error("L1 read {call}: {reason}")]
    Read { call: &'static str, reason: String },
    /// A transaction could not be sent (estimation revert, nonce, transport).
    #[error("sending {call}: {reason}")]
    Send { call: &'static str, reason: String },
    /// The transaction was mined but reverted.
    #[error("{call} reverted in transaction {tx}")]
    Reverted { call: &'static str, tx: B256 },
    /// No game with this id.
    #[error("no game {0}")]
    UnknownGame(u64),
    /// The game is not one we play in the role asked (another challenger's, another worker's).
    #[error("game {game} is not ours: {why}")]
    NotOurs { game: u64, why: String },
    /// The game and our trace do not fit (another shard, a step past the trace).
    #[error("game {game} does not fit our trace: {why}")]
    Mismatch { game: u64, why: String },
    /// Building an opening from our trace failed.
    #[error(transparent)]
    Opening(#[from] crate::DisputeError),
    /// Our own trace data could not be read.
    #[error("our own trace: {0}")]
    Own(crate::watch::SourceError),
    /// The durable move log failed.
    #[error("move log: {0}")]
    Log(String),
}

/// A read error from an alloy contract call.
pub(crate) fn read_err(call: &'static str) -> impl Fn(alloy::contract::Error) -> PlayError {
    move |e| PlayError::Read {
        call,
        reason: e.to_string(),
    }
}
