//! Matrix products of f32 tiles, for the passes whose per-row work is a product with a
//! matrix (softmax with many classes): on AMX tiles where the level is
//! [`Simd::Amx`](crate::simd::Simd::Amx) (`amx`), else one call into a maintained GEMM
//! (`matrixmultiply`); single-threaded either way (the pass runs one chunk of rows per
//! core), so the blocking, and with it the bits, depend only on the shapes and the level.

#[cfg(target_arch = "x86_64")]
use super::amx;
use super::view::View;
use crate::simd::Simd;

/// Classes from which the products run on AMX tiles, where the level has them: the tiles
/// pack X_t twice a tile, a cost that only many classes repay (measured against
/// `matrixmultiply` at 20 000 rows: 100 classes level, 200 25 % faster, 500 and 1 000
/// 35-40 % faster; 8 to 32 classes 1.2-1.8 times slower).
pub(super) const TILE_CLASSES: usize = 128;

/// Whether a pass at `simd` with `k` classes runs its products on AMX tiles.
pub(super) fn on_tiles(simd: Simd, k: usize) -> bool {
    simd == Simd::Amx && k >= TILE_CLASSES
}

/// The two products of a pass over tiles of rows, Z = X_t·W and G += Δᵀ·X_t, with what
/// they keep between tiles: W packed for the tiles once a pass, and the tiles' buffers.
#[derive(Default)]
pub(super) struct Products {
    // Read only where there are tiles (x86-64).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    on_tiles: bool,
    /// The pass whose W `packed` holds.
    #[cfg(target_arch = "x86_64")]
    packed_for: Option<u64>,
    #[cfg(target_arch = "x86_64")]
    packed: amx::Operands,
}

impl Products {
    /// Starts a chunk of pass `pass` with W (d×k, seen through `w`): on AMX tiles if
    /// `on_tiles`, which the CPU must have, with W packed once a pass on each thread.
    pub(super) fn start(&mut self, on_tiles: bool, pass: u64, w: &View, (d, k): (usize, usize)) {
        self.on_tiles = on_tiles;
        #[cfg(target_arch = "x86_64")]
        if on_tiles && self.packed_for != Some(pass) {
            self.packed_for = Some(pass);
            self.packed.w.right(w, (d, k));
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (pass, w, d, k);
    }

    /// Z ← X_t·W for X_t `count`×d (`x`) and the pass's W, d×k (`w`, as given to
    /// [`Self::start`]); Z is `count`×k, row-major.
    pub(super) fn forward(
        &mut self,
        x: &View,
        w: &View,
        (count, d, k): (usize, usize, usize),
        z: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.on_tiles {
            self.packed.x.left(x, (count, d));
            amx::gemm((count, k), &self.packed.x, &self.packed.w, z, k, false);
            return;
        }
        gemm((count, d, k), x, w, z, k, false);
    }

    /// G ← G + Δᵀ·X_t for Δᵀ k×`count` (`deltas`) and X_t `count`×d (`x`); G is k×d,
    /// row-major.
    pub(super) fn backward(
        &mut self,
        deltas: &View,
        x: &View,
        (k, count, d): (usize, usize, usize),
        g: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.on_tiles {
            self.packed.deltas.left(deltas, (k, count));
            self.packed.x_pairs.right(x, (count, d));
            amx::gemm(
                (k, d),
                &self.packed.deltas,
                &self.packed.x_pairs,
                g,
                d,
                true,
            );
            return;
        }
        gemm((k, count, d), deltas, x, g, d, true);
    }
}

/// C ← A·B (`add`: C ← C + A·B) for `(m, k, n)`: A m×k, B k×n, C m×n row-major with
/// `c_row` floats a row.
pub(super) fn gemm(
    (m, k, n): (usize, usize, usize),
    a: &View,
    b: &View,
    c: &mut [f32],
    c_row: usize,
    add: bool,
) {
    let last = |v: &View, rows: usize, cols: usize| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * v.row + (cols - 1) * v.col + 1
        }
    };
    assert!(a.data.len() >= last(a, m, k), "A is {m}×{k}");
    assert!(b.data.len() >= last(b, k, n), "B is {k}×{n}");
    assert!(
        m == 0 || n == 0 || c.len() >= (m - 1) * c_row + n,
        "C is {m}×{n}"
    );
    // SAFETY: the assertions keep every element the strides reach inside its slice; C is
    // borrowed mutably, so it aliases neither A nor B.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            a.row as isize,
            a.col as isize,
            b.data.as_ptr(),
            b.row as isize,
            b.col as isize,
            if add { 1.0 } else { 0.0 },
            c.as_mut_ptr(),
            c_row as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_equal_the_definition_with_transposed_views() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        // B stored transposed (n×k), seen as k×n.
        let bt: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut c = vec![1.0f32; m * n];
        let (av, bv) = (
            View {
                data: &a,
                row: k,
                col: 1,
            },
            View {
                data: &bt,
                row: 1,
                col: k,
            },
        );
        gemm((m, k, n), &av, &bv, &mut c, n, true);
        for i in 0..m {
            for j in 0..n {
                let exact: f64 = 1.0
                    + (0..k)
                        .map(|l| f64::from(a[i * k + l]) * f64::from(bt[j * k + l]))
                        .sum::<f64>();
                assert!((f64::from(c[i * n + j]) - exact).abs() < 1e-5, "({i}, {j})");
            }
        }
    }
}
