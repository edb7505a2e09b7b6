//! Attacks on the sequencer's API that must fail (issue #9, attacks 3 and 13), over real
//! JSON-RPC on loopback. L1 is the test double here: what is under test is the sequencer's
//! own checks (the L1 side of the same attacks runs against anvil in `tests/settlement.rs`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Bytes, B256, U256};
use common::*;
use verinfer_primitives::job::{domain, Prompt};
use verinfer_rpc::client;
use verinfer_rpc::codes;
use verinfer_rpc::error_code;
use verinfer_rpc::sign::{
    sign_cancel, sign_job, sign_registration, sign_result, sign_results_access, JobDraft,
    SECP256K1_HALF_N,
};
use verinfer_rpc::types::{Finality, JobState, ShardAssignment};
use verinfer_rpc::VerinferApiClient;

fn code<T: std::fmt::Debug>(r: Result<T, client::ClientError>) -> Option<i32> {
    error_code(&r.expect_err("must fail"))
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
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

/// The malleable twin `(r, n - s, v ^ 1)` of a signature: same signer for a lenient
/// recovery, refused by the inbox (`s > n/2`).
fn high_s_twin(sig: &[u8]) -> Bytes {
    let n = SECP256K1_HALF_N * U256::from(2u64) + U256::from(1u64);
    let s = U256::from_be_slice(&sig[32..64]);
    let mut t = sig.to_vec();
    t[32..64].copy_from_slice(&(n - s).to_be_bytes::<32>());
    t[64] = if sig[64] == 27 { 28 } else { 27 };
    t.into()
}

/// The same signature with an EIP-155 style `v` (35/36), refused by the inbox.
fn eip155_v(sig: &[u8]) -> Bytes {
    let mut t = sig.to_vec();
    t[64] = t[64] - 27 + 35;
    t.into()
}

/// The same signature with `v` in {0, 1}, which the inbox accepts (it adds 27).
fn raw_v(sig: &[u8]) -> Bytes {
    let mut t = sig.to_vec();
    t[64] -= 27;
    t.into()
}

fn funded(l1: &TestDoubleL1, who: &PrivateKeySigner, amount: u64) {
    l1.balances
        .lock()
        .unwrap()
        .insert(who.address(), U256::from(amount));
}

fn staked(l1: &TestDoubleL1, who: &PrivateKeySigner) {
    l1.stakes
        .lock()
        .unwrap()
        .insert(who.address(), U256::from(1000u64));
}

async fn next(sub: &mut jsonrpsee::core::client::Subscription<ShardAssignment>) -> ShardAssignment {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("assignment in time")
        .unwrap()
        .unwrap()
}

fn receipt_for(
    a: &ShardAssignment,
    worker: &PrivateKeySigner,
) -> (verinfer_primitives::Receipt, Vec<Vec<u32>>) {
    let outputs: Vec<Vec<u32>> = (0..a.prompts.len())
        .map(|i| vec![7 + i as u32; 2])
        .collect();
    let prompt_tokens: u64 = a.prompts.iter().map(|p| p.token_bound()).sum();
    let r = verinfer_primitives::Receipt {
        jobId: a.job_id,
        shardIndex: a.shard_index,
        skuId: a.sku_id,
        worker: worker.address(),
        inputRoot: a.input_root,
        outputRoot: verinfer_primitives::job::outputs_root(&outputs),
        traceRoot: B256::repeat_byte(0x33),
        stepCount: 5,
        tokensProcessed: prompt_tokens + outputs.iter().map(|o| o.len() as u64).sum::<u64>(),
    };
    (r, outputs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_refuses_exactly_the_signatures_the_inbox_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = Arc::new(TestDoubleL1::default());
    let buyer = PrivateKeySigner::random();
    let w = PrivateKeySigner::random();
    funded(&l1, &buyer, 1_000_000);
    staked(&l1, &w);
    let run = verinfer_sequencer::start(config(dir.path()), l1.clone())
        .await
        .unwrap();
    let c = client::ws(&format!("ws://{}", run.addr)).await.unwrap();
    let d = domain(31337, INBOX);

    // Jobs: the high-s twin and the v = 35/36 form of a valid signature are refused (the
    // inbox would revert on them and halt the batch), the v = 0/1 form is the same signature
    // to the inbox and is accepted.
    let job = sign_job(&buyer, &d, draft(1, vec![Prompt::Text("a".into())])).unwrap();
    let mut bad = job.clone();
    bad.signature = high_s_twin(&job.signature);
    assert_eq!(code(c.submit_job(bad).await), Some(codes::BAD_SIGNATURE));
    let mut bad = job.clone();
    bad.signature = eip155_v(&job.signature);
    assert_eq!(code(c.submit_job(bad).await), Some(codes::BAD_SIGNATURE));
    let mut ok = job.clone();
    ok.signature = raw_v(&job.signature);
    c.submit_job(ok).await.unwrap();

    // Registrations.
    let reg = sign_registration(&w, &d, vec![SKU], now_s()).unwrap();
    let mut bad = reg.clone();
    bad.signature = high_s_twin(&reg.signature);
    assert_eq!(
        code(c.register_worker(bad).await),
        Some(codes::BAD_SIGNATURE)
    );
    let mut bad = reg.clone();
    bad.signature = eip155_v(&reg.signature);
    assert_eq!(
        code(c.register_worker(bad).await),
        Some(codes::BAD_SIGNATURE)
    );
    let session = c.register_worker(reg).await.unwrap().session;
    let mut sub = c.subscribe_shards(w.address(), session).await.unwrap();

    // Receipts.
    let a = next(&mut sub).await;
    let (r, outputs) = receipt_for(&a, &w);
    let good = sign_result(&w, &d, r, outputs).unwrap();
    let mut bad = good.clone();
    bad.signature = high_s_twin(&good.signature);
    assert_eq!(code(c.submit_result(bad).await), Some(codes::BAD_SIGNATURE));
    let mut bad = good.clone();
    bad.signature = eip155_v(&good.signature);
    assert_eq!(code(c.submit_result(bad).await), Some(codes::BAD_SIGNATURE));
    assert!(c.submit_result(good).await.unwrap().job_completed);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_worker_registration_is_refused_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = Arc::new(TestDoubleL1::default());
    let w = PrivateKeySigner::random();
    staked(&l1, &w);
    let run = verinfer_sequencer::start(config(dir.path()), l1.clone())
        .await
        .unwrap();
    let c = client::ws(&format!("ws://{}", run.addr)).await.unwrap();
    let d = domain(31337, INBOX);
    let t = now_s();
    let reg = sign_registration(&w, &d, vec![SKU], t).unwrap();
    let s1 = c.register_worker(reg.clone()).await.unwrap().session;
    // Anyone who saw it replays it within its 5-minute freshness window: refused, and the
    // worker's session is untouched.
    let attacker = client::ws(&format!("ws://{}", run.addr)).await.unwrap();
    assert_eq!(
        code(attacker.register_worker(reg.clone()).await),
        Some(codes::REGISTRATION_REPLAYED)
    );
    assert!(c.subscribe_shards(w.address(), s1).await.is_ok());
    // A newer registration by the worker itself is fine; the older one stays dead.
    let newer = sign_registration(&w, &d, vec![SKU], t + 1).unwrap();
    c.register_worker(newer).await.unwrap();
    assert_eq!(
        code(attacker.register_worker(reg.clone()).await),
        Some(codes::REGISTRATION_REPLAYED)
    );
    run.stop().await;
    // Sessions are in memory, the last issuedAt is on disk: a replay after a restart fails too.
    let run = verinfer_sequencer::start(config(dir.path()), l1.clone())
        .await
        .unwrap();
    let attacker = client::http(&format!("http://{}", run.addr)).unwrap();
    assert_eq!(
        code(attacker.register_worker(reg).await),
        Some(codes::REGISTRATION_REPLAYED)
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_need_the_buyers_access_and_say_how_final_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = Arc::new(TestDoubleL1::default());
    let buyer = PrivateKeySigner::random();
    let w = PrivateKeySigner::random();
    funded(&l1, &buyer, 1_000_000);
    staked(&l1, &w);
    let mut cfg = config(dir.path());
    // The batcher only runs when the test says so.
    cfg.batching.interval_ms = 3_600_000;
    let run = verinfer_sequencer::start(cfg, l1.clone()).await.unwrap();
    let c = client::ws(&format!("ws://{}", run.addr)).await.unwrap();
    let d = domain(31337, INBOX);
    let session = c
        .register_worker(sign_registration(&w, &d, vec![SKU], now_s()).unwrap())
        .await
        .unwrap()
        .session;
    let mut sub = c.subscribe_shards(w.address(), session).await.unwrap();
    let job = sign_job(&buyer, &d, draft(1, vec![Prompt::Text("q".into())])).unwrap();
    let id = c.submit_job(job).await.unwrap().job_id;
    let a = next(&mut sub).await;
    let (r, outputs) = receipt_for(&a, &w);
    c.submit_result(sign_result(&w, &d, r, outputs.clone()).unwrap())
        .await
        .unwrap();

    // Anyone else: refused (no access, a stranger's access, the buyer's access to another job).
    assert_eq!(
        code(c.get_results(id, None).await),
        Some(codes::UNAUTHORIZED)
    );
    let stranger = sign_results_access(&w, &d, id).unwrap();
    assert_eq!(
        code(c.get_results(id, Some(stranger)).await),
        Some(codes::UNAUTHORIZED)
    );
    let other = sign_results_access(&buyer, &d, B256::repeat_byte(9)).unwrap();
    assert_eq!(
        code(c.get_results(id, Some(other)).await),
        Some(codes::UNAUTHORIZED)
    );
    // The buyer: completions, marked provisional while not on L1.
    let access = sign_results_access(&buyer, &d, id).unwrap();
    let res = c.get_results(id, Some(access.clone())).await.unwrap();
    assert_eq!(res.state, JobState::Completed);
    assert_eq!(res.finality, Finality::Provisional);
    assert_eq!(res.completions[0].tokens, outputs[0]);
    assert!(res.receipts[0].batch.is_none());
    // Once its batch is on L1: onL1 (challengeable), with the batch proof.
    verinfer_sequencer::batcher::cut_batches(&run.sequencer)
        .await
        .unwrap();
    let res = c.get_results(id, Some(access)).await.unwrap();
    assert_eq!(res.finality, Finality::OnL1);
    assert!(res.receipts[0].batch.is_some());
    run.stop().await;

    // The explicit public mode serves anyone.
    let mut cfg = config(dir.path());
    cfg.limits.public_results = true;
    let run = verinfer_sequencer::start(cfg, l1.clone()).await.unwrap();
    let c = client::http(&format!("http://{}", run.addr)).unwrap();
    assert_eq!(c.get_results(id, None).await.unwrap().job_id, id);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyer_cancels_an_unbatched_job_and_its_reservation_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = Arc::new(TestDoubleL1::default());
    let buyer = PrivateKeySigner::random();
    let w = PrivateKeySigner::random();
    funded(&l1, &buyer, 25_000);
    staked(&l1, &w);
    let run = verinfer_sequencer::start(config(dir.path()), l1.clone())
        .await
        .unwrap();
    let c = client::ws(&format!("ws://{}", run.addr)).await.unwrap();
    let d = domain(31337, INBOX);
    let session = c
        .register_worker(sign_registration(&w, &d, vec![SKU], now_s()).unwrap())
        .await
        .unwrap()
        .session;
    let mut sub = c.subscribe_shards(w.address(), session).await.unwrap();
    let job = sign_job(&buyer, &d, draft(1, vec![Prompt::Text("q".into())])).unwrap();
    let id = c.submit_job(job).await.unwrap().job_id;
    let a = next(&mut sub).await;
    let mut big = draft(2, vec![Prompt::Text("r".into())]);
    big.max_price = U256::from(20_000u64);
    let big = sign_job(&buyer, &d, big).unwrap();
    assert_eq!(
        code(c.submit_job(big.clone()).await),
        Some(codes::BALANCE_TOO_LOW)
    );
    // Only the buyer can cancel.
    let stranger = sign_cancel(&w, &d, id).unwrap();
    assert_eq!(
        code(c.cancel_job(stranger).await),
        Some(codes::BAD_SIGNATURE)
    );
    let done = c
        .cancel_job(sign_cancel(&buyer, &d, id).unwrap())
        .await
        .unwrap();
    assert_eq!(done.released, U256::from(10_000u64));
    assert_eq!(c.get_job(id).await.unwrap().state, JobState::Cancelled);
    assert_eq!(
        code(c.cancel_job(sign_cancel(&buyer, &d, id).unwrap()).await),
        Some(codes::NOT_CANCELLABLE)
    );
    // The reservation is free again, and the worker's late result is not taken.
    c.submit_job(big).await.unwrap();
    let (r, outputs) = receipt_for(&a, &w);
    assert_eq!(
        code(
            c.submit_result(sign_result(&w, &d, r, outputs).unwrap())
                .await
        ),
        Some(codes::UNKNOWN_SHARD)
    );
    assert_eq!(c.get_job(id).await.unwrap().state, JobState::Cancelled);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_too_large_to_post_is_refused_at_intake() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = Arc::new(TestDoubleL1::default());
    let buyer = PrivateKeySigner::random();
    funded(&l1, &buyer, 100_000_000);
    let mut cfg = config(dir.path());
    cfg.batching.gas_budget = 1_000_000;
    cfg.skus[0].max_context = 1_000_000;
    let run = verinfer_sequencer::start(cfg, l1.clone()).await.unwrap();
    let c = client::http(&format!("http://{}", run.addr)).unwrap();
    let d = domain(31337, INBOX);
    // ~ 50 KB of inputs need ~ 0.9 M gas of calldata and hashing alone.
    let mut dr = draft(1, vec![Prompt::Text("x".repeat(50_000))]);
    dr.max_price = U256::from(10_000_000u64);
    let e = c
        .submit_job(sign_job(&buyer, &d, dr).unwrap())
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), Some(codes::OVERSIZED_REQUEST), "{e}");
    let small = sign_job(&buyer, &d, draft(2, vec![Prompt::Text("x".into())])).unwrap();
    c.submit_job(small).await.unwrap();
    run.stop().await;
}

/// Sends request headers declaring `len` body bytes and only part of the body, keeping the
/// connection open: what a slow-loris client holding memory does.
async fn hold_body(addr: std::net::SocketAddr, len: usize) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

async fn post(addr: std::net::SocketAddr, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(req.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out).to_string();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_request_bodies_and_connections_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = Arc::new(TestDoubleL1::default());
    let mut cfg = config(dir.path());
    cfg.limits.max_request_bytes = 64 * 1024;
    cfg.limits.max_inflight_bytes = 160 * 1024;
    cfg.limits.max_connections = 6;
    let run = verinfer_sequencer::start(cfg, l1.clone()).await.unwrap();
    let domain_call = r#"{"jsonrpc":"2.0","id":1,"method":"verinfer_domain","params":[]}"#;
    assert_eq!(post(run.addr, domain_call).await.0, 200);

    // Two clients each hold a 64 KiB body open: 128 of 160 KiB are reserved. A third large
    // body is refused at once with the typed "busy" error, without being read; small calls
    // still go through.
    let h1 = hold_body(run.addr, 64 * 1024).await;
    let h2 = hold_body(run.addr, 64 * 1024).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"verinfer_domain","params":[],"pad":"{}"}}"#,
        "p".repeat(60 * 1024)
    );
    let (status, body) = post(run.addr, &big).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&codes::BUSY.to_string()), "{body}");
    assert_eq!(post(run.addr, domain_call).await.0, 200);
    drop((h1, h2));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = post(run.addr, &big).await;
    assert_ne!(status, 503, "budget released once the holders left: {body}");

    // Connections: 6 at most. With 6 held open, a 7th is turned away (HTTP 429).
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(hold_body(run.addr, 16).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(post(run.addr, domain_call).await.0, 429);
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(post(run.addr, domain_call).await.0, 200);
    run.stop().await;
}
