//! SIGKILL of the sequencer, a worker and the watcher at random points of a journey: no
//! acknowledged job is lost or charged twice, nobody honest is slashed, every receipt is still
//! audited, and the workers still get paid.

use std::time::Duration;

use alloy_primitives::U256;
use verinfer_e2e::devnet::{parse_job_ids, PRICE_PER_TOKEN};
use verinfer_e2e::journey::{self, audits, finalize, verify, wait_audits, wait_finality};
use verinfer_e2e::{Devnet, Model, Options};
use verinfer_l1::bindings::StakeBridge;
use verinfer_rpc::types::Finality;

mod common;

/// Kills `d` with SIGKILL, starts it again and waits for its ready line.
fn bounce(d: &mut verinfer_e2e::proc::Daemon, ready: &str) {
    let m = d.mark();
    d.kill9();
    d.restart().unwrap();
    d.wait_line(m, &[ready], 120)
        .unwrap_or_else(|e| panic!("{} after SIGKILL: {e}", d.name()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_every_daemon_loses_and_double_charges_nothing() {
    let seed = common::seed();
    let mut rng = common::Rng(seed);
    eprintln!("VERINFER_E2E_SEED={seed}");
    let tmp = tempfile::tempdir().unwrap();
    let sku = common::synthetic_sku(tmp.path());
    let dir = tmp.path().join("devnet");
    let mut opts = Options::new(common::verinfer_bin(), dir.clone(), Model::SkuFile(sku));
    opts.shard_prompts = 1;
    let mut say = |s: &str| eprintln!("  {s}");
    let mut dev = Devnet::start(opts, &mut say).await.unwrap();
    let env = dev.env_for(&dev.keys.buyer);
    dev.cli(&["escrow", "deposit", "1ether"], &env)
        .await
        .unwrap();
    let bridge = StakeBridge::new(dev.d.stake_bridge, dev.l1.reader().clone());
    let escrow0 = U256::from(
        bridge
            .escrow(dev.keys.buyer.address())
            .call()
            .await
            .unwrap()
            .balance,
    );
    let audits0 = audits(&dev).unwrap();

    // Acknowledged jobs (`--no-wait` returns once the sequencer has stored them).
    let batch = dir.join("batch.jsonl");
    std::fs::write(&batch, journey::demo_batch(&dev, 4, 3, rng.next()).unwrap()).unwrap();
    let sku_file = dev.sku_path.display().to_string();
    let out = dev
        .cli(
            &[
                "job",
                "submit",
                "--file",
                &batch.display().to_string(),
                "--sku-file",
                &sku_file,
                "--no-wait",
            ],
            &env,
        )
        .await
        .unwrap();
    let jobs = parse_job_ids(&out);
    assert!(!jobs.is_empty(), "no job acknowledged: {out}");

    // Kill each daemon at a random moment while the jobs run, post and get audited.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(rng.below(1500))).await;
        bounce(&mut dev.sequencer, "listening on");
        tokio::time::sleep(Duration::from_millis(rng.below(1500))).await;
        let w = rng.below(dev.workers.len() as u64) as usize;
        bounce(&mut dev.workers[w], "registered and subscribed");
        tokio::time::sleep(Duration::from_millis(rng.below(1500))).await;
        bounce(&mut dev.watcher, "watching");
    }
    wait_finality(&dev, &jobs, Finality::OnL1, 300)
        .await
        .unwrap();
    let mut receipts = 0u64;
    let mut tokens = 0u64;
    for &j in &jobs {
        let r = verify(&dev, j).await.unwrap();
        journey::check_verified(&r, j, "inWindow").unwrap();
        receipts += r["receipts"].as_u64().unwrap();
        tokens += r["tokensProcessed"].as_u64().unwrap();
    }
    let a = wait_audits(&dev, audits0, receipts, 300).await.unwrap();
    assert_eq!(
        (a.pass, a.fraud),
        (receipts, 0),
        "every receipt audited once more and passed"
    );

    // Once more on the sequencer between posting and finalization.
    bounce(&mut dev.sequencer, "listening on");
    finalize(&dev, &jobs).await.unwrap();
    let escrow1 = U256::from(
        bridge
            .escrow(dev.keys.buyer.address())
            .call()
            .await
            .unwrap()
            .balance,
    );
    assert_eq!(
        escrow0 - escrow1,
        U256::from(tokens) * U256::from(PRICE_PER_TOKEN),
        "the buyer is charged once, for the tokens processed"
    );
    let (_, disputes, slashes) = journey::l1_counts(&dev).await.unwrap();
    assert_eq!((disputes, slashes), (0, 0));
    let paid = journey::close_epoch_and_claim(&dev).await.unwrap();
    let total: U256 = paid.iter().map(|(_, w)| *w).sum();
    assert!(
        escrow0 - escrow1 - total <= U256::from(paid.len()),
        "fees paid out: {paid:?}"
    );
}
