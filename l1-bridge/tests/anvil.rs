//! Deploys the whole set to a real anvil (spawned on a free loopback port) and runs a job's L1
//! life from Rust: SKU, stake, escrow, a batch signed with the crate's EIP-712 digests,
//! finalization and the rewards claim.

use alloy::network::EthereumWallet;
use alloy::node_bindings::Anvil;
use alloy::primitives::{keccak256, Address, Bytes, B256, U256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use verinfer_l1::bindings::{BatchInbox, Rewards, SkuRegistry, StakeBridge};
use verinfer_l1::{deploy, job_digest, receipt_digest, DeployConfig, JobRequest};
use verinfer_primitives::Receipt;

mod common;

#[tokio::test]
async fn deploy_post_finalize_claim_on_anvil() -> anyhow::Result<()> {
    let anvil = Anvil::new().try_spawn()?;
    let owner: PrivateKeySigner = anvil.keys()[0].clone().into();
    let sequencer: PrivateKeySigner = anvil.keys()[1].clone().into();
    let buyer: PrivateKeySigner = anvil.keys()[2].clone().into();
    let worker: PrivateKeySigner = anvil.keys()[3].clone().into();
    let connect = |s: &PrivateKeySigner| {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(s.clone()))
            .connect_http(anvil.endpoint_url())
    };
    let p_owner = connect(&owner);
    let chain_id = p_owner.get_chain_id().await?;

    // Settlement alone: tests/audits.rs runs the same journey through the audit protocol.
    let cfg = DeployConfig {
        sequencer: sequencer.address(),
        audits: None,
        ..DeployConfig::default()
    };
    let d = deploy(p_owner.clone(), &cfg).await?;
    assert_ne!(d.dispute_game, Address::ZERO);

    // Owner registers a SKU.
    let sku_id = keccak256(b"anvil-sku");
    let skus = SkuRegistry::new(d.sku_registry, p_owner.clone());
    let sku = common::test_sku(1_000_000_000);
    skus.registerSku(sku_id, sku)
        .send()
        .await?
        .get_receipt()
        .await?;

    // Worker stakes and serves the SKU; buyer funds escrow.
    let p_worker = connect(&worker);
    let bridge_w = StakeBridge::new(d.stake_bridge, p_worker.clone());
    let one_eth = U256::from(10u64).pow(U256::from(18u64));
    bridge_w
        .depositStake(1)
        .value(one_eth * U256::from(2u64))
        .send()
        .await?
        .get_receipt()
        .await?;
    bridge_w
        .setSku(sku_id, true)
        .send()
        .await?
        .get_receipt()
        .await?;
    let p_buyer = connect(&buyer);
    StakeBridge::new(d.stake_bridge, p_buyer.clone())
        .depositEscrow()
        .value(one_eth)
        .send()
        .await?
        .get_receipt()
        .await?;

    // The buyer signs a job; the worker signs a receipt; the sequencer posts both.
    let inputs = Bytes::from_static(b"[1,2,3]");
    let request = JobRequest {
        buyer: buyer.address(),
        skuId: sku_id,
        inputsHash: keccak256(&inputs),
        maxNewTokens: 4,
        maxPrice: one_eth,
        nonce: 1,
    };
    let job_id = job_digest(&request, chain_id, d.batch_inbox);
    let inbox_s = BatchInbox::new(d.batch_inbox, connect(&sequencer));
    assert_eq!(
        inbox_s.jobDigest(request.clone().into()).call().await?,
        job_id,
        "job digest"
    );
    let job_sig = buyer.sign_hash_sync(&job_id)?;
    let receipt = Receipt {
        jobId: job_id,
        shardIndex: 0,
        skuId: sku_id,
        worker: worker.address(),
        inputRoot: B256::repeat_byte(1),
        outputRoot: B256::repeat_byte(2),
        traceRoot: B256::repeat_byte(3),
        stepCount: 23,
        tokensProcessed: 7,
    };
    let r_digest = receipt_digest(&receipt, chain_id, d.batch_inbox);
    assert_eq!(
        inbox_s.receiptDigest(receipt.clone().into()).call().await?,
        r_digest,
        "receipt digest"
    );
    let r_sig = worker.sign_hash_sync(&r_digest)?;
    let signed = BatchInbox::SignedJob {
        request: request.into(),
        signature: Bytes::from(job_sig.as_bytes().to_vec()),
        inputs,
    };
    let sent = inbox_s
        .postBatch(
            vec![signed],
            vec![receipt.clone().into()],
            vec![Bytes::from(r_sig.as_bytes().to_vec())],
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(sent.status(), "postBatch mined");
    assert_eq!(inbox_s.batchCount().call().await?, U256::from(1u64));
    let escrow = StakeBridge::new(d.stake_bridge, p_owner.clone())
        .escrow(buyer.address())
        .call()
        .await?;
    assert_eq!(
        U256::from(escrow.balance),
        one_eth - U256::from(7_000_000_000u64),
        "charged"
    );

    // After the window, anyone finalizes; after the epoch, the worker claims.
    p_owner.anvil_increase_time(cfg.challenge_window).await?;
    p_owner.anvil_mine(Some(1), None).await?;
    BatchInbox::new(d.batch_inbox, p_owner.clone())
        .finalizeBatch(U256::ZERO, vec![receipt.into()])
        .send()
        .await?
        .get_receipt()
        .await?;
    p_owner.anvil_increase_time(cfg.epoch_length).await?;
    p_owner.anvil_mine(Some(1), None).await?;
    let rewards_w = Rewards::new(d.rewards, p_worker.clone());
    let claim = rewards_w
        .claim(U256::ZERO)
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(claim.status(), "claim mined");
    let token = verinfer_l1::bindings::VerinferToken::new(d.token, p_worker.clone());
    assert_eq!(
        token.balanceOf(worker.address()).call().await?,
        cfg.inflation_per_epoch,
        "all inflation"
    );
    Ok(())
}

/// A production-style deployment: a timelock owns every contract, so the deployer can no longer
/// act at once, and the admin's scheduled call only lands after the delay.
#[tokio::test]
async fn governed_deploy_delays_privileged_calls() -> anyhow::Result<()> {
    use verinfer_l1::bindings::Timelock;
    use verinfer_l1::{Governance, L1Error};
    let anvil = Anvil::new().try_spawn()?;
    let owner: PrivateKeySigner = anvil.keys()[0].clone().into();
    let admin: PrivateKeySigner = anvil.keys()[4].clone().into();
    let guardian: PrivateKeySigner = anvil.keys()[5].clone().into();
    let connect = |s: &PrivateKeySigner| {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(s.clone()))
            .connect_http(anvil.endpoint_url())
    };
    let p_owner = connect(&owner);
    let base = DeployConfig::default();
    let short = DeployConfig {
        governance: Some(Governance {
            admin: admin.address(),
            guardian: guardian.address(),
            delay: base.unbonding_delay,
        }),
        ..base.clone()
    };
    assert!(matches!(
        deploy(p_owner.clone(), &short).await,
        Err(L1Error::Config(_))
    ));
    let delay = base.unbonding_delay + 24 * 3600;
    let cfg = DeployConfig {
        governance: Some(Governance {
            admin: admin.address(),
            guardian: guardian.address(),
            delay,
        }),
        ..base
    };
    let d = deploy(p_owner.clone(), &cfg).await?;
    let tl_addr = d.timelock.ok_or_else(|| anyhow::anyhow!("no timelock"))?;
    let skus = SkuRegistry::new(d.sku_registry, p_owner.clone());
    assert_eq!(skus.owner().call().await?, tl_addr);
    let bridge = StakeBridge::new(d.stake_bridge, p_owner.clone());
    assert_eq!(bridge.owner().call().await?, tl_addr);
    assert_eq!(bridge.guardian().call().await?, guardian.address());
    assert_eq!(
        BatchInbox::new(d.batch_inbox, p_owner.clone())
            .owner()
            .call()
            .await?,
        tl_addr
    );
    assert_eq!(
        Rewards::new(d.rewards, p_owner.clone())
            .owner()
            .call()
            .await?,
        tl_addr
    );

    let sku_id = keccak256(b"governed-sku");
    let sku = common::test_sku(1);
    // The deployer lost its powers.
    assert!(skus.registerSku(sku_id, sku.clone()).call().await.is_err());
    // The admin schedules; nobody can execute before the delay.
    use alloy::sol_types::SolCall;
    let data = Bytes::from(SkuRegistry::registerSkuCall { skuId: sku_id, sku }.abi_encode());
    let tl_admin = Timelock::new(tl_addr, connect(&admin));
    let mined = tl_admin
        .schedule(d.sku_registry, U256::ZERO, data.clone(), B256::ZERO)
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(mined.status(), "scheduled");
    let tl_any = Timelock::new(tl_addr, p_owner.clone());
    assert!(tl_any
        .execute(d.sku_registry, U256::ZERO, data.clone(), B256::ZERO)
        .call()
        .await
        .is_err());
    p_owner.anvil_increase_time(delay).await?;
    p_owner.anvil_mine(Some(1), None).await?;
    let mined = tl_any
        .execute(d.sku_registry, U256::ZERO, data, B256::ZERO)
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(mined.status(), "executed after the delay");
    assert!(skus.isActive(sku_id).call().await?, "registered");
    Ok(())
}
