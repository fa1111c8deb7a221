//! Counter-based randomness shared bit for bit with the shaders (`shaders/common.wgsl`):
//! a hash of (counter, seed) instead of a sequential generator, so any row can be drawn
//! on its own, by any backend, in any order.

/// The pcg4d hash of Jarzynski and Olano, "Hash Functions for GPU Rendering" (JCGT 2020):
/// four 32-bit lanes in, four well-mixed lanes out, using only 32-bit multiply, add, xor
/// and shift, so WGSL computes the same bits.
pub fn pcg4d(v: [u32; 4]) -> [u32; 4] {
    let mut v = v.map(|x| x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223));
    cross_mix(&mut v);
    v = v.map(|x| x ^ (x >> 16));
    cross_mix(&mut v);
    v
}

fn cross_mix(v: &mut [u32; 4]) {
    v[0] = v[0].wrapping_add(v[1].wrapping_mul(v[3]));
    v[1] = v[1].wrapping_add(v[2].wrapping_mul(v[0]));
    v[2] = v[2].wrapping_add(v[0].wrapping_mul(v[1]));
    v[3] = v[3].wrapping_add(v[1].wrapping_mul(v[2]));
}

/// The stream of the validation split's hash (0–3 are the synthetic data's).
pub const STREAM_SPLIT: u32 = 4;

/// The hash of one cell of one stream: pcg4d applied twice to
/// `(row, column | stream << 28, seed)`. Once is not enough: inputs that differ only in
/// their high bits (the stream) come out measurably correlated.
pub fn cell_hash(seed: u64, stream: u32, row: u32, column: u32) -> [u32; 4] {
    debug_assert!(column < 1 << 28 && stream < 16);
    let once = pcg4d([
        row,
        column | (stream << 28),
        seed as u32,
        (seed >> 32) as u32,
    ]);
    pcg4d(once)
}

/// [`cell_hash`] of sixteen consecutive columns `first..first + 16`, in lanes: word w of
/// column `first + l` is `words[w][l]`. Written as plain loops over the lanes so that the
/// compiler turns each step into vector instructions.
#[inline(always)]
pub fn cell_hashes16(seed: u64, stream: u32, row: u32, first: u32) -> [[u32; 16]; 4] {
    debug_assert!(first + 15 < 1 << 28 && stream < 16);
    let mut v = [
        [row; 16],
        std::array::from_fn(|l| (first + l as u32) | (stream << 28)),
        [seed as u32; 16],
        [(seed >> 32) as u32; 16],
    ];
    pcg4d_lanes(&mut v);
    pcg4d_lanes(&mut v);
    v
}

/// [`pcg4d`] in sixteen lanes.
#[inline(always)]
fn pcg4d_lanes(v: &mut [[u32; 16]; 4]) {
    for word in v.iter_mut() {
        for x in word.iter_mut() {
            *x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        }
    }
    cross_mix_lanes(v);
    for word in v.iter_mut() {
        for x in word.iter_mut() {
            *x ^= *x >> 16;
        }
    }
    cross_mix_lanes(v);
}

/// [`cross_mix`] in sixteen lanes.
#[inline(always)]
fn cross_mix_lanes(v: &mut [[u32; 16]; 4]) {
    let [v0, v1, v2, v3] = v;
    mix_lanes(v0, v1, v3);
    mix_lanes(v1, v2, v0);
    mix_lanes(v2, v0, v1);
    mix_lanes(v3, v1, v2);
}

/// a ← a + b·c, lane by lane.
#[inline(always)]
fn mix_lanes(a: &mut [u32; 16], b: &[u32; 16], c: &[u32; 16]) {
    for ((x, &p), &q) in a.iter_mut().zip(b).zip(c) {
        *x = x.wrapping_add(p.wrapping_mul(q));
    }
}

/// A pseudo-random permutation of 0..n drawn from (seed, epoch): the visiting order of
/// the rows in one epoch of mini-batch descent.
///
/// It is a bijection on the m-bit integers (m = ⌈log₂ n⌉) built from steps that are each
/// invertible there (xor with a key, multiplication by an odd constant, xorshift right),
/// restricted to 0..n by cycle walking: values ≥ n are mapped again until they land below
/// n, which keeps it a bijection and takes fewer than two rounds on average.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permutation {
    pub keys: [u32; 4],
    pub mask: u32,
    pub shift: u32,
    pub n: u32,
}

impl Permutation {
    /// The order for `epoch` of a run seeded with `seed`, over `n` rows (n ≥ 1).
    pub fn for_epoch(seed: u64, epoch: u64, n: u32) -> Self {
        assert!(n >= 1, "a permutation needs at least one element");
        let bits = 32 - (n - 1).leading_zeros();
        let mask = if bits == 32 {
            u32::MAX
        } else {
            (1u32 << bits) - 1
        };
        let keys = pcg4d([
            epoch as u32,
            (epoch >> 32) as u32 ^ 0x5eed_0001,
            seed as u32,
            (seed >> 32) as u32,
        ]);
        Permutation {
            keys,
            mask,
            shift: bits.div_ceil(2).max(1),
            n,
        }
    }

    fn round(&self, mut x: u32) -> u32 {
        for &key in &self.keys {
            x = (x ^ key) & self.mask;
            x = x.wrapping_mul(0x2c1b_3c6d) & self.mask;
            x ^= x >> self.shift;
            x = x.wrapping_mul(0x297a_2d39) & self.mask;
            x ^= x >> self.shift;
        }
        x
    }

    /// The row visited at position `p` (p < n).
    pub fn apply(&self, p: u32) -> u32 {
        debug_assert!(p < self.n);
        let mut x = self.round(p);
        while x >= self.n {
            x = self.round(x);
        }
        x
    }

    /// The rows visited at `positions` (each < n), appended to `rows`: [`Self::apply`] of
    /// each, sixteen at a time in lanes the compiler can vectorize (a lane whose value
    /// leaves 0..n takes more rounds, the others keep theirs).
    #[inline(always)]
    pub fn apply_all(&self, positions: std::ops::Range<u32>, rows: &mut Vec<usize>) {
        const LANES: u32 = 16;
        let mut p = positions.start;
        while p + LANES <= positions.end {
            let mut x = [0u32; LANES as usize];
            for (l, v) in x.iter_mut().enumerate() {
                *v = self.round(p + l as u32);
            }
            while x.iter().any(|&v| v >= self.n) {
                for v in &mut x {
                    let next = self.round(*v);
                    *v = if *v >= self.n { next } else { *v };
                }
            }
            rows.extend(x.iter().map(|&v| v as usize));
            p += LANES;
        }
        rows.extend((p..positions.end).map(|q| self.apply(q) as usize));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_lanes_hash_as_one_cell_at_a_time() {
        for (seed, stream, row, first) in [(0, 0, 0, 0), (42, 3, 7, 16), (u64::MAX, 4, 99, 1000)] {
            let lanes = cell_hashes16(seed, stream, row, first);
            for l in 0..16u32 {
                let one = cell_hash(seed, stream, row, first + l);
                let lane: [u32; 4] = std::array::from_fn(|w| lanes[w][l as usize]);
                assert_eq!(lane, one, "seed {seed}, column {}", first + l);
            }
        }
    }

    #[test]
    fn pcg4d_matches_an_independent_evaluation() {
        // From a Python transcription of the paper's listing (arbitrary-precision ints, & 0xffffffff).
        assert_eq!(
            pcg4d([0; 4]),
            [0x0f02_f829, 0x2d56_8769, 0x32b0_c43b, 0xd325_48ea]
        );
        assert_eq!(
            pcg4d([1, 2, 3, 4]),
            [0x3622_cd16, 0xf114_71d8, 0xe110_9b3f, 0x02b9_4c2f]
        );
    }

    #[test]
    fn permutations_are_bijections_for_awkward_sizes() {
        for n in [1u32, 2, 3, 7, 64, 100, 1000, 4097] {
            for epoch in 0..3 {
                let p = Permutation::for_epoch(42, epoch, n);
                let mut seen = vec![false; n as usize];
                for i in 0..n {
                    let j = p.apply(i) as usize;
                    assert!(!seen[j], "n={n}: {j} visited twice");
                    seen[j] = true;
                }
            }
        }
    }

    #[test]
    fn applying_many_equals_applying_each() {
        for n in [1, 5, 16, 17, 1000, 65_537] {
            let p = Permutation::for_epoch(3, 2, n);
            for range in [0..n, n / 3..n, 0..n.min(15)] {
                let mut many = Vec::new();
                p.apply_all(range.clone(), &mut many);
                let each: Vec<usize> = range.map(|i| p.apply(i) as usize).collect();
                assert_eq!(many, each, "n = {n}");
            }
        }
    }

    #[test]
    fn epochs_get_different_orders() {
        let a = Permutation::for_epoch(7, 0, 1000);
        let b = Permutation::for_epoch(7, 1, 1000);
        let moved = (0..1000).filter(|&i| a.apply(i) != b.apply(i)).count();
        assert!(moved > 900, "only {moved} of 1000 positions differ");
        let fixed = (0..1000).filter(|&i| a.apply(i) == i).count();
        assert!(fixed < 20, "{fixed} fixed points");
    }
}
