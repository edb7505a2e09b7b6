//! A cheating worker (the real worker binary with one injected fault, `verinfer-faulty`) is
//! caught: the watcher's audit finds its receipt, the watcher wins the dispute on L1, the
//! cheater is slashed, the buyer is refunded the cheated shard and no honest party loses.

use alloy_primitives::U256;
use verinfer_e2e::chain::ether;
use verinfer_e2e::devnet::WORKER_STAKE_ETH;
use verinfer_e2e::{cheat, Devnet, Model, Options};
use verinfer_l1::DeployConfig;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_gemm_entry_is_caught_disputed_slashed_and_refunded() {
    let tmp = tempfile::tempdir().unwrap();
    let sku = common::synthetic_sku(tmp.path());
    let dir = tmp.path().join("devnet");
    let mut opts = Options::new(common::verinfer_bin(), dir, Model::SkuFile(sku));
    opts.workers = 1;
    opts.shard_prompts = 1;
    opts.cheats = vec!["gemm-entry".into()];
    opts.faulty_bin = Some(common::faulty_bin());
    let mut say = |s: &str| eprintln!("  {s}");
    let dev = Devnet::start(opts, &mut say).await.unwrap();
    let c = cheat::catch_cheat(&dev, &mut say).await.unwrap();
    eprintln!("{c:?}");
    check_fraud_rule(&c);
}

/// The same cheat under the mainnet parameters: a two-day challenge window, one-day chess
/// clocks with 3 h extensions, a 0.5 ETH opening bond and 0.01 ETH per move (anvil's clock is
/// moved, not waited for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheat_is_caught_under_mainnet_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    let sku = common::synthetic_sku(tmp.path());
    let mut opts = Options::new(
        common::verinfer_bin(),
        tmp.path().join("devnet"),
        Model::SkuFile(sku),
    );
    opts.deploy = DeployConfig {
        challenge_window: 2 * 24 * 3600,
        audits: Some(verinfer_e2e::devnet::devnet_audits(2 * 24 * 3600)),
        ..DeployConfig::default().with_mainnet_game()
    };
    opts.workers = 1;
    opts.cheats = vec!["gemm-entry".into()];
    opts.faulty_bin = Some(common::faulty_bin());
    let mut say = |s: &str| eprintln!("  {s}");
    let dev = Devnet::start(opts, &mut say).await.unwrap();
    let c = cheat::catch_cheat(&dev, &mut say).await.unwrap();
    eprintln!("{c:?}");
    check_fraud_rule(&c);
}

/// `DisputeGame.Reason`: the one-step check disagreed with the committed value.
const FRAUD: u8 = 1;

/// The cheater played the bisection with its own (wrong) trace, the watcher named the wrong
/// entry, the cheater opened it (its defender replays the faulty engine, so its openings agree
/// with what it committed) and lost the one-step check on L1: the fraud rule, half of its
/// stake. The buyer got a refund.
fn check_fraud_rule(c: &cheat::Caught) {
    assert_eq!(c.reason, FRAUD, "lost at the one-step check: {c:?}");
    // At least the fraud rule once: the cheater cheats on every shard it signs, so a second
    // receipt of it (another shard, another game) may be slashed as well.
    assert!(
        c.slashed_wei >= ether(WORKER_STAKE_ETH) / U256::from(2u64),
        "{c:?}"
    );
    assert!(!c.refunded_wei.is_zero(), "{c:?}");
}
