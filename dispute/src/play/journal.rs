//! The worker's record of the games it defends: `DATA_DIR/games.redb`, beside the worker's own
//! `worker.redb`. Per game: the receipt and shard it is about, every move sent (recorded
//! before the player waits for it to be mined, so a restart waits for a pending move instead of
//! sending another), and the outcome once resolved. A cursor says up to which game id the
//! game contract was scanned. Every change is one `Durability::Immediate` transaction.

use std::path::Path;

use alloy_primitives::B256;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::game::{MoveLog, Pending};
use super::PlayError;

/// game id → [`GameRecord`] (JSON).
const GAMES: TableDefinition<u64, &[u8]> = TableDefinition::new("games");
/// `next_game`: the first game id not scanned yet.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// One game the worker defends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GameRecord {
    pub game_id: u64,
    pub batch_id: u64,
    pub receipt_hash: B256,
    /// The worker's shard the receipt is for.
    pub shard_id: B256,
    /// Moves sent, in order (the last one may still be pending).
    pub moves: Vec<Pending>,
    /// `playing`, `won`, `lost`, or `failed: why` (a game we cannot play: no SKU, no shard).
    pub state: String,
}

/// The journal.
pub struct Journal {
    db: Database,
}

fn db(e: impl std::fmt::Display) -> PlayError {
    PlayError::Log(e.to_string())
}

impl Journal {
    /// Opens (or creates) `dir/games.redb`.
    pub fn open(dir: &Path) -> Result<Self, PlayError> {
        std::fs::create_dir_all(dir).map_err(db)?;
        let d = Database::create(dir.join("games.redb")).map_err(db)?;
        let tx = d.begin_write().map_err(db)?;
        tx.open_table(GAMES).map_err(db)?;
        tx.open_table(META).map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(Journal { db: d })
    }

    /// The first game id not scanned yet.
    pub fn next_game(&self) -> Result<u64, PlayError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(META).map_err(db)?;
        Ok(t.get("next_game").map_err(db)?.map_or(0, |v| v.value()))
    }

    /// Records the games found in a scan and moves the cursor, in one transaction.
    pub fn found(&self, games: &[GameRecord], next: u64) -> Result<(), PlayError> {
        let mut tx = self.db.begin_write().map_err(db)?;
        tx.set_durability(redb::Durability::Immediate).map_err(db)?;
        {
            let mut t = tx.open_table(GAMES).map_err(db)?;
            for g in games {
                if t.get(g.game_id).map_err(db)?.is_none() {
                    let v = serde_json::to_vec(g).map_err(db)?;
                    t.insert(g.game_id, v.as_slice()).map_err(db)?;
                }
            }
            tx.open_table(META)
                .map_err(db)?
                .insert("next_game", next)
                .map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    /// One game.
    pub fn get(&self, game: u64) -> Result<Option<GameRecord>, PlayError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(GAMES).map_err(db)?;
        let v = t.get(game).map_err(db)?;
        v.map(|v| serde_json::from_slice(v.value()).map_err(db))
            .transpose()
    }

    /// Every game, by id.
    pub fn all(&self) -> Result<Vec<GameRecord>, PlayError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(GAMES).map_err(db)?;
        let mut out = Vec::new();
        for e in t.iter().map_err(db)? {
            let (_, v) = e.map_err(db)?;
            out.push(serde_json::from_slice(v.value()).map_err(db)?);
        }
        Ok(out)
    }

    /// Changes one game's record with `f`, in one transaction.
    pub fn update(&self, game: u64, f: impl FnOnce(&mut GameRecord)) -> Result<(), PlayError> {
        let mut tx = self.db.begin_write().map_err(db)?;
        tx.set_durability(redb::Durability::Immediate).map_err(db)?;
        {
            let mut t = tx.open_table(GAMES).map_err(db)?;
            let old = t.get(game).map_err(db)?.map(|v| v.value().to_vec());
            let Some(old) = old else {
                return Err(PlayError::Log(format!("game {game} is not in the journal")));
            };
            let mut rec: GameRecord = serde_json::from_slice(&old).map_err(db)?;
            f(&mut rec);
            let v = serde_json::to_vec(&rec).map_err(db)?;
            t.insert(game, v.as_slice()).map_err(db)?;
        }
        tx.commit().map_err(db)
    }
}

impl MoveLog for Journal {
    fn last(&self, game: u64) -> Result<Option<Pending>, PlayError> {
        Ok(self.get(game)?.and_then(|g| g.moves.last().cloned()))
    }
    fn sent(&self, game: u64, p: Pending) -> Result<(), PlayError> {
        self.update(game, |g| g.moves.push(p))
    }
}
