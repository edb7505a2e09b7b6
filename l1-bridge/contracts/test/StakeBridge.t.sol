// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Fixture} from "./Fixture.sol";
import {Base} from "./Base.sol";
import {StakeBridge, IGameLimits} from "../src/StakeBridge.sol";
import {SkuRegistry} from "../src/SkuRegistry.sol";
import {Owned} from "../src/Types.sol";

/// @dev A stand-in game contract: only its `maxDuration` matters to the bridge, and the tests
/// call `slash`/`strike` from its address.
contract FakeGame is IGameLimits {
    uint256 public maxDuration;

    constructor(uint256 d) {
        maxDuration = d;
    }
}

contract RejectEther {
    receive() external payable {
        revert("no");
    }
}

contract StakeBridgeTest is Fixture {
    FakeGame internal game;

    function setUp() public override {
        super.setUp();
        game = new FakeGame(1 days);
        vm.prank(owner);
        bridge.registerGame(address(game));
    }

    function _conserved() internal view {
        assertEq(
            bridge.totalStakeDeposited(),
            bridge.totalStaked() + bridge.totalUnbonding() + bridge.totalStakeWithdrawn() + bridge.totalSlashPaid()
                + bridge.totalBurned(),
            "stake conservation"
        );
        assertEq(
            address(bridge).balance,
            bridge.totalStaked() + bridge.totalUnbonding() + bridge.totalBurned() + bridge.totalEscrow()
                + bridge.heldFees() + bridge.totalSlashPaid() - bridge.totalSlashClaimed(),
            "ether accounted"
        );
    }

    function test_depositSetsRolesAndTotals() public {
        StakeBridge.Account memory a = bridge.account(worker);
        assertEq(a.stake, 10 ether, "stake");
        assertEq(a.roles, 3, "roles");
        assertTrue(bridge.isWorkerFor(worker, SKU), "serves");
        assertTrue(!bridge.isWorkerFor(worker, bytes32(uint256(1))), "other sku");
        assertEq(bridge.totalStaked(), 20 ether, "total");
        _conserved();
    }

    function test_depositReverts() public {
        address x = address(0x1234);
        vm.deal(x, 10 ether);
        vm.startPrank(x);
        vm.expectRevert(StakeBridge.ZeroAmount.selector);
        bridge.depositStake(1);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.InvalidRoles.selector, uint8(0)));
        bridge.depositStake{value: 1 ether}(0);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.InvalidRoles.selector, uint8(4)));
        bridge.depositStake{value: 1 ether}(4);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.BelowMinStake.selector, 0.5 ether, MIN_STAKE));
        bridge.depositStake{value: 0.5 ether}(1);
        vm.stopPrank();
    }

    function test_setRolesAndSku() public {
        vm.prank(worker);
        bridge.setRoles(2);
        assertTrue(!bridge.isWorkerFor(worker, SKU), "verifier only");
        assertTrue(bridge.hasRole(worker, 2), "verifier");
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.NotWorker.selector, worker));
        bridge.setSku(SKU, false);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.InvalidRoles.selector, uint8(7)));
        bridge.setRoles(7);
        vm.prank(address(0x99));
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.InsufficientStake.selector, 0, MIN_STAKE));
        bridge.setRoles(1);
        vm.prank(worker2);
        bridge.setSku(SKU, false);
        assertTrue(!bridge.isWorkerFor(worker2, SKU), "stopped serving");
    }

    function test_unbondWaitsForDelay() public {
        vm.prank(worker);
        bridge.requestUnbond(4 ether);
        assertEq(bridge.account(worker).pending, 4 ether, "pending");
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.StillLocked.selector, uint64(block.timestamp + UNBONDING)));
        bridge.withdrawStake();
        vm.warp(block.timestamp + UNBONDING);
        uint256 before = worker.balance;
        vm.prank(worker);
        bridge.withdrawStake();
        assertEq(worker.balance - before, 4 ether, "paid");
        vm.prank(worker);
        vm.expectRevert(StakeBridge.NothingPending.selector);
        bridge.withdrawStake();
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.InsufficientStake.selector, 6 ether, 7 ether));
        bridge.requestUnbond(7 ether);
        vm.prank(worker);
        vm.expectRevert(StakeBridge.ZeroAmount.selector);
        bridge.requestUnbond(0);
        _conserved();
    }

    function test_slashOnlyByGameTakesPendingToo() public {
        vm.prank(worker);
        bridge.requestUnbond(8 ether); // 2 bonded, 8 unbonding
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.NotGame.selector, address(this)));
        bridge.slash(worker, 5000, address(this), 5000);
        vm.prank(address(game));
        uint256 taken = bridge.slash(worker, 5000, worker2, 4000);
        assertEq(taken, 5 ether, "half of 10");
        StakeBridge.Account memory a = bridge.account(worker);
        assertEq(a.stake, 0, "bonded first");
        assertEq(a.pending, 5 ether, "then pending");
        assertEq(bridge.rewardOwed(worker2), 2 ether, "40% owed");
        assertEq(bridge.totalBurned(), 3 ether, "60% burned");
        uint256 before = worker2.balance;
        vm.prank(worker2);
        vm.expectRevert(
            abi.encodeWithSelector(StakeBridge.StillLocked.selector, uint64(block.timestamp + PAYOUT_DELAY))
        );
        bridge.claimSlashReward();
        vm.warp(block.timestamp + PAYOUT_DELAY);
        vm.prank(worker2);
        bridge.claimSlashReward();
        assertEq(worker2.balance - before, 2 ether, "claimed");
        vm.prank(worker2);
        vm.expectRevert(StakeBridge.NothingPending.selector);
        bridge.claimSlashReward();
        vm.prank(address(game));
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.BadBps.selector, 10_001));
        bridge.slash(worker, 10_001, worker2, 0);
        vm.prank(address(game));
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.BadBps.selector, 10_001));
        bridge.slash(worker, 1, worker2, 10_001);
        _conserved();
    }

    function test_strikesRemoveAtMax() public {
        vm.startPrank(address(game));
        bridge.strike(worker);
        bridge.strike(worker);
        assertTrue(bridge.isWorkerFor(worker, SKU), "two strikes");
        bridge.strike(worker);
        vm.stopPrank();
        StakeBridge.Account memory a = bridge.account(worker);
        assertTrue(a.removed, "removed");
        assertEq(a.stake, 0, "no bonded stake");
        assertEq(a.pending, 10 ether, "all unbonding");
        assertTrue(!bridge.isWorkerFor(worker, SKU), "not a worker");
        vm.deal(worker, 1 ether);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.AccountRemoved.selector, worker));
        bridge.depositStake{value: 1 ether}(1);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.AccountRemoved.selector, worker));
        bridge.setRoles(1);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.NotGame.selector, address(this)));
        bridge.strike(worker);
        _conserved();
    }

    function test_escrowFlow() public {
        assertEq(bridge.escrow(buyer).balance, 50 ether, "deposited");
        vm.prank(buyer);
        bridge.requestEscrowWithdrawal(20 ether);
        vm.prank(buyer);
        vm.expectRevert(
            abi.encodeWithSelector(StakeBridge.StillLocked.selector, uint64(block.timestamp + ESCROW_DELAY))
        );
        bridge.withdrawEscrow();
        vm.warp(block.timestamp + ESCROW_DELAY);
        uint256 before = buyer.balance;
        vm.prank(buyer);
        bridge.withdrawEscrow();
        assertEq(buyer.balance - before, 20 ether, "withdrawn");
        vm.prank(buyer);
        vm.expectRevert(StakeBridge.NothingPending.selector);
        bridge.withdrawEscrow();
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.InsufficientEscrow.selector, buyer, 30 ether, 31 ether));
        bridge.requestEscrowWithdrawal(31 ether);
        vm.prank(buyer);
        vm.expectRevert(StakeBridge.ZeroAmount.selector);
        bridge.requestEscrowWithdrawal(0);
        vm.expectRevert(StakeBridge.ZeroAmount.selector);
        bridge.depositEscrow();
        _conserved();
    }

    function test_inboxOnlyCalls() public {
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.NotInbox.selector, address(this)));
        bridge.charge(buyer, 1);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.NotInbox.selector, address(this)));
        bridge.refund(buyer, 1);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.NotInbox.selector, address(this)));
        bridge.releaseFees(1);
        vm.startPrank(address(inbox));
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.InsufficientEscrow.selector, buyer, 50 ether, 51 ether));
        bridge.charge(buyer, 51 ether);
        bridge.charge(buyer, 3 ether);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.InsufficientHeldFees.selector, 3 ether, 4 ether));
        bridge.refund(buyer, 4 ether);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.InsufficientHeldFees.selector, 3 ether, 4 ether));
        bridge.releaseFees(4 ether);
        bridge.refund(buyer, 1 ether);
        bridge.releaseFees(2 ether);
        vm.stopPrank();
        assertEq(address(rewards).balance, 2 ether, "fees in rewards");
        assertEq(bridge.escrow(buyer).balance, 48 ether, "escrow after");
        _conserved();
    }

    function test_wiringGuards() public {
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, address(this)));
        bridge.registerGame(address(game));
        vm.prank(owner);
        vm.expectRevert(StakeBridge.ModulesAlreadySet.selector);
        bridge.setModules(address(1), address(2));
        FakeGame slow = new FakeGame(UNBONDING);
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(StakeBridge.UnbondingTooShort.selector, UNBONDING, uint256(WINDOW) + UNBONDING)
        );
        bridge.registerGame(address(slow));
        StakeBridge fresh = new StakeBridge(owner, UNBONDING, 1, 1, 1, 1);
        vm.prank(owner);
        vm.expectRevert(StakeBridge.ModulesNotSet.selector);
        fresh.registerGame(address(game));
    }

    function test_transferFailureReverts() public {
        RejectEther r = new RejectEther();
        vm.deal(address(r), 2 ether);
        vm.startPrank(address(r));
        bridge.depositStake{value: 2 ether}(2);
        bridge.requestUnbond(2 ether);
        vm.warp(block.timestamp + UNBONDING);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.TransferFailed.selector, address(r), 2 ether));
        bridge.withdrawStake();
        vm.stopPrank();
    }

    function testFuzz_slashNeverBreaksConservation(uint96 stakeAmt, uint96 unbondAmt, uint16 bps, uint16 rbps) public {
        uint256 s = bound(stakeAmt, MIN_STAKE, 1000 ether);
        uint256 u = bound(unbondAmt, 0, s);
        bps = uint16(bound(bps, 0, 10_000));
        rbps = uint16(bound(rbps, 0, 10_000));
        address x = address(0xF00);
        vm.deal(x, s);
        vm.startPrank(x);
        bridge.depositStake{value: s}(1);
        if (u != 0) bridge.requestUnbond(uint128(u));
        vm.stopPrank();
        vm.prank(address(game));
        uint256 taken = bridge.slash(x, bps, worker, rbps);
        assertEq(taken, s * bps / 10_000, "taken");
        StakeBridge.Account memory a = bridge.account(x);
        assertEq(uint256(a.stake) + a.pending, s - taken, "left");
        _conserved();
    }
}

/// @dev Random sequences of deposits, unbonds, withdrawals, slashes, strikes and escrow moves by a
/// handful of actors; the invariant checks that every wei of stake is accounted for.
contract StakeHandler is Base {
    StakeBridge internal bridge;
    address internal game;
    address[4] internal actors = [address(0x1001), address(0x1002), address(0x1003), address(0x1004)];

    constructor(StakeBridge b, address g) {
        bridge = b;
        game = g;
    }

    function deposit(uint256 who, uint96 amount) external {
        address a = actors[who % 4];
        uint256 v = 1 ether + (uint256(amount) % 100 ether);
        vm.deal(a, v);
        vm.prank(a);
        try bridge.depositStake{value: v}(1) {} catch {}
    }

    function unbond(uint256 who, uint96 amount) external {
        address a = actors[who % 4];
        uint128 st = bridge.account(a).stake;
        if (st == 0) return;
        vm.prank(a);
        bridge.requestUnbond(uint128(1 + uint256(amount) % st));
    }

    function withdraw(uint256 who, uint32 dt) external {
        address a = actors[who % 4];
        vm.warp(block.timestamp + dt);
        vm.prank(a);
        try bridge.withdrawStake() {} catch {}
    }

    function slash(uint256 who, uint16 bps, uint16 rbps, uint256 to) external {
        vm.prank(game);
        bridge.slash(actors[who % 4], bps % 10_001, actors[to % 4], rbps % 10_001);
    }

    function strike(uint256 who) external {
        vm.prank(game);
        bridge.strike(actors[who % 4]);
    }

    function claim(uint256 who) external {
        vm.prank(actors[who % 4]);
        try bridge.claimSlashReward() {} catch {}
    }

    /// @dev The owner (guardian role) reverting a recent slash must keep every wei accounted.
    function revertSlash(uint256 id, uint32 dt) external {
        uint256 n = bridge.slashCount();
        if (n == 0) return;
        vm.warp(block.timestamp + (dt % 2 days));
        vm.prank(bridge.owner());
        try bridge.revertSlash(id % n) {} catch {}
    }
}

contract StakeInvariantTest is Fixture {
    StakeHandler internal handler;

    function setUp() public override {
        super.setUp();
        FakeGame g = new FakeGame(1 days);
        vm.prank(owner);
        bridge.registerGame(address(g));
        handler = new StakeHandler(bridge, address(g));
    }

    /// @dev Forge fuzzes only the handler.
    function targetContracts() public view returns (address[] memory t) {
        t = new address[](1);
        t[0] = address(handler);
    }

    function invariant_stakeConservation() public view {
        assertEq(
            bridge.totalStakeDeposited(),
            bridge.totalStaked() + bridge.totalUnbonding() + bridge.totalStakeWithdrawn() + bridge.totalSlashPaid()
                + bridge.totalBurned(),
            "stake conservation"
        );
        assertEq(
            address(bridge).balance,
            bridge.totalStaked() + bridge.totalUnbonding() + bridge.totalBurned() + bridge.totalEscrow()
                + bridge.heldFees() + bridge.totalSlashPaid() - bridge.totalSlashClaimed(),
            "ether accounted"
        );
    }
}
