// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IInboxGame, IBridgeGame} from "./interfaces/IGameHooks.sol";
import {Receipt} from "./Types.sol";
import {Merkle} from "./Merkle.sol";
import {SkuRegistry} from "./SkuRegistry.sol";
import {StepProver} from "./StepProver.sol";
import {FoldProver, FoldContext, FoldStep} from "./FoldProver.sol";
import {StepContext, GemmProof, RowProof, OutputContext, OutputProof} from "./Openings.sol";

/// @title DisputeGame
/// @notice Games over challenged receipts; any number per receipt while its window is open
/// (each between the receipt's worker and one challenger, none binding another: a puppet's lost
/// or stalled game stops no one), the worker slashed and struck once per receipt however many
/// games prove it wrong (`receiptSlashBps`). The challenger (any account, with a bond) disputes
/// the receipt's trace root. The trace is the fixed-depth state tree of `primitives::trace`: the
/// state after 0 steps is the all-zero tree (both sides agree), the state after `stepCount`
/// steps is the receipt's trace root (disputed). Bisection keeps an agreed state `lo` and a
/// disputed state `hi`: the defender (the receipt's worker) posts the k−1 states between them
/// (only their hash is stored), the challenger picks the sub-interval whose end it disputes,
/// naming both end values. When `hi = lo + 1` the dispute is one step `s = lo`: the challenger
/// names the entry (row, col) it says is wrong, and the defender opens it: the output row of
/// step `s`, its input rows (earlier leaves of the agreed state) and the SKU data it reads
/// (against the weight root); `StepProver` checks the openings and has the one-step verifier
/// recompute the entry.
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

    /// @notice One game.
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
        bytes32 inputRoot;
        bool output; // an output challenge (completion `row`, index `col`), not a trace dispute
        bool fold; // bisecting inside the row of step `extra.foldStep` (lo/hi/roots: chunk states)
        uint128 moveBonds; // the per-move bonds both sides posted, all paid to the winner
    }

    /// @notice Clock extensions granted so far in a game, per side (at most MAX_EXTENSIONS each;
    /// kept beside `Game`, which is at the 24 fields an ABI tuple binding can hold).
    struct Extensions {
        uint8 defender;
        uint8 challenger;
    }

    /// @notice Deployment parameters (docs/CONTRACTS.md, "Parameters", gives the mainnet values
    /// and why; devnets shorten them).
    struct Params {
        uint256 arity; // bisection arity: states posted per round + 1
        uint64 clock; // seconds on each side's chess clock
        uint64 clockExtension; // a side that moves with less left gets this much back
        uint256 minBond; // opening bond
        uint256 moveBond; // bond of every move that does not end the game
        uint256 slashFraudBps;
        uint256 slashTimeoutBps;
        uint256 rewardBps; // share of the loser's slashed stake or opening bond paid to the winner
    }

    /// @notice What some games need beyond `Game`: the challenged output root (output
    /// challenges) and, during a fold, the step and the trace states around it (while lo/hi and
    /// their roots are reused for the chunk bisection).
    struct Extra {
        bytes32 outputRoot;
        uint64 foldStep;
        bytes32 stepLoRoot;
        bytes32 stepHiRoot;
        bytes32 foldFinal; // hash of the final state the defender stated
    }

    error BondTooSmall(uint256 sent, uint256 minBond);
    error SelfChallenge();
    error AlreadySlashed(uint256 batchId, bytes32 receiptHash);
    error UnknownGame(uint256 gameId);
    error WrongPhase(Phase want, Phase got);
    error NotYourTurn(address caller, address expected);
    error ClockExpired(uint256 elapsed, uint256 left);
    error ClockNotExpired(uint256 elapsed, uint256 left);
    error StaleMove(bytes32 named, bytes32 current);
    error WrongRootCount(uint256 got, uint256 want);
    error RootsMismatch();
    error BadChoice(uint256 index, uint256 parts);
    error NothingOwed();
    error TransferFailed(address to, uint256 amount);
    error BadConfig();
    error ShapeNotSet(bytes32 skuId);
    error WrongGameKind(uint256 gameId, bool output);
    error WrongMoveBond(uint256 sent, uint256 want);

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
    event FoldStarted(uint256 indexed gameId, uint64 step, uint256 chunks, bytes32 finalState);
    event ClockExtended(uint256 indexed gameId, bool defender, uint64 left);

    uint256 internal constant BPS = 10_000;
    /// @notice Clock extensions per side and game; bounds `maxDuration`.
    uint256 public constant MAX_EXTENSIONS = 8;

    IBridgeGame public immutable bridge;
    IInboxGame public immutable inbox;
    SkuRegistry public immutable skus;
    /// @notice Settles the last step (openings + one-step recomputation).
    StepProver public immutable prover;
    /// @notice Settles rows too long for one transaction by bisecting inside them.
    FoldProver public immutable folder;
    /// @notice Bisection arity: states posted per round + 1.
    uint256 public immutable arity;
    /// @notice Seconds on each side's chess clock.
    uint64 public immutable clock;
    /// @notice A side whose move leaves it less than this many seconds is given this many (as OP's
    /// CLOCK_EXTENSION), at most `MAX_EXTENSIONS` times per game: a late move, or a congested L1,
    /// never leaves the mover too little time for its next answer.
    uint64 public immutable clockExtension;
    uint256 public immutable minBond;
    /// @notice Wei every move that does not end the game carries (bisect, choose, nameEntry,
    /// foldRow); the winner gets them all, so the loser pays for the winner's moves.
    uint256 public immutable moveBond;
    uint256 public immutable slashFraudBps;
    uint256 public immutable slashTimeoutBps;
    /// @notice Share of the loser's slashed stake or bond paid to the winner; the rest is burned.
    uint256 public immutable rewardBps;

    Game[] internal games;
    mapping(uint256 => Extra) internal extras;
    /// @notice Clock extensions used per game.
    mapping(uint256 => Extensions) public extensions;
    /// @notice Every game of a receipt, by `_key` (trace disputes and output challenges apart).
    mapping(bytes32 => uint256[]) internal gamesByKey;
    /// @notice Share of the defender's stake (basis points of what it had) taken so far for a
    /// receipt, by keccak256(batchId, receiptHash): several games may prove the same fraud, the
    /// defender is slashed and struck once, up to the heaviest verdict.
    mapping(bytes32 => uint256) public receiptSlashBps;
    mapping(address => uint256) public owed;
    uint256 public burnedBonds;

    constructor(
        IBridgeGame bridge_,
        IInboxGame inbox_,
        SkuRegistry skus_,
        StepProver prover_,
        FoldProver folder_,
        Params memory p
    ) {
        if (
            p.arity < 2 || p.arity > 256 || p.slashFraudBps > BPS || p.slashTimeoutBps > BPS || p.rewardBps > BPS
                || p.clockExtension > p.clock || p.minBond > type(uint128).max || p.moveBond > type(uint64).max
        ) {
            revert BadConfig();
        }
        bridge = bridge_;
        inbox = inbox_;
        skus = skus_;
        prover = prover_;
        folder = folder_;
        arity = p.arity;
        clock = p.clock;
        clockExtension = p.clockExtension;
        minBond = p.minBond;
        moveBond = p.moveBond;
        slashFraudBps = p.slashFraudBps;
        slashTimeoutBps = p.slashTimeoutBps;
        rewardBps = p.rewardBps;
    }

    /// @notice The longest a game can last: both clocks spent, every extension granted.
    /// @return Seconds.
    function maxDuration() external view returns (uint256) {
        return 2 * (uint256(clock) + MAX_EXTENSIONS * uint256(clockExtension));
    }

    // ------------------------------------------------------------------ opening

    /// @notice Challenges receipt `index` of batch `batchId` (inside its window), with a bond of
    /// at least `minBond` (any account: every step settles inside one transaction, long rows by
    /// folding, long logits rows by one chunk); the SKU's shape must be set.
    /// A receipt whose step count is not a whole number of rounds of its SKU's program, or whose
    /// trace root is zero, is an invalid commitment and loses at once.
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
        Game storage g;
        (gameId, g) = _start(batchId, receipt, index, proof, false);
        if (g.phase == Phase.Resolved) return gameId;
        g.phase = receipt.stepCount == 1 ? Phase.Name : Phase.Bisect;
    }

    /// @notice Challenges the completions of receipt `index` of batch `batchId`: claims that
    /// completion `prompt` is not what the receipt's own trace generated at index `j` (or, for
    /// `j` equal to its length, that it should not end there). Same bond, caller and window rules
    /// as `open`; any number of output challenges and trace disputes per receipt.
    /// The defender answers with `proveOutput` (no bisection: the trace root is the receipt's).
    /// @param batchId The batch.
    /// @param receipt The receipt.
    /// @param index Its position in the batch.
    /// @param proof Merkle siblings of its leaf in the batch.
    /// @param prompt The completion (prompt index in the shard).
    /// @param j The generated index disputed.
    /// @return gameId The new game.
    function openOutput(
        uint256 batchId,
        Receipt calldata receipt,
        uint256 index,
        bytes32[] calldata proof,
        uint32 prompt,
        uint32 j
    ) external payable returns (uint256 gameId) {
        Game storage g;
        (gameId, g) = _start(batchId, receipt, index, proof, true);
        if (g.phase == Phase.Resolved) return gameId;
        g.output = true;
        extras[gameId].outputRoot = receipt.outputRoot;
        g.row = prompt;
        g.col = j;
        g.phase = Phase.Prove;
        emit EntryNamed(gameId, g.hi, prompt, j);
    }

    /// @dev Checks the challenger and the receipt, records the game, and resolves it at once
    /// when the receipt is an invalid commitment.
    function _start(uint256 batchId, Receipt calldata receipt, uint256 index, bytes32[] calldata proof, bool output)
        internal
        returns (uint256 gameId, Game storage g)
    {
        if (msg.sender == receipt.worker) revert SelfChallenge();
        if (skus.shapeOf(receipt.skuId).heads == 0) revert ShapeNotSet(receipt.skuId);
        // INVARIANT: every game holds at least `minBond` of its challenger's ether until resolved.
        if (msg.value < minBond) revert BondTooSmall(msg.value, minBond);
        bytes32 receiptHash = inbox.verifyReceipt(batchId, receipt, index, proof);
        // Any number of games per receipt (issue #9, attack 2): a puppet's lost or stalled game
        // binds no other challenger. Only once the fraud is proven at the heaviest verdict a
        // game can reach is there nothing left to win.
        uint256 done = receiptSlashBps[_receiptKey(batchId, receiptHash)];
        if (done != 0 && done >= slashFraudBps) {
            revert AlreadySlashed(batchId, receiptHash);
        }
        inbox.onDisputeOpened(batchId);
        gameId = games.length;
        gamesByKey[_key(batchId, receiptHash, output)].push(gameId);
        g = games.push();
        g.challenger = msg.sender;
        g.defender = receipt.worker;
        g.lastMoveAt = uint64(block.timestamp);
        g.challengerClock = clock;
        g.defenderClock = clock;
        g.batchId = uint64(batchId);
        g.stepCount = receipt.stepCount;
        g.bond = uint128(msg.value); // lossless: no account holds 2^128 wei
        g.receiptHash = receiptHash;
        g.skuId = receipt.skuId;
        g.inputRoot = receipt.inputRoot;
        g.hi = receipt.stepCount;
        g.hiRoot = receipt.traceRoot;
        emit GameOpened(gameId, batchId, receiptHash, msg.sender, receipt.worker, msg.value);

        uint256 spr = skus.stepsPerRound(receipt.skuId);
        if (receipt.stepCount == 0 || receipt.stepCount % spr != 0 || receipt.traceRoot == bytes32(0)) {
            _resolve(gameId, g, true, Reason.InvalidCommitment);
            return (gameId, g);
        }
        g.loRoot = Merkle.zeroHash(Merkle.depthFor(receipt.stepCount));
    }

    function _receiptKey(uint256 batchId, bytes32 receiptHash) internal pure returns (bytes32) {
        return keccak256(abi.encode(batchId, receiptHash));
    }

    function _key(uint256 batchId, bytes32 receiptHash, bool output) internal pure returns (bytes32) {
        return output ? keccak256(abi.encode(batchId, receiptHash, true)) : keccak256(abi.encode(batchId, receiptHash));
    }

    // ------------------------------------------------------------------ bisection

    /// @notice Defender: posts the states at the `m − 1` inner points of (lo, hi), where
    /// m = min(arity, hi − lo) and point j is lo + (hi − lo)·j/m.
    /// @param gameId The game.
    /// @param disputed The current disputed state root (the move is void if it changed).
    /// @param roots The state roots at the inner points, in order.
    function bisect(uint256 gameId, bytes32 disputed, bytes32[] calldata roots) external payable {
        Game storage g = _bondedMove(gameId, Phase.Bisect, true);
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
        payable
    {
        Game storage g = _bondedMove(gameId, Phase.Choose, false);
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
        g.phase = g.hi - g.lo == 1 ? (g.fold ? Phase.Prove : Phase.Name) : Phase.Bisect;
        emit Chosen(gameId, g.lo, g.hi, newLoRoot, newHiRoot);
    }

    /// @notice Challenger: names the entry of step `lo`'s output it says is wrong.
    /// @param gameId The game.
    /// @param disputed The disputed post-state of the step.
    /// @param row Output row.
    /// @param col Output column (the element for GEMM steps; ignored by row ops).
    function nameEntry(uint256 gameId, bytes32 disputed, uint32 row, uint32 col) external payable {
        Game storage g = _bondedMove(gameId, Phase.Name, false);
        if (disputed != g.hiRoot) revert StaleMove(disputed, g.hiRoot);
        g.row = row;
        g.col = col;
        g.phase = Phase.Prove;
        emit EntryNamed(gameId, g.lo, row, col);
    }

    // ------------------------------------------------------------------ one step

    /// @notice Defender: opens the named element of a GEMM step (`StepProver.checkGemm`); the
    /// game resolves on the verdict.
    /// @param gameId The game.
    /// @param p The opening.
    function proveGemm(uint256 gameId, GemmProof calldata p) external {
        Game storage g = _move(gameId, Phase.Prove, true);
        if (g.output || g.fold) revert WrongGameKind(gameId, g.output);
        (bool fraud, int256 committed, int256 recomputed) = prover.checkGemm(_context(gameId, g), p);
        emit StepProven(gameId, g.lo, committed, recomputed);
        _resolve(gameId, g, fraud, fraud ? Reason.Fraud : Reason.Proven);
    }

    /// @notice Defender: opens the named row (element, for scores) of any other step
    /// (`StepProver.checkRow`); the game resolves on the verdict.
    /// @param gameId The game.
    /// @param p The opening.
    function proveRow(uint256 gameId, RowProof calldata p) external {
        Game storage g = _move(gameId, Phase.Prove, true);
        if (g.output || g.fold) revert WrongGameKind(gameId, g.output);
        (bool fraud, bytes32 committed, bytes32 recomputed) = prover.checkRow(_context(gameId, g), p);
        emit RowProven(gameId, g.lo, committed, recomputed);
        _resolve(gameId, g, fraud, fraud ? Reason.Fraud : Reason.Proven);
    }

    /// @notice Defender: opens the challenged completion against the receipt's trace
    /// (`StepProver.checkOutput`); the game resolves on the verdict.
    /// @param gameId The game.
    /// @param p The opening.
    function proveOutput(uint256 gameId, OutputProof calldata p) external {
        Game storage g = _move(gameId, Phase.Prove, true);
        if (!g.output || g.fold) revert WrongGameKind(gameId, false);
        OutputContext memory c = OutputContext({
            skuId: g.skuId,
            inputRoot: g.inputRoot,
            outputRoot: extras[gameId].outputRoot,
            traceRoot: g.hiRoot,
            stepCount: g.stepCount,
            prompt: g.row,
            j: g.col
        });
        bool fraud = prover.checkOutput(c, p);
        _resolve(gameId, g, fraud, fraud ? Reason.Fraud : Reason.Proven);
    }

    /// @notice Defender: instead of recomputing a long row (pv, silu_mul, argmax) at once, states
    /// its final state (checked against the committed row by `FoldProver.start`) and opens a
    /// bisection over chunks of the row's items: the states are hashes (the one before the first
    /// item is fixed), and the last step is one chunk's transition (`proveFold`).
    /// @param gameId The game.
    /// @param p The output row and the row it reads (softmax / logits / gate).
    /// @param finalState The state after every item.
    function foldRow(uint256 gameId, RowProof calldata p, bytes calldata finalState) external payable {
        Game storage g = _bondedMove(gameId, Phase.Prove, true);
        if (g.output || g.fold) revert WrongGameKind(gameId, g.output);
        (bool fraud, uint256 chunks, bytes32 initHash) = folder.start(_context(gameId, g), p, finalState);
        if (fraud || chunks == 0) {
            _resolve(gameId, g, fraud, fraud ? Reason.Fraud : Reason.Proven);
            return;
        }
        g.fold = true;
        extras[gameId] = Extra({
            outputRoot: bytes32(0),
            foldStep: g.lo,
            stepLoRoot: g.loRoot,
            stepHiRoot: g.hiRoot,
            foldFinal: keccak256(finalState)
        });
        g.lo = 0;
        g.hi = uint64(chunks);
        g.loRoot = initHash;
        g.hiRoot = keccak256(finalState);
        g.phase = chunks == 1 ? Phase.Prove : Phase.Bisect;
        emit FoldStarted(gameId, extras[gameId].foldStep, chunks, g.hiRoot);
    }

    /// @notice Defender: opens the one chunk of a fold the bisection ended on
    /// (`FoldProver.step`); the game resolves on the verdict.
    /// @param gameId The game.
    /// @param s The accumulators around the chunk and its inputs.
    function proveFold(uint256 gameId, FoldStep calldata s) external {
        Game storage g = _move(gameId, Phase.Prove, true);
        if (!g.fold) revert WrongGameKind(gameId, g.output);
        FoldContext memory f = FoldContext({
            step: _context(gameId, g), lo: g.lo, loHash: g.loRoot, hiHash: g.hiRoot, finalHash: extras[gameId].foldFinal
        });
        bool fraud = folder.step(f, s);
        _resolve(gameId, g, fraud, fraud ? Reason.Fraud : Reason.Proven);
    }

    function _context(uint256 gameId, Game storage g) internal view returns (StepContext memory) {
        bool f = g.fold;
        Extra storage e = extras[gameId];
        return StepContext({
            skuId: g.skuId,
            inputRoot: g.inputRoot,
            loRoot: f ? e.stepLoRoot : g.loRoot,
            hiRoot: f ? e.stepHiRoot : g.hiRoot,
            step: f ? e.foldStep : g.lo,
            stepCount: g.stepCount,
            row: g.row,
            col: g.col
        });
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
            // Silence once the entry is named (the proof, or a fold of it) is as heavy as fraud.
            bool named = ph == Phase.Prove || g.fold;
            _resolve(gameId, g, true, named ? Reason.ProofTimeout : Reason.DefenderTimeout);
        } else {
            _resolve(gameId, g, false, Reason.ChallengerTimeout);
        }
    }

    // ------------------------------------------------------------------ payouts

    /// @notice Pays out the caller's returned bond or bond reward.
    function withdraw() external {
        uint256 amount = owed[msg.sender];
        if (amount == 0) revert NothingOwed();
        // INVARIANT: zeroed before the transfer, so a re-entering caller is owed nothing.
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

    /// @notice Who opened game `gameId`, over which batch and receipt (the audit protocol
    /// checks a verifier's failed report against it).
    /// @param gameId The game.
    /// @return challenger Its challenger.
    /// @return batchId Its batch.
    /// @return receiptHash Its receipt.
    function gameFacts(uint256 gameId)
        external
        view
        returns (address challenger, uint256 batchId, bytes32 receiptHash)
    {
        Game storage g = _game(gameId);
        return (g.challenger, g.batchId, g.receiptHash);
    }

    /// @notice The first trace dispute of receipt `receiptHash` in batch `batchId` (there may
    /// be more: `gamesOf`).
    /// @param batchId The batch.
    /// @param receiptHash The receipt.
    /// @return exists Whether a game was opened.
    /// @return gameId Its id.
    function gameOf(uint256 batchId, bytes32 receiptHash) external view returns (bool exists, uint256 gameId) {
        return _first(gamesByKey[_key(batchId, receiptHash, false)]);
    }

    /// @notice Every game of receipt `receiptHash` in batch `batchId`, in opening order.
    /// @param batchId The batch.
    /// @param receiptHash The receipt.
    /// @param output Output challenges (true) or trace disputes (false).
    /// @return ids The game ids.
    function gamesOf(uint256 batchId, bytes32 receiptHash, bool output) external view returns (uint256[] memory) {
        return gamesByKey[_key(batchId, receiptHash, output)];
    }

    function _first(uint256[] storage ids) internal view returns (bool, uint256) {
        return ids.length == 0 ? (false, 0) : (true, ids[0]);
    }

    /// @notice The extra record of game `gameId` (output root, fold step and trace states).
    /// @param gameId The game.
    /// @return The record (all zero when unused).
    function getExtra(uint256 gameId) external view returns (Extra memory) {
        _game(gameId);
        return extras[gameId];
    }

    /// @notice The first output challenge of receipt `receiptHash` in batch `batchId` (there
    /// may be more: `gamesOf`).
    /// @param batchId The batch.
    /// @param receiptHash The receipt.
    /// @return exists Whether one was opened.
    /// @return gameId Its id.
    function outputGameOf(uint256 batchId, bytes32 receiptHash) external view returns (bool exists, uint256 gameId) {
        return _first(gamesByKey[_key(batchId, receiptHash, true)]);
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

    /// @dev `_move` for a move that does not end the game: it carries exactly `moveBond`.
    function _bondedMove(uint256 gameId, Phase phase, bool defender) internal returns (Game storage g) {
        if (msg.value != moveBond) revert WrongMoveBond(msg.value, moveBond);
        g = _move(gameId, phase, defender);
        // INVARIANT: every move bond is held in the game's pot until `_resolve` pays it out.
        g.moveBonds += uint128(msg.value);
    }

    /// @dev Checks phase and turn, charges the mover's clock (extending it when the move leaves
    /// less than `clockExtension`), and returns the game.
    function _move(uint256 gameId, Phase phase, bool defender) internal returns (Game storage g) {
        g = _game(gameId);
        if (g.phase != phase) revert WrongPhase(phase, g.phase);
        address expected = defender ? g.defender : g.challenger;
        if (msg.sender != expected) revert NotYourTurn(msg.sender, expected);
        uint256 elapsed = block.timestamp - g.lastMoveAt;
        uint256 left = defender ? g.defenderClock : g.challengerClock;
        if (elapsed > left) revert ClockExpired(elapsed, left);
        left -= elapsed;
        if (left < clockExtension && _extend(gameId, defender)) left = clockExtension;
        if (defender) g.defenderClock = uint64(left);
        else g.challengerClock = uint64(left);
        g.lastMoveAt = uint64(block.timestamp);
    }

    /// @dev Slashes the defender of `g`'s receipt up to `bps` of its stake in all: the first
    /// winning game takes `bps` and strikes; a later one with a heavier verdict takes only the
    /// difference (as a share of what is left), so the worker pays for a fraud once however
    /// many games prove it, and a light verdict a puppet won first caps nothing. The bridge
    /// slashes whole basis points, so a top-up rounds down: the total falls short of the
    /// heaviest verdict by less than one basis point of the stake per top-up.
    function _slashOnce(Game storage g, uint256 bps) internal returns (uint256 slashed) {
        bytes32 rk = _receiptKey(g.batchId, g.receiptHash);
        uint256 done = receiptSlashBps[rk];
        // INVARIANT: the defender's total slash for one receipt never exceeds the heaviest verdict.
        if (bps <= done) return 0;
        receiptSlashBps[rk] = bps;
        uint256 extra = done == 0 ? bps : (bps - done) * BPS / (BPS - done);
        slashed = bridge.slash(g.defender, extra, g.challenger, rewardBps);
        if (done == 0) bridge.strike(g.defender);
    }

    /// @dev Grants `defender`'s side of game `gameId` an extension if it has one left.
    function _extend(uint256 gameId, bool defender) internal returns (bool) {
        Extensions storage e = extensions[gameId];
        uint8 used = defender ? e.defender : e.challenger;
        if (used >= MAX_EXTENSIONS) return false;
        if (defender) e.defender = used + 1;
        else e.challenger = used + 1;
        emit ClockExtended(gameId, defender, clockExtension);
        return true;
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
            slashed = _slashOnce(g, bps);
            // INVARIANT: a winning challenger's opening bond comes back whole.
            owed[g.challenger] += bond;
        } else {
            // INVARIANT: the bond is split between the defender and the burn, nothing more.
            uint256 reward = bond * rewardBps / BPS;
            owed[g.defender] += reward;
            burnedBonds += bond - reward;
        }
        // INVARIANT: the move bonds of both sides go to the winner, once (the pot is emptied).
        uint256 pot = g.moveBonds;
        g.moveBonds = 0;
        owed[challengerWon ? g.challenger : g.defender] += pot;
        inbox.onDisputeClosed(g.batchId, g.receiptHash, challengerWon);
        emit Resolved(gameId, challengerWon, reason, slashed);
    }
}
