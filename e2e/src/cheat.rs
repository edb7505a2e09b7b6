//! The journey of a cheat: a worker built with an injected fault takes a shard, its receipt
//! reaches L1, the watcher's audit finds it, the watcher opens a dispute and wins it (the game
//! plays to its end; anvil's clock is moved where a side's clock must run out), the cheater is
//! slashed, the buyer is refunded the cheated shard's charge, and nobody honest loses a wei.

use std::collections::HashSet;

use alloy_primitives::{Address, B256, U256};
use verinfer_l1::bindings::{BatchInbox, DisputeGame, StakeBridge};
use verinfer_rpc::types::Finality;

use crate::chain::chain_err;
use crate::devnet::{poll, Devnet};
use crate::journey::{
    audits, buy, demo_batch, pass_window, results, verified, verify, wait_finality,
};
use crate::{io_err, DevnetError};

/// `DisputeGame.Phase.Resolved`.
const RESOLVED: u8 = 5;

/// What catching one cheat did.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Caught {
    pub job: B256,
    pub cheater: Address,
    pub batch: u64,
    pub game: u64,
    /// `DisputeGame.Reason` of the verdict (1 = fraud proven by the one-step check).
    pub reason: u8,
    /// Jobs the buyer submitted until one had a shard on a cheating worker.
    pub jobs_tried: usize,
    pub slashed_wei: U256,
    pub refunded_wei: U256,
    pub watcher_paid_wei: U256,
}

/// Submits small jobs until a cheating worker signs a shard of one; returns (job, batch,
/// receipt hash, cheater, jobs tried).
async fn job_on_a_cheater(
    dev: &Devnet,
    say: &mut dyn FnMut(&str),
) -> Result<(B256, u64, B256, Address, usize), DevnetError> {
    let cheaters: HashSet<Address> = dev.keys.cheaters.iter().map(|k| k.address()).collect();
    for attempt in 1..=16usize {
        let batch = dev.opts.dir.join(format!("cheat-batch{attempt}.jsonl"));
        let text = demo_batch(dev, 2, 3, 1000 + attempt as u64)?;
        std::fs::write(&batch, text).map_err(io_err(&batch))?;
        let out = dev.opts.dir.join(format!("cheat-out{attempt}.jsonl"));
        let jobs = buy(dev, &batch, &out, say).await?;
        wait_finality(dev, &jobs, Finality::OnL1, 120).await?;
        for job in jobs {
            let r = results(dev, job).await?;
            for sr in &r.receipts {
                if cheaters.contains(&sr.receipt.worker) {
                    let inc = sr.batch.as_ref().ok_or_else(|| {
                        DevnetError::Check(format!("job {job} on L1 without a batch"))
                    })?;
                    return Ok((
                        job,
                        inc.batch,
                        sr.receipt.hash(),
                        sr.receipt.worker,
                        attempt,
                    ));
                }
            }
        }
    }
    Err(DevnetError::Check(
        "no shard went to a cheating worker in 16 jobs".into(),
    ))
}

/// Waits for the watcher's game on the receipt and for it to resolve, moving L1 time by a
/// chess clock whenever nobody has moved for a while (a silent side loses on time).
async fn play_out(dev: &Devnet, batch: u64, receipt: B256) -> Result<(u64, u8), DevnetError> {
    let game = DisputeGame::new(dev.d.dispute_game, dev.l1.reader().clone());
    let id = poll("the watcher to open a dispute", 180, || async {
        let ids = game
            .gamesOf(U256::from(batch), receipt, false)
            .call()
            .await
            .map_err(chain_err("gamesOf"))?;
        Ok(ids.first().copied())
    })
    .await?;
    let clock = game.clock().call().await.map_err(chain_err("clock"))?;
    // Both players are programs that move within seconds; L1 time is moved past a clock only
    // when nobody has moved for STALL (a player that stopped answering), never to hurry one
    // that is computing its move (which would turn a fraud proof into a timeout).
    const STALL: std::time::Duration = std::time::Duration::from_secs(30);
    let mut last = (0u64, std::time::Instant::now());
    for _ in 0..120 {
        let g = game
            .getGame(id)
            .call()
            .await
            .map_err(chain_err("getGame"))?;
        if g.phase == RESOLVED {
            if !g.challengerWon {
                return Err(DevnetError::Check(format!("game {id}: the cheater won")));
            }
            return Ok((id.to::<u64>(), g.reason));
        }
        if g.lastMoveAt != last.0 {
            last = (g.lastMoveAt, std::time::Instant::now());
        } else if last.1.elapsed() >= STALL {
            dev.l1.warp(clock + 1).await?;
            last.1 = std::time::Instant::now();
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
    Err(DevnetError::Timeout(format!("game {id} never resolved")))
}

/// The whole cheat journey on a devnet started with at least one cheating worker.
pub async fn catch_cheat(dev: &Devnet, say: &mut dyn FnMut(&str)) -> Result<Caught, DevnetError> {
    let bridge = StakeBridge::new(dev.d.stake_bridge, dev.l1.reader().clone());
    let honest_before = stakes(dev, &dev.keys.workers).await?;
    let fraud0 = audits(dev)?.fraud;
    let fails0 = verified(dev, 0).await?.1;
    say("buyer submits jobs until a cheating worker signs a shard");
    let (job, batch, receipt, cheater, tried) = job_on_a_cheater(dev, say).await?;
    let stake0 = dev.stake_of(cheater).await?;
    say(&format!(
        "job {job}: a shard by cheater {cheater} is in batch {batch}"
    ));
    let (game, reason) = play_out(dev, batch, receipt).await?;
    if audits(dev)?.fraud <= fraud0 {
        return Err(DevnetError::Check(
            "the watcher recorded no fraud verdict".into(),
        ));
    }
    if dev.d.audits.is_some() {
        // The watcher, the receipt's drawn verifier, reported it failed (naming its game).
        poll("the watcher's failed verification on L1", 120, || async {
            Ok((verified(dev, 0).await?.1 > fails0).then_some(()))
        })
        .await?;
    }
    let slashed = stake0 - dev.stake_of(cheater).await?;
    say(&format!(
        "game {game} won by the watcher; cheater slashed {slashed} wei"
    ));
    if slashed.is_zero() {
        return Err(DevnetError::Check("the cheater was not slashed".into()));
    }
    let inbox = BatchInbox::new(dev.d.batch_inbox, dev.l1.reader().clone());
    pass_window(dev).await?;
    let refunded = poll("the cheated shard's refund", 120, || async {
        let j = inbox
            .getJob(job)
            .call()
            .await
            .map_err(chain_err("getJob"))?;
        Ok((j.refunded > 0).then_some(U256::from(j.refunded)))
    })
    .await?;
    let report = verify(dev, job).await?;
    if report["state"].as_str() != Some("fraud") {
        return Err(DevnetError::Check(format!(
            "job verify does not report the fraud: {report}"
        )));
    }
    say(&format!(
        "buyer refunded {refunded} wei for the cheated shard; job verify says fraud"
    ));
    if stakes(dev, &dev.keys.workers).await? != honest_before {
        return Err(DevnetError::Check(
            "an honest worker's stake changed".into(),
        ));
    }
    let owed = bridge
        .rewardOwed(dev.keys.watcher.address())
        .call()
        .await
        .map_err(chain_err("rewardOwed"))?;
    Ok(Caught {
        job,
        cheater,
        batch,
        game,
        reason,
        jobs_tried: tried,
        slashed_wei: slashed,
        refunded_wei: refunded,
        watcher_paid_wei: owed,
    })
}

async fn stakes(
    dev: &Devnet,
    keys: &[alloy::signers::local::PrivateKeySigner],
) -> Result<Vec<U256>, DevnetError> {
    let mut v = Vec::new();
    for k in keys {
        v.push(dev.stake_of(k.address()).await?);
    }
    Ok(v)
}
