//! The scalar functions every backend shares, in f64: σ, softplus and z = x·W + b.
//!
//! A leaf module; the loss of a row built on them is [`crate::loss`]. The WGSL twin of
//! both is `shaders/common.wgsl`.

/// σ(z) = 1 / (1 + e^−z), evaluated so that neither branch overflows.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// log(1 + e^z), exact for large |z| (no overflow, no log 0).
pub fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// The binary cross-entropy softplus(z) − y·z and its δ = σ(z) − y, written as
/// y·softplus(−z) + (1 − y)·softplus(z) and (1 − y)·σ(z) − y·σ(−z): sums of terms of one
/// sign, so a row that is confidently right keeps its small loss and δ to full relative
/// precision instead of losing them to the cancellation of z − z (the solvers see
/// differences of the loss far below its size near the optimum).
pub fn bce_loss_and_delta(z: f64, y: f64) -> (f64, f64) {
    let e = (-z.abs()).exp();
    let (near, far) = (1.0 / (1.0 + e), e / (1.0 + e));
    let (s, complement) = if z >= 0.0 { (near, far) } else { (far, near) };
    let loss = e.ln_1p() + y * (-z).max(0.0) + (1.0 - y) * z.max(0.0);
    (loss, (1.0 - y) * s - y * complement)
}

/// z = x·W + b in f64 for one row; `params` holds W (d×k, row-major) then b.
pub fn logits(x: &[f32], params: &[f64], z: &mut [f64]) {
    let k = z.len();
    let (w, b) = params.split_at(x.len() * k);
    for (c, zc) in z.iter_mut().enumerate() {
        *zc = b[c]
            + x.iter()
                .enumerate()
                .map(|(j, &xj)| f64::from(xj) * w[j * k + c])
                .sum::<f64>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_and_softplus_stay_finite_far_out() {
        assert_eq!(sigmoid(-5000.0), 0.0);
        assert_eq!(sigmoid(5000.0), 1.0);
        assert_eq!(softplus(5000.0), 5000.0);
        assert_eq!(softplus(-5000.0), 0.0);
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-15);
        assert_eq!(bce_loss_and_delta(5000.0, 1.0), (0.0, 0.0));
        assert_eq!(bce_loss_and_delta(-5000.0, 1.0), (5000.0, -1.0));
    }

    #[test]
    fn a_confidently_right_row_keeps_its_loss_to_full_precision() {
        // ln(1 + e^−30) = e^−30 − e^−60/2 + …; σ(−30) = e^−30 − e^−60 + …
        let e = (-30.0f64).exp();
        for (z, y) in [(30.0, 1.0), (-30.0, 0.0)] {
            let (loss, delta) = bce_loss_and_delta(z, y);
            assert!((loss - (e - e * e / 2.0)).abs() <= 1e-15 * e, "{z}: {loss}");
            assert!(
                (delta.abs() - (e - e * e)).abs() <= 1e-15 * e,
                "{z}: {delta}"
            );
            assert_eq!(delta.signum(), -z.signum());
        }
        // softplus(z) − y·z loses the digits to the cancellation.
        assert!((softplus(30.0) - 30.0 - e).abs() > 1e-3 * e);
    }
}
