//! The CPU's session on sparse rows ([`SparseDataset`], CSR): every pass reads each row's
//! non-zeros once, gathers z = x·W + b from them, and scatters w·x ⊗ δ into the gradient,
//! in f64 (the reference's row math, `loss.rs`), on all cores. Rows are cut into a fixed
//! number of parts that depends on the pass's row count alone, each part summed in row
//! order into a dense partial of (d + 1)·k values, the partials added in order: reruns
//! give the same bits on any number of threads, and no float atomics are needed. An
//! epoch reads the CSR once (12 bytes a non-zero, 8 with all-one values) and writes the
//! parts' partials, (d + 1)·k f64 each.

use rayon::prelude::*;

use crate::backend::Session;
use crate::backend::host::{HostDescent, check_direction};
use crate::backend::reference::predicted_class;
use crate::descent::{
    Batch, Configured, HessianSums, PassSums, RowSet, RunOutcome, Setup, Snapshot, Split, Step,
};
use crate::error::Result;
use crate::loss::row_loss;
use crate::model::{Objective, Params};
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

/// Bytes the partial Hessians of one pass may take: fewer parts for a larger Hessian.
const HESSIAN_PARTIAL_BYTES: usize = 256 << 20;

/// Sparse rows `window` of a problem of `total` rows, on the CPU.
pub struct SparseSession<'a> {
    data: &'a SparseDataset,
    window: std::ops::Range<usize>,
    objective: Objective,
    descent: HostDescent,
    /// Partial gradients kept between passes, so that a pass zeroes them instead of
    /// asking the system for fresh pages.
    spare: std::sync::Mutex<Vec<Vec<f64>>>,
}

/// What one row contributes to a pass, given its z: the coefficient r (k values) of its
/// scatter x̃ ⊗ r, and its metric sums. The last slice is scratch of k + k² values, kept
/// by the part so that rows do not allocate.
type RowTerm<'f> = dyn Fn(SparseRow, f32, &[f64], &mut [f64], &mut [f64]) -> [f64; 5] + Sync + 'f;

impl<'a> SparseSession<'a> {
    /// Rows `window` (global indices) of `data`.
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
        Ok(SparseSession {
            data,
            window,
            objective,
            descent: HostDescent::new(d, k),
            spare: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The weight of global row i in a pass over `rows`: its sample weight times its
    /// class's weight, or 0 when the pass does not use it.
    fn row_weight(&self, i: usize, rows: RowSet) -> f64 {
        let sample = self.data.weights().map(|w| w[i]);
        let (model, label) = (self.objective.model(), self.data.y()[i]);
        self.descent.row_weight(model, i, sample, label, rows)
    }

    /// The global rows of `batch` this session holds, in batch order.
    fn batch_rows(&self, batch: &Batch) -> Vec<usize> {
        (batch.start..batch.start + batch.len)
            .map(|p| batch.row(p) as usize)
            .filter(|i| self.window.contains(i))
            .collect()
    }

    /// Σ over `rows` (global indices) with weight in `set` of w·x̃ ⊗ r and w·metrics, where
    /// `term` gives a row's r and metrics from its z at the raw parameters `theta`: parts
    /// on all cores, added in order.
    fn scatter(&self, rows: &[usize], set: RowSet, theta: &[f64], term: &RowTerm) -> PassSums {
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
                    let weight = self.row_weight(i, set);
                    if weight == 0.0 {
                        continue;
                    }
                    let x = self.data.row(i);
                    z.copy_from_slice(&theta[d * k..]);
                    x.dot_into(theta, &mut z);
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

    /// The gradient pass's sums over `rows`: r = δ, and ℓ, 1, [correct], y, y².
    fn gradient_sums(&self, rows: &[usize], set: RowSet) -> PassSums {
        let loss = row_loss(&self.objective);
        let theta = self.descent.raw();
        self.scatter(rows, set, &theta, &|_, y, z, delta, _| {
            let y = f64::from(y);
            let l = loss.loss_and_delta(z, y, delta);
            let correct = f64::from(u8::from(predicted_class(z) == y.round() as usize));
            [l, 1.0, correct, y, y * y]
        })
    }

    /// Every global row this session holds.
    fn all_rows(&self) -> Vec<usize> {
        self.window.clone().collect()
    }
}

impl Session for SparseSession<'_> {
    fn describe(&self) -> String {
        format!(
            "cpu (sparse rows: {} non-zeros, {} threads)",
            self.data.nnz(),
            rayon::current_num_threads()
        )
    }

    fn objective(&self) -> Objective {
        self.objective
    }

    fn rows(&self) -> usize {
        self.data.rows()
    }

    fn features(&self) -> usize {
        self.data.features()
    }

    fn set_params(&mut self, params: &Params) -> Result<()> {
        self.descent.set_params(params)
    }

    fn params(&mut self) -> Result<Params> {
        Ok(self.descent.params())
    }

    fn predict(&mut self) -> Result<Vec<f64>> {
        let (d, k) = (self.data.features(), self.objective.outputs());
        let theta = self.descent.raw();
        let mut z = vec![0.0; self.window.len() * k];
        z.par_chunks_mut(k).enumerate().for_each(|(r, zi)| {
            zi.copy_from_slice(&theta[d * k..]);
            self.data.row(self.window.start + r).dot_into(&theta, zi);
        });
        Ok(z)
    }

    fn run(&mut self, steps: &[Step]) -> Result<RunOutcome> {
        for (s, step) in steps.iter().enumerate() {
            let rows = self.batch_rows(&step.batch);
            let sums = self.gradient_sums(&rows, RowSet::Training);
            let loss = sums.metrics[0] / sums.metrics[1].max(f64::MIN_POSITIVE);
            if !loss.is_finite() || !self.descent.step(sums.mean_gradient(), step) {
                return Ok(RunOutcome::Diverged { step: s });
            }
        }
        Ok(RunOutcome::Completed)
    }

    fn configure(&mut self, setup: &Setup) -> Result<Configured> {
        let (data, window, k) = (self.data, self.window.clone(), self.objective.outputs());
        let rows = window.len() as u64;
        self.descent.reconfigure(setup, rows, |descent, c| {
            column_sums(data, window.clone(), descent.setup.split.as_ref(), k, c)
        })
    }

    fn pass_sums(&mut self, step: &Step, rows: RowSet) -> Result<PassSums> {
        let batch = self.batch_rows(&step.batch);
        Ok(self.gradient_sums(&batch, rows))
    }

    fn has_curvature(&self) -> bool {
        true
    }

    fn hessian_sums(&mut self, rows: RowSet) -> Result<HessianSums> {
        let (d, k) = (self.data.features(), self.objective.outputs());
        let p = (d + 1) * k;
        let bytes = crate::memory::bytes_of::<f64>(p.saturating_mul(p));
        crate::memory::check(bytes, || format!("a Hessian of {p} × {p} parameters"))?;
        let all = self.all_rows();
        let pass = self.gradient_sums(&all, rows);
        let theta = self.descent.raw();
        let loss = row_loss(&self.objective);
        let parts = (HESSIAN_PARTIAL_BYTES as u64 / bytes.max(1)) as usize;
        let parts = parts
            .clamp(1, PARTS)
            .min(all.len().div_ceil(PART_ROWS).max(1));
        let size = all.len().div_ceil(parts).max(1);
        let partials: Vec<Vec<f64>> = all
            .par_chunks(size)
            .map(|part| {
                let mut h = vec![0.0; p * p];
                let (mut z, mut curvature) = (vec![0.0; k], vec![0.0; k * k]);
                let mut columns: Vec<(usize, f64)> = Vec::new();
                for &i in part {
                    let weight = self.row_weight(i, rows);
                    if weight == 0.0 {
                        continue;
                    }
                    let x = self.data.row(i);
                    z.copy_from_slice(&theta[d * k..]);
                    x.dot_into(&theta, &mut z);
                    loss.curvature(&z, f64::from(self.data.y()[i]), &mut curvature);
                    columns.clear();
                    columns.extend(x.entries().map(|(j, v)| (j, f64::from(v))));
                    columns.push((d, 1.0));
                    for &(ja, xa) in &columns {
                        for &(jb, xb) in &columns {
                            let wx = weight * xa * xb;
                            for a in 0..k {
                                let row = &mut h[(ja * k + a) * p + jb * k..][..k];
                                for (hb, c) in row.iter_mut().zip(&curvature[a * k..a * k + k]) {
                                    *hb += wx * c;
                                }
                            }
                        }
                    }
                }
                h
            })
            .collect();
        let mut hessian = vec![0.0; p * p];
        for part in partials {
            for (a, b) in hessian.iter_mut().zip(part) {
                *a += b;
            }
        }
        Ok(HessianSums { pass, hessian })
    }

    fn hessian_vector_sums(&mut self, v: &[f64], rows: RowSet) -> Result<Vec<f64>> {
        check_direction(v, self.descent.theta.len())?;
        let k = self.objective.outputs();
        let d = self.data.features();
        let theta = self.descent.raw();
        let loss = row_loss(&self.objective);
        let all = self.all_rows();
        // r = ∂²ℓ/∂z∂zᵀ · u, u = x̃·V the direction's logits.
        let sums = self.scatter(&all, rows, &theta, &|x, y, z, r, scratch| {
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

    fn column_sums(&mut self, center: &[f64]) -> Result<Vec<f64>> {
        let split = self.descent.setup.split;
        let k = self.objective.outputs();
        Ok(column_sums(
            self.data,
            self.window.clone(),
            split.as_ref(),
            k,
            center,
        ))
    }

    fn snapshot(&mut self) -> Result<Snapshot> {
        Ok(self.descent.snapshot())
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.descent.restore(snapshot)
    }
}

/// [`Session::column_sums`] of global rows `window` of `data`, skipping the rows `split`
/// holds out: Σ(x − c), Σ(x − c)² per feature from the sums of the non-zeros (each zero
/// adds −c and c²), the count of each label (max(k, 2) slots) and the row count.
fn column_sums(
    data: &SparseDataset,
    window: std::ops::Range<usize>,
    split: Option<&Split>,
    outputs: usize,
    center: &[f64],
) -> Vec<f64> {
    let (d, slots) = (data.features(), outputs.max(2));
    let rows: Vec<usize> = window.collect();
    let parts = PARTS.min(rows.len().div_ceil(PART_ROWS)).max(1);
    let size = rows.len().div_ceil(parts).max(1);
    let partials: Vec<Vec<f64>> = rows
        .par_chunks(size)
        .map(|part| {
            let mut out = vec![0.0; 2 * d + slots + 1];
            for &i in part {
                if !Split::contains(split, RowSet::Training, i as u32) {
                    continue;
                }
                for (j, v) in data.row(i).entries() {
                    let v = f64::from(v);
                    out[j] += v;
                    out[d + j] += v * v;
                }
                out[2 * d + (data.y()[i] as usize).min(slots - 1)] += 1.0;
                out[2 * d + slots] += 1.0;
            }
            out
        })
        .collect();
    let mut out = vec![0.0; 2 * d + slots + 1];
    for p in partials {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    let m = out[2 * d + slots];
    for (j, &c) in center.iter().enumerate() {
        let (s1, s2) = (out[j], out[d + j]);
        out[j] = s1 - m * c;
        out[d + j] = s2 - 2.0 * c * s1 + m * c * c;
    }
    out
}
