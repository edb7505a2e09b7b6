//! Honest parties are never harmed: randomized whole-system runs (anvil, the contracts, the
//! sequencer, workers and the watcher as real processes) with random prompts, lengths, shard
//! shapes and worker counts. In every run each job verifies against L1, every receipt is
//! audited and passes, nobody is disputed or slashed, stakes are untouched, the buyer pays
//! exactly the tokens processed at the SKU's price, and the workers' claims empty the fee pot.
//!
//! `VERINFER_E2E_RUNS` (default 20) and `VERINFER_E2E_SEED` (default: from the clock, printed)
//! set the campaign; `ops/e2e-campaign.sh` runs the long one.

use alloy_primitives::U256;
use verinfer_e2e::devnet::{PRICE_PER_TOKEN, WORKER_STAKE_ETH};
use verinfer_e2e::{chain::ether, journey, Devnet, Model, Options};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_parties_are_never_slashed_over_randomized_runs() {
    let runs: u64 = std::env::var("VERINFER_E2E_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed = common::seed();
    eprintln!("campaign: {runs} runs, VERINFER_E2E_SEED={seed}");
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = common::Rng(seed);
    // One SKU for the campaign (built once; the model is the synthetic tiny Llama).
    let sku = common::synthetic_sku(tmp.path());
    let mut run = 0;
    let mut net = 0;
    while run < runs {
        // A devnet with a random worker count and shard shape, then up to 4 journeys on it.
        let dir = tmp.path().join(format!("devnet{net}"));
        net += 1;
        let mut opts = Options::new(
            common::verinfer_bin(),
            dir.clone(),
            Model::SkuFile(sku.clone()),
        );
        opts.workers = 1 + rng.below(3) as usize;
        opts.shard_prompts = 1 + rng.below(3) as u32;
        let shape = format!(
            "{} workers, {} prompts/shard",
            opts.workers, opts.shard_prompts
        );
        let mut say = |s: &str| eprintln!("  {s}");
        let dev = Devnet::start(opts, &mut say)
            .await
            .unwrap_or_else(|e| panic!("devnet ({shape}, seed {seed}): {e}"));
        for _ in 0..(1 + rng.below(4)).min(runs - run) {
            let prompts = 1 + rng.below(6) as usize;
            let max_tokens = 1 + rng.below(6);
            let case = format!(
                "run {run} (seed {seed}): {shape}, {prompts} prompts, {max_tokens} new tokens"
            );
            eprintln!("{case}");
            run += 1;
            let batch = dir.join(format!("batch{run}.jsonl"));
            let text = journey::demo_batch(&dev, prompts, max_tokens, rng.next()).unwrap();
            std::fs::write(&batch, text).unwrap();
            let s = journey::journey(&dev, &batch, prompts, &mut say)
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            check_honest(&dev, &s, prompts, &case).await;
        }
    }
}

/// What must hold after an honest journey.
async fn check_honest(dev: &Devnet, s: &journey::Summary, prompts: usize, case: &str) {
    assert_eq!(s.prompts, prompts, "{case}");
    assert!(
        s.shards >= prompts.div_ceil(dev.opts.shard_prompts as usize),
        "{case}: {s:?}"
    );
    assert_eq!(
        s.audits_passed as usize, s.shards,
        "{case}: every receipt audited and passed"
    );
    assert_eq!(
        (s.audits_fraud, s.disputes, s.slashes),
        (0, 0, 0),
        "{case}: {s:?}"
    );
    assert_eq!(
        s.charged_wei,
        U256::from(s.tokens_processed) * U256::from(PRICE_PER_TOKEN),
        "{case}: the buyer pays the tokens processed at the SKU's price"
    );
    let claimed: U256 = s.payouts.iter().map(|(_, w)| *w).sum();
    assert!(
        claimed <= s.charged_wei && s.charged_wei - claimed <= U256::from(s.payouts.len()),
        "{case}: workers claimed {claimed} of the {} wei paid",
        s.charged_wei
    );
    for w in &dev.keys.workers {
        assert_eq!(
            dev.stake_of(w.address()).await.unwrap(),
            ether(WORKER_STAKE_ETH),
            "{case}: stake of {}",
            w.address()
        );
    }
}
