//! What passes and runs report: evaluations, pass sums, how a run ended, and the log entry
//! of an epoch.

use crate::model::Model;

/// The loss and the metrics of the current parameters on a set of rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// The (weighted) mean loss.
    pub loss: f64,
    /// The sum of the rows' weights (their count when unweighted).
    pub weight: f64,
    /// Weighted share of rows whose predicted class is the label (logistic, softmax).
    pub accuracy: Option<f64>,
    /// 1 − SS_res / SS_tot (linear).
    pub r2: Option<f64>,
}

impl Evaluation {
    /// From the weighted sums every backend accumulates: Σwℓ, Σw, Σw\[correct\], Σwy, Σwy².
    pub fn from_sums(model: Model, sums: [f64; 5]) -> Self {
        let [loss, weight, correct, sum_y, sum_y2] = sums;
        let mean = |v: f64| if weight > 0.0 { v / weight } else { f64::NAN };
        let (accuracy, r2) = match model {
            Model::Linear => {
                // Σw(y − ȳ)² = Σwy² − (Σwy)²/Σw; Σw(ŷ − y)² is the loss sum.
                let total = sum_y2 - sum_y * sum_y / weight;
                (None, Some(1.0 - loss / total))
            }
            _ => (Some(mean(correct)), None),
        };
        Evaluation {
            loss: mean(loss),
            weight,
            accuracy,
            r2,
        }
    }
}

/// What [`Session::evaluate_and_run`](crate::Session::evaluate_and_run) found at the parameters before its steps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Evaluations {
    pub training: Evaluation,
    /// The held-out rows', when asked for.
    pub validation: Option<Evaluation>,
}

/// How a run of steps ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    Completed,
    /// Step `step` (an index into the slice given to [`Session::run`](crate::Session::run)) met a non-finite
    /// loss, gradient or parameter; it and every later step were not applied.
    Diverged {
        step: usize,
    },
}

/// Sums over rows: Σ w·∂ℓ/∂θ in raw space (W row-major, then b), and the metric sums Σwℓ,
/// Σw, Σw\[correct\], Σwy, Σwy².
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PassSums {
    pub gradient: Vec<f64>,
    pub metrics: [f64; 5],
}

impl PassSums {
    /// Adds `other` in place (the caller fixes the order, so the sums are deterministic).
    pub fn add(&mut self, other: &PassSums) {
        if self.gradient.is_empty() {
            self.gradient = vec![0.0; other.gradient.len()];
        }
        for (a, b) in self.gradient.iter_mut().zip(&other.gradient) {
            *a += b;
        }
        for (a, b) in self.metrics.iter_mut().zip(&other.metrics) {
            *a += b;
        }
    }

    /// The weighted mean gradient (zeros when no row had weight).
    pub fn mean_gradient(&self) -> Vec<f64> {
        let w = self.metrics[1];
        self.gradient
            .iter()
            .map(|g| if w > 0.0 { g / w } else { 0.0 })
            .collect()
    }

    /// As one flat vector (gradient, then metrics), for sending between processes.
    pub fn to_flat(&self) -> Vec<f64> {
        self.gradient.iter().chain(&self.metrics).copied().collect()
    }

    pub fn from_flat(flat: &[f64]) -> Self {
        let split = flat.len().saturating_sub(5);
        let mut metrics = [0.0; 5];
        metrics.copy_from_slice(&flat[split..]);
        PassSums {
            gradient: flat[..split].to_vec(),
            metrics,
        }
    }
}

/// The sums of a Hessian pass: those of the gradient pass at the same parameters, and
/// Σ w·(x̃x̃ᵀ ⊗ ∂²ℓ/∂z∂zᵀ) with x̃ = (x, 1): p×p row-major, p = (d + 1)·k, rows and columns
/// in θ's order (W row-major, then b), in raw space, unnormalized.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HessianSums {
    pub pass: PassSums,
    pub hessian: Vec<f64>,
}

impl HessianSums {
    /// Adds `other` in place (the caller fixes the order).
    pub fn add(&mut self, other: &HessianSums) {
        self.pass.add(&other.pass);
        if self.hessian.is_empty() {
            self.hessian = vec![0.0; other.hessian.len()];
        }
        for (a, b) in self.hessian.iter_mut().zip(&other.hessian) {
            *a += b;
        }
    }

    /// As one flat vector (the Hessian, then the pass's), for sending between processes.
    pub fn to_flat(&self) -> Vec<f64> {
        let mut flat = self.hessian.clone();
        flat.extend(self.pass.to_flat());
        flat
    }

    /// From [`HessianSums::to_flat`] of `p` parameters.
    pub fn from_flat(flat: &[f64], p: usize) -> Self {
        HessianSums {
            hessian: flat[..p * p].to_vec(),
            pass: PassSums::from_flat(&flat[p * p..]),
        }
    }
}

/// The losses and metrics at one logged epoch.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogEntry {
    pub epoch: u64,
    /// On the training rows.
    pub training: Evaluation,
    /// On the held-out rows, when there are any.
    pub validation: Option<Evaluation>,
}

impl LogEntry {
    /// The entry of `epoch`'s evaluations.
    pub fn at(epoch: u64, evaluations: Evaluations) -> Self {
        LogEntry {
            epoch,
            training: evaluations.training,
            validation: evaluations.validation,
        }
    }

    /// The loss early stopping watches: the held-out rows', when there are any.
    pub fn monitored(&self) -> f64 {
        self.validation.map_or(self.training.loss, |v| v.loss)
    }
}

impl std::fmt::Display for LogEntry {
    /// `loss 0.123456, accuracy 0.9000, val_loss …`: losses and metrics, held-out ones
    /// prefixed `val_`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "loss {:.6}", self.training.loss)?;
        let metrics = |f: &mut std::fmt::Formatter<'_>, prefix: &str, v: &Evaluation| {
            if let Some(a) = v.accuracy {
                write!(f, ", {prefix}accuracy {a:.4}")?;
            }
            if let Some(r2) = v.r2 {
                write!(f, ", {prefix}r2 {r2:.4}")?;
            }
            Ok(())
        };
        metrics(f, "", &self.training)?;
        if let Some(v) = &self.validation {
            write!(f, ", val_loss {:.6}", v.loss)?;
            metrics(f, "val_", v)?;
        }
        Ok(())
    }
}
