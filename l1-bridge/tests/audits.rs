//! The audit protocol on a real anvil, Rust against Solidity: the batch seed fixed on chain is
//! `audits::batch_seed` of that block's RANDAO; the draws, audit seeds and verifier picks the
//! contract records are the ones `verinfer_l1::audits` computes; and a receipt's fee reaches its
//! worker and its verifier only after the verifier's pass.

use alloy::network::EthereumWallet;
use alloy::node_bindings::Anvil;
use alloy::primitives::{keccak256, Address, Bytes, B256, U256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use verinfer_l1::audits::{self, Depth, Status};
use verinfer_l1::bindings::{Audits, BatchInbox, Rewards, SkuRegistry, StakeBridge};
use verinfer_l1::{deploy, job_digest, receipt_digest, DeployConfig, JobRequest};
use verinfer_primitives::Receipt;

const ETH: u128 = 1_000_000_000_000_000_000;

mod common;

#[tokio::test]
async fn seed_draw_report_and_pay_agree_with_rust() -> anyhow::Result<()> {
    let anvil = Anvil::new().try_spawn()?;
    let key = |i: usize| -> PrivateKeySigner { anvil.keys()[i].clone().into() };
    let (owner, sequencer, buyer, worker) = (key(0), key(1), key(2), key(3));
    let verifiers = [key(4), key(5), key(6)];
    let connect = |s: &PrivateKeySigner| {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(s.clone()))
            .connect_http(anvil.endpoint_url())
    };
    let p = connect(&owner);
    let chain_id = p.get_chain_id().await?;
    let cfg = DeployConfig {
        sequencer: sequencer.address(),
        ..DeployConfig::default()
    };
    let params = cfg.audits.clone().expect("audits are deployed by default");
    let d = deploy(p.clone(), &cfg).await?;
    let audits_addr = d.audits.expect("deployed");

    let sku_id = keccak256(b"audited-sku");
    let sku = common::test_sku(1_000_000_000);
    SkuRegistry::new(d.sku_registry, p.clone())
        .registerSku(sku_id, sku)
        .send()
        .await?
        .get_receipt()
        .await?;
    let bw = StakeBridge::new(d.stake_bridge, connect(&worker));
    bw.depositStake(1)
        .value(U256::from(2 * ETH))
        .send()
        .await?
        .get_receipt()
        .await?;
    bw.setSku(sku_id, true).send().await?.get_receipt().await?;
    for (i, v) in verifiers.iter().enumerate() {
        StakeBridge::new(d.stake_bridge, connect(v))
            .depositStake(2)
            .value(U256::from((i as u128 + 1) * ETH))
            .send()
            .await?
            .get_receipt()
            .await?;
        Audits::new(audits_addr, connect(v))
            .joinSku(sku_id)
            .send()
            .await?
            .get_receipt()
            .await?;
    }
    StakeBridge::new(d.stake_bridge, connect(&buyer))
        .depositEscrow()
        .value(U256::from(ETH))
        .send()
        .await?
        .get_receipt()
        .await?;

    // One job, four shards, one batch.
    let inputs = Bytes::from_static(b"[1,2,3]");
    let request = JobRequest {
        buyer: buyer.address(),
        skuId: sku_id,
        inputsHash: keccak256(&inputs),
        maxNewTokens: 4,
        maxPrice: U256::from(ETH),
        nonce: 1,
    };
    let job_id = job_digest(&request, chain_id, d.batch_inbox);
    let signed = BatchInbox::SignedJob {
        request: request.into(),
        signature: Bytes::from(buyer.sign_hash_sync(&job_id)?.as_bytes().to_vec()),
        inputs,
    };
    let receipts: Vec<Receipt> = (0..4u32)
        .map(|i| Receipt {
            jobId: job_id,
            shardIndex: i,
            skuId: sku_id,
            worker: worker.address(),
            inputRoot: B256::repeat_byte(1),
            outputRoot: B256::repeat_byte(2),
            traceRoot: keccak256(i.to_be_bytes()),
            stepCount: 23,
            tokensProcessed: 7,
        })
        .collect();
    let sigs = receipts
        .iter()
        .map(|r| {
            let s = worker.sign_hash_sync(&receipt_digest(r, chain_id, d.batch_inbox))?;
            Ok(Bytes::from(s.as_bytes().to_vec()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let inbox = BatchInbox::new(d.batch_inbox, connect(&sequencer));
    let abi: Vec<BatchInbox::Receipt> = receipts.iter().cloned().map(Into::into).collect();
    inbox
        .postBatch(vec![signed], abi, sigs)
        .send()
        .await?
        .get_receipt()
        .await?;

    // The seed: this block's RANDAO, as Rust computes it.
    let a = Audits::new(audits_addr, p.clone());
    p.anvil_mine(Some(params.seed_delay), None).await?;
    let fixed = a.fixSeed(U256::ZERO).send().await?.get_receipt().await?;
    let block = p
        .get_block_by_number(fixed.block_number.expect("mined").into())
        .await?
        .expect("block");
    let root = inbox.getBatch(U256::ZERO).call().await?.receiptsRoot;
    let seed = audits::batch_seed(block.header.mix_hash, 0, root);
    assert_eq!(a.seeds(U256::ZERO).call().await?.value, seed, "seed");

    // The draws: a new worker is audited always and fully; the verifier is the stake draw.
    let abi: Vec<Audits::Receipt> = receipts.iter().cloned().map(Into::into).collect();
    a.drawBatch(U256::ZERO, abi)
        .send()
        .await?
        .get_receipt()
        .await?;
    let mut weights = Vec::new();
    for v in a.verifiersOf(sku_id).call().await? {
        let w = StakeBridge::new(d.stake_bridge, p.clone())
            .verifierWeight(v)
            .call()
            .await?;
        weights.push((v, w));
    }
    let (rate, depth) = params.rate_of(0, 0, 0);
    assert_eq!((rate, depth), (10_000, Depth::All));
    let mut assigned = Vec::new();
    for i in 0..4u64 {
        let au = a.auditOf(U256::ZERO, U256::from(i)).call().await?;
        let aseed = audits::audit_seed(seed, i);
        assert_eq!(a.auditSeed(U256::ZERO, U256::from(i)).call().await?, aseed);
        assert_eq!(Status::from_u8(au.status), Some(Status::Assigned));
        assert_eq!(Depth::from_u8(au.depth), Some(depth));
        let want = audits::pick_verifier(&weights, worker.address(), Address::ZERO, aseed, 0);
        assert_eq!(Some(au.verifier), want, "verifier of receipt {i}");
        assigned.push(au.verifier);
    }
    // The pure draw and the verifier pick at other seeds and rates, eth_call against Rust.
    for k in 0..24u64 {
        let s = keccak256(k.to_be_bytes());
        let rate = (k * 433 % 10_000) as u16 + 1;
        assert_eq!(
            a.drawn(s, U256::from(k), rate).call().await?,
            audits::drawn(s, k, rate),
            "drawn({k})"
        );
        let pick = a
            .pickVerifier(sku_id, worker.address(), weights[0].0, s, U256::from(k))
            .call()
            .await?;
        let want = audits::pick_verifier(&weights, worker.address(), weights[0].0, s, k);
        assert_eq!(Some(pick), want, "pick({k})");
    }

    // Each assigned verifier passes; after the window and the epoch, the pot is split between
    // the worker and the verifiers, nothing more.
    for (i, v) in assigned.iter().enumerate() {
        let signer = verifiers.iter().find(|s| s.address() == *v).expect("ours");
        Audits::new(audits_addr, connect(signer))
            .postVerification(U256::ZERO, U256::from(i), true, U256::ZERO, vec![1, 2])
            .send()
            .await?
            .get_receipt()
            .await?;
    }
    p.anvil_increase_time(cfg.challenge_window).await?;
    p.anvil_mine(Some(1), None).await?;
    let abi: Vec<BatchInbox::Receipt> = receipts.iter().cloned().map(Into::into).collect();
    BatchInbox::new(d.batch_inbox, p.clone())
        .finalizeBatch(U256::ZERO, abi)
        .send()
        .await?
        .get_receipt()
        .await?;
    p.anvil_increase_time(cfg.epoch_length).await?;
    p.anvil_mine(Some(1), None).await?;
    let rewards = Rewards::new(d.rewards, p.clone());
    let pot = rewards.feesOf(U256::ZERO).call().await?;
    assert_eq!(
        pot,
        U256::from(4 * 7 * 1_000_000_000u64),
        "every fee in the pot"
    );
    let mut claimers = vec![worker.clone()];
    claimers.extend(
        verifiers
            .iter()
            .filter(|v| assigned.contains(&v.address()))
            .cloned(),
    );
    let mut paid = U256::ZERO;
    for c in &claimers {
        let before = p.get_balance(c.address()).await?;
        let r = Rewards::new(d.rewards, connect(c))
            .claim(U256::ZERO)
            .send()
            .await?
            .get_receipt()
            .await?;
        let gas = U256::from(r.gas_used) * U256::from(r.effective_gas_price);
        paid += p.get_balance(c.address()).await? + gas - before;
    }
    assert!(
        paid <= pot && pot - paid <= U256::from(claimers.len()),
        "{paid} of {pot}"
    );
    let worker_weight = rewards
        .feeWeight(U256::ZERO, worker.address())
        .call()
        .await?;
    let cut = U256::from(params.verifier_fee_bps);
    assert_eq!(
        worker_weight,
        pot - pot * cut / U256::from(10_000u64),
        "the verifiers' cut"
    );
    Ok(())
}
