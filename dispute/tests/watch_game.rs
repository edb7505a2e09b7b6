//! The watcher daemon (`watch::Watcher`, what `verinfer watch` runs) against a worker that
//! committed one wrong GEMM entry, on a spawned anvil: the watcher follows the inbox, finds the
//! trace root wrong by re-execution, opens its dispute, and plays it with the challenger player
//! (the entry named from the worker's committed rows) while the cheating worker defends with the
//! defender player. A puppet of the worker opened a game on the same receipt first: the watcher
//! must play its own game (found through `gamesOf`), not the first one. The watcher is rebuilt
//! from its data dir before every round (a restart after each move).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{B256, U256};
use common::game::{connect, eth, opener, shardset, Env, Tampered};
use verinfer_dispute::play::journal::{GameRecord, Journal};
use verinfer_dispute::play::{Committed, Defender, FoldPolicy, Outcome, Player, Role};
use verinfer_dispute::watch::{GemmSelect, Policy, WatchConfig, Watcher};
use verinfer_l1::bindings::DisputeGame;
use verinfer_prover::{Backend, LayerOp, StepKind};

#[tokio::test]
async fn the_watcher_plays_its_own_game_to_a_fraud_verdict_and_withdraws() -> anyhow::Result<()> {
    let s = shardset();
    let honest = opener(&s);
    let step = honest.program().step_id(
        0,
        StepKind::Layer {
            layer: 0,
            op: LayerOp::Down,
        },
    );
    let cheat = Tampered::new(opener(&s), step, 4, 3);
    let env = Env::new(&s, cheat.trace.trace_root()).await?;
    // The worker's puppet opens the first game on the receipt and never plays.
    let puppet: alloy::signers::local::PrivateKeySigner = env.anvil.keys()[5].clone().into();
    DisputeGame::new(env.d.dispute_game, connect(&env.anvil, &puppet))
        .open(U256::ZERO, env.receipt.clone().into(), U256::ZERO, vec![])
        .value(env.cfg.min_bond)
        .send()
        .await?
        .get_receipt()
        .await?;

    let wdir = tempfile::tempdir()?;
    let source = Arc::new(cheat.source());
    let config = || WatchConfig {
        l1_url: env.anvil.endpoint(),
        inbox: env.d.batch_inbox,
        game: Some(env.d.dispute_game),
        audits: None,
        key: Some(env.challenger.clone()),
        skus: vec![s.sku.clone()],
        data_dir: wdir.path().to_path_buf(),
        confirmations: 0,
        start_block: 0,
        poll: Duration::from_millis(10),
        policy: Policy {
            salt: B256::repeat_byte(7),
            gemms: GemmSelect::Mlp,
            freivalds_rounds: 1,
            sampled_rows: 2,
        },
        sample_bps: 10_000,
        backend: Backend::Reference,
        worker_data: HashMap::from([(env.worker.address(), Committed::Source(source.clone()))]),
    };
    let ddir = tempfile::tempdir()?;
    let dj = Journal::open(ddir.path())?;
    let mut game = None;
    let mut state = String::new();
    for _ in 0..100 {
        {
            let w = Watcher::new(config()).await?;
            w.step().await?;
            let a = w
                .store()
                .audits()?
                .into_iter()
                .next()
                .expect("the receipt is audited");
            if let Some(d) = a.dispute {
                game = d.game_id;
                state = d.state;
            }
        }
        if state.starts_with("won") || state.starts_with("lost") {
            break;
        }
        let Some(id) = game else { continue };
        if dj.get(id)?.is_none() {
            let rec = GameRecord {
                game_id: id,
                batch_id: 0,
                receipt_hash: env.receipt.hash(),
                shard_id: Default::default(),
                moves: Vec::new(),
                state: "playing".into(),
            };
            dj.found(&[rec], id + 1)?;
        }
        let d = Defender {
            player: Player {
                provider: env.worker_p(),
                game: env.d.dispute_game,
                id,
                role: Role::Defender,
                me: env.worker.address(),
                log: &dj,
            },
            own: &cheat,
            fold: FoldPolicy::Never,
        };
        let o = d.step().await?;
        assert!(
            !matches!(
                o,
                Outcome::Done {
                    challenger_won: false,
                    ..
                }
            ),
            "{o:?}"
        );
    }
    assert_eq!(
        game,
        Some(1),
        "the watcher's own game, not the puppet's game 0"
    );
    assert!(state.starts_with("won (reason 1)"), "fraud proven: {state}");
    let g = env.game(1).await?;
    assert_eq!(
        (g.lo, g.row, g.col),
        (step, 4, 3),
        "the wrong entry was named"
    );
    assert_eq!(
        env.stake(env.worker.address()).await?,
        eth(2),
        "half the stake slashed"
    );
    let owed = DisputeGame::new(env.d.dispute_game, env.owner.clone())
        .owed(env.challenger.address())
        .call()
        .await?;
    assert_eq!(owed, U256::ZERO, "the watcher withdrew");
    assert_eq!(
        env.game(0).await?.phase,
        1,
        "the puppet's game is untouched"
    );
    Ok(())
}
