// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice What a worker claims about one shard; identical to `primitives::Receipt`.
/// `receiptHash = keccak256(abi.encode(receipt))`.
struct Receipt {
    bytes32 jobId;
    uint32 shardIndex;
    bytes32 skuId;
    address worker;
    bytes32 inputRoot;
    bytes32 outputRoot;
    bytes32 traceRoot;
    uint64 stepCount;
    uint64 tokensProcessed;
}

/// @notice A buyer's job as signed (EIP-712, domain "Verinfer"/"1"/chain/BatchInbox). The jobId
/// is the EIP-712 signing hash of this struct.
struct JobRequest {
    address buyer;
    bytes32 skuId;
    bytes32 inputsHash;
    uint64 maxNewTokens;
    uint256 maxPrice;
    uint64 nonce;
}

/// @notice A job request with its signature and its inputs (calldata, for data availability);
/// `keccak256(inputs)` must equal `request.inputsHash`.
struct SignedJob {
    JobRequest request;
    bytes signature;
    bytes inputs;
}

/// @dev Shared owner guard.
abstract contract Owned {
    /// @notice The caller is not the owner.
    error NotOwner(address caller);

    /// @notice Ownership moved.
    event OwnerChanged(address indexed previous, address indexed next);

    address public owner;

    constructor(address owner_) {
        owner = owner_;
        emit OwnerChanged(address(0), owner_);
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    /// @notice Hands ownership to `next`.
    /// @param next The new owner.
    function transferOwnership(address next) external onlyOwner {
        emit OwnerChanged(owner, next);
        owner = next;
    }
}
