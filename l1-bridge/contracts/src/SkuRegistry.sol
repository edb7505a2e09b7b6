// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Owned} from "./Types.sol";

/// @title SkuRegistry
/// @notice The deterministic inference SKUs the rollup sells. A SKU pins everything that decides
/// the output bit for bit: the weight root (Merkle root over every weight matrix's root), the
/// tokenizer hash, the arithmetic spec version, the config hash and the header constants the L1
/// needs to re-run one step (layers, epsilon, softmax constant, vocabulary, biases), plus the
/// price per token.
contract SkuRegistry is Owned {
    /// @notice One SKU. Five slots. The program of a shard with R rounds has R · (19·layers + 4)
    /// steps (docs/ARITHMETIC.md §6); the weight root has `layers · (hasBias ? 10 : 7) + 5`
    /// leaves (per layer q,k,v,o,gate,up,down [+ q,k,v biases], then embedding, lm_head, EXP2,
    /// SIGMOID, ROPE).
    struct Sku {
        bytes32 weightRoot;
        bytes32 tokenizerHash;
        bytes32 configHash;
        uint128 pricePerToken;
        uint64 epsQ32;
        uint64 softmaxC;
        uint32 vocab;
        uint16 layers;
        uint16 arithVersion;
        bool hasBias;
        bool active;
    }

    /// @notice Attention shape and row layout of a SKU (set once, after registration; no game
    /// can open before it is set): query heads, key/value heads, head dimension, the context
    /// length `maxSeq` (a token's row address is prompt · maxSeq + position, docs/ARITHMETIC.md
    /// §6) and the end-of-sequence token ids that stop a prompt.
    struct Shape {
        uint16 heads;
        uint16 kvHeads;
        uint16 headDim;
        uint32 maxSeq;
        uint32[] eosIds;
    }

    /// @notice The SKU's shape is already set, or is unusable.
    error BadShape(bytes32 skuId);

    /// @notice A SKU's attention shape was set.
    event SkuShapeSet(
        bytes32 indexed skuId, uint16 heads, uint16 kvHeads, uint16 headDim, uint32 maxSeq, uint32[] eosIds
    );

    /// @notice The arithmetic spec version the one-step verifier implements; a SKU of another
    /// version could not be settled and is refused.
    uint16 public constant ARITH_VERSION = 3;
    /// @notice At most this many end-of-sequence ids (every embed one-step reads them).
    uint256 public constant MAX_EOS_IDS = 8;
    /// @notice The longest context a SKU may have: the one-steps whose rows grow with the
    /// context (scores, softmax, the openings of pv and attention rows) stay well inside one
    /// transaction's gas up to it (docs/BENCHMARKS.md).
    uint32 public constant MAX_SEQ = 8192;
    /// @notice The smallest vocabulary: with no token at all an argmax fold has nothing to
    /// compare and would accept any claimed token; one token leaves nothing to decide.
    uint32 public constant MIN_VOCAB = 2;

    /// @notice The SKU id is already taken.
    error SkuExists(bytes32 skuId);
    /// @notice No SKU has this id.
    error UnknownSku(bytes32 skuId);
    /// @notice A SKU field is unusable (zero id, zero weight root, no layer,
    /// zero epsilon or softmax constant, a vocabulary under 2 tokens).
    error InvalidSku(bytes32 skuId);

    /// @notice A SKU was registered.
    event SkuRegistered(
        bytes32 indexed skuId,
        bytes32 weightRoot,
        bytes32 tokenizerHash,
        bytes32 configHash,
        uint16 layers,
        uint16 arithVersion,
        uint128 pricePerToken
    );
    /// @notice A SKU's price changed.
    event SkuPriceChanged(bytes32 indexed skuId, uint128 pricePerToken);
    /// @notice A SKU was switched on or off for new jobs.
    event SkuActiveChanged(bytes32 indexed skuId, bool active);

    mapping(bytes32 => Sku) internal skus;
    mapping(bytes32 => Shape) internal shapes;

    constructor(address owner_) Owned(owner_) {}

    /// @notice Registers a SKU under `skuId` (immutable afterwards except price and activity).
    /// @param skuId The SKU's identity as computed by the SKU file.
    /// @param sku Its fields; `active` is ignored (a new SKU starts active).
    function registerSku(bytes32 skuId, Sku calldata sku) external onlyOwner {
        if (skus[skuId].weightRoot != bytes32(0)) revert SkuExists(skuId);
        if (
            skuId == bytes32(0) || sku.weightRoot == bytes32(0) || sku.layers == 0 || sku.epsQ32 == 0
                || sku.softmaxC == 0 || sku.vocab < MIN_VOCAB || sku.arithVersion != ARITH_VERSION
        ) {
            revert InvalidSku(skuId);
        }
        Sku memory s = sku;
        s.active = true;
        skus[skuId] = s;
        emit SkuRegistered(
            skuId, s.weightRoot, s.tokenizerHash, s.configHash, s.layers, s.arithVersion, s.pricePerToken
        );
    }

    /// @notice Sets the attention shape and row layout of `skuId` (once).
    /// @param skuId The SKU.
    /// @param shape Hq, Hkv (dividing Hq), D (even), maxSeq (2 to MAX_SEQ) and 1 to 8 EOS ids,
    /// each a token of the vocabulary.
    function setShape(bytes32 skuId, Shape calldata shape) external onlyOwner {
        _known(skuId);
        uint32 vocab = skus[skuId].vocab;
        for (uint256 i = 0; i < shape.eosIds.length; ++i) {
            if (shape.eosIds[i] >= vocab) revert BadShape(skuId);
        }
        if (
            shapes[skuId].heads != 0 || shape.heads == 0 || shape.kvHeads == 0 || shape.headDim == 0
                || shape.heads % shape.kvHeads != 0 || shape.headDim % 2 != 0 || shape.maxSeq < 2
                || shape.maxSeq > MAX_SEQ || shape.eosIds.length == 0 || shape.eosIds.length > MAX_EOS_IDS
        ) {
            revert BadShape(skuId);
        }
        shapes[skuId] = shape;
        emit SkuShapeSet(skuId, shape.heads, shape.kvHeads, shape.headDim, shape.maxSeq, shape.eosIds);
    }

    /// @notice The attention shape of `skuId` (all zero when not set).
    /// @param skuId The SKU.
    /// @return The shape.
    function shapeOf(bytes32 skuId) external view returns (Shape memory) {
        return shapes[skuId];
    }

    /// @notice Sets the price per processed token (wei) charged to buyers for new jobs.
    /// @param skuId The SKU.
    /// @param pricePerToken Wei per token.
    function setPrice(bytes32 skuId, uint128 pricePerToken) external onlyOwner {
        _known(skuId);
        skus[skuId].pricePerToken = pricePerToken;
        emit SkuPriceChanged(skuId, pricePerToken);
    }

    /// @notice Switches a SKU on or off for new jobs (receipts of posted jobs stay valid).
    /// @param skuId The SKU.
    /// @param active Whether new jobs may use it.
    function setActive(bytes32 skuId, bool active) external onlyOwner {
        _known(skuId);
        skus[skuId].active = active;
        emit SkuActiveChanged(skuId, active);
    }

    /// @notice The SKU `skuId`; reverts when unknown.
    /// @param skuId The SKU.
    /// @return The stored SKU.
    function get(bytes32 skuId) external view returns (Sku memory) {
        _known(skuId);
        return skus[skuId];
    }

    /// @notice The price per token of `skuId` in wei; reverts when unknown.
    /// @param skuId The SKU.
    /// @return Wei per processed token.
    function priceOf(bytes32 skuId) external view returns (uint128) {
        _known(skuId);
        return skus[skuId].pricePerToken;
    }

    /// @notice Whether `skuId` is registered and active.
    /// @param skuId The SKU.
    /// @return True when new jobs may use it.
    function isActive(bytes32 skuId) external view returns (bool) {
        return skus[skuId].active;
    }

    /// @notice Steps per round of the SKU's program: 1 + 19·layers + 3.
    /// @param skuId The SKU.
    /// @return The step count of one round.
    function stepsPerRound(bytes32 skuId) external view returns (uint256) {
        _known(skuId);
        return 19 * uint256(skus[skuId].layers) + 4;
    }

    function _known(bytes32 skuId) internal view {
        if (skus[skuId].weightRoot == bytes32(0)) revert UnknownSku(skuId);
    }
}
