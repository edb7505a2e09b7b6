//! The real `verinfer worker` binary against the real sequencer (`verinfer sequencer`, a child
//! process too) and anvil with the `l1-bridge` contracts, on a synthetic tiny Llama SKU.
//!
//! - `worker_runs_shards_serves_data_and_refuses_bad_input`: receipts accepted by the sequencer
//!   equal an independent engine run; the data API serves rows and whole tensors that check
//!   against the signed trace root; bad shards are refused without a receipt; bounds and typed
//!   errors; a restarted worker still answers, and expires data past its retention.
//! - `worker_survives_sigkill_at_every_stage_and_sequencer_restarts`: SIGKILL right after
//!   registering, while a shard runs, between signing and submitting, right after a submission,
//!   while the sequencer is down, and at a random moment; the sequencer killed and restarted
//!   under a live worker. Every shard ends with exactly one accepted receipt, equal to the one
//!   the worker stored and to an independent run, posted once on L1.
//! - `worker_binary_defends_a_false_challenge_to_the_end`: `--game`: a challenger that re-ran the
//!   shard with other prompts disputes the posted receipt; the worker binary finds the game,
//!   bisects, proves the named entry and withdraws, while the test drives the challenger player.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Bytes, B256, U256};
use verinfer_l1::bindings::{BatchInbox, SkuRegistry, StakeBridge};
use verinfer_l1::{deploy, DeployConfig, Deployment};
use verinfer_primitives::job::{domain, Prompt};
use verinfer_primitives::merkle::row_leaf;
use verinfer_primitives::sparse::sparse_root;
use verinfer_prover::{
    sku, Backend, BuildOptions, Engine, LayerOp, Shard, Sku, StepKind, SynthSpec,
};
use verinfer_rpc::client::{self, HttpClient};
use verinfer_rpc::sign::{sign_job, JobDraft};
use verinfer_rpc::types::{JobResults, JobState, TensorRowsRequest};
use verinfer_rpc::worker_api::WorkerDataApiClient;
use verinfer_rpc::worker_api::{verify_chunk, verify_rows, worker_codes, TensorChunkRequest};
use verinfer_rpc::{error_code, VerinferApiClient};

const MAX_SEQ: usize = 64;
const PRICE: u128 = 1_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (SIGKILL) and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// L1 and the SKU

struct World {
    _anvil: Proc,
    rpc: String,
    owner_p: DynProvider,
    poster: PrivateKeySigner,
    buyer: PrivateKeySigner,
    worker: PrivateKeySigner,
    d: Deployment,
    chain_id: u64,
    sku_path: PathBuf,
    sku: Arc<Sku>,
    dir: tempfile::TempDir,
}

fn connect(url: &str, key: &PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .wallet(EthereumWallet::from(key.clone()))
        .connect_http(url.parse().unwrap())
        .erased()
}

/// Sends a contract call and asserts it succeeded.
macro_rules! ok {
    ($call:expr) => {
        assert!($call
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap()
            .status())
    };
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    // The SKU: a synthetic tiny Llama, quantized to a real SKU file.
    let model = dir.path().join("model");
    SynthSpec::tiny_llama().write(&model).unwrap();
    let sku_path = dir.path().join("tiny.sku");
    sku::build_file(&model, &sku_path, &BuildOptions { max_seq: MAX_SEQ }).unwrap();
    let sku = Arc::new(Sku::load(&sku_path).unwrap());

    let port = free_port();
    let child = Command::new("anvil")
        .args([
            "--port",
            &port.to_string(),
            "--host",
            "127.0.0.1",
            "--silent",
            // Interval mining: a job's assignment seed is the hash of the first block after
            // its acceptance, so blocks must come without transactions too.
            "--block-time",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("anvil not found on PATH: source ops/env.sh");
    let anvil = Proc(child);
    let rpc = format!("http://127.0.0.1:{port}");
    let probe = ProviderBuilder::new().connect_http(rpc.parse().unwrap());
    let start = Instant::now();
    while probe.get_block_number().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "anvil did not start"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (owner, poster, buyer, worker) = (
        PrivateKeySigner::random(),
        PrivateKeySigner::random(),
        PrivateKeySigner::random(),
        PrivateKeySigner::random(),
    );
    let owner_p = connect(&rpc, &owner);
    let thousand_eth = U256::from(1000u64) * U256::from(10u64).pow(U256::from(18u64));
    for a in [&owner, &poster, &buyer, &worker] {
        let _: serde_json::Value = owner_p
            .raw_request("anvil_setBalance".into(), (a.address(), thousand_eth))
            .await
            .unwrap();
    }
    let chain_id = owner_p.get_chain_id().await.unwrap();
    let cfg = DeployConfig {
        sequencer: poster.address(),
        challenge_window: 3600,
        ..DeployConfig::default()
    };
    let deployer = ProviderBuilder::new()
        .wallet(EthereumWallet::from(owner.clone()))
        .connect_http(rpc.parse().unwrap());
    let d = deploy(deployer, &cfg).await.unwrap();
    // The SKU as the L1 must know it: the id and fields come from the SKU file itself.
    let reg = SkuRegistry::new(d.sku_registry, owner_p.clone());
    let fields = verinfer_dispute::registration::sku_fields(&sku, PRICE);
    ok!(reg.registerSku(sku.id(), fields));
    // The shape lets games be opened on the SKU's receipts.
    ok!(reg.setShape(sku.id(), verinfer_dispute::registration::sku_shape(&sku)));
    let wb = StakeBridge::new(d.stake_bridge, connect(&rpc, &worker));
    let two_eth = U256::from(2u64) * U256::from(10u64).pow(U256::from(18u64));
    ok!(wb.depositStake(1).value(two_eth));
    ok!(wb.setSku(sku.id(), true));
    let bb = StakeBridge::new(d.stake_bridge, connect(&rpc, &buyer));
    ok!(bb
        .depositEscrow()
        .value(U256::from(10u64).pow(U256::from(18u64))));
    World {
        _anvil: anvil,
        rpc,
        owner_p,
        poster,
        buyer,
        worker,
        d,
        chain_id,
        sku_path,
        sku,
        dir,
    }
}

// ---------------------------------------------------------------------------------------------
// The two daemons

struct Sequencer {
    proc: Option<Proc>,
    config: PathBuf,
    key: String,
    addr: String,
}

impl Sequencer {
    fn new(w: &World) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let data = w.dir.path().join("sequencer");
        // max_context above the SKU's max_seq on purpose: the worker must refuse what the
        // sequencer lets through.
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
name = "tiny"
max_context = 256
[limits]
max_prompts_per_job = 64
[sharding]
max_prompts = 2
max_tokens = 10000
[workers]
min_stake = "0x1"
shard_timeout_ms = 8000
tick_ms = 20
[batching]
max_jobs = 4
interval_ms = 150
"#,
            data = data.display(),
            rpc = w.rpc,
            inbox = w.d.batch_inbox,
            bridge = w.d.stake_bridge,
            reg = w.d.sku_registry,
            sku = w.sku.id(),
        );
        let config = w.dir.path().join("sequencer.toml");
        std::fs::write(&config, toml).unwrap();
        let mut s = Sequencer {
            proc: None,
            config,
            key: w.poster.to_bytes().to_string(),
            addr,
        };
        s.start();
        s
    }

    fn start(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_verinfer"))
            .arg("sequencer")
            .arg("--config")
            .arg(&self.config)
            .env("TEST_POSTER_KEY", &self.key)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("listening on"), "sequencer: {line:?}");
        self.proc = Some(Proc(child));
    }

    fn kill9(&mut self) {
        self.proc = None;
    }

    fn http(&self) -> HttpClient {
        client::http(&format!("http://{}", self.addr)).unwrap()
    }
}

/// The worker binary, its log lines collected (ANSI stripped) from stdout and stderr.
struct Worker {
    proc: Option<Proc>,
    lines: Arc<Mutex<Vec<String>>>,
    data_dir: PathBuf,
    data_url: String,
    args: Vec<String>,
    key: String,
}

impl Worker {
    fn new(w: &World, seq: &Sequencer, name: &str, extra: &[&str]) -> Self {
        let data_dir = w.dir.path().join(name);
        let mut args: Vec<String> = [
            "worker",
            "--sequencer",
            &format!("ws://{}", seq.addr),
            "--l1",
            &w.rpc,
            "--key-env",
            "TEST_WORKER_KEY",
            "--sku",
            w.sku_path.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--threads",
            "1",
            "--data-listen",
            &format!("127.0.0.1:{}", free_port()),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut me = Worker {
            proc: None,
            lines: Arc::new(Mutex::new(Vec::new())),
            data_dir,
            data_url: String::new(),
            args,
            key: w.worker.to_bytes().to_string(),
        };
        me.start();
        me
    }

    fn start(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_verinfer"))
            .args(&self.args)
            .env("TEST_WORKER_KEY", &self.key)
            .env("RUST_LOG", "info,jsonrpsee=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let addr = first
            .trim()
            .strip_prefix("data api on ")
            .unwrap_or_else(|| panic!("worker did not start: {first:?}"))
            .to_owned();
        self.data_url = format!("http://{addr}");
        let err = BufReader::new(child.stderr.take().unwrap());
        for (r, tag) in [
            (Box::new(out) as Box<dyn BufRead + Send>, "out"),
            (Box::new(err), "err"),
        ] {
            let lines = self.lines.clone();
            std::thread::spawn(move || {
                for l in r.lines() {
                    let Ok(l) = l else { break };
                    let l = strip_ansi(&l);
                    eprintln!("[worker {tag}] {l}");
                    lines.lock().unwrap().push(l);
                }
            });
        }
        self.proc = Some(Proc(child));
    }

    fn kill9(&mut self) {
        self.proc = None;
    }

    /// Starts it and waits until this process has registered and subscribed.
    fn start_registered(&mut self) {
        let m = self.mark();
        self.start();
        self.wait(m, &["registered and subscribed"], 60);
    }

    fn mark(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Waits for a line containing every one of `pats`, at or after line `from`.
    fn wait(&self, from: usize, pats: &[&str], secs: u64) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self.lines.lock().unwrap()[from..]
                .iter()
                .find(|l| pats.iter().all(|p| l.contains(p)))
            {
                return l.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "worker never logged {pats:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn count(&self, from: usize, pats: &[&str]) -> usize {
        self.lines.lock().unwrap()[from..]
            .iter()
            .filter(|l| pats.iter().all(|p| l.contains(p)))
            .count()
    }

    fn data(&self) -> HttpClient {
        client::http(&self.data_url).unwrap()
    }
}

/// The value of `key=` in a log line.
fn field(line: &str, key: &str) -> String {
    let i = line
        .find(&format!("{key}="))
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    line[i + key.len() + 1..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Jobs

struct Jobs {
    nonce: u64,
    sent: Vec<(B256, Vec<Prompt>)>,
}

impl Jobs {
    async fn submit(&mut self, w: &World, c: &HttpClient, prompts: Vec<Prompt>, n: u64) -> B256 {
        let d = domain(w.chain_id, w.d.batch_inbox);
        let req = sign_job(
            &w.buyer,
            &d,
            JobDraft {
                sku_id: w.sku.id(),
                prompts: prompts.clone(),
                max_new_tokens: n,
                max_price: U256::from(1_000_000_000u64),
                nonce: self.nonce,
            },
        )
        .unwrap();
        self.nonce += 1;
        let id = c.submit_job(req).await.unwrap().job_id;
        self.sent.push((id, prompts));
        id
    }
}

fn token_prompts(seed: u32, count: usize) -> Vec<Prompt> {
    (0..count)
        .map(|i| {
            let len = 3 + (seed as usize + i) % 5;
            Prompt::Tokens(
                (0..len)
                    .map(|j| 2 + (seed * 31 + (i * 7 + j) as u32 * 13) % 250)
                    .collect(),
            )
        })
        .collect()
}

async fn wait_state(c: &HttpClient, id: B256, want: &[JobState], secs: u64) -> JobState {
    let start = Instant::now();
    loop {
        if let Ok(j) = c.get_job(id).await {
            if want.contains(&j.state) {
                return j.state;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "job {id} did not reach {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every receipt of the job is what an independent run of the same shard gives.
fn check_against_engine(
    engine: &Engine,
    prompts: &[Prompt],
    n: u64,
    res: &JobResults,
    worker: alloy_primitives::Address,
) {
    let mut by_shard: HashMap<u32, Vec<(u32, Vec<u32>)>> = HashMap::new();
    for c in &res.completions {
        let Prompt::Tokens(t) = &prompts[c.prompt_index as usize] else {
            panic!("text prompt completed")
        };
        by_shard
            .entry(c.shard_index)
            .or_default()
            .push((c.prompt_index, t.clone()));
    }
    assert_eq!(by_shard.len(), res.receipts.len());
    for r in &res.receipts {
        let mut ps = by_shard[&r.shard_index].clone();
        ps.sort();
        let shard = Shard {
            prompts: ps.into_iter().map(|(_, t)| t).collect(),
            max_new_tokens: n as usize,
        };
        let out = engine.run(&shard).unwrap();
        assert_eq!(r.receipt.traceRoot, out.trace.trace_root(), "trace root");
        assert_eq!(r.receipt.outputRoot, out.output_root, "output root");
        assert_eq!(r.receipt.stepCount, out.trace.step_count());
        assert_eq!(r.receipt.worker, worker);
    }
}

/// Calls `f` until it is not rate limited.
async fn unlimited<T, F, Fut>(mut f: F) -> Result<T, client::ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, client::ClientError>>,
{
    loop {
        match f().await {
            Err(e) if error_code(&e) == Some(worker_codes::RATE_LIMITED) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            r => return r,
        }
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_runs_shards_serves_data_and_refuses_bad_input() {
    let w = world().await;
    let seq = Sequencer::new(&w);
    let c = seq.http();
    let mut worker = Worker::new(&w, &seq, "worker", &["--requests-per-sec", "20"]);
    worker.wait(0, &["registered"], 60);
    let engine = Engine::new(w.sku.clone(), Backend::Cpu)
        .unwrap()
        .with_threads(1);
    let mut jobs = Jobs {
        nonce: 0,
        sent: vec![],
    };
    let n = 4;
    let good = jobs.submit(&w, &c, token_prompts(1, 3), n).await;
    wait_state(
        &c,
        good,
        &[JobState::Completed, JobState::Batched, JobState::Confirmed],
        120,
    )
    .await;
    let res = results(&w, &c, good).await;
    check_against_engine(&engine, &jobs.sent[0].1, n, &res, w.worker.address());

    // Bad input: refused with a reason, never a receipt, the worker keeps serving.
    let vocab = w.sku.config().vocab as u32;
    let long: Vec<u32> = (0..(MAX_SEQ as u32 - 2)).map(|i| 2 + i % 200).collect();
    for (prompts, reason) in [
        (vec![Prompt::Text("hello".into())], "is text"),
        (vec![Prompt::Tokens(vec![3, vocab + 5])], "vocabulary"),
        (vec![Prompt::Tokens(long)], "max_seq"),
    ] {
        let from = worker.mark();
        let id = jobs.submit(&w, &c, prompts, n).await;
        let line = worker.wait(from, &["shard refused", reason], 60);
        assert!(line.contains(&format!("job={id}")), "{line}");
        let j = c.get_job(id).await.unwrap();
        assert_eq!((j.state, j.shards_done), (JobState::Accepted, 0));
        let e = worker.data().get_receipt(id, 0).await.unwrap_err();
        assert_eq!(error_code(&e), Some(worker_codes::UNKNOWN_RECEIPT));
    }
    // Still alive: another good job completes.
    let again = jobs.submit(&w, &c, token_prompts(2, 2), n).await;
    wait_state(
        &c,
        again,
        &[JobState::Completed, JobState::Batched, JobState::Confirmed],
        120,
    )
    .await;

    // Data availability.
    let da = worker.data();
    let info = da.info().await.unwrap();
    assert_eq!(info.worker, w.worker.address());
    assert_eq!(info.skus, vec![w.sku.id()]);
    let page = unlimited(|| da.list_receipts(None, None)).await.unwrap();
    assert_eq!(page.receipts.len(), res.receipts.len() + 1);
    let sr = &res.receipts[0];
    let mine = unlimited(|| da.get_receipt(good, sr.shard_index))
        .await
        .unwrap();
    assert_eq!(
        (&mine.receipt, &mine.signature),
        (&sr.receipt, &sr.signature)
    );
    assert!(mine.submitted);
    let shard = Shard {
        prompts: mine.prompts.clone(),
        max_new_tokens: n as usize,
    };
    let program = engine.program(&shard);
    // Prefill q of layer 0: a row at every prompt position, none at position len(prompt).
    let q0 = program.step_id(
        0,
        StepKind::Layer {
            layer: 0,
            op: LayerOp::Q,
        },
    );
    let trace_root = sr.receipt.traceRoot;
    let p0 = mine.prompts[0].len();
    let addrs = vec![engine.token_address(0, 0), engine.token_address(0, p0)];
    let rows = unlimited(|| {
        da.tensor_rows(TensorRowsRequest {
            job_id: good,
            shard_index: sr.shard_index,
            step: q0,
            rows: addrs.clone(),
        })
    })
    .await
    .unwrap();
    verify_rows(trace_root, &rows).unwrap();
    assert!(!rows.rows[0].bytes.is_empty());
    assert!(
        rows.rows[1].bytes.is_empty(),
        "no prefill row past the prompt"
    );
    let mut bad = rows.clone();
    let mut b = bad.rows[0].bytes.to_vec();
    b[0] ^= 1;
    bad.rows[0].bytes = Bytes::from(b);
    assert!(verify_rows(trace_root, &bad).is_err());
    assert!(verify_rows(B256::repeat_byte(1), &rows).is_err());

    // Whole tensors in chunks (a GEMM output of the prefill and its input), rebuilt to the
    // committed root.
    let mut gemm_inputs = None;
    for step in [q0, q0 - 1] {
        let mut leaves = Vec::new();
        let mut start = 0;
        let mut chunks = 0;
        loop {
            let ch = unlimited(|| {
                da.tensor_chunk(TensorChunkRequest {
                    job_id: good,
                    shard_index: sr.shard_index,
                    step,
                    start_row: start,
                    max_rows: 3,
                })
            })
            .await
            .unwrap();
            verify_chunk(trace_root, &ch).unwrap();
            chunks += 1;
            for (a, r) in ch.addresses.iter().zip(&ch.rows) {
                leaves.push((*a, row_leaf(r)));
            }
            if step == q0 {
                gemm_inputs = Some(ch.input_steps.clone());
            }
            match ch.next_row {
                Some(nx) => start = nx,
                None => {
                    assert_eq!(leaves.len() as u64, ch.row_count);
                    assert_eq!(sparse_root(leaves.clone()).unwrap(), ch.output_root);
                    break;
                }
            }
        }
        assert!(chunks > 1, "chunked");
    }
    assert!(
        gemm_inputs.is_some_and(|i| i.contains(&(q0 - 1))),
        "q reads the attention norm"
    );

    // Typed errors and bounds.
    let code = |e: client::ClientError| error_code(&e);
    let e = unlimited(|| da.get_receipt(B256::repeat_byte(9), 0))
        .await
        .unwrap_err();
    assert_eq!(code(e), Some(worker_codes::UNKNOWN_RECEIPT));
    let req = |step, rows| TensorRowsRequest {
        job_id: good,
        shard_index: sr.shard_index,
        step,
        rows,
    };
    let e = unlimited(|| da.tensor_rows(req(sr.receipt.stepCount, vec![0])))
        .await
        .unwrap_err();
    assert_eq!(code(e), Some(worker_codes::UNKNOWN_STEP));
    let e = unlimited(|| da.tensor_rows(req(q0, vec![0; 257])))
        .await
        .unwrap_err();
    assert_eq!(code(e), Some(verinfer_rpc::codes::OVERSIZED_REQUEST));
    // Rate: 20/s; a burst of 60 is cut.
    let mut limited = 0;
    for _ in 0..60 {
        if let Err(e) = da.list_receipts(None, Some(1)).await {
            assert_eq!(code(e), Some(worker_codes::RATE_LIMITED));
            limited += 1;
        }
    }
    assert!(limited > 0, "rate limit never hit");

    // Restarted (SIGKILL) with no retention: the receipts are known but expired.
    worker.kill9();
    worker.args.extend(["--retention-secs".into(), "0".into()]);
    worker.start();
    let da = worker.data();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let e = da.get_receipt(good, sr.shard_index).await.unwrap_err();
    assert_eq!(code(e), Some(worker_codes::EXPIRED_RECEIPT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_survives_sigkill_at_every_stage_and_sequencer_restarts() {
    let w = world().await;
    let mut seq = Sequencer::new(&w);
    let c = seq.http();
    let mut worker = Worker::new(&w, &seq, "worker", &[]);
    let mut jobs = Jobs {
        nonce: 0,
        sent: vec![],
    };
    let n = 5;
    let mut kills = Vec::new();

    // 1: right after registering.
    worker.wait(0, &["registered"], 60);
    worker.kill9();
    kills.push("after registering");
    worker.start();

    // 2: while a shard runs.
    let from = worker.mark();
    let first = jobs.submit(&w, &c, token_prompts(3, 4), n).await;
    worker.wait(from, &["shard running"], 60);
    worker.kill9();
    kills.push("while running");
    worker.start();
    wait_state(
        &c,
        first,
        &[JobState::Completed, JobState::Batched, JobState::Confirmed],
        120,
    )
    .await;

    // 3: between signing and submitting (the receipt is on disk, the hold marker keeps it).
    let marker = worker.data_dir.join(verinfer_prover::worker::HOLD_MARKER);
    std::fs::write(&marker, b"").unwrap();
    let from = worker.mark();
    jobs.submit(&w, &c, token_prompts(4, 2), n).await;
    let signed = worker.wait(from, &["shard signed"], 60);
    let held_line = worker.wait(from, &["holding signed receipt"], 60);
    let held_shard = field(&held_line, "shard");
    assert_eq!(field(&signed, "shard"), held_shard);
    let signed_receipt = field(&signed, "receipt");
    worker.kill9();
    kills.push("between signing and submitting");
    let from = worker.mark();
    worker.start();
    let again = worker.wait(from, &["holding signed receipt"], 60);
    assert_eq!(field(&again, "shard"), held_shard);
    assert_eq!(
        worker.count(from, &["shard running", &held_shard]),
        0,
        "a signed shard is re-sent as stored, never run and signed again"
    );
    std::fs::remove_file(&marker).unwrap();
    let sent = worker.wait(from, &["shard submitted", &held_shard], 60);
    assert_eq!(field(&sent, "receipt"), signed_receipt);

    // 4: right after a submission, with more shards queued.
    let from = worker.mark();
    jobs.submit(&w, &c, token_prompts(5, 6), n).await;
    worker.wait(from, &["shard submitted"], 60);
    worker.kill9();
    kills.push("after a submission");
    worker.start_registered();

    // The sequencer dies under a live worker and comes back: the worker registers again.
    let from = worker.mark();
    seq.kill9();
    worker.wait(from, &["sequencer connection lost"], 60);
    seq.start();
    worker.wait(from, &["registered and subscribed"], 60);
    jobs.submit(&w, &c, token_prompts(6, 2), n).await;

    // 5: while the sequencer is down (the worker is in its backoff).
    let from = worker.mark();
    seq.kill9();
    worker.wait(from, &["retrying"], 60);
    worker.kill9();
    kills.push("while the sequencer is down");
    seq.start();
    worker.start();

    // 6: at a random moment in a burst of jobs.
    jobs.submit(&w, &c, token_prompts(7, 3), n).await;
    jobs.submit(&w, &c, token_prompts(8, 4), n).await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let delay = (nanos % 800) as u64;
    eprintln!("random kill after {delay} ms");
    tokio::time::sleep(Duration::from_millis(delay)).await;
    worker.kill9();
    kills.push("random");
    worker.start();
    assert!(kills.len() >= 5);

    // Every job completes and reaches L1; every receipt is the independent run's, equal to
    // what the worker stored, and posted exactly once.
    let engine = Engine::new(w.sku.clone(), Backend::Cpu)
        .unwrap()
        .with_threads(1);
    let da = worker.data();
    let mut shards_total = HashMap::new();
    let mut accepted = Vec::new();
    for (id, prompts) in &jobs.sent {
        wait_state(&c, *id, &[JobState::Confirmed], 180).await;
        let res = results(&w, &c, *id).await;
        check_against_engine(&engine, prompts, n, &res, w.worker.address());
        for r in &res.receipts {
            let mine = unlimited(|| da.get_receipt(*id, r.shard_index))
                .await
                .unwrap();
            assert_eq!(
                mine.receipt, r.receipt,
                "worker's stored receipt is the accepted one"
            );
            assert_eq!(mine.signature, r.signature);
        }
        shards_total.insert(*id, res.receipts.len() as u32);
        accepted.extend(res.receipts.iter().map(|r| r.receipt.hash().to_string()));
    }
    assert!(
        accepted.contains(&signed_receipt),
        "the receipt signed before the kill is the one accepted"
    );
    let inbox = BatchInbox::new(w.d.batch_inbox, w.owner_p.clone());
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
    assert_eq!(per_job, shards_total, "one receipt per shard on L1");
    eprintln!("kill points: {kills:?}");
}

/// The buyer's results for `id` (the sequencer serves them only with the buyer's signature).
async fn results(w: &World, c: &HttpClient, id: B256) -> JobResults {
    let d = domain(w.chain_id, w.d.batch_inbox);
    let access = verinfer_rpc::sign::sign_results_access(&w.buyer, &d, id).unwrap();
    c.get_results(id, Some(access)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_binary_defends_a_false_challenge_to_the_end() {
    use verinfer_dispute::play::{Challenger, Committed, MemLog, Outcome, Player, Role};
    use verinfer_dispute::watch::chain::L1Reader;
    use verinfer_dispute::Opener;
    use verinfer_l1::bindings::DisputeGame;
    use verinfer_primitives::merkle::{hash_leaf, MerkleTree};

    let w = world().await;
    let seq = Sequencer::new(&w);
    let c = seq.http();
    let game = w.d.dispute_game.to_string();
    let worker = Worker::new(
        &w,
        &seq,
        "defender",
        &["--game", &game, "--game-poll-ms", "100"],
    );
    worker.wait(0, &["registered"], 60);
    let mut jobs = Jobs {
        nonce: 0,
        sent: vec![],
    };
    let n = 2;
    let prompts = token_prompts(3, 2);
    let id = jobs.submit(&w, &c, prompts.clone(), n).await;
    wait_state(&c, id, &[JobState::Batched, JobState::Confirmed], 120).await;

    // The posted receipt, its batch and its proof, from L1.
    let l1 = L1Reader::connect(&w.rpc, w.d.batch_inbox).await.unwrap();
    let start = Instant::now();
    let (batch, index) = loop {
        let batches = l1.scan(0, l1.head().await.unwrap()).await.unwrap();
        let found = batches.iter().find_map(|(b, _)| {
            b.receipts
                .iter()
                .position(|e| e.receipt.jobId == id)
                .map(|i| (b.clone(), i))
        });
        if let Some(f) = found {
            break f;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the receipt was never posted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let receipt = batch.receipts[index].receipt.clone();
    let leaves: Vec<B256> = batch
        .receipts
        .iter()
        .map(|e| hash_leaf(&alloy::sol_types::SolValue::abi_encode(&e.receipt)))
        .collect();
    let proof = MerkleTree::from_leaf_hashes(leaves)
        .proof(index as u64)
        .unwrap()
        .siblings;

    // A challenger that re-ran the shard with other prompts (same shape) disputes it.
    let ch = PrivateKeySigner::random();
    let _: serde_json::Value = w
        .owner_p
        .raw_request(
            "anvil_setBalance".into(),
            (ch.address(), U256::from(10u64).pow(U256::from(20u64))),
        )
        .await
        .unwrap();
    let pc = connect(&w.rpc, &ch);
    let g = DisputeGame::new(w.d.dispute_game, pc.clone());
    let bond = g.minBond().call().await.unwrap();
    ok!(g
        .open(
            U256::from(batch.batch_id),
            receipt.clone().into(),
            U256::from(index),
            proof
        )
        .value(bond));
    let gid: u64 = g.gameCount().call().await.unwrap().to::<u64>() - 1;
    let other = Shard {
        prompts: prompts
            .iter()
            .map(|p| match p {
                Prompt::Tokens(t) => t.iter().map(|x| 2 + (x + 17) % 250).collect(),
                Prompt::Text(_) => unreachable!(),
            })
            .collect(),
        max_new_tokens: n as usize,
    };
    let own = Opener::new(Engine::new(w.sku.clone(), Backend::Cpu).unwrap(), other).unwrap();
    let log = MemLog::default();
    let start = Instant::now();
    let done = loop {
        let player = Challenger {
            player: Player {
                provider: pc.clone(),
                game: w.d.dispute_game,
                id: gid,
                role: Role::Challenger,
                me: ch.address(),
                log: &log,
            },
            receipt: receipt.clone(),
            own: &own,
            data: Committed::Api(worker.data()),
            hint: None,
        };
        let o = player.step().await.unwrap();
        if let Outcome::Done { .. } = o {
            break o;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the game did not end"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let Outcome::Done {
        challenger_won,
        reason,
        ..
    } = done
    else {
        unreachable!()
    };
    assert!(!challenger_won, "the honest worker wins");
    assert_eq!(reason, 6, "proven");
    let line = worker.wait(0, &["game over", "won"], 60);
    assert!(line.contains(&format!("game={gid}")), "{line}");
    let start = Instant::now();
    loop {
        let owed = g.owed(w.worker.address()).call().await.unwrap();
        if owed.is_zero() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the worker never withdrew"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stake = StakeBridge::new(w.d.stake_bridge, w.owner_p.clone())
        .account(w.worker.address())
        .call()
        .await
        .unwrap()
        .stake;
    assert_eq!(
        U256::from(stake),
        U256::from(2u64) * U256::from(10u64).pow(U256::from(18u64))
    );
}
