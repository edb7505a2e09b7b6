//! Fixtures shared by the anvil tests.

use alloy::primitives::keccak256;
use verinfer_l1::bindings::SkuRegistry;

/// A one-layer test SKU at `price` wei per token (identity fields are dummy hashes).
pub fn test_sku(price: u128) -> SkuRegistry::Sku {
    SkuRegistry::Sku {
        weightRoot: keccak256(b"w"),
        tokenizerHash: keccak256(b"t"),
        configHash: keccak256(b"c"),
        pricePerToken: price,
        epsQ32: 42950,
        softmaxC: 1 << 37,
        vocab: 1000,
        layers: 1,
        arithVersion: verinfer_primitives::arith::SPEC_VERSION as u16,
        hasBias: false,
        active: true,
    }
}
