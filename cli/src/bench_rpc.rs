//! `verinfer bench rpc`: job intake over loopback JSON-RPC with every check on (EIP-712
//! signature recovery, SKU/price/length checks, the buyer's escrow read from a real L1, the
//! durable redb commit before the answer).
//!
//! Starts anvil (from PATH; `source ops/env.sh`), deploys the contracts, registers a SKU, funds
//! a buyer, starts a sequencer in this process on a free loopback port with its store in a
//! temporary directory, pre-signs every job, then measures in the same process:
//! 1. `verinfer_domain` round trips (the transport floor),
//! 2. signature recovery alone (the CPU cost of the check),
//! 3. `verinfer_submitJob` one at a time (one fsync per job),
//! 4. `verinfer_submitJob` from `--concurrency` clients (group commit: one fsync per group).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{keccak256, U256};
use anyhow::{bail, Context};
use verinfer_l1::bindings::{SkuRegistry, StakeBridge};
use verinfer_primitives::job::{domain, Prompt};
use verinfer_rpc::sign::{recover, sign_job, JobDraft};
use verinfer_rpc::types::SubmitJobRequest;
use verinfer_rpc::VerinferApiClient;
use verinfer_sequencer::config::*;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Jobs submitted concurrently (after the sequential phase).
    #[arg(long, default_value_t = 2000)]
    jobs: usize,
    /// Jobs submitted one at a time first.
    #[arg(long, default_value_t = 200)]
    sequential: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Prompts per job.
    #[arg(long, default_value_t = 4)]
    prompts: usize,
    /// Token ids per prompt.
    #[arg(long, default_value_t = 64)]
    prompt_tokens: usize,
}

struct Anvil(Child);

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut lat: Vec<Duration>, wall: Duration) {
    lat.sort();
    let n = lat.len();
    // Float only for display, outside any committed path.
    println!(
        "{name:<38} {n:>6} calls {:>9.0}/s   p50 {:>8.3} ms   p99 {:>8.3} ms",
        n as f64 / wall.as_secs_f64(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
}

/// Runs the benchmark.
pub fn run(a: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench(a))
}

async fn bench(a: Args) -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let _anvil = Anvil(
        Command::new("anvil")
            .args([
                "--port",
                &port.to_string(),
                "--host",
                "127.0.0.1",
                "--silent",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start anvil: run `bash ops/setup.sh` and `source ops/env.sh`")?,
    );
    let url = format!("http://127.0.0.1:{port}");
    let owner = PrivateKeySigner::random();
    let buyer = PrivateKeySigner::random();
    let poster = PrivateKeySigner::random();
    let p = ProviderBuilder::new()
        .wallet(EthereumWallet::from(owner.clone()))
        .connect_http(url.parse()?);
    let mut up = false;
    for _ in 0..200 {
        if p.get_block_number().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if !up {
        bail!("anvil did not answer on port {port}");
    }
    let big = U256::from(10u64).pow(U256::from(24u64));
    for who in [owner.address(), buyer.address(), poster.address()] {
        let _: serde_json::Value = p.raw_request("anvil_setBalance".into(), (who, big)).await?;
    }
    let chain_id = p.get_chain_id().await?;
    let d = verinfer_l1::deploy(
        p.clone(),
        &verinfer_l1::DeployConfig {
            sequencer: poster.address(),
            ..Default::default()
        },
    )
    .await?;
    let sku = keccak256(b"bench-sku");
    SkuRegistry::new(d.sku_registry, p.clone())
        .registerSku(
            sku,
            SkuRegistry::Sku {
                weightRoot: keccak256(b"w"),
                tokenizerHash: keccak256(b"t"),
                configHash: keccak256(b"c"),
                pricePerToken: 1,
                epsQ32: 42950,
                softmaxC: 1 << 37,
                vocab: 1000,
                layers: 1,
                arithVersion: verinfer_primitives::arith::SPEC_VERSION as u16,
                hasBias: false,
                active: true,
            },
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    let pb = ProviderBuilder::new()
        .wallet(EthereumWallet::from(buyer.clone()))
        .connect_http(url.parse()?);
    StakeBridge::new(d.stake_bridge, pb)
        .depositEscrow()
        .value(U256::from(10u64).pow(U256::from(21u64)))
        .send()
        .await?
        .get_receipt()
        .await?;

    let dir = tempfile::tempdir()?;
    let cfg = Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.path().to_owned(),
        l1: L1Config {
            rpc_url: url.clone(),
            batch_inbox: d.batch_inbox,
            stake_bridge: d.stake_bridge,
            sku_registry: d.sku_registry,
            key_env: "UNUSED".into(),
            confirmations: 1,
            poll_interval_ms: 1000,
            gas_headroom_percent: 25,
            max_retries: 3,
        },
        skus: vec![SkuConfig {
            id: sku,
            name: "bench".into(),
            max_context: 4096,
        }],
        limits: Limits::default(),
        sharding: Sharding::default(),
        workers: WorkerPolicy::default(),
        batching: Batching::default(),
    };
    let l1 =
        verinfer_sequencer::alloy_l1::AlloyL1::connect(&cfg.l1, &poster.to_bytes().to_string())?;
    let running = verinfer_sequencer::start(cfg, Arc::new(l1)).await?;
    let rpc_url = format!("http://{}", running.addr);
    let dom = domain(chain_id, d.batch_inbox);

    let total = a.sequential + a.jobs;
    let signed: Vec<SubmitJobRequest> = (0..total)
        .map(|n| {
            let prompts = (0..a.prompts)
                .map(|k| {
                    Prompt::Tokens(
                        (0..a.prompt_tokens)
                            .map(|t| (n * 31 + k * 7 + t) as u32 % 50_000)
                            .collect(),
                    )
                })
                .collect();
            sign_job(
                &buyer,
                &dom,
                JobDraft {
                    sku_id: sku,
                    prompts,
                    max_new_tokens: 64,
                    max_price: U256::from(1_000_000u64),
                    nonce: n as u64,
                },
            )
        })
        .collect::<Result<_, _>>()?;
    println!(
        "bench rpc: {} + {} jobs of {} prompts × {} tokens, {} clients, store on disk ({}), L1 = anvil",
        a.sequential,
        a.jobs,
        a.prompts,
        a.prompt_tokens,
        a.concurrency,
        dir.path().display()
    );

    // 1. Transport floor.
    let clients: Vec<_> = (0..a.concurrency.max(1))
        .map(|_| verinfer_rpc::client::http(&rpc_url))
        .collect::<Result<_, _>>()?;
    let floor_n = a.jobs.min(2000);
    let start = Instant::now();
    let lat = fan_out(&clients, floor_n, |c, _| async move {
        let t = Instant::now();
        c.domain().await.map(|_| t.elapsed())
    })
    .await?;
    report("verinfer_domain (transport floor)", lat, start.elapsed());

    // 2. Signature recovery alone.
    let start = Instant::now();
    let mut lat = Vec::with_capacity(floor_n);
    for r in signed.iter().take(floor_n) {
        let t = Instant::now();
        let digest = r.job.id(&dom);
        if recover(&digest, &r.signature) != Some(buyer.address()) {
            bail!("signature check failed in the benchmark itself");
        }
        lat.push(t.elapsed());
    }
    report("EIP-712 digest + ecrecover (no RPC)", lat, start.elapsed());

    // 3. Sequential submissions.
    let c0 = clients[0].clone();
    let start = Instant::now();
    let mut lat = Vec::with_capacity(a.sequential);
    for r in signed.iter().take(a.sequential) {
        let t = Instant::now();
        c0.submit_job(r.clone()).await?;
        lat.push(t.elapsed());
    }
    report("submitJob, 1 client", lat, start.elapsed());

    // 4. Concurrent submissions.
    let rest: Arc<Vec<SubmitJobRequest>> = Arc::new(signed[a.sequential..].to_vec());
    let start = Instant::now();
    let lat = fan_out(&clients, rest.len(), move |c, i| {
        let r = rest[i].clone();
        async move {
            let t = Instant::now();
            c.submit_job(r).await.map(|_| t.elapsed())
        }
    })
    .await?;
    report(
        &format!("submitJob, {} clients", a.concurrency),
        lat,
        start.elapsed(),
    );
    running.stop().await;
    Ok(())
}

/// Runs `n` calls spread over the clients (call i on client i mod C), all clients at once.
async fn fan_out<F, Fut>(
    clients: &[verinfer_rpc::client::HttpClient],
    n: usize,
    f: F,
) -> anyhow::Result<Vec<Duration>>
where
    F: Fn(verinfer_rpc::client::HttpClient, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Duration, verinfer_rpc::client::ClientError>> + Send,
{
    let c = clients.len();
    let mut tasks = Vec::with_capacity(c);
    for (k, client) in clients.iter().enumerate() {
        let client = client.clone();
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut i = k;
            while i < n {
                out.push(f(client.clone(), i).await?);
                i += c;
            }
            Ok::<_, verinfer_rpc::client::ClientError>(out)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}
