//! How a gradient becomes a step: the optimizer (PyTorch's SGD, momentum, Nesterov and
//! Adam, exactly), L2 and L1 regularization, the learning-rate schedule, and the feature
//! standardization the parameters may live in. Every backend applies the same rule; the
//! f64 version here is the reference's, and the test oracle for the others.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result, number};

/// The update rule θ ← θ − (…) applied to the (regularized) gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// θ ← θ − η g.
    Sgd,
    /// torch.optim.SGD(momentum=μ, dampening=0): b ← μ b + g (b₀ = 0), θ ← θ − η b.
    Momentum { momentum: f64 },
    /// torch.optim.SGD(momentum=μ, nesterov=True): b ← μ b + g, θ ← θ − η (g + μ b).
    Nesterov { momentum: f64 },
    /// torch.optim.Adam: m ← β₁ m + (1 − β₁) g, v ← β₂ v + (1 − β₂) g²,
    /// θ ← θ − (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε).
    Adam { beta1: f64, beta2: f64, eps: f64 },
}

/// Which optimizer, by name: an [`Optimizer`] without its hyperparameters, as
/// `--optimizer` and [`crate::Trainer::optimizer`] take it (the hyperparameters are settings
/// of their own, each refused where it does not apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    Sgd,
    Momentum,
    Nesterov,
    Adam,
}

impl std::str::FromStr for OptimizerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sgd" => Ok(OptimizerKind::Sgd),
            "momentum" => Ok(OptimizerKind::Momentum),
            "nesterov" => Ok(OptimizerKind::Nesterov),
            "adam" => Ok(OptimizerKind::Adam),
            _ => Err(Error::option(
                "optimizer",
                s,
                "expected sgd, momentum, nesterov or adam",
            )),
        }
    }
}

impl OptimizerKind {
    /// The optimizer of this kind with the defaults of torch.optim: momentum 0.9; Adam's
    /// β₁ = 0.9, β₂ = 0.999, ε = 10⁻⁸.
    pub fn with_defaults(self) -> Optimizer {
        match self {
            OptimizerKind::Sgd => Optimizer::Sgd,
            OptimizerKind::Momentum => Optimizer::Momentum { momentum: 0.9 },
            OptimizerKind::Nesterov => Optimizer::Nesterov { momentum: 0.9 },
            OptimizerKind::Adam => Optimizer::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
        }
    }
}

impl Optimizer {
    /// Its kind, the name without the hyperparameters.
    pub fn kind(&self) -> OptimizerKind {
        match self {
            Optimizer::Sgd => OptimizerKind::Sgd,
            Optimizer::Momentum { .. } => OptimizerKind::Momentum,
            Optimizer::Nesterov { .. } => OptimizerKind::Nesterov,
            Optimizer::Adam { .. } => OptimizerKind::Adam,
        }
    }

    /// Values kept per parameter: momentum's b, Adam's m and v.
    pub fn state_len(&self) -> usize {
        match self {
            Optimizer::Sgd => 0,
            Optimizer::Momentum { .. } | Optimizer::Nesterov { .. } => 1,
            Optimizer::Adam { .. } => 2,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd => "sgd",
            Optimizer::Momentum { .. } => "momentum",
            Optimizer::Nesterov { .. } => "nesterov",
            Optimizer::Adam { .. } => "adam",
        }
    }

    fn validate(&self) -> Result<()> {
        let unit = |name: &'static str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::option(name, number(v), "must be in [0, 1)"))
            }
        };
        match *self {
            Optimizer::Sgd => Ok(()),
            Optimizer::Momentum { momentum } | Optimizer::Nesterov { momentum } => {
                unit("momentum", momentum)
            }
            Optimizer::Adam { beta1, beta2, eps } => {
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                if eps.is_finite() && eps > 0.0 {
                    Ok(())
                } else {
                    Err(Error::option(
                        "eps",
                        number(eps),
                        "must be a finite number > 0",
                    ))
                }
            }
        }
    }
}

/// Penalties on W (never on b): J + (λ₂/2)‖W‖² + λ₁‖W‖₁. L2 enters the gradient; L1 is a
/// proximal soft-threshold after each step, w ← sign(w)·max(|w| − η λ₁, 0), so exact zeros
/// appear. Both together: the elastic net. scikit-learn's `C` is λ = 1/(C·n).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Regularization {
    pub l2: f64,
    pub l1: f64,
}

impl Regularization {
    fn validate(&self) -> Result<()> {
        for (name, v) in [("l2", self.l2), ("l1", self.l1)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::option(
                    name,
                    number(v),
                    "must be a finite number ≥ 0",
                ));
            }
        }
        Ok(())
    }
}

/// The learning rate of epoch e (counted from 0) for a base rate η over E epochs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// η.
    Constant,
    /// η γ^⌊e / every⌋.
    Step { every: u64, gamma: f64 },
    /// η γ^e.
    Exponential { gamma: f64 },
    /// η ½ (1 + cos(π e / E)), PyTorch's CosineAnnealingLR with η_min = 0.
    Cosine,
    /// η / (e + 1)^power, scikit-learn's invscaling per epoch.
    InverseScaling { power: f64 },
}

impl Schedule {
    /// The rate of epoch `epoch` of `epochs`, before warmup.
    pub fn rate(&self, base: f64, epoch: u64, epochs: u64) -> f64 {
        let e = epoch as f64;
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * gamma.powi((epoch / every) as i32),
            Schedule::Exponential { gamma } => base * gamma.powf(e),
            Schedule::Cosine => {
                base * 0.5 * (1.0 + (std::f64::consts::PI * e / epochs.max(1) as f64).cos())
            }
            Schedule::InverseScaling { power } => base / (e + 1.0).powf(power),
        }
    }
}

impl FromStr for Schedule {
    type Err = Error;

    /// `constant`, `step:EVERY:GAMMA`, `exp:GAMMA`, `cosine`, `invscaling:POWER`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::option("lr-schedule", s, why);
        let parts: Vec<&str> = s.split(':').collect();
        let number = |t: &str| -> Result<f64> {
            t.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad(&format!("{t:?} is not a number")))
        };
        let schedule = match parts.as_slice() {
            ["constant"] => Schedule::Constant,
            ["cosine"] => Schedule::Cosine,
            ["step", every, gamma] => Schedule::Step {
                every: every
                    .parse()
                    .ok()
                    .filter(|&v: &u64| v > 0)
                    .ok_or_else(|| bad("EVERY must be a whole number of epochs ≥ 1"))?,
                gamma: number(gamma)?,
            },
            ["exp", gamma] => Schedule::Exponential {
                gamma: number(gamma)?,
            },
            ["invscaling", power] => Schedule::InverseScaling {
                power: number(power)?,
            },
            _ => {
                return Err(bad(
                    "expected constant, step:EVERY:GAMMA, exp:GAMMA, cosine or invscaling:POWER",
                ));
            }
        };
        match schedule {
            Schedule::Step { gamma, .. } | Schedule::Exponential { gamma } if gamma <= 0.0 => {
                Err(bad("GAMMA must be > 0"))
            }
            Schedule::InverseScaling { power } if power < 0.0 => Err(bad("POWER must be ≥ 0")),
            s => Ok(s),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Constant => write!(f, "constant"),
            Schedule::Step { every, gamma } => write!(f, "step:{every}:{gamma}"),
            Schedule::Exponential { gamma } => write!(f, "exp:{gamma}"),
            Schedule::Cosine => write!(f, "cosine"),
            Schedule::InverseScaling { power } => write!(f, "invscaling:{power}"),
        }
    }
}

/// Everything that turns a gradient into a step, fixed for a whole fit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateRule {
    pub optimizer: Optimizer,
    pub regularization: Regularization,
    /// The bias is not learned: it stays where it starts (zero: a model without an
    /// intercept).
    pub fixed_bias: bool,
}

impl Default for UpdateRule {
    fn default() -> Self {
        UpdateRule {
            optimizer: Optimizer::Sgd,
            regularization: Regularization::default(),
            fixed_bias: false,
        }
    }
}

impl UpdateRule {
    pub fn validate(&self) -> Result<()> {
        self.optimizer.validate()?;
        self.regularization.validate()
    }

    /// One step on θ (W entries first, `weights` of them, then b) with gradient g and
    /// optimizer state `state` (`state_len()` values per parameter, each run after the
    /// other), at step t (from 1) with learning rate η. In f64: the reference's rule.
    pub fn apply(
        &self,
        theta: &mut [f64],
        grad: &[f64],
        state: &mut [f64],
        weights: usize,
        t: u64,
        lr: f64,
    ) {
        let n = theta.len();
        let Regularization { l2, l1 } = self.regularization;
        let learned = if self.fixed_bias { weights } else { n };
        for i in 0..learned {
            let g = grad[i] + if i < weights { l2 * theta[i] } else { 0.0 };
            theta[i] -= match self.optimizer {
                Optimizer::Sgd => lr * g,
                Optimizer::Momentum { momentum } => {
                    state[i] = momentum * state[i] + g;
                    lr * state[i]
                }
                Optimizer::Nesterov { momentum } => {
                    state[i] = momentum * state[i] + g;
                    lr * (g + momentum * state[i])
                }
                Optimizer::Adam { beta1, beta2, eps } => {
                    let (m, v) = (i, n + i);
                    state[m] = beta1 * state[m] + (1.0 - beta1) * g;
                    state[v] = beta2 * state[v] + (1.0 - beta2) * g * g;
                    let (step_size, root) = adam_corrections(beta1, beta2, t, lr);
                    step_size * state[m] / (state[v].sqrt() / root + eps)
                }
            };
            if i < weights && l1 > 0.0 {
                theta[i] = soft_threshold(theta[i], lr * l1);
            }
        }
    }
}

/// Adam's bias corrections at step t as PyTorch computes them: the step size
/// η / (1 − β₁ᵗ) and √(1 − β₂ᵗ).
pub fn adam_corrections(beta1: f64, beta2: f64, t: u64, lr: f64) -> (f64, f64) {
    let t = t.min(i32::MAX as u64) as i32;
    (lr / (1.0 - beta1.powi(t)), (1.0 - beta2.powi(t)).sqrt())
}

/// sign(w)·max(|w| − τ, 0).
pub fn soft_threshold(w: f64, tau: f64) -> f64 {
    if w > tau {
        w - tau
    } else if w < -tau {
        w + tau
    } else {
        0.0
    }
}

/// Features standardized to mean 0 and deviation 1: x' = (x − μ) ⊙ s, s = 1/σ (1 where σ = 0,
/// as scikit-learn's StandardScaler does). The optimizer's parameters θ' = (W', b') live in
/// that space; the data stay raw, and every backend computes with the equivalent raw-space
/// parameters W = s ⊙ W', b = b' − Σⱼ μⱼ sⱼ W'ⱼ (so predictions on raw rows are unchanged),
/// turning raw-space gradients back with ∂J/∂W'ⱼ = sⱼ (∂J/∂Wⱼ − μⱼ ∂J/∂b).
#[derive(Clone, Debug, PartialEq)]
pub struct Standardization {
    pub mean: Vec<f64>,
    /// 1/σ per feature.
    pub scale: Vec<f64>,
}

impl Standardization {
    /// From per-feature means and (population) variances.
    pub fn from_moments(mean: Vec<f64>, variance: &[f64]) -> Self {
        let scale = variance
            .iter()
            .map(|&v| {
                if v > 0.0 && v.is_finite() {
                    1.0 / v.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        Standardization { mean, scale }
    }

    /// Raw-space (W, b) from standardized-space θ' (W' row-major d×k, then b').
    pub fn to_raw(&self, theta: &[f64], k: usize) -> Vec<f64> {
        let d = self.mean.len();
        let mut raw = theta.to_vec();
        for c in 0..k {
            let mut shift = 0.0;
            for j in 0..d {
                raw[j * k + c] = self.scale[j] * theta[j * k + c];
                shift += self.mean[j] * raw[j * k + c];
            }
            raw[d * k + c] = theta[d * k + c] - shift;
        }
        raw
    }

    /// θ' from raw-space (W, b): the inverse of [`Standardization::to_raw`].
    pub fn from_raw(&self, raw: &[f64], k: usize) -> Vec<f64> {
        let d = self.mean.len();
        let mut theta = raw.to_vec();
        for c in 0..k {
            let mut shift = 0.0;
            for j in 0..d {
                theta[j * k + c] = raw[j * k + c] / self.scale[j];
                shift += self.mean[j] * raw[j * k + c];
            }
            theta[d * k + c] = raw[d * k + c] + shift;
        }
        theta
    }

    /// ∂J/∂θ' from the raw-space gradient (∂J/∂W, ∂J/∂b), in place.
    pub fn gradient_to_standardized(&self, grad: &mut [f64], k: usize) {
        let d = self.mean.len();
        for c in 0..k {
            let gb = grad[d * k + c];
            for j in 0..d {
                grad[j * k + c] = self.scale[j] * (grad[j * k + c] - self.mean[j] * gb);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_optimizer_kind_names_the_optimizer_it_makes() {
        for name in ["sgd", "momentum", "nesterov", "adam"] {
            let kind: OptimizerKind = name.parse().unwrap();
            let optimizer = kind.with_defaults();
            assert_eq!((optimizer.kind(), optimizer.name()), (kind, name));
            optimizer.validate().unwrap();
        }
        assert!("rmsprop".parse::<OptimizerKind>().is_err());
    }

    #[test]
    fn schedules_give_their_sequences() {
        let rates = |s: &str| {
            let s: Schedule = s.parse().unwrap();
            (0..5).map(|e| s.rate(0.5, e, 4)).collect::<Vec<_>>()
        };
        assert_eq!(rates("constant"), [0.5; 5]);
        assert_eq!(
            rates("step:2:0.1"),
            [0.5, 0.5, 0.05, 0.05, 0.005000000000000001]
        );
        assert_eq!(rates("exp:0.5"), [0.5, 0.25, 0.125, 0.0625, 0.03125]);
        let cosine = rates("cosine");
        for (got, want) in
            cosine
                .iter()
                .zip([0.5, 0.4267766952966369, 0.25, 0.07322330470336313, 0.0])
        {
            assert!((got - want).abs() < 1e-15, "{got} vs {want}");
        }
        assert_eq!(rates("invscaling:1"), [0.5, 0.25, 0.5 / 3.0, 0.125, 0.1]);
        for bad in [
            "step:0:0.5",
            "step:2",
            "exp:-1",
            "cosine:1",
            "linear",
            "invscaling:x",
        ] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn soft_threshold_makes_exact_zeros() {
        assert_eq!(soft_threshold(0.3, 0.5), 0.0);
        assert_eq!(soft_threshold(-0.3, 0.5), 0.0);
        assert_eq!(soft_threshold(2.0, 0.5), 1.5);
        assert_eq!(soft_threshold(-2.0, 0.5), -1.5);
    }

    #[test]
    fn standardization_round_trips_and_keeps_predictions() {
        let s = Standardization::from_moments(vec![1.0, -2.0], &[4.0, 0.25]);
        assert_eq!(s.scale, [0.5, 2.0]);
        let theta = [0.3, -0.7, 1.5];
        let raw = s.to_raw(&theta, 1);
        let back = s.from_raw(&raw, 1);
        for (a, b) in back.iter().zip(theta) {
            assert!((a - b).abs() < 1e-12);
        }
        // z on a raw row equals z' on the standardized row.
        let x = [3.0, 0.5];
        let z_raw = raw[0] * x[0] + raw[1] * x[1] + raw[2];
        let z_std = theta[0] * (x[0] - 1.0) * 0.5 + theta[1] * (x[1] + 2.0) * 2.0 + theta[2];
        assert!((z_raw - z_std).abs() < 1e-12);
        let zero = Standardization::from_moments(vec![5.0], &[0.0]);
        assert_eq!(zero.scale, [1.0]);
    }
}
