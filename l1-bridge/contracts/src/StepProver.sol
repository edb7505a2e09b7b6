// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IOneStep} from "./interfaces/IOneStep.sol";
import {Merkle} from "./Merkle.sol";
import {SkuRegistry} from "./SkuRegistry.sol";
import {
    Openings,
    StepContext,
    GemmProof,
    Opening,
    VectorOpening,
    LeafOpening,
    OutputContext,
    OutputProof,
    RowProof
} from "./Openings.sol";

/// @title StepProver
/// @notice Settles the last step of a bisection: given what the game agreed on (the state before
/// step `s`, the disputed state after it, the named row/column) and the defender's opening, it
/// checks every Merkle path and has `OneStepVerifier` recompute the entry. Stateless: the game
/// turns its verdict into a resolution.
///
/// Routing follows the program layout and row addresses of docs/ARITHMETIC.md §6: a round is
/// `19·L + 4` steps (embed; per layer 19 ops; final norm, lm_head, argmax); a token's row address
/// is `a = prompt · maxSeq + position` and per-head tensors use `a · heads + head`, so the
/// (prompt, position) of any row follows from its index alone. Inputs are earlier leaves of the
/// agreed state; because the challenger agreed to that state, it is the honest one, so a row that
/// exists in exactly one round of an honest trace (a key or value position) is found by naming
/// that round.
///
/// Merkle failures revert (the defender must bring a valid opening or lose on its clock); a
/// valid opening yields a verdict.
contract StepProver is Openings {
    /// @notice The ops of a round, as routed.
    enum Op {
        None,
        Embed,
        Norm, // attention / ffn rmsnorm_quant
        Gemm,
        RopeQ,
        RopeK,
        Value,
        Scores,
        Softmax,
        Pv,
        AttnOut,
        ResidualAttn,
        ResidualFfn,
        SiluMul,
        FinalNorm,
        Argmax
    }

    /// @notice The step is not of the kind the called function settles.
    error WrongStepKind(uint256 step, Op op);
    /// @notice The proof carries the wrong number of inputs, vectors or leaves.
    error WrongOpeningCount(uint256 inputs, uint256 vectors, uint256 leaves);
    /// @notice The SKU's shape and layout are not set.
    error ShapeNotSet(bytes32 skuId);

    SkuRegistry public immutable skus;
    IOneStep public immutable verifier;

    /// @dev What a route needs to know about the SKU, read once.
    struct Ctx {
        SkuRegistry.Sku sku;
        SkuRegistry.Shape shape;
        uint256 layer;
        uint256 round;
        uint256 spr; // steps per round
        uint256 stride; // weight-root leaves per layer
        uint256 base; // weight-root leaf of the embedding (lm_head +1, EXP2 +2, SIGMOID +3, ROPE +4)
    }

    constructor(SkuRegistry skus_, IOneStep verifier_) {
        skus = skus_;
        verifier = verifier_;
    }

    // ------------------------------------------------------------------ layout

    /// @notice The op of step `s` of a program of SKU `skuId`, with its layer and round.
    /// @param skuId The SKU.
    /// @param s The step.
    /// @return op The op.
    /// @return layer The layer (0 outside the layers).
    /// @return round The round.
    function stepOp(bytes32 skuId, uint256 s) public view returns (Op op, uint256 layer, uint256 round) {
        uint256 layers = skus.get(skuId).layers;
        uint256 spr = 19 * layers + 4;
        round = s / spr;
        uint256 idx = s % spr;
        if (idx == 0) return (Op.Embed, 0, round);
        if (idx == 19 * layers + 1) return (Op.FinalNorm, 0, round);
        if (idx == 19 * layers + 2) return (Op.Gemm, 0, round);
        if (idx == 19 * layers + 3) return (Op.Argmax, 0, round);
        layer = (idx - 1) / 19;
        uint256 o = (idx - 1) % 19;
        if (o == 0 || o == 13) op = Op.Norm;
        else if (o == 1 || o == 2 || o == 3 || o == 11 || o == 14 || o == 15 || o == 17) op = Op.Gemm;
        else if (o == 4) op = Op.RopeQ;
        else if (o == 5) op = Op.RopeK;
        else if (o == 6) op = Op.Value;
        else if (o == 7) op = Op.Scores;
        else if (o == 8) op = Op.Softmax;
        else if (o == 9) op = Op.Pv;
        else if (o == 10) op = Op.AttnOut;
        else if (o == 12) op = Op.ResidualAttn;
        else if (o == 16) op = Op.SiluMul;
        else op = Op.ResidualFfn;
    }

    /// @notice Where step `s` is a GEMM: the offset back to its input step, the weight matrix's
    /// leaf index in the weight root, and that root's leaf count (docs/ARITHMETIC.md §5–§6).
    /// @param skuId The SKU.
    /// @param s The step.
    /// @return isGemm Whether the step is a GEMM.
    /// @return inOffset Steps back to the input tensor's step.
    /// @return matrix Leaf index of the weight matrix.
    /// @return weightLeaves Leaves of the weight root.
    function gemmStep(bytes32 skuId, uint256 s)
        public
        view
        returns (bool isGemm, uint256 inOffset, uint256 matrix, uint256 weightLeaves)
    {
        SkuRegistry.Sku memory k = skus.get(skuId);
        uint256 layers = k.layers;
        uint256 stride = k.hasBias ? 10 : 7;
        weightLeaves = layers * stride + 5;
        uint256 idx = s % (19 * layers + 4);
        if (idx == 0) return (false, 0, 0, weightLeaves);
        if (idx == 19 * layers + 2) return (true, 1, layers * stride + 1, weightLeaves); // lm_head
        if (idx > 19 * layers) return (false, 0, 0, weightLeaves);
        uint256 l = (idx - 1) / 19;
        uint256 o = (idx - 1) % 19;
        // Offsets inside a layer: 1 q, 2 k, 3 v, 11 o, 14 gate, 15 up, 17 down.
        if (o == 1) return (true, 1, l * stride, weightLeaves);
        if (o == 2) return (true, 2, l * stride + 1, weightLeaves);
        if (o == 3) return (true, 3, l * stride + 2, weightLeaves);
        if (o == 11) return (true, 1, l * stride + 3, weightLeaves);
        if (o == 14) return (true, 1, l * stride + 4, weightLeaves);
        if (o == 15) return (true, 2, l * stride + 5, weightLeaves);
        if (o == 17) return (true, 1, l * stride + 6, weightLeaves);
        return (false, 0, 0, weightLeaves);
    }

    // ------------------------------------------------------------------ GEMM elements

    /// @notice Settles one GEMM element: opens the output row (leaf s zero before, the output root
    /// after), the input row (an earlier leaf of the agreed state), the weight row `col` (against
    /// the SKU's weight root) and recomputes the raw accumulator. An empty input row must have an
    /// empty output row; a column without a weight row must be past the output row's end; an
    /// output row too short for a column that has one is fraud.
    /// @param c The step context.
    /// @param p The opening.
    /// @return fraud Whether the committed entry is wrong.
    /// @return committed The committed accumulator (0 when not compared).
    /// @return recomputed The recomputed accumulator (0 when not compared).
    function checkGemm(StepContext calldata c, GemmProof calldata p)
        external
        view
        returns (bool fraud, int256 committed, int256 recomputed)
    {
        (bool isGemm, uint256 inOffset, uint256 matrix, uint256 weightLeaves) = gemmStep(c.skuId, c.step);
        if (!isGemm || inOffset > c.step) revert WrongStepKind(c.step, Op.Gemm);
        bool chunked = p.outChunkRoot != bytes32(0);
        _openPostLeaf(
            c, p.outRoot, p.stepProof, chunked ? _chunkedLeaf(p.outChunkRoot) : _leaf(p.outRow), p.outRowProof
        );
        // A chunked output row is present; `outRow` is then its chunk col / 256 (empty if none).
        if (chunked && !_skuRowIn(p.outChunkRoot, c.col / 256, p.outRow, p.outChunkProof)) {
            revert OutputChunkMismatch();
        }
        uint256 depth = Merkle.depthFor(c.stepCount);
        if (p.inStepProof.length != depth) revert InputStepProofLengthMismatch();
        if (Merkle.rootOf(p.inRoot, c.step - inOffset, p.inStepProof) != c.loRoot) revert InputRootMismatch();
        if (!_rowIn(p.inRoot, c.row, p.inRow, p.inRowProof)) revert InputRowMismatch();
        if (p.inRow.length == 0) return (chunked || p.outRow.length != 0, 0, 0);
        if (!chunked && p.outRow.length == 0) return (true, 0, 0);
        bytes32 matrixRoot = Merkle.node(p.rowsRoot, p.scalesRoot);
        if (Merkle.rootOfSized(matrixRoot, matrix, p.matrixProof, weightLeaves) != skus.get(c.skuId).weightRoot) {
            revert MatrixMismatch();
        }
        if (!_skuRowIn(p.rowsRoot, c.col, p.wRow, p.wRowProof)) revert WeightRowMismatch();
        uint256 at = chunked ? (uint256(c.col) % 256) * 4 : uint256(c.col) * 4;
        // No weight row `col` (past the output channels): the output row must end before it.
        if (p.wRow.length == 0) return (p.outRow.length > at, 0, 0);
        if (p.outRow.length < at + 4 || p.inRow.length < p.wRow.length) return (true, 0, 0);
        committed = int256(int32(uint32(bytes4(p.outRow[at:at + 4]))));
        recomputed = verifier.gemmElement(p.inRow, p.wRow);
        fraud = committed != recomputed;
    }

    // ------------------------------------------------------------------ row ops

    /// @notice Settles one output row of a non-GEMM step (one element for scores). Inputs,
    /// vectors and leaves per op (t = the row's token address, h/g its head, p/pos its prompt and
    /// position, s the step, l the layer):
    /// - embed: round 0: leaves [E rows, E scales, the prompt leaf p under the input root];
    ///   round r ≥ 1: inputs [argmax row a−1 (s−1)], leaves [E rows, E scales].
    /// - rmsnorm_quant: [x (s−1)]. final norm: [x (s−1)] and in round 0 [x row a+1 (s−1)] (a row
    ///   is a logits row only at a prompt's last position).
    /// - rope_q / rope_k: [projection row t (s−3), normalized row t (s−4 / s−5)], vectors [the
    ///   q / k scales (+ bias)], leaves [ROPE row pos].
    /// - value: [v projection row t (s−3), normalized row t (s−6)], vectors [v scales (+ bias)].
    /// - scores (element `col` = position u): [rope_q row (s−3), rope_k row (p, u) of the round
    ///   that produced position u].
    /// - softmax: [scores (s−1), rope_q (s−4)], vectors [EXP2].
    /// - pv: [softmax (s−1), then the value row (p, u) for u = 0..pos, each of its round].
    /// - attn_out: [the Hq pv rows of its token (s−1)].
    /// - residual: [h (s−13 / s−6), y (s−1), the projection's input (s−2)], vectors [o / down
    ///   scales]. silu_mul: [gate (s−2), up (s−1), normalized (s−3)], vectors [gate scales, up
    ///   scales, SIGMOID]. argmax: [logits (s−1)], vectors [lm_head scales].
    /// A row that is empty where the route's first input is empty (or, for embed, where no token
    /// feeds it) must be empty; otherwise the recomputed row must equal the committed one.
    /// @param c The step context.
    /// @param p The opening.
    /// @return fraud Whether the committed row (element) is wrong.
    /// @return committedHash keccak256 of the committed row bytes (element for scores).
    /// @return recomputedHash keccak256 of the recomputed ones (zero when only emptiness was checked).
    function checkRow(StepContext calldata c, RowProof calldata p)
        external
        view
        returns (bool fraud, bytes32 committedHash, bytes32 recomputedHash)
    {
        (Op op, uint256 layer, uint256 round) = stepOp(c.skuId, c.step);
        if (op == Op.Gemm || op == Op.None) revert WrongStepKind(c.step, op);
        Ctx memory x;
        x.sku = skus.get(c.skuId);
        x.shape = skus.shapeOf(c.skuId);
        if (x.shape.heads == 0) revert ShapeNotSet(c.skuId);
        x.layer = layer;
        x.round = round;
        x.spr = 19 * uint256(x.sku.layers) + 4;
        x.stride = x.sku.hasBias ? 10 : 7;
        x.base = uint256(x.sku.layers) * x.stride;
        _openPost(c, p.outRoot, p.stepProof, p.outRow, p.outRowProof);
        committedHash = keccak256(p.outRow);

        bytes memory want;
        bool empty;
        if (op == Op.Embed) (empty, want) = _embed(c, x, p);
        else if (op == Op.Scores) return _scores(c, x, p);
        else if (op == Op.Pv) (empty, want) = _pv(c, x, p);
        else if (op == Op.RopeQ || op == Op.RopeK) (empty, want) = _rope(c, x, p, op == Op.RopeQ);
        else if (op == Op.FinalNorm) (empty, want) = _finalNorm(c, x, p);
        else if (op == Op.Value || op == Op.AttnOut) (empty, want) = _heads(c, x, p, op);
        else (empty, want) = _simple(c, x, p, op);
        if (empty) return (p.outRow.length != 0, committedHash, bytes32(0));
        recomputedHash = keccak256(want);
        fraud = recomputedHash != committedHash;
    }

    // ------------------------------------------------------------------ outputs

    /// @notice Settles an output challenge: is completion `prompt` of the receipt what its own
    /// trace generated? A completion is consistent when it has 1 to R tokens (R = rounds), no EOS
    /// id before its last token, ends on an EOS id or after R tokens, and token `j` equals the
    /// argmax row of round `j` at the prompt's position `len + j − 1`. Any inconsistency of the
    /// opened completion is fraud, whatever `j` the challenger named; `j` past the end only
    /// checks the stop rule.
    /// @param c The challenge.
    /// @param p The opening.
    /// @return fraud Whether the receipt's completion contradicts its trace.
    function checkOutput(OutputContext calldata c, OutputProof calldata p) external view returns (bool fraud) {
        if (!_rowIn(c.outputRoot, c.prompt, p.completion, p.completionProof)) revert CompletionMismatch();
        if (!_rowIn(c.inputRoot, c.prompt, p.prompt, p.promptProof)) revert PromptMismatch();
        bytes calldata comp = p.completion;
        if (p.prompt.length == 0) return comp.length != 0;
        SkuRegistry.Shape memory sh = skus.shapeOf(c.skuId);
        uint256 spr = 19 * uint256(skus.get(c.skuId).layers) + 4;
        uint256 g = comp.length / 4;
        if (comp.length % 4 != 0 || g == 0 || g > c.stepCount / spr) return true;
        for (uint256 i = 0; i + 1 < g; ++i) {
            if (_isEos(sh.eosIds, _u32At(comp, i))) return true;
        }
        if (g < c.stepCount / spr && !_isEos(sh.eosIds, _u32At(comp, g - 1))) return true;
        if (c.j >= g) return false;
        uint256 pos = p.pos;
        if (p.prompt[0] == 0x01) {
            uint256 n = (p.prompt.length - 1) / 4;
            if (n == 0) return true;
            pos = n + c.j - 1;
        }
        if (pos >= sh.maxSeq) return true;
        uint256 step = uint256(c.j) * spr + spr - 1;
        if (p.stepProof.length != Merkle.depthFor(c.stepCount)) revert StepProofLengthMismatch();
        if (Merkle.rootOf(p.argmaxRoot, step, p.stepProof) != c.traceRoot) revert ArgmaxRootMismatch();
        if (!_rowIn(p.argmaxRoot, uint256(c.prompt) * sh.maxSeq + pos, p.argmaxRow, p.argmaxRowProof)) {
            revert ArgmaxRowMismatch();
        }
        return p.argmaxRow.length != 4 || uint32(bytes4(p.argmaxRow)) != _u32At(comp, c.j);
    }

    function _u32At(bytes calldata b, uint256 i) internal pure returns (uint32) {
        return uint32(bytes4(b[4 * i:4 * i + 4]));
    }

    function _isEos(uint32[] memory eos, uint32 id) internal pure returns (bool) {
        for (uint256 i = 0; i < eos.length; ++i) {
            if (eos[i] == id) return true;
        }
        return false;
    }

    // ------------------------------------------------------------------ routes

    /// @dev embed: the token comes from the prompt (round 0) or the previous round's argmax.
    function _embed(StepContext calldata c, Ctx memory x, RowProof calldata p)
        internal
        view
        returns (bool empty, bytes memory want)
    {
        uint256 sq = x.shape.maxSeq;
        uint256 pos = uint256(c.row) % sq;
        uint256 id;
        if (x.round == 0) {
            if (p.inputs.length != 0 || p.leaves.length != 3) revert WrongOpeningCount(0, 0, 3);
            LeafOpening calldata pr = p.leaves[2];
            if (!_rowIn(c.inputRoot, uint256(c.row) / sq, pr.data, pr.proof)) {
                revert PromptMismatch();
            }
            bytes calldata d = pr.data;
            // No prompt, or a text prompt: its tokenization is the worker's and is not settled on
            // L1 (docs/CONTRACTS.md); only token-id prompts are checked.
            if (d.length == 0) return (true, want);
            if (d[0] != 0x01 || (d.length - 1) % 4 != 0) return (false, p.outRow);
            if (pos >= (d.length - 1) / 4) return (true, want);
            id = uint32(bytes4(d[1 + 4 * pos:5 + 4 * pos]));
        } else {
            if (pos == 0) return (true, want);
            if (p.inputs.length != 1 || p.leaves.length < 2) revert WrongOpeningCount(1, 0, 2);
            _openInput(c, p.inputs[0], c.step - 1, uint256(c.row) - 1);
            bytes calldata tok = p.inputs[0].row;
            if (tok.length == 0) return (true, want);
            if (tok.length != 4) revert TokenRowMismatch();
            id = uint32(bytes4(tok));
            if (_isEos(x.shape.eosIds, uint32(id))) return (true, want);
        }
        // The embedding matrix leaf is node(rowsRoot, scalesRoot): each half is opened one level
        // below the weight root's leaves, its proof starting with the other half.
        uint256 depth = Merkle.depthFor(x.base + 5) + 1;
        LeafOpening calldata er = p.leaves[0];
        LeafOpening calldata es = p.leaves[1];
        if (!_subIn(x.sku.weightRoot, er, 2 * x.base, depth, id)) revert EmbeddingRowMismatch();
        if (!_subIn(x.sku.weightRoot, es, 2 * x.base + 1, depth, id / 256)) revert EmbeddingScaleMismatch();
        uint256 at = (id % 256) * 4;
        if (es.data.length < at + 4) revert EmbeddingScaleMismatch();
        want = verifier.embedRow(er.data, uint32(bytes4(es.data[at:at + 4])));
    }

    /// @dev rope_q / rope_k: one head of the projection, dequantized and rotated by the position's
    /// RoPE row.
    function _rope(StepContext calldata c, Ctx memory x, RowProof calldata p, bool isQ)
        internal
        view
        returns (bool empty, bytes memory want)
    {
        uint256 heads = isQ ? x.shape.heads : x.shape.kvHeads;
        uint256 nVec = x.sku.hasBias ? 2 : 1;
        if (p.inputs.length != 2 || p.vectors.length != nVec || p.leaves.length != 1) {
            revert WrongOpeningCount(2, nVec, 1);
        }
        uint256 t = uint256(c.row) / heads;
        _openInput(c, p.inputs[0], c.step - 3, t);
        _openInput(c, p.inputs[1], c.step - (isQ ? 4 : 5), t);
        if (p.inputs[0].row.length == 0) return (true, want);
        uint256 lw = x.layer * x.stride;
        _openVector(x, p.vectors[0], lw + (isQ ? 0 : 1), false);
        if (nVec == 2) _openVector(x, p.vectors[1], lw + (isQ ? 7 : 8), true);
        LeafOpening calldata rr = p.leaves[0];
        if (Merkle.rootOfSized(rr.root, x.base + 4, rr.rootProof, x.base + 5) != x.sku.weightRoot) {
            revert RopeTableMismatch();
        }
        if (!_skuRowIn(rr.root, t % x.shape.maxSeq, rr.data, rr.proof)) revert RopeRowMismatch();
        want = _ropeOf(x, p, uint256(c.row) % heads, isQ);
    }

    function _ropeOf(Ctx memory x, RowProof calldata p, uint256 head, bool isQ) internal view returns (bytes memory) {
        uint256 width = uint256(x.shape.headDim) * 4;
        uint256 from = head * width;
        if (p.inputs[0].row.length < from + width || p.vectors[0].data.length < from + width) {
            revert HeadSliceTooShort();
        }
        // Memory copies of the head's slices keep the call within the stack.
        bytes memory y = p.inputs[0].row[from:from + width];
        bytes memory sw = p.vectors[0].data[from:from + width];
        bytes memory bias = p.vectors.length == 2 ? p.vectors[1].data[from:from + width] : new bytes(0);
        return verifier.ropeRow(y, sw, bias, _scaleOf(p.inputs[1].row), p.leaves[0].data, isQ);
    }

    /// @dev scores: one element q · k_u, the key row named by the round that produced position u.
    function _scores(StepContext calldata c, Ctx memory x, RowProof calldata p)
        internal
        view
        returns (bool fraud, bytes32 committedHash, bytes32 recomputedHash)
    {
        if (p.inputs.length != 2) revert WrongOpeningCount(2, 0, 0);
        _openInput(c, p.inputs[0], c.step - 3, c.row);
        committedHash = keccak256(p.outRow);
        if (p.inputs[0].row.length == 0) return (p.outRow.length != 0, committedHash, bytes32(0));
        uint256 pos = (uint256(c.row) / x.shape.heads) % x.shape.maxSeq;
        // The row has one score per visible position 0..pos.
        if (p.outRow.length != (pos + 1) * 8) return (true, committedHash, bytes32(0));
        if (c.col > pos) return (false, committedHash, bytes32(0));
        _openKv(c, x, p.inputs[1], 5, _kvRow(x, c.row, c.col));
        uint256 at = uint256(c.col) * 8;
        int256 committed = int256(int64(uint64(bytes8(p.outRow[at:at + 8]))));
        int256 recomputed = verifier.scoreElement(p.inputs[0].row, p.inputs[1].row);
        committedHash = keccak256(abi.encode(committed));
        recomputedHash = keccak256(abi.encode(recomputed));
        fraud = committed != recomputed;
    }

    /// @dev The key/value row of position `u` of the prompt of per-head row `row`, for its kv head.
    function _kvRow(Ctx memory x, uint256 row, uint256 u) internal pure returns (uint256) {
        uint256 t = row / x.shape.heads;
        uint256 g = (row % x.shape.heads) / (x.shape.heads / x.shape.kvHeads);
        return (t - t % x.shape.maxSeq + u) * x.shape.kvHeads + g;
    }

    /// @dev pv: the probabilities times the value rows of positions 0..pos, each of its round.
    function _pv(StepContext calldata c, Ctx memory x, RowProof calldata p)
        internal
        view
        returns (bool empty, bytes memory want)
    {
        if (p.inputs.length == 0) revert WrongOpeningCount(1, 0, 0);
        _openInput(c, p.inputs[0], c.step - 1, c.row);
        bytes calldata sm = p.inputs[0].row;
        if (sm.length == 0) return (true, want);
        uint256 pos = (uint256(c.row) / x.shape.heads) % x.shape.maxSeq;
        if (p.inputs.length != pos + 2) revert WrongOpeningCount(pos + 2, 0, 0);
        if (sm.length != (pos + 1) * 4 + 8) revert SoftmaxRowMismatch();
        bytes memory v = _values(c, x, p.inputs, pos);
        int256 ap = int256(int64(uint64(bytes8(sm[sm.length - 8:]))));
        want = verifier.pvRow(sm[0:sm.length - 8], ap, v);
    }

    /// @dev The value rows of positions 0..pos (inputs 1..pos+1), opened and concatenated.
    function _values(StepContext calldata c, Ctx memory x, Opening[] calldata ins, uint256 pos)
        internal
        pure
        returns (bytes memory v)
    {
        uint256 width = uint256(x.shape.headDim) * 4;
        v = new bytes((pos + 1) * width);
        for (uint256 u = 0; u <= pos; ++u) {
            Opening calldata o = ins[1 + u];
            _openKv(c, x, o, 6, _kvRow(x, c.row, u));
            if (o.row.length != width) revert ValueRowMismatch();
            bytes calldata r = o.row;
            assembly ("memory-safe") {
                calldatacopy(add(add(v, 32), mul(u, width)), r.offset, width)
            }
        }
    }

    /// @dev final rmsnorm: only a prompt's last position (round 0) or its decode row has logits.
    function _finalNorm(StepContext calldata c, Ctx memory x, RowProof calldata p)
        internal
        view
        returns (bool empty, bytes memory want)
    {
        bool last = x.round > 0 || uint256(c.row) % x.shape.maxSeq == x.shape.maxSeq - 1;
        uint256 n = last ? 1 : 2;
        if (p.inputs.length != n) revert WrongOpeningCount(n, 0, 0);
        _openInput(c, p.inputs[0], c.step - 1, c.row);
        if (p.inputs[0].row.length == 0) return (true, want);
        if (!last) {
            _openInput(c, p.inputs[1], c.step - 1, uint256(c.row) + 1);
            if (p.inputs[1].row.length != 0) return (true, want);
        }
        want = verifier.rmsnormQuantRow(p.inputs[0].row, x.sku.epsQ32);
    }

    /// @dev value (one kv head of the v projection) and attn_out (a token's Hq pv rows).
    function _heads(StepContext calldata c, Ctx memory x, RowProof calldata p, Op op)
        internal
        view
        returns (bool empty, bytes memory want)
    {
        if (op == Op.AttnOut) {
            uint256 hq = x.shape.heads;
            if (p.inputs.length != hq || p.vectors.length != 0) revert WrongOpeningCount(hq, 0, 0);
            uint256 total;
            for (uint256 h = 0; h < hq; ++h) {
                _openInput(c, p.inputs[h], c.step - 1, uint256(c.row) * hq + h);
                total += p.inputs[h].row.length;
            }
            if (p.inputs[0].row.length == 0) return (true, want);
            bytes memory z = new bytes(total);
            uint256 at;
            for (uint256 h = 0; h < hq; ++h) {
                bytes calldata r = p.inputs[h].row;
                assembly ("memory-safe") {
                    calldatacopy(add(add(z, 32), at), r.offset, r.length)
                }
                at += r.length;
            }
            return (false, verifier.quantizeRow(z));
        }
        uint256 nVec = x.sku.hasBias ? 2 : 1;
        if (p.inputs.length != 2 || p.vectors.length != nVec) revert WrongOpeningCount(2, nVec, 0);
        uint256 t = uint256(c.row) / x.shape.kvHeads;
        _openInput(c, p.inputs[0], c.step - 3, t);
        _openInput(c, p.inputs[1], c.step - 6, t);
        if (p.inputs[0].row.length == 0) return (true, want);
        _openVector(x, p.vectors[0], x.layer * x.stride + 2, false);
        if (nVec == 2) _openVector(x, p.vectors[1], x.layer * x.stride + 9, true);
        want = _valueOf(x, p, uint256(c.row) % x.shape.kvHeads);
    }

    function _valueOf(Ctx memory x, RowProof calldata p, uint256 head) internal view returns (bytes memory) {
        uint256 width = uint256(x.shape.headDim) * 4;
        uint256 from = head * width;
        if (p.inputs[0].row.length < from + width || p.vectors[0].data.length < from + width) {
            revert HeadSliceTooShort();
        }
        bytes calldata bias = p.vectors.length == 2 ? p.vectors[1].data[from:from + width] : p.vectors[0].data[0:0];
        return verifier.valueRow(
            p.inputs[0].row[from:from + width], p.vectors[0].data[from:from + width], bias, _scaleOf(p.inputs[1].row)
        );
    }

    /// @dev The ops whose inputs are rows of the same index at fixed offsets.
    function _simple(StepContext calldata c, Ctx memory x, RowProof calldata p, Op op)
        internal
        view
        returns (bool empty, bytes memory want)
    {
        uint256[3] memory off;
        uint256 nVec;
        if (op == Op.Norm) off = [uint256(1), 0, 0];
        else if (op == Op.ResidualAttn) (off, nVec) = ([uint256(13), 1, 2], 1);
        else if (op == Op.ResidualFfn) (off, nVec) = ([uint256(6), 1, 2], 1);
        else if (op == Op.SiluMul) (off, nVec) = ([uint256(2), 1, 3], 3);
        else if (op == Op.Softmax) (off, nVec) = ([uint256(1), 4, 0], 1);
        else (off, nVec) = ([uint256(1), 0, 0], 1); // argmax
        uint256 nIn = off[2] != 0 ? 3 : off[1] != 0 ? 2 : 1;
        if (p.inputs.length != nIn || p.vectors.length != nVec) revert WrongOpeningCount(nIn, nVec, 0);
        for (uint256 i = 0; i < nIn; ++i) {
            _openInput(c, p.inputs[i], c.step - off[i], c.row);
        }
        if (p.inputs[0].row.length == 0) return (true, want);
        want = _recompute(x, p, op);
    }

    function _recompute(Ctx memory x, RowProof calldata p, Op op) internal view returns (bytes memory) {
        Opening[] calldata ins = p.inputs;
        uint256 lw = x.layer * x.stride;
        if (op == Op.Norm) return verifier.rmsnormQuantRow(ins[0].row, x.sku.epsQ32);
        if (op == Op.ResidualAttn || op == Op.ResidualFfn) {
            _openVector(x, p.vectors[0], lw + (op == Op.ResidualAttn ? 3 : 6), false);
            return verifier.residualRow(ins[0].row, ins[1].row, p.vectors[0].data, _scaleOf(ins[2].row));
        }
        if (op == Op.SiluMul) {
            _openVector(x, p.vectors[0], lw + 4, false);
            _openVector(x, p.vectors[1], lw + 5, false);
            _openVector(x, p.vectors[2], x.base + 3, true);
            return _silu(p);
        }
        if (op == Op.Softmax) {
            _openVector(x, p.vectors[0], x.base + 2, true);
            return verifier.softmaxRow(ins[0].row, _scaleOf(ins[1].row), x.sku.softmaxC, p.vectors[0].data);
        }
        _openVector(x, p.vectors[0], x.base + 1, false);
        (, uint256 id) = verifier.argmaxRow(ins[0].row, p.vectors[0].data, x.sku.vocab);
        return abi.encodePacked(uint32(id));
    }

    function _silu(RowProof calldata p) internal view returns (bytes memory) {
        return verifier.siluMulRow(
            p.inputs[0].row,
            p.inputs[1].row,
            p.vectors[0].data,
            p.vectors[1].data,
            _scaleOf(p.inputs[2].row),
            p.vectors[2].data
        );
    }

    // ------------------------------------------------------------------ openings

    /// @dev A key (op offset 5) or value (6) row of this layer, from the round the defender names;
    /// it must exist (in an honest trace exactly one round holds each position).
    function _openKv(StepContext calldata c, Ctx memory x, Opening calldata o, uint256 opOffset, uint256 row)
        internal
        pure
    {
        if (o.step % x.spr != 1 + 19 * x.layer + opOffset) revert KvStepMismatch();
        _openInput(c, o, o.step, row);
        if (o.row.length == 0) revert KvRowEmpty();
    }

    /// @dev A whole vector (a matrix's scales next to its rows root, or a table/bias) against
    /// the weight root at leaf `index`.
    function _openVector(Ctx memory x, VectorOpening calldata v, uint256 index, bool table) internal pure {
        bytes32 root = Merkle.vectorRoot(v.data);
        bytes32 leaf = table ? root : Merkle.node(v.rowsRoot, root);
        if (Merkle.rootOfSized(leaf, index, v.weightProof, x.base + 5) != x.sku.weightRoot) {
            revert VectorMismatch();
        }
    }
}
