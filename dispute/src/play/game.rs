//! The game as the player reads it from L1, and the bookkeeping every move shares: bonds,
//! sending, the pending-move log, timeouts and the final withdrawal.

use std::collections::HashMap;
use std::sync::Mutex;

use alloy::network::TransactionBuilder;
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{BlockNumberOrTag, TransactionRequest};
use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_sol_types::SolValue;
use serde::{Deserialize, Serialize};
use verinfer_l1::bindings::DisputeGame;

use super::{read_err, PlayError};

/// `DisputeGame.Phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Bisect,
    Choose,
    Name,
    Prove,
    Resolved,
}

impl Phase {
    fn from_u8(p: u8) -> Option<Phase> {
        Some(match p {
            1 => Phase::Bisect,
            2 => Phase::Choose,
            3 => Phase::Name,
            4 => Phase::Prove,
            5 => Phase::Resolved,
            _ => return None,
        })
    }
}

/// Which side of a game we play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// The receipt's worker.
    Defender,
    /// The account that opened the game.
    Challenger,
}

/// One game as read in one call: the stored game, its extra record, the phase, and the latest
/// block's timestamp (clocks run on L1 time).
#[derive(Debug, Clone)]
pub struct GameState {
    pub id: u64,
    pub g: DisputeGame::Game,
    pub extra: DisputeGame::Extra,
    pub phase: Phase,
    pub now: u64,
}

impl GameState {
    /// Whether the defender is to move (bisect, prove), else the challenger (choose, name).
    pub fn defender_to_move(&self) -> bool {
        matches!(self.phase, Phase::Bisect | Phase::Prove)
    }

    /// Seconds the side to move has left (0 once its clock ran out).
    pub fn mover_left(&self) -> u64 {
        let clock = if self.defender_to_move() {
            self.g.defenderClock
        } else {
            self.g.challengerClock
        };
        clock.saturating_sub(self.now.saturating_sub(self.g.lastMoveAt))
    }

    /// Whether `timeout` would succeed now (the contract wants elapsed > clock).
    pub fn mover_expired(&self) -> bool {
        let clock = if self.defender_to_move() {
            self.g.defenderClock
        } else {
            self.g.challengerClock
        };
        self.phase != Phase::Resolved && self.now.saturating_sub(self.g.lastMoveAt) > clock
    }

    /// A hash of everything a move is made against: a move sent for one key is never sent
    /// again while the game still shows that key.
    pub fn key(&self) -> B256 {
        let g = &self.g;
        let mut b = Vec::with_capacity(8 * 4 + 2 + 64);
        b.extend_from_slice(&self.id.to_be_bytes());
        b.push(g.phase);
        b.extend_from_slice(&g.lo.to_be_bytes());
        b.extend_from_slice(&g.hi.to_be_bytes());
        b.push(g.fold as u8);
        b.extend_from_slice(g.hiRoot.as_slice());
        b.extend_from_slice(g.rootsHash.as_slice());
        keccak256(b)
    }
}

/// What one call of the player did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A move was mined.
    Moved { call: &'static str, tx: B256 },
    /// Our move of this state was sent earlier and is not mined yet: nothing sent.
    Pending { tx: B256 },
    /// It is the other side's turn and its clock still runs.
    Waiting,
    /// The game is over; `withdrawn` is what this call withdrew (zero if nothing was owed).
    Done {
        challenger_won: bool,
        reason: u8,
        withdrawn: U256,
    },
}

/// A move sent and not known to be mined: the game state it was made against and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub key: B256,
    pub tx: B256,
    pub call: String,
}

/// Where the player records a move before it waits for it to be mined (the caller's durable
/// store; [`MemLog`] for a process that does not need to survive).
pub trait MoveLog: Send + Sync {
    /// The last move recorded for `game`.
    fn last(&self, game: u64) -> Result<Option<Pending>, PlayError>;
    /// Records a move of `game` (replacing the previous one).
    fn sent(&self, game: u64, p: Pending) -> Result<(), PlayError>;
}

/// A [`MoveLog`] in memory.
#[derive(Default)]
pub struct MemLog(Mutex<HashMap<u64, Pending>>);

impl MoveLog for MemLog {
    fn last(&self, game: u64) -> Result<Option<Pending>, PlayError> {
        Ok(self
            .0
            .lock()
            .map_err(|e| PlayError::Log(e.to_string()))?
            .get(&game)
            .cloned())
    }
    fn sent(&self, game: u64, p: Pending) -> Result<(), PlayError> {
        self.0
            .lock()
            .map_err(|e| PlayError::Log(e.to_string()))?
            .insert(game, p);
        Ok(())
    }
}

/// The plumbing both sides share: our provider (with the wallet), the game contract, one game.
pub struct Player<'a> {
    pub provider: DynProvider,
    pub game: Address,
    pub id: u64,
    pub role: Role,
    /// Our address (the provider's wallet signs for it).
    pub me: Address,
    pub log: &'a dyn MoveLog,
}

impl Player<'_> {
    pub(crate) fn contract(&self) -> DisputeGame::DisputeGameInstance<DynProvider> {
        DisputeGame::new(self.game, self.provider.clone())
    }

    /// Reads the game.
    pub async fn read(&self) -> Result<GameState, PlayError> {
        let c = self.contract();
        let count = c.gameCount().call().await.map_err(read_err("gameCount"))?;
        if U256::from(self.id) >= count {
            return Err(PlayError::UnknownGame(self.id));
        }
        let gid = U256::from(self.id);
        let g = c.getGame(gid).call().await.map_err(read_err("getGame"))?;
        let extra = c.getExtra(gid).call().await.map_err(read_err("getExtra"))?;
        let phase = Phase::from_u8(g.phase).ok_or(PlayError::Mismatch {
            game: self.id,
            why: format!("phase {}", g.phase),
        })?;
        let now = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| PlayError::Read {
                call: "latest block",
                reason: e.to_string(),
            })?
            .map(|b| b.header.timestamp)
            .ok_or(PlayError::Read {
                call: "latest block",
                reason: "none".into(),
            })?;
        Ok(GameState {
            id: self.id,
            g,
            extra,
            phase,
            now,
        })
    }

    /// The move of `key` recorded earlier whose transaction the node still holds unmined.
    pub(crate) async fn pending(&self, key: B256) -> Result<Option<B256>, PlayError> {
        let Some(p) = self.log.last(self.id)? else {
            return Ok(None);
        };
        if p.key != key {
            return Ok(None);
        }
        let rd = |e: alloy::transports::TransportError| PlayError::Read {
            call: "transaction",
            reason: e.to_string(),
        };
        if self
            .provider
            .get_transaction_receipt(p.tx)
            .await
            .map_err(rd)?
            .is_some()
        {
            return Ok(None); // mined: the state read decides (a failed move is made again)
        }
        // Unknown to the node: dropped, so it may be sent again.
        let known = self
            .provider
            .get_transaction_by_hash(p.tx)
            .await
            .map_err(rd)?;
        Ok(known.map(|_| p.tx))
    }

    /// Sends `data` to the game with `value`, recording it under `key` before waiting.
    pub(crate) async fn send(
        &self,
        call: &'static str,
        key: B256,
        data: Bytes,
        value: U256,
    ) -> Result<Outcome, PlayError> {
        let tx = TransactionRequest::default()
            .with_from(self.me)
            .with_to(self.game)
            .with_input(data)
            .with_value(value);
        // A margin over the estimate: the state the move lands on is not the one estimated
        // against (another block, a pending transaction ahead of it).
        let est = self
            .provider
            .estimate_gas(tx.clone())
            .await
            .map_err(|e| PlayError::Send {
                call,
                reason: e.to_string(),
            })?;
        let tx = tx.with_gas_limit(est + est / 4 + 50_000);
        let sent = self
            .provider
            .send_transaction(tx)
            .await
            .map_err(|e| PlayError::Send {
                call,
                reason: e.to_string(),
            })?;
        let hash = *sent.tx_hash();
        self.log.sent(
            self.id,
            Pending {
                key,
                tx: hash,
                call: call.to_string(),
            },
        )?;
        let rc = sent
            .with_timeout(Some(std::time::Duration::from_secs(60)))
            .get_receipt()
            .await
            .map_err(|e| PlayError::Send {
                call,
                reason: e.to_string(),
            })?;
        if !rc.status() {
            return Err(PlayError::Reverted { call, tx: hash });
        }
        tracing::info!(game = self.id, call, tx = %hash, "dispute move");
        Ok(Outcome::Moved { call, tx: hash })
    }

    /// `moveBond()`.
    pub(crate) async fn move_bond(&self) -> Result<U256, PlayError> {
        self.contract()
            .moveBond()
            .call()
            .await
            .map_err(read_err("moveBond"))
    }

    /// The moves any side makes: claim the other side's timeout, or withdraw after the end.
    /// `None` when it is our turn to play a game move.
    pub(crate) async fn common(&self, st: &GameState) -> Result<Option<Outcome>, PlayError> {
        if st.phase == Phase::Resolved {
            return self.finish(st).await.map(Some);
        }
        let ours = st.defender_to_move() == (self.role == Role::Defender);
        if ours {
            return Ok(None);
        }
        if !st.mover_expired() {
            return Ok(Some(Outcome::Waiting));
        }
        let data = DisputeGame::timeoutCall {
            gameId: U256::from(self.id),
        };
        self.send(
            "timeout",
            st.key(),
            alloy_sol_types::SolCall::abi_encode(&data).into(),
            U256::ZERO,
        )
        .await
        .map(Some)
    }

    /// Withdraws what the game contract owes us (all games together) and reports the verdict.
    async fn finish(&self, st: &GameState) -> Result<Outcome, PlayError> {
        let me = self.me;
        let owed = self
            .contract()
            .owed(me)
            .call()
            .await
            .map_err(read_err("owed"))?;
        let mut withdrawn = U256::ZERO;
        if !owed.is_zero() {
            let data = alloy_sol_types::SolCall::abi_encode(&DisputeGame::withdrawCall {});
            let key = keccak256((st.key(), owed).abi_encode());
            if self.pending(key).await?.is_none() {
                self.send("withdraw", key, data.into(), U256::ZERO).await?;
                withdrawn = owed;
            }
        }
        Ok(Outcome::Done {
            challenger_won: st.g.challengerWon,
            reason: st.g.reason,
            withdrawn,
        })
    }
}
