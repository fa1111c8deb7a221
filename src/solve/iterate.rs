//! What every solver implements: where it starts, what vanishes at the optimum, and one
//! step.

use super::problem::{Point, Problem};
use crate::error::Result;

/// A stalled Newton step still converged when the decrease it promised, ½|∇Fᵀd| (the
/// Newton decrement, which bounds what is left for these losses), is at most this share of
/// max(|F|, 1): the objective's own rounding (f32 rows give it about 1e-7 relative) hides
/// what is left.
pub const RESOLUTION: f64 = 1e-8;

/// What the solvers share: where they start, what must vanish at the optimum, one step.
pub(super) trait Iterate {
    /// The point at θ₀ (with whatever the solver keeps from its pass).
    fn start(&mut self, problem: &mut Problem, theta: Vec<f64>) -> Result<Point>;

    /// The vector that is zero at the optimum: ∇F, or OWL-QN's pseudo-gradient.
    fn stationarity(&self, problem: &Problem, point: &Point) -> Vec<f64>;

    fn step(&mut self, problem: &mut Problem, point: &Point) -> Result<Moved>;

    /// What the solver remembers of earlier iterations: L-BFGS's pairs (s, y), oldest
    /// first; nothing for the others.
    fn memory(&self) -> Vec<(Vec<f64>, Vec<f64>)> {
        Vec::new()
    }

    /// Takes back what [`Iterate::memory`] gave.
    fn restore(&mut self, _pairs: &[(Vec<f64>, Vec<f64>)]) {}
}

/// Where a step went.
pub(super) enum Moved {
    To(Point),
    /// The line search found no point that decreases F along a direction of slope
    /// ∇Fᵀd (or the pseudo-gradient's).
    Stalled {
        slope: f64,
    },
}
