// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Fixture} from "./Fixture.sol";
import {SkuRegistry} from "../src/SkuRegistry.sol";
import {DisputeGame} from "../src/DisputeGame.sol";
import {IBridgeGame, IInboxGame} from "../src/interfaces/IGameHooks.sol";
import {StepProver} from "../src/StepProver.sol";
import {FoldProver} from "../src/FoldProver.sol";

/// @dev Exposes `_slashOnce` over a stored game of one receipt.
contract SlashOnceHarness is DisputeGame {
    constructor(IBridgeGame b, IInboxGame i, Params memory p)
        DisputeGame(b, i, SkuRegistry(address(0)), StepProver(address(0)), FoldProver(address(0)), p)
    {}

    function slashOnce(address defender, address challenger, uint256 bps) external returns (uint256) {
        Game storage g = games.push();
        g.defender = defender;
        g.challenger = challenger;
        g.batchId = 7;
        g.receiptHash = keccak256("receipt");
        return _slashOnce(g, bps);
    }
}

/// @dev Several games prove the same receipt wrong, with verdicts in any order: the worker
/// loses the heaviest verdict's share of its stake once, and is struck once (issue #9, attack 2).
contract SlashOnceTest is Fixture {
    SlashOnceHarness internal h;

    function setUp() public override {
        super.setUp();
        h = new SlashOnceHarness(
            IBridgeGame(address(bridge)),
            IInboxGame(address(inbox)),
            DisputeGame.Params(4, 1 days, 0, 1 ether, 0, 5000, 1000, 5000)
        );
        vm.prank(owner);
        bridge.registerGame(address(h));
    }

    function testFuzz_slashedOnceUpToTheHeaviestVerdict(uint16 a, uint16 b, uint16 c) public {
        uint256[3] memory v = [bound(a, 0, 10_000), bound(b, 0, 10_000), bound(c, 0, 10_000)];
        uint256 before = bridge.account(worker).stake;
        uint256 heaviest;
        uint256 taken;
        for (uint256 i = 0; i < 3; ++i) {
            address ch = address(uint160(0xC0 + i));
            uint256 got = h.slashOnce(worker, ch, v[i]);
            if (v[i] <= heaviest) assertEq(got, 0, "no verdict at or below the heaviest slashes");
            if (v[i] > heaviest) heaviest = v[i];
            taken += got;
            uint256 want = before * heaviest / 10_000;
            // A later top-up is a whole number of basis points of what is left, rounded down:
            // at most one basis point of the stake short per top-up (two here).
            assertLe(taken, want, "never more than the heaviest verdict");
            assertLe(want - taken, 2 * before / 10_000, "the heaviest verdict's share in all");
            assertEq(bridge.rewardOwed(ch), got / 2, "the winner is paid on what its game took");
        }
        assertEq(bridge.account(worker).stake, before - taken, "stake");
        assertEq(bridge.account(worker).strikes, heaviest == 0 ? 0 : 1, "struck once");
    }
}
