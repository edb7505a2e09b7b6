// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Fixture} from "./Fixture.sol";
import {Receipt, SignedJob} from "../src/Types.sol";
import {SkuRegistry} from "../src/SkuRegistry.sol";
import {StakeBridge} from "../src/StakeBridge.sol";
import {BatchInbox} from "../src/BatchInbox.sol";
import {DisputeGame} from "../src/DisputeGame.sol";
import {IBridgeGame, IInboxGame} from "../src/interfaces/IGameHooks.sol";
import {StepProver} from "../src/StepProver.sol";
import {IOneStep} from "../src/interfaces/IOneStep.sol";
import {FoldProver, FoldStep} from "../src/FoldProver.sol";
import {IFoldMath} from "../src/interfaces/IFoldMath.sol";
import {Openings, GemmProof, RowProof, Opening, VectorOpening, OutputProof, StepContext} from "../src/Openings.sol";
import {OneStepVerifier} from "../src/OneStepVerifier.sol";

/// @dev Builds real traces (state trees over per-step output roots, tensors as Merkle trees over
/// their rows, a weight root over matrix roots) and plays whole games between a defender and a
/// challenger that each follow their own trace.
contract DisputeGameTest is Fixture {
    uint256 internal constant K = 8; // inner dimension
    uint256 internal constant N = 4; // output channels of the q matrix
    uint256 internal constant ROWS = 2; // tokens
    uint256 internal STEPS = 23; // one round of a one-layer program
    uint256 internal DEPTH = 5; // depthFor(23)
    uint256 internal GEMM_STEP = 2; // layer 0, gemm q (input: step 1) of the first round
    uint64 internal constant CLOCK = 1 days;
    uint256 internal constant BOND = 1 ether;

    DisputeGame internal game;
    OneStepVerifier internal verifier;
    StepProver internal prover;
    bytes32 internal postSku = keccak256("real-sku");
    FoldProver internal folder;

    // The honest data.
    bytes[] internal inRows; // QRows (K int8 + 8-byte scale)
    bytes[] internal wRows; // q matrix rows (K int8)
    bytes[] internal outRows; // honest int32 rows
    bytes32 internal rowsRoot;
    bytes32 internal scalesRoot = keccak256("scales");
    bytes32[] internal weightLeaves;

    struct Trace {
        bytes32[] outs; // per-step output roots
        bytes[] gemmRows; // the rows of step GEMM_STEP's output
    }

    function setUp() public override {
        _fresh(4);
    }

    /// @dev Deploys everything anew (fuzz runs vary the arity, which is immutable).
    function _fresh(uint256 arity) internal {
        super.setUp();
        delete inRows;
        delete wRows;
        delete outRows;
        delete weightLeaves;
        verifier = new OneStepVerifier();
        prover = new StepProver(skus, IOneStep(address(verifier)));
        folder = new FoldProver(skus, prover, IFoldMath(address(verifier)), 2);
        _makeData();
        game = _deployGame(arity);
    }

    /// @dev Move bond and clock extension of the next deployment (zero: the plain game).
    uint256 internal moveBondParam;
    uint64 internal extensionParam;

    function _deployGame(uint256 arity) internal returns (DisputeGame g) {
        g = new DisputeGame(
            IBridgeGame(address(bridge)),
            IInboxGame(address(inbox)),
            skus,
            prover,
            folder,
            DisputeGame.Params({
                arity: arity,
                clock: CLOCK,
                clockExtension: extensionParam,
                minBond: BOND,
                moveBond: moveBondParam,
                slashFraudBps: 5000,
                slashTimeoutBps: 1000,
                rewardBps: 5000
            })
        );
        vm.startPrank(owner);
        bridge.registerGame(address(g));
        if (inbox.game() == address(0)) inbox.setGame(address(g));
        vm.stopPrank();
    }

    // ------------------------------------------------------------------ data

    function _i8row(uint256 seed, uint256 n) internal pure returns (bytes memory r) {
        r = new bytes(n);
        for (uint256 i = 0; i < n; ++i) {
            // values in [-127, 127]
            int256 v = int256(uint256(keccak256(abi.encode(seed, i))) % 255) - 127;
            r[i] = bytes1(uint8(uint256(v) & 0xff));
        }
    }

    function _dot(bytes memory a, bytes memory b) internal pure returns (int256 acc) {
        for (uint256 i = 0; i < b.length; ++i) {
            acc += int256(int8(uint8(a[i]))) * int256(int8(uint8(b[i])));
        }
    }

    function _makeData() internal {
        for (uint256 r = 0; r < ROWS; ++r) {
            inRows.push(abi.encodePacked(_i8row(100 + r, K), uint64(12345)));
        }
        bytes32[] memory wl = new bytes32[](N);
        for (uint256 j = 0; j < N; ++j) {
            wRows.push(_i8row(200 + j, K));
            wl[j] = _leaf(wRows[j]);
        }
        rowsRoot = _root(wl, 2);
        for (uint256 r = 0; r < ROWS; ++r) {
            bytes memory row;
            for (uint256 j = 0; j < N; ++j) {
                row = abi.encodePacked(row, int32(_dot(inRows[r], wRows[j])));
            }
            outRows.push(row);
        }
        // Weight root: 1 layer, no biases → 7 + 5 = 12 leaves; leaf 0 is the q matrix.
        for (uint256 i = 0; i < 12; ++i) {
            weightLeaves.push(i == 0 ? _node(rowsRoot, scalesRoot) : keccak256(abi.encode("matrix", i)));
        }
        weightLeaves[9] = _leaf(_exp2()); // EXP2: one 1024-byte chunk, its leaf is the root
        weightLeaves[3] = _node(keccak256("o rows"), _leaf(_oScales())); // o matrix: 8 scales
        weightLeaves[2] = _node(keccak256("v rows"), _leaf(_oScales())); // v matrix: 8 scales
        SkuRegistry.Sku memory s = _sku(1);
        s.weightRoot = _root(weightLeaves, 4);
        vm.startPrank(owner);
        skus.registerSku(keccak256("real-sku"), s);
        skus.setShape(keccak256("real-sku"), _shape(2, 2, 4, 16)); // Hq = Hkv = 2, D = 4
        vm.stopPrank();
    }

    /// @dev A trace whose GEMM step output differs from the honest one at (badRow, badCol) when
    /// `cheat`; every later step root differs too (as a real run's would).
    function _trace(bool cheat, uint256 badRow, uint256 badCol) internal view returns (Trace memory t) {
        t.outs = new bytes32[](STEPS);
        t.gemmRows = new bytes[](ROWS);
        for (uint256 r = 0; r < ROWS; ++r) {
            t.gemmRows[r] = outRows[r];
        }
        if (cheat) {
            bytes memory row = bytes.concat(outRows[badRow]);
            row[badCol * 4 + 3] = bytes1(uint8(row[badCol * 4 + 3]) ^ 1);
            t.gemmRows[badRow] = row;
        }
        for (uint256 s = 0; s < STEPS; ++s) {
            if (s == GEMM_STEP - 1) t.outs[s] = _tensorRoot(inRows);
            else if (s == GEMM_STEP) t.outs[s] = _tensorRoot(t.gemmRows);
            else if (s > GEMM_STEP && cheat) t.outs[s] = keccak256(abi.encode("cheat", s));
            else t.outs[s] = keccak256(abi.encode("step", s));
        }
    }

    // ------------------------------------------------------------------ trees

    function _leaf(bytes memory row) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(bytes1(0), row));
    }

    function _node(bytes32 l, bytes32 r) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(bytes1(0x01), l, r));
    }

    /// @dev Root of a depth-`depth` tree over `leaves` (zero-padded).
    function _root(bytes32[] memory leaves, uint256 depth) internal pure returns (bytes32) {
        bytes32[] memory level = new bytes32[](1 << depth);
        for (uint256 i = 0; i < leaves.length; ++i) {
            level[i] = leaves[i];
        }
        for (uint256 n = level.length; n > 1; n /= 2) {
            for (uint256 i = 0; i < n / 2; ++i) {
                level[i] = _node(level[2 * i], level[2 * i + 1]);
            }
        }
        return level[0];
    }

    function _proof(bytes32[] memory leaves, uint256 depth, uint256 index) internal pure returns (bytes32[] memory p) {
        bytes32[] memory level = new bytes32[](1 << depth);
        for (uint256 i = 0; i < leaves.length; ++i) {
            level[i] = leaves[i];
        }
        p = new bytes32[](depth);
        for (uint256 d = 0; d < depth; ++d) {
            p[d] = level[index ^ 1];
            uint256 n = level.length >> d;
            for (uint256 i = 0; i < n / 2; ++i) {
                level[i] = _node(level[2 * i], level[2 * i + 1]);
            }
            index >>= 1;
        }
    }

    function _tensorLeaves(bytes[] memory rows) internal pure returns (bytes32[] memory l) {
        l = new bytes32[](rows.length);
        for (uint256 i = 0; i < rows.length; ++i) {
            l[i] = _leaf(rows[i]);
        }
    }

    function _tensorRoot(bytes[] memory rows) internal pure returns (bytes32) {
        uint256 depth;
        while ((1 << depth) < rows.length) ++depth;
        return _root(_tensorLeaves(rows), depth);
    }

    /// @dev State root after `n` steps.
    function _state(Trace memory t, uint256 n) internal view returns (bytes32) {
        bytes32[] memory l = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            l[i] = t.outs[i];
        }
        return _root(l, DEPTH);
    }

    function _stateProof(Trace memory t, uint256 n, uint256 leaf) internal view returns (bytes32[] memory) {
        bytes32[] memory l = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            l[i] = t.outs[i];
        }
        return _proof(l, DEPTH, leaf);
    }

    // ------------------------------------------------------------------ play

    function _post(Trace memory t) internal returns (uint256 batchId, Receipt memory r) {
        return _postRoots(t, keccak256("in"), keccak256("out"));
    }

    function _postRoots(Trace memory t, bytes32 inputRoot, bytes32 outputRoot)
        internal
        returns (uint256 batchId, Receipt memory r)
    {
        SignedJob[] memory js = new SignedJob[](1);
        js[0] = _job(1, 1 ether);
        r = _receipt(inbox.jobDigest(js[0].request), worker, 0, 100, _state(t, STEPS));
        r.inputRoot = inputRoot;
        r.outputRoot = outputRoot;
        r.skuId = postSku;
        r.stepCount = uint64(STEPS);
        vm.prank(worker);
        bridge.setSku(r.skuId, true);
        Receipt[] memory rs = new Receipt[](1);
        rs[0] = r;
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = _signReceipt(r, workerKey);
        js[0] = _job(1, 1 ether);
        js[0].request.skuId = r.skuId;
        (uint8 v, bytes32 rr, bytes32 ss) = vm.sign(buyerKey, inbox.jobDigest(js[0].request));
        js[0].signature = abi.encodePacked(rr, ss, v);
        rs[0].jobId = inbox.jobDigest(js[0].request);
        r = rs[0];
        sigs[0] = _signReceipt(r, workerKey);
        vm.prank(sequencer);
        batchId = inbox.postBatch(js, rs, sigs);
    }

    function _open(uint256 batchId, Receipt memory r) internal returns (uint256 id) {
        return _openAs(batchId, r, worker2);
    }

    function _openAs(uint256 batchId, Receipt memory r, address ch) internal returns (uint256 id) {
        vm.deal(ch, BOND);
        vm.prank(ch);
        id = game.open{value: BOND}(batchId, r, 0, new bytes32[](0));
    }

    /// @dev Bisects to a single step: the defender posts its trace's states, the challenger
    /// picks the first part whose end differs from its own trace. Returns the moves made.
    function _bisect(uint256 id, Trace memory def, Trace memory chal) internal returns (uint256 moves) {
        return _bisectAs(id, def, chal, worker2);
    }

    function _bisectAs(uint256 id, Trace memory def, Trace memory chal, address challenger)
        internal
        returns (uint256 moves)
    {
        while (game.getGame(id).phase == DisputeGame.Phase.Bisect) {
            uint64[] memory pts = game.bisectionPoints(id);
            bytes32[] memory roots = new bytes32[](pts.length);
            for (uint256 i = 0; i < pts.length; ++i) {
                roots[i] = _state(def, pts[i]);
            }
            vm.warp(block.timestamp + 1 hours);
            bytes32 hiRoot = game.getGame(id).hiRoot;
            uint256 mb = _fund(worker);
            vm.prank(worker);
            game.bisect{value: mb}(id, hiRoot, roots);
            DisputeGame.Game memory g = game.getGame(id);
            uint256 j = pts.length; // last part unless an earlier end differs
            for (uint256 i = 0; i < pts.length; ++i) {
                if (roots[i] != _state(chal, pts[i])) {
                    j = i;
                    break;
                }
            }
            bytes32 agreed = j == 0 ? g.loRoot : roots[j - 1];
            bytes32 disputed = j == pts.length ? g.hiRoot : roots[j];
            vm.warp(block.timestamp + 1 hours);
            mb = _fund(challenger);
            vm.prank(challenger);
            game.choose{value: mb}(id, roots, j, agreed, disputed);
            moves += 2;
        }
    }

    function _gemmProof(Trace memory def, uint256 row, uint256 col) internal view returns (GemmProof memory p) {
        p.outRoot = def.outs[GEMM_STEP];
        p.stepProof = _stateProof(def, GEMM_STEP, GEMM_STEP);
        p.outRow = def.gemmRows[row];
        p.outRowProof = _proof(_tensorLeaves(def.gemmRows), 1, row);
        p.inRoot = def.outs[GEMM_STEP - 1];
        p.inStepProof = _stateProof(def, GEMM_STEP, GEMM_STEP - 1);
        p.inRow = inRows[row];
        p.inRowProof = _proof(_tensorLeaves(inRows), 1, row);
        p.rowsRoot = rowsRoot;
        p.scalesRoot = scalesRoot;
        p.matrixProof = _proof(weightLeaves, 4, 0);
        p.wRow = wRows[col];
        bytes32[] memory wl = new bytes32[](N);
        for (uint256 j = 0; j < N; ++j) {
            wl[j] = _leaf(wRows[j]);
        }
        p.wRowProof = _proof(wl, 2, col);
    }

    // ------------------------------------------------------------------ tests

    function test_cheatingWorkerIsSlashed() public {
        Trace memory bad = _trace(true, 1, 2);
        Trace memory good = _trace(false, 0, 0);
        (uint256 batchId, Receipt memory r) = _post(bad);
        uint256 id = _open(batchId, r);
        uint256 moves = _bisect(id, bad, good);
        DisputeGame.Game memory g = game.getGame(id);
        assertEq(g.lo, GEMM_STEP, "bisection found the first bad step");
        assertEq(g.hi, GEMM_STEP + 1, "one step");
        assertTrue(moves <= 8, "few moves");
        vm.prank(worker2);
        game.nameEntry(id, g.hiRoot, 1, 2);
        vm.prank(worker);
        game.proveGemm(id, _gemmProof(bad, 1, 2));
        g = game.getGame(id);
        assertTrue(g.challengerWon, "challenger won");
        assertEq(uint256(g.reason), uint256(DisputeGame.Reason.Fraud), "fraud");
        StakeBridge.Account memory a = bridge.account(worker);
        assertEq(a.stake, 5 ether, "half slashed");
        assertEq(a.strikes, 1, "struck");
        assertEq(bridge.rewardOwed(worker2), 2.5 ether, "challenger share");
        assertEq(game.owed(worker2), BOND, "bond back");
        uint256 before = worker2.balance;
        vm.prank(worker2);
        game.withdraw();
        assertEq(worker2.balance - before, BOND, "bond paid");
        // Finalization skips the fraudulent receipt and refunds the buyer.
        vm.warp(block.timestamp + WINDOW);
        Receipt[] memory rs = new Receipt[](1);
        rs[0] = r;
        inbox.finalizeBatch(batchId, rs);
        assertEq(bridge.escrow(buyer).balance, 50 ether, "refunded");
    }

    function test_honestWorkerWinsAgainstFalseChallenge() public {
        Trace memory good = _trace(false, 0, 0);
        Trace memory wrongView = _trace(true, 0, 1); // the challenger's mistaken trace
        (uint256 batchId, Receipt memory r) = _post(good);
        uint256 id = _open(batchId, r);
        _bisect(id, good, wrongView);
        DisputeGame.Game memory g = game.getGame(id);
        assertEq(g.lo, GEMM_STEP, "disputed step");
        vm.prank(worker2);
        game.nameEntry(id, g.hiRoot, 0, 1);
        vm.prank(worker);
        game.proveGemm(id, _gemmProof(good, 0, 1));
        g = game.getGame(id);
        assertTrue(!g.challengerWon, "defender won");
        assertEq(uint256(g.reason), uint256(DisputeGame.Reason.Proven), "proven");
        assertEq(bridge.account(worker).stake, 10 ether, "not slashed");
        assertEq(game.owed(worker), BOND / 2, "half the bond to the worker");
        assertEq(game.burnedBonds(), BOND / 2, "half burned");
        vm.warp(block.timestamp + WINDOW);
        Receipt[] memory rs = new Receipt[](1);
        rs[0] = r;
        inbox.finalizeBatch(batchId, rs);
        assertEq(rewards.credits(0, worker), 100, "credited");
    }

    function test_defenderTimeoutInBisectionIsPartialSlash() public {
        Trace memory bad = _trace(true, 1, 2);
        (uint256 batchId, Receipt memory r) = _post(bad);
        uint256 id = _open(batchId, r);
        vm.warp(block.timestamp + CLOCK);
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.ClockNotExpired.selector, CLOCK, CLOCK));
        game.timeout(id);
        vm.warp(block.timestamp + 1);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.ClockExpired.selector, CLOCK + 1, CLOCK));
        game.bisect(id, r.traceRoot, new bytes32[](3));
        game.timeout(id);
        DisputeGame.Game memory g = game.getGame(id);
        assertTrue(g.challengerWon, "challenger won");
        assertEq(uint256(g.reason), uint256(DisputeGame.Reason.DefenderTimeout), "timeout");
        assertEq(bridge.account(worker).stake, 9 ether, "10% slashed");
    }

    function test_proofTimeoutIsHeavySlash() public {
        Trace memory bad = _trace(true, 1, 2);
        Trace memory good = _trace(false, 0, 0);
        (uint256 batchId, Receipt memory r) = _post(bad);
        uint256 id = _open(batchId, r);
        _bisect(id, bad, good);
        bytes32 hi = game.getGame(id).hiRoot;
        vm.prank(worker2);
        game.nameEntry(id, hi, 1, 2);
        vm.warp(block.timestamp + CLOCK);
        game.timeout(id);
        assertEq(uint256(game.getGame(id).reason), uint256(DisputeGame.Reason.ProofTimeout), "proof timeout");
        assertEq(bridge.account(worker).stake, 5 ether, "heavy slash");
    }

    function test_challengerTimeoutLosesBond() public {
        Trace memory good = _trace(false, 0, 0);
        (uint256 batchId, Receipt memory r) = _post(good);
        uint256 id = _open(batchId, r);
        uint64[] memory pts = game.bisectionPoints(id);
        bytes32[] memory roots = new bytes32[](pts.length);
        for (uint256 i = 0; i < pts.length; ++i) {
            roots[i] = _state(good, pts[i]);
        }
        vm.prank(worker);
        game.bisect(id, r.traceRoot, roots);
        vm.warp(block.timestamp + CLOCK + 1);
        vm.prank(worker2);
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.ClockExpired.selector, CLOCK + 1, CLOCK));
        game.choose(id, roots, 0, bytes32(0), bytes32(0));
        game.timeout(id);
        DisputeGame.Game memory g = game.getGame(id);
        assertTrue(!g.challengerWon, "defender won");
        assertEq(uint256(g.reason), uint256(DisputeGame.Reason.ChallengerTimeout), "challenger timeout");
        assertEq(game.owed(worker), BOND / 2, "reward");
        vm.expectRevert(
            abi.encodeWithSelector(
                DisputeGame.WrongPhase.selector, DisputeGame.Phase.Bisect, DisputeGame.Phase.Resolved
            )
        );
        game.timeout(id);
    }

    function test_invalidCommitmentIsFullSlash() public {
        Trace memory good = _trace(false, 0, 0);
        SignedJob[] memory js = new SignedJob[](1);
        js[0] = _job(9, 1 ether);
        Receipt memory r = _receipt(inbox.jobDigest(js[0].request), worker, 0, 10, _state(good, STEPS));
        r.stepCount = 22; // not a whole number of rounds
        vm.prank(owner);
        skus.setShape(SKU, _shape(2, 2, 4, 16));
        Receipt[] memory rs = new Receipt[](1);
        rs[0] = r;
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = _signReceipt(r, workerKey);
        vm.prank(sequencer);
        uint256 batchId = inbox.postBatch(js, rs, sigs);
        uint256 id = _open(batchId, r);
        DisputeGame.Game memory g = game.getGame(id);
        assertEq(uint256(g.reason), uint256(DisputeGame.Reason.InvalidCommitment), "invalid");
        StakeBridge.Account memory a = bridge.account(worker);
        assertEq(uint256(a.stake) + a.pending, 0, "everything slashed");
    }

    function test_threeLossesRemoveTheWorker() public {
        for (uint256 i = 0; i < 3; ++i) {
            Trace memory bad = _trace(true, 1, 2);
            SignedJob[] memory js = new SignedJob[](1);
            js[0] = _job(uint64(50 + i), 1 ether);
            js[0].request.skuId = keccak256("real-sku");
            (uint8 v, bytes32 rr, bytes32 ss) = vm.sign(buyerKey, inbox.jobDigest(js[0].request));
            js[0].signature = abi.encodePacked(rr, ss, v);
            Receipt memory r = _receipt(inbox.jobDigest(js[0].request), worker, 0, 10, _state(bad, STEPS));
            r.skuId = keccak256("real-sku");
            if (i == 0) {
                vm.prank(worker);
                bridge.setSku(r.skuId, true);
            }
            Receipt[] memory rs = new Receipt[](1);
            rs[0] = r;
            bytes[] memory sigs = new bytes[](1);
            sigs[0] = _signReceipt(r, workerKey);
            vm.prank(sequencer);
            uint256 batchId = inbox.postBatch(js, rs, sigs);
            uint256 id = _open(batchId, r);
            vm.warp(block.timestamp + CLOCK + 1);
            game.timeout(id);
        }
        StakeBridge.Account memory a = bridge.account(worker);
        assertTrue(a.removed, "removed after three losses");
        assertTrue(!bridge.isWorkerFor(worker, keccak256("real-sku")), "no more shards");
    }

    function test_openNeedsTheShape() public {
        Trace memory good = _trace(false, 0, 0);
        SignedJob[] memory js = new SignedJob[](1);
        js[0] = _job(8, 1 ether);
        Receipt memory r = _receipt(inbox.jobDigest(js[0].request), worker, 0, 10, _state(good, STEPS));
        Receipt[] memory rs = new Receipt[](1);
        rs[0] = r;
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = _signReceipt(r, workerKey);
        vm.prank(sequencer);
        uint256 batchId = inbox.postBatch(js, rs, sigs);
        vm.deal(worker2, BOND);
        vm.prank(worker2);
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.ShapeNotSet.selector, SKU));
        game.open{value: BOND}(batchId, r, 0, new bytes32[](0));
    }

    function test_anyBondedAccountMayChallenge() public {
        Trace memory bad = _trace(true, 1, 2);
        (uint256 batchId, Receipt memory r) = _post(bad);
        address stranger = address(0x5742);
        vm.deal(stranger, BOND);
        vm.prank(stranger);
        uint256 id = game.open{value: BOND}(batchId, r, 0, new bytes32[](0));
        assertEq(game.getGame(id).challenger, stranger, "unstaked challenger");
    }

    function test_moveGuards() public {
        Trace memory bad = _trace(true, 1, 2);
        (uint256 batchId, Receipt memory r) = _post(bad);
        vm.prank(worker);
        vm.expectRevert(DisputeGame.SelfChallenge.selector);
        game.open{value: 0}(batchId, r, 0, new bytes32[](0));
        vm.prank(worker2);
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.BondTooSmall.selector, 0, BOND));
        game.open(batchId, r, 0, new bytes32[](0));
        uint256 id = _open(batchId, r);
        // A second game on the same receipt is its own game.
        vm.deal(worker2, BOND);
        vm.prank(worker2);
        uint256 id2 = game.open{value: BOND}(batchId, r, 0, new bytes32[](0));
        assertEq(id2, id + 1, "second game");
        vm.prank(worker2);
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.NotYourTurn.selector, worker2, worker));
        game.bisect(id, r.traceRoot, new bytes32[](3));
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.StaleMove.selector, bytes32(0), r.traceRoot));
        game.bisect(id, bytes32(0), new bytes32[](3));
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.WrongRootCount.selector, 2, 3));
        game.bisect(id, r.traceRoot, new bytes32[](2));
        vm.prank(worker);
        game.bisect(id, r.traceRoot, new bytes32[](3));
        vm.prank(worker2);
        vm.expectRevert(DisputeGame.RootsMismatch.selector);
        game.choose(id, new bytes32[](2), 0, bytes32(0), bytes32(0));
        vm.prank(worker2);
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.BadChoice.selector, 4, 4));
        game.choose(id, new bytes32[](3), 4, bytes32(0), bytes32(0));
        vm.prank(worker2);
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.StaleMove.selector, bytes32(uint256(1)), bytes32(0)));
        game.choose(id, new bytes32[](3), 1, bytes32(uint256(1)), bytes32(0));
        vm.prank(worker2);
        vm.expectRevert(
            abi.encodeWithSelector(DisputeGame.WrongPhase.selector, DisputeGame.Phase.Name, DisputeGame.Phase.Choose)
        );
        game.nameEntry(id, bytes32(0), 0, 0);
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.UnknownGame.selector, 99));
        game.getGame(99);
        vm.expectRevert(DisputeGame.NothingOwed.selector);
        game.withdraw();
        (bool exists, uint256 gid) = game.gameOf(batchId, keccak256(abi.encode(r)));
        assertTrue(exists && gid == id, "lookup");
        uint256[] memory ids = game.gamesOf(batchId, keccak256(abi.encode(r)), false);
        assertTrue(ids.length == 2 && ids[0] == id && ids[1] == id2, "all games");
        assertEq(game.gamesOf(batchId, keccak256(abi.encode(r)), true).length, 0, "no output games");
        assertEq(game.gameCount(), 2, "count");
        assertEq(game.maxDuration(), 2 * CLOCK, "duration");
    }

    function test_rowProofAtGemmStepReverts() public {
        Trace memory bad = _trace(true, 1, 2);
        (uint256 batchId, Receipt memory r) = _post(bad);
        uint256 id = _open(batchId, r);
        _bisect(id, bad, _trace(false, 0, 0));
        bytes32 hi = game.getGame(id).hiRoot;
        vm.prank(worker2);
        game.nameEntry(id, hi, 1, 2);
        RowProof memory p;
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(StepProver.WrongStepKind.selector, GEMM_STEP, StepProver.Op.Gemm));
        game.proveRow(id, p);
    }

    function test_wrongProofsRevert() public {
        Trace memory bad = _trace(true, 1, 2);
        Trace memory good = _trace(false, 0, 0);
        (uint256 batchId, Receipt memory r) = _post(bad);
        uint256 id = _open(batchId, r);
        _bisect(id, bad, good);
        bytes32 hi = game.getGame(id).hiRoot;
        vm.prank(worker2);
        game.nameEntry(id, hi, 1, 2);
        GemmProof memory p = _gemmProof(bad, 1, 2);
        p.wRow = wRows[1]; // another column's weights
        vm.prank(worker);
        vm.expectRevert(Openings.WeightRowMismatch.selector);
        game.proveGemm(id, p);
        p = _gemmProof(bad, 1, 2);
        p.inRow = inRows[0];
        vm.prank(worker);
        vm.expectRevert(Openings.InputRowMismatch.selector);
        game.proveGemm(id, p);
        p = _gemmProof(bad, 1, 2);
        p.outRoot = good.outs[GEMM_STEP];
        vm.prank(worker);
        vm.expectRevert(Openings.PostStateMismatch.selector);
        game.proveGemm(id, p);
        p = _gemmProof(bad, 1, 2);
        p.matrixProof[0] = bytes32(0);
        vm.prank(worker);
        vm.expectRevert(Openings.MatrixMismatch.selector);
        game.proveGemm(id, p);
    }

    /// @dev Any arity and any round of the bad GEMM: bisection lands on it and the fraud is
    /// proven, within 2·ceil(log_k(steps)) bisection moves. (Each run deploys a fresh stack.)
    /// forge-config: default.fuzz.runs = 48
    function testFuzz_bisectionFindsTheBadStep(uint8 arity, uint8 rounds, uint8 badRound, bool flip) public {
        uint256 k = bound(arity, 2, 40);
        uint256 r = bound(rounds, 1, 6);
        uint256 rb = bound(badRound, 0, r - 1);
        _fresh(k);
        STEPS = 23 * r;
        DEPTH = 0;
        while ((1 << DEPTH) < STEPS) ++DEPTH;
        GEMM_STEP = 23 * rb + 2;
        uint256 row = flip ? 1 : 0;
        uint256 col = flip ? 3 : 0;
        uint256 id = _playBisection(k, row, col);
        bytes32 hi = game.getGame(id).hiRoot;
        vm.prank(worker2);
        game.nameEntry(id, hi, uint32(row), uint32(col));
        vm.prank(worker);
        game.proveGemm(id, _gemmProof(_trace(true, row, col), row, col));
        assertTrue(game.getGame(id).challengerWon, "fraud proven");
    }

    function _playBisection(uint256 k, uint256 row, uint256 col) internal returns (uint256 id) {
        Trace memory bad = _trace(true, row, col);
        (uint256 batchId, Receipt memory rc) = _post(bad);
        id = _open(batchId, rc);
        uint256 moves = _bisect(id, bad, _trace(false, 0, 0));
        uint256 rounds_;
        for (uint256 span = STEPS; span > 1; span = (span + k - 1) / k) {
            ++rounds_;
        }
        assertLe(moves, 2 * rounds_, "moves bounded by the arity");
        assertEq(game.getGame(id).lo, GEMM_STEP, "found");
    }

    function test_gemmStepLayout() public view {
        bytes32 sku = keccak256("real-sku");
        (bool isG, uint256 off, uint256 m, uint256 leaves) = prover.gemmStep(sku, 2);
        assertTrue(isG && off == 1 && m == 0 && leaves == 12, "q");
        (isG, off, m,) = prover.gemmStep(sku, 3);
        assertTrue(isG && off == 2 && m == 1, "k");
        (isG, off, m,) = prover.gemmStep(sku, 4);
        assertTrue(isG && off == 3 && m == 2, "v");
        (isG, off, m,) = prover.gemmStep(sku, 12);
        assertTrue(isG && off == 1 && m == 3, "o");
        (isG, off, m,) = prover.gemmStep(sku, 15);
        assertTrue(isG && off == 1 && m == 4, "gate");
        (isG, off, m,) = prover.gemmStep(sku, 16);
        assertTrue(isG && off == 2 && m == 5, "up");
        (isG, off, m,) = prover.gemmStep(sku, 18);
        assertTrue(isG && off == 1 && m == 6, "down");
        (isG, off, m,) = prover.gemmStep(sku, 21);
        assertTrue(isG && off == 1 && m == 8, "lm_head");
        (isG,,,) = prover.gemmStep(sku, 23 + 2);
        assertTrue(isG, "next round q");
        for (uint256 s = 0; s < 23; ++s) {
            (isG,,,) = prover.gemmStep(sku, s);
            bool want = s == 2 || s == 3 || s == 4 || s == 12 || s == 15 || s == 16 || s == 18 || s == 21;
            assertTrue(isG == want, "layout");
        }
    }

    // ------------------------------------------------------------------ row ops

    /// @dev A trace whose step 0 is a Q16 residual tensor and step 1 its rmsnorm_quant; the
    /// cheater flips one byte of row `badRow` of step 1 (and everything after differs).
    function _rmsTrace(bool cheat, uint256 badRow)
        internal
        view
        returns (Trace memory t, bytes[] memory x, bytes[] memory q)
    {
        x = new bytes[](ROWS);
        q = new bytes[](ROWS);
        for (uint256 r = 0; r < ROWS; ++r) {
            bytes memory row;
            for (uint256 i = 0; i < K; ++i) {
                row = abi.encodePacked(row, int32(int256(uint256(keccak256(abi.encode("x", r, i))) % 200000) - 100000));
            }
            x[r] = row;
            q[r] = verifier.rmsnormQuantRow(row, 42950);
        }
        if (cheat) {
            bytes memory bad = bytes.concat(q[badRow]);
            bad[0] = bytes1(uint8(bad[0]) ^ 1);
            q[badRow] = bad;
        }
        t.outs = new bytes32[](STEPS);
        t.gemmRows = new bytes[](0);
        for (uint256 s = 0; s < STEPS; ++s) {
            if (s == 0) t.outs[s] = _tensorRoot(x);
            else if (s == 1) t.outs[s] = _tensorRoot(q);
            else if (cheat) t.outs[s] = keccak256(abi.encode("cheat", s));
            else t.outs[s] = keccak256(abi.encode("step", s));
        }
    }

    function _rowProof(Trace memory t, bytes[] memory x, bytes[] memory q, uint256 row)
        internal
        view
        returns (RowProof memory p)
    {
        p.outRoot = t.outs[1];
        p.stepProof = _stateProof(t, 1, 1);
        p.outRow = q[row];
        p.outRowProof = _proof(_tensorLeaves(q), 1, row);
        p.inputs = new Opening[](1);
        p.inputs[0] = Opening({
            step: 0,
            root: t.outs[0],
            stepProof: _stateProof(t, 1, 0),
            row: x[row],
            rowProof: _proof(_tensorLeaves(x), 1, row)
        });
        p.vectors = new VectorOpening[](0);
    }

    function _playRms(bool cheatDefender, uint256 row) internal returns (uint256 id) {
        (Trace memory def, bytes[] memory x, bytes[] memory q) = _rmsTrace(cheatDefender, 1);
        (Trace memory other,,) = _rmsTrace(!cheatDefender, 1);
        (uint256 batchId, Receipt memory r) = _post(def);
        id = _open(batchId, r);
        _bisect(id, def, other);
        assertEq(game.getGame(id).lo, 1, "rmsnorm step");
        bytes32 hi = game.getGame(id).hiRoot;
        vm.prank(worker2);
        game.nameEntry(id, hi, uint32(row), 0);
        RowProof memory p = _rowProof(def, x, q, row);
        vm.prank(worker);
        game.proveRow(id, p);
    }

    function test_rowOpFraudIsCaught() public {
        uint256 id = _playRms(true, 1);
        DisputeGame.Game memory g = game.getGame(id);
        assertTrue(g.challengerWon, "challenger won");
        assertEq(uint256(g.reason), uint256(DisputeGame.Reason.Fraud), "fraud");
        assertEq(bridge.account(worker).stake, 5 ether, "heavy slash");
    }

    function test_honestRowOpIsProven() public {
        uint256 id = _playRms(false, 1);
        DisputeGame.Game memory g = game.getGame(id);
        assertTrue(!g.challengerWon, "defender won");
        assertEq(uint256(g.reason), uint256(DisputeGame.Reason.Proven), "proven");
        assertEq(bridge.account(worker).stake, 10 ether, "not slashed");
    }

    function test_stepOpLayout() public view {
        bytes32 sku = keccak256("real-sku");
        // embed, norm, q, k, v, rope_q, rope_k, value, scores, softmax, pv, attn_out, o, residual,
        // norm, gate, up, silu_mul, down, residual, final norm, lm_head, argmax
        uint8[23] memory want = [1, 2, 3, 3, 3, 4, 5, 6, 7, 8, 9, 10, 3, 11, 2, 3, 3, 13, 3, 12, 14, 3, 15];
        for (uint256 s = 0; s < 23; ++s) {
            (StepProver.Op op,, uint256 round) = prover.stepOp(sku, s);
            assertEq(uint256(op), want[s], "op");
            assertEq(round, 0, "round");
        }
        (StepProver.Op op2, uint256 layer, uint256 round2) = prover.stepOp(sku, 23 + 13);
        assertTrue(op2 == StepProver.Op.ResidualAttn && layer == 0 && round2 == 1, "next round residual");
    }

    /// @dev A stand-in EXP2 table (any committed table is what the verifier must use).
    function _exp2() internal pure returns (bytes memory t) {
        for (uint256 f = 0; f < 256; ++f) {
            t = abi.encodePacked(t, uint32((uint256(1) << 31) - f * 4_000_000));
        }
    }

    /// @dev Softmax step 9 of round 0: scores (step 8, i64 rows) and rope_q rows (step 5, QRows).
    function _softmaxTrace(bool cheat)
        internal
        view
        returns (Trace memory t, bytes[] memory sc, bytes[] memory rq, bytes[] memory out)
    {
        sc = new bytes[](ROWS);
        rq = new bytes[](ROWS);
        out = new bytes[](ROWS);
        for (uint256 r = 0; r < ROWS; ++r) {
            sc[r] = abi.encodePacked(int64(-5_000_000), int64(int256(r) * 1000), int64(3_000_000));
            rq[r] = abi.encodePacked(_i8row(300 + r, K), uint64(1 << 33));
            out[r] = verifier.softmaxRow(sc[r], int256(1 << 33), 1 << 37, _exp2());
        }
        if (cheat) {
            bytes memory bad = bytes.concat(out[1]);
            bad[3] = bytes1(uint8(bad[3]) ^ 1);
            out[1] = bad;
        }
        t.outs = new bytes32[](STEPS);
        t.gemmRows = new bytes[](0);
        for (uint256 s = 0; s < STEPS; ++s) {
            if (s == 5) t.outs[s] = _tensorRoot(rq);
            else if (s == 8) t.outs[s] = _tensorRoot(sc);
            else if (s == 9) t.outs[s] = _tensorRoot(out);
            else if (s > 9 && cheat) t.outs[s] = keccak256(abi.encode("cheat", s));
            else t.outs[s] = keccak256(abi.encode("step", s));
        }
    }

    function _softmaxProof(bool cheat) internal view returns (RowProof memory p) {
        (Trace memory t, bytes[] memory sc, bytes[] memory rq, bytes[] memory out) = _softmaxTrace(cheat);
        p.outRoot = t.outs[9];
        p.stepProof = _stateProof(t, 9, 9);
        p.outRow = out[1];
        p.outRowProof = _proof(_tensorLeaves(out), 1, 1);
        p.inputs = new Opening[](2);
        p.inputs[0] = Opening(uint64(8), t.outs[8], _stateProof(t, 9, 8), sc[1], _proof(_tensorLeaves(sc), 1, 1));
        p.inputs[1] = Opening(uint64(5), t.outs[5], _stateProof(t, 9, 5), rq[1], _proof(_tensorLeaves(rq), 1, 1));
        p.vectors = new VectorOpening[](1);
        p.vectors[0] = VectorOpening(_exp2(), bytes32(0), _proof(weightLeaves, 4, 9));
    }

    function _playSoftmax(bool cheatDefender) internal returns (uint256 id) {
        (Trace memory def,,,) = _softmaxTrace(cheatDefender);
        (Trace memory other,,,) = _softmaxTrace(!cheatDefender);
        (uint256 batchId, Receipt memory r) = _post(def);
        id = _open(batchId, r);
        _bisect(id, def, other);
        assertEq(game.getGame(id).lo, 9, "softmax step");
        bytes32 hi = game.getGame(id).hiRoot;
        vm.prank(worker2);
        game.nameEntry(id, hi, 1, 0);
        RowProof memory p = _softmaxProof(cheatDefender);
        vm.prank(worker);
        game.proveRow(id, p);
    }

    function test_softmaxRowBothOutcomes() public {
        uint256 id = _playSoftmax(true);
        assertTrue(game.getGame(id).challengerWon, "cheater caught");
        _fresh(4);
        id = _playSoftmax(false);
        assertTrue(!game.getGame(id).challengerWon, "honest worker proven");
    }

    function test_rowProofGuards() public {
        (Trace memory def,,,) = _softmaxTrace(true);
        (Trace memory other,,,) = _softmaxTrace(false);
        (uint256 batchId, Receipt memory r) = _post(def);
        uint256 id = _open(batchId, r);
        _bisect(id, def, other);
        bytes32 hi = game.getGame(id).hiRoot;
        vm.prank(worker2);
        game.nameEntry(id, hi, 1, 0);
        RowProof memory p = _softmaxProof(true);
        p.vectors[0].data[0] = 0x00; // not the committed table
        vm.prank(worker);
        vm.expectRevert(Openings.VectorMismatch.selector);
        game.proveRow(id, p);
        p = _softmaxProof(true);
        p.vectors = new VectorOpening[](0);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(StepProver.WrongOpeningCount.selector, 2, 1, 0));
        game.proveRow(id, p);
        p = _softmaxProof(true);
        p.inputs[1].row = p.inputs[0].row; // scores row passed as the rope_q row
        vm.prank(worker);
        vm.expectRevert(Openings.InputRowMismatch.selector);
        game.proveRow(id, p);
        // A GEMM step cannot be answered with a row proof, nor a row step with a GEMM proof.
        GemmProof memory gp = _gemmProof(_trace(false, 0, 0), 1, 0);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(StepProver.WrongStepKind.selector, 9, StepProver.Op.Gemm));
        game.proveGemm(id, gp);
    }

    function _oScales() internal pure returns (bytes memory t) {
        for (uint256 i = 0; i < K; ++i) {
            t = abi.encodePacked(t, uint32(3_000_000 + i * 77_777));
        }
    }

    /// @dev Residual step 13 (after o): h = step 0, y = step 12, the attn_out row (step 11) for S_x.
    function _residualProof(bool cheat) internal view returns (Trace memory t, RowProof memory p) {
        bytes[] memory h = new bytes[](ROWS);
        bytes[] memory y = new bytes[](ROWS);
        bytes[] memory a = new bytes[](ROWS);
        bytes[] memory out = new bytes[](ROWS);
        for (uint256 r = 0; r < ROWS; ++r) {
            for (uint256 i = 0; i < K; ++i) {
                h[r] = abi.encodePacked(h[r], int32(int256(i * 1000) - int256(r * 77)));
                y[r] = abi.encodePacked(y[r], int32(int256(i) * 123_456 - 400_000));
            }
            a[r] = abi.encodePacked(_i8row(500 + r, K), uint64(1 << 31));
            out[r] = verifier.residualRow(h[r], y[r], _oScales(), int256(1 << 31));
        }
        if (cheat) out[0][5] = bytes1(uint8(out[0][5]) ^ 0x10);
        t.outs = new bytes32[](STEPS);
        for (uint256 s = 0; s < STEPS; ++s) {
            t.outs[s] = keccak256(abi.encode(s > 13 && cheat ? "cheat" : "step", s));
        }
        t.outs[0] = _tensorRoot(h);
        t.outs[11] = _tensorRoot(a);
        t.outs[12] = _tensorRoot(y);
        t.outs[13] = _tensorRoot(out);
        p.outRoot = t.outs[13];
        p.stepProof = _stateProof(t, 13, 13);
        p.outRow = out[0];
        p.outRowProof = _proof(_tensorLeaves(out), 1, 0);
        p.inputs = new Opening[](3);
        p.inputs[0] = Opening(uint64(0), t.outs[0], _stateProof(t, 13, 0), h[0], _proof(_tensorLeaves(h), 1, 0));
        p.inputs[1] = Opening(uint64(12), t.outs[12], _stateProof(t, 13, 12), y[0], _proof(_tensorLeaves(y), 1, 0));
        p.inputs[2] = Opening(uint64(11), t.outs[11], _stateProof(t, 13, 11), a[0], _proof(_tensorLeaves(a), 1, 0));
        p.vectors = new VectorOpening[](1);
        p.vectors[0] = VectorOpening(_oScales(), keccak256("o rows"), _proof(weightLeaves, 4, 3));
    }

    function test_residualRowBothOutcomes() public {
        for (uint256 round = 0; round < 2; ++round) {
            bool cheat = round == 0;
            if (!cheat) _fresh(4);
            (Trace memory def, RowProof memory p) = _residualProof(cheat);
            (Trace memory other,) = _residualProof(!cheat);
            (uint256 batchId, Receipt memory r) = _post(def);
            uint256 id = _open(batchId, r);
            _bisect(id, def, other);
            assertEq(game.getGame(id).lo, 13, "residual step");
            bytes32 hi = game.getGame(id).hiRoot;
            vm.prank(worker2);
            game.nameEntry(id, hi, 0, 0);
            vm.prank(worker);
            game.proveRow(id, p);
            assertTrue(game.getGame(id).challengerWon == cheat, "outcome follows the truth");
        }
    }

    /// @dev value step 7 (row t·2 + g) from the v projection (step 4, row t) and the normalized
    /// row (step 1, row t); attn_out step 11 (row t) from the pv rows (step 10, rows t·2 + h).
    function _headsProof(bool cheat, bool attnOut) internal view returns (Trace memory t, RowProof memory p) {
        bytes[] memory a = new bytes[](ROWS); // step 4 (v proj) or step 10 (pv, 2 rows per token)
        bytes[] memory b = new bytes[](ROWS); // step 1 (normalized rows)
        bytes[] memory out = new bytes[](ROWS * (attnOut ? 1 : 2));
        if (attnOut) a = new bytes[](ROWS * 2);
        for (uint256 r = 0; r < a.length; ++r) {
            for (uint256 i = 0; i < (attnOut ? 4 : 8); ++i) {
                a[r] = abi.encodePacked(a[r], int32(int256(i * 98_765) - int256(r * 300_000)));
            }
        }
        for (uint256 r = 0; r < ROWS; ++r) {
            b[r] = abi.encodePacked(_i8row(700 + r, K), uint64(1 << 32));
        }
        for (uint256 o = 0; o < out.length; ++o) {
            out[o] = attnOut
                ? verifier.quantizeRow(bytes.concat(a[2 * o], a[2 * o + 1]))
                : verifier.valueRow(
                    _slice(a[o / 2], (o % 2) * 16, 16), _slice(_oScales(), (o % 2) * 16, 16), "", int256(1 << 32)
                );
        }
        if (cheat) out[1][2] = bytes1(uint8(out[1][2]) ^ 0x40);
        uint256 s = attnOut ? 11 : 7;
        t.outs = new bytes32[](STEPS);
        for (uint256 i = 0; i < STEPS; ++i) {
            t.outs[i] = keccak256(abi.encode(i > s && cheat ? "cheat" : "step", i));
        }
        t.outs[attnOut ? 10 : 4] = _tensorRoot(a);
        t.outs[1] = _tensorRoot(b);
        t.outs[s] = _tensorRoot(out);
        p.outRoot = t.outs[s];
        p.stepProof = _stateProof(t, s, s);
        p.outRow = out[1];
        uint256 depth = attnOut ? 1 : 2;
        p.outRowProof = _proof(_tensorLeaves(out), depth, 1);
        if (attnOut) {
            p.inputs = new Opening[](2);
            for (uint256 h = 0; h < 2; ++h) {
                p.inputs[h] = Opening(
                    uint64(10), t.outs[10], _stateProof(t, s, 10), a[2 + h], _proof(_tensorLeaves(a), 2, 2 + h)
                );
            }
            p.vectors = new VectorOpening[](0);
        } else {
            p.inputs = new Opening[](2);
            p.inputs[0] = Opening(uint64(4), t.outs[4], _stateProof(t, s, 4), a[0], _proof(_tensorLeaves(a), 1, 0));
            p.inputs[1] = Opening(uint64(1), t.outs[1], _stateProof(t, s, 1), b[0], _proof(_tensorLeaves(b), 1, 0));
            p.vectors = new VectorOpening[](1);
            p.vectors[0] = VectorOpening(_oScales(), keccak256("v rows"), _proof(weightLeaves, 4, 2));
        }
    }

    function _slice(bytes memory b, uint256 from, uint256 n) internal pure returns (bytes memory out) {
        out = new bytes(n);
        for (uint256 i = 0; i < n; ++i) {
            out[i] = b[from + i];
        }
    }

    function test_headRowOpsBothOutcomes() public {
        for (uint256 round = 0; round < 4; ++round) {
            bool cheat = round % 2 == 0;
            bool attnOut = round >= 2;
            if (round != 0) _fresh(4);
            (Trace memory def, RowProof memory p) = _headsProof(cheat, attnOut);
            (Trace memory other,) = _headsProof(!cheat, attnOut);
            (uint256 batchId, Receipt memory r) = _post(def);
            uint256 id = _open(batchId, r);
            _bisect(id, def, other);
            assertEq(game.getGame(id).lo, attnOut ? 11 : 7, "head op step");
            bytes32 hi = game.getGame(id).hiRoot;
            vm.prank(worker2);
            game.nameEntry(id, hi, 1, 0);
            vm.prank(worker);
            game.proveRow(id, p);
            assertTrue(game.getGame(id).challengerWon == cheat, "outcome follows the truth");
        }
    }

    // ------------------------------------------------------------------ output challenges

    /// @dev One prompt [5, 6] whose completion is `completion`; the trace's argmax (step 22 of
    /// the one-round program) generated 7 at the prompt's last position (address 1).
    function _outputCase(bytes memory completion)
        internal
        returns (uint256 batchId, Receipt memory r, Trace memory t, OutputProof memory p)
    {
        bytes memory prompt = abi.encodePacked(uint8(1), uint32(5), uint32(6));
        t.outs = new bytes32[](STEPS);
        for (uint256 i = 0; i < STEPS; ++i) {
            t.outs[i] = keccak256(abi.encode("step", i));
        }
        bytes memory token = abi.encodePacked(uint32(7));
        t.outs[22] = _node(bytes32(0), _leaf(token));
        (batchId, r) = _postRoots(t, _leaf(prompt), _leaf(completion));
        p.completion = completion;
        p.prompt = prompt;
        p.argmaxRoot = t.outs[22];
        p.stepProof = _stateProof(t, STEPS, 22);
        p.argmaxRow = token;
        p.argmaxRowProof = new bytes32[](1);
    }

    function _playOutput(bytes memory completion, uint32 j) internal returns (uint256 id) {
        (uint256 batchId, Receipt memory r,, OutputProof memory p) = _outputCase(completion);
        vm.deal(worker2, BOND);
        vm.prank(worker2);
        id = game.openOutput{value: BOND}(batchId, r, 0, new bytes32[](0), 0, j);
        (bool exists, uint256 gid) = game.outputGameOf(batchId, game.getGame(id).receiptHash);
        assertTrue(exists && gid == id, "output game recorded");
        (exists,) = game.gameOf(batchId, game.getGame(id).receiptHash);
        assertTrue(!exists, "no trace game");
        vm.prank(worker);
        game.proveOutput(id, p);
    }

    function test_honestCompletionIsProven() public {
        for (uint32 j = 0; j < 2; ++j) {
            uint256 id = _playOutput(abi.encodePacked(uint32(7)), j);
            DisputeGame.Game memory g = game.getGame(id);
            assertTrue(!g.challengerWon && g.reason == DisputeGame.Reason.Proven, "proven");
            _fresh(4);
        }
    }

    function test_wrongCompletionIsFraud() public {
        uint256 id = _playOutput(abi.encodePacked(uint32(8)), 0);
        DisputeGame.Game memory g = game.getGame(id);
        assertTrue(g.challengerWon && g.reason == DisputeGame.Reason.Fraud, "changed token");
        assertEq(bridge.account(worker).stake, 5 ether, "heavy slash");
        _fresh(4);
        // Two tokens from a one-round program: wrong whatever index is named.
        id = _playOutput(abi.encodePacked(uint32(7), uint32(7)), 0);
        assertTrue(game.getGame(id).challengerWon, "too long");
    }

    function test_outputGameGuards() public {
        (uint256 batchId, Receipt memory r,, OutputProof memory p) = _outputCase(abi.encodePacked(uint32(7)));
        vm.deal(worker2, 2 * BOND);
        vm.startPrank(worker2);
        uint256 id = game.openOutput{value: BOND}(batchId, r, 0, new bytes32[](0), 0, 0);
        vm.deal(worker2, 3 * BOND);
        uint256 id2 = game.openOutput{value: BOND}(batchId, r, 0, new bytes32[](0), 0, 1);
        assertEq(game.gamesOf(batchId, game.getGame(id).receiptHash, true)[1], id2, "second output game");
        uint256 traceId = game.open{value: BOND}(batchId, r, 0, new bytes32[](0));
        vm.stopPrank();
        RowProof memory rp;
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.WrongGameKind.selector, id, true));
        game.proveRow(id, rp);
        GemmProof memory gp;
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.WrongGameKind.selector, id, true));
        game.proveGemm(id, gp);
        p.argmaxRow = abi.encodePacked(uint32(9));
        vm.prank(worker);
        vm.expectRevert(Openings.ArgmaxRowMismatch.selector);
        game.proveOutput(id, p);
        // A trace game cannot be answered with an output proof (it is not at the proving phase
        // either; the kind is checked first once it is).
        vm.prank(worker);
        vm.expectRevert(
            abi.encodeWithSelector(DisputeGame.WrongPhase.selector, DisputeGame.Phase.Prove, DisputeGame.Phase.Bisect)
        );
        game.proveOutput(traceId, p);
    }

    // ------------------------------------------------------------------ folds (pv rows)

    /// @dev A pv row (step 10, row 4: prompt 0, position 2, head 0) over three positions, as a
    /// defender states it: its value rows (step 7, rows 0/2/4), softmax row (step 9), the
    /// accumulators after 0, 2 and 3 positions, and the committed row. A cheat adds 2^46 to the
    /// final accumulator and commits the row that rounds from it.
    struct PvCase {
        Trace t;
        bytes[] v;
        bytes sm;
        bytes[] acc; // after 0, 2, 3 positions
        bytes out;
        bytes32[] vLeaves;
        bytes32[] smLeaves;
        bytes32[] outLeaves;
    }

    function _pvCase(bool cheat) internal view returns (PvCase memory c) {
        c.v = new bytes[](3);
        for (uint256 u = 0; u < 3; ++u) {
            for (uint256 d = 0; d < 4; ++d) {
                c.v[u] = abi.encodePacked(c.v[u], int32(int256(u * 70_000 + d * 9_000) - 100_000));
            }
        }
        bytes memory probs = abi.encodePacked(int32(20_000), int32(9_000), int32(3_768));
        c.sm = abi.encodePacked(probs, int64(1 << 26));
        c.acc = new bytes[](3);
        c.acc[0] = new bytes(32);
        c.acc[1] = verifier.pvAccumulate(c.acc[0], _slice(probs, 0, 8), bytes.concat(c.v[0], c.v[1]));
        c.acc[2] = verifier.pvAccumulate(c.acc[1], _slice(probs, 8, 4), c.v[2]);
        if (cheat) {
            bytes memory a = c.acc[2];
            a[2] = bytes1(uint8(a[2]) ^ 0x40); // +2^46 on the first element
            c.acc[2] = a;
        }
        c.out = verifier.pvFinish(c.acc[2], int256(1 << 26));
        c.vLeaves = new bytes32[](5);
        c.smLeaves = new bytes32[](5);
        c.outLeaves = new bytes32[](5);
        for (uint256 u = 0; u < 3; ++u) {
            c.vLeaves[2 * u] = _leaf(c.v[u]);
        }
        c.smLeaves[4] = _leaf(c.sm);
        c.outLeaves[4] = _leaf(c.out);
        c.t.outs = new bytes32[](STEPS);
        for (uint256 i = 0; i < STEPS; ++i) {
            c.t.outs[i] = keccak256(abi.encode(i > 10 && cheat ? "cheat" : "step", i));
        }
        c.t.outs[7] = _root(c.vLeaves, 3);
        c.t.outs[9] = _root(c.smLeaves, 3);
        c.t.outs[10] = _root(c.outLeaves, 3);
    }

    function _smOpening(PvCase memory c) internal view returns (Opening memory) {
        return Opening(uint64(9), c.t.outs[9], _stateProof(c.t, 10, 9), c.sm, _proof(c.smLeaves, 3, 4));
    }

    /// @dev Plays a pv dispute to its fold; the challenger disputes chunk `part`.
    function _playFold(bool cheat, uint256 part) internal returns (uint256 id, PvCase memory c) {
        c = _pvCase(cheat);
        PvCase memory other = _pvCase(!cheat);
        (uint256 batchId, Receipt memory r) = _post(c.t);
        id = _open(batchId, r);
        _bisect(id, c.t, other.t);
        assertEq(game.getGame(id).lo, 10, "pv step");
        bytes32 hi = game.getGame(id).hiRoot;
        vm.prank(worker2);
        game.nameEntry(id, hi, 4, 0);
        RowProof memory p;
        p.outRoot = c.t.outs[10];
        p.stepProof = _stateProof(c.t, 10, 10);
        p.outRow = c.out;
        p.outRowProof = _proof(c.outLeaves, 3, 4);
        p.inputs = new Opening[](1);
        p.inputs[0] = _smOpening(c);
        vm.prank(worker);
        game.foldRow(id, p, c.acc[2]);
        DisputeGame.Game memory g = game.getGame(id);
        assertTrue(g.fold && g.lo == 0 && g.hi == 2 && g.phase == DisputeGame.Phase.Bisect, "fold over 2 chunks");
        assertEq(game.getExtra(id).foldStep, 10, "fold step kept");
        bytes32[] memory roots = new bytes32[](1);
        roots[0] = keccak256(c.acc[1]);
        vm.prank(worker);
        game.bisect(id, g.hiRoot, roots);
        vm.prank(worker2);
        game.choose(id, roots, part, part == 0 ? g.loRoot : roots[0], part == 0 ? roots[0] : g.hiRoot);
        assertTrue(game.getGame(id).phase == DisputeGame.Phase.Prove, "one chunk left");
        FoldStep memory f;
        f.loState = c.acc[part];
        f.hiState = c.acc[part + 1];
        f.inputs = new Opening[](part == 0 ? 3 : 2);
        f.inputs[0] = _smOpening(c);
        for (uint256 u = part * 2; u < (part == 0 ? 2 : 3); ++u) {
            f.inputs[1 + u - part * 2] =
                Opening(uint64(7), c.t.outs[7], _stateProof(c.t, 10, 7), c.v[u], _proof(c.vLeaves, 3, 2 * u));
        }
        vm.prank(worker);
        game.proveFold(id, f);
    }

    function test_foldCatchesAWrongPvRow() public {
        (uint256 id,) = _playFold(true, 1);
        DisputeGame.Game memory g = game.getGame(id);
        assertTrue(g.challengerWon && g.reason == DisputeGame.Reason.Fraud, "fraud in the last chunk");
        assertEq(bridge.account(worker).stake, 5 ether, "heavy slash");
    }

    function test_foldProvesAnHonestPvRow() public {
        for (uint256 part = 0; part < 2; ++part) {
            if (part != 0) _fresh(4);
            (uint256 id,) = _playFold(false, part);
            DisputeGame.Game memory g = game.getGame(id);
            assertTrue(!g.challengerWon && g.reason == DisputeGame.Reason.Proven, "every chunk proves");
        }
    }

    function test_foldGuards() public {
        PvCase memory c = _pvCase(true);
        PvCase memory other = _pvCase(false);
        (uint256 batchId, Receipt memory r) = _post(c.t);
        uint256 id = _open(batchId, r);
        _bisect(id, c.t, other.t);
        bytes32 hi = game.getGame(id).hiRoot;
        vm.prank(worker2);
        game.nameEntry(id, hi, 4, 0);
        FoldStep memory f;
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.WrongGameKind.selector, id, false));
        game.proveFold(id, f);
        RowProof memory p;
        p.outRoot = c.t.outs[10];
        p.stepProof = _stateProof(c.t, 10, 10);
        p.outRow = c.out;
        p.outRowProof = _proof(c.outLeaves, 3, 4);
        p.inputs = new Opening[](1);
        p.inputs[0] = _smOpening(c);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(FoldProver.BadState.selector, "final accumulator"));
        game.foldRow(id, p, new bytes(8));
        vm.prank(worker);
        game.foldRow(id, p, c.acc[2]);
        vm.prank(worker);
        vm.expectRevert(
            abi.encodeWithSelector(DisputeGame.WrongPhase.selector, DisputeGame.Phase.Prove, DisputeGame.Phase.Bisect)
        );
        game.proveRow(id, p);
        // Silence inside a fold is silence after the entry was named: the heavy slash.
        vm.warp(block.timestamp + CLOCK + 1);
        game.timeout(id);
        assertEq(uint256(game.getGame(id).reason), uint256(DisputeGame.Reason.ProofTimeout), "proof timeout");
    }

    function test_foldOnlyForPvSteps() public {
        RowProof memory p;
        StepContextLike memory x;
        x.skuId = keccak256("real-sku");
        x.step = 9;
        vm.expectRevert(abi.encodeWithSelector(FoldProver.WrongStepKind.selector, 9));
        folder.start(_ctx(x), p, "");
    }

    struct StepContextLike {
        bytes32 skuId;
        uint64 step;
    }

    function _ctx(StepContextLike memory x) internal pure returns (StepContext memory c) {
        c.skuId = x.skuId;
        c.step = x.step;
        c.stepCount = 23;
    }

    // ------------------------------------------------------------------ forged absences (#9, attack 1)

    /// @dev The forgeries a cheater could send to "prove" row `row` of the tree `root` absent by
    /// passing an inner node off as a leaf: the old layout [root] (the root as the leaf of a
    /// depth-0 tree) and the new layout with the root's own preimage (0x01 ‖ left ‖ right).
    function _forgeries(bytes32 root, bytes32 l, bytes32 r) internal pure returns (bytes32[][] memory f) {
        f = new bytes32[][](2);
        f[0] = new bytes32[](1);
        f[0][0] = root;
        f[1] = new bytes32[](4);
        f[1][0] = bytes32(uint256(65) << 64);
        bytes memory pre = abi.encodePacked(bytes1(0x01), l, r, new bytes(31));
        for (uint256 i = 0; i < 3; ++i) {
            bytes32 w;
            assembly {
                w := mload(add(add(pre, 32), mul(i, 32)))
            }
            f[1][1 + i] = w;
        }
    }

    /// @dev After every forgery reverts, the cheater's clock runs out: it loses as for fraud.
    function _expectProofTimeout(uint256 id) internal {
        vm.warp(block.timestamp + CLOCK + 1);
        game.timeout(id);
        DisputeGame.Game memory g = game.getGame(id);
        assertTrue(g.challengerWon, "challenger won");
        assertEq(uint256(g.reason), uint256(DisputeGame.Reason.ProofTimeout), "proof timeout");
        assertEq(bridge.account(worker).stake, 5 ether, "heavy slash");
    }

    /// @dev A cheater's GEMM row 1 (and its input row 1) claimed absent: with the old openings
    /// the empty input row made an empty output row right and the cheater won.
    function test_attack1_gemmRowForgedAbsentFails() public {
        Trace memory bad = _trace(true, 1, 2);
        Trace memory good = _trace(false, 0, 0);
        (uint256 batchId, Receipt memory r) = _post(bad);
        uint256 id = _open(batchId, r);
        _bisect(id, bad, good);
        bytes32 hi = game.getGame(id).hiRoot;
        vm.prank(worker2);
        game.nameEntry(id, hi, 1, 2);
        bytes32[][] memory outF = _forgeries(bad.outs[GEMM_STEP], _leaf(bad.gemmRows[0]), _leaf(bad.gemmRows[1]));
        bytes32[][] memory inF = _forgeries(bad.outs[GEMM_STEP - 1], _leaf(inRows[0]), _leaf(inRows[1]));
        for (uint256 k = 0; k < outF.length; ++k) {
            GemmProof memory p = _gemmProof(bad, 1, 2);
            p.outRow = "";
            p.outRowProof = outF[k];
            p.inRow = "";
            p.inRowProof = inF[k];
            vm.prank(worker);
            vm.expectRevert(Openings.OutputRowMismatch.selector);
            game.proveGemm(id, p);
            // The output row honest, only the input row forged absent: still refused.
            p = _gemmProof(bad, 1, 2);
            p.inRow = "";
            p.inRowProof = inF[k];
            vm.prank(worker);
            vm.expectRevert(Openings.InputRowMismatch.selector);
            game.proveGemm(id, p);
        }
        _expectProofTimeout(id);
    }

    /// @dev A cheater's rmsnorm row 1 and its input row claimed absent (an empty first input
    /// made an empty row right).
    function test_attack1_rowOpRowForgedAbsentFails() public {
        (Trace memory def, bytes[] memory x, bytes[] memory q) = _rmsTrace(true, 1);
        (Trace memory other,,) = _rmsTrace(false, 1);
        (uint256 batchId, Receipt memory r) = _post(def);
        uint256 id = _open(batchId, r);
        _bisect(id, def, other);
        bytes32 hi = game.getGame(id).hiRoot;
        vm.prank(worker2);
        game.nameEntry(id, hi, 1, 0);
        bytes32[][] memory outF = _forgeries(def.outs[1], _leaf(q[0]), _leaf(q[1]));
        bytes32[][] memory inF = _forgeries(def.outs[0], _leaf(x[0]), _leaf(x[1]));
        for (uint256 k = 0; k < outF.length; ++k) {
            RowProof memory p = _rowProof(def, x, q, 1);
            p.outRow = "";
            p.outRowProof = outF[k];
            p.inputs[0].row = "";
            p.inputs[0].rowProof = inF[k];
            vm.prank(worker);
            vm.expectRevert(Openings.OutputRowMismatch.selector);
            game.proveRow(id, p);
            p = _rowProof(def, x, q, 1);
            p.inputs[0].row = "";
            p.inputs[0].rowProof = inF[k];
            vm.prank(worker);
            vm.expectRevert(Openings.InputRowMismatch.selector);
            game.proveRow(id, p);
        }
        _expectProofTimeout(id);
    }

    /// @dev Two prompts; completion 1 is wrong. The cheater claimed completion 1 and prompt 1
    /// absent (an absent prompt made an absent completion right).
    function test_attack1_outputForgedAbsentFails() public {
        bytes memory prompt = abi.encodePacked(uint8(1), uint32(5), uint32(6));
        bytes memory good = abi.encodePacked(uint32(7));
        bytes memory bad = abi.encodePacked(uint32(8));
        Trace memory t;
        t.outs = new bytes32[](STEPS);
        for (uint256 i = 0; i < STEPS; ++i) {
            t.outs[i] = keccak256(abi.encode("step", i));
        }
        bytes32 inputRoot = _node(_leaf(prompt), _leaf(prompt));
        bytes32 outputRoot = _node(_leaf(good), _leaf(bad));
        (uint256 batchId, Receipt memory r) = _postRoots(t, inputRoot, outputRoot);
        vm.deal(worker2, BOND);
        vm.prank(worker2);
        uint256 id = game.openOutput{value: BOND}(batchId, r, 0, new bytes32[](0), 1, 0);
        bytes32[][] memory compF = _forgeries(outputRoot, _leaf(good), _leaf(bad));
        bytes32[][] memory promptF = _forgeries(inputRoot, _leaf(prompt), _leaf(prompt));
        for (uint256 k = 0; k < compF.length; ++k) {
            OutputProof memory p;
            p.completionProof = compF[k];
            p.promptProof = promptF[k];
            vm.prank(worker);
            vm.expectRevert(Openings.CompletionMismatch.selector);
            game.proveOutput(id, p);
        }
        _expectProofTimeout(id);
    }

    // ------------------------------------------------------------------ many games (#9, attack 2)

    address internal puppet = address(0x9099E7);
    address internal honest2 = address(0x40E57);

    /// @dev Plays game `id` of challenger `who` to the GEMM step, names (row, col) and has the
    /// defender answer with its (cheating) trace's opening.
    function _playGemm(uint256 id, address who, uint256 row, uint256 col) internal {
        _nameGemm(id, who, row, col);
        vm.prank(worker);
        game.proveGemm(id, _gemmProof(_trace(true, 1, 2), row, col));
    }

    function _nameGemm(uint256 id, address who, uint256 row, uint256 col) internal {
        _bisectAs(id, _trace(true, 1, 2), _trace(false, 0, 0), who);
        bytes32 hi = game.getGame(id).hiRoot;
        uint256 mb = _fund(who);
        vm.prank(who);
        game.nameEntry{value: mb}(id, hi, uint32(row), uint32(col));
    }

    /// @dev Gives `who` one move bond more and returns it.
    function _fund(address who) internal returns (uint256 mb) {
        mb = game.moveBond();
        vm.deal(who, who.balance + mb);
    }

    /// @dev The worker's puppet challenges first and names an entry the cheat got right: the
    /// worker proves it and wins that game. An honest challenger's own game still proves the
    /// fraud and slashes; the batch refunds the buyer once both games are over.
    function test_attack2_puppetLosesHonestChallengerStillWins() public {
        (uint256 batchId, Receipt memory r) = _post(_trace(true, 1, 2));
        uint256 pid = _openAs(batchId, r, puppet);
        uint256 hid = _open(batchId, r);
        _playGemm(pid, puppet, 0, 0);
        DisputeGame.Game memory g = game.getGame(pid);
        assertTrue(!g.challengerWon && g.reason == DisputeGame.Reason.Proven, "puppet lost");
        assertEq(bridge.account(worker).stake, 10 ether, "a lost game slashes nobody");
        _playGemm(hid, worker2, 1, 2);
        g = game.getGame(hid);
        assertTrue(g.challengerWon && g.reason == DisputeGame.Reason.Fraud, "honest challenger won");
        assertEq(bridge.account(worker).stake, 5 ether, "slashed");
        assertEq(bridge.rewardOwed(worker2), 2.5 ether, "honest challenger paid");
        assertEq(bridge.rewardOwed(puppet), 0, "puppet paid nothing");
        vm.warp(block.timestamp + WINDOW);
        Receipt[] memory rs = new Receipt[](1);
        rs[0] = r;
        inbox.finalizeBatch(batchId, rs);
        assertEq(bridge.escrow(buyer).balance, 50 ether, "refunded");
    }

    /// @dev The puppet opens and stalls: finalization waits for its game, which cannot stop an
    /// honest challenger's; a third game proving the same fraud slashes and strikes nothing more;
    /// once the fraud is proven no further game can be opened.
    function test_attack2_puppetStallsHonestChallengerStillWins() public {
        (uint256 batchId, Receipt memory r) = _post(_trace(true, 1, 2));
        uint256 pid = _openAs(batchId, r, puppet);
        uint256 hid = _open(batchId, r);
        uint256 tid = _openAs(batchId, r, honest2);
        _playGemm(hid, worker2, 1, 2);
        assertTrue(game.getGame(hid).challengerWon, "honest challenger won");
        _playGemm(tid, honest2, 1, 2);
        assertTrue(game.getGame(tid).challengerWon, "third game won too");
        StakeBridge.Account memory a = bridge.account(worker);
        assertEq(a.stake, 5 ether, "slashed once");
        assertEq(a.strikes, 1, "struck once");
        assertEq(bridge.rewardOwed(honest2), 0, "nothing left to pay");
        assertEq(game.owed(honest2), BOND, "its bond back");
        vm.deal(address(0xBEEF), BOND);
        vm.prank(address(0xBEEF));
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.AlreadySlashed.selector, batchId, keccak256(abi.encode(r))));
        game.open{value: BOND}(batchId, r, 0, new bytes32[](0));
        // The puppet's game is still open (the defender must move): finalization waits for it.
        vm.warp(block.timestamp + WINDOW);
        Receipt[] memory rs = new Receipt[](1);
        rs[0] = r;
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.DisputesOpen.selector, batchId, 1));
        inbox.finalizeBatch(batchId, rs);
        vm.warp(block.timestamp + CLOCK + 1);
        game.timeout(pid);
        inbox.finalizeBatch(batchId, rs);
        assertEq(bridge.escrow(buyer).balance, 50 ether, "refunded");
        assertEq(bridge.account(worker).stake, 5 ether, "the puppet's win slashes nothing more");
    }

    /// @dev The worker lets its puppet win a light verdict first (a bisection timeout, 10 %):
    /// the honest challenger's fraud proof still takes the full 50 % in all, and its reward is
    /// half of what its game took.
    function test_attack2_lightPuppetVerdictCapsNothing() public {
        (uint256 batchId, Receipt memory r) = _post(_trace(true, 1, 2));
        uint256 t0 = block.timestamp;
        uint256 pid = _openAs(batchId, r, puppet);
        uint256 hid = _open(batchId, r);
        _nameGemm(hid, worker2, 1, 2);
        vm.warp(t0 + CLOCK + 1);
        game.timeout(pid);
        assertEq(uint256(game.getGame(pid).reason), uint256(DisputeGame.Reason.DefenderTimeout), "light");
        assertEq(bridge.account(worker).stake, 9 ether, "10 % taken");
        assertEq(bridge.account(worker).strikes, 1, "struck");
        vm.prank(worker);
        game.proveGemm(hid, _gemmProof(_trace(true, 1, 2), 1, 2));
        assertTrue(game.getGame(hid).challengerWon, "fraud proven");
        uint256 stake = bridge.account(worker).stake;
        assertLe(stake, 5 ether + 1e15, "about half in all");
        assertLe(5 ether - 1e15, stake, "no more than half");
        assertEq(bridge.account(worker).strikes, 1, "struck once");
        assertEq(bridge.rewardOwed(worker2), (9 ether - stake) / 2, "half of the rest");
    }

    // ------------------------------------------------------------------ move bonds, clock extension (#9, attack 10)

    uint256 internal constant MOVE_BOND = 0.01 ether;

    function _freshBonded(uint64 extension) internal {
        moveBondParam = MOVE_BOND;
        extensionParam = extension;
        _fresh(4);
    }

    /// @dev Every non-final move carries the bond; the winner (here the honest challenger, whose
    /// opponent cheated) collects both sides' bonds: the cheater pays for the honest moves.
    function test_moveBondsPayTheWinner() public {
        _freshBonded(0);
        (uint256 batchId, Receipt memory r) = _post(_trace(true, 1, 2));
        uint256 id = _open(batchId, r);
        uint256 roots = game.bisectionPoints(id).length;
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.WrongMoveBond.selector, 0, MOVE_BOND));
        game.bisect(id, r.traceRoot, new bytes32[](roots));
        vm.deal(worker, 1 ether);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.WrongMoveBond.selector, 2 * MOVE_BOND, MOVE_BOND));
        game.bisect{value: 2 * MOVE_BOND}(id, r.traceRoot, new bytes32[](roots));
        _playGemm(id, worker2, 1, 2);
        DisputeGame.Game memory g = game.getGame(id);
        assertTrue(g.challengerWon, "challenger won");
        assertEq(g.moveBonds, 0, "pot emptied");
        // 2 bisect + 2 choose + 1 nameEntry bonds, all to the challenger, with its opening bond.
        assertEq(game.owed(worker2), BOND + 5 * MOVE_BOND, "winner takes the pot");
        assertEq(game.owed(worker), 0, "loser gets nothing back");
    }

    /// @dev The honest defender against a false challenge collects the challenger's move bonds
    /// and its share of the opening bond; the game holds exactly what it owes.
    function test_moveBondsPayAnHonestDefender() public {
        _freshBonded(0);
        Trace memory good = _trace(false, 0, 0);
        (uint256 batchId, Receipt memory r) = _post(good);
        uint256 id = _open(batchId, r);
        _bisectAs(id, good, _trace(true, 1, 2), worker2);
        bytes32 hi = game.getGame(id).hiRoot;
        uint256 mb = _fund(worker2);
        vm.prank(worker2);
        game.nameEntry{value: mb}(id, hi, 1, 2);
        vm.prank(worker);
        game.proveGemm(id, _gemmProof(good, 1, 2));
        assertTrue(!game.getGame(id).challengerWon, "defender won");
        assertEq(game.owed(worker), BOND / 2 + 5 * MOVE_BOND, "bond share and every move bond");
        assertEq(address(game).balance, game.owed(worker) + game.burnedBonds(), "all wei accounted for");
    }

    /// @dev A move that leaves its side less than the extension is topped up to it, at most
    /// MAX_EXTENSIONS times; maxDuration counts every extension.
    function test_lateMoveExtendsTheClock() public {
        _freshBonded(3 hours);
        assertEq(game.maxDuration(), 2 * (CLOCK + 8 * 3 hours), "duration bound");
        (uint256 batchId, Receipt memory r) = _post(_trace(true, 1, 2));
        uint256 id = _open(batchId, r);
        uint256 roots = game.bisectionPoints(id).length;
        vm.warp(block.timestamp + CLOCK - 10 minutes);
        vm.deal(worker, 1 ether);
        vm.prank(worker);
        vm.expectEmit();
        emit DisputeGame.ClockExtended(id, true, 3 hours);
        game.bisect{value: MOVE_BOND}(id, r.traceRoot, new bytes32[](roots));
        DisputeGame.Game memory g = game.getGame(id);
        assertEq(g.defenderClock, 3 hours, "topped up");
        (uint8 dExt, uint8 cExt) = game.extensions(id);
        assertTrue(dExt == 1 && cExt == 0, "one extension used");
        assertEq(g.challengerClock, CLOCK, "the other side untouched");
        // An early move is not extended.
        bytes32[] memory rs = new bytes32[](roots);
        vm.deal(worker2, 1 ether);
        vm.prank(worker2);
        game.choose{value: MOVE_BOND}(id, rs, 0, g.loRoot, bytes32(0));
        (, cExt) = game.extensions(id);
        assertEq(cExt, 0, "no extension");
        // The extended defender may use all of its extension, not more.
        vm.warp(block.timestamp + 3 hours + 1);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(DisputeGame.ClockExpired.selector, 3 hours + 1, 3 hours));
        game.bisect{value: MOVE_BOND}(id, bytes32(0), new bytes32[](roots));
        game.timeout(id);
        assertTrue(game.getGame(id).challengerWon, "defender ran out");
    }

    function test_badParamsRevert() public {
        DisputeGame.Params memory p = DisputeGame.Params(4, CLOCK, CLOCK + 1, BOND, 0, 5000, 1000, 5000);
        vm.expectRevert(DisputeGame.BadConfig.selector);
        new DisputeGame(IBridgeGame(address(bridge)), IInboxGame(address(inbox)), skus, prover, folder, p);
        p.clockExtension = 0;
        p.arity = 1;
        vm.expectRevert(DisputeGame.BadConfig.selector);
        new DisputeGame(IBridgeGame(address(bridge)), IInboxGame(address(inbox)), skus, prover, folder, p);
    }
}
