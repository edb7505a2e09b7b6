//! `verinfer job verify JOB`: the buyer's check that what the sequencer served is what L1
//! holds. For every receipt: the worker's signature (the inbox's EIP-712 domain), its place in
//! the batch checked by the inbox itself (`verifyReceipt`, an `eth_call`), and its state on L1
//! (finalized, in its challenge window, disputed, proven fraudulent); for every completion: its
//! proof under the receipt's output root. Nothing the sequencer says is trusted.

use alloy_primitives::{Bytes, B256, U256};
use alloy_sol_types::{SolStruct, SolValue};
use anyhow::Context;
use serde_json::json;
use verinfer_l1::bindings::{BatchInbox, DisputeGame};
use verinfer_primitives::job::{completion_leaf_bytes, domain};
use verinfer_primitives::merkle::row_leaf;
use verinfer_rpc::sign::{recover, sign_results_access};
use verinfer_rpc::types::ShardReceipt;
use verinfer_rpc::VerinferApiClient;

use crate::l1args::L1Args;

/// `job verify`.
#[derive(clap::Args)]
pub struct Args {
    /// Job id (0x…).
    pub id: B256,
    #[command(flatten)]
    pub conn: crate::job::Conn,
    #[command(flatten)]
    pub l1: L1Args,
    /// Environment variable holding the buyer's key (the sequencer serves results to the buyer).
    #[arg(long, default_value = "VERINFER_BUYER_KEY")]
    pub buyer_key_env: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `DisputeGame.Phase.Resolved`.
const PHASE_RESOLVED: u8 = 5;

/// Where one receipt stands on L1, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum L1State {
    Fraud,
    Disputed,
    NotOnL1,
    InWindow,
    Finalized,
}

impl L1State {
    fn name(self) -> &'static str {
        match self {
            L1State::Fraud => "fraud",
            L1State::Disputed => "disputed",
            L1State::NotOnL1 => "notOnL1",
            L1State::InWindow => "inWindow",
            L1State::Finalized => "finalized",
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(verify(&a))?;
    if a.json {
        println!("{report}");
    } else {
        print_human(&report);
    }
    if report["ok"] != json!(true) {
        anyhow::bail!("job {} failed verification", a.id);
    }
    Ok(())
}

async fn verify(a: &Args) -> anyhow::Result<serde_json::Value> {
    let buyer = crate::l1args::read_key(&a.buyer_key_env, None)?;
    let addrs = a.l1.addresses()?;
    let p = a.l1.reader()?;
    let chain_id = alloy::providers::Provider::get_chain_id(&p)
        .await
        .context("L1 unreachable")?;
    let dom = domain(chain_id, addrs.batch_inbox);
    let c = verinfer_rpc::client::http(&a.conn.url)?;
    let access = sign_results_access(&buyer, &dom, a.id)?;
    let res = c.get_results(a.id, Some(access)).await.context("results")?;
    let inbox = BatchInbox::new(addrs.batch_inbox, p.clone());
    let game = DisputeGame::new(addrs.dispute_game, p.clone());

    let mut problems: Vec<String> = Vec::new();
    let mut receipts = Vec::new();
    let mut worst = L1State::Finalized;
    let mut tokens = 0u64;
    for sr in &res.receipts {
        let (state, mut errs) = check_receipt(sr, &dom, &inbox, &game).await?;
        worst = worst.min(state);
        tokens += sr.receipt.tokensProcessed;
        problems.append(&mut errs);
        receipts.push(
            json!({"shard": sr.shard_index, "worker": sr.receipt.worker, "state": state.name(),
                             "batch": sr.batch.as_ref().map(|b| b.batch)}),
        );
    }
    for comp in &res.completions {
        let Some(sr) = res
            .receipts
            .iter()
            .find(|r| r.shard_index == comp.shard_index)
        else {
            problems.push(format!(
                "prompt {}: no receipt for shard {}",
                comp.prompt_index, comp.shard_index
            ));
            continue;
        };
        let leaf = row_leaf(&completion_leaf_bytes(&comp.tokens));
        if comp.output_proof.compute_root(leaf) != sr.receipt.outputRoot {
            problems.push(format!(
                "prompt {}: completion not under the receipt's output root",
                comp.prompt_index
            ));
        }
    }
    let job = inbox.getJob(a.id).call().await.context("getJob")?;
    if res.receipts.is_empty() {
        problems.push("no receipts yet".into());
        worst = L1State::NotOnL1;
    }
    if job.buyer != buyer.address() && worst != L1State::NotOnL1 {
        problems.push(format!(
            "the job on L1 belongs to {}, not to this buyer",
            job.buyer
        ));
    }
    let ok = problems.is_empty() && !matches!(worst, L1State::Fraud | L1State::NotOnL1);
    Ok(json!({
        "job": a.id, "ok": ok, "state": worst.name(), "receipts": res.receipts.len(),
        "completions": res.completions.len(), "tokensProcessed": tokens,
        "chargedWei": U256::from(job.charged).to_string(), "refundedWei": U256::from(job.refunded).to_string(),
        "frauds": job.frauds, "problems": problems, "shards": receipts,
    }))
}

/// Checks one receipt against L1; returns its state and what is wrong with it.
async fn check_receipt<P: alloy::providers::Provider>(
    sr: &ShardReceipt,
    dom: &alloy_sol_types::Eip712Domain,
    inbox: &BatchInbox::BatchInboxInstance<P>,
    game: &DisputeGame::DisputeGameInstance<P>,
) -> anyhow::Result<(L1State, Vec<String>)> {
    let mut errs = Vec::new();
    let shard = sr.shard_index;
    if recover(&sr.receipt.eip712_signing_hash(dom), &sr.signature) != Some(sr.receipt.worker) {
        errs.push(format!("shard {shard}: the signature is not the worker's"));
    }
    let Some(inc) = &sr.batch else {
        return Ok((L1State::NotOnL1, errs));
    };
    let bid = U256::from(inc.batch);
    let proof: Vec<B256> = inc.proof.siblings.clone();
    let hash = match inbox
        .verifyReceipt(
            bid,
            sr.receipt.clone().into(),
            U256::from(inc.proof.index),
            proof,
        )
        .call()
        .await
    {
        Ok(h) => h,
        Err(e) => {
            errs.push(format!(
                "shard {shard}: batch {} on L1 does not hold this receipt ({e})",
                inc.batch
            ));
            return Ok((L1State::NotOnL1, errs));
        }
    };
    debug_assert_eq!(
        hash,
        alloy_primitives::keccak256(Bytes::from(sr.receipt.abi_encode()))
    );
    if inbox.fraudulent(bid, hash).call().await? {
        return Ok((L1State::Fraud, errs));
    }
    let games = game.gamesOf(bid, hash, false).call().await?;
    let outputs = game.gamesOf(bid, hash, true).call().await?;
    for id in games.iter().chain(outputs.iter()) {
        if game.getGame(*id).call().await?.phase != PHASE_RESOLVED {
            return Ok((L1State::Disputed, errs));
        }
    }
    let b = inbox.getBatch(bid).call().await?;
    Ok((
        if b.finalized {
            L1State::Finalized
        } else {
            L1State::InWindow
        },
        errs,
    ))
}

fn print_human(r: &serde_json::Value) {
    println!(
        "job {}: {} ({})",
        r["job"].as_str().unwrap_or("?"),
        r["state"].as_str().unwrap_or("?"),
        if r["ok"] == json!(true) {
            "every check passed"
        } else {
            "CHECKS FAILED"
        }
    );
    println!(
        "  receipts {}, completions {}, tokens {}, charged {} wei, refunded {} wei",
        r["receipts"],
        r["completions"],
        r["tokensProcessed"],
        r["chargedWei"].as_str().unwrap_or("?"),
        r["refundedWei"].as_str().unwrap_or("?")
    );
    for s in r["shards"].as_array().into_iter().flatten() {
        println!(
            "  shard {} by {}: {} (batch {})",
            s["shard"],
            s["worker"].as_str().unwrap_or("?"),
            s["state"].as_str().unwrap_or("?"),
            s["batch"]
        );
    }
    for p in r["problems"].as_array().into_iter().flatten() {
        println!("  problem: {}", p.as_str().unwrap_or("?"));
    }
}
