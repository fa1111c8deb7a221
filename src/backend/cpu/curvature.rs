//! The CPU's curvature passes, for the Newton solvers: the Hessian sums with the gradient
//! pass's (one read of the rows), and Hessian-vector products. In f64 over the f32 rows,
//! on every core, in fixed chunks of rows whose partials are added in order, so reruns
//! give the same bits.
//!
//! The Hessian is Σ w·(x̃x̃ᵀ ⊗ C) with C = ∂²ℓ/∂z∂zᵀ (k×k), so each pair of classes
//! (c ≤ c′) owns one (d + 1)×(d + 1) block Σ w·C_cc′·x̃x̃ᵀ. A tile of rows is widened to f64
//! once, padded with zeros to a width of whole panels; each block's upper triangle then
//! takes the tile's product x̃ᵀ(s ⊙ x̃) a panel of R×C entries at a time, the panel's sums
//! held in registers through the tile's rows (one broadcast and C/8 vector loads per R·C/8
//! fused multiply-adds, where rank-one updates loaded and stored the block for each row).

use rayon::prelude::*;

use super::order::chunk_rows;
use super::pass::Weighting;
use super::session::CpuSession;
use crate::backend::reference::predicted_class;
use crate::descent::{HessianSums, PassSums, RowSet};
use crate::loss::{RowLoss, row_loss};
use crate::simd::{Simd, dispatch};

/// Rows widened to f64 at a time in a Hessian pass.
const TILE: usize = 64;

/// Blocks are padded to whole multiples of this: a panel's rows and its columns.
const PAD: usize = 8;

/// What every chunk of a curvature pass reads: the rows, their weights, θ per class.
struct Curvature<'p> {
    session: &'p CpuSession<'p>,
    weights: Weighting<'p>,
    loss: &'p dyn RowLoss,
    /// Raw-space parameters class-major: class c's weights (d) and bias at c·(d + 1).
    theta: Vec<f64>,
}

/// θ's layout (W row-major d×k, then b) turned class-major, d + 1 values per class.
fn class_major(theta: &[f64], d: usize, k: usize) -> Vec<f64> {
    let mut out = vec![0.0; (d + 1) * k];
    for c in 0..k {
        for j in 0..=d {
            out[c * (d + 1) + j] = theta[j * k + c];
        }
    }
    out
}

/// x·w + b of one class, w and b from `wb` (d weights, then the bias), in f64 with eight
/// partial sums so that the loop vectorizes.
#[inline(always)]
fn logit(x: &[f32], wb: &[f64]) -> f64 {
    let (w, b) = wb.split_at(x.len());
    let mut lanes = [0.0f64; 8];
    let (xs, ws) = (x.chunks_exact(8), w.chunks_exact(8));
    let (xr, wr) = (xs.remainder(), ws.remainder());
    for (xc, wc) in xs.zip(ws) {
        for l in 0..8 {
            lanes[l] += f64::from(xc[l]) * wc[l];
        }
    }
    let tail: f64 = xr.iter().zip(wr).map(|(&a, &b)| f64::from(a) * b).sum();
    lanes.iter().sum::<f64>() + tail + b[0]
}

impl<'p> Curvature<'p> {
    fn new(session: &'p CpuSession<'p>, rows: RowSet, loss: &'p dyn RowLoss) -> Self {
        let (d, k) = (session.data.features(), session.objective.outputs());
        Curvature {
            session,
            weights: session.weighting(rows),
            loss,
            theta: class_major(&session.descent.raw(), d, k),
        }
    }

    fn shape(&self) -> (usize, usize) {
        (
            self.session.data.features(),
            self.session.objective.outputs(),
        )
    }

    /// Local rows `start..end` in fixed chunks, each chunk's partial of `len` values made
    /// by `chunk`, added in chunk order.
    fn over_chunks(&self, len: usize, chunk: impl Fn(usize, usize, &mut [f64]) + Sync) -> Vec<f64> {
        let n = self.session.data.rows();
        let size = chunk_rows(n);
        let partials: Vec<Vec<f64>> = (0..n.div_ceil(size))
            .into_par_iter()
            .map(|i| {
                let mut partial = vec![0.0; len];
                chunk(i * size, ((i + 1) * size).min(n), &mut partial);
                partial
            })
            .collect();
        let mut sum = vec![0.0; len];
        for partial in &partials {
            for (s, v) in sum.iter_mut().zip(partial) {
                *s += v;
            }
        }
        sum
    }

    /// Σ w·x̃ ⊗ (C·(x̃·V)) of rows `start..end` into `out` (θ's layout).
    fn product_chunk(&self, v: &[f64], start: usize, end: usize, out: &mut [f64]) {
        let (d, k) = self.shape();
        let data = &self.session.data;
        let (mut z, mut u, mut c) = (vec![0.0; k], vec![0.0; k], vec![0.0; k * k]);
        let mut r = vec![0.0; k];
        for i in start..end {
            let label = data.y()[i];
            let weight = f64::from(self.weights.of(i, label));
            if weight == 0.0 {
                continue;
            }
            let x = data.row(i);
            for e in 0..k {
                z[e] = logit(x, &self.theta[e * (d + 1)..(e + 1) * (d + 1)]);
                u[e] = logit(x, &v[e * (d + 1)..(e + 1) * (d + 1)]);
            }
            self.loss.curvature(&z, f64::from(label), &mut c);
            for e in 0..k {
                r[e] = weight * (0..k).map(|f| c[e * k + f] * u[f]).sum::<f64>();
            }
            for (j, &xj) in x.iter().enumerate() {
                let xj = f64::from(xj);
                for (o, re) in out[j * k..(j + 1) * k].iter_mut().zip(&r) {
                    *o += xj * re;
                }
            }
            for (o, re) in out[d * k..].iter_mut().zip(&r) {
                *o += re;
            }
        }
    }

    /// The Hessian blocks (pairs c ≤ c′ in order, each w×w with w = d + 1 padded to
    /// [`PAD`], the upper triangle of its first (d + 1)² entries summed), then the gradient
    /// (θ's layout) and the five metric sums, of rows `start..end`.
    fn hessian_chunk(&self, simd: Simd, start: usize, end: usize, out: &mut [f64]) {
        let (d, k) = self.shape();
        let (d1, pairs) = (d + 1, k * (k + 1) / 2);
        let w = padded(d1);
        let data = &self.session.data;
        let (blocks, rest) = out.split_at_mut(pairs * w * w);
        let (grad, metrics) = rest.split_at_mut(d1 * k);
        let (mut z, mut delta, mut c) = (vec![0.0; k], vec![0.0; k], vec![0.0; k * k]);
        // The tile's rows x̃ in f64 (the padding stays zero), and per row the weighted
        // curvature of each pair.
        let mut tile = vec![0.0; TILE * w];
        let mut weighted = vec![0.0; TILE * pairs];
        let mut scaled = vec![0.0; TILE * w];
        let mut filled = 0;
        for i in start..end {
            let label = data.y()[i];
            let weight = f64::from(self.weights.of(i, label));
            if weight != 0.0 {
                let x = data.row(i);
                for (ze, theta) in z.iter_mut().zip(self.theta.chunks_exact(d1)) {
                    *ze = logit(x, theta);
                }
                let y = f64::from(label);
                let loss = self.loss.loss_and_delta(&z, y, &mut delta);
                self.loss.curvature(&z, y, &mut c);
                let row = &mut tile[filled * w..filled * w + d1];
                for (t, &xj) in row.iter_mut().zip(x) {
                    *t = f64::from(xj);
                }
                row[d] = 1.0;
                for (j, &xj) in row.iter().enumerate() {
                    for (g, de) in grad[j * k..(j + 1) * k].iter_mut().zip(&delta) {
                        *g += weight * xj * de;
                    }
                }
                let correct = f64::from(u8::from(predicted_class(&z) == y.round() as usize));
                for (m, v) in metrics.iter_mut().zip([loss, 1.0, correct, y, y * y]) {
                    *m += weight * v;
                }
                let mut pair = 0;
                for a in 0..k {
                    for b in a..k {
                        weighted[filled * pairs + pair] = weight * c[a * k + b];
                        pair += 1;
                    }
                }
                filled += 1;
            }
            if filled == TILE || (i + 1 == end && filled > 0) {
                for pair in 0..pairs {
                    for t in 0..filled {
                        let s = weighted[t * pairs + pair];
                        for (o, &x) in scaled[t * w..(t + 1) * w]
                            .iter_mut()
                            .zip(&tile[t * w..(t + 1) * w])
                        {
                            *o = s * x;
                        }
                    }
                    let block = &mut blocks[pair * w * w..(pair + 1) * w * w];
                    tile_product(simd, &tile[..filled * w], &scaled[..filled * w], w, block);
                }
                filled = 0;
            }
        }
    }
}

/// w: d + 1 padded to whole panels (the panels of the diagonal sum 28 of their 64 entries
/// for nothing; wider ones wasted more).
fn padded(d1: usize) -> usize {
    d1.next_multiple_of(PAD)
}

/// block[j][l] += Σ_t a[t][j]·b[t][l], rows of w, for every R×C panel that meets the upper
/// triangle (l ≥ j); entries of panels below it are not touched, those of the panels on
/// the diagonal below it are summed and not read. The panel's R·C sums stay in registers
/// through the tile (AVX-512: 8 × 8, eight registers, one broadcast multiply-add each per
/// row; AVX2: 4 × 8, eight registers of 4).
fn tile_product(simd: Simd, a: &[f64], b: &[f64], w: usize, block: &mut [f64]) {
    dispatch!(
        simd,
        // SAFETY: the CPU has AVX-512F, AVX2 and FMA (the level is available).
        avx512 => unsafe { tile_product_avx512(a, b, w, block) },
        // SAFETY: the CPU has AVX2 and FMA (the level is available).
        avx2 => unsafe { tile_product_avx2(a, b, w, block) },
        portable => tile_product_generic::<4, 8, false>(a, b, w, block),
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_product_avx2(a: &[f64], b: &[f64], w: usize, block: &mut [f64]) {
    tile_product_generic::<4, 8, true>(a, b, w, block)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile_product_avx512(a: &[f64], b: &[f64], w: usize, block: &mut [f64]) {
    tile_product_generic::<8, 8, true>(a, b, w, block)
}

#[inline(always)]
fn tile_product_generic<const R: usize, const C: usize, const FMA: bool>(
    a: &[f64],
    b: &[f64],
    w: usize,
    block: &mut [f64],
) {
    let rows = a.len() / w;
    for j0 in (0..w).step_by(R) {
        for l0 in ((j0 / C * C)..w).step_by(C) {
            let mut sums = [[0.0f64; C]; R];
            for t in 0..rows {
                let ar: &[f64; R] = a[t * w + j0..t * w + j0 + R].try_into().expect("R wide");
                let br: &[f64; C] = b[t * w + l0..t * w + l0 + C].try_into().expect("C wide");
                for (sum, &aj) in sums.iter_mut().zip(ar) {
                    for (s, &bl) in sum.iter_mut().zip(br) {
                        *s = if FMA {
                            aj.mul_add(bl, *s)
                        } else {
                            *s + aj * bl
                        };
                    }
                }
            }
            for (r, sum) in sums.iter().enumerate() {
                let out = &mut block[(j0 + r) * w + l0..(j0 + r) * w + l0 + C];
                for (o, s) in out.iter_mut().zip(sum) {
                    *o += s;
                }
            }
        }
    }
}

impl<'a> CpuSession<'a> {
    /// [`crate::Session::hessian_sums`] over this session's rows in `rows`.
    pub(super) fn hessian_pass(&self, rows: RowSet) -> HessianSums {
        let (d, k) = (self.data.features(), self.objective.outputs());
        let (d1, p, pairs) = (d + 1, (d + 1) * k, k * (k + 1) / 2);
        let loss = row_loss(&self.objective);
        let pass = Curvature::new(self, rows, loss.as_ref());
        let w = padded(d1);
        let len = pairs * w * w + p + 5;
        let simd = self.simd;
        let sums = pass.over_chunks(len, |s, e, out| pass.hessian_chunk(simd, s, e, out));
        let (blocks, rest) = sums.split_at(pairs * w * w);
        let mut hessian = vec![0.0; p * p];
        let mut pair = 0;
        for a in 0..k {
            for b in a..k {
                let block = &blocks[pair * w * w..(pair + 1) * w * w];
                for j in 0..d1 {
                    for l in j..d1 {
                        let h = block[j * w + l];
                        // Entry ((j, a), (l, b)) and its mirror images.
                        for (r, s) in [(j * k + a, l * k + b), (l * k + a, j * k + b)] {
                            hessian[r * p + s] = h;
                            hessian[s * p + r] = h;
                        }
                    }
                }
                pair += 1;
            }
        }
        let mut metrics = [0.0; 5];
        metrics.copy_from_slice(&rest[p..]);
        HessianSums {
            pass: PassSums {
                gradient: rest[..p].to_vec(),
                metrics,
            },
            hessian,
        }
    }

    /// [`crate::Session::hessian_vector_sums`] over this session's rows in `rows`.
    pub(super) fn hessian_vector_pass(&self, v: &[f64], rows: RowSet) -> Vec<f64> {
        let (d, k) = (self.data.features(), self.objective.outputs());
        let loss = row_loss(&self.objective);
        let pass = Curvature::new(self, rows, loss.as_ref());
        let v = class_major(v, d, k);
        pass.over_chunks((d + 1) * k, |s, e, out| pass.product_chunk(&v, s, e, out))
    }
}
