//! A whole dispute from Rust on a spawned anvil, with the shared primitives building every
//! commitment (tensor trees, the trace state tree, the weight root): a worker cheats in one GEMM
//! entry of a one-layer program, a staked verifier bisects to it and the worker's own opening
//! convicts it. This is the template for a watcher/defender.

use alloy::network::EthereumWallet;
use alloy::node_bindings::Anvil;
use alloy::primitives::{keccak256, Bytes, B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use verinfer_l1::bindings::{BatchInbox, DisputeGame, SkuRegistry, StakeBridge};
use verinfer_l1::{deploy, job_digest, receipt_digest, DeployConfig, JobRequest};
use verinfer_primitives::arith::{gemm_element, qrow_bytes};
use verinfer_primitives::merkle::{hash_leaf, hash_node, MerkleTree};
use verinfer_primitives::rows::{i32_row_bytes, i8_row_bytes};
use verinfer_primitives::{Receipt, TraceState};

const STEPS: u64 = 23; // one round of a one-layer program
const GEMM: u64 = 2; // layer 0, q projection; its input is step 1

fn trace(outs: &[B256]) -> anyhow::Result<TraceState> {
    let mut t = TraceState::new(STEPS);
    for o in outs {
        t.push(*o)?;
    }
    Ok(t)
}

/// State root after `n` steps (0 = the empty state).
fn state(t: &TraceState, n: u64) -> anyhow::Result<B256> {
    Ok(t.state_root(n.checked_sub(1))?)
}

#[tokio::test]
async fn cheating_worker_is_convicted_by_bisection_and_one_step() -> anyhow::Result<()> {
    // Data: 2 input rows (K = 40, QRows), q matrix with 3 output channels, honest outputs.
    let k = 40usize;
    let xs: Vec<Vec<i8>> = (0..2)
        .map(|r| (0..k).map(|i| ((r * 31 + i * 7) % 255) as i8).collect())
        .collect();
    let ws: Vec<Vec<i8>> = (0..3)
        .map(|j| (0..k).map(|i| ((j * 13 + i * 5) % 251) as i8).collect())
        .collect();
    let in_rows: Vec<Vec<u8>> = xs.iter().map(|x| qrow_bytes(x, &[1 << 30])).collect();
    let w_rows: Vec<Vec<u8>> = ws.iter().map(|w| i8_row_bytes(w)).collect();
    let mut out: Vec<Vec<i32>> = xs
        .iter()
        .map(|x| ws.iter().map(|w| gemm_element(x, w)).collect())
        .collect();
    out[1][2] += 1; // the cheat
    let out_rows: Vec<Vec<u8>> = out.iter().map(|r| i32_row_bytes(r)).collect();
    let tree = |rows: &[Vec<u8>]| MerkleTree::from_rows(rows.iter().map(|r| r.as_slice()));
    let (in_tree, w_tree, bad_tree) = (tree(&in_rows), tree(&w_rows), tree(&out_rows));
    let honest_out: Vec<Vec<u8>> = xs
        .iter()
        .map(|x| i32_row_bytes(&ws.iter().map(|w| gemm_element(x, w)).collect::<Vec<_>>()))
        .collect();
    let honest_tree = tree(&honest_out);

    // Weight root: 1 layer × 7 matrices + 5 = 12 leaves; leaf 0 is q = node(rows, scales).
    let scales_root = keccak256(b"q scales");
    let mut wl: Vec<B256> = (0..12u64).map(|i| keccak256(i.to_be_bytes())).collect();
    wl[0] = hash_node(&w_tree.root(), &scales_root);
    let weights = MerkleTree::from_leaf_hashes(wl);

    // Traces: equal up to step 1, the cheater's differ from step 2 on.
    let mut honest_outs: Vec<B256> = (0..STEPS).map(|s| keccak256(s.to_be_bytes())).collect();
    honest_outs[1] = in_tree.root();
    honest_outs[2] = honest_tree.root();
    let mut bad_outs = honest_outs.clone();
    for (s, o) in bad_outs.iter_mut().enumerate().skip(GEMM as usize) {
        *o = if s == GEMM as usize {
            bad_tree.root()
        } else {
            hash_leaf(&(s as u64).to_le_bytes())
        };
    }
    let (honest, bad) = (trace(&honest_outs)?, trace(&bad_outs)?);

    // Chain.
    let anvil = Anvil::new().try_spawn()?;
    let keys: Vec<PrivateKeySigner> = anvil.keys()[..5].iter().cloned().map(Into::into).collect();
    let (owner, sequencer, buyer, worker, verifier) =
        (&keys[0], &keys[1], &keys[2], &keys[3], &keys[4]);
    let connect = |s: &PrivateKeySigner| {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(s.clone()))
            .connect_http(anvil.endpoint_url())
    };
    let po = connect(owner);
    let chain_id = po.get_chain_id().await?;
    // The game's mainnet parameters (opening and per-move bonds), at arity 4.
    let cfg = DeployConfig {
        sequencer: sequencer.address(),
        arity: 4,
        ..DeployConfig::default().with_mainnet_game()
    };
    let d = deploy(po.clone(), &cfg).await?;
    let sku_id = keccak256(b"one-layer");
    let sku = SkuRegistry::Sku {
        weightRoot: weights.root(),
        tokenizerHash: keccak256(b"t"),
        configHash: keccak256(b"c"),
        pricePerToken: 1,
        epsQ32: 42950,
        softmaxC: 1 << 37,
        vocab: 100,
        layers: 1,
        arithVersion: verinfer_primitives::arith::SPEC_VERSION as u16,
        hasBias: false,
        active: true,
    };
    let registry = SkuRegistry::new(d.sku_registry, po.clone());
    registry
        .registerSku(sku_id, sku)
        .send()
        .await?
        .get_receipt()
        .await?;
    let shape = SkuRegistry::Shape {
        heads: 2,
        kvHeads: 2,
        headDim: 4,
        maxSeq: 16,
        eosIds: vec![2],
    };
    registry
        .setShape(sku_id, shape)
        .send()
        .await?
        .get_receipt()
        .await?;
    let eth = U256::from(10u64).pow(U256::from(18u64));
    let (pw, pv) = (connect(worker), connect(verifier));
    let bw = StakeBridge::new(d.stake_bridge, pw.clone());
    bw.depositStake(1)
        .value(eth * U256::from(4u64))
        .send()
        .await?
        .get_receipt()
        .await?;
    bw.setSku(sku_id, true).send().await?.get_receipt().await?;
    StakeBridge::new(d.stake_bridge, pv.clone())
        .depositStake(2)
        .value(eth)
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

    let inputs = Bytes::from_static(b"prompts");
    let req = JobRequest {
        buyer: buyer.address(),
        skuId: sku_id,
        inputsHash: keccak256(&inputs),
        maxNewTokens: 1,
        maxPrice: eth,
        nonce: 7,
    };
    let job_id = job_digest(&req, chain_id, d.batch_inbox);
    let receipt = Receipt {
        jobId: job_id,
        shardIndex: 0,
        skuId: sku_id,
        worker: worker.address(),
        inputRoot: B256::repeat_byte(1),
        outputRoot: B256::repeat_byte(2),
        traceRoot: bad.trace_root(),
        stepCount: STEPS,
        tokensProcessed: 10,
    };
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

    // The verifier challenges; both sides play from their own traces.
    let gv = DisputeGame::new(d.dispute_game, pv.clone());
    let gw = DisputeGame::new(d.dispute_game, pw.clone());
    gv.open(U256::ZERO, receipt.into(), U256::ZERO, vec![])
        .value(cfg.min_bond)
        .send()
        .await?
        .get_receipt()
        .await?;
    let id = U256::ZERO;
    let mut bisect_rounds = 0u64;
    while gv.getGame(id).call().await?.phase == 1 {
        bisect_rounds += 1;
        let g = gv.getGame(id).call().await?;
        let pts = gv.bisectionPoints(id).call().await?;
        let roots = pts
            .iter()
            .map(|&p| state(&bad, p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        gw.bisect(id, g.hiRoot, roots.clone())
            .value(cfg.move_bond)
            .send()
            .await?
            .get_receipt()
            .await?;
        let mut j = pts.len();
        for (i, &p) in pts.iter().enumerate() {
            if state(&honest, p)? != roots[i] {
                j = i;
                break;
            }
        }
        let agreed = if j == 0 { g.loRoot } else { roots[j - 1] };
        let disputed = if j == pts.len() { g.hiRoot } else { roots[j] };
        gv.choose(id, roots, U256::from(j), agreed, disputed)
            .value(cfg.move_bond)
            .send()
            .await?
            .get_receipt()
            .await?;
    }
    let g = gv.getGame(id).call().await?;
    assert_eq!(g.lo, GEMM, "bisection lands on the bad GEMM step");
    gv.nameEntry(id, g.hiRoot, 1, 2)
        .value(cfg.move_bond)
        .send()
        .await?
        .get_receipt()
        .await?;

    // The worker has to open what it committed.
    let proof = DisputeGame::GemmProof {
        outRoot: bad_tree.root(),
        stepProof: bad.proof(GEMM, Some(GEMM - 1))?.siblings,
        outRow: out_rows[1].clone().into(),
        outRowProof: bad_tree.proof(1)?.siblings,
        inRoot: in_tree.root(),
        inStepProof: bad.proof(GEMM - 1, Some(GEMM - 1))?.siblings,
        inRow: in_rows[1].clone().into(),
        inRowProof: in_tree.proof(1)?.siblings,
        rowsRoot: w_tree.root(),
        scalesRoot: scales_root,
        matrixProof: weights.proof(0)?.siblings,
        wRow: w_rows[2].clone().into(),
        wRowProof: w_tree.proof(2)?.siblings,
        outChunkRoot: B256::ZERO,
        outChunkProof: vec![],
    };
    let rc = gw.proveGemm(id, proof).send().await?.get_receipt().await?;
    assert!(rc.status(), "the opening is valid and settles the game");
    let g = gv.getGame(id).call().await?;
    assert!(g.challengerWon, "fraud proven");
    let account = StakeBridge::new(d.stake_bridge, po.clone())
        .account(worker.address())
        .call()
        .await?;
    assert_eq!(
        U256::from(account.stake),
        eth * U256::from(2u64),
        "half of the stake slashed"
    );
    assert_eq!(account.strikes, 1);
    // The challenger gets its opening bond and every move bond of the game (both sides').
    let g = gv.getGame(id).call().await?;
    let moves = 2 * bisect_rounds + 1;
    assert_eq!(g.moveBonds, 0, "pot paid out");
    assert_eq!(
        gv.owed(verifier.address()).call().await?,
        cfg.min_bond + cfg.move_bond * U256::from(moves),
        "bonds to the winner"
    );
    Ok(())
}
