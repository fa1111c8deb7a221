//! Synthetic regression problems with known true parameters, drawn from a counter-based
//! hash so that every backend (and the WGSL generator) makes the same bits.
//!
//! The recipe, for row i, feature j, class c, with r = ⌊log₂(d) / 2⌋:
//! - x_ij = a_ij / 256, a_ij = (sum of 12 random bytes) − 1530: Irwin–Hall, mean 0,
//!   variance 65535/65536 ≈ 1, in [−5.98, 5.98].
//! - true W_jc and b_c: the same kind of integer over 256 · 2^r, so z = x·W + b has
//!   variance between 1 and 4 whatever d is.
//! - linear: y = z + ε, ε = e / 2048 with e the same kind of integer (noise sd 0.125).
//! - logistic: y = 1 when z > −L, L drawn from a 4096-point quantile table of the logistic
//!   distribution, so P(y = 1) = σ(z) (to 1/4096).
//! - softmax: y = argmax_c (z_c + G_c), G_c from a quantile table of the Gumbel distribution
//!   (the Gumbel-max trick), so P(y = c) = softmax(z)_c.
//!
//! z is computed exactly: the products a_ij · a_jc are integers, summed in 64-bit integers,
//! and rounded to f32 once (round to nearest, ties to even). No float sum whose order or
//! fusion could differ between a CPU and a GPU enters the data.
//!
//! Sparse rows ([`Synthetic::sparse_rows`], density p): row i keeps m = round(p·d) of its
//! cells (at least 1), at columns j_t = ⌊h_t · d / 2³²⌋ for t < m, h_t a hash word of
//! (i, t) (a column drawn twice is kept once), with the dense problem's values there; r in
//! the recipe is ⌊log₂(m) / 2⌋, so z keeps its variance whatever the density.

use rayon::prelude::*;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::floats::Floats;
use crate::model::{Model, Objective, Params};
use crate::rng::{cell_hash, cell_hashes16};
use crate::simd::{Simd, dispatch};
use crate::sparse::SparseDataset;

/// Which stream of the hash a value comes from.
const STREAM_X: u32 = 0;
const STREAM_W: u32 = 1;
const STREAM_B: u32 = 2;
const STREAM_LABEL: u32 = 3;
/// The columns of a sparse row (4 is the held-out split's, `rng::STREAM_SPLIT`).
const STREAM_COLUMNS: u32 = 5;

/// Points in each quantile table.
pub const QUANTILES: usize = 4096;

/// A synthetic problem: sizes, objective and seed determine every value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Synthetic {
    rows: usize,
    features: usize,
    objective: Objective,
    seed: u64,
}

/// An Irwin–Hall integer: the sum of the 12 bytes of three hash words, minus their mean.
#[inline(always)]
fn irwin_hall(words: [u32; 4]) -> i32 {
    byte_sum(words[0]) + byte_sum(words[1]) + byte_sum(words[2]) - 1530
}

/// The sum of the four bytes of `w`, in shifts and masks (so it vectorizes).
#[inline(always)]
fn byte_sum(w: u32) -> i32 {
    let pairs = (w & 0x00ff_00ff) + ((w >> 8) & 0x00ff_00ff);
    ((pairs & 0xffff) + (pairs >> 16)) as i32
}

impl Synthetic {
    /// Rows from 1 to 2³² − 1; features from 1 to 2²⁸ − 1.
    pub fn new(rows: usize, features: usize, objective: Objective, seed: u64) -> Result<Self> {
        if rows == 0 || rows > u32::MAX as usize {
            return Err(Error::option(
                "rows",
                rows,
                "must be between 1 and 4294967295",
            ));
        }
        if features == 0 || features >= 1 << 28 {
            return Err(Error::option(
                "features",
                features,
                "must be between 1 and 268435455",
            ));
        }
        Ok(Synthetic {
            rows,
            features,
            objective,
            seed,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn features(&self) -> usize {
        self.features
    }

    pub fn objective(&self) -> Objective {
        self.objective
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// r in the recipe: true weights are integers over 256 · 2^r.
    pub fn weight_shift(&self) -> u32 {
        (usize::BITS - 1 - self.features.leading_zeros()) / 2
    }

    /// The integer a_ij behind x_ij = a_ij / 256.
    pub fn x_int(&self, row: u32, column: u32) -> i32 {
        irwin_hall(cell_hash(self.seed, STREAM_X, row, column))
    }

    /// [`Synthetic::x_int`] of row `i` for every column j < `a.len()`, sixteen columns
    /// at a time in vector lanes (with the widest vector instructions this CPU has).
    fn x_ints(&self, i: u32, a: &mut [i64]) {
        dispatch!(
            Simd::detected(),
            // SAFETY: the CPU has AVX-512F, AVX2 and FMA (the detected level).
            avx512 => unsafe { self.x_ints_avx512(i, a) },
            // SAFETY: the CPU has AVX2 and FMA (the detected level).
            avx2 => unsafe { self.x_ints_avx2(i, a) },
            portable => self.x_ints_in_lanes(i, a),
        )
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn x_ints_avx512(&self, i: u32, a: &mut [i64]) {
        self.x_ints_in_lanes(i, a)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn x_ints_avx2(&self, i: u32, a: &mut [i64]) {
        self.x_ints_in_lanes(i, a)
    }

    #[inline(always)]
    fn x_ints_in_lanes(&self, i: u32, a: &mut [i64]) {
        let done = a.len() / 16 * 16;
        for (b, block) in a[..done].chunks_exact_mut(16).enumerate() {
            let words = cell_hashes16(self.seed, STREAM_X, i, 16 * b as u32);
            for (l, aj) in block.iter_mut().enumerate() {
                *aj = i64::from(irwin_hall([words[0][l], words[1][l], words[2][l], 0]));
            }
        }
        for (j, aj) in a.iter_mut().enumerate().skip(done) {
            *aj = i64::from(self.x_int(i, j as u32));
        }
    }

    /// The integer behind W_jc (j < d) or b_c (j = d).
    pub fn param_int(&self, j: u32, class: u32) -> i32 {
        if j as usize == self.features {
            irwin_hall(cell_hash(self.seed, STREAM_B, class, 0))
        } else {
            irwin_hall(cell_hash(self.seed, STREAM_W, j, class))
        }
    }

    /// The true parameters the labels were drawn from.
    pub fn true_params(&self) -> Params {
        self.true_params_at(self.weight_shift())
    }

    /// The true parameters of the weights' integers over 256 · 2^`shift`.
    fn true_params_at(&self, shift: u32) -> Params {
        let (d, k) = (self.features, self.objective.outputs());
        let scale = 1.0 / (256.0 * f64::from(1u32 << shift));
        let mut params = Params::zeros(d, k);
        for j in 0..d {
            for c in 0..k {
                params.weights_mut()[j * k + c] =
                    f64::from(self.param_int(j as u32, c as u32)) * scale;
            }
        }
        for c in 0..k {
            params.bias_mut()[c] = f64::from(self.param_int(d as u32, c as u32)) * scale;
        }
        params
    }

    /// Generates X and y on the CPU, rows in parallel (each row depends on its index alone).
    pub fn generate(&self) -> Result<Dataset> {
        self.generate_rows(0..self.rows)
    }

    /// Rows `rows` of the problem (the same values as those rows of [`Synthetic::generate`]).
    pub fn generate_rows(&self, rows: std::ops::Range<usize>) -> Result<Dataset> {
        let (d, k) = (self.features, self.objective.outputs());
        let w: Vec<i64> = (0..=d)
            .flat_map(|j| (0..k).map(move |c| (j, c)))
            .map(|(j, c)| i64::from(self.param_int(j as u32, c as u32)))
            .collect();
        let tables = quantile_tables();
        let n = rows.len();
        let what = || {
            format!(
                "the synthetic rows ({} × {}, in host memory for the CPU)",
                crate::error::count(n, "row"),
                crate::error::count(d, "feature")
            )
        };
        crate::memory::check(
            crate::memory::bytes_of::<f32>(n.saturating_mul(d.saturating_add(1))),
            what,
        )?;
        let mut x = Floats::zeroed(n.saturating_mul(d), what)?;
        let mut y = crate::memory::filled(n, 0.0f32, what)?;
        const BLOCK: usize = 1024;
        x.par_chunks_mut(BLOCK * d)
            .zip(y.par_chunks_mut(BLOCK))
            .enumerate()
            .for_each(|(block, (xs, ys))| {
                let mut a = vec![0i64; d];
                let mut z = vec![0i64; k];
                for (r, (row, label)) in xs.chunks_exact_mut(d).zip(ys.iter_mut()).enumerate() {
                    let i = (rows.start + block * BLOCK + r) as u32;
                    self.x_ints(i, &mut a);
                    for (aj, xj) in a.iter().zip(row.iter_mut()) {
                        *xj = *aj as f32 / 256.0;
                    }
                    for (c, zc) in z.iter_mut().enumerate() {
                        *zc = 256 * w[d * k + c] + (0..d).map(|j| a[j] * w[j * k + c]).sum::<i64>();
                    }
                    *label = self.label(i, &z, &tables);
                }
            });
        Ok(Dataset::from_floats(x, y, d).expect("synthetic data are finite and well shaped"))
    }

    /// The label of row `i` from its exact z (in units of 2^−(16 + r)).
    fn label(&self, i: u32, z: &[i64], tables: &[f32]) -> f32 {
        self.label_at(i, z, tables, self.weight_shift())
    }

    /// [`Self::label`] with r = `r`.
    fn label_at(&self, i: u32, z: &[i64], tables: &[f32], r: u32) -> f32 {
        let unit = 1.0 / (65536.0 * (1u32 << r) as f32);
        let noise = |c: u32| cell_hash(self.seed, STREAM_LABEL, i, c);
        match self.objective.model() {
            Model::Linear => {
                let e = i64::from(irwin_hall(noise(0)));
                (z[0] + (e << (5 + r))) as f32 * unit
            }
            Model::Logistic => {
                let l = tables[(noise(0)[0] as usize) % QUANTILES];
                f32::from(z[0] as f32 * unit > -l)
            }
            Model::Softmax => {
                let mut best = (0, f32::NEG_INFINITY);
                for (c, &zc) in z.iter().enumerate() {
                    let g = tables[QUANTILES + (noise(c as u32)[0] as usize) % QUANTILES];
                    let score = zc as f32 * unit + g;
                    if score > best.1 {
                        best = (c, score);
                    }
                }
                best.0 as f32
            }
        }
    }
}

/// Rows generated at a time by one core.
const SPARSE_BLOCK: usize = 4096;

/// One block of sparse synthetic rows: each row's length, its columns and values, labels.
#[derive(Default)]
struct SparseBlock {
    lengths: Vec<u64>,
    indices: Vec<u32>,
    values: Vec<f32>,
    y: Vec<f32>,
}

impl Synthetic {
    /// Non-zeros a sparse row of density `density` keeps: round(p·d), at least 1, after
    /// checking that 0 < p ≤ 1.
    pub fn sparse_row_length(&self, density: f64) -> Result<usize> {
        if !(density > 0.0 && density <= 1.0) {
            return Err(Error::option(
                "density",
                density,
                "must be above 0 and at most 1 (the share of each row's cells kept)",
            ));
        }
        Ok(((density * self.features as f64).round() as usize).clamp(1, self.features))
    }

    /// The problem's rows at `density` as sparse rows (see the module's recipe), with the
    /// labels of the true parameters [`Synthetic::sparse_true_params`]. Generated on the
    /// host, rows in parallel blocks; every backend fits these same bits.
    pub fn sparse_rows(&self, density: f64) -> Result<SparseDataset> {
        let (d, k, n) = (self.features, self.objective.outputs(), self.rows);
        let m = self.sparse_row_length(density)?;
        let r = (usize::BITS - 1 - m.leading_zeros()) / 2;
        crate::memory::check(
            crate::memory::bytes_of::<f32>(n.saturating_mul(2 * m + 3)),
            || {
                format!(
                    "{} sparse synthetic rows of {m} non-zeros",
                    crate::error::count(n, "row")
                )
            },
        )?;
        let w: Vec<i64> = (0..=d)
            .flat_map(|j| (0..k).map(move |c| (j, c)))
            .map(|(j, c)| i64::from(self.param_int(j as u32, c as u32)))
            .collect();
        let tables = quantile_tables();
        let blocks: Vec<SparseBlock> = (0..n.div_ceil(SPARSE_BLOCK))
            .into_par_iter()
            .map(|b| {
                let rows = b * SPARSE_BLOCK..((b + 1) * SPARSE_BLOCK).min(n);
                let mut block = SparseBlock::default();
                let mut columns = Vec::with_capacity(m);
                let mut z = vec![0i64; k];
                for i in rows {
                    let i = i as u32;
                    columns.clear();
                    columns.extend((0..m as u32).map(|t| {
                        let h = cell_hash(self.seed, STREAM_COLUMNS, i, t)[0];
                        ((u64::from(h) * d as u64) >> 32) as u32
                    }));
                    columns.sort_unstable();
                    columns.dedup();
                    for (c, zc) in z.iter_mut().enumerate() {
                        *zc = 256 * w[d * k + c];
                    }
                    for &j in &columns {
                        let a = i64::from(self.x_int(i, j));
                        for (c, zc) in z.iter_mut().enumerate() {
                            *zc += a * w[j as usize * k + c];
                        }
                        block.indices.push(j);
                        block.values.push(a as f32 / 256.0);
                    }
                    block.lengths.push(columns.len() as u64);
                    block.y.push(self.label_at(i, &z, &tables, r));
                }
                block
            })
            .collect();
        let (mut offsets, mut indices, mut values, mut y) =
            (vec![0u64], Vec::new(), Vec::new(), Vec::with_capacity(n));
        for block in blocks {
            for length in block.lengths {
                offsets.push(offsets[offsets.len() - 1] + length);
            }
            indices.extend(block.indices);
            values.extend(block.values);
            y.extend(block.y);
        }
        SparseDataset::from_csr(offsets, indices, Some(values), y, d)
    }

    /// The true parameters of [`Synthetic::sparse_rows`] at `density`.
    pub fn sparse_true_params(&self, density: f64) -> Result<Params> {
        let m = self.sparse_row_length(density)?;
        Ok(self.true_params_at((usize::BITS - 1 - m.leading_zeros()) / 2))
    }
}

/// The logistic quantiles ln(p / (1 − p)) then the Gumbel quantiles −ln(−ln p), at
/// p = (q + ½) / 4096 for q in 0..4096: 8192 f32 values, shared with the GPU generator.
pub fn quantile_tables() -> Vec<f32> {
    let p = |q: usize| (q as f64 + 0.5) / QUANTILES as f64;
    let logistic = (0..QUANTILES).map(|q| (p(q) / (1.0 - p(q))).ln() as f32);
    let gumbel = (0..QUANTILES).map(|q| -(-p(q).ln()).ln() as f32);
    logistic.chain(gumbel).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// z = x·W + b of row i under the true parameters, in f64.
    fn true_z(data: &Dataset, truth: &Params, i: usize) -> f64 {
        let dot = data.row(i).iter().zip(truth.weights());
        truth.bias()[0] + dot.map(|(&x, w)| f64::from(x) * w).sum::<f64>()
    }

    #[test]
    fn features_look_standard_normal() {
        let s = Synthetic::new(20_000, 4, Objective::linear(), 3).unwrap();
        let data = s.generate().unwrap();
        let n = data.x().len() as f64;
        let mean = data.x().iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = data
            .x()
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "variance {var}");
    }

    #[test]
    fn streams_are_uncorrelated() {
        // Correlations of independent unit-variance columns over n rows have sd 1/√n;
        // allow 4 sd. The noise of the labels must not correlate with any feature.
        let (n, d) = (40_000, 6);
        let s = Synthetic::new(n, d, Objective::linear(), 17).unwrap();
        let data = s.generate().unwrap();
        let truth = s.true_params();
        let bound = 4.0 / (n as f64).sqrt();
        let data = &data;
        let col = |j: usize| (0..n).map(move |i| f64::from(data.row(i)[j]));
        for a in 0..d {
            for b in 0..a {
                let c = col(a).zip(col(b)).map(|(x, y)| x * y).sum::<f64>() / n as f64;
                assert!(c.abs() < bound, "x{a}·x{b} = {c}");
            }
            let noise = (0..n).map(|i| (f64::from(data.y()[i]) - true_z(data, &truth, i)) * 8.0);
            let c = noise.zip(col(a)).map(|(e, x)| e * x).sum::<f64>() / n as f64;
            assert!(c.abs() < bound, "noise·x{a} = {c}");
        }
    }

    #[test]
    fn logistic_labels_follow_sigmoid_of_true_z() {
        let s = Synthetic::new(50_000, 3, Objective::logistic(), 11).unwrap();
        let data = s.generate().unwrap();
        let truth = s.true_params();
        let (mut expected, mut observed) = (0.0, 0.0);
        for i in 0..data.rows() {
            expected += crate::math::sigmoid(true_z(&data, &truth, i));
            observed += f64::from(data.y()[i]);
        }
        let n = data.rows() as f64;
        assert!(
            (expected - observed).abs() / n < 0.01,
            "{expected} vs {observed}"
        );
    }

    #[test]
    fn softmax_labels_use_every_class() {
        let s = Synthetic::new(3000, 5, Objective::softmax(4).unwrap(), 1).unwrap();
        let data = s.generate().unwrap();
        for c in 0..4 {
            let count = data.y().iter().filter(|&&y| y == c as f32).count();
            assert!(count > 150, "class {c} has {count} rows");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_data() {
        let a = Synthetic::new(100, 7, Objective::linear(), 5)
            .unwrap()
            .generate()
            .unwrap();
        let b = Synthetic::new(100, 7, Objective::linear(), 5)
            .unwrap()
            .generate()
            .unwrap();
        let c = Synthetic::new(100, 7, Objective::linear(), 6)
            .unwrap()
            .generate()
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a.x(), c.x());
    }
}
