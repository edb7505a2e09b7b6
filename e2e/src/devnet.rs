//! Bringing the devnet up: the SKU, anvil and the contracts, the accounts, then the sequencer,
//! the workers and the watcher as processes, each started and waited for until it says it is
//! ready. Everything lives under one directory (`Options::dir`): the SKU, the deployment, each
//! daemon's data directory and log, and `keys.env` with the devnet's throwaway keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256, U256};
use verinfer_dispute::registration::{sku_fields, sku_shape};
use verinfer_l1::audits::AuditParams;
use verinfer_l1::bindings::{Audits, SkuRegistry, StakeBridge};
use verinfer_l1::{DeployConfig, Deployment};
use verinfer_prover::sku::{build_file, BuildOptions};
use verinfer_prover::{Sku, SynthSpec};

use crate::chain::{deployment_json, ether, L1};
use crate::proc::{free_port, Daemon, Spec};
use crate::{io_err, send, DevnetError};

/// Price per token of the demo SKU, wei (1 gwei).
pub const PRICE_PER_TOKEN: u128 = 1_000_000_000;
/// Stake each worker bonds, ether.
pub const WORKER_STAKE_ETH: u64 = 2;
/// What the buyer deposits into escrow, ether.
pub const BUYER_ESCROW_ETH: u64 = 1;
/// Stake the watcher bonds as the SKU's verifier, ether.
pub const VERIFIER_STAKE_ETH: u64 = 2;

/// The audit protocol on a devnet with challenge window `window`: every receipt audited (the
/// demo shows a verification receipt for each), one verifier per audit with most of the window
/// to report (a CPU watcher auditing a real model's shards one by one needs minutes).
pub fn devnet_audits(window: u64) -> AuditParams {
    AuditParams {
        new_passes: u32::MAX,
        veteran_passes: u32::MAX,
        verify_period: window * 5 / 6,
        max_draws: 1,
        ..AuditParams::for_window(window)
    }
}

/// Which model the demo SKU is built from.
#[derive(Debug, Clone)]
pub enum Model {
    /// The synthetic tiny Llama the tests use (generated, in HF format; its answers are noise).
    Synthetic,
    /// A Hugging Face checkpoint directory (config.json, safetensors, tokenizer.json).
    HfDir(PathBuf),
    /// An already built SKU file.
    SkuFile(PathBuf),
}

/// How to bring the devnet up.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `verinfer` binary every daemon and command runs as.
    pub bin: PathBuf,
    /// State directory (created; reused SKU builds are kept there).
    pub dir: PathBuf,
    pub model: Model,
    /// Honest workers.
    pub workers: usize,
    /// Longest sequence the SKU supports (prompt + completion).
    pub max_seq: usize,
    /// Prompts per shard (the sequencer splits jobs into shards of this many prompts).
    pub shard_prompts: u32,
    /// Contract parameters; `sequencer` is filled in.
    pub deploy: DeployConfig,
    /// Watcher: share of receipts audited, basis points.
    pub sample_bps: u32,
    /// Cheating workers: each runs `faulty_bin worker --fault NAME` (NAME from this list).
    pub cheats: Vec<String>,
    /// The `verinfer-faulty` binary (the worker with fault injection built in).
    pub faulty_bin: Option<PathBuf>,
}

impl Options {
    /// Defaults for a quick run: two workers, the devnet's contract parameters.
    pub fn new(bin: PathBuf, dir: PathBuf, model: Model) -> Self {
        Options {
            bin,
            dir,
            model,
            workers: 2,
            max_seq: 256,
            shard_prompts: 2,
            deploy: DeployConfig {
                audits: Some(devnet_audits(DeployConfig::default().challenge_window)),
                ..DeployConfig::default()
            },
            sample_bps: 10_000,
            cheats: Vec::new(),
            faulty_bin: None,
        }
    }
}

/// The devnet's throwaway keys (random per run, written to `DIR/keys.env`, mode 0600).
pub struct Keys {
    pub owner: PrivateKeySigner,
    pub poster: PrivateKeySigner,
    pub buyer: PrivateKeySigner,
    pub workers: Vec<PrivateKeySigner>,
    pub cheaters: Vec<PrivateKeySigner>,
    pub watcher: PrivateKeySigner,
}

impl Keys {
    fn random(workers: usize, cheaters: usize) -> Self {
        Keys {
            owner: PrivateKeySigner::random(),
            poster: PrivateKeySigner::random(),
            buyer: PrivateKeySigner::random(),
            workers: (0..workers).map(|_| PrivateKeySigner::random()).collect(),
            cheaters: (0..cheaters).map(|_| PrivateKeySigner::random()).collect(),
            watcher: PrivateKeySigner::random(),
        }
    }

    fn all(&self) -> Vec<&PrivateKeySigner> {
        let mut v = vec![&self.owner, &self.poster, &self.buyer, &self.watcher];
        v.extend(self.workers.iter());
        v.extend(self.cheaters.iter());
        v
    }
}

/// Hex of a key, for the environment of a child process.
pub(crate) fn key_hex(k: &PrivateKeySigner) -> String {
    k.to_bytes().to_string()
}

/// The running devnet. Dropping it stops every process it started.
pub struct Devnet {
    pub opts: Options,
    pub keys: Keys,
    pub sku: Arc<Sku>,
    pub sku_path: PathBuf,
    pub d: Deployment,
    pub deployment_file: PathBuf,
    pub sequencer_url: String,
    // Field order is drop order: daemons stop before anvil.
    pub watcher: Daemon,
    /// Each worker's data API (the watcher reads a cheater's committed rows from it).
    pub worker_data: Vec<(Address, String)>,
    pub workers: Vec<Daemon>,
    pub cheaters: Vec<Daemon>,
    pub sequencer: Daemon,
    pub l1: L1,
}

impl Devnet {
    /// Brings everything up; `say` gets one line per step.
    pub async fn start(opts: Options, say: &mut dyn FnMut(&str)) -> Result<Self, DevnetError> {
        let logs = opts.dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(io_err(&logs))?;
        say("building the SKU (int8 quantization of the checkpoint; float, outside the committed path)");
        let (sku, sku_path) = build_sku(&opts)?;
        say(&format!(
            "SKU {} ({} layers, vocab {})",
            sku.id(),
            sku.config().layers,
            sku.config().vocab
        ));

        say("starting anvil");
        let l1 = L1::start(&logs).await?;
        let keys = Keys::random(opts.workers, opts.cheats.len());
        for k in keys.all() {
            l1.fund(k.address(), ether(1000)).await?;
        }
        write_keys(&opts.dir, &keys, &l1.url)?;
        say(&format!(
            "L1 on {} (chain id {}), keys in {}",
            l1.url,
            l1.chain_id,
            opts.dir.join("keys.env").display()
        ));

        let cfg = DeployConfig {
            sequencer: keys.poster.address(),
            ..opts.deploy.clone()
        };
        let d = l1.deploy(&keys.owner, &cfg).await?;
        let deployment_file = opts.dir.join("deployment.json");
        let json = deployment_json(&d, &l1.url, l1.chain_id);
        std::fs::write(
            &deployment_file,
            serde_json::to_vec_pretty(&json).unwrap_or_default(),
        )
        .map_err(io_err(&deployment_file))?;
        say(&format!(
            "contracts deployed: inbox {}, game {}",
            d.batch_inbox, d.dispute_game
        ));

        let reg = SkuRegistry::new(d.sku_registry, l1.connect(&keys.owner));
        send!(
            "registerSku",
            reg.registerSku(sku.id(), sku_fields(&sku, PRICE_PER_TOKEN))
        );
        send!("setShape", reg.setShape(sku.id(), sku_shape(&sku)));
        for w in keys.workers.iter().chain(&keys.cheaters) {
            let b = StakeBridge::new(d.stake_bridge, l1.connect(w));
            send!(
                "depositStake",
                b.depositStake(1).value(ether(WORKER_STAKE_ETH))
            );
            send!("setSku", b.setSku(sku.id(), true));
        }
        if let Some(audits) = d.audits {
            // The watcher is the SKU's verifier in the audit protocol (docs/AUDITS.md).
            let b = StakeBridge::new(d.stake_bridge, l1.connect(&keys.watcher));
            send!(
                "depositStake(verifier)",
                b.depositStake(2).value(ether(VERIFIER_STAKE_ETH))
            );
            let a = Audits::new(audits, l1.connect(&keys.watcher));
            send!("joinSku", a.joinSku(sku.id()));
        }
        say(&format!(
            "SKU registered at {PRICE_PER_TOKEN} wei/token; {} workers staked {WORKER_STAKE_ETH} ETH each, the watcher {VERIFIER_STAKE_ETH} ETH as verifier",
            keys.workers.len()
        ));

        l1.interval_mining(1).await?;
        let seq_addr = format!("127.0.0.1:{}", free_port()?);
        let sequencer = start_sequencer(&opts, &keys, &d, &l1.url, &sku, &seq_addr)?;
        let sequencer_url = format!("http://{seq_addr}");
        say(&format!("sequencer on {sequencer_url}"));
        let mut workers = Vec::new();
        for (i, k) in keys.workers.iter().enumerate() {
            let w = start_worker(
                &opts,
                &format!("worker{i}"),
                k,
                &seq_addr,
                &l1.url,
                &sku_path,
                &[],
            )?;
            workers.push(w);
        }
        let mut cheaters = Vec::new();
        for (i, (k, fault)) in keys.cheaters.iter().zip(&opts.cheats).enumerate() {
            let Some(bin) = &opts.faulty_bin else {
                return Err(DevnetError::Spawn(
                    "a cheating worker".into(),
                    "no verinfer-faulty binary (cargo build -p verinfer --features fault-injection --bin verinfer-faulty)".into(),
                ));
            };
            let mut o = opts.clone();
            o.bin = bin.clone();
            let extra = ["--fault", fault.as_str()];
            let name = format!("cheater{i}");
            cheaters.push(start_worker(
                &o, &name, k, &seq_addr, &l1.url, &sku_path, &extra,
            )?);
        }
        let mut worker_data = Vec::new();
        let addrs: Vec<Address> = keys
            .workers
            .iter()
            .chain(&keys.cheaters)
            .map(|k| k.address())
            .collect();
        for (w, a) in workers.iter_mut().chain(cheaters.iter_mut()).zip(addrs) {
            worker_data.push((a, data_url(w)?));
            w.wait_line(0, &["registered and subscribed"], 120)?;
        }
        let cheat_note = if cheaters.is_empty() {
            String::new()
        } else {
            format!(" ({} of them cheat: {:?})", cheaters.len(), opts.cheats)
        };
        say(&format!(
            "{} workers registered with the sequencer{cheat_note}",
            workers.len() + cheaters.len()
        ));
        let watcher = start_watcher(
            &opts,
            &keys.watcher,
            &deployment_file,
            &l1.url,
            &sku_path,
            &worker_data,
        )?;
        say("watcher following the inbox");
        Ok(Devnet {
            opts,
            keys,
            sku,
            sku_path,
            d,
            deployment_file,
            sequencer_url,
            watcher,
            worker_data,
            workers,
            cheaters,
            sequencer,
            l1,
        })
    }

    /// Runs `verinfer ARGS` with `env` and returns its stdout; a non-zero exit is an error that
    /// carries its stderr.
    pub async fn cli(&self, args: &[&str], env: &[(&str, String)]) -> Result<String, DevnetError> {
        let (ok, stdout, stderr) = self.cli_status(args, env).await?;
        if !ok {
            return Err(DevnetError::Command(args.join(" "), stderr));
        }
        Ok(stdout)
    }

    /// Runs `verinfer ARGS` with `env`: (exit status zero, stdout, stderr).
    pub async fn cli_status(
        &self,
        args: &[&str],
        env: &[(&str, String)],
    ) -> Result<(bool, String, String), DevnetError> {
        let out = tokio::process::Command::new(&self.opts.bin)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| DevnetError::Spawn(self.opts.bin.display().to_string(), e.to_string()))?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// The environment a command needs to reach this devnet as the party holding `key`.
    pub fn env_for(&self, key: &PrivateKeySigner) -> Vec<(&'static str, String)> {
        vec![
            ("VERINFER_RPC", self.sequencer_url.clone()),
            ("VERINFER_L1", self.l1.url.clone()),
            (
                "VERINFER_DEPLOYMENT",
                self.deployment_file.display().to_string(),
            ),
            ("VERINFER_KEY", key_hex(key)),
            ("VERINFER_BUYER_KEY", key_hex(key)),
        ]
    }

    /// Funds, stakes and starts one more worker that cheats with `fault` (the
    /// `verinfer-faulty` binary of `Options::faulty_bin`), and waits until it is registered.
    pub async fn add_cheater(&mut self, fault: &str) -> Result<Address, DevnetError> {
        let Some(bin) = self.opts.faulty_bin.clone() else {
            return Err(DevnetError::Spawn(
                "a cheating worker".into(),
                "no verinfer-faulty binary (cargo build -p verinfer --features fault-injection --bin verinfer-faulty)".into(),
            ));
        };
        let k = PrivateKeySigner::random();
        self.l1.fund(k.address(), ether(1000)).await?;
        let b = StakeBridge::new(self.d.stake_bridge, self.l1.connect(&k));
        send!(
            "depositStake",
            b.depositStake(1).value(ether(WORKER_STAKE_ETH))
        );
        send!("setSku", b.setSku(self.sku.id(), true));
        let mut o = self.opts.clone();
        o.bin = bin;
        let name = format!("cheater{}", self.cheaters.len());
        let seq_addr = self.sequencer_url.trim_start_matches("http://").to_owned();
        let extra = ["--fault", fault];
        let mut w = start_worker(
            &o,
            &name,
            &k,
            &seq_addr,
            &self.l1.url,
            &self.sku_path,
            &extra,
        )?;
        w.wait_line(0, &["registered and subscribed"], 120)?;
        let who = k.address();
        self.keys.cheaters.push(k);
        self.cheaters.push(w);
        Ok(who)
    }

    /// Stake of `who` on the bridge (wei).
    pub async fn stake_of(&self, who: Address) -> Result<U256, DevnetError> {
        let b = StakeBridge::new(self.d.stake_bridge, self.l1.reader().clone());
        let a = b
            .account(who)
            .call()
            .await
            .map_err(crate::chain::chain_err("account"))?;
        Ok(U256::from(a.stake))
    }
}

fn build_sku(opts: &Options) -> Result<(Arc<Sku>, PathBuf), DevnetError> {
    let sku_err = |e: verinfer_prover::ProverError| DevnetError::Sku(e.to_string());
    let build = BuildOptions {
        max_seq: opts.max_seq,
    };
    let (sku, path) = match &opts.model {
        Model::SkuFile(p) => (Sku::load(p).map_err(sku_err)?, p.clone()),
        Model::HfDir(dir) => {
            let out = opts.dir.join("model.sku");
            (build_file(dir, &out, &build).map_err(sku_err)?, out)
        }
        Model::Synthetic => {
            let model = opts.dir.join("synthetic-model");
            SynthSpec::tiny_llama().write(&model).map_err(sku_err)?;
            let out = opts.dir.join("model.sku");
            (build_file(&model, &out, &build).map_err(sku_err)?, out)
        }
    };
    Ok((Arc::new(sku), path))
}

fn write_keys(dir: &Path, keys: &Keys, l1: &str) -> Result<(), DevnetError> {
    let mut text = format!(
        "# Throwaway keys of this devnet run (anvil only). `source` this file.\nexport VERINFER_L1={l1}\n\
         export VERINFER_DEPLOYMENT={}\nexport OWNER_KEY={}\nexport SEQUENCER_KEY={}\n\
         export BUYER_KEY={}\nexport WATCHER_KEY={}\n",
        dir.join("deployment.json").display(),
        key_hex(&keys.owner),
        key_hex(&keys.poster),
        key_hex(&keys.buyer),
        key_hex(&keys.watcher),
    );
    for (i, w) in keys.workers.iter().enumerate() {
        text.push_str(&format!("export WORKER{i}_KEY={}\n", key_hex(w)));
    }
    for (i, w) in keys.cheaters.iter().enumerate() {
        text.push_str(&format!("export CHEATER{i}_KEY={}\n", key_hex(w)));
    }
    let path = dir.join("keys.env");
    std::fs::write(&path, text).map_err(io_err(&path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(&path))?;
    }
    Ok(())
}

fn spec(opts: &Options, name: &str, args: Vec<String>, env: Vec<(String, String)>) -> Spec {
    Spec {
        name: name.into(),
        program: opts.bin.clone(),
        args,
        env,
        log_dir: opts.dir.join("logs"),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn start_sequencer(
    opts: &Options,
    keys: &Keys,
    d: &Deployment,
    l1: &str,
    sku: &Sku,
    addr: &str,
) -> Result<Daemon, DevnetError> {
    let data = opts.dir.join("sequencer");
    let toml = format!(
        r#"listen = "{addr}"
data_dir = "{data}"
[l1]
rpc_url = "{l1}"
batch_inbox = "{inbox}"
stake_bridge = "{bridge}"
sku_registry = "{reg}"
key_env = "VERINFER_SEQUENCER_KEY"
confirmations = 1
poll_interval_ms = 200
[[skus]]
id = "{sku}"
name = "demo"
max_context = {ctx}
[limits]
max_prompts_per_job = 64
[sharding]
max_prompts = {shard}
max_tokens = 100000
[workers]
min_stake = "{stake:#x}"
shard_timeout_ms = 120000
tick_ms = 50
[batching]
max_jobs = 8
max_receipts = 100
interval_ms = 500
"#,
        data = data.display(),
        inbox = d.batch_inbox,
        bridge = d.stake_bridge,
        reg = d.sku_registry,
        sku = sku.id(),
        ctx = sku.config().max_seq,
        shard = opts.shard_prompts,
        stake = opts.deploy.min_stake,
    );
    let config = opts.dir.join("sequencer.toml");
    std::fs::write(&config, toml).map_err(io_err(&config))?;
    let args = vec![
        "sequencer".into(),
        "--config".into(),
        config.display().to_string(),
    ];
    let env = vec![
        ("VERINFER_SEQUENCER_KEY".into(), key_hex(&keys.poster)),
        ("RUST_LOG".into(), "info,jsonrpsee=warn".into()),
    ];
    let mut s = Daemon::start(spec(opts, "sequencer", args, env))?;
    s.wait_line(0, &["listening on"], 60)?;
    Ok(s)
}

/// Starts a worker process named `name` with `extra` flags (e.g. a fault-injection flag of a
/// cheating build).
pub fn start_worker(
    opts: &Options,
    name: &str,
    key: &PrivateKeySigner,
    seq_addr: &str,
    l1: &str,
    sku_path: &Path,
    extra: &[&str],
) -> Result<Daemon, DevnetError> {
    let data = opts.dir.join(name);
    let mut args = strings(&[
        "worker",
        "--sequencer",
        &format!("ws://{seq_addr}"),
        "--l1",
        l1,
        "--key-env",
        "VERINFER_WORKER_KEY",
        "--sku",
        &sku_path.display().to_string(),
        "--data-dir",
        &data.display().to_string(),
        "--threads",
        "1",
        "--data-listen",
        &format!("127.0.0.1:{}", free_port()?),
        // Defend every game opened against its receipts.
        "--deployment",
        &opts.dir.join("deployment.json").display().to_string(),
        "--game-poll-ms",
        "500",
    ]);
    args.extend(strings(extra));
    let env = vec![
        ("VERINFER_WORKER_KEY".into(), key_hex(key)),
        ("RUST_LOG".into(), "info,jsonrpsee=warn".into()),
    ];
    Daemon::start(spec(opts, name, args, env))
}

/// The worker's data API URL, from the line it prints first.
fn data_url(w: &mut Daemon) -> Result<String, DevnetError> {
    let line = w.wait_line(0, &["data api on "], 120)?;
    let addr = line.trim().trim_start_matches("data api on ").to_owned();
    Ok(format!("http://{addr}"))
}

fn start_watcher(
    opts: &Options,
    key: &PrivateKeySigner,
    deployment: &Path,
    l1: &str,
    sku_path: &Path,
    worker_data: &[(Address, String)],
) -> Result<Daemon, DevnetError> {
    let mut args = strings(&[
        "watch",
        "--l1",
        l1,
        "--deployment",
        &deployment.display().to_string(),
        "--key-env",
        "VERINFER_WATCHER_KEY",
        "--sku",
        &sku_path.display().to_string(),
        "--data-dir",
        &opts.dir.join("watcher").display().to_string(),
        "--confirmations",
        "1",
        "--poll-ms",
        "250",
        "--sample-bps",
        &opts.sample_bps.to_string(),
    ]);
    for (a, url) in worker_data {
        args.push("--worker-data".into());
        args.push(format!("{a}={url}"));
    }
    let env = vec![
        ("VERINFER_WATCHER_KEY".into(), key_hex(key)),
        ("RUST_LOG".into(), "info".into()),
    ];
    let mut w = Daemon::start(spec(opts, "watcher", args, env))?;
    w.wait_line(0, &["watching"], 60)?;
    Ok(w)
}

/// Polls `f` every 250 ms until it returns `Some`, for at most `secs`.
pub async fn poll<T, F, Fut>(what: &str, secs: u64, mut f: F) -> Result<T, DevnetError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, DevnetError>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if start.elapsed() > Duration::from_secs(secs) {
            return Err(DevnetError::Timeout(format!("{what} (after {secs} s)")));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A job id parsed from a line of `verinfer job submit` output.
pub fn parse_job_ids(stdout: &str) -> Vec<B256> {
    stdout
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}
