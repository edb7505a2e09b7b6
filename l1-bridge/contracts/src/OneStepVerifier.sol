// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title OneStepVerifier
/// @notice Re-computes one output element (GEMM, attention score) or one output row (every other
/// op) of the Verinfer arithmetic spec v1 (docs/ARITHMETIC.md, `primitives/src/arith.rs`), bit
/// for bit. Inputs and outputs are the committed row encodings (the preimages of Merkle leaves):
/// int8 = 1 byte, i32/u32 = 4 bytes big-endian, i64 = 8 bytes big-endian, a QRow = its int8
/// values then its 8-byte scale, a softmax row = its i32 probabilities then the 8-byte `A_p`.
/// So a caller checks an opened output leaf with one keccak256 of the returned bytes.
/// @dev Every function is pure and reads calldata directly; all intermediates fit an int256
/// (the spec bounds them by 2^127), which is why the arithmetic is unchecked.
contract OneStepVerifier {
    /// @notice Arithmetic spec version implemented here.
    uint32 public constant SPEC_VERSION = 3;

    /// @notice Two rows that must have the same length (or a fixed relation) do not.
    error LengthMismatch(uint256 a, uint256 b);
    /// @notice A row's byte length is not a multiple of its element width.
    error BadEncoding(uint256 length, uint256 width);

    // ------------------------------------------------------------------ calldata element loads

    /// @dev int8 at byte `i` of a calldata row starting at `p`.
    function _i8(uint256 p, uint256 i) private pure returns (int256 v) {
        assembly ("memory-safe") {
            v := sar(248, calldataload(add(p, i)))
        }
    }

    /// @dev Big-endian i32 element `i`.
    function _i32(uint256 p, uint256 i) private pure returns (int256 v) {
        assembly ("memory-safe") {
            v := sar(224, calldataload(add(p, shl(2, i))))
        }
    }

    /// @dev Big-endian u32 element `i`.
    function _u32(uint256 p, uint256 i) private pure returns (int256 v) {
        assembly ("memory-safe") {
            v := shr(224, calldataload(add(p, shl(2, i))))
        }
    }

    /// @dev Big-endian i64 element `i`.
    function _i64(uint256 p, uint256 i) private pure returns (int256 v) {
        assembly ("memory-safe") {
            v := sar(192, calldataload(add(p, shl(3, i))))
        }
    }

    // ------------------------------------------------------------------ integer helpers

    /// @dev round(v / 2^s), ties away from zero.
    function _rsr(int256 v, uint256 s) private pure returns (int256) {
        unchecked {
            int256 half = int256(1 << (s - 1));
            return v >= 0 ? (v + half) >> s : -((-v + half) >> s);
        }
    }

    /// @dev Clamp to the i32 range.
    function _sat(int256 v) private pure returns (int256) {
        if (v > type(int32).max) return type(int32).max;
        if (v < type(int32).min) return type(int32).min;
        return v;
    }

    /// @dev sat_i32(round(y · Sw · S / 2^47)).
    function _dequant(int256 y, int256 sw, int256 s) private pure returns (int256) {
        unchecked {
            return _sat(_rsr(y * sw * s, 47));
        }
    }

    /// @dev floor(sqrt(n)) (Newton from an over-estimate).
    function _isqrt(uint256 n) private pure returns (uint256 x) {
        if (n < 2) return n;
        uint256 bits;
        uint256 m = n;
        while (m != 0) {
            ++bits;
            m >>= 1;
        }
        x = 1 << ((bits + 1) / 2);
        while (true) {
            uint256 y = (x + n / x) >> 1;
            if (y >= x) return x;
            x = y;
        }
    }

    /// @dev Writes `v` as 4 big-endian bytes at element `i` of the memory row at `out`.
    /// Rows are filled in increasing order, so the word store's spill is overwritten later
    /// (or lands in not-yet-allocated memory).
    function _put32(bytes memory out, uint256 i, int256 v) private pure {
        assembly ("memory-safe") {
            let p := add(add(out, 32), shl(2, i))
            mstore(p, or(shl(224, and(v, 0xffffffff)), and(mload(p), sub(shl(224, 1), 1))))
        }
    }

    /// @dev Writes `v` as 8 big-endian bytes at byte offset `at` of `out`.
    function _put64(bytes memory out, uint256 at, int256 v) private pure {
        assembly ("memory-safe") {
            let p := add(add(out, 32), at)
            mstore(p, or(shl(192, and(v, 0xffffffffffffffff)), and(mload(p), sub(shl(192, 1), 1))))
        }
    }

    function _count(bytes calldata b, uint256 width) private pure returns (uint256) {
        if (b.length % width != 0) revert BadEncoding(b.length, width);
        return b.length / width;
    }

    /// @dev quantize_row of Q16 values `z` into a QRow encoding (n int8 values, 8-byte scale).
    function _quantize(int256[] memory z) private pure returns (bytes memory out) {
        uint256 n = z.length;
        out = new bytes(n + 8);
        uint256 amax;
        unchecked {
            for (uint256 i = 0; i < n; ++i) {
                int256 v = z[i];
                uint256 a = uint256(v < 0 ? -v : v);
                if (a > amax) amax = a;
            }
            if (amax == 0) return out; // all zero, scale zero
            uint256 m = (uint256(127) << 32) / amax;
            for (uint256 i = 0; i < n; ++i) {
                int256 v = z[i];
                uint256 mag = ((uint256(v < 0 ? -v : v) * m) + (1 << 31)) >> 32;
                int256 q = v < 0 ? -int256(mag) : int256(mag);
                out[i] = bytes1(uint8(uint256(q) & 0xff));
            }
            _put64(out, n, int256((amax << 15) + 63) / 127);
        }
    }

    // ------------------------------------------------------------------ GEMM / scores elements

    /// @notice One GEMM element: Σ_k x_k · w_k over int8 rows, K = `w.length` (x may carry a
    /// trailing QRow scale, which is ignored).
    /// @param x Activation row bytes (at least K int8 values).
    /// @param w Weight row bytes (K int8 values).
    /// @return acc The raw int32 accumulator (as int256).
    function gemmElement(bytes calldata x, bytes calldata w) external pure returns (int256 acc) {
        if (x.length < w.length) revert LengthMismatch(x.length, w.length);
        return dot8(x, w);
    }

    /// @dev The int8 dot product, 32 elements per pair of word loads.
    function dot8(bytes calldata x, bytes calldata w) internal pure returns (int256 acc) {
        assembly ("memory-safe") {
            let px := x.offset
            let pw := w.offset
            let k := w.length
            let full := and(k, not(31))
            let endw := add(pw, full)
            for {} lt(pw, endw) {
                px := add(px, 32)
                pw := add(pw, 32)
            } {
                let a := calldataload(px)
                let b := calldataload(pw)
                // Fully unrolled: constant byte indices, no loop counter (about 40 gas/element).
                acc := add(acc, mul(signextend(0, byte(0, a)), signextend(0, byte(0, b))))
                acc := add(acc, mul(signextend(0, byte(1, a)), signextend(0, byte(1, b))))
                acc := add(acc, mul(signextend(0, byte(2, a)), signextend(0, byte(2, b))))
                acc := add(acc, mul(signextend(0, byte(3, a)), signextend(0, byte(3, b))))
                acc := add(acc, mul(signextend(0, byte(4, a)), signextend(0, byte(4, b))))
                acc := add(acc, mul(signextend(0, byte(5, a)), signextend(0, byte(5, b))))
                acc := add(acc, mul(signextend(0, byte(6, a)), signextend(0, byte(6, b))))
                acc := add(acc, mul(signextend(0, byte(7, a)), signextend(0, byte(7, b))))
                acc := add(acc, mul(signextend(0, byte(8, a)), signextend(0, byte(8, b))))
                acc := add(acc, mul(signextend(0, byte(9, a)), signextend(0, byte(9, b))))
                acc := add(acc, mul(signextend(0, byte(10, a)), signextend(0, byte(10, b))))
                acc := add(acc, mul(signextend(0, byte(11, a)), signextend(0, byte(11, b))))
                acc := add(acc, mul(signextend(0, byte(12, a)), signextend(0, byte(12, b))))
                acc := add(acc, mul(signextend(0, byte(13, a)), signextend(0, byte(13, b))))
                acc := add(acc, mul(signextend(0, byte(14, a)), signextend(0, byte(14, b))))
                acc := add(acc, mul(signextend(0, byte(15, a)), signextend(0, byte(15, b))))
                acc := add(acc, mul(signextend(0, byte(16, a)), signextend(0, byte(16, b))))
                acc := add(acc, mul(signextend(0, byte(17, a)), signextend(0, byte(17, b))))
                acc := add(acc, mul(signextend(0, byte(18, a)), signextend(0, byte(18, b))))
                acc := add(acc, mul(signextend(0, byte(19, a)), signextend(0, byte(19, b))))
                acc := add(acc, mul(signextend(0, byte(20, a)), signextend(0, byte(20, b))))
                acc := add(acc, mul(signextend(0, byte(21, a)), signextend(0, byte(21, b))))
                acc := add(acc, mul(signextend(0, byte(22, a)), signextend(0, byte(22, b))))
                acc := add(acc, mul(signextend(0, byte(23, a)), signextend(0, byte(23, b))))
                acc := add(acc, mul(signextend(0, byte(24, a)), signextend(0, byte(24, b))))
                acc := add(acc, mul(signextend(0, byte(25, a)), signextend(0, byte(25, b))))
                acc := add(acc, mul(signextend(0, byte(26, a)), signextend(0, byte(26, b))))
                acc := add(acc, mul(signextend(0, byte(27, a)), signextend(0, byte(27, b))))
                acc := add(acc, mul(signextend(0, byte(28, a)), signextend(0, byte(28, b))))
                acc := add(acc, mul(signextend(0, byte(29, a)), signextend(0, byte(29, b))))
                acc := add(acc, mul(signextend(0, byte(30, a)), signextend(0, byte(30, b))))
                acc := add(acc, mul(signextend(0, byte(31, a)), signextend(0, byte(31, b))))
            }
            // Tail: the remaining k mod 32 elements, from one more load each (bytes past the
            // row are masked out by stopping at the row's end).
            let rem := sub(k, full)
            if rem {
                let a := calldataload(px)
                let b := calldataload(pw)
                for { let i := 0 } lt(i, rem) { i := add(i, 1) } {
                    acc := add(acc, mul(signextend(0, byte(i, a)), signextend(0, byte(i, b))))
                }
            }
        }
    }

    /// @notice One attention score: Σ_d q_d · k_d, q int8 (a QRow, scale ignored), k Q16 i32.
    /// @param q Query row bytes (at least D int8 values).
    /// @param k Key row bytes (D big-endian i32).
    /// @return acc The raw i64 score (as int256).
    function scoreElement(bytes calldata q, bytes calldata k) external pure returns (int256 acc) {
        uint256 d = _count(k, 4);
        if (q.length < d) revert LengthMismatch(q.length, d);
        uint256 pq;
        uint256 pk;
        assembly ("memory-safe") {
            pq := q.offset
            pk := k.offset
        }
        unchecked {
            for (uint256 i = 0; i < d; ++i) {
                acc += _i8(pq, i) * _i32(pk, i);
            }
        }
    }

    // ------------------------------------------------------------------ row ops

    /// @notice embed: h_i = round(E[id][i] · Sw[id] / 2^16).
    /// @param eRow The token's int8 embedding row.
    /// @param sw The token's u32 scale.
    /// @return out The Q16 i32 row.
    function embedRow(bytes calldata eRow, uint256 sw) external pure returns (bytes memory out) {
        uint256 n = eRow.length;
        out = new bytes(n * 4);
        uint256 p;
        assembly ("memory-safe") {
            p := eRow.offset
        }
        for (uint256 i = 0; i < n; ++i) {
            _put32(out, i, _rsr(_i8(p, i) * int256(sw), 16));
        }
    }

    /// @notice rmsnorm_quant: int8 values of quantize_row(x), scale round(amax·2^47/(127·r)) with
    /// r = isqrt((floor(Σx²/n) + eps) · 2^32).
    /// @param x The Q16 i32 row.
    /// @param epsQ32 The SKU's epsilon in Q32.
    /// @return out The QRow bytes.
    function rmsnormQuantRow(bytes calldata x, uint256 epsQ32) external pure returns (bytes memory out) {
        uint256 n = _count(x, 4);
        uint256 p;
        assembly ("memory-safe") {
            p := x.offset
        }
        int256[] memory z = new int256[](n);
        uint256 ss;
        uint256 amax;
        unchecked {
            for (uint256 i = 0; i < n; ++i) {
                int256 v = _i32(p, i);
                z[i] = v;
                ss += uint256(v * v);
                uint256 a = uint256(v < 0 ? -v : v);
                if (a > amax) amax = a;
            }
        }
        out = _quantize(z);
        if (amax == 0 || n == 0) return out;
        uint256 r = _isqrt(((ss / n) + epsQ32) << 32);
        uint256 den = 127 * r;
        _put64(out, n, int256(((amax << 47) + den / 2) / den));
    }

    /// @notice rope_q / rope_k: dequantize one head's accumulators (plus bias), rotate-half with
    /// the position's cos/sin row, then quantize (rope_q) or keep Q16 (rope_k).
    /// @param y The head's i32 accumulators (D).
    /// @param sw The head's u32 weight scales (D).
    /// @param bias Q16 i32 bias (D) or empty (no bias).
    /// @param sx Scale of the token's normalized input row.
    /// @param cs The RoPE table row: D/2 cos then D/2 sin, Q30 i32.
    /// @param quantize True for rope_q (QRow out), false for rope_k (i32 row out).
    /// @return out The output row bytes.
    function ropeRow(
        bytes calldata y,
        bytes calldata sw,
        bytes calldata bias,
        int256 sx,
        bytes calldata cs,
        bool quantize
    ) external pure returns (bytes memory out) {
        uint256 d = _count(y, 4);
        if (sw.length != y.length || cs.length != y.length) revert LengthMismatch(y.length, sw.length);
        int256[] memory z = _dequantRow(y, sw, bias, sx);
        uint256 half = d / 2;
        int256[] memory r = new int256[](d);
        uint256 pcs;
        assembly ("memory-safe") {
            pcs := cs.offset
        }
        unchecked {
            for (uint256 i = 0; i < half; ++i) {
                int256 a = z[i];
                int256 b = z[i + half];
                int256 c = _i32(pcs, i);
                int256 s = _i32(pcs, i + half);
                r[i] = _sat(_rsr(a * c - b * s, 30));
                r[i + half] = _sat(_rsr(b * c + a * s, 30));
            }
        }
        if (quantize) return _quantize(r);
        out = new bytes(d * 4);
        for (uint256 i = 0; i < d; ++i) {
            _put32(out, i, r[i]);
        }
    }

    /// @notice value: v_i = sat_i32(dequant(y_i, Sw_i, S_x) + bias_i).
    /// @param y The head's i32 accumulators.
    /// @param sw Its u32 weight scales.
    /// @param bias Q16 i32 bias or empty.
    /// @param sx Scale of the token's normalized input row.
    /// @return out The Q16 i32 row.
    function valueRow(bytes calldata y, bytes calldata sw, bytes calldata bias, int256 sx)
        external
        pure
        returns (bytes memory out)
    {
        if (sw.length != y.length) revert LengthMismatch(y.length, sw.length);
        int256[] memory z = _dequantRow(y, sw, bias, sx);
        out = new bytes(z.length * 4);
        for (uint256 i = 0; i < z.length; ++i) {
            _put32(out, i, z[i]);
        }
    }

    /// @dev sat_i32(dequant(y_i, Sw_i, S_x) + bias_i) for a whole row.
    function _dequantRow(bytes calldata y, bytes calldata sw, bytes calldata bias, int256 sx)
        private
        pure
        returns (int256[] memory z)
    {
        uint256 d = _count(y, 4);
        if (bias.length != 0 && bias.length != y.length) revert LengthMismatch(y.length, bias.length);
        uint256 py;
        uint256 pw;
        uint256 pb;
        assembly ("memory-safe") {
            py := y.offset
            pw := sw.offset
            pb := bias.offset
        }
        bool hasBias = bias.length != 0;
        z = new int256[](d);
        unchecked {
            for (uint256 i = 0; i < d; ++i) {
                int256 v = _dequant(_i32(py, i), _u32(pw, i), sx);
                if (hasBias) v = _sat(v + _i32(pb, i));
                z[i] = v;
            }
        }
    }

    /// @notice softmax of one causal score row: y_u = floor((M−S_u)·S_q·C / 2^79),
    /// e_u = EXP2[y mod 256] >> floor(y/256) (0 past 31), p_u = (e_u + 2^15) >> 16,
    /// A_p = floor(2^61 / Σe).
    /// @param scores The i64 scores (8 bytes each).
    /// @param sq The query row's scale.
    /// @param c The SKU's softmax constant.
    /// @param exp2 The 256-entry u32 table.
    /// @return out p as i32 then A_p as 8 bytes.
    function softmaxRow(bytes calldata scores, int256 sq, uint256 c, bytes calldata exp2)
        external
        pure
        returns (bytes memory out)
    {
        uint256 n = _count(scores, 8);
        if (exp2.length != 1024) revert LengthMismatch(exp2.length, 1024);
        out = new bytes(n * 4 + 8);
        if (n == 0) return out;
        uint256 ps;
        uint256 pe;
        assembly ("memory-safe") {
            ps := scores.offset
            pe := exp2.offset
        }
        int256 m = type(int256).min;
        for (uint256 i = 0; i < n; ++i) {
            int256 s = _i64(ps, i);
            if (s > m) m = s;
        }
        uint256 k = uint256(sq) * c;
        uint256 sum;
        unchecked {
            for (uint256 i = 0; i < n; ++i) {
                uint256 delta = uint256(m - _i64(ps, i));
                // delta < 2^64 and k < 2^127: the product fits; the Rust side maps a product of
                // 2^128 or more to "no mass", which the shift test below reproduces.
                uint256 yv = (delta * k) >> 79;
                uint256 sh = yv >> 8;
                uint256 e = sh >= 32 ? 0 : uint256(_u32(pe, yv & 0xff)) >> sh;
                sum += e;
                _put32(out, i, int256((e + (1 << 15)) >> 16));
            }
        }
        _put64(out, n * 4, sum == 0 ? int256(0) : int256((uint256(1) << 61) / sum));
    }

    /// @notice pv: o_d = sat_i32(round((Σ_u p_u · v_u[d]) · A_p / 2^45)).
    /// @param p The softmax row's i32 probabilities (one per visible position).
    /// @param ap The softmax row's A_p.
    /// @param v The value rows of those positions, concatenated (each D big-endian i32).
    /// @return out The Q16 i32 row (D).
    function pvRow(bytes calldata p, int256 ap, bytes calldata v) external pure returns (bytes memory out) {
        uint256 n = _count(p, 4);
        uint256 total = _count(v, 4);
        if (n == 0) return out;
        if (total % n != 0) revert LengthMismatch(total, n);
        uint256 d = total / n;
        uint256 pp;
        uint256 pv;
        assembly ("memory-safe") {
            pp := p.offset
            pv := v.offset
        }
        out = new bytes(d * 4);
        unchecked {
            for (uint256 j = 0; j < d; ++j) {
                int256 acc;
                for (uint256 u = 0; u < n; ++u) {
                    acc += _i32(pp, u) * _i32(pv, u * d + j);
                }
                _put32(out, j, _sat(_rsr(acc * ap, 45)));
            }
        }
    }

    /// @notice One chunk of a pv row, for disputes that bisect over its positions: adds
    /// Σ_u p_u · v_u[d] over the chunk's positions to the running accumulator.
    /// @param acc The accumulator before the chunk: D big-endian i64 (all zero before position 0).
    /// @param p The chunk's probabilities (i32, one per position).
    /// @param v The chunk's value rows, concatenated (each D big-endian i32).
    /// @return out The accumulator after the chunk (D big-endian i64; |acc| < 2^62 for ≤ 2^16
    /// positions, as the spec bounds it).
    function pvAccumulate(bytes calldata acc, bytes calldata p, bytes calldata v)
        external
        pure
        returns (bytes memory out)
    {
        uint256 d = _count(acc, 8);
        uint256 n = _count(p, 4);
        if (_count(v, 4) != n * d) revert LengthMismatch(v.length, n * d * 4);
        uint256 pa;
        uint256 pp;
        uint256 pv;
        assembly ("memory-safe") {
            pa := acc.offset
            pp := p.offset
            pv := v.offset
        }
        out = new bytes(d * 8);
        unchecked {
            for (uint256 j = 0; j < d; ++j) {
                int256 a = _i64(pa, j);
                for (uint256 u = 0; u < n; ++u) {
                    a += _i32(pp, u) * _i32(pv, u * d + j);
                }
                _put64(out, j * 8, a);
            }
        }
    }

    /// @notice The end of a pv row: o_d = sat_i32(round(acc_d · A_p / 2^45)).
    /// @param acc The accumulator over all visible positions (D big-endian i64).
    /// @param ap The softmax row's A_p.
    /// @return out The Q16 i32 row (D).
    function pvFinish(bytes calldata acc, int256 ap) external pure returns (bytes memory out) {
        uint256 d = _count(acc, 8);
        uint256 pa;
        assembly ("memory-safe") {
            pa := acc.offset
        }
        out = new bytes(d * 4);
        for (uint256 j = 0; j < d; ++j) {
            _put32(out, j, _sat(_rsr(_i64(pa, j) * ap, 45)));
        }
    }

    /// @notice attn_out: quantize_row of the concatenated Q16 head outputs.
    /// @param z The Q16 i32 row.
    /// @return The QRow bytes.
    function quantizeRow(bytes calldata z) external pure returns (bytes memory) {
        uint256 n = _count(z, 4);
        uint256 p;
        assembly ("memory-safe") {
            p := z.offset
        }
        int256[] memory v = new int256[](n);
        for (uint256 i = 0; i < n; ++i) {
            v[i] = _i32(p, i);
        }
        return _quantize(v);
    }

    /// @notice residual: h_i = sat_i32(h_i + dequant(y_i, Sw_i, S_x)).
    /// @param h The Q16 i32 residual row.
    /// @param y The projection's i32 accumulators.
    /// @param sw Its u32 weight scales.
    /// @param sx Scale of the projection's input row.
    /// @return out The Q16 i32 row.
    function residualRow(bytes calldata h, bytes calldata y, bytes calldata sw, int256 sx)
        external
        pure
        returns (bytes memory out)
    {
        uint256 n = _count(h, 4);
        if (y.length != h.length || sw.length != h.length) revert LengthMismatch(h.length, y.length);
        uint256 ph;
        uint256 py;
        uint256 pw;
        assembly ("memory-safe") {
            ph := h.offset
            py := y.offset
            pw := sw.offset
        }
        out = new bytes(n * 4);
        unchecked {
            for (uint256 i = 0; i < n; ++i) {
                _put32(out, i, _sat(_i32(ph, i) + _dequant(_i32(py, i), _u32(pw, i), sx)));
            }
        }
    }

    /// @notice silu_mul: m_i = sat_i32(round(round(g_i·σ(g_i)/2^16) · u_i / 2^16)), quantized.
    /// @param yg Gate accumulators (i32).
    /// @param yu Up accumulators (i32).
    /// @param swg Gate weight scales (u32).
    /// @param swu Up weight scales (u32).
    /// @param sx Scale of the input row.
    /// @param sigmoid The 2049-entry u32 table.
    /// @return The QRow bytes.
    function siluMulRow(
        bytes calldata yg,
        bytes calldata yu,
        bytes calldata swg,
        bytes calldata swu,
        int256 sx,
        bytes calldata sigmoid
    ) external pure returns (bytes memory) {
        return _quantize(_siluMs(yg, yu, swg, swu, sx, sigmoid));
    }

    /// @notice One chunk of a silu_mul row, for disputes that bisect over its elements: the
    /// chunk's m_i (as in `siluMulRow`) raise the running max |m_i|, and are quantized with the
    /// row's final max (the row's int8 values depend on nothing else).
    /// @param y The chunk's gate then up accumulators (i32, two halves).
    /// @param sw The chunk's gate then up scales (u32, two halves).
    /// @param sx Scale of the token's normalized input row.
    /// @param sigmoid The SIGMOID table (2049 u32).
    /// @param amaxes The max |m_i| before the chunk (high 128 bits) and of the whole row (low).
    /// @return amaxAfter The max |m_i| after the chunk.
    /// @return q The chunk's int8 values.
    function siluChunk(bytes calldata y, bytes calldata sw, int256 sx, bytes calldata sigmoid, uint256 amaxes)
        external
        pure
        returns (uint256 amaxAfter, bytes memory q)
    {
        int256[] memory m = _siluHalves(y, sw, sx, sigmoid);
        amaxAfter = amaxes >> 128;
        uint256 amaxFinal = amaxes & type(uint128).max;
        uint256 mq = amaxFinal == 0 ? 0 : (uint256(127) << 32) / amaxFinal;
        q = new bytes(m.length);
        unchecked {
            for (uint256 i = 0; i < m.length; ++i) {
                int256 v = m[i];
                uint256 a = uint256(v < 0 ? -v : v);
                if (a > amaxAfter) amaxAfter = a;
                uint256 mag = (a * mq + (1 << 31)) >> 32;
                int256 qi = v < 0 ? -int256(mag) : int256(mag);
                q[i] = bytes1(uint8(uint256(qi) & 0xff));
            }
        }
    }

    /// @notice The QRow scale of a row whose max |z_i| is `amax` (as `quantize_row`).
    /// @param amax The max magnitude.
    /// @return The Q31 scale.
    function quantizeScale(uint256 amax) external pure returns (int256) {
        return amax == 0 ? int256(0) : int256((amax << 15) + 63) / 127;
    }

    /// @dev `_siluMs` over gate/up packed as two halves of each argument.
    function _siluHalves(bytes calldata y, bytes calldata sw, int256 sx, bytes calldata sigmoid)
        private
        pure
        returns (int256[] memory)
    {
        if (y.length % 8 != 0 || sw.length != y.length) revert LengthMismatch(y.length, sw.length);
        uint256 h = y.length / 2;
        return _siluMs(y[:h], y[h:], sw[:h], sw[h:], sx, sigmoid);
    }

    /// @dev m_i = sat_i32(round(round(g_i · σ(g_i) / 2^16) · u_i / 2^16)) of every element.
    function _siluMs(
        bytes calldata yg,
        bytes calldata yu,
        bytes calldata swg,
        bytes calldata swu,
        int256 sx,
        bytes calldata sigmoid
    ) private pure returns (int256[] memory m) {
        uint256 n = _count(yg, 4);
        if (yu.length != yg.length || swg.length != yg.length || swu.length != yg.length) {
            revert LengthMismatch(yg.length, yu.length);
        }
        if (sigmoid.length != 2049 * 4) revert LengthMismatch(sigmoid.length, 2049 * 4);
        m = new int256[](n);
        uint256[5] memory p;
        assembly ("memory-safe") {
            mstore(p, yg.offset)
            mstore(add(p, 32), yu.offset)
            mstore(add(p, 64), swg.offset)
            mstore(add(p, 96), swu.offset)
            mstore(add(p, 128), sigmoid.offset)
        }
        unchecked {
            for (uint256 i = 0; i < n; ++i) {
                int256 g = _dequant(_i32(p[0], i), _u32(p[2], i), sx);
                int256 u = _dequant(_i32(p[1], i), _u32(p[3], i), sx);
                int256 t = _rsr(g, 9);
                int256 sg = t < -1024 ? int256(0) : t > 1024 ? int256(1 << 16) : _u32(p[4], uint256(t + 1024));
                int256 s = _rsr(g * sg, 16);
                m[i] = _sat(_rsr(s * u, 16));
            }
        }
    }

    /// @notice argmax: the j < valid maximizing y_j · Sw_j, ties to the lowest j.
    /// @param y The logits accumulators (i32).
    /// @param sw The lm_head scales (u32).
    /// @param valid The vocabulary size.
    /// @return found False when no id is valid.
    /// @return id The chosen token id.
    function argmaxRow(bytes calldata y, bytes calldata sw, uint256 valid)
        external
        pure
        returns (bool found, uint256 id)
    {
        uint256 n = _count(y, 4);
        if (sw.length != y.length) revert LengthMismatch(y.length, sw.length);
        if (valid > n) valid = n;
        uint256 py;
        uint256 pw;
        assembly ("memory-safe") {
            py := y.offset
            pw := sw.offset
        }
        int256 best;
        unchecked {
            for (uint256 j = 0; j < valid; ++j) {
                int256 key = _i32(py, j) * _u32(pw, j);
                if (!found || key > best) {
                    best = key;
                    id = j;
                    found = true;
                }
            }
        }
    }

    /// @notice One chunk of an argmax row, for disputes that bisect over the vocabulary: folds
    /// the keys Y_j · Sw_j of ids first .. first + n − 1 into the running best (a strictly larger
    /// key replaces it, so ties keep the lowest id, as `argmaxRow`).
    /// @param state The best so far: abi.encode(bool found, int256 key, uint256 id).
    /// @param y The chunk's logits (i32).
    /// @param sw The chunk's lm_head scales (u32).
    /// @param first The id of the chunk's first element.
    /// @return The best after the chunk, encoded the same way.
    function argmaxAccumulate(bytes calldata state, bytes calldata y, bytes calldata sw, uint256 first)
        external
        pure
        returns (bytes memory)
    {
        uint256 n = _count(y, 4);
        if (sw.length != y.length) revert LengthMismatch(y.length, sw.length);
        if (state.length != 96) revert BadEncoding(state.length, 96);
        (bool found, int256 best, uint256 id) = abi.decode(state, (bool, int256, uint256));
        uint256 py;
        uint256 pw;
        assembly ("memory-safe") {
            py := y.offset
            pw := sw.offset
        }
        unchecked {
            for (uint256 j = 0; j < n; ++j) {
                int256 key = _i32(py, j) * _u32(pw, j);
                if (!found || key > best) {
                    best = key;
                    id = first + j;
                    found = true;
                }
            }
        }
        return abi.encode(found, best, id);
    }
}
