//! Canonical byte encoding of tensor rows, the preimage of a Merkle leaf.
//!
//! Multi-byte integers are big-endian two's complement so that the EVM can read them with a
//! single `calldataload` + shift. An `i8` row is its bytes as they are.

/// Bytes of an int8 row (one byte per element).
pub fn i8_row_bytes(row: &[i8]) -> Vec<u8> {
    row.iter().map(|&v| v as u8).collect()
}

/// Bytes of an int32 row (four big-endian bytes per element).
pub fn i32_row_bytes(row: &[i32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(row.len() * 4);
    for v in row {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

/// Bytes of a row of token ids or other unsigned 32-bit values.
pub fn u32_row_bytes(row: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(row.len() * 4);
    for v in row {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

/// Bytes of an int64 row (eight big-endian bytes per element).
pub fn i64_row_bytes(row: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(row.len() * 8);
    for v in row {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_are_big_endian_twos_complement() {
        assert_eq!(i8_row_bytes(&[-1, 127, -127]), vec![0xff, 0x7f, 0x81]);
        assert_eq!(
            i32_row_bytes(&[-2, 258]),
            vec![0xff, 0xff, 0xff, 0xfe, 0, 0, 1, 2]
        );
        assert_eq!(u32_row_bytes(&[1]), vec![0, 0, 0, 1]);
        assert_eq!(i64_row_bytes(&[-1]), vec![0xff; 8]);
    }
}
