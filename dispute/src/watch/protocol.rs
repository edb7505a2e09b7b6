//! The watcher as a verifier of the audit protocol (`Audits.sol`, docs/AUDITS.md): it fixes a
//! batch's seed and draws its receipts when nobody has, audits the receipts assigned to it with
//! their on-chain audit seed and depth, and posts its verification receipts (a pass, or a fail
//! naming the dispute it opened). Its state is read back from L1 each round, so a restart
//! resumes without bookkeeping of its own and a report already on chain is never sent twice.

use std::collections::HashSet;
use std::sync::Mutex;

use alloy::providers::DynProvider;
use alloy_primitives::{Address, B256, U256};
use verinfer_l1::audits::{Depth, Status};
use verinfer_l1::bindings::Audits;

use super::audit::{GemmSelect, Policy};
use super::store::BatchRecord;

/// What the protocol asks of the watcher for one receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The batch's seed or draw is not on L1 yet: audit later, with the chain's seed.
    Wait,
    /// Assigned to us, report due by `deadline` (unix seconds).
    Mine {
        seed: B256,
        depth: Depth,
        deadline: u64,
    },
    /// Not ours to report (skipped, another verifier's, already reported): the watcher's own
    /// policy decides whether it audits anyway.
    NotMine,
}

/// The watcher's verifier role on one `Audits` deployment.
pub struct Protocol {
    audits: Audits::AuditsInstance<DynProvider>,
    me: Address,
    /// Batches whose receipts are drawn (no more seed or draw calls for them).
    drawn: Mutex<HashSet<u64>>,
    /// Receipts whose report is on chain or no longer ours to send.
    settled: Mutex<HashSet<(u64, u64)>>,
}

/// Sends a call and waits for a successful receipt.
macro_rules! send {
    ($call:expr, $what:expr) => {{
        let r = $call
            .send()
            .await
            .map_err(|e| format!("{}: {e}", $what))?
            .get_receipt()
            .await
            .map_err(|e| format!("{}: {e}", $what))?;
        if !r.status() {
            return Err(format!("{} reverted", $what));
        }
    }};
}

fn err(what: &str) -> impl Fn(alloy::contract::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The audit policy of a depth (the GEMMs and Freivalds rounds `Audits.Depth` names); the salt
/// and row sampling stay the watcher's own.
pub fn policy_for(depth: Depth, base: &Policy) -> Policy {
    Policy {
        gemms: match depth {
            Depth::One => GemmSelect::One,
            Depth::Mlp => GemmSelect::Mlp,
            Depth::All => GemmSelect::All,
        },
        freivalds_rounds: depth.rounds(),
        ..base.clone()
    }
}

impl Protocol {
    pub fn new(audits: Address, p: DynProvider, me: Address) -> Self {
        Protocol {
            audits: Audits::new(audits, p),
            me,
            drawn: Mutex::new(HashSet::new()),
            settled: Mutex::new(HashSet::new()),
        }
    }

    /// Fixes `batch`'s seed once it is due and draws its receipts, unless someone did.
    pub async fn prepare(&self, batch: &BatchRecord, head: u64) -> Result<(), String> {
        let id = batch.batch_id;
        if lock(&self.drawn).contains(&id) {
            return Ok(());
        }
        let bid = U256::from(id);
        let seed = self.audits.seeds(bid).call().await.map_err(err("seeds"))?;
        if seed.value.is_zero() {
            let target = self
                .audits
                .seedTarget(bid)
                .call()
                .await
                .map_err(err("seedTarget"))?;
            if U256::from(head) < target {
                return Ok(());
            }
            send!(self.audits.fixSeed(bid), "fixSeed");
        }
        let first = self
            .audits
            .auditOf(bid, U256::ZERO)
            .call()
            .await
            .map_err(err("auditOf"))?;
        if Status::from_u8(first.status) == Some(Status::None) {
            let receipts: Vec<Audits::Receipt> = batch
                .receipts
                .iter()
                .map(|e| e.receipt.clone().into())
                .collect();
            send!(self.audits.drawBatch(bid, receipts), "drawBatch");
        }
        lock(&self.drawn).insert(id);
        Ok(())
    }

    /// Our part in receipt `index` of batch `batch`.
    pub async fn plan(&self, batch: u64, index: u64) -> Result<Plan, String> {
        if lock(&self.settled).contains(&(batch, index)) {
            return Ok(Plan::NotMine);
        }
        let (b, i) = (U256::from(batch), U256::from(index));
        let a = self
            .audits
            .auditOf(b, i)
            .call()
            .await
            .map_err(err("auditOf"))?;
        let status = Status::from_u8(a.status).ok_or("unknown audit status")?;
        match status {
            Status::None => Ok(Plan::Wait),
            Status::Assigned if a.verifier == self.me => {
                let seed = self
                    .audits
                    .auditSeed(b, i)
                    .call()
                    .await
                    .map_err(err("auditSeed"))?;
                let depth = Depth::from_u8(a.depth).ok_or("unknown audit depth")?;
                Ok(Plan::Mine {
                    seed,
                    depth,
                    deadline: a.deadline.to::<u64>(),
                })
            }
            _ => {
                lock(&self.settled).insert((batch, index));
                Ok(Plan::NotMine)
            }
        }
    }

    /// Posts our verification receipt: a pass, or a fail naming our dispute `game`.
    pub async fn report(
        &self,
        batch: u64,
        index: u64,
        fail_game: Option<u64>,
        steps: Vec<u64>,
    ) -> Result<(), String> {
        let call = self.audits.postVerification(
            U256::from(batch),
            U256::from(index),
            fail_game.is_none(),
            U256::from(fail_game.unwrap_or(0)),
            steps,
        );
        send!(call, "postVerification");
        lock(&self.settled).insert((batch, index));
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
