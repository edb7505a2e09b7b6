// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Base} from "./Base.sol";
import {Openings} from "../src/Openings.sol";

/// @dev Exposes the row openings of `Openings`.
contract OpeningsHarness is Openings {
    function rowIn(bytes32 root, uint256 row, bytes calldata data, bytes32[] calldata proof)
        external
        pure
        returns (bool)
    {
        return _rowIn(root, row, data, proof);
    }

    function skuRowIn(bytes32 root, uint256 row, bytes calldata data, bytes32[] calldata proof)
        external
        pure
        returns (bool)
    {
        return _skuRowIn(root, row, data, proof);
    }
}

/// @dev Rows past a tree's end (issue #9, attack 1): honest proofs of absence pass, proofs that
/// pass an inner node off as a leaf of a shallower tree do not.
contract OpeningsTest is Base {
    OpeningsHarness internal h;

    function setUp() public {
        h = new OpeningsHarness();
    }

    function _leaf(bytes memory row) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(bytes1(0), row));
    }

    function _node(bytes32 l, bytes32 r) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(bytes1(0x01), l, r));
    }

    /// @dev `n` leaves (some zero), padded to 2^depth; returns every level, leaves first.
    function _levels(bytes32[] memory leaves, uint256 depth) internal pure returns (bytes32[][] memory lv) {
        lv = new bytes32[][](depth + 1);
        lv[0] = new bytes32[](1 << depth);
        for (uint256 i = 0; i < leaves.length; ++i) {
            lv[0][i] = leaves[i];
        }
        for (uint256 d = 1; d <= depth; ++d) {
            lv[d] = new bytes32[](1 << (depth - d));
            for (uint256 i = 0; i < lv[d].length; ++i) {
                lv[d][i] = _node(lv[d - 1][2 * i], lv[d - 1][2 * i + 1]);
            }
        }
    }

    /// @dev Siblings of node `index` at height `from` up to the root.
    function _path(bytes32[][] memory lv, uint256 from, uint256 index) internal pure returns (bytes32[] memory p) {
        uint256 depth = lv.length - 1;
        p = new bytes32[](depth - from);
        for (uint256 d = from; d < depth; ++d) {
            p[d - from] = lv[d][index ^ 1];
            index >>= 1;
        }
    }

    /// @dev A past-the-tree proof: header, `pre` in words, then `sib`.
    function _past(uint256 w, bytes memory pre, bytes32[] memory sib) internal pure returns (bytes32[] memory p) {
        uint256 words = (pre.length + 31) / 32;
        p = new bytes32[](1 + words + sib.length);
        p[0] = bytes32(w | (pre.length << 64));
        bytes memory padded = bytes.concat(pre, new bytes(words * 32 - pre.length));
        for (uint256 i = 0; i < words; ++i) {
            bytes32 word;
            assembly {
                word := mload(add(add(padded, 32), mul(i, 32)))
            }
            p[1 + i] = word;
        }
        for (uint256 i = 0; i < sib.length; ++i) {
            p[1 + words + i] = sib[i];
        }
    }

    function _rows(uint256 n) internal pure returns (bytes[] memory rows, bytes32[] memory leaves) {
        rows = new bytes[](n);
        leaves = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            rows[i] = abi.encodePacked(keccak256(abi.encode("row", i)), uint32(i));
            leaves[i] = _leaf(rows[i]);
        }
    }

    function test_honestRowsPastTheTreePass() public view {
        // Four present rows: the tree is full, the witness is leaf 1 with its preimage.
        (bytes[] memory rows, bytes32[] memory leaves) = _rows(4);
        bytes32[][] memory lv = _levels(leaves, 2);
        bytes32 root = lv[2][0];
        bytes32[] memory p = _past(1, abi.encodePacked(bytes1(0), rows[1]), _path(lv, 0, 1));
        assertTrue(h.rowIn(root, 4, "", p), "row 4 absent");
        assertTrue(h.rowIn(root, 1 << 40, "", p), "far row absent");
        assertTrue(!h.rowIn(root, 3, "", p), "row 3 is inside the tree");
        // Three rows: leaf 3 is the zero word, a witness without preimage.
        leaves[3] = bytes32(0);
        lv = _levels(leaves, 2);
        p = _past(3, "", _path(lv, 0, 3));
        assertTrue(h.rowIn(lv[2][0], 7, "", p), "zero witness");
        // A chunked leaf (0x02 ‖ chunk root) as the witness.
        bytes32 chunkRoot = keccak256("chunks");
        leaves[2] = keccak256(abi.encodePacked(bytes1(0x02), chunkRoot));
        lv = _levels(leaves, 2);
        p = _past(2, abi.encodePacked(bytes1(0x02), chunkRoot), _path(lv, 0, 2));
        assertTrue(h.rowIn(lv[2][0], 5, "", p), "chunked witness");
        // The empty tree (root zero) and a single-leaf tree.
        assertTrue(h.rowIn(bytes32(0), 9, "", _past(0, "", new bytes32[](0))), "empty tree");
        p = _past(0, abi.encodePacked(bytes1(0), rows[0]), new bytes32[](0));
        assertTrue(h.rowIn(leaves[0], 1, "", p), "single leaf");
        assertTrue(h.skuRowIn(leaves[0], 1, "", p), "sku tree");
    }

    /// @dev The attack: pass the inner node at height `height` above row `row` off as the leaf
    /// at `row mod 2^(depth − height)` of a shallower tree, in the old layout ([node, siblings])
    /// and in the new one with the node's own preimage (0x01 ‖ left ‖ right) or a zero witness.
    function testFuzz_innerNodeIsNoLeaf(uint8 nSeed, uint16 rowSeed, uint8 hSeed) public view {
        uint256 n = bound(nSeed, 2, 16);
        uint256 depth;
        while ((1 << depth) < n) ++depth;
        (, bytes32[] memory leaves) = _rows(n);
        bytes32[][] memory lv = _levels(leaves, depth);
        bytes32 root = lv[depth][0];
        uint256 row = bound(rowSeed, 1, n - 1);
        // The heights at which row's ancestor sits at an index the shallower tree cannot reach
        // from row 0: any height h ≥ 1 with row >> (depth − h) != 0 in the shallower tree.
        uint256 height = bound(hSeed, 1, depth);
        uint256 d = depth - height;
        vm.assume(row >> d != 0);
        uint256 at = row >> height;
        bytes32 inner = lv[height][at];
        bytes32[] memory sib = _path(lv, height, at);
        bytes32[] memory old = new bytes32[](1 + sib.length);
        old[0] = inner;
        for (uint256 i = 0; i < sib.length; ++i) {
            old[1 + i] = sib[i];
        }
        assertTrue(!h.rowIn(root, row, "", old), "old layout");
        assertTrue(!h.skuRowIn(root, row, "", old), "old layout (sku)");
        bytes memory pre = abi.encodePacked(bytes1(0x01), lv[height - 1][2 * at], lv[height - 1][2 * at + 1]);
        assertTrue(!h.rowIn(root, row, "", _past(at, pre, sib)), "node preimage");
        bytes memory asPlain = abi.encodePacked(bytes1(0x00), lv[height - 1][2 * at], lv[height - 1][2 * at + 1]);
        assertTrue(!h.rowIn(root, row, "", _past(at, asPlain, sib)), "node children as a plain leaf");
        assertTrue(!h.rowIn(root, row, "", _past(at, "", sib)), "zero witness for an inner node");
    }

    function test_malformedHeadersFail() public view {
        (bytes[] memory rows, bytes32[] memory leaves) = _rows(4);
        bytes32[][] memory lv = _levels(leaves, 2);
        bytes32 root = lv[2][0];
        bytes memory pre = abi.encodePacked(bytes1(0), rows[1]);
        bytes32[] memory p = _past(1, pre, _path(lv, 0, 1));
        p[0] = bytes32(uint256(p[0]) | (1 << 96));
        assertTrue(!h.rowIn(root, 4, "", p), "bits above the length");
        p = _past(1, pre, _path(lv, 0, 1));
        p[0] = bytes32(uint256(1) | (uint256(4096) << 64));
        assertTrue(!h.rowIn(root, 4, "", p), "length past the proof");
        p = _past(5, pre, _path(lv, 0, 1));
        assertTrue(!h.rowIn(root, 4, "", p), "witness index past the depth");
        p = _past(1, pre, _path(lv, 0, 1));
        assertTrue(!h.rowIn(root, 4, rows[0], p), "present data is no absence");
    }
}
