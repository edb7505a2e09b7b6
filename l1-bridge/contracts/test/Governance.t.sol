// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Fixture} from "./Fixture.sol";
import {Owned} from "../src/Types.sol";
import {StakeBridge, IGameLimits} from "../src/StakeBridge.sol";
import {SkuRegistry} from "../src/SkuRegistry.sol";
import {Timelock} from "../src/Timelock.sol";

/// @dev A game contract whose slashes the test drives (honest or rogue alike: the bridge only
/// sees a registered address).
contract SlasherGame is IGameLimits {
    StakeBridge internal immutable bridge;
    uint256 public maxDuration = 2 hours;

    constructor(StakeBridge b) {
        bridge = b;
    }

    function slashAll(address who, address to) external returns (uint256) {
        return bridge.slash(who, 10_000, to, 10_000);
    }

    function strike(address who) external {
        bridge.strike(who);
    }
}

/// @dev Attack 8 (owner registers a rogue game and slashes at once) and attack 4 (the strike
/// counter overflows), with every contract owned by the timelock as in production.
contract GovernanceTest is Fixture {
    uint256 internal constant DELAY = UNBONDING + 1 days;
    address internal admin = address(0xAD);
    address internal guardianAddr = address(0x6A2D);
    address internal thief = address(0x7E1F);
    Timelock internal tl;
    SlasherGame internal honest;

    function setUp() public override {
        super.setUp();
        honest = new SlasherGame(bridge);
        tl = new Timelock(admin, guardianAddr, DELAY);
        vm.startPrank(owner);
        bridge.registerGame(address(honest));
        bridge.setGuardian(guardianAddr);
        bridge.transferOwnership(address(tl));
        inbox.transferOwnership(address(tl));
        skus.transferOwnership(address(tl));
        rewards.transferOwnership(address(tl));
        vm.stopPrank();
    }

    function _schedule(address target, bytes memory data) internal returns (bytes32 id) {
        vm.prank(admin);
        id = tl.schedule(target, 0, data, bytes32(0));
    }

    function test_timelockDelayOutlastsUnbonding() public view {
        assertTrue(tl.delay() > bridge.unbondingDelay(), "stakers can leave first");
        assertEq(bridge.owner(), address(tl), "bridge owned by the timelock");
        assertEq(skus.owner(), address(tl), "registry owned by the timelock");
    }

    function test_attack8_instantRogueSlashImpossible() public {
        SlasherGame rogue = new SlasherGame(bridge);
        // The old owner and the admin cannot register directly.
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, owner));
        bridge.registerGame(address(rogue));
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, admin));
        bridge.registerGame(address(rogue));
        // Through the timelock it cannot run before the delay.
        bytes memory data = abi.encodeCall(StakeBridge.registerGame, (address(rogue)));
        bytes32 id = _schedule(address(bridge), data);
        vm.expectRevert(abi.encodeWithSelector(Timelock.NotReady.selector, id, block.timestamp + DELAY));
        tl.execute(address(bridge), 0, data, bytes32(0));
        vm.warp(block.timestamp + DELAY - 1);
        vm.expectRevert(abi.encodeWithSelector(Timelock.NotReady.selector, id, block.timestamp + 1));
        tl.execute(address(bridge), 0, data, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.NotGame.selector, address(rogue)));
        rogue.slashAll(worker, thief);
        // Same for the other privileged knobs: a SKU price change waits too.
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, admin));
        skus.setPrice(SKU, 1 ether);
    }

    function test_attack8_stakerLeavesBeforeHostileChange() public {
        SlasherGame rogue = new SlasherGame(bridge);
        bytes memory data = abi.encodeCall(StakeBridge.registerGame, (address(rogue)));
        _schedule(address(bridge), data);
        // The worker sees the Scheduled event and leaves.
        vm.warp(block.timestamp + 1 hours);
        vm.prank(worker);
        bridge.requestUnbond(10 ether);
        vm.warp(block.timestamp + UNBONDING);
        uint256 before = worker.balance;
        vm.prank(worker);
        bridge.withdrawStake();
        assertEq(worker.balance - before, 10 ether, "left with everything");
        vm.warp(block.timestamp + DELAY);
        tl.execute(address(bridge), 0, data, bytes32(0));
        assertTrue(bridge.isGame(address(rogue)), "hostile change landed");
        assertEq(rogue.slashAll(worker, thief), 0, "nothing left to take");
    }

    function test_attack8_guardianRevertsRogueSlash() public {
        SlasherGame rogue = new SlasherGame(bridge);
        bytes memory data = abi.encodeCall(StakeBridge.registerGame, (address(rogue)));
        _schedule(address(bridge), data);
        vm.warp(block.timestamp + DELAY);
        tl.execute(address(bridge), 0, data, bytes32(0));
        // worker2 stayed; the rogue game takes everything for the thief.
        assertEq(rogue.slashAll(worker2, thief), 10 ether, "rogue slash");
        uint256 sid = bridge.slashCount() - 1;
        assertEq(bridge.rewardOwed(thief), 10 ether, "credited, not paid");
        vm.prank(thief);
        vm.expectRevert(
            abi.encodeWithSelector(StakeBridge.StillLocked.selector, uint64(block.timestamp + PAYOUT_DELAY))
        );
        bridge.claimSlashReward();
        // The thief cannot revert slashes; the guardian can, inside the delay.
        vm.prank(thief);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.NotGuardian.selector, thief));
        bridge.revertSlash(sid);
        vm.startPrank(guardianAddr);
        bridge.deregisterGame(address(rogue));
        bridge.revertSlash(sid);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.SlashAlreadyReverted.selector, sid));
        bridge.revertSlash(sid);
        vm.stopPrank();
        assertEq(bridge.rewardOwed(thief), 0, "reward taken back");
        assertEq(bridge.account(worker2).pending, 10 ether, "stake restored (unbonding)");
        // A deregistered game's calls succeed (its games still resolve) but take nothing.
        assertEq(rogue.slashAll(worker2, thief), 0, "retired game takes nothing");
        rogue.strike(worker2);
        assertEq(bridge.account(worker2).strikes, 0, "nor strikes");
        assertEq(bridge.rewardOwed(thief), 0, "nothing credited");
        vm.prank(guardianAddr);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.NotGame.selector, address(rogue)));
        bridge.deregisterGame(address(rogue));
        vm.warp(block.timestamp + PAYOUT_DELAY);
        vm.prank(thief);
        vm.expectRevert(StakeBridge.NothingPending.selector);
        bridge.claimSlashReward();
        vm.warp(block.timestamp + UNBONDING);
        uint256 before = worker2.balance;
        vm.prank(worker2);
        bridge.withdrawStake();
        assertEq(worker2.balance - before, 10 ether, "victim made whole");
        _conserved();
    }

    function test_honestSlashPaysAfterDelayAndIsFinal() public {
        assertEq(honest.slashAll(worker, worker2), 10 ether, "slashed");
        uint256 sid = bridge.slashCount() - 1;
        vm.warp(block.timestamp + PAYOUT_DELAY);
        vm.prank(guardianAddr);
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.SlashFinal.selector, sid, block.timestamp));
        bridge.revertSlash(sid);
        vm.prank(guardianAddr);
        bridge.setPaused(true);
        vm.prank(worker2);
        vm.expectRevert(StakeBridge.Paused.selector);
        bridge.claimSlashReward();
        vm.prank(guardianAddr);
        bridge.setPaused(false);
        uint256 before = worker2.balance;
        vm.prank(worker2);
        bridge.claimSlashReward();
        assertEq(worker2.balance - before, 10 ether, "paid after the delay");
        vm.expectRevert(abi.encodeWithSelector(StakeBridge.UnknownSlash.selector, sid + 1));
        bridge.slashRecord(sid + 1);
        _conserved();
    }

    function test_attack8_guardianCanPauseButNotSteal() public {
        vm.startPrank(guardianAddr);
        // Cannot schedule, cannot execute an unscheduled call, cannot act as owner anywhere.
        vm.expectRevert(abi.encodeWithSelector(Timelock.NotAdmin.selector, guardianAddr));
        tl.schedule(address(bridge), 0, abi.encodeCall(StakeBridge.registerGame, (guardianAddr)), bytes32(0));
        bytes memory data = abi.encodeCall(Owned.transferOwnership, (guardianAddr));
        vm.expectRevert(
            abi.encodeWithSelector(Timelock.NotScheduled.selector, tl.operationId(address(bridge), 0, data, bytes32(0)))
        );
        tl.execute(address(bridge), 0, data, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, guardianAddr));
        bridge.registerGame(guardianAddr);
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, guardianAddr));
        bridge.setGuardian(guardianAddr);
        vm.expectRevert(abi.encodeWithSelector(Timelock.NotSelf.selector, guardianAddr));
        tl.setAdmin(guardianAddr);
        vm.expectRevert(StakeBridge.NothingPending.selector);
        bridge.claimSlashReward();
        // Can pause payouts, and can veto a scheduled call.
        bridge.setPaused(true);
        vm.stopPrank();
        bytes32 id = _schedule(address(bridge), abi.encodeCall(StakeBridge.setGuardian, (thief)));
        vm.prank(guardianAddr);
        tl.cancel(id);
        assertEq(tl.readyAt(id), 0, "vetoed");
        vm.prank(thief);
        vm.expectRevert(abi.encodeWithSelector(Timelock.NotAdminOrGuardian.selector, thief));
        tl.cancel(id);
        // A pause never traps stakers or buyers.
        vm.prank(worker);
        bridge.requestUnbond(1 ether);
        vm.prank(buyer);
        bridge.requestEscrowWithdrawal(1 ether);
        vm.warp(block.timestamp + UNBONDING);
        vm.prank(worker);
        bridge.withdrawStake();
        vm.prank(buyer);
        bridge.withdrawEscrow();
        // The guardian's account got nothing.
        assertEq(guardianAddr.balance, 0, "guardian holds nothing");
        assertEq(bridge.rewardOwed(guardianAddr), 0, "nothing owed to it");
    }

    function test_timelockAdminRotationAndGuards() public {
        vm.expectRevert(abi.encodeWithSelector(Timelock.DelayTooShort.selector, 59 minutes));
        new Timelock(admin, guardianAddr, 59 minutes);
        bytes memory data = abi.encodeCall(Timelock.setAdmin, (address(0xB0)));
        bytes32 id = _schedule(address(tl), data);
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(Timelock.AlreadyScheduled.selector, id));
        tl.schedule(address(tl), 0, data, bytes32(0));
        vm.warp(block.timestamp + DELAY);
        tl.execute(address(tl), 0, data, bytes32(0));
        assertEq(tl.admin(), address(0xB0), "rotated");
        vm.expectRevert(abi.encodeWithSelector(Timelock.NotScheduled.selector, id));
        tl.execute(address(tl), 0, data, bytes32(0));
        bytes memory g = abi.encodeCall(Timelock.setGuardian, (address(0xC0)));
        vm.prank(address(0xB0));
        tl.schedule(address(tl), 0, g, bytes32(0));
        vm.warp(block.timestamp + DELAY);
        tl.execute(address(tl), 0, g, bytes32(0));
        assertEq(tl.guardian(), address(0xC0), "guardian rotated");
        // A call that reverts reports it.
        bytes memory bad = abi.encodeCall(SkuRegistry.setPrice, (bytes32(uint256(9)), 1));
        vm.prank(address(0xB0));
        bytes32 bid = tl.schedule(address(skus), 0, bad, bytes32(0));
        vm.warp(block.timestamp + DELAY);
        vm.expectRevert(
            abi.encodeWithSelector(
                Timelock.CallFailed.selector,
                bid,
                abi.encodeWithSelector(SkuRegistry.UnknownSku.selector, bytes32(uint256(9)))
            )
        );
        tl.execute(address(skus), 0, bad, bytes32(0));
    }

    // ---------------------------------------------------------------- attack 4: strikes

    function test_attack4_strikesNeverRevertAfterRemoval() public {
        // maxStrikes is 3: before the fix the 256th strike overflowed the uint8 and reverted,
        // freezing every later resolution (and so finalization) against that worker.
        for (uint256 i = 0; i < 300; ++i) {
            honest.strike(worker);
        }
        StakeBridge.Account memory a = bridge.account(worker);
        assertTrue(a.removed, "removed at 3");
        assertEq(a.strikes, 3, "not counted after removal");
        assertEq(honest.slashAll(worker, worker2), 10 ether, "still slashable while unbonding");
    }

    function test_attack4_strikeCounterSaturatesAtBoundary() public {
        StakeBridge b = new StakeBridge(owner, UNBONDING, ESCROW_DELAY, MIN_STAKE, 255, PAYOUT_DELAY);
        vm.startPrank(owner);
        b.setModules(address(inbox), address(rewards));
        SlasherGame g = new SlasherGame(b);
        b.registerGame(address(g));
        vm.stopPrank();
        address w = address(0x5711);
        vm.deal(w, 2 ether);
        vm.prank(w);
        b.depositStake{value: 2 ether}(1);
        for (uint256 i = 0; i < 254; ++i) {
            g.strike(w);
        }
        assertEq(b.account(w).strikes, 254, "254");
        assertTrue(!b.account(w).removed, "not yet");
        g.strike(w); // 255 = type(uint8).max = maxStrikes
        assertTrue(b.account(w).removed, "removed at 255");
        g.strike(w); // would have been 256
        g.strike(w);
        assertEq(b.account(w).strikes, 255, "saturated");
        vm.expectRevert(StakeBridge.BadConfig.selector);
        new StakeBridge(owner, UNBONDING, ESCROW_DELAY, MIN_STAKE, 0, PAYOUT_DELAY);
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
}
