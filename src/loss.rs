//! The loss ℓ of one row and δ = ∂ℓ/∂z, in f64: the per-row math every backend shares.
//!
//! With z = x·W + b (k values), the gradient of J = (1/n) Σ ℓᵢ is
//! ∇W = (1/n) Xᵀδ and ∇b = (1/n) Σ δᵢ: the chain rule dJ/dŷ · dŷ/dz · x, with · 1 for the bias.
//! The WGSL twin of this file is `shaders/common.wgsl`; the f32 twin of the CPU backend is
//! `backend/cpu/math.rs`.

use crate::custom::CustomLoss;
use crate::math::{sigmoid, softplus};
use crate::model::{Loss, Model, Objective};

/// ℓ(z, y) for one row, writing δ = ∂ℓ/∂z into `delta` (k entries).
///
/// - linear, mse: ℓ = (z − y)², δ = 2(z − y)
/// - logistic, mse: ŷ = σ(z), ℓ = (ŷ − y)², δ = dℓ/dŷ · dŷ/dz = 2(ŷ − y) · ŷ(1 − ŷ)
/// - logistic, bce: ℓ = −[y log ŷ + (1 − y) log(1 − ŷ)] = softplus(z) − y z, δ = ŷ − y
/// - softmax, ce: ℓ = logsumexp(z) − z_y, δ_c = softmax(z)_c − [c = y]
pub fn row_loss_and_delta(objective: &Objective, z: &[f64], y: f64, delta: &mut [f64]) -> f64 {
    if let Loss::Custom(id) = objective.loss() {
        return custom_loss_and_delta(&CustomLoss::lookup(id), z, y, delta);
    }
    match (objective.model(), objective.loss()) {
        (Model::Linear, _) => {
            let r = z[0] - y;
            delta[0] = 2.0 * r;
            r * r
        }
        (Model::Logistic, Loss::Bce) => {
            delta[0] = sigmoid(z[0]) - y;
            softplus(z[0]) - y * z[0]
        }
        (Model::Logistic, _) => {
            let s = sigmoid(z[0]);
            let r = s - y;
            delta[0] = 2.0 * r * s * (1.0 - s);
            r * r
        }
        (Model::Softmax, _) => {
            let m = max(z);
            let mut sum = 0.0;
            for (d, &zc) in delta.iter_mut().zip(z) {
                *d = (zc - m).exp();
                sum += *d;
            }
            let label = y as usize;
            for (c, d) in delta.iter_mut().enumerate() {
                *d = *d / sum - if c == label { 1.0 } else { 0.0 };
            }
            m + sum.ln() - z[label]
        }
    }
}

fn max(z: &[f64]) -> f64 {
    z.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// A custom loss: ℓ(z, y) for one output; for softmax Σ_c ℓ_c(p_c, t_c) with p = softmax(z),
/// t the one-hot label, and δ_c = p_c (g_c − Σ_j g_j p_j), g_j = ∂ℓ_j/∂p_j.
fn custom_loss_and_delta(loss: &CustomLoss, z: &[f64], y: f64, delta: &mut [f64]) -> f64 {
    if z.len() == 1 {
        let (l, d) = loss.eval(z[0], y);
        delta[0] = d;
        return l;
    }
    let m = max(z);
    let sum: f64 = z.iter().map(|&zc| (zc - m).exp()).sum();
    let mut total = 0.0;
    let mut weighted = 0.0;
    for (c, (d, &zc)) in delta.iter_mut().zip(z).enumerate() {
        let p = (zc - m).exp() / sum;
        let (l, g) = loss.eval(p, if c == y as usize { 1.0 } else { 0.0 });
        total += l;
        *d = g;
        weighted += g * p;
    }
    for (d, &zc) in delta.iter_mut().zip(z) {
        *d = (zc - m).exp() / sum * (*d - weighted);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bce_from_z_equals_the_textbook_formula() {
        let obj = Objective::logistic();
        let mut delta = [0.0];
        for &(z, y) in &[(0.3, 1.0), (-2.0, 0.0), (4.0, 0.0), (-1.5, 1.0)] {
            let p = 1.0 / (1.0 + f64::exp(-z));
            let textbook = -(y * p.ln() + (1.0 - y) * (1.0 - p).ln());
            let loss = row_loss_and_delta(&obj, &[z], y, &mut delta);
            assert!((loss - textbook).abs() < 1e-12, "z={z} y={y}");
            assert!((delta[0] - (p - y)).abs() < 1e-15);
        }
    }

    #[test]
    fn softmax_ce_of_equal_logits_is_log_k() {
        let obj = Objective::softmax(4).unwrap();
        let mut delta = [0.0; 4];
        let loss = row_loss_and_delta(&obj, &[1000.0; 4], 2.0, &mut delta);
        assert!((loss - 4f64.ln()).abs() < 1e-12);
        assert_eq!(delta, [0.25, 0.25, -0.75, 0.25]);
    }
}
