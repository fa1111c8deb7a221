//! The AVX-512 forms of the two kernels of `avx2`: sixteen columns per load, so a row of
//! 64 features is four loads of whole cache lines and the loop issues half the
//! instructions for the same bytes, which leaves the memory reads more room to overlap
//! with the arithmetic. The columns past the last block of sixteen are ended by the AVX2
//! kernels.

use std::arch::x86_64::{
    __m256, __m512, _MM_HINT_T1, _mm_prefetch, _mm256_add_ps, _mm256_castpd_ps, _mm256_setzero_ps,
    _mm512_add_ps, _mm512_castps_pd, _mm512_castps512_ps256, _mm512_extractf64x4_pd,
    _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
};

use super::avx2;

/// [`avx2::dot8`] with the columns in blocks of sixteen.
///
/// # Safety
/// The CPU must have AVX-512F, AVX2 and FMA.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
pub(super) unsafe fn dot8(x: &[f32], starts: &[usize; 8], w: &[f32], b: f32) -> [f32; 8] {
    let d = w.len();
    avx2::check_rows(x, starts, d);
    let mut acc = [_mm512_setzero_ps(); 8];
    let mut c = 0;
    while c + 16 <= d {
        // SAFETY: c + 16 ≤ d = w.len(), and every start + d ≤ x.len() (checked above).
        unsafe {
            let wv = _mm512_loadu_ps(w.as_ptr().add(c));
            for (a, &s) in acc.iter_mut().zip(starts) {
                *a = _mm512_fmadd_ps(_mm512_loadu_ps(x.as_ptr().add(s + c)), wv, *a);
            }
        }
        c += 16;
    }
    let mut halves = [_mm256_setzero_ps(); 8];
    for (h, a) in halves.iter_mut().zip(acc) {
        *h = fold(a);
    }
    // SAFETY: the rows are within `x` (checked above).
    unsafe { avx2::finish_dots(halves, x, starts, w, c, b) }
}

/// The sum of the low and high eight lanes of `v`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
fn fold(v: __m512) -> __m256 {
    let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    _mm256_add_ps(_mm512_castps512_ps256(v), high)
}

/// [`avx2::gradient`] 64 columns at a time in eight vector sums (even rows into four, odd
/// rows into the other four), from the last block back to the first; the columns past the
/// last block by the AVX2 kernel.
///
/// # Safety
/// The CPU must have AVX-512F, AVX2 and FMA.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
pub(super) unsafe fn gradient(x: &[f32], starts: &[usize], deltas: &[f32], sums: &mut [f32]) {
    let d = sums.len();
    assert_eq!(starts.len(), deltas.len(), "one δ per row");
    avx2::check_rows(x, starts, d);
    let pairs = starts.len() / 2;
    // The columns past the last block of 64 first, then the blocks from the last to the
    // first: `dot8` has just read the rows from their first column to their last, so the
    // last columns are the ones still in cache when a tile outgrows it. Each column's sum
    // runs over the rows in the same order either way: the same bits.
    let blocks = d - d % 64;
    // SAFETY: one δ per row, and the rows are within `x` (checked above).
    unsafe { avx2::gradient_from(x, starts, deltas, sums, blocks) };
    let mut end = blocks;
    while end >= 64 {
        end -= 64;
        let c = end;
        let (mut even, mut odd) = ([_mm512_setzero_ps(); 4], [_mm512_setzero_ps(); 4]);
        for p in 0..pairs {
            let (a, b) = (starts[2 * p] + c, starts[2 * p + 1] + c);
            let (da, db) = (
                _mm512_set1_ps(deltas[2 * p]),
                _mm512_set1_ps(deltas[2 * p + 1]),
            );
            for v in 0..4 {
                // SAFETY: a + 64 ≤ starts[2p] + d ≤ x.len() (checked above); b likewise.
                unsafe {
                    even[v] =
                        _mm512_fmadd_ps(_mm512_loadu_ps(x.as_ptr().add(a + 16 * v)), da, even[v]);
                    odd[v] =
                        _mm512_fmadd_ps(_mm512_loadu_ps(x.as_ptr().add(b + 16 * v)), db, odd[v]);
                }
            }
        }
        if starts.len() % 2 == 1 {
            let a = starts[2 * pairs] + c;
            let da = _mm512_set1_ps(deltas[2 * pairs]);
            for (v, e) in even.iter_mut().enumerate() {
                // SAFETY: as above.
                *e = _mm512_fmadd_ps(
                    unsafe { _mm512_loadu_ps(x.as_ptr().add(a + 16 * v)) },
                    da,
                    *e,
                );
            }
        }
        for v in 0..4 {
            let sixteen = &mut sums[c + 16 * v..c + 16 * v + 16];
            // SAFETY: `sixteen` holds sixteen floats.
            unsafe {
                let total = _mm512_add_ps(
                    _mm512_loadu_ps(sixteen.as_ptr()),
                    _mm512_add_ps(even[v], odd[v]),
                );
                _mm512_storeu_ps(sixteen.as_mut_ptr(), total);
            }
        }
    }
}

/// [`avx2::stream_sum`] a whole line per load.
///
/// # Safety
/// The CPU must have AVX-512F, AVX2 and FMA.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn stream_sum(x: &[f32], ahead: usize) -> f32 {
    let mut acc = [_mm512_setzero_ps(); 4];
    let fours = x.chunks_exact(64);
    let rest: f32 = fours.remainder().iter().sum();
    for (i, four) in fours.enumerate() {
        for (line, a) in acc.iter_mut().enumerate() {
            let at = 64 * i + 16 * line;
            if let Some(next) = x.get(at + ahead..) {
                _mm_prefetch::<_MM_HINT_T1>(next.as_ptr().cast());
            }
            // SAFETY: `four` holds 64 floats.
            *a = _mm512_add_ps(*a, unsafe { _mm512_loadu_ps(four.as_ptr().add(16 * line)) });
        }
    }
    let total = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    let mut lanes = [0.0f32; 16];
    // SAFETY: `lanes` holds sixteen floats.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), total) };
    lanes.iter().sum::<f32>() + rest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::avx2::checks;

    fn has_avx512() -> bool {
        let has = std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma");
        if !has {
            eprintln!("skipped: this CPU has no AVX-512");
        }
        has
    }

    #[test]
    fn eight_dot_products_equal_their_sums_in_f64() {
        if has_avx512() {
            // SAFETY: the CPU has AVX-512F, AVX2 and FMA.
            unsafe { checks::dots(dot8, &[1, 7, 8, 13, 16, 24, 64, 67, 83]) };
        }
    }

    #[test]
    fn gradient_sums_equal_their_sums_in_f64() {
        if has_avx512() {
            let shapes = [
                (1, 3),
                (8, 1),
                (13, 4),
                (64, 16),
                (64, 7),
                (107, 9),
                (128, 2),
            ];
            // SAFETY: the CPU has AVX-512F, AVX2 and FMA.
            unsafe { checks::gradients(gradient, &shapes) };
        }
    }
}
