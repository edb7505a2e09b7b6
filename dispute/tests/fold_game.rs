//! A whole game on a spawned anvil, played with a real engine trace: an unstaked challenger
//! falsely disputes a pv row of an honest worker's receipt; the worker answers by folding the
//! row (`foldRow`, bisection over its chunk states, `proveFold`) with what `Opener` builds, and
//! wins. The template for the defender daemon.

mod common;

use alloy::network::EthereumWallet;
use alloy::node_bindings::Anvil;
use alloy::primitives::{keccak256, Bytes, B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use common::{build_sku, prompts};
use verinfer_dispute::registration::{sku_fields, sku_shape};
use verinfer_dispute::{recast, Opener};
use verinfer_l1::bindings::{BatchInbox, DisputeGame, SkuRegistry, StakeBridge};
use verinfer_l1::{deploy, job_digest, receipt_digest, DeployConfig, JobRequest};
use verinfer_prover::{Backend, Engine, LayerOp, Shard, StepKind, SynthSpec};

const FOLD_CHUNK: u64 = 2;

/// Plays bisection rounds until the game leaves the bisect phase: the worker (`gw`) posts
/// `states(point)` at the inner points, the challenger (`gc`) keeps part `pick(points)`.
async fn bisect<P: Provider>(
    gc: &DisputeGame::DisputeGameInstance<P>,
    gw: &DisputeGame::DisputeGameInstance<P>,
    id: U256,
    states: impl Fn(u64) -> anyhow::Result<B256>,
    pick: impl Fn(&[u64]) -> usize,
) -> anyhow::Result<()> {
    loop {
        let g = gc.getGame(id).call().await?;
        if g.phase != 1 {
            return Ok(());
        }
        let pts = gc.bisectionPoints(id).call().await?;
        let roots = pts
            .iter()
            .map(|&p| states(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        gw.bisect(id, g.hiRoot, roots.clone())
            .send()
            .await?
            .get_receipt()
            .await?;
        let j = pick(&pts);
        let agreed = if j == 0 { g.loRoot } else { roots[j - 1] };
        let disputed = if j == pts.len() { g.hiRoot } else { roots[j] };
        gc.choose(id, roots, U256::from(j), agreed, disputed)
            .send()
            .await?
            .get_receipt()
            .await?;
    }
}

#[tokio::test]
async fn honest_worker_folds_a_pv_row_and_wins() -> anyhow::Result<()> {
    let spec = SynthSpec::tiny_llama();
    let dir = tempfile::tempdir()?;
    let sku = build_sku(&spec, dir.path(), None);
    let shard = Shard {
        prompts: prompts(spec.tokenizer_vocab as u32),
        max_new_tokens: 2,
    };
    let opener = Opener::new(Engine::new(sku.clone(), Backend::Reference)?, shard.clone())?;
    let program = opener.program();
    let target = program.step_id(
        0,
        StepKind::Layer {
            layer: 0,
            op: LayerOp::Pv,
        },
    );
    // Prompt 2 (7 tokens), position 6, head 1: a row over 7 positions, 4 chunks of 2.
    let row = opener.addresses().query_head(2, 6, 1) as u32;

    // Chain, contracts, SKU, stakes, escrow.
    let anvil = Anvil::new().try_spawn()?;
    let keys: Vec<PrivateKeySigner> = anvil.keys()[..5].iter().cloned().map(Into::into).collect();
    let (owner, sequencer, buyer, worker, challenger) =
        (&keys[0], &keys[1], &keys[2], &keys[3], &keys[4]);
    let connect = |s: &PrivateKeySigner| {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(s.clone()))
            .connect_http(anvil.endpoint_url())
    };
    let po = connect(owner);
    let chain_id = po.get_chain_id().await?;
    let cfg = DeployConfig {
        sequencer: sequencer.address(),
        arity: 4,
        fold_chunk: FOLD_CHUNK,
        ..DeployConfig::default()
    };
    let d = deploy(po.clone(), &cfg).await?;
    let registry = SkuRegistry::new(d.sku_registry, po.clone());
    registry
        .registerSku(sku.id(), sku_fields(&sku, 1))
        .send()
        .await?
        .get_receipt()
        .await?;
    registry
        .setShape(sku.id(), sku_shape(&sku))
        .send()
        .await?
        .get_receipt()
        .await?;
    let eth = U256::from(10u64).pow(U256::from(18u64));
    let (pw, pc) = (connect(worker), connect(challenger));
    let bw = StakeBridge::new(d.stake_bridge, pw.clone());
    bw.depositStake(1)
        .value(eth * U256::from(4u64))
        .send()
        .await?
        .get_receipt()
        .await?;
    bw.setSku(sku.id(), true)
        .send()
        .await?
        .get_receipt()
        .await?;
    StakeBridge::new(d.stake_bridge, connect(buyer))
        .depositEscrow()
        .value(eth)
        .send()
        .await?
        .get_receipt()
        .await?;

    // The honest receipt, posted in a batch.
    let run = Engine::new(sku.clone(), Backend::Reference)?.run(&shard)?;
    let inputs = Bytes::from_static(b"prompts");
    let req = JobRequest {
        buyer: buyer.address(),
        skuId: sku.id(),
        inputsHash: keccak256(&inputs),
        maxNewTokens: shard.max_new_tokens as u64,
        maxPrice: eth,
        nonce: 1,
    };
    let job_id = job_digest(&req, chain_id, d.batch_inbox);
    let receipt = run.receipt(job_id, 0, sku.id(), worker.address());
    assert_eq!(receipt.traceRoot, opener.trace().trace_root());
    let rsig = worker.sign_hash_sync(&receipt_digest(&receipt, chain_id, d.batch_inbox))?;
    let jsig = buyer.sign_hash_sync(&job_id)?;
    BatchInbox::new(d.batch_inbox, connect(sequencer))
        .postBatch(
            vec![BatchInbox::SignedJob {
                request: req.into(),
                signature: Bytes::from(jsig.as_bytes().to_vec()),
                inputs,
            }],
            vec![receipt.clone().into()],
            vec![Bytes::from(rsig.as_bytes().to_vec())],
        )
        .send()
        .await?
        .get_receipt()
        .await?;

    // An unstaked account challenges (the SKU's vocabulary is small) and steers the bisection
    // to the pv step; the worker posts its true states.
    let (gc, gw) = (
        DisputeGame::new(d.dispute_game, pc.clone()),
        DisputeGame::new(d.dispute_game, pw.clone()),
    );
    gc.open(U256::ZERO, receipt.into(), U256::ZERO, vec![])
        .value(cfg.min_bond)
        .send()
        .await?
        .get_receipt()
        .await?;
    let id = U256::ZERO;
    let trace = opener.trace();
    // The part whose interval holds the target: the first inner point above it, or the last.
    let steer = |pts: &[u64]| pts.iter().position(|&p| p > target).unwrap_or(pts.len());
    bisect(
        &gc,
        &gw,
        id,
        |p| Ok(trace.state_root(p.checked_sub(1))?),
        steer,
    )
    .await?;
    let g = gc.getGame(id).call().await?;
    assert_eq!(g.lo, target, "bisection lands on the pv step");
    gc.nameEntry(id, g.hiRoot, row, 0)
        .send()
        .await?
        .get_receipt()
        .await?;

    // The worker folds the row instead of recomputing it at once.
    let op = opener.reproduce(target)?;
    let states = opener.fold_states(&op, row, FOLD_CHUNK)?;
    assert_eq!(states.len(), 5, "7 positions in chunks of 2");
    let (p, last) = opener.open_fold(&op, row, FOLD_CHUNK)?;
    gw.foldRow(id, recast(&p)?, last)
        .send()
        .await?
        .get_receipt()
        .await?;
    let g = gc.getGame(id).call().await?;
    assert!(g.fold && g.hi == 4, "a fold over 4 chunks");
    // The challenger disputes the last chunk; the worker posts its chunk states.
    bisect(
        &gc,
        &gw,
        id,
        |p| Ok(keccak256(&states[p as usize])),
        |pts| pts.len(),
    )
    .await?;
    let g = gc.getGame(id).call().await?;
    assert_eq!(g.phase, 4, "one chunk left to prove");
    let chunk = opener.open_fold_chunk(&op, row, FOLD_CHUNK, g.lo)?;
    let rc = gw
        .proveFold(id, recast(&chunk)?)
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(rc.status(), "the chunk opening is valid");
    let g = gc.getGame(id).call().await?;
    assert!(!g.challengerWon, "the honest worker wins");
    assert_eq!(g.reason, 6, "proven");
    let account = StakeBridge::new(d.stake_bridge, po.clone())
        .account(worker.address())
        .call()
        .await?;
    assert_eq!(
        U256::from(account.stake),
        eth * U256::from(4u64),
        "not slashed"
    );
    Ok(())
}
