//! The f32 row math of the hot loop: dot products, the gradient's axpy, ℓ and δ by row
//! (`rows_loss_and_delta`, the f32 twin of `crate::loss::RowLoss::loss_and_delta`) and the polynomial
//! exp and ln_1p, with their ulp tests.

use rayon::prelude::*;

use super::order::{CHUNK_ROWS, PREFETCH_BYTES};
#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512};
use crate::model::{Loss, Model, Objective};
use crate::simd::{Simd, dispatch};

/// Tiles whose sums are added in f32 before they are moved into f64: 256 rows at d = 64,
/// few enough that f32 loses nothing a test at 1e-5 could see.
pub(super) const FLUSH_TILES: usize = 16;

/// Σ v in eight independent lanes: one chain of adds would wait for each add in turn.
#[inline(always)]
pub(super) fn lane_sum(v: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let eights = v.chunks_exact(8);
    let rest: f32 = eights.remainder().iter().sum();
    for eight in eights {
        for (l, &e) in lanes.iter_mut().zip(eight) {
            *l += e;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// The largest of `v` in sixteen independent lanes (−∞ for none; NaNs are passed over).
#[inline(always)]
pub(super) fn lane_max(v: &[f32]) -> f32 {
    // `e` where it is larger, else `m` (a NaN `e` is never larger); vectorizes, unlike
    // `f32::max`'s NaN rules.
    let larger = |m: f32, &e: &f32| if e > m { e } else { m };
    let mut lanes = [f32::NEG_INFINITY; 16];
    let sixteens = v.chunks_exact(16);
    let rest = sixteens.remainder().iter().fold(f32::NEG_INFINITY, larger);
    for sixteen in sixteens {
        for (l, e) in lanes.iter_mut().zip(sixteen) {
            *l = larger(*l, e);
        }
    }
    lanes.iter().fold(rest, larger)
}

/// Where `value` first occurs in `v` (0 where it does not, as for a row of NaNs).
#[inline(always)]
fn first_position(v: &[f32], value: f32) -> usize {
    v.iter().position(|&e| e == value).unwrap_or(0)
}

/// Moves the f32 tile sums into the f64 partial and clears them.
#[inline(always)]
pub(super) fn flush(sums: &mut [f32], bias_sums: &mut [f32], partial: &mut [f64]) {
    let wk = sums.len();
    for (p, b) in partial[..wk].iter_mut().zip(sums.iter_mut()) {
        *p += f64::from(*b);
        *b = 0.0;
    }
    for (p, b) in partial[wk..wk + bias_sums.len()]
        .iter_mut()
        .zip(bias_sums.iter_mut())
    {
        *p += f64::from(*b);
        *b = 0.0;
    }
}

/// a·b + c, fused when `FMA` (without hardware FMA, `mul_add` is a slow library call).
#[inline(always)]
pub(super) fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// x·w with sixteen independent lanes (two vector registers, so two chains of FMAs).
#[inline(always)]
pub(super) fn dot<const FMA: bool>(x: &[f32], w: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let (xc, wc) = (x.chunks_exact(16), w.chunks_exact(16));
    let (xr, wr) = (xc.remainder(), wc.remainder());
    for (a, b) in xc.zip(wc) {
        for l in 0..16 {
            lanes[l] = madd::<FMA>(a[l], b[l], lanes[l]);
        }
    }
    let mut sum = lanes.iter().sum::<f32>();
    for (a, b) in xr.iter().zip(wr) {
        sum = madd::<FMA>(*a, *b, sum);
    }
    sum
}

/// Σ δ_r·x_r over the rows of a tile (row r at `x[starts[r]..]`) into `sums` (one
/// output), a block of columns at a time so that the block's sums stay in registers across
/// the rows: each row is read once from the first-level cache and each sum written once
/// per tile, not once per row.
#[inline(always)]
pub(super) fn tile_gradient<const FMA: bool, const WIDE: bool>(
    x: &[f32],
    starts: &[usize],
    deltas: &[f32],
    sums: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        if WIDE {
            // SAFETY: `WIDE` is set only by `run_avx512`, on CPUs with AVX-512F too.
            return unsafe { avx512::gradient(x, starts, deltas, sums) };
        }
        // SAFETY: `FMA` is set only by `run_avx2` and `run_avx512`, on CPUs with AVX2 and
        // FMA.
        return unsafe { avx2::gradient(x, starts, deltas, sums) };
    }
    const BLOCK: usize = 32;
    let d = sums.len();
    let mut start = 0;
    while start + BLOCK <= d {
        let mut acc = [0.0f32; BLOCK];
        acc.copy_from_slice(&sums[start..start + BLOCK]);
        for (&row, &delta) in starts.iter().zip(deltas) {
            let at = row + start;
            let xr: &[f32; BLOCK] = x[at..at + BLOCK].try_into().expect("a block of the row");
            for l in 0..BLOCK {
                acc[l] = madd::<FMA>(delta, xr[l], acc[l]);
            }
        }
        sums[start..start + BLOCK].copy_from_slice(&acc);
        start += BLOCK;
    }
    if start < d {
        for (&row, &delta) in starts.iter().zip(deltas) {
            axpy::<FMA>(delta, &x[row + start..row + d], &mut sums[start..d]);
        }
    }
}

/// acc ← acc + a·x.
#[inline(always)]
pub(super) fn axpy<const FMA: bool>(a: f32, x: &[f32], acc: &mut [f32]) {
    for (s, v) in acc.iter_mut().zip(x) {
        *s = madd::<FMA>(a, *v, *s);
    }
}

/// Turns the z of each row (k per row in `z`) into δ = ∂ℓ/∂z in place, and writes ℓ when
/// `with_loss` (it costs a logarithm per row). The twin of `loss::RowLoss::loss_and_delta`, in
/// f32, with a branch-free exponential so that single-output models vectorize across rows.
#[inline(always)]
pub(super) fn rows_loss_and_delta<const FMA: bool>(
    objective: &Objective,
    z: &mut [f32],
    y: &[f32],
    loss: &mut [f32],
    with_loss: bool,
) {
    if let Loss::Custom(_) = objective.loss() {
        // The graph is interpreted per row, in f64, as the reference does; it is looked up
        // once for the rows, not per row (the registry is behind a lock).
        let k = objective.outputs();
        let row = crate::loss::row_loss(objective);
        let (mut z64, mut delta) = (vec![0.0; k], vec![0.0; k]);
        for ((zr, &yr), l) in z.chunks_exact_mut(k).zip(y).zip(loss.iter_mut()) {
            for (a, &b) in z64.iter_mut().zip(zr.iter()) {
                *a = f64::from(b);
            }
            *l = row.loss_and_delta(&z64, f64::from(yr), &mut delta) as f32;
            for (a, &b) in zr.iter_mut().zip(&delta) {
                *a = b as f32;
            }
        }
        return;
    }
    match (objective.model(), objective.loss()) {
        (Model::Linear, _) => {
            for ((zr, &yr), l) in z.iter_mut().zip(y).zip(loss.iter_mut()) {
                let r = *zr - yr;
                *zr = 2.0 * r;
                *l = r * r;
            }
        }
        (Model::Logistic, Loss::Bce) if with_loss => {
            for ((zr, &yr), l) in z.iter_mut().zip(y).zip(loss.iter_mut()) {
                // y·softplus(−z) + (1 − y)·softplus(z) and (1 − y)·σ(z) − y·σ(−z), as
                // `crate::math::bce_loss_and_delta`: no cancellation on confident rows.
                let (s, complement, e) = sigmoids::<FMA>(*zr);
                *l = ln_1p_unit::<FMA>(e) + yr * (-*zr).max(0.0) + (1.0 - yr) * zr.max(0.0);
                *zr = (1.0 - yr) * s - yr * complement;
            }
        }
        (Model::Logistic, Loss::Bce) => {
            for (zr, &yr) in z.iter_mut().zip(y) {
                let (s, complement, _) = sigmoids::<FMA>(*zr);
                *zr = (1.0 - yr) * s - yr * complement;
            }
        }
        (Model::Logistic, _) => {
            for ((zr, &yr), l) in z.iter_mut().zip(y).zip(loss.iter_mut()) {
                let (s, _) = sigmoid::<FMA>(*zr);
                let r = s - yr;
                *zr = 2.0 * r * s * (1.0 - s);
                *l = r * r;
            }
        }
        (Model::Softmax, _) => {
            let k = objective.outputs();
            for ((zr, &yr), l) in z.chunks_exact_mut(k).zip(y).zip(loss.iter_mut()) {
                // As `loss::SoftmaxCrossEntropy`: r = Σ_{c≠best} e^(z_c − m), the sum 1 + r.
                // The first largest z is best (the first z where none is larger).
                let best = first_position(zr, lane_max(zr));
                let m = zr[best];
                let label = yr as usize;
                let z_label = zr[label];
                for v in zr.iter_mut() {
                    *v = exp_nonpositive::<FMA>(*v - m);
                }
                let e_best = std::mem::replace(&mut zr[best], 0.0);
                let rest = lane_sum(zr);
                zr[best] = e_best;
                let sum = 1.0 + rest;
                for v in zr.iter_mut() {
                    *v /= sum;
                }
                zr[label] = if label == best {
                    -rest / sum
                } else {
                    zr[label] - 1.0
                };
                if with_loss {
                    *l = (m - z_label) + ln_1p::<FMA>(rest);
                }
            }
        }
    }
}

/// σ(z), σ(−z) and exp(−|z|), from one exponential that cannot overflow; no branches.
/// σ(−z) is computed, not taken as 1 − σ(z), which rounds to 0 where σ(z) is near 1.
#[inline(always)]
pub(super) fn sigmoids<const FMA: bool>(z: f32) -> (f32, f32, f32) {
    let e = exp_nonpositive::<FMA>(-z.abs());
    let (near, far) = (1.0 / (1.0 + e), e / (1.0 + e));
    if z >= 0.0 {
        (near, far, e)
    } else {
        (far, near, e)
    }
}

/// σ(z) and exp(−|z|), from one exponential that cannot overflow; no branches.
#[inline(always)]
pub(super) fn sigmoid<const FMA: bool>(z: f32) -> (f32, f32) {
    let e = exp_nonpositive::<FMA>(-z.abs());
    let s = if z >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    };
    (s, e)
}

/// e^x for x ≤ 0, branch-free so loops over it vectorize: x = n·ln 2 + r with n an integer
/// and |r| ≤ ½ ln 2 (ln 2 split in two so that n·ln 2 is exact enough), e^r by its Taylor
/// polynomial to degree 7 (error below 1e-8), 2^n put into the exponent bits. Below −87,
/// where e^x leaves the normal floats, it returns e^−87.
#[inline(always)]
pub(super) fn exp_nonpositive<const FMA: bool>(x: f32) -> f32 {
    const INVERSE_FACTORIALS: [f32; 8] = [
        1.0,
        1.0,
        0.5,
        0.166_666_67,
        0.041_666_668,
        0.008_333_334,
        0.001_388_889,
        0.000_198_412_7,
    ];
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding then subtracting 1.5·2^23 rounds to the nearest integer in f32 arithmetic.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 0.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = INVERSE_FACTORIALS[7];
    for &c in INVERSE_FACTORIALS[..7].iter().rev() {
        p = madd::<FMA>(p, r, c);
    }
    // `shifted`'s low mantissa bits hold n (|n| ≤ 126 < 2^22): integer arithmetic on the
    // bits gives 2^n without a float-to-integer conversion, which would not vectorize.
    let biased = shifted
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127);
    p * f32::from_bits(biased << 23)
}

/// ln(1 + e) for 0 ≤ e ≤ 1, branch-free so loops over it vectorize: 2 atanh(s) with
/// s = e / (2 + e) ≤ 1/3 (no cancellation when e is tiny), by its odd series to s¹⁷
/// (truncation below 1e-10 relative).
#[inline(always)]
pub(super) fn ln_1p_unit<const FMA: bool>(e: f32) -> f32 {
    const INVERSE_ODDS: [f32; 9] = [
        1.0,
        1.0 / 3.0,
        1.0 / 5.0,
        1.0 / 7.0,
        1.0 / 9.0,
        1.0 / 11.0,
        1.0 / 13.0,
        1.0 / 15.0,
        1.0 / 17.0,
    ];
    let s = e / (2.0 + e);
    let t = s * s;
    let mut p = INVERSE_ODDS[8];
    for &c in INVERSE_ODDS[..8].iter().rev() {
        p = madd::<FMA>(p, t, c);
    }
    2.0 * s * p
}

/// ln(1 + v) for v ≥ 0: the series where v ≤ 1 (no rounding of 1 + v), else ln.
#[inline(always)]
pub(super) fn ln_1p<const FMA: bool>(v: f32) -> f32 {
    if v <= 1.0 {
        ln_1p_unit::<FMA>(v)
    } else {
        (1.0 + v).ln()
    }
}

/// One streaming read of `x` on all cores, and nothing else: the memory floor of an epoch.
/// Returns the sum so the reads cannot be optimised away.
pub fn stream_read(x: &[f32]) -> f32 {
    // The floor is as good a read as this file can write: the loop's widest loads and its
    // prefetch distance (each measured faster than without).
    let ahead = PREFETCH_BYTES / 4;
    x.par_chunks(CHUNK_ROWS * 16)
        .map(|chunk| {
            dispatch!(
                Simd::detected(),
                // SAFETY: the CPU has AVX-512F, AVX2 and FMA (the detected level).
                avx512 => unsafe { avx512::stream_sum(chunk, ahead) },
                // SAFETY: the CPU has AVX2 and FMA (the detected level).
                avx2 => unsafe { avx2::stream_sum(chunk, ahead) },
                portable => sum_lanes(chunk),
            )
        })
        .sum()
}

/// Σ x with 32 independent lanes.
pub(super) fn sum_lanes(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 32];
    let chunks = x.chunks_exact(32);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..32 {
            lanes[l] += c[l];
        }
    }
    lanes.iter().sum::<f32>() + rest
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lanes' maximum is the sequential one at every length around the lane count, and
    /// its first position is the first of ties; NaNs are passed over.
    #[test]
    fn lane_max_and_its_first_position_are_the_sequential_ones() {
        for len in 1..=40 {
            let mut v: Vec<f32> = (0..len).map(|i| ((i * 7919) % 23) as f32 - 11.0).collect();
            let sequential = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(lane_max(&v), sequential, "{len}");
            let first = v.iter().position(|&e| e == sequential).unwrap();
            assert_eq!(first_position(&v, lane_max(&v)), first, "{len}");
            v[len / 2] = f32::NAN;
            let without: f32 = v
                .iter()
                .copied()
                .filter(|e| !e.is_nan())
                .fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(lane_max(&v), without, "{len} with a NaN");
        }
        assert_eq!(lane_max(&[]), f32::NEG_INFINITY);
        assert_eq!(
            first_position(&[f32::NAN, f32::NAN], lane_max(&[f32::NAN, f32::NAN])),
            0
        );
        // Ties: the first of two equal maxima, in different lanes and in the remainder.
        let mut ties = vec![0.0f32; 37];
        ties[20] = 5.0;
        ties[3] = 5.0;
        ties[36] = 5.0;
        assert_eq!(first_position(&ties, lane_max(&ties)), 3);
    }

    #[test]
    fn the_series_logarithm_is_within_two_ulps() {
        for ln_1p in [ln_1p_unit::<false>, ln_1p_unit::<true>] {
            let mut worst = 0.0f64;
            for i in 0..=1_000_000 {
                // Tiny e too: e^−87 is the smallest the logistic loss passes.
                let e = if i < 1000 {
                    (-87.0f32 + i as f32 * 0.08).exp()
                } else {
                    i as f32 * 1e-6
                };
                let exact = f64::from(e).ln_1p();
                let ulp = f64::from(f32::EPSILON) * exact.max(f64::from(f32::MIN_POSITIVE));
                worst = worst.max((f64::from(ln_1p(e)) - exact).abs() / ulp);
            }
            assert!(worst <= 2.0, "{worst} ulps");
        }
    }

    #[test]
    fn the_polynomial_exponential_is_within_two_ulps() {
        // Both forms: fused multiply-adds (the AVX2 and AVX-512 loops) and separate ones.
        for exp in [exp_nonpositive::<false>, exp_nonpositive::<true>] {
            let mut worst = 0.0f64;
            for i in 0..=870_000 {
                let x = -(i as f32) * 1e-4;
                let exact = f64::from(x).exp();
                let ulp = f64::from(f32::EPSILON) * exact;
                worst = worst.max((f64::from(exp(x)) - exact).abs() / ulp);
            }
            assert!(worst <= 2.0, "worst error {worst} ulp");
            assert_eq!(exp(0.0), 1.0);
            assert!(exp(-1000.0) > 0.0);
        }
    }
}
