//! `verinfer watch` as a real child process against anvil with the real contracts and real
//! batches (honest engine receipts and cheating ones):
//!
//! - reorgs made with `evm_snapshot`/`evm_revert` are followed: a batch replaced in the new chain
//!   is re-read and audited with its new receipts, one that left the chain is dropped;
//! - killed with SIGKILL at random points (≥ 5) while batches keep coming, and restarted each
//!   time, it ends with exactly one recorded audit per posted receipt (none lost, none twice),
//!   the right verdict for each, and exactly one dispute opened on L1 per cheating receipt;
//!   the cheating workers stay silent and the watcher's game player claims each timeout and
//!   withdraws.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{keccak256, Bytes, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use verinfer_dispute::registration::{sku_fields, sku_shape};
use verinfer_l1::bindings::{BatchInbox, DisputeGame, SkuRegistry, StakeBridge};
use verinfer_l1::{deploy, job_digest, receipt_digest, DeployConfig, Deployment, JobRequest};
use verinfer_primitives::job::{encode_inputs, Prompt};
use verinfer_primitives::Receipt;
use verinfer_prover::{sku, Backend, BuildOptions, Engine, Shard, Sku, SynthSpec};

struct World {
    anvil: AnvilInstance,
    d: Deployment,
    sku: Arc<Sku>,
    sku_file: PathBuf,
    chain_id: u64,
    seq: DynProvider,
    seq_key: PrivateKeySigner,
    buyer: PrivateKeySigner,
    worker: PrivateKeySigner,
    watcher_key: PrivateKeySigner,
    nonce: u64,
    _dir: tempfile::TempDir,
}

fn connect(url: &str, k: &PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .wallet(EthereumWallet::from(k.clone()))
        .connect_http(url.parse().unwrap())
        .erased()
}

async fn ok<N: alloy::network::Network>(
    p: Result<alloy::providers::PendingTransactionBuilder<N>, alloy::contract::Error>,
) {
    use alloy::network::ReceiptResponse;
    assert!(p.unwrap().get_receipt().await.unwrap().status());
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    SynthSpec::tiny_llama().write(&model).unwrap();
    let sku_file = dir.path().join("tiny.sku");
    let sku = Arc::new(sku::build_file(&model, &sku_file, &BuildOptions { max_seq: 32 }).unwrap());
    let anvil = Anvil::new().try_spawn().unwrap();
    let keys: Vec<PrivateKeySigner> = anvil.keys()[..5].iter().cloned().map(Into::into).collect();
    let url = anvil.endpoint();
    let owner = connect(&url, &keys[0]);
    let chain_id = owner.get_chain_id().await.unwrap();
    let deployer = ProviderBuilder::new()
        .wallet(EthereumWallet::from(keys[0].clone()))
        .connect_http(url.parse().unwrap());
    let d = deploy(
        deployer,
        &DeployConfig {
            sequencer: keys[1].address(),
            ..DeployConfig::default()
        },
    )
    .await
    .unwrap();
    let reg = SkuRegistry::new(d.sku_registry, owner.clone());
    ok(reg.registerSku(sku.id(), sku_fields(&sku, 1)).send().await).await;
    ok(reg.setShape(sku.id(), sku_shape(&sku)).send().await).await;
    let eth = U256::from(10u64).pow(U256::from(18u64));
    let bw = StakeBridge::new(d.stake_bridge, connect(&url, &keys[3]));
    ok(bw
        .depositStake(1)
        .value(eth * U256::from(4u64))
        .send()
        .await)
    .await;
    ok(bw.setSku(sku.id(), true).send().await).await;
    let bb = StakeBridge::new(d.stake_bridge, connect(&url, &keys[2]));
    ok(bb.depositEscrow().value(eth).send().await).await;
    World {
        seq: connect(&url, &keys[1]),
        seq_key: keys[1].clone(),
        buyer: keys[2].clone(),
        worker: keys[3].clone(),
        watcher_key: keys[4].clone(),
        anvil,
        d,
        sku,
        sku_file,
        chain_id,
        nonce: 0,
        _dir: dir,
    }
}

impl World {
    /// Posts one batch of `jobs` one-shard jobs; the receipts are the engine's, except that
    /// those with `cheat` set carry a wrong trace root. Returns the receipts' hashes.
    async fn post(&mut self, jobs: &[bool]) -> Vec<(B256, bool)> {
        let mut new_jobs = Vec::new();
        let (mut receipts, mut sigs, mut out) = (Vec::new(), Vec::new(), Vec::new());
        for &cheat in jobs {
            self.nonce += 1;
            let n = self.nonce as u32;
            let prompts: Vec<Vec<u32>> = vec![
                (0..4).map(|i| (n * 13 + i * 7) % 250).collect(),
                (0..3).map(|i| (n * 29 + i * 5 + 1) % 250).collect(),
            ];
            let shard = Shard {
                prompts: prompts.clone(),
                max_new_tokens: 2,
            };
            let inputs = encode_inputs(
                &prompts
                    .iter()
                    .cloned()
                    .map(Prompt::Tokens)
                    .collect::<Vec<_>>(),
            );
            let req = JobRequest {
                buyer: self.buyer.address(),
                skuId: self.sku.id(),
                inputsHash: keccak256(&inputs),
                maxNewTokens: 2,
                maxPrice: U256::from(10u64).pow(U256::from(18u64)),
                nonce: self.nonce,
            };
            let job_id = job_digest(&req, self.chain_id, self.d.batch_inbox);
            let run = Engine::new(self.sku.clone(), Backend::Cpu)
                .unwrap()
                .run(&shard)
                .unwrap();
            let mut r: Receipt = run.receipt(job_id, 0, self.sku.id(), self.worker.address());
            if cheat {
                r.traceRoot = keccak256(r.traceRoot);
            }
            let rs = self
                .worker
                .sign_hash_sync(&receipt_digest(&r, self.chain_id, self.d.batch_inbox))
                .unwrap();
            let js = self.buyer.sign_hash_sync(&job_id).unwrap();
            new_jobs.push(BatchInbox::SignedJob {
                request: req.into(),
                signature: Bytes::from(js.as_bytes().to_vec()),
                inputs: inputs.into(),
            });
            out.push((r.hash(), cheat));
            receipts.push(r.into());
            sigs.push(Bytes::from(rs.as_bytes().to_vec()));
        }
        let inbox = BatchInbox::new(self.d.batch_inbox, self.seq.clone());
        ok(inbox.postBatch(new_jobs, receipts, sigs).send().await).await;
        out
    }

    async fn mine(&self, n: u64) {
        let _: serde_json::Value = self
            .seq
            .raw_request("anvil_mine".into(), (U256::from(n),))
            .await
            .unwrap();
    }

    async fn snapshot(&self) -> U256 {
        self.seq
            .raw_request("evm_snapshot".into(), ())
            .await
            .unwrap()
    }

    /// Reverts to snapshot `id`. The sequencer's provider is replaced: its block heartbeat
    /// (which resolves pending transactions) has seen blocks the reverted chain does not have
    /// and would never report a receipt again.
    async fn revert(&mut self, id: U256) {
        let ok: bool = self
            .seq
            .raw_request("evm_revert".into(), (id,))
            .await
            .unwrap();
        assert!(ok);
        self.seq = connect(&self.anvil.endpoint(), &self.seq_key);
    }

    fn spawn(&self, data: &Path) -> Child {
        let mut c = Command::new(env!("CARGO_BIN_EXE_verinfer"))
            .args(["watch", "--l1", &self.anvil.endpoint()])
            .args(["--inbox", &self.d.batch_inbox.to_string()])
            .args(["--game", &self.d.dispute_game.to_string()])
            .args(["--key-env", "WATCH_TEST_KEY"])
            .arg("--sku")
            .arg(&self.sku_file)
            .arg("--data-dir")
            .arg(data)
            .args(["--confirmations", "1", "--poll-ms", "50", "--rows", "2"])
            .env("WATCH_TEST_KEY", self.watcher_key.to_bytes().to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(c.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("watching"), "watcher said {line:?}");
        c
    }
}

/// `verinfer watch status --json` (the store when free, else the daemon's snapshot).
fn status(data: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_verinfer"))
        .args(["watch", "status", "--json", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Audits recorded as done, by receipt hash, with their verdict tag.
fn done(s: &serde_json::Value) -> Vec<(B256, String)> {
    s["audits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "done")
        .map(|a| {
            (
                a["receiptHash"].as_str().unwrap().parse().unwrap(),
                a["verdict"]["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn wait_until(data: &Path, secs: u64, f: impl Fn(&serde_json::Value) -> bool) {
    let start = Instant::now();
    loop {
        if data.join("status.json").exists() {
            let s = status(data);
            if f(&s) {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out; last status {}",
            status(data)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn kill(mut c: Child) {
    // SIGKILL: no chance to clean up.
    c.kill().unwrap();
    c.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_reorgs_made_with_snapshot_and_revert() {
    let mut w = world().await;
    let data = tempfile::tempdir().unwrap();
    let child = w.spawn(data.path());

    // Batch 0 (honest) survives; batch 1 is posted, audited, then reorged away and replaced
    // by another batch 1 (a cheat) in the new chain; batch 2 is reorged away for good.
    let a = w.post(&[false]).await;
    w.mine(1).await;
    let snap = w.snapshot().await;
    let b = w.post(&[false]).await;
    w.mine(2).await;
    wait_until(data.path(), 60, |s| done(s).len() == 2).await;
    w.revert(snap).await;
    let c = w.post(&[true]).await;
    w.mine(3).await;
    wait_until(data.path(), 60, |s| {
        let d = done(s);
        d.iter().any(|(h, v)| *h == c[0].0 && v == "trace-mismatch")
    })
    .await;
    let s = status(data.path());
    let d = done(&s);
    assert_eq!(d.len(), 2, "{s}");
    assert!(d.contains(&(a[0].0, "pass".into())), "{s}");
    assert!(
        !d.iter().any(|(h, _)| *h == b[0].0),
        "the reorged receipt's audit is gone"
    );
    let batches = s["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 2);
    assert!(batches.iter().all(|b| b["state"] == "live"));

    // A batch that leaves the chain and is not replaced is dropped.
    let snap = w.snapshot().await;
    w.post(&[false]).await;
    w.mine(2).await;
    wait_until(data.path(), 60, |s| {
        s["batches"].as_array().unwrap().len() == 3
    })
    .await;
    w.revert(snap).await;
    w.mine(4).await;
    wait_until(data.path(), 60, |s| s["batches"][2]["state"] == "dropped").await;
    kill(child);
}

/// xorshift64*, seeded from the clock (printed, to replay a failure).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_duplicates_no_audit() {
    let mut w = world().await;
    let data = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("kill schedule seed {seed}");
    let mut rng = Rng(seed);
    let mut posted = Vec::new();
    let mut child = w.spawn(data.path());
    let plan: [&[bool]; 6] = [
        &[false, false],
        &[true],
        &[false],
        &[false, true, false],
        &[false],
        &[false, false],
    ];
    for (i, jobs) in plan.iter().enumerate() {
        posted.extend(w.post(jobs).await);
        w.mine(1).await;
        // Kill somewhere in the next 0–700 ms: before, during or after the audits.
        tokio::time::sleep(Duration::from_millis(rng.next() % 700)).await;
        kill(child);
        println!("killed after batch {i}");
        child = w.spawn(data.path());
    }
    w.mine(2).await;
    wait_until(data.path(), 120, |s| done(s).len() == posted.len()).await;
    // Let it run a few more rounds: nothing may be audited twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill(child);
    let s = status(data.path());
    let d = done(&s);
    assert_eq!(d.len(), posted.len(), "{s}");
    for (h, cheat) in &posted {
        let want = if *cheat { "trace-mismatch" } else { "pass" };
        assert!(d.contains(&(*h, want.to_string())), "{h}: {s}");
    }
    assert_eq!(
        s["logLength"].as_u64().unwrap() as usize,
        posted.len(),
        "each audit recorded exactly once: {s}"
    );
    // One dispute per cheating receipt, opened once on L1.
    let game = DisputeGame::new(w.d.dispute_game, w.seq.clone());
    let cheats = posted.iter().filter(|p| p.1).count();
    assert_eq!(
        game.gameCount().call().await.unwrap(),
        U256::from(cheats),
        "{s}"
    );
    for a in s["audits"].as_array().unwrap() {
        if a["verdict"]["verdict"] == "trace-mismatch" {
            assert!(a["dispute"]["gameId"].is_u64(), "{a}");
        }
    }

    // The cheating workers stay silent: once their clocks run out the watcher claims the
    // timeouts and withdraws its bond and reward.
    let before = w.seq.get_balance(w.watcher_key.address()).await.unwrap();
    let _: serde_json::Value = w
        .seq
        .raw_request("evm_increaseTime".into(), (U256::from(3601u64),))
        .await
        .unwrap();
    w.mine(1).await;
    let child = w.spawn(data.path());
    wait_until(data.path(), 60, |s| {
        s["audits"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| {
                a["dispute"]["state"]
                    .as_str()
                    .is_some_and(|x| x.starts_with("won (reason 3)"))
            })
            .count()
            == cheats
    })
    .await;
    kill(child);
    for i in 0..cheats {
        let g = game.getGame(U256::from(i)).call().await.unwrap();
        assert!(g.challengerWon && g.reason == 3, "defender timeout");
    }
    let after = w.seq.get_balance(w.watcher_key.address()).await.unwrap();
    assert!(
        after > before,
        "bonds and rewards came back: {before} -> {after}"
    );
}
