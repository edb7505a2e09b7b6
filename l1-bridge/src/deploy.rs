//! Deploys and wires the whole contract set in one call (used by tests, the devnet and the
//! sequencer's integration tests).

use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, WalletProvider};

use crate::audits::AuditParams;
use crate::bindings::{
    Audits, BatchInbox, DisputeGame, FoldProver, OneStepVerifier, Rewards, SkuRegistry,
    StakeBridge, StepProver, Timelock,
};
use crate::L1Error;

/// Parameters of a deployment. `Default` suits a local devnet (short windows, small stakes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    /// Who may post batches.
    pub sequencer: Address,
    /// Seconds a batch can be challenged after posting.
    pub challenge_window: u64,
    /// Seconds unbonded stake stays slashable; must exceed the challenge window plus the longest
    /// dispute (checked on chain when the game is registered).
    pub unbonding_delay: u64,
    /// Seconds between a buyer's escrow withdrawal request and the payout.
    pub escrow_delay: u64,
    /// Minimum stake (wei) of a worker that may be assigned shards.
    pub min_stake: u128,
    /// Lost disputes after which a staker is removed.
    pub max_strikes: u8,
    /// Seconds per rewards epoch.
    pub epoch_length: u64,
    /// VINF (wei units) minted per epoch, split pro rata to credits.
    pub inflation_per_epoch: U256,
    /// Credits (verified tokens) per epoch needed to stay in the active set.
    pub min_credits: U256,
    /// Bisection arity k (k − 1 states posted per round).
    pub arity: u64,
    /// Seconds on each side's chess clock in a dispute.
    pub clock: u64,
    /// A dispute move that leaves its side less than this many seconds tops its clock up to
    /// it (at most `MAX_EXTENSIONS` = 8 times per side and game); at most `clock`.
    pub clock_extension: u64,
    /// Smallest challenger bond (wei).
    pub min_bond: U256,
    /// Wei carried by every dispute move that does not end the game (bisect, choose, nameEntry,
    /// foldRow), all paid to the game's winner. Zero on the devnet default.
    pub move_bond: U256,
    /// Share of stake slashed for a proven fraud (or a failed opening), basis points.
    pub slash_fraud_bps: u64,
    /// Share of stake slashed for a timeout during bisection, basis points.
    pub slash_timeout_bps: u64,
    /// Share of a loser's slashed stake or bond paid to the winner, basis points (rest burned).
    pub reward_bps: u64,
    /// Positions per chunk when a long pv row is settled by bisecting inside it.
    pub fold_chunk: u64,
    /// Seconds a slash reward waits before it can be claimed; during it the guardian (or the
    /// owner) can revert the slash (OP's DelayedWETH uses 3.5 days).
    pub payout_delay: u64,
    /// Hand every contract to a timelock after wiring (production). `None` keeps the deployer
    /// as the owner (devnets and tests that register SKUs directly).
    pub governance: Option<Governance>,
    /// The audit protocol (`Audits.sol`). `None` leaves it out, and then every valid receipt
    /// earns its fee at finalization: only for tests of settlement or disputes alone.
    pub audits: Option<AuditParams>,
}

/// Who governs a production deployment: a timelock owns every contract, `admin` schedules
/// calls through it, `guardian` may cancel them and pause/revert slash payouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Governance {
    /// Schedules privileged calls (a multisig).
    pub admin: Address,
    /// Cancels scheduled calls, pauses slash payouts, reverts a slash within its delay.
    pub guardian: Address,
    /// Timelock delay in seconds; must exceed the unbonding delay so that a staker can leave
    /// before a scheduled change takes effect (checked here).
    pub delay: u64,
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            sequencer: Address::ZERO,
            challenge_window: 600,
            unbonding_delay: 7 * 24 * 3600,
            escrow_delay: 600,
            min_stake: 1_000_000_000_000_000_000,
            max_strikes: 3,
            epoch_length: 3600,
            inflation_per_epoch: U256::from(1_000u64) * U256::from(10u64).pow(U256::from(18u64)),
            min_credits: U256::from(1u64),
            arity: 32,
            clock: 3600,
            clock_extension: 300,
            min_bond: U256::from(100_000_000_000_000_000u64),
            move_bond: U256::ZERO,
            slash_fraud_bps: 5000,
            slash_timeout_bps: 1000,
            reward_bps: 5000,
            fold_chunk: 64,
            payout_delay: 302_400,
            governance: None,
            audits: Some(AuditParams::for_window(600)),
        }
    }
}

impl DeployConfig {
    /// The dispute game's mainnet parameters (docs/CONTRACTS.md, "Parameters", says why): one
    /// day per chess clock, OP's 3-hour extension, a 0.5 ETH opening bond and 0.01 ETH per move.
    /// The other fields are left as they are.
    pub fn with_mainnet_game(self) -> Self {
        Self {
            arity: 32,
            clock: 24 * 3600,
            clock_extension: 3 * 3600,
            min_bond: U256::from(500_000_000_000_000_000u64),
            move_bond: U256::from(10_000_000_000_000_000u64),
            slash_fraud_bps: 5000,
            slash_timeout_bps: 1000,
            reward_bps: 5000,
            ..self
        }
    }
}

/// Addresses of a deployed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    pub sku_registry: Address,
    pub stake_bridge: Address,
    pub batch_inbox: Address,
    pub rewards: Address,
    pub token: Address,
    pub one_step_verifier: Address,
    pub step_prover: Address,
    pub fold_prover: Address,
    pub dispute_game: Address,
    /// The audit protocol, when `DeployConfig::audits` was given.
    pub audits: Option<Address>,
    /// The timelock owning every contract, when `DeployConfig::governance` was given.
    pub timelock: Option<Address>,
}

/// Deploys SkuRegistry, StakeBridge, Rewards (+ VerinferToken), BatchInbox, OneStepVerifier,
/// StepProver, FoldProver and DisputeGame from the provider's default sender (which becomes the owner of each) and wires
/// them together (the bridge's inbox and fee sink, the rewards' inbox, the inbox's game, the
/// bridge's registered game). With `cfg.governance`, it then deploys a `Timelock`, makes its
/// guardian the bridge's guardian and hands it the ownership of every owned contract.
pub async fn deploy<P: Provider + WalletProvider + Clone>(
    provider: P,
    cfg: &DeployConfig,
) -> Result<Deployment, L1Error> {
    // A timelock that runs out before unbonding does would let a hostile change land while
    // stakers who saw it scheduled are still locked in.
    let too_short = cfg
        .governance
        .as_ref()
        .filter(|g| g.delay <= cfg.unbonding_delay);
    if let Some(g) = too_short {
        return Err(L1Error::Config(format!(
            "timelock delay {}s must exceed the unbonding delay {}s",
            g.delay, cfg.unbonding_delay
        )));
    }
    let owner = provider.default_signer_address();

    let skus = SkuRegistry::deploy(provider.clone(), owner)
        .await
        .map_err(|source| L1Error::Deploy {
            contract: "SkuRegistry",
            source,
        })?;
    let bridge = StakeBridge::deploy(
        provider.clone(),
        owner,
        cfg.unbonding_delay,
        cfg.escrow_delay,
        cfg.min_stake,
        cfg.max_strikes,
        cfg.payout_delay,
    )
    .await
    .map_err(|source| L1Error::Deploy {
        contract: "StakeBridge",
        source,
    })?;
    let rewards = Rewards::deploy(
        provider.clone(),
        owner,
        *bridge.address(),
        cfg.epoch_length,
        cfg.inflation_per_epoch,
        cfg.min_credits,
    )
    .await
    .map_err(|source| L1Error::Deploy {
        contract: "Rewards",
        source,
    })?;
    let inbox = BatchInbox::deploy(
        provider.clone(),
        owner,
        cfg.sequencer,
        *skus.address(),
        *bridge.address(),
        *rewards.address(),
        cfg.challenge_window,
    )
    .await
    .map_err(|source| L1Error::Deploy {
        contract: "BatchInbox",
        source,
    })?;

    let verifier = OneStepVerifier::deploy(provider.clone())
        .await
        .map_err(|source| L1Error::Deploy {
            contract: "OneStepVerifier",
            source,
        })?;
    let prover = StepProver::deploy(provider.clone(), *skus.address(), *verifier.address())
        .await
        .map_err(|source| L1Error::Deploy {
            contract: "StepProver",
            source,
        })?;
    let folder = FoldProver::deploy(
        provider.clone(),
        *skus.address(),
        *prover.address(),
        *verifier.address(),
        U256::from(cfg.fold_chunk),
    )
    .await
    .map_err(|source| L1Error::Deploy {
        contract: "FoldProver",
        source,
    })?;
    let game = DisputeGame::deploy(
        provider.clone(),
        *bridge.address(),
        *inbox.address(),
        *skus.address(),
        *prover.address(),
        *folder.address(),
        DisputeGame::Params {
            arity: U256::from(cfg.arity),
            clock: cfg.clock,
            clockExtension: cfg.clock_extension,
            minBond: cfg.min_bond,
            moveBond: cfg.move_bond,
            slashFraudBps: U256::from(cfg.slash_fraud_bps),
            slashTimeoutBps: U256::from(cfg.slash_timeout_bps),
            rewardBps: U256::from(cfg.reward_bps),
        },
    )
    .await
    .map_err(|source| L1Error::Deploy {
        contract: "DisputeGame",
        source,
    })?;

    confirm(
        "StakeBridge.setModules",
        bridge
            .setModules(*inbox.address(), *rewards.address())
            .send()
            .await,
    )
    .await?;
    confirm(
        "Rewards.setInbox",
        rewards.setInbox(*inbox.address()).send().await,
    )
    .await?;
    confirm(
        "BatchInbox.setGame",
        inbox.setGame(*game.address()).send().await,
    )
    .await?;
    confirm(
        "StakeBridge.registerGame",
        bridge.registerGame(*game.address()).send().await,
    )
    .await?;

    let audits = match &cfg.audits {
        Some(a) => {
            Some(deploy_audits(provider.clone(), a, owner, &inbox, &bridge, *game.address()).await?)
        }
        None => None,
    };

    let timelock = match &cfg.governance {
        Some(g) => Some(
            hand_over(
                provider.clone(),
                g,
                &bridge,
                &[
                    *skus.address(),
                    *bridge.address(),
                    *rewards.address(),
                    *inbox.address(),
                ]
                .into_iter()
                .chain(audits)
                .collect::<Vec<_>>(),
            )
            .await?,
        ),
        None => None,
    };

    let token = rewards
        .token()
        .call()
        .await
        .map_err(|source| L1Error::Call {
            call: "Rewards.token",
            source,
        })?;
    Ok(Deployment {
        sku_registry: *skus.address(),
        stake_bridge: *bridge.address(),
        batch_inbox: *inbox.address(),
        rewards: *rewards.address(),
        token,
        one_step_verifier: *verifier.address(),
        step_prover: *prover.address(),
        fold_prover: *folder.address(),
        dispute_game: *game.address(),
        audits,
        timelock,
    })
}

/// Deploys `Audits` and wires it: the inbox settles through it, the bridge lets it slash.
async fn deploy_audits<P: Provider + WalletProvider + Clone>(
    provider: P,
    a: &AuditParams,
    owner: Address,
    inbox: &BatchInbox::BatchInboxInstance<P>,
    bridge: &StakeBridge::StakeBridgeInstance<P>,
    game: Address,
) -> Result<Address, L1Error> {
    let audits = Audits::deploy(
        provider.clone(),
        owner,
        *inbox.address(),
        *bridge.address(),
        game,
        a.to_abi(),
    )
    .await
    .map_err(|source| L1Error::Deploy {
        contract: "Audits",
        source,
    })?;
    confirm(
        "BatchInbox.setAudits",
        inbox.setAudits(*audits.address()).send().await,
    )
    .await?;
    confirm(
        "StakeBridge.registerGame(audits)",
        bridge.registerGame(*audits.address()).send().await,
    )
    .await?;
    Ok(*audits.address())
}

/// Deploys the timelock, sets the bridge's guardian and transfers every owned contract to it.
async fn hand_over<P: Provider + WalletProvider + Clone>(
    provider: P,
    g: &Governance,
    bridge: &StakeBridge::StakeBridgeInstance<P>,
    owned: &[Address],
) -> Result<Address, L1Error> {
    let tl = Timelock::deploy(provider.clone(), g.admin, g.guardian, U256::from(g.delay))
        .await
        .map_err(|source| L1Error::Deploy {
            contract: "Timelock",
            source,
        })?;
    confirm(
        "StakeBridge.setGuardian",
        bridge.setGuardian(g.guardian).send().await,
    )
    .await?;
    for at in owned {
        // Every owned contract shares `Owned.transferOwnership`; the bridge's binding has it.
        let c = StakeBridge::new(*at, provider.clone());
        confirm(
            "transferOwnership",
            c.transferOwnership(*tl.address()).send().await,
        )
        .await?;
    }
    Ok(*tl.address())
}

/// Waits for a sent transaction and fails unless it succeeded.
async fn confirm<N: alloy::network::Network>(
    call: &'static str,
    sent: Result<alloy::providers::PendingTransactionBuilder<N>, alloy::contract::Error>,
) -> Result<(), L1Error> {
    use alloy::network::ReceiptResponse;
    let pending = sent.map_err(|source| L1Error::Call { call, source })?;
    let receipt = pending.get_receipt().await.map_err(|e| L1Error::Pending {
        call,
        reason: e.to_string(),
    })?;
    if receipt.status() {
        Ok(())
    } else {
        Err(L1Error::Pending {
            call,
            reason: "reverted".to_string(),
        })
    }
}
