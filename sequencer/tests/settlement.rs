//! Settlement attacks on the sequencer's pipeline against a real L1 (anvil + the l1-bridge
//! contracts), issue #9:
//! - attack 3: items that can no longer post (a buyer withdrawing escrow after acceptance, a
//!   worker leaving the SKU, a SKU price change, a signature the L1 refuses) used to make
//!   `postBatch` revert forever; now each is dropped or re-queued with a typed reason and the
//!   rest is posted;
//! - attack 9: a buyer grinding job nonces to steer its shard to a worker; the draw is now
//!   seeded by an L1 block hash produced after acceptance.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::providers::Provider;
use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use common::chain::{connect, setup, Chain, ESCROW, PRICE};
use verinfer_l1::bindings::{BatchInbox, SkuRegistry, StakeBridge};
use verinfer_primitives::job::{domain, plan_shards, prompts_root, shard_id, Prompt};
use verinfer_rpc::client;
use verinfer_rpc::sign::{sign_job, sign_results_access, JobDraft, SECP256K1_HALF_N};
use verinfer_rpc::types::{DropReason, JobEvent, JobInfo, JobState, SubmitJobRequest};
use verinfer_rpc::VerinferApiClient;
use verinfer_sequencer::alloy_l1::AlloyL1;
use verinfer_sequencer::store::{NewJob, ShardRecord, ShardState, Store};

fn draft(chain: &Chain, nonce: u64, text: &str, max_price: U256) -> JobDraft {
    JobDraft {
        sku_id: chain.sku,
        prompts: vec![Prompt::Text(text.into())],
        max_new_tokens: 4,
        max_price,
        nonce,
    }
}

async fn wait_for(
    c: &impl VerinferApiClient,
    id: B256,
    what: &str,
    secs: u64,
    ok: impl Fn(&JobInfo) -> bool,
) -> JobInfo {
    let start = Instant::now();
    loop {
        if let Ok(j) = c.get_job(id).await {
            if ok(&j) {
                return j;
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "job {id} did not become {what}: {j:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn mined(p: alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>) {
    assert!(p.get_receipt().await.unwrap().status());
}

/// The malleable high-s twin of a signature (refused by the inbox, accepted by a lenient
/// recovery such as the RPC's before this fix).
fn high_s_twin(sig: &[u8]) -> Bytes {
    let n = SECP256K1_HALF_N * U256::from(2u64) + U256::from(1u64);
    let s = U256::from_be_slice(&sig[32..64]);
    let mut t = sig.to_vec();
    t[32..64].copy_from_slice(&(n - s).to_be_bytes::<32>());
    t[64] = if sig[64] == 27 { 28 } else { 27 };
    t.into()
}

/// Stores `req` with signature `sig` directly, as a sequencer whose RPC accepted a signature
/// the L1 refuses would have (the store is opened, written and closed before the sequencer
/// starts on it).
fn plant_job(
    dir: &std::path::Path,
    cfg: &verinfer_sequencer::Config,
    req: &SubmitJobRequest,
    sig: Bytes,
    id: B256,
    head: u64,
) {
    let store = Store::open(dir).unwrap();
    let shards = plan_shards(
        &req.prompts,
        req.job.maxNewTokens,
        cfg.sharding.max_prompts,
        cfg.sharding.max_tokens,
    )
    .into_iter()
    .map(|s| {
        let ps = &req.prompts[s.first_prompt as usize..(s.first_prompt + s.prompt_count) as usize];
        ShardRecord {
            shard_id: shard_id(id, s.index),
            job_id: id,
            index: s.index,
            first_prompt: s.first_prompt,
            prompt_count: s.prompt_count,
            input_root: prompts_root(ps),
            sku_id: req.job.skuId,
            max_new_tokens: req.job.maxNewTokens,
            state: ShardState::Open,
            attempts: 0,
            missed_by: Vec::new(),
            requeued_from: Vec::new(),
        }
    })
    .collect();
    let r = store
        .insert_jobs(&[NewJob {
            id,
            job: req.job.clone(),
            signature: sig,
            prompts: req.prompts.clone(),
            shards,
            price_per_token: U256::from(PRICE),
            balance: U256::from(ESCROW),
            accepted_at_ms: 0,
            accept_head: head,
        }])
        .unwrap();
    assert!(r[0].is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_item_no_longer_halts_posting() {
    let chain = setup(3600).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = chain.config("127.0.0.1:0".parse().unwrap(), dir.path(), "UNUSED");
    // The test drives the batcher itself, at the moments the attack needs.
    cfg.batching.interval_ms = 3_600_000;
    let d = domain(chain.chain_id, chain.d.batch_inbox);
    let buyer2 = chain.add_buyers(1, U256::from(ESCROW)).await.remove(0);
    let w2 = chain.add_workers(1).await.remove(0);
    let big = U256::from(10u64).pow(U256::from(15u64));

    // A job whose signature the inbox refuses (high-s) got into the store.
    let head = chain.owner_p.get_block_number().await.unwrap();
    let bad_req = sign_job(&chain.buyer, &d, draft(&chain, 100, "bad", big)).unwrap();
    let bad = bad_req.job.id(&d);
    plant_job(
        dir.path(),
        &cfg,
        &bad_req,
        high_s_twin(&bad_req.signature),
        bad,
        head,
    );

    let l1 = AlloyL1::connect(&cfg.l1, &chain.poster.to_bytes().to_string()).unwrap();
    let run = verinfer_sequencer::start(cfg, Arc::new(l1)).await.unwrap();
    let c = client::http(&format!("http://{}", run.addr)).unwrap();
    let ws = format!("ws://{}", run.addr);
    let w1_task = tokio::spawn(common::worker::run(
        ws.clone(),
        chain.worker.clone(),
        d.clone(),
        chain.sku,
    ));

    // ok: plenty of maxPrice. price: the least maxPrice the intake takes at today's price.
    // withdraw: buyer2's, who then pulls its escrow.
    let ok = c
        .submit_job(sign_job(&chain.buyer, &d, draft(&chain, 1, "ok", big)).unwrap())
        .await
        .unwrap()
        .job_id;
    let tight = U256::from(PRICE) * U256::from(("tight".len() as u64 + 1) + 4);
    let price = c
        .submit_job(sign_job(&chain.buyer, &d, draft(&chain, 2, "tight", tight)).unwrap())
        .await
        .unwrap()
        .job_id;
    let withdraw = c
        .submit_job(sign_job(&buyer2, &d, draft(&chain, 1, "w", big)).unwrap())
        .await
        .unwrap()
        .job_id;
    for id in [bad, ok, price, withdraw] {
        wait_for(&c, id, "completed", 30, |j| j.state == JobState::Completed).await;
    }

    // L1 moves under the completed jobs: worker 1 leaves the SKU, buyer 2 withdraws its
    // escrow, the SKU's price goes up tenfold.
    let w1_bridge = StakeBridge::new(
        chain.d.stake_bridge,
        connect(&chain.anvil.url, &chain.worker),
    );
    mined(w1_bridge.setSku(chain.sku, false).send().await.unwrap()).await;
    let b2_bridge = StakeBridge::new(chain.d.stake_bridge, connect(&chain.anvil.url, &buyer2));
    mined(
        b2_bridge
            .requestEscrowWithdrawal(ESCROW as u128)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let reg = SkuRegistry::new(chain.d.sku_registry, chain.owner_p.clone());
    mined(reg.setPrice(chain.sku, PRICE * 10).send().await.unwrap()).await;
    let w2_task = tokio::spawn(common::worker::run(
        ws.clone(),
        w2.clone(),
        d.clone(),
        chain.sku,
    ));

    // Round 1: every receipt is worker 1's, which can no longer post: all shards re-queued
    // (typed event) and re-run by worker 2.
    verinfer_sequencer::batcher::cut_batches(&run.sequencer)
        .await
        .unwrap();
    for id in [bad, ok, price, withdraw] {
        let j = c.get_job(id).await.unwrap();
        assert!(
            j.events.iter().any(|e| matches!(e, JobEvent::ShardRequeued { worker, .. } if *worker == chain.worker.address())),
            "{j:?}"
        );
        wait_for(&c, id, "completed by worker 2", 30, |j| {
            j.state == JobState::Completed
        })
        .await;
    }

    // Round 2: the price and escrow jobs are dropped with their reasons; the batch of the
    // remaining two reverts on L1 (the bad signature), the offender is found by simulation
    // and dropped, the batch is taken apart.
    verinfer_sequencer::batcher::cut_batches(&run.sequencer)
        .await
        .unwrap();
    let j = c.get_job(price).await.unwrap();
    assert_eq!(j.state, JobState::Dropped);
    assert!(
        matches!(j.drop_reason, Some(DropReason::PriceAboveMax { price_per_token, .. }) if price_per_token == U256::from(PRICE * 10)),
        "{j:?}"
    );
    let j = c.get_job(withdraw).await.unwrap();
    assert_eq!(j.state, JobState::Dropped);
    assert!(
        matches!(j.drop_reason, Some(DropReason::EscrowTooLow { balance, .. }) if balance == U256::ZERO),
        "{j:?}"
    );
    let j = c.get_job(bad).await.unwrap();
    assert_eq!(j.state, JobState::Dropped);
    assert!(
        matches!(&j.drop_reason, Some(DropReason::RejectedByL1 { error }) if error.contains("BadSignature")),
        "{j:?}"
    );
    let inbox = BatchInbox::new(chain.d.batch_inbox, chain.owner_p.clone());
    assert_eq!(
        inbox.batchCount().call().await.unwrap(),
        U256::ZERO,
        "nothing landed yet"
    );
    assert!(c
        .get_job(ok)
        .await
        .unwrap()
        .events
        .iter()
        .any(|e| matches!(e, JobEvent::BatchDissolved { batch: 0 })));

    // Round 3: the good job posts, under the dissolved batch's index, at the new price.
    verinfer_sequencer::batcher::cut_batches(&run.sequencer)
        .await
        .unwrap();
    let j = wait_for(&c, ok, "confirmed", 30, |j| j.state == JobState::Confirmed).await;
    assert_eq!(j.batch, Some(0));
    assert!(j
        .events
        .iter()
        .any(|e| matches!(e, JobEvent::Repriced { new, .. } if *new == U256::from(PRICE * 10))));
    let on_l1 = inbox.getJob(ok).call().await.unwrap();
    assert_eq!(
        U256::from(on_l1.charged),
        j.charged.unwrap(),
        "charged as the sequencer says"
    );
    assert_eq!(inbox.batchCount().call().await.unwrap(), U256::from(1u64));
    for id in [bad, price, withdraw] {
        assert_eq!(
            inbox.getJob(id).call().await.unwrap().buyer,
            Address::ZERO,
            "dropped job {id} not on L1"
        );
    }
    let res = c
        .get_results(ok, Some(sign_results_access(&chain.buyer, &d, ok).unwrap()))
        .await
        .unwrap();
    assert!(res
        .receipts
        .iter()
        .all(|r| r.receipt.worker == w2.address()));
    // Every reservation is released: charged jobs on L1, dropped ones freed.
    assert_eq!(
        run.sequencer
            .store()
            .reserved(chain.buyer.address())
            .unwrap(),
        U256::ZERO
    );
    assert_eq!(
        run.sequencer.store().reserved(buyer2.address()).unwrap(),
        U256::ZERO
    );
    assert_eq!(
        chain.escrow().await,
        U256::from(ESCROW) - j.charged.unwrap()
    );
    w1_task.abort();
    w2_task.abort();
    run.stop().await;
}

/// The draw as it was: `keccak256(shardId ‖ attempt) mod totalStake` over workers sorted by
/// address, which the buyer can evaluate for any nonce before signing.
fn old_draw(workers: &[(Address, U256)], shard: B256) -> Address {
    let mut ws = workers.to_vec();
    ws.sort_by_key(|(a, _)| *a);
    let total = ws.iter().fold(U256::ZERO, |a, (_, s)| a + *s);
    let mut draw =
        U256::from_be_bytes(keccak256([shard.as_slice(), &0u32.to_be_bytes()].concat()).0) % total;
    for (a, s) in &ws {
        if draw < *s {
            return *a;
        }
        draw -= *s;
    }
    ws[ws.len() - 1].0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_grinding_nonces_cannot_steer_the_assignment() {
    let chain = setup(3600).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = chain.config("127.0.0.1:0".parse().unwrap(), dir.path(), "UNUSED");
    let d = domain(chain.chain_id, chain.d.batch_inbox);
    let w2 = chain.add_workers(1).await.remove(0);
    let l1 = AlloyL1::connect(&cfg.l1, &chain.poster.to_bytes().to_string()).unwrap();
    let stake = U256::from(2u64) * U256::from(10u64).pow(U256::from(18u64));
    assert_eq!(
        verinfer_sequencer::L1::stake_of(&l1, w2.address())
            .await
            .unwrap(),
        stake
    );
    let run = verinfer_sequencer::start(cfg, Arc::new(l1)).await.unwrap();
    let ws = format!("ws://{}", run.addr);
    let t1 = tokio::spawn(common::worker::run(
        ws.clone(),
        chain.worker.clone(),
        d.clone(),
        chain.sku,
    ));
    let t2 = tokio::spawn(common::worker::run(
        ws.clone(),
        w2.clone(),
        d.clone(),
        chain.sku,
    ));
    // Both workers registered and subscribed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c = client::http(&format!("http://{}", run.addr)).unwrap();
    let workers = vec![(chain.worker.address(), stake), (w2.address(), stake)];
    let target = w2.address();

    // The buyer grinds nonces until the (old) draw sends the job's only shard to its target.
    let head_before = chain.owner_p.get_block_number().await.unwrap();
    let mut ground: Vec<B256> = Vec::new();
    let mut nonce = 0u64;
    while ground.len() < 6 {
        let req = sign_job(
            &chain.buyer,
            &d,
            draft(
                &chain,
                nonce,
                "steer",
                U256::from(10u64).pow(U256::from(15u64)),
            ),
        )
        .unwrap();
        nonce += 1;
        let id = req.job.id(&d);
        if old_draw(&workers, shard_id(id, 0)) == target {
            c.submit_job(req).await.unwrap();
            ground.push(id);
        }
    }
    let live: Vec<(Address, Vec<B256>, U256)> = workers
        .iter()
        .map(|(a, s)| (*a, vec![chain.sku], *s))
        .collect();
    let mut to_target = 0;
    for id in &ground {
        let j = wait_for(&c, *id, "completed", 30, |j| j.state != JobState::Accepted).await;
        // The seed is the hash of the first block after the head read at acceptance, which
        // is after the buyer signed (and after everything it could see).
        let head = j.accept_head.unwrap();
        assert!(head >= head_before);
        let seed = j.assignment_seed.unwrap();
        assert_eq!(seed.block, head + 1);
        let block = chain
            .owner_p
            .get_block_by_number(seed.block.into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(block.header.hash, seed.hash);
        // Anyone recomputes the assignment from public data.
        let res = c
            .get_results(
                *id,
                Some(sign_results_access(&chain.buyer, &d, *id).unwrap()),
            )
            .await
            .unwrap();
        let got = res.receipts[0].receipt.worker;
        let want = verinfer_sequencer::node::pick_worker(
            &live,
            chain.sku,
            seed.hash,
            shard_id(*id, 0),
            0,
            &[],
        )
        .unwrap();
        assert_eq!(got, want, "assignment of {id} follows the seeded draw");
        to_target += usize::from(got == target);
    }
    println!(
        "ground jobs sent to the buyer's target: {to_target} of {}",
        ground.len()
    );
    t1.abort();
    t2.abort();
    run.stop().await;
}
