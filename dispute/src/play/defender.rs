//! The defender's side: post bisection roots from our own trace (state roots, or inside a fold
//! the hashes of our chunk states), open the named entry (`proveGemm` / `proveRow`), fold a
//! long row (`foldRow`, then `proveFold` of the chunk the bisection ends on), answer output
//! challenges (`proveOutput`), and claim the challenger's timeout.

use alloy::network::TransactionBuilder;
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy_primitives::{keccak256, Bytes, U256};
use alloy_sol_types::SolCall;
use verinfer_l1::bindings::DisputeGame;

use super::challenger::fold_chunk;
use super::game::{GameState, Outcome, Phase, Player, Role};
use super::views::{foldable, DefenderView};
use super::{read_err, PlayError};
use crate::{recast, StepProof};

/// When the defender answers a named pv / silu_mul / argmax row by folding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoldPolicy {
    /// Fold when `proveRow` would not fit in a transaction (its gas estimate is over
    /// [`FOLD_GAS`] or fails).
    Auto,
    /// Fold every foldable row (cheaper per transaction, more moves).
    Always,
    /// Never fold.
    Never,
}

/// Gas above which `FoldPolicy::Auto` folds (EIP-7825's per-transaction cap, 2^24, less a margin).
pub const FOLD_GAS: u64 = 15_000_000;

/// The defender of one game.
pub struct Defender<'a> {
    pub player: Player<'a>,
    /// Our own trace of the shard (its root is the receipt's `traceRoot`).
    pub own: &'a dyn DefenderView,
    pub fold: FoldPolicy,
}

impl Defender<'_> {
    /// Reads the game and makes our move, if one is due.
    pub async fn step(&self) -> Result<Outcome, PlayError> {
        let p = &self.player;
        if p.role != Role::Defender {
            return Err(PlayError::NotOurs {
                game: p.id,
                why: "a defender plays the defender role".into(),
            });
        }
        let st = p.read().await?;
        if st.g.defender != p.me {
            return Err(PlayError::NotOurs {
                game: p.id,
                why: format!("its defender is {}", st.g.defender),
            });
        }
        if st.g.stepCount != self.own.trace().step_count() {
            return Err(PlayError::Mismatch {
                game: p.id,
                why: format!(
                    "{} steps, our trace has {}",
                    st.g.stepCount,
                    self.own.trace().step_count()
                ),
            });
        }
        if let Some(tx) = p.pending(st.key()).await? {
            return Ok(Outcome::Pending { tx });
        }
        if let Some(o) = p.common(&st).await? {
            return Ok(o);
        }
        match st.phase {
            Phase::Bisect => self.bisect(&st).await,
            Phase::Prove if st.g.output => self.prove_output(&st).await,
            Phase::Prove if st.g.fold => self.prove_fold(&st).await,
            Phase::Prove => self.prove(&st).await,
            _ => Ok(Outcome::Waiting),
        }
    }

    async fn bisect(&self, st: &GameState) -> Result<Outcome, PlayError> {
        let p = &self.player;
        let pts = p
            .contract()
            .bisectionPoints(U256::from(st.id))
            .call()
            .await
            .map_err(read_err("bisectionPoints"))?;
        let roots = if st.g.fold {
            let chunk = fold_chunk(p).await?;
            let states = self.own.fold_states(st.extra.foldStep, st.g.row, chunk)?;
            pts.iter()
                .map(|&pt| {
                    states
                        .get(pt as usize)
                        .map(keccak256)
                        .ok_or(PlayError::Mismatch {
                            game: st.id,
                            why: format!("fold point {pt} past our {} states", states.len()),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            pts.iter()
                .map(|&pt| self.own.trace().state_root(pt.checked_sub(1)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(crate::DisputeError::from)?
        };
        let data = DisputeGame::bisectCall {
            gameId: U256::from(st.id),
            disputed: st.g.hiRoot,
            roots,
        };
        let bond = p.move_bond().await?;
        p.send("bisect", st.key(), data.abi_encode().into(), bond)
            .await
    }

    /// The named entry of step `lo`: opened at once, or folded.
    async fn prove(&self, st: &GameState) -> Result<Outcome, PlayError> {
        let p = &self.player;
        let (step, row, col) = (st.g.lo, st.g.row, st.g.col);
        let info = self
            .own
            .program()
            .step(step)
            .map_err(crate::DisputeError::from)?;
        let gid = U256::from(st.id);
        let data: Bytes = match self.own.open(step, row, col)? {
            StepProof::Gemm(g) => DisputeGame::proveGemmCall {
                gameId: gid,
                p: recast(&*g)?,
            }
            .abi_encode()
            .into(),
            StepProof::Row(r) => DisputeGame::proveRowCall {
                gameId: gid,
                p: recast(&r)?,
            }
            .abi_encode()
            .into(),
        };
        if foldable(&info) && self.should_fold(&data).await {
            let chunk = fold_chunk(p).await?;
            let (rp, last) = self.own.open_fold(step, row, chunk)?;
            let call = DisputeGame::foldRowCall {
                gameId: gid,
                p: recast(&rp)?,
                finalState: last,
            };
            let bond = p.move_bond().await?;
            return p
                .send("foldRow", st.key(), call.abi_encode().into(), bond)
                .await;
        }
        let name = if data.starts_with(&DisputeGame::proveGemmCall::SELECTOR) {
            "proveGemm"
        } else {
            "proveRow"
        };
        p.send(name, st.key(), data, U256::ZERO).await
    }

    /// Whether to fold rather than send `prove` (the `proveRow` calldata).
    async fn should_fold(&self, prove: &Bytes) -> bool {
        match self.fold {
            FoldPolicy::Always => true,
            FoldPolicy::Never => false,
            FoldPolicy::Auto => {
                let p = &self.player;
                let tx = TransactionRequest::default()
                    .with_from(p.me)
                    .with_to(p.game)
                    .with_input(prove.clone());
                !matches!(p.provider.estimate_gas(tx).await, Ok(g) if g <= FOLD_GAS)
            }
        }
    }

    async fn prove_fold(&self, st: &GameState) -> Result<Outcome, PlayError> {
        let p = &self.player;
        let chunk = fold_chunk(p).await?;
        let s = self
            .own
            .open_fold_chunk(st.extra.foldStep, st.g.row, chunk, st.g.lo)?;
        let call = DisputeGame::proveFoldCall {
            gameId: U256::from(st.id),
            s: recast(&s)?,
        };
        p.send("proveFold", st.key(), call.abi_encode().into(), U256::ZERO)
            .await
    }

    async fn prove_output(&self, st: &GameState) -> Result<Outcome, PlayError> {
        let p = &self.player;
        let o = self.own.open_output(st.g.row, st.g.col)?;
        let call = DisputeGame::proveOutputCall {
            gameId: U256::from(st.id),
            p: recast(&o)?,
        };
        p.send(
            "proveOutput",
            st.key(),
            call.abi_encode().into(),
            U256::ZERO,
        )
        .await
    }
}
