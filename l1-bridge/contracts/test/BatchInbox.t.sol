// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Fixture} from "./Fixture.sol";
import {Receipt, SignedJob, Owned} from "../src/Types.sol";
import {BatchInbox} from "../src/BatchInbox.sol";
import {SkuRegistry} from "../src/SkuRegistry.sol";
import {Rewards, VerinferToken} from "../src/Rewards.sol";
import {Merkle} from "../src/Merkle.sol";

contract BatchInboxTest is Fixture {
    SignedJob[] internal noJobs;

    function _root(Receipt[] memory rs) internal pure returns (bytes32) {
        uint256 n = rs.length;
        bytes32[] memory level = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            level[i] = keccak256(abi.encodePacked(bytes1(0), abi.encode(rs[i])));
        }
        bytes32 zero;
        while (n > 1) {
            uint256 half = (n + 1) / 2;
            for (uint256 i = 0; i < half; ++i) {
                bytes32 r = 2 * i + 1 < n ? level[2 * i + 1] : zero;
                level[i] = keccak256(abi.encodePacked(bytes1(0x01), level[2 * i], r));
            }
            zero = keccak256(abi.encodePacked(bytes1(0x01), zero, zero));
            n = half;
        }
        return level[0];
    }

    function test_postChargesAndStoresHeader() public {
        (uint256 id, bytes32 jobId, Receipt[] memory rs) = _postSimple(1, 1000, keccak256("t"));
        assertEq(id, 0, "first batch");
        BatchInbox.Batch memory b = inbox.getBatch(0);
        assertEq(b.receiptsRoot, _root(rs), "root over receipts");
        assertEq(b.receiptCount, 1, "count");
        assertEq(bridge.escrow(buyer).balance, 50 ether - 1000 * PRICE, "charged");
        assertEq(bridge.heldFees(), 1000 * PRICE, "held");
        BatchInbox.Job memory j = inbox.getJob(jobId);
        assertEq(j.buyer, buyer, "job buyer");
        assertEq(j.charged, 1000 * PRICE, "job charged");
        assertTrue(inbox.accumulator() != bytes32(0), "accumulator");
        assertEq(inbox.batchCount(), 1, "batches");
        assertEq(inbox.challengeDeadline(0), block.timestamp + WINDOW, "deadline");
    }

    function test_laterBatchReusesJobAndAccumulatorChains() public {
        (, bytes32 jobId,) = _postSimple(1, 10, keccak256("t"));
        bytes32 acc1 = inbox.accumulator();
        Receipt[] memory rs = new Receipt[](2);
        rs[0] = _receipt(jobId, worker, 1, 20, keccak256("a"));
        rs[1] = _receipt(jobId, worker2, 2, 30, keccak256("b"));
        bytes[] memory sigs = new bytes[](2);
        sigs[0] = _signReceipt(rs[0], workerKey);
        sigs[1] = _signReceipt(rs[1], worker2Key);
        vm.prank(sequencer);
        uint256 id = inbox.postBatch(noJobs, rs, sigs);
        assertEq(id, 1, "second");
        assertEq(inbox.getJob(jobId).charged, 60 * PRICE, "cumulative");
        assertTrue(inbox.accumulator() != acc1, "accumulator moved");
        assertEq(inbox.getBatch(1).receiptsRoot, _root(rs), "root of 2");
        // Every receipt proves against the stored root.
        bytes32[] memory proof = new bytes32[](1);
        proof[0] = keccak256(abi.encodePacked(bytes1(0), abi.encode(rs[1])));
        assertEq(inbox.verifyReceipt(1, rs[0], 0, proof), keccak256(abi.encode(rs[0])), "leaf 0");
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.ReceiptsMismatch.selector, 1));
        inbox.verifyReceipt(1, rs[1], 0, proof);
    }

    function test_postReverts() public {
        SignedJob[] memory js = new SignedJob[](1);
        js[0] = _job(7, 1 ether);
        bytes32 jobId = inbox.jobDigest(js[0].request);
        Receipt[] memory rs = new Receipt[](1);
        rs[0] = _receipt(jobId, worker, 0, 10, keccak256("t"));
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = _signReceipt(rs[0], workerKey);

        vm.expectRevert(abi.encodeWithSelector(BatchInbox.NotSequencer.selector, address(this)));
        inbox.postBatch(js, rs, sigs);

        vm.startPrank(sequencer);
        vm.expectRevert(BatchInbox.EmptyBatch.selector);
        inbox.postBatch(js, new Receipt[](0), new bytes[](0));
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.LengthMismatch.selector, 1, 0));
        inbox.postBatch(js, rs, new bytes[](0));
        // receipt signed by the wrong worker
        bytes[] memory bad = new bytes[](1);
        bad[0] = _signReceipt(rs[0], worker2Key);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.WrongSigner.selector, worker, worker2));
        inbox.postBatch(js, rs, bad);
        // malformed signature
        bad[0] = hex"00";
        vm.expectRevert(BatchInbox.BadSignature.selector);
        inbox.postBatch(js, rs, bad);
        // unknown job (request not included)
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.UnknownJob.selector, jobId));
        inbox.postBatch(noJobs, rs, sigs);
        // tampered inputs
        SignedJob[] memory tampered = new SignedJob[](1);
        tampered[0] = _job(7, 1 ether);
        tampered[0].inputs = "other";
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.InputsMismatch.selector, jobId));
        inbox.postBatch(tampered, rs, sigs);
        // job signed by someone else
        tampered[0] = _job(7, 1 ether);
        tampered[0].request.buyer = worker;
        vm.expectRevert();
        inbox.postBatch(tampered, rs, sigs);
        vm.stopPrank();

        // not a worker for the SKU
        vm.prank(worker);
        bridge.setSku(SKU, false);
        vm.prank(sequencer);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.NotAWorker.selector, worker, SKU));
        inbox.postBatch(js, rs, sigs);
        vm.prank(worker);
        bridge.setSku(SKU, true);

        // over the max price
        js[0] = _job(8, 5 * PRICE);
        jobId = inbox.jobDigest(js[0].request);
        rs[0] = _receipt(jobId, worker, 0, 6, keccak256("t"));
        sigs[0] = _signReceipt(rs[0], workerKey);
        vm.prank(sequencer);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.OverMaxPrice.selector, jobId, 6 * PRICE, 5 * PRICE));
        inbox.postBatch(js, rs, sigs);

        // job posted twice
        rs[0] = _receipt(jobId, worker, 0, 5, keccak256("t"));
        sigs[0] = _signReceipt(rs[0], workerKey);
        vm.prank(sequencer);
        inbox.postBatch(js, rs, sigs);
        vm.prank(sequencer);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.JobAlreadyPosted.selector, jobId));
        inbox.postBatch(js, rs, sigs);

        // inactive SKU
        vm.prank(owner);
        skus.setActive(SKU, false);
        js[0] = _job(9, 1 ether);
        rs[0] = _receipt(inbox.jobDigest(js[0].request), worker, 0, 5, keccak256("t"));
        sigs[0] = _signReceipt(rs[0], workerKey);
        vm.prank(sequencer);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.SkuInactive.selector, SKU));
        inbox.postBatch(js, rs, sigs);
    }

    function test_skuMismatchAndEscrowShortfall() public {
        SkuRegistry.Sku memory s = _sku(1);
        vm.prank(owner);
        skus.registerSku(keccak256("other"), s);
        SignedJob[] memory js = new SignedJob[](1);
        js[0] = _job(1, 1000 ether);
        bytes32 jobId = inbox.jobDigest(js[0].request);
        Receipt[] memory rs = new Receipt[](1);
        rs[0] = _receipt(jobId, worker, 0, 10, keccak256("t"));
        rs[0].skuId = keccak256("other");
        vm.prank(worker);
        bridge.setSku(keccak256("other"), true);
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = _signReceipt(rs[0], workerKey);
        vm.prank(sequencer);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.SkuMismatch.selector, jobId, keccak256("other")));
        inbox.postBatch(js, rs, sigs);
        // 51 ether worth of tokens against a 50 ether escrow
        rs[0] = _receipt(jobId, worker, 0, 51e9, keccak256("t"));
        sigs[0] = _signReceipt(rs[0], workerKey);
        vm.prank(sequencer);
        vm.expectRevert();
        inbox.postBatch(js, rs, sigs);
    }

    function test_finalizeCreditsAndReleasesFees() public {
        (uint256 id,, Receipt[] memory rs) = _postSimple(1, 1000, keccak256("t"));
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.WindowOpen.selector, id, block.timestamp + WINDOW));
        inbox.finalizeBatch(id, rs);
        vm.warp(block.timestamp + WINDOW);
        Receipt[] memory wrong = new Receipt[](1);
        wrong[0] = _receipt(rs[0].jobId, worker, 0, 1, keccak256("t"));
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.ReceiptsMismatch.selector, id));
        inbox.finalizeBatch(id, wrong);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.ReceiptsMismatch.selector, id));
        inbox.finalizeBatch(id, new Receipt[](0));
        inbox.finalizeBatch(id, rs);
        assertEq(rewards.credits(0, worker), 1000, "credited");
        assertEq(rewards.feesOf(0), 1000 * PRICE, "fees");
        assertEq(bridge.heldFees(), 0, "released");
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.AlreadyFinalized.selector, id));
        inbox.finalizeBatch(id, rs);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.UnknownBatch.selector, 5));
        inbox.finalizeBatch(5, rs);
    }

    function test_disputeHooksBlockFinalizationAndRefund() public {
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, address(this)));
        inbox.setGame(address(this));
        vm.prank(owner);
        inbox.setGame(address(this)); // this test contract plays the game's role
        vm.prank(owner);
        vm.expectRevert(BatchInbox.GameAlreadySet.selector);
        inbox.setGame(address(this));
        (uint256 id,, Receipt[] memory rs) = _postSimple(1, 1000, keccak256("t"));
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.NoOpenDispute.selector, id));
        inbox.onDisputeClosed(id, bytes32(0), false);
        inbox.onDisputeOpened(id);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.NotGame.selector, worker));
        inbox.onDisputeOpened(id);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.NotGame.selector, worker));
        inbox.onDisputeClosed(id, bytes32(0), true);
        vm.warp(block.timestamp + WINDOW);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.WindowClosed.selector, id, block.timestamp));
        inbox.onDisputeOpened(id);
        vm.expectRevert(abi.encodeWithSelector(BatchInbox.DisputesOpen.selector, id, 1));
        inbox.finalizeBatch(id, rs);
        inbox.onDisputeClosed(id, keccak256(abi.encode(rs[0])), true);
        inbox.finalizeBatch(id, rs);
        assertEq(rewards.credits(0, worker), 0, "no credit for fraud");
        assertEq(bridge.escrow(buyer).balance, 50 ether, "refunded");
        assertEq(bridge.heldFees(), 0, "nothing held");
    }

    function test_sequencerRotation() public {
        vm.prank(owner);
        inbox.setSequencer(address(0xBEEF));
        assertEq(inbox.sequencer(), address(0xBEEF), "rotated");
    }

    function testFuzz_chargesMatchTokens(uint64 t1, uint64 t2) public {
        t1 = uint64(bound(t1, 0, 1e9));
        t2 = uint64(bound(t2, 0, 1e9));
        SignedJob[] memory js = new SignedJob[](1);
        js[0] = _job(3, type(uint256).max);
        bytes32 jobId = inbox.jobDigest(js[0].request);
        Receipt[] memory rs = new Receipt[](2);
        rs[0] = _receipt(jobId, worker, 0, t1, keccak256("a"));
        rs[1] = _receipt(jobId, worker2, 1, t2, keccak256("b"));
        bytes[] memory sigs = new bytes[](2);
        sigs[0] = _signReceipt(rs[0], workerKey);
        sigs[1] = _signReceipt(rs[1], worker2Key);
        vm.prank(sequencer);
        uint256 id = inbox.postBatch(js, rs, sigs);
        uint256 cost = (uint256(t1) + t2) * PRICE;
        assertEq(bridge.escrow(buyer).balance, 50 ether - cost, "escrow");
        vm.warp(block.timestamp + WINDOW);
        inbox.finalizeBatch(id, rs);
        assertEq(rewards.feesOf(0), cost, "fees");
        assertEq(rewards.totalCredits(0), uint256(t1) + t2, "credits");
    }
}

contract SkuRegistryTest is Fixture {
    function test_registerAndUpdate() public {
        SkuRegistry.Sku memory s = skus.get(SKU);
        assertEq(s.weightRoot, keccak256("weights"), "root");
        assertEq(s.layers, 1, "layers");
        assertEq(skus.stepsPerRound(SKU), 23, "steps per round");
        assertTrue(s.active, "active");
        assertEq(skus.priceOf(SKU), PRICE, "price");
        vm.startPrank(owner);
        skus.setPrice(SKU, 7);
        assertEq(skus.priceOf(SKU), 7, "new price");
        skus.setActive(SKU, false);
        assertTrue(!skus.isActive(SKU), "off");
        vm.expectRevert(abi.encodeWithSelector(SkuRegistry.SkuExists.selector, SKU));
        skus.registerSku(SKU, s);
        s.layers = 0;
        vm.expectRevert(abi.encodeWithSelector(SkuRegistry.InvalidSku.selector, bytes32(uint256(5))));
        skus.registerSku(bytes32(uint256(5)), s);
        vm.expectRevert(abi.encodeWithSelector(SkuRegistry.UnknownSku.selector, bytes32(uint256(5))));
        skus.setPrice(bytes32(uint256(5)), 1);
        vm.expectRevert(abi.encodeWithSelector(SkuRegistry.UnknownSku.selector, bytes32(uint256(5))));
        skus.setActive(bytes32(uint256(5)), true);
        vm.expectRevert(abi.encodeWithSelector(SkuRegistry.UnknownSku.selector, bytes32(uint256(5))));
        skus.get(bytes32(uint256(5)));
        vm.expectRevert(abi.encodeWithSelector(SkuRegistry.BadShape.selector, SKU));
        skus.setShape(SKU, _shape(3, 2, 128, 4096)); // kv heads must divide heads
        vm.expectRevert(abi.encodeWithSelector(SkuRegistry.BadShape.selector, SKU));
        skus.setShape(SKU, _shape(32, 8, 128, 8193)); // context longer than MAX_SEQ
        skus.setShape(SKU, _shape(32, 8, 128, 4096));
        assertEq(skus.shapeOf(SKU).kvHeads, 8, "shape");
        vm.expectRevert(abi.encodeWithSelector(SkuRegistry.BadShape.selector, SKU));
        skus.setShape(SKU, _shape(32, 8, 128, 4096)); // once only
        vm.expectRevert(abi.encodeWithSelector(SkuRegistry.UnknownSku.selector, bytes32(uint256(5))));
        skus.setShape(bytes32(uint256(5)), _shape(1, 1, 2, 2));
        skus.transferOwnership(address(0x77));
        vm.stopPrank();
        assertEq(skus.owner(), address(0x77), "owner moved");
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, address(this)));
        skus.setPrice(SKU, 1);
    }
}

contract RewardsTest is Fixture {
    function test_epochSplitProRata() public {
        vm.prank(owner);
        inbox.setGame(address(this));
        // worker: 300 tokens, worker2: 100 tokens, same batch
        SignedJob[] memory js = new SignedJob[](1);
        js[0] = _job(1, 1 ether);
        bytes32 jobId = inbox.jobDigest(js[0].request);
        Receipt[] memory rs = new Receipt[](2);
        rs[0] = _receipt(jobId, worker, 0, 300, keccak256("a"));
        rs[1] = _receipt(jobId, worker2, 1, 100, keccak256("b"));
        bytes[] memory sigs = new bytes[](2);
        sigs[0] = _signReceipt(rs[0], workerKey);
        sigs[1] = _signReceipt(rs[1], worker2Key);
        vm.prank(sequencer);
        uint256 id = inbox.postBatch(js, rs, sigs);
        vm.warp(block.timestamp + WINDOW);
        inbox.finalizeBatch(id, rs);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(Rewards.EpochNotOver.selector, 0, 0));
        rewards.claim(0);
        vm.warp(block.timestamp + EPOCH);
        uint256 before = worker.balance;
        vm.prank(worker);
        rewards.claim(0);
        assertEq(worker.balance - before, 300 * PRICE, "3/4 of fees");
        assertEq(rewards.token().balanceOf(worker), INFLATION * 3 / 4, "3/4 of inflation");
        vm.prank(worker2);
        rewards.claim(0);
        assertEq(rewards.token().balanceOf(worker2), INFLATION / 4, "1/4 of inflation");
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(Rewards.AlreadyClaimed.selector, 0, worker));
        rewards.claim(0);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(Rewards.NoCredits.selector, 0, buyer));
        rewards.claim(0);
        // Active set: worker had 300 >= 100 credits in epoch 0; worker2 100 >= 100.
        assertTrue(rewards.isActive(worker), "worker active");
        assertTrue(rewards.isActive(worker2), "worker2 active");
        vm.warp(block.timestamp + EPOCH);
        assertTrue(!rewards.isActive(worker), "no credits in epoch 1 -> inactive");
    }

    function test_guardsAndJoinGrace() public {
        vm.expectRevert(abi.encodeWithSelector(Rewards.NotInbox.selector, address(this)));
        rewards.addCredits(worker, 1, 1);
        vm.deal(address(this), 1 ether);
        vm.expectRevert(abi.encodeWithSelector(Rewards.NotBridge.selector, address(this)));
        rewards.depositFees{value: 1}();
        vm.prank(owner);
        vm.expectRevert(Rewards.InboxAlreadySet.selector);
        rewards.setInbox(address(1));
        assertTrue(!rewards.isActive(worker), "not joined");
        vm.prank(worker);
        rewards.join();
        assertTrue(rewards.isActive(worker), "grace epoch 0");
        vm.warp(block.timestamp + EPOCH);
        assertTrue(rewards.isActive(worker), "grace epoch 1");
        vm.warp(block.timestamp + EPOCH);
        assertTrue(!rewards.isActive(worker), "grace over");
        assertTrue(!rewards.isActive(buyer), "not a worker");
    }

    function test_tokenTransfers() public {
        VerinferToken t = rewards.token();
        vm.prank(address(rewards));
        t.mint(worker, 10);
        vm.expectRevert(abi.encodeWithSelector(VerinferToken.NotMinter.selector, address(this)));
        t.mint(worker, 10);
        vm.prank(worker);
        t.approve(address(this), 4);
        t.transferFrom(worker, buyer, 3);
        assertEq(t.balanceOf(buyer), 3, "moved");
        vm.expectRevert(abi.encodeWithSelector(VerinferToken.InsufficientAllowance.selector, address(this), 1, 2));
        t.transferFrom(worker, buyer, 2);
        vm.prank(worker);
        t.transfer(buyer, 7);
        assertEq(t.balanceOf(worker), 0, "emptied");
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(VerinferToken.InsufficientBalance.selector, worker, 0, 1));
        t.transfer(buyer, 1);
    }
}
