//! Shared types and encodings of Verinfer.
//!
//! Everything here is pure (no I/O) and EVM-compatible: hashes are keccak256 and every
//! encoding that is hashed can be rebuilt by the Solidity contracts in `l1-bridge/`.

pub mod arith;
pub mod job;
pub mod merkle;
pub mod receipt;
pub mod rows;
pub mod sparse;
pub mod trace;

pub use trace::TraceState;

pub use alloy_primitives::{keccak256, Address, B256, U256};
pub use merkle::{MerkleError, MerkleProof, MerkleTree};
pub use receipt::Receipt;
pub use sparse::SparseMerkleTree;
