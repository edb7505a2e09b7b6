//! A scripted honest worker for tests: registers, subscribes over WebSocket, answers every
//! shard with fixed tokens and a correctly signed receipt, and reconnects whenever the
//! sequencer goes away (as after a crash).
#![allow(dead_code)]

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::B256;
use alloy_sol_types::Eip712Domain;
use verinfer_primitives::job::outputs_root;
use verinfer_primitives::Receipt;
use verinfer_rpc::client;
use verinfer_rpc::sign::{sign_registration, sign_result};
use verinfer_rpc::types::ShardAssignment;
use verinfer_rpc::VerinferApiClient;

/// The tokens the scripted worker "generates" for prompt `i` of a shard.
pub fn outputs_for(a: &ShardAssignment) -> Vec<Vec<u32>> {
    (0..a.prompts.len())
        .map(|i| vec![10 + i as u32; a.max_new_tokens.min(3) as usize])
        .collect()
}

/// The receipt the scripted worker signs for `a`.
pub fn receipt_for(a: &ShardAssignment, key: &PrivateKeySigner, outputs: &[Vec<u32>]) -> Receipt {
    let prompt_tokens: u64 = a.prompts.iter().map(|p| p.token_bound()).sum();
    Receipt {
        jobId: a.job_id,
        shardIndex: a.shard_index,
        skuId: a.sku_id,
        worker: key.address(),
        inputRoot: a.input_root,
        outputRoot: outputs_root(outputs),
        traceRoot: B256::repeat_byte(0x42),
        stepCount: 23,
        tokensProcessed: prompt_tokens + outputs.iter().map(|o| o.len() as u64).sum::<u64>(),
    }
}

/// Runs forever (abort the task to stop it).
pub async fn run(ws_url: String, key: PrivateKeySigner, domain: Eip712Domain, sku: B256) {
    loop {
        let _ = serve_once(&ws_url, &key, &domain, sku).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn serve_once(
    ws_url: &str,
    key: &PrivateKeySigner,
    domain: &Eip712Domain,
    sku: B256,
) -> Result<(), Box<dyn std::error::Error>> {
    let c = client::ws(ws_url).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let reg = c
        .register_worker(sign_registration(key, domain, vec![sku], now)?)
        .await?;
    let mut sub = c.subscribe_shards(key.address(), reg.session).await?;
    while let Some(a) = sub.next().await {
        let a = a?;
        let outputs = outputs_for(&a);
        let r = receipt_for(&a, key, &outputs);
        // A failed submission (sequencer killed meanwhile) is re-assigned after the deadline.
        let _ = c.submit_result(sign_result(key, domain, r, outputs)?).await;
    }
    Ok(())
}
