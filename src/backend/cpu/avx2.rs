//! The AVX2 + FMA forms of the CPU loop's two passes over X, where the compiler's own
//! vectorization leaves speed behind: a dot product's horizontal sum costs more than its
//! multiply-adds when it is done one row at a time, so eight rows are summed together; and
//! Σ δ·x needs more independent chains of multiply-adds than the compiler keeps in
//! registers.

use std::arch::x86_64::{
    __m256, _MM_HINT_T1, _mm_prefetch, _mm256_add_ps, _mm256_fmadd_ps, _mm256_hadd_ps,
    _mm256_loadu_ps, _mm256_permute2f128_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
};

/// z_r = b + x_r·w for eight rows, row r being `x[starts[r]..starts[r] + d]`: one vector
/// of sums per row over the columns in blocks of eight, the eight vectors then summed
/// across their lanes together (a transposing tree of horizontal adds), the last d mod 8
/// columns added one by one, then b.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn dot8(x: &[f32], starts: &[usize; 8], w: &[f32], b: f32) -> [f32; 8] {
    check_rows(x, starts, w.len());
    // SAFETY: the rows are within `x` (checked just above).
    unsafe { finish_dots([_mm256_setzero_ps(); 8], x, starts, w, 0, b) }
}

/// Panics unless every row `x[s..s + d]` of `starts` lies within `x`: the kernels' loads
/// rely on it.
#[inline(always)]
pub(super) fn check_rows(x: &[f32], starts: &[usize], d: usize) {
    for &s in starts {
        assert!(s + d <= x.len(), "row {s}..{} past the data", s + d);
    }
}

/// Ends eight dot products whose columns before `from` are summed in the lanes of `acc`:
/// the columns from `from` in blocks of eight, the lanes summed across, the last d mod 8
/// columns one by one, then b.
///
/// # Safety
/// The CPU must have AVX2 and FMA; every row `x[s..s + w.len()]` lies within `x`.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn finish_dots(
    mut acc: [__m256; 8],
    x: &[f32],
    starts: &[usize; 8],
    w: &[f32],
    from: usize,
    b: f32,
) -> [f32; 8] {
    let d = w.len();
    let mut c = from;
    while c + 8 <= d {
        // SAFETY: c + 8 ≤ d = w.len(), and every start + d ≤ x.len() (the caller's promise).
        unsafe {
            let wv = _mm256_loadu_ps(w.as_ptr().add(c));
            for (a, &s) in acc.iter_mut().zip(starts) {
                *a = _mm256_fmadd_ps(_mm256_loadu_ps(x.as_ptr().add(s + c)), wv, *a);
            }
        }
        c += 8;
    }
    let mut z = [0.0f32; 8];
    if c == d {
        // SAFETY: `z` holds eight floats.
        unsafe {
            _mm256_storeu_ps(
                z.as_mut_ptr(),
                _mm256_add_ps(lane_sums(&acc), _mm256_set1_ps(b)),
            )
        };
        return z;
    }
    // SAFETY: `z` holds eight floats.
    unsafe { _mm256_storeu_ps(z.as_mut_ptr(), lane_sums(&acc)) };
    for (zr, &s) in z.iter_mut().zip(starts) {
        for j in c..d {
            *zr = x[s + j].mul_add(w[j], *zr);
        }
        *zr += b;
    }
    z
}

/// Lane r of the result is the sum of the eight lanes of `v[r]`.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) fn lane_sums(v: &[__m256; 8]) -> __m256 {
    // Pairs of lanes, then quarters: q0 holds rows 0–3 (low half: lanes 0–3 of each row,
    // high half: lanes 4–7), q1 rows 4–7 likewise.
    let q0 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    let q1 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    let low = _mm256_permute2f128_ps::<0x20>(q0, q1);
    let high = _mm256_permute2f128_ps::<0x31>(q0, q1);
    _mm256_add_ps(low, high)
}

/// sums ← sums + Σ_r δ_r·x_r over the rows r at `x[starts[r]..starts[r] + d]`, d =
/// `sums.len()`.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn gradient(x: &[f32], starts: &[usize], deltas: &[f32], sums: &mut [f32]) {
    assert_eq!(starts.len(), deltas.len(), "one δ per row");
    check_rows(x, starts, sums.len());
    // The columns past the last block of 32 first, then the blocks from the last to the
    // first: `dot8` has just read the rows from their first column to their last, so the
    // last columns are the ones still in cache when a tile outgrows it. Each column's sum
    // runs over the rows in the same order either way: the same bits.
    let blocks = sums.len() - sums.len() % 32;
    // SAFETY: the rows are within `x` (checked just above), one δ per row (asserted).
    unsafe { gradient_from(x, starts, deltas, sums, blocks) };
    for c in (0..blocks).step_by(32).rev() {
        // SAFETY: as above, and c + 32 ≤ blocks ≤ d.
        unsafe { block32(x, starts, deltas, sums, c) };
    }
}

/// [`gradient`] for the columns from `from` on, first to last: 32 columns at a time
/// ([`block32`]), then 8 columns at a time in one vector sum, the last d mod 8 columns one
/// by one.
///
/// # Safety
/// The CPU must have AVX2 and FMA; one δ per row; every row `x[s..s + sums.len()]` lies
/// within `x`.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn gradient_from(
    x: &[f32],
    starts: &[usize],
    deltas: &[f32],
    sums: &mut [f32],
    from: usize,
) {
    let d = sums.len();
    let mut c = from;
    while c + 32 <= d {
        // SAFETY: c + 32 ≤ d, and the caller's promises.
        unsafe { block32(x, starts, deltas, sums, c) };
        c += 32;
    }
    while c + 8 <= d {
        let mut acc = _mm256_setzero_ps();
        for (&s, &delta) in starts.iter().zip(deltas) {
            // SAFETY: s + c + 8 ≤ s + d ≤ x.len().
            let xv = unsafe { _mm256_loadu_ps(x.as_ptr().add(s + c)) };
            acc = _mm256_fmadd_ps(xv, _mm256_set1_ps(delta), acc);
        }
        add_into(&mut sums[c..c + 8], acc);
        c += 8;
    }
    for j in c..d {
        let mut acc = 0.0f32;
        for (&s, &delta) in starts.iter().zip(deltas) {
            acc = delta.mul_add(x[s + j], acc);
        }
        sums[j] += acc;
    }
}

/// sums[c..c + 32] ← sums[c..c + 32] + Σ_r δ_r·x_r[c..c + 32], in eight vector sums: even
/// rows into four and odd rows into the other four (eight independent chains keep both
/// multiply-add units busy).
///
/// # Safety
/// The CPU must have AVX2 and FMA; one δ per row; c + 32 ≤ sums.len(); every row
/// `x[s..s + sums.len()]` lies within `x`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block32(x: &[f32], starts: &[usize], deltas: &[f32], sums: &mut [f32], c: usize) {
    let pairs = starts.len() / 2;
    let odd_row = starts.len() % 2 == 1;
    let (mut even, mut odd) = ([_mm256_setzero_ps(); 4], [_mm256_setzero_ps(); 4]);
    for p in 0..pairs {
        let (a, b) = (starts[2 * p] + c, starts[2 * p + 1] + c);
        let (da, db) = (
            _mm256_set1_ps(deltas[2 * p]),
            _mm256_set1_ps(deltas[2 * p + 1]),
        );
        for v in 0..4 {
            // SAFETY: a + 32 ≤ starts[2p] + d ≤ x.len() (the caller's promise); b likewise.
            unsafe {
                even[v] = _mm256_fmadd_ps(_mm256_loadu_ps(x.as_ptr().add(a + 8 * v)), da, even[v]);
                odd[v] = _mm256_fmadd_ps(_mm256_loadu_ps(x.as_ptr().add(b + 8 * v)), db, odd[v]);
            }
        }
    }
    if odd_row {
        let a = starts[2 * pairs] + c;
        let da = _mm256_set1_ps(deltas[2 * pairs]);
        for (v, e) in even.iter_mut().enumerate() {
            // SAFETY: as above.
            *e = _mm256_fmadd_ps(
                unsafe { _mm256_loadu_ps(x.as_ptr().add(a + 8 * v)) },
                da,
                *e,
            );
        }
    }
    for v in 0..4 {
        add_into(
            &mut sums[c + 8 * v..c + 8 * v + 8],
            _mm256_add_ps(even[v], odd[v]),
        );
    }
}

/// Σ x, reading each 64-byte line once and asking for the line `ahead` floats on
/// meanwhile: the memory floor's read.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn stream_sum(x: &[f32], ahead: usize) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 4];
    let pairs = x.chunks_exact(32);
    let rest: f32 = pairs.remainder().iter().sum();
    for (i, pair) in pairs.enumerate() {
        for (line, a) in acc.chunks_exact_mut(2).enumerate() {
            let at = 32 * i + 16 * line;
            if let Some(next) = x.get(at + ahead..) {
                _mm_prefetch::<_MM_HINT_T1>(next.as_ptr().cast());
            }
            // SAFETY: `pair` holds 32 floats.
            unsafe {
                let p = pair.as_ptr().add(16 * line);
                a[0] = _mm256_add_ps(a[0], _mm256_loadu_ps(p));
                a[1] = _mm256_add_ps(a[1], _mm256_loadu_ps(p.add(8)));
            }
        }
    }
    let total = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds eight floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), total) };
    lanes.iter().sum::<f32>() + rest
}

/// sums[0..8] ← sums[0..8] + v.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn add_into(sums: &mut [f32], v: __m256) {
    let eight: &mut [f32; 8] = sums.try_into().expect("eight sums");
    // SAFETY: `eight` holds eight floats.
    unsafe {
        _mm256_storeu_ps(
            eight.as_mut_ptr(),
            _mm256_add_ps(_mm256_loadu_ps(eight.as_ptr()), v),
        )
    };
}

/// The kernels' checks against sums in f64, shared with `avx512`.
#[cfg(test)]
pub(super) mod checks {
    /// A kernel of eight dot products, [`super::dot8`]'s shape.
    pub type Dot8 = unsafe fn(&[f32], &[usize; 8], &[f32], f32) -> [f32; 8];
    /// A kernel of Σ δ·x, [`super::gradient`]'s shape.
    pub type Gradient = unsafe fn(&[f32], &[usize], &[f32], &mut [f32]);

    fn close(got: f32, exact: f64) -> bool {
        (f64::from(got) - exact).abs() <= 1e-5 * (1.0 + exact.abs())
    }

    /// `dot8` at each d of `ds` equals the f64 sum to 1e-5, rows repeated and out of order.
    ///
    /// # Safety
    /// The CPU must have the features `dot8` is compiled for.
    pub unsafe fn dots(dot8: Dot8, ds: &[usize]) {
        for &d in ds {
            let x: Vec<f32> = (0..10 * d)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 16.0)
                .collect();
            let w: Vec<f32> = (0..d).map(|j| (j as f32 - 3.5) / 8.0).collect();
            let starts = [0, 3, 1, 9, 4, 4, 7, 2].map(|r| r * d);
            // SAFETY: the caller's promise.
            let z = unsafe { dot8(&x, &starts, &w, 0.25) };
            for (zr, &s) in z.iter().zip(&starts) {
                let exact: f64 = 0.25
                    + (0..d)
                        .map(|j| f64::from(x[s + j]) * f64::from(w[j]))
                        .sum::<f64>();
                assert!(close(*zr, exact), "d = {d}");
            }
        }
    }

    /// `gradient` at each (d, rows) of `shapes` equals the f64 sums to 1e-5, added to
    /// sums that were not zero.
    ///
    /// # Safety
    /// The CPU must have the features `gradient` is compiled for.
    pub unsafe fn gradients(gradient: Gradient, shapes: &[(usize, usize)]) {
        for &(d, rows) in shapes {
            let x: Vec<f32> = (0..12 * d)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 16.0)
                .collect();
            let starts: Vec<usize> = (0..rows).map(|r| (r * 5 % 12) * d).collect();
            let deltas: Vec<f32> = (0..rows).map(|r| (r as f32 - 2.0) / 4.0).collect();
            let mut sums: Vec<f32> = (0..d).map(|j| j as f32 / 2.0).collect();
            // SAFETY: the caller's promise.
            unsafe { gradient(&x, &starts, &deltas, &mut sums) };
            for (j, got) in sums.iter().enumerate() {
                let exact = j as f64 / 2.0
                    + starts
                        .iter()
                        .zip(&deltas)
                        .map(|(&s, &delta)| f64::from(delta) * f64::from(x[s + j]))
                        .sum::<f64>();
                assert!(close(*got, exact), "d = {d}, {rows} rows");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_avx2() -> bool {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }

    #[test]
    fn eight_dot_products_equal_their_sums_in_f64() {
        if has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA.
            unsafe { checks::dots(dot8, &[1, 7, 8, 13, 64, 67]) };
        }
    }

    #[test]
    fn gradient_sums_equal_their_sums_in_f64() {
        if has_avx2() {
            let shapes = [(1, 3), (8, 1), (13, 4), (32, 5), (64, 16), (75, 7)];
            // SAFETY: the CPU has AVX2 and FMA.
            unsafe { checks::gradients(gradient, &shapes) };
        }
    }
}
