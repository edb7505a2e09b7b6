// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IFoldMath} from "./interfaces/IFoldMath.sol";
import {SkuRegistry} from "./SkuRegistry.sol";
import {StepProver} from "./StepProver.sol";
import {Merkle} from "./Merkle.sol";
import {Openings, StepContext, Opening, LeafOpening, RowProof} from "./Openings.sol";

/// @notice Where an in-row bisection stands: the disputed step (as the trace game left it), the
/// chunk `lo` whose transition is checked, and the agreed / disputed accumulator hashes around it.
struct FoldContext {
    StepContext step;
    uint64 lo;
    bytes32 loHash;
    bytes32 hiHash;
    bytes32 finalHash; // the state the defender stated at the start
}

/// @notice The defender's opening of one chunk transition: the states before and after it
/// (their hashes are on chain) and what the chunk reads. pv: inputs [softmax row, then the value
/// rows of the chunk's positions]. argmax: inputs [logits row], leaves [the lm_head scales chunk
/// (the scales root as the right half of the lm_head matrix leaf)]. silu_mul: inputs [gate row,
/// up row, normalized row], leaves [gate scales chunk, up scales chunk, the SIGMOID table (its
/// root computed from the data)], the final state and the output row (`output.step` unused).
struct FoldStep {
    bytes loState;
    bytes hiState;
    Opening[] inputs;
    LeafOpening[] leaves;
    bytes finalState;
    Opening output;
}

/// @title FoldProver
/// @notice Settles rows too long to recompute in one transaction by bisecting inside the row.
/// A pv row at position `pos` reads `pos + 1` value rows (at 4096 positions, ~100 M gas in one
/// go); an argmax row folds 128k keys (~38 M gas). Instead the defender states the row's final
/// state (`start`: checked against the committed row), the game bisects over chunks of items
/// with state hashes (the state before the first item is fixed), and one chunk's transition is
/// recomputed (`step`). pv's state is the accumulator (D big-endian i64, the spec's sums before
/// the final rounding), argmax's the best (found, key, id) so far. An honest defender can answer
/// every chunk the challenger picks; a wrong row breaks the final link or some transition.
contract FoldProver is Openings {
    /// @notice The step is not one this contract folds.
    error WrongStepKind(uint256 step);
    /// @notice The proof carries the wrong number of inputs.
    error WrongOpeningCount(uint256 got, uint256 want);
    /// @notice A stated accumulator is malformed or does not match its hash.
    error BadState(string what);

    SkuRegistry public immutable skus;
    StepProver public immutable steps;
    IFoldMath public immutable verifier;
    /// @notice Positions per chunk of a pv fold.
    uint256 public immutable chunk;
    /// @notice Vocabulary ids per chunk of an argmax fold: one 1024-byte chunk of the committed
    /// lm_head scales vector.
    uint256 public constant ARGMAX_CHUNK = 256;

    constructor(SkuRegistry skus_, StepProver steps_, IFoldMath verifier_, uint256 chunk_) {
        if (chunk_ == 0) revert WrongOpeningCount(0, 1);
        skus = skus_;
        steps = steps_;
        verifier = verifier_;
        chunk = chunk_;
    }

    /// @notice Opens a fold of the named row: the output row, the input row it reads and the
    /// defender's final state, which must give the committed row. pv: inputs [softmax row
    /// (s − 1)], state = the accumulator (D big-endian i64) that rounds to the row with the
    /// softmax row's A_p. argmax: inputs [logits row (s − 1)], state = abi.encode(found, key, id)
    /// whose id is the committed token.
    /// @param c The step context of the trace game.
    /// @param p Output opening and the input row.
    /// @param finalState The state after every item.
    /// @return fraud Whether the committed row contradicts the stated state (or should not exist).
    /// @return chunks Chunks to bisect over (0: settled without a fold).
    /// @return initHash Hash of the state before the first item (the agreed start).
    function start(StepContext calldata c, RowProof calldata p, bytes calldata finalState)
        external
        view
        returns (bool fraud, uint256 chunks, bytes32 initHash)
    {
        (StepProver.Op op, SkuRegistry.Shape memory sh) = _foldOp(c);
        _openPost(c, p.outRoot, p.stepProof, p.outRow, p.outRowProof);
        if (p.inputs.length != 1) revert WrongOpeningCount(p.inputs.length, 1);
        if (op == StepProver.Op.Argmax) return _argmaxStart(c, p, finalState);
        // pv reads the softmax row (s − 1), silu_mul the gate row (s − 2).
        _openInput(c, p.inputs[0], c.step - (op == StepProver.Op.SiluMul ? 2 : 1), c.row);
        bytes calldata x = p.inputs[0].row;
        if (x.length == 0) return (p.outRow.length != 0, 0, bytes32(0));
        if (op == StepProver.Op.SiluMul) return _siluStart(p, x.length / 4, finalState);
        return _pvStart(c, sh, p, finalState);
    }

    /// @dev pv's final link: the accumulator rounds to the committed row with A_p.
    function _pvStart(
        StepContext calldata c,
        SkuRegistry.Shape memory sh,
        RowProof calldata p,
        bytes calldata finalState
    ) internal view returns (bool fraud, uint256 chunks, bytes32 initHash) {
        bytes calldata x = p.inputs[0].row;
        uint256 pos = (uint256(c.row) / sh.heads) % sh.maxSeq;
        if (x.length != (pos + 1) * 4 + 8) revert SoftmaxRowMismatch();
        uint256 width = uint256(sh.headDim) * 8;
        if (finalState.length != width) revert BadState("final accumulator");
        int256 ap = int256(int64(uint64(bytes8(x[x.length - 8:]))));
        fraud = keccak256(verifier.pvFinish(finalState, ap)) != keccak256(p.outRow);
        chunks = (pos + chunk) / chunk;
        initHash = keccak256(new bytes(width));
    }

    /// @dev argmax's final link: the committed token is the final best id. The logits row (s − 1)
    /// is opened whole or, when long, by its chunk root alone (`leaves[0].root`).
    function _argmaxStart(StepContext calldata c, RowProof calldata p, bytes calldata finalState)
        internal
        view
        returns (bool fraud, uint256 chunks, bytes32 initHash)
    {
        bool chunked = p.leaves.length == 1;
        if (chunked) _openInputLeaf(c, p.inputs[0], c.step - 1, c.row, _chunkedLeaf(p.leaves[0].root));
        else _openInput(c, p.inputs[0], c.step - 1, c.row);
        if (!chunked && p.inputs[0].row.length == 0) return (p.outRow.length != 0, 0, bytes32(0));
        uint256 valid = skus.get(c.skuId).vocab;
        if (!chunked && p.inputs[0].row.length < valid * 4) revert LogitsRowMismatch();
        if (finalState.length != 96) revert BadState("final best");
        (bool found,, uint256 id) = abi.decode(finalState, (bool, int256, uint256));
        fraud = !found || p.outRow.length != 4 || uint32(bytes4(p.outRow)) != id;
        chunks = (valid + ARGMAX_CHUNK - 1) / ARGMAX_CHUNK;
        initHash = keccak256(abi.encode(false, int256(0), uint256(0)));
    }

    /// @notice Recomputes chunk `lo` of a fold: the state before it folded with the chunk's
    /// items must be the state after it.
    /// @param f Where the fold stands.
    /// @param s The opening.
    /// @return fraud Whether the stated transition is wrong.
    function step(FoldContext calldata f, FoldStep calldata s) external view returns (bool fraud) {
        StepContext calldata c = f.step;
        (StepProver.Op op, SkuRegistry.Shape memory sh) = _foldOp(c);
        if (keccak256(s.loState) != f.loHash) revert BadState("state before");
        if (keccak256(s.hiState) != f.hiHash) revert BadState("state after");
        if (s.inputs.length == 0) revert WrongOpeningCount(0, 1);
        if (op == StepProver.Op.SiluMul) return _siluStep(f, s);
        if (op == StepProver.Op.Argmax) return _argmaxStep(f, s);
        _openInput(c, s.inputs[0], c.step - 1, c.row);
        if (s.loState.length != uint256(sh.headDim) * 8) revert BadState("state before");
        bytes calldata sm = s.inputs[0].row;
        uint256 pos = (uint256(c.row) / sh.heads) % sh.maxSeq;
        if (sm.length != (pos + 1) * 4 + 8) revert SoftmaxRowMismatch();
        uint256 from = uint256(f.lo) * chunk;
        uint256 to = from + chunk > pos + 1 ? pos + 1 : from + chunk;
        if (from >= to) revert BadState("chunk");
        if (s.inputs.length != 1 + to - from) revert WrongOpeningCount(s.inputs.length, 1 + to - from);
        bytes memory v = _values(c, sh, s.inputs, from, to);
        fraud = keccak256(verifier.pvAccumulate(s.loState, sm[from * 4:to * 4], v)) != f.hiHash;
    }

    /// @dev argmax chunk `lo`: ids lo·256 .. (capped at the vocabulary), their logits from the
    /// row and their lm_head scales from one chunk of the scales vector.
    function _argmaxStep(FoldContext calldata f, FoldStep calldata s) internal view returns (bool) {
        SkuRegistry.Sku memory k = skus.get(f.step.skuId);
        uint256 from = uint256(f.lo) * ARGMAX_CHUNK;
        uint256 to = from + ARGMAX_CHUNK > k.vocab ? k.vocab : from + ARGMAX_CHUNK;
        if (from >= to) revert BadState("chunk");
        if (s.leaves.length != 1 && s.leaves.length != 2) revert WrongOpeningCount(s.leaves.length, 1);
        // lm_head is weight-root leaf layers·stride + 1; its scales root is that leaf's right half.
        uint256 leaves = uint256(k.layers) * (k.hasBias ? 10 : 7) + 5;
        if (!_subIn(k.weightRoot, s.leaves[0], 2 * (leaves - 4) + 1, Merkle.depthFor(leaves) + 1, f.lo)) {
            revert LmHeadScalesMismatch();
        }
        if (s.leaves[0].data.length < (to - from) * 4) revert LmHeadScalesMismatch();
        bytes calldata y;
        if (s.leaves.length == 2) {
            // The logits row by its chunk lo (256 ids = one 1024-byte chunk).
            LeafOpening calldata ch = s.leaves[1];
            _openInputLeaf(f.step, s.inputs[0], f.step.step - 1, f.step.row, _chunkedLeaf(ch.root));
            if (!_skuRowIn(ch.root, f.lo, ch.data, ch.proof)) revert LogitsChunkMismatch();
            y = ch.data;
        } else {
            _openInput(f.step, s.inputs[0], f.step.step - 1, f.step.row);
            y = s.inputs[0].row[from * 4:];
        }
        if (y.length < (to - from) * 4) revert LogitsRowMismatch();
        return keccak256(_argmaxFold(s, y[:(to - from) * 4], from, to)) != f.hiHash;
    }

    function _argmaxFold(FoldStep calldata s, bytes calldata y, uint256 from, uint256 to)
        internal
        view
        returns (bytes memory)
    {
        return verifier.argmaxAccumulate(s.loState, y, s.leaves[0].data[0:(to - from) * 4], from);
    }

    /// @notice Elements per chunk of a silu_mul fold (one 1024-byte chunk of each scales vector).
    uint256 public constant SILU_CHUNK = 256;

    /// @dev silu_mul's final link: the row has one int8 per element and the scale of its max.
    function _siluStart(RowProof calldata p, uint256 n, bytes calldata finalState)
        internal
        view
        returns (bool fraud, uint256 chunks, bytes32 initHash)
    {
        if (finalState.length != 32) revert BadState("final max");
        uint256 amax = abi.decode(finalState, (uint256));
        bytes calldata out = p.outRow;
        fraud = out.length != n + 8 || int256(int64(uint64(bytes8(out[n:n + 8])))) != verifier.quantizeScale(amax);
        return (fraud, (n + SILU_CHUNK - 1) / SILU_CHUNK, keccak256(abi.encode(uint256(0))));
    }

    /// @dev silu_mul chunk `lo`: its elements raise the running max from the state before to
    /// the state after, and quantize (with the stated final max) to the committed int8 values.
    function _siluStep(FoldContext calldata f, FoldStep calldata s) internal view returns (bool) {
        StepContext calldata c = f.step;
        if (keccak256(s.finalState) != f.finalHash || s.finalState.length != 32) revert BadState("final max");
        if (s.loState.length != 32 || s.hiState.length != 32) revert BadState("max");
        if (s.inputs.length != 3 || s.leaves.length != 3) revert WrongOpeningCount(s.inputs.length, 3);
        _openPost(c, s.output.root, s.output.stepProof, s.output.row, s.output.rowProof);
        _openInput(c, s.inputs[0], c.step - 2, c.row);
        _openInput(c, s.inputs[1], c.step - 1, c.row);
        _openInput(c, s.inputs[2], c.step - 3, c.row);
        uint256 n = s.inputs[0].row.length / 4;
        uint256 from = uint256(f.lo) * SILU_CHUNK;
        uint256 to = from + SILU_CHUNK > n ? n : from + SILU_CHUNK;
        if (from >= to) revert BadState("chunk");
        if (s.output.row.length != n + 8 || s.inputs[1].row.length != n * 4) return true;
        _siluTables(c, s.leaves, f.lo);
        (uint256 after_, bytes memory q) = _siluChunk(s, from, to);
        return after_ != abi.decode(s.hiState, (uint256)) || keccak256(q) != keccak256(s.output.row[from:to]);
    }

    /// @dev The gate / up scales chunks (right halves of the gate / up matrix leaves) and the
    /// SIGMOID table, against the weight root.
    function _siluTables(StepContext calldata c, LeafOpening[] calldata l, uint256 lo) internal view {
        (, uint256 layer,) = steps.stepOp(c.skuId, c.step);
        SkuRegistry.Sku memory k = skus.get(c.skuId);
        uint256 stride = k.hasBias ? 10 : 7;
        uint256 leaves = uint256(k.layers) * stride + 5;
        uint256 depth = Merkle.depthFor(leaves);
        if (!_subIn(k.weightRoot, l[0], 2 * (layer * stride + 4) + 1, depth + 1, lo)) revert GateScalesMismatch();
        if (!_subIn(k.weightRoot, l[1], 2 * (layer * stride + 5) + 1, depth + 1, lo)) revert UpScalesMismatch();
        bytes32 table = Merkle.vectorRoot(l[2].data);
        if (Merkle.rootOfSized(table, leaves - 2, l[2].rootProof, leaves) != k.weightRoot) {
            revert SigmoidMismatch();
        }
    }

    function _siluChunk(FoldStep calldata s, uint256 from, uint256 to) internal view returns (uint256, bytes memory) {
        uint256 w = (to - from) * 4;
        if (s.leaves[0].data.length < w || s.leaves[1].data.length < w) revert ScalesChunkMismatch();
        bytes memory y = bytes.concat(s.inputs[0].row[from * 4:to * 4], s.inputs[1].row[from * 4:to * 4]);
        bytes memory sw = bytes.concat(s.leaves[0].data[:w], s.leaves[1].data[:w]);
        uint256 amaxes = (abi.decode(s.loState, (uint256)) << 128) | abi.decode(s.finalState, (uint256));
        return verifier.siluChunk(y, sw, _scaleOf(s.inputs[2].row), s.leaves[2].data, amaxes);
    }

    /// @dev The op of step `c.step` (pv or argmax; anything else is refused) and the SKU's shape.
    function _foldOp(StepContext calldata c) internal view returns (StepProver.Op op, SkuRegistry.Shape memory sh) {
        (op,,) = steps.stepOp(c.skuId, c.step);
        if (op != StepProver.Op.Pv && op != StepProver.Op.Argmax && op != StepProver.Op.SiluMul) {
            revert WrongStepKind(c.step);
        }
        sh = skus.shapeOf(c.skuId);
    }

    /// @dev The value row of position 0 of the prompt of per-head row `row`, for its kv head.
    function _kvBase(uint256 row, SkuRegistry.Shape memory sh) internal pure returns (uint256) {
        uint256 t = row / sh.heads;
        uint256 g = (row % sh.heads) / (sh.heads / sh.kvHeads);
        return (t - t % sh.maxSeq) * sh.kvHeads + g;
    }

    /// @dev The value rows of positions from..to−1 of the row's prompt (inputs 1..), each from the
    /// round the defender names, concatenated.
    function _values(
        StepContext calldata c,
        SkuRegistry.Shape memory sh,
        Opening[] calldata ins,
        uint256 from,
        uint256 to
    ) internal view returns (bytes memory v) {
        uint256 spr = 19 * uint256(skus.get(c.skuId).layers) + 4;
        uint256 valueOp = (c.step % spr) - 3; // value is three ops before pv in a layer
        uint256 width = uint256(sh.headDim) * 4;
        uint256 base = _kvBase(c.row, sh);
        v = new bytes((to - from) * width);
        for (uint256 u = from; u < to; ++u) {
            Opening calldata o = ins[1 + u - from];
            if (o.step % spr != valueOp) revert KvStepMismatch();
            _openInput(c, o, o.step, base + u * sh.kvHeads);
            if (o.row.length != width) revert ValueRowMismatch();
            bytes calldata r = o.row;
            uint256 at = (u - from) * width;
            assembly ("memory-safe") {
                calldatacopy(add(add(v, 32), at), r.offset, width)
            }
        }
    }
}
