// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Fixture} from "./Fixture.sol";
import {Receipt, SignedJob, JobRequest} from "../src/Types.sol";
import {BatchInbox} from "../src/BatchInbox.sol";
import {SkuRegistry} from "../src/SkuRegistry.sol";
import {StakeBridge} from "../src/StakeBridge.sol";
import {Merkle} from "../src/Merkle.sol";

/// @dev Merkle helpers over receipts exactly as the inbox builds its tree.
abstract contract ReceiptTree is Fixture {
    function _leaves(Receipt[] memory rs, uint256 from, uint256 to, uint256 size)
        internal
        pure
        returns (bytes32[] memory level)
    {
        level = new bytes32[](size);
        for (uint256 i = from; i < to; ++i) {
            level[i - from] = keccak256(abi.encodePacked(bytes1(0), abi.encode(rs[i])));
        }
    }

    function _node(bytes32 l, bytes32 r) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(bytes1(0x01), l, r));
    }

    /// @dev Root of a power-of-two level (zero-padded).
    function _rootPow2(bytes32[] memory level) internal pure returns (bytes32) {
        uint256 n = level.length;
        while (n > 1) {
            for (uint256 i = 0; i < n / 2; ++i) {
                level[i] = _node(level[2 * i], level[2 * i + 1]);
            }
            n /= 2;
        }
        return level[0];
    }

    function _pow2(uint256 n) internal pure returns (uint256 p) {
        p = 1;
        while (p < n) p <<= 1;
    }

    /// @dev Siblings of the subtree [sub · 2^level, (sub+1) · 2^level) up to the root.
    function _rangeProof(Receipt[] memory rs, uint256 level, uint256 sub) internal pure returns (bytes32[] memory p) {
        uint256 total = _pow2(rs.length);
        uint256 depth = 0;
        while ((uint256(1) << depth) < total) ++depth;
        p = new bytes32[](depth - level);
        uint256 size = uint256(1) << level;
        uint256 idx = sub;
        for (uint256 k = 0; k < depth - level; ++k) {
            uint256 sib = idx ^ 1;
            uint256 from = sib * size;
            uint256 to = from + size;
            if (to > rs.length) to = rs.length;
            if (from >= rs.length) {
                p[k] = _rootPow2(new bytes32[](size));
            } else {
                p[k] = _rootPow2(_leaves(rs, from, to, size));
            }
            idx >>= 1;
            size <<= 1;
        }
    }

    function _slice(Receipt[] memory rs, uint256 from, uint256 to) internal pure returns (Receipt[] memory out) {
        if (to > rs.length) to = rs.length;
        out = new Receipt[](to - from);
        for (uint256 i = from; i < to; ++i) {
            out[i - from] = rs[i];
        }
    }
}

/// @dev Attacks 5, 7, 12 and 13 (issue 9) against the inbox, each performed and shown to fail.
contract SettlementTest is ReceiptTree {
    SignedJob[] internal noJobs;

    function setUp() public override {
        super.setUp();
        vm.prank(owner);
        inbox.setGame(address(this)); // this contract plays the dispute game
    }

    function _post1(bytes32 jobId, uint32 shard, uint64 tokens, bytes32 trace) internal returns (uint256) {
        Receipt[] memory rs = new Receipt[](1);
        rs[0] = _receipt(jobId, worker, shard, tokens, trace);
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = _signReceipt(rs[0], workerKey);
        vm.prank(sequencer);
        return inbox.postBatch(noJobs, rs, sigs);
    }

    // ---------------------------------------------------------------- attack 7: double charge

    function test_attack7_sameShardTwiceInOneBatchRefused() public {
        SignedJob[] memory js = new SignedJob[](1);
        js[0] = _job(1, 1 ether);
        bytes32 jobId = inbox.jobDigest(js[0].request);
        Receipt[] memory rs = new Receipt[](2);
        rs[0] = _receipt(jobId, worker, 0, 100, keccak256("a"));
        rs[1] = rs[0]; // the very same receipt twice
        bytes[] memory sigs = new bytes[](2);
        sigs[0] = _signReceipt(rs[0], workerKey);
        sigs[1] = sigs[0];
        vm.prank(sequencer);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.ShardAlreadyPosted.selector, jobId, uint32(0)));
        inbox.postBatch(js, rs, sigs);
        // A different receipt (other worker, other trace) for the same shard is refused too.
        rs[1] = _receipt(jobId, worker2, 0, 100, keccak256("b"));
        sigs[1] = _signReceipt(rs[1], worker2Key);
        vm.prank(sequencer);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.ShardAlreadyPosted.selector, jobId, uint32(0)));
        inbox.postBatch(js, rs, sigs);
        assertEq(bridge.escrow(buyer).balance, 50 ether, "nothing charged");
    }

    function test_attack7_sameShardInLaterBatchRefused() public {
        (, bytes32 jobId, Receipt[] memory rs) = _postSimple(1, 100, keccak256("t"));
        uint256 afterFirst = bridge.escrow(buyer).balance;
        assertEq(afterFirst, 50 ether - 100 * PRICE, "charged once");
        assertTrue(inbox.shardPosted(jobId, 0), "shard live");
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = _signReceipt(rs[0], workerKey);
        vm.prank(sequencer);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.ShardAlreadyPosted.selector, jobId, uint32(0)));
        inbox.postBatch(noJobs, rs, sigs);
        // Other shards of the job, including far ones (other bitmap words), still post.
        _post1(jobId, 1, 10, keccak256("s1"));
        _post1(jobId, 300, 10, keccak256("s300"));
        assertTrue(inbox.shardPosted(jobId, 300) && !inbox.shardPosted(jobId, 301), "bitmap words");
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.ShardAlreadyPosted.selector, jobId, uint32(300)));
        this.post1External(jobId, 300);
        assertEq(bridge.escrow(buyer).balance, afterFirst - 20 * PRICE, "each shard charged once");
    }

    function post1External(bytes32 jobId, uint32 shard) external {
        Receipt[] memory rs = new Receipt[](1);
        rs[0] = _receipt(jobId, worker, shard, 10, keccak256("again"));
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = _signReceipt(rs[0], workerKey);
        vm.prank(sequencer);
        inbox.postBatch(noJobs, rs, sigs);
    }

    function testFuzz_attack7_neverChargedTwicePerShard(uint32 shard, uint64 tokens) public {
        tokens = uint64(bound(tokens, 1, 1e6));
        (, bytes32 jobId,) = _postSimple(1, 1, keccak256("t"));
        vm.assume(shard != 0);
        _post1(jobId, shard, tokens, keccak256("x"));
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.ShardAlreadyPosted.selector, jobId, shard));
        this.post1External(jobId, shard);
        assertEq(inbox.getJob(jobId).charged, (1 + uint256(tokens)) * PRICE, "charged once per shard");
    }

    function test_attack5_finalizeRangePartialTail() public {
        SignedJob[] memory js = new SignedJob[](1);
        js[0] = _job(1, 1 ether);
        bytes32 jobId = inbox.jobDigest(js[0].request);
        Receipt[] memory rs = new Receipt[](5);
        bytes[] memory sigs = new bytes[](5);
        for (uint256 i = 0; i < 5; ++i) {
            rs[i] = _receipt(jobId, i % 2 == 0 ? worker : worker2, uint32(i), 10, keccak256(abi.encode(i)));
            sigs[i] = _signReceipt(rs[i], i % 2 == 0 ? workerKey : worker2Key);
        }
        vm.prank(sequencer);
        uint256 id = inbox.postBatch(js, rs, sigs);
        // Receipt 3 is proven fraudulent; its range refunds it.
        inbox.onDisputeOpened(id);
        inbox.onDisputeClosed(id, keccak256(abi.encode(rs[3])), true);
        vm.warp(block.timestamp + WINDOW);
        // Level 3 would cover the whole tree: with a proof of the wrong length it is refused.
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.ReceiptsMismatch.selector, id));
        inbox.finalizeRange(id, 0, 3, rs, _rangeProof(rs, 1, 0));
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.BadRange.selector, id, 0, 0));
        inbox.finalizeRange(id, 0, 4, rs, new bytes32[](0));
        inbox.finalizeRange(id, 0, 1, _slice(rs, 0, 2), _rangeProof(rs, 1, 0));
        inbox.finalizeRange(id, 2, 1, _slice(rs, 2, 4), _rangeProof(rs, 1, 1));
        assertEq(inbox.getJob(jobId).charged, 40 * PRICE, "fraud (10 tokens) refunded in its range");
        // The tail is one receipt in a two-leaf subtree padded with a zero leaf.
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.ReceiptsMismatch.selector, id));
        inbox.finalizeRange(id, 4, 1, _slice(rs, 3, 5), _rangeProof(rs, 1, 2));
        inbox.finalizeRange(id, 4, 1, _slice(rs, 4, 5), _rangeProof(rs, 1, 2));
        assertTrue(inbox.getBatch(id).finalized, "final");
        assertEq(rewards.credits(0, worker), 30, "shards 0, 2, 4");
        assertEq(rewards.credits(0, worker2), 10, "shard 1 only");
        assertEq(bridge.heldFees(), 0, "released");
    }

    /// @dev Any batch size, range size and fraud set: ranges settle every receipt exactly once,
    /// every charged wei ends in the fee pot or back in escrow, and `charged` matches.
    function testFuzz_rangesSettleEveryWeiOnce(uint8 count, uint8 lvl, uint64 fraudMask, uint64 pulled) public {
        uint256 n = bound(count, 1, 40);
        SignedJob[] memory js = new SignedJob[](1);
        js[0] = _job(1, 1 ether);
        bytes32 jobId = inbox.jobDigest(js[0].request);
        Receipt[] memory rs = new Receipt[](n);
        bytes[] memory sigs = new bytes[](n);
        for (uint256 i = 0; i < n; ++i) {
            rs[i] = _receipt(jobId, worker, uint32(i), uint64(1 + i), keccak256(abi.encode(i)));
            sigs[i] = _signReceipt(rs[i], workerKey);
        }
        vm.prank(sequencer);
        uint256 id = inbox.postBatch(js, rs, sigs);
        uint256 charged = inbox.getJob(jobId).charged;
        uint256 fraudWei;
        inbox.onDisputeOpened(id);
        for (uint256 i = 0; i < n; ++i) {
            if ((fraudMask >> i) & 1 == 1) {
                inbox.onFraudProven(id, keccak256(abi.encode(rs[i])));
                fraudWei += (1 + i) * PRICE;
                if ((pulled >> i) & 1 == 1) {
                    bytes32[] memory p = _rangeProof(rs, 0, i);
                    inbox.refundFraud(id, rs[i], i, p);
                }
            }
        }
        inbox.onDisputeClosed(id, bytes32(0), false);
        vm.warp(block.timestamp + WINDOW);
        uint256 depth = 0;
        while ((uint256(1) << depth) < n) ++depth;
        uint256 level = bound(lvl, 0, depth);
        uint256 size = uint256(1) << level;
        for (uint256 start = 0; start < n; start += size) {
            inbox.finalizeRange(
                id, start, level, _slice(rs, start, start + size), _rangeProof(rs, level, start >> level)
            );
        }
        assertTrue(inbox.getBatch(id).finalized, "final");
        assertEq(bridge.heldFees(), 0, "nothing held");
        assertEq(rewards.feesOf(0), charged - fraudWei, "fees = charged - frauds");
        assertEq(bridge.escrow(buyer).balance, 50 ether - charged + fraudWei, "frauds refunded once");
        assertEq(inbox.getJob(jobId).charged, charged - fraudWei, "charged reduced");
    }

    // ---------------------------------------------------------------- attack 12 / 13: refunds

    function test_attack12_fraudRefundsBuyerAtOnce() public {
        (uint256 id, bytes32 jobId, Receipt[] memory rs) = _postSimple(1, 1000, keccak256("t"));
        bytes32 h = keccak256(abi.encode(rs[0]));
        bytes32[] memory proof = new bytes32[](0);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.NotFraudulent.selector, id, h));
        inbox.refundFraud(id, rs[0], 0, proof);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.NotGame.selector, worker));
        inbox.onFraudProven(id, h);

        inbox.onDisputeOpened(id);
        vm.expectEmit(true, true, false, false);
        emit BatchInbox.FraudProven(id, h);
        inbox.onFraudProven(id, h);
        inbox.onFraudProven(id, h); // a second game proving the same fraud changes nothing
        assertTrue(inbox.fraudulent(id, h), "marked");

        // The buyer (anyone) pulls the refund while the window is still open.
        vm.expectEmit(true, true, true, true);
        emit BatchInbox.FraudRefunded(id, h, jobId, 0, buyer, 1000 * PRICE);
        vm.prank(buyer);
        inbox.refundFraud(id, rs[0], 0, proof);
        assertEq(bridge.escrow(buyer).balance, 50 ether, "escrow restored");
        BatchInbox.Job memory j = inbox.getJob(jobId);
        assertEq(j.charged, 0, "charged reduced");
        assertEq(j.refunded, 1000 * PRICE, "refund recorded");
        assertEq(j.frauds, 1, "fraud visible on the job");
        assertTrue(!inbox.shardPosted(jobId, 0), "shard free for a re-run");
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.AlreadyRefunded.selector, id, h));
        inbox.refundFraud(id, rs[0], 0, proof);

        // The proven receipt can never be posted again; an honest re-run of the shard can.
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = _signReceipt(rs[0], workerKey);
        vm.prank(sequencer);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.ReceiptProvenFraudulent.selector, h));
        inbox.postBatch(noJobs, rs, sigs);
        Receipt[] memory rerun = new Receipt[](1);
        rerun[0] = _receipt(jobId, worker2, 0, 1000, keccak256("honest"));
        sigs[0] = _signReceipt(rerun[0], worker2Key);
        vm.prank(sequencer);
        uint256 id2 = inbox.postBatch(noJobs, rerun, sigs);
        assertEq(inbox.getJob(jobId).charged, 1000 * PRICE, "re-run charged once");

        // Finalizing the first batch neither refunds again nor pays the fraud.
        inbox.onDisputeClosed(id, h, true);
        vm.warp(block.timestamp + WINDOW);
        inbox.finalizeBatch(id, rs);
        assertEq(bridge.escrow(buyer).balance, 50 ether - 1000 * PRICE, "no double refund");
        assertEq(rewards.credits(0, worker), 0, "fraud not credited");
        inbox.finalizeBatch(id2, rerun);
        assertEq(rewards.credits(0, worker2), 1000, "re-run credited");
        assertEq(bridge.heldFees(), 0, "all settled");
    }

    function test_attack12_finalizationRefundsUnclaimedFraud() public {
        (uint256 id, bytes32 jobId, Receipt[] memory rs) = _postSimple(1, 700, keccak256("t"));
        bytes32 h = keccak256(abi.encode(rs[0]));
        inbox.onDisputeOpened(id);
        inbox.onDisputeClosed(id, h, true);
        vm.warp(block.timestamp + WINDOW);
        vm.expectEmit(true, true, true, true);
        emit BatchInbox.FraudRefunded(id, h, jobId, 0, buyer, 700 * PRICE);
        inbox.finalizeBatch(id, rs);
        BatchInbox.Job memory j = inbox.getJob(jobId);
        assertEq(j.charged, 0, "charged reduced at finalization");
        assertEq(j.frauds, 1, "fraud counted");
        assertEq(bridge.escrow(buyer).balance, 50 ether, "refunded");
    }

    function test_onFraudProvenGuards() public {
        (uint256 id,, Receipt[] memory rs) = _postSimple(1, 1, keccak256("t"));
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.UnknownBatch.selector, 9));
        inbox.onFraudProven(9, bytes32(0));
        vm.warp(block.timestamp + WINDOW);
        inbox.finalizeBatch(id, rs);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.AlreadyFinalized.selector, id));
        inbox.onFraudProven(id, keccak256(abi.encode(rs[0])));
    }

    // ---------------------------------------------------------------- attack 11: censorship

    function test_attack11_censoredBuyerForcesInclusion() public {
        SignedJob memory sj = _job(42, 1 ether);
        bytes32 jobId = inbox.jobDigest(sj.request);
        // The sequencer ignores the buyer; the buyer registers the job on L1 itself.
        vm.expectEmit(true, true, false, true);
        emit BatchInbox.JobForced(jobId, buyer, block.timestamp + inbox.FORCE_INCLUSION_DELAY());
        vm.prank(buyer);
        inbox.forceJob(sj);
        assertEq(inbox.getJob(jobId).buyer, buyer, "job on L1");
        Receipt[] memory rs = new Receipt[](1);
        rs[0] = _receipt(jobId, worker, 0, 50, keccak256("forced"));
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = _signReceipt(rs[0], workerKey);
        // Before the deadline only the sequencer may serve it.
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.ForcedNotDue.selector, jobId, block.timestamp + 1 days));
        inbox.postForced(rs, sigs);
        vm.warp(block.timestamp + 1 days);
        // A job that was not forced cannot use the path.
        (, bytes32 other,) = _postSimple(1, 1, keccak256("t"));
        Receipt[] memory rs2 = new Receipt[](1);
        rs2[0] = _receipt(other, worker, 1, 1, keccak256("o"));
        bytes[] memory sigs2 = new bytes[](1);
        sigs2[0] = _signReceipt(rs2[0], workerKey);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.NotForced.selector, other));
        inbox.postForced(rs2, sigs2);
        // After it, the buyer posts a staked worker's receipt itself: charged, finalized as usual.
        vm.prank(buyer);
        uint256 id = inbox.postForced(rs, sigs);
        assertEq(inbox.getJob(jobId).charged, 50 * PRICE, "charged once");
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.ShardAlreadyPosted.selector, jobId, uint32(0)));
        inbox.postForced(rs, sigs);
        vm.warp(block.timestamp + WINDOW);
        inbox.finalizeBatch(id, rs);
        assertEq(rewards.credits(rewards.currentEpoch(), worker), 50, "worker credited");
    }

    function test_attack11_frontRunningSequencerStillBound() public {
        SignedJob[] memory js = new SignedJob[](1);
        js[0] = _job(43, 1 ether);
        bytes32 jobId = inbox.jobDigest(js[0].request);
        // The sequencer sees forceJob in the mempool and posts the job first (with some other
        // receipt), hoping to make forceJob revert and then never serve it.
        (, bytes32 other,) = _postSimple(1, 1, keccak256("t"));
        Receipt[] memory rs = new Receipt[](1);
        rs[0] = _receipt(other, worker, 1, 1, keccak256("x"));
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = _signReceipt(rs[0], workerKey);
        vm.prank(sequencer);
        inbox.postBatch(js, rs, sigs);
        vm.prank(buyer);
        inbox.forceJob(js[0]);
        assertTrue(inbox.forcedAt(jobId) != 0, "marked forced anyway");
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.JobAlreadyPosted.selector, jobId));
        inbox.forceJob(js[0]);
        SignedJob memory forged = js[0];
        forged.signature = _signReceipt(rs[0], workerKey);
        vm.expectRevert();
        inbox.forceJob(forged);
    }

    // ---------------------------------------------------------------- attack 9: cross-SKU split

    function test_attack9_cheapSkuWorkCannotTakeExpensiveFees() public {
        bytes32 dear = keccak256("sku-dear");
        SkuRegistry.Sku memory s = _sku(1);
        s.pricePerToken = 1000 * PRICE;
        vm.prank(owner);
        skus.registerSku(dear, s);
        vm.prank(worker2);
        bridge.setSku(dear, true);
        // worker: 1000 tokens of the cheap SKU (1000 gwei); worker2: 10 tokens of the dear SKU
        // (10,000 gwei). A per-token split would pay worker 1000/1010 of all 11,000 gwei.
        SignedJob[] memory js = new SignedJob[](2);
        js[0] = _job(1, 1 ether);
        js[1] = _job(2, 1 ether);
        js[1].request.skuId = dear;
        (uint8 v, bytes32 r, bytes32 ss) = vm.sign(buyerKey, inbox.jobDigest(js[1].request));
        js[1].signature = abi.encodePacked(r, ss, v);
        Receipt[] memory rs = new Receipt[](2);
        rs[0] = _receipt(inbox.jobDigest(js[0].request), worker, 0, 1000, keccak256("a"));
        rs[1] = _receipt(inbox.jobDigest(js[1].request), worker2, 0, 10, keccak256("b"));
        rs[1].skuId = dear;
        bytes[] memory sigs = new bytes[](2);
        sigs[0] = _signReceipt(rs[0], workerKey);
        sigs[1] = _signReceipt(rs[1], worker2Key);
        vm.prank(sequencer);
        uint256 id = inbox.postBatch(js, rs, sigs);
        vm.warp(block.timestamp + WINDOW);
        inbox.finalizeBatch(id, rs);
        vm.warp(block.timestamp + EPOCH);
        uint256 b1 = worker.balance;
        uint256 b2 = worker2.balance;
        vm.prank(worker);
        rewards.claim(0);
        vm.prank(worker2);
        rewards.claim(0);
        assertEq(worker.balance - b1, 1000 * PRICE, "cheap work earns its own fees only");
        assertEq(worker2.balance - b2, 10_000 * PRICE, "dear work keeps its fees");
        assertEq(rewards.token().balanceOf(worker), INFLATION / 11, "inflation by fees too");
        assertEq(rewards.credits(0, worker), 1000, "tokens still counted for the active set");
    }

    // ---------------------------------------------------------------- attack 13: fork, SKU shapes

    function test_attack13_domainSeparatorFollowsChainId() public {
        SignedJob[] memory js = new SignedJob[](1);
        js[0] = _job(7, 1 ether); // signed for this chain
        bytes32 before = inbox.DOMAIN_SEPARATOR();
        vm.chainId(block.chainid + 1000); // a fork
        assertTrue(inbox.DOMAIN_SEPARATOR() != before, "recomputed");
        bytes32 jobIdFork = inbox.jobDigest(js[0].request);
        Receipt[] memory rs = new Receipt[](1);
        rs[0] = _receipt(jobIdFork, worker, 0, 10, keccak256("t"));
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = _signReceipt(rs[0], workerKey);
        // The buyer's signature from the old chain does not verify on the fork.
        vm.prank(sequencer);
        vm.expectRevert();
        inbox.postBatch(js, rs, sigs);
        vm.chainId(block.chainid - 1000);
        assertEq(inbox.DOMAIN_SEPARATOR(), before, "cached value back on the deployment chain");
    }

    function test_attack13_degenerateSkuRefused() public {
        SkuRegistry.Sku memory s = _sku(1);
        s.vocab = 0;
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(SkuRegistry.InvalidSku.selector, bytes32(uint256(1))));
        skus.registerSku(bytes32(uint256(1)), s);
        s.vocab = 1;
        vm.expectRevert(abi.encodeWithSelector(SkuRegistry.InvalidSku.selector, bytes32(uint256(1))));
        skus.registerSku(bytes32(uint256(1)), s);
        s.vocab = 2;
        s.softmaxC = 0;
        vm.expectRevert(abi.encodeWithSelector(SkuRegistry.InvalidSku.selector, bytes32(uint256(1))));
        skus.registerSku(bytes32(uint256(1)), s);
        s.softmaxC = 1 << 37;
        skus.registerSku(bytes32(uint256(1)), s);
        // An end-of-sequence id outside the vocabulary could never be generated.
        SkuRegistry.Shape memory sh = _shape(4, 2, 8, 64);
        sh.eosIds[0] = 2;
        vm.expectRevert(abi.encodeWithSelector(SkuRegistry.BadShape.selector, bytes32(uint256(1))));
        skus.setShape(bytes32(uint256(1)), sh);
        sh.eosIds[0] = 1;
        skus.setShape(bytes32(uint256(1)), sh);
        vm.stopPrank();
    }
}

/// @dev Attack 5: a batch near the cap posts under EIP-7825's 2^24 gas and finalizes in ranges,
/// each a bounded transaction. Every receipt has its own worker, job and buyer (the worst case).
/// @dev The largest batch the inbox takes, each receipt from its own worker for its own buyer.
abstract contract WorstBatch is ReceiptTree {
    uint256 internal constant CAP = 1 << 24;

    SignedJob[] internal jobsBuf;
    Receipt[] internal rsBuf;
    bytes[] internal sigsBuf;

    function _worstBatch(uint256 n) internal {
        vm.pauseGasMetering();
        for (uint256 i = 0; i < n; ++i) {
            uint256 wk = 0x10000 + i;
            uint256 bk = 0x20000 + i;
            address w = vm.addr(wk);
            address b = vm.addr(bk);
            _stakeWorker(w, MIN_STAKE);
            vm.deal(b, 1 ether);
            vm.prank(b);
            bridge.depositEscrow{value: 1 ether}();
            SignedJob memory sj;
            sj.inputs = abi.encodePacked("prompt of a realistic length, say forty bytes", i);
            sj.request = JobRequest({
                buyer: b,
                skuId: SKU,
                inputsHash: keccak256(sj.inputs),
                maxNewTokens: 16,
                maxPrice: 1 ether,
                nonce: uint64(i)
            });
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(bk, inbox.jobDigest(sj.request));
            sj.signature = abi.encodePacked(r, s, v);
            jobsBuf.push(sj);
            Receipt memory rc = _receipt(inbox.jobDigest(sj.request), w, 0, 64, keccak256(abi.encode(i)));
            rsBuf.push(rc);
            sigsBuf.push(_signReceipt(rc, wk));
        }
        vm.resumeGasMetering();
    }

    /// @dev Calldata gas of a call (EIP-2028 16/4 per byte, EIP-7623 floor 10 per token):
    /// forge's gas figures leave it out, the cap does not.
    function _calldataGas(bytes memory data) internal pure returns (uint256 standard, uint256 floor) {
        uint256 zeros;
        for (uint256 i = 0; i < data.length; ++i) {
            if (data[i] == 0) ++zeros;
        }
        uint256 tokens = zeros + 4 * (data.length - zeros);
        standard = 21_000 + 4 * tokens;
        floor = 21_000 + 10 * tokens;
    }

    event log_named_uint(string key, uint256 val);
}

contract BigBatchTest is WorstBatch {
    function test_gas_postBatchWorstCaseFitsTxCap() public {
        uint256 n = inbox.MAX_RECEIPTS();
        _worstBatch(n);
        vm.prank(sequencer);
        uint256 g0 = gasleft();
        inbox.postBatch(jobsBuf, rsBuf, sigsBuf);
        uint256 exec = g0 - gasleft();
        (uint256 cd, uint256 floor) = _calldataGas(abi.encodeCall(BatchInbox.postBatch, (jobsBuf, rsBuf, sigsBuf)));
        uint256 total = exec + cd;
        if (floor > total) total = floor;
        emit log_named_uint("postBatch exec gas (MAX_RECEIPTS, worst case)", exec);
        emit log_named_uint("postBatch calldata gas", cd);
        emit log_named_uint("postBatch per receipt", total / n);
        assertLe(total, CAP, "postBatch under EIP-7825 cap");
    }

    function test_attack5_largeBatchFinalizesInBoundedRanges() public {
        uint256 n = inbox.MAX_RECEIPTS();
        _worstBatch(n);
        vm.prank(sequencer);
        uint256 id = inbox.postBatch(jobsBuf, rsBuf, sigsBuf);
        Receipt[] memory rs = rsBuf;
        vm.warp(block.timestamp + WINDOW);

        uint256 level = 5; // 32 receipts per transaction
        uint256 size = uint256(1) << level;
        // Out of order, misaligned or with a wrong proof: refused.
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.BadRange.selector, id, size, 0));
        inbox.finalizeRange(id, size, level, _slice(rs, size, 2 * size), _rangeProof(rs, level, 1));
        bytes32[] memory bad = _rangeProof(rs, level, 0);
        bad[0] = bytes32(uint256(1));
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.ReceiptsMismatch.selector, id));
        inbox.finalizeRange(id, 0, level, _slice(rs, 0, size), bad);

        uint256 txs;
        uint256 worst;
        for (uint256 start = 0; start < n; start += size) {
            Receipt[] memory part = _slice(rs, start, start + size);
            bytes32[] memory proof = _rangeProof(rs, level, start >> level);
            uint256 g0 = gasleft();
            inbox.finalizeRange(id, start, level, part, proof);
            uint256 used = g0 - gasleft();
            if (used > worst) worst = used;
            ++txs;
            assertEq(inbox.getBatch(id).finalizedCount, start + part.length, "cursor");
            if (start + size < n) assertTrue(!inbox.getBatch(id).finalized, "not yet final");
        }
        emit log_named_uint("finalizeRange worst gas (32 receipts, 32 workers)", worst);
        assertEq(txs, (n + size - 1) / size, "several transactions");
        assertLe(worst, CAP / 4, "each range far under the cap");
        assertTrue(inbox.getBatch(id).finalized, "final");
        assertEq(bridge.heldFees(), 0, "all fees released");
        assertEq(rewards.totalCredits(0), 64 * n, "every receipt credited once");
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.AlreadyFinalized.selector, id));
        inbox.finalizeRange(id, 0, level, _slice(rs, 0, size), _rangeProof(rs, level, 0));
    }

    function test_gas_finalizeBatchWholeMaxBatch() public {
        uint256 n = inbox.MAX_RECEIPTS();
        _worstBatch(n);
        vm.prank(sequencer);
        uint256 id = inbox.postBatch(jobsBuf, rsBuf, sigsBuf);
        vm.warp(block.timestamp + WINDOW);
        uint256 g0 = gasleft();
        inbox.finalizeBatch(id, rsBuf);
        uint256 used = g0 - gasleft();
        emit log_named_uint("finalizeBatch gas (MAX_RECEIPTS, distinct workers)", used);
        assertLe(used, CAP, "whole-batch finalization under the cap");
    }
}
