//! The CPU reference: plain loops that read like the math, accumulating in f64.
//! It is the oracle the other backends are tested against, not a fast path.

use std::borrow::Cow;

use super::{Backend, Batch, Data, RunOutcome, Session, Step};
use crate::data::Dataset;
use crate::error::Result;
use crate::math::row_loss_and_delta;
use crate::model::{Gradient, Objective, Params};

/// The f64 reference backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference;

impl Backend for Reference {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn open<'a>(&'a self, data: Data<'a>, objective: Objective) -> Result<Box<dyn Session + 'a>> {
        let data = data.into_host();
        let params = Params::zeros(data.features(), objective.outputs());
        Ok(Box::new(ReferenceSession {
            data,
            objective,
            params,
        }))
    }
}

/// Data and parameters held on the host, in f64.
pub struct ReferenceSession<'a> {
    data: Cow<'a, Dataset>,
    objective: Objective,
    params: Params,
}

impl ReferenceSession<'_> {
    /// J and ∇J over the rows at positions `batch.start..batch.start + batch.len`:
    /// for each row z = x·W + b, ℓ and δ = ∂ℓ/∂z; then ∇W = (1/n) Σ xᵀδ, ∇b = (1/n) Σ δ.
    pub fn batch_gradient(&self, batch: &Batch) -> Gradient {
        let (d, k) = (self.data.features(), self.objective.outputs());
        let (w, b) = (self.params.weights(), self.params.bias());
        let mut grad = Gradient {
            loss: 0.0,
            weights: vec![0.0; d * k],
            bias: vec![0.0; k],
        };
        let mut z = vec![0.0; k];
        let mut delta = vec![0.0; k];
        for p in batch.start..batch.start + batch.len {
            let i = batch.row(p) as usize;
            let x = self.data.row(i);
            for (c, zc) in z.iter_mut().enumerate() {
                *zc = b[c] + (0..d).map(|j| f64::from(x[j]) * w[j * k + c]).sum::<f64>();
            }
            let y = f64::from(self.data.y()[i]);
            grad.loss += row_loss_and_delta(&self.objective, &z, y, &mut delta);
            for (j, &xj) in x.iter().enumerate() {
                for (g, dc) in grad.weights[j * k..(j + 1) * k].iter_mut().zip(&delta) {
                    *g += f64::from(xj) * dc;
                }
            }
            for (g, dc) in grad.bias.iter_mut().zip(&delta) {
                *g += dc;
            }
        }
        let n = f64::from(batch.len);
        grad.loss /= n;
        grad.weights.iter_mut().for_each(|g| *g /= n);
        grad.bias.iter_mut().for_each(|g| *g /= n);
        grad
    }

    fn full_batch(&self) -> Batch {
        Batch {
            start: 0,
            len: self.data.rows() as u32,
            order: None,
        }
    }
}

impl Session for ReferenceSession<'_> {
    fn describe(&self) -> String {
        "reference (CPU, f64)".into()
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
        check_params_shape(params, self.data.features(), self.objective.outputs())?;
        self.params = params.clone();
        Ok(())
    }

    fn params(&mut self) -> Result<Params> {
        Ok(self.params.clone())
    }

    fn gradient(&mut self) -> Result<Gradient> {
        Ok(self.batch_gradient(&self.full_batch()))
    }

    fn loss(&mut self) -> Result<f64> {
        Ok(self.batch_gradient(&self.full_batch()).loss)
    }

    fn run(&mut self, steps: &[Step]) -> Result<RunOutcome> {
        for (s, step) in steps.iter().enumerate() {
            let grad = self.batch_gradient(&step.batch);
            let lr = f64::from(step.lr);
            let mut next = self.params.clone();
            for (p, g) in next.weights_mut().iter_mut().zip(&grad.weights) {
                *p -= lr * g;
            }
            for (p, g) in next.bias_mut().iter_mut().zip(&grad.bias) {
                *p -= lr * g;
            }
            if !grad.loss.is_finite() || !next.is_finite() {
                return Ok(RunOutcome::Diverged { step: s });
            }
            self.params = next;
        }
        Ok(RunOutcome::Completed)
    }
}

/// Parameters given to a session must match its features and outputs.
pub(crate) fn check_params_shape(params: &Params, features: usize, outputs: usize) -> Result<()> {
    if params.features() != features || params.outputs() != outputs {
        return Err(crate::error::Error::Shape {
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
