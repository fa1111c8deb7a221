//! Predictions: z = x·W + b of every row from a backend, and what each model makes of it —
//! a value (linear), P(y = 1) and a class (logistic), class probabilities and a class
//! (softmax).

use crate::backend::Session;
use crate::error::Result;
use crate::math::sigmoid;
use crate::model::{Model, Params};

/// z of every row (k values each) and the model that reads them.
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    model: Model,
    outputs: usize,
    z: Vec<f64>,
}

impl Predictions {
    /// Predicts every row of `session` with `params` (computed where the session's rows
    /// live: on the GPU for a GPU session).
    pub fn of(session: &mut dyn Session, params: &Params) -> Result<Self> {
        // z, the probabilities from it and their text: about five f64s a number.
        let (n, k) = (session.rows(), session.objective().outputs());
        let numbers = n.saturating_mul(k).saturating_mul(5);
        crate::memory::check(crate::memory::bytes_of::<f64>(numbers), || {
            format!(
                "the predictions of {} with {k} outputs",
                crate::error::count(n, "row")
            )
        })?;
        session.set_params(params)?;
        let z = session.predict()?;
        let objective = session.objective();
        Ok(Self::from_logits(objective.model(), objective.outputs(), z))
    }

    /// From z, row-major with `outputs` values per row.
    pub fn from_logits(model: Model, outputs: usize, z: Vec<f64>) -> Self {
        debug_assert_eq!(z.len() % outputs.max(1), 0);
        Predictions { model, outputs, z }
    }

    pub fn model(&self) -> Model {
        self.model
    }

    pub fn rows(&self) -> usize {
        self.z.len() / self.outputs
    }

    /// k: 1 for linear and logistic.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// z, row-major (rows × k).
    pub fn logits(&self) -> &[f64] {
        &self.z
    }

    /// Linear: ŷ = z. Logistic: σ(z) = P(y = 1). Softmax: the predicted class's
    /// probability. One number per row.
    pub fn values(&self) -> Vec<f64> {
        match self.model {
            Model::Linear => self.z.clone(),
            Model::Logistic => self.z.iter().map(|&z| sigmoid(z)).collect(),
            Model::Softmax => self
                .probabilities()
                .chunks(self.outputs)
                .map(|p| p.iter().copied().fold(f64::NEG_INFINITY, f64::max))
                .collect(),
        }
    }

    /// The predicted class of each row: z > 0 (logistic), the first largest z (softmax);
    /// `None` for a linear model.
    pub fn classes(&self) -> Option<Vec<usize>> {
        match self.model {
            Model::Linear => None,
            _ => Some(
                self.z
                    .chunks(self.outputs)
                    .map(crate::backend::reference::predicted_class)
                    .collect(),
            ),
        }
    }

    /// Class probabilities, row-major: logistic P(y = 0), P(y = 1) (two per row, as
    /// scikit-learn's `predict_proba`); softmax(z) (k per row); linear: ŷ itself.
    pub fn probabilities(&self) -> Vec<f64> {
        match self.model {
            Model::Linear => self.z.clone(),
            Model::Logistic => self
                .z
                .iter()
                .flat_map(|&z| [sigmoid(-z), sigmoid(z)])
                .collect(),
            Model::Softmax => self.z.chunks(self.outputs).flat_map(softmax).collect(),
        }
    }

    /// Columns per row of [`Predictions::probabilities`].
    pub fn probability_columns(&self) -> usize {
        match self.model {
            Model::Linear => 1,
            Model::Logistic => 2,
            Model::Softmax => self.outputs,
        }
    }
}

/// softmax(z) with the largest z subtracted first.
fn softmax(z: &[f64]) -> Vec<f64> {
    let top = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|&v| (v - top).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

#[cfg(feature = "ndarray")]
mod arrays {
    use ndarray::{Array1, Array2};

    use super::Predictions;

    impl Predictions {
        /// One number per row: see [`Predictions::values`].
        pub fn to_array1(&self) -> Array1<f64> {
            Array1::from(self.values())
        }

        /// Class probabilities, rows × columns: see [`Predictions::probabilities`].
        pub fn to_array2(&self) -> Array2<f64> {
            let columns = self.probability_columns();
            Array2::from_shape_vec((self.rows(), columns), self.probabilities())
                .expect("probabilities hold rows × columns values")
        }

        /// Predicted classes (logistic, softmax).
        pub fn class_array(&self) -> Option<Array1<usize>> {
            self.classes().map(Array1::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_model_reads_z_its_own_way() {
        let linear = Predictions::from_logits(Model::Linear, 1, vec![1.5, -2.0]);
        assert_eq!(linear.values(), vec![1.5, -2.0]);
        assert_eq!(linear.classes(), None);

        let logistic = Predictions::from_logits(Model::Logistic, 1, vec![0.0, 2.0_f64.ln()]);
        assert_eq!(logistic.classes(), Some(vec![0, 1]));
        let p = logistic.values();
        assert!((p[0] - 0.5).abs() < 1e-15 && (p[1] - 2.0 / 3.0).abs() < 1e-15);
        let both = logistic.probabilities();
        assert!((both[2] - 1.0 / 3.0).abs() < 1e-15 && (both[3] - 2.0 / 3.0).abs() < 1e-15);

        // softmax(ln 1, ln 3) = (1/4, 3/4).
        let softmax = Predictions::from_logits(Model::Softmax, 2, vec![0.0, 3.0_f64.ln()]);
        assert_eq!(softmax.classes(), Some(vec![1]));
        let p = softmax.probabilities();
        assert!((p[0] - 0.25).abs() < 1e-15 && (p[1] - 0.75).abs() < 1e-15);
        assert!((softmax.values()[0] - 0.75).abs() < 1e-15);
    }
}
