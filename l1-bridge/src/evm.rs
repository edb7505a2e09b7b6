//! A minimal in-process EVM (revm, Cancun rules) for running the contracts without a node:
//! deploy, send state-changing calls, then any number of read-only calls whose state changes
//! are dropped. Used by the differential tests, the gas benchmark and the dispute crate's
//! engine-against-contract tests.

use revm::context::result::ExecutionResult;
use revm::context::TxEnv;
use revm::database::{CacheDB, EmptyDB};
use revm::handler::MainnetContext;
use revm::primitives::hardfork::SpecId;
use revm::primitives::{Address, Bytes, TxKind, U256};
use revm::state::AccountInfo;
use revm::{Context, ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext, MainnetEvm};

/// Gas limit of every transaction (far above any one-step call).
const GAS: u64 = 1_000_000_000;

/// An EVM with one funded caller.
pub struct Evm {
    evm: MainnetEvm<MainnetContext<CacheDB<EmptyDB>>>,
    caller: Address,
    nonce: u64,
}

/// A call's return data and the gas its transaction used (intrinsic + calldata + execution).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub output: Bytes,
    pub gas: u64,
}

impl Default for Evm {
    fn default() -> Self {
        Self::new()
    }
}

impl Evm {
    /// A fresh chain with one funded caller (the deployer, hence the owner of what it deploys).
    pub fn new() -> Self {
        let caller = Address::repeat_byte(0xca);
        let mut db = CacheDB::<EmptyDB>::default();
        db.insert_account_info(
            caller,
            AccountInfo {
                balance: U256::from(10u64).pow(U256::from(30u64)),
                ..Default::default()
            },
        );
        let evm = Context::mainnet()
            .with_db(db)
            .modify_cfg_chained(|c| {
                c.spec = SpecId::CANCUN;
                c.limit_contract_code_size = Some(usize::MAX);
            })
            .modify_block_chained(|b| {
                b.gas_limit = GAS;
                b.basefee = 0;
            })
            .build_mainnet();
        Self {
            evm,
            caller,
            nonce: 0,
        }
    }

    fn tx(&self, kind: TxKind, data: Bytes) -> TxEnv {
        TxEnv::builder()
            .caller(self.caller)
            .kind(kind)
            .data(data)
            .gas_limit(GAS)
            .gas_price(0)
            .nonce(self.nonce)
            .build_fill()
    }

    /// Deploys `initcode` (committed) and returns the new contract's address.
    pub fn deploy(&mut self, initcode: Bytes) -> Result<Address, String> {
        let tx = self.tx(TxKind::Create, initcode);
        let res = self
            .evm
            .transact_commit(tx)
            .map_err(|e| format!("deploy did not run: {e:?}"))?;
        self.nonce += 1;
        res.created_address()
            .ok_or_else(|| format!("deploy failed: {res:?}"))
    }

    /// The caller of every transaction.
    pub fn caller(&self) -> Address {
        self.caller
    }

    /// Calls `to` with `data` and keeps its state changes; Err(reason) on revert or halt.
    pub fn send(&mut self, to: Address, data: Bytes) -> Result<Outcome, String> {
        let tx = self.tx(TxKind::Call(to), data);
        let res = self
            .evm
            .transact_commit(tx)
            .map_err(|e| format!("call did not run: {e:?}"))?;
        self.nonce += 1;
        outcome(res)
    }

    /// Calls `to` with `data` without keeping any state change; Err(reason) on revert or halt.
    pub fn call(&mut self, to: Address, data: Bytes) -> Result<Outcome, String> {
        let tx = self.tx(TxKind::Call(to), data);
        let res = self
            .evm
            .transact(tx)
            .map_err(|e| format!("call did not run: {e:?}"))?
            .result;
        outcome(res)
    }
}

/// Return data and gas of a finished transaction, or why it failed.
fn outcome<H>(res: ExecutionResult<H>) -> Result<Outcome, String> {
    let gas = res.tx_gas_used();
    let ok = res.is_success();
    let output = res.into_output().unwrap_or_default();
    if ok {
        Ok(Outcome { output, gas })
    } else {
        Err(format!("reverted or halted, output {output}"))
    }
}
