// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Owned, Receipt} from "./Types.sol";
import {Merkle} from "./Merkle.sol";
import {IAuditsInbox, IInboxAudits, IBridgeAudits, IGameAudits} from "./interfaces/IAudits.sol";

/// @title Audits
/// @notice The audit protocol (docs/AUDITS.md). Each posted batch gets a seed from the L1's
/// RANDAO (`block.prevrandao`) of a block at least `seedDelay` blocks after the batch, so no
/// receipt can be chosen knowing it. From the seed, for each receipt, anyone computes (and
/// `draw*` records): whether it is audited (probability `rateBps`, set by its worker's record),
/// how deeply (which GEMMs, how many Freivalds rounds: `Depth`), the audit seed its Freivalds
/// vectors come from, and the verifier, drawn stake-weighted among the verifiers serving its
/// SKU. The verifier reports on L1 before its deadline: a pass, or a fail backed by the dispute
/// it opened. At finalization the inbox settles each receipt here: a receipt earns credits only
/// when it was audited, passed and not proven fraudulent, and then `fee ÷ probability`, so that
/// a worker's expected weight is the fee its buyers paid; the verifier is paid a cut of it.
/// A verifier that misses its deadline is partially slashed and the audit redrawn; one that
/// passed a receipt later proven fraudulent (lazy or bribed), or failed one that was not, is
/// slashed.
contract Audits is Owned, IAuditsInbox {
    /// @notice The state of one receipt's audit.
    enum Status {
        None, // not drawn yet
        Skipped, // drawn, not audited
        Assigned, // a verifier must report by `deadline`
        Passed,
        Failed, // the verifier reported fraud and opened game `gameId`
        Void, // audited but no report can count any more (no verifier, window over)
        Missed // settled while still assigned: void, its verifier still to be slashed (`expire`)
    }

    /// @notice How much of a receipt an audit checks (the watcher's `GemmSelect`).
    enum Depth {
        One, // one MLP GEMM drawn from the audit seed, one Freivalds round
        Mlp, // every MLP GEMM of every layer, one round
        All // every GEMM of the program, two rounds
    }

    /// @notice Deployment parameters (docs/AUDITS.md gives the mainnet values and why).
    struct Params {
        uint64 seedDelay; // blocks after posting before the seed can be fixed
        uint64 seedGrace; // blocks after that in which a fixed seed is not "late"
        uint64 verifyPeriod; // seconds an assigned verifier has to report
        uint8 maxDraws; // verifiers drawn per audit before it is void
        uint16 baseBps; // audit probability of an established worker
        uint16 newBps; // ... of a worker with fewer than `newPasses` passed audits
        uint16 veteranBps; // ... of a worker with at least `veteranPasses`
        uint32 newPasses;
        uint32 veteranPasses;
        uint16 verifierFeeBps; // the verifier's cut of a passed receipt's weight
        uint16 missSlashBps; // slash of a verifier that misses its deadline
        uint16 lazySlashBps; // slash of a verifier that passed a fraudulent receipt
        uint16 falseSlashBps; // slash of a verifier whose reported fraud was not proven
        uint16 keeperRewardBps; // share of a miss slash paid to whoever expires the audit
    }

    /// @notice A batch's seed. One slot.
    struct Seed {
        bytes32 value;
        uint64 fixedAt;
        bool late;
    }

    /// @notice One receipt's audit. A skipped receipt writes the first slot only; an audited
    /// one all four.
    struct Audit {
        address verifier;
        uint40 deadline;
        Status status;
        Depth depth;
        uint8 draws;
        uint16 rateBps;
        address worker;
        uint64 gameId;
        bytes32 skuId;
        bytes32 receiptHash;
    }

    /// @notice A worker's audit record (sets its rate and depth).
    struct Record {
        uint32 passes;
        uint32 fails;
    }

    /// @notice A SKU's verifiers and their drawing weights, read once per draw call.
    struct Pool {
        bytes32 skuId;
        address[] list;
        uint256[] weights;
        uint256 total;
    }

    error BadParams();
    error NotInbox(address caller);
    error SeedAlreadyFixed(uint256 batchId);
    error SeedNotDue(uint256 batchId, uint256 targetBlock);
    error SeedNotFixed(uint256 batchId);
    error ReceiptsMismatch(uint256 batchId);
    error NotAssigned(uint256 batchId, uint256 index);
    error NotTheVerifier(address caller, address verifier);
    error DeadlinePassed(uint256 batchId, uint256 index, uint256 deadline);
    error DeadlineNotPassed(uint256 batchId, uint256 index, uint256 deadline);
    error NotYourDispute(uint256 gameId);
    error NotAVerifier(address who);
    error AlreadyJoined(address who, bytes32 skuId);
    error NotJoined(address who, bytes32 skuId);
    error TooManyVerifiers(bytes32 skuId);

    event SeedFixed(uint256 indexed batchId, bytes32 seed, uint256 blockNumber, bool late);
    event Drawn(
        uint256 indexed batchId, uint256 index, bytes32 indexed receiptHash, bool audited, uint16 rateBps, Depth depth
    );
    event AuditAssigned(uint256 indexed batchId, uint256 index, address indexed verifier, uint256 deadline, uint8 draw);
    /// @notice PRD §11's verification receipt: `steps` are the GEMM steps checked (derived from
    /// the audit seed and depth; recorded, not re-derived on chain).
    event Verified(
        uint256 indexed batchId, uint256 index, address indexed verifier, bool pass, uint256 gameId, uint64[] steps
    );
    event AuditMissed(uint256 indexed batchId, uint256 index, address indexed verifier, uint256 slashed);
    event AuditVoid(uint256 indexed batchId, uint256 index);
    event VerifierSlashed(uint256 indexed batchId, uint256 index, address indexed verifier, uint256 slashed, bool lazy);
    event VerifierJoined(address indexed verifier, bytes32 indexed skuId);
    event VerifierLeft(address indexed verifier, bytes32 indexed skuId);

    uint256 internal constant BPS = 10_000;
    /// @notice Most verifiers per SKU: a draw reads each one's stake once per call and walks
    /// the list twice per receipt, so this bounds its gas (the largest batch with this many
    /// verifiers draws in one transaction: `test_gas_maxBatchWithMaxVerifiersDrawsUnderCap`).
    uint256 public constant MAX_VERIFIERS = 32;
    /// @notice Domain tags keep the seed's derived values independent of each other.
    bytes32 public constant SEED_TAG = keccak256("verinfer.audit.seed");
    bytes32 public constant DRAW_TAG = keccak256("verinfer.audit.draw");
    bytes32 public constant VERIFIER_TAG = keccak256("verinfer.audit.verifier");

    IInboxAudits public immutable inbox;
    IBridgeAudits public immutable bridge;
    IGameAudits public immutable game;

    Params internal params;
    mapping(uint256 => Seed) public seeds;
    mapping(bytes32 => Audit) internal audits;
    mapping(address => Record) public records;
    mapping(bytes32 => address[]) internal verifierList;
    mapping(bytes32 => mapping(address => bool)) public isVerifierFor;

    constructor(address owner_, IInboxAudits inbox_, IBridgeAudits bridge_, IGameAudits game_, Params memory p)
        Owned(owner_)
    {
        if (
            p.maxDraws == 0 || p.verifyPeriod == 0 || p.seedDelay == 0 || !_rate(p.baseBps) || !_rate(p.newBps)
                || !_rate(p.veteranBps) || p.verifierFeeBps > BPS || p.missSlashBps > BPS || p.lazySlashBps > BPS
                || p.falseSlashBps > BPS || p.keeperRewardBps > BPS || p.newPasses > p.veteranPasses
        ) revert BadParams();
        inbox = inbox_;
        bridge = bridge_;
        game = game_;
        params = p;
    }

    function _rate(uint16 bps) internal pure returns (bool) {
        return bps != 0 && bps <= BPS;
    }

    // ------------------------------------------------------------------ verifiers

    /// @notice Joins the verifiers drawn for `skuId` (a staker holding the verifier role).
    /// @param skuId The SKU.
    function joinSku(bytes32 skuId) external {
        if (bridge.verifierWeight(msg.sender) == 0) revert NotAVerifier(msg.sender);
        if (isVerifierFor[skuId][msg.sender]) revert AlreadyJoined(msg.sender, skuId);
        if (verifierList[skuId].length >= MAX_VERIFIERS) revert TooManyVerifiers(skuId);
        isVerifierFor[skuId][msg.sender] = true;
        verifierList[skuId].push(msg.sender);
        emit VerifierJoined(msg.sender, skuId);
    }

    /// @notice Leaves the verifiers of `skuId` (audits already assigned stay assigned).
    /// @param skuId The SKU.
    function leaveSku(bytes32 skuId) external {
        if (!isVerifierFor[skuId][msg.sender]) revert NotJoined(msg.sender, skuId);
        isVerifierFor[skuId][msg.sender] = false;
        address[] storage list = verifierList[skuId];
        for (uint256 i = 0; i < list.length; ++i) {
            if (list[i] == msg.sender) {
                list[i] = list[list.length - 1];
                list.pop();
                break;
            }
        }
        emit VerifierLeft(msg.sender, skuId);
    }

    /// @notice The verifiers serving `skuId`, in drawing order.
    /// @param skuId The SKU.
    /// @return The list.
    function verifiersOf(bytes32 skuId) external view returns (address[] memory) {
        return verifierList[skuId];
    }

    // ------------------------------------------------------------------ seed

    /// @notice The first block whose RANDAO may fix batch `batchId`'s seed.
    /// @param batchId The batch.
    /// @return The block number.
    function seedTarget(uint256 batchId) public view returns (uint256) {
        (,, uint256 postBlock,) = inbox.batchFacts(batchId);
        return postBlock + params.seedDelay;
    }

    /// @notice Fixes batch `batchId`'s seed from this block's RANDAO (anyone, once, from
    /// `seedTarget`). A seed fixed more than `seedGrace` blocks after the target is late: every
    /// receipt of the batch is then audited at full depth, so waiting for a RANDAO value one
    /// likes only makes audits certain.
    /// @param batchId The batch.
    /// @return seed The seed.
    function fixSeed(uint256 batchId) external returns (bytes32 seed) {
        if (seeds[batchId].value != 0) revert SeedAlreadyFixed(batchId);
        (bytes32 root,, uint256 postBlock,) = inbox.batchFacts(batchId);
        uint256 target = postBlock + params.seedDelay;
        if (block.number < target) revert SeedNotDue(batchId, target);
        bool late = block.number > target + params.seedGrace;
        seed = keccak256(abi.encode(SEED_TAG, block.prevrandao, batchId, root));
        seeds[batchId] = Seed({value: seed, fixedAt: uint64(block.timestamp), late: late});
        emit SeedFixed(batchId, seed, block.number, late);
    }

    // ------------------------------------------------------------------ draws

    /// @notice Draws every receipt of batch `batchId` (anyone, once its seed is fixed).
    /// Receipts already drawn are left as they are.
    /// @param batchId The batch.
    /// @param receipts All of its receipts, in posting order.
    function drawBatch(uint256 batchId, Receipt[] calldata receipts) external {
        (bytes32 root, uint256 count,, uint256 postedAt) = inbox.batchFacts(batchId);
        if (receipts.length != count) revert ReceiptsMismatch(batchId);
        bytes32[] memory leaves = new bytes32[](count);
        bytes32[] memory hashes = new bytes32[](count);
        for (uint256 i = 0; i < count; ++i) {
            bytes memory enc = abi.encode(receipts[i]);
            leaves[i] = Merkle.leafHashMem(enc);
            hashes[i] = keccak256(enc);
        }
        if (Merkle.rootOfLeaves(leaves) != root) revert ReceiptsMismatch(batchId);
        uint256 windowEnd = postedAt + inbox.challengeWindow();
        // Stakes are read once per SKU, not once per receipt: the largest batch with the most
        // verifiers stays within a transaction.
        Pool memory pool;
        for (uint256 i = 0; i < count; ++i) {
            Receipt calldata r = receipts[i];
            if (pool.list.length == 0 || pool.skuId != r.skuId) pool = _pool(r.skuId);
            _draw(batchId, i, hashes[i], r.worker, windowEnd, pool);
        }
    }

    /// @notice Draws receipt `index` of batch `batchId` alone (anyone, once its seed is fixed).
    /// @param batchId The batch.
    /// @param receipt The receipt.
    /// @param index Its position in the batch.
    /// @param proof Merkle siblings of its leaf.
    function drawReceipt(uint256 batchId, Receipt calldata receipt, uint256 index, bytes32[] calldata proof) external {
        bytes32 receiptHash = inbox.verifyReceipt(batchId, receipt, index, proof);
        (,,, uint256 postedAt) = inbox.batchFacts(batchId);
        _draw(batchId, index, receiptHash, receipt.worker, postedAt + inbox.challengeWindow(), _pool(receipt.skuId));
    }

    function _draw(
        uint256 batchId,
        uint256 index,
        bytes32 receiptHash,
        address worker,
        uint256 windowEnd,
        Pool memory pool
    ) internal {
        Audit storage a = audits[_key(batchId, index)];
        if (a.status != Status.None) return;
        Seed memory s = seeds[batchId];
        if (s.value == 0) revert SeedNotFixed(batchId);
        (uint16 rate, Depth depth) = s.late ? (uint16(BPS), Depth.All) : rateOf(worker);
        a.rateBps = rate;
        a.depth = depth;
        bool audited = drawn(s.value, index, rate);
        emit Drawn(batchId, index, receiptHash, audited, rate, depth);
        if (!audited) {
            a.status = Status.Skipped;
            return;
        }
        a.worker = worker;
        a.skuId = pool.skuId;
        a.receiptHash = receiptHash;
        _assign(batchId, index, a, windowEnd, address(0), pool);
    }

    /// @dev Draws a verifier for `a` (not its worker, not `exclude`) with a deadline inside the
    /// challenge window, so that a fail can still open its dispute; void when none can be had.
    function _assign(
        uint256 batchId,
        uint256 index,
        Audit storage a,
        uint256 windowEnd,
        address exclude,
        Pool memory pool
    ) internal {
        address v = _pick(pool, a.worker, exclude, auditSeed(batchId, index), a.draws);
        uint256 deadline = block.timestamp + params.verifyPeriod;
        if (deadline > windowEnd) deadline = windowEnd;
        if (v == address(0) || deadline <= block.timestamp || a.draws >= params.maxDraws) {
            a.status = Status.Void;
            a.verifier = address(0);
            emit AuditVoid(batchId, index);
            return;
        }
        a.draws += 1;
        a.verifier = v;
        a.deadline = uint40(deadline);
        a.status = Status.Assigned;
        emit AuditAssigned(batchId, index, v, deadline, a.draws);
    }

    /// @notice Whether the receipt at `index` of a batch with seed `seed` is audited at `rateBps`.
    /// @param seed The batch seed.
    /// @param index The receipt's position.
    /// @param rateBps Its audit probability.
    /// @return True when audited.
    function drawn(bytes32 seed, uint256 index, uint16 rateBps) public pure returns (bool) {
        return uint256(keccak256(abi.encode(DRAW_TAG, seed, index))) % BPS < rateBps;
    }

    /// @notice The seed of receipt `index`'s audit (its GEMM choice and Freivalds vectors).
    /// @param batchId The batch.
    /// @param index The receipt's position.
    /// @return keccak256(batch seed ‖ index); zero before the batch seed is fixed.
    function auditSeed(uint256 batchId, uint256 index) public view returns (bytes32) {
        bytes32 s = seeds[batchId].value;
        if (s == 0) return 0;
        return keccak256(abi.encode(s, index));
    }

    /// @notice A worker's audit probability and depth, from its record: failing (a strike or a
    /// proven fraud) or new workers are audited always and fully, veterans least.
    /// @param worker The worker.
    /// @return bps Audit probability in basis points (never zero).
    /// @return depth How much an audit checks.
    function rateOf(address worker) public view returns (uint16 bps, Depth depth) {
        Record memory r = records[worker];
        if (r.fails != 0 || bridge.strikesOf(worker) != 0) return (uint16(BPS), Depth.All);
        if (r.passes < params.newPasses) return (params.newBps, Depth.All);
        if (r.passes >= params.veteranPasses) return (params.veteranBps, Depth.One);
        return (params.baseBps, Depth.Mlp);
    }

    /// @notice The verifier drawn for draw number `draw` of an audit: stake-weighted among
    /// `skuId`'s verifiers with stake, leaving out `worker` and `exclude`.
    /// @param skuId The SKU.
    /// @param worker The receipt's worker (never its own verifier).
    /// @param exclude A verifier left out (the one that just missed), or zero.
    /// @param seed The audit seed.
    /// @param draw How many verifiers were drawn before.
    /// @return The verifier, or zero when nobody can be drawn.
    function pickVerifier(bytes32 skuId, address worker, address exclude, bytes32 seed, uint256 draw)
        public
        view
        returns (address)
    {
        return _pick(_pool(skuId), worker, exclude, seed, draw);
    }

    function _pool(bytes32 skuId) internal view returns (Pool memory p) {
        p.skuId = skuId;
        p.list = verifierList[skuId];
        p.weights = new uint256[](p.list.length);
        for (uint256 i = 0; i < p.list.length; ++i) {
            p.weights[i] = bridge.verifierWeight(p.list[i]);
            p.total += p.weights[i];
        }
    }

    function _pick(Pool memory p, address worker, address exclude, bytes32 seed, uint256 draw)
        internal
        pure
        returns (address)
    {
        uint256 n = p.list.length;
        uint256 total = p.total;
        for (uint256 i = 0; i < n; ++i) {
            if (p.list[i] == worker || p.list[i] == exclude) total -= p.weights[i];
        }
        if (total == 0) return address(0);
        uint256 x = uint256(keccak256(abi.encode(VERIFIER_TAG, seed, draw))) % total;
        for (uint256 i = 0; i < n; ++i) {
            address v = p.list[i];
            if (v == worker || v == exclude) continue;
            if (x < p.weights[i]) return v;
            x -= p.weights[i];
        }
        return address(0); // unreachable: x < total
    }

    // ------------------------------------------------------------------ reports

    /// @notice The assigned verifier's report (PRD §11 `Verification`). A fail must name the
    /// dispute the verifier opened on the receipt (`DisputeGame.open`), which then decides.
    /// @param batchId The batch.
    /// @param index The receipt's position.
    /// @param pass The verdict.
    /// @param gameId For a fail, the verifier's game on this receipt (ignored for a pass).
    /// @param steps The GEMM steps checked (recorded in the event).
    function postVerification(uint256 batchId, uint256 index, bool pass, uint256 gameId, uint64[] calldata steps)
        external
    {
        Audit storage a = audits[_key(batchId, index)];
        if (a.status != Status.Assigned) revert NotAssigned(batchId, index);
        if (msg.sender != a.verifier) revert NotTheVerifier(msg.sender, a.verifier);
        if (block.timestamp > a.deadline) revert DeadlinePassed(batchId, index, a.deadline);
        if (pass) {
            a.status = Status.Passed;
            records[a.worker].passes += 1;
        } else {
            (address challenger, uint256 gameBatch, bytes32 receiptHash) = game.gameFacts(gameId);
            if (challenger != msg.sender || gameBatch != batchId || receiptHash != a.receiptHash) {
                revert NotYourDispute(gameId);
            }
            a.status = Status.Failed;
            a.gameId = uint64(gameId);
        }
        emit Verified(batchId, index, msg.sender, pass, gameId, steps);
    }

    /// @notice Expires an audit whose verifier missed its deadline (anyone): the verifier is
    /// slashed `missSlashBps` (the caller gets `keeperRewardBps` of it) and another is drawn;
    /// after settlement (`Missed`) the slash alone.
    /// @param batchId The batch.
    /// @param index The receipt's position.
    function expire(uint256 batchId, uint256 index) external {
        Audit storage a = audits[_key(batchId, index)];
        bool settled = a.status == Status.Missed;
        if (a.status != Status.Assigned && !settled) revert NotAssigned(batchId, index);
        if (block.timestamp <= a.deadline) revert DeadlineNotPassed(batchId, index, a.deadline);
        address missed = a.verifier;
        uint256 slashed = bridge.slash(missed, params.missSlashBps, msg.sender, params.keeperRewardBps);
        emit AuditMissed(batchId, index, missed, slashed);
        if (settled) {
            a.status = Status.Void;
            return;
        }
        (,,, uint256 postedAt) = inbox.batchFacts(batchId);
        _assign(batchId, index, a, postedAt + inbox.challengeWindow(), missed, _pool(a.skuId));
    }

    // ------------------------------------------------------------------ settlement (inbox)

    /// @inheritdoc IAuditsInbox
    function settle(
        uint256 batchId,
        uint256 index,
        bytes32 receiptHash,
        Receipt calldata receipt,
        uint256 fee,
        bool fraud
    ) external returns (uint256 workerWeight, uint256 tokens, address verifier, uint256 verifierWeight) {
        if (msg.sender != address(inbox)) revert NotInbox(msg.sender);
        Audit storage a = audits[_key(batchId, index)];
        // Finalization never waits on audits, and does a bounded amount of work for each: a
        // receipt nobody drew had no audit (void); one still assigned missed its deadline, which
        // the window caps (void; its miss is slashed by whoever calls `expire`, for the reward).
        if (a.status == Status.None) {
            a.status = Status.Void;
            emit AuditVoid(batchId, index);
        } else if (a.status == Status.Assigned) {
            a.status = Status.Missed;
            emit AuditVoid(batchId, index);
        }
        if (fraud) {
            records[receipt.worker].fails += 1;
            // INVARIANT: a verifier that passed a receipt proven fraudulent pays for it.
            if (a.status == Status.Passed) _slashVerifier(batchId, index, a.verifier, params.lazySlashBps, true);
            return (0, 0, address(0), 0);
        }
        if (a.status != Status.Passed && a.status != Status.Failed) return (0, 0, address(0), 0);
        // INVARIANT: expected weight = fee: paid only when drawn, at 1 / probability.
        uint256 weight = fee * BPS / a.rateBps;
        tokens = uint256(receipt.tokensProcessed) * BPS / a.rateBps;
        if (a.status == Status.Failed) {
            // The verifier's dispute did not prove fraud: a false report. The worker keeps all.
            _slashVerifier(batchId, index, a.verifier, params.falseSlashBps, false);
            return (weight, tokens, address(0), 0);
        }
        verifierWeight = weight * params.verifierFeeBps / BPS;
        return (weight - verifierWeight, tokens, a.verifier, verifierWeight);
    }

    function _slashVerifier(uint256 batchId, uint256 index, address v, uint256 bps, bool lazy) internal {
        uint256 slashed = bridge.slash(v, bps, address(0), 0);
        emit VerifierSlashed(batchId, index, v, slashed, lazy);
    }

    // ------------------------------------------------------------------ views

    /// @notice The audit of receipt `index` of batch `batchId`.
    /// @param batchId The batch.
    /// @param index The receipt's position.
    /// @return The stored audit (status None before its draw).
    function auditOf(uint256 batchId, uint256 index) external view returns (Audit memory) {
        return audits[_key(batchId, index)];
    }

    /// @notice The deployment parameters.
    /// @return The parameters.
    function getParams() external view returns (Params memory) {
        return params;
    }

    /// @notice The longest an audit can hold anything after its batch's window (the bridge's
    /// unbonding check): audits end with the window, so only the report periods count.
    /// @return Seconds.
    function maxDuration() external view returns (uint256) {
        return uint256(params.verifyPeriod) * params.maxDraws;
    }

    function _key(uint256 batchId, uint256 index) internal pure returns (bytes32) {
        return keccak256(abi.encode(batchId, index));
    }
}
