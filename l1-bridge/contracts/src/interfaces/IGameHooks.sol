// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Receipt} from "../Types.sol";

/// @notice The inbox calls of the game.
interface IInboxGame {
    function verifyReceipt(uint256 batchId, Receipt calldata receipt, uint256 index, bytes32[] calldata proof)
        external
        view
        returns (bytes32);
    function onDisputeOpened(uint256 batchId) external;
    function onDisputeClosed(uint256 batchId, bytes32 receiptHash, bool fraud) external;
    function challengeWindow() external view returns (uint64);
}

/// @notice The bridge calls of the game.
interface IBridgeGame {
    function slash(address account, uint256 bps, address beneficiary, uint256 rewardBps) external returns (uint256);
    function strike(address account) external;
}
