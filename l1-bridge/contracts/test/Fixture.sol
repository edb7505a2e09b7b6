// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Base} from "./Base.sol";
import {Receipt, JobRequest, SignedJob} from "../src/Types.sol";
import {SkuRegistry} from "../src/SkuRegistry.sol";
import {StakeBridge} from "../src/StakeBridge.sol";
import {BatchInbox, ISkuView, IBridgeInbox, IRewardsInbox} from "../src/BatchInbox.sol";
import {Rewards} from "../src/Rewards.sol";

/// @dev The deployed set with a buyer and a staked worker, and helpers to sign and post.
abstract contract Fixture is Base {
    uint64 internal constant WINDOW = 1 hours;
    uint64 internal constant UNBONDING = 7 days;
    uint64 internal constant ESCROW_DELAY = 10 minutes;
    uint64 internal constant PAYOUT_DELAY = 3 days;
    uint128 internal constant MIN_STAKE = 1 ether;
    uint64 internal constant EPOCH = 1 days;
    uint256 internal constant INFLATION = 1000e18;
    uint128 internal constant PRICE = 1 gwei;
    bytes32 internal constant SKU = keccak256("sku-test");

    address internal owner = address(0xA11CE);
    address internal sequencer = address(0x5E9);
    uint256 internal buyerKey = 0xB0B;
    uint256 internal workerKey = 0x3047;
    uint256 internal worker2Key = 0x3048;
    address internal buyer;
    address internal worker;
    address internal worker2;

    SkuRegistry internal skus;
    StakeBridge internal bridge;
    Rewards internal rewards;
    BatchInbox internal inbox;

    function setUp() public virtual {
        buyer = vm.addr(buyerKey);
        worker = vm.addr(workerKey);
        worker2 = vm.addr(worker2Key);
        skus = new SkuRegistry(owner);
        bridge = new StakeBridge(owner, UNBONDING, ESCROW_DELAY, MIN_STAKE, 3, PAYOUT_DELAY);
        rewards = new Rewards(owner, address(bridge), EPOCH, INFLATION, 100);
        inbox = new BatchInbox(
            owner,
            sequencer,
            ISkuView(address(skus)),
            IBridgeInbox(address(bridge)),
            IRewardsInbox(address(rewards)),
            WINDOW
        );
        vm.startPrank(owner);
        bridge.setModules(address(inbox), address(rewards));
        rewards.setInbox(address(inbox));
        skus.registerSku(SKU, _sku(1));
        vm.stopPrank();

        _stakeWorker(worker, 10 ether);
        _stakeWorker(worker2, 10 ether);
        vm.deal(buyer, 100 ether);
        vm.prank(buyer);
        bridge.depositEscrow{value: 50 ether}();
    }

    function _sku(uint16 steps) internal pure returns (SkuRegistry.Sku memory s) {
        s.weightRoot = keccak256("weights");
        s.tokenizerHash = keccak256("tokenizer");
        s.configHash = keccak256("config");
        s.pricePerToken = PRICE;
        s.epsQ32 = 42950;
        s.softmaxC = 1 << 37;
        s.vocab = 1000;
        s.layers = steps;
        s.arithVersion = 3;
    }

    function _shape(uint16 hq, uint16 hkv, uint16 d, uint32 maxSeq)
        internal
        pure
        returns (SkuRegistry.Shape memory sh)
    {
        sh.heads = hq;
        sh.kvHeads = hkv;
        sh.headDim = d;
        sh.maxSeq = maxSeq;
        sh.eosIds = new uint32[](1);
        sh.eosIds[0] = 2;
    }

    function _stakeWorker(address who, uint256 amount) internal {
        vm.deal(who, amount);
        vm.startPrank(who);
        bridge.depositStake{value: amount}(bridge.ROLE_WORKER() | bridge.ROLE_VERIFIER());
        bridge.setSku(SKU, true);
        vm.stopPrank();
    }

    function _job(uint64 nonce, uint256 maxPrice) internal view returns (SignedJob memory sj) {
        sj.inputs = abi.encodePacked("prompt", nonce);
        sj.request = JobRequest({
            buyer: buyer,
            skuId: SKU,
            inputsHash: keccak256(sj.inputs),
            maxNewTokens: 16,
            maxPrice: maxPrice,
            nonce: nonce
        });
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(buyerKey, inbox.jobDigest(sj.request));
        sj.signature = abi.encodePacked(r, s, v);
    }

    function _receipt(bytes32 jobId, address w, uint32 shard, uint64 tokens, bytes32 traceRoot)
        internal
        pure
        returns (Receipt memory r)
    {
        r = Receipt({
            jobId: jobId,
            shardIndex: shard,
            skuId: SKU,
            worker: w,
            inputRoot: keccak256("in"),
            outputRoot: keccak256("out"),
            traceRoot: traceRoot,
            stepCount: 23,
            tokensProcessed: tokens
        });
    }

    function _signReceipt(Receipt memory r, uint256 key) internal view returns (bytes memory) {
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(key, inbox.receiptDigest(r));
        return abi.encodePacked(rr, s, v);
    }

    /// @dev Posts one new job with one receipt per given worker key; returns batch id and parts.
    function _postSimple(uint64 nonce, uint64 tokens, bytes32 traceRoot)
        internal
        returns (uint256 batchId, bytes32 jobId, Receipt[] memory rs)
    {
        SignedJob[] memory js = new SignedJob[](1);
        js[0] = _job(nonce, 1 ether);
        jobId = inbox.jobDigest(js[0].request);
        rs = new Receipt[](1);
        rs[0] = _receipt(jobId, worker, 0, tokens, traceRoot);
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = _signReceipt(rs[0], workerKey);
        vm.prank(sequencer);
        batchId = inbox.postBatch(js, rs, sigs);
    }
}
