//! The worker's defender task (`verinfer worker --l1 URL --game ADDR`): scans the game contract
//! for games whose defender is this worker (`gameCount` / `getGame`, from the journal's
//! cursor), finds the shard of each game's receipt in the worker's store, rebuilds its trace
//! with the engine (an [`Opener`]) and plays each game to the end with the [`Defender`],
//! recording every move and the outcome in the [`Journal`], so a restart continues where it
//! stopped.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256, U256};
use verinfer_l1::bindings::DisputeGame;
use verinfer_prover::worker::exec::{to_shard, Engines};
use verinfer_prover::worker::store::Store;

use super::defender::{Defender, FoldPolicy};
use super::game::{Outcome, Player, Role};
use super::journal::{GameRecord, Journal};
use super::{read_err, PlayError};
use crate::Opener;

/// How the defender task runs.
#[derive(Clone)]
pub struct DefendConfig {
    pub l1_url: String,
    pub game: Address,
    pub signer: PrivateKeySigner,
    pub poll: Duration,
    pub fold: FoldPolicy,
}

/// The running task: the worker's store and engines, our journal, the openers built so far.
pub struct DefendTask {
    cfg: DefendConfig,
    provider: DynProvider,
    store: Arc<Store>,
    engines: Engines,
    journal: Journal,
    openers: HashMap<B256, Arc<Opener>>,
}

impl DefendTask {
    /// Opens the journal in `data_dir` and connects to L1 with the worker's key.
    pub fn new(
        cfg: DefendConfig,
        data_dir: &Path,
        store: Arc<Store>,
        engines: Engines,
    ) -> Result<Self, PlayError> {
        let url = cfg.l1_url.parse().map_err(|e| PlayError::Read {
            call: "L1 url",
            reason: format!("{e}"),
        })?;
        let provider = verinfer_l1::provider::daemon_signer(url, cfg.signer.clone());
        Ok(DefendTask {
            journal: Journal::open(data_dir)?,
            cfg,
            provider,
            store,
            engines,
            openers: HashMap::new(),
        })
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Runs rounds until `stop` resolves; errors of a round are logged and retried.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "defender round failed; retrying");
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(self.cfg.poll) => {}
            }
        }
    }

    /// One round: scan for new games, then one move of every game still being played.
    pub async fn round(&mut self) -> Result<(), PlayError> {
        self.scan().await?;
        for rec in self.journal.all()? {
            if rec.state != "playing" {
                continue;
            }
            match self.play(&rec).await {
                Ok(Outcome::Done { challenger_won, .. }) => {
                    let state = if challenger_won { "lost" } else { "won" };
                    tracing::info!(game = rec.game_id, state, "game over");
                    self.journal
                        .update(rec.game_id, |g| g.state = state.into())?;
                }
                Ok(_) => {}
                Err(e @ (PlayError::Mismatch { .. } | PlayError::NotOurs { .. })) => {
                    tracing::error!(game = rec.game_id, error = %e, "cannot defend this game");
                    self.journal
                        .update(rec.game_id, |g| g.state = format!("failed: {e}"))?;
                }
                Err(e) => tracing::warn!(game = rec.game_id, error = %e, "move failed; retrying"),
            }
        }
        Ok(())
    }

    /// Records every new game whose defender is us, with the shard of its receipt.
    async fn scan(&self) -> Result<(), PlayError> {
        let c = DisputeGame::new(self.cfg.game, self.provider.clone());
        let count: u64 = c
            .gameCount()
            .call()
            .await
            .map_err(read_err("gameCount"))?
            .try_into()
            .unwrap_or(u64::MAX);
        let from = self.journal.next_game()?;
        if from >= count {
            return Ok(());
        }
        let me = self.cfg.signer.address();
        let signed = self.signed_receipts()?;
        let mut found = Vec::new();
        for id in from..count {
            let g = c
                .getGame(U256::from(id))
                .call()
                .await
                .map_err(read_err("getGame"))?;
            if g.defender != me {
                continue;
            }
            let shard = signed.get(&g.receiptHash).copied();
            tracing::info!(game = id, receipt = %g.receiptHash, output = g.output, "game opened against us");
            found.push(GameRecord {
                game_id: id,
                batch_id: g.batchId,
                receipt_hash: g.receiptHash,
                shard_id: shard.unwrap_or_default(),
                moves: Vec::new(),
                state: match shard {
                    Some(_) => "playing".into(),
                    None => "failed: no receipt with this hash in the worker store".into(),
                },
            });
        }
        self.journal.found(&found, count)
    }

    /// receipt hash → shard id, over every receipt the worker signed.
    fn signed_receipts(&self) -> Result<HashMap<B256, B256>, PlayError> {
        let all = self
            .store
            .all()
            .map_err(|e| PlayError::Log(e.to_string()))?;
        Ok(all
            .iter()
            .filter_map(|r| Some((r.state.result()?.receipt.hash(), r.assignment.shard_id)))
            .collect())
    }

    /// One move of game `rec`.
    async fn play(&mut self, rec: &GameRecord) -> Result<Outcome, PlayError> {
        let opener = self.opener(rec.shard_id, rec.game_id).await?;
        let d = Defender {
            player: Player {
                provider: self.provider.clone(),
                game: self.cfg.game,
                id: rec.game_id,
                role: Role::Defender,
                me: self.cfg.signer.address(),
                log: &self.journal,
            },
            own: opener.as_ref(),
            fold: self.cfg.fold,
        };
        d.step().await
    }

    /// The opener of `shard` (built once per process: the engine re-runs the shard).
    async fn opener(&mut self, shard: B256, game: u64) -> Result<Arc<Opener>, PlayError> {
        if let Some(o) = self.openers.get(&shard) {
            return Ok(o.clone());
        }
        let mismatch = |why: String| PlayError::Mismatch { game, why };
        let rec = self
            .store
            .get(shard)
            .map_err(|e| PlayError::Log(e.to_string()))?
            .ok_or_else(|| mismatch(format!("shard {shard} is not in the store")))?;
        let a = &rec.assignment;
        let engine = self
            .engines
            .get(&a.sku_id)
            .ok_or_else(|| mismatch(format!("no SKU {} loaded", a.sku_id)))?;
        let s = to_shard(a).map_err(|e| mismatch(e.to_string()))?;
        // The worker's own engine replayed (a faulty build's fault included): the defender
        // opens the trace the receipt committed to.
        let replica = engine.replica().map_err(|e| mismatch(e.to_string()))?;
        let opener = tokio::task::spawn_blocking(move || Opener::new(replica, s))
            .await
            .map_err(|e| PlayError::Log(format!("opener task: {e}")))??;
        let opener = Arc::new(opener);
        self.openers.insert(shard, opener.clone());
        Ok(opener)
    }
}
