//! The receipt a worker signs for one shard, ABI-encoded exactly as the L1 contracts read it.

use alloy_primitives::{keccak256, B256};
use alloy_sol_types::{sol, SolValue};

sol! {
    /// What a worker claims about one shard. `receiptHash = keccak256(abi.encode(receipt))`.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct Receipt {
        /// The job the shard belongs to.
        bytes32 jobId;
        /// Position of the shard inside the job.
        uint32 shardIndex;
        /// The SKU that fixes model, quantization and arithmetic.
        bytes32 skuId;
        /// The worker who ran it (its staking address).
        address worker;
        /// Merkle root of the shard's input (prompt token ids, one leaf per prompt).
        bytes32 inputRoot;
        /// Merkle root of the generated token ids (one leaf per prompt).
        bytes32 outputRoot;
        /// State root after the last step of the trace (see `trace`).
        bytes32 traceRoot;
        /// Number of steps of the shard's program.
        uint64 stepCount;
        /// Tokens processed (prompt + generated), the unit of credit.
        uint64 tokensProcessed;
    }
}

impl Receipt {
    /// keccak256 of the ABI encoding: the identity of a receipt on L1.
    pub fn hash(&self) -> B256 {
        keccak256(self.abi_encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::Address;

    #[test]
    fn hash_is_over_the_abi_encoding() {
        let r = Receipt {
            jobId: B256::repeat_byte(1),
            shardIndex: 2,
            skuId: B256::repeat_byte(3),
            worker: Address::repeat_byte(4),
            inputRoot: B256::repeat_byte(5),
            outputRoot: B256::repeat_byte(6),
            traceRoot: B256::repeat_byte(7),
            stepCount: 8,
            tokensProcessed: 9,
        };
        let enc = r.abi_encode();
        assert_eq!(enc.len(), 9 * 32);
        assert_eq!(r.hash(), keccak256(&enc));
        assert_eq!(Receipt::abi_decode(&enc).unwrap(), r);
    }
}
