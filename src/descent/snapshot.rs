//! The descent's state as a session holds it, to continue bit for bit elsewhere.

use crate::error::{Error, Result};

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
