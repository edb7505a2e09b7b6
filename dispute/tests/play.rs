//! Whole games played by the players alone on a spawned anvil, with real engine traces of the
//! tiny Llama SKU: each turn builds a fresh `Challenger` / `Defender` (as a daemon restarted
//! after every move would) and calls it twice, and every move goes through a durable
//! `Journal`, whose record must never show a move sent twice for one game state.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use alloy::primitives::U256;
use common::game::{eth, opener, shardset, Env, Tampered, CLOCK};
use verinfer_dispute::play::journal::{GameRecord, Journal};
use verinfer_dispute::play::{
    Challenger, ChallengerView, Committed, Defender, DefenderView, FoldPolicy, Outcome, Player,
    Role,
};
use verinfer_dispute::watch::EngineTrace;
use verinfer_l1::bindings::DisputeGame;
use verinfer_prover::{Backend, Engine, LayerOp, StepKind};

/// Reason codes of `DisputeGame.Reason`.
const FRAUD: u8 = 1;
const DEFENDER_TIMEOUT: u8 = 3;
const CHALLENGER_TIMEOUT: u8 = 5;
const PROVEN: u8 = 6;

struct Side {
    journal: Journal,
    _dir: tempfile::TempDir,
}

fn side(id: u64) -> Side {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let rec = GameRecord {
        game_id: id,
        batch_id: 0,
        receipt_hash: Default::default(),
        shard_id: Default::default(),
        moves: Vec::new(),
        state: "playing".into(),
    };
    journal.found(&[rec], id + 1).unwrap();
    Side { journal, _dir: dir }
}

fn challenger<'a>(
    env: &Env,
    id: u64,
    log: &'a Journal,
    own: &'a dyn ChallengerView,
    data: Committed,
) -> Challenger<'a> {
    Challenger {
        player: Player {
            provider: env.challenger_p(),
            game: env.d.dispute_game,
            id,
            role: Role::Challenger,
            me: env.challenger.address(),
            log,
        },
        receipt: env.receipt.clone(),
        own,
        data,
        hint: None,
    }
}

fn defender<'a>(
    env: &Env,
    id: u64,
    log: &'a Journal,
    own: &'a dyn DefenderView,
    fold: FoldPolicy,
) -> Defender<'a> {
    Defender {
        player: Player {
            provider: env.worker_p(),
            game: env.d.dispute_game,
            id,
            role: Role::Defender,
            me: env.worker.address(),
            log,
        },
        own,
        fold,
    }
}

/// What a played game did: the moves each side made, and what each withdrew.
#[derive(Debug, Default)]
struct Played {
    calls: Vec<&'static str>,
    bonded: u64,
    challenger_won: bool,
    reason: u8,
    withdrawn_c: U256,
    withdrawn_d: U256,
}

fn note(p: &mut Played, o: &Outcome, challenger: bool) {
    match o {
        Outcome::Moved { call, .. } => {
            p.calls.push(call);
            if ["bisect", "choose", "nameEntry", "foldRow"].contains(call) {
                p.bonded += 1;
            }
        }
        Outcome::Done {
            challenger_won,
            reason,
            withdrawn,
        } => {
            p.challenger_won = *challenger_won;
            p.reason = *reason;
            if challenger {
                p.withdrawn_c += *withdrawn;
            } else {
                p.withdrawn_d += *withdrawn;
            }
        }
        _ => {}
    }
}

/// Plays until both sides report the end; each turn is a fresh player called twice.
async fn play(
    env: &Env,
    id: u64,
    (c, own_c, data): (&Side, &dyn ChallengerView, Committed),
    (d, own_d, fold): (&Side, &dyn DefenderView, FoldPolicy),
) -> anyhow::Result<Played> {
    let mut p = Played::default();
    for _ in 0..200 {
        let mut done = 0;
        for _ in 0..2 {
            let o = defender(env, id, &d.journal, own_d, fold).step().await?;
            note(&mut p, &o, false);
            done += matches!(o, Outcome::Done { .. }) as u32;
        }
        for _ in 0..2 {
            let o = challenger(env, id, &c.journal, own_c, data.clone())
                .step()
                .await?;
            note(&mut p, &o, true);
            done += matches!(o, Outcome::Done { .. }) as u32;
        }
        if done == 4 {
            no_double_moves(&c.journal, id)?;
            no_double_moves(&d.journal, id)?;
            return Ok(p);
        }
    }
    anyhow::bail!("the game did not end: {:?}", p.calls)
}

/// Every move in the journal was made against a different game state.
fn no_double_moves(j: &Journal, id: u64) -> anyhow::Result<()> {
    let moves = j.get(id)?.map(|g| g.moves).unwrap_or_default();
    let keys: HashSet<_> = moves.iter().map(|m| m.key).collect();
    anyhow::ensure!(
        keys.len() == moves.len(),
        "a move was sent twice: {moves:?}"
    );
    Ok(())
}

fn gate_step(o: &verinfer_dispute::Opener) -> u64 {
    o.program().step_id(
        0,
        StepKind::Layer {
            layer: 0,
            op: LayerOp::Gate,
        },
    )
}

#[tokio::test]
async fn honest_challenger_beats_a_worker_that_committed_a_wrong_gemm_entry() -> anyhow::Result<()>
{
    let s = shardset();
    let honest = opener(&s);
    let step = gate_step(&honest);
    let cheat = Tampered::new(opener(&s), step, 3, 1);
    let env = Env::new(&s, cheat.trace.trace_root()).await?;
    let id = env.open().await?;
    let (c, d) = (side(id), side(id));
    let data = Committed::Source(Arc::new(cheat.source()));
    let p = play(
        &env,
        id,
        (&c, &honest, data),
        (&d, &cheat, FoldPolicy::Never),
    )
    .await?;
    assert!(p.challenger_won, "{p:?}");
    assert_eq!(p.reason, FRAUD, "{p:?}");
    assert!(
        p.calls.contains(&"nameEntry") && p.calls.contains(&"proveGemm"),
        "{p:?}"
    );
    let g = env.game(id).await?;
    assert_eq!(
        (g.lo, g.row, g.col),
        (step, 3, 1),
        "the wrong entry was named"
    );
    assert_eq!(
        env.stake(env.worker.address()).await?,
        eth(2),
        "half the stake slashed"
    );
    // The winner gets its bond back and every move bond of both sides.
    let bonds = env.cfg.min_bond + env.cfg.move_bond * U256::from(p.bonded);
    assert_eq!(p.withdrawn_c, bonds, "{p:?}");
    assert_eq!(p.withdrawn_d, U256::ZERO);
    Ok(())
}

#[tokio::test]
async fn false_challenge_of_a_gemm_entry_loses_to_the_honest_worker() -> anyhow::Result<()> {
    let s = shardset();
    let honest = opener(&s);
    let step = gate_step(&honest);
    let liar = Tampered::new(opener(&s), step, 2, 0);
    let env = Env::new(&s, honest.trace().trace_root()).await?;
    let id = env.open().await?;
    let (c, d) = (side(id), side(id));
    // The worker serves its honest trace.
    let served = EngineTrace::new(
        Engine::new(s.sku.clone(), Backend::Reference)?,
        s.shard.clone(),
    )?;
    let data = Committed::Source(Arc::new(served));
    let p = play(
        &env,
        id,
        (&c, &liar, data),
        (&d, &honest, FoldPolicy::Never),
    )
    .await?;
    assert!(!p.challenger_won, "{p:?}");
    assert_eq!(p.reason, PROVEN, "{p:?}");
    assert!(p.calls.contains(&"proveGemm"), "{p:?}");
    assert_eq!(
        env.stake(env.worker.address()).await?,
        eth(4),
        "not slashed"
    );
    let reward = env.cfg.min_bond * U256::from(env.cfg.reward_bps) / U256::from(10_000u64);
    let bonds = reward + env.cfg.move_bond * U256::from(p.bonded);
    assert_eq!(p.withdrawn_d, bonds, "{p:?}");
    Ok(())
}

#[tokio::test]
async fn false_challenge_of_a_pv_row_loses_to_a_fold() -> anyhow::Result<()> {
    let s = shardset();
    let honest = opener(&s);
    let step = honest.program().step_id(
        0,
        StepKind::Layer {
            layer: 0,
            op: LayerOp::Pv,
        },
    );
    // Prompt 2 (7 tokens), position 6, head 1: 7 positions, 4 chunks of 2.
    let row = honest.addresses().query_head(2, 6, 1);
    let liar = Tampered::new(opener(&s), step, row, 0);
    let env = Env::new(&s, honest.trace().trace_root()).await?;
    let id = env.open().await?;
    let (c, d) = (side(id), side(id));
    let served = EngineTrace::new(
        Engine::new(s.sku.clone(), Backend::Reference)?,
        s.shard.clone(),
    )?;
    let data = Committed::Source(Arc::new(served));
    let p = play(
        &env,
        id,
        (&c, &liar, data),
        (&d, &honest, FoldPolicy::Always),
    )
    .await?;
    assert!(!p.challenger_won, "{p:?}");
    assert_eq!(p.reason, PROVEN, "{p:?}");
    assert!(
        p.calls.contains(&"foldRow") && p.calls.contains(&"proveFold"),
        "{p:?}"
    );
    let g = env.game(id).await?;
    assert!(g.fold, "the row was folded");
    assert_eq!(
        env.stake(env.worker.address()).await?,
        eth(4),
        "not slashed"
    );
    Ok(())
}

#[tokio::test]
async fn a_silent_worker_loses_on_its_clock_and_a_silent_challenger_on_its() -> anyhow::Result<()> {
    let s = shardset();
    let honest = opener(&s);
    let cheat = Tampered::new(opener(&s), gate_step(&honest), 3, 1);
    // The worker never answers: the challenger waits, then claims the timeout.
    let env = Env::new(&s, cheat.trace.trace_root()).await?;
    let id = env.open().await?;
    let c = side(id);
    let data = Committed::Source(Arc::new(cheat.source()));
    let o = challenger(&env, id, &c.journal, &honest, data.clone())
        .step()
        .await?;
    assert_eq!(o, Outcome::Waiting);
    env.advance(CLOCK - 60).await?;
    let o = challenger(&env, id, &c.journal, &honest, data.clone())
        .step()
        .await?;
    assert_eq!(o, Outcome::Waiting, "the clock still runs");
    env.advance(61).await?;
    let o = challenger(&env, id, &c.journal, &honest, data.clone())
        .step()
        .await?;
    assert!(
        matches!(
            o,
            Outcome::Moved {
                call: "timeout",
                ..
            }
        ),
        "{o:?}"
    );
    let o = challenger(&env, id, &c.journal, &honest, data.clone())
        .step()
        .await?;
    let Outcome::Done {
        challenger_won: true,
        reason: DEFENDER_TIMEOUT,
        withdrawn,
    } = o
    else {
        panic!("{o:?}")
    };
    assert_eq!(withdrawn, env.cfg.min_bond);
    let slashed = eth(4) * U256::from(env.cfg.slash_timeout_bps) / U256::from(10_000u64);
    assert_eq!(env.stake(env.worker.address()).await?, eth(4) - slashed);

    // An honest worker bisects once; the challenger never chooses and loses on its clock.
    let env = Env::new(&s, honest.trace().trace_root()).await?;
    let id = env.open().await?;
    let d = side(id);
    let o = defender(&env, id, &d.journal, &honest, FoldPolicy::Never)
        .step()
        .await?;
    assert!(matches!(o, Outcome::Moved { call: "bisect", .. }), "{o:?}");
    let o = defender(&env, id, &d.journal, &honest, FoldPolicy::Never)
        .step()
        .await?;
    assert_eq!(o, Outcome::Waiting);
    env.advance(CLOCK + 1).await?;
    let o = defender(&env, id, &d.journal, &honest, FoldPolicy::Never)
        .step()
        .await?;
    assert!(
        matches!(
            o,
            Outcome::Moved {
                call: "timeout",
                ..
            }
        ),
        "{o:?}"
    );
    let o = defender(&env, id, &d.journal, &honest, FoldPolicy::Never)
        .step()
        .await?;
    let Outcome::Done {
        challenger_won: false,
        reason: CHALLENGER_TIMEOUT,
        withdrawn,
    } = o
    else {
        panic!("{o:?}")
    };
    let reward = env.cfg.min_bond * U256::from(env.cfg.reward_bps) / U256::from(10_000u64);
    assert_eq!(
        withdrawn,
        reward + env.cfg.move_bond,
        "the reward and its own move bond"
    );
    Ok(())
}

#[tokio::test]
async fn a_move_sent_before_a_crash_is_waited_for_not_sent_again() -> anyhow::Result<()> {
    let s = shardset();
    let honest = opener(&s);
    let env = Env::new(&s, honest.trace().trace_root()).await?;
    let id = env.open().await?;
    let d = side(id);
    env.automine(false).await?;
    // The defender sends its bisection and "crashes" while waiting for it to be mined.
    let first = defender(&env, id, &d.journal, &honest, FoldPolicy::Never);
    let r = tokio::time::timeout(std::time::Duration::from_secs(3), first.step()).await;
    assert!(r.is_err(), "the move cannot be mined while automine is off");
    let sent = d.journal.get(id)?.unwrap().moves;
    assert_eq!(sent.len(), 1, "{sent:?}");
    // A fresh player sees its own pending move and sends nothing.
    let o = defender(&env, id, &d.journal, &honest, FoldPolicy::Never)
        .step()
        .await?;
    assert_eq!(o, Outcome::Pending { tx: sent[0].tx });
    assert_eq!(d.journal.get(id)?.unwrap().moves.len(), 1);
    env.automine(true).await?;
    env.advance(1).await?;
    let rc = alloy::providers::Provider::get_transaction_receipt(&env.owner, sent[0].tx).await?;
    assert!(
        rc.is_some_and(|r| r.status()),
        "the move sent before the crash was mined"
    );
    let o = defender(&env, id, &d.journal, &honest, FoldPolicy::Never)
        .step()
        .await?;
    assert_eq!(o, Outcome::Waiting, "mined: now the challenger's turn");
    let g = env.game(id).await?;
    assert_eq!(g.phase, 2, "choose");
    let logs = DisputeGame::new(env.d.dispute_game, env.owner.clone())
        .Bisected_filter()
        .from_block(0)
        .query()
        .await?;
    assert_eq!(logs.len(), 1, "one bisection on chain");
    Ok(())
}

#[tokio::test]
async fn a_false_output_challenge_is_answered_with_proveoutput() -> anyhow::Result<()> {
    let s = shardset();
    let honest = opener(&s);
    let env = Env::new(&s, honest.trace().trace_root()).await?;
    let g = DisputeGame::new(env.d.dispute_game, env.challenger_p());
    let id: u64 = g.gameCount().call().await?.to();
    // Completion 2, token 1: the challenger claims it is not what the trace generated.
    let rc = g
        .openOutput(
            U256::ZERO,
            env.receipt.clone().into(),
            U256::ZERO,
            vec![],
            2,
            1,
        )
        .value(env.cfg.min_bond)
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(rc.status());
    let d = side(id);
    let o = defender(&env, id, &d.journal, &honest, FoldPolicy::Never)
        .step()
        .await?;
    assert!(
        matches!(
            o,
            Outcome::Moved {
                call: "proveOutput",
                ..
            }
        ),
        "{o:?}"
    );
    let o = defender(&env, id, &d.journal, &honest, FoldPolicy::Never)
        .step()
        .await?;
    let Outcome::Done {
        challenger_won: false,
        reason: PROVEN,
        withdrawn,
    } = o
    else {
        panic!("{o:?}")
    };
    let reward = env.cfg.min_bond * U256::from(env.cfg.reward_bps) / U256::from(10_000u64);
    assert_eq!(withdrawn, reward);
    assert_eq!(
        env.stake(env.worker.address()).await?,
        eth(4),
        "not slashed"
    );
    Ok(())
}
