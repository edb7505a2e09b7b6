//! The challenger's side: choose the first part of a bisection whose end we disagree with (our
//! own state roots, or inside a fold our own chunk states), name a wrong entry at the single
//! step, and claim the defender's timeout. The shared moves (timeouts, withdrawal) are in
//! [`super::game`].

use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy_primitives::{keccak256, B256, U256};
use alloy_sol_types::{SolCall, SolEvent};
use verinfer_l1::bindings::DisputeGame;
use verinfer_primitives::Receipt;

use super::data::{Committed, DataError};
use super::game::{GameState, Outcome, Phase, Player, Role};
use super::naming::{blind_entry, wrong_entry};
use super::views::ChallengerView;
use super::{read_err, PlayError};

/// A challenger of one game.
pub struct Challenger<'a> {
    pub player: Player<'a>,
    /// The disputed receipt (its trace root checks the defender's rows).
    pub receipt: Receipt,
    /// Our own trace of the shard.
    pub own: &'a dyn ChallengerView,
    /// Where the defender's committed rows come from.
    pub data: Committed,
    /// The audit's finding (step, row, col), used only when the defender's rows are missing.
    pub hint: Option<(u64, u32, u32)>,
}

impl Challenger<'_> {
    /// Reads the game and makes our move, if one is due.
    pub async fn step(&self) -> Result<Outcome, PlayError> {
        let p = &self.player;
        if p.role != Role::Challenger {
            return Err(PlayError::NotOurs {
                game: p.id,
                why: "a challenger plays the challenger role".into(),
            });
        }
        let st = p.read().await?;
        if st.g.challenger != p.me {
            return Err(PlayError::NotOurs {
                game: p.id,
                why: format!("its challenger is {}", st.g.challenger),
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
            Phase::Choose => self.choose(&st).await,
            Phase::Name => self.name(&st).await,
            _ => Ok(Outcome::Waiting),
        }
    }

    /// Our end value of the interval point `point`: a state root, or inside a fold the hash of
    /// our chunk state.
    fn our_point(
        &self,
        st: &GameState,
        fold: Option<&[Vec<u8>]>,
        point: u64,
    ) -> Result<B256, PlayError> {
        match fold {
            Some(states) => states
                .get(point as usize)
                .map(keccak256)
                .ok_or(PlayError::Mismatch {
                    game: st.id,
                    why: format!("fold point {point} past our {} states", states.len()),
                }),
            None => Ok(self
                .own
                .trace()
                .state_root(point.checked_sub(1))
                .map_err(crate::DisputeError::from)?),
        }
    }

    async fn choose(&self, st: &GameState) -> Result<Outcome, PlayError> {
        let p = &self.player;
        let roots = self.posted_roots(st).await?;
        let pts = p
            .contract()
            .bisectionPoints(U256::from(st.id))
            .call()
            .await
            .map_err(read_err("bisectionPoints"))?;
        if pts.len() != roots.len() {
            return Err(PlayError::Mismatch {
                game: st.id,
                why: format!("{} roots for {} points", roots.len(), pts.len()),
            });
        }
        let states = match st.g.fold {
            true => Some(self.fold_states(st).await?),
            false => None,
        };
        // The first part whose end we dispute (its start, the previous end, we agreed with).
        let mut j = pts.len();
        for (i, &pt) in pts.iter().enumerate() {
            if self.our_point(st, states.as_deref(), pt)? != roots[i] {
                j = i;
                break;
            }
        }
        let agreed = if j == 0 { st.g.loRoot } else { roots[j - 1] };
        let disputed = if j == pts.len() {
            st.g.hiRoot
        } else {
            roots[j]
        };
        let data = DisputeGame::chooseCall {
            gameId: U256::from(st.id),
            roots,
            j: U256::from(j),
            agreed,
            disputed,
        };
        let bond = p.move_bond().await?;
        p.send("choose", st.key(), data.abi_encode().into(), bond)
            .await
    }

    /// Our chunk states of the row being folded.
    async fn fold_states(&self, st: &GameState) -> Result<Vec<Vec<u8>>, PlayError> {
        let chunk = fold_chunk(&self.player).await?;
        Ok(self.own.fold_states(st.extra.foldStep, st.g.row, chunk)?)
    }

    /// The roots of the defender's last bisection of this interval, from its `Bisected` event
    /// (only their hash is stored; the event's roots must hash to it).
    async fn posted_roots(&self, st: &GameState) -> Result<Vec<B256>, PlayError> {
        let p = &self.player;
        let filter = Filter::new()
            .address(p.game)
            .event_signature(DisputeGame::Bisected::SIGNATURE_HASH)
            .topic1(B256::from(U256::from(st.id)))
            .from_block(0);
        let logs = p
            .provider
            .get_logs(&filter)
            .await
            .map_err(|e| PlayError::Read {
                call: "Bisected logs",
                reason: e.to_string(),
            })?;
        for log in logs.iter().rev() {
            let Ok(ev) = DisputeGame::Bisected::decode_log_data(&log.inner.data) else {
                continue;
            };
            let packed: Vec<u8> = ev.roots.iter().flat_map(|r| r.0).collect();
            if ev.lo == st.g.lo && ev.hi == st.g.hi && keccak256(&packed) == st.g.rootsHash {
                return Ok(ev.roots);
            }
        }
        Err(PlayError::Mismatch {
            game: st.id,
            why: "no Bisected event matches the stored roots hash".into(),
        })
    }

    /// Names the entry of step `lo` (see [`super::naming`]).
    async fn name(&self, st: &GameState) -> Result<Outcome, PlayError> {
        let p = &self.player;
        let step = st.g.lo;
        let info = self
            .own
            .program()
            .step(step)
            .map_err(crate::DisputeError::from)?;
        let own = self.own.tensor(step)?;
        let fetched = self
            .data
            .fetch(&self.receipt, step, self.own.trace(), st.g.hiRoot)
            .await;
        let (row, col) = match &fetched {
            Ok(theirs) => wrong_entry(&info, &own, theirs).ok_or(PlayError::Mismatch {
                game: st.id,
                why: format!("the defender's step {step} equals ours"),
            })?,
            Err(e) => {
                tracing::warn!(game = st.id, step, error = %e, "naming without the defender's rows");
                if matches!(e, DataError::Invalid(_)) {
                    tracing::warn!(game = st.id, "the defender served rows that do not check");
                }
                blind_entry(&info, &own, self.hint)
            }
        };
        let data = DisputeGame::nameEntryCall {
            gameId: U256::from(st.id),
            disputed: st.g.hiRoot,
            row,
            col,
        };
        let bond = p.move_bond().await?;
        p.send("nameEntry", st.key(), data.abi_encode().into(), bond)
            .await
    }
}

/// `FoldProver.chunk()` of the game's fold prover (positions per pv chunk).
pub(crate) async fn fold_chunk(p: &Player<'_>) -> Result<u64, PlayError> {
    use verinfer_l1::bindings::FoldProver;
    let folder = p
        .contract()
        .folder()
        .call()
        .await
        .map_err(read_err("folder"))?;
    let chunk = FoldProver::new(folder, p.provider.clone())
        .chunk()
        .call()
        .await
        .map_err(read_err("chunk"))?;
    u64::try_from(chunk).map_err(|_| PlayError::Mismatch {
        game: p.id,
        why: format!("fold chunk {chunk}"),
    })
}
