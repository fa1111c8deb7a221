//! The objective the solvers minimize, over a configured session: F(θ) = J(θ) +
//! (λ₂/2)‖W‖² (+ λ₁‖W‖₁, which OWL-QN handles apart), θ in the optimizer's space (the
//! standardized one when standardizing), J the weighted mean loss over the training rows.
//! Every value, gradient and curvature is one pass of the session over its rows, counted.

use crate::backend::Session;
use crate::descent::{Evaluation, RowSet};
use crate::error::{Error, Result};
use crate::optim::{Regularization, Standardization};
use crate::params::Params;

/// Passes over the rows, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Passes {
    /// Loss and gradient.
    pub gradient: u64,
    /// Loss alone (line-search trials of the Newton solver).
    pub loss: u64,
    /// Hessian, with the gradient.
    pub hessian: u64,
    /// Hessian-vector products.
    pub product: u64,
    /// Column moments, for the solver's coordinates.
    pub moments: u64,
}

impl Passes {
    /// Every pass, whatever its kind.
    pub fn total(&self) -> u64 {
        self.gradient + self.loss + self.hessian + self.product + self.moments
    }
}

/// F and ∇F at one θ (the smooth part: λ₁ is not in them), with the loss alone and the
/// training rows' evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub theta: Vec<f64>,
    /// J + (λ₂/2)‖W‖².
    pub value: f64,
    pub grad: Vec<f64>,
    pub evaluation: Evaluation,
}

/// The objective of a fit on a session that [`Session::configure`] set up, in the
/// solver's coordinates u: the parameters of the training rows' standardized features
/// (raw = A·u, [`Standardization::to_raw`]), whatever space the penalty is in. That change
/// of variables leaves the optimum where it is and takes the features' scales and means
/// out of the curvature, which is most of what makes raw data ill-conditioned.
pub struct Problem<'s> {
    session: &'s mut dyn Session,
    /// The solver's coordinates.
    space: Standardization,
    /// λ₂ of each weight in u: λ₂ where the penalty is on standardized weights, λ₂·s² where
    /// it is on raw ones (W = s ⊙ u).
    l2: Vec<f64>,
    /// λ₁ of each weight in u, likewise: λ₁ or λ₁·s.
    l1: Vec<f64>,
    features: usize,
    outputs: usize,
    /// Softmax's symmetry: for each row of u (a feature's k weights, then the k biases),
    /// whether F is unchanged when the same amount is added to all k classes there (the
    /// rows the penalty leaves alone). See [`Problem::project`].
    shift_invariant: Vec<bool>,
    /// The bias is held at zero (no intercept): u's bias row is pinned.
    fixed_bias: bool,
    /// The u the session's parameters are at, when known.
    at: Option<Vec<f64>>,
    pub passes: Passes,
}

impl<'s> Problem<'s> {
    /// The problem of `session`, whose penalties are on the weights of `penalized`'s
    /// space (the standardized one when the fit standardizes, else raw). The solver's
    /// coordinates are `penalized`'s standardization when there is one, else the training
    /// rows' moments, from two passes. With `fixed_bias` (no intercept) the bias stays at
    /// zero: the coordinates then only scale the features (centring them would move the
    /// bias), and `penalized` must not centre either.
    pub fn new(
        session: &'s mut dyn Session,
        regularization: Regularization,
        penalized: Option<&Standardization>,
        fixed_bias: bool,
    ) -> Result<Self> {
        let (features, outputs) = (session.features(), session.objective().outputs());
        let mut passes = Passes::default();
        let mut space = match penalized {
            Some(s) => s.clone(),
            None => {
                passes.moments += 2;
                moments(session, features)?
            }
        };
        if fixed_bias {
            if penalized.is_some_and(|s| s.mean.iter().any(|&m| m != 0.0)) {
                return Err(Error::option(
                    "fit_intercept",
                    "off",
                    "cannot go with standardized coordinates that centre the features",
                ));
            }
            space.mean.iter_mut().for_each(|m| *m = 0.0);
        }
        let (l2, l1): (Vec<f64>, Vec<f64>) = (0..features * outputs)
            .map(|i| {
                let s = if penalized.is_some() {
                    1.0
                } else {
                    space.scale[i / outputs]
                };
                (regularization.l2 * s * s, regularization.l1 * s)
            })
            .unzip();
        let softmax = session.objective().model() == crate::model::Model::Softmax;
        let shift_invariant = (0..=features)
            .map(|row| {
                let free = |i: usize| {
                    l2.get(i).is_none_or(|&l| l == 0.0) && l1.get(i).is_none_or(|&l| l == 0.0)
                };
                softmax && outputs > 1 && free(row * outputs)
            })
            .collect();
        Ok(Problem {
            session,
            space,
            l2,
            l1,
            features,
            outputs,
            shift_invariant,
            fixed_bias,
            at: None,
            passes,
        })
    }

    /// Parameters in u: (d + 1)·k.
    pub fn parameters(&self) -> usize {
        (self.features + 1) * self.outputs
    }

    /// u's entries that are weights (penalized), the first d·k.
    pub fn weights(&self) -> usize {
        self.features * self.outputs
    }

    /// λ₁ of each weight in u (all zero without an L1 penalty).
    pub fn l1(&self) -> &[f64] {
        &self.l1
    }

    /// λ₂ of each weight in u: the penalty's curvature.
    pub fn l2(&self) -> &[f64] {
        &self.l2
    }

    pub fn has_l1(&self) -> bool {
        self.l1.iter().any(|&v| v > 0.0)
    }

    pub fn session(&mut self) -> &mut dyn Session {
        self.session
    }

    /// Removes from `v` the directions along which F is flat by symmetry: softmax's
    /// probabilities do not change when one amount is added to every class's bias (or to
    /// every class's weight of an unpenalized feature, whose shift of z is the same for
    /// all classes). Along those directions ∇F is zero and ∇²F singular in exact
    /// arithmetic; on f32 rows the gradient's sums leave ~1e-7 of noise there, and
    /// conjugate gradients, dividing it by a curvature that is rounding too, would take an
    /// unbounded step along them. Solvers work in the complement: gradients and
    /// Hessian-vector products come projected, and Newton projects its steps.
    /// A fixed bias (no intercept) is pinned the same way: its entries are zeroed.
    pub fn project(&self, v: &mut [f64]) {
        let k = self.outputs;
        if self.fixed_bias {
            let bias = self.weights();
            v[bias..].iter_mut().for_each(|x| *x = 0.0);
        }
        for (row, part) in v.chunks_exact_mut(k).enumerate() {
            if self.shift_invariant.get(row).copied().unwrap_or(false) {
                let mean = part.iter().sum::<f64>() / k as f64;
                for x in part {
                    *x -= mean;
                }
            }
        }
    }

    /// The raw-space parameters θ stands for.
    pub fn params(&self, theta: &[f64]) -> Params {
        Params::from_flat_f64(self.features, self.outputs, &self.to_raw(theta))
    }

    /// [`Problem::params`] apart from the problem: for an observer of the iterates while
    /// a solver holds it.
    pub fn params_of(&self) -> impl Fn(&[f64]) -> Params + use<> {
        let (space, features, outputs) = (self.space.clone(), self.features, self.outputs);
        move |theta| Params::from_flat_f64(features, outputs, &space.to_raw(theta, outputs))
    }

    /// u for raw-space `params`.
    pub fn theta_of(&self, params: &Params) -> Vec<f64> {
        self.space.from_raw(&params.flat(), self.outputs)
    }

    /// A raw-space vector from one in u's space, A·v (linear: the standardization's shift
    /// of the bias is a multiple of W).
    fn to_raw(&self, v: &[f64]) -> Vec<f64> {
        self.space.to_raw(v, self.outputs)
    }

    /// A raw-space gradient (or any row of a raw-space Hessian) into u's space: Aᵀg.
    fn to_theta(&self, g: &mut [f64]) {
        self.space.gradient_to_standardized(g, self.outputs);
    }

    fn move_to(&mut self, theta: &[f64]) -> Result<()> {
        if self.at.as_deref() != Some(theta) {
            self.session.set_params(&self.params(theta))?;
            self.at = Some(theta.to_vec());
        }
        Ok(())
    }

    /// (λ₂/2)‖W‖².
    fn penalty(&self, theta: &[f64]) -> f64 {
        0.5 * theta
            .iter()
            .zip(&self.l2)
            .map(|(v, l)| l * v * v)
            .sum::<f64>()
    }

    /// λ₁‖W‖₁.
    pub fn l1_penalty(&self, theta: &[f64]) -> f64 {
        theta
            .iter()
            .zip(&self.l1)
            .map(|(v, l)| l * v.abs())
            .sum::<f64>()
    }

    /// F at θ, from a pass that skips the gradient.
    pub fn value(&mut self, theta: &[f64]) -> Result<f64> {
        self.move_to(theta)?;
        self.passes.loss += 1;
        let loss = self.session.evaluate(RowSet::Training)?.loss;
        Ok(loss + self.penalty(theta))
    }

    /// F and ∇F at θ: one fused pass.
    pub fn point(&mut self, theta: &[f64]) -> Result<Point> {
        self.move_to(theta)?;
        self.passes.gradient += 1;
        let step = crate::backend::full_step(self.session.rows());
        let sums = self.session.pass_sums(&step, RowSet::Training)?;
        Ok(self.point_of(theta, sums.mean_gradient(), sums.metrics))
    }

    fn point_of(&self, theta: &[f64], mut grad: Vec<f64>, metrics: [f64; 5]) -> Point {
        let evaluation = Evaluation::from_sums(self.session.objective().model(), metrics);
        self.to_theta(&mut grad);
        for ((g, t), l) in grad.iter_mut().zip(theta).zip(&self.l2) {
            *g += l * t;
        }
        self.project(&mut grad);
        Point {
            theta: theta.to_vec(),
            value: evaluation.loss + self.penalty(theta),
            grad,
            evaluation,
        }
    }

    /// F, ∇F and ∇²F at θ (p×p, row-major), from one pass.
    pub fn hessian(&mut self, theta: &[f64]) -> Result<(Point, Vec<f64>)> {
        self.move_to(theta)?;
        self.passes.hessian += 1;
        let sums = self.session.hessian_sums(RowSet::Training)?;
        let weight = sums.pass.metrics[1];
        let point = self.point_of(theta, sums.pass.mean_gradient(), sums.pass.metrics);
        let p = self.parameters();
        let mut h = sums.hessian;
        // Aᵀ H A, a row at a time: Aᵀ on every row of H gives HA (H is symmetric), and Aᵀ
        // on every row of (HA)ᵀ = AᵀH gives AᵀHA.
        for _ in 0..2 {
            for row in h.chunks_exact_mut(p) {
                self.to_theta(row);
            }
            transpose(&mut h, p);
        }
        let scale = if weight > 0.0 { 1.0 / weight } else { 0.0 };
        for v in &mut h {
            *v *= scale;
        }
        for (i, l) in self.l2.iter().enumerate() {
            h[i * p + i] += l;
        }
        if self.fixed_bias {
            // The pinned bias: no coupling, unit curvature (its gradient is zero, so is its
            // step).
            for i in self.weights()..p {
                for j in 0..p {
                    h[i * p + j] = 0.0;
                    h[j * p + i] = 0.0;
                }
                h[i * p + i] = 1.0;
            }
        }
        Ok((point, h))
    }

    /// ∇²F(θ)·v, from one pass.
    pub fn product(&mut self, theta: &[f64], v: &[f64], weight: f64) -> Result<Vec<f64>> {
        self.move_to(theta)?;
        self.passes.product += 1;
        let mut v = v.to_vec();
        self.project(&mut v);
        let raw = self.to_raw(&v);
        let mut hv = self.session.hessian_vector_sums(&raw, RowSet::Training)?;
        self.to_theta(&mut hv);
        let scale = if weight > 0.0 { 1.0 / weight } else { 0.0 };
        for (i, (h, vi)) in hv.iter_mut().zip(&v).enumerate() {
            *h = *h * scale + self.l2.get(i).map_or(0.0, |l| l * vi);
        }
        self.project(&mut hv);
        Ok(hv)
    }

    /// The error a fit ends with when F is not finite where it starts.
    pub fn non_finite_start(&self) -> Error {
        Error::NonFiniteStart {
            custom: matches!(
                self.session.objective().loss(),
                crate::model::Loss::Custom(_)
            ),
        }
    }
}

/// The training rows' standardization: their means, then their deviations about them
/// ([`Session::column_sums`], two passes).
fn moments(session: &mut dyn Session, features: usize) -> Result<Standardization> {
    let first = session.column_sums(&vec![0.0; features])?;
    let rows = first[first.len() - 1].max(1.0);
    let mean: Vec<f64> = first[..features].iter().map(|s| s / rows).collect();
    let second = session.column_sums(&mean)?;
    let variance: Vec<f64> = second[features..2 * features]
        .iter()
        .map(|s| s / rows)
        .collect();
    Ok(Standardization::from_moments(mean, &variance))
}

fn transpose(m: &mut [f64], p: usize) {
    for r in 0..p {
        for c in r + 1..p {
            m.swap(r * p + c, c * p + r);
        }
    }
}
