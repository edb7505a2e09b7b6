//! The bridge and operator commands, for people who use Foundry every day: `stake`, `escrow`,
//! `rewards`, `sku register`. Human output by default, `--json` for scripts.

use alloy::providers::Provider;
use alloy_primitives::{Address, B256, U256};
use anyhow::Context;
use serde_json::json;
use verinfer_l1::bindings::{Audits, Rewards, SkuRegistry, StakeBridge};

use crate::l1args::{parse_amount, L1Args};
use crate::send_tx;

/// Output switch shared by the commands.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Out {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Out {
    fn print(&self, v: serde_json::Value, human: String) {
        if self.json {
            println!("{v}");
        } else {
            println!("{human}");
        }
    }
}

/// `verinfer stake ...`.
#[derive(clap::Subcommand)]
pub enum StakeCmd {
    /// Bond stake (a worker, a verifier, or both).
    Deposit {
        /// Amount: 2ether, 1500000000000000000, …
        amount: String,
        /// Roles: worker, verifier or both.
        #[arg(long, default_value = "worker")]
        roles: String,
        #[command(flatten)]
        l1: L1Args,
        #[command(flatten)]
        out: Out,
    },
    /// Start unbonding (stake stays slashable for the unbonding delay).
    Unbond {
        amount: String,
        #[command(flatten)]
        l1: L1Args,
        #[command(flatten)]
        out: Out,
    },
    /// Withdraw unbonded stake once its delay is over.
    Withdraw {
        #[command(flatten)]
        l1: L1Args,
        #[command(flatten)]
        out: Out,
    },
    /// Serve a SKU (the sequencer assigns its shards to you).
    Serve {
        sku: B256,
        #[command(flatten)]
        l1: L1Args,
        #[command(flatten)]
        out: Out,
    },
    /// Stop serving a SKU.
    Unserve {
        sku: B256,
        #[command(flatten)]
        l1: L1Args,
        #[command(flatten)]
        out: Out,
    },
    /// Join the verifiers the audit protocol draws for a SKU (needs verifier stake); with
    /// --leave, leave them (audits already assigned stay yours).
    Verify {
        sku: B256,
        #[arg(long)]
        leave: bool,
        #[command(flatten)]
        l1: L1Args,
        #[command(flatten)]
        out: Out,
    },
    /// Show an account (default: the key's).
    Show {
        address: Option<Address>,
        #[command(flatten)]
        l1: L1Args,
        #[command(flatten)]
        out: Out,
    },
}

/// `verinfer escrow ...` (the buyer's balance that pays for jobs).
#[derive(clap::Subcommand)]
pub enum EscrowCmd {
    /// Deposit into escrow.
    Deposit {
        amount: String,
        #[command(flatten)]
        l1: L1Args,
        #[command(flatten)]
        out: Out,
    },
    /// Request a withdrawal (paid after the escrow delay, so that accepted jobs stay funded).
    Unlock {
        amount: String,
        #[command(flatten)]
        l1: L1Args,
        #[command(flatten)]
        out: Out,
    },
    /// Withdraw what was unlocked, once its delay is over.
    Withdraw {
        #[command(flatten)]
        l1: L1Args,
        #[command(flatten)]
        out: Out,
    },
    /// Show an escrow (default: the key's).
    Show {
        address: Option<Address>,
        #[command(flatten)]
        l1: L1Args,
        #[command(flatten)]
        out: Out,
    },
}

/// `verinfer rewards ...`.
#[derive(clap::Subcommand)]
pub enum RewardsCmd {
    /// Claim fees and VINF of finished epochs (default: every finished epoch with unclaimed
    /// credits).
    Claim {
        #[arg(long)]
        epoch: Option<u64>,
        #[command(flatten)]
        l1: L1Args,
        #[command(flatten)]
        out: Out,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub fn stake(cmd: StakeCmd) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        match cmd {
            StakeCmd::Deposit { amount, roles, l1, out } => {
                let (p, who) = l1.signer()?;
                let b = StakeBridge::new(l1.addresses()?.stake_bridge, p);
                let roles = parse_roles(&roles)?;
                let wei = parse_amount(&amount)?;
                let tx = send_tx!("depositStake", b.depositStake(roles).value(wei));
                out.print(json!({"tx": tx, "account": who, "stakedWei": wei.to_string()}), format!("staked {wei} wei for {who} (tx {tx})"));
            }
            StakeCmd::Unbond { amount, l1, out } => {
                let (p, who) = l1.signer()?;
                let b = StakeBridge::new(l1.addresses()?.stake_bridge, p);
                let wei = parse_amount(&amount)?;
                let wei128 = u128::try_from(wei).context("amount too large")?;
                let tx = send_tx!("requestUnbond", b.requestUnbond(wei128));
                let a = b.account(who).call().await?;
                out.print(json!({"tx": tx, "unlockAt": a.unlockAt}), format!("unbonding {wei} wei, withdrawable at unix time {} (tx {tx})", a.unlockAt));
            }
            StakeCmd::Withdraw { l1, out } => {
                let (p, _) = l1.signer()?;
                let b = StakeBridge::new(l1.addresses()?.stake_bridge, p);
                let tx = send_tx!("withdrawStake", b.withdrawStake());
                out.print(json!({"tx": tx}), format!("withdrawn (tx {tx})"));
            }
            StakeCmd::Serve { sku, l1, out } => set_sku(&l1, out, sku, true).await?,
            StakeCmd::Unserve { sku, l1, out } => set_sku(&l1, out, sku, false).await?,
            StakeCmd::Verify { sku, leave, l1, out } => {
                let (p, who) = l1.signer()?;
                let addr = l1.addresses()?.audits.context("the deployment has no audits contract")?;
                let a = Audits::new(addr, p);
                let tx = if leave { send_tx!("leaveSku", a.leaveSku(sku)) } else { send_tx!("joinSku", a.joinSku(sku)) };
                let verb = if leave { "left" } else { "joined" };
                out.print(json!({"tx": tx, "sku": sku, "verifying": !leave}), format!("{who} {verb} the verifiers of {sku} (tx {tx})"));
            }
            StakeCmd::Show { address, l1, out } => {
                let who = match address { Some(a) => a, None => l1.key()?.address() };
                let b = StakeBridge::new(l1.addresses()?.stake_bridge, l1.reader()?);
                let a = b.account(who).call().await?;
                let reward = b.rewardOwed(who).call().await?;
                out.print(
                    json!({"account": who, "stakeWei": a.stake.to_string(), "pendingWei": a.pending.to_string(),
                           "unlockAt": a.unlockAt, "roles": a.roles, "strikes": a.strikes, "removed": a.removed,
                           "slashRewardOwedWei": reward.to_string()}),
                    format!("{who}: stake {} wei, unbonding {} wei (unlock {}), roles {}, strikes {}{}, slash rewards owed {reward} wei",
                        a.stake, a.pending, a.unlockAt, a.roles, a.strikes, if a.removed { ", REMOVED" } else { "" }),
                );
            }
        }
        Ok(())
    })
}

async fn set_sku(l1: &L1Args, out: Out, sku: B256, serving: bool) -> anyhow::Result<()> {
    let (p, who) = l1.signer()?;
    let b = StakeBridge::new(l1.addresses()?.stake_bridge, p);
    let tx = send_tx!("setSku", b.setSku(sku, serving));
    let verb = if serving {
        "serves"
    } else {
        "no longer serves"
    };
    out.print(
        json!({"tx": tx, "sku": sku, "serving": serving}),
        format!("{who} {verb} {sku} (tx {tx})"),
    );
    Ok(())
}

fn parse_roles(s: &str) -> anyhow::Result<u8> {
    match s {
        "worker" => Ok(1),
        "verifier" => Ok(2),
        "both" | "worker,verifier" | "verifier,worker" => Ok(3),
        other => anyhow::bail!("unknown roles {other:?}: worker, verifier or both"),
    }
}

pub fn escrow(cmd: EscrowCmd) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        match cmd {
            EscrowCmd::Deposit { amount, l1, out } => {
                let (p, who) = l1.signer()?;
                let b = StakeBridge::new(l1.addresses()?.stake_bridge, p);
                let wei = parse_amount(&amount)?;
                let tx = send_tx!("depositEscrow", b.depositEscrow().value(wei));
                out.print(json!({"tx": tx, "buyer": who, "depositedWei": wei.to_string()}), format!("deposited {wei} wei into {who}'s escrow (tx {tx})"));
            }
            EscrowCmd::Unlock { amount, l1, out } => {
                let (p, who) = l1.signer()?;
                let b = StakeBridge::new(l1.addresses()?.stake_bridge, p);
                let wei = u128::try_from(parse_amount(&amount)?).context("amount too large")?;
                let tx = send_tx!("requestEscrowWithdrawal", b.requestEscrowWithdrawal(wei));
                let e = b.escrow(who).call().await?;
                out.print(json!({"tx": tx, "unlockAt": e.unlockAt}), format!("{wei} wei unlocking, withdrawable at unix time {} (tx {tx})", e.unlockAt));
            }
            EscrowCmd::Withdraw { l1, out } => {
                let (p, _) = l1.signer()?;
                let b = StakeBridge::new(l1.addresses()?.stake_bridge, p);
                let tx = send_tx!("withdrawEscrow", b.withdrawEscrow());
                out.print(json!({"tx": tx}), format!("withdrawn (tx {tx})"));
            }
            EscrowCmd::Show { address, l1, out } => {
                let who = match address { Some(a) => a, None => l1.key()?.address() };
                let b = StakeBridge::new(l1.addresses()?.stake_bridge, l1.reader()?);
                let e = b.escrow(who).call().await?;
                out.print(
                    json!({"buyer": who, "balanceWei": e.balance.to_string(), "pendingWei": e.pending.to_string(), "unlockAt": e.unlockAt}),
                    format!("{who}: escrow {} wei, unlocking {} wei (at {})", e.balance, e.pending, e.unlockAt),
                );
            }
        }
        Ok(())
    })
}

pub fn rewards(cmd: RewardsCmd) -> anyhow::Result<()> {
    let RewardsCmd::Claim { epoch, l1, out } = cmd;
    runtime()?.block_on(async move {
        let (p, who) = l1.signer()?;
        let r = Rewards::new(l1.addresses()?.rewards, p.clone());
        let cur = r.currentEpoch().call().await?.to::<u64>();
        let epochs: Vec<u64> = match epoch {
            Some(e) => vec![e],
            None => {
                let mut v = Vec::new();
                for e in 0..cur {
                    let w = r.feeWeight(U256::from(e), who).call().await?;
                    if w > U256::ZERO && !r.claimed(U256::from(e), who).call().await? {
                        v.push(e);
                    }
                }
                v
            }
        };
        let (mut fees, mut minted) = (U256::ZERO, U256::ZERO);
        let mut txs = Vec::new();
        for e in &epochs {
            let eu = U256::from(*e);
            let tx = send_tx!(format!("claim({e})"), r.claim(eu));
            let rc = p.get_transaction_receipt(tx).await?.context("claim receipt")?;
            for log in rc.inner.logs() {
                if let Ok(c) = log.log_decode::<Rewards::Claimed>() {
                    fees += c.inner.data.fees;
                    minted += c.inner.data.minted;
                }
            }
            txs.push(tx);
        }
        out.print(
            json!({"worker": who, "epochs": epochs, "feesWei": fees.to_string(), "mintedVinf": minted.to_string(), "txs": txs}),
            if epochs.is_empty() {
                format!("nothing to claim for {who} (current epoch {cur})")
            } else {
                format!("{who} claimed epochs {epochs:?}: {fees} wei of fees, {minted} VINF (wei units)")
            },
        );
        Ok(())
    })
}

/// `verinfer sku register FILE --price WEI` (the registry owner).
pub fn register_sku(
    file: &std::path::Path,
    price: &str,
    l1: &L1Args,
    out: Out,
) -> anyhow::Result<()> {
    let sku = verinfer_prover::Sku::load(file)
        .with_context(|| format!("cannot load {}", file.display()))?;
    let price = u128::try_from(parse_amount(price)?).context("price too large")?;
    runtime()?.block_on(async move {
        let (p, _) = l1.signer()?;
        let reg = SkuRegistry::new(l1.addresses()?.sku_registry, p);
        let fields = verinfer_dispute::registration::sku_fields(&sku, price);
        let tx1 = send_tx!("registerSku", reg.registerSku(sku.id(), fields));
        let tx2 = send_tx!(
            "setShape",
            reg.setShape(sku.id(), verinfer_dispute::registration::sku_shape(&sku))
        );
        out.print(
            json!({"sku": sku.id(), "pricePerTokenWei": price.to_string(), "txs": [tx1, tx2]}),
            format!("SKU {} registered at {price} wei/token", sku.id()),
        );
        Ok(())
    })
}
