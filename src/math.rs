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
    }
}
