//! The CPU reference: plain loops that read like the math, accumulating in f64.
//! It is the oracle the other backends are tested against, not a fast path.

use std::borrow::Cow;

use crate::backend::Snapshot;

use super::{
    Backend, Batch, ClassWeights, Configured, Data, Evaluation, HostRows, PassSums, RowSet,
    RunOutcome, Session, Setup, Split, Step, host_step,
};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::loss::row_loss_and_delta;
use crate::model::{Gradient, Model, Objective, Params};
use crate::optim::Standardization;

/// The f64 reference backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference;

impl Backend for Reference {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn open<'a>(&'a self, data: Data<'a>, objective: Objective) -> Result<Box<dyn Session + 'a>> {
        super::check_host_memory(&data, objective, 1)?;
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
    /// The optimizer's parameters: W (d×k, row-major) then b, in standardized space when
    /// standardizing.
    theta: Vec<f64>,
    state: Vec<f64>,
    setup: Setup,
    standardization: Option<Standardization>,
    class_weights: Option<Vec<f64>>,
}

/// The weighted sums of one pass: ∇ (raw space, W then b), then Σwℓ, Σw, Σw[correct], Σwy,
/// Σwy².
struct Sums {
    grad: Vec<f64>,
    metrics: [f64; 5],
}

impl<'a> ReferenceSession<'a> {
    pub(crate) fn new(rows: HostRows<'a>, objective: Objective) -> Self {
        let n = (rows.data.features() + 1) * objective.outputs();
        ReferenceSession {
            data: rows.data,
            offset: rows.offset,
            total: rows.total,
            objective,
            theta: vec![0.0; n],
            state: Vec::new(),
            setup: Setup::default(),
            standardization: None,
            class_weights: None,
        }
    }

    /// The raw-space parameters the rows see.
    fn raw(&self) -> Vec<f64> {
        super::raw_parameters(
            &self.theta,
            self.standardization.as_ref(),
            self.objective.outputs(),
        )
    }

    /// The weight of row i in a pass over `rows`: its sample weight times its class's
    /// weight, or 0 when the pass does not use it.
    pub(crate) fn row_weight(&self, i: usize, rows: RowSet) -> f64 {
        if !Split::contains(self.setup.split.as_ref(), rows, (i + self.offset) as u32) {
            return 0.0;
        }
        let sample = self.data.weights().map_or(1.0, |w| f64::from(w[i]));
        let class = match (&self.class_weights, self.objective.model()) {
            (Some(cw), Model::Logistic | Model::Softmax) => {
                cw[(self.data.y()[i] as usize).min(cw.len() - 1)]
            }
            _ => 1.0,
        };
        sample * class
    }

    /// The weighted sums over the rows at positions `batch.start..batch.start + batch.len`:
    /// for each row z = x·W + b, ℓ and δ = ∂ℓ/∂z; ∇W = Σ w xᵀδ, ∇b = Σ w δ.
    fn sums(&self, batch: &Batch, rows: RowSet) -> Sums {
        let (d, k) = (self.data.features(), self.objective.outputs());
        let raw = self.raw();
        let mut grad = vec![0.0; (d + 1) * k];
        let mut metrics = [0.0; 5];
        let mut z = vec![0.0; k];
        let mut delta = vec![0.0; k];
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
            let loss = row_loss_and_delta(&self.objective, &z, y, &mut delta);
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

    /// ∇J and the sums, as means: what a step uses.
    fn mean_gradient(&self, batch: &Batch, rows: RowSet) -> (Vec<f64>, [f64; 5]) {
        let Sums { mut grad, metrics } = self.sums(batch, rows);
        let weight = metrics[1];
        for g in &mut grad {
            *g = if weight > 0.0 { *g / weight } else { 0.0 };
        }
        (grad, metrics)
    }

    fn full_batch(&self) -> Batch {
        Batch {
            start: 0,
            len: self.total as u32,
            order: None,
        }
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
        check_params_shape(params, self.data.features(), self.objective.outputs())?;
        let raw: Vec<f64> = params.flat();
        self.theta = match &self.standardization {
            Some(s) => s.from_raw(&raw, self.objective.outputs()),
            None => raw,
        };
        Ok(())
    }

    fn params(&mut self) -> Result<Params> {
        let (d, k) = (self.data.features(), self.objective.outputs());
        let raw = self.raw();
        Ok(Params::new(
            d,
            k,
            raw[..d * k].to_vec(),
            raw[d * k..].to_vec(),
        )?)
    }

    fn gradient(&mut self) -> Result<Gradient> {
        let (grad, metrics) = self.mean_gradient(&self.full_batch(), RowSet::All);
        let dk = self.data.features() * self.objective.outputs();
        Ok(Gradient {
            loss: metrics[0] / metrics[1],
            weights: grad[..dk].to_vec(),
            bias: grad[dk..].to_vec(),
        })
    }

    fn predict(&mut self) -> Result<Vec<f64>> {
        let raw = self.raw();
        let k = self.objective.outputs();
        let mut z = vec![0.0; self.data.rows() * k];
        for (i, zi) in z.chunks_mut(k).enumerate() {
            crate::math::logits(self.data.row(i), &raw, zi);
        }
        Ok(z)
    }

    fn run(&mut self, steps: &[Step]) -> Result<RunOutcome> {
        let k = self.objective.outputs();
        for (s, step) in steps.iter().enumerate() {
            let (grad, metrics) = self.mean_gradient(&step.batch, RowSet::Training);
            let loss = metrics[0] / metrics[1].max(f64::MIN_POSITIVE);
            let (theta, state) = (&mut self.theta, &mut self.state);
            let st = self.standardization.as_ref();
            if !loss.is_finite() || !host_step(&self.setup, st, theta, state, grad, step, k) {
                return Ok(RunOutcome::Diverged { step: s });
            }
        }
        Ok(RunOutcome::Completed)
    }

    fn configure(&mut self, setup: &Setup) -> Result<Configured> {
        setup.rule.validate()?;
        let raw = self.raw();
        self.setup = setup.clone();
        self.standardization = None;
        self.class_weights = None;
        let (d, k) = (self.data.features(), self.objective.outputs());
        let offset = self.offset;
        let training: Vec<usize> = (0..self.data.rows())
            .filter(|&i| {
                Split::contains(setup.split.as_ref(), RowSet::Training, (i + offset) as u32)
            })
            .collect();
        let held_out = self.data.rows() as u64 - training.len() as u64;
        if training.is_empty() {
            return Err(Error::option(
                "validation fraction",
                setup.split.map_or(0.0, |s| s.fraction),
                "leaves no training rows",
            ));
        }
        if setup.standardize {
            let n = training.len() as f64;
            let mut mean = vec![0.0; d];
            for &i in &training {
                for (m, &x) in mean.iter_mut().zip(self.data.row(i)) {
                    *m += f64::from(x) / n;
                }
            }
            let mut variance = vec![0.0; d];
            for &i in &training {
                for ((v, &x), m) in variance.iter_mut().zip(self.data.row(i)).zip(&mean) {
                    *v += (f64::from(x) - m).powi(2) / n;
                }
            }
            self.standardization = Some(Standardization::from_moments(mean, &variance));
        }
        self.class_weights = match &setup.class_weights {
            None => None,
            Some(ClassWeights::Given(w)) => Some(w.clone()),
            Some(ClassWeights::Balanced) => {
                let slots = k.max(2);
                let mut counts = vec![0.0; slots];
                for &i in &training {
                    counts[(self.data.y()[i] as usize).min(slots - 1)] += 1.0;
                }
                Some(balanced(&counts))
            }
        };
        self.theta = match &self.standardization {
            Some(s) => s.from_raw(&raw, k),
            None => raw,
        };
        self.state = vec![0.0; setup.rule.optimizer.state_len() * (d + 1) * k];
        Ok(Configured {
            standardization: self.standardization.clone(),
            class_weights: self.class_weights.clone(),
            training_rows: training.len() as u64,
            held_out_rows: held_out,
        })
    }

    fn evaluate(&mut self, rows: RowSet) -> Result<Evaluation> {
        let Sums { metrics, .. } = self.sums(&self.full_batch(), rows);
        Ok(Evaluation::from_sums(self.objective.model(), metrics))
    }

    fn pass_sums(&mut self, step: &Step, rows: RowSet) -> Result<PassSums> {
        let sums = self.sums(&step.batch, rows);
        Ok(PassSums {
            gradient: sums.grad,
            metrics: sums.metrics,
        })
    }

    fn column_sums(&mut self, center: &[f64]) -> Result<Vec<f64>> {
        let (d, slots) = (self.data.features(), self.objective.outputs().max(2));
        let mut out = vec![0.0; 2 * d + slots + 1];
        for i in 0..self.data.rows() {
            if !Split::contains(
                self.setup.split.as_ref(),
                RowSet::Training,
                (i + self.offset) as u32,
            ) {
                continue;
            }
            for (j, (&x, c)) in self.data.row(i).iter().zip(center).enumerate() {
                let v = f64::from(x) - c;
                out[j] += v;
                out[d + j] += v * v;
            }
            out[2 * d + (self.data.y()[i] as usize).min(slots - 1)] += 1.0;
            out[2 * d + slots] += 1.0;
        }
        Ok(out)
    }

    fn snapshot(&mut self) -> Result<Snapshot> {
        Ok(Snapshot::of_host(
            &self.theta,
            &self.state,
            self.standardization.as_ref(),
            self.objective.outputs(),
        ))
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        snapshot.restore_into(&mut self.theta, &mut self.state)?;
        Ok(())
    }
}

/// scikit-learn's balanced class weights, n / (classes · n_c), over the classes present
/// (an absent class gets weight 1; no row uses it).
pub(crate) fn balanced(counts: &[f64]) -> Vec<f64> {
    let n: f64 = counts.iter().sum();
    let present = counts.iter().filter(|&&c| c > 0.0).count() as f64;
    counts
        .iter()
        .map(|&c| if c > 0.0 { n / (present * c) } else { 1.0 })
        .collect()
}

/// Parameters given to a session must match its features and outputs.
pub(crate) fn check_params_shape(params: &Params, features: usize, outputs: usize) -> Result<()> {
    if params.features() != features || params.outputs() != outputs {
        return Err(Error::Shape {
            what: "parameters".into(),
            expected: format!("{features} features × {outputs} outputs"),
            found: format!(
                "{} features × {} outputs",
                params.features(),
                params.outputs()
            ),
        });
    }
    Ok(())
}
