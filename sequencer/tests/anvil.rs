//! The sequencer against a real L1: anvil with the `l1-bridge` contracts.
//!
//! - a job runs end to end: intake, a worker over WebSocket, a batch posted to the inbox with
//!   the buyer charged exactly what the sequencer reports, confirmation, an L1 reorg that drops
//!   the posting (anvil snapshot/revert) after which the batch is posted again and charged once,
//!   and finalization after the challenge window;
//! - the sequencer process is killed with SIGKILL while jobs are coming in and while batches
//!   are being posted, restarted each time, and at the end every acknowledged job is on L1
//!   with exactly its receipts, charged once.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::providers::Provider;
use alloy_primitives::{B256, U256};
use common::chain::{free_port, setup, Chain, ESCROW, PRICE};
use verinfer_l1::bindings::BatchInbox;
use verinfer_primitives::job::{domain, Prompt};
use verinfer_rpc::client;
use verinfer_rpc::codes;
use verinfer_rpc::error_code;
use verinfer_rpc::sign::{sign_job, JobDraft};
use verinfer_rpc::types::{BatchState, JobState, SubmitJobRequest};
use verinfer_rpc::VerinferApiClient;
use verinfer_sequencer::alloy_l1::AlloyL1;

fn draft(chain: &Chain, nonce: u64, prompts: usize) -> JobDraft {
    JobDraft {
        sku_id: chain.sku,
        prompts: (0..prompts)
            .map(|i| Prompt::Text(format!("prompt {nonce}/{i}")))
            .collect(),
        max_new_tokens: 4,
        max_price: U256::from(1_000_000_000u64),
        nonce,
    }
}

async fn wait_state(
    c: &impl VerinferApiClient,
    id: B256,
    want: JobState,
    secs: u64,
) -> verinfer_rpc::types::JobInfo {
    let start = Instant::now();
    loop {
        if let Ok(j) = c.get_job(id).await {
            if j.state == want {
                return j;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "job {id} did not reach {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_confirms_survives_reorg_and_finalizes() {
    let chain = setup(30).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = chain.config("127.0.0.1:0".parse().unwrap(), dir.path(), "UNUSED");
    let l1 = AlloyL1::connect(&cfg.l1, &chain.poster.to_bytes().to_string()).unwrap();
    let run = verinfer_sequencer::start(cfg, Arc::new(l1)).await.unwrap();
    let d = domain(chain.chain_id, chain.d.batch_inbox);
    let worker = tokio::spawn(common::worker::run(
        format!("ws://{}", run.addr),
        chain.worker.clone(),
        d.clone(),
        chain.sku,
    ));
    let c = client::http(&format!("http://{}", run.addr)).unwrap();
    assert_eq!(
        c.skus().await.unwrap()[0].price_per_token,
        U256::from(PRICE)
    );

    let snapshot: U256 = chain
        .owner_p
        .raw_request("evm_snapshot".into(), ())
        .await
        .unwrap();
    let req = sign_job(&chain.buyer, &d, draft(&chain, 1, 3)).unwrap();
    let id = c.submit_job(req).await.unwrap().job_id;
    let info = wait_state(&c, id, JobState::Confirmed, 30).await;
    let charged = info.charged.unwrap();
    assert!(charged > U256::ZERO);
    let inbox = BatchInbox::new(chain.d.batch_inbox, chain.owner_p.clone());
    assert_eq!(inbox.batchCount().call().await.unwrap(), U256::from(1u64));
    assert_eq!(
        U256::from(inbox.getJob(id).call().await.unwrap().charged),
        charged
    );
    assert_eq!(chain.escrow().await, U256::from(ESCROW) - charged);
    let before = c.get_batch(0).await.unwrap();
    let access = verinfer_rpc::sign::sign_results_access(&chain.buyer, &d, id).unwrap();
    let results = c.get_results(id, Some(access)).await.unwrap();
    assert_eq!(results.finality, verinfer_rpc::types::Finality::OnL1);
    assert_eq!(results.completions.len(), 3);
    assert!(results.receipts.iter().all(|r| r
        .batch
        .as_ref()
        .is_some_and(|b| b.receipts_root == before.receipts_root)));
    assert_eq!(
        inbox
            .getBatch(U256::ZERO)
            .call()
            .await
            .unwrap()
            .receiptsRoot,
        before.receipts_root
    );

    // Reorg: the chain goes back to before the posting and grows past its block.
    let _: bool = chain
        .owner_p
        .raw_request("evm_revert".into(), (snapshot,))
        .await
        .unwrap();
    for _ in 0..3 {
        let _: serde_json::Value = chain
            .owner_p
            .raw_request("evm_mine".into(), ())
            .await
            .unwrap();
    }
    assert_eq!(
        inbox.batchCount().call().await.unwrap(),
        U256::ZERO,
        "the posting is gone"
    );
    let start = Instant::now();
    loop {
        let b = c.get_batch(0).await.unwrap();
        if b.l1_block.is_some() && b.l1_tx != before.l1_tx && b.state == BatchState::Confirmed {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "batch not re-posted after the reorg: {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(inbox.batchCount().call().await.unwrap(), U256::from(1u64));
    assert_eq!(
        chain.escrow().await,
        U256::from(ESCROW) - charged,
        "charged once on the new chain"
    );
    assert_eq!(
        run.sequencer
            .metrics()
            .l1_reorgs
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // Past the challenge window the sequencer finalizes its batch.
    let _: serde_json::Value = chain
        .owner_p
        .raw_request("evm_increaseTime".into(), (60u64,))
        .await
        .unwrap();
    let _: serde_json::Value = chain
        .owner_p
        .raw_request("evm_mine".into(), ())
        .await
        .unwrap();
    wait_state(&c, id, JobState::Finalized, 30).await;
    assert!(inbox.getBatch(U256::ZERO).call().await.unwrap().finalized);
    worker.abort();
    run.stop().await;
}

/// The sequencer binary as a child process.
struct Seq {
    child: Child,
}

impl Seq {
    fn spawn(config: &std::path::Path, key: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_verinfer-sequencer"))
            .arg("--config")
            .arg(config)
            .env("TEST_POSTER_KEY", key)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("listening on"),
            "sequencer did not start: {line:?}"
        );
        Self { child }
    }

    /// SIGKILL: no shutdown code runs.
    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// Submits `req`; `Some(id)` when the sequencer acknowledged it (now or in an earlier attempt
/// whose answer was lost to a kill, seen as a replayed nonce of the same job).
async fn submit(c: &impl VerinferApiClient, req: &SubmitJobRequest, id: B256) -> Option<B256> {
    match c.submit_job(req.clone()).await {
        Ok(r) => Some(r.job_id),
        Err(e) if error_code(&e) == Some(codes::REPLAYED_NONCE) => {
            // Only a job that is really stored counts.
            c.get_job(id).await.ok().map(|j| j.job_id)
        }
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_loses_no_acknowledged_job_and_charges_once() {
    let chain = setup(3600).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cfg = chain.config(addr, dir.path(), "TEST_POSTER_KEY");
    let toml = format!(
        r#"listen = "{addr}"
data_dir = "{data}"
[l1]
rpc_url = "{rpc}"
batch_inbox = "{inbox}"
stake_bridge = "{bridge}"
sku_registry = "{reg}"
key_env = "TEST_POSTER_KEY"
confirmations = 1
poll_interval_ms = 100
[[skus]]
id = "{sku}"
name = "anvil-sku"
max_context = 256
[limits]
max_prompts_per_job = 64
[sharding]
max_prompts = 2
max_tokens = 10000
[workers]
min_stake = "0x1"
shard_timeout_ms = 1500
tick_ms = 20
[batching]
max_jobs = 3
interval_ms = 150
"#,
        data = cfg.data_dir.display(),
        rpc = cfg.l1.rpc_url,
        inbox = cfg.l1.batch_inbox,
        bridge = cfg.l1.stake_bridge,
        reg = cfg.l1.sku_registry,
        sku = chain.sku,
    );
    let cfg_path = dir.path().join("sequencer.toml");
    std::fs::write(&cfg_path, toml).unwrap();
    let key = chain.poster.to_bytes().to_string();
    let d = domain(chain.chain_id, chain.d.batch_inbox);
    let worker = tokio::spawn(common::worker::run(
        format!("ws://{addr}"),
        chain.worker.clone(),
        d.clone(),
        chain.sku,
    ));
    let c = client::http(&format!("http://{addr}")).unwrap();
    let inbox = BatchInbox::new(chain.d.batch_inbox, chain.owner_p.clone());

    let jobs: Vec<(SubmitJobRequest, B256)> = (0..24u64)
        .map(|n| {
            let r = sign_job(&chain.buyer, &d, draft(&chain, n, 1 + (n % 3) as usize)).unwrap();
            let id = r.job.id(&d);
            (r, id)
        })
        .collect();
    let mut acked: HashSet<B256> = HashSet::new();
    let mut seq = Seq::spawn(&cfg_path, &key);
    let mut kills = 0;
    for (i, (req, id)) in jobs.iter().enumerate() {
        if let Some(got) = submit(&c, req, *id).await {
            assert_eq!(got, *id);
            acked.insert(got);
        }
        // Kill 1: in the middle of intake. Kill 2: once batches are landing on L1, with more
        // jobs still being worked on and batched.
        let batches = inbox.batchCount().call().await.unwrap();
        if (i == 7 && kills == 0) || (kills == 1 && batches >= U256::from(1u64) && i >= 12) {
            seq.kill9();
            kills += 1;
            // Every job acknowledged so far must be there after the restart.
            seq = Seq::spawn(&cfg_path, &key);
            for id in &acked {
                c.get_job(*id)
                    .await
                    .unwrap_or_else(|e| panic!("acknowledged job {id} lost after kill -9: {e}"));
            }
        }
        if kills == 1 && i >= 12 {
            // Give the worker and batcher time so that kill 2 lands while batches post. Shards
            // wait for the block after their job's acceptance (the assignment seed), so the
            // first batch can take a few one-second blocks: wait for it, bounded.
            let deadline = Instant::now() + Duration::from_secs(60);
            while inbox.batchCount().call().await.unwrap() == U256::ZERO {
                assert!(Instant::now() < deadline, "no batch reached L1 within 60 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(kills, 2, "both kills happened");
    // Jobs whose answer was lost to a kill: submit again until acknowledged (same nonce).
    for (req, id) in &jobs {
        if !acked.contains(id) {
            if let Some(got) = submit(&c, req, *id).await {
                acked.insert(got);
            }
        }
    }
    assert_eq!(acked.len(), jobs.len());
    // Kill 3: the moment another batch lands on L1, while the rest are still being batched.
    let seen = inbox.batchCount().call().await.unwrap();
    let start = Instant::now();
    while inbox.batchCount().call().await.unwrap() == seen
        && start.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seq.kill9();
    kills += 1;
    seq = Seq::spawn(&cfg_path, &key);
    assert_eq!(kills, 3);

    // Everything reaches L1.
    let mut charged = U256::ZERO;
    let mut shards_total = HashMap::new();
    for (_, id) in &jobs {
        let j = wait_state(&c, *id, JobState::Confirmed, 90).await;
        let on_l1 = inbox.getJob(*id).call().await.unwrap();
        assert_eq!(on_l1.buyer, chain.buyer.address(), "job {id} on L1");
        assert_eq!(
            U256::from(on_l1.charged),
            j.charged.unwrap(),
            "job {id} charged as reported"
        );
        charged += j.charged.unwrap();
        shards_total.insert(*id, j.shards_total);
    }
    assert_eq!(
        chain.escrow().await,
        U256::from(ESCROW) - charged,
        "each job charged exactly once"
    );
    // Exactly one ReceiptPosted per shard: nothing executed or posted twice.
    let logs = inbox
        .ReceiptPosted_filter()
        .from_block(0)
        .query()
        .await
        .unwrap();
    let mut per_job: HashMap<B256, u32> = HashMap::new();
    for (ev, _) in &logs {
        *per_job.entry(ev.jobId).or_default() += 1;
    }
    assert_eq!(per_job, shards_total);
    worker.abort();
    seq.kill9();
}
