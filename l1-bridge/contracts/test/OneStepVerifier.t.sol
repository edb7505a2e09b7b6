// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Base} from "./Base.sol";
import {OneStepVerifier} from "../src/OneStepVerifier.sol";

/// @dev Hand-checked values and the revert paths; the bit-exactness against the Rust arithmetic
/// on random inputs lives in l1-bridge/tests/differential.rs (revm).
contract OneStepVerifierTest is Base {
    OneStepVerifier internal v = new OneStepVerifier();

    function test_gemmElementSmallAndTail() public view {
        // 33 elements: one full word and a 1-byte tail.
        bytes memory x = new bytes(33);
        bytes memory w = new bytes(33);
        int256 want;
        for (uint256 i = 0; i < 33; ++i) {
            int8 a = int8(int256(i) - 16);
            int8 b = int8(127 - int256(i) * 7);
            x[i] = bytes1(uint8(a));
            w[i] = bytes1(uint8(b));
            want += int256(a) * int256(b);
        }
        assertEq(v.gemmElement(x, w), want, "dot");
        assertEq(v.gemmElement(hex"8080", hex"8080"), 2 * 128 * 128, "-128 squared");
    }

    function test_quantizeAndRmsnorm() public view {
        // z = [1.0, -1.0] in Q16 → q = [127, -127], S = round(65536·2^15/127).
        bytes memory out = v.quantizeRow(abi.encodePacked(int32(65536), int32(-65536)));
        assertEq(out.length, 10, "2 values + scale");
        assertEq(uint8(out[0]), 127, "q0");
        assertEq(uint8(out[1]), 0x81, "q1");
        bytes8 s;
        assembly {
            s := mload(add(out, 34))
        }
        assertEq(uint64(s), (uint256(65536) * 32768 + 63) / 127, "scale");
        bytes memory zero = v.rmsnormQuantRow(abi.encodePacked(int32(0), int32(0)), 42950);
        assertEq(keccak256(zero), keccak256(new bytes(10)), "all zero");
    }

    function test_argmaxTiesAndValid() public view {
        bytes memory y = abi.encodePacked(int32(5), int32(9), int32(9), int32(100));
        bytes memory sw = abi.encodePacked(uint32(1), uint32(1), uint32(1), uint32(1));
        (bool found, uint256 id) = v.argmaxRow(y, sw, 3);
        assertTrue(found && id == 1, "lowest of the tied maxima below valid");
        (found,) = v.argmaxRow(y, sw, 0);
        assertTrue(!found, "nothing valid");
        (, id) = v.argmaxRow(y, sw, 99);
        assertEq(id, 3, "valid clamps to the row");
    }

    function test_rowOpsRevertOnBadShapes() public {
        vm.expectRevert(abi.encodeWithSelector(OneStepVerifier.LengthMismatch.selector, 1, 2));
        v.gemmElement(hex"01", hex"0102");
        vm.expectRevert(abi.encodeWithSelector(OneStepVerifier.BadEncoding.selector, 3, 4));
        v.quantizeRow(hex"010203");
        vm.expectRevert(abi.encodeWithSelector(OneStepVerifier.LengthMismatch.selector, 0, 1));
        v.scoreElement("", hex"00000001");
        vm.expectRevert(abi.encodeWithSelector(OneStepVerifier.LengthMismatch.selector, 4, 8));
        v.residualRow(hex"00000001", hex"0000000100000001", hex"00000001", 1);
        vm.expectRevert(abi.encodeWithSelector(OneStepVerifier.LengthMismatch.selector, 4, 0));
        v.argmaxRow(hex"00000001", "", 1);
        vm.expectRevert(abi.encodeWithSelector(OneStepVerifier.LengthMismatch.selector, 4, 1024));
        v.softmaxRow(hex"0000000000000001", 1, 1, hex"00000001");
        vm.expectRevert(abi.encodeWithSelector(OneStepVerifier.LengthMismatch.selector, 4, 8196));
        v.siluMulRow(hex"00000001", hex"00000001", hex"00000001", hex"00000001", 1, hex"00000001");
        vm.expectRevert(abi.encodeWithSelector(OneStepVerifier.LengthMismatch.selector, 8, 4));
        v.valueRow(hex"0000000100000001", hex"00000001", "", 1);
        vm.expectRevert(abi.encodeWithSelector(OneStepVerifier.LengthMismatch.selector, 8, 4));
        v.ropeRow(hex"0000000100000001", hex"00000001", "", 1, hex"0000000100000001", true);
        vm.expectRevert(abi.encodeWithSelector(OneStepVerifier.LengthMismatch.selector, 3, 2));
        v.pvRow(hex"0000000100000001", 1, hex"000000010000000100000001");
        assertEq(v.SPEC_VERSION(), 3, "spec");
    }

    function test_embedAndPvSmall() public view {
        bytes memory e = v.embedRow(hex"ff02", 1 << 16); // [-1, 2] · 2^16 >> 16
        assertEq(keccak256(e), keccak256(abi.encodePacked(int32(-1), int32(2))), "embed");
        // one position, p = 2^15, A_p = 2^30: o = round(v · 2^45 / 2^45) = v
        bytes memory o = v.pvRow(abi.encodePacked(int32(32768)), int256(1 << 30), abi.encodePacked(int32(-7), int32(9)));
        assertEq(keccak256(o), keccak256(abi.encodePacked(int32(-7), int32(9))), "pv identity");
    }
}
