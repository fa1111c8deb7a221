//! The hashing trick for categorical columns: each named column's cell becomes the token
//! `column=value`, and the token one of 2^B columns, exactly as scikit-learn's
//! `FeatureHasher(n_features=2**B, input_type="string", alternate_sign=False)` places it
//! (MurmurHash3, x86 32-bit, seed 0, over the token's UTF-8 bytes; column = |h| mod 2^B
//! with h read as a signed 32-bit integer), with the value 1. Tokens that land on the
//! same column add up, as FeatureHasher's do. The numeric columns come first, then the
//! 2^B hashed ones, so a model's columns mean the same in both.

use crate::error::{Error, Result};

/// The most hash bits: 2^30 columns (FeatureHasher takes at most 2^31 − 1).
pub const MAX_BITS: u32 = 30;

/// Which columns are hashed, into how many bits, and the numeric columns before them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hashing {
    /// The categorical columns hashed, by name.
    pub columns: Vec<String>,
    /// 2^bits hashed columns.
    pub bits: u32,
    /// The numeric feature columns, by name, in order: features 0 to n − 1.
    pub numeric: Vec<String>,
}

impl Hashing {
    /// Hashes `columns` into 2^`bits` columns after the `numeric` ones. Refuses no
    /// columns, a repeated or empty name, and bits outside 1 to [`MAX_BITS`].
    pub fn new(columns: Vec<String>, bits: u32, numeric: Vec<String>) -> Result<Self> {
        if !(1..=MAX_BITS).contains(&bits) {
            return Err(Error::option(
                "hash-bits",
                bits,
                format!("must be 1 to {MAX_BITS} (2 to 2^{MAX_BITS} hashed columns)"),
            ));
        }
        if columns.is_empty() {
            return Err(Error::option(
                "hash-features",
                "(none)",
                "name at least one column to hash",
            ));
        }
        for (i, name) in columns.iter().enumerate() {
            if name.is_empty() || columns[..i].contains(name) {
                return Err(Error::option(
                    "hash-features",
                    name,
                    "each hashed column is named once, and not empty",
                ));
            }
        }
        Ok(Hashing {
            columns,
            bits,
            numeric,
        })
    }

    /// Every feature: the numeric columns and the 2^bits hashed ones.
    pub fn features(&self) -> usize {
        self.numeric.len() + (1 << self.bits)
    }

    /// The feature index of `column=value`: after the numeric columns.
    pub fn feature_of(&self, column: &str, value: &[u8]) -> u32 {
        let mut token = Vec::with_capacity(column.len() + 1 + value.len());
        token.extend_from_slice(column.as_bytes());
        token.push(b'=');
        token.extend_from_slice(value);
        self.numeric.len() as u32 + hashed_column(&token, self.bits)
    }
}

/// The hashed column (below 2^`bits`) of `token`: FeatureHasher's |h| mod 2^bits, where
/// |−2³¹| is 2³¹ (scikit-learn defines it so).
pub fn hashed_column(token: &[u8], bits: u32) -> u32 {
    let h = murmur3_x86_32(token, 0) as i32;
    h.unsigned_abs() & ((1u32 << bits) - 1)
}

/// MurmurHash3's x86 32-bit hash of `bytes` with `seed` (Austin Appleby's public-domain
/// algorithm, as scikit-learn's `murmurhash3_32` computes it).
pub fn murmur3_x86_32(bytes: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mix = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mut h = seed;
    let blocks = bytes.chunks_exact(4);
    let tail = blocks.remainder();
    for block in blocks {
        let k = u32::from_le_bytes(block.try_into().expect("4 bytes"));
        h ^= mix(k);
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    if !tail.is_empty() {
        let k = tail
            .iter()
            .rev()
            .fold(0u32, |k, &b| (k << 8) | u32::from(b));
        h ^= mix(k);
    }
    h ^= bytes.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_matches_the_reference_vectors() {
        // SMHasher's verification values for MurmurHash3_x86_32.
        assert_eq!(murmur3_x86_32(b"", 0), 0);
        assert_eq!(murmur3_x86_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_x86_32(b"", 0xffff_ffff), 0x81f1_6f39);
        assert_eq!(murmur3_x86_32(b"\0\0\0\0", 0), 0x2362_f9de);
        assert_eq!(murmur3_x86_32(b"aaaa", 0x9747_b28c), 0x5a97_808a);
        assert_eq!(murmur3_x86_32(b"aaa", 0x9747_b28c), 0x283e_0130);
        assert_eq!(murmur3_x86_32(b"aa", 0x9747_b28c), 0x5d21_1726);
        assert_eq!(murmur3_x86_32(b"a", 0x9747_b28c), 0x7fa0_9ea6);
        assert_eq!(murmur3_x86_32(b"Hello, world!", 0x9747_b28c), 0x2488_4cba);
        assert_eq!(
            murmur3_x86_32(b"The quick brown fox jumps over the lazy dog", 0x9747_b28c),
            0x2fa8_26cd
        );
    }

    #[test]
    fn options_out_of_range_are_refused() {
        assert!(Hashing::new(vec!["a".into()], 0, vec![]).is_err());
        assert!(Hashing::new(vec!["a".into()], 31, vec![]).is_err());
        assert!(Hashing::new(vec![], 4, vec![]).is_err());
        assert!(Hashing::new(vec!["a".into(), "a".into()], 4, vec![]).is_err());
        let h = Hashing::new(vec!["a".into()], 4, vec!["x".into()]).unwrap();
        assert_eq!(h.features(), 17);
        assert!((1..17).contains(&h.feature_of("a", b"red")));
    }
}
