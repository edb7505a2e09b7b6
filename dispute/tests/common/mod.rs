//! Shared pieces of the engine-against-contract tests: tiny SKUs, the contracts in revm.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use alloy::primitives::B256;
use alloy::primitives::{Address, Bytes};
use alloy::sol_types::{SolCall, SolConstructor};
use verinfer_dispute::registration::{sku_fields, sku_shape};
use verinfer_dispute::{FoldContext, FoldStep};
use verinfer_dispute::{OutputContext, OutputProof, StepContext, StepProof};
use verinfer_l1::bindings::{FoldProver, OneStepVerifier, SkuRegistry, StepProver};
use verinfer_l1::evm::Evm;
use verinfer_prover::{sku, BuildOptions, Checkpoint, Sku, SynthSpec};

const MAX_SEQ: usize = 32;

pub fn build_sku(spec: &SynthSpec, dir: &Path, eos: Option<&[u32]>) -> Arc<Sku> {
    spec.write(dir).unwrap();
    if let Some(eos) = eos {
        let path = dir.join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        cfg["eos_token_id"] = serde_json::json!(eos);
        std::fs::write(&path, cfg.to_string()).unwrap();
    }
    let ck = Checkpoint::open(dir).unwrap();
    let bytes = sku::build(&ck, &BuildOptions { max_seq: MAX_SEQ }).unwrap();
    Arc::new(Sku::from_bytes(bytes).unwrap())
}

/// The SKU registered with its shape, the one-step verifier and the step prover, in revm.
pub struct Chain {
    evm: Evm,
    prover: Address,
    folder: Address,
}

/// Positions per chunk of the FoldProver in these tests (small, so that short rows fold into
/// several chunks).
pub const FOLD_CHUNK: u64 = 2;

impl Chain {
    pub fn new(sku: &Sku) -> Self {
        let mut evm = Evm::new();
        let owner = evm.caller();
        let deploy = |evm: &mut Evm, code: &Bytes, args: Vec<u8>| {
            let mut init = code.to_vec();
            init.extend(args);
            evm.deploy(init.into()).unwrap()
        };
        let reg = deploy(
            &mut evm,
            &SkuRegistry::BYTECODE,
            SkuRegistry::constructorCall { owner_: owner }.abi_encode(),
        );
        let call = SkuRegistry::registerSkuCall {
            skuId: sku.id(),
            sku: sku_fields(sku, 1),
        };
        evm.send(reg, call.abi_encode().into()).unwrap();
        let shape = SkuRegistry::setShapeCall {
            skuId: sku.id(),
            shape: sku_shape(sku),
        };
        evm.send(reg, shape.abi_encode().into()).unwrap();
        let verifier = deploy(&mut evm, &OneStepVerifier::BYTECODE, Vec::new());
        let prover = deploy(
            &mut evm,
            &StepProver::BYTECODE,
            StepProver::constructorCall {
                skus_: reg,
                verifier_: verifier,
            }
            .abi_encode(),
        );
        let folder = deploy(
            &mut evm,
            &FoldProver::BYTECODE,
            FoldProver::constructorCall {
                skus_: reg,
                steps_: prover,
                verifier_: verifier,
                chunk_: alloy::primitives::U256::from(FOLD_CHUNK),
            }
            .abi_encode(),
        );
        Chain {
            evm,
            prover,
            folder,
        }
    }

    /// The verdict (true = fraud) or the revert.
    pub fn check(&mut self, c: &StepContext, p: &StepProof) -> Result<bool, String> {
        let data: Vec<u8> = match p {
            StepProof::Gemm(g) => StepProver::checkGemmCall {
                c: c.clone(),
                p: (**g).clone(),
            }
            .abi_encode(),
            StepProof::Row(r) => StepProver::checkRowCall {
                c: c.clone(),
                p: r.clone(),
            }
            .abi_encode(),
        };
        let out = self.evm.call(self.prover, data.into())?;
        // Both calls return the verdict first.
        Ok(out.output.get(31).copied() == Some(1))
    }
}

impl Chain {
    /// `FoldProver.start`: (fraud, chunks, hash of the zero accumulator), or the revert.
    pub fn fold_start(
        &mut self,
        c: &StepContext,
        p: &verinfer_dispute::RowProof,
        final_state: &Bytes,
    ) -> Result<(bool, u64, B256), String> {
        let data = FoldProver::startCall {
            c: verinfer_dispute::recast(c).map_err(|e| e.to_string())?,
            p: verinfer_dispute::recast(p).map_err(|e| e.to_string())?,
            finalState: final_state.clone(),
        }
        .abi_encode();
        let out = self.evm.call(self.folder, data.into())?;
        let r =
            FoldProver::startCall::abi_decode_returns(&out.output).map_err(|e| e.to_string())?;
        Ok((r.fraud, r.chunks.to::<u64>(), r.initHash))
    }

    /// `FoldProver.step`: the verdict (true = fraud), or the revert.
    pub fn fold_step(&mut self, f: &FoldContext, s: &FoldStep) -> Result<bool, String> {
        let data = FoldProver::stepCall {
            f: f.clone(),
            s: s.clone(),
        }
        .abi_encode();
        let out = self.evm.call(self.folder, data.into())?;
        Ok(out.output.get(31).copied() == Some(1))
    }

    /// The verdict of an output challenge (true = fraud) or the revert.
    pub fn check_output(&mut self, c: &OutputContext, p: &OutputProof) -> Result<bool, String> {
        let data = StepProver::checkOutputCall {
            c: c.clone(),
            p: p.clone(),
        }
        .abi_encode();
        let out = self.evm.call(self.prover, data.into())?;
        Ok(out.output.get(31).copied() == Some(1))
    }
}

/// Three token-id prompts of different lengths inside the vocabulary.
pub fn prompts(valid_vocab: u32) -> Vec<Vec<u32>> {
    let p = |len: usize, salt: u32| -> Vec<u32> {
        (0..len as u32)
            .map(|i| (i * 37 + salt * 11 + 5) % valid_vocab)
            .collect()
    };
    vec![p(5, 1), p(2, 2), p(7, 3)]
}
pub mod game;
