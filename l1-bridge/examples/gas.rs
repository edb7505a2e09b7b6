//! Gas benchmark of the L1 dispute path (not a test).
//!
//! 1. One-step calls in revm (in-process, Cancun): the GEMM element at K = 14336 and one row of
//!    every other op at Llama-3-8B dimensions; figures are whole-transaction gas (21k intrinsic +
//!    calldata + execution), as a dispute would pay.
//! 2. A whole dispute on anvil over a Llama-3-8B-shaped program of 1714 rounds × 612 steps
//!    (1,048,968 ≈ 2^20 steps): open, every bisection move, the named entry, and the GEMM one-step
//!    of a `down` projection (K = 14336, 4096-wide output rows).
//!
//! `cargo run --release -p verinfer-l1 --example gas [-- ARITY]` (needs anvil on PATH).

use alloy::network::EthereumWallet;
use alloy::node_bindings::Anvil;
use alloy::primitives::{keccak256, Bytes, B256, I256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use alloy::sol_types::SolCall;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use verinfer_l1::bindings::{
    BatchInbox, DisputeGame, OneStepVerifier as V, SkuRegistry, StakeBridge,
};
use verinfer_l1::evm;
use verinfer_l1::{deploy, job_digest, receipt_digest, DeployConfig, JobRequest};
use verinfer_primitives::arith;
use verinfer_primitives::merkle::{hash_leaf, hash_node, row_leaf, zero_hash, MerkleTree};
use verinfer_primitives::rows::{i32_row_bytes, i64_row_bytes, i8_row_bytes, u32_row_bytes};
use verinfer_primitives::Receipt;

type R = anyhow::Result<()>;

const LAYERS: u64 = 32;
const HIDDEN: usize = 4096;
const INTER: usize = 14336;
const HEAD: usize = 128;
const HEADS: usize = 32;
const VOCAB: usize = 128_256;

fn main() -> R {
    let arity: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(32);
    one_step_rows()?;
    tokio::runtime::Runtime::new()?.block_on(whole_dispute(arity))
}

fn i8s(r: &mut ChaCha8Rng, n: usize) -> Vec<i8> {
    (0..n).map(|_| r.random_range(-127..=127)).collect()
}

fn i32s(r: &mut ChaCha8Rng, n: usize, b: i32) -> Vec<i32> {
    (0..n).map(|_| r.random_range(-b..=b)).collect()
}

fn u32s(r: &mut ChaCha8Rng, n: usize) -> Vec<u32> {
    (0..n).map(|_| r.random_range(1 << 20..1 << 24)).collect()
}

fn one_step_rows() -> R {
    let mut e = evm::Evm::new();
    let at = e.deploy(V::BYTECODE.clone()).map_err(anyhow::Error::msg)?;
    let mut r = ChaCha8Rng::seed_from_u64(9);
    let mut gas = |name: &str, data: Vec<u8>| -> R {
        let out = e
            .call(at, Bytes::from(data))
            .map_err(|rev| anyhow::anyhow!("{name} reverted: {rev}"))?;
        println!("| {name} | {} |", out.gas);
        Ok(())
    };
    let sx = I256::try_from(1i64 << 30)?;
    println!("| one-step call (Llama-3-8B dims) | gas |\n|---|---|");
    let x = arith::qrow_bytes(&i8s(&mut r, INTER), &[1 << 30]);
    let w = i8_row_bytes(&i8s(&mut r, INTER));
    gas(
        "gemm element, K = 14336 (down)",
        V::gemmElementCall {
            x: x.into(),
            w: w.into(),
        }
        .abi_encode(),
    )?;
    let x = arith::qrow_bytes(&i8s(&mut r, HIDDEN), &[1 << 30]);
    let w = i8_row_bytes(&i8s(&mut r, HIDDEN));
    gas(
        "gemm element, K = 4096 (q/k/v/o/gate/up)",
        V::gemmElementCall {
            x: x.into(),
            w: w.into(),
        }
        .abi_encode(),
    )?;
    gas(
        "embed row, H = 4096",
        V::embedRowCall {
            eRow: i8_row_bytes(&i8s(&mut r, HIDDEN)).into(),
            sw: U256::from(1u64 << 22),
        }
        .abi_encode(),
    )?;
    gas(
        "rmsnorm_quant row, H = 4096",
        V::rmsnormQuantRowCall {
            x: i32_row_bytes(&i32s(&mut r, HIDDEN, 1 << 20)).into(),
            epsQ32: U256::from(42950u64),
        }
        .abi_encode(),
    )?;
    let y = i32_row_bytes(&i32s(&mut r, HEAD, 1 << 20));
    let sw = u32_row_bytes(&u32s(&mut r, HEAD));
    let cs = i32_row_bytes(&i32s(&mut r, HEAD, 1 << 30));
    gas(
        "rope_q row, D = 128",
        V::ropeRowCall {
            y: y.clone().into(),
            sw: sw.clone().into(),
            bias: Bytes::new(),
            sx,
            cs: cs.clone().into(),
            quantize: true,
        }
        .abi_encode(),
    )?;
    gas(
        "rope_k row, D = 128",
        V::ropeRowCall {
            y: y.clone().into(),
            sw: sw.clone().into(),
            bias: Bytes::new(),
            sx,
            cs: cs.into(),
            quantize: false,
        }
        .abi_encode(),
    )?;
    gas(
        "value row, D = 128",
        V::valueRowCall {
            y: y.into(),
            sw: sw.into(),
            bias: Bytes::new(),
            sx,
        }
        .abi_encode(),
    )?;
    gas(
        "score element, D = 128",
        V::scoreElementCall {
            q: arith::qrow_bytes(&i8s(&mut r, HEAD), &[1]).into(),
            k: i32_row_bytes(&i32s(&mut r, HEAD, 1 << 20)).into(),
        }
        .abi_encode(),
    )?;
    let exp2 = u32_row_bytes(&arith::exp2_table());
    for pos in [512usize, 4096] {
        let scores: Vec<i64> = (0..pos)
            .map(|_| r.random_range(-(1i64 << 40)..(1i64 << 40)))
            .collect();
        gas(
            &format!("softmax row, {pos} positions"),
            V::softmaxRowCall {
                scores: i64_row_bytes(&scores).into(),
                sq: I256::try_from(1i64 << 30)?,
                c: U256::from(arith::softmax_constant(HEAD)),
                exp2: exp2.clone().into(),
            }
            .abi_encode(),
        )?;
        let p: Vec<i32> = (0..pos).map(|_| r.random_range(0..=1 << 15)).collect();
        let v = i32s(&mut r, pos * HEAD, 1 << 20);
        gas(
            &format!("pv row, {pos} positions × D = 128"),
            V::pvRowCall {
                p: i32_row_bytes(&p).into(),
                ap: I256::try_from(1i64 << 20)?,
                v: i32_row_bytes(&v).into(),
            }
            .abi_encode(),
        )?;
    }
    // A fold settles a pv row one chunk at a time (FoldProver, default 64 positions).
    let chunk = 64;
    let p: Vec<i32> = (0..chunk).map(|_| r.random_range(0..=1 << 15)).collect();
    let v = i32s(&mut r, chunk * HEAD, 1 << 20);
    gas(
        &format!("pv fold chunk ({chunk} positions × D = 128)"),
        V::pvAccumulateCall {
            acc: vec![0u8; HEAD * 8].into(),
            p: i32_row_bytes(&p).into(),
            v: i32_row_bytes(&v).into(),
        }
        .abi_encode(),
    )?;
    gas(
        "pv fold final link (D = 128)",
        V::pvFinishCall {
            acc: vec![7u8; HEAD * 8].into(),
            ap: I256::try_from(1i64 << 20)?,
        }
        .abi_encode(),
    )?;
    gas(
        "attn_out row, Hq·D = 4096",
        V::quantizeRowCall {
            z: i32_row_bytes(&i32s(&mut r, HEADS * HEAD, 1 << 20)).into(),
        }
        .abi_encode(),
    )?;
    gas(
        "residual row, H = 4096",
        V::residualRowCall {
            h: i32_row_bytes(&i32s(&mut r, HIDDEN, 1 << 20)).into(),
            y: i32_row_bytes(&i32s(&mut r, HIDDEN, 1 << 24)).into(),
            sw: u32_row_bytes(&u32s(&mut r, HIDDEN)).into(),
            sx,
        }
        .abi_encode(),
    )?;
    let sig = u32_row_bytes(&arith::sigmoid_table());
    gas(
        "silu_mul row, I = 14336",
        V::siluMulRowCall {
            yg: i32_row_bytes(&i32s(&mut r, INTER, 1 << 24)).into(),
            yu: i32_row_bytes(&i32s(&mut r, INTER, 1 << 24)).into(),
            swg: u32_row_bytes(&u32s(&mut r, INTER)).into(),
            swu: u32_row_bytes(&u32s(&mut r, INTER)).into(),
            sx,
            sigmoid: sig.clone().into(),
        }
        .abi_encode(),
    )?;
    // A silu_mul fold recomputes one chunk of 256 elements (plus its inputs' calldata).
    gas(
        "silu_mul fold chunk (256 elements)",
        V::siluChunkCall {
            y: i32_row_bytes(&i32s(&mut r, 512, 1 << 24)).into(),
            sw: u32_row_bytes(&u32s(&mut r, 512)).into(),
            sx,
            sigmoid: sig.into(),
            amaxes: (U256::from(1u64 << 30) << 128) | U256::from(1u64 << 31),
        }
        .abi_encode(),
    )?;
    gas(
        "argmax fold chunk (256 ids)",
        V::argmaxAccumulateCall {
            state: vec![0u8; 96].into(),
            y: i32_row_bytes(&i32s(&mut r, 256, 1 << 24)).into(),
            sw: u32_row_bytes(&u32s(&mut r, 256)).into(),
            first: U256::from(1024u64),
        }
        .abi_encode(),
    )?;
    gas(
        "argmax row, vocab = 128256",
        V::argmaxRowCall {
            y: i32_row_bytes(&i32s(&mut r, VOCAB, 1 << 24)).into(),
            sw: u32_row_bytes(&u32s(&mut r, VOCAB)).into(),
            valid: U256::from(VOCAB),
        }
        .abi_encode(),
    )?;
    Ok(())
}

/// Full tree levels of a trace (all `2^depth` leaves), so that the state root after any number
/// of steps and any proof against it are O(depth) lookups.
struct Levels {
    levels: Vec<Vec<B256>>,
    depth: usize,
}

impl Levels {
    fn new(outs: &[B256], depth: usize) -> Self {
        let mut level = outs.to_vec();
        level.resize(1 << depth, B256::ZERO);
        let mut levels = vec![level];
        for h in 0..depth {
            let next = levels[h]
                .chunks(2)
                .map(|p| hash_node(&p[0], &p[1]))
                .collect();
            levels.push(next);
        }
        Self { levels, depth }
    }

    /// Node (h, i) of the state after `n` steps (leaves ≥ n are zero).
    fn node(&self, n: u64, h: usize, i: u64) -> B256 {
        let start = i << h;
        let end = start + (1 << h);
        if end <= n {
            self.levels[h][i as usize]
        } else if start >= n {
            zero_hash(h)
        } else {
            hash_node(&self.node(n, h - 1, 2 * i), &self.node(n, h - 1, 2 * i + 1))
        }
    }

    fn state(&self, n: u64) -> B256 {
        self.node(n, self.depth, 0)
    }

    fn proof(&self, n: u64, leaf: u64) -> Vec<B256> {
        (0..self.depth)
            .map(|h| self.node(n, h, (leaf >> h) ^ 1))
            .collect()
    }
}

fn gas_of(rc: &TransactionReceipt, what: &str) -> anyhow::Result<u64> {
    anyhow::ensure!(rc.status(), "{what} reverted");
    Ok(rc.gas_used)
}

async fn whole_dispute(arity: u64) -> R {
    let spr = 19 * LAYERS + 4;
    let rounds = 1714u64;
    let steps = rounds * spr;
    let depth = verinfer_primitives::merkle::depth_for(steps);
    // The disputed step: round 1000, layer 17, `down` projection (offset 17 in the layer).
    let layer = 17u64;
    let s_bad = 1000 * spr + 1 + 19 * layer + 17;
    let (row, col) = (2usize, 1234usize);
    let mut rng = ChaCha8Rng::seed_from_u64(5);

    // Input tensor (silu_mul output, 4 rows of 14336 int8 + scale), the down matrix's row `col`.
    let in_rows: Vec<Vec<u8>> = (0..4)
        .map(|_| arith::qrow_bytes(&i8s(&mut rng, INTER), &[1 << 30]))
        .collect();
    let w_row_vals = i8s(&mut rng, INTER);
    let w_row = i8_row_bytes(&w_row_vals);
    let mut w_leaves: Vec<B256> = (0..HIDDEN as u64)
        .map(|i| keccak256(i.to_be_bytes()))
        .collect();
    w_leaves[col] = hash_leaf(&w_row);
    let rows_tree = MerkleTree::from_leaf_hashes(w_leaves);
    let scales_root = keccak256(b"down scales");
    let matrix_root = hash_node(&rows_tree.root(), &scales_root);
    let weight_leaves = LAYERS * 7 + 5;
    let matrix_index = layer * 7 + 6;
    let mut wl: Vec<B256> = (0..weight_leaves)
        .map(|i| keccak256((i + 1_000_000).to_be_bytes()))
        .collect();
    wl[matrix_index as usize] = matrix_root;
    let weight_tree = MerkleTree::from_leaf_hashes(wl);

    // Output tensor rows (4096 int32): honest and cheating (one element off by one).
    let x_vals: Vec<i8> = in_rows[row][..INTER].iter().map(|&b| b as i8).collect();
    let honest_val = arith::gemm_element(&x_vals, &w_row_vals);
    let mut out_rows: Vec<Vec<i32>> = (0..4).map(|_| i32s(&mut rng, HIDDEN, 1 << 28)).collect();
    out_rows[row][col] = honest_val;
    // Tensor rows are committed as the engine does (spec v3: rows over 1 KB through their chunks).
    let tensor =
        |rows: &[Vec<u8>]| MerkleTree::from_leaf_hashes(rows.iter().map(|r| row_leaf(r)).collect());
    let honest_out = tensor(
        &out_rows
            .iter()
            .map(|r| i32_row_bytes(r))
            .collect::<Vec<_>>(),
    );
    out_rows[row][col] = honest_val + 1;
    let bad_rows: Vec<Vec<u8>> = out_rows.iter().map(|r| i32_row_bytes(r)).collect();
    let bad_out = tensor(&bad_rows);
    let in_tree = tensor(&in_rows);

    // Traces: identical before s_bad; from s_bad on the cheater's outputs differ.
    println!("\nbuilding two traces of {steps} steps (depth {depth}) ...");
    let mut honest: Vec<B256> = (0..steps).map(|s| keccak256(s.to_be_bytes())).collect();
    honest[(s_bad - 1) as usize] = in_tree.root();
    honest[s_bad as usize] = honest_out.root();
    let mut cheat = honest.clone();
    cheat[s_bad as usize] = bad_out.root();
    for (s, v) in cheat.iter_mut().enumerate().skip(s_bad as usize + 1) {
        *v = keccak256((s as u64 | 1 << 63).to_be_bytes());
    }
    let hl = Levels::new(&honest, depth);
    let cl = Levels::new(&cheat, depth);
    drop((honest, cheat));

    // Chain: deploy, SKU, stake, escrow, post the cheating receipt.
    let anvil = Anvil::new()
        .arg("--gas-limit")
        .arg("100000000")
        .try_spawn()?;
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
        arity,
        ..DeployConfig::default()
    };
    let d = deploy(po.clone(), &cfg).await?;
    let sku_id = keccak256(b"llama-3-8b-int8");
    let sku = SkuRegistry::Sku {
        weightRoot: weight_tree.root(),
        tokenizerHash: keccak256(b"tok"),
        configHash: keccak256(b"cfg"),
        pricePerToken: 1,
        epsQ32: 42950,
        softmaxC: arith::softmax_constant(HEAD),
        vocab: VOCAB as u32,
        layers: LAYERS as u16,
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
        heads: 32,
        kvHeads: 8,
        headDim: 128,
        maxSeq: 8192,
        eosIds: vec![128001, 128009],
    };
    registry
        .setShape(sku_id, shape)
        .send()
        .await?
        .get_receipt()
        .await?;
    let pw = connect(worker);
    let eth = U256::from(10u64).pow(U256::from(18u64));
    let bw = StakeBridge::new(d.stake_bridge, pw.clone());
    bw.depositStake(1)
        .value(eth * U256::from(10u64))
        .send()
        .await?
        .get_receipt()
        .await?;
    bw.setSku(sku_id, true).send().await?.get_receipt().await?;
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
        maxNewTokens: rounds,
        maxPrice: eth,
        nonce: 1,
    };
    let job_id = job_digest(&req, chain_id, d.batch_inbox);
    let receipt = Receipt {
        jobId: job_id,
        shardIndex: 0,
        skuId: sku_id,
        worker: worker.address(),
        inputRoot: B256::repeat_byte(1),
        outputRoot: B256::repeat_byte(2),
        traceRoot: cl.state(steps),
        stepCount: steps,
        tokensProcessed: 4000,
    };
    let rsig = worker.sign_hash_sync(&receipt_digest(&receipt, chain_id, d.batch_inbox))?;
    let jsig = buyer.sign_hash_sync(&job_id)?;
    let posted = BatchInbox::new(d.batch_inbox, connect(sequencer))
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
    println!(
        "\npostBatch (1 job, 1 receipt): {} gas",
        gas_of(&posted, "postBatch")?
    );

    // The dispute.
    let pc = connect(challenger);
    StakeBridge::new(d.stake_bridge, pc.clone())
        .depositStake(2)
        .value(eth)
        .send()
        .await?
        .get_receipt()
        .await?;
    let gc = DisputeGame::new(d.dispute_game, pc.clone());
    let gd = DisputeGame::new(d.dispute_game, pw.clone());
    println!("\n| dispute move (arity {arity}, {steps} steps) | gas |\n|---|---|");
    let mut total = 0u64;
    let rc = gc
        .open(U256::ZERO, receipt.into(), U256::ZERO, vec![])
        .value(cfg.min_bond)
        .send()
        .await?
        .get_receipt()
        .await?;
    let g = gas_of(&rc, "open")?;
    println!("| open (bond, receipt proof) | {g} |");
    total += g;
    let id = U256::ZERO;
    let mut moves = 1;
    loop {
        let game = gc.getGame(id).call().await?;
        if game.phase != 1 {
            break;
        }
        let pts = gc.bisectionPoints(id).call().await?;
        let roots: Vec<B256> = pts.iter().map(|&p| cl.state(p)).collect();
        let rc = gd
            .bisect(id, game.hiRoot, roots.clone())
            .send()
            .await?
            .get_receipt()
            .await?;
        let gb = gas_of(&rc, "bisect")?;
        let j = pts
            .iter()
            .position(|&p| hl.state(p) != cl.state(p))
            .unwrap_or(pts.len());
        let agreed = if j == 0 { game.loRoot } else { roots[j - 1] };
        let disputed = if j == pts.len() {
            game.hiRoot
        } else {
            roots[j]
        };
        let rc = gc
            .choose(id, roots, U256::from(j), agreed, disputed)
            .send()
            .await?
            .get_receipt()
            .await?;
        let gch = gas_of(&rc, "choose")?;
        println!(
            "| bisect [{}, {}] ({} roots) | {gb} |\n| choose part {j} | {gch} |",
            game.lo,
            game.hi,
            pts.len()
        );
        total += gb + gch;
        moves += 2;
    }
    let game = gc.getGame(id).call().await?;
    anyhow::ensure!(
        game.lo == s_bad,
        "bisection ended at {} instead of {s_bad}",
        game.lo
    );
    let rc = gc
        .nameEntry(id, game.hiRoot, row as u32, col as u32)
        .send()
        .await?
        .get_receipt()
        .await?;
    let g = gas_of(&rc, "nameEntry")?;
    println!("| nameEntry | {g} |");
    total += g;
    let proof = DisputeGame::GemmProof {
        outRoot: bad_out.root(),
        stepProof: cl.proof(s_bad, s_bad),
        outRow: bad_rows[row].clone().into(),
        outRowProof: bad_out.proof(row as u64)?.siblings,
        inRoot: in_tree.root(),
        inStepProof: cl.proof(s_bad, s_bad - 1),
        inRow: in_rows[row].clone().into(),
        inRowProof: in_tree.proof(row as u64)?.siblings,
        rowsRoot: rows_tree.root(),
        scalesRoot: scales_root,
        matrixProof: weight_tree.proof(matrix_index)?.siblings,
        wRow: w_row.into(),
        wRowProof: rows_tree.proof(col as u64)?.siblings,
        outChunkRoot: B256::ZERO,
        outChunkProof: vec![],
    };
    let rc = gd
        .proveGemm(id, proof)
        .gas(30_000_000)
        .send()
        .await?
        .get_receipt()
        .await?;
    let g = gas_of(&rc, "proveGemm")?;
    println!("| proveGemm (K = 14336, 4096-wide output row; resolves, slashes) | {g} |");
    total += g;
    moves += 2;
    let game = gc.getGame(id).call().await?;
    anyhow::ensure!(game.challengerWon, "the cheating worker was not caught");
    println!("| **whole dispute: {moves} transactions** | **{total}** |");
    Ok(())
}
