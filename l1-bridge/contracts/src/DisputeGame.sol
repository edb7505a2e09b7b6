// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Receipt} from "./Types.sol";
import {Merkle} from "./Merkle.sol";
import {SkuRegistry} from "./SkuRegistry.sol";

/// @notice The inbox calls of the game.
interface IInboxGame {
    function verifyReceipt(uint256 batchId, Receipt calldata receipt, uint256 index, bytes32[] calldata proof)
        external
        view
        returns (bytes32);
    function onDisputeOpened(uint256 batchId) external;
    function onDisputeClosed(uint256 batchId, bytes32 receiptHash, bool fraud) external;
    function challengeWindow() external view returns (uint64);
}

/// @notice The bridge calls of the game.
interface IBridgeGame {
    function slash(address account, uint256 bps, address beneficiary, uint256 rewardBps) external returns (uint256);
    function strike(address account) external;
    function hasRole(address who, uint8 role) external view returns (bool);
}

/// @notice The one-step calls of the game.
interface IOneStep {
    function gemmElement(bytes calldata x, bytes calldata w) external pure returns (int256);
    function rmsnormQuantRow(bytes calldata x, uint256 epsQ32) external pure returns (bytes memory);
    function residualRow(bytes calldata h, bytes calldata y, bytes calldata sw, int256 sx)
        external
        pure
        returns (bytes memory);
    function siluMulRow(
        bytes calldata yg,
        bytes calldata yu,
        bytes calldata swg,
        bytes calldata swu,
        int256 sx,
        bytes calldata sigmoid
    ) external pure returns (bytes memory);
    function softmaxRow(bytes calldata scores, int256 sq, uint256 c, bytes calldata exp2)
        external
        pure
        returns (bytes memory);
    function argmaxRow(bytes calldata y, bytes calldata sw, uint256 valid) external pure returns (bool, uint256);
    function valueRow(bytes calldata y, bytes calldata sw, bytes calldata bias, int256 sx)
        external
        pure
        returns (bytes memory);
    function quantizeRow(bytes calldata z) external pure returns (bytes memory);
}

/// @title DisputeGame
/// @notice One game per challenged receipt. The challenger (any account, with a bond) disputes
/// the receipt's trace root. The trace is the fixed-depth state tree of `primitives::trace`: the
/// state after 0 steps is the all-zero tree (both sides agree), the state after `stepCount`
/// steps is the receipt's trace root (disputed). Bisection keeps an agreed state `lo` and a
/// disputed state `hi`: the defender (the receipt's worker) posts the k−1 states between them
/// (only their hash is stored), the challenger picks the sub-interval whose end it disputes,
/// naming both end values. When `hi = lo + 1` the dispute is one step `s = lo`: the challenger
/// names the entry (row, col) it says is wrong, and the defender opens it: the output root as
/// leaf `s` (zero in the agreed state, the output root in the disputed one, one proof), the
/// output row, the input row (its tensor root opened against the agreed state), the weight row
/// (opened against the SKU's weight root); the one-step verifier re-computes the element.
/// Each side has a chess clock; whoever lets its clock run out loses. Resolution does a fixed
/// amount of work. A lost game slashes the worker (fraud: heavy; timeout in bisection: partial;
/// an invalid receipt: everything), strikes it (removal at the bridge's limit) and pays part to
/// the challenger; a lost challenge pays part of the bond to the worker and burns the rest, so a
/// worker challenging itself always loses money.
contract DisputeGame {
    enum Phase {
        None,
        Bisect, // defender posts the intermediate states
        Choose, // challenger picks the disputed sub-interval
        Name, // challenger names the wrong entry of step lo
        Prove, // defender opens and proves the entry
        Resolved
    }

    enum Reason {
        None,
        Fraud, // the one-step recomputation disagreed with the committed value
        InvalidCommitment, // the receipt itself is malformed (step count, trace root)
        DefenderTimeout, // the worker let its clock run out during bisection
        ProofTimeout, // the worker could not open the named entry in time
        ChallengerTimeout, // the challenger let its clock run out
        Proven // the worker proved the named entry right
    }

    /// @notice One game. Ten slots.
    struct Game {
        address challenger;
        uint64 lastMoveAt;
        Phase phase;
        Reason reason;
        bool challengerWon;
        address defender;
        uint32 row;
        uint32 col;
        uint64 lo;
        uint64 hi;
        uint64 challengerClock;
        uint64 defenderClock;
        uint64 batchId;
        uint64 stepCount;
        uint128 bond;
        bytes32 loRoot;
        bytes32 hiRoot;
        bytes32 rootsHash;
        bytes32 receiptHash;
        bytes32 skuId;
    }

    /// @notice The defender's opening of one GEMM element of step `lo`.
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
    }

    /// @notice A tensor root opened as an earlier step's leaf of the agreed state, and its row
    /// `row` (empty bytes: a zero leaf, i.e. no such row).
    struct Opening {
        bytes32 root;
        bytes32[] stepProof;
        bytes row;
        bytes32[] rowProof;
    }

    /// @notice A committed vector of the SKU (a weight matrix's scales, with the matrix's rows
    /// root beside it, or a table, with `rowsRoot` unused), opened against the weight root.
    struct VectorOpening {
        bytes data;
        bytes32 rowsRoot;
        bytes32[] weightProof;
    }

    /// @notice The defender's opening of one output row of a row-op step.
    struct RowProof {
        bytes32 outRoot;
        bytes32[] stepProof;
        bytes outRow;
        bytes32[] outRowProof;
        Opening[] inputs;
        VectorOpening[] vectors;
    }

    error BondTooSmall(uint256 sent, uint256 minBond);
    error SelfChallenge();
    error NotARowStep(uint256 step);
    error WrongOpeningCount(uint256 inputs, uint256 vectors);
    error NotAVerifier(address caller);
    error GameExists(uint256 gameId);
    error UnknownGame(uint256 gameId);
    error WrongPhase(Phase want, Phase got);
    error NotYourTurn(address caller, address expected);
    error ClockExpired(uint256 elapsed, uint256 left);
    error ClockNotExpired(uint256 elapsed, uint256 left);
    error StaleMove(bytes32 named, bytes32 current);
    error WrongRootCount(uint256 got, uint256 want);
    error RootsMismatch();
    error BadChoice(uint256 index, uint256 parts);
    error NotAGemmStep(uint256 step);
    error ProofMismatch(string what);
    error NothingOwed();
    error TransferFailed(address to, uint256 amount);
    error BadConfig();

    event GameOpened(
        uint256 indexed gameId,
        uint256 indexed batchId,
        bytes32 indexed receiptHash,
        address challenger,
        address defender,
        uint256 bond
    );
    event Bisected(uint256 indexed gameId, uint64 lo, uint64 hi, bytes32[] roots);
    event Chosen(uint256 indexed gameId, uint64 lo, uint64 hi, bytes32 loRoot, bytes32 hiRoot);
    event EntryNamed(uint256 indexed gameId, uint64 step, uint32 row, uint32 col);
    event StepProven(uint256 indexed gameId, uint64 step, int256 committed, int256 recomputed);
    event RowProven(uint256 indexed gameId, uint64 step, bytes32 committedHash, bytes32 recomputedHash);
    event Resolved(uint256 indexed gameId, bool challengerWon, Reason reason, uint256 slashed);
    event Withdrawn(address indexed who, uint256 amount);

    uint256 internal constant BPS = 10_000;

    IBridgeGame public immutable bridge;
    IInboxGame public immutable inbox;
    SkuRegistry public immutable skus;
    IOneStep public immutable verifier;
    /// @notice Bisection arity: states posted per round + 1.
    uint256 public immutable arity;
    /// @notice Seconds on each side's chess clock.
    uint64 public immutable clock;
    uint256 public immutable minBond;
    uint256 public immutable slashFraudBps;
    uint256 public immutable slashTimeoutBps;
    /// @notice Share of the loser's slashed stake or bond paid to the winner; the rest is burned.
    uint256 public immutable rewardBps;

    Game[] internal games;
    mapping(bytes32 => uint256) internal gameIdPlusOne;
    mapping(address => uint256) public owed;
    uint256 public burnedBonds;

    constructor(
        IBridgeGame bridge_,
        IInboxGame inbox_,
        SkuRegistry skus_,
        IOneStep verifier_,
        uint256 arity_,
        uint64 clock_,
        uint256 minBond_,
        uint256 slashFraudBps_,
        uint256 slashTimeoutBps_,
        uint256 rewardBps_
    ) {
        if (arity_ < 2 || arity_ > 256 || slashFraudBps_ > BPS || slashTimeoutBps_ > BPS || rewardBps_ > BPS) {
            revert BadConfig();
        }
        bridge = bridge_;
        inbox = inbox_;
        skus = skus_;
        verifier = verifier_;
        arity = arity_;
        clock = clock_;
        minBond = minBond_;
        slashFraudBps = slashFraudBps_;
        slashTimeoutBps = slashTimeoutBps_;
        rewardBps = rewardBps_;
    }

    /// @notice The longest a game can last: both clocks spent.
    /// @return Seconds.
    function maxDuration() external view returns (uint256) {
        return 2 * uint256(clock);
    }

    // ------------------------------------------------------------------ opening

    /// @notice Challenges receipt `index` of batch `batchId` (inside its window), with a bond of
    /// at least `minBond`; the caller must be a staked verifier. A receipt whose step count is not a whole number of rounds of its SKU's
    /// program, or whose trace root is zero, is an invalid commitment and loses at once.
    /// @param batchId The batch.
    /// @param receipt The receipt.
    /// @param index Its position in the batch.
    /// @param proof Merkle siblings of its leaf in the batch.
    /// @return gameId The new game.
    function open(uint256 batchId, Receipt calldata receipt, uint256 index, bytes32[] calldata proof)
        external
        payable
        returns (uint256 gameId)
    {
        if (msg.sender == receipt.worker) revert SelfChallenge();
        // Challengers are staked verifiers (role 2): until every op has an on-chain opening
        // (docs/CONTRACTS.md), a challenge is an accountable act of a known staker.
        if (!bridge.hasRole(msg.sender, 2)) revert NotAVerifier(msg.sender);
        if (msg.value < minBond) revert BondTooSmall(msg.value, minBond);
        bytes32 receiptHash = inbox.verifyReceipt(batchId, receipt, index, proof);
        bytes32 key = keccak256(abi.encode(batchId, receiptHash));
        if (gameIdPlusOne[key] != 0) revert GameExists(gameIdPlusOne[key] - 1);
        inbox.onDisputeOpened(batchId);
        gameId = games.length;
        gameIdPlusOne[key] = gameId + 1;
        Game storage g = games.push();
        g.challenger = msg.sender;
        g.defender = receipt.worker;
        g.lastMoveAt = uint64(block.timestamp);
        g.challengerClock = clock;
        g.defenderClock = clock;
        g.batchId = uint64(batchId);
        g.stepCount = receipt.stepCount;
        g.bond = uint128(msg.value);
        g.receiptHash = receiptHash;
        g.skuId = receipt.skuId;
        g.hi = receipt.stepCount;
        g.hiRoot = receipt.traceRoot;
        emit GameOpened(gameId, batchId, receiptHash, msg.sender, receipt.worker, msg.value);

        uint256 spr = skus.stepsPerRound(receipt.skuId);
        if (receipt.stepCount == 0 || receipt.stepCount % spr != 0 || receipt.traceRoot == bytes32(0)) {
            _resolve(gameId, g, true, Reason.InvalidCommitment);
            return gameId;
        }
        g.loRoot = Merkle.zeroHash(Merkle.depthFor(receipt.stepCount));
        g.phase = receipt.stepCount == 1 ? Phase.Name : Phase.Bisect;
    }

    // ------------------------------------------------------------------ bisection

    /// @notice Defender: posts the states at the `m − 1` inner points of (lo, hi), where
    /// m = min(arity, hi − lo) and point j is lo + (hi − lo)·j/m.
    /// @param gameId The game.
    /// @param disputed The current disputed state root (the move is void if it changed).
    /// @param roots The state roots at the inner points, in order.
    function bisect(uint256 gameId, bytes32 disputed, bytes32[] calldata roots) external {
        Game storage g = _move(gameId, Phase.Bisect, true);
        if (disputed != g.hiRoot) revert StaleMove(disputed, g.hiRoot);
        uint256 m = _parts(g);
        if (roots.length != m - 1) revert WrongRootCount(roots.length, m - 1);
        g.rootsHash = keccak256(abi.encodePacked(roots));
        g.phase = Phase.Choose;
        emit Bisected(gameId, g.lo, g.hi, roots);
    }

    /// @notice Challenger: keeps part `j` of the last bisection, agreeing with its start and
    /// disputing its end (both named).
    /// @param gameId The game.
    /// @param roots The roots the defender posted (checked against their hash).
    /// @param j The part, 0 ≤ j < m.
    /// @param agreed The start state of part j.
    /// @param disputed The end state of part j.
    function choose(uint256 gameId, bytes32[] calldata roots, uint256 j, bytes32 agreed, bytes32 disputed)
        external
    {
        Game storage g = _move(gameId, Phase.Choose, false);
        if (keccak256(abi.encodePacked(roots)) != g.rootsHash) revert RootsMismatch();
        uint256 m = _parts(g);
        if (j >= m) revert BadChoice(j, m);
        uint256 span = g.hi - g.lo;
        bytes32 newLoRoot = j == 0 ? g.loRoot : roots[j - 1];
        bytes32 newHiRoot = j + 1 == m ? g.hiRoot : roots[j];
        if (agreed != newLoRoot) revert StaleMove(agreed, newLoRoot);
        if (disputed != newHiRoot) revert StaleMove(disputed, newHiRoot);
        uint64 lo = g.lo;
        g.lo = uint64(lo + span * j / m);
        g.hi = uint64(lo + span * (j + 1) / m);
        g.loRoot = newLoRoot;
        g.hiRoot = newHiRoot;
        g.rootsHash = bytes32(0);
        g.phase = g.hi - g.lo == 1 ? Phase.Name : Phase.Bisect;
        emit Chosen(gameId, g.lo, g.hi, newLoRoot, newHiRoot);
    }

    /// @notice Challenger: names the entry of step `lo`'s output it says is wrong.
    /// @param gameId The game.
    /// @param disputed The disputed post-state of the step.
    /// @param row Output row.
    /// @param col Output column (the element for GEMM steps; ignored by row ops).
    function nameEntry(uint256 gameId, bytes32 disputed, uint32 row, uint32 col) external {
        Game storage g = _move(gameId, Phase.Name, false);
        if (disputed != g.hiRoot) revert StaleMove(disputed, g.hiRoot);
        g.row = row;
        g.col = col;
        g.phase = Phase.Prove;
        emit EntryNamed(gameId, g.lo, row, col);
    }

    // ------------------------------------------------------------------ one step

    /// @notice Defender: opens the named entry of a GEMM step and lets the verifier recompute it.
    /// The defender wins when the recomputed accumulator equals the committed one, or when the
    /// named row is empty in both the (agreed) input and the output tensor; it loses when the
    /// values differ or the output row is too short for the named column.
    /// @param gameId The game.
    /// @param p The opening.
    function proveGemm(uint256 gameId, GemmProof calldata p) external {
        Game storage g = _move(gameId, Phase.Prove, true);
        (bool isGemm, uint256 inOffset, uint256 matrix, uint256 weightLeaves) = gemmStep(g.skuId, g.lo);
        if (!isGemm || inOffset > g.lo) revert NotAGemmStep(g.lo);
        _openTensors(g, p, inOffset);
        if (p.inRow.length == 0) {
            // No such input row: the honest output row is empty too.
            bool bad = p.outRow.length != 0;
            _resolve(gameId, g, bad, bad ? Reason.Fraud : Reason.Proven);
            return;
        }
        if (p.outRow.length == 0) {
            _resolve(gameId, g, true, Reason.Fraud);
            return;
        }
        _openWeight(g, p, matrix, weightLeaves);
        uint256 at = uint256(g.col) * 4;
        if (p.outRow.length < at + 4 || p.inRow.length < p.wRow.length) {
            _resolve(gameId, g, true, Reason.Fraud);
            return;
        }
        int256 committed = int256(int32(uint32(bytes4(p.outRow[at:at + 4]))));
        int256 recomputed = verifier.gemmElement(p.inRow, p.wRow);
        emit StepProven(gameId, g.lo, committed, recomputed);
        bool fraud = committed != recomputed;
        _resolve(gameId, g, fraud, fraud ? Reason.Fraud : Reason.Proven);
    }

    /// @dev Output root as leaf s (zero before, root after, one path), the input tensor root as an
    /// earlier leaf of the agreed state, and row `row` of both tensors (empty bytes: zero leaf).
    function _openTensors(Game storage g, GemmProof calldata p, uint256 inOffset) internal view {
        uint256 s = g.lo;
        uint256 depth = Merkle.depthFor(g.stepCount);
        if (p.stepProof.length != depth) revert ProofMismatch("step proof length");
        if (Merkle.rootOf(bytes32(0), s, p.stepProof) != g.loRoot) revert ProofMismatch("pre-state");
        if (Merkle.rootOf(p.outRoot, s, p.stepProof) != g.hiRoot) revert ProofMismatch("post-state");
        if (p.inStepProof.length != depth) revert ProofMismatch("input step proof length");
        if (Merkle.rootOf(p.inRoot, s - inOffset, p.inStepProof) != g.loRoot) revert ProofMismatch("input root");
        bytes32 inLeaf = p.inRow.length == 0 ? bytes32(0) : Merkle.leafHash(p.inRow);
        if (Merkle.rootOf(inLeaf, g.row, p.inRowProof) != p.inRoot) revert ProofMismatch("input row");
        bytes32 outLeaf = p.outRow.length == 0 ? bytes32(0) : Merkle.leafHash(p.outRow);
        if (Merkle.rootOf(outLeaf, g.row, p.outRowProof) != p.outRoot) revert ProofMismatch("output row");
    }

    /// @dev The weight row: the matrix root (rows root ‖ scales root) as leaf `matrix` of the
    /// SKU's weight root, and row `col` of the matrix's rows.
    function _openWeight(Game storage g, GemmProof calldata p, uint256 matrix, uint256 weightLeaves)
        internal
        view
    {
        bytes32 matrixRoot = Merkle.node(p.rowsRoot, p.scalesRoot);
        if (Merkle.rootOfSized(matrixRoot, matrix, p.matrixProof, weightLeaves) != skus.get(g.skuId).weightRoot) {
            revert ProofMismatch("matrix");
        }
        if (Merkle.rootOf(Merkle.leafHash(p.wRow), g.col, p.wRowProof) != p.rowsRoot) {
            revert ProofMismatch("weight row");
        }
    }

    /// @notice Row-op kinds the game can settle (steps whose input rows sit at fixed step offsets
    /// and at row indices known from the output row): 1 rmsnorm_quant (attention/ffn),
    /// 2 residual after o, 3 residual after down, 4 silu_mul, 5 softmax, 6 argmax, and, once the
    /// SKU's shape is set, 7 value and 8 attn_out; 0 for the others.
    /// @param skuId The SKU.
    /// @param s The step.
    /// @return kind The row-op kind.
    /// @return layer The step's layer.
    function rowStep(bytes32 skuId, uint256 s) public view returns (uint8 kind, uint256 layer) {
        uint256 layers = skus.get(skuId).layers;
        uint256 idx = s % (19 * layers + 4);
        if (idx == 19 * layers + 3) return (6, 0);
        if (idx == 0 || idx > 19 * layers) return (0, 0);
        layer = (idx - 1) / 19;
        uint256 o = (idx - 1) % 19;
        if (o == 0 || o == 13) kind = 1;
        else if (o == 12) kind = 2;
        else if (o == 18) kind = 3;
        else if (o == 16) kind = 4;
        else if (o == 8) kind = 5;
        else if ((o == 6 || o == 10) && skus.shapeOf(skuId).heads != 0) kind = o == 6 ? 7 : 8;
    }

    /// @notice Defender: opens the named output row of a row-op step (see `rowStep`) and its
    /// inputs, and lets the verifier recompute the whole row. Inputs, in order: rmsnorm_quant
    /// [x (s−1)]; residual [h (s−13 or s−6), y (s−1), the projection's input row (s−2) for its
    /// scale]; silu_mul [gate (s−2), up (s−1), the normalized row (s−3) for its scale]; softmax
    /// [scores (s−1), the rope_q row (s−4) for its scale]; argmax [logits (s−1)]. Vectors:
    /// residual [the o/down scales]; silu_mul [gate scales, up scales, SIGMOID]; softmax [EXP2];
    /// argmax [lm_head scales]. The defender wins when the recomputed row equals the committed one,
    /// or when the row is empty in both the first input and the output.
    /// @param gameId The game.
    /// @param p The opening.
    function proveRow(uint256 gameId, RowProof calldata p) external {
        Game storage g = _move(gameId, Phase.Prove, true);
        (uint8 kind, uint256 layer) = rowStep(g.skuId, g.lo);
        if (kind == 0) revert NotARowStep(g.lo);
        _openOutput(g, p);
        SkuRegistry.Shape memory sh = skus.shapeOf(g.skuId);
        (uint256 nIn, uint256 nVec) = _counts(kind, sh.heads, skus.get(g.skuId).hasBias);
        if (p.inputs.length != nIn || p.vectors.length != nVec) revert WrongOpeningCount(nIn, nVec);
        uint256[3] memory off = _offsets(kind);
        for (uint256 i = 0; i < nIn; ++i) {
            // value reads token row row/Hkv; attn_out reads the Hq head rows of its token.
            uint256 r = g.row;
            if (kind == 7) r = g.row / sh.kvHeads;
            else if (kind == 8) r = uint256(g.row) * sh.heads + i;
            _openInput(g, p.inputs[i], kind == 8 ? 1 : off[i], r);
        }
        if (p.inputs[0].row.length == 0) {
            bool bad = p.outRow.length != 0;
            _resolve(gameId, g, bad, bad ? Reason.Fraud : Reason.Proven);
            return;
        }
        _openVectors(g.skuId, kind, layer, p.vectors);
        bytes memory want = kind >= 7 ? _recomputeHeads(kind, g.row, sh, p) : _recompute(g.skuId, kind, p);
        bool fraud = keccak256(want) != keccak256(p.outRow);
        emit RowProven(gameId, g.lo, keccak256(p.outRow), keccak256(want));
        _resolve(gameId, g, fraud, fraud ? Reason.Fraud : Reason.Proven);
    }

    function _counts(uint8 kind, uint256 heads, bool hasBias) internal pure returns (uint256 nIn, uint256 nVec) {
        if (kind == 1) return (1, 0);
        if (kind == 2 || kind == 3) return (3, 1);
        if (kind == 4) return (3, 3);
        if (kind == 5) return (2, 1);
        if (kind == 6) return (1, 1);
        if (kind == 7) return (2, hasBias ? 2 : 1);
        return (heads, 0);
    }

    /// @dev value: the kv head's slice of the v projection row, its scales (and bias) slices,
    /// the normalized row's scale; attn_out: quantize_row of the token's concatenated head rows.
    function _recomputeHeads(uint8 kind, uint256 row, SkuRegistry.Shape memory sh, RowProof calldata p)
        internal
        view
        returns (bytes memory)
    {
        if (kind == 8) {
            bytes memory z;
            for (uint256 h = 0; h < p.inputs.length; ++h) {
                z = bytes.concat(z, p.inputs[h].row);
            }
            return verifier.quantizeRow(z);
        }
        uint256 width = uint256(sh.headDim) * 4;
        uint256 from = (row % sh.kvHeads) * width;
        if (p.inputs[0].row.length < from + width || p.vectors[0].data.length < from + width) {
            revert ProofMismatch("head slice");
        }
        bytes calldata bias = p.vectors.length > 1 ? p.vectors[1].data[from:from + width] : p.vectors[0].data[0:0];
        return verifier.valueRow(
            p.inputs[0].row[from:from + width], p.vectors[0].data[from:from + width], bias, _scaleOf(p.inputs[1].row)
        );
    }

    function _offsets(uint8 kind) internal pure returns (uint256[3] memory off) {
        if (kind == 1 || kind == 6) off[0] = 1;
        else if (kind == 2) off = [uint256(13), 1, 2];
        else if (kind == 3) off = [uint256(6), 1, 2];
        else if (kind == 4) off = [uint256(2), 1, 3];
        else if (kind == 5) off = [uint256(1), 4, 0];
        else if (kind == 7) off = [uint256(3), 6, 0];
    }

    /// @dev Output root as leaf s (zero before, root after) and the named row of it.
    function _openOutput(Game storage g, RowProof calldata p) internal view {
        uint256 s = g.lo;
        if (p.stepProof.length != Merkle.depthFor(g.stepCount)) revert ProofMismatch("step proof length");
        if (Merkle.rootOf(bytes32(0), s, p.stepProof) != g.loRoot) revert ProofMismatch("pre-state");
        if (Merkle.rootOf(p.outRoot, s, p.stepProof) != g.hiRoot) revert ProofMismatch("post-state");
        bytes32 outLeaf = p.outRow.length == 0 ? bytes32(0) : Merkle.leafHash(p.outRow);
        if (Merkle.rootOf(outLeaf, g.row, p.outRowProof) != p.outRoot) revert ProofMismatch("output row");
    }

    /// @dev An input tensor root as leaf s − offset of the agreed state and its row `row`.
    function _openInput(Game storage g, Opening calldata o, uint256 offset, uint256 row) internal view {
        if (offset > g.lo) revert ProofMismatch("input step");
        if (o.stepProof.length != Merkle.depthFor(g.stepCount)) revert ProofMismatch("input step proof length");
        if (Merkle.rootOf(o.root, g.lo - offset, o.stepProof) != g.loRoot) revert ProofMismatch("input root");
        bytes32 leaf = o.row.length == 0 ? bytes32(0) : Merkle.leafHash(o.row);
        if (Merkle.rootOf(leaf, row, o.rowProof) != o.root) revert ProofMismatch("input row");
    }

    /// @dev The vectors of a row op against the SKU's weight root (leaf indices of docs §5).
    function _openVectors(bytes32 skuId, uint8 kind, uint256 layer, VectorOpening[] calldata v) internal view {
        SkuRegistry.Sku memory k = skus.get(skuId);
        uint256 stride = k.hasBias ? 10 : 7;
        uint256 base = uint256(k.layers) * stride; // embedding; +1 lm_head, +2 EXP2, +3 SIGMOID
        uint256 leaves = base + 5;
        if (kind == 2) _openVector(k.weightRoot, v[0], layer * stride + 3, false, leaves);
        if (kind == 3) _openVector(k.weightRoot, v[0], layer * stride + 6, false, leaves);
        if (kind == 4) {
            _openVector(k.weightRoot, v[0], layer * stride + 4, false, leaves);
            _openVector(k.weightRoot, v[1], layer * stride + 5, false, leaves);
            _openVector(k.weightRoot, v[2], base + 3, true, leaves);
        }
        if (kind == 5) _openVector(k.weightRoot, v[0], base + 2, true, leaves);
        if (kind == 6) _openVector(k.weightRoot, v[0], base + 1, false, leaves);
        if (kind == 7) {
            _openVector(k.weightRoot, v[0], layer * stride + 2, false, leaves);
            if (k.hasBias) _openVector(k.weightRoot, v[1], layer * stride + 9, true, leaves);
        }
    }

    function _openVector(bytes32 weightRoot, VectorOpening calldata v, uint256 index, bool table, uint256 leaves)
        internal
        pure
    {
        bytes32 root = Merkle.vectorRoot(v.data);
        bytes32 leaf = table ? root : Merkle.node(v.rowsRoot, root);
        if (Merkle.rootOfSized(leaf, index, v.weightProof, leaves) != weightRoot) revert ProofMismatch("vector");
    }

    /// @dev The scale (last 8 bytes) of a QRow.
    function _scaleOf(bytes calldata row) internal pure returns (int256) {
        if (row.length < 8) revert ProofMismatch("scale row");
        return int256(int64(uint64(bytes8(row[row.length - 8:row.length]))));
    }

    /// @dev The recomputed output row bytes.
    function _recompute(bytes32 skuId, uint8 kind, RowProof calldata p) internal view returns (bytes memory) {
        Opening[] calldata ins = p.inputs;
        if (kind == 1) return verifier.rmsnormQuantRow(ins[0].row, skus.get(skuId).epsQ32);
        if (kind == 2 || kind == 3) {
            return verifier.residualRow(ins[0].row, ins[1].row, p.vectors[0].data, _scaleOf(ins[2].row));
        }
        if (kind == 4) {
            return verifier.siluMulRow(
                ins[0].row, ins[1].row, p.vectors[0].data, p.vectors[1].data, _scaleOf(ins[2].row), p.vectors[2].data
            );
        }
        if (kind == 5) {
            return verifier.softmaxRow(ins[0].row, _scaleOf(ins[1].row), skus.get(skuId).softmaxC, p.vectors[0].data);
        }
        (, uint256 id) = verifier.argmaxRow(ins[0].row, p.vectors[0].data, skus.get(skuId).vocab);
        return abi.encodePacked(uint32(id));
    }

    /// @notice Where step `s` of a program of SKU `skuId` is a GEMM: the offset back to its input
    /// step, the weight matrix's leaf index in the weight root, and that root's leaf count
    /// (docs/ARITHMETIC.md §6 and §5).
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

    // ------------------------------------------------------------------ clocks

    /// @notice Ends a game whose side to move has used up its clock; the other side wins.
    /// @param gameId The game.
    function timeout(uint256 gameId) external {
        Game storage g = _game(gameId);
        Phase ph = g.phase;
        if (ph == Phase.None || ph == Phase.Resolved) revert WrongPhase(Phase.Bisect, ph);
        bool defenderToMove = ph == Phase.Bisect || ph == Phase.Prove;
        uint256 left = defenderToMove ? g.defenderClock : g.challengerClock;
        uint256 elapsed = block.timestamp - g.lastMoveAt;
        if (elapsed <= left) revert ClockNotExpired(elapsed, left);
        if (defenderToMove) {
            _resolve(gameId, g, true, ph == Phase.Prove ? Reason.ProofTimeout : Reason.DefenderTimeout);
        } else {
            _resolve(gameId, g, false, Reason.ChallengerTimeout);
        }
    }

    // ------------------------------------------------------------------ payouts

    /// @notice Pays out the caller's returned bond or bond reward.
    function withdraw() external {
        uint256 amount = owed[msg.sender];
        if (amount == 0) revert NothingOwed();
        owed[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
    }

    // ------------------------------------------------------------------ views

    /// @notice Number of games.
    /// @return The count.
    function gameCount() external view returns (uint256) {
        return games.length;
    }

    /// @notice Game `gameId`.
    /// @param gameId The game.
    /// @return The stored game.
    function getGame(uint256 gameId) external view returns (Game memory) {
        return _game(gameId);
    }

    /// @notice The game of receipt `receiptHash` in batch `batchId`.
    /// @param batchId The batch.
    /// @param receiptHash The receipt.
    /// @return exists Whether a game was opened.
    /// @return gameId Its id.
    function gameOf(uint256 batchId, bytes32 receiptHash) external view returns (bool exists, uint256 gameId) {
        uint256 v = gameIdPlusOne[keccak256(abi.encode(batchId, receiptHash))];
        return (v != 0, v == 0 ? 0 : v - 1);
    }

    /// @notice The inner bisection points of game `gameId`'s current interval.
    /// @param gameId The game.
    /// @return points The m − 1 step counts whose states the defender must post.
    function bisectionPoints(uint256 gameId) external view returns (uint64[] memory points) {
        Game storage g = _game(gameId);
        uint256 m = _parts(g);
        points = new uint64[](m - 1);
        uint256 span = g.hi - g.lo;
        for (uint256 j = 1; j < m; ++j) {
            points[j - 1] = uint64(g.lo + span * j / m);
        }
    }

    // ------------------------------------------------------------------ internals

    function _game(uint256 gameId) internal view returns (Game storage) {
        if (gameId >= games.length) revert UnknownGame(gameId);
        return games[gameId];
    }

    function _parts(Game storage g) internal view returns (uint256) {
        uint256 span = g.hi - g.lo;
        return span < arity ? span : arity;
    }

    /// @dev Checks phase and turn, charges the mover's clock, and returns the game.
    function _move(uint256 gameId, Phase phase, bool defender) internal returns (Game storage g) {
        g = _game(gameId);
        if (g.phase != phase) revert WrongPhase(phase, g.phase);
        address expected = defender ? g.defender : g.challenger;
        if (msg.sender != expected) revert NotYourTurn(msg.sender, expected);
        uint256 elapsed = block.timestamp - g.lastMoveAt;
        uint256 left = defender ? g.defenderClock : g.challengerClock;
        if (elapsed > left) revert ClockExpired(elapsed, left);
        if (defender) g.defenderClock = uint64(left - elapsed);
        else g.challengerClock = uint64(left - elapsed);
        g.lastMoveAt = uint64(block.timestamp);
    }

    /// @dev Settles a game: a fixed number of calls whatever happened before.
    function _resolve(uint256 gameId, Game storage g, bool challengerWon, Reason reason) internal {
        g.phase = Phase.Resolved;
        g.reason = reason;
        g.challengerWon = challengerWon;
        uint256 slashed;
        uint256 bond = g.bond;
        if (challengerWon) {
            uint256 bps = reason == Reason.InvalidCommitment
                ? BPS
                : reason == Reason.DefenderTimeout ? slashTimeoutBps : slashFraudBps;
            slashed = bridge.slash(g.defender, bps, g.challenger, rewardBps);
            bridge.strike(g.defender);
            owed[g.challenger] += bond;
        } else {
            uint256 reward = bond * rewardBps / BPS;
            owed[g.defender] += reward;
            burnedBonds += bond - reward;
        }
        inbox.onDisputeClosed(g.batchId, g.receiptHash, challengerWon);
        emit Resolved(gameId, challengerWon, reason, slashed);
    }
}
