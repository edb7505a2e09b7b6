// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Receipt} from "../Types.sol";

/// @notice What the batch inbox asks of the audit protocol when it settles a receipt.
interface IAuditsInbox {
    /// @notice Settles the audit of receipt `index` of batch `batchId` (inbox only, at
    /// finalization, after every dispute on the batch has closed). Draws it first when nobody
    /// has; reverts while its audit is still assigned and in time.
    /// @param batchId The batch.
    /// @param index The receipt's position in the batch.
    /// @param receiptHash keccak256(abi.encode(receipt)).
    /// @param receipt The receipt (checked by the inbox against the batch root).
    /// @param fee What its buyer paid for it, wei.
    /// @param fraud Whether a game proved it fraudulent.
    /// @return workerWeight Fee weight credited to the worker (fee ÷ draw probability, less the
    /// verifier's cut; zero when not audited or fraudulent).
    /// @return tokens Verified tokens credited to the worker (tokens ÷ draw probability).
    /// @return verifier The verifier paid for a passed audit (zero when none).
    /// @return verifierWeight Its fee weight.
    function settle(
        uint256 batchId,
        uint256 index,
        bytes32 receiptHash,
        Receipt calldata receipt,
        uint256 fee,
        bool fraud
    ) external returns (uint256 workerWeight, uint256 tokens, address verifier, uint256 verifierWeight);
}

/// @notice The batch facts the audit protocol reads from the inbox.
interface IInboxAudits {
    /// @notice The receipts root, count and posting block of batch `batchId`.
    function batchFacts(uint256 batchId)
        external
        view
        returns (bytes32 receiptsRoot, uint256 receiptCount, uint256 postBlock, uint256 postedAt);
    /// @notice Checks that `receipt` is leaf `index` of batch `batchId`; returns its hash.
    function verifyReceipt(uint256 batchId, Receipt calldata receipt, uint256 index, bytes32[] calldata proof)
        external
        view
        returns (bytes32);
    /// @notice Seconds after posting during which a batch can be challenged.
    function challengeWindow() external view returns (uint64);
}

/// @notice The stake facts and powers the audit protocol uses (it is registered as a game).
interface IBridgeAudits {
    /// @notice A verifier's drawing weight: its bonded stake while it holds the verifier role.
    function verifierWeight(address who) external view returns (uint256);
    /// @notice Strikes recorded against `who`.
    function strikesOf(address who) external view returns (uint8);
    /// @notice Takes `bps` of `who`'s stake, paying `rewardBps` of it to `beneficiary`.
    function slash(address who, uint256 bps, address beneficiary, uint256 rewardBps) external returns (uint256);
}

/// @notice The game facts the audit protocol checks a failed verification against.
interface IGameAudits {
    /// @notice Who opened game `gameId`, over which batch and receipt.
    function gameFacts(uint256 gameId) external view returns (address challenger, uint256 batchId, bytes32 receiptHash);
}
