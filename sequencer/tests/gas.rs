//! The batch gas model (`verinfer_sequencer::gas`) against gas measured on anvil with the
//! real `BatchInbox`: batches of several shapes are posted and finalized through the
//! sequencer's own L1 client, and every estimate must bound the measured gas (so a batch the
//! model admits always lands under EIP-7825's 2^24) without being loose by more than 2×.

mod common;

use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Bytes, B256, U256};
use common::chain::{setup, Chain};
use verinfer_primitives::job::{domain, encode_inputs, Prompt};
use verinfer_primitives::Receipt;
use verinfer_rpc::sign::{sign_job, sign_result, JobDraft};
use verinfer_sequencer::alloy_l1::AlloyL1;
use verinfer_sequencer::gas::{GasModel, EIP7825_TX_GAS_CAP};
use verinfer_sequencer::l1::{BatchPost, PostedJob, PostedReceipt, L1};

struct Shape {
    name: &'static str,
    /// (buyer index, input bytes, receipts) per job.
    jobs: Vec<(usize, usize, u32)>,
}

fn build(
    chain: &Chain,
    buyers: &[PrivateKeySigner],
    workers: &[PrivateKeySigner],
    shape: &Shape,
    index: u64,
    nonce_base: u64,
) -> (BatchPost, Vec<(usize, u32)>) {
    let d = domain(chain.chain_id, chain.d.batch_inbox);
    let mut jobs = Vec::new();
    let mut receipts = Vec::new();
    let mut sizes = Vec::new();
    let mut w = 0usize;
    for (j, (buyer, len, nr)) in shape.jobs.iter().enumerate() {
        // Non-zero bytes: the costly calldata case.
        let prompts = vec![Prompt::Text("z".repeat(len.saturating_sub(5).max(1)))];
        let req = sign_job(
            &buyers[*buyer],
            &d,
            JobDraft {
                sku_id: chain.sku,
                prompts: prompts.clone(),
                max_new_tokens: 4,
                max_price: U256::from(10u64).pow(U256::from(15u64)),
                nonce: nonce_base + j as u64,
            },
        )
        .unwrap();
        let id = req.job.id(&d);
        let inputs = encode_inputs(&prompts);
        sizes.push((inputs.len(), *nr));
        jobs.push(PostedJob {
            request: req.job,
            signature: req.signature,
            inputs: Bytes::from(inputs),
        });
        for i in 0..*nr {
            let key = &workers[w % workers.len()];
            w += 1;
            let r = Receipt {
                jobId: id,
                shardIndex: i,
                skuId: chain.sku,
                worker: key.address(),
                inputRoot: B256::repeat_byte(1),
                outputRoot: B256::repeat_byte(2),
                traceRoot: B256::repeat_byte(3),
                stepCount: 100,
                tokensProcessed: 50,
            };
            let signed = sign_result(key, &d, r, Vec::new()).unwrap();
            receipts.push(PostedReceipt {
                receipt: signed.receipt,
                signature: signed.signature,
            });
        }
    }
    (
        BatchPost {
            index,
            receipts_root: B256::ZERO,
            jobs,
            receipts,
        },
        sizes,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gas_model_bounds_measured_post_and_finalize_gas() {
    let chain = setup(5).await;
    let workers = chain.add_workers(16).await;
    let buyers = chain
        .add_buyers(8, U256::from(10u64).pow(U256::from(18u64)))
        .await;
    let cfg = chain.config(
        "127.0.0.1:0".parse().unwrap(),
        std::path::Path::new("/nonexistent"),
        "UNUSED",
    );
    let l1 = AlloyL1::connect(&cfg.l1, &chain.poster.to_bytes().to_string()).unwrap();
    let model = GasModel { budget: 12_000_000 };
    let shapes = [
        Shape {
            name: "1 job, 1 receipt",
            jobs: vec![(0, 64, 1)],
        },
        Shape {
            name: "1 job, 16 receipts, 16 workers",
            jobs: vec![(0, 64, 16)],
        },
        Shape {
            name: "8 jobs, 8 buyers, 1 receipt each",
            jobs: (0..8).map(|b| (b, 64, 1)).collect(),
        },
        Shape {
            name: "1 job with 20 KB of inputs",
            jobs: vec![(1, 20_000, 1)],
        },
        Shape {
            name: "24 jobs x 4 receipts, 8 buyers, 16 workers",
            jobs: (0..24).map(|j| (j % 8, 256, 4)).collect(),
        },
    ];
    let mut posted = Vec::new();
    let mut off: Vec<String> = Vec::new();
    for (k, shape) in shapes.iter().enumerate() {
        let (post, sizes) = build(&chain, &buyers, &workers, shape, k as u64, 1000 * k as u64);
        let est = model.post_gas(&sizes);
        let inc = l1.post_batch(&post).await.unwrap();
        println!(
            "post   {:<44} measured {:>9} estimate {:>9} ({:.2}x)",
            shape.name,
            inc.gas_used,
            est,
            est as f64 / inc.gas_used as f64
        );
        if est < inc.gas_used || est > 2 * inc.gas_used {
            off.push(format!(
                "post {}: estimate {est}, measured {}",
                shape.name, inc.gas_used
            ));
        }
        assert!(inc.gas_used < EIP7825_TX_GAS_CAP);
        posted.push((k as u64, post));
    }
    // Past the challenge window every batch is finalized; measure those too.
    let _: serde_json::Value = chain
        .owner_p
        .raw_request("evm_increaseTime".into(), (30u64,))
        .await
        .unwrap();
    let _: serde_json::Value = chain
        .owner_p
        .raw_request("evm_mine".into(), ())
        .await
        .unwrap();
    for (k, post) in &posted {
        let rs: Vec<Receipt> = post.receipts.iter().map(|r| r.receipt.clone()).collect();
        let est = model.finalize_gas(rs.len() as u64);
        let inc = l1.finalize_batch(*k, &rs).await.unwrap();
        println!(
            "final  {:<44} measured {:>9} estimate {:>9} ({:.2}x)",
            shapes[*k as usize].name,
            inc.gas_used,
            est,
            est as f64 / inc.gas_used as f64
        );
        if est < inc.gas_used {
            off.push(format!(
                "finalize {k}: estimate {est} < measured {}",
                inc.gas_used
            ));
        }
    }
    // Every shape is measured and printed before judging, so one run shows the whole model.
    assert!(off.is_empty(), "gas model out of bounds: {off:#?}");
    let _ = chain.owner_p.get_block_number().await.unwrap();
}
