// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Merkle
/// @notice keccak256 Merkle trees exactly as `primitives/src/merkle.rs` builds them:
/// leaf = keccak256(0x00 ‖ row bytes), node = keccak256(0x01 ‖ left ‖ right), leaves padded to a
/// power of two with zero leaves (used as they are), proofs are sibling lists from the leaf up.
library Merkle {
    /// @notice A proof's index has bits above its length (it would alias another leaf).
    error IndexOutOfRange(uint256 index, uint256 depth);
    /// @notice A proof has the wrong number of siblings for the tree it is checked against.
    error WrongProofLength(uint256 got, uint256 want);

    /// @dev Hash of a leaf whose row bytes are in calldata.
    function leafHash(bytes calldata row) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore8(p, 0)
            calldatacopy(add(p, 1), row.offset, row.length)
            h := keccak256(p, add(row.length, 1))
        }
    }

    /// @dev Hash of a leaf whose row bytes are in memory.
    function leafHashMem(bytes memory row) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(bytes1(0x00), row));
    }

    /// @dev Hash of an inner node.
    function node(bytes32 l, bytes32 r) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore8(p, 1)
            mstore(add(p, 1), l)
            mstore(add(p, 33), r)
            h := keccak256(p, 65)
        }
    }

    /// @dev Root of an all-zero subtree of height `h`.
    function zeroHash(uint256 h) internal pure returns (bytes32 z) {
        for (uint256 i = 0; i < h; ++i) {
            z = node(z, z);
        }
    }

    /// @dev Levels above the leaves of a tree of `n` leaves (0 for n <= 1).
    function depthFor(uint256 n) internal pure returns (uint256 d) {
        if (n <= 1) return 0;
        uint256 m = n - 1;
        while (m != 0) {
            ++d;
            m >>= 1;
        }
    }

    /// @dev The root reached from `leaf` at `index` through `siblings`; the index must fit the
    /// proof's depth so that one proof cannot be replayed for another position.
    function rootOf(bytes32 leaf, uint256 index, bytes32[] calldata siblings) internal pure returns (bytes32 h) {
        uint256 n = siblings.length;
        if (n < 256 && index >> n != 0) revert IndexOutOfRange(index, n);
        h = leaf;
        for (uint256 i = 0; i < n; ++i) {
            h = (index >> i) & 1 == 0 ? node(h, siblings[i]) : node(siblings[i], h);
        }
    }

    /// @dev `rootOf`, with the proof length pinned to the depth of a tree of `leaves` leaves.
    function rootOfSized(bytes32 leaf, uint256 index, bytes32[] calldata siblings, uint256 leaves)
        internal
        pure
        returns (bytes32)
    {
        uint256 want = depthFor(leaves);
        if (siblings.length != want) revert WrongProofLength(siblings.length, want);
        if (index >= leaves) revert IndexOutOfRange(index, want);
        return rootOf(leaf, index, siblings);
    }

    /// @dev Root over already-hashed leaves (zero-leaf padding); overwrites `level`.
    function rootOfLeaves(bytes32[] memory level) internal pure returns (bytes32) {
        uint256 n = level.length;
        bytes32 zero;
        while (n > 1) {
            uint256 half = (n + 1) / 2;
            for (uint256 i = 0; i < half; ++i) {
                bytes32 r = 2 * i + 1 < n ? level[2 * i + 1] : zero;
                level[i] = node(level[2 * i], r);
            }
            zero = node(zero, zero);
            n = half;
        }
        return n == 0 ? bytes32(0) : level[0];
    }

    /// @dev Root of a committed vector (weight scales, biases, tables): leaves are chunks of 256
    /// four-byte elements (1024 bytes, the last one shorter), as `arith::vec_chunks_*`.
    function vectorRoot(bytes calldata data) internal pure returns (bytes32) {
        uint256 n = (data.length + 1023) / 1024;
        bytes32[] memory leaves = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            uint256 end = (i + 1) * 1024;
            if (end > data.length) end = data.length;
            leaves[i] = leafHash(data[i * 1024:end]);
        }
        return rootOfLeaves(leaves);
    }
}
