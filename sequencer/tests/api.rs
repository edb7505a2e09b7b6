//! The API end to end over loopback: intake validation codes, durability of acknowledged
//! jobs across a restart, worker registration, assignment over WebSocket, re-assignment on a
//! missed deadline, receipt checks, batching with inclusion proofs, metrics.

mod common;

use std::sync::Arc;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::SolStruct;
use common::*;
use verinfer_primitives::job::{completion_leaf_bytes, domain, prompts_root, Prompt};
use verinfer_primitives::merkle::hash_leaf;
use verinfer_primitives::Receipt;
use verinfer_rpc::client;
use verinfer_rpc::codes;
use verinfer_rpc::error_code;
use verinfer_rpc::sign::{sign_job, sign_registration, sign_result, JobDraft};
use verinfer_rpc::types::{JobState, ShardAssignment};
use verinfer_rpc::VerinferApiClient;

fn code<T: std::fmt::Debug>(r: Result<T, client::ClientError>) -> Option<i32> {
    error_code(&r.expect_err("must fail"))
}

fn draft(nonce: u64, prompts: Vec<Prompt>) -> JobDraft {
    JobDraft {
        sku_id: SKU,
        prompts,
        max_new_tokens: 4,
        max_price: U256::from(10_000u64),
        nonce,
    }
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn start(dir: &std::path::Path, l1: Arc<TestDoubleL1>) -> verinfer_sequencer::Running {
    verinfer_sequencer::start(config(dir), l1).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_codes_and_durable_acknowledgements() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = Arc::new(TestDoubleL1::default());
    let buyer = PrivateKeySigner::random();
    l1.balances
        .lock()
        .unwrap()
        .insert(buyer.address(), U256::from(25_000u64));
    let run = start(dir.path(), l1.clone()).await;
    let c = client::http(&format!("http://{}", run.addr)).unwrap();
    let d = domain(31337, INBOX);
    let info = c.domain().await.unwrap();
    assert_eq!((info.chain_id, info.batch_inbox), (31337, INBOX));

    let prompts = vec![
        Prompt::Text("hello".into()),
        Prompt::Tokens(vec![1, 2, 3]),
        Prompt::Text("x".into()),
    ];
    let req = sign_job(&buyer, &d, draft(1, prompts.clone())).unwrap();
    let ok = c.submit_job(req.clone()).await.unwrap();
    assert_eq!(ok.job_id, req.job.id(&d));
    assert_eq!(ok.shards, 2, "3 prompts, 2 per shard");

    // Replay of the same nonce.
    assert_eq!(
        code(c.submit_job(req.clone()).await),
        Some(codes::REPLAYED_NONCE)
    );
    // Bad signature: signed by someone else.
    let mut bad = sign_job(&PrivateKeySigner::random(), &d, draft(2, prompts.clone())).unwrap();
    bad.job.buyer = buyer.address();
    assert_eq!(code(c.submit_job(bad).await), Some(codes::BAD_SIGNATURE));
    // Signed for another chain.
    let other = sign_job(&buyer, &domain(1, INBOX), draft(3, prompts.clone())).unwrap();
    assert_eq!(code(c.submit_job(other).await), Some(codes::BAD_SIGNATURE));
    // Unknown SKU.
    let mut dr = draft(4, prompts.clone());
    dr.sku_id = B256::repeat_byte(1);
    assert_eq!(
        code(c.submit_job(sign_job(&buyer, &d, dr).unwrap()).await),
        Some(codes::UNKNOWN_SKU)
    );
    // Prompt too long: 61 token ids + 4 new > 64.
    let dr = draft(5, vec![Prompt::Tokens(vec![7; 61])]);
    assert_eq!(
        code(c.submit_job(sign_job(&buyer, &d, dr).unwrap()).await),
        Some(codes::PROMPT_TOO_LONG)
    );
    // Price too low: (6 + 4) tokens × 10 = 100 > 99.
    let mut dr = draft(6, vec![Prompt::Text("hello".into())]);
    dr.max_price = U256::from(99u64);
    let e = c
        .submit_job(sign_job(&buyer, &d, dr).unwrap())
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), Some(codes::PRICE_TOO_LOW));
    // Balance too low: 25_000 - 10_000 reserved < 20_000.
    let mut dr = draft(7, prompts.clone());
    dr.max_price = U256::from(20_000u64);
    assert_eq!(
        code(c.submit_job(sign_job(&buyer, &d, dr).unwrap()).await),
        Some(codes::BALANCE_TOO_LOW)
    );
    // Malformed: prompts do not match the signed inputs hash.
    let mut m = sign_job(&buyer, &d, draft(8, prompts.clone())).unwrap();
    m.prompts[0] = Prompt::Text("jello".into());
    assert_eq!(code(c.submit_job(m).await), Some(codes::MALFORMED_PARAMS));
    // Malformed at the JSON level.
    let raw: Result<serde_json::Value, _> = jsonrpsee::core::client::ClientT::request(
        &c,
        "verinfer_submitJob",
        jsonrpsee::rpc_params![serde_json::json!({"job": 5})],
    )
    .await;
    assert_eq!(code(raw), Some(codes::MALFORMED_PARAMS));
    // Oversized: more prompts than the per-job limit (16).
    let many: Vec<Prompt> = (0..17).map(|i| Prompt::Tokens(vec![i])).collect();
    assert_eq!(
        code(
            c.submit_job(sign_job(&buyer, &d, draft(9, many)).unwrap())
                .await
        ),
        Some(codes::OVERSIZED_REQUEST)
    );
    // Oversized body: refused by the server before parsing, with the same code.
    let big = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "verinfer_domain", "params": ["x".repeat(100_000)]});
    let (status, body) = http_post(run.addr, &big.to_string()).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains(&codes::OVERSIZED_REQUEST.to_string()),
        "{body}"
    );
    // Unknown job.
    assert_eq!(
        code(c.get_job(B256::repeat_byte(3)).await),
        Some(codes::UNKNOWN_JOB)
    );

    // A second good job; list shows both in order.
    let req2 = sign_job(&buyer, &d, draft(11, vec![Prompt::Text("b".into())])).unwrap();
    c.submit_job(req2.clone()).await.unwrap();
    let page = c.list_jobs(buyer.address(), None, Some(1)).await.unwrap();
    assert_eq!(page.jobs.len(), 1);
    assert_eq!(page.jobs[0].job_id, req.job.id(&d));
    let page2 = c
        .list_jobs(buyer.address(), page.next_cursor, Some(10))
        .await
        .unwrap();
    assert_eq!(
        page2.jobs.iter().map(|j| j.job_id).collect::<Vec<_>>(),
        vec![req2.job.id(&d)]
    );
    assert_eq!(page2.next_cursor, None);

    // Metrics count the outcomes.
    let text = http_get(run.addr, "/metrics").await;
    assert!(text.contains("verinfer_jobs_accepted_total 2"), "{text}");
    assert!(
        text.contains(&format!(
            "verinfer_jobs_rejected_total{{code=\"{}\"}} 1",
            codes::REPLAYED_NONCE
        )),
        "{text}"
    );
    assert!(
        text.contains("verinfer_rpc_latency_seconds_count{method=\"submitJob\"}"),
        "{text}"
    );

    // Restart on the same directory: both jobs are there, the nonce is still spent.
    run.stop().await;
    let run = start(dir.path(), l1.clone()).await;
    let c = client::http(&format!("http://{}", run.addr)).unwrap();
    let j = c.get_job(req.job.id(&d)).await.unwrap();
    assert_eq!(
        (j.state, j.shards_total, j.job.clone()),
        (JobState::Accepted, 2, req.job.clone())
    );
    assert_eq!(code(c.submit_job(req).await), Some(codes::REPLAYED_NONCE));
    run.stop().await;
}

/// Raw HTTP GET over loopback (the metrics route is plain text, not JSON-RPC).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// Raw HTTP POST over loopback; returns status and body.
async fn http_post(addr: std::net::SocketAddr, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // The server may answer and close before reading the whole body.
    let _ = s.write_all(req.as_bytes()).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let out = String::from_utf8_lossy(&out).to_string();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

fn honest_outputs(a: &ShardAssignment) -> Vec<Vec<u32>> {
    (0..a.prompts.len())
        .map(|i| vec![100 + i as u32; 3])
        .collect()
}

fn receipt_for(a: &ShardAssignment, worker: Address, outputs: &[Vec<u32>]) -> Receipt {
    let prompt_tokens: u64 = a.prompts.iter().map(|p| p.token_bound()).sum();
    Receipt {
        jobId: a.job_id,
        shardIndex: a.shard_index,
        skuId: a.sku_id,
        worker,
        inputRoot: a.input_root,
        outputRoot: verinfer_primitives::job::outputs_root(outputs),
        traceRoot: B256::repeat_byte(0x77),
        stepCount: 10,
        tokensProcessed: prompt_tokens + outputs.iter().map(|o| o.len() as u64).sum::<u64>(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_receipts_reassignment_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = Arc::new(TestDoubleL1::default());
    let buyer = PrivateKeySigner::random();
    let w1 = PrivateKeySigner::random();
    let w2 = PrivateKeySigner::random();
    let poor = PrivateKeySigner::random();
    l1.balances
        .lock()
        .unwrap()
        .insert(buyer.address(), U256::from(1_000_000u64));
    l1.stakes
        .lock()
        .unwrap()
        .insert(w1.address(), U256::from(1000u64));
    l1.stakes
        .lock()
        .unwrap()
        .insert(w2.address(), U256::from(1000u64));
    l1.stakes
        .lock()
        .unwrap()
        .insert(poor.address(), U256::from(99u64));
    let run = start(dir.path(), l1.clone()).await;
    let url = format!("ws://{}", run.addr);
    let c = client::ws(&url).await.unwrap();
    let d = domain(31337, INBOX);

    // Registration checks.
    let e = c
        .register_worker(sign_registration(&poor, &d, vec![SKU], now_s()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), Some(codes::STAKE_TOO_LOW));
    let e = c
        .register_worker(sign_registration(&w1, &d, vec![B256::ZERO], now_s()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), Some(codes::UNKNOWN_SKU));
    let e = c
        .register_worker(sign_registration(&w1, &d, vec![SKU], now_s() - 10_000).unwrap())
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), Some(codes::EXPIRED));
    let mut forged = sign_registration(&w2, &d, vec![SKU], now_s()).unwrap();
    forged.registration.worker = w1.address();
    assert_eq!(
        error_code(&c.register_worker(forged).await.unwrap_err()),
        Some(codes::BAD_SIGNATURE)
    );
    assert!(
        c.subscribe_shards(w1.address(), B256::ZERO).await.is_err(),
        "no session yet"
    );

    // w1 registers and subscribes; a 3-prompt job makes two shards, both go to w1.
    let r1 = c
        .register_worker(sign_registration(&w1, &d, vec![SKU], now_s()).unwrap())
        .await
        .unwrap();
    assert_eq!(r1.stake, U256::from(1000u64));
    let mut sub1 = c.subscribe_shards(w1.address(), r1.session).await.unwrap();
    let prompts = vec![
        Prompt::Text("a".into()),
        Prompt::Tokens(vec![5, 6]),
        Prompt::Text("c".into()),
    ];
    let job = sign_job(&buyer, &d, draft(1, prompts.clone())).unwrap();
    let jid = c.submit_job(job.clone()).await.unwrap().job_id;
    let a0 = tokio::time::timeout(Duration::from_secs(5), sub1.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let a1 = tokio::time::timeout(Duration::from_secs(5), sub1.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let (a0, a1) = if a0.shard_index == 0 {
        (a0, a1)
    } else {
        (a1, a0)
    };
    assert_eq!(
        (a0.prompts.clone(), a1.prompts.clone()),
        (prompts[..2].to_vec(), prompts[2..].to_vec())
    );
    assert_eq!(a0.input_root, prompts_root(&prompts[..2]));
    // w2 joins now, before the deadline of w1's shards.
    let r2 = c
        .register_worker(sign_registration(&w2, &d, vec![SKU], now_s()).unwrap())
        .await
        .unwrap();
    let mut sub2 = c.subscribe_shards(w2.address(), r2.session).await.unwrap();

    // Receipt checks on shard 0.
    let out0 = honest_outputs(&a0);
    let good = receipt_for(&a0, w1.address(), &out0);
    let mut r = good.clone();
    r.inputRoot = B256::ZERO;
    let e = c
        .submit_result(sign_result(&w1, &d, r, out0.clone()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), Some(codes::RECEIPT_MISMATCH));
    let mut wrong_out = out0.clone();
    wrong_out[0][0] += 1;
    let e = c
        .submit_result(sign_result(&w1, &d, good.clone(), wrong_out).unwrap())
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), Some(codes::RECEIPT_MISMATCH));
    let e = c
        .submit_result(sign_result(&w2, &d, good.clone(), out0.clone()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        error_code(&e),
        Some(codes::BAD_SIGNATURE),
        "signed by a key that is not receipt.worker"
    );
    let mut other_worker = good.clone();
    other_worker.worker = w2.address();
    let e = c
        .submit_result(sign_result(&w2, &d, other_worker, out0.clone()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        error_code(&e),
        Some(codes::UNKNOWN_SHARD),
        "shard is not assigned to w2"
    );
    let ok = c
        .submit_result(sign_result(&w1, &d, good.clone(), out0.clone()).unwrap())
        .await
        .unwrap();
    assert_eq!(ok.receipt_hash, good.hash());
    assert!(!ok.job_completed);
    // Same result again is answered the same way (idempotent retry).
    c.submit_result(sign_result(&w1, &d, good.clone(), out0.clone()).unwrap())
        .await
        .unwrap();

    // w1 sits on shard 1; after its deadline shard 1 moves to w2 (w1 missed it).
    let re = tokio::time::timeout(Duration::from_secs(5), sub2.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((re.shard_id, re.attempt), (a1.shard_id, 1));
    // w1's late result is refused; w2's is accepted and completes the job.
    let out1 = honest_outputs(&a1);
    let late = receipt_for(&a1, w1.address(), &out1);
    let e = c
        .submit_result(sign_result(&w1, &d, late, out1.clone()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), Some(codes::UNKNOWN_SHARD));
    let rec1 = receipt_for(&re, w2.address(), &out1);
    assert!(
        c.submit_result(sign_result(&w2, &d, rec1.clone(), out1.clone()).unwrap())
            .await
            .unwrap()
            .job_completed
    );

    // The batcher cuts and posts it; the follower confirms it.
    let mut info = c.get_job(jid).await.unwrap();
    for _ in 0..100 {
        if info.state == JobState::Confirmed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        info = c.get_job(jid).await.unwrap();
    }
    assert_eq!(info.state, JobState::Confirmed);
    assert_eq!(info.batch, Some(0));
    // Charged = tokens processed × 10, below maxPrice.
    let tokens = good.tokensProcessed + rec1.tokensProcessed;
    assert_eq!(info.charged, Some(U256::from(tokens * 10)));
    let posted = l1.posted.lock().unwrap().clone();
    assert_eq!(posted.len(), 1, "posted exactly once");
    assert_eq!(posted[0].jobs.len(), 1);
    assert_eq!(posted[0].jobs[0].request, job.job);
    assert_eq!(posted[0].receipts.len(), 2);
    assert_eq!(posted[0].receipts[0].receipt, good);
    assert_eq!(posted[0].receipts[1].receipt, rec1);

    // Results: every completion proves into its receipt, every receipt into the batch root.
    // Results are the buyer's: refused without its access signature or with a stranger's.
    assert_eq!(
        code(c.get_results(jid, None).await),
        Some(codes::UNAUTHORIZED)
    );
    let stranger = verinfer_rpc::sign::sign_results_access(&w1, &d, jid).unwrap();
    assert_eq!(
        code(c.get_results(jid, Some(stranger)).await),
        Some(codes::UNAUTHORIZED)
    );
    let access = verinfer_rpc::sign::sign_results_access(&buyer, &d, jid).unwrap();
    let res = c.get_results(jid, Some(access)).await.unwrap();
    assert_eq!(res.finality, verinfer_rpc::types::Finality::OnL1);
    assert_eq!(res.completions.len(), 3);
    let batch = c.get_batch(0).await.unwrap();
    assert_eq!(batch.jobs, vec![jid]);
    assert_eq!(batch.receipts_root, posted[0].receipts_root);
    for comp in &res.completions {
        let sr = res
            .receipts
            .iter()
            .find(|r| r.shard_index == comp.shard_index)
            .unwrap();
        let leaf = hash_leaf(&completion_leaf_bytes(&comp.tokens));
        assert_eq!(comp.output_proof.compute_root(leaf), sr.receipt.outputRoot);
        let inc = sr.batch.as_ref().unwrap();
        let rleaf = hash_leaf(&alloy_sol_types::SolValue::abi_encode(&sr.receipt));
        assert_eq!(inc.proof.compute_root(rleaf), batch.receipts_root);
        assert_eq!(
            verinfer_rpc::sign::recover(&sr.receipt.eip712_signing_hash(&d), &sr.signature),
            Some(sr.receipt.worker)
        );
    }
    let comp2 = res
        .completions
        .iter()
        .find(|c| c.prompt_index == 2)
        .unwrap();
    assert_eq!(comp2.tokens, out1[0]);
    run.stop().await;
}
