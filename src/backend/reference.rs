//! The CPU reference: plain loops that read like the math, accumulating in f64.
//! It is the oracle the other backends are tested against, not a fast path.

use std::borrow::Cow;

use super::host::HostDescent;
use super::host::check_direction;
use super::{Backend, Session, check_host_memory, full_step};
use crate::data::Dataset;
use crate::descent::{
    Batch, Configured, Data, HessianSums, HostRows, PassSums, RowSet, RunOutcome, Setup, Snapshot,
    Step,
};
use crate::error::Result;
use crate::loss::row_loss;
use crate::model::{Objective, Params};

/// The f64 reference backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference;

impl Backend for Reference {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn open<'a>(&'a self, data: Data<'a>, objective: Objective) -> Result<Box<dyn Session + 'a>> {
        check_host_memory(&data, objective, 1, 0)?;
        Ok(Box::new(ReferenceSession::new(
            data.into_host_rows()?,
            objective,
        )))
    }
}

/// Data and parameters held on the host, in f64.
pub struct ReferenceSession<'a> {
    /// Global rows `offset..offset + data.rows()` of a problem of `total` rows.
    data: Cow<'a, Dataset>,
    offset: usize,
    total: usize,
    objective: Objective,
    descent: HostDescent,
}

/// The weighted sums of one pass: ∇ (raw space, W then b), then Σwℓ, Σw, Σw[correct], Σwy,
/// Σwy².
struct Sums {
    grad: Vec<f64>,
    metrics: [f64; 5],
}

impl<'a> ReferenceSession<'a> {
    pub(crate) fn new(rows: HostRows<'a>, objective: Objective) -> Self {
        let descent = HostDescent::new(rows.data.features(), objective.outputs());
        ReferenceSession {
            data: rows.data,
            offset: rows.offset,
            total: rows.total,
            objective,
            descent,
        }
    }

    /// The weight of row i in a pass over `rows`: its sample weight times its class's
    /// weight, or 0 when the pass does not use it.
    pub(crate) fn row_weight(&self, i: usize, rows: RowSet) -> f64 {
        let sample = self.data.weights().map(|w| w[i]);
        let (model, label) = (self.objective.model(), self.data.y()[i]);
        self.descent
            .row_weight(model, i + self.offset, sample, label, rows)
    }

    /// The weighted sums over the rows at positions `batch.start..batch.start + batch.len`:
    /// for each row z = x·W + b, ℓ and δ = ∂ℓ/∂z; ∇W = Σ w xᵀδ, ∇b = Σ w δ.
    fn sums(&self, batch: &Batch, rows: RowSet) -> Sums {
        let (d, k) = (self.data.features(), self.objective.outputs());
        let raw = self.descent.raw();
        let mut grad = vec![0.0; (d + 1) * k];
        let mut metrics = [0.0; 5];
        let mut z = vec![0.0; k];
        let mut delta = vec![0.0; k];
        let row = row_loss(&self.objective);
        let host = HostRows {
            data: Cow::Borrowed(self.data.as_ref()),
            offset: self.offset,
            total: self.total,
        };
        for i in host.local(batch, batch.start..batch.start + batch.len) {
            let weight = self.row_weight(i, rows);
            if weight == 0.0 {
                continue;
            }
            let x = self.data.row(i);
            crate::math::logits(x, &raw, &mut z);
            let y = f64::from(self.data.y()[i]);
            let loss = row.loss_and_delta(&z, y, &mut delta);
            for (j, &xj) in x.iter().enumerate() {
                for (g, dc) in grad[j * k..(j + 1) * k].iter_mut().zip(&delta) {
                    *g += weight * f64::from(xj) * dc;
                }
            }
            for (g, dc) in grad[d * k..].iter_mut().zip(&delta) {
                *g += weight * dc;
            }
            let correct = f64::from(u8::from(predicted_class(&z) == y.round() as usize));
            let row = [loss, 1.0, correct, y, y * y];
            for (m, v) in metrics.iter_mut().zip(row) {
                *m += weight * v;
            }
        }
        Sums { grad, metrics }
    }

    /// Calls `each(x, w, z, ∂²ℓ/∂z∂zᵀ)` for every row of `rows` with weight, at the current
    /// parameters.
    fn curved_rows(&self, rows: RowSet, mut each: impl FnMut(&[f32], f64, &[f64], &[f64])) {
        let k = self.objective.outputs();
        let raw = self.descent.raw();
        let (mut z, mut curvature) = (vec![0.0; k], vec![0.0; k * k]);
        let row = row_loss(&self.objective);
        for i in 0..self.data.rows() {
            let weight = self.row_weight(i, rows);
            if weight == 0.0 {
                continue;
            }
            let x = self.data.row(i);
            crate::math::logits(x, &raw, &mut z);
            row.curvature(&z, f64::from(self.data.y()[i]), &mut curvature);
            each(x, weight, &z, &curvature);
        }
    }

    /// Σ w·(x̃x̃ᵀ ⊗ ∂²ℓ/∂z∂zᵀ) over `rows`, entry by entry (p×p, θ's order).
    fn hessian(&self, rows: RowSet) -> Vec<f64> {
        let (d, k) = (self.data.features(), self.objective.outputs());
        let p = (d + 1) * k;
        let mut hessian = vec![0.0; p * p];
        self.curved_rows(rows, |x, weight, _, curvature| {
            let xt = |j: usize| if j < d { f64::from(x[j]) } else { 1.0 };
            for a in 0..p {
                let wa = weight * xt(a / k);
                for b in 0..p {
                    hessian[a * p + b] += wa * xt(b / k) * curvature[(a % k) * k + b % k];
                }
            }
        });
        hessian
    }

    /// Σ w·x̃ ⊗ (∂²ℓ/∂z∂zᵀ · u) over `rows`, u = x̃·V the direction's logits.
    fn hessian_vector(&self, v: &[f64], rows: RowSet) -> Vec<f64> {
        let (d, k) = (self.data.features(), self.objective.outputs());
        let mut out = vec![0.0; (d + 1) * k];
        let mut u = vec![0.0; k];
        self.curved_rows(rows, |x, weight, _, curvature| {
            crate::math::logits(x, v, &mut u);
            for c in 0..k {
                let r: f64 = (0..k).map(|e| curvature[c * k + e] * u[e]).sum::<f64>() * weight;
                for (j, &xj) in x.iter().enumerate() {
                    out[j * k + c] += f64::from(xj) * r;
                }
                out[d * k + c] += r;
            }
        });
        out
    }

    /// ∇J and the sums, as means: what a step uses.
    fn mean_gradient(&self, batch: &Batch, rows: RowSet) -> (Vec<f64>, [f64; 5]) {
        let Sums { mut grad, metrics } = self.sums(batch, rows);
        let weight = metrics[1];
        for g in &mut grad {
            *g = if weight > 0.0 { *g / weight } else { 0.0 };
        }
        (grad, metrics)
    }
}

/// The class a model predicts from z: z > 0 for one output, else the first largest.
pub(crate) fn predicted_class(z: &[f64]) -> usize {
    if z.len() == 1 {
        return usize::from(z[0] > 0.0);
    }
    let mut best = 0;
    for (c, &v) in z.iter().enumerate() {
        if v > z[best] {
            best = c;
        }
    }
    best
}

impl Session for ReferenceSession<'_> {
    fn describe(&self) -> String {
        "reference (CPU, f64)".into()
    }

    fn objective(&self) -> Objective {
        self.objective
    }

    fn rows(&self) -> usize {
        self.total
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
        let raw = self.descent.raw();
        let k = self.objective.outputs();
        let mut z = vec![0.0; self.data.rows() * k];
        for (i, zi) in z.chunks_mut(k).enumerate() {
            crate::math::logits(self.data.row(i), &raw, zi);
        }
        Ok(z)
    }

    fn run(&mut self, steps: &[Step]) -> Result<RunOutcome> {
        for (s, step) in steps.iter().enumerate() {
            let (grad, metrics) = self.mean_gradient(&step.batch, RowSet::Training);
            let loss = metrics[0] / metrics[1].max(f64::MIN_POSITIVE);
            if !loss.is_finite() || !self.descent.step(grad, step) {
                return Ok(RunOutcome::Diverged { step: s });
            }
        }
        Ok(RunOutcome::Completed)
    }

    fn configure(&mut self, setup: &Setup) -> Result<Configured> {
        let (data, offset) = (&self.data, self.offset);
        let rows = data.rows() as u64;
        self.descent.reconfigure(setup, rows, |descent, c| {
            descent.column_sums(data, offset, c)
        })
    }

    fn pass_sums(&mut self, step: &Step, rows: RowSet) -> Result<PassSums> {
        let sums = self.sums(&step.batch, rows);
        Ok(PassSums {
            gradient: sums.grad,
            metrics: sums.metrics,
        })
    }

    fn has_curvature(&self) -> bool {
        true
    }

    fn hessian_sums(&mut self, rows: RowSet) -> Result<HessianSums> {
        let sums = self.sums(&full_step(self.total).batch, rows);
        Ok(HessianSums {
            pass: PassSums {
                gradient: sums.grad,
                metrics: sums.metrics,
            },
            hessian: self.hessian(rows),
        })
    }

    fn hessian_vector_sums(&mut self, v: &[f64], rows: RowSet) -> Result<Vec<f64>> {
        check_direction(v, self.descent.theta.len())?;
        Ok(self.hessian_vector(v, rows))
    }

    fn column_sums(&mut self, center: &[f64]) -> Result<Vec<f64>> {
        Ok(self.descent.column_sums(&self.data, self.offset, center))
    }

    fn snapshot(&mut self) -> Result<Snapshot> {
        Ok(self.descent.snapshot())
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.descent.restore(snapshot)
    }
}
