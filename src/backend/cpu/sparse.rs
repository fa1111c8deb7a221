//! The CPU's passes over sparse rows ([`SparseDataset`], CSR; the session around them is
//! [`SparseRowsSession`]): every pass reads each row's non-zeros once, gathers
//! z = x·W + b from them, and scatters w·x ⊗ δ into the gradient, in f64 (the reference's
//! row math, `loss.rs`), on all cores. Rows are cut into a fixed
//! number of parts that depends on the pass's row count alone, each part summed in row
//! order into a dense partial of (d + 1)·k values, the partials added in order: reruns
//! give the same bits on any number of threads, and no float atomics are needed. An
//! epoch reads the CSR once (12 bytes a non-zero, 8 with all-one values) and writes the
//! parts' partials, (d + 1)·k f64 each.

use rayon::prelude::*;

use super::columns::{self, Columns, RowCurvatures};

use crate::backend::reference::predicted_class;
use crate::backend::sparse::{RowWeight, SparsePasses, SparseRowsSession, window_nonzeros};
use crate::descent::PassSums;
use crate::error::Result;
use crate::loss::row_loss;
use crate::model::Objective;
use crate::sparse::{SparseDataset, SparseRow};

/// Parts of a pass at most; fewer when the pass has fewer than this many times
/// [`PART_ROWS`] rows.
const PARTS: usize = 16;

/// Rows a part has at least (a mini-batch of 1 024 rows is one part).
const PART_ROWS: usize = 1024;

/// Non-zeros a part reads at least, per value of its partial: a part's partial is zeroed
/// and added once a pass, so with fewer non-zeros (wide rows, few of them) the partials
/// would cost more than the scatter they split.
const NONZEROS_PER_PARTIAL_VALUE: usize = 4;

/// Sparse rows on the CPU: the host's descent around the CPU's passes.
pub type SparseSession<'a> = SparseRowsSession<'a, CpuSparsePasses<'a>>;

/// The CPU's passes over rows `window` (global indices) of sparse rows.
pub struct CpuSparsePasses<'a> {
    data: &'a SparseDataset,
    window: std::ops::Range<usize>,
    objective: Objective,
    /// Partial gradients kept between passes, so that a pass zeroes them instead of
    /// asking the system for fresh pages.
    spare: std::sync::Mutex<Vec<Vec<f64>>>,
    /// The window column by column, for the exact Hessian; made on its first pass.
    columns: std::sync::OnceLock<Columns>,
}

/// What one row contributes to a pass, given its z: the coefficient r (k values) of its
/// scatter x̃ ⊗ r, and its metric sums. The last slice is scratch of k + k² values, kept
/// by the part so that rows do not allocate.
type RowTerm<'f> = dyn Fn(SparseRow, f32, &[f64], &mut [f64], &mut [f64]) -> [f64; 5] + Sync + 'f;

impl<'a> SparseRowsSession<'a, CpuSparsePasses<'a>> {
    /// Rows `window` (global indices) of `data`, on the CPU.
    pub fn new(
        data: &'a SparseDataset,
        window: std::ops::Range<usize>,
        objective: Objective,
    ) -> Result<Self> {
        let (d, k) = (data.features(), objective.outputs());
        let partials = PARTS.saturating_mul(d.saturating_add(1)).saturating_mul(k);
        crate::memory::check(crate::memory::bytes_of::<f64>(partials), || {
            format!(
                "the partial sums of a sparse pass ({PARTS} of {} × {} parameters)",
                d + 1,
                k
            )
        })?;
        let passes = CpuSparsePasses {
            data,
            window: window.clone(),
            objective,
            spare: std::sync::Mutex::new(Vec::new()),
            columns: std::sync::OnceLock::new(),
        };
        Ok(Self::with_passes(data, window, objective, passes))
    }
}

impl CpuSparsePasses<'_> {
    /// Σ over `rows` (global indices) of w·x̃ ⊗ r and w·metrics, w = `weight(i)`, where
    /// `term` gives a row's r and metrics from its z at the raw parameters `theta`: parts
    /// on all cores, added in order.
    fn scatter(
        &self,
        rows: &[usize],
        weight: &RowWeight,
        theta: &[f64],
        term: &RowTerm,
    ) -> PassSums {
        let (d, k) = (self.data.features(), self.objective.outputs());
        let size = self.part_size(rows, (d + 1) * k);
        let partials: Vec<PassSums> = rows
            .par_chunks(size)
            .map(|part| {
                let mut grad = self.spare_partial((d + 1) * k);
                let mut metrics = [0.0; 5];
                let (mut z, mut r) = (vec![0.0; k], vec![0.0; k]);
                let mut scratch = vec![0.0; k + k * k];
                for &i in part {
                    let weight = weight(i);
                    if weight == 0.0 {
                        continue;
                    }
                    let x = self.data.row(i);
                    x.logits_into(theta, &mut z);
                    let row_metrics = term(x, self.data.y()[i], &z, &mut r, &mut scratch);
                    for (j, v) in x.entries() {
                        let wx = weight * f64::from(v);
                        for (g, rc) in grad[j * k..(j + 1) * k].iter_mut().zip(&r) {
                            *g += wx * rc;
                        }
                    }
                    for (g, rc) in grad[d * k..].iter_mut().zip(&r) {
                        *g += weight * rc;
                    }
                    for (m, v) in metrics.iter_mut().zip(row_metrics) {
                        *m += weight * v;
                    }
                }
                PassSums {
                    gradient: grad,
                    metrics,
                }
            })
            .collect();
        let mut partials = partials.into_iter();
        // No rows (a worker's window outside a mini-batch): zeros.
        let Some(mut sums) = partials.next() else {
            return PassSums {
                gradient: vec![0.0; (d + 1) * k],
                metrics: [0.0; 5],
            };
        };
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        for p in partials {
            sums.add(&p);
            spare.push(p.gradient);
        }
        sums
    }

    /// Rows a part of a pass over `rows` takes, for partials of `values` each: at least
    /// [`PART_ROWS`] rows and [`NONZEROS_PER_PARTIAL_VALUE`] non-zeros per value, at
    /// most [`PARTS`] parts. It depends on the rows alone, never on the threads.
    fn part_size(&self, rows: &[usize], values: usize) -> usize {
        let offsets = self.data.offsets();
        let nonzeros: u64 = rows.iter().map(|&i| offsets[i + 1] - offsets[i]).sum();
        let by_nonzeros = (nonzeros / (NONZEROS_PER_PARTIAL_VALUE * values) as u64) as usize;
        let parts = PARTS
            .min(rows.len().div_ceil(PART_ROWS))
            .min(by_nonzeros)
            .max(1);
        rows.len().div_ceil(parts).max(1)
    }

    /// A zeroed partial of `values`: one kept from an earlier pass, or a new one.
    fn spare_partial(&self, values: usize) -> Vec<f64> {
        let kept = self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match kept {
            Some(mut v) if v.len() == values => {
                v.fill(0.0);
                v
            }
            _ => vec![0.0; values],
        }
    }
}

impl SparsePasses for CpuSparsePasses<'_> {
    fn describe(&self) -> String {
        format!(
            "cpu (sparse rows: {} non-zeros, {} threads)",
            window_nonzeros(self.data, &self.window),
            rayon::current_num_threads()
        )
    }

    /// r = δ, and ℓ, 1, [correct], y, y².
    fn gradient(&self, theta: &[f64], rows: &[usize], weight: &RowWeight) -> Result<PassSums> {
        let loss = row_loss(&self.objective);
        Ok(self.scatter(rows, weight, theta, &|_, y, z, delta, _| {
            let y = f64::from(y);
            let l = loss.loss_and_delta(z, y, delta);
            let correct = f64::from(u8::from(predicted_class(z) == y.round() as usize));
            [l, 1.0, correct, y, y * y]
        }))
    }

    fn hessian_vector(
        &self,
        theta: &[f64],
        v: &[f64],
        rows: &[usize],
        weight: &RowWeight,
    ) -> Result<Vec<f64>> {
        let k = self.objective.outputs();
        let d = self.data.features();
        let loss = row_loss(&self.objective);
        // r = ∂²ℓ/∂z∂zᵀ · u, u = x̃·V the direction's logits.
        let sums = self.scatter(rows, weight, theta, &|x, y, z, r, scratch| {
            let (u, curvature) = scratch.split_at_mut(k);
            u.copy_from_slice(&v[d * k..]);
            x.dot_into(v, u);
            loss.curvature(z, f64::from(y), curvature);
            for (c, rc) in r.iter_mut().enumerate() {
                *rc = (0..k).map(|e| curvature[c * k + e] * u[e]).sum();
            }
            [0.0; 5]
        });
        Ok(sums.gradient)
    }

    fn predict(&self, theta: &[f64]) -> Result<Vec<f64>> {
        let k = self.objective.outputs();
        let mut z = vec![0.0; self.window.len() * k];
        z.par_chunks_mut(k).enumerate().for_each(|(r, zi)| {
            self.data.row(self.window.start + r).logits_into(theta, zi);
        });
        Ok(z)
    }

    fn has_hessian(&self) -> bool {
        true
    }

    fn hessian(
        &self,
        theta: &[f64],
        all: &[usize],
        weight: &RowWeight,
    ) -> Option<Result<Vec<f64>>> {
        Some(self.hessian_of(theta, all, weight))
    }
}

impl CpuSparsePasses<'_> {
    /// Σ w·(x̃x̃ᵀ ⊗ ∂²ℓ/∂z∂zᵀ) over `all` (each row as often as it is listed), by H's
    /// rows from the window's column-major copy ([`columns::hessian`]), made on the first
    /// Hessian.
    fn hessian_of(&self, theta: &[f64], all: &[usize], weight: &RowWeight) -> Result<Vec<f64>> {
        let (d, k) = (self.data.features(), self.objective.outputs());
        let p = (d + 1) * k;
        let n = self.window.len();
        let bytes = crate::memory::bytes_of::<f64>(p.saturating_mul(p))
            + crate::memory::bytes_of::<f64>(n.saturating_mul(k + 1));
        crate::memory::check(bytes, || {
            format!("a Hessian of {p} × {p} parameters and the z of {n} rows")
        })?;
        let columns = match self.columns.get() {
            Some(c) => c,
            None => {
                let c = Columns::new(self.data, self.window.clone())?;
                self.columns.get_or_init(|| c)
            }
        };
        let mut weights = vec![0.0; n];
        for &i in all {
            weights[i - self.window.start] += weight(i);
        }
        let mut z = vec![0.0; n * k];
        z.par_chunks_mut(k)
            .zip(&weights)
            .enumerate()
            .for_each(|(i, (z, &w))| {
                if w != 0.0 {
                    self.data.row(self.window.start + i).logits_into(theta, z);
                }
            });
        let loss = row_loss(&self.objective);
        let rows = RowCurvatures {
            weights,
            z,
            k,
            loss: loss.as_ref(),
        };
        Ok(columns::hessian(
            self.data,
            self.window.clone(),
            columns,
            &rows,
        ))
    }
}
