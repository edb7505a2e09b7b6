// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice The one-step calls the prover makes (OneStepVerifier).
interface IOneStep {
    function gemmElement(bytes calldata x, bytes calldata w) external pure returns (int256);
    function scoreElement(bytes calldata q, bytes calldata k) external pure returns (int256);
    function embedRow(bytes calldata eRow, uint256 sw) external pure returns (bytes memory);
    function rmsnormQuantRow(bytes calldata x, uint256 epsQ32) external pure returns (bytes memory);
    function ropeRow(
        bytes calldata y,
        bytes calldata sw,
        bytes calldata bias,
        int256 sx,
        bytes calldata cs,
        bool quantize
    ) external pure returns (bytes memory);
    function valueRow(bytes calldata y, bytes calldata sw, bytes calldata bias, int256 sx)
        external
        pure
        returns (bytes memory);
    function softmaxRow(bytes calldata scores, int256 sq, uint256 c, bytes calldata exp2)
        external
        pure
        returns (bytes memory);
    function pvRow(bytes calldata p, int256 ap, bytes calldata v) external pure returns (bytes memory);
    function quantizeRow(bytes calldata z) external pure returns (bytes memory);
    function residualRow(bytes calldata h, bytes calldata y, bytes calldata sw, int256 sx)
        external
        pure
        returns (bytes memory);
    function siluMulRow(
        bytes calldata yg,
        bytes calldata yu,
        bytes calldata swg,
        bytes calldata swu,
        int256 sx,
        bytes calldata sigmoid
    ) external pure returns (bytes memory);
    function argmaxRow(bytes calldata y, bytes calldata sw, uint256 valid) external pure returns (bool, uint256);
}
