// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Merkle} from "./Merkle.sol";

/// @notice What the game knows about the disputed step: the SKU, the shard's input root, the
/// agreed state before the step and the disputed one after it, and the named entry.
struct StepContext {
    bytes32 skuId;
    bytes32 inputRoot;
    bytes32 loRoot;
    bytes32 hiRoot;
    uint64 step;
    uint64 stepCount;
    uint32 row;
    uint32 col;
}

/// @notice The defender's opening of one GEMM element (including lm_head).
struct GemmProof {
    bytes32 outRoot; // output tensor root of step s
    bytes32[] stepProof; // siblings of leaf s in the state tree (pre and post)
    bytes outRow; // committed int32 output row `row` (empty: a zero leaf)
    bytes32[] outRowProof;
    bytes32 inRoot; // input tensor root (output of an earlier step)
    bytes32[] inStepProof; // siblings of that step's leaf in the agreed state
    bytes inRow; // int8 activation row `row` (QRow; empty: a zero leaf)
    bytes32[] inRowProof;
    bytes32 rowsRoot; // weight matrix: rows root
    bytes32 scalesRoot; // weight matrix: scales root
    bytes32[] matrixProof; // matrix leaf in the SKU's weight root
    bytes wRow; // int8 weight row `col` (output channel)
    bytes32[] wRowProof;
    // A long output row (a logits row) may be opened by one chunk: then `outRow` is chunk
    // col / 256 of it, `outChunkRoot` the root of its chunks and `outChunkProof` the chunk's path.
    bytes32 outChunkRoot;
    bytes32[] outChunkProof;
}

/// @notice A row of an earlier step's output tensor: the tensor root opened as leaf `step` of
/// the agreed state, and the row (empty bytes: a zero leaf, i.e. no such row). Which step and
/// which row are fixed by the route; `step` is named so that routes reading several rounds
/// (scores, pv) can point at the round that produced a position.
struct Opening {
    uint64 step;
    bytes32 root;
    bytes32[] stepProof;
    bytes row;
    bytes32[] rowProof;
}

/// @notice A whole committed vector of the SKU (a matrix's scales, with the matrix's rows root
/// beside it, or a table / bias vector, `rowsRoot` unused), opened against the weight root.
struct VectorOpening {
    bytes data;
    bytes32 rowsRoot;
    bytes32[] weightProof;
}

/// @notice One leaf `data` of a committed tree `root`, where `root` is itself opened by
/// `rootProof`: against the weight root (a table such as ROPE, or one half of a matrix leaf, the
/// proof then starting with the other half), or unused for the shard's input root.
struct LeafOpening {
    bytes32 root;
    bytes32[] rootProof;
    bytes data;
    bytes32[] proof;
}

/// @notice What an output challenge is about: the receipt's roots and the named completion
/// `prompt` at generated index `j`.
struct OutputContext {
    bytes32 skuId;
    bytes32 inputRoot;
    bytes32 outputRoot;
    bytes32 traceRoot;
    uint64 stepCount;
    uint32 prompt;
    uint32 j;
}

/// @notice The defender's opening of one completion against the receipt's own trace: the
/// completion leaf (under outputRoot), the prompt leaf (under inputRoot), and the argmax row
/// of round `j` for that prompt (its tensor root as a leaf of the final trace state). `pos` is
/// the row's position, read only for a text prompt (whose token count the L1 cannot know).
struct OutputProof {
    bytes completion;
    bytes32[] completionProof;
    bytes prompt;
    bytes32[] promptProof;
    uint32 pos;
    bytes32 argmaxRoot;
    bytes32[] stepProof;
    bytes argmaxRow;
    bytes32[] argmaxRowProof;
}

/// @notice The defender's opening of one output row (one element for scores) of a non-GEMM step.
struct RowProof {
    bytes32 outRoot;
    bytes32[] stepProof;
    bytes outRow;
    bytes32[] outRowProof;
    Opening[] inputs;
    VectorOpening[] vectors;
    LeafOpening[] leaves;
}

/// @title Openings
/// @notice What every settlement contract checks the same way: the disputed step's output row
/// (leaf s of the state tree: zero before, the output root after), input rows as earlier leaves
/// of the agreed state, rows of any tree including rows past its end, QRow scales.
abstract contract Openings {
    // A Merkle path or a named input does not match what the route requires: one error per
    // opened object, named after it (the state paths, the step's rows, SKU data, the shard's
    // prompt and completion leaves).
    error ArgmaxRootMismatch();
    error ArgmaxRowMismatch();
    error CompletionMismatch();
    error EmbeddingRowMismatch();
    error EmbeddingScaleMismatch();
    error GateScalesMismatch();
    error HeadSliceTooShort();
    error InputRootMismatch();
    error InputRowMismatch();
    error InputStepMismatch();
    error InputStepProofLengthMismatch();
    error KvRowEmpty();
    error KvStepMismatch();
    error LmHeadScalesMismatch();
    error LogitsChunkMismatch();
    error LogitsRowMismatch();
    error MatrixMismatch();
    error OutputChunkMismatch();
    error OutputRowMismatch();
    error PostStateMismatch();
    error PreStateMismatch();
    error PromptMismatch();
    error RopeRowMismatch();
    error RopeTableMismatch();
    error ScaleRowTooShort();
    error ScalesChunkMismatch();
    error SigmoidMismatch();
    error SoftmaxRowMismatch();
    error StepProofLengthMismatch();
    error TokenRowMismatch();
    error UpScalesMismatch();
    error ValueRowMismatch();
    error VectorMismatch();
    error WeightRowMismatch();

    /// @dev Output root as leaf s (zero before, the root after, one path) and the named row.
    function _openPost(
        StepContext calldata c,
        bytes32 outRoot,
        bytes32[] calldata stepProof,
        bytes calldata outRow,
        bytes32[] calldata outRowProof
    ) internal pure {
        _openPostLeaf(c, outRoot, stepProof, _leaf(outRow), outRowProof);
    }

    /// @dev `_openPost` for an output row given by its leaf.
    function _openPostLeaf(
        StepContext calldata c,
        bytes32 outRoot,
        bytes32[] calldata stepProof,
        bytes32 outLeaf,
        bytes32[] calldata outRowProof
    ) internal pure {
        if (stepProof.length != Merkle.depthFor(c.stepCount)) {
            revert StepProofLengthMismatch();
        }
        if (Merkle.rootOf(bytes32(0), c.step, stepProof) != c.loRoot) revert PreStateMismatch();
        if (Merkle.rootOf(outRoot, c.step, stepProof) != c.hiRoot) revert PostStateMismatch();
        if (!_leafIn(outRoot, c.row, outLeaf, outRowProof)) revert OutputRowMismatch();
    }

    /// @dev An input tensor root as leaf `step` of the agreed state, and its row `row`.
    function _openInput(StepContext calldata c, Opening calldata o, uint256 step, uint256 row) internal pure {
        _openInputLeaf(c, o, step, row, _leaf(o.row));
    }

    /// @dev `_openInput` for an input row given by its leaf (a long row opened by one chunk).
    function _openInputLeaf(StepContext calldata c, Opening calldata o, uint256 step, uint256 row, bytes32 leaf)
        internal
        pure
    {
        if (o.step != step || step >= c.step) revert InputStepMismatch();
        if (o.stepProof.length != Merkle.depthFor(c.stepCount)) revert InputStepProofLengthMismatch();
        if (Merkle.rootOf(o.root, step, o.stepProof) != c.loRoot) revert InputRootMismatch();
        if (!_leafIn(o.root, row, leaf, o.rowProof)) revert InputRowMismatch();
    }

    /// @dev Whether `data` is row `row` of the tree `root` (empty bytes: no such row). Trees are
    /// as deep as their highest row needs, so a row at or beyond 2^depth has no leaf to open:
    /// then `data` is empty and `proof` shows the tree's depth by opening one genuine leaf of it
    /// (`_pastTree`). Leaf and node hashes have different domains and no node hash is zero, so
    /// neither a shorter nor a longer proof can pass for a leaf-level one.
    function _rowIn(bytes32 root, uint256 row, bytes calldata data, bytes32[] calldata proof)
        internal
        pure
        returns (bool)
    {
        return _leafIn(root, row, _leaf(data), proof);
    }

    /// @dev `_rowIn` for the SKU's trees (matrix rows, table rows), whose leaves are plain.
    function _skuRowIn(bytes32 root, uint256 row, bytes calldata data, bytes32[] calldata proof)
        internal
        pure
        returns (bool)
    {
        return _leafIn(root, row, data.length == 0 ? bytes32(0) : Merkle.leafHash(data), proof);
    }

    /// @dev Whether `leaf` (zero: no row) is leaf `row` of `root`, rows past the tree included.
    /// Only for trees whose leaves are never node hashes (row, chunk and SKU row trees; not the
    /// state tree or the weight root), which is what makes a proof's length the tree's depth.
    function _leafIn(bytes32 root, uint256 row, bytes32 leaf, bytes32[] calldata proof) internal pure returns (bool) {
        uint256 n = proof.length;
        if (n < 256 && row >> n == 0 && Merkle.rootOf(leaf, row, proof) == root) return true;
        if (leaf != bytes32(0) || n == 0) return false;
        return _pastTree(root, row, proof);
    }

    /// @dev Whether row `row` lies past the end of the tree `root`: `proof` opens a witness leaf
    /// `w` of the tree with its preimage, so the tree's depth d is bound and `row >= 2^d` has no
    /// leaf. Layout: proof[0] = header (bits 0–63: w, bits 64–95: the preimage's byte length L,
    /// nothing above), then the preimage packed in ceil(L/32) words, then w's d siblings. L = 0
    /// means the witness leaf is the zero word (an absent row inside the tree); otherwise the
    /// preimage starts with a leaf domain byte (0x00: plain leaf, 0x02: chunked row), never 0x01.
    /// Without the preimage any inner node could be passed off as a leaf of a shallower tree,
    /// and every row past its height "proven" absent (issue #9, attack 1).
    function _pastTree(bytes32 root, uint256 row, bytes32[] calldata proof) private pure returns (bool) {
        uint256 h = uint256(proof[0]);
        if (h >> 96 != 0) return false;
        uint256 w = uint64(h);
        uint256 len = uint32(h >> 64);
        uint256 words = (len + 31) / 32;
        if (proof.length < 1 + words) return false;
        uint256 d = proof.length - 1 - words;
        if (d >= 256 || row >> d == 0 || w >> d != 0) return false;
        bytes32 witness;
        if (len != 0) {
            uint8 domain = uint8(bytes1(proof[1]));
            if (domain != 0x00 && domain != 0x02) return false;
            assembly ("memory-safe") {
                let p := mload(0x40)
                calldatacopy(p, add(proof.offset, 32), mul(words, 32))
                witness := keccak256(p, len)
            }
        }
        return Merkle.rootOf(witness, w, proof[1 + words:]) == root;
    }

    /// @dev The leaf of a committed row (`primitives::merkle::row_leaf`): zero for no row, a
    /// plain leaf up to 1024 bytes, and above keccak256(0x02 ‖ root of its 1024-byte chunks).
    function _leaf(bytes calldata row) internal pure returns (bytes32) {
        if (row.length == 0) return bytes32(0);
        if (row.length <= 1024) return Merkle.leafHash(row);
        return _chunkedLeaf(Merkle.vectorRoot(row));
    }

    /// @dev The leaf of a long row whose chunk root is `chunkRoot`.
    function _chunkedLeaf(bytes32 chunkRoot) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(bytes1(0x02), chunkRoot));
    }

    /// @dev The scale (last 8 bytes) of a QRow.
    function _scaleOf(bytes calldata row) internal pure returns (int256) {
        if (row.length < 8) revert ScaleRowTooShort();
        return int256(int64(uint64(bytes8(row[row.length - 8:row.length]))));
    }

    /// @dev Whether `o` opens one half of a matrix leaf (rows root at 2·leaf, scales root at
    /// 2·leaf + 1, one level below the weight root's leaves) and its leaf `index`.
    function _subIn(bytes32 weightRoot, LeafOpening calldata o, uint256 at, uint256 depth, uint256 index)
        internal
        pure
        returns (bool)
    {
        if (o.rootProof.length != depth || Merkle.rootOf(o.root, at, o.rootProof) != weightRoot) return false;
        return o.data.length != 0 && Merkle.rootOf(Merkle.leafHash(o.data), index, o.proof) == o.root;
    }
}
