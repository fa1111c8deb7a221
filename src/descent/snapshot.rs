//! The descent's state as a session holds it, to continue bit for bit elsewhere.

use crate::error::{Error, Result};
use crate::optim::Standardization;

/// The descent's state in a session: θ in the optimizer's space (standardized when
/// standardizing), the optimizer's moments (none, one or two per parameter), and the
/// raw-space parameters the rows see. W (d×k, row-major) then b in each.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub theta: Vec<f64>,
    pub state: Vec<f64>,
    pub raw: Vec<f64>,
}

impl Snapshot {
    /// A host session's snapshot: θ, the state, and the raw parameters θ stands for.
    pub(crate) fn of_host(
        theta: &[f64],
        state: &[f64],
        standardization: Option<&Standardization>,
        outputs: usize,
    ) -> Self {
        Snapshot {
            theta: theta.to_vec(),
            state: state.to_vec(),
            raw: raw_parameters(theta, standardization, outputs),
        }
    }

    /// Copies θ and the optimizer state into a host session's own, after checking their
    /// lengths (the raw parameters follow from θ there).
    pub(crate) fn restore_into(&self, theta: &mut Vec<f64>, state: &mut Vec<f64>) -> Result<()> {
        self.check(theta.len(), state.len())?;
        theta.clone_from(&self.theta);
        state.clone_from(&self.state);
        Ok(())
    }

    /// Checks the lengths against a session's: `n` parameters, `state` moments.
    pub(crate) fn check(&self, n: usize, state: usize) -> Result<()> {
        let wrong = |what: &str, found: usize, expected: usize| Error::Shape {
            what: format!("snapshot {what}"),
            expected: format!("{expected} numbers"),
            found: found.to_string(),
        };
        if self.theta.len() != n {
            return Err(wrong("θ", self.theta.len(), n));
        }
        if self.raw.len() != n {
            return Err(wrong("parameters", self.raw.len(), n));
        }
        if self.state.len() != state {
            return Err(wrong("optimizer state", self.state.len(), state));
        }
        Ok(())
    }
}

/// The raw-space parameters θ stands for (θ itself without standardization).
pub(crate) fn raw_parameters(
    theta: &[f64],
    standardization: Option<&Standardization>,
    outputs: usize,
) -> Vec<f64> {
    match standardization {
        Some(s) => s.to_raw(theta, outputs),
        None => theta.to_vec(),
    }
}
