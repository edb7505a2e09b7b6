//! The honest journey every user takes on the devnet, step by step with progress shown: the
//! buyer funds escrow, submits an OpenAI Batch JSONL file and reads the completions; the
//! workers' receipts reach L1 and the buyer checks every completion against the L1 roots; the
//! watcher audits every receipt; the challenge window passes (anvil's clock is moved, not
//! waited for), the batches finalize, the epoch closes and the workers claim their fees.

use std::fmt;
use std::path::Path;

use alloy::providers::Provider;
use alloy_primitives::{B256, U256};
use verinfer_l1::bindings::{
    Audits as AuditsContract, BatchInbox, DisputeGame, Rewards, StakeBridge,
};
use verinfer_primitives::job::domain;
use verinfer_rpc::sign::sign_results_access;
use verinfer_rpc::types::{Finality, JobResults};
use verinfer_rpc::VerinferApiClient;

use crate::chain::chain_err;
use crate::devnet::{parse_job_ids, poll, Devnet};
use crate::{io_err, DevnetError};

/// What a journey did, as the summary table shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub jobs: usize,
    pub prompts: usize,
    pub shards: usize,
    pub tokens_processed: u64,
    pub batches: u64,
    pub audits_passed: u64,
    pub audits_fraud: u64,
    /// Verification receipts the watcher posted on L1 (the audit protocol): passes, fails.
    pub verified_on_l1: (u64, u64),
    pub disputes: u64,
    pub slashes: u64,
    pub charged_wei: U256,
    /// (worker, fees claimed in wei).
    pub payouts: Vec<(String, U256)>,
    /// Gas of the sequencer's L1 transactions (postBatch, finalizeBatch).
    pub sequencer_gas: u64,
    /// Gas of every transaction on the devnet's L1.
    pub total_gas: u64,
    pub seconds: f64,
    /// Cheats caught (the devnet's cheat journey).
    pub cheats: Vec<crate::cheat::Caught>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Display only (floats never reach a committed value).
        let gwei = |w: U256| {
            let v = f64::from(w);
            if v >= 1e15 {
                format!("{:.4} ETH", v / 1e18)
            } else {
                format!("{:.3} gwei", v / 1e9)
            }
        };
        let rows: Vec<(&str, String)> = vec![
            ("jobs", self.jobs.to_string()),
            ("prompts", self.prompts.to_string()),
            ("shards (receipts)", self.shards.to_string()),
            ("tokens processed", self.tokens_processed.to_string()),
            ("batches on L1", self.batches.to_string()),
            ("audits passed", self.audits_passed.to_string()),
            (
                "verifications on L1",
                format!(
                    "{} pass, {} fail",
                    self.verified_on_l1.0, self.verified_on_l1.1
                ),
            ),
            ("audits finding fraud", self.audits_fraud.to_string()),
            ("disputes", self.disputes.to_string()),
            ("slashes", self.slashes.to_string()),
            ("buyer charged", gwei(self.charged_wei)),
            ("sequencer L1 gas", self.sequencer_gas.to_string()),
            ("all L1 gas", self.total_gas.to_string()),
            ("wall time", format!("{:.1} s", self.seconds)),
        ];
        writeln!(
            f,
            "+-----------------------+------------------------------------------------------------+"
        )?;
        for (k, v) in rows {
            writeln!(f, "| {k:<21} | {v:<58} |")?;
        }
        for c in &self.cheats {
            let rows = [
                (
                    "cheat caught",
                    format!("{} in batch {}, game {}", c.cheater, c.batch, c.game),
                ),
                ("  cheater slashed", gwei(c.slashed_wei)),
                ("  buyer refunded", gwei(c.refunded_wei)),
                ("  watcher reward", gwei(c.watcher_paid_wei)),
            ];
            for (k, v) in rows {
                writeln!(f, "| {k:<21} | {v:<58} |")?;
            }
        }
        for (w, paid) in &self.payouts {
            writeln!(
                f,
                "| {:<21} | {:<58} |",
                "payout",
                format!("{w} {}", gwei(*paid))
            )?;
        }
        write!(
            f,
            "+-----------------------+------------------------------------------------------------+"
        )
    }
}

/// The prompts of the demo: chat when the SKU has a chat template, plain text otherwise.
/// `seed` varies the synthetic prompts' words and lengths.
pub fn demo_batch(
    dev: &Devnet,
    prompts: usize,
    max_tokens: u64,
    seed: u64,
) -> Result<String, DevnetError> {
    let chat = dev
        .sku
        .chat_template()
        .map_err(|e| DevnetError::Sku(e.to_string()))?
        .is_some();
    let questions = [
        "What is the capital of France?",
        "Name three primary colors.",
        "What does a bee make?",
        "How many legs does a spider have?",
        "What is two plus two?",
        "Which planet is known as the red planet?",
    ];
    let mut text = String::new();
    for i in 0..prompts {
        let line = if chat {
            serde_json::json!({"custom_id": format!("q{i}"), "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "demo", "max_tokens": max_tokens,
                         "messages": [{"role": "user", "content": questions[i % questions.len()]}]}})
        } else {
            // The synthetic model's word-level vocabulary is `w3` … `wN`.
            let h = |j: u64| mix(seed ^ mix((i as u64) << 32 | j));
            let words: Vec<String> = (0..1 + h(u64::MAX) % 12)
                .map(|j| format!("w{}", 3 + h(j) % 200))
                .collect();
            serde_json::json!({"custom_id": format!("q{i}"), "method": "POST", "url": "/v1/completions",
                "body": {"model": "demo", "max_tokens": max_tokens, "prompt": words.join(" ")}})
        };
        text.push_str(&line.to_string());
        text.push('\n');
    }
    Ok(text)
}

/// splitmix64: a well-mixed hash for the synthetic prompts.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The buyer's journey up to completions: escrow, submit, wait. Returns the job ids.
pub async fn buy(
    dev: &Devnet,
    batch: &Path,
    out: &Path,
    say: &mut dyn FnMut(&str),
) -> Result<Vec<B256>, DevnetError> {
    let env = dev.env_for(&dev.keys.buyer);
    let escrow = crate::devnet::BUYER_ESCROW_ETH.to_string() + "ether";
    dev.cli(&["escrow", "deposit", &escrow], &env).await?;
    say(&format!(
        "buyer {} deposited {escrow} into escrow",
        dev.keys.buyer.address()
    ));
    let sku = dev.sku_path.display().to_string();
    let stdout = dev
        .cli(
            &[
                "job",
                "submit",
                "--file",
                &batch.display().to_string(),
                "--sku-file",
                &sku,
                "--out",
                &out.display().to_string(),
                "--timeout",
                "600",
            ],
            &env,
        )
        .await?;
    let jobs = parse_job_ids(&stdout);
    if jobs.is_empty() {
        return Err(DevnetError::Check(format!(
            "job submit printed no job id: {stdout}"
        )));
    }
    say(&format!(
        "{} jobs done; completions in {}",
        jobs.len(),
        out.display()
    ));
    Ok(jobs)
}

/// The buyer's results of `job` (signed results access).
pub async fn results(dev: &Devnet, job: B256) -> Result<JobResults, DevnetError> {
    let c = verinfer_rpc::client::http(&dev.sequencer_url)
        .map_err(|e| DevnetError::Api(e.to_string()))?;
    let dom = domain(dev.l1.chain_id, dev.d.batch_inbox);
    let access = sign_results_access(&dev.keys.buyer, &dom, job)
        .map_err(|e| DevnetError::Api(e.to_string()))?;
    c.get_results(job, Some(access))
        .await
        .map_err(|e| DevnetError::Api(e.to_string()))
}

/// Waits until every job's results have at least `want` finality.
pub async fn wait_finality(
    dev: &Devnet,
    jobs: &[B256],
    want: Finality,
    secs: u64,
) -> Result<(), DevnetError> {
    let rank = |f: Finality| match f {
        Finality::Void => 0,
        Finality::Provisional => 1,
        Finality::OnL1 => 2,
        Finality::Final => 3,
    };
    for &job in jobs {
        poll(
            &format!("job {job} to reach {want:?}"),
            secs,
            || async move {
                let r = results(dev, job).await?;
                if r.finality == Finality::Void {
                    return Err(DevnetError::Check(format!("job {job} was dropped")));
                }
                Ok((rank(r.finality) >= rank(want)).then_some(()))
            },
        )
        .await?;
    }
    Ok(())
}

/// `verinfer job verify JOB --json` as the buyer; returns the report (it exits non-zero when a
/// check fails or a receipt was proven fraudulent, and still prints the report).
pub async fn verify(dev: &Devnet, job: B256) -> Result<serde_json::Value, DevnetError> {
    let args = ["job", "verify", &job.to_string(), "--json"];
    let (_, out, err) = dev.cli_status(&args, &dev.env_for(&dev.keys.buyer)).await?;
    serde_json::from_str(&out)
        .map_err(|e| DevnetError::Command(args.join(" "), format!("{e}: {out} {err}")))
}

/// The watcher's status snapshot.
pub fn watcher_status(dev: &Devnet) -> Result<serde_json::Value, DevnetError> {
    let path = dev.opts.dir.join("watcher").join("status.json");
    match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t)
            .map_err(|e| DevnetError::Check(format!("{}: {e}", path.display()))),
        Err(_) => Ok(serde_json::json!({"counts": {}})),
    }
}

/// Waits until the watcher has verdicts on `receipts` more receipts than `since`; returns the
/// new verdicts.
pub async fn wait_audits(
    dev: &Devnet,
    since: Audits,
    receipts: u64,
    secs: u64,
) -> Result<Audits, DevnetError> {
    poll("the watcher's audits", secs, || async {
        let now = audits(dev)?;
        let d = Audits {
            pass: now.pass - since.pass.min(now.pass),
            fraud: now.fraud - since.fraud.min(now.fraud),
            evidence: now.evidence - since.evidence.min(now.evidence),
        };
        Ok((d.pass + d.fraud + d.evidence >= receipts).then_some(d))
    })
    .await
}

/// The watcher's verdict counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Audits {
    pub pass: u64,
    pub fraud: u64,
    pub evidence: u64,
}

/// The watcher's verdict counts now.
pub fn audits(dev: &Devnet) -> Result<Audits, DevnetError> {
    let s = watcher_status(dev)?;
    let n = |k: &str| s["counts"][k].as_u64().unwrap_or(0);
    Ok(Audits {
        pass: n("pass"),
        fraud: n("fraud"),
        evidence: n("evidence"),
    })
}

/// Verification receipts (`Audits.Verified`) posted since block `from`: (passes, fails).
pub async fn verified(dev: &Devnet, from: u64) -> Result<(u64, u64), DevnetError> {
    let Some(addr) = dev.d.audits else {
        return Ok((0, 0));
    };
    let logs = AuditsContract::new(addr, dev.l1.reader().clone())
        .Verified_filter()
        .from_block(from)
        .query()
        .await
        .map_err(chain_err("Verified logs"))?;
    let pass = logs.iter().filter(|(v, _)| v.pass).count() as u64;
    Ok((pass, logs.len() as u64 - pass))
}

/// Waits until at least `n` verification receipts were posted since block `from`.
pub async fn wait_verified(
    dev: &Devnet,
    from: u64,
    n: u64,
    secs: u64,
) -> Result<(u64, u64), DevnetError> {
    poll("verification receipts on L1", secs, || async {
        let v = verified(dev, from).await?;
        Ok((v.0 + v.1 >= n).then_some(v))
    })
    .await
}

/// Moves L1 time past the inbox's challenge window.
pub async fn pass_window(dev: &Devnet) -> Result<(), DevnetError> {
    let inbox = BatchInbox::new(dev.d.batch_inbox, dev.l1.reader().clone());
    let window = inbox
        .challengeWindow()
        .call()
        .await
        .map_err(chain_err("challengeWindow"))?;
    dev.l1.warp(window + 1).await
}

/// Moves L1 time past every batch's challenge window and waits for the sequencer to finalize.
pub async fn finalize(dev: &Devnet, jobs: &[B256]) -> Result<(), DevnetError> {
    pass_window(dev).await?;
    wait_finality(dev, jobs, Finality::Final, 120).await
}

/// Closes the epoch (moves L1 time by one epoch) and has every worker claim with the CLI.
/// Checks that the claims add up to the epochs' fee pots (floor division leaves at most one
/// wei per claimant behind).
pub async fn close_epoch_and_claim(dev: &Devnet) -> Result<Vec<(String, U256)>, DevnetError> {
    let rewards = Rewards::new(dev.d.rewards, dev.l1.reader().clone());
    let len = rewards
        .epochLength()
        .call()
        .await
        .map_err(chain_err("epochLength"))?;
    dev.l1.warp(len).await?;
    let mut paid = Vec::new();
    let mut epochs = std::collections::BTreeSet::new();
    let mut total = U256::ZERO;
    // The watcher earns too: its cut of every receipt it verified.
    let claimants: Vec<_> = dev.keys.workers.iter().chain([&dev.keys.watcher]).collect();
    for w in &claimants {
        let out = dev
            .cli(&["rewards", "claim", "--json"], &dev.env_for(w))
            .await?;
        let v: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| DevnetError::Check(format!("rewards claim output: {e}: {out}")))?;
        let fees: U256 = v["feesWei"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        epochs.extend(
            v["epochs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_u64()),
        );
        total += fees;
        paid.push((w.address().to_string(), fees));
    }
    let mut pot = U256::ZERO;
    for e in &epochs {
        pot += rewards
            .feesOf(U256::from(*e))
            .call()
            .await
            .map_err(chain_err("feesOf"))?;
    }
    let dust = U256::from(claimants.len() * epochs.len().max(1));
    if total > pot || pot - total > dust {
        return Err(DevnetError::Check(format!(
            "workers and the watcher claimed {total} wei of fee pots holding {pot} wei"
        )));
    }
    Ok(paid)
}

/// Gas of every transaction in blocks `from..`: (from the sequencer, all).
pub async fn gas_used(dev: &Devnet, from: u64) -> Result<(u64, u64), DevnetError> {
    let p = dev.l1.reader();
    let head = p
        .get_block_number()
        .await
        .map_err(chain_err("blockNumber"))?;
    let poster = dev.keys.poster.address();
    let (mut seq, mut all) = (0u64, 0u64);
    for n in from..=head {
        let Some(receipts) = p
            .get_block_receipts(n.into())
            .await
            .map_err(chain_err("getBlockReceipts"))?
        else {
            continue;
        };
        for r in receipts {
            all += r.gas_used;
            if r.from == poster {
                seq += r.gas_used;
            }
        }
    }
    Ok((seq, all))
}

/// Counts on L1: (batches, disputes, slashes).
pub async fn l1_counts(dev: &Devnet) -> Result<(u64, u64, u64), DevnetError> {
    let r = dev.l1.reader().clone();
    let batches = BatchInbox::new(dev.d.batch_inbox, r.clone())
        .batchCount()
        .call()
        .await
        .map_err(chain_err("batchCount"))?;
    let games = DisputeGame::new(dev.d.dispute_game, r.clone())
        .gameCount()
        .call()
        .await
        .map_err(chain_err("gameCount"))?;
    let slashes = StakeBridge::new(dev.d.stake_bridge, r)
        .slashCount()
        .call()
        .await
        .map_err(chain_err("slashCount"))?;
    Ok((batches.to::<u64>(), games.to::<u64>(), slashes.to::<u64>()))
}

/// Prints the completions file (`job submit --out` decodes the tokens with the SKU's tokenizer).
pub fn show_completions(out: &Path, say: &mut dyn FnMut(&str)) -> Result<(), DevnetError> {
    let text = std::fs::read_to_string(out).map_err(io_err(out))?;
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| DevnetError::Check(e.to_string()))?;
        let answer = v["text"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v["tokens"].to_string());
        say(&format!(
            "  {}: {}",
            v["custom_id"].as_str().unwrap_or("?"),
            answer.replace('\n', " ")
        ));
    }
    Ok(())
}

/// The whole honest journey on a running devnet.
pub async fn demo(
    dev: &Devnet,
    prompts: usize,
    max_tokens: u64,
    say: &mut dyn FnMut(&str),
) -> Result<Summary, DevnetError> {
    let batch = dev.opts.dir.join("batch.jsonl");
    std::fs::write(&batch, demo_batch(dev, prompts, max_tokens, 0)?).map_err(io_err(&batch))?;
    journey(dev, &batch, prompts, say).await
}

/// The honest journey with the buyer's batch file `batch` of `prompts` lines.
pub async fn journey(
    dev: &Devnet,
    batch: &Path,
    prompts: usize,
    say: &mut dyn FnMut(&str),
) -> Result<Summary, DevnetError> {
    let start = std::time::Instant::now();
    // A journey may follow others on the same devnet: its counts are differences.
    let counts0 = l1_counts(dev).await?;
    let audits0 = audits(dev)?;
    let block0 = dev
        .l1
        .reader()
        .get_block_number()
        .await
        .map_err(chain_err("blockNumber"))?
        + 1;
    let out = dev.opts.dir.join("completions.jsonl");
    say(&format!(
        "[1/6] buyer submits {prompts} prompts ({})",
        batch.display()
    ));
    let jobs = buy(dev, batch, &out, say).await?;
    show_completions(&out, say)?;

    say("[2/6] waiting for the receipts to be posted on L1");
    wait_finality(dev, &jobs, Finality::OnL1, 120).await?;
    let mut summary = Summary {
        jobs: jobs.len(),
        prompts,
        ..Summary::default()
    };
    for &job in &jobs {
        let r = verify(dev, job).await?;
        check_verified(&r, job, "inWindow")?;
        summary.shards += r["receipts"].as_u64().unwrap_or(0) as usize;
        summary.tokens_processed += r["tokensProcessed"].as_u64().unwrap_or(0);
    }
    say(&format!(
        "      every completion verified against the L1 roots ({} receipts)",
        summary.shards
    ));

    say("[3/6] waiting for the watcher's audits");
    let a = wait_audits(dev, audits0, summary.shards as u64, 300).await?;
    let (pass, fraud) = (a.pass, a.fraud);
    say(&format!("      {pass} passed, {fraud} fraud"));
    summary.audits_passed = pass;
    summary.audits_fraud = fraud;
    if dev.d.audits.is_some() {
        let v = wait_verified(dev, block0, summary.shards as u64, 120).await?;
        say(&format!(
            "      verification receipts on L1: {} pass, {} fail (seed from RANDAO, verifier drawn by stake)",
            v.0, v.1
        ));
        summary.verified_on_l1 = v;
    }

    say("[4/6] challenge window passes (L1 time moved forward); batches finalize");
    finalize(dev, &jobs).await?;
    for &job in &jobs {
        let r = verify(dev, job).await?;
        check_verified(&r, job, "finalized")?;
        summary.charged_wei += r["chargedWei"]
            .as_str()
            .and_then(|s| s.parse::<U256>().ok())
            .unwrap_or_default();
    }

    say("[5/6] epoch closes; the workers and the watcher (verifier) claim their fees");
    summary.payouts = close_epoch_and_claim(dev).await?;

    say("[6/6] summary");
    let counts = l1_counts(dev).await?;
    (summary.batches, summary.disputes, summary.slashes) = (
        counts.0 - counts0.0,
        counts.1 - counts0.1,
        counts.2 - counts0.2,
    );
    (summary.sequencer_gas, summary.total_gas) = gas_used(dev, block0).await?;
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// A `job verify` report says every completion checks out and the job is in `state`.
pub fn check_verified(r: &serde_json::Value, job: B256, state: &str) -> Result<(), DevnetError> {
    if r["ok"].as_bool() != Some(true) || r["state"].as_str() != Some(state) {
        return Err(DevnetError::Check(format!(
            "job {job}: want {state} and every proof valid, verify says {r}"
        )));
    }
    Ok(())
}
