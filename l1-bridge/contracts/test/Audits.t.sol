// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Fixture} from "./Fixture.sol";
import {Receipt, SignedJob} from "../src/Types.sol";
import {Audits} from "../src/Audits.sol";
import {Rewards} from "../src/Rewards.sol";
import {IInboxAudits, IBridgeAudits, IGameAudits} from "../src/interfaces/IAudits.sol";

/// @dev `AuditParams::for_window` of the Rust side, with a 10-minute report period.
function productionParams() pure returns (Audits.Params memory p) {
    p.seedDelay = 2;
    p.seedGrace = 256;
    p.verifyPeriod = 10 minutes;
    p.maxDraws = 3;
    p.baseBps = 1000;
    p.newBps = 10_000;
    p.veteranBps = 300;
    p.newPasses = 32;
    p.veteranPasses = 1024;
    p.verifierFeeBps = 500;
    p.missSlashBps = 100;
    p.lazySlashBps = 5000;
    p.falseSlashBps = 1000;
    p.keeperRewardBps = 5000;
}

/// @dev The full settlement set with the audit protocol; this contract plays the dispute game
/// (it opens and closes disputes on the inbox and answers `gameFacts`).
contract AuditsTest is Fixture {
    Audits internal audits;
    address internal v1 = address(0x7E1);
    address internal v2 = address(0x7E2);
    address internal v3 = address(0x7E3);
    SignedJob[] internal noJobs;
    mapping(uint256 => address) internal gameChallenger;
    mapping(uint256 => uint256) internal gameBatch;
    mapping(uint256 => bytes32) internal gameReceipt;
    uint256 internal games;
    uint64 internal nonce = 100;

    function setUp() public override {
        super.setUp();
        audits = new Audits(
            owner, IInboxAudits(address(inbox)), IBridgeAudits(address(bridge)), IGameAudits(address(this)), _params()
        );
        vm.startPrank(owner);
        inbox.setGame(address(this));
        inbox.setAudits(address(audits));
        bridge.registerGame(address(audits));
        vm.stopPrank();
        _stakeVerifier(v1, 1 ether);
        vm.roll(100);
    }

    /// @dev The production rates with an established worker at 50 % (so that both a drawn and
    /// a skipped receipt are easy to find) and a larger verifier cut.
    function _params() internal pure returns (Audits.Params memory p) {
        p = productionParams();
        p.seedGrace = 10;
        p.baseBps = 5000;
        p.veteranBps = 1000;
        p.newPasses = 0;
        p.veteranPasses = 100;
        p.verifierFeeBps = 1000;
    }

    // ---------------------------------------------------------------- the game's side

    function maxDuration() external pure returns (uint256) {
        return 1 hours;
    }

    function gameFacts(uint256 gameId) external view returns (address, uint256, bytes32) {
        return (gameChallenger[gameId], gameBatch[gameId], gameReceipt[gameId]);
    }

    function _openGame(address challenger, uint256 batchId, Receipt memory r) internal returns (uint256 id) {
        id = games++;
        gameChallenger[id] = challenger;
        gameBatch[id] = batchId;
        gameReceipt[id] = keccak256(abi.encode(r));
        inbox.onDisputeOpened(batchId);
    }

    // ---------------------------------------------------------------- helpers

    function _stakeVerifier(address who, uint256 amount) internal {
        vm.deal(who, amount);
        vm.startPrank(who);
        bridge.depositStake{value: amount}(bridge.ROLE_VERIFIER());
        audits.joinSku(SKU);
        vm.stopPrank();
    }

    /// @dev Posts a batch of `n` receipts of one new job by `worker`, 1000 tokens each.
    function _postN(uint256 n) internal returns (uint256 batchId, Receipt[] memory rs) {
        SignedJob[] memory js = new SignedJob[](1);
        js[0] = _job(nonce++, 100 ether);
        bytes32 jobId = inbox.jobDigest(js[0].request);
        rs = new Receipt[](n);
        bytes[] memory sigs = new bytes[](n);
        for (uint256 i = 0; i < n; ++i) {
            rs[i] = _receipt(jobId, worker, uint32(i), 1000, keccak256(abi.encode("trace", i)));
            sigs[i] = _signReceipt(rs[i], workerKey);
        }
        vm.prank(sequencer);
        batchId = inbox.postBatch(js, rs, sigs);
    }

    function _seedAndDraw(uint256 batchId, Receipt[] memory rs) internal {
        vm.roll(block.number + 2);
        audits.fixSeed(batchId);
        audits.drawBatch(batchId, rs);
    }

    /// @dev The first receipt index whose draw at `bps` is `audited`.
    function _find(uint256 batchId, uint256 n, bool audited) internal view returns (uint256) {
        (bytes32 seed,,) = audits.seeds(batchId);
        for (uint256 i = 0; i < n; ++i) {
            if (audits.drawn(seed, i, 5000) == audited) return i;
        }
        revert("no such receipt");
    }

    function _finalize(uint256 batchId, Receipt[] memory rs) internal {
        vm.warp(block.timestamp + WINDOW);
        inbox.finalizeBatch(batchId, rs);
    }

    uint64[] internal noSteps;

    /// @dev Posts one receipt and fixes a seed under which it is audited.
    function _postAudited() internal returns (uint256 id, Receipt[] memory rs) {
        (id, rs) = _postN(1);
        vm.roll(block.number + 2);
        bytes32 root = inbox.getBatch(id).receiptsRoot;
        for (uint256 r = 0;; ++r) {
            if (audits.drawn(keccak256(abi.encode(audits.SEED_TAG(), bytes32(r), id, root)), 0, 5000)) {
                vm.prevrandao(bytes32(r));
                break;
            }
        }
        audits.fixSeed(id);
        audits.drawBatch(id, rs);
    }

    // ---------------------------------------------------------------- seed

    function test_seedFixedOnlyAfterTargetAndOnce() public {
        (uint256 id,) = _postN(1);
        uint256 target = audits.seedTarget(id);
        assertEq(target, block.number + 2, "target two blocks after posting");
        vm.expectRevert(abi.encodeWithSelector(Audits.SeedNotDue.selector, id, target));
        audits.fixSeed(id);
        vm.roll(target);
        vm.prevrandao(bytes32(uint256(7)));
        bytes32 seed = audits.fixSeed(id);
        (bytes32 stored,, bool late) = audits.seeds(id);
        assertEq(stored, seed, "stored");
        assertTrue(!late, "on time");
        vm.expectRevert(abi.encodeWithSelector(Audits.SeedAlreadyFixed.selector, id));
        audits.fixSeed(id);
    }

    function test_seedChangesBetweenBatches() public {
        (uint256 a,) = _postN(1);
        (uint256 b,) = _postN(1);
        vm.roll(block.number + 2);
        vm.prevrandao(bytes32(uint256(7)));
        bytes32 sa = audits.fixSeed(a);
        bytes32 sb = audits.fixSeed(b);
        assertTrue(sa != sb, "same RANDAO, different batches");
        (uint256 c,) = _postN(1);
        vm.roll(block.number + 2);
        vm.prevrandao(bytes32(uint256(8)));
        assertTrue(audits.fixSeed(c) != sb, "another RANDAO");
    }

    function test_lateSeedAuditsEveryReceiptFully() public {
        (uint256 id, Receipt[] memory rs) = _postN(8);
        vm.roll(block.number + 2 + 11);
        audits.fixSeed(id);
        (,, bool late) = audits.seeds(id);
        assertTrue(late, "late");
        audits.drawBatch(id, rs);
        for (uint256 i = 0; i < 8; ++i) {
            Audits.Audit memory a = audits.auditOf(id, i);
            assertTrue(a.status == Audits.Status.Assigned, "every receipt audited");
            assertTrue(a.depth == Audits.Depth.All, "fully");
            assertEq(a.rateBps, 10_000, "at probability one");
        }
    }

    // ---------------------------------------------------------------- draws

    function test_drawNeedsSeedAndWholeBatch() public {
        (uint256 id, Receipt[] memory rs) = _postN(3);
        vm.expectRevert(abi.encodeWithSelector(Audits.SeedNotFixed.selector, id));
        audits.drawBatch(id, rs);
        vm.roll(block.number + 2);
        audits.fixSeed(id);
        rs[1].tokensProcessed += 1;
        vm.expectRevert(abi.encodeWithSelector(Audits.ReceiptsMismatch.selector, id));
        audits.drawBatch(id, rs);
    }

    function testFuzz_drawIsThePublicFunction(bytes32 randao, uint8 n) public {
        n = uint8(bound(n, 1, 16));
        (uint256 id, Receipt[] memory rs) = _postN(n);
        vm.roll(block.number + 2);
        vm.prevrandao(randao);
        bytes32 seed = audits.fixSeed(id);
        audits.drawBatch(id, rs);
        for (uint256 i = 0; i < n; ++i) {
            Audits.Audit memory a = audits.auditOf(id, i);
            bool audited = audits.drawn(seed, i, 5000);
            assertTrue(audited == (a.status == Audits.Status.Assigned), "recorded = recomputed");
            assertEq(audits.auditSeed(id, i), keccak256(abi.encode(seed, i)), "audit seed");
            if (audited) assertEq(a.verifier, v1, "the only verifier");
        }
    }

    function test_verifiersDrawnInProportionToStake() public {
        _stakeVerifier(v2, 2 ether);
        _stakeVerifier(v3, 5 ether);
        uint256[3] memory hits;
        uint256 draws = 4000;
        for (uint256 i = 0; i < draws; ++i) {
            address v = audits.pickVerifier(SKU, worker, address(0), keccak256(abi.encode(i)), 0);
            if (v == v1) hits[0]++;
            else if (v == v2) hits[1]++;
            else if (v == v3) hits[2]++;
        }
        // Expected 500, 1000, 2500 of 4000 (stakes 1:2:5); 5 standard deviations of slack.
        _near(hits[0], 500, 105, "v1");
        _near(hits[1], 1000, 140, "v2");
        _near(hits[2], 2500, 160, "v3");
    }

    function _near(uint256 got, uint256 want, uint256 tol, string memory what) internal pure {
        assertLe(got, want + tol, what);
        assertLe(want, got + tol, what);
    }

    function test_workerIsNeverItsOwnVerifier() public {
        // worker also holds the verifier role (Fixture) and joins the SKU's verifiers.
        vm.prank(worker);
        audits.joinSku(SKU);
        for (uint256 i = 0; i < 200; ++i) {
            address v = audits.pickVerifier(SKU, worker, address(0), keccak256(abi.encode(i)), 0);
            assertTrue(v != worker, "never its own");
        }
        vm.prank(v1);
        audits.leaveSku(SKU);
        assertEq(audits.pickVerifier(SKU, worker, address(0), bytes32(0), 0), address(0), "none left");
    }

    function test_joinNeedsVerifierStake() public {
        address nobody = address(0xDEAD);
        vm.prank(nobody);
        vm.expectRevert(abi.encodeWithSelector(Audits.NotAVerifier.selector, nobody));
        audits.joinSku(SKU);
        vm.prank(v1);
        vm.expectRevert(abi.encodeWithSelector(Audits.AlreadyJoined.selector, v1, SKU));
        audits.joinSku(SKU);
    }

    function test_rateFollowsTheWorkersRecord() public {
        (uint16 bps, Audits.Depth d) = audits.rateOf(worker);
        assertEq(bps, 5000, "established");
        assertTrue(d == Audits.Depth.Mlp, "mlp");
        // A proven fraud makes every later receipt of the worker audited, fully.
        (uint256 id, Receipt[] memory rs) = _postN(1);
        _seedAndDraw(id, rs);
        uint256 g = _openGame(address(0xC0FFEE), id, rs[0]);
        inbox.onDisputeClosed(id, gameReceipt[g], true);
        _finalize(id, rs);
        (bps, d) = audits.rateOf(worker);
        assertEq(bps, 10_000, "failing worker");
        assertTrue(d == Audits.Depth.All, "all");
    }

    // ---------------------------------------------------------------- reports and pay

    function test_passPaysWorkerAndVerifierAtInverseProbability() public {
        (uint256 id, Receipt[] memory rs) = _postN(8);
        _seedAndDraw(id, rs);
        uint256 i = _find(id, 8, true);
        vm.prank(v1);
        audits.postVerification(id, i, true, 0, noSteps);
        (uint32 passes,) = audits.records(worker);
        assertEq(passes, 1, "record");
        _finalize(id, rs);
        uint256 fee = 1000 * PRICE;
        // Rate 50%: weight 2 × fee, 10% of it to the verifier.
        assertEq(rewards.feeWeight(0, worker), 2 * fee * 9 / 10, "worker weight");
        assertEq(rewards.feeWeight(0, v1), 2 * fee / 10, "verifier weight");
        assertEq(rewards.credits(0, worker), 2000, "verified tokens / probability");
        assertEq(rewards.feesOf(0), 8 * fee, "every valid receipt's fee in the pot");
        vm.warp(block.timestamp + EPOCH);
        uint256 before = worker.balance + v1.balance;
        vm.prank(worker);
        rewards.claim(0);
        vm.prank(v1);
        rewards.claim(0);
        assertEq(worker.balance + v1.balance - before, 8 * fee, "the pot split between the two");
    }

    function test_unauditedEarnsNothingAndFeesRollOver() public {
        (uint256 id, Receipt[] memory rs) = _postN(1);
        vm.roll(block.number + 2);
        // Find a RANDAO value under which receipt 0 is not drawn.
        for (uint256 r = 0;; ++r) {
            vm.prevrandao(bytes32(r));
            bytes32 seed = keccak256(abi.encode(audits.SEED_TAG(), bytes32(r), id, inbox.getBatch(id).receiptsRoot));
            if (!audits.drawn(seed, 0, 5000)) break;
        }
        audits.fixSeed(id);
        audits.drawBatch(id, rs);
        assertTrue(audits.auditOf(id, 0).status == Audits.Status.Skipped, "skipped");
        _finalize(id, rs);
        assertEq(rewards.feeWeight(0, worker), 0, "no weight");
        vm.warp(block.timestamp + EPOCH);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(Rewards.NoCredits.selector, 0, worker));
        rewards.claim(0);
        rewards.rollover(0);
        assertEq(rewards.feesOf(1), 1000 * PRICE, "fees carried into the next epoch");
        vm.expectRevert(abi.encodeWithSelector(Rewards.NothingToRoll.selector, 0));
        rewards.rollover(0);
    }

    function test_onlyTheAssignedVerifierReportsInTime() public {
        (uint256 id, Receipt[] memory rs) = _postN(8);
        _seedAndDraw(id, rs);
        uint256 i = _find(id, 8, true);
        uint256 skipped = _find(id, 8, false);
        vm.prank(v2);
        vm.expectRevert(abi.encodeWithSelector(Audits.NotTheVerifier.selector, v2, v1));
        audits.postVerification(id, i, true, 0, noSteps);
        vm.prank(v1);
        vm.expectRevert(abi.encodeWithSelector(Audits.NotAssigned.selector, id, skipped));
        audits.postVerification(id, skipped, true, 0, noSteps);
        uint256 deadline = audits.auditOf(id, i).deadline;
        vm.warp(deadline + 1);
        vm.prank(v1);
        vm.expectRevert(abi.encodeWithSelector(Audits.DeadlinePassed.selector, id, i, deadline));
        audits.postVerification(id, i, true, 0, noSteps);
    }

    function test_missedDeadlineSlashesAndRedraws() public {
        _stakeVerifier(v2, 1 ether);
        (uint256 id, Receipt[] memory rs) = _postN(8);
        _seedAndDraw(id, rs);
        uint256 i = _find(id, 8, true);
        Audits.Audit memory a = audits.auditOf(id, i);
        vm.expectRevert(abi.encodeWithSelector(Audits.DeadlineNotPassed.selector, id, i, a.deadline));
        audits.expire(id, i);
        vm.warp(a.deadline + 1);
        address keeper = address(0xBEEF);
        uint256 stakeBefore = bridge.account(a.verifier).stake;
        vm.prank(keeper);
        audits.expire(id, i);
        assertEq(bridge.account(a.verifier).stake, stakeBefore * 99 / 100, "1% slashed");
        assertEq(bridge.rewardOwed(keeper), stakeBefore / 100 / 2, "keeper paid half");
        Audits.Audit memory b = audits.auditOf(id, i);
        assertTrue(b.status == Audits.Status.Assigned, "redrawn");
        assertTrue(b.verifier != a.verifier, "another verifier");
        assertEq(b.draws, 2, "second draw");
        // The second misses too; the third draw has nobody left but the first, who is excluded
        // only once: it is drawn again, and the fourth would exceed maxDraws.
        vm.warp(b.deadline + 1);
        audits.expire(id, i);
        Audits.Audit memory c = audits.auditOf(id, i);
        assertEq(c.draws, 3, "third draw");
        vm.warp(c.deadline + 1);
        audits.expire(id, i);
        assertTrue(audits.auditOf(id, i).status == Audits.Status.Void, "void after maxDraws");
        _finalize(id, rs);
        assertEq(rewards.feeWeight(0, worker) % 1, 0, "finalization not blocked");
    }

    function test_failNeedsTheVerifiersOwnDispute() public {
        (uint256 id, Receipt[] memory rs) = _postN(8);
        _seedAndDraw(id, rs);
        uint256 i = _find(id, 8, true);
        uint256 other = _openGame(address(0xC0FFEE), id, rs[i]);
        vm.prank(v1);
        vm.expectRevert(abi.encodeWithSelector(Audits.NotYourDispute.selector, other));
        audits.postVerification(id, i, false, other, noSteps);
        uint256 mine = _openGame(v1, id, rs[(i + 1) % 8]);
        vm.prank(v1);
        vm.expectRevert(abi.encodeWithSelector(Audits.NotYourDispute.selector, mine));
        audits.postVerification(id, i, false, mine, noSteps);
    }

    function test_failProvenPaysNothingAndSlashesNoVerifier() public {
        (uint256 id, Receipt[] memory rs) = _postAudited();
        uint256 i = 0;
        uint256 g = _openGame(v1, id, rs[i]);
        vm.prank(v1);
        audits.postVerification(id, i, false, g, noSteps);
        inbox.onDisputeClosed(id, gameReceipt[g], true);
        uint256 stake = bridge.account(v1).stake;
        _finalize(id, rs);
        assertEq(bridge.account(v1).stake, stake, "the verifier was right");
        assertEq(rewards.feeWeight(0, worker), 0, "no weight for a fraud");
        (, uint32 fails) = audits.records(worker);
        assertEq(fails, 1, "fail recorded");
    }

    function test_falseReportIsSlashedAndTheWorkerPaid() public {
        (uint256 id, Receipt[] memory rs) = _postAudited();
        uint256 i = 0;
        uint256 g = _openGame(v1, id, rs[i]);
        vm.prank(v1);
        audits.postVerification(id, i, false, g, noSteps);
        inbox.onDisputeClosed(id, gameReceipt[g], false); // the worker defended its receipt
        uint256 stake = bridge.account(v1).stake;
        _finalize(id, rs);
        assertEq(bridge.account(v1).stake, stake * 9 / 10, "10% slashed");
        assertEq(rewards.feeWeight(0, worker), 2 * 1000 * PRICE, "the worker keeps the whole weight");
        assertEq(rewards.feeWeight(0, v1), 0, "nothing for a false report");
    }

    function test_lazyPassSlashedWhenSomeoneElseProvesFraud() public {
        (uint256 id, Receipt[] memory rs) = _postAudited();
        uint256 i = 0;
        vm.prank(v1);
        audits.postVerification(id, i, true, 0, noSteps);
        uint256 g = _openGame(address(0xC0FFEE), id, rs[i]);
        inbox.onDisputeClosed(id, gameReceipt[g], true);
        uint256 stake = bridge.account(v1).stake;
        _finalize(id, rs);
        assertEq(bridge.account(v1).stake, stake / 2, "50% slashed for passing a fraud");
        assertEq(rewards.feeWeight(0, v1), 0, "and not paid for it");
    }

    function test_finalizationNeverWaitsOnAudits() public {
        // No seed at all: receipts settle void.
        (uint256 a, Receipt[] memory ra) = _postN(2);
        _finalize(a, ra);
        assertTrue(audits.auditOf(a, 0).status == Audits.Status.Void, "void without a seed");
        // Seed but nobody drew: void, nobody slashed (nobody was assigned).
        (uint256 b, Receipt[] memory rb) = _postN(8);
        vm.roll(block.number + 2);
        audits.fixSeed(b);
        uint256 stake = bridge.account(v1).stake;
        _finalize(b, rb);
        Audits.Audit memory x = audits.auditOf(b, _find(b, 8, true));
        assertTrue(x.status == Audits.Status.Void, "void");
        assertEq(bridge.account(v1).stake, stake, "nobody was assigned");
        // Drawn and assigned but never reported: void at settlement, and the miss is still
        // slashed afterwards by whoever expires it.
        (uint256 c, Receipt[] memory rc) = _postN(8);
        _seedAndDraw(c, rc);
        uint256 i = _find(c, 8, true);
        _finalize(c, rc);
        assertTrue(audits.auditOf(c, i).status == Audits.Status.Missed, "missed");
        stake = bridge.account(v1).stake;
        audits.expire(c, i);
        assertEq(bridge.account(v1).stake, stake - stake / 100, "1% for the miss");
        assertTrue(audits.auditOf(c, i).status == Audits.Status.Void, "void, no redraw");
        vm.expectRevert(abi.encodeWithSelector(Audits.NotAssigned.selector, c, i));
        audits.expire(c, i);
    }

    // ---------------------------------------------------------------- conservation

    /// @dev Whatever is drawn, reported and proven, every fee wei ends in the pot or back with
    /// the buyer, the claims never exceed the pot, and the bridge's stake identity holds.
    function testFuzz_feesAndStakeConserved(bytes32 randao, uint8 n, uint16 passMask, uint16 fraudMask) public {
        n = uint8(bound(n, 1, 12));
        _stakeVerifier(v2, 3 ether);
        (uint256 id, Receipt[] memory rs) = _postN(n);
        vm.roll(block.number + 2);
        vm.prevrandao(randao);
        audits.fixSeed(id);
        audits.drawBatch(id, rs);
        for (uint256 i = 0; i < n; ++i) {
            Audits.Audit memory a = audits.auditOf(id, i);
            if (a.status == Audits.Status.Assigned && (passMask >> i) & 1 == 1) {
                vm.prank(a.verifier);
                audits.postVerification(id, i, true, 0, noSteps);
            }
            if ((fraudMask >> i) & 1 == 1) {
                uint256 g = _openGame(address(0xC0FFEE), id, rs[i]);
                inbox.onDisputeClosed(id, gameReceipt[g], true);
            }
        }
        uint256 escrowBefore = bridge.escrow(buyer).balance;
        _finalize(id, rs);
        uint256 fraudCount;
        for (uint256 i = 0; i < n; ++i) {
            if ((fraudMask >> i) & 1 == 1) fraudCount++;
        }
        uint256 fee = 1000 * PRICE;
        assertEq(rewards.feesOf(0), (n - fraudCount) * fee, "valid fees in the pot");
        assertEq(bridge.escrow(buyer).balance - escrowBefore, fraudCount * fee, "frauds refunded");
        assertEq(bridge.heldFees(), 0, "nothing held");
        assertEq(
            bridge.totalStakeDeposited(),
            bridge.totalStaked() + bridge.totalUnbonding() + bridge.totalStakeWithdrawn() + bridge.totalSlashPaid()
                + bridge.totalBurned(),
            "stake identity"
        );
        vm.warp(block.timestamp + EPOCH);
        uint256 paid;
        address[3] memory who = [worker, v1, v2];
        for (uint256 k = 0; k < 3; ++k) {
            if (rewards.feeWeight(0, who[k]) == 0) continue;
            uint256 b = who[k].balance;
            vm.prank(who[k]);
            rewards.claim(0);
            paid += who[k].balance - b;
        }
        if (rewards.feesOf(0) == 0) {
            assertEq(fraudCount, n, "an empty pot: every receipt was a fraud");
        } else if (rewards.totalFeeWeight(0) == 0) {
            rewards.rollover(0);
            assertEq(rewards.feesOf(1), (n - fraudCount) * fee, "rolled over whole");
        } else {
            assertLe(paid, rewards.feesOf(0), "claims within the pot");
            assertLe(rewards.feesOf(0) - paid, 3, "at most one wei of rounding per claimant");
        }
    }

    // ---------------------------------------------------------------- gas

    function test_gas_drawBatch() public {
        _stakeVerifier(v2, 2 ether);
        _stakeVerifier(v3, 3 ether);
        (uint256 id, Receipt[] memory rs) = _postN(32);
        vm.roll(block.number + 2);
        audits.fixSeed(id);
        uint256 g = gasleft();
        audits.drawBatch(id, rs);
        uint256 used = g - gasleft();
        assertLe(used, 2_300_000, "32 receipts, 3 verifiers");
    }

    function test_gas_postVerification() public {
        (uint256 id, Receipt[] memory rs) = _postN(8);
        _seedAndDraw(id, rs);
        uint256 i = _find(id, 8, true);
        uint64[] memory steps = new uint64[](3);
        vm.prank(v1);
        uint256 g = gasleft();
        audits.postVerification(id, i, true, 0, steps);
        assertLe(g - gasleft(), 30_000, "one verification receipt");
    }
}

import {WorstBatch} from "./Settlement.t.sol";

/// @dev The largest batch through the audit protocol: every receipt audited (new workers), each
/// from its own worker, drawn, passed and finalized, each call within the transaction cap.
contract AuditedBigBatchTest is WorstBatch {
    Audits internal audits;
    address internal v1 = address(0x7E1);

    function setUp() public override {
        super.setUp();
        Audits.Params memory p = productionParams();
        audits =
            new Audits(owner, IInboxAudits(address(inbox)), IBridgeAudits(address(bridge)), IGameAudits(address(0)), p);
        vm.startPrank(owner);
        inbox.setAudits(address(audits));
        bridge.registerGame(address(audits));
        vm.stopPrank();
        vm.deal(v1, 1 ether);
        vm.startPrank(v1);
        bridge.depositStake{value: 1 ether}(bridge.ROLE_VERIFIER());
        audits.joinSku(SKU);
        vm.stopPrank();
        vm.roll(100);
    }

    function test_gas_auditedMaxBatchDrawsReportsAndFinalizesUnderCap() public {
        uint256 n = inbox.MAX_RECEIPTS();
        _worstBatch(n);
        vm.prank(sequencer);
        uint256 id = inbox.postBatch(jobsBuf, rsBuf, sigsBuf);
        vm.roll(block.number + 2);
        audits.fixSeed(id);
        uint256 g0 = gasleft();
        audits.drawBatch(id, rsBuf);
        uint256 draw = g0 - gasleft();
        emit log_named_uint("drawBatch gas (MAX_RECEIPTS, all audited)", draw);
        assertLe(draw, CAP, "drawBatch under the cap");
        uint64[] memory steps = new uint64[](3);
        vm.startPrank(v1);
        for (uint256 i = 0; i < n; ++i) {
            audits.postVerification(id, i, true, 0, steps);
        }
        vm.stopPrank();
        vm.warp(block.timestamp + WINDOW);
        g0 = gasleft();
        inbox.finalizeBatch(id, rsBuf);
        uint256 fin = g0 - gasleft();
        emit log_named_uint("finalizeBatch gas (MAX_RECEIPTS, all audited and passed)", fin);
        assertLe(fin, CAP, "audited finalization under the cap");
        assertEq(rewards.totalFeeWeight(0), rewards.feesOf(0), "probability one: weight = fees");
    }

    function test_gas_maxBatchWithMaxVerifiersDrawsUnderCap() public {
        vm.pauseGasMetering();
        for (uint256 i = 1; i < audits.MAX_VERIFIERS(); ++i) {
            address v = address(uint160(0x9000 + i));
            vm.deal(v, 1 ether);
            vm.startPrank(v);
            bridge.depositStake{value: 1 ether}(bridge.ROLE_VERIFIER());
            audits.joinSku(SKU);
            vm.stopPrank();
        }
        vm.resumeGasMetering();
        uint256 n = inbox.MAX_RECEIPTS();
        _worstBatch(n);
        vm.prank(sequencer);
        uint256 id = inbox.postBatch(jobsBuf, rsBuf, sigsBuf);
        vm.roll(block.number + 2);
        audits.fixSeed(id);
        uint256 g0 = gasleft();
        audits.drawBatch(id, rsBuf);
        uint256 draw = g0 - gasleft();
        (uint256 cd, uint256 floor) = _calldataGas(abi.encodeCall(Audits.drawBatch, (id, rsBuf)));
        uint256 total = draw + cd > floor ? draw + cd : floor;
        emit log_named_uint("drawBatch gas (MAX_RECEIPTS, MAX_VERIFIERS, all audited)", total);
        assertLe(total, CAP, "drawBatch under the cap with the most verifiers");
    }
}
