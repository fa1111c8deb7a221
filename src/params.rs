//! The parameters W (d×k) and b (k) a model is fitted to, and the gradient ∇J at them.
//!
//! A leaf module: the error type carries parameters (the last finite ones of a diverged fit),
//! so parameters name their own shape error and [`crate::Error`] takes it in.

use std::fmt;

/// Parameters of the wrong shape: `expected` and `found` in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError {
    pub what: String,
    pub expected: String,
    pub found: String,
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, got {}",
            self.what, self.expected, self.found
        )
    }
}

impl std::error::Error for ShapeError {}

/// The parameters W (d×k, row-major: W\[j, c\] at `weights[j * k + c]`) and b (k).
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    features: usize,
    outputs: usize,
    weights: Vec<f64>,
    bias: Vec<f64>,
}

impl Params {
    /// All zeros: the default start.
    pub fn zeros(features: usize, outputs: usize) -> Self {
        Params {
            features,
            outputs,
            weights: vec![0.0; features * outputs],
            bias: vec![0.0; outputs],
        }
    }

    /// From W (row-major d×k) and b (k).
    pub fn new(
        features: usize,
        outputs: usize,
        weights: Vec<f64>,
        bias: Vec<f64>,
    ) -> Result<Self, ShapeError> {
        if features == 0 || outputs == 0 {
            return Err(ShapeError {
                what: "parameters".into(),
                expected: "at least one feature and one output".into(),
                found: format!("{features} features and {outputs} outputs"),
            });
        }
        if weights.len() != features * outputs || bias.len() != outputs {
            return Err(ShapeError {
                what: "parameters".into(),
                expected: format!(
                    "{} weights and {} biases ({features}×{outputs})",
                    features * outputs,
                    outputs
                ),
                found: format!("{} weights and {} biases", weights.len(), bias.len()),
            });
        }
        Ok(Params {
            features,
            outputs,
            weights,
            bias,
        })
    }

    pub fn features(&self) -> usize {
        self.features
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// W, row-major d×k.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// b, k entries.
    pub fn bias(&self) -> &[f64] {
        &self.bias
    }

    pub fn weights_mut(&mut self) -> &mut [f64] {
        &mut self.weights
    }

    pub fn bias_mut(&mut self) -> &mut [f64] {
        &mut self.bias
    }

    /// W then b, in the layout the kernels use: (d + 1)·k numbers, the bias as a last row.
    pub fn to_flat_f32(&self) -> Vec<f32> {
        self.weights
            .iter()
            .chain(&self.bias)
            .map(|&v| v as f32)
            .collect()
    }

    /// The inverse of [`Params::to_flat_f32`].
    /// W (row-major) then b, in one vector: the layout sessions keep.
    pub fn flat(&self) -> Vec<f64> {
        self.weights.iter().chain(&self.bias).copied().collect()
    }

    /// From W (row-major) then b, in f64.
    pub fn from_flat_f64(features: usize, outputs: usize, flat: &[f64]) -> Self {
        let split = features * outputs;
        Params {
            features,
            outputs,
            weights: flat[..split].to_vec(),
            bias: flat[split..].to_vec(),
        }
    }

    pub fn from_flat(features: usize, outputs: usize, flat: &[f32]) -> Self {
        assert_eq!(
            flat.len(),
            (features + 1) * outputs,
            "flat parameter length"
        );
        let (w, b) = flat.split_at(features * outputs);
        Params {
            features,
            outputs,
            weights: w.iter().map(|&v| f64::from(v)).collect(),
            bias: b.iter().map(|&v| f64::from(v)).collect(),
        }
    }

    /// True when every number is finite.
    pub fn is_finite(&self) -> bool {
        self.weights.iter().chain(&self.bias).all(|v| v.is_finite())
    }

    /// Euclidean distance between two parameter sets of the same shape, W and b together.
    pub fn distance(&self, other: &Params) -> f64 {
        assert_eq!(
            (self.features, self.outputs),
            (other.features, other.outputs)
        );
        self.weights
            .iter()
            .chain(&self.bias)
            .zip(other.weights.iter().chain(&other.bias))
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt()
    }

    /// Euclidean norm of W and b together.
    pub fn norm(&self) -> f64 {
        self.distance(&Params::zeros(self.features, self.outputs))
    }
}

/// J and its gradient at some parameters: ∇W (d×k, row-major) and ∇b (k).
#[derive(Clone, Debug, PartialEq)]
pub struct Gradient {
    pub loss: f64,
    pub weights: Vec<f64>,
    pub bias: Vec<f64>,
}

impl Gradient {
    /// The largest absolute entry of ∇W and ∇b, the scale for comparing two gradients.
    pub fn max_abs(&self) -> f64 {
        self.weights
            .iter()
            .chain(&self.bias)
            .fold(0.0, |m, v| m.max(v.abs()))
    }
}
