// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice The chunked arithmetic the fold reads (OneStepVerifier).
interface IFoldMath {
    function pvAccumulate(bytes calldata acc, bytes calldata p, bytes calldata v) external pure returns (bytes memory);
    function pvFinish(bytes calldata acc, int256 ap) external pure returns (bytes memory);
    function argmaxAccumulate(bytes calldata state, bytes calldata y, bytes calldata sw, uint256 first)
        external
        pure
        returns (bytes memory);
    function siluChunk(bytes calldata y, bytes calldata sw, int256 sx, bytes calldata sigmoid, uint256 amaxes)
        external
        pure
        returns (uint256 amaxAfter, bytes memory q);
    function quantizeScale(uint256 amax) external pure returns (int256);
}
