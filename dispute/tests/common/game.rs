//! A game on a spawned anvil: contracts deployed with `verinfer_l1::deploy`, the tiny Llama SKU
//! registered, a staked worker, a funded buyer, a batch holding one receipt, and a challenger.
//! Helpers to tamper with one entry of a trace (a cheating worker or a lying challenger that
//! commits a wrong value consistently) and to move anvil's clock.

use std::sync::Arc;

use alloy::network::EthereumWallet;
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{keccak256, Address, Bytes, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use verinfer_dispute::play::{ChallengerView, DefenderView};
use verinfer_dispute::registration::{sku_fields, sku_shape};
use verinfer_dispute::{FoldStep, Opener, OutputProof, RowProof, StepProof};
use verinfer_l1::bindings::{BatchInbox, DisputeGame, SkuRegistry, StakeBridge};
use verinfer_l1::{deploy, job_digest, receipt_digest, DeployConfig, Deployment, JobRequest};
use verinfer_primitives::{Receipt, TraceState};
use verinfer_prover::{Backend, Engine, Program, Shard, Sku, SynthSpec, Tensor, TensorOpening};

use super::{build_sku, prompts};

pub const FOLD_CHUNK: u64 = 2;
pub const CLOCK: u64 = 3600;

pub fn eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

/// The SKU, the shard and the honest opener of it.
pub struct Shardset {
    pub sku: Arc<Sku>,
    pub shard: Shard,
    pub _dir: tempfile::TempDir,
}

pub fn shardset() -> Shardset {
    let spec = SynthSpec::tiny_llama();
    let dir = tempfile::tempdir().unwrap();
    let sku = build_sku(&spec, dir.path(), None);
    let shard = Shard {
        prompts: prompts(spec.tokenizer_vocab as u32),
        max_new_tokens: 2,
    };
    Shardset {
        sku,
        shard,
        _dir: dir,
    }
}

pub fn opener(s: &Shardset) -> Opener {
    Opener::new(
        Engine::new(s.sku.clone(), Backend::Reference).unwrap(),
        s.shard.clone(),
    )
    .unwrap()
}

/// The chain with everything deployed and one receipt posted in batch 0.
pub struct Env {
    pub anvil: AnvilInstance,
    pub d: Deployment,
    pub cfg: DeployConfig,
    pub worker: PrivateKeySigner,
    pub challenger: PrivateKeySigner,
    pub owner: DynProvider,
    pub receipt: Receipt,
}

pub fn connect(anvil: &AnvilInstance, s: &PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .wallet(EthereumWallet::from(s.clone()))
        .connect_http(anvil.endpoint_url())
        .erased()
}

impl Env {
    /// Deploys, registers, stakes and posts the worker's receipt of `s` with trace root
    /// `trace_root` (the honest one, or a cheater's).
    pub async fn new(s: &Shardset, trace_root: B256) -> anyhow::Result<Env> {
        let anvil = Anvil::new().try_spawn()?;
        let keys: Vec<PrivateKeySigner> =
            anvil.keys()[..5].iter().cloned().map(Into::into).collect();
        let (owner, sequencer, buyer, worker, challenger) = (
            keys[0].clone(),
            keys[1].clone(),
            keys[2].clone(),
            keys[3].clone(),
            keys[4].clone(),
        );
        let po = connect(&anvil, &owner);
        let chain_id = po.get_chain_id().await?;
        let cfg = DeployConfig {
            sequencer: sequencer.address(),
            arity: 4,
            fold_chunk: FOLD_CHUNK,
            clock: CLOCK,
            move_bond: U256::from(10_000_000_000_000_000u64),
            ..DeployConfig::default()
        };
        let typed = ProviderBuilder::new()
            .wallet(EthereumWallet::from(owner.clone()))
            .connect_http(anvil.endpoint_url());
        let d = deploy(typed, &cfg).await?;
        let reg = SkuRegistry::new(d.sku_registry, po.clone());
        reg.registerSku(s.sku.id(), sku_fields(&s.sku, 1))
            .send()
            .await?
            .get_receipt()
            .await?;
        reg.setShape(s.sku.id(), sku_shape(&s.sku))
            .send()
            .await?
            .get_receipt()
            .await?;
        let pw = connect(&anvil, &worker);
        let bw = StakeBridge::new(d.stake_bridge, pw.clone());
        bw.depositStake(1)
            .value(eth(4))
            .send()
            .await?
            .get_receipt()
            .await?;
        bw.setSku(s.sku.id(), true)
            .send()
            .await?
            .get_receipt()
            .await?;
        StakeBridge::new(d.stake_bridge, connect(&anvil, &buyer))
            .depositEscrow()
            .value(eth(1))
            .send()
            .await?
            .get_receipt()
            .await?;
        let run = Engine::new(s.sku.clone(), Backend::Reference)?.run(&s.shard)?;
        let prompts: Vec<verinfer_primitives::job::Prompt> = s
            .shard
            .prompts
            .iter()
            .map(|p| verinfer_primitives::job::Prompt::Tokens(p.clone()))
            .collect();
        let inputs = Bytes::from(verinfer_primitives::job::encode_inputs(&prompts));
        let req = JobRequest {
            buyer: buyer.address(),
            skuId: s.sku.id(),
            inputsHash: keccak256(&inputs),
            maxNewTokens: s.shard.max_new_tokens as u64,
            maxPrice: eth(1),
            nonce: 1,
        };
        let job_id = job_digest(&req, chain_id, d.batch_inbox);
        let mut receipt = run.receipt(job_id, 0, s.sku.id(), worker.address());
        receipt.traceRoot = trace_root;
        let rsig = worker.sign_hash_sync(&receipt_digest(&receipt, chain_id, d.batch_inbox))?;
        let jsig = buyer.sign_hash_sync(&job_id)?;
        let rc = BatchInbox::new(d.batch_inbox, connect(&anvil, &sequencer))
            .postBatch(
                vec![BatchInbox::SignedJob {
                    request: req.into(),
                    signature: Bytes::from(jsig.as_bytes().to_vec()),
                    inputs,
                }],
                vec![receipt.clone().into()],
                vec![Bytes::from(rsig.as_bytes().to_vec())],
            )
            .send()
            .await?
            .get_receipt()
            .await?;
        anyhow::ensure!(rc.status(), "postBatch reverted");
        Ok(Env {
            anvil,
            d,
            cfg,
            worker,
            challenger,
            owner: po,
            receipt,
        })
    }

    pub fn worker_p(&self) -> DynProvider {
        connect(&self.anvil, &self.worker)
    }

    pub fn challenger_p(&self) -> DynProvider {
        connect(&self.anvil, &self.challenger)
    }

    /// The challenger opens the trace dispute of the receipt; returns the game id.
    pub async fn open(&self) -> anyhow::Result<u64> {
        let g = DisputeGame::new(self.d.dispute_game, self.challenger_p());
        let n: u64 = g.gameCount().call().await?.to();
        let rc = g
            .open(U256::ZERO, self.receipt.clone().into(), U256::ZERO, vec![])
            .value(self.cfg.min_bond)
            .send()
            .await?
            .get_receipt()
            .await?;
        anyhow::ensure!(rc.status(), "open reverted");
        Ok(n)
    }

    pub async fn game(&self, id: u64) -> anyhow::Result<DisputeGame::Game> {
        Ok(DisputeGame::new(self.d.dispute_game, self.owner.clone())
            .getGame(U256::from(id))
            .call()
            .await?)
    }

    pub async fn stake(&self, who: Address) -> anyhow::Result<U256> {
        let a = StakeBridge::new(self.d.stake_bridge, self.owner.clone())
            .account(who)
            .call()
            .await?;
        Ok(U256::from(a.stake))
    }

    /// Moves anvil's clock `secs` forward and mines a block.
    pub async fn advance(&self, secs: u64) -> anyhow::Result<()> {
        self.owner
            .raw_request::<_, serde_json::Value>("evm_increaseTime".into(), (secs,))
            .await?;
        self.owner
            .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
            .await?;
        Ok(())
    }

    pub async fn automine(&self, on: bool) -> anyhow::Result<()> {
        self.owner
            .raw_request::<_, serde_json::Value>("evm_setAutomine".into(), (on,))
            .await?;
        Ok(())
    }
}

/// `t` with element `col` of row `row` (tree address) raised by one: an I32 tensor (GEMM
/// accumulators, pv rows).
pub fn tamper(t: &TensorOpening, address: u64, col: usize) -> TensorOpening {
    let i = t.row_index(address).expect("a present row");
    let mut tensor = t.tensor.clone();
    match &mut tensor {
        Tensor::I32 { cols, data } => data[i * *cols + col] += 1,
        other => panic!("tamper wants an I32 tensor, got {other:?}"),
    }
    let tree = tensor.tree(&t.addresses).unwrap();
    TensorOpening {
        step: t.step,
        tensor,
        addresses: t.addresses.clone(),
        tree,
    }
}

/// A trace whose step `step` committed `root` instead (later steps as before: the wrong value
/// was committed, the run went on from the right one).
pub fn retrace(t: &TraceState, step: u64, root: B256) -> TraceState {
    let mut out = TraceState::new(t.step_count());
    for (s, &r) in t.output_roots().iter().enumerate() {
        out.push(if s as u64 == step { root } else { r }).unwrap();
    }
    out
}

/// A trace with one entry of step `step` wrong, committed consistently: its state roots, its
/// tensor at that step, and openings of it (for the defender) built from the honest replay.
pub struct Tampered {
    pub honest: Opener,
    pub trace: TraceState,
    pub step: u64,
    pub tensor: TensorOpening,
}

impl Tampered {
    pub fn new(honest: Opener, step: u64, address: u64, col: usize) -> Tampered {
        let t = honest.reproduce(step).unwrap().output;
        let tensor = tamper(&t, address, col);
        let trace = retrace(honest.trace(), step, tensor.root());
        Tampered {
            honest,
            trace,
            step,
            tensor,
        }
    }

    /// The tampered tensors as a worker would serve them.
    pub fn source(&self) -> verinfer_dispute::watch::MemTrace {
        let mut m = std::collections::HashMap::new();
        m.insert(self.step, self.tensor.clone());
        verinfer_dispute::watch::MemTrace::new(self.trace.clone(), m)
    }
}

type R<T> = Result<T, verinfer_dispute::DisputeError>;

impl ChallengerView for Tampered {
    fn trace(&self) -> &TraceState {
        &self.trace
    }
    fn program(&self) -> Program {
        self.honest.program()
    }
    fn tensor(&self, step: u64) -> R<TensorOpening> {
        if step == self.step {
            return Ok(self.tensor.clone());
        }
        ChallengerView::tensor(&self.honest, step)
    }
    fn fold_states(&self, step: u64, row: u32, chunk: u64) -> R<Vec<Vec<u8>>> {
        ChallengerView::fold_states(&self.honest, step, row, chunk)
    }
}

impl DefenderView for Tampered {
    fn trace(&self) -> &TraceState {
        &self.trace
    }
    fn program(&self) -> Program {
        self.honest.program()
    }
    fn open(&self, step: u64, row: u32, col: u32) -> R<StepProof> {
        let mut op = self.honest.reproduce(step)?;
        if step == self.step {
            op.output = self.tensor.clone();
            op.post_state_root = self.trace.state_root(Some(step))?;
            op.state_proof_post = self.trace.proof(step, Some(step))?;
        }
        self.honest.open(&op, row, col)
    }
    fn open_fold(&self, step: u64, row: u32, chunk: u64) -> R<(RowProof, Bytes)> {
        DefenderView::open_fold(&self.honest, step, row, chunk)
    }
    fn fold_states(&self, step: u64, row: u32, chunk: u64) -> R<Vec<Vec<u8>>> {
        DefenderView::fold_states(&self.honest, step, row, chunk)
    }
    fn open_fold_chunk(&self, step: u64, row: u32, chunk: u64, lo: u64) -> R<FoldStep> {
        self.honest
            .open_fold_chunk(&self.honest.reproduce(step)?, row, chunk, lo)
    }
    fn open_output(&self, prompt: u32, j: u32) -> R<OutputProof> {
        self.honest.open_output(prompt, j)
    }
}
