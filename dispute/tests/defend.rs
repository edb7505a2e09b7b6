//! The worker's defender task (`play::worker::DefendTask`, what `verinfer worker --game` runs)
//! against a false challenge, on a spawned anvil: the task finds the game opened against its
//! receipt by scanning the game contract, rebuilds the shard's trace from the worker store's
//! assignment, and plays to the end; it is rebuilt from disk before every round (a restart
//! after each move). The challenger names its entry from the worker's real data API
//! (`worker_tensorChunk`, served by `prover::worker::da` over the same store).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Bytes, U256};
use common::game::{eth, opener, shardset, Env, Tampered};
use verinfer_dispute::play::journal::{GameRecord, Journal};
use verinfer_dispute::play::worker::{DefendConfig, DefendTask};
use verinfer_dispute::play::{Challenger, Committed, FoldPolicy, Outcome, Player, Role};
use verinfer_primitives::job::{shard_id, Prompt};
use verinfer_prover::worker::da::{serve, DaLimits, DaState};
use verinfer_prover::worker::store::{SignedResult, Store};
use verinfer_prover::{Backend, Engine, LayerOp, StepKind};
use verinfer_rpc::types::ShardAssignment;

#[tokio::test]
async fn the_worker_task_defends_its_receipt_from_its_store_across_restarts() -> anyhow::Result<()>
{
    let s = shardset();
    let honest = opener(&s);
    let env = Env::new(&s, honest.trace().trace_root()).await?;

    // The worker's store holds the shard and its signed receipt, as after a run.
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(dir.path())?);
    let r = env.receipt.clone();
    let sid = shard_id(r.jobId, r.shardIndex);
    store.assign(&ShardAssignment {
        shard_id: sid,
        job_id: r.jobId,
        shard_index: r.shardIndex,
        sku_id: r.skuId,
        prompts: s
            .shard
            .prompts
            .iter()
            .map(|p| Prompt::Tokens(p.clone()))
            .collect(),
        input_root: r.inputRoot,
        max_new_tokens: s.shard.max_new_tokens as u64,
        deadline_ms: u64::MAX,
        attempt: 0,
    })?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let result = SignedResult {
        receipt: r.clone(),
        signature: Bytes::from(vec![0u8; 65]),
        outputs: honest.generated().to_vec(),
        signed_at_ms: now_ms,
    };
    store.sign(sid, result, honest.trace().output_roots())?;
    let mut engines = HashMap::new();
    engines.insert(
        s.sku.id(),
        Arc::new(Engine::new(s.sku.clone(), Backend::Reference)?),
    );
    let da = DaState::new(
        store.clone(),
        engines.clone(),
        env.worker.address(),
        DaLimits::default(),
    );
    let (addr, _server) = serve(Arc::new(da), "127.0.0.1:0".parse()?).await?;
    let api = verinfer_rpc::client::http(&format!("http://{addr}"))?;

    // A false challenge of one GEMM entry.
    let step = honest.program().step_id(
        0,
        StepKind::Layer {
            layer: 0,
            op: LayerOp::Up,
        },
    );
    let liar = Tampered::new(opener(&s), step, 1, 2);
    let id = env.open().await?;
    let cdir = tempfile::tempdir()?;
    let cj = Journal::open(cdir.path())?;
    cj.found(
        &[GameRecord {
            game_id: id,
            batch_id: 0,
            receipt_hash: r.hash(),
            shard_id: Default::default(),
            moves: Vec::new(),
            state: "playing".into(),
        }],
        id + 1,
    )?;
    let cfg = DefendConfig {
        l1_url: env.anvil.endpoint(),
        game: env.d.dispute_game,
        signer: env.worker.clone(),
        poll: Duration::from_millis(10),
        fold: FoldPolicy::Auto,
    };
    let mut over = false;
    for _ in 0..100 {
        {
            let mut t = DefendTask::new(cfg.clone(), dir.path(), store.clone(), engines.clone())?;
            t.round().await?;
        }
        let c = Challenger {
            player: Player {
                provider: env.challenger_p(),
                game: env.d.dispute_game,
                id,
                role: Role::Challenger,
                me: env.challenger.address(),
                log: &cj,
            },
            receipt: r.clone(),
            own: &liar,
            data: Committed::Api(api.clone()),
            hint: None,
        };
        let o = c.step().await?;
        let rec = Journal::open(dir.path())?
            .get(id)?
            .expect("the task recorded the game");
        if matches!(o, Outcome::Done { .. }) && rec.state != "playing" {
            over = true;
            break;
        }
    }
    assert!(over, "the game ended");
    let rec = Journal::open(dir.path())?.get(id)?.unwrap();
    assert_eq!(rec.state, "won");
    assert_eq!(rec.shard_id, sid);
    let calls: Vec<&str> = rec.moves.iter().map(|m| m.call.as_str()).collect();
    assert!(
        calls.contains(&"bisect") && calls.contains(&"proveGemm") && calls.contains(&"withdraw"),
        "{calls:?}"
    );
    let keys: std::collections::HashSet<_> = rec.moves.iter().map(|m| m.key).collect();
    assert_eq!(keys.len(), rec.moves.len(), "no move sent twice");
    let g = env.game(id).await?;
    assert_eq!(
        (g.lo, g.row, g.col, g.reason),
        (step, 1, 2, 6),
        "the liar's entry, proven"
    );
    assert_eq!(
        env.stake(env.worker.address()).await?,
        eth(4),
        "not slashed"
    );
    let owed = verinfer_l1::bindings::DisputeGame::new(env.d.dispute_game, env.owner.clone())
        .owed(env.worker.address())
        .call()
        .await?;
    assert_eq!(owed, U256::ZERO, "the worker withdrew its winnings");
    Ok(())
}
