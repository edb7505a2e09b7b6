//! What the L1 `SkuRegistry` must hold about a SKU file for its receipts to be settled: the
//! registration fields and the attention shape / row layout, both read from the SKU itself.

use verinfer_l1::bindings::SkuRegistry;
use verinfer_primitives::arith::SPEC_VERSION;
use verinfer_prover::Sku;

/// `registerSku`'s fields for `sku` at `price_per_token` wei.
pub fn sku_fields(sku: &Sku, price_per_token: u128) -> SkuRegistry::Sku {
    let cfg = sku.config();
    let h = sku.header();
    SkuRegistry::Sku {
        weightRoot: h.weight_root,
        tokenizerHash: h.tokenizer_hash,
        configHash: h.config_hash,
        pricePerToken: price_per_token,
        epsQ32: cfg.eps_q32,
        softmaxC: cfg.softmax_c,
        // argmax only picks real tokens: the registry's vocabulary is the tokenizer's.
        vocab: cfg.valid_vocab as u32,
        layers: cfg.layers as u16,
        arithVersion: SPEC_VERSION as u16,
        hasBias: cfg.qkv_bias,
        active: true,
    }
}

/// `setShape`'s argument for `sku`.
pub fn sku_shape(sku: &Sku) -> SkuRegistry::Shape {
    let cfg = sku.config();
    SkuRegistry::Shape {
        heads: cfg.heads as u16,
        kvHeads: cfg.kv_heads as u16,
        headDim: cfg.head_dim as u16,
        maxSeq: cfg.max_seq as u32,
        eosIds: cfg.eos_ids.clone(),
    }
}
