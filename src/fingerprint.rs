//! Fingerprints of data, apart from the checkpoints that record them: a checkpoint names
//! the rows it was written on, and a resumed fit compares.

/// A short fingerprint of a byte stream (FNV-1a folded through a 64-bit mix): enough to
/// tell data files apart, not a cryptographic hash.
pub fn fingerprint(words: impl Iterator<Item = u32>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut count: u64 = 0;
    for w in words {
        h ^= u64::from(w);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        count += 1;
    }
    h ^= count;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_order_and_length_apart() {
        let a = fingerprint([1u32, 2, 3].into_iter());
        assert_eq!(a, fingerprint([1u32, 2, 3].into_iter()));
        assert_ne!(a, fingerprint([2u32, 1, 3].into_iter()));
        assert_ne!(a, fingerprint([1u32, 2, 3, 0].into_iter()));
        assert_eq!(a.len(), 16);
    }
}
